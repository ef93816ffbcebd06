"""A real pdns_server 4.7 on a loopback port of its own, with ibpdns-pipe as
its only backend; stopped by PID. Queries go through dnspython; the client
address PowerDNS sees can be set with ECS or with a PROXY v2 header
(proxy-protocol-from=127.0.0.1), so routing by remote is testable too."""
import atexit
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

import ibptest

PDNS_SERVER = '/usr/sbin/pdns_server'
PROXY_SOURCE = '127.0.0.2'   # queries from here carry a PROXY v2 header
PIPE = os.path.join(ibptest.BUILD, 'pipe', 'ibpdns-pipe')

NO_CACHE = {'cache-ttl': '0', 'query-cache-ttl': '0', 'negquery-cache-ttl': '0'}
PRODUCTION = {'cache-ttl': '60', 'query-cache-ttl': '20', 'negquery-cache-ttl': '60',
              'consistent-backends': 'no'}


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(('127.0.0.1', 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError('no free port')


# Run directories (config, log, control socket) are removed when the test
# script exits; set IBP_KEEP_RUNDIR=1 to keep them for a post-mortem.
_RUNDIRS = []


def _remove_rundirs():
    if os.environ.get('IBP_KEEP_RUNDIR'):
        return
    import shutil
    for d in _RUNDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_rundirs)


class Pdns:
    def __init__(self, table, abi=3, settings=None, check_interval_ms=100, pipe_args=''):
        self.rundir = tempfile.mkdtemp(prefix='ibptest-pdns-')
        _RUNDIRS.append(self.rundir)
        self.table = table
        self.port = free_port()
        conf = {
            'launch': 'pipe', 'local-address': '127.0.0.1', 'local-port': str(self.port),
            'daemon': 'no', 'guardian': 'no', 'disable-syslog': 'yes', 'loglevel': '4',
            'write-pid': 'no', 'socket-dir': self.rundir, 'security-poll-suffix': '',
            'zone-cache-refresh-interval': '0',
            'pipe-command': ('%s --table=%s --check-interval=%d %s'
                             % (PIPE, table, check_interval_ms, pipe_args)).strip(),
            'pipe-abi-version': str(abi), 'pipe-timeout': '2000',
            'edns-subnet-processing': 'yes', 'proxy-protocol-from': PROXY_SOURCE + '/32',
            'allow-axfr-ips': '127.0.0.0/8', 'receiver-threads': '1', 'distributor-threads': '2',
        }
        conf.update(NO_CACHE)
        conf.update(settings or {})
        with open(os.path.join(self.rundir, 'pdns.conf'), 'w') as f:
            for k, v in conf.items():
                f.write('%s=%s\n' % (k, v))
        self.log = open(os.path.join(self.rundir, 'pdns.log'), 'w+')
        self.proc = subprocess.Popen([PDNS_SERVER, '--config-dir=' + self.rundir],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError('pdns_server exited with %s:\n%s'
                                     % (self.proc.returncode, self.logtext()[-3000:]))
            try:
                dns.query.udp(dns.message.make_query('ready.invalid', 'SOA'), '127.0.0.1',
                              port=self.port, timeout=0.3)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.1)
        raise AssertionError('pdns_server did not answer within %ds' % timeout)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- queries -------------------------------------------------------------

    def query(self, name, rdtype='A', ecs=None, remote=None, tcp=False, timeout=3):
        """ecs: 'addr/len'; remote: the client address PowerDNS should see
        (sent in a PROXY v2 header)."""
        q = dns.message.make_query(name, rdtype, use_edns=0)
        if ecs:
            addr, plen = ecs.split('/')
            q.use_edns(0, options=[dns.edns.ECSOption(addr, int(plen))])
        if remote:
            return self._proxied(q, remote, timeout)
        if tcp:
            return dns.query.tcp(q, '127.0.0.1', port=self.port, timeout=timeout)
        return dns.query.udp(q, '127.0.0.1', port=self.port, timeout=timeout)

    def _proxied(self, q, remote, timeout):
        wire = proxy_v2_header(remote, '127.0.0.1', 5353, self.port) + q.to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((PROXY_SOURCE, 0))
            s.settimeout(timeout)
            s.sendto(wire, ('127.0.0.1', self.port))
            data, _ = s.recvfrom(65535)
        return dns.message.from_wire(data)

    def axfr(self, zone, relativize=True):
        return list(dns.query.xfr('127.0.0.1', zone, port=self.port, timeout=10,
                                  relativize=relativize))

    def coprocess_pids(self):
        """PIDs of ibpdns-pipe processes serving this instance's table."""
        return pipe_pids(self.table)


def pipe_pids(table):
    pids = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv and argv[0].endswith(b'ibpdns-pipe') and \
                any(a == b'--table=' + table.encode() for a in argv):
            pids.append(int(pid))
    return pids


def proxy_v2_header(src, dst, sport, dport):
    sig = b'\r\n\r\n\x00\r\nQUIT\n'
    if ':' in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, '::1' if dst == '127.0.0.1' else dst)
        fam = 0x22   # UDP over IPv6
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x12   # UDP over IPv4
    body = addrs + struct.pack('!HH', sport, dport)
    return sig + bytes([0x21, fam]) + struct.pack('!H', len(body)) + body


