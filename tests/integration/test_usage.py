#!/usr/bin/python3
"""Usage accounting (issue 13) through a real pdns_server with caches off:
every answered dynamic A/AAAA record is stored once in SQLite, whatever is
killed when; hits go to the UTC date they were answered on; /process and
/usage speak IBP's shapes; no client address lands in any file. The expected
counts come from the answers the test received, never from the counting code."""
import collections
import glob
import json
import os
import random
import re
import signal
import sqlite3
import shutil
import threading
import time

import maxminddb

import ibptest
import mariadbfix
import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar, real

HOST = 'polkadot.dotters.network'
LOOKUPS_PER_QUERY = 2
CLIENTS = ['81.2.69.142/32', '216.160.83.56/32', '89.160.20.112/28', '175.16.199.0/24',
           '2.125.160.216/32', '67.43.156.0/24', '2a02:cf40::/32', '2001:218::/32',
           '1.128.0.0/16', '149.101.100.0/24']


V6 = {'Amforc': '2001:db8::a', 'Stake Plus': '2001:db8::5'}


def members_with_ipv6():
    members = json.loads(real('members_professional.json'))
    for m in members.values():
        if m['Details']['Name'] in V6:
            m['Service']['ServiceIPv6'] = V6[m['Details']['Name']]
    return members


def member_of_ip():
    members = members_with_ipv6()
    out = {}
    for m in members.values():
        for key in ('ServiceIPv4', 'ServiceIPv6'):
            if m['Service'].get(key):
                out[m['Service'][key]] = m['Details']['Name']
    return out


MEMBER = member_of_ip()


ASN_MMDB = os.path.join(ibptest.MAXMIND, 'GeoLite2-ASN-Test.mmdb')


def client_dims(ecs):
    """(CC, country, ASN, organisation) of the ECS address, from MaxMind's own
    reader on the test databases: the oracle for the stored columns."""
    addr = ecs.split('/')[0]
    with maxminddb.open_database(ibptest.CITY_MMDB) as city, maxminddb.open_database(ASN_MMDB) as asn:
        c = (city.get(addr) or {}).get('country') or {}
        a = asn.get(addr) or {}
    cc = c.get('iso_code', '')
    if len(cc) != 2:
        return ('??', 'Unknown', 'AS%d' % a['autonomous_system_number'] if a.get('autonomous_system_number') else '',
                a.get('autonomous_system_organization', '') if a.get('autonomous_system_number') else '')
    number = a.get('autonomous_system_number') or 0
    return (cc, c.get('names', {}).get('en', ''), 'AS%d' % number if number else '',
            a.get('autonomous_system_organization', '') if number else '')


def answered(resp, rdtype):
    """(member, is_ipv6) per dynamic record of the answer."""
    out = []
    for ip in pdnsfix.a_records(resp, rdtype):
        out.append((MEMBER[ip], rdtype == 'AAAA'))
    return out


def stored_rows(sc):
    path = sc.config['Storage']['Path']
    db = sqlite3.connect('file:%s?mode=ro' % os.path.join(sc.dir, path), uri=True)
    rows = db.execute('SELECT date, node_id, domain_name, member_name, network_asn, network_name,'
                      ' country_code, country_name, is_ipv6, hits FROM requests').fetchall()
    db.close()
    return rows


def totals(rows):
    t = collections.Counter()
    for r in rows:
        t[(r[2], r[3], bool(r[8]))] += r[9]
    return t


def totals_by_client(rows):
    t = collections.Counter()
    for r in rows:
        t[(r[3], bool(r[8]), r[6], r[7], r[4], r[5])] += r[9]
    return t


def process(sc):
    code, _, body = sc.api('/process', method='POST')
    eq(code, 200, '/process status')
    return json.loads(body)


def usage_pdns(sc, **kw):
    args = ' --usage-dir=%s %s' % (os.path.join(sc.dir, 'usage'), kw.pop('extra', ''))
    return pdnsfix.Pdns(sc.table, pipe_args=args.strip(), **kw)


