#!/usr/bin/python3
"""Issue 15, acceptance 2: ordinary lookups while ACME names wait on a slow
URL. A real pdns_server (caches off, 3 distributor threads) and sidecar;
10,000 ordinary A lookups, first alone (the baseline), then while 1,000
TXT lookups run beside them: of static TXT names (the same load without
ACME), of ACME names whose URL answered after 3 s since the table came, and
of ACME names whose URL answered at once and then turned slow. Prints the
ordinary lookups' latency percentiles for each run and their ratio to the
baseline, the TXT lookups' longest wait (the budget bounds it), and whether
PowerDNS killed a coprocess.

  IBP_BUILD=build IBP_SHARED=../shared IBP_SRC=. python3 bench/acme_load.py
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import dns.message  # noqa: E402
import dns.query  # noqa: E402

import pdnsfix  # noqa: E402
from fixture_http import FixtureServer  # noqa: E402
from sidecarfix import Sidecar, real  # noqa: E402

ORDINARY, ACME, ACME_NAMES, WORKERS, CACHE_S = 10000, 1000, 20, 8, 5


def run(port, names, n, out, workers, rdtype):
    def worker(k):
        for i in range(k, n, workers):
            q = dns.message.make_query(names[i % len(names)], rdtype)
            t0 = time.monotonic()
            try:
                dns.query.udp(q, '127.0.0.1', port=port, timeout=5)
                out.append(time.monotonic() - t0)
            except Exception:
                out.append(float('inf'))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in ts:
        t.start()
    return ts


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def beside(port, ordinary, others):
    """The ordinary lookups' latencies while the other lookups run beside them,
    and the other lookups' own."""
    loaded, waits = [], []
    ta = run(port, others, ACME, waits, WORKERS, 'TXT')
    to = run(port, ordinary, ORDINARY, loaded, WORKERS, 'A')
    for t in ta + to:
        t.join()
    return loaded, waits


def main():
    sc = Sidecar(start=False, extra={'Routing': {'AcmeBudgetMs': 1000, 'AcmeCacheSeconds': CACHE_S}})
    recs = json.loads(real('geodns-static.json'))
    slow = ['_acme-challenge.slow%d.dotters.network' % i for i in range(ACME_NAMES)]
    turning = ['_acme-challenge.turns%d.dotters.network' % i for i in range(ACME_NAMES)]
    # Another server: the sidecar remembers servers that kept an asker waiting.
    turns_http = FixtureServer()
    turns_http.start()
    plain = ['txt%d.dotters.network' % i for i in range(ACME_NAMES)]
    for i in range(ACME_NAMES):
        recs.append({'qname': slow[i], 'qtype': 'TXT', 'ttl': 0, 'content': sc.http.url('/slow%d' % i)})
        recs.append({'qname': turning[i], 'qtype': 'TXT', 'ttl': 0,
                     'content': turns_http.url('/turns%d' % i)})
        recs.append({'qname': plain[i], 'qtype': 'TXT', 'ttl': 0, 'content': 'plain'})
        sc.http.set('/slow%d' % i, b'token', delay=3)
        turns_http.set('/turns%d' % i, b'token')
    sc.http.set('/static.json', json.dumps(recs).encode())
    sc.start()
    ordinary = ['polkadot.dotters.network', 'kusama.dotters.network', 'dns-01.dotters.network']
    runs = []
    with sc, pdnsfix.Pdns(sc.table, settings={'distributor-threads': '3'}) as p:
        base = []
        for t in run(p.port, ordinary, ORDINARY, base, WORKERS, 'A'):
            t.join()
        runs.append(('beside 1,000 static TXT lookups (the load alone)', beside(p.port, ordinary, plain)))
        runs.append(('beside 1,000 ACME lookups, URLs slow (3 s) since the table came',
                     beside(p.port, ordinary, slow)))
        # URLs that answered quickly (asked once each, one at a time), then
        # turned slow: the first lookup after its value expired waits.
        for name in turning:
            dns.query.udp(dns.message.make_query(name, 'TXT'), '127.0.0.1', port=p.port, timeout=5)
        for i in range(ACME_NAMES):
            turns_http.set('/turns%d' % i, b'token', delay=3)
        time.sleep(CACHE_S + 0.5)
        runs.append(('beside 1,000 ACME lookups, URLs turned slow (3 s) after the table came',
                     beside(p.port, ordinary, turning)))
        killed = 'timeout' in p.logtext().lower() or 'Backend reported' in p.logtext()
    turns_http.stop()
    print('%d ordinary A lookups each run, %d TXT lookups beside them, 3 distributor threads'
          % (ORDINARY, ACME))
    print('  alone: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms'
          % tuple(pct(base, q) * 1e3 for q in (0.5, 0.99, 0.999, 1.0)))
    for title, (loaded, waits) in runs:
        print('  ' + title)
        for name, q in (('p50', 0.5), ('p99', 0.99), ('p99.9', 0.999), ('max', 1.0)):
            b, l_ = pct(base, q), pct(loaded, q)
            print('    ordinary %-6s %8.2f ms   ratio to alone %6.2f' % (name, l_ * 1e3, l_ / b))
        print('    the TXT lookups: p50 %.0f ms, max %.0f ms (budget 1000 ms)'
              % (pct(waits, 0.5) * 1e3, max(waits) * 1e3))
    print('coprocess killed by PowerDNS: %s' % ('yes' if killed else 'no'))


if __name__ == '__main__':
    main()
