#!/usr/bin/python3
"""Fault tests of issue 10: the sidecar and the coprocess under a full or
read-only disk, a crash during a publish, a table rewritten in place under
load, a hostile monitor and out-of-range config periods.

Each test says in its docstring what it proves. Everything listens on and
talks to 127.0.0.1 only; every loop is bounded in count and time; processes
are stopped by PID. Needs root (tmpfs mounts: a full disk and a read-only
directory cannot be simulated with chmod as root). Run with /usr/bin/python3
(dnspython) and IBP_BUILD/IBP_SHARED set (meson does); IBP_SANITIZE=1 (the
ASan build) scans every log for sanitizer reports and widens the memory
bound of the hostile-body test by ASan's quarantine.

  meson test -C build faults --print-errorlogs
  /usr/bin/python3 tests/integration/test_faults.py test_NAME ...   # a few
"""
import contextlib
import ctypes
import errno
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import ibptest
import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar

HOST = 'polkadot.dotters.network'
LONDON = '81.2.69.142'
AMFORC = '91.90.166.200'
SANITIZE = os.environ.get('IBP_SANITIZE') == '1'
# The sidecar retries a failed publish on its own: a table must follow the
# end of a disk fault within this many seconds, with no SIGHUP and no input change.
RETRY_LIMIT = 16
# SIGHUP re-reads everything "now" (README): a publish that failed is tried
# again at once, whatever the retry back-off.
SIGHUP_LIMIT = 2.5
SAN_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer', 'runtime error:')
OFFICIAL = {'X-IBP-Results-Source': 'official', 'Content-Type': 'application/json'}
ENOSPC_TEXT = os.strerror(errno.ENOSPC)    # "No space left on device"
EROFS_TEXT = os.strerror(errno.EROFS)      # "Read-only file system"


# ---- helpers ---------------------------------------------------------------------------

def results_offline(*members, dup=False):
    """A /results body with these members failing the ping check (and, with
    dup, the first one listed twice more: in the group and in a second group)."""
    res = [{'Status': False, 'MemberName': m, 'IsIPv6': False, 'ErrorText': 'down',
            'Checktime': '2026-04-18T10:00:00Z'} for m in members]
    groups = [{'CheckName': 'ping', 'IsIPv6': False, 'Results': res + (res[:1] if dup else [])}]
    if dup:
        groups.append({'CheckName': 'ping', 'IsIPv6': False, 'Results': res[:1]})
    return json.dumps({'SiteResults': groups}).encode()


def wait(fn, timeout, interval=0.1):
    return pdnsfix.wait_until(fn, timeout, interval)


def log_tail(text, n=2500):
    return text[-n:]


def sanitizer_lines(text):
    return [l for l in text.splitlines() if any(m in l for m in SAN_MARKS)]


def alive(sc):
    """Fails the test at once (with the log) if the sidecar has exited."""
    if sc.proc is None or sc.proc.poll() is not None:
        raise AssertionError('the sidecar exited (status %s):\n%s'
                             % (sc.proc and sc.proc.returncode, log_tail(sc.logtext())))
    return True


def status(sc, timeout=5):
    """/status parsed; waits up to timeout s for the API to listen (it starts
    after the first config fetch). Fails at once if the sidecar exited."""
    end = time.monotonic() + timeout
    while True:
        alive(sc)
        code, _, body = sc.api('/status')
        if code == 200:
            return json.loads(body)
        if code != 0 or time.monotonic() >= end:
            raise AssertionError('/status: HTTP %d: %s' % (code, body[:300]))
        time.sleep(0.05)


def table_error(sc):
    return status(sc)['table']['last_error']


def results_source(sc):
    return status(sc)['sources']['results']


def metric(sc, sample):
    """The value of one /metrics sample line (`name{labels}` exactly), or None."""
    alive(sc)
    code, _, text = sc.api('/metrics')
    eq(code, 200, '/metrics')
    for line in text.splitlines():
        if line.startswith(sample + ' '):
            return float(line.rsplit(' ', 1)[1])
    return None


def new_sidecar(table=None, poll=1, reload=1, extra=None, monitor_port=None, **kw):
    """A Sidecar (not started) whose table is `table` (an absolute path) and
    whose monitor is on `monitor_port` if given."""
    extra = json.loads(json.dumps(extra or {}))
    if table:
        extra.setdefault('Routing', {})['TablePath'] = table
    if monitor_port:
        extra.setdefault('DnsApi', {})['MonitorPort'] = str(monitor_port)
    sc = Sidecar(reload=reload, poll=poll, extra=extra, start=False, **kw)
    if table:
        sc.table = table
    return sc


@contextlib.contextmanager
def running(sc):
    """Stops sc (SIGTERM, by PID) at the end; on success also requires a clean
    exit status and no sanitizer report in its log."""
    try:
        yield sc
    except BaseException:
        text = stop_sidecar(sc)[1]
        bad = sanitizer_lines(text)
        if bad:
            print('  sidecar sanitizer report: %s' % bad[:5], flush=True)
        raise
    rc, text = stop_sidecar(sc)
    bad = sanitizer_lines(text)
    check(not bad, 'sanitizer report in the sidecar log:\n' + log_tail(text, 4000))
    check(rc in (None, 0), 'the sidecar exited with status %s on SIGTERM:\n%s' % (rc, log_tail(text)))