def test_answers_are_stored_exactly_and_read_back_as_ibp_does():
    sc = Sidecar(extra={'Storage': {'FlushSeconds': 3600}}, start=False)
    shutil.copy(ASN_MMDB, os.path.join(sc.dir, 'maxmind', 'AsnLite.mmdb'))
    sc.start()
    with sc, usage_pdns(sc) as pdns:
        gen = sc.generation()
        sc.http.set('/members.json', json.dumps(members_with_ipv6()).encode())
        sc.wait_generation_above(gen, 10)
        check(pdnsfix.wait_until(lambda: pdnsfix.a_records(pdns.query(HOST, 'AAAA', ecs=CLIENTS[0]), 'AAAA'), 5),
              'AAAA answers')
        # PowerDNS asks the backend ANY twice per query of a host (the
        # referral check, then the answer: PDNS-PIPE.md §5), and IBP counts
        # every A and AAAA record of every such lookup (IBP-NODE §7.1).
        per_client = {}
        for ecs in CLIENTS:
            per_client[ecs] = [(MEMBER[ip], False) for ip in pdnsfix.a_records(pdns.query(HOST, 'A', ecs=ecs), 'A')] + \
                              [(MEMBER[ip], True) for ip in pdnsfix.a_records(pdns.query(HOST, 'AAAA', ecs=ecs), 'AAAA')]
        process(sc)
        stored_rows_before = stored_rows(sc)
        base = totals(stored_rows_before)   # the queries above
        expected, by_client = collections.Counter(), collections.Counter()
        for i in range(120):
            ecs = CLIENTS[i % len(CLIENTS)]
            rdtype = ('A', 'AAAA', 'ANY')[i % 3]
            resp = pdns.query(HOST, rdtype, ecs=ecs, tcp=rdtype == 'ANY')   # ANY over UDP: TC
            seen = [r for t in (('A', 'AAAA') if rdtype == 'ANY' else (rdtype,))
                    for r in answered(resp, t)]
            eq(sorted(seen), sorted(r for r in per_client[ecs] if rdtype == 'ANY' or r[1] == (rdtype == 'AAAA')),
               'answer %d (%s %s)' % (i, rdtype, ecs))
            for member, v6 in per_client[ecs]:
                expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY
                by_client[(member, v6) + client_dims(ecs)] += LOOKUPS_PER_QUERY
        check(sum(expected.values()) > 150 and any(k[2] for k in expected),
              'the queries were answered: %r' % expected)
        eq(totals(stored_rows(sc)), base, 'nothing stored before a flush')
        expected.update(base)
        body = process(sc)
        eq(body, {'message': 'Usage processing triggered for %s' % time.strftime('%Y-%m-%d', time.gmtime()),
                  'status': 'success'}, "/process answers IBP's body")
        rows = stored_rows(sc)
        eq(totals(rows), expected, 'stored totals = answered records')
        today = time.strftime('%Y-%m-%d', time.gmtime())
        for r in rows:
            eq((r[0], r[1]), (today, 'TEST-01'), 'row date and node %r' % (r,))
        base_by_client = totals_by_client(stored_rows_before)
        got_by_client = totals_by_client(rows) - base_by_client
        eq(got_by_client, by_client, 'hits by member, family, country and ASN')
        check(any(k[4] for k in by_client) and any(k[2] not in ('??',) for k in by_client),
              'the clients cover known countries and ASNs: %r' % by_client)
        # A second flush adds nothing; new answers add exactly themselves.
        process(sc)
        eq(totals(stored_rows(sc)), expected, 'a second flush adds nothing')
        pdns.query(HOST, 'A', ecs=CLIENTS[0])
        for member, v6 in per_client[CLIENTS[0]]:
            expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY
        process(sc)
        eq(totals(stored_rows(sc)), expected, 'one more answer, one more hit')
        # /usage: getUsage's records and rules.
        code, _, body = sc.api('/usage?start=%s&end=%s' % (today, today))
        eq(code, 200, '/usage')
        u = json.loads(body)
        eq(u['nodeID'], 'TEST-01', 'nodeID')
        got = collections.Counter()
        for rec in u['usageRecords']:
            eq(rec['date'], today + 'T00:00:00Z', 'date format')
            eq(rec['nodeid'], '', 'nodeid is empty, as IBP')
            got[(rec['domain'], rec['memberName'], rec['isIPv6'])] += rec['hits']
        eq(got, expected, '/usage totals')
        some = next(iter(expected))[1]
        u = json.loads(sc.api('/usage?start=%s&end=%s&domain=%s&member=%s' % (today, today, HOST, some.replace(' ', '%20')))[2])
        check(u['usageRecords'] and all(r['memberName'] == some for r in u['usageRecords']),
              'member filter')
        gb = sum(r[9] for r in stored_rows(sc) if r[6] == 'GB')
        u = json.loads(sc.api('/usage?start=%s&end=%s&country=gb' % (today, today))[2])
        check(gb > 0 and all(r['countryCode'] == 'GB' for r in u['usageRecords']), 'GB rows')
        eq(sum(r['hits'] for r in u['usageRecords']), gb, 'country filter in any case')
        u = json.loads(sc.api('/usage?start=%s&end=%s&country=de' % (today, today))[2])
        eq(u['usageRecords'], [], 'country filter')
        u = json.loads(sc.api('/usage?start=2026-02-02&end=2026-01-01')[2])
        eq(u.get('error'), 'StartDate must be before or equal to EndDate', 'start after end')
        u = json.loads(sc.api('/usage?start=yesterday&end=z')[2])
        eq((u['usageRecords'], 'error' in u), ([], False), 'a bad date: an empty list, no error')
        # A day no calendar has, though shaped like one: the same, as NATS
        # getUsage answers (SQLite compared it as text and found rows).
        u = json.loads(sc.api('/usage?start=2000-02-30&end=%s' % today)[2])
        eq((u['usageRecords'], 'error' in u), ([], False), 'an impossible date: [], no error')
        st = sc.status()['usage']
        eq((st['ok'], st['backlog_hits'], st['hits_stored']), (True, 0, sum(expected.values())),
           '/status usage')
        metrics = sc.api('/metrics')[2]
        check('ibpdns_usage_hits_stored_total %d' % sum(expected.values()) in metrics, 'metrics')
        # Privacy: no client address in any file of ours.
        pdns.stop()
        files = glob.glob(os.path.join(sc.dir, '**'), recursive=True)
        for path in files:
            if os.path.isfile(path):
                data = open(path, 'rb').read()
                for c in CLIENTS:
                    check(c.split('/')[0].encode() not in data, '%s holds %s' % (path, c))


