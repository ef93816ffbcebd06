#!/usr/bin/python3
"""Routing.Nets (issue 16): CIDR networks whose clients go to listed members
first, with gdnsd's semantics: a subnet beats its supernet, an IPv4 network
and its v4-compat form are one network, networks inside the other
IPv4-embedding spaces are refused, and a list with nobody healthy falls back
to the distance order. MaxMind's test database: 81.2.69.142 London,
2.125.160.216 Oxford (GB), 89.160.20.112 Linkoping, 216.160.83.56 Tacoma,
2001:218::1 Tokyo."""
import json
import os

import ibptest
from ibptest import (check, eq, member, members, one_error_line, result, service, site_group,
                     snapshot, static_record)

HOST = 'a.example.net'
MEMBERS = members(
    Alpha=member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1', services=['SvcA']),
    Bravo=member(48.8566, 2.3522, '192.0.2.2', '2001:db8::2', services=['SvcA']),
    Charlie=member(59.3293, 18.0686, '192.0.2.3', '2001:db8::3', services=['SvcA']),
    Delta=member(47.6062, -122.3321, '192.0.2.4', '2001:db8::4', services=['SvcA']),
    Echo=member(51.5074, -0.1278, '192.0.2.5', '2001:db8::5', services=['SvcB']),
)
SERVICES = {'SvcA': service('wss://a.example.net'), 'SvcB': service('wss://b.example.net')}
STATIC = [static_record('example.net', 'NS', 'ns1.example.net.'),
          static_record('ns1.example.net', 'A', '192.0.2.53')]
WS = []


def down(*names):
    """Members down in both families."""
    return snapshot(site=[site_group([result(m, False, ipv6=v6) for m in names], ipv6=v6)
                          for v6 in (False, True)])


def workspace():
    ws = ibptest.Workspace()
    WS.append(ws)
    return ws


def build(nets, results=None, overrides=None, routing=None):
    ws = workspace()
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing=dict(routing or {}, Nets=nets),
                         overrides=overrides)
    return ws.build_ok(cfg, results=results)


