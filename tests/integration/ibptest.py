"""Shared helpers for the ibpdns integration tests (stdlib only).

Paths come from the environment that meson sets (tests/meson.build):
  IBP_BUILD   the meson build dir      (default: $IBP_SRC/build)
  IBP_SRC     the source dir           (default: two levels above this file)
  IBP_SHARED  the shared dir (spec, testdata; default: $IBP_SRC/../shared)

A test script defines functions named test_* and ends with
    if __name__ == '__main__':
        ibptest.main(globals())
which runs them in file order (or only those named on the command line,
or all but those named with a leading '-'),
prints `ok NAME` or `FAIL NAME: reason` for each, and exits 1 if any failed.
"""

import concurrent.futures
import ipaddress
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback

# ---- paths ------------------------------------------------------------------

SRC = os.path.abspath(os.environ.get(
    'IBP_SRC', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')))
BUILD = os.path.abspath(os.environ.get('IBP_BUILD', os.path.join(SRC, 'build')))
SHARED = os.path.abspath(os.environ.get('IBP_SHARED', os.path.join(SRC, '..', 'shared')))

TABLE_TOOL = os.path.join(BUILD, 'tools', 'ibpdns-table')
IBP_CONFIG = os.path.join(SHARED, 'testdata', 'ibp-config')
MAXMIND = os.path.join(SHARED, 'testdata', 'maxmind')
CITY_MMDB = os.path.join(MAXMIND, 'GeoIP2-City-Test.mmdb')
CITY_JSON = os.path.join(MAXMIND, 'GeoIP2-City-Test.json')


def testdata(*parts):
    """A file under $IBP_SHARED/testdata."""
    return os.path.join(SHARED, 'testdata', *parts)


# ---- running the tools -----------------------------------------------------

def run(argv, timeout=60):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return (p.returncode, p.stdout.decode('utf-8', 'replace'),
            p.stderr.decode('utf-8', 'replace'))


def run_table(*args, timeout=60):
    """Runs ibpdns-table with args; returns (rc, stdout, stderr)."""
    return run([TABLE_TOOL] + [str(a) for a in args], timeout=timeout)


def table_json(*args):
    """Runs ibpdns-table, requires exit status 0, returns its stdout parsed."""
    rc, out, err = run_table(*args)
    if rc != 0:
        raise AssertionError('ibpdns-table %s: exit %d: %s'
                             % (' '.join(map(str, args)), rc, err.strip()))
    try:
        return json.loads(out)
    except ValueError as e:
        raise AssertionError('ibpdns-table %s: stdout is not JSON (%s): %r'
                             % (' '.join(map(str, args)), e, out[:500]))


def lookup(table, name, ip, qtype='A', ecs=None):
    """`ibpdns-table lookup` parsed; fails the test on a non-zero exit."""
    args = ['lookup', table, name, ip, '--type', qtype]
    if ecs is not None:
        args += ['--ecs', ecs]
    return table_json(*args)


def pmap(fn, items, workers=None):
    """[fn(x) for x in items], run on a few threads (each call mostly waits
    for a subprocess). The first exception is raised."""
    items = list(items)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items))


def answer_members(res):
    """The member names of a lookup result's answers, in order."""
    return [a['member'] for a in res['answers']]


def skipped(res):
    """{member: skipped} of a lookup result's candidates."""
    return {c['member']: c['skipped'] for c in res['candidates']}


# ---- geometry ----------------------------------------------------------------

