#!/usr/bin/python3
"""ibpdns-pipe behind a real PowerDNS 4.7 (pipe backend, ABI 3 and 5).

What a client of PowerDNS sees must be what `ibpdns-table lookup` says the
table answers (BEHAVIOR §2-4, PDNS-PIPE.md):
  * routing: every located network of the MaxMind City test data, by ECS and
    by remote address (PROXY v2), A and AAAA, answer and ECS scope;
  * zone data: SOA (serial = table build time), NS, static A/AAAA/CNAME/TXT/MX,
    NXDOMAIN, REFUSED, AXFR;
  * table replacement by rename (also under load), corrupt tables, no table;
  * hostile bytes on the coprocess's stdin;
  * no orphaned coprocess after pdns_server stops (4x4 threads);
  * the production cache profile does not hand one client's answer to another.

Everything listens on and talks to 127.0.0.1/127.0.0.2 only. Run with
/usr/bin/python3 (dnspython) and IBP_BUILD/IBP_SHARED set (meson does)."""

import json
import os
import random
import shutil
import threading
import time

import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

import ibptest
import pdnsfix
from ibptest import check, eq

HOST_IN_ZONE = 'polkadot.dotters.network'    # inside the static zone dotters.network
HOST_OWN_APEX = 'kusama.ibp.network'         # ibp.network is no zone: its own apex
HOSTS = (HOST_IN_ZONE, HOST_OWN_APEX)
LONDON = '81.2.69.142'
MILTON = '216.160.83.56'
SOA_TIMERS = (3600, 600, 1209600, 3600)      # BEHAVIOR §2 defaults
REFRESH_LIMIT = 1.0                          # seconds for a renamed table to be served

# IPv6 service addresses for the real members (which have none): AAAA routing.
# Gatotech stays IPv4-only, so it is no AAAA candidate.
SYNTHETIC_IPV6 = {
    'Stake Plus': '2001:db8:a::1',
    'Amforc': '2001:db8:b::1',
    'Dwellir': '2001:db8:c::1',
    'Turboflakes': '2001:db8:d::1',
    'Rotko Networks': '2001:db8:e::1',      # Active 0: never answered
}

# Static records added to the real geodns-static.json (MX, TXT, AAAA are not in it).
EXTRA_STATIC = [
    ibptest.static_record('dotters.network', 'MX', '10 mail.dotters.network.'),
    ibptest.static_record('dotters.network', 'TXT', '"v=spf1 -all"', ttl=300),
    ibptest.static_record('mail.dotters.network', 'A', '192.0.2.25'),
    ibptest.static_record('mail.dotters.network', 'AAAA', '2001:db8::25'),
    ibptest.static_record('txt.dotters.network', 'TXT', 'hello world', ttl=120),
    ibptest.static_record('multi.dotters.network', 'TXT', '"first" "second"'),
    ibptest.static_record('v6.dotters.network', 'AAAA', '2001:db8:600::6'),
] + [   # TXT edge forms the parser accepts: PowerDNS must take each (issue 10, fault 7)
    ibptest.static_record('edge.dotters.network', 'TXT', c)
    for c in ['""', '\\"x', '"a"   "b"', '"\\065"', 'a\\ b', '"x\\"y"', '"a" b1']
]


# ---- fixture: one workspace with the real IBP config (+ synthetic IPv6/statics) ------

_FX = {}


