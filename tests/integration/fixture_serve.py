#!/usr/bin/python3
"""fixture_http.FixtureServer as a subprocess, for tests written in C.

    fixture_serve.py [--https] [--paths JSON]

Starts an HTTP server (and, with --https, an HTTPS one with a fresh
self-signed certificate, both serving the same paths) on 127.0.0.1 and prints
one JSON line: {"http": base URL, "https": base URL, "cert": PEM path}.
--paths is {path: spec} with the specs of the "set" command below.

Then it reads one JSON command per line on stdin and answers each with one
line on stdout, until stdin closes (so it dies with its parent):

  {"op": "set", "path": P, <body>, "status": 200, "headers": {}, "delay": 0,
   "auth": [user, pass], "no_length": false}
      <body> is one of "body": text, "body_file": path, "garbage": n,
      "huge": n, "tar_gz": {"mmdb": path, "inner": name},
      "tar_members": {name: text}                          -> ok
  {"op": "remove", "path": P}                                -> ok
  {"op": "requests", "path": P}  -> [[method, {header: value}], ...]
  {"op": "clear", "path": P}     (no path: all)              -> ok
Errors answer "error: ..." on the same single line.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_http  # noqa: E402


def body_of(spec):
    if 'body' in spec:
        return spec['body']
    if 'body_file' in spec:
        with open(spec['body_file'], 'rb') as f:
            return f.read()
    if 'garbage' in spec:
        return fixture_http.garbage(int(spec['garbage']))
    if 'huge' in spec:
        return fixture_http.huge(int(spec['huge']))
    if 'tar_gz' in spec:
        t = spec['tar_gz']
        if 'inner' in t:
            return fixture_http.make_mmdb_tar_gz(t['mmdb'], t['inner'])
        return fixture_http.make_mmdb_tar_gz(t['mmdb'])
    if 'tar_members' in spec:
        return fixture_http.make_tar_gz(spec['tar_members'])
    raise ValueError('no body in ' + json.dumps(sorted(spec)))


def do_set(servers, path, spec):
    body = body_of(spec)
    auth = tuple(spec['auth']) if spec.get('auth') else None
    for s in servers:
        s.set(path, body, status=int(spec.get('status', 200)), headers=spec.get('headers'),
              delay=float(spec.get('delay', 0)), auth=auth,
              no_length=bool(spec.get('no_length', False)))


def command(servers, cmd):
    op = cmd.get('op')
    if op == 'set':
        do_set(servers, cmd['path'], cmd)
    elif op == 'remove':
        for s in servers:
            s.remove(cmd['path'])
    elif op == 'requests':
        seen = []
        for s in servers:
            seen += s.requests(cmd['path'])
        return json.dumps(seen)
    elif op == 'clear':
        for s in servers:
            s.clear_requests(cmd.get('path'))
    else:
        raise ValueError('unknown op %r' % op)
    return 'ok'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--https', action='store_true')
    ap.add_argument('--paths', default='{}')
    args = ap.parse_args()
    servers = [fixture_http.FixtureServer().start()]
    if args.https:
        servers.append(fixture_http.FixtureServer(tls=True).start())
    try:
        for path, spec in json.loads(args.paths).items():
            do_set(servers, path, spec)
        hello = {'http': servers[0].base_url}
        if args.https:
            hello.update(https=servers[1].base_url, cert=servers[1].certfile)
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = command(servers, json.loads(line))
            except Exception as e:  # one bad command must not kill the fixture
                reply = 'error: %s: %s' % (type(e).__name__, e)
            print(reply.replace('\n', ' '), flush=True)
    finally:
        for s in servers:
            s.stop()


if __name__ == '__main__':
    main()
