#!/usr/bin/python3
"""Routing.Map (issue 16): gdnsd's hierarchical map (continent -> country ->
subdivisions -> city) over MaxMind's test database, through ibpdns-table:
lists, a default at every level, skip_level, subdivisions a map leaves out,
a list with nobody healthy falling back to the distance order; nets and
country overrides win over the map; bad input names the file and the JSON
path. Records used: 81.2.69.142 London (EU/GB/ENG), 2.125.160.216 Boxford
(EU/GB/ENG/WBK), 89.160.20.112 Linkoping (EU/SE/E), 216.160.83.56 Milton
(NA/US/WA), 175.16.199.1 Changchun (AS/CN/22)."""
import json
import os
import subprocess

import ibptest
from ibptest import (check, eq, member, members, one_error_line, result, service, site_group,
                     snapshot, static_record)

HOST = 'a.example.net'
MEMBERS = members(
    Alpha=member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1', services=['SvcA']),
    Bravo=member(48.8566, 2.3522, '192.0.2.2', '2001:db8::2', services=['SvcA']),
    Charlie=member(59.3293, 18.0686, '192.0.2.3', '2001:db8::3', services=['SvcA']),
    Delta=member(47.6062, -122.3321, '192.0.2.4', '2001:db8::4', services=['SvcA']),
)
SERVICES = {'SvcA': service('wss://a.example.net')}
STATIC = [static_record('example.net', 'NS', 'ns1.example.net.'),
          static_record('ns1.example.net', 'A', '192.0.2.53')]
WS = []
LONDON, BOXFORD, LINKOPING = '81.2.69.142', '2.125.160.216', '89.160.20.112'
MILTON, CHANGCHUN = '216.160.83.56', '175.16.199.1'


def down(*names):
    """Members down in both families."""
    return snapshot(site=[site_group([result(m, False, ipv6=v6) for m in names], ipv6=v6)
                          for v6 in (False, True)])


def build(routing, results=None, overrides=None):
    ws = ibptest.Workspace()
    WS.append(ws)
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing=routing, overrides=overrides)
    return ws.build_ok(cfg, results=results)


def build_map(m, results=None, overrides=None):
    return build({'Map': m}, results=results, overrides=overrides)


def look(table, ip, qtype='A'):
    r = ibptest.lookup(table, HOST, ip, qtype=qtype)
    return (r['answers'][0]['member'] if r['answers'] else None), r['how'], r['rule']


@ibptest.single_threaded
def test_continent_country_subdivision_city():
    t = build_map({'EU': ['Delta'], 'AS': ['Charlie']})
    eq(look(t, LONDON), ('Delta', 'map', 'map EU'), 'continent list')
    eq(look(t, LONDON, 'AAAA'), ('Delta', 'map', 'map EU'), 'AAAA too')
    eq(look(t, CHANGCHUN), ('Charlie', 'map', 'map AS'), 'another continent')
    eq(look(t, MILTON), ('Delta', 'nearest', 'nearest'), 'an unlisted continent: distance')
    t = build_map({'EU': {'SE': ['Bravo']}})
    eq(look(t, LINKOPING), ('Bravo', 'map', 'map EU/SE'), 'country under its continent')
    eq(look(t, LONDON), ('Alpha', 'nearest', 'nearest'), 'unlisted country: distance')
    t = build_map({'EU': {'GB': {'ENG': ['Charlie']}}})
    eq(look(t, LONDON), ('Charlie', 'map', 'map EU/GB/ENG'), 'subdivision')
    t = build_map({'eu': {'gb': {'eng': {'london': ['Delta']}}}})
    eq(look(t, LONDON), ('Delta', 'map', 'map eu/gb/eng/london'), 'city, keys any case')
    eq(look(t, BOXFORD), ('Alpha', 'nearest', 'nearest'), 'another city: distance')


