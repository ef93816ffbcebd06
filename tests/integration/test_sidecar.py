#!/usr/bin/python3
"""ibpdns-sidecar (issue 4): inputs from a fixture HTTP server reach the
PowerDNS answer; faults keep the last good state and show in /status and
/metrics; MaxMind downloads; signals; the systemd unit."""
import json
import os
import re
import subprocess
import tempfile
import time

import ibptest
import pdnsfix
from fixture_http import FixtureServer, make_mmdb_tar_gz
from ibptest import check, eq
from sidecarfix import SIDECAR, Sidecar, real

HOST = 'polkadot.dotters.network'
LONDON = '81.2.69.142'
AMFORC, TURBOFLAKES = '91.90.166.200', '154.53.251.179'


def answer(pdns, ecs=LONDON + '/32'):
    return pdnsfix.a_records(pdns.query(HOST, 'A', ecs=ecs))


def results_offline(member, ipv6=False):
    return json.dumps({'SiteResults': [{'CheckName': 'ping', 'IsIPv6': ipv6, 'Results': [
        {'Status': False, 'MemberName': member, 'IsIPv6': ipv6,
         'Checktime': '2026-04-18T10:00:00Z'}]}]}).encode()


def test_health_change_reaches_powerdns_within_2s():
    with Sidecar(poll=1) as sc, pdnsfix.Pdns(sc.table) as pdns:
        eq(answer(pdns), [AMFORC], 'London before')
        gen = sc.generation()
        sc.http.set('/results', results_offline('Amforc'), headers={'X-IBP-Results-Source': 'official'})
        t0 = time.monotonic()
        ok = pdnsfix.wait_until(lambda: answer(pdns) != [AMFORC], 5, interval=0.05)
        elapsed = time.monotonic() - t0
        check(ok, 'answer did not change after Amforc went offline')
        check(elapsed < 2.0, 'health change took %.2fs to reach PowerDNS' % elapsed)
        st = sc.status()
        check(st['table']['generation'] > gen, 'generation')
        eq(st['table']['builds_health_only'] >= 1, True, 'the republish reused the geo classes')
        phases = st['table']['last_build_phases_seconds']
        eq(sorted(phases), ['check', 'compile', 'geo', 'write'], 'build phases')
        check(all(v >= 0 for v in phases.values()) and phases['compile'] > 0 and
              phases['write'] > 0, 'phase times %r' % phases)
        check(sum(phases.values()) <= st['table']['last_build_seconds'] + 1e-3,
              'the phases (%r) are parts of the build (%r s)'
              % (phases, st['table']['last_build_seconds']))
        states = {c['member']: c['state'] for c in st['hosts'][HOST]['A']}
        eq(states['Amforc'], 'offline', '/status member state')
        sc.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'official'})
        check(pdnsfix.wait_until(lambda: answer(pdns) == [AMFORC], 5), 'Amforc back online')


def test_config_changes_reach_powerdns_within_a_reload_period():
    with Sidecar(reload=2) as sc, pdnsfix.Pdns(sc.table) as pdns:
        eq(answer(pdns), [AMFORC], 'London before')
        members = json.loads(real('members_professional.json'))
        members['Amforc']['Override'] = True
        sc.http.set('/members.json', json.dumps(members).encode())
        check(pdnsfix.wait_until(lambda: answer(pdns) != [AMFORC], 2 + 3), 'members change not applied')
        static = json.loads(real('geodns-static.json'))
        static.append({'qname': 'new.dotters.network', 'qtype': 'A', 'content': '192.0.2.99',
                       'ttl': 60, 'auth': True, 'domain_id': 0})
        sc.http.set('/static.json', json.dumps(static).encode())
        check(pdnsfix.wait_until(
            lambda: pdnsfix.a_records(pdns.query('new.dotters.network', 'A')) == ['192.0.2.99'], 5),
            'static record change not applied')
        services = json.loads(real('services_rpc.json'))
        services['Polkadot']['Providers']['Dotters']['RpcUrls'].append('wss://newhost.dotters.network')
        sc.http.set('/services.json', json.dumps(services).encode())
        check(pdnsfix.wait_until(
            lambda: pdnsfix.a_records(pdns.query('newhost.dotters.network', 'A', ecs=LONDON + '/32')) != [], 5),
            'services change not applied')