def located_networks():
    """[(network text, sample address, lat, lon, country)] for every network of
    the City test data that has coordinates. IPv4 networks appear in the JSON
    as ::a.b.c.d/N; they are returned as a.b.c.d/(N-96)."""
    with open(CITY_JSON) as f:
        data = json.load(f)
    nets = []
    for entry in data:
        for text, rec in entry.items():
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 6 and net.prefixlen >= 96 and int(net.network_address) < 2 ** 32:
                net = ipaddress.ip_network((int(net.network_address), net.prefixlen - 96))
            nets.append((net, rec))
    out, seen = [], set()
    for net, rec in nets:
        loc = rec.get('location') or {}
        if 'latitude' not in loc or net in seen:
            continue
        seen.add(net)
        # An address inside net but inside no more specific network of the data.
        inner = [n for n, _ in nets if n != net and n.version == net.version
                 and n.subnet_of(net)]
        size = net.num_addresses
        for off in (size // 2, size - 1, 0, size // 3):
            addr = net.network_address + off
            if not any(addr in n for n in inner):
                break
        else:
            raise AssertionError('no address of %s outside its subnets' % net)
        out.append((str(net), str(addr), loc['latitude'], loc['longitude'],
                    (rec.get('country') or {}).get('iso_code')))
    return out


EARTH_RADIUS_KM = 6371.0


def haversine(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (R = 6371 km, 2*atan2(sqrt(a), sqrt(1-a)))."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return EARTH_RADIUS_KM * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


# ---- synthetic inputs ------------------------------------------------------

def member(lat, lon, ipv4='', ipv6='', services=('Svc',), active=1,
           override=None, name=None):
    """One members_professional.json entry. name = Details.Name (default: the
    key, filled in by members())."""
    m = {
        'Details': {'Name': name, 'Website': '', 'Logo': ''},
        'Membership': {'MemberLevel': 5, 'Joined': 1672549200, 'LastRankup': 1672549200},
        'Service': {'Active': active, 'ServiceIPv4': ipv4, 'ServiceIPv6': ipv6,
                    'MonitorUrl': ''},
        'ServiceAssignments': {'Group': list(services)},
        'Location': {'Region': 'Test', 'Latitude': lat, 'Longitude': lon},
    }
    if override is not None:
        m['Override'] = override
    return m


def members(**by_key):
    """{key: member(...)} with Details.Name defaulting to the key. Use
    members_from() for keys that are not Python identifiers."""
    return members_from(list(by_key.items()))


def members_from(pairs):
    out = {}
    for key, m in pairs:
        m = json.loads(json.dumps(m))
        if m['Details']['Name'] is None:
            m['Details']['Name'] = key
        out[key] = m
    return out


def service(*rpc_urls, active=1, name=None):
    """One services_rpc.json entry whose single provider has these RpcUrls."""
    return {'Configuration': {'Name': name or 'svc', 'ServiceType': 'RPC', 'Active': active,
                              'LevelRequired': 3, 'NetworkName': name or 'svc'},
            'Resources': {'nodes': 1},
            'Providers': {'Test': {'RpcUrls': list(rpc_urls)}}}


def static_record(qname, qtype, content, ttl=3600):
    return {'qname': qname, 'qtype': qtype, 'content': content, 'ttl': ttl,
            'auth': True, 'domain_id': 0}


# The real IBP config plus names below empty non-terminals (issue 15): a static
# x.deep.dotters.network makes deep.dotters.network one, an ACME name makes
# plus, stake.plus and boot.stake.plus.dotters.network three more.
DEEP_STATIC = [static_record('x.deep.dotters.network', 'A', '192.0.2.7'),
               static_record('_acme-challenge.boot.stake.plus.dotters.network', 'TXT',
                             'http://127.0.0.1:9/never-fetched', ttl=0)]
DEEP_ENTS = ['deep.dotters.network', 'plus.dotters.network', 'stake.plus.dotters.network',
             'boot.stake.plus.dotters.network']


def ibp_deep_table():
    """Builds the table of the real IBP config (professional members, RPC
    services, static records) plus DEEP_STATIC with the City test data.
    Returns (Workspace, table path); keep the Workspace, it holds the files."""
    ws = Workspace()
    with open(os.path.join(IBP_CONFIG, 'members_professional.json')) as f:
        members_obj = json.load(f)
    with open(os.path.join(IBP_CONFIG, 'services_rpc.json')) as f:
        services_obj = json.load(f)
    with open(os.path.join(IBP_CONFIG, 'geodns-static.json')) as f:
        static_obj = json.load(f) + DEEP_STATIC
    return ws, ws.build_ok(ws.node_config(members_obj, services_obj, static_obj))


def table_zones(tbl):
    """The table's zone names, sorted (`ibpdns-table info`); None if it has none."""
    return sorted(z['zone'] for z in table_json('info', tbl).get('zones', [])) or None


# Monitor /results snapshots (IBP-NODE §5.1).

CHECKTIME = '2026-04-18T10:00:00Z'


def result(member_name, status, ipv6=False, checktime=CHECKTIME):
    return {'Status': status, 'MemberName': member_name, 'ErrorText': '' if status else 'down',
            'Data': {}, 'IsIPv6': ipv6, 'Checktime': checktime}


def site_group(results, ipv6=False, check='ping'):
    return {'CheckName': check, 'IsIPv6': ipv6, 'Results': list(results)}


def domain_group(domain, results, ipv6=False, check='ssl'):
    return {'CheckName': check, 'Domain': domain, 'IsIPv6': ipv6, 'Results': list(results)}


def endpoint_group(domain, rpc_url, results, ipv6=False, check='wss'):
    return {'CheckName': check, 'Domain': domain, 'RpcUrl': rpc_url, 'IsIPv6': ipv6,
            'Results': list(results)}


def snapshot(site=(), domain=(), endpoint=()):
    return {'SiteResults': list(site), 'DomainResults': list(domain),
            'EndpointResults': list(endpoint)}


class Workspace:
    """A temporary directory holding one set of inputs; removed at exit."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix='ibptest-')
        self.dir = self._tmp.name
        self._n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def fresh(self, stem='routing', ext='.tbl'):
        """A path that does not exist yet."""
        self._n += 1
        return self.path('%s-%d%s' % (stem, self._n, ext))

    def write_text(self, name, text):
        p = self.path(name)
        mode = 'wb' if isinstance(text, bytes) else 'w'
        with open(p, mode) as f:
            f.write(text)
        return p

    def write_json(self, name, obj):
        return self.write_text(name, json.dumps(obj, indent=1))

    def node_config(self, members_obj, services_obj, static_obj=(), routing=None,
                    overrides=None, name='node.json', members_name='members_professional.json',
                    services_name='services_rpc.json', static_name='geodns-static.json'):
        """Writes members/services/static (objects, or None to leave a file
        as it is) and a node config that points at them by relative path.
        Returns the node config path."""
        if members_obj is not None:
            self.write_json(members_name, members_obj)
        if services_obj is not None:
            self.write_json(services_name, services_obj)
        if static_obj is not None:
            self.write_json(static_name, list(static_obj))
        cfg = {'System': {'LogLevel': 'Info', 'ConfigUrls': {
                   'MembersConfig': members_name, 'ServicesConfig': services_name,
                   'StaticDNSConfig': static_name}},
               'Maxmind': {'MaxmindDBPath': MAXMIND},
               'Nats': {'NodeID': 'TEST-01', 'Url': ''},
               'DnsApi': {'ListenAddress': '127.0.0.1', 'ListenPort': '6100'}}
        if routing is not None:
            cfg['Routing'] = routing
        if overrides is not None:
            cfg['GeoDNSOverrides'] = overrides
        return self.write_json(name, cfg)

    def build(self, config, results=None, source=None, mmdb=CITY_MMDB, out=None):
        """Runs `ibpdns-table build`; returns (rc, stdout, stderr, table path)."""
        out = out or self.fresh()
        args = ['build', '--config', config]
        if results is not None:
            if not isinstance(results, str):
                results = self.write_json('results-%d.json' % self._n, results)
            args += ['--results', results]
        if source is not None:
            args += ['--results-source', source]
        if mmdb is not None:
            args += ['--mmdb', mmdb]
        rc, so, se = run_table(*(args + ['-o', out]))
        return rc, so, se, out

    def build_ok(self, config, **kw):
        """build() that must succeed; returns the table path."""
        rc, so, se, out = self.build(config, **kw)
        if rc != 0:
            raise AssertionError('build failed (exit %d): %s' % (rc, se.strip()))
        return out


# ---- assertions ----------------------------------------------------------------

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError('%s: expected %r, got %r' % (what, expected, actual))


def one_error_line(stderr, what):
    """stderr must be exactly one line `ibpdns-table: ...`; returns it."""
    lines = stderr.splitlines()
    check(len(lines) == 1, '%s: expected one line on stderr, got %d: %r'
          % (what, len(lines), stderr[:600]))
    check(lines[0].startswith('ibpdns-table: '),
          '%s: stderr does not start with "ibpdns-table: ": %r' % (what, lines[0][:300]))
    return lines[0]


# ---- runner ----------------------------------------------------------------

# The ThreadSanitizer build exists for the sidecar, the one threaded program:
# there a test that runs only single-threaded programs (ibpdns-table, the
# coprocess) repeats what the normal and ASan builds check, at TSan's cost.
TSAN = os.environ.get('IBP_TSAN') == '1'


def single_threaded(f):
    """Marks a test that never starts the sidecar: not run under TSan."""
    f.single_threaded = True
    return f


def not_under_tsan(reason):
    """Marks a test that starts the sidecar but is not worth TSan's time (reason says why)."""
    def mark(f):
        f.single_threaded = True
        f.tsan_reason = reason
        return f
    return mark


def main(namespace):
    """Runs every test_* function of namespace in definition order (or those
    sys.argv selects), prints ok/FAIL per test, exits 1 on any failure."""
    tests = [f for n, f in namespace.items() if n.startswith('test_') and callable(f)]
    tests.sort(key=lambda f: f.__code__.co_firstlineno)
    # NAME runs only the named tests, -NAME all but it (how meson.build
    # splits a script into tests that may run beside others and those that
    # must run alone); a name that is no test is an error, not nothing run.
    wanted = [a for a in sys.argv[1:] if not a.startswith('-')]
    unwanted = [a[1:] for a in sys.argv[1:] if a.startswith('-')]
    unknown = sorted(set(wanted + unwanted) - {f.__name__ for f in tests})
    if unknown:
        print('FAIL: no such test: %s' % ', '.join(unknown), flush=True)
        sys.exit(1)
    if wanted:
        tests = [f for f in tests if f.__name__ in wanted]
    tests = [f for f in tests if f.__name__ not in unwanted]
    failed = skipped_n = 0
    failures = []   # repeated last: CI logs keep the tail of a long output
    for f in tests:
        if TSAN and getattr(f, 'single_threaded', False):
            print('skip %s: %s' % (f.__name__, getattr(f, 'tsan_reason', 'starts no sidecar (the '
                                                      'TSan build checks threads)')), flush=True)
            skipped_n += 1
            continue
        started = time.monotonic()
        try:
            f()
        except AssertionError as e:
            failed += 1
            failures.append('%s: %s' % (f.__name__, e))
            print('FAIL ' + failures[-1], flush=True)
        except Exception:
            failed += 1
            failures.append('%s: exception %s' % (f.__name__, traceback.format_exc(limit=-1)))
            print('FAIL %s: exception\n%s' % (f.__name__, traceback.format_exc()), flush=True)
        else:
            # The time: where the suite's half hour goes.
            print('ok %s (%.1f s)' % (f.__name__, time.monotonic() - started), flush=True)
    ran = len(tests) - skipped_n
    for line in failures:
        print('failed: ' + line[:600], flush=True)
    print(('%d of %d tests failed' % (failed, ran) if failed else 'all %d tests passed' % ran)
          + (', %d skipped' % skipped_n if skipped_n else ''), flush=True)
    sys.exit(1 if failed else 0)
