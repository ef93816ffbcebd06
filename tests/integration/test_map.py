#!/usr/bin/python3
"""The world map (issue 17, acceptance 3): `ibpdns-table map` and the
sidecar's GET /map.svg. The SVG is checked as XML (a cell path and a legend
entry per member, shares that add up, offline members marked), bad input
gets one clear error, and a real browser (Debian's headless Chromium)
renders the sidecar's map of the real IBP configs on the full GeoLite2-City:
at the places of 600 random located addresses the screenshot's pixel has the
colour of the member the sidecar routes that address to (/route), in western
Europe and in South America alike. Loopback only."""
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import ibptest
from ibptest import check, eq
from sidecarfix import Sidecar, real

GEOLITE = os.path.join(ibptest.SRC, 'var', 'geoip', 'GeoLite2-City.mmdb')
HOST = 'rpc.dotters.network'
SVG = '{http://www.w3.org/2000/svg}'
PX = 4   # per degree (IBP_MAP_PX_PER_DEG)


def real_table(ws, results=None, ipv6=False):
    members = json.loads(real('members_professional.json'))
    for i, m in enumerate(members.values()):
        if ipv6:
            m['Service']['ServiceIPv6'] = '2001:db8::%x' % (i + 1)
    cfg = ws.node_config(members,
                         json.loads(real('services_rpc.json')),
                         json.loads(real('geodns-static.json')))
    return ws.build_ok(cfg, results=results)


def run_map(table, *args):
    return subprocess.run([ibptest.TABLE_TOOL, 'map', table] + list(args), capture_output=True,
                          text=True, timeout=120)


def legend(svg_text):
    """{member: (colour, share, offline)} from the SVG's legend."""
    root = ET.fromstring(svg_text)
    out = {}
    for g in root.iter(SVG + 'g'):
        if g.get('data-colour'):
            out[g.get('data-member')] = (g.get('data-colour'), float(g.get('data-share')),
                                         g.get('data-offline') == '1')
    return out


def cell_paths(svg_text):
    root = ET.fromstring(svg_text)
    return {p.get('data-member'): p.get('fill') for p in root.iter(SVG + 'path')
            if p.get('class') == 'cells'}


@ibptest.single_threaded
def test_the_cli_draws_every_member_and_refuses_bad_input():
    ws = ibptest.Workspace()
    offline = ibptest.snapshot(site=[ibptest.site_group([ibptest.result('Amforc', False)])])
    table = real_table(ws, results=offline, ipv6=True)
    out = os.path.join(ws.dir, 'map.svg')
    r = run_map(table, '--host', HOST, '--mmdb', ibptest.CITY_MMDB, '-o', out)
    eq((r.returncode, r.stderr), (0, ''), 'map')
    text = open(out).read()
    lg = legend(text)
    check('Amforc' in lg and lg['Amforc'][2], 'Amforc offline in the legend: %r' % (lg.get('Amforc'),))
    check(sum(share for _, share, _ in lg.values()) <= 100.01, 'shares: %r' % lg)
    check(sum(share for _, share, _ in lg.values()) > 99, 'shares add up: %r' % lg)
    paths = cell_paths(text)
    check(paths and all(lg[m][0] == fill for m, fill in paths.items()),
          'cells in the legend colours: %r' % paths)
    check('Amforc' not in paths, 'an offline member serves no cell')
    check(len(set(c for c, _, _ in lg.values())) == len(lg), 'one colour per member')
    # The same map to stdout; AAAA too.
    r2 = run_map(table, '--host', HOST, '--mmdb', ibptest.CITY_MMDB, '-o', '-')
    eq((r2.returncode, r2.stdout), (0, text), 'stdout')
    r = run_map(table, '--host', HOST, '--family', 'AAAA', '--mmdb', ibptest.CITY_MMDB, '-o', '-')
    check(r.returncode == 0 and 'AAAA' in r.stdout.split('</title>')[0], 'AAAA map')
    # Bad input: one line naming what is wrong, no file left behind.
    bad_mmdb = os.path.join(ws.dir, 'bad.mmdb')
    with open(bad_mmdb, 'wb') as f:
        f.write(b'\xab\xcd\xefMaxMind.com' + os.urandom(4000))
    for args, what in ((['--host', 'nope.example', '--mmdb', ibptest.CITY_MMDB], 'nope.example'),
                       (['--host', HOST, '--mmdb', bad_mmdb], 'bad.mmdb'),
                       (['--host', HOST, '--mmdb', os.path.join(ws.dir, 'none.mmdb')], 'none.mmdb'),
                       (['--host', HOST, '--family', 'MX', '--mmdb', ibptest.CITY_MMDB], 'MX')):
        target = os.path.join(ws.dir, 'bad.svg')
        r = run_map(table, *(args + ['-o', target]))
        check(r.returncode != 0 and what in r.stderr and len(r.stderr.splitlines()) <= 9,
              '%s: %r' % (what, r.stderr))
        check(not os.path.exists(target), '%s: a file was written' % what)
    check(not [n for n in os.listdir(ws.dir) if '.tmp.' in n], 'temporaries left')
    # MaxMind's broken databases: an error or a map, never a crash or a hang.
    for name in ('GeoIP2-City-Test-Broken-Double-Format.mmdb',
                 'GeoIP2-City-Test-Invalid-Node-Count.mmdb',
                 'MaxMind-DB-test-broken-pointers-24.mmdb',
                 'MaxMind-DB-test-broken-search-tree-24.mmdb'):
        r = run_map(table, '--host', HOST, '--mmdb', os.path.join(ibptest.MAXMIND, name), '-o', '-')
        check(r.returncode in (0, 1) and (r.returncode == 0 or
                                          (name in r.stderr and len(r.stderr.splitlines()) == 1)),
              '%s: exit %d, %r' % (name, r.returncode, r.stderr))