def test_identical_content_causes_no_new_table():
    with Sidecar(reload=1, poll=1) as sc:
        gen = sc.generation()
        # Same bytes with new validators (no 304), and a results body with new
        # check times that changes nobody's state.
        sc.http.set('/members.json', real('members_professional.json'),
                    headers={'ETag': '"other"'})
        sc.http.set('/results', json.dumps({'SiteResults': [{'CheckName': 'ping', 'IsIPv6': False,
            'Results': [{'Status': True, 'MemberName': 'Amforc', 'Checktime': '2026-04-18T10:00:01Z'}]}]}).encode(),
            headers={'X-IBP-Results-Source': 'official'})
        time.sleep(3.5)
        eq(sc.generation(), gen, 'generation after identical inputs')
        check(sc.source('members')['attempts'] >= 3, 'members was fetched again')


def fault_test(sc, source, set_fault, expect_in_error, clear):
    gen = sc.generation()
    mtime = os.stat(sc.table).st_mtime_ns
    set_fault()
    check(pdnsfix.wait_until(lambda: sc.source(source)['last_error'] is not None, 8),
          '%s: fault not reported in /status' % source)
    src = sc.source(source)
    check(re.search(expect_in_error, src['last_error'], re.I), '%s error %r lacks %r'
          % (source, src['last_error'], expect_in_error))
    check(src['failing_since'] is not None and src['ok'] is False, 'failing_since')
    time.sleep(2.5)   # more polls of the same bad content: still a fault, never a 304 "recovery"
    check(sc.source(source)['failing_since'] is not None,
          '%s: fault vanished while the server still serves it' % source)
    eq(sc.generation(), gen, '%s: a fault must not publish a table' % source)
    eq(os.stat(sc.table).st_mtime_ns, mtime, 'table untouched')
    code, _, metrics = sc.api('/metrics')
    check('ibpdns_source_up{source="%s"} 0' % source in metrics, 'metrics source_up 0')
    clear()
    check(pdnsfix.wait_until(lambda: sc.source(source)['failing_since'] is None, 8),
          '%s: recovery not reported' % source)


def test_faults_keep_the_last_good_state():
    with Sidecar(reload=1, poll=1, timeout=1, extra={'System': {'FetchMaxBytes': 200000}}) as sc, \
            pdnsfix.Pdns(sc.table) as pdns:
        good = real('members_professional.json')
        restore = lambda: sc.http.set('/members.json', good, headers={'ETag': '"fresh%f"' % time.time()})
        fault_test(sc, 'members', lambda: sc.http.set('/members.json', b'oops', status=500),
                   r'HTTP 500', restore)
        fault_test(sc, 'members', lambda: sc.http.set('/members.json', good, delay=3),
                   r'tim', restore)
        fault_test(sc, 'members', lambda: sc.http.set('/members.json', b'{"garbage": [1, 2'),
                   r'members.json.*JSON', restore)
        fault_test(sc, 'members', lambda: sc.http.set('/members.json', b'{' + b' ' * 300000 + b'}'),
                   r'limit|large|bytes', restore)
        eq(answer(pdns), [AMFORC], 'still answering from the last good state')
        log = sc.logtext()
        check(log.count('members: HTTP 500') <= 1, 'a repeating fault is logged once: %r' % log[-1500:])


def test_self_signed_tls_is_refused_unless_trusted():
    tls = FixtureServer(tls=True)
    tls.start()
    try:
        with Sidecar(reload=1) as sc:
            tls.set('/services.json', real('services_rpc.json'))
            sc.config['System']['ConfigUrls']['ServicesConfig'] = tls.url('/services.json')
            sc.write_config()
            check(pdnsfix.wait_until(lambda: sc.source('services')['last_error'] is not None, 8),
                  'TLS failure not reported')
            check(re.search(r'certificate|TLS|SSL', sc.source('services')['last_error'], re.I),
                  sc.source('services')['last_error'])
            # The config file changed, so a table may follow, but from the last
            # good services: polkadot is still served.
            code, _, body = sc.api('/route?name=%s&ip=%s' % (HOST, LONDON))
            eq([a['address'] for a in json.loads(body)['answers']], [AMFORC], 'last good services')
            check(not any(m == 'GET' and 'Authorization' in h for m, h in tls.requests('/services.json')),
                  'no credentials sent')
            sc.config['System']['CaFile'] = tls.certfile
            sc.write_config()
            check(pdnsfix.wait_until(lambda: sc.source('services')['failing_since'] is None, 8),
                  'trusted CA not accepted: %s' % sc.source('services')['last_error'])
    finally:
        tls.stop()


