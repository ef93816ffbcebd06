#!/usr/bin/python3
"""Member events (BEHAVIOR §6a, IBP-NODE §7.5): the sidecar records them
from the monitor snapshots it polls (SQLite, or MySQL with
Storage.RecordEvents) and answers GET /events as IBP's getMemberEvents
does, shapes and errors byte for byte. The fake monitor is the fixture
HTTP server's /results; MariaDB is a real mariadbd."""
import json
import os
import signal
import sqlite3
import time
import urllib.parse

import ibptest
import mariadbfix
import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar

DOMAIN = 'rpc.dotters.network'
URL = 'wss://rpc.dotters.network/kusama'
ZERO = '0001-01-01T00:00:00Z'
HEADERS = {'X-IBP-Results-Source': 'official'}

# IBP's DDL (ibp-geodns-libs): what the monitors' database has.
IBP_DDL = ("CREATE TABLE IF NOT EXISTS member_events (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
           " member_name VARCHAR(255), check_type VARCHAR(50), check_name VARCHAR(100),"
           " domain_name VARCHAR(255) NULL, endpoint TEXT NULL, status BOOLEAN,"
           " start_time TIMESTAMP NULL DEFAULT NULL, end_time TIMESTAMP NULL DEFAULT NULL,"
           " error TEXT NULL, additional_data JSON NULL, is_ipv6 BOOLEAN)")


def results(sc, site=(), endpoint=(), status=200, headers=HEADERS):
    """The fake monitor's next snapshot: site results of check ping (v4) and
    endpoint results of check wss on DOMAIN/URL."""
    body = ibptest.snapshot(
        site=[ibptest.site_group([ibptest.result(m, up) for m, up in site])] if site else (),
        endpoint=[ibptest.endpoint_group(DOMAIN, URL, [ibptest.result(m, up)
                                                        for m, up in endpoint])]
        if endpoint else ())
    sc.http.set('/results', json.dumps(body).encode(), status=status, headers=headers)


def events(sc, member, **args):
    """/events as (status, body text)."""
    q = urllib.parse.urlencode(dict(member=member, **args))
    code, ctype, body = sc.api('/events?' + q)
    eq(ctype, 'application/json', '/events Content-Type')
    return code, body


def event_list(sc, member, **args):
    code, body = events(sc, member, **args)
    eq(code, 200, '/events status: ' + body)
    return json.loads(body)


def ev_stats(sc):
    return sc.status()['events']


def wait_stat(sc, key, at_least, timeout=15):
    ok = pdnsfix.wait_until(lambda: ev_stats(sc)[key] >= at_least, timeout, 0.1)
    check(ok, 'events.%s did not reach %d: %r\n%s' % (key, at_least, ev_stats(sc),
                                                     sc.logtext()[-2000:]))


def sqlite_rows(sc):
    db = sqlite3.connect(os.path.join(sc.dir, 'usage.sqlite'))
    try:
        return db.execute('SELECT member_name, check_type, check_name, domain_name, endpoint,'
                          ' status, start_time, end_time, error, is_ipv6 FROM member_events'
                          ' ORDER BY id').fetchall()
    finally:
        db.close()


def sidecar(minimum=2, extra=None):
    cfg = {'System': {'MinimumOfflineTime': minimum}}
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    return Sidecar(extra=cfg)


def restart(sc, sig=signal.SIGTERM):
    sc.proc.send_signal(sig)
    sc.proc.wait(15)
    sc.log.write('---- restart ----\n')
    sc.start()


