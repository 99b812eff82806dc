#!/usr/bin/env python3
"""Chunked folders for format version 2: what one insert writes, and what a
full listing must open, for each chunk size limit.

The design input for issue 14's folder chunks, as bench/shards.py was for the
layout. A folder's entries go to chunks by a keyed hash of the name
(extendible hashing: a chunk over the limit splits in two by the next bit of
the hash). This builds a folder of N entries, one insert at a time, under
each limit, then for 400 further inserts (each from the same final state)
sums the bytes of the files one insert writes:

- the chunk that gains the entry (or, when it splits, the chunk kept as a
  tombstone, its two children and the folder header listing the chunks),
- the new secret itself,
- the git trees those files' paths rewrite, from bench/shards.py's exact
  tree model under the 1+1+1+1 layout at STORE nodes,
- a commit (about 170 bytes zlib'd).

A node file's size is modelled from sesto's format as measured on a real
store (bench-make-store): an entry of a folder body is 155 bytes, a body's
fixed lines about 150, the signature document 335, plaintext padded by
Padmé (512 bytes at least), then age's X25519 header (about 200 bytes) and
32 bytes of nonce and tag. age's output does not compress, so a blob costs
its size (zlib adds a few bytes).

It also counts the chunk files a listing of a STORE-node store (90 folders
of 1,000 and one of 10,000, as bench/growth.sh builds) must open: each is
one X25519 unwrap and one Ed25519 check more.

Usage: python3 bench/chunks.py [N [STORE]] > bench/results-chunks.md
"""
import importlib.util, math, os, random, sys
from collections import Counter

ENTRY, FIXED, SIG, AGE_HEADER, AGE_TAIL = 155, 150, 335, 200, 32
LIMITS = [8, 16, 24, 32, 48, 64, 128, 256]


def padme(n):
    n = max(n, 512)
    e = math.floor(math.log2(n))
    s = math.floor(math.log2(e)) + 1
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def age_file(plain):
    return AGE_HEADER + AGE_TAIL + padme(plain)


def chunk_file(entries):
    return age_file(FIXED + ENTRY * entries + SIG)


def header_file(chunks):
    # The header names its live chunks as the split trie's shape: one bit a
    # trie node (2 × chunks - 1 of them), base64 on one line, plus the seed.
    trie = math.ceil((2 * chunks - 1) / 8)
    return age_file(FIXED + 60 + math.ceil(trie / 3) * 4 + SIG)


def build(n, limit, rng):
    """Extendible hashing over 64-bit keyed hashes: prefix -> entry hashes."""
    chunks = {"": []}
    for _ in range(n):
        insert(chunks, rng.getrandbits(64), limit)
    return chunks


def owner(chunks, h):
    bits = format(h, "064b")
    for d in range(65):
        if bits[:d] in chunks:
            return bits[:d]
    raise AssertionError("no chunk")


def insert(chunks, h, limit):
    """Adds h; returns the number of chunks split (0 or more)."""
    splits = 0
    p = owner(chunks, h)
    chunks[p].append(h)
    while len(chunks[p]) > limit:
        entries = chunks.pop(p)
        d = len(p)
        for bit in "01":
            chunks[p + bit] = [e for e in entries if format(e, "064b")[d] == bit]
        splits += 1
        p = owner(chunks, h)
    return splits


def load_shards():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("shards", os.path.join(here, "shards.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tree_cost(shards, store, k, rng, cache):
    """Worst zlib'd bytes of the trees k changed nodes rewrite (1+1+1+1)."""
    if k not in cache:
        cache[k] = shards.run(store, k, (1, 1, 1, 1), rng)[2]
    return cache[k]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    store = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    shards = load_shards()
    rng = random.Random(1)
    trees = {}
    secret = age_file(FIXED + 120 + SIG)  # a short value, its fixed lines
    print("# Chunked folders: what one insert writes, what a listing opens\n")
    print(f"`python3 bench/chunks.py {n} {store}`: a model, not a measurement (see the script's docstring); "
          f"a folder of {n:,} entries, 400 inserts from its final state, git trees at {store:,} nodes "
          f"under the 1+1+1+1 layout (worst of 20 from bench/shards.py). v1 (no chunks): one insert "
          f"rewrites the whole folder, {age_file(FIXED + ENTRY * (n + 1) + SIG):,} B.\n")
    print("| limit | chunks | entries a chunk (mean) | typical insert | insert that splits (share) | mean insert | chunk files a listing of the growth store opens |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for limit in LIMITS:
        chunks = build(n, limit, rng)
        live = len(chunks)
        sizes = Counter()
        split_count = 0
        total = 0
        typical = []
        for _ in range(400):
            trial = {p: list(v) for p, v in chunks.items()}
            h = rng.getrandbits(64)
            p = owner(trial, h)
            s = insert(trial, h, limit)
            if s == 0:
                b = chunk_file(len(trial[p])) + secret + tree_cost(shards, store, 2, rng, trees) + 170
                typical.append(b)
            else:
                split_count += 1
                written = [chunk_file(0) * s]  # the tombstones
                written += [chunk_file(len(v)) for q, v in trial.items() if q.startswith(p) and q != p]
                b = sum(written) + header_file(len(trial)) + secret + tree_cost(shards, store, 3 + 2 * s, rng, trees) + 170
            sizes[s > 0] += b
            total += b
        # the growth store: 90 folders of 1,000 and one of n
        small = build(1000, limit, rng) if limit < 1000 else {"": [0] * 1000}
        listing = 90 * (len(small) if limit < 1000 else 0) + (live if limit < n else 0)
        split_mean = sizes[True] / split_count if split_count else 0
        typ = sum(typical) / len(typical) if typical else 0
        split_cell = f"{split_mean:,.0f} B ({split_count / 400:.0%})" if split_count else "none in 400"
        print(f"| {limit} | {live:,} | {n / live:.1f} | {typ:,.0f} B | {split_cell} "
              f"| {total / 400:,.0f} B | {listing:,} |")
    print("\nEach chunk a listing opens is one X25519 unwrap, one Ed25519 check and a parse, as any small "
          "node; bench/README.md (\"Chunked folders\") has what that costs.")


if __name__ == "__main__":
    main()
