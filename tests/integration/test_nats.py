#!/usr/bin/python3
"""NATS (issue 14) through real nats-server processes with authentication:
the sidecar's JOINs on consensus.cluster (start-up burst, re-JOIN for a new
peer, no echo), dns.usage.getUsage answered byte for byte as IBP's node
answers (SQLite and MariaDB), geodns.override.update reaching a real
pdns_server within a second, failover in a 3-server cluster and a total
outage, wrong credentials and an untrusted certificate."""
import json
import os
import re
import sqlite3
import time

import ibptest
import mariadbfix
import natsfix
import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar, real

SANITIZED = os.environ.get('IBP_SANITIZE') == '1'
HOST = 'polkadot.dotters.network'
GB_CLIENT = '81.2.69.142/32'      # GeoIP2-City-Test: London, GB
OVERRIDE_IP = '203.0.113.77'
JOIN_SHAPE = re.compile(r'\{"type":"join","sender":\{"NodeID":"TEST-01","PublicAddress":"",'
                        r'"ListenAddress":"0\.0\.0\.0","ListenPort":"0","NodeRole":"IBPDns",'
                        r'"LastHeard":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"\},'
                        r'"members":null\}$')


def nats_config(servers, **kw):
    cfg = {'NodeID': 'TEST-01', 'Url': ','.join(s.url for s in servers),
           'User': servers[0].user, 'Pass': servers[0].password}
    cfg.update(kw)
    return cfg


def client_for(server):
    c = natsfix.NatsClient()
    c.connect(server.url, server.user, server.password)
    return c


def wait_connected(sc, timeout=10):
    ok = pdnsfix.wait_until(lambda: sc.status()['cluster']['connected'], timeout, 0.1)
    check(ok, 'sidecar not connected to NATS within %ss: %s\n%s'
          % (timeout, sc.status()['cluster'], sc.logtext()[-2000:]))
    return sc.status()['cluster']


def joins_from_us(msgs):
    return [m for m in msgs if b'"NodeID":"TEST-01"' in m.data]


def test_join_burst_rejoin_and_no_echo():
    with natsfix.NatsServer().start() as srv:
        watcher = client_for(srv)
        watcher.sub('consensus.cluster')
        sc = Sidecar(extra={'Nats': nats_config([srv])})
        with sc:
            joins = joins_from_us(watcher.msgs('consensus.cluster', 3.0))
            eq(len(joins), 3, 'start-up JOINs')
            for m in joins:
                check(JOIN_SHAPE.match(m.data.decode()), 'JOIN payload: %r' % m.data)
            gaps = [b.time_received - a.time_received for a, b in zip(joins, joins[1:])]
            check(all(0.35 <= g <= 0.8 for g in gaps), 'JOINs 500 ms apart: %r' % gaps)
            # A new peer's JOIN: ours again within a second (IBP's re-JOIN).
            peer = ('{"type":"join","sender":{"NodeID":"MON-TEST","PublicAddress":"",'
                    '"ListenAddress":"0.0.0.0","ListenPort":"0","NodeRole":"IBPMonitor",'
                    '"LastHeard":"2026-04-18T10:00:00Z"},"members":null}').encode()
            sent = time.monotonic()
            watcher.pub('consensus.cluster', peer)
            again = [m for m in watcher.msgs('consensus.cluster', 1.5)
                     if b'"NodeID":"TEST-01"' in m.data]
            check(again and again[0].time_received - sent < 1.0,
                  're-JOIN within 1 s of a new peer: %r' % [m.time_received - sent for m in again])
            cl = sc.status()['cluster']
            eq([p['NodeID'] for p in cl['peers']], ['MON-TEST'], 'peer table')
            eq(cl['peers'][0]['NodeRole'], 'IBPMonitor', 'peer role')
            eq(cl['peers_active'], 1, 'active peers')
            # NoEcho: of its own JOINs none came back; it heard only the peer's.
            eq(cl['messages']['received']['consensus.cluster'], 1, 'own messages not echoed')
            check(cl['messages']['sent']['consensus.cluster'] >= 4, 'JOINs counted')
            _, _, metrics = sc.api('/metrics')
            check('ibpdns_nats_connected 1' in metrics, '/metrics connected')
            check('ibpdns_nats_messages_received_total{subject="consensus.cluster"} 1' in metrics,
                  '/metrics received per subject')
            check(srv.password not in sc.logtext(), 'the password is not logged')
        watcher.close()


