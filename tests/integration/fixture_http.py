"""A fixture HTTP(S) server for the sidecar tests (stdlib only).

    srv = FixtureServer()                 # or FixtureServer(tls=True)
    srv.start()
    srv.set('/members.json', '{"x": 1}')  # ETag and Last-Modified are automatic
    srv.set('/slow', 'late', delay=3)
    srv.set('/gone', 'oops', status=500)
    url = srv.url('/members.json')        # http://127.0.0.1:<port>/members.json
    srv.requests('/members.json')         # [(method, {header: value}), ...]
    srv.serve_files('/acme/', some_dir)   # GET /acme/<file> answers that file's bytes
    srv.stop()

It binds 127.0.0.1 on a free port, never anything else. Paths are matched
with their query string first, then without it; requests are recorded under
the path without the query. A 200 entry answers If-None-Match /
If-Modified-Since with 304. With tls=True and no certfile, a self-signed
certificate for IP 127.0.0.1 is made with openssl in a temp dir;
`srv.certfile` is then what a client must trust.

Helpers: garbage(n), huge(n), make_tar_gz({name: bytes}),
make_mmdb_tar_gz(mmdb_path, inner_name), make_self_signed(dir).
"""

import base64
import email.utils
import hashlib
import http.server
import io
import os
import random
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse

__all__ = ['FixtureServer', 'garbage', 'huge', 'make_tar_gz', 'make_mmdb_tar_gz',
           'make_self_signed']


# ---- bodies -------------------------------------------------------------------

def garbage(n=4096, seed=1):
    """n reproducible pseudo-random bytes: no archive, no JSON, no database."""
    return random.Random(seed).randbytes(n)


def huge(n):
    """An n-byte body (for size limits)."""
    return b'x' * n


def make_tar_gz(members):
    """A tar.gz holding members ({inner name: bytes or str}), in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w:gz') as tar:
        for name, data in members.items():
            if isinstance(data, str):
                data = data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1704067200
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def make_mmdb_tar_gz(mmdb_path, inner_name='GeoLite2-City_20240101/GeoLite2-City.mmdb'):
    """A tar.gz shaped like MaxMind's downloads, with a licence file first."""
    with open(mmdb_path, 'rb') as f:
        data = f.read()
    top = inner_name.split('/')[0] if '/' in inner_name else 'GeoLite2'
    return make_tar_gz({top + '/LICENSE.txt': 'test licence\n', inner_name: data})


