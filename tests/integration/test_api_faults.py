#!/usr/bin/python3
"""The sidecar's HTTP API under bad input and slow or abusive clients
(issue 10, fault 9): every bad argument gets a 400 with a JSON error naming
it, no response path closes without an answer, slow clients cannot starve
complete requests, and oversized requests are answered or closed with
bounded memory. Loopback only; every socket and process is closed or
stopped by the test that made it."""
import contextlib
import http.client
import json
import select
import signal
import socket
import threading
import time

import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar

HOST = 'polkadot.dotters.network'
LONDON = '81.2.69.142'
AMFORC = '91.90.166.200'
DEADLINE_S = 5.0   # REQUEST_DEADLINE_MS in sidecar/api/api.c


@contextlib.contextmanager
def sidecar(**kw):
    """A Sidecar that must exit 0 on SIGTERM with nothing from the
    sanitizers in its log (in an ASan build they report there)."""
    sc = Sidecar(**kw)
    try:
        yield sc
    finally:
        if sc.proc.poll() is None:
            sc.proc.send_signal(signal.SIGTERM)
            try:
                sc.proc.wait(15)
            except Exception:  # noqa: BLE001 - stop() kills it
                pass
        sc.log.flush()
        with open(sc.log.name, errors='replace') as f:   # it may quote bytes that are not UTF-8
            log = f.read()
        sc.stop()
    eq(sc.proc.returncode, 0, 'sidecar exit status; log:\n' + log[-3000:])
    check('Sanitizer' not in log and 'runtime error' not in log,
          'sanitizer report:\n' + log[-3000:])


def get(port, target, method='GET', headers=None, body=None, timeout=5):
    """(status, content type, body text); status 0 when the server closed
    the connection without an answer, or gave none within timeout."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader('Content-Type', ''), r.read().decode('utf-8', 'replace')
    except (http.client.HTTPException, OSError) as e:   # closed, reset or timed out
        return 0, '', '%s: %s' % (type(e).__name__, e)
    finally:
        conn.close()


def error_of(port, target):
    """The 400 answer's error text; fails unless it is one."""
    code, ctype, body = get(port, target)
    eq(code, 400, '%s status (%s)' % (target, body))
    check(ctype.startswith('application/json'), '%s content type %r' % (target, ctype))
    doc = json.loads(body)
    check(isinstance(doc, dict) and list(doc) == ['error'] and isinstance(doc['error'], str),
          '%s: not {"error": "..."}: %r' % (target, body))
    return doc['error']


def route(name, ip=LONDON, extra=''):
    return '/route?name=%s&ip=%s%s' % (name, ip, extra)


# ---- bad arguments ------------------------------------------------------------

def test_invalid_utf8_and_nul_are_400_naming_the_argument():
    """%FF used to close the connection unanswered, a%00b to be read as a."""
    with sidecar() as sc:
        p = sc.api_port
        for target, arg, fault in [
                (route('%FF'), 'name', 'UTF-8'),
                (route('a%C3'), 'name', 'UTF-8'),
                (route('%ED%A0%80'), 'name', 'UTF-8'),          # a UTF-16 surrogate
                (route('a%00b'), 'name', 'NUL'),
                (route(HOST + '%00.evil'), 'name', 'NUL'),
                (route(HOST, ip='1.2.3.4%00x'), 'ip', 'NUL'),
                (route(HOST, ip='%FF'), 'ip', 'UTF-8'),
                (route(HOST, extra='&ecs=81.2.69.0/24%00'), 'ecs', 'NUL'),
                (route(HOST, extra='&ecs=%FE'), 'ecs', 'UTF-8'),
                ('/status%00junk', 'path', 'NUL')]:
            msg = error_of(p, target)
            check(msg.startswith(arg + ':') and fault in msg, '%s: error %r' % (target, msg))
        # The same request without the fault is answered.
        code, _, body = get(p, route(HOST))
        eq(code, 200, 'good /route')
        eq([a['address'] for a in json.loads(body)['answers']], [AMFORC], 'answer')
        # Every other error is JSON too.
        for method, target, want in [('GET', '/nothing', 404), ('DELETE', '/status', 405),
                                     ('POST', '/route', 405), ('POST', '/events', 405),
                                     ('GET', '/events?member=%FF', 400),
                                     ('GET', '/events?domain=a%00b', 400),
                                     ('DELETE', '/process', 405),
                                     ('GET', '/%FF', 404), ('GET', '/status%FF', 404)]:
            code, ctype, body = get(p, target, method=method)
            eq(code, want, '%s %s' % (method, target))
            check(ctype.startswith('application/json'), ctype)
            check('error' in json.loads(body), body)