@ibptest.single_threaded
def test_default_at_every_level():
    t = build_map({'default': ['Delta'],
                   'EU': {'default': ['Charlie'],
                          'GB': {'default': ['Bravo'], 'ENG': {'London': ['Alpha']}}}})
    eq(look(t, LONDON), ('Alpha', 'map', 'map EU/GB/ENG/London'), 'the city')
    eq(look(t, BOXFORD), ('Bravo', 'map', 'map EU/GB/default'), "the country's default")
    eq(look(t, LINKOPING), ('Charlie', 'map', 'map EU/default'), "the continent's default")
    eq(look(t, MILTON), ('Delta', 'map', 'map default'), 'the top default')
    eq(look(t, CHANGCHUN), ('Delta', 'map', 'map default'), 'the top default again')
    t = build_map({'EU': {'default': 'auto', 'SE': ['Delta']}, 'default': ['Charlie']})
    eq(look(t, LONDON), ('Alpha', 'nearest', 'nearest'), 'a default "auto": distance')


@ibptest.single_threaded
def test_batch_lookups_name_the_rules_single_lookups_do():
    # `lookup --batch` parses the table's map once for all its lines: each
    # line still names its own rule, as a single lookup does.
    t = build_map({'default': ['Delta'],
                   'EU': {'default': ['Charlie'],
                          'GB': {'default': ['Bravo'], 'ENG': {'London': ['Alpha']}}}})
    ips = [LONDON, BOXFORD, LINKOPING, MILTON, CHANGCHUN, '10.0.0.1', LONDON]
    out = subprocess.run([ibptest.TABLE_TOOL, 'lookup', t, HOST, '--batch'],
                         input=''.join(ip + '\n' for ip in ips), capture_output=True, text=True,
                         timeout=60)
    eq(out.returncode, 0, 'lookup --batch: ' + out.stderr[-500:])
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    eq(len(lines), len(ips), 'one answer per line')
    for ip, r in zip(ips, lines):
        got = (r['answers'][0]['member'] if r['answers'] else None), r['how'], r['rule']
        eq(got, look(t, ip), 'batch vs single lookup of %s' % ip)
    eq([r['rule'] for r in lines[:5]], ['map EU/GB/ENG/London', 'map EU/GB/default',
                                        'map EU/default', 'map default', 'map default'],
       'the rules in batch order')


@ibptest.single_threaded
def test_skip_level_and_subdivisions_left_out():
    t = build_map({'EU': {'GB': {'WBK': ['Delta'], 'Boxford': ['Charlie']}}})
    eq(look(t, BOXFORD), ('Delta', 'map', 'map EU/GB/WBK'), 'ENG left out of the path')
    t = build_map({'EU': {'GB': {'Boxford': ['Charlie']}}})
    eq(look(t, BOXFORD), ('Charlie', 'map', 'map EU/GB/Boxford'), 'a city under its country')
    t = build_map({'EU': {'GB': {'skip_level': True, 'ENG': ['Delta'], 'WBK': ['Charlie']}}})
    eq(look(t, BOXFORD), ('Charlie', 'map', 'map EU/GB/WBK'), 'skip_level skips ENG')
    eq(look(t, LONDON), ('Alpha', 'nearest', 'nearest'), 'skip_level: ENG is never keyed')
    t = build_map({'skip_level': True, 'GB': ['Delta']})
    eq(look(t, LONDON), ('Delta', 'map', 'map GB'), 'skip_level at the top: countries')
    t = build_map({'GB': ['Delta']})
    eq(look(t, LONDON), ('Alpha', 'nearest', 'nearest'), 'without it a country is no continent')