def build_fails(nets, what):
    """The build must fail with one line naming the config and the path."""
    ws = workspace()
    rc, _, err, _ = ws.build(ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Nets': nets}))
    check(rc != 0, '%s: the build succeeded' % what)
    return one_error_line(err, what)


def look(table, ip, qtype='A', ecs=None):
    r = ibptest.lookup(table, HOST, ip, qtype=qtype, ecs=ecs)
    return (r['answers'][0]['member'] if r['answers'] else None), r['how'], r['rule']


@ibptest.single_threaded
def test_without_nets_the_nearest_answers():
    """The baseline every other test departs from."""
    t = build({})
    eq(look(t, '81.2.69.142'), ('Alpha', 'nearest', 'nearest'), 'London')
    eq(look(t, '89.160.20.112'), ('Charlie', 'nearest', 'nearest'), 'Linkoping')
    eq(look(t, '216.160.83.56'), ('Delta', 'nearest', 'nearest'), 'Tacoma')


@ibptest.single_threaded
def test_a_net_beats_maxmind_and_names_itself():
    t = build({'81.2.69.0/24': ['Delta', 'Charlie']})
    eq(look(t, '81.2.69.142'), ('Delta', 'net', 'net 81.2.69.0/24'), 'London in the net')
    eq(look(t, '81.2.69.142', 'AAAA'), ('Delta', 'net', 'net 81.2.69.0/24'), 'AAAA too')
    eq(look(t, '2.125.160.216'), ('Alpha', 'nearest', 'nearest'), 'Oxford, outside it')
    # An address MaxMind knows nothing of is routed by the list as well.
    eq(look(t, '81.2.69.1'), ('Delta', 'net', 'net 81.2.69.0/24'), 'no MaxMind record')
    # The scope never reaches past the net.
    r = ibptest.lookup(t, HOST, '81.2.69.142', ecs='81.2.69.0/24')
    check(r['scope'] >= 24, 'scope %d covers more than the net' % r['scope'])
    eq(ibptest.table_json('info', t)['counts']['nets'], 1, 'info: nets')
    eq(ibptest.run_table('verify', t)[0], 0, 'verify')
    rc, out, _ = ibptest.run_table('dump', t)
    nets = {(r['network'], r['kind']) for r in map(json.loads, out.splitlines())
            if r.get('kind', '').startswith('net')}
    # a.example.net's policies by the list; b.example.net's as without the
    # net: Delta does not serve it, so the net does not concern it.
    eq(nets, {('81.2.69.0/24', 'net')}, 'dump: net answers')


@ibptest.single_threaded
def test_subnet_beats_supernet():
    t = build({'81.0.0.0/8': ['Delta'], '81.2.69.128/25': ['Charlie'], '81.2.0.0/16': 'auto'})
    eq(look(t, '81.2.69.142'), ('Charlie', 'net', 'net 81.2.69.128/25'), 'in the /25')
    eq(look(t, '81.3.0.1'), ('Delta', 'net', 'net 81.0.0.0/8'), 'in the /8 only')
    # auto: the /16 carves a hole in the /8 where the distance order rules.
    eq(look(t, '81.2.69.1')[1:], ('spread', 'spread'), 'in the auto /16, no MaxMind record')
    t = build({'81.0.0.0/8': ['Delta'], '81.2.69.0/24': 'auto'})
    eq(look(t, '81.2.69.142'), ('Alpha', 'nearest', 'nearest'), 'auto /24 in a listed /8')


@ibptest.single_threaded
def test_v4compat_is_the_ipv4_network():
    t = build({'::81.2.69.0/120': ['Delta']})
    eq(look(t, '81.2.69.142'), ('Delta', 'net', 'net 81.2.69.0/24'), 'v4-compat spelling')
    eq(look(t, '::ffff:81.2.69.142'), ('Delta', 'net', 'net 81.2.69.0/24'),
       'a v4-mapped client is its IPv4 address')
    # Two spellings of one network: one entry, a warning when the lists differ.
    ws = workspace()
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC,
                         routing={'Nets': {'81.2.69.0/24': ['Delta'], '::81.2.69.0/120': ['Bravo']}})
    rc, _, err, t = ws.build(cfg)
    eq(rc, 0, 'duplicate: exit status')
    warn = [l for l in err.splitlines() if 'same network' in l]
    eq(len(warn), 1, 'duplicate warnings: %r' % err)
    check('node.json: .Routing.Nets["' in warn[0] and '81.2.69.0/24' in warn[0],
          'warning names the file and both entries: %r' % warn[0])
    # The same spelling wins whatever the file's order: the first by path.
    check(warn[0].endswith('.Routing.Nets["81.2.69.0/24"] wins)'), 'winner: %r' % warn[0])
    eq(look(t, '81.2.69.142')[0], 'Delta', 'the entry the warning says wins')
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC,
                         routing={'Nets': {'81.2.69.0/24': ['Delta'], '::81.2.69.0/120': ['Delta']}})
    rc, _, err, _ = ws.build(cfg)
    check(rc == 0 and 'same network' not in err, 'an equal duplicate warns: %r' % err)


@ibptest.single_threaded
def test_embedded_spaces_are_refused():
    for net, space in (('::ffff:81.2.69.0/120', 'v4-mapped'), ('::ffff:0:5102:4500/120', 'SIIT'),
                       ('2001:0:5102:4500::/64', 'Teredo'), ('2001::/32', 'Teredo'),
                       ('2002:5102:4500::/40', '6to4'), ('64:ff9b::5102:4500/120', 'NAT64')):
        line = build_fails({net: ['Delta']}, net)
        check('node.json: .Routing.Nets["%s"]: ' % net in line and space in line,
              '%s: %r' % (net, line))
    # A supernet of them is fine, but their clients stay IPv4 clients.
    t = build({'2000::/3': ['Delta']})
    eq(look(t, '2002:5102:458e::1'), ('Alpha', 'nearest', 'nearest'),
       '6to4 of 81.2.69.142 under a listed 2000::/3')
    eq(look(t, '2001:218::1', 'AAAA'), ('Delta', 'net', 'net 2000::/3'), 'Tokyo in 2000::/3')