def load(pdns, stop, expected, errors, per_client):
    """Queries until stopped; expected gets the hits of every answered query."""
    rnd = random.Random(7)
    while not stop.is_set():
        ecs = rnd.choice(CLIENTS)
        try:
            resp = pdns.query(HOST, 'A', ecs=ecs, timeout=5)   # > pipe-timeout: SERVFAIL first
        except Exception as e:   # noqa: BLE001 - a timeout while a coprocess is killed
            errors.append(repr(e))
            continue
        if resp.rcode() != 0:
            errors.append('rcode %d' % resp.rcode())
            continue
        eq(sorted(answered(resp, 'A')), per_client[ecs], 'answer under load')
        for member, v6 in per_client[ecs]:
            expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY


def learn_answers(pdns):
    return {ecs: sorted(answered(pdns.query(HOST, 'A', ecs=ecs), 'A')) for ecs in CLIENTS}


def under_load(sc, pdns, each_round, rounds, rows=stored_rows, flush=True):
    per_client = learn_answers(pdns)
    base = collections.Counter()
    if flush:
        process(sc)
        base = totals(rows(sc))
    else:   # learn_answers' own queries are not stored yet
        for answers in per_client.values():
            for member, v6 in answers:
                base[(HOST, member, v6)] += LOOKUPS_PER_QUERY
    expected, errors, stop = collections.Counter(base), [], threading.Event()
    worker = threading.Thread(target=load, args=(pdns, stop, expected, errors, per_client))
    worker.start()
    try:
        for round_ in range(rounds):
            each_round(round_)
    finally:
        stop.set()
        worker.join()
    return expected, errors


def test_sidecar_kills_double_and_lose_nothing():
    """SIGKILL at random moments of flushes that run every second and on
    /process: the store ends with exactly the answered hits."""
    with Sidecar(extra={'Storage': {'FlushSeconds': 1}}) as sc, usage_pdns(sc) as pdns:
        rnd = random.Random(11)

        def kill_sidecar(round_):
            if round_ % 2:
                threading.Thread(target=lambda: sc.api('/process', method='POST')).start()
            time.sleep(rnd.uniform(0, 1.2))
            sc.proc.send_signal(signal.SIGKILL)
            sc.proc.wait()
            sc.start(wait=False)
            time.sleep(rnd.uniform(0.05, 0.5))
        expected, errors = under_load(sc, pdns, kill_sidecar, 12)
        eq(errors, [], 'queries failed while the sidecar was killed')
        check(pdnsfix.wait_until(sc.ready, 20), 'the sidecar came back')
        process(sc)
        eq(totals(stored_rows(sc)), expected, 'stored = answered after 12 sidecar kills')
        check(sum(expected.values()) > 300, 'load: %r' % expected)