# ---- getUsage ------------------------------------------------------------------------

ROWS = [  # date, domain, member, asn, netname, cc, country, ipv6, hits
    ('2026-04-18', 'rpc.dotters.network', 'Amforc', 'AS3320', 'Deutsche Telekom AG', 'DE',
     'Germany', 0, 42),
    ('2026-04-18', 'rpc.dotters.network', 'Amforc', 'AS3320', 'Deutsche Telekom AG', 'DE',
     'Germany', 1, 5),
    ('2026-04-19', 'rpc.dotters.network', 'Gatotech', 'AS7018', 'AT&T <Services>', 'US',
     'United States', 0, 7),
    ('2026-04-20', 'polkadot.dotters.network', 'Amforc', '', '', 'GB', 'United Kingdom', 0, 3),
]


def rec(r):
    return ('{"nodeid":"","date":"%sT00:00:00Z","domain":"%s","memberName":"%s",'
            '"countryCode":"%s","asn":"%s","networkName":%s,"countryName":"%s","hits":%d,'
            '"isIPv6":%s}' % (r[0], r[1], r[2], r[5], r[3],
                              json.dumps(r[4]).replace('&', '\\u0026').replace('<', '\\u003c')
                              .replace('>', '\\u003e'), r[6], r[8], 'true' if r[7] else 'false'))


def reply(rows, error=None, null_if_empty=True):
    body = 'null' if not rows and null_if_empty else '[' + ','.join(rec(r) for r in rows) + ']'
    out = '{"nodeID":"TEST-01","usageRecords":%s' % body
    return (out + (',"error":%s' % json.dumps(error) if error else '') + '}').encode()


def usage_cases():
    """(request bytes, expected reply bytes), IBP's answers (IBP-NODE §8.2)."""
    d = lambda **kw: json.dumps(dict({'startDate': '2026-04-18', 'endDate': '2026-04-20',
                                      'domain': '', 'memberName': '', 'country': ''}, **kw)).encode()
    return [
        (d(), reply(ROWS)),
        (d(domain='rpc.dotters.network'), reply(ROWS[:3])),
        (d(domain='rpc.dotters.network', memberName='Amforc'), reply(ROWS[:2])),
        (d(domain='rpc.dotters.network', memberName='Amforc', country='de'), reply(ROWS[:2])),
        (d(domain='rpc.dotters.network', country='US'), reply(ROWS[2:3])),
        (d(memberName='Amforc'), reply([ROWS[0], ROWS[1], ROWS[3]])),
        (d(memberName='amforc'), reply([])),                     # member alone: exact
        (d(country='gb'), reply(ROWS[3:])),                      # country: any case
        (d(memberName='Amforc', country='DE'), reply(ROWS[:2])),
        (d(startDate='2026-04-19', endDate='2026-04-19'), reply(ROWS[2:3])),
        (d(domain='nothing.example'), reply([])),                # no rows: Go's nil slice
        (d(domain='RPC.Dotters.Network'), reply(ROWS[:3])),      # SQL: the collation ignores case
        (d(domain='rpc.dotters.network', memberName='amforc'), reply(ROWS[:2])),
        (d(country='de '), reply([])),                           # Go's EqualFold: no padding
        (d(domain='rpc.dotters.network\u0000x'), reply([])),     # a NUL matches nothing
        (d(startDate='2026-04-18\u00a0'), reply(ROWS)),          # Go's TrimSpace: Unicode
        (d(startDate='2026-04-21', endDate='2026-04-18'),
         reply([], 'StartDate must be before or equal to EndDate', null_if_empty=False)),
        (d(startDate='18.04.2026', endDate='2026-04-20'), reply([], null_if_empty=False)),
        (d(startDate='2026-02-30', endDate='2026-04-20'), reply([], null_if_empty=False)),
        (d(startDate=' 2026-04-18', endDate='2026-04-20 '), reply(ROWS)),   # trimmed
        (b'{"startDate":"2026-04-18"', reply([], 'unmarshal error: unexpected end of JSON input',
                                             null_if_empty=False)),
        (b'not json', reply([], "unmarshal error: invalid character 'o' in literal null "
                                "(expecting 'u')", null_if_empty=False)),
        (b'{"startDate":20260418}', reply([], 'unmarshal error: json: cannot unmarshal number '
                                          'into Go struct field UsageRequest.startDate of type '
                                          'string', null_if_empty=False)),
        (b'{"STARTDATE":"2026-04-20","EndDate":"2026-04-20"}', reply(ROWS[3:])),
    ]


