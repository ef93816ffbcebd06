#!/usr/bin/python3
"""ibpdns-table: error handling of `build`, table integrity (`verify`,
`lookup` on damaged tables), build identity (generation, build time), and
the `info` and `dump` views.

Every failing build must exit 1 with exactly one stderr line
`ibpdns-table: <message>` naming the file and the fault, and must not create
the output table."""

import ipaddress
import json
import os
import subprocess
import re
import struct
import time

import ibptest
from ibptest import (check, eq, member, members, one_error_line, result, run_table, service,
                     site_group, snapshot, static_record)

LONDON = '81.2.69.142'

MEMBERS = members(
    Amforc=member(47.1449, 8.1551, '91.90.166.200', '2001:db8::1', services=['Polkadot']),
    Gatotech=member(9.936, -84.0965, '181.174.168.72', '', services=['Polkadot', 'Kusama']),
)
SERVICES = {
    'Polkadot': service('wss://polkadot.example.net', 'wss://rpc.example.net/polkadot'),
    'Kusama': service('wss://kusama.example.net', 'wss://rpc.example.net/kusama'),
}
STATIC = [static_record('example.net', 'NS', 'ns1.example.net.'),
          static_record('ns1.example.net', 'A', '192.0.2.53'),
          static_record('example.net', 'TXT', 'v=spf1 -all')]


def expect_build_error(ws, cfg, what, must_contain, mmdb=ibptest.CITY_MMDB, results=None,
                       max_len=None):
    """Builds cfg into a fresh path; requires exit 1, one stderr line that
    contains every string of must_contain (or matches it, for a compiled
    pattern), and no table. Returns the line."""
    out = ws.fresh()
    if results is not None and not isinstance(results, str):
        results = ws.write_json('results-input.json', results)
    before = set(os.listdir(ws.dir))
    rc, so, se, _ = ws.build(cfg, mmdb=mmdb, results=results, out=out)
    eq(rc, 1, '%s: exit status (stderr %r)' % (what, se[:300]))
    line = one_error_line(se, what)
    for s in must_contain:
        if hasattr(s, 'search'):
            check(s.search(line), '%s: error %r does not match %r' % (what, line[:400], s.pattern))
        else:
            check(s in line, '%s: error %r does not contain %r' % (what, line[:400], s))
    if max_len is not None:
        check(len(line) <= max_len, '%s: error line is %d bytes long' % (what, len(line)))
    check(not os.path.exists(out), '%s: a table was written' % what)
    left = set(os.listdir(ws.dir)) - before
    check(not left, '%s: files left behind: %r' % (what, sorted(left)))
    return line


def ws_with(members_obj=MEMBERS, services_obj=SERVICES, static_obj=STATIC, **kw):
    ws = ibptest.Workspace()
    return ws, ws.node_config(members_obj, services_obj, static_obj, **kw)


# ---- bad inputs ----------------------------------------------------------------

def test_good_synthetic_config_builds():
    ws, cfg = ws_with()
    out = ws.fresh()
    rc, so, se, _ = ws.build(cfg, out=out)
    eq(rc, 0, 'exit status (%s)' % se.strip())
    eq(se, '', 'stderr of a clean build')
    summary = json.loads(so)
    eq(summary['table'], out, 'summary table path')
    check(os.path.getsize(out) == summary['bytes'], 'summary bytes != file size')


def test_missing_members_file():
    ws, cfg = ws_with(members_obj=None)
    expect_build_error(ws, cfg, 'missing members file',
                       ['members_professional.json',
                        re.compile(r'(?i)no such file|not found|cannot open|missing')])


def test_invalid_json_members():
    ws, cfg = ws_with(members_obj=None)
    ws.write_text('members_professional.json', '{"Amforc": {"Details": {"Name": "Amforc"},')
    expect_build_error(ws, cfg, 'truncated JSON', ['members_professional.json',
                                                   re.compile(r'(?i)json')])
    ws.write_text('members_professional.json', '{"Amforc": 1,, }')
    expect_build_error(ws, cfg, 'invalid JSON', ['members_professional.json',
                                                 re.compile(r'(?i)json')])