def fixture():
    if _FX:
        return _FX
    ws = ibptest.Workspace()
    with open(os.path.join(ibptest.IBP_CONFIG, 'members_professional.json')) as f:
        members = json.load(f)
    for key, addr in SYNTHETIC_IPV6.items():
        members[key]['Service']['ServiceIPv6'] = addr
    with open(os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json')) as f:
        services = json.load(f)
    with open(os.path.join(ibptest.IBP_CONFIG, 'geodns-static.json')) as f:
        static = json.load(f) + EXTRA_STATIC
    cfg = ws.node_config(members, services, static)
    table = ws.build_ok(cfg)
    info = ibptest.table_json('info', table)
    _FX.update(ws=ws, cfg=cfg, members=members, services=services, static=static,
               table=table, build_time=info['build_time'], lookups={})
    return _FX


def cached_lookup(table, name, ip, qtype='A', ecs=None):
    key = (table, name, ip, qtype, ecs)
    lk = fixture()['lookups']
    if key not in lk:
        lk[key] = ibptest.lookup(table, name, ip, qtype, ecs)
    return lk[key]


def expected_of(res):
    """(sorted addresses, scope) of a lookup result."""
    return (sorted(a['address'] for a in res['answers']), res['scope'])


def service_hosts(services, suffix=None):
    hosts = set()
    for svc in services.values():
        if svc['Configuration'].get('Active') != 1:
            continue
        for prov in svc.get('Providers', {}).values():
            for url in prov.get('RpcUrls', []):
                host = url.split('://', 1)[-1].split('/', 1)[0].split(':', 1)[0].lower()
                if suffix is None or host.endswith('.' + suffix):
                    hosts.add(host)
    return sorted(hosts)


def rrset(resp, name, rdtype, section='answer'):
    want = dns.rdatatype.from_text(rdtype)
    for rs in getattr(resp, section):
        if rs.rdtype == want and rs.name.to_text().rstrip('.').lower() == name.lower():
            return rs
    return None


def texts(rs):
    return sorted(r.to_text() for r in rs) if rs is not None else []


def rcode_name(resp):
    return dns.rcode.to_text(resp.rcode())


def first_failures(fails, n=8):
    return '%d failures, first %d:\n  %s' % (len(fails), min(n, len(fails)),
                                            '\n  '.join(map(str, fails[:n])))


# ---- 1. routing: PowerDNS answers == ibpdns-table lookup, by ECS and by remote ---------

def routing_cases(abi):
    """(host, qtype, client address, ecs or None) for every located network."""
    cases = []
    for i, (net, addr, *_) in enumerate(ibptest.located_networks()):
        v4 = ':' not in addr
        host = HOSTS[(i + abi) % 2]        # the other host under the other ABI
        for qtype in ('A', 'AAAA'):
            cases.append((host, qtype, addr, '%s/%d' % (addr, 32 if v4 else 128)))
            cases.append((host, qtype, addr, '%s/%d' % (addr, 24 if v4 else 48)))
            cases.append((host, qtype, addr, None))
    return cases


def check_routing(abi):
    fx = fixture()
    table = fx['table']
    cases = routing_cases(abi)
    check(len(cases) >= 6 * 240, 'only %d routing cases: located networks missing?' % len(cases))

    def expect(case):
        host, qtype, addr, ecs = case
        # With ECS, PowerDNS's remote is this test's own 127.0.0.1.
        res = cached_lookup(table, host, '127.0.0.1' if ecs else addr, qtype, ecs)
        check(res['answers'], 'precondition: lookup %r has no answer' % (case,))
        return res
    expected = ibptest.pmap(expect, cases)

    with pdnsfix.Pdns(table, abi=abi) as p:
        def ask(i):
            host, qtype, addr, ecs = cases[i]
            res = expected[i]
            try:
                resp = p.query(host, qtype, ecs=ecs) if ecs else p.query(host, qtype, remote=addr)
            except Exception as e:  # noqa: BLE001 - collected as a failure
                return (cases[i], 'query failed: %r' % e)
            got_rs = rrset(resp, host, qtype)
            got = (rcode_name(resp), bool(resp.flags & dns.flags.AA),
                   sorted(r.to_text() for r in got_rs) if got_rs else [],
                   got_rs.ttl if got_rs else None, pdnsfix.ecs_scope(resp))
            want = ('NOERROR', True, expected_of(res)[0], res['ttl'],
                    res['scope'] if ecs else None)
            if got != want:
                return (cases[i], 'got (rcode, AA, addrs, ttl, scope)=%r, lookup says %r (how %s)'
                        % (got, want, res['how']))
            return None
        fails = [f for f in ibptest.pmap(ask, range(len(cases)), workers=4) if f]
    check(not fails, 'ABI %d: %d of %d answers differ from ibpdns-table lookup; %s'
          % (abi, len(fails), len(cases), first_failures(fails)))
    # The data must exercise routing: more than one distinct answer per family.
    for qtype in ('A', 'AAAA'):
        distinct = {tuple(expected_of(r)[0]) for c, r in zip(cases, expected) if c[1] == qtype}
        check(len(distinct) >= 2, 'precondition: only %r answered for %s' % (distinct, qtype))


def test_routing_matches_lookup_abi3():
    check_routing(3)


def test_routing_matches_lookup_abi5():
    check_routing(5)


# ---- 2. zone data ------------------------------------------------------------------------

def expected_rdata(rtype, content):
    if rtype == 'TXT' and not content.startswith('"'):
        content = '"%s"' % content      # PowerDNS quotes unquoted TXT content as one string
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), content,
                               origin=dns.name.root, relativize=False).to_text()


def is_acme(rec):
    return rec['qtype'] == 'TXT' and rec['content'].startswith(('http://', 'https://'))


def check_soa(resp, section, zone, serial, what):
    rs = rrset(resp, zone, 'SOA', section)
    check(rs is not None and len(rs) == 1, '%s: no single SOA %s in %s: %s'
          % (what, zone, section, resp))
    soa = rs[0]
    eq(soa.serial, serial, '%s: SOA serial (= table build_time)' % what)
    eq((soa.refresh, soa.retry, soa.expire, soa.minimum), SOA_TIMERS, '%s: SOA timers' % what)
    eq(soa.rname.to_text().lower(), 'hostmaster.%s.' % zone, '%s: SOA rname' % what)
    return soa