def test_lengths_types_and_missing_arguments():
    with sidecar() as sc:
        p = sc.api_port
        label = 'a' * 63
        name253 = '.'.join([label] * 3 + ['b' * 61])
        eq(len(name253), 253, 'test name length')
        for name in (name253, name253 + '.'):
            code, _, body = get(p, route(name))
            eq(code, 200, 'a %d-byte name is a name' % len(name))
            eq(json.loads(body)['answers'], [], 'unknown name: no answers')
        for target, arg, fault in [
                (route(name253 + '.x'), 'name', 'longer than 254'),
                (route('x' * 5000), 'name', 'longer than 254'),
                (route(HOST, ip='1' * 65), 'ip', 'longer than 64'),
                (route(HOST, ip='not-an-ip'), 'ip', 'not an IP'),
                (route(HOST, extra='&ecs=81.2.69.0/99'), 'ecs', 'prefix'),
                (route(HOST, extra='&type=MX'), 'type', 'A or AAAA'),
                (route(HOST, extra='&type=%FF'), 'type', 'A or AAAA'),
                (route(HOST, extra='&type=A%00AAA'), 'type', 'A or AAAA'),
                (route(HOST, extra='&type=' + 'A' * 3000), 'type', 'A or AAAA'),
                (route(HOST, extra='&type='), 'type', 'A or AAAA'),
                (route(''), 'name', 'empty'),
                ('/route?name&ip=' + LONDON, 'name', 'empty'),
                ('/route?ip=' + LONDON, 'name', 'required'),
                ('/route?name=' + HOST, 'ip', 'required')]:
            msg = error_of(p, target)
            check(msg.startswith(arg + ':') and fault in msg, '%s: error %r' % (target[:80], msg))
        code, _, body = get(p, route(HOST, extra='&type=aaaa'))
        eq(code, 200, 'type is case-insensitive')
        eq(json.loads(body)['type'], 'AAAA', 'type AAAA')


def test_a_fault_text_that_is_not_utf8_still_shows():
    """A file:// URL with %FF names a file whose path is not UTF-8: its error
    reaches /status escaped, instead of vanishing from it."""
    with sidecar(reload=1) as sc:
        sc.config['System']['ConfigUrls']['MembersConfig'] = 'file:///nonexistent-ibptest/m%FF.json'
        sc.write_config()

        def members_error():
            src = sc.source('members')
            check('last_error' in src, '/status lost the members error: %r' % src)
            return src['last_error']
        msg = pdnsfix.wait_until(members_error, 8)
        check(msg and '\\xff' in msg and 'nonexistent-ibptest' in msg, 'members error %r' % msg)
        eq(get(sc.api_port, '/metrics')[0], 200, '/metrics')


# ---- slow clients --------------------------------------------------------------

class SlowClients:
    """n connections that each send one byte of a never-ending request head
    per second; a connection the server closes is opened again at once, so
    n stay open all the time."""

    HEAD = b'GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + b'a' * 100000

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.socks, self.reopened = {}, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        for i in range(self.n):
            self._open(i)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        for s, _ in self.socks.values():
            s.close()

    def _open(self, i):
        s = socket.create_connection(('127.0.0.1', self.port), timeout=5)
        s.setblocking(False)
        self.socks[i] = (s, 0)

    def _tick(self):
        for i, (s, sent) in list(self.socks.items()):
            readable, _, _ = select.select([s], [], [], 0)
            try:
                if readable and not s.recv(65536):
                    raise ConnectionError('closed by the server')
                s.send(self.HEAD[sent:sent + 1])
                self.socks[i] = (s, sent + 1)
            except OSError:
                s.close()
                self.reopened += 1
                self._open(i)

    def _run(self):
        while not self.stop.wait(1.0):
            self._tick()