def fetch_map(sc, target, timeout=60):
    """/map.svg once drawn: the first request starts the drawing and is told
    to retry (503, "being drawn"), as every other until it is done."""
    deadline = time.monotonic() + timeout
    while True:
        code, ctype, body = sc.api(target)
        if code != 503 or 'being drawn' not in body:
            return code, ctype, body
        check(time.monotonic() < deadline, '%s: not drawn within %d s' % (target, timeout))
        time.sleep(0.05)


def test_the_sidecar_serves_the_map_and_keeps_it():
    with Sidecar() as sc:
        code, ctype, body = sc.api('/map.svg?host=' + HOST)
        check(code == 503 and 'being drawn' in json.loads(body)['error'],
              'the first request starts the drawing: %d %r' % (code, body))
        code, ctype, body = fetch_map(sc, '/map.svg?host=' + HOST)
        eq((code, ctype), (200, 'image/svg+xml'), '/map.svg')
        check(legend(body) and cell_paths(body), 'a map with cells and a legend')
        eq(sc.api('/map.svg?host=' + HOST)[:3:2], (200, body), 'the same map again, at once')
        # The real configs give no member an IPv6 address.
        code, _, body6 = sc.api('/map.svg?host=%s&type=AAAA' % HOST)
        check(code == 404 and 'no AAAA answers' in json.loads(body6)['error'],
              'the AAAA map: %d %s' % (code, body6[:300]))
        for target, status in (('/map.svg', 400), ('/map.svg?host=' + HOST + '&type=MX', 400),
                               ('/map.svg?host=nope.example', 404),
                               ('/map.svg?host=%FF', 400)):
            code, ctype, err = sc.api(target)
            check(code == status and ctype.startswith('application/json') and
                  'error' in json.loads(err), '%s: %d %r' % (target, code, err))
        code, _, _ = sc.api('/map.svg?host=' + HOST, method='POST')
        eq(code, 405, 'POST /map.svg')


