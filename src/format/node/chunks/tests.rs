use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn seed() -> Seed {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    Seed::from_bytes(bytes)
}

fn prefix(bits: &str) -> Prefix {
    bits.chars()
        .fold(Prefix::ROOT, |p, c| p.child(c == '1').unwrap())
}

/// A trie grown as a folder grows: random names added, a chunk split
/// whenever it would hold more than the limit.
fn grown(rng: &mut StdRng, names: usize) -> Trie {
    let mut trie = Trie::new();
    let mut held: std::collections::HashMap<Prefix, Vec<u64>> = Default::default();
    for _ in 0..names {
        let h: u64 = rng.gen();
        let mut p = trie.owner(h);
        held.entry(p).or_default().push(h);
        while held[&p].len() > CHUNK_LIMIT {
            let entries = held.remove(&p).unwrap();
            trie.split(p).unwrap();
            for e in entries {
                held.entry(trie.owner(e)).or_default().push(e);
            }
            p = trie.owner(h);
        }
    }
    trie
}

#[test]
fn derivations_match_an_independent_hmac_sha256() {
    // From Python's hmac module with the seed 00 01 … 1f (the design in
    // docs/format.md, computed outside this code).
    let s = seed();
    assert_eq!(s.name_bits("db-password"), 0x99a0_ef52_c0bf_bec0);
    assert_eq!(
        s.chunk_id(prefix("0110")).to_string(),
        "9e2e883dfd4a09c55fdd00db4e55ce13"
    );
    assert_eq!(
        s.chunk_id(Prefix::ROOT).to_string(),
        "2eb64aac927d272ebca64e91d9f839e5"
    );
    let other = Seed::from_bytes([7; 32]);
    assert_ne!(other.name_bits("db-password"), s.name_bits("db-password"));
    assert_ne!(other.chunk_id(Prefix::ROOT), s.chunk_id(Prefix::ROOT));
}

#[test]
fn every_hash_has_exactly_one_live_chunk() {
    let mut rng = StdRng::seed_from_u64(14);
    for names in [0, 1, 17, 200, 3000] {
        let trie = grown(&mut rng, names);
        let leaves = trie.leaves();
        assert!(leaves.iter().all(|&p| trie.is_live(p)));
        for _ in 0..500 {
            let h: u64 = rng.gen();
            let owner = trie.owner(h);
            assert!(owner.holds(h) && trie.is_live(owner));
            assert_eq!(
                leaves.iter().filter(|p| p.holds(h)).count(),
                1,
                "{names} names"
            );
        }
    }
}

#[test]
fn tries_round_trip_and_merge_as_the_union_of_their_splits() {
    let mut rng = StdRng::seed_from_u64(15);
    for _ in 0..20 {
        let names = rng.gen_range(0..400);
        let base = grown(&mut rng, names);
        let mut ours = base.clone();
        let mut theirs = base.clone();
        for side in [&mut ours, &mut theirs] {
            for _ in 0..rng.gen_range(0..5) {
                let leaves = side.leaves();
                let p = leaves[rng.gen_range(0..leaves.len())];
                side.split(p).unwrap();
            }
        }
        for t in [&base, &ours, &theirs] {
            assert_eq!(Trie::decode(&t.encode()).unwrap(), *t);
        }
        let merged = ours.union(&theirs);
        assert_eq!(merged, theirs.union(&ours));
        assert_eq!(merged.union(&merged), merged);
        assert_eq!(merged.union(&base), merged);
        // Still a trie (every split's parent split): it encodes and reads back.
        assert_eq!(Trie::decode(&merged.encode()).unwrap(), merged);
        for p in ours.leaves().into_iter().chain(theirs.leaves()) {
            // Each side's chunk is live in the merge or was split by the other.
            assert!(merged.is_live(p) || merged.is_split(p));
        }
    }
}

#[test]
fn a_folder_that_never_split_is_one_chunk_and_one_bit() {
    let trie = Trie::new();
    assert_eq!(trie.leaves(), vec![Prefix::ROOT]);
    assert_eq!(trie.encode(), "AA==");
    let mut one = Trie::new();
    one.split(Prefix::ROOT).unwrap();
    one.split(prefix("1")).unwrap();
    // 1 0 1 0 0: the root split, "0" a leaf, "1" split into two leaves.
    assert_eq!(one.encode(), "oA==");
    assert_eq!(one.leaves(), vec![prefix("0"), prefix("10"), prefix("11")]);
    assert_eq!(prefix("10").to_string(), "10");
}

#[test]
fn only_a_live_chunk_splits_and_not_past_the_depth_bound() {
    let mut trie = Trie::new();
    assert!(trie.split(prefix("0")).is_err(), "not a chunk yet");
    trie.split(Prefix::ROOT).unwrap();
    assert!(trie.split(Prefix::ROOT).is_err(), "already split");
    let mut p = Prefix::ROOT;
    let mut chain = Trie::new();
    for _ in 0..MAX_DEPTH - 1 {
        chain.split(p).unwrap();
        p = p.child(true).unwrap();
    }
    assert_eq!(p.len(), MAX_DEPTH - 1);
    assert!(chain.split(p).is_err());
    assert_eq!(Trie::decode(&chain.encode()).unwrap(), chain);
    assert_eq!(chain.owner(u64::MAX), p);
}

#[test]
fn hostile_tries_are_refused() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // A chain one split deeper than the bound: (1 then 0-leaf) × 63, then 0 0.
    let mut bits = Vec::new();
    for _ in 0..MAX_DEPTH {
        bits.extend([true, false]);
    }
    bits.push(false);
    let mut deep = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            deep[i / 8] |= 0x80 >> (i % 8);
        }
    }
    for (text, why) in [
        ("", "cut short"),
        ("/w==", "cut short"), // eight splits, and no bits for their children
        ("!!!!", "not canonical base64"),
        ("AB==", "not canonical base64"), // padding bits set
        ("AA", "not canonical base64"),   // unpadded
        ("AAA=", "bits after"),           // a leaf, then a whole byte more
        ("QA==", "bits after"),           // 0 1: a leaf, then a set bit
        (" AA==", "not canonical base64"),
        (b64(&deep).as_str(), "deeper"),
    ] {
        let err = Trie::decode(text).unwrap_err().to_string();
        assert!(err.contains(why), "{text:?}: {err}");
    }
    // 1 0 0: the root split into two leaves, the rest of the byte zero.
    assert_eq!(Trie::decode("gA==").unwrap().leaves().len(), 2);
    let huge = "A".repeat(2 * MAX_CHUNKS);
    assert!(Trie::decode(&huge)
        .unwrap_err()
        .to_string()
        .contains("too many"));
}
