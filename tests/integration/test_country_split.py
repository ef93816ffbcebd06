#!/usr/bin/python3
"""A country override for a country never overridden before (issue 14,
acceptance 3): the sidecar splits the geo classes it has by that country
from the usage client classes instead of walking MaxMind again, and the
table it publishes answers every client as a table built from scratch (a
walk with the override in the config) does: `ibpdns-table diff` of the two
moves nobody. On the full GeoLite2-City (MaxMind's City test database
under TSan, where a walk of the full one takes a minute)."""
import json
import os
import subprocess
import time

import ibptest
from ibptest import check, eq
from sidecarfix import Sidecar, real

GEOLITE = os.path.join(ibptest.SRC, 'var', 'geoip', 'GeoLite2-City.mmdb')
MMDB = ibptest.CITY_MMDB if ibptest.TSAN else GEOLITE
HOST = 'rpc.dotters.network'
OVERRIDES = {HOST: {'BR': {'memberName': 'Amforc'}, 'JP': {'memberName': 'Gatotech'},
                    'SE': {'memberName': 'Gatotech'}}}


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while not fn():
        check(time.monotonic() < deadline, 'not within %.0f s: %s' % (timeout, what))
        time.sleep(0.05)


def built_from_scratch(ws, overrides):
    cfg = ws.node_config(json.loads(real('members_professional.json')),
                         json.loads(real('services_rpc.json')),
                         json.loads(real('geodns-static.json')), overrides=overrides)
    out = os.path.join(ws.dir, 'scratch.tbl')
    r = subprocess.run([ibptest.TABLE_TOOL, 'build', '--config', cfg, '--mmdb', MMDB, '-o', out],
                       capture_output=True, text=True, timeout=600)
    eq(r.returncode, 0, 'ibpdns-table build: ' + r.stderr[-500:])
    return out


def publishes(sc):
    return [ln for ln in sc.logtext().splitlines() if 'published table generation' in ln]


def test_a_new_override_country_is_split_not_walked_and_answers_as_a_walk():
    with Sidecar(mmdb=MMDB) as sc:
        gen = sc.generation()
        t0 = time.monotonic()
        sc.config['GeoDNSOverrides'] = OVERRIDES
        sc.write_config()
        sc.wait_generation_above(gen, 60)
        print('  config with three new override countries -> table: %.2f s (the config is '
              're-read every 2 s)' % (time.monotonic() - t0))
        pubs = publishes(sc)
        check(len(pubs) >= 2 and 'MaxMind walked' in pubs[0] and
              all('split by new override countries' in p or 'reused' in p for p in pubs[1:]),
              'the override was split, not walked: %r' % pubs)
        # A JP client (both databases place 2001:218::/32 in Japan).
        code, _, body = sc.api('/route?name=%s&ip=2001:218::1' % HOST)
        r = json.loads(body)
        eq(((r.get('location') or {}).get('country'), r['how'], r['answers'][0]['member']),
           ('JP', 'override', 'Gatotech'), 'a JP client')
        ws = ibptest.Workspace()
        scratch = built_from_scratch(ws, OVERRIDES)
        r = subprocess.run([ibptest.TABLE_TOOL, 'diff', scratch, sc.table], capture_output=True,
                           text=True, timeout=600)
        eq(r.returncode, 0, 'diff: ' + r.stderr[-500:])
        d = json.loads(r.stdout)
        eq((d['moves'], d['one_sided_policies']), ([], 0),
           'the split table answers as the walked one')
        # More new countries at once than one split takes (255): a walk, and
        # the last of them (US, after 312 others in order) is overridden too.
        gen = sc.generation()
        many = {a + b: {'memberName': 'Dwellir'} for a in 'ABCDEFGHIJKL'
                for b in 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'}
        many['US'] = {'memberName': 'Gatotech'}
        sc.config['GeoDNSOverrides'] = {HOST: dict(OVERRIDES[HOST], **many)}
        sc.write_config()
        sc.wait_generation_above(gen, 120)
        check('MaxMind walked' in publishes(sc)[-1], 'walked: %r' % publishes(sc)[-1])
        r = json.loads(sc.api('/route?name=%s&ip=216.160.83.56' % HOST)[2])
        eq(((r.get('location') or {}).get('country'), r['how'], r['answers'][0]['member']),
           ('US', 'override', 'Gatotech'), 'a US client after 312 other new countries')
        # A country already split, set again: no split, no walk.
        gen = sc.generation()
        sc.config['GeoDNSOverrides'] = {HOST: {'BR': {'memberName': 'Gatotech'}}}
        sc.write_config()
        sc.wait_generation_above(gen, 30)
        check('geo classes reused' in publishes(sc)[-1], 'reused: %r' % publishes(sc)[-1])


if __name__ == '__main__':
    ibptest.main(globals())