def test_monitor_down_keeps_snapshot_and_age_grows():
    with Sidecar(poll=1) as sc, pdnsfix.Pdns(sc.table) as pdns:
        sc.http.set('/results', results_offline('Amforc'), headers={'X-IBP-Results-Source': 'official'})
        check(pdnsfix.wait_until(lambda: answer(pdns) != [AMFORC], 5), 'offline snapshot applied')
        sc.http.set('/results', b'down', status=503)
        time.sleep(2.5)
        st = sc.status()
        check(st['sources']['results']['last_error'], 'monitor fault reported')
        a1 = st['health']['snapshot_age_seconds']
        time.sleep(2)
        a2 = sc.status()['health']['snapshot_age_seconds']
        check(a2 >= a1 + 1, 'snapshot age grows: %r -> %r' % (a1, a2))
        check(answer(pdns) != [AMFORC], 'last snapshot still in force')
        # The monitor's local view is not consensus: ignored, and reported.
        sc.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'local'})
        time.sleep(3)   # several polls: a local snapshot stays a fault
        check('local' in (sc.source('results')['last_error'] or ''), 'local snapshot reported')
        check(answer(pdns) != [AMFORC], 'local snapshot ignored')


def check_maxmind_up(sc, mode):
    eq(sc.source('maxmind_city')['ok'], True, '%s database: /status sources.maxmind_city.ok' % mode)
    _, _, metrics = sc.api('/metrics')
    check('ibpdns_source_up{source="maxmind_city"} 1' in metrics,
          '%s database: ibpdns_source_up{source="maxmind_city"} is not 1' % mode)


def test_maxmind_local_file_is_up():
    """A local database (no licence key, as scripts/run uses) is loaded and
    used: an alert on source_up == 0 must not fire (it showed 0 and ok false)."""
    with Sidecar() as sc:
        check(sc.status()['ready'], 'a table from the local database')
        check_maxmind_up(sc, 'local')


def test_maxmind_download_once_then_only_when_changed():
    server = FixtureServer()
    server.start()
    city = make_mmdb_tar_gz(ibptest.CITY_MMDB)
    dl = '/GeoLite2-City/download'
    server.set(dl, city, headers={'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT'})
    server.set('/GeoLite2-ASN/download', make_mmdb_tar_gz(os.path.join(ibptest.MAXMIND, 'GeoLite2-ASN-Test.mmdb'),
               inner_name='GeoLite2-ASN_20240101/GeoLite2-ASN.mmdb'),
               headers={'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT'})
    extra = {'Maxmind': {'AccountID': '123', 'LicenseKey': 'sekrit-key',
                         'DownloadUrl': server.url('').rstrip('/'), 'RefreshSeconds': 1}}
    with Sidecar(server=server, mmdb=None, extra=extra, reload=60) as sc:
        gets = lambda: [m for m, _ in server.requests(dl) if m == 'GET']
        eq(len(gets()), 1, 'downloaded once')
        check(os.path.exists(os.path.join(sc.dir, 'maxmind', 'CityLite.mmdb')), 'database in place')
        check_maxmind_up(sc, 'downloaded')
        time.sleep(3)
        eq(len(gets()), 1, 'not downloaded again while unchanged')
        check(any(m == 'HEAD' for m, _ in server.requests(dl)), 'checked with HEAD')
        gen = sc.generation()
        server.set(dl, make_mmdb_tar_gz(os.path.join(ibptest.MAXMIND, 'GeoLite2-City-Test.mmdb')),
                   headers={'Last-Modified': 'Tue, 02 Jan 2024 00:00:00 GMT'})
        sc.wait_generation_above(gen, 8)
        eq(len(gets()), 2, 'downloaded again when changed')
        check(sc.status()['table']['builds_full'] >= 2, 'the new database was walked')
        server.set(dl, b'this is not a tar.gz', headers={'Last-Modified': 'Wed, 03 Jan 2024 00:00:00 GMT'})
        check(pdnsfix.wait_until(lambda: sc.source('maxmind_city')['last_error'] is not None, 8),
              'corrupt archive reported')
        check(os.path.getsize(os.path.join(sc.dir, 'maxmind', 'CityLite.mmdb')) > 0, 'old database kept')
        check('sekrit-key' not in sc.logtext() and 'sekrit-key' not in json.dumps(sc.status()),
              'the licence key never appears')


