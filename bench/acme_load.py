#!/usr/bin/python3
"""Issue 15, acceptance 2: ordinary lookups while ACME names wait on a slow
URL. A real pdns_server (caches off, 3 distributor threads) and sidecar;
10,000 ordinary A lookups, first alone (the baseline), then while 1,000
lookups of ACME names whose URL answers after 3 s run beside them. Prints
the ordinary lookups' latency percentiles for both runs and their ratio, the
ACME lookups' longest wait (the budget bounds it), and whether PowerDNS
killed a coprocess.

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
from sidecarfix import Sidecar, real  # noqa: E402

ORDINARY, ACME, ACME_NAMES, WORKERS = 10000, 1000, 20, 8


def run(port, names, n, out, workers):
    def worker(k):
        for i in range(k, n, workers):
            q = dns.message.make_query(names[i % len(names)], 'A' if 'acme' not in names[0] else 'TXT')
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


def main():
    sc = Sidecar(start=False, extra={'Routing': {'AcmeBudgetMs': 1000, 'AcmeCacheSeconds': 5}})
    recs = json.loads(real('geodns-static.json'))
    acme = ['_acme-challenge.n%d.dotters.network' % i for i in range(ACME_NAMES)]
    for i, name in enumerate(acme):
        recs.append({'qname': name, 'qtype': 'TXT', 'ttl': 0, 'content': sc.http.url('/slow%d' % i)})
        sc.http.set('/slow%d' % i, b'token', delay=3)
    sc.http.set('/static.json', json.dumps(recs).encode())
    sc.start()
    ordinary = ['polkadot.dotters.network', 'kusama.dotters.network', 'dns-01.dotters.network']
    with sc, pdnsfix.Pdns(sc.table, settings={'distributor-threads': '3'}) as p:
        base = []
        for t in run(p.port, ordinary, ORDINARY, base, WORKERS):
            t.join()
        loaded, waits = [], []
        ta = run(p.port, acme, ACME, waits, WORKERS)
        to = run(p.port, ordinary, ORDINARY, loaded, WORKERS)
        for t in ta + to:
            t.join()
        killed = 'timeout' in p.logtext().lower() or 'Backend reported' in p.logtext()
    print('ordinary lookups: %d alone, %d beside %d ACME lookups (URL answering after 3 s)'
          % (len(base), len(loaded), len(waits)))
    for name, p_ in (('p50', 0.5), ('p99', 0.99), ('p99.9', 0.999), ('max', 1.0)):
        b, l_ = pct(base, p_), pct(loaded, p_)
        print('  %-6s alone %7.2f ms   with ACME %7.2f ms   ratio %.2f' % (name, b * 1e3, l_ * 1e3,
                                                                         l_ / b if b else 0))
    print('ACME lookups: p50 %.0f ms, max %.0f ms (budget 1000 ms)' % (pct(waits, 0.5) * 1e3,
                                                                       max(waits) * 1e3))
    print('coprocess killed by PowerDNS: %s' % ('yes' if killed else 'no'))


if __name__ == '__main__':
    main()
