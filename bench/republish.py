#!/usr/bin/python3
"""Health-only republish by ibpdns-sidecar, the way production does it.

The sidecar reads the real IBP configs (examples/, as local paths), the full
GeoLite2-City (as WORK/maxmind/CityLite.mmdb, a symlink) and polls a monitor
/results served here on 127.0.0.1 every second. After its first table (which
walks the MaxMind tree), the snapshot alternates between "Amforc offline"
and "everybody online"; every change must give a new table built from the
kept geo classes ("builds_health_only" grows, "builds_full" does not). The
build time is the sidecar's own (`last_build_seconds` of /status: geo check,
compile, validate, write and rename the table).

usage: republish.py SIDECAR TABLE-TOOL WORK ROUNDS [CONFIGS DOWN [NETS [MAP]]]   (one JSON line)
CONFIGS: a directory with members.json, services.json and static.json (as
bench/scale/gen.py writes them) instead of the IBP configs, DOWN the member
key that goes down and up, NETS a Routing.Nets file and MAP a Routing.Map file
(bench/nets-cost --keep writes them; "" for none). The first "offline" table is checked with
`TABLE-TOOL lookup`: the member must be skipped as offline.
Only 127.0.0.1; the sidecar is stopped by its PID.
"""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(SRC, 'examples')
MMDB = os.path.join(SRC, 'var', 'geoip', 'GeoLite2-City.mmdb')


CONFIGS = {'members': os.path.join(EXAMPLES, 'members_professional.json'),
           'services': os.path.join(EXAMPLES, 'services_rpc.json'),
           'static': os.path.join(EXAMPLES, 'geodns-static.json')}


def snapshot(down):
    with open(CONFIGS['members']) as f:
        members = json.load(f)
    res = [{'Status': k != down, 'MemberName': m['Details']['Name'],
            'ErrorText': 'down' if k == down else '', 'Data': {}, 'IsIPv6': False,
            'Checktime': '2026-04-18T10:00:00Z'} for k, m in members.items()]
    return json.dumps({'SiteResults': [{'CheckName': 'ping', 'IsIPv6': False, 'Results': res}],
                       'DomainResults': [], 'EndpointResults': []}).encode()


class Monitor(http.server.BaseHTTPRequestHandler):
    body = b'{}'

    def do_GET(self):   # noqa: N802 - http.server's name
        if self.path != '/results':
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('X-IBP-Results-Source', 'official')
        self.send_header('Content-Length', str(len(Monitor.body)))
        self.end_headers()
        self.wfile.write(Monitor.body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def routing_settings(work):
    routing = {'TablePath': os.path.join(work, 'routing.tbl')}
    for key, i in (('Nets', 7), ('Map', 8)):
        if len(sys.argv) > i and sys.argv[i]:
            routing[key] = os.path.abspath(sys.argv[i])
    return routing


def main():
    sidecar, tool, work, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    down = 'Amforc'
    if len(sys.argv) > 5:
        for k, name in (('members', 'members.json'), ('services', 'services.json'),
                        ('static', 'static.json')):
            CONFIGS[k] = os.path.join(sys.argv[5], name)
        down = sys.argv[6]
    with open(CONFIGS['members']) as f:
        down_name = json.load(f)[down]['Details']['Name']
    os.makedirs(os.path.join(work, 'maxmind'), exist_ok=True)
    link = os.path.join(work, 'maxmind', 'CityLite.mmdb')
    if not os.path.exists(link):
        os.symlink(MMDB, link)
    Monitor.body = snapshot(None)
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Monitor)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    api = free_port()
    config = {
        'System': {'LogLevel': 'Info', 'ConfigReloadTime': 3600,
                   'ConfigUrls': {'MembersConfig': CONFIGS['members'],
                                  'ServicesConfig': CONFIGS['services'],
                                  'StaticDNSConfig': CONFIGS['static']}},
        'Maxmind': {'MaxmindDBPath': os.path.join(work, 'maxmind')},
        'Nats': {'NodeID': 'BENCH-01', 'Url': 'nats://127.0.0.1:4222'},
        'DnsApi': {'ListenAddress': '127.0.0.1', 'ListenPort': str(api),
                   'MonitorAddress': '127.0.0.1', 'MonitorPort': str(httpd.server_address[1]),
                   'RefreshIntervalSeconds': 1},
        'Routing': routing_settings(work),
    }
    with open(os.path.join(work, 'node.json'), 'w') as f:
        json.dump(config, f)
    log = open(os.path.join(work, 'sidecar.log'), 'w')
    proc = subprocess.Popen([sidecar, '--config', os.path.join(work, 'node.json')], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

    def status():
        with urllib.request.urlopen('http://127.0.0.1:%d/status' % api, timeout=5) as r:
            return json.loads(r.read())['table']

    def wait_generation(above, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SystemExit('republish: the sidecar exited (%s): see %s/sidecar.log'
                                 % (proc.returncode, work))
            try:
                t = status()
                if t['generation'] > above:
                    return t
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit('republish: no table generation above %d within %ds: see %s/sidecar.log'
                         % (above, timeout, work))

    try:
        first = wait_generation(0, 300)
        times, phases, gen, full = [], [], first['generation'], first['builds_full']
        health = first['builds_health_only']
        for i in range(rounds * 2):
            Monitor.body = snapshot(down if i % 2 == 0 else None)
            t = wait_generation(gen, 15)
            if t['builds_full'] != full or t['builds_health_only'] != health + 1:
                raise SystemExit('republish: the build after a health change was not health-only: %r' % t)
            gen, health = t['generation'], t['builds_health_only']
            times.append(t['last_build_seconds'])
            phases.append(t['last_build_phases_seconds'])
            if i == 0:
                out = subprocess.run([tool, 'lookup', config['Routing']['TablePath'],
                                      'rpc.dotters.network', '91.90.166.200'],
                                     capture_output=True, text=True).stdout
                cands = json.loads(out)['candidates']
                if not any(c['member'] == down_name and c['skipped'] == 'offline' for c in cands):
                    raise SystemExit('republish: %s is not offline in the republished table' % down)
        times.sort()

        def median_ms(v):
            v = sorted(v)
            return round((v[(len(v) - 1) // 2] + v[len(v) // 2]) * 500, 1)
        slowest = max(phases, key=lambda p: sum(p.values()))
        print(json.dumps({'phases_median_ms': {k: median_ms([p[k] for p in phases])
                                               for k in phases[0]},
                          'slowest_phases_ms': {k: round(v * 1000, 1) for k, v in slowest.items()},'first_build_ms': round(first['last_build_seconds'] * 1000, 1),
                          'health_builds': len(times),
                          'median_ms': round((times[(len(times) - 1) // 2] + times[len(times) // 2]) * 500, 1),
                          'min_ms': round(times[0] * 1000, 1), 'max_ms': round(times[-1] * 1000, 1),
                          'table_bytes': t['bytes'], 'maps': t.get('maps')}))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        httpd.shutdown()
        log.close()


if __name__ == '__main__':
    main()