def a_records(resp, rdtype='A'):
    out = []
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out += [r.to_text() for r in rrset]
    return sorted(out)


def ecs_scope(resp):
    for opt in resp.options:
        if isinstance(opt, dns.edns.ECSOption):
            return opt.scopelen
    return None


# ---- additions for test_pdns*.py --------------------------------------------------

_install_seq = [0]


def install_table(dst, src=None, data=None, durable=True):
    """Publishes a table at dst the way the sidecar does: the bytes (of src, or
    data) go to a temporary name in dst's directory, are fsynced, and the file
    is renamed over dst. Every call makes a new file (a new inode). Readers
    see the swap atomically without the fsync (durable=False), which only
    matters across a crash: stress loops skip it to keep their pace."""
    if data is None:
        with open(src, 'rb') as f:
            data = f.read()
    _install_seq[0] += 1
    tmp = '%s.tmp-%d-%d' % (dst, os.getpid(), _install_seq[0])
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.rename(tmp, dst)


def wait_until(fn, timeout, interval=0.02):
    """Calls fn() until it returns something true or timeout seconds passed;
    returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def _pdns_log_lines(self, substring):
    """Lines of the pdns log (which also holds the coprocesses' stderr) that
    contain substring."""
    return [l for l in self.logtext().splitlines() if substring in l]


Pdns.log_lines = _pdns_log_lines


class Coproc:
    """One ibpdns-pipe driven directly over its stdin/stdout, the way PowerDNS
    would, but with whatever bytes a test wants. Every wait has a timeout;
    reading and writing happen on threads so a 10 MB write cannot deadlock
    against answers filling the stdout pipe."""

    def __init__(self, table, check_interval_ms=100, extra_args=()):
        import threading
        self._threading = threading
        self.proc = subprocess.Popen(
            [PIPE, '--table=' + table, '--check-interval=%d' % check_interval_ms]
            + list(extra_args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = bytearray()
        self._err = bytearray()
        self._pos = 0
        self._cv = threading.Condition()
        self._eof = False
        self._readers = [threading.Thread(target=self._drain, args=(self.proc.stdout, self._out, True),
                                          daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stderr, self._err, False),
                                          daemon=True)]
        for t in self._readers:
            t.start()

    def _drain(self, stream, buf, is_stdout):
        while True:
            chunk = stream.read1(1 << 16) if hasattr(stream, 'read1') else os.read(stream.fileno(), 1 << 16)
            with self._cv:
                if not chunk:
                    if is_stdout:
                        self._eof = True
                    self._cv.notify_all()
                    return
                buf += chunk
                self._cv.notify_all()

    def send(self, data, timeout=30):
        """Writes data to stdin (on a thread); fails if that takes longer than
        timeout seconds (the coprocess stopped reading)."""
        err = []

        def write():
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except Exception as e:   # noqa: BLE001 - reported to the caller
                err.append(e)
        t = self._threading.Thread(target=write, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError('writing %d bytes to ibpdns-pipe did not finish within %ss'
                                 % (len(data), timeout))
        if err:
            raise AssertionError('writing to ibpdns-pipe failed: %r' % err[0])

    def read_line(self, timeout=5):
        """The next answer line (bytes, without '\\n'); fails on timeout or EOF."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                nl = self._out.find(b'\n', self._pos)
                if nl >= 0:
                    line = bytes(self._out[self._pos:nl])
                    self._pos = nl + 1
                    return line
                if self._eof:
                    raise AssertionError('ibpdns-pipe closed stdout (exit %s); pending %r'
                                         % (self.proc.poll(), bytes(self._out[self._pos:])[:200]))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError('no answer line from ibpdns-pipe within %ss; pending %r'
                                         % (timeout, bytes(self._out[self._pos:])[:200]))
                self._cv.wait(left)

    def read_answer(self, timeout=5):
        """Lines up to and including the next END or FAIL line."""
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if line in (b'END', b'FAIL'):
                return lines

    def pending(self, wait=0.2):
        """Answer bytes not read yet, after waiting `wait` seconds for more."""
        time.sleep(wait)
        with self._cv:
            return bytes(self._out[self._pos:])

    def stderr_text(self):
        with self._cv:
            return self._err.decode('utf-8', 'replace')

    def helo(self, abi):
        self.send(b'HELO\t%d\n' % abi)
        return self.read_line()

    def close(self, timeout=5):
        """Closes stdin; returns the exit status (None if it did not exit
        within timeout seconds; it is then killed)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