def check_shape(ev, closed, what):
    keys = ['CheckType', 'CheckName', 'MemberName', 'DomainName', 'Endpoint', 'Status',
            'ErrorText', 'Data', 'IsIPv6', 'StartTime', 'EndTime', 'StartDate', 'EndDate']
    if ev['CheckType'] == 'site':
        keys = [k for k in keys if k not in ('DomainName', 'Endpoint')]
    eq(list(ev), keys, what + ': keys in IBP order')
    eq(ev['StartDate'], ev['StartTime'][:10], what + ': StartDate')
    if closed:
        check(ev['EndTime'] >= ev['StartTime'], what + ': EndTime after StartTime')
        eq(ev['EndDate'], ev['EndTime'][:10], what + ': EndDate')
    else:
        eq((ev['EndTime'], ev['EndDate']), (ZERO, ''), what + ': an open event')


def test_offline_then_online_is_one_closed_event():
    with sidecar(minimum=2) as sc:
        results(sc, site=[('Amforc', False), ('Dwellir', True)],
                endpoint=[('Stake Plus', False)])
        wait_stat(sc, 'opened', 2)
        open_now = event_list(sc, 'Amforc')
        eq(len(open_now), 1, 'one open event for Amforc')
        ev = open_now[0]
        check_shape(ev, False, 'open site event')
        eq((ev['CheckType'], ev['CheckName'], ev['MemberName'], ev['Status'], ev['ErrorText'],
            ev['Data'], ev['IsIPv6']), ('site', 'ping', 'Amforc', False, 'down', {}, False),
           'the open event')
        ep = event_list(sc, 'Stake Plus', domain=DOMAIN)
        eq(len(ep), 1, 'the endpoint event, by domain')
        check_shape(ep[0], False, 'open endpoint event')
        eq((ep[0]['DomainName'], ep[0]['Endpoint']), (DOMAIN, URL), 'domain and endpoint')
        eq(event_list(sc, 'Stake Plus', domain='other.example'), [], 'another domain')
        eq(event_list(sc, 'Dwellir'), [], 'an online member has none')
        time.sleep(3)   # longer than MinimumOfflineTime
        results(sc, site=[('Amforc', True), ('Dwellir', True)], endpoint=[('Stake Plus', True)])
        wait_stat(sc, 'closed', 2)
        rows = sqlite_rows(sc)
        eq(len(rows), 2, 'exactly two rows in SQLite: %r' % rows)
        eq([r[:6] for r in rows], [('Amforc', 'site', 'ping', None, None, 0),
                                   ('Stake Plus', 'endpoint', 'wss', DOMAIN, URL, 0)],
           'the rows')
        check(all(r[7] is not None for r in rows), 'both closed in SQLite')
        closed = event_list(sc, 'Amforc')
        eq(len(closed), 1, 'still one event for Amforc')
        check_shape(closed[0], True, 'closed event')
        eq(closed[0]['StartTime'], ev['StartTime'], 'the same event, closed')
        gap = (time.mktime(time.strptime(closed[0]['EndTime'], '%Y-%m-%dT%H:%M:%SZ'))
               - time.mktime(time.strptime(closed[0]['StartTime'], '%Y-%m-%dT%H:%M:%SZ')))
        check(3 <= gap <= 10, 'lasted as long as the monitor said: %r' % gap)
        # The same snapshot again (and again) changes nothing.
        time.sleep(2.5)
        eq(len(sqlite_rows(sc)), 2, 'no more rows for unchanged snapshots')


def test_a_blip_shorter_than_minimum_offline_time_leaves_none():
    with sidecar(minimum=30) as sc:
        results(sc, site=[('Amforc', False)])
        wait_stat(sc, 'opened', 1)
        eq(len(event_list(sc, 'Amforc')), 1, 'open while it lasts')
        results(sc, site=[('Amforc', True)])
        wait_stat(sc, 'deleted_short', 1)
        eq(sqlite_rows(sc), [], 'a blip leaves no row')
        eq(event_list(sc, 'Amforc'), [], 'nor an event')
        eq(ev_stats(sc)['closed'], 0, 'nothing closed')


