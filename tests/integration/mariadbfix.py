"""A real MariaDB server (Debian mariadb-server) for the usage tests: its own
data directory in a temporary directory, TCP on a loopback port it picks,
a user with a password, stopped by PID. Queries go through the `mariadb`
command-line client (no Python driver needed)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pdnsfix

MARIADBD = '/usr/sbin/mariadbd'
INSTALL_DB = '/usr/bin/mariadb-install-db'
CLIENT = '/usr/bin/mariadb'
USER, PASSWORD, DB = 'ibp', 'ibp-secret', 'ibpdns'


class MariaDB:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='ibptest-mariadb-')
        self.data = os.path.join(self.dir, 'data')
        self.port = pdnsfix.free_port()
        self.proc = None
        r = subprocess.run([INSTALL_DB, '--no-defaults', '--datadir=' + self.data, '--user=root',
                            '--auth-root-authentication-method=normal', '--skip-test-db'],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError('mariadb-install-db failed: %s' % (r.stderr or r.stdout)[-2000:])
        with open(os.path.join(self.dir, 'init.sql'), 'w') as f:
            f.write("CREATE DATABASE IF NOT EXISTS %s;\n"
                    "CREATE USER IF NOT EXISTS '%s'@'127.0.0.1' IDENTIFIED BY '%s';\n"
                    "GRANT ALL ON %s.* TO '%s'@'127.0.0.1';\n" % (DB, USER, PASSWORD, DB, USER))
        self.start()

    def config(self):
        """The node config's Mysql section for this server."""
        return {'Host': '127.0.0.1', 'Port': str(self.port), 'User': USER, 'Pass': PASSWORD,
                'DB': DB}

    def start(self, timeout=60):
        self.log = open(os.path.join(self.dir, 'mariadbd.log'), 'a')
        self.proc = subprocess.Popen(
            [MARIADBD, '--no-defaults', '--datadir=' + self.data, '--user=root',
             '--bind-address=127.0.0.1', '--port=%d' % self.port,
             '--socket=' + os.path.join(self.dir, 'sock'),
             '--pid-file=' + os.path.join(self.dir, 'pid'),
             '--init-file=' + os.path.join(self.dir, 'init.sql'),
             '--innodb-buffer-pool-size=32M', '--skip-log-bin', '--log-error=' +
             os.path.join(self.dir, 'error.log')],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError('mariadbd exited %s: %s' % (self.proc.returncode, self.errors()))
            if self.query('SELECT 1', check=False) == [['1']]:
                return
            time.sleep(0.2)
        raise AssertionError('mariadbd did not accept connections within %ds: %s'
                             % (timeout, self.errors()))

    def errors(self):
        try:
            with open(os.path.join(self.dir, 'error.log'), errors='replace') as f:
                return f.read()[-3000:]
        except OSError:
            return ''

    def query(self, sql, check=True):
        """Rows as lists of strings (NULL as 'NULL')."""
        r = subprocess.run([CLIENT, '--no-defaults', '-h127.0.0.1', '-P%d' % self.port,
                            '-u' + USER, '-p' + PASSWORD, '--batch', '--skip-column-names',
                            DB, '-e', sql], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            if check:
                raise AssertionError('mariadb %r: %s' % (sql, r.stderr))
            return None
        return [line.split('\t') for line in r.stdout.splitlines()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