def check_usage_answers(sc, srv):
    wait_connected(sc)
    cli = client_for(srv)
    for req, want in usage_cases():
        got = cli.request('dns.usage.getUsage', req, 5)
        eq(got, want, 'getUsage %r' % req)
    # Without a reply subject the records go to dns.usage.usageData; an
    # error of the request goes nowhere (IBP).
    cli.sub('dns.usage.usageData')
    cli.pub('dns.usage.getUsage', usage_cases()[1][0])
    eq(cli.next_msg(5, 'dns.usage.usageData').data, usage_cases()[1][1], 'usageData')
    cli.pub('dns.usage.getUsage', b'{bad')
    try:
        extra = cli.next_msg(1.5, 'dns.usage.usageData')
        check(False, 'an error was published on usageData: %r' % extra.data)
    except TimeoutError:
        pass
    cli.close()


def test_get_usage_sqlite():
    with natsfix.NatsServer().start() as srv:
        sc = Sidecar(extra={'Nats': nats_config([srv])}, start=False)
        db = sqlite3.connect(os.path.join(sc.dir, 'usage.sqlite'))
        db.executescript(
            'CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, date DATE,'
            ' node_id VARCHAR(32), domain_name VARCHAR(128), member_name VARCHAR(64),'
            ' network_asn VARCHAR(32), network_name VARCHAR(96), country_code VARCHAR(2),'
            ' country_name VARCHAR(64), is_ipv6 TINYINT, hits INT UNSIGNED,'
            ' CONSTRAINT uniq_traffic_dedupe UNIQUE (date,node_id,domain_name,member_name,'
            'network_asn,network_name,country_code,country_name,is_ipv6));')
        for r in ROWS:
            db.execute('INSERT INTO requests (date,node_id,domain_name,member_name,network_asn,'
                       'network_name,country_code,country_name,is_ipv6,hits) VALUES '
                       '(?,?,?,?,?,?,?,?,?,?)', (r[0], 'TEST-01') + r[1:])
        db.commit()
        db.close()
        sc.start()
        with sc:
            check_usage_answers(sc, srv)


def test_get_usage_mariadb():
    with natsfix.NatsServer().start() as srv, mariadbfix.MariaDB() as db:
        sc = Sidecar(extra={'Nats': nats_config([srv]), 'Mysql': db.config()})
        with sc:
            for i, r in enumerate(ROWS):   # two node ids: IBP sums over all of them
                node = 'TEST-01' if i % 2 == 0 else 'OTHER'
                db.query("INSERT INTO requests (date,node_id,domain_name,member_name,network_asn,"
                         "network_name,country_code,country_name,is_ipv6,hits) VALUES "
                         "('%s','%s','%s','%s','%s','%s','%s','%s',%d,%d)"
                         % ((r[0], node) + r[1:]))
            check_usage_answers(sc, srv)


# ---- overrides ---------------------------------------------------------------------------

def override(action, cc='GB', domain=HOST, ipv4=OVERRIDE_IP):
    msg = {'action': action, 'domain': domain}
    if action != 'clear':
        msg['countryCode'] = cc
    if action == 'set':
        msg['override'] = {'memberName': '', 'ipv4': ipv4, 'ipv6': ''}
    return json.dumps(msg).encode()


def gb_answer(pdns):
    return pdnsfix.a_records(pdns.query(HOST, 'A', ecs=GB_CLIENT), 'A')


def time_until(pdns, want, timeout=3):
    t0 = time.monotonic()
    ok = pdnsfix.wait_until(lambda: gb_answer(pdns) == want, timeout, 0.02)
    return time.monotonic() - t0 if ok else None