def test_restart_while_open_opens_no_duplicate():
    with sidecar(minimum=1) as sc:
        results(sc, site=[('Amforc', False)])
        wait_stat(sc, 'opened', 1)
        start = event_list(sc, 'Amforc')[0]['StartTime']
        restart(sc)
        wait_stat(sc, 'snapshots', 1)
        eq(ev_stats(sc)['open'], 1, 'the open row continued after a restart')
        time.sleep(1.5)
        eq(len(sqlite_rows(sc)), 1, 'no second row after a restart')
        restart(sc, signal.SIGKILL)
        wait_stat(sc, 'snapshots', 1)
        time.sleep(1.5)
        eq(len(sqlite_rows(sc)), 1, 'no second row after a SIGKILL')
        results(sc, site=[('Amforc', True)])
        wait_stat(sc, 'closed', 1)
        rows = sqlite_rows(sc)
        eq(len(rows), 1, 'one row')
        check(rows[0][7] is not None, 'closed')
        eq(event_list(sc, 'Amforc')[0]['StartTime'], start, 'the event the first run opened')


def test_an_open_row_that_starts_after_its_close_is_closed():
    # The wall clock stepped back (or another writer's clock is ahead): the
    # open row starts after the result turned online. It is closed at its
    # own start, not left open to hide the next outage.
    sc = Sidecar(extra={'System': {'MinimumOfflineTime': 1}}, start=False)
    db = sqlite3.connect(os.path.join(sc.dir, 'usage.sqlite'))
    db.executescript(IBP_DDL.replace('BIGINT AUTO_INCREMENT', 'INTEGER')
                     .replace('TIMESTAMP NULL DEFAULT NULL', 'TEXT').replace('JSON', 'TEXT'))
    ahead = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(time.time() + 600))
    db.execute("INSERT INTO member_events (member_name, check_type, check_name, status,"
               " start_time, error, additional_data, is_ipv6) VALUES"
               " ('Amforc', 'site', 'ping', 0, ?, 'down', '{}', 0)", (ahead,))
    db.commit()
    db.close()
    results(sc, site=[('Amforc', True)])
    sc.start()
    with sc:
        wait_stat(sc, 'closed', 1)
        rows = sqlite_rows(sc)
        eq(len(rows), 1, 'one row: %r' % rows)
        eq(rows[0][7], rows[0][6], 'closed at its own start')
        results(sc, site=[('Amforc', False)])
        wait_stat(sc, 'opened', 1)
        time.sleep(1.5)
        results(sc, site=[('Amforc', True)])
        wait_stat(sc, 'closed', 2)
        rows = sqlite_rows(sc)
        eq(len(rows), 2, 'the next outage has its row: %r' % rows)
        check(rows[1][7] is not None and rows[1][7] >= rows[1][6], 'and it is closed')
        eq(ev_stats(sc)['open'], 0, 'nothing left open')


def test_a_failed_poll_or_a_missing_result_changes_nothing():
    with sidecar(minimum=1) as sc:
        results(sc, site=[('Amforc', False), ('Dwellir', False)])
        wait_stat(sc, 'opened', 2)
        # The monitor fails: no event is invented or closed.
        sc.http.set('/results', b'oops', status=500)
        time.sleep(2.5)
        sc.http.set('/results', b'{"SiteResults": [', headers=HEADERS)
        time.sleep(2)
        results(sc, site=[('Amforc', True), ('Dwellir', True)],
                headers={'X-IBP-Results-Source': 'local'})   # not consensus: ignored
        time.sleep(2)
        eq(len(sqlite_rows(sc)), 2, 'two rows')
        check(all(r[7] is None for r in sqlite_rows(sc)), 'both still open after failed polls')
        # A snapshot without Dwellir: its event stays open; Amforc closes.
        results(sc, site=[('Amforc', True)])
        wait_stat(sc, 'closed', 1)
        time.sleep(1.5)
        rows = {r[0]: r for r in sqlite_rows(sc)}
        check(rows['Amforc'][7] is not None, 'Amforc closed')
        check(rows['Dwellir'][7] is None, 'Dwellir left open while not reported')
        results(sc, site=[('Dwellir', True)])
        wait_stat(sc, 'closed', 2)
        eq(len(sqlite_rows(sc)), 2, 'still two rows')


