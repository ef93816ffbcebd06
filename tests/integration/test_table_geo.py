#!/usr/bin/python3
"""ibpdns-table: the nearest member for every located network of the MaxMind
City test database (BEHAVIOR §3 "Choice"), checked against our own haversine.

For each located network of GeoIP2-City-Test.json we take one address inside
it, ask the table which member answers, and compare with the eligible member
(Service.Active 1, not Override, with an address of the asked family) at the
smallest great-circle distance, ties going to the member key that sorts first
in byte order."""

import ipaddress
import json
import os

import ibptest
from ibptest import check, eq, lookup, member, members_from, service, static_record


# ---- the reference model -------------------------------------------------------

def eligible(members_obj, candidate_keys, family):
    """Keys of the candidates that may be answered for family ('A'/'AAAA')."""
    field = 'ServiceIPv4' if family == 'A' else 'ServiceIPv6'
    return [k for k in candidate_keys
            if members_obj[k]['Service'].get('Active') == 1
            and not members_obj[k].get('Override')
            and members_obj[k]['Service'].get(field)]


def nearest(members_obj, keys, lat, lon):
    """(key, distance) of the nearest member; ties to the first key in byte order."""
    best = None
    for k in sorted(keys, key=lambda s: s.encode()):
        loc = members_obj[k]['Location']
        d = ibptest.haversine(lat, lon, loc['Latitude'], loc['Longitude'])
        if best is None or d < best[1] - 1e-9:
            best = (k, d)
    return best


def check_network_answers(table, members_obj, host_keys, nets, families, what):
    """Asks table every (network, host, family) and compares with the model.
    Returns the number of lookups made."""
    queries = [(n, h, fam) for n in nets for h in host_keys for fam in families]

    def one(q):
        (net, addr, lat, lon, _cc), host, fam = q
        res = lookup(table, host, addr, fam)
        ctx = '%s: %s %s for %s (%s)' % (what, host, fam, addr, net)
        loc = res['location']
        check(loc is not None, '%s: no location' % ctx)
        check(abs(loc['latitude'] - lat) < 1e-6 and abs(loc['longitude'] - lon) < 1e-6,
              '%s: location %r, expected (%r, %r)' % (ctx, loc, lat, lon))
        elig = eligible(members_obj, host_keys[host], fam)
        if not elig:
            eq(res['answers'], [], ctx + ' answers')
            eq(res['how'], 'none', ctx + ' how')
            return
        key, dist = nearest(members_obj, elig, lat, lon)
        field = 'ServiceIPv4' if fam == 'A' else 'ServiceIPv6'
        eq(len(res['answers']), 1, ctx + ' number of answers')
        ans = res['answers'][0]
        eq(ans['member'], members_obj[key]['Details']['Name'], ctx + ' member')
        eq(ans['address'], members_obj[key]['Service'][field], ctx + ' address')
        eq(res['how'], 'nearest', ctx + ' how')
        check(ans['distance_km'] is not None and abs(ans['distance_km'] - dist) < 0.01,
              '%s: distance_km %r, expected %.3f' % (ctx, ans['distance_km'], dist))
        check(res['scope'] > 0, '%s: scope %r for a client-dependent answer'
              % (ctx, res['scope']))

    ibptest.pmap(one, queries)
    return len(queries)


def check_scope_sound(table, host, nets, fam, what):
    """The answer must be the same over all of ip/scope (BEHAVIOR §3 "ECS
    scope"): compare the first and the last address of that prefix."""
    def one(n):
        addr = n[1]
        res = lookup(table, host, addr, fam)
        scope = res['scope']
        prefix = ipaddress.ip_network('%s/%d' % (addr, scope), strict=False)
        for other in (prefix.network_address, prefix.broadcast_address):
            o = lookup(table, host, str(other), fam)
            eq(ibptest.answer_members(o), ibptest.answer_members(res),
               '%s: %s %s: %s has scope /%d but %s in it gets a different answer'
               % (what, host, fam, addr, scope, other))

    ibptest.pmap(one, nets)


# ---- the real IBP config -------------------------------------------------------

# All real members serve every service, so these hosts share one candidate set.
REAL_HOSTS = ['polkadot.dotters.network', 'rpc.dotters.network', 'kusama.ibp.network']