def check_zone_data(abi):
    fx = fixture()
    serial = fx['build_time']
    static = fx['static']
    with pdnsfix.Pdns(fx['table'], abi=abi) as p:
        # SOA at each apex; mname = first NS, else dns-01.<zone>.
        r = p.query('dotters.network', 'SOA')
        eq(rcode_name(r), 'NOERROR', 'SOA dotters.network rcode')
        soa = check_soa(r, 'answer', 'dotters.network', serial, 'SOA dotters.network')
        eq(soa.mname.to_text().lower(), 'dns-01.dotters.network.', 'SOA dotters.network mname')
        check(r.flags & dns.flags.AA, 'SOA dotters.network: AA not set')
        r = p.query(HOST_OWN_APEX, 'SOA')
        soa = check_soa(r, 'answer', HOST_OWN_APEX, serial, 'SOA ' + HOST_OWN_APEX)
        # A host apex takes the NS set the static zones share (issue 15:
        # secondaries refuse a zone without NS), and its first NS as MNAME.
        eq(soa.mname.to_text().lower(), 'dns-01.dotters.network.', 'SOA mname ' + HOST_OWN_APEX)
        eq(texts(rrset(p.query(HOST_OWN_APEX, 'NS'), HOST_OWN_APEX, 'NS')),
           sorted('dns-0%d.dotters.network.' % i for i in range(1, 6)), 'NS ' + HOST_OWN_APEX)
        # A service host inside dotters.network is no apex: NODATA, the zone's SOA.
        r = p.query(HOST_IN_ZONE, 'SOA')
        eq((rcode_name(r), len(r.answer)), ('NOERROR', 0), 'SOA %s (not an apex)' % HOST_IN_ZONE)
        check_soa(r, 'authority', 'dotters.network', serial, 'SOA %s authority' % HOST_IN_ZONE)

        # NS
        r = p.query('dotters.network', 'NS')
        eq(texts(rrset(r, 'dotters.network', 'NS')),
           sorted('dns-0%d.dotters.network.' % i for i in range(1, 6)), 'NS dotters.network')

        # Static records of every type, with their TTLs.
        for name, rtype in [('dns-01.dotters.network', 'A'), ('dns-05.dotters.network', 'AAAA'),
                            ('v6.dotters.network', 'AAAA'), ('mail.dotters.network', 'AAAA'),
                            ('dotters.network', 'A'), ('dotters.network', 'TXT'),
                            ('txt.dotters.network', 'TXT'), ('multi.dotters.network', 'TXT'),
                            ('edge.dotters.network', 'TXT'),
                            ('dotters.network', 'MX'), ('www.dotters.network', 'CNAME'),
                            ('wiki.dotters.network', 'A')]:
            recs = [s for s in static if s['qname'] == name and s['qtype'] == rtype]
            r = p.query(name, rtype)
            rs = rrset(r, name, rtype)
            eq((rcode_name(r), texts(rs)),
               ('NOERROR', sorted(expected_rdata(rtype, s['content']) for s in recs)),
               '%s %s (ABI %d)' % (name, rtype, abi))
            eq(rs.ttl, recs[0]['ttl'], '%s %s TTL' % (name, rtype))
            check(r.flags & dns.flags.AA, '%s %s: AA not set' % (name, rtype))
        # MX: the in-zone exchange's address comes along as additional data.
        r = p.query('dotters.network', 'MX')
        eq(texts(rrset(r, 'mail.dotters.network', 'A', 'additional')), ['192.0.2.25'],
           'MX additional A of mail.dotters.network')
        # CNAME chased by PowerDNS: www -> dotters.network A.
        r = p.query('www.dotters.network', 'A')
        eq(texts(rrset(r, 'www.dotters.network', 'CNAME')), ['dotters.network.'],
           'www.dotters.network A: the CNAME')
        eq(texts(rrset(r, 'dotters.network', 'A')), ['192.96.202.175'],
           'www.dotters.network A: the chased target')
        # Case-insensitive names; the answer echoes the asked case.
        r = p.query('PoLkAdOt.DoTtErS.NeTwOrK', 'A', ecs=LONDON + '/32')
        eq(pdnsfix.a_records(r), pdnsfix.a_records(p.query(HOST_IN_ZONE, 'A', ecs=LONDON + '/32')),
           'mixed-case query answer')
        # NODATA at an existing name; NXDOMAIN inside a zone (with the SOA); REFUSED outside.
        r = p.query('dns-01.dotters.network', 'MX')
        eq((rcode_name(r), len(r.answer)), ('NOERROR', 0), 'NODATA dns-01.dotters.network MX')
        for name, zone in [('nothere.dotters.network', 'dotters.network'),
                           ('a.b.nothere.dotters.network', 'dotters.network'),
                           ('nothere.' + HOST_OWN_APEX, HOST_OWN_APEX)]:
            r = p.query(name, 'A')
            eq((rcode_name(r), len(r.answer)), ('NXDOMAIN', 0), 'unknown name %s' % name)
            check_soa(r, 'authority', zone, serial, 'NXDOMAIN %s authority' % name)
        for name in ('example.org', 'www.example.org', 'ibp.network', 'network'):
            r = p.query(name, 'A')
            eq(rcode_name(r), 'REFUSED', 'name outside every zone: %s' % name)

        # AXFR dotters.network: the static records plus the service hosts' A/AAAA.
        msgs = p.axfr('dotters.network', relativize=False)
        recs = []
        for m in msgs:
            for rs in m.answer:
                for rd in rs:
                    recs.append((rs.name.to_text().rstrip('.').lower(),
                                 dns.rdatatype.to_text(rs.rdtype), rd.to_text(), rs.ttl))
        check(len(recs) >= 3 and recs[0][1] == 'SOA' and recs[-1][1] == 'SOA',
              'AXFR does not start and end with the SOA: %r' % recs[:3])
        eq(int(recs[0][2].split()[2]), serial, 'AXFR SOA serial')
        hosts = service_hosts(fx['services'], 'dotters.network')
        check(HOST_IN_ZONE in hosts and len(hosts) > 20, 'precondition: hosts %r' % hosts)
        body = recs[1:-1]
        got_static = sorted(r for r in body if r[0] not in hosts)
        want_static = sorted((s['qname'], s['qtype'], expected_rdata(s['qtype'], s['content']),
                              s['ttl']) for s in static
                             if (s['qname'] == 'dotters.network'
                                 or s['qname'].endswith('.dotters.network')) and not is_acme(s))
        check(got_static == want_static, 'AXFR dotters.network: static records differ: '
              'missing %r, unexpected %r' % (sorted(set(want_static) - set(got_static)),
                                              sorted(set(got_static) - set(want_static))))
        check(not [r for r in body if 'http://' in r[2] or 'https://' in r[2]],
              'AXFR serves a raw ACME URL (BEHAVIOR §5)')
        members = fx['members']
        v4 = {m['Service']['ServiceIPv4'] for m in members.values()
              if m['Service']['Active'] == 1 and not m.get('Override')}
        v6 = {SYNTHETIC_IPV6[k] for k, m in members.items()
              if k in SYNTHETIC_IPV6 and m['Service']['Active'] == 1 and not m.get('Override')}
        for host in hosts:
            a = {r[2] for r in body if r[0] == host and r[1] == 'A'}
            aaaa = {r[2] for r in body if r[0] == host and r[1] == 'AAAA'}
            check(a and a <= v4, 'AXFR %s A %r: empty or not member addresses %r'
                  % (host, sorted(a), sorted(v4)))
            check(aaaa and aaaa <= v6, 'AXFR %s AAAA %r: empty or not member addresses %r'
                  % (host, sorted(aaaa), sorted(v6)))
            check(not [r for r in body if r[0] == host and r[1] not in ('A', 'AAAA')],
                  'AXFR %s has records other than A/AAAA' % host)
        check(not [r for r in body if not (r[0] == 'dotters.network'
                                           or r[0].endswith('.dotters.network'))],
              'AXFR dotters.network has out-of-zone records')