def test_bad_arguments_get_ibps_errors():
    with sidecar() as sc:
        results(sc, site=[('Amforc', False)])
        wait_stat(sc, 'opened', 1)
        cases = [
            ({'end': 'yesterday'}, 400, '{"result":"invalid endTime"}'),
            ({'start': 'x', 'end': 'y'}, 400, '{"result":"invalid endTime"}'),   # end first
            ({'start': '2026-02-30T00:00:00Z'}, 400, '{"result":"invalid startTime"}'),
            ({'start': '2026-01-01t00:00:00Z'}, 400, '{"result":"invalid startTime"}'),
            ({'start': '2026-01-01T00:00:00'}, 400, '{"result":"invalid startTime"}'),
            ({'end': '2026-01-01T00:00:60Z'}, 400, '{"result":"invalid endTime"}'),
            ({'end': '2026-01-01T00:00:00+25:00'}, 400, '{"result":"invalid endTime"}'),
            ({'end': '2026-01-01T00:00:00Z '}, 400, '{"result":"invalid endTime"}'),
        ]
        for args, code, body in cases:
            eq(events(sc, 'Amforc', **args), (code, body), 'arguments %r' % args)
        # What Go's parser takes: a fraction, an offset, a one-digit hour.
        eq(len(event_list(sc, 'Amforc', start='2000-01-01T0:00:00.5+01:00')), 1,
           'Go-valid start')
        far = '2100-01-01T00:00:00Z'
        eq(event_list(sc, 'Amforc', start=far, end='2000-01-01T00:00:00Z'), [],
           'start after end: no rows, no error (IBP)')
        eq(event_list(sc, 'Amforc', start=far), [], 'start after the default end')
        eq(event_list(sc, 'Amforc', end='2000-01-01T00:00:00Z'), [],
           'end long ago: the default start is 24 h before it')
        eq(events(sc, ''), (200, '[]'), 'no member: IBP matches member_name = ""')
        code, _, body = sc.api('/events')
        eq((code, body), (200, '[]'), 'no arguments at all')
        eq(len(event_list(sc, 'amforc')), 1, 'the member in any case, as MySQL compares')
        code, _, body = sc.api('/events?member=%FF')
        eq(code, 400, 'a member that is not UTF-8')
        check('"error"' in body, 'our own error body for a malformed argument')


def mysql_events(db):
    return db.query('SELECT member_name, check_type, status, end_time IS NULL FROM'
                    ' member_events ORDER BY id')