def screenshot(url, width, height, path):
    """Debian's Chromium, headless, its own profile; loopback only."""
    profile = tempfile.mkdtemp(prefix='ibptest-chromium-')
    try:
        r = subprocess.run(['chromium', '--headless', '--no-sandbox', '--disable-gpu',
                            '--hide-scrollbars', '--no-first-run', '--disable-extensions',
                            '--user-data-dir=' + profile, '--force-device-scale-factor=1',
                            '--window-size=%d,%d' % (width, height), '--screenshot=' + path, url],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and os.path.exists(path), 'chromium: %s' % r.stderr[-1000:])
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def located_samples(n, seed=17):
    """n random public IPv4 addresses GeoLite2 places, with their location."""
    import maxminddb
    rnd = random.Random(seed)
    out = []
    with maxminddb.open_database(GEOLITE) as db:
        while len(out) < n:
            ip = '%d.%d.%d.%d' % (rnd.randint(1, 223), rnd.randrange(256), rnd.randrange(256),
                                  rnd.randint(1, 254))
            rec = db.get(ip)
            loc = (rec or {}).get('location') or {}
            if 'latitude' in loc and 'longitude' in loc:
                out.append((ip, loc['latitude'], loc['longitude']))
    return out


@ibptest.not_under_tsan('the full GeoLite2 is a minute of build under TSan; the test above '
                        'draws /map.svg in the sidecar there')
def test_a_browser_shows_the_members_where_they_serve():
    from PIL import Image
    with Sidecar(mmdb=GEOLITE) as sc:
        code, _, body = fetch_map(sc, '/map.svg?host=' + HOST)
        eq(code, 200, '/map.svg on GeoLite2')
        check(len(body) <= 2 << 20, 'the map is %d bytes' % len(body))
        root = ET.fromstring(body)
        width, height = int(root.get('width')), int(root.get('height'))
        png = os.path.join(sc.dir, 'map.png')
        screenshot('http://127.0.0.1:%d/map.svg?host=%s' % (sc.api_port, HOST), width, height, png)
        img = Image.open(png).convert('RGB')
        by_colour = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)): m
                     for m, (c, _, _) in legend(body).items()}
        agree, regions = 0, {'western Europe': [], 'South America': []}
        samples = located_samples(600)
        for ip, lat, lon in samples:
            code, _, r = sc.api('/route?name=%s&ip=%s' % (HOST, ip))
            answers = json.loads(r)['answers']
            want = answers[0]['member'] if answers else None
            x = int((lon + 180) // 1) * PX + PX // 2
            y = int((90 - lat) // 1) * PX + PX // 2
            got = by_colour.get(img.getpixel((min(x, width - 1), min(y, height - 1))))
            agree += got == want
            if 36 <= lat <= 58 and -10 <= lon <= 15:
                regions['western Europe'].append((want, got))
            if -40 <= lat <= 5 and -75 <= lon <= -35:
                regions['South America'].append((want, got))
        print('  %d of %d sampled addresses drawn in the colour of the member they are routed to'
              % (agree, len(samples)))
        check(agree >= 0.85 * len(samples), '%d of %d pixels agree with /route'
              % (agree, len(samples)))
        for region, pairs in regions.items():
            check(len(pairs) >= 5, '%s: %d samples' % (region, len(pairs)))
            wanted = max(set(w for w, _ in pairs), key=[w for w, _ in pairs].count)
            drawn = [g for _, g in pairs].count(wanted)
            print('  %s: %s serves %d of %d samples, drawn there at %d'
                  % (region, wanted, [w for w, _ in pairs].count(wanted), len(pairs), drawn))
            check(drawn >= 0.8 * [w for w, _ in pairs].count(wanted),
                  '%s: %s drawn at %d of its samples' % (region, wanted, drawn))
        # Maps of four other hosts asked at once: each is told to retry at
        # once (one is being drawn), /status never waits for a map, and each
        # is served in the end.
        hosts = [h for h in sorted(sc.status()['hosts']) if h != HOST][:4]
        results = {}
        threads = [threading.Thread(target=lambda h=h: results.__setitem__(
            h, sc.api('/map.svg?host=' + h))) for h in hosts]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        code, _, _ = sc.api('/status')
        took = time.monotonic() - t0
        for th in threads:
            th.join()
        check(code == 200 and took < 0.5, '/status while maps are drawn: %d in %.2f s'
              % (code, took))
        for h, (c, _, b) in results.items():
            check(c == 503 and 'being drawn' in json.loads(b)['error'], '%s: %d %r' % (h, c, b))
        for h in hosts:
            eq(fetch_map(sc, '/map.svg?host=' + h)[0], 200, 'the map of ' + h)


if __name__ == '__main__':
    ibptest.main(globals())