def test_zone_data_abi3():
    check_zone_data(3)


def test_zone_data_abi5():
    check_zone_data(5)


# ---- 3. table replacement ----------------------------------------------------------------

_TWO = {}


def two_tables():
    """(online table, table with London's nearest member offline, that member)."""
    if _TWO:
        return _TWO['a'], _TWO['b'], _TWO['member']
    fx = fixture()
    a = fx['table']
    member = ibptest.lookup(a, HOST_IN_ZONE, LONDON)['answers'][0]['member']
    b = fx['ws'].build_ok(fx['cfg'], results=ibptest.snapshot(
        site=[ibptest.site_group([ibptest.result(member, False)])]))
    check(ibptest.lookup(b, HOST_IN_ZONE, LONDON)['answers'][0]['member'] != member,
          'precondition: marking %s offline does not change London\'s answer' % member)
    _TWO.update(a=a, b=b, member=member)
    return a, b, member


def served_path(tag):
    d = fixture()['ws'].path('served-' + tag)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, 'routing.tbl')


def london_answer(p, timeout=3):
    return pdnsfix.a_records(p.query(HOST_IN_ZONE, 'A', ecs=LONDON + '/32', timeout=timeout))


def check_replacement(abi):
    a, b, _ = two_tables()
    want_a = expected_of(ibptest.lookup(a, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    want_b = expected_of(ibptest.lookup(b, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    served = served_path('replace%d' % abi)
    pdnsfix.install_table(served, a)
    with pdnsfix.Pdns(served, abi=abi) as p:
        eq(london_answer(p), want_a, 'answer from the first table')
        for src, want in ((b, want_b), (a, want_a), (b, want_b)):
            pdnsfix.install_table(served, src)
            t0 = time.monotonic()
            got = pdnsfix.wait_until(lambda: london_answer(p) == want, REFRESH_LIMIT + 0.5)
            took = time.monotonic() - t0
            check(got and took <= REFRESH_LIMIT,
                  'ABI %d: after renaming %s into place the answer is %r, not %r, %.2fs later'
                  % (abi, os.path.basename(src), london_answer(p), want, took))


def test_table_replacement_abi3():
    check_replacement(3)


def test_table_replacement_abi5():
    check_replacement(5)


STRESS_CLIENTS = [LONDON + '/32', LONDON + '/24', LONDON + '/30', '89.160.20.112/32',
                  '89.160.20.0/24', MILTON + '/32', '175.16.199.0/24',
                  '2001:218::1/128', '2001:218::/48', '2a02:d000::1/56', '2a02:d3c0::1/128']


def test_replacement_under_load():
    """20 renames per second while 10,000 queries run: every answer is one of
    the two tables' answers for that client; no timeout, no SERVFAIL."""
    a, b, _ = two_tables()
    valid = {}
    for ecs in STRESS_CLIENTS:
        valid[ecs] = set()
        for t in (a, b):
            addrs, scope = expected_of(ibptest.lookup(t, HOST_IN_ZONE, '127.0.0.1', 'A', ecs))
            valid[ecs].add((tuple(addrs), scope))
    check(len(valid[LONDON + '/32']) == 2, 'precondition: London has one answer in both tables')
    served = served_path('load')
    pdnsfix.install_table(served, a)
    stop = threading.Event()
    renames = [0]
    rename_errors = []

    tables = []
    for path in (b, a):
        with open(path, 'rb') as f:
            tables.append(f.read())

    # Which table each rename installs is random (seeded), not alternating: b, a,
    # b, a every 50 ms is a 100 ms cycle, the coprocess's check interval, and a
    # coprocess whose checks fell on the same phase every time saw one table only.
    pick = random.Random(7)

    def renamer():
        try:
            t0 = time.monotonic()
            while not stop.is_set():
                pdnsfix.install_table(served, data=tables[pick.randrange(2)], durable=False)
                renames[0] += 1
                stop.wait(max(0.0, t0 + renames[0] * 0.05 - time.monotonic()))   # 20 per second
        except Exception as e:  # noqa: BLE001 - reported below
            rename_errors.append(repr(e))

    total, workers, deadline = 10000, 4, time.monotonic() + 60
    fails, seen = [], {}
    lock = threading.Lock()
    with pdnsfix.Pdns(served, abi=5) as p:
        def client(w):
            rnd = random.Random(w)
            for i in range(w, total, workers):
                if time.monotonic() > deadline:
                    with lock:
                        fails.append((i, 'not finished within 60 s'))
                    return
                ecs = STRESS_CLIENTS[rnd.randrange(len(STRESS_CLIENTS))]
                try:
                    r = p.query(HOST_IN_ZONE, 'A', ecs=ecs, timeout=2)
                except Exception as e:  # noqa: BLE001 - a timeout is a failure
                    with lock:
                        fails.append((i, ecs, 'no answer: %r' % e))
                    continue
                got = (tuple(pdnsfix.a_records(r)), pdnsfix.ecs_scope(r))
                with lock:
                    if rcode_name(r) != 'NOERROR' or got not in valid[ecs]:
                        fails.append((i, ecs, rcode_name(r), got, sorted(valid[ecs])))
                    seen.setdefault(ecs, set()).add(got)
        rt = threading.Thread(target=renamer, daemon=True)
        rt.start()
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1, deadline - time.monotonic() + 5))
        elapsed = time.monotonic() - t0
        stop.set()
        rt.join(5)
        check(not any(t.is_alive() for t in threads), 'query threads hang')
        loads = len(p.log_lines('loaded from'))
    check(not rename_errors, 'renaming failed: %s' % rename_errors)
    check(not fails, 'under 20 renames/s: %s' % first_failures(fails))
    check(renames[0] >= 20 * elapsed * 0.8, 'only %d renames in %.1fs' % (renames[0], elapsed))
    check(len(seen.get(LONDON + '/32', ())) == 2,
          'London saw only %r: the swap was not exercised under load (%d table loads logged)'
          % (seen.get(LONDON + '/32'), loads))
    print('  %d queries in %.1fs, %d renames, %d table loads'
          % (total, elapsed, renames[0], loads), flush=True)


# ---- 4. corrupt tables, no table -----------------------------------------------------------

def corruptions(good):
    with open(good, 'rb') as f:
        data = f.read()
    rnd = random.Random(4)
    mid = len(data) // 2
    flipped = bytearray(data)
    for i in range(mid, mid + 64):
        flipped[i] ^= 0x5A
    return [('truncated', data[:mid]),
            ('random garbage', rnd.randbytes(len(data))),
            ('64 corrupted bytes', bytes(flipped)),
            ('empty', b'')]


REJECT_MARK = 'rejected'


def london_answers_for(p, seconds):
    """(rcode, A records) of London's query, every 30 ms for `seconds`."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        r = p.query(HOST_IN_ZONE, 'A', ecs=LONDON + '/32')
        out.append((rcode_name(r), pdnsfix.a_records(r)))
        time.sleep(0.03)
    return out


def test_corrupt_table_keeps_old_answers():
    """Each corrupt table renamed into place: the old answers go on, the
    rejection is logged once per coprocess; a valid table after them is served."""
    a, b, _ = two_tables()
    want_a = expected_of(ibptest.lookup(a, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    want_b = expected_of(ibptest.lookup(b, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    served = served_path('corrupt')
    pdnsfix.install_table(served, a)
    with pdnsfix.Pdns(served, abi=3) as p:
        eq(london_answer(p), want_a, 'answer from the good table')
        for kind, data in corruptions(a):
            before = len(p.log_lines(REJECT_MARK))
            pdnsfix.install_table(served, data=data)
            got = london_answers_for(p, REFRESH_LIMIT + 0.3)
            bad = [g for g in got if g != ('NOERROR', want_a)]
            check(not bad, '%s table renamed into place: %d of %d answers not from the old '
                  'table, e.g. %r' % (kind, len(bad), len(got), bad[:3]))
            logged = len(p.log_lines(REJECT_MARK)) - before
            npids = len(p.coprocess_pids())
            check(1 <= logged <= npids, '%s table: %d rejection lines logged by %d coprocesses '
                  '(want one per coprocess that looked):\n%s'
                  % (kind, logged, npids, '\n'.join(p.log_lines(REJECT_MARK)[-6:])))
            london_answers_for(p, 0.5)
            eq(len(p.log_lines(REJECT_MARK)) - before, logged,
               '%s table: rejection lines after 0.5 s more (logged once, not per check)' % kind)
        pdnsfix.install_table(served, b)
        check(pdnsfix.wait_until(lambda: london_answer(p) == want_b, REFRESH_LIMIT),
              'a valid table after corrupt ones is not served within %ss' % REFRESH_LIMIT)


def test_corrupt_table_burst_keeps_old_answers():
    """Corrupt tables renamed into place faster than the check interval (a
    sidecar publishing twice in a row): still the old answers. (On ext4 a new
    file here reuses the inode of a rejected one.)"""
    a, _, _ = two_tables()
    want_a = expected_of(ibptest.lookup(a, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    served = served_path('burst')
    pdnsfix.install_table(served, a)
    with pdnsfix.Pdns(served, abi=3) as p:
        eq(london_answer(p), want_a, 'answer from the good table')
        for rnd in range(5):
            for kind, data in corruptions(a)[:2]:
                pdnsfix.install_table(served, data=data)
            got = london_answers_for(p, 0.4)
            bad = [g for g in got if g != ('NOERROR', want_a)]
            check(not bad, 'burst %d of corrupt tables: %d of %d answers not from the old '
                  'table, e.g. %r; log:\n%s' % (rnd + 1, len(bad), len(got), bad[:3],
                                                 '\n'.join(p.logtext().splitlines()[-6:])))


def test_no_table_at_start():
    a, _, _ = two_tables()
    want = expected_of(ibptest.lookup(a, HOST_IN_ZONE, '127.0.0.1', 'A', LONDON + '/32'))[0]
    served = served_path('missing')
    if os.path.exists(served):
        os.unlink(served)
    with pdnsfix.Pdns(served, abi=5) as p:     # HELO completed: pdns answers
        for name, rtype in ((HOST_IN_ZONE, 'A'), ('dotters.network', 'SOA'),
                            (HOST_OWN_APEX, 'AAAA')):
            eq(rcode_name(p.query(name, rtype, ecs=LONDON + '/32')), 'REFUSED',
               'no table: %s %s' % (name, rtype))
        pdnsfix.install_table(served, a)
        t0 = time.monotonic()
        got = pdnsfix.wait_until(lambda: london_answer(p) == want, REFRESH_LIMIT + 1)
        took = time.monotonic() - t0
        check(got and took <= REFRESH_LIMIT + 0.2, 'table renamed into place: answer %r after '
              '%.2fs (want %r within ~%ss)' % (london_answer(p), took, want, REFRESH_LIMIT))
        eq(check_soa(p.query('dotters.network', 'SOA'), 'answer', 'dotters.network',
                     fixture()['build_time'], 'SOA after the table appeared').serial,
           fixture()['build_time'], 'serial')


# ---- 5. hostile input on the coprocess's stdin ---------------------------------------------------

VALID_Q = (b'Q\t%s\tIN\tANY\t1\t%s\t127.0.0.1\t%s/32\n'
           % (HOST_IN_ZONE.encode(), LONDON.encode(), LONDON.encode()))
VALID_SOA = b'Q\tdotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0\n'


def garbage(rnd, size, newlines):
    """size random bytes; with newlines, no line starts like a request
    (Q, HELO, AXFR, CMD), so each is malformed for sure."""
    data = bytearray(rnd.randbytes(size))
    if not newlines:
        return bytes(data.replace(b'\n', b'x'))
    data[-1] = 0x0A
    if data[0] in b'QHAC':
        data[0] = 0x23
    i = data.find(b'\n')
    while 0 <= i < len(data) - 1:
        if data[i + 1] in b'QHAC':
            data[i + 1] = 0x23
        i = data.find(b'\n', i + 1)
    return bytes(data)


def hostile_lines(abi):
    host = HOST_IN_ZONE.encode()
    return [
        b'x' * (1 << 20) + b'\n',                                      # 1 MB line
        b'Q\t' + host + b'\tIN\tA' + b'\t' * 70000 + b'1\n',           # 70 kB of tabs
        b'Q\t' + host + b'\tIN\tA\n',                                  # missing fields
        b'Q\t' + host + b'\tIN\tSOA\t-1\n',                            # SOA, missing fields
        b'Q\n', b'\n', b'\r\n', b'\t\t\t\n', b'END\n', b'FAIL\n', b'DATA\t0\t1\tx\n',
        b'Q\t' + host + b'\tIN\tA\tabc\t' + LONDON.encode() + b'\t0.0.0.0\t0.0.0.0/0\n',
        b'Q\t' + host + b'\tIN\tA\t99999999999999999999\t1.2.3.4\t0.0.0.0\t1.2.3.4/32\n',
        b'Q\t' + host + b'\tIN\tA\t1\tnot-an-ip\t0.0.0.0\t0.0.0.0/0\n',
        b'Q\t' + host + b'\tIN\tA\t1\t1.2.3.4\t0.0.0.0\t1.2.3.4/33\n',
        b'Q\t' + host + b'\tCH\tA\t1\t1.2.3.4\t0.0.0.0\t1.2.3.4/32\n',
        b'Q\t' + host + b'\tIN\tA\t1\t1.2.3.4\t0.0.0.0\t1.2.3.4/32\textra\tfields\n',
        b'Q\tpolka\x00dot.dotters.network\tIN\tA\t1\t1.2.3.4\t0.0.0.0\t1.2.3.4/32\n',
        b'Q\t' + host + b'\tIN\tA\t1\t1.2.3.4\x00\t0.0.0.0\t1.2.3.4/32\n',
        b'\x00\x00\x00\n',
        b'\xff\xfe\xc3\x28' * 100 + b'\n',
        b'AXFR\tnot-a-number\n', b'AXFR\t2147483647\n', b'AXFR\n',
        b'q\t' + host + b'\tIN\tA\t1\t1.2.3.4\t0.0.0.0\t1.2.3.4/32\n',  # lower-case tag
    ] + ([b'CMD\tstatus\n'] if abi < 5 else [])


def check_hostile(abi):
    fx = fixture()
    table = fx['table']
    with pdnsfix.Coproc(table) as fresh:
        check(fresh.helo(abi).startswith(b'OK\t'), 'fresh coprocess: HELO not OK')
        fresh.send(VALID_Q + VALID_SOA)
        want_q = fresh.read_answer()
        want_soa = fresh.read_answer()
    check(len(want_q) >= 2 and want_q[0].startswith(b'DATA\t'),
          'fresh coprocess: no DATA for %r: %r' % (VALID_Q, want_q))
    want_addr = ibptest.lookup(table, HOST_IN_ZONE, LONDON)['answers']
    check(any(l.endswith(b'\t' + want_addr[0]['address'].encode()) for l in want_q),
          'fresh coprocess answer %r lacks the lookup address %s' % (want_q, want_addr))
    check(want_soa[0].startswith(b'DATA\t0\t1\tdotters.network\tIN\tSOA\t'),
          'fresh coprocess SOA answer %r' % want_soa)

    rnd = random.Random(5)
    batches = [(name, [line]) for line in hostile_lines(abi) for name in [repr(line[:40])]]
    g1 = garbage(rnd, 10 << 20, newlines=True)
    batches.append(('10 MB garbage with %d newlines' % g1.count(b'\n'), [g1]))
    batches.append(('10 MB garbage without newline', [garbage(rnd, 10 << 20, False) + b'\n']))
    answered = 0
    with pdnsfix.Coproc(table) as c:
        check(c.helo(abi).startswith(b'OK\t'), 'HELO\\t%d not answered OK' % abi)
        for what, chunks in batches:
            data = b''.join(chunks)
            nlines = data.count(b'\n')
            c.send(data, timeout=30)
            for i in range(nlines):
                try:
                    line = c.read_line(timeout=10)
                except AssertionError as e:
                    raise AssertionError('%s: answer %d of %d: %s' % (what, i + 1, nlines, e))
                check(line in (b'FAIL', b'END'), '%s: answer %d of %d is %r, not FAIL or END'
                      % (what, i + 1, nlines, line[:200]))
            answered += nlines
            # Exactly one answer per bad line: in step for the next request.
            c.send(VALID_SOA)
            got = c.read_answer()
            eq(got, want_soa, '%s: the SOA request after it (extra or missing answer lines?)'
               % what)
            check(c.proc.poll() is None, '%s: ibpdns-pipe exited (%s)' % (what, c.proc.poll()))
        c.send(VALID_Q)
        eq(c.read_answer(), want_q, 'valid Q after all the bad input: same bytes as a fresh '
                                    'coprocess')
        eq(c.pending(0.3), b'', 'unexpected extra output')
        check(c.proc.poll() is None, 'ibpdns-pipe exited: %s' % c.proc.poll())
        t0 = time.monotonic()
        rc = c.close(timeout=5)
        check(rc is not None, 'ibpdns-pipe did not exit within 5 s after stdin closed')
        eq(rc, 0, 'exit status after stdin closed')
        check(time.monotonic() - t0 < 5, 'slow exit')
        err = c.stderr_text()
        check(len(err) < 64 * 1024, 'stderr floods: %d bytes for the bad input' % len(err))
    print('  ABI %d: %d bad lines (%d batches), one FAIL/END each, then in step'
          % (abi, answered, len(batches)), flush=True)


def test_hostile_stdin_abi3():
    check_hostile(3)


def test_hostile_stdin_abi5():
    check_hostile(5)


# ---- 6. no orphaned coprocesses -----------------------------------------------------------------

def test_no_orphans_4x4():
    a = fixture()['table']
    for run in range(3):
        served = served_path('orphans%d' % run)
        shutil.copyfile(a, served)
        p = pdnsfix.Pdns(served, abi=3, settings={'receiver-threads': '4',
                                                    'distributor-threads': '4',
                                                    'reuseport': 'yes'})
        try:
            for ecs in (LONDON + '/32', MILTON + '/32', '2001:218::1/128'):
                eq(rcode_name(p.query(HOST_IN_ZONE, 'A', ecs=ecs)), 'NOERROR', 'query')
            running = len(p.coprocess_pids())
            check(running >= 16, 'run %d: only %d coprocesses with 4x4 threads' % (run, running))
        finally:
            p.stop()
        pdnsfix.wait_until(lambda: not p.coprocess_pids(), 2.0)
        left = p.coprocess_pids()
        if left:
            for pid in left:               # ours to clean up (matched by this run's table path)
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        check(not left, 'run %d: %d of %d ibpdns-pipe processes still alive 2 s after '
              'pdns_server stopped: %r' % (run, len(left), running, left))


# ---- 7. production cache profile ---------------------------------------------------------------------

def test_production_profile_scoped_answers():
    table = fixture()['table']
    clients = [LONDON, MILTON, '2001:218::1', '89.160.20.112']
    want_ecs = {c: expected_of(ibptest.lookup(table, HOST_IN_ZONE, '127.0.0.1', 'A',
                                              '%s/%d' % (c, 128 if ':' in c else 32)))
                for c in clients}
    want_remote = {c: expected_of(ibptest.lookup(table, HOST_IN_ZONE, c, 'A')) for c in clients}
    check(len({tuple(v[0]) for v in want_ecs.values()}) >= 2,
          'precondition: the clients all get the same answer %r' % want_ecs)
    with pdnsfix.Pdns(table, abi=3, settings=pdnsfix.PRODUCTION) as p:
        fails = []
        for rnd in range(3):
            for c in clients:
                ecs = '%s/%d' % (c, 128 if ':' in c else 32)
                r = p.query(HOST_IN_ZONE, 'A', ecs=ecs)
                got = (pdnsfix.a_records(r), pdnsfix.ecs_scope(r))
                if got != want_ecs[c]:
                    fails.append(('round %d ecs %s' % (rnd, ecs), got, want_ecs[c]))
                # Same bytes from every client: only the remote differs.
                r = p.query(HOST_IN_ZONE, 'A', remote=c)
                if pdnsfix.a_records(r) != want_remote[c][0]:
                    fails.append(('round %d remote %s' % (rnd, c), pdnsfix.a_records(r),
                                  want_remote[c][0]))
        # Static data is cacheable and still right.
        eq(texts(rrset(p.query('dns-01.dotters.network', 'A'), 'dns-01.dotters.network', 'A')),
           ['192.96.202.179'], 'static A with caches on')
    check(not fails, 'production profile: a client got another client\'s answer: %s'
          % first_failures(fails))


# ---- 8. Routing.ApexSoaInAny: PowerDNS's answers do not depend on it ---------------------------

def dns_view(resp):
    """What a client sees: rcode, flags, and every section as sorted text."""
    def section(rrsets):
        return sorted('%s %d %s %s' % (rs.name.to_text().lower(), rs.ttl,
                                       dns.rdatatype.to_text(rs.rdtype), rd.to_text())
                      for rs in rrsets for rd in rs)
    return (rcode_name(resp), resp.flags & (dns.flags.AA | dns.flags.TC), section(resp.answer),
            section(resp.authority), section(resp.additional))


def test_apex_soa_in_any_is_invisible_to_clients():
    fx = fixture()
    ws = fx['ws']
    cfg = ws.node_config(None, None, None, routing={'ApexSoaInAny': True}, name='node-soa.json')
    table = ws.build_ok(cfg)
    eq(ibptest.table_json('info', table)['apex_soa_in_any'], True, 'info: apex_soa_in_any')
    eq(ibptest.table_json('info', fx['table'])['apex_soa_in_any'], False, 'info: the default')
    # The same build second for both, so the SOA serials compare equal.
    want_serial = fx['build_time']
    got_serial = ibptest.table_json('info', table)['build_time']
    # ANY over UDP only gets TC from PowerDNS (any-to-tcp): ANY goes over TCP.
    questions = [('dotters.network', 'ANY', True), (HOST_OWN_APEX, 'ANY', True),
                 (HOST_IN_ZONE, 'ANY', True), ('dotters.network', 'SOA', False),
                 ('dotters.network', 'NS', False), ('dotters.network', 'MX', False),
                 (HOST_OWN_APEX, 'A', False), (HOST_OWN_APEX, 'MX', False),
                 ('nothere.dotters.network', 'A', False), ('nothere.' + HOST_OWN_APEX, 'A', False)]
    serial_text = ' %d ' % got_serial
    for profile, settings in (('caches off', None), ('production', pdnsfix.PRODUCTION)):
        views = []
        for tbl in (fx['table'], table):
            with pdnsfix.Pdns(tbl, abi=3, settings=settings) as p:
                views.append([dns_view(p.query(name, rtype, ecs=LONDON + '/32', tcp=tcp))
                              for name, rtype, tcp in questions])
        # views[0]: the default (no SOA in ANY); views[1]: ApexSoaInAny true.
        for (name, rtype, _), without, with_soa in zip(questions, *views):
            with_soa = tuple(s if not isinstance(s, list) else
                             sorted(x.replace(serial_text, ' %d ' % want_serial) for x in s)
                             for s in with_soa)
            eq(without, with_soa, '%s: %s %s with and without the apex SOA in ANY'
               % (profile, name, rtype))
        any_apex = views[0][0]
        check([x for x in any_apex[2] if ' SOA ' in x], '%s: ANY dotters.network over TCP has no '
              'SOA: PowerDNS did not add its own: %r' % (profile, any_apex))


if __name__ == '__main__':
    ibptest.main(globals())
