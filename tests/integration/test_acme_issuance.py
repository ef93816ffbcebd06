#!/usr/bin/python3
"""A real DNS-01 issuance through ibpdns (issue 15, acceptance 1): pebble (the
ACME server; its VA resolves through our PowerDNS) and lego (the client, DNS
provider `exec`) certify a name of our zone whose `_acme-challenge.<name>` is
a static TXT holding a URL on a loopback token server. lego's exec script
writes the token where that server serves it; the sidecar fetches it when
PowerDNS asks; pebble sees the value and issues.

Then with lego's own checks kept off PowerDNS, pebble's validation (3
concurrent queries) is the first to ask: each of its queries must get the
value of the fast URL.

Then the token server stopped: the ACME name answers NODATA within
Routing.AcmeBudgetMs, never the URL, and lego fails (pebble marks the
authorization invalid) in bounded time.

Every DNS query pebble and lego make goes through a recording forwarder in
front of PowerDNS (one per client), so the answers and latencies of the
issuance are printed. Everything binds and talks to 127.0.0.1 only: lego runs
with --dns.disable-cp (its full propagation check would ask the zone's real
NS names on port 53) and --dns.resolvers, pebble with -dnsserver."""
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

import dnsrelay
import pdnsfix
from fixture_http import FixtureServer, make_self_signed
from ibptest import check, eq
from sidecarfix import Sidecar, real

PEBBLE = '/usr/bin/pebble'
LEGO = '/usr/bin/lego'
BUDGET_MS = 300          # Routing.AcmeBudgetMs of this test's sidecar
SLACK_S = 0.15           # PowerDNS's own work and the round trip on top of it
NAME = 'boot.stake.plus.dotters.network'   # its _acme-challenge TXT is in the real config
NAME_FIRST = 'member1.dotters.network'      # added: pebble is its only asker
LEGO_TIMEOUT_S = 60
# The token server answers after this long, as one across the internet would
# (well within the budget: a fast URL).
TOKEN_DELAY_S = 0.05


def require_tools():
    missing = [p for p in (PEBBLE, LEGO) if not os.access(p, os.X_OK)]
    check(not missing, '%s missing: install the Debian packages pebble and lego '
          '(scripts/deps installs them)' % ', '.join(missing))


def acme_name(name):
    return '_acme-challenge.' + name


def clean_env(**extra):
    """The environment without proxy settings (nothing here may leave loopback)."""
    env = {k: v for k, v in os.environ.items() if 'proxy' not in k.lower()}
    env.update(extra)
    return env


def stop_pid(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout seconds; the process is ours (by PID)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- a recording DNS forwarder ----------------------------------------------------

def print_queries(title, entries):
    print('%s (%d DNS queries):' % (title, len(entries)), flush=True)
    t0 = entries[0]['at'] if entries else 0
    for e in sorted(entries, key=lambda e: e['at']):
        print('  +%6.3fs %-6s %s %s %s -> %s %s  %.1f ms'
              % (e['at'] - t0, e['client'], e['transport'], e['qname'], e['qtype'], e['rcode'],
                 e['answers'], e['ms']), flush=True)


# ---- pebble and lego -----------------------------------------------------------------

class Pebble:
    """pebble on 127.0.0.1 (ACME API and management ports of its own), its
    HTTPS certificate a throwaway self-signed one for IP 127.0.0.1, its VA's
    DNS the given loopback port."""

    def __init__(self, directory, dns_port):
        self.dir = directory
        self.cert, key = make_self_signed(directory)
        self.port = pdnsfix.free_port()
        self.mgmt_port = pdnsfix.free_port()
        cfg = {'pebble': {
            'listenAddress': '127.0.0.1:%d' % self.port,
            'managementListenAddress': '127.0.0.1:%d' % self.mgmt_port,
            'certificate': self.cert, 'privateKey': key,
            # http-01 / tls-alpn-01 are not used: ports nobody listens on.
            'httpPort': pdnsfix.free_port(), 'tlsPort': pdnsfix.free_port(),
            'ocspResponderURL': '', 'externalAccountBindingRequired': False}}
        path = os.path.join(directory, 'pebble-config.json')
        with open(path, 'w') as f:
            json.dump(cfg, f)
        self.log = open(os.path.join(directory, 'pebble.log'), 'w+')
        env = clean_env(PEBBLE_VA_NOSLEEP='1', PEBBLE_WFE_NONCEREJECT='0',
                        PEBBLE_AUTHZREUSE='0')
        self.proc = subprocess.Popen([PEBBLE, '-config', path,
                                      '-dnsserver', '127.0.0.1:%d' % dns_port],
                                     cwd=directory, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.ctx = ssl.create_default_context(cafile=self.cert)
        try:
            check(pdnsfix.wait_until(lambda: self.proc.poll() is not None or self._up(), 15),
                  'pebble did not answer /dir within 15 s:\n' + self.logtext()[-2000:])
            check(self.proc.poll() is None, 'pebble exited %s:\n%s'
                  % (self.proc.returncode, self.logtext()[-2000:]))
        except BaseException:
            self.stop()
            raise

    @property
    def directory_url(self):
        return 'https://127.0.0.1:%d/dir' % self.port

    def _get(self, url):
        with urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=self.ctx)) \
                .open(url, timeout=5) as r:
            return r.read()

    def _up(self):
        try:
            return b'newOrder' in self._get(self.directory_url)
        except OSError:
            return False

    def root_pem(self):
        return self._get('https://127.0.0.1:%d/roots/0' % self.mgmt_port)

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors='replace') as f:
            return f.read()

    def stop(self):
        stop_pid(self.proc)
        self.log.close()


