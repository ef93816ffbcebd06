"""Real nats-server 2.9 instances on loopback ports of their own (user and
password auth, optional TLS, optional cluster routes), stopped by PID, and a
minimal NATS protocol client over a plain socket (stdlib only). A server's
ports are picked once, so stop() then start() comes back on the same ports."""
import atexit
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid

import pdnsfix

NATS_SERVER = shutil.which('nats-server') or '/usr/sbin/nats-server'   # Debian: /usr/sbin
Msg = collections.namedtuple('Msg', 'subject reply data time_received')

# Every server is killed, and its directory removed, when the test script
# exits (IBP_KEEP_RUNDIR=1 keeps the directories, as in pdnsfix).
_SERVERS = []
_TAKEN = set()   # ports handed out in this process: no two servers share one


@atexit.register
def _cleanup():
    for s in _SERVERS:
        s.kill()
        if not os.environ.get('IBP_KEEP_RUNDIR'):
            shutil.rmtree(s.dir, ignore_errors=True)


def free_port():
    while True:
        p = pdnsfix.free_port()
        if p not in _TAKEN:
            _TAKEN.add(p)
            return p


def _q(s):
    return json.dumps(str(s))   # a JSON string is a valid quoted string in nats config


class NatsServer:
    def __init__(self, user='ibp', password='s3cret', tls=False, cluster_port=None, routes=(),
                 cluster_name='ibp-test'):
        self.user, self.password, self.tls, self.routes = user, password, tls, list(routes)
        self.dir = tempfile.mkdtemp(prefix='ibptest-nats-')
        self.port, self.monitor_port = free_port(), free_port()
        self.cluster_port = cluster_port or (free_port() if routes else None)
        self.proc, self.ca_file = None, None
        self.log_path, self.conf = self._path('nats.log'), self._path('nats.conf')
        _SERVERS.append(self)
        conf = ['listen: 127.0.0.1:%d' % self.port, 'http: 127.0.0.1:%d' % self.monitor_port,
                'server_name: %s' % _q('natsfix-%d' % self.port), 'logtime: true',
                'authorization { user: %s, password: %s }' % (_q(user), _q(password))]
        if self.cluster_port:
            conf.append('cluster { name: %s, listen: 127.0.0.1:%d, routes: [%s] }' % (
                _q(cluster_name), self.cluster_port, ', '.join(map(_q, self.routes))))
        if tls:
            self._make_certs()
            conf.append('tls { cert_file: %s, key_file: %s, ca_file: %s, timeout: 2 }' % (
                _q(self._path('server.pem')), _q(self._path('server.key')), _q(self.ca_file)))
        with open(self.conf, 'w') as f:
            f.write('\n'.join(conf) + '\n')

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _make_certs(self):
        """A throwaway CA (ca.pem) and a server cert it signs for 127.0.0.1/localhost."""
        key = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
        script = f"""set -e
            openssl req -x509 {key} -keyout ca.key -out ca.pem -days 7 -subj /CN=natsfix-ca \\
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign
            openssl req {key} -keyout server.key -out server.csr -subj /CN=localhost
            echo subjectAltName=IP:127.0.0.1,DNS:localhost >ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \\
                -out server.pem -days 7 -extfile ext.cnf"""
        r = subprocess.run(['sh', '-c', script], cwd=self.dir, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError('openssl failed: %s' % r.stderr)
        self.ca_file = self._path('ca.pem')

    @property
    def url(self):
        return '%s://127.0.0.1:%d' % ('tls' if self.tls else 'nats', self.port)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True, timeout=15):
        if not self.running():
            with open(self.log_path, 'a') as log:   # appended to across restarts
                log.write('---- natsfix start %s\n' % time.strftime('%H:%M:%S'))
                log.flush()
                self.proc = subprocess.Popen([NATS_SERVER, '-c', self.conf], stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.kill()
                raise
        return self

    def monitor(self, path='varz', timeout=2):
        """A monitoring endpoint (varz, routez, subsz, connz...) as parsed JSON."""
        url = 'http://127.0.0.1:%d/%s' % (self.monitor_port, path)
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)

    def wait_ready(self, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.running():
                raise AssertionError('nats-server exited with %s:\n%s' % (
                    self.proc and self.proc.returncode, self.log_text()[-3000:]))
            try:
                self.monitor('varz', timeout=0.5)
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError('nats-server not ready within %ss:\n%s'
                             % (timeout, self.log_text()[-3000:]))

    def num_routes(self):
        return self.monitor('routez')['num_routes']

    def stop(self, timeout=10, sig=signal.SIGTERM):
        """sig (SIGTERM), then SIGKILL if it has not exited within timeout seconds."""
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        self.stop(sig=signal.SIGKILL)

    def log_text(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def cluster(n=3, timeout=20, **kw):
    """n servers with explicit routes to all others (full mesh); returns once
    each one reports n-1 routes."""
    ports = [free_port() for _ in range(n)]
    servers = [NatsServer(cluster_port=p, routes=['nats-route://127.0.0.1:%d' % q
                                                  for q in ports if q != p], **kw)
               for p in ports]
    try:
        for s in servers:
            s.start(wait=False)
        for s in servers:
            s.wait_ready(timeout)
        if not pdnsfix.wait_until(lambda: all(s.num_routes() == n - 1 for s in servers),
                                  timeout, 0.1):
            raise AssertionError('routes did not form: %s' % [s.num_routes() for s in servers])
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


def subject_matches(pattern, subject):
    """NATS wildcards: '*' matches one token, a final '>' one or more."""
    rx = re.escape(pattern).replace(r'\*', r'[^.]+').replace('>', '.+')
    return re.fullmatch(rx, subject) is not None


class NatsError(Exception):
    pass


class NatsClient:
    """pub/sub/next_msg may be called from several threads; connect/flush from one."""

    def __init__(self, url=None, user=None, password=None, timeout=5, name='test'):
        self.sock, self.info, self.errors, self._sid, self._closed = None, None, [], 0, False
        self._msgs, self._ctl = collections.deque(), collections.deque()   # ctl: (op, text)
        self._cv, self._wlock = threading.Condition(), threading.Lock()
        if url:
            self.connect(url, user, password, timeout, name)

    def connect(self, url, user=None, password=None, timeout=5, name='test'):
        """Raises NatsError with the server's -ERR text (e.g. 'Authorization Violation')."""
        scheme, _, hostport = url.partition('://')
        if scheme != 'nats':
            raise ValueError('NatsClient speaks plain nats:// only, not %r' % url)
        host, _, port = hostport.rpartition(':')
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        try:
            self._wait_ctl('INFO', timeout)   # the server speaks first
            opts = {'verbose': False, 'pedantic': False, 'user': user, 'pass': password,
                    'echo': True, 'protocol': 1, 'name': name}
            self._send(b'CONNECT %s\r\n' % json.dumps(opts).encode())
            self.flush(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _send(self, data):
        with self._wlock:
            self.sock.sendall(data)

    def _read_loop(self):
        buf = bytearray()
        with contextlib.suppress(OSError):   # close() or a dead server ends the loop
            while chunk := self.sock.recv(65536):
                buf += chunk
                del buf[:self._parse(buf)]
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _parse(self, buf):
        """Handles every complete line (and MSG with its whole payload) in buf;
        returns how many bytes it used. A partial line or payload waits."""
        pos = 0
        while (nl := buf.find(b'\r\n', pos)) >= 0:
            op, _, rest = bytes(buf[pos:nl]).decode('utf-8', 'replace').partition(' ')
            op = op.upper()
            if op == 'MSG':   # MSG <subject> <sid> [reply] <#bytes>; #bytes counts bytes
                args = rest.split()
                end = nl + 2 + int(args[-1])
                if len(buf) < end + 2:
                    return pos
                msg = Msg(args[0], args[2] if len(args) == 4 else None, bytes(buf[nl + 2:end]),
                          time.monotonic())
                pos = end + 2
                with self._cv:
                    self._msgs.append(msg)
                    self._cv.notify_all()
                continue
            pos = nl + 2
            if op == 'PING':
                self._send(b'PONG\r\n')
            elif op in ('PONG', 'INFO', '-ERR'):   # +OK (verbose mode only) is ignored
                if op == 'INFO':
                    self.info = json.loads(rest)
                text = rest.strip().strip("'")
                with self._cv:
                    if op == '-ERR':
                        self.errors.append(text)
                    self._ctl.append((op, text))
                    self._cv.notify_all()
        return pos

    def _wait_ctl(self, want, timeout):
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                while self._ctl:
                    op, text = self._ctl.popleft()
                    if op == want:
                        return text
                    if op == '-ERR':
                        raise NatsError(text)
                if self._closed:
                    raise NatsError('connection closed (last -ERR: %s)' % self.errors[-1:])
                if (left := end - time.monotonic()) <= 0:
                    raise TimeoutError('no %s within %ss' % (want, timeout))
                self._cv.wait(left)

    def flush(self, timeout=5):
        """PING, then wait for the PONG: the server has processed everything sent."""
        self._send(b'PING\r\n')
        self._wait_ctl('PONG', timeout)

    def sub(self, subject, sid=None, queue=None):
        if sid is None:
            self._sid += 1
            sid = str(self._sid)
        self._send(('SUB %s %s%s\r\n' % (subject, queue + ' ' if queue else '', sid)).encode())
        return sid

    def unsub(self, sid):
        self._send(('UNSUB %s\r\n' % sid).encode())

    def pub(self, subject, payload=b'', reply=None):
        payload = payload.encode() if isinstance(payload, str) else payload
        head = 'PUB %s %s%d\r\n' % (subject, reply + ' ' if reply else '', len(payload))
        self._send(head.encode() + payload + b'\r\n')

    def next_msg(self, timeout=5, subject=None):
        """The oldest message received (on subject, wildcards allowed); others stay queued."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for i, m in enumerate(self._msgs):
                    if subject is None or subject_matches(subject, m.subject):
                        del self._msgs[i]
                        return m
                if self._closed or (left := end - time.monotonic()) <= 0:
                    raise TimeoutError('no message on %s within %ss' % (subject or '*', timeout))
                self._cv.wait(left)

    def msgs(self, subject, duration):
        """All messages on subject (queued or arriving) during duration seconds."""
        out, end = [], time.monotonic() + duration
        while True:
            try:
                out.append(self.next_msg(max(0, end - time.monotonic()), subject))
            except TimeoutError:
                return out

    def request(self, subject, payload=b'', timeout=5):
        inbox = '_INBOX.' + uuid.uuid4().hex
        sid = self.sub(inbox)
        try:
            self.pub(subject, payload, reply=inbox)
            return self.next_msg(timeout, inbox).data
        finally:
            self.unsub(sid)

    def close(self):
        if self.sock:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self._reader.join(5)
            self.sock = None


if __name__ == '__main__':
    servers, tls_server = cluster(3), None
    try:
        a = NatsClient(servers[0].url, 'ibp', 's3cret')
        b = NatsClient(servers[2].url, 'ibp', 's3cret')
        # Interest crosses routes asynchronously and in order: 'svc' is
        # subscribed before 'x.*', so once x.1 arrives, server 0 knows both.
        b.sub('svc')
        b.sub('x.*')
        b.flush()
        payload = ('hi\r\n\u00e9' * 5000).encode()   # spans reads; CRLF and non-ASCII inside

        def crossed():
            a.pub('x.1', payload)
            return b.msgs('x.1', 0.2)
        got = pdnsfix.wait_until(crossed, 10)
        assert got and all(m.data == payload and m.reply is None for m in got), got

        def answer():   # b answers one request from a
            m = b.next_msg(10, 'svc')
            b.pub(m.reply, b'pong:' + m.data)
        t = threading.Thread(target=answer)
        t.start()
        assert a.request('svc', b'ping', 10) == b'pong:ping'
        t.join()
        try:
            NatsClient(servers[1].url, 'ibp', 'wrong')
            raise AssertionError('wrong password accepted')
        except NatsError as e:
            assert 'Authorization Violation' in str(e), e
        a.close()
        b.close()

        # TLS: INFO comes in plain text (tls_required), then the handshake
        # verifies the server against the generated CA.
        tls_server = NatsServer(tls=True).start()
        with socket.create_connection(('127.0.0.1', tls_server.port), timeout=5) as s:
            info = json.loads(s.recv(4096).decode().split(' ', 1)[1])
            assert info.get('tls_required'), info
            ctx = ssl.create_default_context(cafile=tls_server.ca_file)
            with ctx.wrap_socket(s, server_hostname='127.0.0.1') as ts:
                assert ts.version()

        # All down, then back on the same ports: the routes form again.
        for s in servers:
            s.stop()
        for s in servers:
            s.start()
        assert pdnsfix.wait_until(lambda: all(s.num_routes() == 2 for s in servers), 20, 0.1)
    finally:
        for s in servers + [tls_server]:
            if s:
                s.stop()
    assert not any(s.running() for s in servers)
    print('natsfix self-test ok')
