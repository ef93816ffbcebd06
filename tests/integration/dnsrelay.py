"""A DNS relay on 127.0.0.1 in front of a test's PowerDNS: UDP and TCP,
every exchange recorded, an upstream response rewritten where a test shows
a fault (test_acme_issuance.py, test_secondaries.py)."""
import contextlib
import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

import pdnsfix


class DnsRelay:
    """UDP and TCP on 127.0.0.1:<port>, forwarding every query to PowerDNS at
    127.0.0.1:<upstream> and recording (client, question, rcode, answers,
    milliseconds). upstream=None answers every query itself with an empty
    NOERROR (for a client whose own check must not reach PowerDNS).
    stagger: the n-th query (from 0) is held n * stagger seconds before it is
    forwarded, as queries of one validation from several places arrive spread
    over some milliseconds. rewrite(query, response): changes an upstream
    response before it is recorded and passed on (a fault to show)."""

    def __init__(self, label, upstream, stagger=0, rewrite=None):
        self.label = label
        self.upstream = upstream
        self.stagger = stagger
        self.rewrite = rewrite
        self._n = 0
        self.entries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.port = pdnsfix.free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(('127.0.0.1', self.port))
        self.udp.settimeout(0.1)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(('127.0.0.1', self.port))
        self.tcp.listen(16)
        self.tcp.settimeout(0.1)
        self._threads = [threading.Thread(target=f, daemon=True)
                         for f in (self._udp_loop, self._tcp_loop)]
        for t in self._threads:
            t.start()

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                wire, addr = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._udp_one, args=(wire, addr), daemon=True).start()

    def _udp_one(self, wire, addr):
        out = self._answer(wire, 'udp')
        if out is not None:
            with contextlib.suppress(OSError):
                self.udp.sendto(out, addr)

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    wire = _recv_exact(conn, struct.unpack('!H', head)[0])
                    if wire is None:
                        return
                    out = self._answer(wire, 'tcp')
                    if out is None:
                        return
                    conn.sendall(struct.pack('!H', len(out)) + out)
            except OSError:
                return

    def _answer(self, wire, transport):
        t0 = time.monotonic()
        try:
            q = dns.message.from_wire(wire)
        except Exception:   # noqa: BLE001 - recorded, not answered
            self._record(t0, transport, '?', '?', 'unparsable query', [])
            return None
        qname = q.question[0].name.to_text() if q.question else '?'
        qtype = dns.rdatatype.to_text(q.question[0].rdtype) if q.question else '?'
        if self.stagger:
            with self._lock:
                n, self._n = self._n, self._n + 1
            time.sleep(n * self.stagger)
            t0 = time.monotonic()
        try:
            if self.upstream is None:
                r = dns.message.make_response(q)
                r.flags |= dns.flags.AA
                out = r.to_wire()
            elif transport == 'udp':
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(5)
                    s.sendto(wire, ('127.0.0.1', self.upstream))
                    out, _ = s.recvfrom(65535)
            else:
                with socket.create_connection(('127.0.0.1', self.upstream), timeout=5) as s:
                    s.sendall(struct.pack('!H', len(wire)) + wire)
                    head = _recv_exact(s, 2)
                    out = _recv_exact(s, struct.unpack('!H', head)[0]) if head else None
                    if out is None:
                        raise OSError('PowerDNS closed the TCP connection')
        except OSError as e:
            self._record(t0, transport, qname, qtype, 'no answer: %s' % e, [])
            return None
        r = dns.message.from_wire(out)
        if self.rewrite and self.upstream is not None:
            self.rewrite(q, r)
            out = r.to_wire()
        answers = [rd.to_text() for rs in r.answer for rd in rs]
        self._record(t0, transport, qname, qtype, dns.rcode.to_text(r.rcode()), answers,
                     r.to_text())
        return out

    def _record(self, t0, transport, qname, qtype, rcode, answers, text=''):
        with self._lock:
            self.entries.append({'client': self.label, 'at': t0, 'transport': transport,
                                 'qname': qname, 'qtype': qtype, 'rcode': rcode,
                                 'answers': answers, 'ms': (time.monotonic() - t0) * 1000,
                                 'text': text})

    def queries(self, qname=None):
        with self._lock:
            return [e for e in self.entries
                    if qname is None or e['qname'].lower() == qname.lower().rstrip('.') + '.']

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _recv_exact(sock, n):
    buf = b''
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