def test_v1_members_json_rejected():
    ws = ibptest.Workspace()
    ws.write_json('services_rpc.json', SERVICES)
    ws.write_json('geodns-static.json', STATIC)
    cfg = ws.write_json('node.json', {'System': {'ConfigUrls': {
        'MembersConfig': os.path.join(ibptest.IBP_CONFIG, 'members.json'),
        'ServicesConfig': 'services_rpc.json', 'StaticDNSConfig': 'geodns-static.json'}}})
    expect_build_error(ws, cfg, 'v1 members.json', ['members.json',
                                                    re.compile(r'(?i)v1|legacy|v2')])


def test_latitude_out_of_range():
    mem = json.loads(json.dumps(MEMBERS))
    mem['Amforc']['Location']['Latitude'] = 95
    ws, cfg = ws_with(members_obj=mem)
    expect_build_error(ws, cfg, 'latitude 95', [
        'members_professional.json: .Amforc.Location.Latitude: 95 is not a latitude'])


def test_static_record_with_tab_or_newline():
    for bad, word in (('v=spf1\t-all', 'tab'), ('v=spf1\n-all', 'newline'),
                      ('v=spf1\0-all', None)):
        static = STATIC + [static_record('txt.example.net', 'TXT', 'ok'),
                           static_record('bad.example.net', 'TXT', bad)]
        ws, cfg = ws_with(static_obj=static)
        want = ['geodns-static.json']
        if word:
            want += [re.compile(r'\b4\b'), word]   # the index and the reason
        else:
            # NUL: jansson refuses \u0000 while parsing, before the index is
            # known; the file and the position are named.
            want.append(re.compile(r'(?i)nul|\\u0000'))
        expect_build_error(ws, cfg, 'static content %r' % bad, want)


def test_static_records_must_be_presentation_format():
    bad = [('A', '999.1.1.1', 'IPv4'), ('A', '', 'IPv4'), ('AAAA', '192.0.2.1', 'IPv6'),
           ('MX', 'mail.example.net.', 'MX'), ('SRV', '1 2 mail.example.net.', 'SRV'),
           ('CAA', '0 issue', 'CAA'), ('CNAME', 'a..b.', 'CNAME'), ('NS', '', 'NS'),
           ('BOGUS', 'x', 'BOGUS')]
    for qtype, content, word in bad:
        ws, cfg = ws_with(static_obj=STATIC + [static_record('r.example.net', qtype, content)])
        expect_build_error(ws, cfg, 'static %s %r' % (qtype, content),
                           ['geodns-static.json', '[3]', word])
    good = [('MX', '10 mail.example.net.'), ('SRV', '1 2 443 sip.example.net.'),
            ('CAA', '0 issue "letsencrypt.org"'), ('CNAME', 'target.example.net.'),
            ('PTR', 'host.example.net.'), ('TXT', '"quoted" text'), ('AAAA', '2001:db8::5')]
    ws, cfg = ws_with(static_obj=STATIC + [static_record('r.example.net', q, c) for q, c in good])
    table = ws.build_ok(cfg)
    recs = ibptest.lookup(table, 'r.example.net', LONDON)['records']
    eq(sorted((r['type'], r['content']) for r in recs), sorted(good), 'static records served')


def test_output_directory_missing():
    ws, cfg = ws_with()
    out = os.path.join(ws.dir, 'no', 'such', 'dir', 'routing.tbl')
    rc, so, se, _ = ws.build(cfg, out=out)
    eq(rc, 1, 'exit status')
    one_error_line(se, 'missing output directory')
    check(not os.path.exists(out), 'table written')


def test_country_db_is_not_a_city_db():
    ws, cfg = ws_with()
    line = expect_build_error(ws, cfg, 'Country mmdb', ['GeoIP2-Country-Test.mmdb', 'City'],
                              mmdb=os.path.join(ibptest.MAXMIND, 'GeoIP2-Country-Test.mmdb'))
    check_db_type_named(line, 'GeoIP2-Country')


def check_db_type_named(line, real_type):
    # The "database type '...'" message once printed metadata.database_type
    # after MMDB_close() had freed it (lib/geo/ibp_mmdb.c open_city_db): the
    # type must be the real one, not garbage bytes.
    m = re.search(r"type '([^']*)'", line)
    if m:
        eq(m.group(1), real_type, 'database type named in %r' % line)
    check(all(c.isprintable() for c in line), 'unprintable bytes in %r' % line)


