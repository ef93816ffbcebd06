#!/usr/bin/python3
"""The Debian package (issue 17, acceptance 4): `dpkg-buildpackage -us -uc -b`
builds it from a copy of the source tree, lintian reports no error, `dpkg -i`
installs it on this machine (root), and the installed programs run:
ibpdns-table --version, ibpdns-sidecar --help, ibpdns-pipe --version; the
unit, the sysusers file, the example node config, the PowerDNS snippet and
the man pages are where the README says. The package is purged at the end."""
import grp
import os
import pwd
import shutil
import subprocess
import tempfile

import ibptest
from ibptest import check, eq

VERSION = '0.1.0'
INSTALLED = ['/usr/bin/ibpdns-table', '/usr/sbin/ibpdns-sidecar', '/usr/sbin/ibpdns-pipe',
             '/etc/ibpdns/node.json', '/lib/systemd/system/ibpdns-sidecar.service',
             '/usr/lib/sysusers.d/ibpdns.conf', '/usr/lib/tmpfiles.d/ibpdns.conf',
             '/usr/share/doc/ibpdns/examples/pdns.conf',
             '/usr/share/man/man1/ibpdns-table.1.gz', '/usr/share/man/man8/ibpdns-sidecar.8.gz',
             '/usr/share/man/man8/ibpdns-pipe.8.gz']


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop('timeout', 600), **kw)


def source_copy(dest):
    """The tracked and new files of the checkout: no build trees, no var/."""
    files = run(['git', '-C', ibptest.SRC, 'ls-files', '-co', '--exclude-standard']).stdout.split('\n')
    for rel in files:
        if not rel or rel.startswith(('var/', 'build')):
            continue
        src = os.path.join(ibptest.SRC, rel)
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isfile(src):
            shutil.copy2(src, dst)


@ibptest.single_threaded
def test_the_package_builds_passes_lintian_installs_and_runs():
    check(os.geteuid() == 0, 'dpkg -i needs root')
    had_state = os.path.exists('/var/lib/ibpdns')
    work = tempfile.mkdtemp(prefix='ibptest-deb-')
    tree = os.path.join(work, 'ibpdns')
    try:
        source_copy(tree)
        env = dict(os.environ, DEB_BUILD_OPTIONS='nocheck parallel=2')
        r = run(['dpkg-buildpackage', '-us', '-uc', '-b'], cwd=tree, env=env, timeout=1200)
        eq(r.returncode, 0, 'dpkg-buildpackage:\n' + (r.stdout + r.stderr)[-3000:])
        deb = os.path.join(work, 'ibpdns_%s_amd64.deb' % VERSION)
        check(os.path.exists(deb), 'no %s: %r' % (deb, os.listdir(work)))
        r = run(['lintian', '--no-tag-display-limit', os.path.join(work, 'ibpdns_%s_amd64.changes'
                                                                  % VERSION)])
        errors = [ln for ln in r.stdout.splitlines() if ln.startswith('E:')]
        eq(errors, [], 'lintian errors')
        print('  lintian: %d warnings' % len([ln for ln in r.stdout.splitlines()
                                              if ln.startswith('W:')]))
        r = run(['dpkg', '-i', deb])
        eq(r.returncode, 0, 'dpkg -i:\n' + (r.stdout + r.stderr)[-3000:])
        missing = [p for p in INSTALLED if not os.path.exists(p)]
        eq(missing, [], 'installed files')
        r = run(['/usr/bin/ibpdns-table', '--version'])
        eq((r.returncode, r.stdout.strip()), (0, 'ibpdns-table ' + VERSION), 'ibpdns-table --version')
        r = run(['/usr/sbin/ibpdns-sidecar', '--help'])
        check(r.returncode == 0 and r.stdout.startswith('usage: ibpdns-sidecar'),
              'ibpdns-sidecar --help: %d %r' % (r.returncode, r.stdout + r.stderr))
        r = run(['/usr/sbin/ibpdns-pipe', '--version'])
        eq((r.returncode, r.stdout.strip()), (0, 'ibpdns-pipe ' + VERSION), 'ibpdns-pipe --version')
        eq(run(['getent', 'passwd', 'ibpdns']).returncode, 0, 'the ibpdns user (sysusers)')
        # The unit's RestrictSUIDSGID forbids the sidecar a setgid mkdir: the
        # package makes the usage directory (tmpfiles), or nothing is counted.
        st = os.stat('/var/lib/ibpdns/usage')
        eq((oct(st.st_mode & 0o7777), grp.getgrgid(st.st_gid).gr_name,
            pwd.getpwuid(st.st_uid).pw_name), ('0o2775', 'ibpdns', 'ibpdns'),
           'the usage directory (tmpfiles.d)')
        check('pdns' in grp.getgrnam('ibpdns').gr_mem or
              run(['id', '-nG', 'pdns']).stdout.split().count('ibpdns') == 1,
              'pdns is in group ibpdns')
        r = run(['systemd-analyze', 'verify', '/lib/systemd/system/ibpdns-sidecar.service'])
        check('ibpdns-sidecar.service' not in r.stderr or 'Unknown' not in r.stderr,
              'unit: %r' % r.stderr)
    finally:
        run(['dpkg', '--purge', 'ibpdns'])
        if not had_state:   # the state dir tmpfiles made, which a purge leaves
            shutil.rmtree('/var/lib/ibpdns', ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    check(not os.path.exists('/usr/sbin/ibpdns-sidecar'), 'purged')


if __name__ == '__main__':
    ibptest.main(globals())
