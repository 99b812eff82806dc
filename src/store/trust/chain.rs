//! The signed chain of rosters through git history: each roster's
//! `previous` hash names the one before, and each must be signed by an
//! admin of the one before it. Followed back from the work tree's roster to
//! one the user trusts, and checked whole by `sesto verify --history`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Result;
use crate::format::crypto;
use crate::format::node::{self, Roster};

use super::*;

/// The rosters of a clone's git history, read once when first needed.
pub(crate) struct History {
    work: PathBuf,
    map: OnceLock<std::result::Result<HashMap<String, Found>, String>>,
}

impl History {
    pub(crate) fn new(work: &Path) -> History {
        History {
            work: work.to_path_buf(),
            map: OnceLock::new(),
        }
    }

    fn get(&self) -> std::result::Result<&HashMap<String, Found>, String> {
        self.map
            .get_or_init(|| history_rosters(&self.work).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Follows the `previous` (and, for merges, `merges`) hashes from `roster`
/// back through the rosters in git history until `found(hash, signer
/// fingerprint)` holds for one, checking on the way that each roster is
/// signed by an admin of the one before it.
pub(super) fn chain_back(
    history: &History,
    roster: &Roster,
    bytes: &[u8],
    sig: &[u8],
    found: impl Fn(&str, &str) -> bool,
) -> std::result::Result<(), String> {
    let mut stack = vec![(roster.clone(), bytes.to_vec(), sig.to_vec())];
    let mut seen = HashSet::new();
    let mut why = String::from("no roster to start from");
    while let Some((r, b, s)) = stack.pop() {
        let hash = node::sha256_hex(&b);
        if !seen.insert(hash.clone()) || seen.len() > MAX_CHAIN {
            continue;
        }
        let signer = signer_of(&b, &s)?;
        if found(&hash, &crypto::fingerprint(&signer)) {
            return Ok(());
        }
        let parents: Vec<&String> = r.previous.iter().chain(r.merges.iter()).collect();
        if parents.is_empty() {
            // A first roster (or a rival history's): nothing further back.
            why = format!("version {} names no earlier roster", r.version);
            continue;
        }
        let rosters = history.get()?;
        for prev_hash in parents {
            let Some((pb, ps)) = rosters.get(prev_hash) else {
                why = format!(
                    "the roster before version {} is not in this clone's git history",
                    r.version
                );
                continue;
            };
            let prev = Roster::decode(pb).map_err(|e| format!("an older roster: {e}"))?;
            match link(&prev, &r, &signer) {
                Ok(()) => stack.push((prev, pb.clone(), ps.clone())),
                Err(e) => why = e,
            }
        }
    }
    Err(why)
}

/// Checks that a chain of admin signatures leads from `roster` back to the
/// roster whose bytes hash to `target`.
pub(crate) fn chain_from(
    work: &Path,
    roster: &Roster,
    bytes: &[u8],
    sig: &[u8],
    target: &str,
) -> std::result::Result<(), String> {
    chain_back(&History::new(work), roster, bytes, sig, |hash, _| {
        hash == target
    })
}

/// Decides whether a roster read from a commit (one side of a merge, rebase
/// or cherry-pick) is one the user trusts: a roster they accepted, one that
/// a chain of admin signatures leads to from one they accepted, or an older
/// one from which such a chain leads to one they accepted. With
/// `SESTO_TRUST`, one from which a chain leads back to a roster signed by a
/// pinned key. Nothing else vouches for a commit's content.
pub(crate) struct Judge {
    pub(super) history: History,
    /// Accepted roster hashes, newest last.
    pub(super) accepted: Vec<String>,
    /// Fingerprints from `SESTO_TRUST`.
    pub(super) pinned: Option<HashSet<String>>,
}

/// How many of the newest accepted rosters an older roster may lead to.
const NEWEST_CHECKED: usize = 16;

impl Judge {
    /// The judge for the store `store_id` in the clone at `work`.
    pub(crate) fn new(work: &Path, store_id: &str) -> Result<Judge> {
        let pinned = std::env::var_os("SESTO_TRUST").map(|list| {
            list.to_string_lossy()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        let accepted = match pin_file(store_id) {
            Some(path) if pinned.is_none() => read_pin(&path)?
                .filter(|p| p.store == store_id)
                .map(|p| p.accepted)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(Judge {
            history: History::new(work),
            accepted,
            pinned,
        })
    }

    /// Whether the roster `bytes` (signed by `sig`) is trusted; the reason
    /// when it is not.
    pub(crate) fn trusts(&self, bytes: &[u8], sig: &[u8]) -> std::result::Result<Roster, String> {
        let roster = Roster::decode(bytes).map_err(|e| format!("its roster: {e}"))?;
        let signer = signer_of(bytes, sig)?;
        if !is_admin_key(&roster, &signer) {
            return Err(format!(
                "signed by {}, who is not one of its admins",
                crypto::fingerprint(&signer)
            ));
        }
        let hash = node::sha256_hex(bytes);
        let newer = match &self.pinned {
            Some(keys) => chain_back(&self.history, &roster, bytes, sig, |_, fp| {
                keys.contains(fp)
            }),
            None => chain_back(&self.history, &roster, bytes, sig, |h, _| {
                self.accepted.iter().any(|a| a == h)
            }),
        };
        let Err(why) = newer else {
            return Ok(roster);
        };
        // An older roster: one the user accepted since leads back to it.
        let rosters = self.history.get()?;
        for accepted in self.accepted.iter().rev().take(NEWEST_CHECKED) {
            let Some((ab, asig)) = rosters.get(accepted) else {
                continue;
            };
            let Ok(newer) = Roster::decode(ab) else {
                continue;
            };
            if newer.version > roster.version
                && chain_back(&self.history, &newer, ab, asig, |h, _| h == hash).is_ok()
            {
                return Ok(roster);
            }
        }
        Err(format!(
            "no chain of admin signatures leads to it from a roster you trusted ({why})"
        ))
    }
}

/// The normalized public key that signed roster `bytes`.
fn signer_of(bytes: &[u8], sig: &[u8]) -> std::result::Result<String, String> {
    let text = std::str::from_utf8(sig).map_err(|_| "a roster.sig is not text".to_string())?;
    crypto::verify(text, crypto::ROSTER_NAMESPACE, bytes).map_err(|e| format!("roster.sig: {e}"))
}

/// Checks that `newer`, signed by `signer`, follows `older`: same store, a
/// higher version, no lower store format, and a signer who is an admin of
/// `older`.
pub(crate) fn link(
    older: &Roster,
    newer: &Roster,
    signer: &str,
) -> std::result::Result<(), String> {
    if older.store != newer.store {
        return Err(format!(
            "version {} belongs to another store",
            older.version
        ));
    }
    if newer.version <= older.version {
        return Err(format!(
            "version {} follows version {}",
            newer.version, older.version
        ));
    }
    // `sesto migrate` only ever raises the format: a roster that lowers it
    // would make readers look for node files where the old layout kept them.
    if newer.sesto < older.sesto {
        return Err(format!(
            "version {} goes back to store format {} from format {} of version {}",
            newer.version, newer.sesto, older.sesto, older.version
        ));
    }
    if is_admin_key(older, signer) {
        Ok(())
    } else {
        Err(format!(
            "version {} is signed by {}, who is not an admin of version {}",
            newer.version,
            crypto::fingerprint(signer),
            older.version
        ))
    }
}

/// Whether `signer` (a normalized public key) is the signing key of one of
/// `roster`'s admins.
fn is_admin_key(roster: &Roster, signer: &str) -> bool {
    roster.members.values().any(|m| {
        m.admin
            && m.signer_key()
                .and_then(|k| crypto::normalize_public(k).ok())
                .as_deref()
                == Some(signer)
    })
}

/// One roster as found in git: its bytes and its signature.
pub(crate) type Found = (Vec<u8>, Vec<u8>);

/// Every roster in the clone's history (all refs and the index), by the
/// SHA-256 of its bytes.
pub(crate) fn history_rosters(work: &Path) -> Result<HashMap<String, Found>> {
    let repo = crate::git::open(work)?;
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    let mut add = |yaml: git2::Oid, sig: Option<git2::Oid>, out: &mut HashMap<String, Found>| {
        if !seen.insert(yaml) {
            return;
        }
        let Ok(blob) = repo.find_blob(yaml) else {
            return;
        };
        let sig = sig
            .and_then(|s| repo.find_blob(s).ok())
            .map(|b| b.content().to_vec())
            .unwrap_or_default();
        out.insert(
            node::sha256_hex(blob.content()),
            (blob.content().to_vec(), sig),
        );
    };
    // The roster logs of the work tree, the index and every commit: links
    // that git history may lack.
    let mut logs: Vec<git2::Oid> = Vec::new();
    let add_log = |bytes: &[u8], out: &mut HashMap<String, Found>| {
        for (yaml, sig) in crate::format::roster_log::parse(bytes) {
            out.insert(node::sha256_hex(&yaml), (yaml, sig));
        }
    };
    let work_log = work.join(".sesto").join(crate::format::roster_log::FILE);
    if let Ok(bytes) =
        crate::store::files::read_limited(&work_log, crate::format::roster_log::MAX_LOG)
    {
        add_log(&bytes, &mut out);
    }
    if let Ok(index) = repo.index() {
        if let Some(e) = index.get_path(Path::new(LOG_PATH), 0) {
            logs.push(e.id);
        }
        let yaml = index.get_path(Path::new(".sesto/roster.yaml"), 0);
        let sig = index.get_path(Path::new(".sesto/roster.sig"), 0);
        if let Some(y) = yaml {
            add(y.id, sig.map(|s| s.id), &mut out);
        }
    }
    let mut walk = repo.revwalk()?;
    let _ = walk.push_head();
    let _ = walk.push_glob("*");
    for oid in walk.flatten() {
        let Ok(commit) = repo.find_commit(oid) else {
            continue;
        };
        let Ok(tree) = commit.tree() else { continue };
        if let Ok(e) = tree.get_path(Path::new(LOG_PATH)) {
            if !logs.contains(&e.id()) {
                logs.push(e.id());
            }
        }
        let Ok(yaml) = tree.get_path(Path::new(".sesto/roster.yaml")) else {
            continue;
        };
        let sig = tree
            .get_path(Path::new(".sesto/roster.sig"))
            .ok()
            .map(|e| e.id());
        add(yaml.id(), sig, &mut out);
    }
    for id in logs {
        if let Ok(blob) = repo.find_blob(id) {
            if (blob.size() as u64) <= crate::format::roster_log::MAX_LOG {
                add_log(blob.content(), &mut out);
            }
        }
    }
    Ok(out)
}

/// Where the roster log sits in a commit's tree.
const LOG_PATH: &str = ".sesto/roster.log";

/// Checks the store's whole roster chain, from the roster in the work tree
/// back to version 1 through git history: each roster signed by an admin of
/// the one before. Returns how many rosters the chain holds.
pub fn verify_chain(work: &Path) -> std::result::Result<usize, String> {
    let bytes = std::fs::read(work.join(".sesto/roster.yaml")).map_err(|e| e.to_string())?;
    let sig = std::fs::read(work.join(".sesto/roster.sig")).map_err(|e| e.to_string())?;
    let history = history_rosters(work).map_err(|e| e.to_string())?;
    let mut roster = Roster::decode(&bytes).map_err(|e| format!("roster.yaml: {e}"))?;
    let mut signer = signer_of(&bytes, &sig)?;
    for count in 1..=MAX_CHAIN {
        let Some(prev_hash) = roster.previous.clone() else {
            if roster.version != 1 {
                return Err(format!(
                    "version {} names no previous roster",
                    roster.version
                ));
            }
            // Version 1 is signed by an admin it lists itself.
            return link_self(&roster, &signer).map(|()| count);
        };
        let (pb, ps) = history.get(&prev_hash).ok_or_else(|| {
            format!(
                "the roster before version {} is not in this clone's git history",
                roster.version
            )
        })?;
        let prev = Roster::decode(pb).map_err(|e| format!("an older roster: {e}"))?;
        link(&prev, &roster, &signer)?;
        signer = signer_of(pb, ps)?;
        roster = prev;
    }
    Err("the chain is too long".into())
}

fn link_self(roster: &Roster, signer: &str) -> std::result::Result<(), String> {
    if is_admin_key(roster, signer) {
        Ok(())
    } else {
        Err("version 1 is not signed by an admin it lists".into())
    }
}

/// Checks every roster in the clone's history: each one past version 1 must
/// name a previous roster that is also there and be signed by one of its
/// admins. Returns how many rosters were checked, or every problem found.
pub fn verify_history(work: &Path) -> std::result::Result<usize, Vec<String>> {
    let history = history_rosters(work).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    for (hash, (bytes, sig)) in &history {
        let check = || -> std::result::Result<(), String> {
            let roster = Roster::decode(bytes).map_err(|e| e.to_string())?;
            let signer = signer_of(bytes, sig)?;
            match &roster.previous {
                None if roster.version == 1 => link_self(&roster, &signer),
                None => Err(format!(
                    "version {} names no previous roster",
                    roster.version
                )),
                Some(prev) => {
                    let (pb, _) = history.get(prev).ok_or_else(|| {
                        format!("version {}: its previous roster is missing", roster.version)
                    })?;
                    link(
                        &Roster::decode(pb).map_err(|e| e.to_string())?,
                        &roster,
                        &signer,
                    )?;
                    // The other side of a merge may be gone (rebased away); where
                    // it is there, the merge must follow it too.
                    if let Some((mb, _)) = roster.merges.as_ref().and_then(|m| history.get(m)) {
                        link(
                            &Roster::decode(mb).map_err(|e| e.to_string())?,
                            &roster,
                            &signer,
                        )?;
                    }
                    Ok(())
                }
            }
        };
        if let Err(e) = check() {
            problems.push(format!("roster {}… in history: {e}", &hash[..12]));
        }
    }
    problems.sort();
    if problems.is_empty() {
        Ok(history.len())
    } else {
        Err(problems)
    }
}
