#!/usr/bin/python3
"""Prints the hits counted in the usage counter files of a directory (the
layout of docs/USAGE.md): for bench/run's counting-on variant."""
import glob
import os
import struct
import sys

total = 0
for path in glob.glob(os.path.join(sys.argv[1], '*.ibpc')):
    data = open(path, 'rb').read()
    if data[:8] != b'IBPDNSUC':
        sys.exit('%s: not a counter file' % path)
    n_slots = struct.unpack_from('<I', data, 24)[0]
    for i in range(n_slots):
        tag, count = struct.unpack_from('<I20xQ', data, 128 + 48 * i)
        if tag:
            total += count
print(total)
