#!/usr/bin/env python3
"""Git tree bytes one change rewrites under .sesto/nodes, for shard layouts.

The design input for issue 14's layout (format version 2): which fan-out
keeps every tree one change rewrites under 8 KiB at 1,000,000 nodes, and the
sum of them small enough for an insert to add at most 8 KiB of git objects.
Builds the exact git tree objects ("<mode> <name>\\0<20-byte id>" entries,
sorted, random object ids) for N random node ids under each layout, then for
20 changes of 2 random nodes (a new secret and the folder part that lists
it) sums the trees each change rewrites: raw bytes and zlib-compressed bytes
(git's loose objects, level 6 like git's default), and reports the largest
single tree and the number of directories a work tree then has.
Usage: python3 bench/shards.py [N ...] > bench/results-shards.md
"""
import os, random, sys, zlib
from collections import defaultdict

LAYOUTS = {"2 (v1)": (2,), "2+2": (2, 2), "1+1+1+1": (1, 1, 1, 1), "2+1+1": (2, 1, 1), "1+1+2": (1, 1, 2)}

def tree_bytes(entries):
    # entries: list of (name, is_dir)
    out = bytearray()
    for name, is_dir in sorted(entries, key=lambda e: e[0] + ("/" if e[1] else "")):
        out += (b"40000 " if is_dir else b"100644 ") + name.encode() + b"\0" + os.urandom(20)
    hdr = b"tree %d\0" % len(out)
    return len(out), len(zlib.compress(hdr + bytes(out), 6))

def run(n, k, layout, rng):
    ids = ["%032x" % rng.getrandbits(128) for _ in range(n)]
    children = defaultdict(set)  # dir path -> entries
    for i in ids:
        pos, d = 0, "nodes"
        for w in layout:
            sub = i[pos:pos + w]; pos += w
            children[d].add((sub, True)); d = d + "/" + sub
        children[d].add((i + ".age", False))
    dirs = len(children)
    worst_total_raw = worst_total_z = largest = 0
    for trial in range(20):
        touched = set()
        for _ in range(k):
            i = ids[rng.randrange(n)]
            pos, d = 0, "nodes"; touched.add(d)
            for w in layout:
                d = d + "/" + i[pos:pos + w]; pos += w; touched.add(d)
        raw = z = 0
        for d in touched:
            r, c = tree_bytes(list(children[d])); raw += r; z += c; largest = max(largest, r)
        worst_total_raw = max(worst_total_raw, raw); worst_total_z = max(worst_total_z, z)
    return dirs, worst_total_raw, worst_total_z, largest

def main():
    rng = random.Random(1)
    ns = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    print("# Shard layouts: git tree bytes one change rewrites\n")
    print("`python3 bench/shards.py " + " ".join(sys.argv[1:]) + "` (exact tree objects, random ids and object ids; layout `2` is today's `nodes/3f/…`, `1+1+1+1` is `nodes/3/f/2/a/…`)\n")
    print("| nodes | layout | directories | trees one change of 2 nodes rewrites: raw, zlib (worst of 20) | largest tree |")
    print("|---|---|---|---|---|")
    for n in ns:
        for name, layout in LAYOUTS.items():
            dirs, raw, z, largest = run(n, 2, layout, rng)
            print(f"| {n:,} | {name} | {dirs:,} | {raw:,} B, {z:,} B | {largest:,} B |")

if __name__ == "__main__":
    main()