@ibptest.single_threaded
def test_list_exhausted_falls_back_to_distance():
    m = {'EU': ['Delta', 'Charlie']}
    eq(look(build_map(m, results=down('Delta')), LONDON),
       ('Charlie', 'map', 'map EU'), 'first listed down: the next listed')
    eq(look(build_map(m, results=down('Delta', 'Charlie')), LONDON),
       ('Alpha', 'map-fallback', 'map EU'), 'every listed down: the nearest')
    eq(look(build_map(m, results=down('Delta', 'Charlie', 'Alpha')), LONDON),
       ('Bravo', 'map-fallback', 'map EU'), 'and the next nearest')
    ws = ibptest.Workspace()
    WS.append(ws)
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC,
                         routing={'Map': {'EU': ['Delta']}, 'AnswersPerFamily': 2})
    r = ibptest.lookup(ws.build_ok(cfg), HOST, LONDON)
    eq([a['member'] for a in r['answers']], ['Delta', 'Alpha'], 'the list, then by distance')


@ibptest.single_threaded
def test_nets_and_overrides_beat_the_map():
    t = build({'Map': {'EU': ['Delta']}, 'Nets': {'81.2.69.0/24': ['Charlie']}})
    eq(look(t, LONDON), ('Charlie', 'net', 'net 81.2.69.0/24'), 'the net wins')
    eq(look(t, BOXFORD), ('Delta', 'map', 'map EU'), 'outside the net: the map')
    t = build_map({'EU': ['Delta']}, overrides={HOST: {'GB': {'memberName': 'Bravo'}}})
    eq(look(t, LONDON)[:2], ('Bravo', 'override'), 'the GB override wins')
    eq(look(t, LINKOPING), ('Delta', 'map', 'map EU'), 'Sweden: the map')


@ibptest.single_threaded
def test_a_map_change_rebuilds_the_classes():
    eq(look(build_map({'EU': {'GB': ['Delta']}}), LONDON)[0], 'Delta', 'GB listed')
    eq(look(build_map({'EU': {'GB': ['Charlie']}}), LONDON)[0], 'Charlie', 'GB listed again')


def deep(n):
    m = ['Delta']
    for i in reversed(range(n)):
        m = {'k%d' % i: m}
    return m