def test_mariadb_read_only_then_recording():
    with mariadbfix.MariaDB() as db:
        with sidecar(extra={'Mysql': db.config()}) as sc:
            code, body = events(sc, 'Amforc')
            eq(code, 500, 'no member_events table: the database error, as IBP')
            check(json.loads(body)['result'].startswith('mysql'), 'IBP\'s {"result": error}')
            db.query(IBP_DDL)
            db.query("SET time_zone = '+00:00'; INSERT INTO member_events (member_name,"
                     " check_type, check_name, domain_name, endpoint, status, start_time,"
                     " end_time, error, additional_data, is_ipv6) VALUES"
                     " ('Amforc', 'endpoint', 'wss', 'rpc.dotters.network', '%s', 0,"
                     " '2026-04-18 10:00:00', '2026-04-18 11:30:05', 'timeout <&>',"
                     " '{\"z\": 1, \"a\": [1.5, \"x\"], \"n\": null}', 1),"
                     " ('Amforc', 'site', 'ping', NULL, NULL, 0, '2026-04-18 12:00:00', NULL,"
                     " NULL, NULL, 0)" % URL)
            window = {'start': '2026-04-18T00:00:00Z', 'end': '2026-04-19T00:00:00Z'}
            code, body = events(sc, 'Amforc', **window)
            eq(code, 200, '/events from MariaDB')
            want = ('[{"CheckType":"endpoint","CheckName":"wss","MemberName":"Amforc",'
                    '"DomainName":"rpc.dotters.network","Endpoint":"%s","Status":false,'
                    '"ErrorText":"timeout \\u003c\\u0026\\u003e","Data":{"a":[1.5,"x"],'
                    '"n":null,"z":1},"IsIPv6":true,"StartTime":"2026-04-18T10:00:00Z",'
                    '"EndTime":"2026-04-18T11:30:05Z","StartDate":"2026-04-18",'
                    '"EndDate":"2026-04-18"},'
                    '{"CheckType":"site","CheckName":"ping","MemberName":"Amforc",'
                    '"Status":false,"ErrorText":"","Data":null,"IsIPv6":false,'
                    '"StartTime":"2026-04-18T12:00:00Z","EndTime":"0001-01-01T00:00:00Z",'
                    '"StartDate":"2026-04-18","EndDate":""}]' % URL)
            eq(body, want, 'IBP\'s bytes for a closed and an open event')
            eq(len(event_list(sc, 'Amforc', domain=DOMAIN, **window)), 1, 'by domain')
            eq(event_list(sc, 'Amforc', start='2026-04-18T11:00:00+01:00',
                          end='2026-04-18T10:00:00Z'), json.loads(want)[:1],
               'bounds inclusive, offsets honoured')
            eq(event_list(sc, 'Amforc', start='0000-01-01T00:00:00Z',
                          end='9999-12-31T23:59:59-24:00'), json.loads(want),
               'an end in year 10000 (a valid Go time) holds every event, as SQLite answers')
            eq(ev_stats(sc), {'recording': False}, 'MySQL without RecordEvents: not recording')
            results(sc, site=[('Dwellir', False)])
            time.sleep(3)
            eq(len(mysql_events(db)), 2, 'RecordEvents absent with MySQL: nothing written')
        with sidecar(minimum=1, extra={'Mysql': db.config(),
                                       'Storage': {'RecordEvents': False}}) as sc:
            results(sc, site=[('Dwellir', False)])
            time.sleep(3)
            eq(len(mysql_events(db)), 2, 'RecordEvents false: nothing written')
        with sidecar(minimum=1, extra={'Mysql': db.config(),
                                       'Storage': {'RecordEvents': True}}) as sc:
            results(sc, site=[('Dwellir', False)])
            wait_stat(sc, 'opened', 1)
            eq(ev_stats(sc)['open'], 2, 'the store\'s open row (Amforc) and Dwellir\'s')
            eq(mysql_events(db)[2], ['Dwellir', 'site', '0', '1'], 'RecordEvents true: written')
            ev = event_list(sc, 'Dwellir')
            eq(len(ev), 1, 'served from MariaDB')
            check_shape(ev[0], False, 'open event from MariaDB')
            # The database goes down: the close waits and goes in once it is back.
            db.stop()
            time.sleep(2)
            results(sc, site=[('Dwellir', True)])
            ok = pdnsfix.wait_until(lambda: ev_stats(sc)['failures'] >= 1, 30, 0.2)
            check(ok, 'the write failed while MariaDB was down: %r' % ev_stats(sc))
            eq(ev_stats(sc)['queued'], 1, 'the close waits')
            db.start()
            wait_stat(sc, 'closed', 1, timeout=60)
            rows = mysql_events(db)
            eq(len(rows), 3, 'no row doubled')
            eq(rows[2], ['Dwellir', 'site', '0', '0'], 'closed once MariaDB was back')
            check(mariadbfix.PASSWORD not in sc.logtext(), 'the password is not logged')


if __name__ == '__main__':
    ibptest.main(globals())