def make_self_signed(directory):
    """(certfile, keyfile) of a self-signed certificate for IP 127.0.0.1."""
    cert = os.path.join(directory, 'cert.pem')
    key = os.path.join(directory, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


# ---- server -------------------------------------------------------------------

class _Entry:
    def __init__(self, body, status, headers, delay, auth, no_length):
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.status = status
        self.delay = delay
        self.auth = auth
        self.no_length = no_length
        self.headers = {'ETag': '"%s"' % hashlib.sha256(self.body).hexdigest()[:20],
                        'Last-Modified': email.utils.formatdate(time.time(), usegmt=True),
                        'Content-Type': 'application/octet-stream'}
        # Given headers replace the automatic ones whatever their case; None removes.
        for name, value in (headers or {}).items():
            for auto in [k for k in self.headers if k.lower() == name.lower()]:
                del self.headers[auto]
            if value is not None:
                self.headers[name] = str(value)

    def header(self, name):
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def _not_modified(entry, req_headers):
    inm = req_headers.get('If-None-Match')
    if inm is not None:
        tags = [t.strip() for t in inm.split(',')]
        return '*' in tags or entry.header('ETag') in tags
    ims, lm = req_headers.get('If-Modified-Since'), entry.header('Last-Modified')
    if ims is None or lm is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(lm) <= email.utils.parsedate_to_datetime(ims)
    except (TypeError, ValueError):
        return False


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    timeout = 30

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def _serve(self, head):
        fixture = self.server.fixture
        entry = fixture._lookup(self.command, self.path, dict(self.headers.items()))
        if entry is None:
            return self._reply(404, {}, b'not found\n', head)
        if entry.delay:
            time.sleep(entry.delay)
        if entry.auth and self.headers.get('Authorization') != entry.auth:
            return self._reply(401, {'WWW-Authenticate': 'Basic realm="fixture"'},
                               b'unauthorized\n', head)
        if entry.status == 200 and _not_modified(entry, self.headers):
            keep = {k: v for k, v in entry.headers.items()
                    if k.lower() in ('etag', 'last-modified')}
            return self._reply(304, keep, b'', True)
        self._reply(entry.status, entry.headers, entry.body, head, entry.no_length)

    def _reply(self, status, headers, body, head, no_length=False):
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if no_length:
                # Close-delimited: the client cannot know the size in advance.
                self.send_header('Connection', 'close')
                self.close_connection = True
            else:
                self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            if not head and status not in (204, 304):
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True  # the client gave up (timeouts, size limits)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of connections past it is
    # dropped and retried by TCP a second later, which tests would see.
    request_queue_size = 128
    ssl_context = None
    fixture = None

    def get_request(self):
        sock, addr = super().get_request()
        sock.settimeout(30)
        if self.ssl_context is not None:
            # The handshake happens in the handler thread (finish_request), so
            # a client that rejects our certificate cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        with self.fixture._lock:
            self.fixture._conns.add(sock)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            request.do_handshake()
        super().finish_request(request, client_address)

    def shutdown_request(self, request):
        with self.fixture._lock:
            self.fixture._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass  # clients hanging up or refusing the certificate are what tests do


class FixtureServer:
    def __init__(self, tls=False, certfile=None, keyfile=None):
        self.tls = tls
        self.certfile = certfile
        self.keyfile = keyfile
        self._tmpdir = None
        self._lock = threading.Lock()
        self._entries = {}
        self._requests = {}
        self._dirs = {}
        self._conns = set()
        self._httpd = None
        self._thread = None

    # -- lifecycle --

    def start(self):
        self._httpd = _Server(('127.0.0.1', 0), _Handler)
        self._httpd.fixture = self
        if self.tls:
            self._httpd.ssl_context = self._make_context()
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.05}, daemon=True)
        self._thread.start()
        return self

    def _make_context(self):
        if self.certfile is None:
            self._tmpdir = tempfile.mkdtemp(prefix='fixture-tls-')
            self.certfile, self.keyfile = make_self_signed(self._tmpdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def stop(self, drop_connections=False):
        """Stops listening. Connections already open (a client's keep-alive)
        are still served until they idle out, unless drop_connections: then
        they are shut down too, as a server that goes away would."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if drop_connections:
                with self._lock:
                    conns = list(self._conns)
                for c in conns:
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self._thread.join(timeout=5)
            self._httpd = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses --

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def base_url(self):
        return '%s://127.0.0.1:%d' % ('https' if self.tls else 'http', self.port)

    def url(self, path='/'):
        return self.base_url + (path if path.startswith('/') else '/' + path)

    # -- content --

    def set(self, path, body, status=200, headers=None, delay=0, auth=None, no_length=False):
        """Serves body at path (replacing what was there). headers override the
        automatic ETag / Last-Modified / Content-Type (None removes one).
        auth=(user, password) demands that HTTP Basic auth, else 401.
        no_length=True sends no Content-Length (close-delimited body)."""
        if auth is not None:
            auth = 'Basic ' + base64.b64encode(('%s:%s' % auth).encode()).decode()
        entry = _Entry(body, status, headers, delay, auth, no_length)
        with self._lock:
            self._entries[path] = entry

    def serve_files(self, prefix, directory, delay=0):
        """GET prefix + NAME answers the bytes of directory/NAME (read at each
        request, so another process can write it) when no set() entry matches;
        a missing file, or a NAME with '/' or starting with '.', is 404.
        prefix ends with '/'; delay (seconds) comes before every answer."""
        with self._lock:
            self._dirs[prefix] = (directory, delay)

    def remove(self, path):
        with self._lock:
            self._entries.pop(path, None)

    def requests(self, path):
        """[(method, headers dict)] received for path (without query), in order."""
        with self._lock:
            return list(self._requests.get(path, []))

    def clear_requests(self, path=None):
        with self._lock:
            if path is None:
                self._requests.clear()
            else:
                self._requests.pop(path, None)

    def _lookup(self, method, raw_path, headers):
        path = urllib.parse.urlsplit(raw_path).path
        with self._lock:
            self._requests.setdefault(path, []).append((method, headers))
            entry = self._entries.get(raw_path) or self._entries.get(path)
            dirs = list(self._dirs.items())
        if entry is not None:
            return entry
        for prefix, (directory, delay) in dirs:
            name = path[len(prefix):] if path.startswith(prefix) else ''
            if name and '/' not in name and not name.startswith('.'):
                time.sleep(delay)
                try:
                    with open(os.path.join(directory, name), 'rb') as f:
                        return _Entry(f.read(), 200, None, 0, None, False)
                except OSError:
                    return None
        return None
