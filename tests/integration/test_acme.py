#!/usr/bin/python3
"""ACME TXT indirection (BEHAVIOR §5, issue 15) through a real pdns_server
and sidecar: the value fetched from the static TXT's URL is served, never the
URL; every lookup ends within Routing.AcmeBudgetMs whatever the URL does (slow,
failing, oversized, redirecting off http) or when the sidecar is down; one
fetch serves the lookups of Routing.AcmeCacheSeconds. The URLs are a loopback
fixture server's."""
import json
import time

import dns.rcode
import dns.rdatatype

import pdnsfix
from ibptest import check, eq
from sidecarfix import Sidecar, real

BUDGET_MS = 1000
SLACK_S = 0.35   # PowerDNS's own work and the test's round trip on top of the budget
NAMES = ['value', 'cached', 'notfound', 'slow', 'huge', 'redirect', 'empty', 'two']


def rcode_name(r):
    return dns.rcode.to_text(r.rcode())


def acme_name(tag):
    return '_acme-challenge.%s.dotters.network' % tag


def sidecar():
    sc = Sidecar(start=False, extra={'Routing': {'AcmeBudgetMs': BUDGET_MS,
                                                 'AcmeCacheSeconds': 5}})
    recs = json.loads(real('geodns-static.json'))
    for tag in NAMES:
        recs.append({'qname': acme_name(tag), 'qtype': 'TXT', 'ttl': 0,
                     'content': sc.http.url('/acme/' + tag)})
    recs.append({'qname': acme_name('two'), 'qtype': 'TXT', 'ttl': 0,
                 'content': sc.http.url('/acme/two-b')})
    sc.http.set('/static.json', json.dumps(recs).encode())
    sc.start()
    return sc


def txt_query(p, tag, rdtype='TXT'):
    t0 = time.monotonic()
    # PowerDNS answers ANY over UDP with TC (any-to-tcp): ask over TCP.
    r = p.query(acme_name(tag), rdtype, timeout=5, tcp=rdtype == 'ANY')
    took = time.monotonic() - t0
    txts = sorted(rd.to_text() for rs in r.answer if rs.rdtype == dns.rdatatype.TXT for rd in rs)
    return r, txts, took


def no_url(r, what):
    check('http://' not in r.to_text() and 'https://' not in r.to_text(),
          '%s: the raw URL is served: %s' % (what, r.to_text()))


def test_values_budget_cache_and_faults():
    sc = sidecar()
    h = sc.http
    h.set('/acme/value', b'  tok-AbC_123-xyz\n')
    h.set('/acme/cached', b'cached-token')
    h.set('/acme/notfound', b'gone', status=404)
    h.set('/acme/slow', b'slow-token', delay=3)
    h.set('/acme/huge', b'x' * 600)
    h.set('/acme/redirect', b'', status=302, headers={'Location': 'file:///etc/hostname'})
    h.set('/acme/empty', b'   \n')
    h.set('/acme/two', b'first')
    h.set('/acme/two-b', b'second')
    with sc, pdnsfix.Pdns(sc.table) as p:
        # The value, trimmed and quoted; TXT and ANY alike.
        r, txts, took = txt_query(p, 'value')
        eq((rcode_name(r), txts), ('NOERROR', ['"tok-AbC_123-xyz"']), 'ACME TXT value')
        no_url(r, 'ACME TXT')
        r, txts, _ = txt_query(p, 'value', 'ANY')
        eq(txts, ['"tok-AbC_123-xyz"'], 'ACME ANY value')
        no_url(r, 'ACME ANY')
        # Two records at one name: one answer each.
        _, txts, _ = txt_query(p, 'two')
        eq(txts, ['"first"', '"second"'], 'two ACME records')

        # One fetch for the lookups within AcmeCacheSeconds.
        h.clear_requests()
        for _ in range(4):
            _, txts, _ = txt_query(p, 'cached')
            eq(txts, ['"cached-token"'], 'cached ACME value')
        eq(len(h.requests('/acme/cached')), 1, 'fetches of one URL within the cache time')

        # Faults: NODATA, quickly, never the URL; 404 tried 3 times.
        for tag in ('notfound', 'huge', 'redirect', 'empty'):
            r, txts, took = txt_query(p, tag)
            eq((rcode_name(r), txts), ('NOERROR', []), 'ACME %s: NODATA' % tag)
            no_url(r, 'ACME ' + tag)
            check(took < BUDGET_MS / 1000 + SLACK_S, 'ACME %s took %.2f s' % (tag, took))
        eq(len(h.requests('/acme/notfound')), 3, 'attempts at a URL answering 404')

        # A slow URL: the first lookup waits for the budget, no longer; the
        # next ones while it still runs are answered at once; once it is in,
        # the value is served from the cache.
        r, txts, took = txt_query(p, 'slow')
        eq(txts, [], 'slow URL within the budget')
        check(BUDGET_MS / 1000 - 0.3 < took < BUDGET_MS / 1000 + SLACK_S,
              'slow URL: the lookup took %.2f s, budget %d ms' % (took, BUDGET_MS))
        _, txts, took2 = txt_query(p, 'slow')
        check(txts == [] and took2 < 0.3, 'second lookup while the fetch runs: %r in %.2f s'
              % (txts, took2))
        time.sleep(2.5)
        _, txts, took3 = txt_query(p, 'slow')
        check(txts == ['"slow-token"'] and took3 < 0.3,
              'after the slow fetch: %r in %.2f s' % (txts, took3))
        eq(len(h.requests('/acme/slow')), 1, 'fetches of the slow URL')

        # Metrics count what happened.
        code, _, body = sc.api('/metrics')
        text = body if isinstance(body, str) else body.decode()
        check('ibpdns_acme_fetches_total{result="failed"}' in text and
              'ibpdns_acme_questions_total{outcome="value"}' in text, 'ACME metrics missing')

        # The sidecar down: NODATA at once, no coprocess blocked.
        sc.proc.terminate()
        sc.proc.wait(15)
        r, txts, took = txt_query(p, 'value')
        eq((rcode_name(r), txts), ('NOERROR', []), 'ACME with the sidecar stopped: NODATA')
        check(took < 0.3, 'ACME with the sidecar stopped took %.2f s' % took)
        check('timeout' not in p.logtext().lower(), 'PowerDNS saw a coprocess time out:\n%s'
              % p.logtext()[-2000:])


def test_url_never_logged_above_debug():
    sc = Sidecar(start=False, extra={'System': {'LogLevel': 'Info'}})
    recs = json.loads(real('geodns-static.json'))
    recs.append({'qname': acme_name('secret'), 'qtype': 'TXT', 'ttl': 0,
                 'content': sc.http.url('/acme/very-secret-path')})
    sc.http.set('/static.json', json.dumps(recs).encode())
    sc.http.set('/acme/very-secret-path', b'no', status=500)
    sc.start()
    with sc, pdnsfix.Pdns(sc.table) as p:
        r, txts, _ = txt_query(p, 'secret')
        eq(txts, [], 'failing ACME URL')
        time.sleep(0.5)
        log = sc.logtext()
        check('ACME ' + acme_name('secret') in log, 'the failure is not logged:\n' + log[-1500:])
        check('very-secret-path' not in log, 'the URL is logged at Info:\n' + log[-1500:])


if __name__ == '__main__':
    import ibptest
    ibptest.main(globals())