def test_metrics_are_valid_prometheus_text():
    with Sidecar() as sc:
        code, ctype, text = sc.api('/metrics')
        eq(code, 200, '/metrics')
        check(ctype.startswith('text/plain'), ctype)
        names_typed = set()
        sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')
        samples = 0
        for line in text.splitlines():
            if line.startswith('# TYPE '):
                _, _, name, kind = line.split(' ', 3)
                check(kind in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), line)
                check(name not in names_typed, 'TYPE twice: ' + name)
                names_typed.add(name)
            elif line.startswith('# HELP ') or not line:
                continue
            else:
                m = sample.match(line)
                check(m, 'not a Prometheus sample line: %r' % line)
                check(m.group(1) in names_typed, 'sample before its TYPE: %r' % line)
                samples += 1
        check(samples >= 10, 'samples: %d' % samples)
        check(text.endswith('\n'), 'ends with a newline')


def test_route_status_and_errors():
    with Sidecar() as sc:
        code, _, body = sc.api('/route?name=%s&ip=%s' % (HOST, LONDON))
        eq(code, 200, '/route')
        r = json.loads(body)
        eq([a['address'] for a in r['answers']], [AMFORC], '/route answer')
        eq(sc.api('/route?name=x')[0], 400, '/route without ip')
        eq(sc.api('/route?name=x&ip=not-an-ip')[0], 400, '/route bad ip')
        eq(sc.api('/nothing')[0], 404, 'unknown path')
        eq(sc.api('/status', method='DELETE')[0], 405, 'wrong method')


def test_token_required_off_loopback():
    sc = Sidecar(listen='0.0.0.0', start=False)
    try:
        sc.start(wait=False)
        eq(sc.proc.wait(10), 1, 'refuses to listen off loopback without a token')
        check('BearerToken' in sc.logtext(), sc.logtext()[-500:])
    finally:
        sc.stop()
    with Sidecar(listen='0.0.0.0', token='t0ken', start=False) as sc:
        sc.start(wait=False)
        check(pdnsfix.wait_until(lambda: sc.api('/status', token='t0ken')[0] == 200, 10), 'with token')
        eq(sc.api('/status')[0], 401, 'without token')
        eq(sc.api('/status', token='wrong')[0], 401, 'wrong token')


def test_sighup_reloads_now_and_sigterm_stops():
    with Sidecar(reload=3600) as sc:
        gen = sc.generation()
        members = json.loads(real('members_professional.json'))
        members['Amforc']['Override'] = True
        sc.http.set('/members.json', json.dumps(members).encode())
        sc.proc.send_signal(1)   # SIGHUP
        sc.wait_generation_above(gen, 5)
        t0 = time.monotonic()
        sc.proc.terminate()
        eq(sc.proc.wait(10), 0, 'clean exit on SIGTERM')
        check(time.monotonic() - t0 < 5, 'stopped promptly')


def test_systemd_unit_verifies():
    unit = os.path.join(ibptest.SRC, 'packaging', 'ibpdns-sidecar.service')
    with tempfile.TemporaryDirectory() as d:
        text = open(unit).read().replace('/usr/sbin/ibpdns-sidecar', SIDECAR)
        path = os.path.join(d, 'ibpdns-sidecar.service')
        with open(path, 'w') as f:
            f.write(text)
        r = subprocess.run(['systemd-analyze', 'verify', path], capture_output=True, text=True)
        eq(r.returncode, 0, 'systemd-analyze verify: ' + r.stderr)
        check(r.stderr.strip() == '', 'verify warnings: ' + r.stderr)
    text = open(unit).read()
    for needed in ('NoNewPrivileges=yes', 'ProtectSystem=strict', 'User=ibpdns', 'Type=notify',
                   'StateDirectory=ibpdns'):
        check(needed in text, 'unit lacks ' + needed)


if __name__ == '__main__':
    ibptest.main(globals())
