#!/usr/bin/python3
"""`ibpdns-table diff OLD NEW` (issue 17): two tables built from configs that
differ by one member's coordinates (Bravo: Stockholm, then Tokyo). The moves
it reports must equal two independent counts made here:

- the same networks: both tables' `dump` (each host/family's largest
  prefixes with one answer) intersected in Python, split at ::/96, counted
  as the diff defines it (README, `ibpdns-table diff`);
- the same address space from the City database's own networks: every
  located network of MaxMind's test data, less its more specific networks,
  looked up in both tables with `lookup --batch`.

Identical tables give no moves; new and gone hosts, members and zones are
listed; a corrupt or missing table is a one-line error and exit 2; --text
names the top move first."""
import ipaddress
import json
import os
import socket
import subprocess
import time

import ibptest
from ibptest import check, eq, member, members, service, static_record

GEOLITE = os.path.join(ibptest.SRC, 'var', 'geoip', 'GeoLite2-City.mmdb')
HOST = 'a.example.net'
SERVICES = {'SvcA': service('wss://a.example.net')}
STATIC = [static_record('example.net', 'NS', 'ns1.example.net.'),
          static_record('ns1.example.net', 'A', '192.0.2.53')]
STOCKHOLM, TOKYO = (59.33, 18.07), (35.68, 139.69)
V4_SPACE = 2 ** 32      # ::/96 in the 128-bit space
# The IPv4-alias ranges (placeholder answers in the table, not counted).
ALIASES = [ipaddress.ip_network(n) for n in
           ('::ffff:0:0/96', '64:ff9b::/96', '2001::/32', '2002::/16')]
WS = ibptest.Workspace()
TABLES = {}


