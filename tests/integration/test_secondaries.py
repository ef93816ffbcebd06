#!/usr/bin/python3
"""Real DNS software against a real pdns_server with ibpdns-pipe (issue 15,
acceptance 3 and 4), on the real IBP config plus names below empty
non-terminals (ibptest.DEEP_STATIC):

- a BIND 9.18 secondary (named) transfers every zone of the table by AXFR,
  loads each without a complaint, its copies pass named-checkzone and hold
  exactly what PowerDNS transfers, and it answers like PowerDNS (A, NS, SOA,
  CNAME, NODATA at an empty non-terminal, NXDOMAIN for unknown names);
- unbound with strict QNAME minimisation resolves names below empty
  non-terminals through PowerDNS: it asks the empty non-terminal itself and
  gets NOERROR/NODATA; against a copy of PowerDNS that answers NXDOMAIN there
  (the fault fixed in issue 15) the same resolver fails.

One check fails today, on purpose (a fault reported, not hidden): names that
only ACME records make (the ACME names, and empty non-terminals such as
plus.dotters.network above them) are left out of AXFR with the ACME records,
so the secondary answers NXDOMAIN where PowerDNS answers NOERROR.

Everything listens on and talks to 127.0.0.1 only. Knot's kzonecheck is not
installed (not in scripts/deps): no Knot check. named and unbound come from
scripts/deps; without them the tests fail, they do not skip."""
import os
import re
import signal
import subprocess
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone

import dnsrelay
import ibptest
import pdnsfix
from ibptest import check, eq

NAMED = '/usr/sbin/named'
CHECKZONE = '/usr/bin/named-checkzone'
UNBOUND = '/usr/sbin/unbound'
TRANSFER_WAIT = 30   # seconds for named to transfer every zone (about 2 s here)


def require(path, package):
    check(os.access(path, os.X_OK),
          '%s is not installed (Debian package %s); scripts/deps installs it' % (path, package))


def rcode(r):
    return dns.rcode.to_text(r.rcode())


def query(port, name, rdtype, timeout=3):
    return dns.query.udp(dns.message.make_query(name, rdtype), '127.0.0.1', port=port,
                         timeout=timeout)


def summary(r):
    """What a client sees of an answer: rcode, AA, the answer records."""
    return (rcode(r), bool(r.flags & dns.flags.AA),
            sorted('%s %d %s %s' % (rs.name, rs.ttl, dns.rdatatype.to_text(rs.rdtype), rd)
                   for rs in r.answer for rd in rs))


def records(zone):
    """A dns.zone.Zone's records as a set of (owner, TTL, type, rdata) texts."""
    return {(str(name), ttl, dns.rdatatype.to_text(rd.rdtype), rd.to_text())
            for name, ttl, rd in zone.iterate_rdatas()}


