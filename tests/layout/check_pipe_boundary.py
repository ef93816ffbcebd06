#!/usr/bin/env python3
"""The coprocess's link boundary, checked against the real build:
  1. every compile command of ibpdns-pipe's sources (meson introspection)
     has only lib/base, lib/table and lib/usage (and pipe/) on its include path, and
     with exactly those flags a header of input/, geo/ or compile/ does not
     even compile;
  2. each lib/ folder's include directory holds only its own headers;
  3. ibpdns-pipe needs libc alone (readelf -d): no jansson, maxminddb,
     curl, sqlite, mariadb, nats (sanitizer runtimes aside)."""
import json, os, re, subprocess, sys, tempfile

SRC, BUILD = os.environ['IBP_SRC'], os.environ['IBP_BUILD']
ALLOWED = {os.path.join(SRC, d) for d in ('lib/base', 'lib/table', 'lib/usage', 'pipe')}
FORBIDDEN_HEADERS = ['ibp_json.h', 'ibp_model.h', 'ibp_mmdb.h', 'ibp_geo_classes.h',
                     'ibp_compile.h', 'ibp_explain.h', 'ibp_table_writer.h']
FORBIDDEN_LIBS = re.compile(r'jansson|maxminddb|curl|sqlite|mariadb|mysql|nats|archive|microhttpd')
failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL ' + msg)


def pipe_compile_params():
    targets = json.loads(subprocess.check_output(['meson', 'introspect', '--targets', BUILD]))
    params = []
    for t in targets:
        if t['name'] in ('ibpdns-pipe', 'pipe_proto'):
            for s in t['target_sources']:
                params.append((t['name'], s['compiler'], s['parameters']))
    if len(params) < 2:
        fail('meson introspect found no compile commands for ibpdns-pipe and pipe_proto')
    return params


def include_dirs(parameters):
    dirs = []
    for i, p in enumerate(parameters):
        if p.startswith('-I') and len(p) > 2:
            dirs.append(p[2:])
        elif p in ('-I', '-isystem') and i + 1 < len(parameters):
            dirs.append(parameters[i + 1])
    return [os.path.realpath(d if os.path.isabs(d) else os.path.join(BUILD, d)) for d in dirs]


def check_include_paths():
    for name, compiler, parameters in pipe_compile_params():
        src_dirs = [d for d in include_dirs(parameters) if d.startswith(os.path.realpath(SRC) + '/')
                    and not d.startswith(os.path.realpath(BUILD))]
        extra = [d for d in src_dirs if d not in {os.path.realpath(a) for a in ALLOWED}]
        if extra:
            fail('%s compiles with %s on its include path' % (name, extra))
        flags = [p for p in parameters if p.startswith(('-I', '-D', '-std'))]
        for header in FORBIDDEN_HEADERS:
            with tempfile.NamedTemporaryFile('w', suffix='.c', delete=False) as f:
                f.write('#include "%s"\n' % header)
            r = subprocess.run(compiler + flags + ['-fsyntax-only', f.name], cwd=BUILD,
                               capture_output=True, text=True)
            os.unlink(f.name)
            if r.returncode == 0:
                fail('%s can include %s' % (name, header))
    print('pipe include path: lib/base, lib/table, lib/usage, pipe only; %d forbidden headers unreachable'
          % len(FORBIDDEN_HEADERS))


def check_folders_hold_own_headers():
    layers = ['base', 'table', 'usage', 'input', 'geo', 'compile']
    seen = {}
    for layer in layers:
        for h in os.listdir(os.path.join(SRC, 'lib', layer)):
            if h.endswith('.h'):
                if h in seen:
                    fail('%s is in lib/%s and lib/%s' % (h, seen[h], layer))
                seen[h] = layer
    stray = [h for h in os.listdir(os.path.join(SRC, 'lib')) if h.endswith(('.h', '.c'))]
    if stray:
        fail('sources outside the layers: lib/%s' % ', lib/'.join(stray))


def check_needed_libs():
    exe = os.path.join(BUILD, 'pipe', 'ibpdns-pipe')
    out = subprocess.check_output(['readelf', '-d', exe], text=True)
    needed = re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', out)
    sanitize = os.environ.get('IBP_SANITIZE') == '1'
    bad = [n for n in needed if FORBIDDEN_LIBS.search(n)]
    other = [n for n in needed if not n.startswith(('libc.so', 'ld-linux')) and
             not (sanitize and re.match(r'lib(asan|ubsan|tsan|m|dl|pthread|rt|gcc_s|stdc\+\+)\b', n))]
    if bad or other:
        fail('ibpdns-pipe needs %s (want libc only)' % needed)
    print('ibpdns-pipe NEEDED: %s' % ', '.join(needed))


check_include_paths()
check_folders_hold_own_headers()
check_needed_libs()
print('%d passed, %d failed' % (3 - min(3, len(failures)), min(3, len(failures))))
sys.exit(1 if failures else 0)