@ibptest.single_threaded
def test_bad_input_names_the_file_and_path():
    cases = [
        (5, '', 'expected a map object, got number'),
        ([], '', 'expected a map object, got array'),
        ('', '', 'empty file name'),
        ({'EU': {'DE': ['Nobody']}}, '.EU.DE[0]: ', '"Nobody" is not a member key'),
        ({'EU': {'DE': 3}}, '.EU.DE: ', 'got number'),
        ({'EU': {'DE': None}}, '.EU.DE: ', 'got null'),
        ({'EU': {'DE': True}}, '.EU.DE: ', 'got boolean'),
        ({'EU': {'DE': 'nearest'}}, '.EU.DE: ', 'neither "auto"'),
        ({'EU': {'DE': []}}, '.EU.DE: ', '0 member keys'),
        ({'EU': {'DE': ['Delta', 'Delta']}}, '.EU.DE[1]: ', 'listed twice'),
        ({'EU': {'default': {'DE': ['Delta']}}}, '.EU.default: ', 'not a map'),
        ({'EU': {'skip_level': 'yes'}}, '.EU.skip_level: ', 'expected a boolean'),
        ({'EU': ['Delta'], 'eu': ['Alpha']}, '.eu: ', 'keys match case-insensitively'),
        (deep(14), '.k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12: ',
         'nested deeper than continent, country, 10 subdivisions and city'),
    ]
    for m, path, why in cases:
        what = json.dumps(m)
        ws = ibptest.Workspace()
        WS.append(ws)
        rc, _, err, _ = ws.build(ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Map': m}))
        check(rc != 0, '%s: the build succeeded' % what)
        line = one_error_line(err, what)
        want = 'node.json: .Routing.Map%s' % (path if path else ': ')
        check(want in line and why in line, '%s: %r' % (what, line))
    build_map(deep(13))   # continent, country, ten subdivisions, city: accepted


@ibptest.single_threaded
def test_a_map_from_a_file():
    ws = ibptest.Workspace()
    WS.append(ws)
    ws.write_json('map.json', {'EU': {'GB': {'default': ['Charlie']}}})
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Map': 'map.json'})
    eq(look(ws.build_ok(cfg), LONDON), ('Charlie', 'map', 'map EU/GB/default'), 'file form')
    for m, want in [({'EU': {'GB': 3}}, 'map.json: .EU.GB: '),
                    ({'EU': {'GB': ['Nobody']}}, 'map.json: .EU.GB[0]: "Nobody" is not a member'),
                    ([1], 'map.json: .: expected a map object')]:
        ws.write_json('map.json', m)
        rc, _, err, _ = ws.build(cfg)
        line = one_error_line(err, json.dumps(m))
        check(rc != 0 and want in line, '%s: %r' % (json.dumps(m), line))
    cfg = ws.node_config(MEMBERS, SERVICES, STATIC, routing={'Map': 'missing.json'})
    rc, _, err, _ = ws.build(cfg)
    line = one_error_line(err, 'missing file')
    check(rc != 0 and 'node.json: .Routing.Map' in line and 'missing.json' in line,
          'missing file: %r' % line)


def route(sc, ip):
    code, _, body = sc.api('/route?name=%s&ip=%s' % (HOST, ip))
    eq(code, 200, '/route %s: %s' % (ip, body))
    r = json.loads(body)
    return (r['answers'][0]['member'] if r['answers'] else None), r['how'], r['rule']


def test_the_sidecar_routes_by_the_map_and_follows_its_changes():
    """/route's rule, and a change of the map alone (member sites unchanged)
    taking effect: the map is in the geo classes' fingerprint."""
    import pdnsfix
    from sidecarfix import Sidecar
    sc = Sidecar(start=False, reload=1, extra={'Routing': {'TablePath': 'routing.tbl',
                                                           'Map': {'EU': {'GB': ['Delta']}}}})
    sc.http.set('/members.json', json.dumps(MEMBERS).encode())
    sc.http.set('/services.json', json.dumps(SERVICES).encode())
    sc.http.set('/static.json', json.dumps(STATIC).encode())
    sc.start(ready_timeout=60)
    with sc:
        eq(route(sc, LONDON), ('Delta', 'map', 'map EU/GB'), 'the map')
        eq(route(sc, LINKOPING), ('Charlie', 'nearest', 'nearest'), 'outside it')
        gen = sc.generation()
        sc.config['Routing']['Map'] = {'EU': {'GB': {'ENG': {'London': ['Bravo']}},
                                              'default': ['Charlie']}}
        sc.write_config()
        gen = sc.wait_generation_above(gen, 30)
        eq(route(sc, LONDON), ('Bravo', 'map', 'map EU/GB/ENG/London'), 'the map changed')
        eq(route(sc, BOXFORD), ('Charlie', 'map', 'map EU/default'), 'a default')
        sc.config['Routing']['Map'] = {'EU': {'GB': ['Nobody']}}
        sc.write_config()
        want = 'node.json: .Routing.Map.EU.GB[0]: "Nobody" is not a member key'
        ok = pdnsfix.wait_until(lambda: sc.status()['table']['last_error'] == want, 30)
        check(ok, 'the fault is not in /status: %r' % sc.status()['table']['last_error'])
        eq(sc.generation(), gen, 'a table was published from the bad config')
        eq(route(sc, LONDON), ('Bravo', 'map', 'map EU/GB/ENG/London'), 'kept')
        # A map file, watched as a nets file is: an edit alone takes effect.
        path = os.path.join(sc.dir, 'map.json')
        for i, m in enumerate([{'EU': ['Charlie']}, {'EU': ['Alpha', 'Delta']}]):
            with open(path + '.tmp', 'w') as f:
                json.dump(m, f)
            os.rename(path + '.tmp', path)
            if i == 0:
                sc.config['Routing']['Map'] = 'map.json'
                sc.write_config()
            gen = sc.wait_generation_above(gen, 30)
            eq(route(sc, LONDON)[2], 'map EU', 'map file %d' % i)
            eq(route(sc, LONDON)[0], m['EU'][0], 'map file %d: its list' % i)


if __name__ == '__main__':
    ibptest.main(globals())