def test_coprocess_kills_count_what_powerdns_got():
    """60 coprocesses SIGKILLed under load. A coprocess counts a lookup's
    records when its answer is written to PowerDNS. PowerDNS's log says how
    many lookups a kill aborted; it runs the query again on another
    coprocess, so the lookups of that query answered before the kill count
    twice, as on IBP's node (every answered lookup counts); or it goes on
    without the aborted lookup (a referral check), which then counts nothing.
    So the store holds the answered queries' hits, give or take one lookup's
    records per lookup PowerDNS reports aborted, and exactly them when none
    was. (A SIGKILL in the few instructions between a write and its count
    would lose that answer's hits: docs/USAGE.md.)"""
    with Sidecar(extra={'Storage': {'FlushSeconds': 1}}) as sc, usage_pdns(sc) as pdns:
        rnd = random.Random(13)
        kills = []

        def kill_coprocess(round_):
            time.sleep(rnd.uniform(0.02, 0.12))
            # PowerDNS starts a coprocess again at its thread's next query:
            # on a loaded machine (TSan's start-up) both may be down a while.
            deadline = time.monotonic() + 3
            while not (pids := pdns.coprocess_pids()) and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                os.kill(rnd.choice(pids), signal.SIGKILL)
                kills.append(1)
            except (IndexError, ProcessLookupError):   # none up, or it died meanwhile
                pass
        expected, errors = under_load(sc, pdns, kill_coprocess, 60)
        check(len(kills) >= 50, '%d kills' % len(kills))
        time.sleep(0.5)
        process(sc)
        got = totals(stored_rows(sc))
        extra = sum(got.values()) - sum(expected.values())
        aborted = pdns.logtext().count('Unable to receive data from coprocess')
        most = max(len(v) for v in learn_answers(pdns).values()) * (LOOKUPS_PER_QUERY - 1)
        check(-most * aborted <= extra <= most * aborted,
              'stored %r, answered %r after %d kills: %d lookups aborted, %d queries failed (%r)'
              % (got, expected, len(kills), aborted, len(errors), errors[:3]))
        if not aborted:
            eq(got, expected, 'no lookup aborted: stored = answered')
        check(sum(expected.values()) > 300, 'load: %r' % expected)
        pdns.stop()
        process(sc)
        left = glob.glob(os.path.join(sc.dir, 'usage', '*.ibpc'))
        eq(left, [], 'the files of dead coprocesses are removed once stored')


def test_a_full_disk_keeps_the_counts_until_space_is_freed():
    """SQLite on a full file system (a small tmpfs; needs root): flushes
    fail, the counts wait in their files, the fault shows in /status and
    /metrics and is logged once when it starts and once when it ends."""
    from test_faults import Tmpfs, fill
    with Tmpfs('1M') as fs:
        fill(fs.path('filler'))
        extra = {'Storage': {'Path': fs.path('usage.sqlite'), 'FlushSeconds': 3600}}
        with Sidecar(extra=extra) as sc, usage_pdns(sc) as pdns:
            per_client = learn_answers(pdns)
            expected = collections.Counter()
            for i in range(30):
                ecs = CLIENTS[i % len(CLIENTS)]
                eq(sorted(answered(pdns.query(HOST, 'A', ecs=ecs), 'A')), per_client[ecs], 'answer')
                for member, v6 in per_client[ecs]:
                    expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY
            for member, v6 in (m for v in per_client.values() for m in v):
                expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY   # learn_answers' queries
            for _ in range(2):
                code, _, body = sc.api('/process', method='POST')
                eq((code, json.loads(body).get('stored')), (200, False), '/process on a full disk')
            st = sc.status()['usage']
            eq((st['ok'], st['backlog_hits']), (False, sum(expected.values())), '/status while full')
            check(st['last_error'] and st['failing_since'], 'the error shows: %r' % st)
            check('ibpdns_usage_store_up 0' in sc.api('/metrics')[2], 'metrics while full')
            os.unlink(fs.path('filler'))
            process(sc)
            eq(totals(stored_rows(sc)), expected, 'every count went in once space was freed')
            st = sc.status()['usage']
            eq((st['ok'], st['backlog_hits'], st['last_error']), (True, 0, None), '/status after')
            log = sc.logtext()
            eq((log.count('usage: cannot store'), log.count('usage: stored again')), (1, 1),
               'logged once when it started, once when it ended:\n' + log[-2000:])


