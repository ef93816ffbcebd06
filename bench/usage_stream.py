#!/usr/bin/python3
"""A synthetic PowerDNS request stream for measuring usage counting with
callgrind (BENCHMARKS.md, issue 13): N queries of the hosts of
gen_queries.py, each an SOA line and the same ANY line twice (PowerDNS's
referral check and answer), a third with IPv6 prefixes. Seeded.
usage: bench/usage_stream.py OUT [N]"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_queries as g  # noqa: E402

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100000
r = random.Random(3)
with open(out, 'w') as f:
    f.write('HELO\t3\n')
    for i in range(n):
        host = r.choice(g.HOSTS)
        if i % 3 == 0:
            ecs = '2%03x:%x:%x::/48' % (r.randrange(0x400, 0xc10), r.randrange(65536),
                                        r.randrange(65536))
        else:
            ecs = '%d.%d.%d.0/24' % (r.randrange(1, 224), r.randrange(256), r.randrange(256))
        f.write('Q\t%s\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0\n' % host)
        line = 'Q\t%s\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t%s\n' % (host, ecs)
        f.write(line + line)