@ibptest.single_threaded
def test_list_exhausted_falls_back_to_distance():
    nets = {'81.2.69.0/24': ['Delta', 'Charlie']}
    eq(look(build(nets, results=down('Delta')), '81.2.69.142'),
       ('Charlie', 'net', 'net 81.2.69.0/24'), 'first listed down: the next listed')
    eq(look(build(nets, results=down('Delta', 'Charlie')), '81.2.69.142'),
       ('Alpha', 'net-fallback', 'net 81.2.69.0/24'), 'every listed down: the nearest')
    eq(look(build(nets, results=down('Delta', 'Charlie', 'Alpha')), '81.2.69.142'),
       ('Bravo', 'net-fallback', 'net 81.2.69.0/24'), 'and the next nearest')
    # No location and nobody listed healthy: the rest by member key.
    eq(look(build(nets, results=down('Delta', 'Charlie')), '81.2.69.1'),
       ('Alpha', 'net-fallback', 'net 81.2.69.0/24'), 'no MaxMind record: by key')


@ibptest.single_threaded
def test_a_list_is_never_spread_over():
    """Routing.FailoverSpread spreads the clients of a down nearest member,
    but a net's list is the operator's order of who takes over: its next
    listed member, then the nearest, takes every client of the net."""
    nets = {'81.2.69.0/24': ['Delta', 'Charlie']}
    spread = {'FailoverSpread': 3}
    clients = ['81.2.69.%d' % i for i in range(0, 256, 5)] + ['81.2.69.142']
    t = build(nets, results=down('Delta'), routing=spread)
    eq({look(t, ip) for ip in clients}, {('Charlie', 'net', 'net 81.2.69.0/24')},
       'first listed down: the next listed, for every client')
    t = build(nets, results=down('Delta', 'Charlie'), routing=spread)
    eq({look(t, ip) for ip in clients if look(t, ip)[0]}, {('Alpha', 'net-fallback', 'net 81.2.69.0/24')},
       'every listed down: the nearest, for every client')
    # Outside the net the spread works: Alpha down spreads Boxford's (GB) clients.
    t = build(nets, results=down('Alpha'), routing=spread)
    eq(look(t, '2.125.160.216')[1:], ('failover-spread', 'failover-spread 3 of 3'),
       'outside the net, Alpha down')


@ibptest.single_threaded
def test_listed_members_must_serve_the_host_and_answers_per_family():
    # Echo serves b.example.net only: a list naming none of a.example.net's
    # candidates does not concern it (as without the net); a list naming one,
    # down, falls back (test_list_exhausted_falls_back_to_distance).
    eq(look(build({'81.2.69.0/24': ['Echo']}), '81.2.69.142'),
       ('Alpha', 'nearest', 'nearest'), 'a listed member not serving the host')
    eq(look(build({'81.2.69.0/24': ['Echo', 'Delta']}), '81.2.69.142'),
       ('Delta', 'net', 'net 81.2.69.0/24'), 'a list naming a candidate after one that is not')
    ws = workspace()
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC,
                         routing={'Nets': {'81.2.69.0/24': ['Delta']}, 'AnswersPerFamily': 2})
    r = ibptest.lookup(ws.build_ok(cfg), HOST, '81.2.69.142')
    eq([a['member'] for a in r['answers']], ['Delta', 'Alpha'], 'the list, then by distance')
    eq((r['how'], r['rule']), ('net', 'net 81.2.69.0/24'), 'two answers: how')


def scopes_and_answers(table, host, ips, qtype='A'):
    out = []
    for ip in ips:
        r = ibptest.lookup(table, host, ip, qtype=qtype)
        out.append((ip, [a['member'] for a in r['answers']], r['scope'], r['how']))
    return out


