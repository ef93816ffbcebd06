#!/usr/bin/python3
"""Zones that real DNS software accepts (issue 15), through a real pdns_server
with the real IBP config plus deep names: empty non-terminals answer NODATA
(RFC 8020), never NXDOMAIN, for every type, with caches on; the marker that
makes PowerDNS 4.7 say so never reaches a client (ANY, AXFR); names below
stay answered and unknown siblings stay NXDOMAIN; every zone transferred by
AXFR passes BIND's named-checkzone, and every SOA MNAME and NS name resolves."""
import subprocess

import dns.rcode
import dns.rdatatype
import dns.zone

import ibptest
import pdnsfix
from ibptest import check, eq

CHECKZONE = '/usr/bin/named-checkzone'


def rcode(r):
    return dns.rcode.to_text(r.rcode())


def test_empty_non_terminals_are_nodata():
    ws, tbl = ibptest.ibp_deep_table()   # ws keeps the directory alive
    for settings in (None, pdnsfix.PRODUCTION):
        with pdnsfix.Pdns(tbl, settings=settings) as p:
            for name in ibptest.DEEP_ENTS:
                for qtype in ('A', 'TXT', 'AAAA', 'NS'):
                    for _ in range(2):   # the second from PowerDNS's caches when on
                        r = p.query(name, qtype)
                        eq((rcode(r), len(r.answer)), ('NOERROR', 0), '%s %s' % (name, qtype))
                        check(any(rs.rdtype == dns.rdatatype.SOA for rs in r.authority),
                              '%s %s: no SOA in the authority section' % (name, qtype))
                r = p.query(name, 'ANY', tcp=True)
                eq((rcode(r), len(r.answer)), ('NOERROR', 0), '%s ANY (the marker is never served)'
                   % name)
            r = p.query('x.deep.dotters.network', 'A')
            eq([rd.to_text() for rs in r.answer for rd in rs], ['192.0.2.7'], 'x.deep A')
            for name in ('y.deep.dotters.network', 'nothere.plus.dotters.network'):
                eq(rcode(p.query(name, 'A')), 'NXDOMAIN', name)
            # An ACME name without a value is NODATA too (BEHAVIOR §5).
            r = p.query('_acme-challenge.boot.stake.plus.dotters.network', 'TXT')
            eq((rcode(r), len(r.answer)), ('NOERROR', 0), 'ACME name without a value')
            check('Should not get here' not in p.logtext() and 'xception' not in p.logtext(),
                  'PowerDNS complained:\n' + p.logtext()[-2000:])


def test_every_zone_transfers_and_passes_named_checkzone():
    ws, tbl = ibptest.ibp_deep_table()
    with pdnsfix.Pdns(tbl) as p:
        zones = ibptest.table_zones(tbl)
        check(zones and 'dotters.network' in zones and 'polkadot.ibp.network' in zones,
              'zones of the table: %r' % zones)
        names_to_resolve = set()
        for zone in zones:
            msgs = p.axfr(zone, relativize=False)
            z = dns.zone.from_xfr(iter(msgs), relativize=False)
            text = z.to_text(relativize=False)
            check('IXFR' not in text and 'TYPE0' not in text and 'http://' not in text,
                  'AXFR %s carries the marker or a URL:\n%s' % (zone, text[:2000]))
            path = ws.path(zone + '.zone')
            with open(path, 'w') as f:
                f.write(text)
            res = subprocess.run([CHECKZONE, '-i', 'local', '-k', 'fail', '-n', 'fail', zone, path],
                                 capture_output=True, text=True, timeout=60)
            eq(res.returncode, 0, 'named-checkzone %s: %s' % (zone, res.stdout + res.stderr))
            soa = z.find_rdataset(zone + '.', 'SOA')[0]
            names_to_resolve.add(soa.mname.to_text().rstrip('.'))
            for ns in z.find_rdataset(zone + '.', 'NS'):
                names_to_resolve.add(ns.target.to_text().rstrip('.'))
        # Every MNAME and NS name has an address, served by this node.
        for name in sorted(names_to_resolve):
            r = p.query(name, 'A')
            check(rcode(r) == 'NOERROR' and r.answer or p.query(name, 'AAAA').answer,
                  'MNAME/NS %s does not resolve' % name)


if __name__ == '__main__':
    ibptest.main(globals())