def test_overrides_reach_powerdns_within_a_second():
    with natsfix.NatsServer().start() as srv:
        sc = Sidecar(extra={'Nats': nats_config([srv])})
        with sc, pdnsfix.Pdns(sc.table) as pdns:
            wait_connected(sc)
            cli = client_for(srv)
            before = gb_answer(pdns)
            check(before and before != [OVERRIDE_IP], 'a geo answer for GB: %r' % before)
            other = pdnsfix.a_records(pdns.query(HOST, 'A', ecs='216.160.83.56/32'), 'A')
            steps = [('set', override('set'), [OVERRIDE_IP]),
                     ('remove', override('remove'), before),
                     ('set again', override('set'), [OVERRIDE_IP]),
                     ('clear', override('clear'), before),
                     ('set a third time', override('set'), [OVERRIDE_IP])]
            for name, msg, want in steps:
                cli.pub('geodns.override.update', msg)
                took = time_until(pdns, want)
                check(took is not None and took < 1.0, '%s: GB answer %r within 1 s (took %s)'
                      % (name, want, took))
                # Each coprocess looks for a new table at most every 100 ms, on its own:
                # before the next step all of them have this one.
                time.sleep(0.3)
                eq([gb_answer(pdns) for _ in range(6)], [want] * 6, '%s: every coprocess' % name)
            eq(pdnsfix.a_records(pdns.query(HOST, 'A', ecs='216.160.83.56/32'), 'A'), other,
               'a US client is not overridden')
            st = sc.status()
            eq([(e['domain'], e['country'], e['ipv4']) for e in st['overrides']['entries']],
               [(HOST, 'GB', OVERRIDE_IP)], '/status overrides (log: %s)' % '\n'.join(
                   l for l in sc.logtext().splitlines() if 'override' in l or 'generation' in l
                   or 'config' in l))
            code, _, body = sc.api('/route?name=%s&ip=81.2.69.142' % HOST)
            check(code == 200 and '"override"' in body, '/route says override: %s' % body)
            rc, out, _ = ibptest.run_table('lookup', sc.table, HOST, '81.2.69.142')
            check(rc == 0 and 'override' in out, 'ibpdns-table lookup says override: %s' % out)
            # 1,000 malformed messages: nothing changes, nothing crashes, a few lines.
            lines_before = len(sc.logtext().splitlines())
            gen = sc.generation()
            junk = [b'{', b'[]', b'{"action":"explode","domain":"x.net","countryCode":"GB"}',
                    b'{"action":"set","domain":"x.net"}', b'{"action":"set","countryCode":"GBR",'
                    b'"domain":"x.net"}', b'x' * 70000, b'{"action":"remove"}', b'\xff\xfe']
            for i in range(1000):
                cli.pub('geodns.override.update', junk[i % len(junk)])
            cli.request('dns.usage.getUsage', b'{}', 5)   # the burst has been delivered
            time.sleep(0.5)
            eq(gb_answer(pdns), [OVERRIDE_IP], 'the override stands after the burst')
            eq(sc.generation(), gen, 'no republish for bad messages')
            check(sc.proc.poll() is None, 'sidecar alive')
            new_lines = sc.logtext().splitlines()[lines_before:]
            ignored = [l for l in new_lines if 'override.update' in l]
            check(len(ignored) <= 6, 'at most a few log lines for 1,000 bad messages: %d\n%s'
                  % (len(ignored), '\n'.join(ignored)))
            eq(sc.status()['cluster']['messages']['bad']['geodns.override.update'], 1000,
               'bad messages counted')
            # A change of the members config brings the file's overrides back (IBP's rule).
            members = json.loads(real('members_professional.json'))
            next(iter(members.values()))['Details']['Website'] = 'https://changed.example'
            sc.http.set('/members.json', json.dumps(members).encode())
            took = time_until(pdns, before, timeout=10)
            check(took is not None, 'a members change clears the NATS override')
            eq(sc.status()['overrides']['count'], 0, 'no override in force')
            cli.close()


# ---- failover, outage, credentials, TLS --------------------------------------------------------

def connected_index(sc, servers):
    url = sc.status()['cluster']['server'] or ''
    for i, s in enumerate(servers):
        if url.endswith(':%d' % s.port):
            return i
    return None


