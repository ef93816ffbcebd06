#!/usr/bin/python3
"""The suite's own Python (tests/, bench/) through pyflakes: an undefined
name in a branch a test rarely takes, or a test function defined after
ibptest.main() (which never runs), fails here rather than in the one run
that needs it."""
import glob
import os
import re
import subprocess
import sys

SRC = os.environ['IBP_SRC']


def python_files():
    files = set(glob.glob(os.path.join(SRC, 'tests', '**', '*.py'), recursive=True))
    files |= set(glob.glob(os.path.join(SRC, 'bench', '**', '*.py'), recursive=True))
    for path in glob.glob(os.path.join(SRC, 'bench', '**', '*'), recursive=True):
        if os.path.isfile(path) and not path.endswith('.py'):
            with open(path, 'rb') as f:
                if re.match(rb'#!.*python', f.readline()):
                    files.add(path)
    return sorted(files)


def tests_after_main(path):
    with open(path) as f:
        src = f.read()
    at = src.find("if __name__ == '__main__'")
    if at < 0 or 'ibptest.main(' not in src:
        return []
    return [m.group(1) for m in re.finditer(r'^def (test_\w+)', src, re.M) if m.start() > at]


def main():
    files = python_files()
    failures = []
    r = subprocess.run([sys.executable, '-m', 'pyflakes'] + files, capture_output=True, text=True)
    if r.returncode != 0:
        failures.append('pyflakes:\n' + (r.stdout + r.stderr).strip())
    for path in files:
        late = tests_after_main(path)
        if late:
            failures.append('%s: defined after ibptest.main(), never run: %s'
                            % (os.path.relpath(path, SRC), ', '.join(late)))
    for f in failures:
        print('FAIL ' + f)
    print('%d Python files checked' % len(files))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
