#!/usr/bin/python3
"""The README's run command (scripts/run), as a new user runs it: it ends by
showing two dig answers that differ by client subnet, and stopping it leaves
no sidecar, PowerDNS or coprocess behind (issue 4, acceptance 5). Uses the
fixed ports of the embedded default (5300, 6100): not run in parallel."""
import os
import re
import signal
import struct
import glob
import subprocess
import time

import ibptest
from ibptest import check, eq

RUN = os.path.join(ibptest.SRC, 'scripts', 'run')
VAR = os.path.join(ibptest.SRC, 'var', 'run')


def leftovers():
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
        except OSError:
            continue
        if ('ibpdns-sidecar' in cmd and 'examples/node.json' in cmd) or VAR in cmd:
            found.append('%s: %s' % (pid, cmd))
    return found


def leave_an_older_format_table():
    """What an upgrade finds: var/run/routing.tbl written by a build with
    format version 2 (its leading header fields), generation 41. The run must
    not start PowerDNS on it, and the new table continues its numbering."""
    os.makedirs(VAR, exist_ok=True)
    head = (b'IBPDNSTB' + struct.pack('<IIIIQQQQ', 2, 0x01020304, 432, 14, 432, 0, 41,
                                      int(time.time()) - 60))
    with open(os.path.join(VAR, 'routing.tbl'), 'wb') as f:
        f.write(head + bytes(432 - len(head)))


def test_run_shows_two_answers_and_stops_clean():
    check(not leftovers(), 'something of a previous run is still running: %r' % leftovers())
    leave_an_older_format_table()
    for old in glob.glob(os.path.join(VAR, 'usage.sqlite*')) + glob.glob(os.path.join(VAR, 'usage', '*')):
        os.unlink(old)   # earlier runs' hits
    proc = subprocess.Popen(['bash', RUN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    out = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if 'Ctrl-C stops' in line:
                break
        text = ''.join(out)
        answers = re.findall(r'-> (\S+)\s+\(', text)
        eq(len(answers), 2, 'two dig answers in:\n' + text)
        check(answers[0] != answers[1], 'the answers differ: %r' % answers)
        check(all(re.match(r'^\d+\.\d+\.\d+\.\d+$', a) for a in answers), 'addresses: %r' % answers)
        check('"message":"Usageprocessingtriggeredfor' in text, '/process in:\n' + text)
        hits = dict(re.findall(r'(\w[\w ]*): (\d+) hits', text))
        # With examples/pdns.conf's caches on, PowerDNS asks the backend once
        # per query here (twice with its caches off: test_usage.py).
        eq(hits, {'Amforc': '1', 'Gatotech': '1'}, 'usage of the two digs')
        info = ibptest.table_json('info', os.path.join(VAR, 'routing.tbl'))
        check(info['generation'] >= 42, 'generation %d of the table that replaced the old one '
              '(41): the numbering did not continue' % info['generation'])
    finally:
        os.killpg(proc.pid, signal.SIGINT) if proc.poll() is None else None
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    end = time.monotonic() + 5
    while leftovers() and time.monotonic() < end:
        time.sleep(0.2)
    eq(leftovers(), [], 'processes left after stopping the run command')


if __name__ == '__main__':
    ibptest.main(globals())