@ibptest.single_threaded
def test_a_host_no_list_concerns_keeps_its_answers_and_scopes():
    # b.example.net has one candidate (Echo): its answer depends on no
    # client, so scope 0 (PowerDNS caches it for everyone), with or without
    # nets and a map that list only a.example.net's members. Its answers and
    # scopes are the table's without them, and so are the unlisted parts of
    # a.example.net's.
    ips = ['81.2.69.142', '81.2.69.1', '2.125.160.216', '89.160.20.112', '216.160.83.56',
           '175.16.199.1', '10.1.2.3', '8.8.8.8']
    plain = build({})
    listed = {'81.2.69.0/24': ['Delta'], '89.160.0.0/16': ['Bravo'], '10.0.0.0/8': ['Charlie']}
    with_nets = build(listed)
    with_map = build({}, routing={'Map': {'EU': {'GB': ['Delta'], 'SE': ['Bravo']},
                                          'AS': ['Charlie']}})
    base = scopes_and_answers(plain, 'b.example.net', ips)
    eq({scope for _, _, scope, _ in base}, {0}, 'b.example.net without nets: scope 0')
    eq(scopes_and_answers(with_nets, 'b.example.net', ips), base, 'b.example.net with nets')
    eq(scopes_and_answers(with_map, 'b.example.net', ips), base, 'b.example.net with a map')
    eq(scopes_and_answers(with_nets, 'b.example.net', ['2001:db8::1'], 'AAAA'),
       scopes_and_answers(plain, 'b.example.net', ['2001:db8::1'], 'AAAA'), 'AAAA too')
    outside = ['2.125.160.216', '216.160.83.56', '175.16.199.1']
    eq(scopes_and_answers(with_nets, HOST, outside), scopes_and_answers(plain, HOST, outside),
       'a.example.net outside every net: the plain answers and scopes')


@ibptest.single_threaded
def test_country_overrides_still_win():
    t = build({'81.2.69.0/24': ['Delta']},
              overrides={HOST: {'GB': {'memberName': 'Bravo'}}})
    eq(look(t, '81.2.69.142')[:2], ('Bravo', 'override'), 'GB override over the net')
    eq(look(t, '89.160.20.112')[:2], ('Charlie', 'nearest'), 'Sweden: neither')


@ibptest.single_threaded
def test_ipv6_nets():
    t = build({'2001:218::/32': ['Bravo'], '2001:218:8000::/33': ['Charlie']})
    eq(look(t, '2001:218::1', 'AAAA'), ('Bravo', 'net', 'net 2001:218::/32'), 'Tokyo')
    eq(look(t, '2001:218:8000::1', 'AAAA'), ('Charlie', 'net', 'net 2001:218:8000::/33'),
       'the /33 in it')


@ibptest.single_threaded
def test_nets_from_a_file():
    ws = workspace()
    ws.write_json('nets.json', {'81.2.69.0/24': ['Delta']})
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Nets': 'nets.json'})
    eq(look(ws.build_ok(cfg), '81.2.69.142'), ('Delta', 'net', 'net 81.2.69.0/24'), 'file form')
    ws.write_json('nets.json', {'81.2.69.0/33': ['Delta']})
    rc, _, err, _ = ws.build(cfg)
    line = one_error_line(err, 'bad file')
    check(rc != 0 and 'nets.json: ["81.2.69.0/33"]: ' in line, 'bad file: %r' % line)
    ws.write_json('nets.json', {'81.2.69.0/24': ['Nobody']})
    rc, _, err, _ = ws.build(cfg)
    line = one_error_line(err, 'unknown member in the file')
    check(rc != 0 and 'nets.json: ["81.2.69.0/24"][0]: "Nobody" is not a member' in line,
          'unknown member in the file: %r' % line)
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Nets': 'missing.json'})
    rc, _, err, _ = ws.build(cfg)
    line = one_error_line(err, 'missing file')
    check(rc != 0 and 'node.json: .Routing.Nets' in line and 'missing.json' in line,
          'missing file: %r' % line)