def read_counter_files(dirname):
    """Every used slot of every counter file, decoded here from the format
    (docs/USAGE.md), not by our reader: {(domain, member, client, family): hits}
    and every string the arenas hold."""
    import struct
    hits, strings = collections.Counter(), set()
    for path in glob.glob(os.path.join(dirname, '*.ibpc')):
        data = open(path, 'rb').read()
        eq(data[:8], b'IBPDNSUC', 'magic of ' + path)
        n_slots, arena_size = struct.unpack_from('<II', data, 24)
        arena_used = struct.unpack_from('<I', data, 68)[0]
        arena = data[128 + 48 * n_slots:]

        def text(ref):
            n = struct.unpack_from('<I', arena, ref - 1)[0]
            return arena[ref + 3:ref + 3 + n].decode()
        at = 0
        while at < arena_used:
            n = struct.unpack_from('<I', arena, at)[0]
            strings.add(arena[at + 4:at + 4 + n].decode())
            at += 4 + (n + 3) // 4 * 4
        for i in range(n_slots):
            tag, day, dom, mem, cli, fam, count = struct.unpack_from('<6IQ', data, 128 + 48 * i)
            if tag:
                hits[(text(dom), text(mem), text(cli), fam)] += count
    return hits, strings


def test_a_flood_of_distinct_clients_is_counted_in_bounded_memory():
    """1,000,000 lookups from distinct /24 (and /48) prefixes, straight into
    one coprocess: every dynamic record is counted, the counter files and the
    coprocess's anonymous memory stay small (the keys are bounded by hosts x
    members x client classes, not by clients), and the files hold no address."""
    ws = ibptest.Workspace()
    cfg = ws.node_config(json.loads(real('members_professional.json')),
                         json.loads(real('services_rpc.json')), ())
    table = ws.fresh()
    rc, _, se = ibptest.run_table('build', '--config', cfg, '--mmdb', ibptest.CITY_MMDB,
                                  '--asn-mmdb', ASN_MMDB, '-o', table)
    eq(rc, 0, 'build: ' + se)
    usage_dir = ws.path('usage')
    os.mkdir(usage_dir)
    co = pdnsfix.Coproc(table, extra_args=['--usage-dir=' + usage_dir])
    try:
        check(co.helo(3).startswith(b'OK'), 'HELO')
        rnd = random.Random(5)
        total, answered_records, chunk, peak_anon = 1000000, 0, 50000, 0
        for start in range(0, total, chunk):
            lines = []
            for i in range(start, start + chunk):
                if i % 10:
                    ecs = '%d.%d.%d.0/24' % (rnd.randrange(1, 224), rnd.randrange(256), rnd.randrange(256))
                else:
                    ecs = '2%03x:%x:%x::/48' % (rnd.randrange(0x1000), rnd.randrange(0x10000), rnd.randrange(0x10000))
                lines.append('Q\t%s\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t%s\n' % (HOST, ecs))
            co.send(''.join(lines).encode(), timeout=120)
            ends = 0
            while ends < chunk:
                line = co.read_line(timeout=60)
                if line == b'END':
                    ends += 1
                elif line.startswith(b'DATA') and (b'\tA\t' in line or b'\tAAAA\t' in line):
                    answered_records += 1
            with open('/proc/%d/status' % co.proc.pid) as f:
                anon = int(re.search(r'RssAnon:\s+(\d+) kB', f.read()).group(1))
            peak_anon = max(peak_anon, anon)
        if os.environ.get('IBP_SANITIZE') != '1':   # sanitizers' shadow memory is anonymous too
            check(peak_anon <= 8 * 1024, 'coprocess anonymous memory %d kB' % peak_anon)
        co.proc.stdin.close()
        co.proc.wait(30)
    finally:
        if co.proc.poll() is None:
            co.proc.kill()
            co.proc.wait()
    hits, strings = read_counter_files(usage_dir)
    eq(sum(hits.values()), answered_records, 'every dynamic record of %d lookups counted' % total)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(usage_dir, '*')))
    check(size <= 4 * 917632, 'counter files: %d bytes for %d keys' % (size, len(hits)))
    members = {m['Details']['Name'] for m in json.loads(real('members_professional.json')).values()}
    for text in strings:
        check(text == HOST or text in members or text.count('\t') == 3,
              'a string in a counter file that is no dimension: %r' % text)
        check(not re.search(r'\d+\.\d+\.\d+\.\d+|[0-9a-f]+:[0-9a-f:]+:', text.split('\t')[0] + ' ' + text.split('\t')[-1] if text.count('\t') == 3 else text),
              'an address in a counter file: %r' % text)
    check(len({k[2] for k in hits}) > 20, 'the flood met many client classes: %d' % len({k[2] for k in hits}))
    print('  %d lookups, %d records counted in %d keys, %d counter-file bytes, peak anonymous '
          'memory %d kB' % (total, answered_records, len(hits), size, peak_anon))