def test_cluster_failover_and_total_outage():
    servers = natsfix.cluster(3)
    try:
        sc = Sidecar(extra={'Nats': nats_config(servers)})
        with sc, pdnsfix.Pdns(sc.table) as pdns:
            wait_connected(sc)
            first = connected_index(sc, servers)
            check(first is not None, 'connected to one of the servers: %s' % sc.status()['cluster'])
            survivor = servers[(first + 1) % 3]
            pdnsfix.wait_until(lambda: sc.status()['cluster']['joins_sent'] >= 3, 5, 0.1)
            watcher = client_for(survivor)
            watcher.sub('consensus.cluster')
            time.sleep(1.0)   # the start-up JOINs are through
            killed_at = time.monotonic()
            servers[first].kill()
            moved = pdnsfix.wait_until(lambda: connected_index(sc, servers) not in (None, first),
                                       5, 0.05)
            check(moved, 'reconnected to another server within 5 s: %s' % sc.status()['cluster'])
            msg = watcher.next_msg(max(0.1, killed_at + 5 - time.monotonic()), 'consensus.cluster')
            check(b'"NodeID":"TEST-01"' in msg.data and msg.time_received - killed_at < 5,
                  'JOIN re-sent within 5 s of the kill (%.1f s)' % (msg.time_received - killed_at))
            got = watcher.request('dns.usage.getUsage', b'{"startDate":"2026-01-01",'
                                  b'"endDate":"2026-01-01"}', 5)
            eq(got, b'{"nodeID":"TEST-01","usageRecords":null}', 'getUsage after failover')
            watcher.close()
            # Every server down, then back: it reconnects by itself; DNS never stops.
            outage = 20 if SANITIZED else 60
            for s in servers:
                s.stop()
            end = time.monotonic() + outage
            answered = 0
            while time.monotonic() < end:
                check(pdnsfix.a_records(pdns.query(HOST, 'A', ecs=GB_CLIENT), 'A'),
                      'DNS answers during the NATS outage')
                answered += 1
                time.sleep(0.5)
            check(not sc.status()['cluster']['connected'], 'disconnected during the outage')
            for s in servers:
                s.start()
            back = time.monotonic()
            wait_connected(sc, 15)
            watcher = client_for(servers[0])
            got = watcher.request('dns.usage.getUsage', b'{"startDate":"2026-01-01",'
                                  b'"endDate":"2026-01-01"}', 10)
            eq(got, b'{"nodeID":"TEST-01","usageRecords":null}', 'getUsage after the outage')
            print('outage %d s: %d DNS answers, reconnected %.1f s after the servers came back'
                  % (outage, answered, time.monotonic() - back))
            watcher.close()
    finally:
        for s in servers:
            s.stop()


def test_wrong_credentials_and_untrusted_certificate():
    with natsfix.NatsServer().start() as srv:
        sc = Sidecar(extra={'Nats': nats_config([srv], Pass='wrong-pass-XYZ')})
        with sc:
            ok = pdnsfix.wait_until(lambda: sc.status()['cluster']['last_error'], 10, 0.1)
            cl = sc.status()['cluster']
            check(ok and 'Authorization Violation' in cl['last_error'],
                  'a clear error in /status: %s' % cl)
            check(not cl['connected'], 'not connected')
            time.sleep(5)   # it keeps trying, every 2 s, and logs the fault once
            tries = srv.log_text().count('authentication error')
            check(tries >= 2, 'retries: %d refused attempts in the server log' % tries)
            log = sc.logtext()
            eq(len(re.findall(r'nats: .*Authorization Violation', log)), 1, 'logged once')
            check('wrong-pass-XYZ' not in log and 'wrong-pass-XYZ' not in json.dumps(sc.status()),
                  'the password appears nowhere')
            check(sc.proc.poll() is None, 'sidecar alive')
    with natsfix.NatsServer(tls=True).start() as srv:
        sc = Sidecar(extra={'Nats': nats_config([srv])})
        with sc:
            ok = pdnsfix.wait_until(lambda: sc.status()['cluster']['last_error'], 15, 0.1)
            cl = sc.status()['cluster']
            check(ok and re.search('certificate|SSL', cl['last_error']), 'untrusted certificate '
                  'in /status: %s' % cl)
            check(not cl['connected'] and sc.proc.poll() is None, 'not connected, alive')
        # The same server trusted through System.CaFile: connects.
        sc = Sidecar(extra={'Nats': nats_config([srv]), 'System': {'CaFile': srv.ca_file}})
        with sc:
            wait_connected(sc, 15)


def test_no_nats_is_a_normal_mode():
    sc = Sidecar()
    with sc:
        eq(sc.status()['cluster'], {'configured': False}, '/status without Nats.Url')
        check('nats' not in sc.logtext().lower().replace('nats.url', ''),
              'nothing logged about NATS: %s' % sc.logtext()[-1000:])


if __name__ == '__main__':
    ibptest.main(globals())
