"""A running ibpdns-sidecar fed by a FixtureServer (configs and /results over
loopback HTTP), with helpers to wait for its tables and read its API."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

import ibptest
import pdnsfix
from fixture_http import FixtureServer

SIDECAR = os.path.join(ibptest.BUILD, 'sidecar', 'ibpdns-sidecar')
REAL = ibptest.IBP_CONFIG


def real(name):
    with open(os.path.join(REAL, name), 'rb') as f:
        data = f.read()
    if name != 'geodns-static.json':
        return data
    # The real ACME URLs point off this machine: a test that asks an ACME
    # name through PowerDNS must never make the sidecar fetch them.
    recs = json.loads(data)
    for r in recs:
        if r.get('qtype') == 'TXT' and r.get('content', '').startswith(('http://', 'https://')):
            r['content'] = 'http://127.0.0.1:9/acme-unreachable'
    return json.dumps(recs).encode()


class Sidecar:
    """Serves the real IBP configs from a fixture server; the sidecar polls
    it every `reload` seconds and the monitor every `poll` seconds."""

    def __init__(self, reload=2, poll=1, timeout=1, extra=None, server=None, mmdb=ibptest.CITY_MMDB,
                 start=True, token=None, listen='127.0.0.1'):
        self.dir = tempfile.mkdtemp(prefix='ibptest-sidecar-')
        self.http = server or FixtureServer()
        if server is None:
            self.http.start()
        self.http.set('/members.json', real('members_professional.json'))
        self.http.set('/services.json', real('services_rpc.json'))
        self.http.set('/static.json', real('geodns-static.json'))
        self.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'official'})
        os.makedirs(os.path.join(self.dir, 'maxmind'))
        if mmdb:
            shutil.copy(mmdb, os.path.join(self.dir, 'maxmind', 'CityLite.mmdb'))
        self.api_port = pdnsfix.free_port()
        host, port = self.http.url('/').split('//')[1].split('/')[0].split(':')
        self.config = {
            'System': {'LogLevel': 'Debug', 'ConfigReloadTime': reload, 'FetchTimeoutSeconds': timeout,
                       'ConfigUrls': {'MembersConfig': self.http.url('/members.json'),
                                      'ServicesConfig': self.http.url('/services.json'),
                                      'StaticDNSConfig': self.http.url('/static.json')}},
            'Maxmind': {'MaxmindDBPath': 'maxmind'},
            'Nats': {'NodeID': 'TEST-01', 'Url': ''},
            'DnsApi': {'ListenAddress': listen, 'ListenPort': str(self.api_port),
                       'MonitorAddress': host, 'MonitorPort': port, 'RefreshIntervalSeconds': poll},
            'Routing': {'TablePath': 'routing.tbl'},
            'Storage': {'Path': 'usage.sqlite', 'CounterDir': 'usage'},
        }
        self.token = token   # status() and ready() send it
        if token:
            self.config['DnsApi']['BearerToken'] = token
        for section, values in (extra or {}).items():
            self.config.setdefault(section, {}).update(values)
        self.write_config()
        self.table = os.path.join(self.dir, 'routing.tbl')
        self.proc = None
        self.env = None   # extra environment for the next start()
        self.log = open(os.path.join(self.dir, 'sidecar.log'), 'w+')
        if start:
            self.start()

    def write_config(self):
        path = os.path.join(self.dir, 'node.json')
        with open(path + '.tmp', 'w') as f:
            json.dump(self.config, f, indent=1)
        os.rename(path + '.tmp', path)
        self.config_path = path

    def start(self, wait=True, ready_timeout=20):
        self.proc = subprocess.Popen([SIDECAR, '--config', self.config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **(self.env or {})))
        if wait:
            ibptest.check(pdnsfix.wait_until(lambda: self.proc.poll() is not None or self.ready(),
                                             ready_timeout),
                          'sidecar did not become ready:\n' + self.logtext()[-3000:])
            ibptest.check(self.proc.poll() is None, 'sidecar exited:\n' + self.logtext()[-3000:])

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors='replace') as f:
            return f.read()

    def api(self, path, token=None, method='GET', timeout=5):
        req = urllib.request.Request('http://127.0.0.1:%d%s' % (self.api_port, path), method=method)
        if token:
            req.add_header('Authorization', 'Bearer ' + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers.get('Content-Type', ''), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get('Content-Type', ''), e.read().decode()
        except (urllib.error.URLError, ConnectionError) as e:   # not listening (yet)
            return 0, '', str(e)

    def status(self):
        code, _, body = self.api('/status', token=self.token)
        ibptest.eq(code, 200, '/status')
        return json.loads(body)

    def ready(self):
        try:
            return self.status()['ready'] and os.path.exists(self.table)
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def generation(self):
        return self.status()['table']['generation']

    def wait_generation_above(self, gen, timeout):
        ok = pdnsfix.wait_until(lambda: self.generation() > gen, timeout)
        ibptest.check(ok, 'no new table within %.1fs (generation %d):\n%s'
                      % (timeout, gen, self.logtext()[-2000:]))
        return self.generation()

    def source(self, name):
        return self.status()['sources'][name]

    def stop(self):
        """SIGTERM, then: a sidecar that did not exit 0, or whose log has a
        sanitizer report (ASan, UBSan, TSan), fails the test."""
        stopped_by_us = False
        if self.proc and self.proc.poll() is None:
            stopped_by_us = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self.logtext()
        report = re.search(r'(ERROR|WARNING): (Address|Thread|Leak|UndefinedBehavior)Sanitizer'
                           r'|runtime error:', text)
        rc = self.proc.returncode if self.proc else 0
        self.log.close()
        self.http.stop()
        self._cleanup_dir()
        if report or (stopped_by_us and rc != 0):
            raise AssertionError('sidecar %s at stop:\n%s' % (
                'sanitizer report' if report else 'exit status %s' % rc, text[-4000:]))

    def _cleanup_dir(self):
        if not os.environ.get('IBP_KEEP_RUNDIR'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