def mysql_rows(db):
    rows = db.query('SELECT date, node_id, domain_name, member_name, network_asn, network_name,'
                    ' country_code, country_name, is_ipv6, hits FROM requests')
    return [tuple(r[:8]) + (int(r[8]), int(r[9])) for r in rows]


def test_mariadb_exact_rows_kills_and_an_outage():
    """The same through a real MariaDB: IBP's `requests` (its unique key
    repaired when an older schema lacks node_id), exact rows by country and
    ASN, sidecar kills under load, and the server stopped for 60 s under
    load: nothing lost, nothing doubled, the outage shown and logged once."""
    with mariadbfix.MariaDB() as db:
        # IBP's older DDL: the key without node_id (IBP-NODE §7.3).
        db.query('CREATE TABLE requests (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,'
                 ' date DATE, node_id VARCHAR(32), domain_name VARCHAR(128),'
                 ' member_name VARCHAR(64), network_asn VARCHAR(32), network_name VARCHAR(96),'
                 ' country_code VARCHAR(2), country_name VARCHAR(64), is_ipv6 TINYINT,'
                 ' hits INT UNSIGNED, UNIQUE KEY uniq_traffic_dedupe (date,domain_name,'
                 'member_name,network_asn,network_name,country_code,country_name,is_ipv6))')
        sc = Sidecar(extra={'Mysql': db.config(), 'Storage': {'FlushSeconds': 1}}, start=False)
        shutil.copy(ASN_MMDB, os.path.join(sc.dir, 'maxmind', 'AsnLite.mmdb'))
        sc.start()
        with sc, usage_pdns(sc) as pdns:
            key = db.query("SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM "
                           "information_schema.STATISTICS WHERE TABLE_SCHEMA = 'ibpdns' AND "
                           "TABLE_NAME = 'requests' AND INDEX_NAME = 'uniq_traffic_dedupe'")
            eq(key[0][0], 'date,node_id,domain_name,member_name,network_asn,network_name,'
               'country_code,country_name,is_ipv6', 'the unique key, repaired as IBP does')
            check('unique key was on other columns; repaired' in sc.logtext(), 'repair logged')
            eq(sc.status()['usage']['store'], 'mysql', '/status store')
            check(mariadbfix.PASSWORD not in sc.logtext(), 'the password is not logged')
            per_client = learn_answers(pdns)
            process(sc)
            base = collections.Counter()
            for r in mysql_rows(db):
                base[(r[3], bool(r[8]), r[6], r[7], r[4], r[5])] += r[9]
            by_client = collections.Counter(base)
            for i in range(40):
                ecs = CLIENTS[i % len(CLIENTS)]
                eq(sorted(answered(pdns.query(HOST, 'A', ecs=ecs), 'A')), per_client[ecs], 'answer')
                for member, v6 in per_client[ecs]:
                    by_client[(member, v6) + client_dims(ecs)] += LOOKUPS_PER_QUERY
            process(sc)
            got = collections.Counter()
            for r in mysql_rows(db):
                eq(r[1], 'TEST-01', 'node_id')
                got[(r[3], bool(r[8]), r[6], r[7], r[4], r[5])] += r[9]
            eq(got, by_client, 'rows by member, family, country and ASN in MariaDB')
            u = json.loads(sc.api('/usage?country=se')[2])
            eq(sum(r['hits'] for r in u['usageRecords']),
               sum(n for k, n in got.items() if k[2] == 'SE'), '/usage from MariaDB')

            # Sidecar kills under load, flushing every second.
            rnd = random.Random(17)

            def kill_sidecar(round_):
                time.sleep(rnd.uniform(0, 1.2))
                sc.proc.send_signal(signal.SIGKILL)
                sc.proc.wait()
                sc.start(wait=False)
                time.sleep(rnd.uniform(0.1, 0.6))
            expected, errors = under_load(sc, pdns, kill_sidecar, 10, rows=lambda _: mysql_rows(db))
            eq(errors, [], 'queries failed while the sidecar was killed')
            check(pdnsfix.wait_until(sc.ready, 30), 'the sidecar came back')
            process(sc)
            eq(totals([r for r in mysql_rows(db)]), expected, 'MariaDB = answered after 10 kills')

            # The server down for 60 s under load.
            process(sc)
            before = totals(mysql_rows(db))
            db.stop()
            expected, errors = under_load(sc, pdns, lambda r: time.sleep(1), 60, flush=False)
            expected.update(before)
            eq(errors, [], 'queries failed while MariaDB was down')
            code, _, body = sc.api('/process', method='POST')
            eq(json.loads(body).get('stored'), False, '/process while MariaDB is down')
            st = sc.status()['usage']
            check(not st['ok'] and st['backlog_hits'] > 0 and st['last_error'], 'status %r' % st)
            check('ibpdns_usage_store_up 0' in sc.api('/metrics')[2], 'metrics while down')
            db.start()
            process(sc)
            eq(totals(mysql_rows(db)), expected, 'every count went in once MariaDB was back')
            eq(sc.status()['usage']['ok'], True, '/status after')
            log = sc.logtext()
            check(log.count('usage: cannot store') >= 1 and
                  log.count('usage: cannot store') == log.count('usage: stored again'),
                  'each outage logged once when it starts and once when it ends:\n' + log[-3000:])