def real_config():
    ws = ibptest.Workspace()
    cfg = ws.write_json('node.json', {
        'System': {'LogLevel': 'Info', 'ConfigUrls': {
            'StaticDNSConfig': 'file://' + os.path.join(ibptest.IBP_CONFIG, 'geodns-static.json'),
            'MembersConfig': os.path.join(ibptest.IBP_CONFIG, 'members_professional.json'),
            'ServicesConfig': os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json')}},
        'Maxmind': {'MaxmindDBPath': ibptest.MAXMIND},
        'Nats': {'NodeID': 'TEST-01', 'Url': ''},
        'DnsApi': {'ListenAddress': '127.0.0.1', 'ListenPort': '6100'}})
    with open(os.path.join(ibptest.IBP_CONFIG, 'members_professional.json')) as f:
        mem = json.load(f)
    with open(os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json')) as f:
        svc = json.load(f)
    return ws, ws.build_ok(cfg), mem, svc


def real_candidates(mem, svc, host):
    """Members assigned a service whose RpcUrls use host (IBP-NODE §3.1)."""
    keys = set()
    for skey, s in svc.items():
        hosts = {u.split('://', 1)[1].split('/', 1)[0].split(':', 1)[0].lower()
                 for p in s['Providers'].values() for u in p['RpcUrls']}
        if host in hosts:
            for k, m in mem.items():
                if any(skey in lst for lst in m['ServiceAssignments'].values()):
                    keys.add(k)
    return sorted(keys)


REAL = None


def real():
    global REAL
    if REAL is None:
        REAL = real_config()
    return REAL


def test_real_config_london_gets_amforc():
    _, table, _, _ = real()
    res = lookup(table, 'polkadot.dotters.network', '81.2.69.142')
    eq([(a['member'], a['address']) for a in res['answers']], [('Amforc', '91.90.166.200')],
       'polkadot.dotters.network A for 81.2.69.142')
    eq(res['how'], 'nearest', 'how')
    eq(res['location']['country'], 'GB', 'location country')
    # Case and a trailing dot do not matter (BEHAVIOR §2).
    res2 = lookup(table, 'Polkadot.DOTTERS.network.', '81.2.69.142')
    eq(ibptest.answer_members(res2), ['Amforc'], 'mixed-case name with trailing dot')


def test_real_config_every_located_network():
    _, table, mem, svc = real()
    nets = ibptest.located_networks()
    check(len(nets) > 200, 'only %d located networks in the City test data' % len(nets))
    check(any(':' in n[1] for n in nets) and any('.' in n[1] for n in nets),
          'expected IPv4 and IPv6 networks')
    hosts = {h: real_candidates(mem, svc, h) for h in REAL_HOSTS}
    for h, keys in hosts.items():
        check(len(keys) == 7, '%s: expected 7 candidates, model found %r' % (h, keys))
    check_network_answers(table, mem, hosts, nets, ('A',), 'real config')
    # No real member has IPv6: AAAA is empty everywhere.
    check_network_answers(table, mem, {REAL_HOSTS[0]: hosts[REAL_HOSTS[0]]}, nets, ('AAAA',),
                          'real config')


def test_real_config_inactive_members_not_routed():
    # Rotko (Bangkok) and RadiumBlock (Mumbai) have Service.Active 0: a client
    # in Asia must not get them (BEHAVIOR §3, unlike IBP).
    _, table, _, _ = real()
    res = lookup(table, 'polkadot.dotters.network', '175.16.199.1')   # China
    check(ibptest.answer_members(res)[0] not in ('Rotko Networks', 'RadiumBlock'),
          'inactive member answered: %r' % res['answers'])
    sk = ibptest.skipped(res)
    eq(sk.get('Rotko Networks'), 'inactive', 'Rotko Networks skipped')
    eq(sk.get('RadiumBlock'), 'inactive', 'RadiumBlock skipped')


def test_real_config_scope_is_sound():
    _, table, _, _ = real()
    check_scope_sound(table, 'polkadot.dotters.network', ibptest.located_networks(), 'A', 'real config')


# ---- synthetic members with IPv6 ------------------------------------------------

SYN_MEMBERS = members_from([
    ('Tokyo', member(35.6762, 139.6503, '192.0.2.1', '2001:db8::1', services=['Alpha'])),
    ('Frankfurt', member(50.1109, 8.6821, '', '2001:db8::2', services=['Alpha', 'Beta'])),
    ('London', member(51.5072, -0.1276, '192.0.2.3', '', services=['Beta'])),
    ('Virginia', member(38.9, -77.4, '192.0.2.4', '2001:db8::4', services=['Alpha', 'Beta'])),
    ('Sydney', member(-33.8688, 151.2093, '192.0.2.5', '2001:db8::5', services=['Alpha'],
                      active=0)),
    ('Singapore', member(1.3521, 103.8198, '192.0.2.6', '2001:db8::6',
                         services=['Alpha', 'Beta'], override=True)),
    ('SaoPaulo', member(-23.5505, -46.6333, '192.0.2.7', '2001:db8::7', services=['Beta'])),
    ('Nairobi', member(-1.2921, 36.8219, '192.0.2.8', '2001:db8::8', services=['Beta'])),
    ('Seattle', member(47.6062, -122.3321, '', '2001:db8::9', services=['Alpha'])),
])
SYN_SERVICES = {
    'Alpha': service('wss://alpha.example.net', 'wss://rpc.example.net/alpha'),
    'Beta': service('wss://beta.example.net', 'wss://rpc.example.net/beta'),
}
SYN_HOSTS = {
    'alpha.example.net': ['Frankfurt', 'Seattle', 'Singapore', 'Sydney', 'Tokyo', 'Virginia'],
    'beta.example.net': ['Frankfurt', 'London', 'Nairobi', 'SaoPaulo', 'Singapore', 'Virginia'],
    'rpc.example.net': sorted(SYN_MEMBERS),
}


def test_synthetic_both_families_every_located_network():
    ws = ibptest.Workspace()
    cfg = ws.node_config(SYN_MEMBERS, SYN_SERVICES,
                         [static_record('example.net', 'NS', 'ns1.example.net.')])
    table = ws.build_ok(cfg)
    nets = ibptest.located_networks()
    check_network_answers(table, SYN_MEMBERS, SYN_HOSTS, nets, ('A', 'AAAA'), 'synthetic')
    check_scope_sound(table, 'rpc.example.net', nets, 'AAAA', 'synthetic')


if __name__ == '__main__':
    ibptest.main(globals())
