#!/usr/bin/python3
"""NATS override latency: geodns.override.update published -> the answer of
a real pdns_server changed, through a real nats-server and ibpdns-sidecar on
the real IBP configs and a City database (default: the full GeoLite2-City of
scripts/deps). Two cases, ROUNDS each, medians printed with their ratio:
  split  a country the geo classes already split (set again after a remove:
         a republish only)
  new    a country never overridden before (the geo classes are split by it
         from the usage client classes; before bb6ba24 the MaxMind walk ran again)
usage: bench/override_latency.py [ROUNDS] [CITY.mmdb]   (after ninja -C build)
Only 127.0.0.1; every server is stopped by its PID."""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import natsfix  # noqa: E402
import pdnsfix  # noqa: E402
from sidecarfix import Sidecar  # noqa: E402

HOST = 'polkadot.dotters.network'
# A client of each country: the first rounds' countries are new to the geo classes.
CLIENTS = {'GB': '81.2.69.1/32', 'SE': '89.160.20.1/32', 'US': '216.160.83.1/32',
           'CN': '175.16.199.1/32', 'BR': '200.160.2.3/32', 'JP': '133.242.0.1/32',
           'NL': '185.15.58.1/32'}


def msg(action, cc):
    m = {'action': action, 'domain': HOST, 'countryCode': cc}
    if action == 'set':
        m['override'] = {'memberName': '', 'ipv4': '203.0.113.77', 'ipv6': ''}
    return json.dumps(m).encode()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    mmdb = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'var', 'geoip', 'GeoLite2-City.mmdb')
    times = {'split': [], 'new': []}
    with natsfix.NatsServer().start() as srv:
        sc = Sidecar(extra={'Nats': {'NodeID': 'BENCH-01', 'Url': srv.url, 'User': srv.user,
                                     'Pass': srv.password}}, mmdb=mmdb, start=False)
        sc.start(ready_timeout=180)
        with sc, pdnsfix.Pdns(sc.table) as pdns:
            pdnsfix.wait_until(lambda: sc.status()['cluster']['connected'], 10)
            cli = natsfix.NatsClient()
            cli.connect(srv.url, srv.user, srv.password)

            def measure(m, client, want):
                t0 = time.monotonic()
                cli.pub('geodns.override.update', m)
                ok = pdnsfix.wait_until(lambda: pdnsfix.a_records(
                    pdns.query(HOST, 'A', ecs=client), 'A') == want, 30, 0.005)
                if not ok:
                    sys.exit('no change within 30 s')
                took = time.monotonic() - t0
                time.sleep(0.5)   # every coprocess has the table (each checks on its own)
                return took

            for cc, client in list(CLIENTS.items())[:rounds]:
                before = pdnsfix.a_records(pdns.query(HOST, 'A', ecs=client), 'A')
                times['new'].append(measure(msg('set', cc), client, ['203.0.113.77']))
                measure(msg('remove', cc), client, before)
                times['split'].append(measure(msg('set', cc), client, ['203.0.113.77']))
                measure(msg('clear', cc), client, before)
            cli.close()
    split, new = statistics.median(times['split']), statistics.median(times['new'])
    print('override -> PowerDNS answer, median of %d: split %.0f ms, new %.0f ms, '
          'new/split %.1f' % (rounds, split * 1000, new * 1000, new / split))
    print(json.dumps({k: [round(t * 1000) for t in v] for k, v in times.items()}))


if __name__ == '__main__':
    main()