def test_api_answers_while_the_store_hangs():
    """MariaDB frozen (SIGSTOP) under a flush: three /process requests wait
    for it, a fourth is refused at once (503), and /status, /metrics and
    /route answer meanwhile (one HTTP thread stays out of the store); once
    the server thaws, the waiters get their answers and every count is in."""
    with mariadbfix.MariaDB() as db:
        sc = Sidecar(extra={'Mysql': db.config(), 'Storage': {'FlushSeconds': 3600}})
        with sc, usage_pdns(sc) as pdns:
            per_client = learn_answers(pdns)
            process(sc)   # the store's connection is open; what follows waits in files
            expected = totals(mysql_rows(db))
            for ecs in CLIENTS:
                pdns.query(HOST, 'A', ecs=ecs)
                for member, v6 in per_client[ecs]:
                    expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY
            waiters, answers = [], []

            def wait_for_process():
                t0 = time.monotonic()
                code = sc.api('/process', method='POST', timeout=120)[0]
                answers.append((code, time.monotonic() - t0))
            os.kill(db.proc.pid, signal.SIGSTOP)
            try:
                for _ in range(3):
                    waiters.append(threading.Thread(target=wait_for_process))
                    waiters[-1].start()
                    time.sleep(0.3)   # each on an HTTP thread of its own
                time.sleep(1)
                eq(answers, [], 'a /process answered while MariaDB is frozen')
                for path in ('/status', '/metrics', '/route?name=%s&ip=81.2.69.142' % HOST):
                    t0 = time.monotonic()
                    code, _, body = sc.api(path)
                    eq(code, 200, '%s while three /process wait on the store (%s)' % (path, body))
                    check(time.monotonic() - t0 < 2, '%s took %.1f s' % (path, time.monotonic() - t0))
                code, _, body = sc.api('/process', method='POST')
                eq(code, 503, 'a fourth request for the store')
                check('busy' in json.loads(body)['error'], 'the refusal says why: %s' % body)
                code, _, body = sc.api('/usage')
                eq(code, 503, '/usage while the store is taken')
                eq(answers, [], 'a /process answered while MariaDB is frozen')
            finally:
                os.kill(db.proc.pid, signal.SIGCONT)
            for w in waiters:
                w.join(timeout=130)
            eq(sorted(code for code, _ in answers), [200, 200, 200], 'the waiters\' answers')
            process(sc)
            eq(totals(mysql_rows(db)), expected, 'every count stored once the server thawed')


