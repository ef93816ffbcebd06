#!/usr/bin/python3
"""dnsperf -B inputs for bench/run, adapted from shared/bench/gdnsd-peer/gen_queries.py.

The ECS prefixes are the peer's: same seed (20240601), same draws in the same
order (80 % IPv4 /24, 20 % IPv6 /48), so the first 10,000 equal the peer's
queries-ecs.txt (bench/run checks that). More than 10,000 continue the same
sequence. The query names come from a second seeded generator, so they do not
disturb the prefixes:

  47.5 %  a host inside the static zone dotters.network (SOA walk of 2, 2 ANY)
  47.5 %  a host that is its own apex under ibp.network  (SOA walk of 1, 1 ANY)
   5 %    a name that does not exist in dotters.network (NXDOMAIN: 3 ANY)

usage: gen_queries.py OUTDIR [N]   (default N = 10000)
writes OUTDIR/ibp-ecs.bin      N A queries for our names, one ECS prefix each
       OUTDIR/gdnsd-ecs.bin    N A queries for www.example.net, the same prefixes
       OUTDIR/prefixes.txt     the prefixes, one per line ("addr/len")
       OUTDIR/names.txt        the qname of each ibp query, one per line
"""
import ipaddress
import os
import random
import struct
import sys

IN_ZONE = ['polkadot.dotters.network', 'kusama.dotters.network', 'rpc.dotters.network',
           'asset-hub-polkadot.dotters.network']
OWN_APEX = ['polkadot.ibp.network', 'kusama.ibp.network', 'rpc.ibp.network',
            'paseo.ibp.network']
ZONES = ['dotters.network'] + OWN_APEX
HOSTS = IN_ZONE + OWN_APEX

V6_TOP = [0x2001] + list(range(0x2400, 0x2410)) + list(range(0x2600, 0x2610)) \
         + list(range(0x2800, 0x2810)) + list(range(0x2a00, 0x2a10)) + list(range(0x2c00, 0x2c10))


def prefixes(n):
    """The peer generator's draws, verbatim (its file writes nothing else
    that consumes the generator)."""
    rng = random.Random(20240601)

    def rand_v4_24():
        while True:
            a = rng.randrange(1, 224)
            if a in (10, 100, 127, 169, 172, 192, 198, 203):
                continue
            return ipaddress.IPv4Address((a << 24) | (rng.randrange(0, 256) << 16)
                                         | (rng.randrange(0, 256) << 8))

    def rand_v6_48():
        top = rng.choice(V6_TOP)
        return ipaddress.IPv6Address((top << 112) | (rng.randrange(0, 1 << 32) << 80))

    out = []
    for _ in range(n):
        if rng.random() < 0.8:
            out.append((rand_v4_24(), 24))
        else:
            out.append((rand_v6_48(), 48))
    return out


def qnames(n):
    rng = random.Random(5300)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.475:
            out.append(rng.choice(IN_ZONE))
        elif r < 0.95:
            out.append(rng.choice(OWN_APEX))
        else:
            out.append('nx%d.dotters.network' % rng.randrange(1000000))
    return out


def qname_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ecs_option(addr, srcmask):
    fam = 1 if addr.version == 4 else 2
    nbytes = (srcmask + 7) // 8
    data = struct.pack("!HBB", fam, srcmask, 0) + addr.packed[:nbytes]
    return struct.pack("!HH", 8, len(data)) + data


def query(qid, name, ecs):
    hdr = struct.pack("!HHHHHH", qid, 0x0000, 1, 0, 0, 1)   # RD=0, 1 question, 1 additional
    q = qname_wire(name) + struct.pack("!HH", 1, 1)
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(ecs)) + ecs
    return hdr + q + opt


def main():
    outdir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    pf = prefixes(n)
    names = qnames(n)
    with open(os.path.join(outdir, 'ibp-ecs.bin'), 'wb') as ours, \
            open(os.path.join(outdir, 'gdnsd-ecs.bin'), 'wb') as peer, \
            open(os.path.join(outdir, 'prefixes.txt'), 'w') as t, \
            open(os.path.join(outdir, 'names.txt'), 'w') as nt:
        for i, ((a, m), name) in enumerate(zip(pf, names)):
            ecs = ecs_option(a, m)
            for f, qn in ((ours, name), (peer, 'www.example.net')):
                msg = query(i & 0xFFFF, qn, ecs)
                f.write(struct.pack("!H", len(msg)) + msg)
            t.write('%s/%d\n' % (a, m))
            nt.write(name + '\n')


if __name__ == '__main__':
    main()