def test_broken_mmdbs():
    ws, cfg = ws_with()
    types = {'GeoIP2-City-Test-Broken-Double-Format.mmdb': 'GeoIP2-City',
             'GeoIP2-City-Test-Invalid-Node-Count.mmdb': 'GeoIP2-City',
             'MaxMind-DB-test-broken-pointers-24.mmdb': 'Test',
             'MaxMind-DB-test-broken-search-tree-24.mmdb': 'Test'}
    failures = []
    for name, real_type in types.items():
        try:
            line = expect_build_error(ws, cfg, name, [name, re.compile(r'\.mmdb: \S')],
                                      mmdb=os.path.join(ibptest.MAXMIND, name))
            check_db_type_named(line, real_type)
        except AssertionError as e:
            failures.append(str(e))
    check(not failures, '; '.join(failures))


def test_damaged_city_mmdbs():
    # Our own damage to the good City database: truncated, and the search
    # tree overwritten so its records point past the data section.
    with open(ibptest.CITY_MMDB, 'rb') as f:
        good = f.read()
    ws, cfg = ws_with()
    half = ws.write_text('City-half.mmdb', good[:len(good) // 2])
    expect_build_error(ws, cfg, 'truncated City mmdb', ['City-half.mmdb'], mmdb=half)
    bad = bytearray(good)
    bad[64:4096] = b'\xff' * (4096 - 64)
    tree = ws.write_text('City-tree.mmdb', bytes(bad))
    expect_build_error(ws, cfg, 'City mmdb with a bad search tree', ['City-tree.mmdb'],
                       mmdb=tree)
    empty = ws.write_text('City-empty.mmdb', b'')
    expect_build_error(ws, cfg, 'empty mmdb', ['City-empty.mmdb'], mmdb=empty)


def lowercase_country_mmdb(ws):
    """The City test database with GB written "gb" (the one copy of the
    string in its data section; records point at it)."""
    import maxminddb
    meta = maxminddb.open_database(ibptest.CITY_MMDB).metadata()
    data_start = meta.node_count * meta.record_size * 2 // 8 + 16
    with open(ibptest.CITY_MMDB, 'rb') as f:
        good = f.read()
    tree, data = good[:data_start], good[data_start:]
    eq(data.count(b'\x42GB'), 1, 'copies of the string "GB" in the test database')
    path = ws.write_text('City-lower.mmdb', tree + data.replace(b'\x42GB', b'\x42gb'))
    eq(maxminddb.open_database(path).get(LONDON)['country']['iso_code'], 'gb',
       'the rewritten database')
    return path


def test_lowercase_country_codes_are_the_overrides_countries():
    # A database that spells a country "gb" routes it as the configs' "GB":
    # the walk (the table), the explanation (--mmdb) and the client classes.
    ws, cfg = ws_with(overrides={'polkadot.example.net': {'GB': {'memberName': 'Gatotech'}}})
    lower = lowercase_country_mmdb(ws)
    table = ws.build_ok(cfg, mmdb=lower)
    res = ibptest.lookup(table, 'polkadot.example.net', LONDON)
    eq([a['member'] for a in res['answers']], ['Gatotech'], 'London with GB overridden')
    eq(res['how'], 'override', 'how London is answered')
    why = ibptest.table_json('lookup', table, 'polkadot.example.net', LONDON, '--mmdb', lower)
    eq(why['location']['country'], 'GB', 'the explanation\'s country')
    eq(why['rule'], 'override', 'the explanation\'s rule')
    eq(ibptest.lookup(table, 'kusama.example.net', LONDON)['how'], 'nearest',
       'a host without the override')


def test_missing_mmdb():
    ws, cfg = ws_with()
    expect_build_error(ws, cfg, 'missing mmdb', ['nothere.mmdb'],
                       mmdb=os.path.join(ws.dir, 'nothere.mmdb'))


def test_hostile_5mb_member_name():
    # PRODUCT BUG: a 5 MB member name (as Details.Name or as the member key)
    # is accepted and produces a 5 MB table. Member names feed usage rows
    # (member_name VARCHAR(64), IBP-NODE §7.3) and every log line; the build
    # must refuse them. These assertions fail until it does.
    huge = 'X' * (5 * 1024 * 1024)
    by_name = json.loads(json.dumps(MEMBERS))
    by_name['Amforc']['Details']['Name'] = huge
    by_key = json.loads(json.dumps(MEMBERS))
    by_key[huge] = by_key.pop('Amforc')
    failures = []
    for what, mem in (('5 MB Details.Name', by_name), ('5 MB member key', by_key)):
        ws, cfg = ws_with(members_obj=mem)
        try:
            expect_build_error(ws, cfg, what, ['members_professional.json'], max_len=1024)
        except AssertionError as e:
            failures.append(str(e))
    check(not failures, '; '.join(failures))


def test_deeply_nested_json():
    ws, cfg = ws_with(members_obj=None)
    depth = 100000
    ws.write_text('members_professional.json',
                  '{"Amforc": {"Details": ' + '[' * depth + ']' * depth + '}}')
    expect_build_error(ws, cfg, 'deeply nested members', ['members_professional.json'])
    ws, cfg = ws_with(services_obj=None)
    ws.write_text('services_rpc.json', '{"a":' * depth + '1' + '}' * depth)
    expect_build_error(ws, cfg, 'deeply nested services', ['services_rpc.json'])


def test_bad_routing_settings():
    for routing, word in (({'AnswersPerFamily': 0}, 'AnswersPerFamily'),
                          ({'AnswersPerFamily': 9}, 'AnswersPerFamily'),
                          ({'AllDownPolicy': 'sometimes'}, 'AllDownPolicy')):
        ws, cfg = ws_with(routing=routing)
        expect_build_error(ws, cfg, 'Routing %r' % routing, ['node.json', word])


def test_invalid_results_file():
    ws, cfg = ws_with()
    bad = ws.write_text('results.json', '{"SiteResults": [')
    expect_build_error(ws, cfg, 'invalid results JSON', ['results.json'], results=bad)
    bad = ws.write_json('results2.json', snapshot(
        site=[site_group([result('Amforc', False, checktime='')])]))
    expect_build_error(ws, cfg, 'empty Checktime', ['results2.json', 'Checktime'], results=bad)


def test_unknown_config_keys_warned_known_keys_any_case():
    ws = ibptest.Workspace()
    ws.write_json('m.json', MEMBERS)
    ws.write_json('s.json', SERVICES)
    ws.write_json('st.json', STATIC)
    # Keys are matched case-insensitively (BEHAVIOR §1): no warning here.
    cfg = ws.write_json('node.json', {'system': {'configurls': {
        'membersconfig': 'm.json', 'SERVICESCONFIG': 's.json', 'StaticDnsConfig': 'st.json'}},
        'routing': {'answersperfamily': 2, 'TTL': 60}})
    rc, so, se, out = ws.build(cfg)
    eq((rc, se), (0, ''), 'build with lower-case keys')
    eq(ibptest.table_json('info', out)['ttl'], 60, 'routing.TTL honoured')
    eq(len(ibptest.lookup(out, 'polkadot.example.net', LONDON)['answers']), 2,
       'routing.answersperfamily honoured')
    # Unknown keys: reported (warning), not fatal.
    cfg = ws.write_json('node2.json', {'System': {'ConfigUrls': {
        'MembersConfig': 'm.json', 'ServicesConfig': 's.json', 'StaticDNSConfig': 'st.json'}},
        'Bogus': 1, 'Routing': {'Ttll': 5}})
    rc, so, se, out = ws.build(cfg)
    eq(rc, 0, 'build with unknown keys (%s)' % se.strip())
    for key in ('Bogus', 'Ttll'):
        check(any(key in l and 'warning' in l for l in se.splitlines()),
              'unknown key %s not reported: %r' % (key, se))


def test_lookup_bad_arguments():
    ws, table = good_table()
    for args in (('polkadot.example.net', 'not-an-ip'), ('polkadot.example.net', '1.2.3.4.5'),
                 ('polkadot.example.net', LONDON, '--ecs', '10.0.0.0/33'),
                 ('polkadot.example.net', LONDON, '--ecs', 'nonsense')):
        rc, so, se = run_table('lookup', table, *args)
        eq(rc, 1, 'lookup %r exit status' % (args,))
        one_error_line(se, 'lookup %r' % (args,))


# ---- damaged tables -----------------------------------------------------------------

def good_table():
    ws, cfg = ws_with()
    return ws, ws.build_ok(cfg)


def expect_refused(path, what):
    rc, so, se = run_table('verify', path)
    check(rc != 0, '%s: verify exit status %d' % (what, rc))
    rc, so, se = run_table('lookup', path, 'polkadot.example.net', LONDON)
    eq(rc, 1, '%s: lookup exit status (stdout %r)' % (what, so[:200]))
    one_error_line(se, what + ' lookup')
    eq(so, '', '%s: lookup printed an answer' % what)
    for cmd in ('info', 'dump'):
        rc, so, se = run_table(cmd, path)
        eq(rc, 1, '%s: %s exit status' % (what, cmd))
        one_error_line(se, '%s %s' % (what, cmd))


def test_intact_table_verifies():
    ws, table = good_table()
    rc, so, se = run_table('verify', table)
    eq(rc, 0, 'verify exit status (%s %s)' % (so, se))
    eq(json.loads(so)['ok'], True, 'verify ok')


def test_truncated_tables_refused():
    ws, table = good_table()
    with open(table, 'rb') as f:
        data = f.read()
    for cut, name in ((len(data) - 1, 'by 1 byte'), (len(data) // 2, 'by half'),
                      (100, 'to 100 bytes'), (0, 'to nothing')):
        expect_refused(ws.write_text('cut.tbl', data[:cut]), 'table truncated ' + name)
    expect_refused(ws.write_text('ext.tbl', data + b'\0'), 'table extended by 1 byte')


def test_bit_flips_refused():
    ws, table = good_table()
    with open(table, 'rb') as f:
        data = f.read()

    def flipped(pos, bit=0x01):
        b = bytearray(data)
        b[pos] ^= bit
        return ws.write_text('flip-%d.tbl' % pos, bytes(b))

    expect_refused(flipped(len(data) // 2, 0x10), 'bit flipped in the middle')
    expect_refused(flipped(40, 0x04), 'bit flipped in the header')
    # Every header byte, and bytes spread over the whole file: verify refuses.
    positions = list(range(0, 512)) + list(range(512, len(data), max(1, len(data) // 150)))
    bad = [p for p in positions
           if run_table('verify', flipped(p, 1 << (p % 8)))[0] == 0]
    check(not bad, 'verify accepted tables with a bit flipped at offsets %r' % bad[:20])


def test_missing_and_empty_table():
    ws, _ = good_table()
    expect_refused(os.path.join(ws.dir, 'absent.tbl'), 'missing table')
    expect_refused(ws.write_text('zero.tbl', b''), 'empty table')
    expect_refused(ws.write_text('text.tbl', b'hello world\n' * 100), 'not a table')


# ---- build identity ------------------------------------------------------------------

def test_build_twice_increases_serial_and_generation():
    ws, cfg = ws_with()
    out = ws.fresh()
    ws.build_ok(cfg, out=out)
    i1 = ibptest.table_json('info', out)
    ws.build_ok(cfg, out=out)
    i2 = ibptest.table_json('info', out)
    check(i2['build_time'] > i1['build_time'],
          'build_time (SOA serial) %r then %r' % (i1['build_time'], i2['build_time']))
    eq(i2['generation'], i1['generation'] + 1, 'generation')
    eq(i1['generation'], 1, 'first generation')
    ws.build_ok(cfg, out=out)
    i3 = ibptest.table_json('info', out)
    check(i3['build_time'] > i2['build_time'], 'third build_time')
    eq(i3['generation'], 3, 'third generation')


def old_format_table(path, generation, build_time):
    """The leading header fields of a table of format version 2, which this
    build cannot read: magic, version, endian, sizes, checksum, generation,
    build time."""
    head = (b'IBPDNSTB' + struct.pack('<IIIIQQQQ', 2, 0x01020304, 432, 14, 432, 0,
                                      generation, build_time))
    with open(path, 'wb') as f:
        f.write(head + bytes(432 - len(head)))


def test_build_over_an_older_format_continues_its_numbering():
    ws, cfg = ws_with()
    out = ws.fresh()
    future = int(time.time()) + 1000   # a serial ahead of the clock must still grow
    old_format_table(out, 41, future)
    rc, so, se = run_table('info', out)
    check(rc != 0 and 'format version 2' in se, 'info on the old table: %r' % se)
    ws.build_ok(cfg, out=out)
    info = ibptest.table_json('info', out)
    eq(info['generation'], 42, 'generation after the old table\'s 41')
    eq(info['build_time'], future + 1, 'build_time (SOA serial) after the old table\'s')
    eq(info['format_version'], 5, 'format version written')


def test_build_over_a_corrupt_table_starts_numbering_again():
    """A table of the current format is trusted only whole: a corrupt one's
    counters could be anything (here a generation that would wrap)."""
    ws, cfg = ws_with()
    out = ws.fresh()
    ws.build_ok(cfg, out=out)
    with open(out, 'r+b') as f:
        f.seek(40)                               # the header's generation
        f.write(struct.pack('<Q', 2 ** 64 - 1))  # the checksum no longer matches
    rc, so, se = run_table('verify', out)
    check(rc != 0 and 'checksum' in so, 'verify of the damaged table: %r' % so)
    ws.build_ok(cfg, out=out)
    eq(ibptest.table_json('info', out)['generation'], 1, 'generation after a corrupt table')


def test_failed_build_keeps_previous_table():
    ws, cfg = ws_with()
    out = ws.fresh()
    ws.build_ok(cfg, out=out)
    with open(out, 'rb') as f:
        before = f.read()
    ws.write_text('members_professional.json', '{')
    rc, so, se, _ = ws.build(cfg, out=out)
    eq(rc, 1, 'exit status of the failing build')
    with open(out, 'rb') as f:
        eq(f.read() == before, True, 'previous table unchanged after a failed build')


# ---- info and dump ---------------------------------------------------------------------

def test_info_lists_inputs_and_counts():
    ws, cfg = ws_with()
    res_path = ws.write_json('results.json', snapshot(site=[site_group([result('Amforc',
                                                                               True)])]))
    table = ws.build_ok(cfg, results=res_path)
    info = ibptest.table_json('info', table)
    files = {'node-config': cfg, 'members': ws.path('members_professional.json'),
             'services': ws.path('services_rpc.json'), 'static': ws.path('geodns-static.json'),
             'results': res_path, 'city-db': ibptest.CITY_MMDB}
    by_kind = {i['kind']: i for i in info['inputs']}
    eq(sorted(by_kind), sorted(files), 'input kinds')
    digests = set()
    for kind, path in files.items():
        i = by_kind[kind]
        eq(os.path.realpath(i['source']), os.path.realpath(path), kind + ' source')
        eq(i['bytes'], os.path.getsize(path), kind + ' bytes')
        check(re.fullmatch(r'[0-9a-f]{32}', i['xxh3_128']), '%s digest %r' % (kind, i['xxh3_128']))
        digests.add(i['xxh3_128'])
    eq(len(digests), len(files), 'distinct digests for distinct files')
    check('City' in by_kind['city-db']['detail'], 'city-db detail %r' % by_kind['city-db'])
    c = info['counts']
    eq(c['members'], 2, 'members count')
    eq(c['hosts'], 3, 'hosts count (polkadot, kusama, rpc)')
    eq(c['zones'], 1, 'zones count')
    eq([z['zone'] for z in info['zones']], ['example.net'], 'zones')
    eq(info['ttl'], 30, 'ttl')
    check(info['bytes'] == os.path.getsize(table), 'info bytes')
    check(re.fullmatch(r'[0-9a-f]{16}', info['checksum']), 'checksum %r' % info['checksum'])
    # A changed input changes its digest and nothing else's.
    mem = json.loads(json.dumps(MEMBERS))
    mem['Gatotech']['Location']['Latitude'] = 10.0
    ws.write_json('members_professional.json', mem)
    info2 = ibptest.table_json('info', ws.build_ok(cfg, results=res_path))
    by_kind2 = {i['kind']: i for i in info2['inputs']}
    for kind in files:
        same = by_kind2[kind]['xxh3_128'] == by_kind[kind]['xxh3_128']
        eq(same, kind != 'members', kind + ' digest unchanged')


def test_info_real_config_counts():
    ws = ibptest.Workspace()
    cfg = ws.write_json('node.json', {'System': {'ConfigUrls': {
        'MembersConfig': os.path.join(ibptest.IBP_CONFIG, 'members_professional.json'),
        'ServicesConfig': 'file://' + os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json'),
        'StaticDNSConfig': os.path.join(ibptest.IBP_CONFIG, 'geodns-static.json')}}})
    info = ibptest.table_json('info', ws.build_ok(cfg))
    with open(os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json')) as f:
        svc = json.load(f)
    with open(os.path.join(ibptest.IBP_CONFIG, 'geodns-static.json')) as f:
        static = json.load(f)
    hosts = {u.split('://', 1)[1].split('/', 1)[0].lower()
             for s in svc.values() if s['Configuration'].get('Active') != 0
             for p in s['Providers'].values() for u in p['RpcUrls']}
    apexes = {r['qname'].lower().rstrip('.') for r in static if r['qtype'] in ('NS', 'SOA')}
    zones = apexes | {h for h in hosts if not any(h == z or h.endswith('.' + z) for z in apexes)}
    eq(info['counts']['hosts'], len(hosts), 'hosts')
    eq(info['counts']['members'], 7, 'members')
    eq(sorted(z['zone'] for z in info['zones']), sorted(zones), 'zones')
    for z in info['zones']:
        check(0 < z['id'] < 2 ** 31, 'zone id %r' % z)
    eq({z['zone']: z['id'] for z in info['zones']}.get('dotters.network'), 333188168,
       'dotters.network zone id (CRC-32, IBP-NODE §3.2)')


def dump_lines(table):
    rc, out, err = run_table('dump', table)
    eq(rc, 0, 'dump exit status (%s)' % err.strip())
    lines = []
    for n, line in enumerate(out.splitlines()):
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError('dump line %d is not JSON: %r' % (n + 1, line[:200]))
    return lines


KINDS = {'nearest', 'fail-open', 'override', 'unlocated', 'none', 'undef'}


def test_dump_lines_are_json_with_kinds():
    ws, cfg = ws_with(overrides={'polkadot.example.net': {'GB': {'memberName': 'Gatotech'}}})
    table = ws.build_ok(cfg)
    lines = dump_lines(table)
    nets = [d for d in lines if 'network' in d]
    check(nets, 'no network lines in the dump')
    for d in nets:
        check(d.get('kind') in KINDS, 'network line without a known kind: %r' % d)
        ipaddress.ip_network(d['network'])      # well-formed
        check(d['family'] in ('A', 'AAAA'), 'family of %r' % d)
    kinds = {d['kind'] for d in nets}
    check({'nearest', 'unlocated', 'override'} <= kinds, 'kinds seen: %r' % kinds)
    # The dump agrees with lookup for the networks it lists (sampled).
    policy_hosts = {d['policy']: d['hosts'] for d in lines if 'hosts' in d}
    for d in nets[::max(1, len(nets) // 40)]:
        if d['kind'] not in ('nearest', 'override', 'fail-open'):
            continue
        net = ipaddress.ip_network(d['network'])
        host = policy_hosts[d['policy']][0]
        res = ibptest.lookup(table, host, str(net.broadcast_address), d['family'])
        eq([(a['member'], a['address']) for a in res['answers']],
           [(a['member'], a['address']) for a in d['answer']],
           'lookup of %s in %s vs dump' % (net.broadcast_address, d['network']))


def db_network_count():
    with open(ibptest.CITY_JSON) as f:
        return sum(len(e) for e in json.load(f))


def test_dump_merges_sibling_networks():
    # MEMBERS: Amforc (IPv4 + IPv6) and Gatotech (IPv4 only). polkadot and rpc
    # have both for A; the networks of the City test data are mostly isolated
    # by unlocated gaps, whose spread answer differs from any nearest answer,
    # so this policy cannot shrink below the data's network count. What must
    # hold: no two sibling networks (halves of one parent) carry the same
    # answer (else they would have been merged into their parent).
    ws, cfg = ws_with()
    lines = dump_lines(ws.build_ok(cfg))
    policies = {d['policy']: d for d in lines if 'hosts' in d}
    check(len(policies) >= 2, 'policies %r' % policies)
    for pi, head in policies.items():
        nets = [d for d in lines if d.get('policy') == pi and 'network' in d]
        check(nets, 'policy %d has no network lines' % pi)
        by_net = {}
        for d in nets:
            net = ipaddress.ip_network(d['network'])
            key = (net.version, net)
            check(key not in by_net, 'policy %d: network %s listed twice' % (pi, net))
            by_net[key] = (d['kind'], json.dumps(d['answer'], sort_keys=True))
        unmerged = []
        for (ver, net), ans in by_net.items():
            if net.prefixlen == 0:
                continue
            sib = [s for s in net.supernet().subnets() if s != net][0]
            if by_net.get((ver, sib)) == ans:
                unmerged.append((str(net), str(sib)))
        check(not unmerged, 'policy %d (%s): sibling networks with the same answer not merged: %r'
              % (pi, head['hosts'], unmerged[:5]))


def test_dump_client_independent_policy_collapses():
    # When a host has a single eligible candidate for a family, every client
    # gets that member, located or not (spread over one candidate). BEHAVIOR
    # §4 merges adjacent networks of equal answer, and §3 defines the ECS
    # scope as the largest prefix over which the answer is the same: here the
    # whole address space, scope 0. The compiler once kept the unlocated
    # answer (spread over {Gatotech}) apart from the located one (nearest
    # Gatotech), leaving ~1,450 networks and scopes like /31
    # (lib/compile/ibp_compile.c map_classes): the policy is one leaf.
    ws, cfg = ws_with()
    table = ws.build_ok(cfg)
    lines = dump_lines(table)
    limit = db_network_count()
    single = {'kusama.example.net': 'A', 'polkadot.example.net': 'AAAA'}
    for host, fam in single.items():
        heads = [d for d in lines if 'hosts' in d and host in d['hosts'] and d['family'] == fam]
        eq(len(heads), 1, '%s %s policy headers' % (host, fam))
        pi = heads[0]['policy']
        nets = [d for d in lines if d.get('policy') == pi and 'network' in d]
        members_seen = {a['member'] for d in nets for a in d['answer']}
        check(len(members_seen) == 1, '%s %s answers %r' % (host, fam, members_seen))
        scopes = {ip: ibptest.lookup(table, host, ip, fam)['scope']
                  for ip in (LONDON, '10.1.2.3', '2a02:d4c0::1')}
        check(len(nets) < limit and all(s == 0 for s in scopes.values()),
              '%s %s: one possible answer, yet %d network lines (the DB JSON lists %d '
              'networks) and scopes %r instead of 0' % (host, fam, len(nets), limit, scopes))



def pipe_answer(table, qname, qtype='ANY'):
    line = 'HELO\t3\nQ\t%s\tIN\t%s\t-1\t81.2.69.142\t0.0.0.0\t81.2.69.142/32\n' % (qname, qtype)
    pipe = os.path.join(ibptest.BUILD, 'pipe', 'ibpdns-pipe')
    out = subprocess.run([pipe, '--table', table, '--acme-socket='], input=line.encode(),
                         capture_output=True, timeout=10).stdout.decode()
    return [l.split('\t') for l in out.splitlines() if l.startswith('DATA')]


def test_host_apexes_get_ns_records():
    """Issue 15: a service host outside every static zone is a zone of its
    own, and secondaries refuse a zone without NS: it takes the NS set the
    static zones share, or Routing.HostApexNs; differing sets without the
    setting fail the build, naming it."""
    services = dict(SERVICES, Other=service('wss://rpc.other.org'))
    static = STATIC + [static_record('example.net', 'NS', 'NS2.example.net.'),
                       static_record('example.com', 'NS', 'ns2.example.net'),
                       static_record('example.com', 'NS', 'ns1.example.net.')]
    ws, cfg = ws_with(services_obj=services, static_obj=static)
    table = ws.build_ok(cfg)
    ns = pipe_answer(table, 'rpc.other.org', 'ANY')
    eq([r[8] for r in ns if r[5] == 'NS'], ['ns2.example.net.', 'ns1.example.net.'],
       'host apex NS: the set the static zones share, as the first zone lists it')
    soa = pipe_answer(table, 'rpc.other.org', 'SOA')
    check(soa and soa[0][8].startswith('ns2.example.net. hostmaster.rpc.other.org. '),
          'host apex SOA MNAME: the first NS of the first zone: %r' % soa)

    static.append(static_record('example.com', 'NS', 'ns3.example.com.'))
    ws, cfg = ws_with(services_obj=services, static_obj=static)
    expect_build_error(ws, cfg, 'different NS sets', [
        'different NS sets', 'example.com: ns1.example.net ns2.example.net ns3.example.com',
        'Routing.HostApexNs'])
    ws, cfg = ws_with(services_obj=services, static_obj=static,
                      routing={'HostApexNs': ['DNS-A.example.net.', 'dns-b.example.net']})
    table = ws.build_ok(cfg)
    ns = pipe_answer(table, 'rpc.other.org', 'ANY')
    eq([r[8] for r in ns if r[5] == 'NS'], ['dns-a.example.net.', 'dns-b.example.net.'],
       'host apex NS from Routing.HostApexNs, in its order')
    ws, cfg = ws_with(services_obj=services, static_obj=static,
                      routing={'HostApexNs': ['bad..name']})
    expect_build_error(ws, cfg, 'bad HostApexNs', ['.Routing.HostApexNs[0]'])

if __name__ == '__main__':
    ibptest.main(globals())