def stop_sidecar(sc):
    """(exit status of the SIGTERM we sent, or None if it was not running; log text)."""
    rc = None
    if sc.proc is not None and sc.proc.poll() is None:
        sc.proc.send_signal(signal.SIGTERM)
        try:
            rc = sc.proc.wait(15)
        except subprocess.TimeoutExpired:
            sc.proc.kill()
            sc.proc.wait()
            rc = 'not stopped within 15 s'
    text = sc.logtext() if not sc.log.closed else ''
    sc.stop()
    return rc, text


class Tmpfs:
    """A tmpfs of `size` mounted on a fresh temp dir; unmounted (by path) and
    removed on exit."""

    def __init__(self, size):
        self.dir = tempfile.mkdtemp(prefix='ibptest-faults-fs-')
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0755' % size, 'tmpfs', self.dir],
                       check=True, capture_output=True)

    def remount(self, mode):
        err = ''
        for _ in range(20):   # EBUSY while a file is open for writing: bounded retries
            r = subprocess.run(['mount', '-o', 'remount,' + mode, self.dir], capture_output=True,
                               text=True)
            if r.returncode == 0:
                return
            err = r.stderr
            time.sleep(0.1)
        raise AssertionError('remount,%s %s failed: %s' % (mode, self.dir, err))

    def path(self, name):
        return os.path.join(self.dir, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if subprocess.run(['umount', self.dir], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', self.dir], capture_output=True)
        os.rmdir(self.dir)


def fill(path, limit=64 << 20):
    """Writes zeros to path until the file system is full (ENOSPC); bounded by
    limit bytes. Returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf, n = b'\0' * 4096, 0
    try:
        while n < limit:
            try:
                n += os.write(fd, buf)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    check(n < limit, 'fill: %s did not fill up within %d bytes' % (path, limit))
    return n


def verify(table):
    rc, out, err = ibptest.run_table('verify', table)
    return rc == 0, (out + err).strip()


def london(table):
    """Addresses `ibpdns-table lookup` answers London with from table."""
    return [a['address'] for a in ibptest.lookup(table, HOST, LONDON)['answers']]


def table_inputs(table):
    """{kind: xxh3_128} of the table's inputs (ibpdns-table info)."""
    return {i['kind']: i['xxh3_128'] for i in ibptest.table_json('info', table)['inputs']}


def member_states(sc):
    return {c['member']: c['state'] for c in status(sc)['hosts'][HOST]['A']}


def leftovers(directory, keep):
    """Names in directory other than those in keep (stale temporaries); the
    sidecar's ACME socket (acme.sock beside the table) belongs there."""
    return sorted(n for n in os.listdir(directory) if n not in keep and n != 'acme.sock')


def dead_pid():
    """The PID of a process that has exited (a name a crashed sidecar could have left)."""
    p = subprocess.Popen(['true'])
    p.wait()
    return p.pid


def vm_hwm_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return None


class Inotify:
    """inotify on one directory (via libc), for IN_CREATE events."""
    IN_CREATE = 0x100

    def __init__(self, path):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1')
        if self._libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), 'inotify_add_watch ' + path)

    def wait_create(self, pred, timeout):
        """The first created name for which pred(name) holds, or None after timeout s."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            off = 0
            while off + 16 <= len(data):
                _, mask, _, ln = struct.unpack_from('iIII', data, off)
                name = data[off + 16:off + 16 + ln].split(b'\0', 1)[0].decode('utf-8', 'replace')
                off += 16 + ln
                if mask & self.IN_CREATE and pred(name):
                    return name

    def drain(self):
        while True:
            try:
                if not os.read(self.fd, 65536):
                    return
            except BlockingIOError:
                return

    def close(self):
        os.close(self.fd)


# ---- 1. full file system at start ---------------------------------------------------------

def test_full_disk_at_start_recovers_without_sighup():
    """The table directory is full at start: the sidecar reports "No space
    left on device" in /status (table.last_error, ready false), in /metrics
    (build failures, ibpdns_ready 0) and in the log, without a busy retry loop;
    once space is freed, with no SIGHUP and no input change, a table that
    verify accepts appears within ~15 s and /status says ready, with no
    temporary left behind. Then the same with a SIGHUP right after freeing:
    the table must follow within 2.5 s, whatever the retry back-off."""
    with Tmpfs('256k') as fs:
        tbl = fs.path('routing.tbl')
        for use_sighup in (False, True):
            filler = fs.path('filler')
            fill(filler)
            sc = new_sidecar(table=tbl)
            with running(sc):
                sc.start(wait=False)
                check(wait(lambda: table_error(sc), 10),
                      'no build error in /status with a full disk:\n' + log_tail(sc.logtext()))
                err = table_error(sc)
                check(ENOSPC_TEXT in err and fs.dir in err,
                      '/status table.last_error %r should name the path and say %r' % (err, ENOSPC_TEXT))
                st = status(sc)
                eq(st['ready'], False, '/status ready with no table')
                check(not os.path.exists(tbl), 'a table appeared on a full disk')
                check((metric(sc, 'ibpdns_table_build_failures_total') or 0) >= 1,
                      '/metrics build failures')
                eq(metric(sc, 'ibpdns_ready'), 0, '/metrics ibpdns_ready')
                check(ENOSPC_TEXT in sc.logtext(), 'the log does not say %r:\n%s'
                      % (ENOSPC_TEXT, log_tail(sc.logtext())))
                if not use_sighup:
                    f0 = st['table']['build_failures']
                    time.sleep(3)
                    f1 = status(sc)['table']['build_failures']
                    check(f1 - f0 <= 10, 'busy retry loop: %d failed builds in 3 s' % (f1 - f0))
                else:
                    # A few retries in, the back-off is longer than SIGHUP_LIMIT.
                    wait(lambda: status(sc)['table']['build_failures'] >= 3, 10)
                os.unlink(filler)
                t0 = time.monotonic()
                if use_sighup:
                    sc.proc.send_signal(signal.SIGHUP)
                limit = SIGHUP_LIMIT if use_sighup else RETRY_LIMIT
                check(wait(lambda: alive(sc) and sc.ready(), limit),
                      'space freed%s: no table within %.1f s (table.last_error %r, %d failed builds)'
                      ':\n%s' % (' and SIGHUP sent' if use_sighup else ' (no SIGHUP, no input change)',
                                 limit, table_error(sc), status(sc)['table']['build_failures'],
                                 log_tail(sc.logtext(), 1500)))
                took = time.monotonic() - t0
                ok, why = verify(tbl)
                check(ok, 'verify refuses the table: ' + why)
                eq(table_error(sc), None, '/status table.last_error after the recovery')
                eq(metric(sc, 'ibpdns_ready'), 1, '/metrics ibpdns_ready after the recovery')
                eq(leftovers(fs.dir, {'routing.tbl'}), [], 'files left in the table directory')
                n_logged = sc.logtext().count(ENOSPC_TEXT)
                check(n_logged <= 10, 'the disk fault was logged %d times' % n_logged)
                print('  %s: table %.1f s after space was freed' % ('SIGHUP' if use_sighup else 'retry',
                                                                     took), flush=True)
            os.unlink(tbl)


# ---- 2. full file system mid-run -----------------------------------------------------------

def test_full_disk_mid_run_ends_with_the_wanted_table():
    """A table is in place and the disk fills up. (a) A member goes offline,
    the new table fails; the monitor recovers and space is freed: the table
    in place is the healthy one and /status stops reporting a build error.
    (b) The offline table is published, the disk fills, the monitor
    recovers (that table fails), space is freed: the table in place must
    become the healthy one again (lookup and the results input's digest),
    within ~15 s, with no SIGHUP; an "offline" table must not stay."""
    with Tmpfs('256k') as fs:
        tbl = fs.path('routing.tbl')
        filler = fs.path('filler')
        sc = new_sidecar(table=tbl)
        with running(sc):
            sc.start()
            eq(london(tbl), [AMFORC], 'London before')
            healthy = table_inputs(tbl)
            gen0 = sc.generation()
            # (a)
            fill(filler)
            sc.http.set('/results', results_offline('Amforc'), headers=OFFICIAL)
            check(wait(lambda: table_error(sc), 8), '(a) no build error with a full disk')
            check(ENOSPC_TEXT in table_error(sc), '(a) table.last_error: %r' % table_error(sc))
            eq(sc.generation(), gen0, '(a) generation while the disk is full')
            check(verify(tbl)[0], '(a) the table in place is intact')
            eq(london(tbl), [AMFORC], '(a) the healthy table stays in place')
            polls = results_source(sc)['attempts']
            sc.http.set('/results', b'{}', headers=OFFICIAL)
            check(wait(lambda: results_source(sc)['attempts'] >= polls + 2, 6), '(a) monitor polled')
            os.unlink(filler)
            check(wait(lambda: table_error(sc) is None, RETRY_LIMIT),
                  '(a) monitor recovered and space freed: /status still reports %r'
                  % table_error(sc))
            eq(london(tbl), [AMFORC], '(a) London after the recovery')
            eq(table_inputs(tbl)['results'], healthy['results'], '(a) results input of the table')
            check(verify(tbl)[0], '(a) verify')
            # (b)
            gen1 = sc.generation()
            sc.http.set('/results', results_offline('Amforc'), headers=OFFICIAL)
            sc.wait_generation_above(gen1, 6)
            check(london(tbl) != [AMFORC], '(b) the offline table is in place')
            gen2 = sc.generation()
            fill(filler)
            sc.http.set('/results', b'{}', headers=OFFICIAL)
            check(wait(lambda: table_error(sc), 8), '(b) no build error with a full disk')
            check(ENOSPC_TEXT in table_error(sc), '(b) table.last_error: %r' % table_error(sc))
            eq(sc.generation(), gen2, '(b) generation while the disk is full')
            os.unlink(filler)
            t0 = time.monotonic()
            check(wait(lambda: london(tbl) == [AMFORC], RETRY_LIMIT, interval=0.25),
                  '(b) monitor recovered and space freed: after %d s the table in place still '
                  'answers %r (Amforc offline), table.last_error %r'
                  % (RETRY_LIMIT, london(tbl), table_error(sc)))
            print('  (b) healthy table %.1f s after space was freed' % (time.monotonic() - t0),
                  flush=True)
            eq(table_inputs(tbl)['results'], healthy['results'], '(b) results input of the table')
            check(verify(tbl)[0], '(b) verify')
            check(wait(lambda: table_error(sc) is None, 3), '(b) table.last_error stays %r'
                  % table_error(sc))
            eq(member_states(sc)['Amforc'], 'online', '(b) /status Amforc')
            eq(leftovers(fs.dir, {'routing.tbl'}), [], 'files left in the table directory')


# ---- 3. read-only table directory -----------------------------------------------------------

def test_read_only_table_dir():
    """The table directory is read-only (a tmpfs remounted ro; root ignores
    chmod): the error names the directory and says "Read-only file system",
    nothing crashes, and a table appears within ~15 s of the directory being
    made writable, with no SIGHUP. The same mid-run: the table in place stays
    and is served; the new one follows when writable again."""
    with Tmpfs('1m') as fs:
        tbl = fs.path('routing.tbl')
        fs.remount('ro')
        sc = new_sidecar(table=tbl)
        with running(sc):
            sc.start(wait=False)
            check(wait(lambda: table_error(sc), 10), 'no build error on a read-only directory')
            err = table_error(sc)
            check(EROFS_TEXT in err and fs.dir in err,
                  'table.last_error %r should name %s and say %r' % (err, fs.dir, EROFS_TEXT))
            check(EROFS_TEXT in sc.logtext(), 'not logged: ' + log_tail(sc.logtext()))
            eq(status(sc)['ready'], False, 'ready')
            time.sleep(1)
            alive(sc)
            fs.remount('rw')
            check(wait(lambda: alive(sc) and sc.ready(), RETRY_LIMIT),
                  'made writable: no table within %d s (table.last_error %r)'
                  % (RETRY_LIMIT, table_error(sc)))
            check(verify(tbl)[0], 'verify')
            eq(london(tbl), [AMFORC], 'London')
            gen = sc.generation()
            fs.remount('ro')
            sc.http.set('/results', results_offline('Amforc'), headers=OFFICIAL)
            check(wait(lambda: table_error(sc), 8), 'mid-run: no build error on a read-only directory')
            check(EROFS_TEXT in table_error(sc), 'mid-run: %r' % table_error(sc))
            eq(sc.generation(), gen, 'mid-run generation')
            eq(london(tbl), [AMFORC], 'mid-run: the table in place stays')
            code, _, body = sc.api('/status')
            eq(code, 200, '/status while read-only')
            fs.remount('rw')
            check(wait(lambda: london(tbl) != [AMFORC], RETRY_LIMIT, interval=0.25),
                  'made writable again: the offline table did not follow within %d s '
                  '(table.last_error %r)' % (RETRY_LIMIT, table_error(sc)))
            check(wait(lambda: table_error(sc) is None, 3), 'table.last_error stays')
            eq(leftovers(fs.dir, {'routing.tbl'}), [], 'files left in the table directory')


# ---- 4. stale temporaries, SIGKILL during a publish --------------------------------------------

def test_stale_temporary_removed_at_start():
    """A crashed sidecar's temporary (routing.tbl.tmp.<dead pid>, named as
    lib/compile/ibp_table_writer.c names them) fills a small tmpfs so that no new
    table fits: at start the sidecar removes it and publishes; an unrelated
    file in the directory is left alone."""
    with Tmpfs('128k') as fs:
        tbl = fs.path('routing.tbl')
        with open(fs.path('unrelated.txt'), 'w') as f:
            f.write('not ours\n')
        stale = fs.path('routing.tbl.tmp.%d' % dead_pid())
        fill(stale)
        sc = new_sidecar(table=tbl)
        with running(sc):
            sc.start(wait=False)
            check(wait(lambda: alive(sc) and sc.ready(), 10),
                  'no table within 10 s beside a stale temporary (%s %s; table.last_error %r)'
                  % (os.path.basename(stale), 'still there' if os.path.exists(stale) else 'removed',
                     table_error(sc)))
            check(not os.path.exists(stale), 'the stale temporary is still there')
            check(os.path.exists(fs.path('unrelated.txt')), 'an unrelated file was removed')
            check(verify(tbl)[0], 'verify')
            eq(leftovers(fs.dir, {'routing.tbl', 'unrelated.txt'}), [], 'files left')


def test_stale_temporary_with_a_reused_pid():
    """After a reboot, the PID in a killed publish's temporary name usually
    belongs to another, unrelated process (here a `sleep`): that temporary
    is just as stale (nobody writes it) and must be removed at start too, or
    a small disk stays full for as long as that process lives."""
    with Tmpfs('128k') as fs:
        tbl = fs.path('routing.tbl')
        other = subprocess.Popen(['sleep', '60'])
        try:
            stale = fs.path('routing.tbl.tmp.%d' % other.pid)
            fill(stale)
            sc = new_sidecar(table=tbl)
            with running(sc):
                sc.start(wait=False)
                check(wait(lambda: alive(sc) and sc.ready(), 10),
                      'no table within 10 s beside a stale temporary named after the live, '
                      'unrelated PID %d (%s; table.last_error %r)'
                      % (other.pid, 'still there' if os.path.exists(stale) else 'removed',
                         table_error(sc)))
                check(not os.path.exists(stale), 'the stale temporary is still there')
                check(verify(tbl)[0], 'verify')
        finally:
            other.kill()
            other.wait()


def test_sigkill_during_publish():
    """SIGKILL a sidecar while it publishes (the moment its temporary is
    created, seen with inotify, or at a random moment), 6 times: the table in
    place is always one that verify accepts; a restart removes what the
    killed ones left, publishes a newer generation and leaves nothing else in
    the table directory."""
    rnd = random.Random(10)
    sc = new_sidecar(table=None)
    tdir = os.path.join(sc.dir, 'tbl')
    os.makedirs(tdir)
    tbl = os.path.join(tdir, 'routing.tbl')
    sc.config['Routing']['TablePath'] = tbl
    sc.write_config()
    sc.table = tbl
    ino = Inotify(tdir)
    left = []
    try:
        with running(sc):
            for i in range(6):
                ino.drain()
                sc.start(wait=False)
                if i % 2 == 0:
                    name = ino.wait_create(lambda n: n != 'routing.tbl', 10)
                    check(name is not None, 'kill %d: no temporary created within 10 s:\n%s'
                          % (i, log_tail(sc.logtext())))
                else:
                    time.sleep(rnd.uniform(0.0, 0.2))
                sc.proc.send_signal(signal.SIGKILL)
                sc.proc.wait(10)
                if os.path.exists(tbl):
                    ok, why = verify(tbl)
                    check(ok, 'kill %d: the table in place is refused: %s' % (i, why))
                left.append(leftovers(tdir, {'routing.tbl'}))
            gen_before = ibptest.table_json('info', tbl)['generation'] if os.path.exists(tbl) else 0
            sc.start(wait=False)
            check(wait(lambda: alive(sc) and status(sc)['table']['generation'] > gen_before, 10),
                  'restart after the kills: no new table within 10 s (table.last_error %r)'
                  % table_error(sc))
            check(verify(tbl)[0], 'verify after the restart')
            eq(leftovers(tdir, {'routing.tbl'}), [],
               'after the restart published, files left in the table directory')
    finally:
        ino.close()
    print('  leftovers after each kill: %s' % left, flush=True)


# ---- 5. a table rewritten in place under load ---------------------------------------------------

def two_tables(ws):
    """(healthy table, table with Amforc offline), built from the real IBP configs."""
    with open(os.path.join(ibptest.IBP_CONFIG, 'geodns-static.json')) as f:
        static = json.load(f)
    with open(os.path.join(ibptest.IBP_CONFIG, 'members_professional.json')) as f:
        members = json.load(f)
    with open(os.path.join(ibptest.IBP_CONFIG, 'services_rpc.json')) as f:
        services = json.load(f)
    cfg = ws.node_config(members, services, static)
    a = ws.build_ok(cfg)
    b = ws.build_ok(cfg, results=ibptest.snapshot(site=[ibptest.site_group([
        ibptest.result('Amforc', False)])]))
    check(london(a) != london(b), 'precondition: the two tables answer London differently')
    return a, b


CLIENTS = [LONDON + '/32', LONDON + '/24', '89.160.20.112/32', '216.160.83.56/32',
           '175.16.199.0/24', '2001:218::1/128']


def rewrite_in_place(path, data, how, rnd):
    """Rewrites path's contents (same inode), slowly: the coprocess may read
    any moment of it."""
    if how == 'cp':
        src = path + '.src'
        with open(src, 'wb') as f:
            f.write(data)
        subprocess.run(['cp', src, path], check=True)
        os.unlink(src)
        return
    if how == 'truncate':
        subprocess.run(['truncate', '-s', '0', path], check=True)
        time.sleep(0.05)
        fd = os.open(path, os.O_WRONLY)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        for off in range(0, len(data), 4096):
            os.write(fd, data[off:off + 4096])
            time.sleep(rnd.uniform(0.002, 0.015))
    finally:
        os.close(fd)


@ibptest.single_threaded
def test_table_rewritten_in_place_under_load():
    rewritten_in_place(private=True)


@ibptest.single_threaded
def test_mapped_table_rewritten_in_place_under_load():
    rewritten_in_place(private=False)


def rewritten_in_place(private):
    """A real pdns_server with ibpdns-pipe coprocesses answers a steady
    stream of queries while the table file is rewritten IN PLACE
    (O_TRUNC and chunked writes with sleeps, `truncate -s 0` then a write,
    `cp`; 13 times): no coprocess dies (every coprocess PID seen before is there after, no
    coprocess error in PowerDNS's log), no SERVFAIL, no timeout; once the last rewrite is
    complete, its table is served within 2 s. With --private-copy, also every answer is
    one of the two tables' answers for that client. Mapped (the default), the table is
    the file: while it is truncated or half written there may be no table (REFUSED,
    NXDOMAIN) or, until the next check notices, answers of neither table; never a
    crash (SIGBUS is caught)."""
    ws = ibptest.Workspace()
    a, b = two_tables(ws)
    valid = {}
    for ecs in CLIENTS:
        valid[ecs] = set()
        for t in (a, b):
            res = ibptest.lookup(t, HOST, '127.0.0.1', 'A', ecs)
            valid[ecs].add((tuple(sorted(x['address'] for x in res['answers'])), res['scope']))
    datas = []
    for t in (b, a):
        with open(t, 'rb') as f:
            datas.append(f.read())
    served_dir = ws.path('served')
    os.makedirs(served_dir)
    served = os.path.join(served_dir, 'routing.tbl')
    pdnsfix.install_table(served, a)
    stop = threading.Event()
    lock = threading.Lock()
    fails, counts = [], {'queries': 0}

    with pdnsfix.Pdns(served, abi=5, pipe_args='--private-copy' if private else '') as p:
        def client(w):
            rnd = random.Random(w)
            end = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < end:
                ecs = CLIENTS[rnd.randrange(len(CLIENTS))]
                try:
                    r = p.query(HOST, 'A', ecs=ecs, timeout=2)
                except Exception as e:  # noqa: BLE001 - a timeout is a failure
                    with lock:
                        fails.append((ecs, 'no answer: %r' % e))
                    continue
                got = (tuple(pdnsfix.a_records(r)), pdnsfix.ecs_scope(r))
                rc = dns_rcode(r)
                with lock:
                    counts['queries'] += 1
                    if private and (rc != 'NOERROR' or got not in valid[ecs]):
                        fails.append((ecs, rc, got))
                    elif not private and rc not in ('NOERROR', 'REFUSED', 'NXDOMAIN'):
                        fails.append((ecs, rc, got))
        threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)   # every distributor thread has its coprocess
        pids0 = sorted(p.coprocess_pids())
        log0 = len(p.logtext().splitlines())
        rnd = random.Random(5)
        hows = ['chunks', 'truncate', 'cp'] * 4 + ['chunks']   # the last one writes b
        want_last = [x['address'] for x in ibptest.lookup(b, HOST, '127.0.0.1', 'A',
                                                          LONDON + '/32')['answers']]
        t0 = time.monotonic()
        try:
            for i, how in enumerate(hows):
                rewrite_in_place(served, datas[i % 2], how, rnd)
                time.sleep(0.3)
            last_served = wait(lambda: pdnsfix.a_records(p.query(HOST, 'A', ecs=LONDON + '/32'))
                               == sorted(want_last), 2)
        finally:
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join(10)
        elapsed = time.monotonic() - t0
        pids1 = sorted(p.coprocess_pids())
        new_log = p.logtext().splitlines()[log0:]
        san = sanitizer_lines(p.logtext())
    deaths = [l for l in new_log if re.search(r'coprocess|child closed|signal|SIGBUS|Bus error', l, re.I)
              and 'loaded from' not in l]
    check(not san, 'sanitizer report in the PowerDNS log (coprocesses): %s' % san[:5])
    gone = sorted(set(pids0) - set(pids1))
    problems = []
    if not pids0 or gone or deaths:
        problems.append('coprocesses died: PIDs %s before, %s after' % (pids0, pids1))
    bad = {}
    for f in fails:
        bad.setdefault(f[1] if len(f) == 3 else 'timeout', []).append(f)
    if fails:
        problems.append('%d of %d queries failed during %d in-place rewrites (%s); first: %s'
                        % (len(fails), counts['queries'] + len(fails), len(hows),
                           ', '.join('%s: %d' % (k, len(v)) for k, v in bad.items()), fails[:3]))
    if not last_served:
        problems.append('the table written last (in place) is not served 2 s later')
    check(not problems, '; '.join(problems) + '; PowerDNS log:\n' + '\n'.join(deaths[:8]))
    print('  %d queries in %.1f s, %d in-place rewrites' % (counts['queries'], elapsed, len(hows)),
          flush=True)


def dns_rcode(resp):
    import dns.rcode
    return dns.rcode.to_text(resp.rcode())


# ---- 6. a hostile monitor ---------------------------------------------------------------------

class Monitor:
    """A raw-socket /results server on 127.0.0.1 whose behaviour is set with
    set(mode, body): 'ok' (200, official, the body), 'drip' (headers, then
    one body byte every 100 ms, at most 10 s), 'reset' (half the body, then
    an RST), 'raw' (these bytes as the whole answer, then close)."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._mode = ('ok', b'{}')
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.requests = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set(self, mode, body=b''):
        with self._lock:
            self._mode = (mode, body)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            req = b''
            while b'\r\n\r\n' not in req and len(req) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            with self._lock:
                mode, body = self._mode
                self.requests += 1
            head = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                    b'X-IBP-Results-Source: official\r\nConnection: close\r\n'
                    b'Content-Length: %d\r\n\r\n' % len(body))
            if mode == 'ok':
                conn.sendall(head + body)
            elif mode == 'drip':
                conn.sendall(head)
                end = time.monotonic() + 10
                for i in range(len(body)):
                    if self._stop.is_set() or time.monotonic() > end:
                        break
                    conn.sendall(body[i:i + 1])
                    time.sleep(0.1)
            elif mode == 'reset':
                conn.sendall(head + body[:len(body) // 2])
                time.sleep(0.05)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            elif mode == 'raw':
                conn.sendall(body)
        except OSError:
            pass   # the sidecar hung up (timeouts, size limits)
        finally:
            conn.close()

    def stop(self):
        self._stop.set()
        self._sock.close()
        self._thread.join(2)


def hostile_cases():
    rnd = random.Random(6)
    good_len = len(results_offline('Amforc'))
    nested = 100000
    return [
        ('drip', 'drip', b'{"SiteResults":[]}' + b' ' * 200, r'tim'),
        ('reset mid-body', 'reset', results_offline('Amforc', 'Turboflakes') + b' ' * 4000, None),
        ('garbage status line', 'raw', b'HTTP/1.1 abc\r\nContent-Length: 2\r\n\r\n{}', None),
        ('binary answer', 'raw', rnd.randbytes(3000), None),
        ('deeply nested JSON', 'ok',
         b'{"SiteResults":' + b'[' * nested + b']' * nested + b'}', None),
        ('huge string', 'ok', json.dumps({'SiteResults': [{'CheckName': 'ping', 'IsIPv6': False,
         'Results': [{'Status': False, 'MemberName': 'x' * (4 << 20), 'ErrorText': 'y' * (4 << 20)}]}]}).encode(),
         None),
        ('invalid UTF-8', 'ok',
         b'{"SiteResults":[{"CheckName":"ping\xff\xfe\xc3","IsIPv6":false,"Results":'
         b'[{"Status":false,"MemberName":"Turbo\xc0\xafflakes"}]}]}', None),
        ('15 MB of empty results', 'ok',
         b'{"SiteResults":[{"Results":[' + b','.join([b'{}'] * 5000000) + b']}]}', None),
    ], good_len


def test_monitor_two_offline_entries():
    """A /results with two members offline, one of them listed three times in
    two groups (fault 1: the ASan build died on its first poll of this):
    the sidecar keeps running and both members are offline in the new table;
    then the monitor's empty snapshot brings both back."""
    mon = Monitor()
    try:
        mon.set('ok', results_offline('Amforc', 'Turboflakes', 'Dwellir', dup=True))
        sc = new_sidecar(monitor_port=mon.port)
        with running(sc):
            sc.start()
            check(wait(lambda: member_states(sc).get('Amforc') == 'offline', 5),
                  'Amforc not offline: %r' % member_states(sc))
            states = member_states(sc)
            for m in ('Amforc', 'Turboflakes', 'Dwellir'):
                eq(states.get(m), 'offline', '/status %s' % m)
            check(london(sc.table) != [AMFORC], 'London still answered by Amforc')
            polls = mon.requests
            check(wait(lambda: alive(sc) and mon.requests >= polls + 2, 5), 'polls go on')
            mon.set('ok', b'{}')
            check(wait(lambda: member_states(sc).get('Amforc') == 'online', 5), 'Amforc back')
            eq(london(sc.table), [AMFORC], 'London after the recovery')
    finally:
        mon.stop()


def test_hostile_monitor():
    """The monitor drips its body (one byte every 100 ms, beyond the 1 s poll
    timeout), resets the connection mid-body, sends a garbage status line
    and binary, and hostile bodies: deeply nested JSON, 4 MB strings,
    invalid UTF-8, and 15 MB of `{"SiteResults":[{"Results":[{},{},...]}]}`
    (fault 6). For every case: the sidecar keeps running and polling, keeps
    the last good health (the table in place is not replaced; Amforc stays
    offline), reports the fault in /status (results.last_error,
    failing_since) and /metrics, and recovers when the monitor is healthy
    again; its peak RSS (VmHWM) stays under 300 MB (ASan: 700 MB, for its
    256 MB quarantine)."""
    cases, _ = hostile_cases()
    good = results_offline('Amforc')
    mon = Monitor()
    mon.set('ok', good)
    bound_mb = 700 if SANITIZE else 300
    failures = []
    try:
        sc = new_sidecar(monitor_port=mon.port)
        with running(sc):
            sc.start()
            check(wait(lambda: member_states(sc).get('Amforc') == 'offline', 5), 'good snapshot')
            inputs = table_inputs(sc.table)
            hwm0 = vm_hwm_kb(sc.proc.pid)
            limit = 25 if SANITIZE else 10
            for name, mode, body, pattern in cases:
                # Each case starts from the good state (an earlier failed case may
                # have replaced it): the table of the good snapshot, no fault.
                check(wait(lambda: results_source(sc)['failing_since'] is None
                           and table_inputs(sc.table) == inputs, limit, interval=0.2),
                      'before %s: the good snapshot\'s table is not back' % name)
                gen = sc.generation()
                t0 = time.monotonic()
                mon.set(mode, body)
                reported = wait(lambda: results_source(sc)['failing_since'] is not None
                                and results_source(sc)['last_error'], limit, interval=0.2)
                src = results_source(sc)
                hwm = vm_hwm_kb(sc.proc.pid)
                why = []
                if not reported:
                    why.append('no fault in /status within %d s (last_error %r, attempts %d)'
                               % (limit, src['last_error'], src['attempts']))
                elif pattern and not re.search(pattern, src['last_error'], re.I):
                    why.append('last_error %r lacks %r' % (src['last_error'], pattern))
                if reported and metric(sc, 'ibpdns_source_up{source="results"}') != 0:
                    why.append('/metrics ibpdns_source_up{source="results"} is not 0')
                if sc.generation() != gen or table_inputs(sc.table) != inputs:
                    why.append('the table was replaced (generation %d -> %d)' % (gen, sc.generation()))
                if member_states(sc).get('Amforc') != 'offline':
                    why.append('the last good health was lost (Amforc %s)'
                               % member_states(sc).get('Amforc'))
                if hwm > bound_mb * 1024:
                    why.append('peak RSS %d MB (was %d MB before)' % (hwm // 1024, hwm0 // 1024))
                mon.set('ok', good)
                if not wait(lambda: results_source(sc)['failing_since'] is None, limit, interval=0.2):
                    why.append('no recovery within %d s of a healthy monitor (last_error %r)'
                               % (limit, results_source(sc)['last_error']))
                attempts = results_source(sc)['attempts']
                if not wait(lambda: results_source(sc)['attempts'] > attempts, 5):
                    why.append('polling stopped')
                print('  %s: %.1f s, last_error %r, VmHWM %d MB' % (name, time.monotonic() - t0,
                      (src['last_error'] or '')[:160], hwm // 1024), flush=True)
                if why:
                    failures.append('%s: %s' % (name, '; '.join(why)))
            eq(member_states(sc).get('Amforc'), 'offline', 'the good snapshot at the end')
    finally:
        mon.stop()
    check(not failures, '%d of %d cases failed:\n  %s' % (len(failures), len(cases),
                                                        '\n  '.join(failures)))


# ---- 7. config periods out of range --------------------------------------------------------------

PERIOD_KEYS = (('DnsApi', 'RefreshIntervalSeconds'), ('System', 'ConfigReloadTime'))


def test_config_period_overflow_at_start():
    """A node config with RefreshIntervalSeconds (or ConfigReloadTime) 3000000
    (x 1000 ms overflows an int) is refused at start: the sidecar exits
    non-zero with a message naming the key, and does not hammer the monitor
    or the config server meanwhile."""
    for section, key in PERIOD_KEYS:
        sc = new_sidecar(extra={section: {key: 3000000}})
        with running(sc):
            sc.start(wait=False)
            exited = wait(lambda: sc.proc.poll() is not None, 10)
            if not exited:
                n0 = len(sc.http.requests('/results')) + len(sc.http.requests('/members.json'))
                time.sleep(1)
                n1 = len(sc.http.requests('/results')) + len(sc.http.requests('/members.json'))
                raise AssertionError('%s 3000000: the sidecar runs (%d monitor/config requests in '
                                     'the last second)' % (key, n1 - n0))
            text = sc.logtext()
            check(sc.proc.returncode != 0, '%s 3000000: exit status 0' % key)
            check(key in text, '%s 3000000: exit %d, the message does not name the key:\n%s'
                  % (key, sc.proc.returncode, log_tail(text)))
            sc.proc = None   # exited on its own: nothing to stop


def test_config_period_overflow_on_reload():
    """The same values written into the config of a running sidecar: the
    config source reports an error naming the key, the old config stays (the
    monitor is still polled about once a second, not in a loop), and the error
    clears when the config is fixed."""
    for section, key in PERIOD_KEYS:
        sc = new_sidecar(reload=1, poll=1)
        with running(sc):
            sc.start()
            good = json.loads(json.dumps(sc.config))
            sc.config[section][key] = 3000000
            sc.write_config()
            check(wait(lambda: status(sc)['sources']['config']['last_error'], 6),
                  '%s 3000000 on reload: no error on the config source' % key)
            err = status(sc)['sources']['config']['last_error']
            check(key in err, 'the config error %r does not name %s' % (err, key))
            n0 = len(sc.http.requests('/results'))
            m0 = len(sc.http.requests('/members.json'))
            time.sleep(3)
            n = len(sc.http.requests('/results')) - n0
            m = len(sc.http.requests('/members.json')) - m0
            check(n <= 6 and m <= 6, '%s 3000000 on reload: %d monitor polls and %d members '
                  'fetches in 3 s (period 1 s)' % (key, n, m))
            alive(sc)
            sc.config = good
            sc.write_config()
            check(wait(lambda: status(sc)['sources']['config']['failing_since'] is None, 6),
                  'fixed config: the error stays: %r' % status(sc)['sources']['config']['last_error'])


if __name__ == '__main__':
    ibptest.main(globals())