class Daemon:
    """A foreground server process with its log in rundir; stopped by PID
    (SIGTERM, then SIGKILL after 10 s), also when the `with` body fails."""

    def __init__(self, argv, rundir, name):
        self.log_path = os.path.join(rundir, name + '.log')
        self.name = name
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=rundir)

    def logtext(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def alive(self):
        check(self.proc.poll() is None, '%s exited with %s:\n%s'
              % (self.name, self.proc.returncode, self.logtext()[-3000:]))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def named_secondary(rundir, zones, primary_port):
    """named as a secondary of every zone, from 127.0.0.1:primary_port, on
    127.0.0.1:<free port>; every file in rundir. No recursion, no NOTIFY, no
    validation, no control channel: nothing but the transfers leaves it."""
    port = pdnsfix.free_port()
    conf = ['options {',
            '  directory "%s";' % rundir,
            '  pid-file "%s/named.pid";' % rundir,
            '  session-keyfile "%s/session.key";' % rundir,
            '  managed-keys-directory "%s";' % rundir,
            '  dump-file "%s/named_dump.db";' % rundir,
            '  statistics-file "%s/named.stats";' % rundir,
            '  geoip-directory none;',
            '  listen-on port %d { 127.0.0.1; };' % port,
            '  listen-on-v6 { none; };',
            '  query-source address 127.0.0.1;',
            '  transfer-source 127.0.0.1;',
            '  notify-source 127.0.0.1;',
            '  recursion no;',
            '  notify no;',
            '  dnssec-validation no;',
            '  empty-zones-enable no;',
            '  masterfile-format text;',
            '};',
            'controls { };']
    for z in zones:
        conf.append('zone "%s" { type secondary; primaries { 127.0.0.1 port %d; }; '
                    'file "%s.db"; };' % (z, primary_port, z))
    path = os.path.join(rundir, 'named.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(conf) + '\n')
    # -g: foreground, log to stderr. As root named keeps running as root (no -u:
    # the rundir is root's); as another user it needs nothing more on a high port.
    d = Daemon([NAMED, '-4', '-g', '-c', path], rundir, 'named')
    d.port = port
    return d


# Every IPv4 network but 127/8: unbound may query nothing there, so nothing it
# does can leave the machine even if it tried the root or a zone's NS.
NOT_LOOPBACK = ['0.0.0.0/2', '64.0.0.0/3', '96.0.0.0/4', '112.0.0.0/5', '120.0.0.0/6',
                '124.0.0.0/7', '126.0.0.0/8', '128.0.0.0/1']


def unbound_strict(rundir, stub_port):
    """unbound with strict QNAME minimisation, iterator only, dotters.network
    a stub zone at 127.0.0.1:stub_port, on 127.0.0.1:<free port>; logs every
    query it sends (verbosity 3). Waits until it answers."""
    port = pdnsfix.free_port()
    conf = ['server:',
            '  verbosity: 3',
            '  interface: 127.0.0.1',
            '  port: %d' % port,
            '  interface-automatic: no',
            '  outgoing-interface: 127.0.0.1',
            '  do-ip6: no',
            '  do-not-query-localhost: no']
    conf += ['  do-not-query-address: %s' % n for n in NOT_LOOPBACK]
    conf += ['  chroot: ""',
             '  username: ""',
             '  directory: "%s"' % rundir,
             '  pidfile: "%s/unbound.pid"' % rundir,
             '  logfile: ""',
             '  use-syslog: no',
             '  num-threads: 1',
             '  module-config: "iterator"',
             '  qname-minimisation: yes',
             '  qname-minimisation-strict: yes',
             '  harden-referral-path: no',
             '  access-control: 127.0.0.0/8 allow',
             'remote-control:',
             '  control-enable: no',
             'stub-zone:',
             '  name: "dotters.network"',
             '  stub-addr: 127.0.0.1@%d' % stub_port]
    path = os.path.join(rundir, 'unbound.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(conf) + '\n')
    d = Daemon([UNBOUND, '-d', '-c', path], rundir, 'unbound')
    d.port = port
    try:
        end = time.monotonic() + 15
        while True:
            d.alive()
            try:
                query(port, 'localhost', 'A', timeout=0.3)   # unbound's own local zone
                return d
            except (dns.exception.Timeout, OSError):
                check(time.monotonic() < end, 'unbound did not answer within 15 s:\n'
                      + d.logtext()[-3000:])
                time.sleep(0.1)
    except BaseException:
        d.stop()
        raise


def unbound_exchanges(log):
    """{'<name>. <TYPE>': [what unbound made of each answer]} for every query
    unbound sent (verbosity 3: "sending query: N T IN" ... "query response
    was ..."), and the set of addresses it sent them to."""
    sent, targets, last = {}, set(), None
    for line in log.splitlines():
        m = re.search(r'sending query: (\S+) (\S+) IN$', line)
        if m:
            last = '%s %s' % (m.group(1).lower(), m.group(2))
            sent.setdefault(last, [])
            continue
        m = re.search(r'sending to target: <[^>]*> (\S+)$', line)
        if m:
            targets.add(m.group(1))
            continue
        m = re.search(r'query response was (.+)$', line)
        if m and last is not None:
            sent[last].append(m.group(1).strip())
            last = None
    return sent, targets


def check_unbound_stayed_local(u, stub_port):
    sent, targets = unbound_exchanges(u.logtext())
    eq(targets, {'127.0.0.1#%d' % stub_port}, 'addresses unbound sent queries to')
    log = u.logtext()
    check('priming' not in log, 'unbound primed the root:\n' + log[-2000:])
    resolved = set(re.findall(r'info: resolving (\S+) \S+ IN$', log, re.M))
    check(resolved and all(n.lower().endswith('dotters.network.') for n in resolved),
          'unbound resolved names outside the stub zone: %r' % sorted(resolved))
    return sent


def nxdomain_at(upstream_port, names):
    """A relay in front of PowerDNS that answers NXDOMAIN for the names given
    (what the table served for empty non-terminals before issue 15) and
    passes everything else through unchanged."""
    names = {n.lower().rstrip('.') for n in names}

    def rewrite(q, r):
        if q.question[0].name.to_text().lower().rstrip('.') in names:
            r.set_rcode(dns.rcode.NXDOMAIN)
    return dnsrelay.DnsRelay('unbound', upstream_port, rewrite=rewrite)


# ---- BIND secondary ------------------------------------------------------------
BAD_NAMED_LOG = ('has no NS records', 'bad zone', 'not loaded due to errors', 'failed',
                 'refused', 'REFUSED', 'error', 'ignoring', 'not authoritative', 'FORMERR')


def wait_transferred(named, zones, serial, rundir):
    """Waits until named answers every zone's SOA with AA and the serial and
    has written the zone's file; returns {zone: parsed file}."""
    end = time.monotonic() + TRANSFER_WAIT
    loaded = {}
    while True:
        named.alive()
        for z in zones:
            if z in loaded:
                continue
            try:
                r = query(named.port, z, 'SOA', timeout=1)
                if rcode(r) != 'NOERROR' or not r.flags & dns.flags.AA or \
                        not r.answer or r.answer[0][0].serial != serial:
                    continue
                loaded[z] = dns.zone.from_file(os.path.join(rundir, z + '.db'), origin=z,
                                               relativize=False)
            except (dns.exception.DNSException, OSError):
                continue
        if len(loaded) == len(zones):
            return loaded
        check(time.monotonic() < end, 'named has not transferred %s within %d s:\n%s'
              % (sorted(set(zones) - set(loaded)), TRANSFER_WAIT, named.logtext()[-3000:]))
        time.sleep(0.1)


class Secondary:
    """PowerDNS on the IBP table with the deep names, and named a secondary of
    its every zone, waited for until each is transferred; both stopped on exit."""

    def __enter__(self):
        require(NAMED, 'bind9')
        require(CHECKZONE, 'bind9-utils')
        self.ws, tbl = ibptest.ibp_deep_table()
        self.zones = ibptest.table_zones(tbl)
        check(self.zones and 'dotters.network' in self.zones and
              'polkadot.ibp.network' in self.zones, 'zones of the table: %r' % self.zones)
        self.rundir = self.ws.path('named')
        os.mkdir(self.rundir)
        self.pdns = pdnsfix.Pdns(tbl)
        try:
            self.serial = self.pdns.query('dotters.network', 'SOA').answer[0][0].serial
            t0 = time.monotonic()
            self.named = named_secondary(self.rundir, self.zones, self.pdns.port)
            try:
                self.copies = wait_transferred(self.named, self.zones, self.serial, self.rundir)
            except BaseException:
                self.named.stop()
                raise
            self.took = time.monotonic() - t0
        except BaseException:
            self.pdns.stop()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.named.stop()
        finally:
            self.pdns.stop()

    def compare(self, name, qtype):
        eq(summary(query(self.named.port, name, qtype)), summary(self.pdns.query(name, qtype)),
           '%s %s: named (secondary) against PowerDNS' % (name, qtype))


def test_bind_secondary_transfers_and_serves_every_zone():
    with Secondary() as sec:
        p, named, zones, rundir = sec.pdns, sec.named, sec.zones, sec.rundir
        log = named.logtext()
        for z in zones:
            check(re.search(r"transfer of '%s/IN' from 127\.0\.0\.1#%d: Transfer completed"
                            % (re.escape(z), p.port), log),
                  'named logged no completed transfer of %s' % z)
        lines = log.splitlines()   # from "running" on (not the build flags)
        running = [i for i, l in enumerate(lines) if l.endswith(' running')]
        check(running, 'named never logged "running":\n' + log[-3000:])
        bad = [l for l in lines[running[0]:] if any(b in l for b in BAD_NAMED_LOG)]
        eq(bad, [], 'named complained')

        # Its copies: valid for named-checkzone (in-zone integrity only: -i full
        # would look out-of-zone NS names up through the system's resolver) and
        # exactly what PowerDNS transfers.
        names_to_resolve = set()
        for z in zones:
            path = os.path.join(rundir, z + '.db')
            res = subprocess.run([CHECKZONE, '-i', 'local', '-k', 'fail', '-n', 'fail', z, path],
                                 capture_output=True, text=True, timeout=60)
            eq(res.returncode, 0, 'named-checkzone %s (named\'s copy): %s'
               % (z, res.stdout + res.stderr))
            axfr = dns.zone.from_xfr(iter(p.axfr(z, relativize=False)), relativize=False)
            mine, theirs = records(sec.copies[z]), records(axfr)
            check(mine == theirs, 'zone %s: named holds %r more and %r fewer than '
                  'PowerDNS transfers' % (z, sorted(mine - theirs), sorted(theirs - mine)))
            for ns in sec.copies[z].find_rdataset(z + '.', 'NS'):
                names_to_resolve.add(ns.target.to_text())

        # Same answers from named and from PowerDNS.
        for name, qtype in [('dns-01.dotters.network', 'A'), ('dns-05.dotters.network', 'AAAA'),
                            ('dotters.network', 'NS'), ('dotters.network', 'SOA'),
                            ('www.dotters.network', 'A'),   # a CNAME to the apex, followed
                            ('polkadot.ibp.network', 'NS'), ('polkadot.ibp.network', 'SOA'),
                            ('kusama.ibp.network', 'NS'),
                            ('deep.dotters.network', 'A'), ('deep.dotters.network', 'TXT'),
                            ('x.deep.dotters.network', 'A'), ('y.deep.dotters.network', 'A')]:
            sec.compare(name, qtype)
        # The empty non-terminal the static records make is NODATA at the secondary too.
        for qtype in ('A', 'AAAA', 'TXT', 'NS'):
            r = query(named.port, 'deep.dotters.network', qtype)
            eq(summary(r), ('NOERROR', True, []), 'named: deep.dotters.network %s' % qtype)
            check(any(rs.rdtype == dns.rdatatype.SOA for rs in r.authority),
                  'named: deep.dotters.network %s: no SOA in the authority section' % qtype)
        eq(summary(query(named.port, 'x.deep.dotters.network', 'A'))[2],
           ['x.deep.dotters.network. 3600 A 192.0.2.7'], 'named: x.deep.dotters.network A')
        eq(rcode(query(named.port, 'y.deep.dotters.network', 'A')), 'NXDOMAIN',
           'named: y.deep.dotters.network A')
        # Every zone's NS names have addresses at the secondary (dotters.network).
        for ns in sorted(names_to_resolve):
            r = query(named.port, ns, 'A')
            check(rcode(r) == 'NOERROR' and r.answer and r.flags & dns.flags.AA,
                  'named: NS %s has no address: %s' % (ns, r))
        check('xception' not in p.logtext() and 'Should not get here' not in p.logtext(),
              'PowerDNS complained:\n' + p.logtext()[-2000:])
        print('named transferred %d zones in %.1f s' % (len(zones), sec.took), flush=True)


# Names that exist only because of ACME records: the ACME names themselves and
# the empty non-terminals above them (plus, stake.plus, boot.stake.plus and
# rpc.stake.plus are in the real IBP config, paras.dotters.network too).
ACME_ONLY = ['_acme-challenge.dotters.network', '_acme-challenge.boot.stake.plus.dotters.network',
             'paras.dotters.network', 'plus.dotters.network', 'stake.plus.dotters.network',
             'boot.stake.plus.dotters.network', 'rpc.stake.plus.dotters.network']


def test_names_only_acme_records_make_are_served_by_ibpdns_alone():
    """Documented (README, "ACME challenges and zones"): AXFR leaves ACME
    records out (their URL is never served and their value is fetched per
    query, BEHAVIOR §5), so a plain secondary has neither the ACME names nor
    the empty non-terminals only they make: NXDOMAIN there, NOERROR at
    PowerDNS. Every other name the secondary has answers alike (above)."""
    with Secondary() as sec:
        for name in ACME_ONLY:
            for qtype in ('TXT', 'A'):
                at_named = summary(query(sec.named.port, name, qtype))
                at_pdns = summary(sec.pdns.query(name, qtype))
                eq((at_named[0], at_pdns[0]), ('NXDOMAIN', 'NOERROR'),
                   '%s %s: named (secondary), PowerDNS' % (name, qtype))


# ---- unbound, strict QNAME minimisation ---------------------------------------

def test_unbound_strict_qname_minimisation_below_empty_non_terminals():
    require(UNBOUND, 'unbound')
    ws, tbl = ibptest.ibp_deep_table()
    rundir = ws.path('unbound')
    os.mkdir(rundir)
    with pdnsfix.Pdns(tbl, settings={'log-dns-queries': 'yes', 'loglevel': '6'}) as p:
        with unbound_strict(rundir, p.port) as u:
            r = query(u.port, 'x.deep.dotters.network', 'A', timeout=5)
            eq((rcode(r), pdnsfix.a_records(r)), ('NOERROR', ['192.0.2.7']),
               'unbound: x.deep.dotters.network A')
            for name, qtype in (('deep.dotters.network', 'A'), ('deep.dotters.network', 'AAAA'),
                                ('_acme-challenge.boot.stake.plus.dotters.network', 'TXT')):
                r = query(u.port, name, qtype, timeout=5)
                eq((rcode(r), len(r.answer)), ('NOERROR', 0), 'unbound: %s %s' % (name, qtype))
            eq(rcode(query(u.port, 'y.deep.dotters.network', 'A', timeout=5)), 'NXDOMAIN',
               'unbound: y.deep.dotters.network A')

            # The strict path was taken: unbound asked each empty non-terminal on
            # its own (the minimised query, type A) and took the answer as NODATA.
            sent = check_unbound_stayed_local(u, p.port)
            for ent in ibptest.DEEP_ENTS:
                eq(sent.get(ent + '. A'), ['nodata ANSWER'],
                   'unbound: its minimised query %s A (all it sent: %r)' % (ent, sorted(sent)))
            eq(sent.get('x.deep.dotters.network. A'), ['ANSWER'],
               'unbound: x.deep.dotters.network A after the minimised query')
            asked = re.findall(r"Remote 127\.0\.0\.1 wants '([^|']+)\|A'", p.logtext())
            check('deep.dotters.network' in asked and
                  asked.index('deep.dotters.network') < asked.index('x.deep.dotters.network'),
                  'PowerDNS was not asked deep.dotters.network A before x.deep: %r' % asked)
            r = p.query('deep.dotters.network', 'A')
            eq((rcode(r), len(r.answer)), ('NOERROR', 0), 'PowerDNS: deep.dotters.network A')


def test_unbound_strict_fails_where_an_empty_non_terminal_is_nxdomain():
    """The control: the same resolver against PowerDNS with deep.dotters.network
    made NXDOMAIN (the fault) cannot resolve x.deep.dotters.network."""
    require(UNBOUND, 'unbound')
    ws, tbl = ibptest.ibp_deep_table()
    rundir = ws.path('unbound')
    os.mkdir(rundir)
    with pdnsfix.Pdns(tbl) as p, nxdomain_at(p.port, ['deep.dotters.network']) as relay:
        with unbound_strict(rundir, relay.port) as u:
            r = query(u.port, 'x.deep.dotters.network', 'A', timeout=5)
            eq((rcode(r), pdnsfix.a_records(r)), ('NXDOMAIN', []),
               'unbound: x.deep.dotters.network A when deep.dotters.network is NXDOMAIN')
            sent = check_unbound_stayed_local(u, relay.port)
            eq(sent.get('deep.dotters.network. A'), ['NXDOMAIN ANSWER'],
               'unbound: its minimised query deep.dotters.network A through the relay')
            check('x.deep.dotters.network. A' not in sent,
                  'unbound asked the full name after an NXDOMAIN (not strict): %r' % sorted(sent))


if __name__ == '__main__':
    ibptest.main(globals())