def probe_status(port, seconds, budget):
    """GET /status every 0.5 s for `seconds`: the slowest answer (s), and
    how many probes missed the budget (no 200 within it)."""
    worst, missed, probes = 0.0, [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        code, _, body = get(port, '/status', timeout=budget)
        took = time.monotonic() - t0
        probes += 1
        worst = max(worst, took)
        if code != 200 or took > budget:
            missed.append('%.2fs: %d %s' % (took, code, body[:60]))
        time.sleep(0.5)
    return worst, missed, probes


def test_slow_clients_do_not_starve_complete_requests():
    with sidecar() as sc:
        with SlowClients(sc.api_port, 100) as slow:
            worst, missed, probes = probe_status(sc.api_port, 20, 2.0)
            reopened = slow.reopened
        check(not missed, '%d of %d /status probes missed 2 s with 100 slow clients: %s'
              % (len(missed), probes, missed[:5]))
        check(probes >= 20, 'only %d probes' % probes)
        check(reopened >= 100, 'partial requests were not cut at the deadline (%d reopened)'
              % reopened)
        print('  %d probes, slowest %.3f s, %d slow connections cut' % (probes, worst, reopened))
        worst, missed, _ = probe_status(sc.api_port, 2, 1.0)
        check(not missed, 'after the slow clients left: %s' % missed)
        check(sc.proc.poll() is None, 'sidecar alive')


def test_a_partial_request_is_cut_at_the_deadline():
    with sidecar() as sc:
        s = socket.create_connection(('127.0.0.1', sc.api_port), timeout=1)
        t0 = time.monotonic()
        closed = None
        try:
            for i in range(30):   # 15 s at most: a byte every 0.5 s
                try:
                    s.send(SlowClients.HEAD[i:i + 1])
                    readable, _, _ = select.select([s], [], [], 0.5)
                    if readable and not s.recv(4096):
                        closed = time.monotonic() - t0
                        break
                except OSError:
                    closed = time.monotonic() - t0
                    break
        finally:
            s.close()
        check(closed is not None, 'a request head trickling for 15 s was never cut')
        check(DEADLINE_S - 1 <= closed <= DEADLINE_S + 1.5, 'cut after %.2f s' % closed)
        # Complete requests are answered as usual, several on one connection.
        conn = http.client.HTTPConnection('127.0.0.1', sc.api_port, timeout=5)
        try:
            socks = []
            for _ in range(3):
                conn.request('GET', '/metrics')
                r = conn.getresponse()
                r.read()
                eq(r.status, 200, 'keep-alive /metrics')
                socks.append(conn.sock)
            check(socks[0] is not None and socks.count(socks[0]) == 3,
                  'the connection was not kept alive')
        finally:
            conn.close()


# ---- oversized requests ---------------------------------------------------------

def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def answer_or_close(port, head, body_chunks=(), seconds=3.0):
    """Sends head, then body chunks until the server answers or closes: the
    status code of the answer, 0 for a close without one, None when neither
    came within `seconds` (the server still waits, or reads and waits)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=seconds)
    end = time.monotonic() + seconds
    data = b''
    try:
        s.sendall(head)
        for chunk in body_chunks:
            if select.select([s], [], [], 0)[0]:
                break   # answered or closed: stop sending
            s.sendall(chunk)
        while b'\r\n\r\n' not in data:
            left = end - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return None
            got = s.recv(65536)
            if not got:
                break
            data += got
    except socket.timeout:
        return None     # the server stopped reading without answering
    except OSError:
        pass            # reset: it closed while we were still sending
    finally:
        s.close()
    if data.startswith(b'HTTP/1.'):
        return int(data.split(b' ', 2)[1])
    return 0


def test_big_bodies_and_heads_are_refused_with_bounded_memory():
    """Answered (or closed) at once, before the body: no endpoint takes one.
    A GET with a body may get its normal answer; MHD then closes."""
    with sidecar() as sc:
        p = sc.api_port
        rss0 = rss_kib(sc.proc.pid)
        mib = b'x' * (1 << 20)
        refused = {0} | set(range(400, 600))
        get_status = b'GET /status HTTP/1.1\r\nHost: x\r\n'
        cases = [
            ('POST with a 1 GiB Content-Length',
             b'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n',
             [mib] * 64, refused),
            ('GET with a body', get_status + b'Content-Length: 67108864\r\n\r\n',
             [mib] * 64, refused | {200}),
            ('endless chunked POST',
             b'POST /process HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
             [b'100000\r\n' + mib + b'\r\n'] * 64, refused),
            ('POST expecting 100-continue', b'POST /route HTTP/1.1\r\nHost: x\r\n'
             b'Content-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n', [], {405}),
            ('a 1 MiB header', get_status + b'X-Big: ' + mib + b'\r\n\r\n', [], refused),
            ('20000 headers', get_status + b'X-A: b\r\n' * 20000 + b'\r\n', [], refused),
            ('a 1 MiB URL', b'GET /route?name=' + mib + b' HTTP/1.1\r\nHost: x\r\n\r\n', [],
             refused),
        ]
        for what, head, chunks, allowed in cases:
            code = answer_or_close(p, head, chunks)
            check(code is not None, '%s: neither an answer nor a close within 3 s' % what)
            check(code in allowed, '%s: answered %s' % (what, code))
            check(sc.proc.poll() is None, '%s: the sidecar died' % what)
            eq(get(p, '/status')[0], 200, '/status after %s' % what)
        grown = rss_kib(sc.proc.pid) - rss0
        check(grown < 32 * 1024, 'the sidecar grew by %d KiB' % grown)


if __name__ == '__main__':
    import ibptest
    ibptest.main(globals())