@ibptest.single_threaded
def test_bad_input_names_the_file_and_path():
    cases = [
        ({'81.2.69.0': ['Delta']}, '["81.2.69.0"]: ', 'not a CIDR network'),
        ({'81.2.69.0/33': ['Delta']}, '["81.2.69.0/33"]: ', 'prefix length'),
        ({'81.2.69.0/024': ['Delta']}, '["81.2.69.0/024"]: ', 'prefix length'),
        ({'x.y/24': ['Delta']}, '["x.y/24"]: ', 'bad address'),
        ({'2001:db8::/129': ['Delta']}, '["2001:db8::/129"]: ', 'prefix length'),
        ({'81.2.69.1/24': ['Delta']}, '["81.2.69.1/24"]: ', 'host bits set (the network is 81.2.69.0/24)'),
        ({'2001:db8::1/32': ['Delta']}, '["2001:db8::1/32"]: ', 'host bits set (the network is 2001:db8::/32)'),
        ({'81.2.69.0/24': ['Nobody']}, '["81.2.69.0/24"][0]: ', '"Nobody" is not a member'),
        ({'81.2.69.0/24': ['Delta', 'Delta']}, '["81.2.69.0/24"][1]: ', 'listed twice'),
        ({'81.2.69.0/24': 5}, '["81.2.69.0/24"]: ', 'got number'),
        ({'81.2.69.0/24': []}, '["81.2.69.0/24"]: ', '0 member keys'),
        ({'81.2.69.0/24': [5]}, '["81.2.69.0/24"][0]: ', 'string'),
        ({'81.2.69.0/24': 'nearest'}, '["81.2.69.0/24"]: ', 'neither "auto"'),
        (5, '', 'got number'),
        (['81.2.69.0/24'], '', 'got array'),
        ('', '', 'empty file name'),
    ]
    for nets, path, why in cases:
        what = json.dumps(nets)
        line = build_fails(nets, what)
        check('node.json: .Routing.Nets%s' % path in line and why in line,
              '%s: %r' % (what, line))


def route(sc, ip):
    code, _, body = sc.api('/route?name=%s&ip=%s' % (HOST, ip))
    eq(code, 200, '/route %s: %s' % (ip, body))
    r = json.loads(body)
    return (r['answers'][0]['member'] if r['answers'] else None), r['how'], r['rule']


def test_the_sidecar_routes_by_nets_and_follows_their_changes():
    """A nets file read with the config and watched, /route's rule, and a
    change of the lists alone (member sites unchanged) taking effect: the
    nets are in the geo classes' fingerprint."""
    import pdnsfix
    from sidecarfix import Sidecar
    sc = Sidecar(start=False, reload=1, extra={'Routing': {'TablePath': 'routing.tbl',
                                                           'Nets': 'nets.json'}})
    def write_nets(nets):
        path = os.path.join(sc.dir, 'nets.json')
        with open(path + '.tmp', 'w') as f:
            json.dump(nets, f)
        os.rename(path + '.tmp', path)
    write_nets({'81.2.69.0/24': ['Delta']})
    sc.http.set('/members.json', json.dumps(MEMBERS).encode())
    sc.http.set('/services.json', json.dumps(SERVICES).encode())
    sc.http.set('/static.json', json.dumps(STATIC).encode())
    sc.start(ready_timeout=60)
    with sc:
        eq(route(sc, '81.2.69.142'), ('Delta', 'net', 'net 81.2.69.0/24'), 'nets file')
        eq(route(sc, '2.125.160.216'), ('Alpha', 'nearest', 'nearest'), 'outside the net')
        gen = sc.generation()
        write_nets({'81.2.69.0/24': ['Bravo']})   # the config's bytes stay the same
        gen = sc.wait_generation_above(gen, 30)
        eq(route(sc, '81.2.69.142'), ('Bravo', 'net', 'net 81.2.69.0/24'), 'nets file edited')
        sc.config['Routing']['Nets'] = {'81.2.69.0/24': ['Charlie'], '2.125.160.0/24': ['Bravo']}
        sc.write_config()
        sc.wait_generation_above(gen, 30)
        eq(route(sc, '81.2.69.142'), ('Charlie', 'net', 'net 81.2.69.0/24'), 'new list')
        eq(route(sc, '2.125.160.216'), ('Bravo', 'net', 'net 2.125.160.0/24'), 'new net')
        # A bad nets config is refused with its path; the table in place stays.
        gen = sc.generation()
        sc.config['Routing']['Nets'] = {'81.2.69.0/24': ['Nobody']}
        sc.write_config()
        want = 'node.json: .Routing.Nets["81.2.69.0/24"][0]: "Nobody" is not a member key'
        ok = pdnsfix.wait_until(lambda: sc.status()['table']['last_error'] == want, 30)
        check(ok, 'the fault is not in /status: %r' % sc.status()['table']['last_error'])
        eq(sc.generation(), gen, 'a table was published from the bad config')
        eq(route(sc, '81.2.69.142'), ('Charlie', 'net', 'net 81.2.69.0/24'), 'kept')


if __name__ == '__main__':
    ibptest.main(globals())