def crash_and_recover(sc, pdns, point, rows):
    """Queries, then a flush that SIGKILLs the sidecar at `point` (fault
    injection), a restart and a flush: returns (expected, stored) totals."""
    per_client = learn_answers(pdns)
    process(sc)
    expected = totals(rows(sc))
    for i in range(20):
        ecs = CLIENTS[i % len(CLIENTS)]
        pdns.query(HOST, 'A', ecs=ecs)
        for member, v6 in per_client[ecs]:
            expected[(HOST, member, v6)] += LOOKUPS_PER_QUERY
    pdns.stop()   # the coprocesses' files are dead: drained, they are removed
    sc.proc.send_signal(signal.SIGKILL)
    sc.proc.wait()
    sc.env = {'IBPDNS_TEST_CRASH': point}
    sc.start(wait=False)
    check(pdnsfix.wait_until(lambda: sc.proc.poll() is not None, 20),
          'the sidecar did not crash at %s:\n%s' % (point, sc.logtext()[-2000:]))
    eq(sc.proc.returncode, -signal.SIGKILL, 'killed at ' + point)
    sc.env = None
    sc.start()
    process(sc)
    left = glob.glob(os.path.join(sc.dir, 'usage', '*.ibpc'))
    eq(left, [], 'drained files removed after the crash at ' + point)
    return expected, totals(rows(sc))


def test_a_crash_at_each_step_of_a_flush_stores_exactly_once():
    """SIGKILL inside the store transaction, after its commit before the
    counter files note it, and before drained files are removed (fault
    injection, IBPDNS_TEST_CRASH): after a restart every hit is stored once,
    in SQLite and in MariaDB."""
    for point in ('in-transaction', 'after-commit', 'before-remove'):
        with Sidecar(extra={'Storage': {'FlushSeconds': 3600}}) as sc, usage_pdns(sc) as pdns:
            expected, got = crash_and_recover(sc, pdns, point, stored_rows)
            eq(got, expected, 'SQLite, a crash %s' % point)
    with mariadbfix.MariaDB() as db:
        for point in ('in-transaction', 'after-commit', 'before-remove'):
            db.query('DELETE FROM requests') if db.query("SHOW TABLES LIKE 'requests'") else None
            sc = Sidecar(extra={'Mysql': db.config(), 'Storage': {'FlushSeconds': 3600}})
            with sc, usage_pdns(sc) as pdns:
                expected, got = crash_and_recover(sc, pdns, point, lambda _: mysql_rows(db))
                eq(got, expected, 'MariaDB, a crash %s' % point)


def test_hits_go_to_the_date_they_were_answered_on():
    now = time.time()
    midnight = (int(now) // 86400 + 1) * 86400
    offset = int(midnight - 3 - now)   # the coprocesses' clock: 3 s before 00:00 UTC
    with Sidecar(extra={'Storage': {'FlushSeconds': 3600}}) as sc, \
            usage_pdns(sc, extra='--clock-offset=%d' % offset) as pdns:
        t0 = time.time()
        before = LOOKUPS_PER_QUERY * sum(len(answered(pdns.query(HOST, 'A', ecs=CLIENTS[0]), 'A'))
                                         for _ in range(5))
        check(time.time() - t0 < 2, 'queries before midnight took too long')
        time.sleep(max(0, 4 - (time.time() - t0)))
        after = LOOKUPS_PER_QUERY * sum(len(answered(pdns.query(HOST, 'A', ecs=CLIENTS[0]), 'A'))
                                        for _ in range(7))
        process(sc)
        by_date = collections.Counter()
        for r in stored_rows(sc):
            by_date[r[0]] += r[9]
        day = lambda t: time.strftime('%Y-%m-%d', time.gmtime(t))
        eq(dict(by_date), {day(midnight - 1): before, day(midnight): after}, 'hits by date')


if __name__ == '__main__':
    ibptest.main(globals())