def config_members(bravo, extra=False):
    """Alpha (London), Bravo (at bravo), Delta (New York); extra: Delta gone,
    Echo (Sydney) new."""
    pairs = [('Alpha', member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1', services=['SvcA'])),
             ('Bravo', member(bravo[0], bravo[1], '192.0.2.2', '2001:db8::2', services=['SvcA']))]
    if extra:
        pairs.append(('Echo', member(-33.87, 151.21, '192.0.2.5', '2001:db8::5',
                                     services=['SvcA', 'SvcB'])))
    else:
        pairs.append(('Delta', member(40.7128, -74.0060, '192.0.2.4', '2001:db8::4',
                                      services=['SvcA'])))
    return members(**dict(pairs))


def table(bravo, extra=False, mmdb=ibptest.CITY_MMDB):
    key = (bravo, extra, mmdb)
    if key not in TABLES:
        services = dict(SERVICES)
        if extra:
            services['SvcB'] = service('wss://b.example.org', name='svcb')
        name = 'node-%d.json' % len(TABLES)
        cfg = WS.node_config(config_members(bravo, extra), services, STATIC, name=name,
                             members_name='m-' + name, services_name='s-' + name,
                             static_name='st-' + name)
        TABLES[key] = WS.build_ok(cfg, mmdb=mmdb)
    return TABLES[key]


def diff(old, new, *extra):
    return ibptest.table_json('diff', old, new, *extra)


def reported(d, host=HOST):
    """{(type, clients, from, to): (networks, addresses)} and
    {(type, clients): (located networks, located addresses)} of a diff."""
    moves, located = {}, {}
    for m in d['moves']:
        if m['host'] != host:
            continue
        key = (m['type'], m['clients'], m['from'], m['to'])
        check(key not in moves, 'move listed twice: %r' % (key,))
        moves[key] = (m['networks'], int(m['addresses']))
        located[(m['type'], m['clients'])] = (m['located_networks'], int(m['located_addresses']))
    return moves, located


# ---- the same networks: both tables' dumps intersected ----------------------

def as_range(text):
    """A dump's network as [start, end) in the 128-bit space (IPv4 at ::/96).
    socket, not ipaddress: a GeoLite2 table has a million of them."""
    addr, length = text.split('/')
    v4 = ':' not in addr
    raw = socket.inet_pton(socket.AF_INET if v4 else socket.AF_INET6, addr)
    start = int.from_bytes(raw, 'big')
    return start, start + (1 << ((32 if v4 else 128) - int(length)))


def field(text, name):
    """The first string value of "name" in a dump line (its own JSON)."""
    key = '"%s":"' % name
    at = text.find(key)
    return None if at < 0 else text[at + len(key):text.index('"', at + len(key))]


def label(text):
    """The diff's name for a dump line's answer (README, `ibpdns-table diff`)."""
    kind = field(text, 'kind')
    if kind in ('unlocated', 'undef', 'none'):
        return kind
    if kind == 'failover-spread':
        return 'failover-spread:' + ','.join(a['member'] for a in json.loads(text)['answer'])
    return field(text, 'member') or 'none'


def dump_networks(tbl, host, families=('A', 'AAAA')):
    """{type: [(start, end, label)]} of host's policies, in address order."""
    out = subprocess.run([ibptest.TABLE_TOOL, 'dump', tbl], capture_output=True, text=True,
                         timeout=300)
    eq(out.returncode, 0, 'dump: ' + out.stderr[-300:])
    nets, current = {}, None
    for text in out.stdout.splitlines():
        if text.startswith('{"policy":') and '"hosts":' in text:
            line = json.loads(text)
            current = line['family'] if host in line['hosts'] and line['family'] in families \
                else None
            if current:
                nets[current] = []
        elif current:
            nets[current].append(as_range(field(text, 'network')) + (label(text),))
    for ranges in nets.values():
        ranges.sort()
    return nets


def split_v4(start, end):
    """A piece as the networks the diff counts: one holding ::/96 and more
    is cut into ::/96 and the prefixes beside it."""
    if start != 0 or end <= V4_SPACE:
        return [(start, end, end <= V4_SPACE)]
    pieces, size = [(0, V4_SPACE, True)], V4_SPACE
    while size < end:
        pieces.append((size, 2 * size, False))
        size *= 2
    return pieces


def count_pieces(old, new):
    """The diff's definition, independently: OLD's and NEW's networks
    intersected."""
    moves, located = {}, {}
    i = j = 0
    while i < len(old) and j < len(new):
        start, end = max(old[i][0], new[j][0]), min(old[i][1], new[j][1])
        frm, to = old[i][2], new[j][2]
        for s, e, v4 in split_v4(start, end):
            if 'undef' in (frm, to) or frm == to == 'unlocated':
                continue
            clients = 'ipv4' if v4 else 'ipv6'
            n, a = located.get(clients, (0, 0))
            located[clients] = (n + 1, a + (e - s))
            if frm != to:
                n, a = moves.get((clients, frm, to), (0, 0))
                moves[(clients, frm, to)] = (n + 1, a + (e - s))
        if old[i][1] == end:
            i += 1
        if new[j][1] == end:
            j += 1
    eq((i, j), (len(old), len(new)), 'both dumps end together')
    return moves, located


def counted_from_dumps(old_tbl, new_tbl, host=HOST, families=('A', 'AAAA')):
    old = dump_networks(old_tbl, host, families)
    new = dump_networks(new_tbl, host, families)
    moves, located = {}, {}
    for qtype in sorted(set(old) & set(new)):
        m, loc = count_pieces(old[qtype], new[qtype])
        moves.update({(qtype,) + k: v for k, v in m.items()})
        located.update({(qtype, k): v for k, v in loc.items()})
    return moves, located


# ---- the same address space: the City database's networks -----------------

def city_regions():
    """[(sample address, family, addresses)] for every located network of the
    test data: its addresses less those of its more specific networks."""
    with open(ibptest.CITY_JSON) as f:
        data = json.load(f)
    nets = []
    for entry in data:
        for text in entry:
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 6 and net.prefixlen >= 96 and int(net.network_address) < V4_SPACE:
                net = ipaddress.ip_network((int(net.network_address), net.prefixlen - 96))
            nets.append(net)
    out = []
    for text, addr, _lat, _lon, _cc in ibptest.located_networks():
        net = ipaddress.ip_network(text)
        if any(net.version == 6 and net.subnet_of(a) for a in ALIASES):
            continue
        inner = [n for n in set(nets) if n != net and n.version == net.version and n.subnet_of(net)]
        outer = [n for n in inner if not any(n != m and n.subnet_of(m) for m in inner)]
        out.append((addr, 'ipv%d' % net.version,
                    net.num_addresses - sum(n.num_addresses for n in outer)))
    return out


def batch_first(tbl, ips, qtype):
    out = subprocess.run([ibptest.TABLE_TOOL, 'lookup', tbl, HOST, '--batch', '--type', qtype],
                         input=''.join(ip + '\n' for ip in ips), capture_output=True,
                         text=True, timeout=300)
    eq(out.returncode, 0, 'lookup --batch: ' + out.stderr[-300:])
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    eq(len(rows), len(ips), 'lookup --batch answers')
    return [r['answers'][0]['member'] if r['answers'] else 'none' for r in rows]


def counted_from_city(old_tbl, new_tbl):
    """{(type, clients, from, to): addresses}, {(type, clients): addresses}."""
    regions = city_regions()
    ips = [r[0] for r in regions]
    moves, located = {}, {}
    for qtype in ('A', 'AAAA'):
        before, after = batch_first(old_tbl, ips, qtype), batch_first(new_tbl, ips, qtype)
        for (_ip, clients, size), frm, to in zip(regions, before, after):
            located[(qtype, clients)] = located.get((qtype, clients), 0) + size
            if frm != to:
                key = (qtype, clients, frm, to)
                moves[key] = moves.get(key, 0) + size
    return moves, located


# ---- tests ------------------------------------------------------------------------

def test_moves_are_the_networks_that_change_answer():
    old, new = table(STOCKHOLM), table(TOKYO)
    d = diff(old, new)
    moves, located = reported(d)
    check(any(k[1] == 'ipv4' for k in moves) and any(k[1] == 'ipv6' for k in moves),
          'IPv4 and IPv6 clients both move: %r' % sorted(moves))
    want_moves, want_located = counted_from_dumps(old, new)
    eq(moves, want_moves, 'moves (networks, addresses) against the dumps intersected')
    for key, total in located.items():
        eq(total, want_located[key], 'located networks and addresses of %r' % (key,))
    city_moves, city_located = counted_from_city(old, new)
    eq({k: a for k, (_n, a) in moves.items()}, city_moves,
       'moved addresses against the City networks looked up')
    for key, (_n, addresses) in located.items():
        eq(addresses, city_located[key], 'located addresses of %r' % (key,))
    for m in d['moves']:
        eq(m['network_share'], m['networks'] / m['located_networks'], 'network share')
    eq(d['new_hosts'] + d['gone_hosts'] + d['new_members'] + d['gone_members'], [],
       'no names come or go')


def test_identical_tables_give_nothing():
    old = table(STOCKHOLM)
    for new in (old, WS.build_ok(WS.node_config(config_members(STOCKHOLM), SERVICES, STATIC,
                                                name='again.json', members_name='m-again.json',
                                                services_name='s-again.json',
                                                static_name='st-again.json'))):
        d = diff(old, new)
        eq(d['moves'], [], 'moves between equal tables')
        eq([d[k] for k in ('new_hosts', 'gone_hosts', 'new_members', 'gone_members',
                           'new_zones', 'gone_zones')], [[]] * 6, 'names between equal tables')
    rc, out, err = ibptest.run_table('diff', old, old, '--text')
    eq((rc, out, err), (0, 'no client moves\n', ''), 'diff --text of equal tables')


def test_new_and_gone_names():
    old, new = table(STOCKHOLM), table(STOCKHOLM, extra=True)
    d = diff(old, new)
    eq(d['new_members'], ['Echo'], 'new members')
    eq(d['gone_members'], ['Delta'], 'gone members')
    eq(d['new_hosts'], ['b.example.org'], 'new hosts')
    eq(d['gone_hosts'], [], 'gone hosts')
    eq(d['new_zones'], ['b.example.org'], 'new zones (the host\'s apex)')
    back = diff(new, old)
    eq((back['gone_hosts'], back['gone_members'], back['new_members'], back['gone_zones']),
       (['b.example.org'], ['Echo'], ['Delta'], ['b.example.org']), 'the names the other way')
    # Delta's clients go to Alpha, Bravo or Echo, as the dumps say.
    eq(reported(d)[0], counted_from_dumps(old, new)[0], 'moves when members come and go')
    check(all(m['from'] == 'Delta' or m['to'] == 'Echo' for m in d['moves']),
          'only Delta\'s and Echo\'s clients move: %r' % d['moves'])


def test_corrupt_or_missing_table_is_one_line():
    good = table(STOCKHOLM)
    with open(good, 'rb') as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    bad = WS.write_text('bad.tbl', bytes(data))
    missing = WS.path('missing.tbl')
    for args, name in (((good, bad), bad), ((bad, good), bad), ((missing, good), missing),
                       ((good, missing), missing)):
        rc, out, err = ibptest.run_table('diff', *args)
        eq((rc, out), (2, ''), 'diff %s %s: exit status and stdout' % args)
        line = ibptest.one_error_line(err, 'diff %s %s' % args)
        check(name in line, 'the error names %s: %r' % (name, line))


def test_text_lists_the_top_move_first():
    old, new = table(STOCKHOLM), table(TOKYO)
    d = diff(old, new)
    rc, out, err = ibptest.run_table('diff', old, new, '--text')
    eq((rc, err), (0, ''), 'diff --text')
    lines = out.splitlines()
    eq(len(lines), len(d['moves']), 'one line per move')
    shares = [m['network_share'] for m in d['moves']]
    eq(shares, sorted(shares, reverse=True), 'moves by share, largest first')
    top = d['moves'][0]
    eq(lines[0].split(' (')[0], '%s %s: %.1f %% of located %s networks %s \u2192 %s'
       % (top['host'], top['type'], 100 * top['network_share'],
          'IPv6' if top['clients'] == 'ipv6' else 'IPv4', top['from'], top['to']),
       'the top move\'s line')


def test_full_geolite():
    """The same against the dumps on the full GeoLite2-City, if it is here:
    the A policy (AAAA shares its map), half a million networks a table."""
    if not os.path.exists(GEOLITE):
        print('skip: %s missing (scripts/deps fetches it)' % GEOLITE)
        return
    old, new = table(STOCKHOLM, mmdb=GEOLITE), table(TOKYO, mmdb=GEOLITE)
    started = time.monotonic()
    d = diff(old, new)
    took = time.monotonic() - started
    print('diff on GeoLite2-City: %.2f s, %d moves' % (took, len(d['moves'])))
    moves, located = reported(d)
    if os.environ.get('IBP_SANITIZE') != '1':
        check(took < 5, 'diff on GeoLite2-City took %.1f s' % took)
    want_moves, want_located = counted_from_dumps(old, new, families=('A',))
    eq({k: v for k, v in moves.items() if k[0] == 'A'}, want_moves,
       'moves against the dumps on GeoLite2-City')
    for key, total in located.items():
        if key[0] == 'A':
            eq(total, want_located[key], 'located networks and addresses of %r' % (key,))


ibptest.main(globals())