EXEC_SCRIPT = r'''#!/usr/bin/python3
# lego's exec DNS provider: present|cleanup <fqdn> <value>. The value goes
# to TOKENS/<name> (name = fqdn without _acme-challenge. and the last dot),
# which the test's token server serves at /acme/<name>.
import os
import sys
TOKENS = %(tokens)r
with open(%(log)r, 'a') as f:
    f.write(' '.join(sys.argv[1:]) + '\n')
action, fqdn = sys.argv[1], sys.argv[2].rstrip('.')
prefix = '_acme-challenge.'
if not fqdn.startswith(prefix):
    sys.exit('unexpected fqdn ' + fqdn)
path = os.path.join(TOKENS, fqdn[len(prefix):])
if action == 'present':
    tmp = os.path.join(TOKENS, '.tmp-' + fqdn)
    with open(tmp, 'w') as f:
        f.write(sys.argv[3])
    os.rename(tmp, path)
elif action == 'cleanup':
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
else:
    sys.exit('unknown action ' + action)
'''


class Setup:
    """Token server, sidecar (real config; the names' _acme-challenge TXT are
    token-server URLs), PowerDNS, a recorder per client, pebble. `lego_stub`:
    lego's resolver answers its own propagation check (empty NOERROR) instead
    of asking PowerDNS, so pebble is the first to ask."""

    def __init__(self, names, lego_stub=False, pebble_stagger=0):
        require_tools()
        self.stack = contextlib.ExitStack()
        try:
            self._start(names, lego_stub, pebble_stagger)
        except BaseException:
            self.stack.close()
            raise

    def _start(self, names, lego_stub, pebble_stagger):
        self.dir = tempfile.mkdtemp(prefix='ibptest-issuance-')
        if not os.environ.get('IBP_KEEP_RUNDIR'):
            self.stack.callback(shutil.rmtree, self.dir, ignore_errors=True)
        self.token_dir = os.path.join(self.dir, 'tokens')
        os.mkdir(self.token_dir)
        self.tokens = FixtureServer().start()
        self.tokens_up = True
        self.stack.callback(self.stop_tokens)
        self.tokens.serve_files('/acme/', self.token_dir, delay=TOKEN_DELAY_S)
        self.urls = {n: self.tokens.url('/acme/' + n) for n in names}

        sc = Sidecar(start=False, extra={'System': {'LogLevel': 'Info'},
                                         'Routing': {'AcmeBudgetMs': BUDGET_MS}})
        self.stack.push(sc.__exit__)
        recs = json.loads(real('geodns-static.json'))
        for n in names:
            mine = [r for r in recs if r['qname'] == acme_name(n) and r['qtype'] == 'TXT']
            if mine:
                for r in mine:
                    r['content'] = self.urls[n]
            else:
                recs.append({'qname': acme_name(n), 'qtype': 'TXT', 'ttl': 0, 'auth': True,
                             'domain_id': 0, 'content': self.urls[n]})
        sc.http.set('/static.json', json.dumps(recs).encode())
        sc.start()
        self.sc = sc
        self.pdns = self.stack.enter_context(pdnsfix.Pdns(sc.table))
        self.rec_lego = dnsrelay.DnsRelay('lego', None if lego_stub else self.pdns.port)
        self.stack.callback(self.rec_lego.close)
        self.rec_pebble = dnsrelay.DnsRelay('pebble', self.pdns.port, pebble_stagger)
        self.stack.callback(self.rec_pebble.close)
        self.pebble = Pebble(self.dir, self.rec_pebble.port)
        self.stack.callback(self.pebble.stop)
        self.script = os.path.join(self.dir, 'lego-exec.py')
        self.exec_log = os.path.join(self.dir, 'lego-exec.log')
        with open(self.script, 'w') as f:
            f.write(EXEC_SCRIPT % {'tokens': self.token_dir, 'log': self.exec_log})
        os.chmod(self.script, 0o755)

    def stop_tokens(self):
        if self.tokens_up:
            self.tokens_up = False
            self.tokens.stop(drop_connections=True)   # the sidecar's keep-alive too

    def lego(self, name, tag):
        """Runs `lego run` for name with a fresh --path; (rc, output, seconds, path)."""
        path = os.path.join(self.dir, 'lego-' + tag)
        argv = [LEGO, '--accept-tos', '--email', 'a@example.org',
                '--server', self.pebble.directory_url, '--dns', 'exec', '--dns.disable-cp',
                '--dns.resolvers', '127.0.0.1:%d' % self.rec_lego.port, '--dns-timeout', '5',
                '--domains', name, '--path', path, 'run']
        # lego 4.9 asks _acme-challenge.<name> CNAME before it presents the
        # token; that lookup makes the sidecar fetch the URL (404 then), and a
        # failure is kept 1 s (AcmeCacheSeconds' failure time). lego's own
        # polling interval (2 s, slept before its first check) is past it; at
        # 1 s its check and pebble's validation would race that failure.
        env = clean_env(LEGO_CA_CERTIFICATES=self.pebble.cert, EXEC_PATH=self.script,
                        EXEC_PROPAGATION_TIMEOUT='10', EXEC_POLLING_INTERVAL='2',
                        EXEC_SEQUENCE_INTERVAL='1')
        env.pop('EXEC_MODE', None)
        env.pop('LEGO_EXPERIMENTAL_CNAME_SUPPORT', None)
        out = open(os.path.join(self.dir, 'lego-%s.log' % tag), 'w+')
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=self.dir)
        try:
            proc.wait(LEGO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        finally:
            timed_out = proc.poll() is None
            stop_pid(proc, 5)
        took = time.monotonic() - t0
        out.seek(0)
        text = out.read()
        out.close()
        check(not timed_out, 'lego (%s) did not end within %d s:\n%s\npebble:\n%s'
              % (tag, LEGO_TIMEOUT_S, text[-3000:], self.pebble.logtext()[-3000:]))
        return proc.returncode, text, took, path

    def no_url_anywhere(self):
        """No URL in any DNS answer, nor in the PowerDNS or (Info) sidecar log."""
        for e in self.rec_lego.queries() + self.rec_pebble.queries():
            check('http://' not in e['text'] and 'https://' not in e['text'],
                  'a DNS answer carries a URL:\n' + e['text'])
        for what, text in (('PowerDNS log', self.pdns.logtext()), ('sidecar log', self.sc.logtext())):
            for n, url in self.urls.items():
                check(url not in text and ('/acme/' + n) not in text,
                      '%s holds the ACME URL %s:\n%s' % (what, url, text[-2000:]))

    def close(self):
        self.stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cert_sans(path):
    rc = subprocess.run(['openssl', 'x509', '-in', path, '-noout', '-subject', '-ext',
                         'subjectAltName'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=30)
    text = rc.stdout.decode(errors='replace')
    check(rc.returncode == 0, 'openssl cannot read %s: %s' % (path, text))
    return text, re.findall(r'DNS:([^,\s]+)', text)


def txt_answers(e):
    return [a for a in e['answers'] if a.startswith('"')]


def test_issuance():
    with Setup([NAME]) as s:
        rc, out, took, path = s.lego(NAME, 'ok')
        print_queries('issuance of %s' % NAME, s.rec_lego.queries() + s.rec_pebble.queries())
        print('lego ran %.1f s, exit %d' % (took, rc), flush=True)
        check(rc == 0, 'lego failed (exit %d):\n%s\npebble:\n%s'
              % (rc, out[-3000:], s.pebble.logtext()[-3000:]))
        crt = os.path.join(path, 'certificates', NAME + '.crt')
        check(os.path.isfile(crt), 'no certificate %s; lego wrote %s' % (
            crt, sorted(os.listdir(os.path.join(path, 'certificates')))
            if os.path.isdir(os.path.join(path, 'certificates')) else 'no certificates dir'))
        text, sans = cert_sans(crt)
        print(text.strip(), flush=True)
        eq(sans, [NAME], 'the certificate\'s SAN')
        # Issued by this pebble: the chain lego saved verifies against its root.
        root = os.path.join(s.dir, 'pebble-root.pem')
        with open(root, 'wb') as f:
            f.write(s.pebble.root_pem())
        v = subprocess.run(['openssl', 'verify', '-CAfile', root, '-untrusted',
                            os.path.join(path, 'certificates', NAME + '.issuer.crt'), crt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        check(v.returncode == 0, 'the certificate does not verify against pebble\'s root: %s'
              % v.stdout.decode(errors='replace'))

        # What pebble's VA saw: the token lego presented, as a TXT answer.
        with open(s.exec_log) as f:
            calls = f.read().split('\n')
        value = [c.split()[2] for c in calls if c.startswith('present ')]
        eq(len(value), 1, 'present calls of lego\'s exec script')
        pq = s.rec_pebble.queries(acme_name(NAME))
        check(pq, 'pebble never asked %s through PowerDNS:\n%s' % (acme_name(NAME),
                                                                  s.pebble.logtext()[-2000:]))
        check(any(txt_answers(e) == ['"%s"' % value[0]] for e in pq),
              'pebble never got the token %s: %r' % (value[0], [(e['rcode'], e['answers'])
                                                                 for e in pq]))
        check(any(c.startswith('cleanup ') for c in calls), 'lego did not clean up: %r' % calls)
        all_q = s.rec_lego.queries() + s.rec_pebble.queries()
        print('max latency of the issuance\'s PowerDNS lookups: %.1f ms'
              % max(e['ms'] for e in all_q), flush=True)
        s.no_url_anywhere()


def test_issuance_validation_first_asks():
    """pebble's validation is the first thing that asks the name since lego
    presented the token (lego's own checks answered by its stub resolver), as
    for a CA whose resolvers reach a node of ours nobody asked before. pebble
    2.4 validates with 3 concurrent queries ("Starting 3 validations", its
    imitation of multi-perspective validation; all 3 must see the token); here
    they reach PowerDNS 10 ms apart, as a real CA's perspectives would arrive
    spread out, and the token URL answers in 50 ms: a fast URL, so each of
    them must get its value (BEHAVIOR 5), not only the one that started the
    fetch."""
    with Setup([NAME_FIRST], lego_stub=True, pebble_stagger=0.01) as s:
        rc, out, took, path = s.lego(NAME_FIRST, 'first')
        print_queries('issuance of %s, pebble asking first, its queries 10 ms apart' % NAME_FIRST,
                      s.rec_lego.queries() + s.rec_pebble.queries())
        print('lego ran %.1f s, exit %d' % (took, rc), flush=True)
        check(s.rec_lego.queries(acme_name(NAME_FIRST)), 'lego asked nothing of its stub resolver')
        pq = s.rec_pebble.queries(acme_name(NAME_FIRST))
        check(pq, 'pebble never asked %s:\n%s' % (acme_name(NAME_FIRST), s.pebble.logtext()[-2000:]))
        nodata = [e for e in pq if not txt_answers(e)]
        check(not nodata, '%d of pebble\'s %d TXT queries of %s (the first asks since the '
              'token was presented, 10 ms apart; the URL answers in %d ms) got NODATA: %s. '
              'The lookup that started the fetch waited for the value; a lookup the sidecar '
              'was asked while that fetch ran was answered at once without it '
              '(sidecar/acme/acme.c take_question), so a CA validating from several places at '
              'once fails the challenge.\nlego exit %d; pebble:\n%s'
              % (len(nodata), len(pq), acme_name(NAME_FIRST), TOKEN_DELAY_S * 1000,
                 '; '.join('%s %s in %.1f ms' % (e['rcode'], e['answers'] or 'no answer', e['ms'])
                           for e in sorted(pq, key=lambda e: e['at'])),
                 rc, '\n'.join(l for l in s.pebble.logtext().splitlines()
                                if 'validation' in l.lower() or 'INVALID' in l)))
        check(rc == 0, 'lego failed (exit %d):\n%s\npebble:\n%s'
              % (rc, out[-3000:], s.pebble.logtext()[-3000:]))
        _, sans = cert_sans(os.path.join(path, 'certificates', NAME_FIRST + '.crt'))
        eq(sans, [NAME_FIRST], 'the certificate\'s SAN')
        s.no_url_anywhere()


def nodata_lookups(s, what, n=20):
    took = []
    for _ in range(n):
        t0 = time.monotonic()
        r = s.pdns.query(acme_name(NAME), 'TXT', timeout=5)
        took.append(time.monotonic() - t0)
        eq((dns.rcode.to_text(r.rcode()), [rd.to_text() for rs in r.answer for rd in rs]),
           ('NOERROR', []), 'TXT %s, %s' % (acme_name(NAME), what))
        check('http' not in r.to_text(), 'the answer holds the URL:\n' + r.to_text())
        check(r.flags & dns.flags.AA, 'the NODATA answer is not authoritative')
    print('%s: %d NODATA lookups, max %.1f ms, median %.1f ms (budget %d ms)'
          % (what, n, max(took) * 1000, sorted(took)[n // 2] * 1000, BUDGET_MS), flush=True)
    check(max(took) < BUDGET_MS / 1000 + SLACK_S,
          '%s: a lookup took %.0f ms, budget %d ms' % (what, max(took) * 1000, BUDGET_MS))


def test_token_server_gone_nodata_and_lego_fails():
    with Setup([NAME]) as s:
        # Token server up, nothing presented: 404.
        nodata_lookups(s, 'token path 404')
        # Token server stopped: the port refuses.
        s.stop_tokens()
        nodata_lookups(s, 'token server stopped')
        s.rec_lego.entries.clear()
        rc, out, took, path = s.lego(NAME, 'down')
        print_queries('lego with the token server stopped', s.rec_lego.queries()
                      + s.rec_pebble.queries())
        print('lego ran %.1f s, exit %d' % (took, rc), flush=True)
        check(rc != 0, 'lego succeeded with the token server stopped:\n' + out[-3000:])
        check(not os.path.exists(os.path.join(path, 'certificates', NAME + '.crt')),
              'a certificate was issued with the token server stopped')
        pq = s.rec_pebble.queries(acme_name(NAME))
        check(pq and all(e['rcode'] == 'NOERROR' and not e['answers'] for e in pq),
              'pebble\'s queries with the token server stopped: %r'
              % [(e['rcode'], e['answers']) for e in pq])
        plog = s.pebble.logtext()
        check(re.search(r'authz \S+ set INVALID', plog),
              'pebble did not mark the authorization invalid:\n' + plog[-2000:])
        check('urn:ietf:params:acme:error:unauthorized' in out,
              'lego did not fail on the challenge:\n' + out[-2000:])
        print('lego: ' + '\n'.join(l for l in out.splitlines() if 'error' in l.lower()), flush=True)
        s.no_url_anywhere()


if __name__ == '__main__':
    import ibptest
    ibptest.main(globals())
