//! Trust pinning: which admins a user trusts for a store, and the signed chain
//! of rosters that leads from the one they trusted to the one in front of them.
//!
//! Anyone who can push can replace `roster.yaml` and sign it with a key they
//! list as an admin. A roster is therefore accepted only when it is the pinned
//! one, or when every roster between the pinned one and it (read from git
//! history by the `previous` hashes) is signed by an admin of the one before.
//! The pin lives in `$XDG_STATE_HOME/sesto/trust/<store>.yaml`; `SESTO_TRUST`
//! (comma-separated SHA256 fingerprints) pins admins for CI and fresh clones.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{Error, Result};
use crate::git::HeadState;
use crate::node::{self, Roster};

/// Most rosters followed back through history in one check.
const MAX_CHAIN: usize = 100_000;

/// Largest trust file read.
const MAX_PIN: u64 = 1 << 20;

/// What a user trusts for one store: the rosters they accepted (in any of
/// their clones), and how far each clone has come, so that a clone behind
/// another is fine and a clone going back is not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The store id.
    pub store: String,
    /// The newest accepted roster's version.
    pub version: u64,
    /// SHA-256 of the newest accepted roster's bytes.
    pub roster: String,
    /// Its admins and their key fingerprints.
    pub admins: BTreeMap<String, String>,
    /// Its members' names (empty in pins written before sesto kept them).
    #[serde(default)]
    pub members: BTreeSet<String>,
    /// SHA-256 of every roster accepted, newest last (at most [`MAX_ACCEPTED`]).
    #[serde(default)]
    pub accepted: Vec<String>,
    /// Each clone (its work tree) and the highest roster version it has used.
    #[serde(default)]
    pub clones: BTreeMap<String, u64>,
}

/// Most accepted roster hashes remembered.
const MAX_ACCEPTED: usize = 1000;

impl Pin {
    fn of(roster: &Roster, bytes: &[u8]) -> Pin {
        let hash = node::sha256_hex(bytes);
        Pin {
            store: roster.store.clone(),
            version: roster.version,
            roster: hash.clone(),
            admins: admin_fingerprints(roster),
            members: roster.members.keys().cloned().collect(),
            accepted: vec![hash],
            clones: BTreeMap::new(),
        }
    }

    /// Takes `roster` as accepted in the clone at `work`; with `advance`,
    /// as the clone's newest (not while it reads history or is in the
    /// middle of a merge or rebase).
    fn accept(&mut self, work: &Path, roster: &Roster, bytes: &[u8], advance: bool) {
        let hash = node::sha256_hex(bytes);
        self.remember(&hash);
        if roster.version >= self.version {
            self.version = roster.version;
            self.roster = hash;
            self.admins = admin_fingerprints(roster);
            self.members = roster.members.keys().cloned().collect();
        }
        if advance {
            let seen = self.clones.entry(clone_key(work)).or_default();
            *seen = (*seen).max(roster.version);
        }
    }

    fn remember(&mut self, hash: &str) {
        if !self.accepted.iter().any(|a| a == hash) {
            self.accepted.push(hash.to_string());
            let extra = self.accepted.len().saturating_sub(MAX_ACCEPTED);
            self.accepted.drain(..extra);
        }
    }

    /// Takes `roster` as exactly what the user trusts now (`sesto trust
    /// --accept`), in the clone at `work`. Returns a warning when that
    /// lowers what was trusted.
    fn accept_exactly(&mut self, work: &Path, roster: &Roster, bytes: &[u8]) -> Option<String> {
        let hash = node::sha256_hex(bytes);
        self.remember(&hash);
        let key = clone_key(work);
        let before = self
            .clones
            .get(&key)
            .copied()
            .unwrap_or(0)
            .max(self.version);
        self.version = roster.version;
        self.roster = hash;
        self.admins = admin_fingerprints(roster);
        self.members = roster.members.keys().cloned().collect();
        self.clones.insert(key, roster.version);
        (roster.version < before).then(|| {
            format!(
                "you accepted roster version {}, older than version {before} you trusted before",
                roster.version
            )
        })
    }
}

fn clone_key(work: &Path) -> String {
    std::fs::canonicalize(work)
        .unwrap_or_else(|_| work.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// How a store is opened with respect to trust.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrustMode {
    /// Check the roster against the pin (or `SESTO_TRUST`); pin on first use.
    #[default]
    Check,
    /// Accept the roster as it is and pin it (`sesto trust --accept`).
    Accept,
    /// Neither check nor pin (`sesto trust` showing the state, `verify`).
    Skip,
    /// Check as [`TrustMode::Check`] does, but record nothing: no pin on
    /// first use, no newer roster accepted into the pin, no rollback mark.
    /// For callers that cannot show notices (shell completion): what they
    /// would have said stays unsaid, so the next command that can show it
    /// still does.
    Peek,
}

/// The admins of a roster with the SHA256 fingerprints of their signing keys.
pub fn admin_fingerprints(roster: &Roster) -> BTreeMap<String, String> {
    roster
        .members
        .iter()
        .filter(|(_, m)| m.admin)
        .map(|(n, m)| {
            let key = m.signer_key().unwrap_or(&m.key);
            (n.clone(), crypto::fingerprint(key))
        })
        .collect()
}

/// Where the pin for `store` lives, when there is a state directory.
pub fn pin_file(store: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("sesto/trust").join(format!("{store}.yaml")))
}

/// Reads a pin file; `None` when there is none.
pub fn read_pin(path: &Path) -> Result<Option<Pin>> {
    let bytes = match crate::store::read_limited(path, MAX_PIN) {
        Ok(b) => b,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    crate::limits::check_yaml(&bytes)
        .and_then(|()| serde_yaml::from_slice(&bytes).map_err(crate::node::yaml_error))
        .map(Some)
        .map_err(|e| Error::Untrusted {
            reason: format!(
                "the trust file is damaged ({e}); remove it to trust the store's admins anew"
            ),
            file: path.to_path_buf(),
        })
}

fn write_pin(path: &Path, pin: &Pin) -> Result<()> {
    let dir = path.parent().expect("pin files live in a directory");
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    let text = serde_yaml::to_string(pin).expect("a pin always serialises");
    crate::journal::write_atomic(path, text.as_bytes())
}

/// Records `roster` as trusted in the clone at `work`, after this process
/// signed it.
pub(crate) fn pin(work: &Path, roster: &Roster, bytes: &[u8]) -> Result<()> {
    if std::env::var_os("SESTO_TRUST").is_some() {
        return Ok(());
    }
    let Some(path) = pin_file(&roster.store) else {
        return Ok(());
    };
    let mut pin = read_pin(&path)?.unwrap_or_else(|| Pin::of(roster, bytes));
    pin.accept(work, roster, bytes, true);
    write_pin(&path, &pin)
}

/// Checks the roster of a store being opened against what the user trusts.
/// Returns notices to show: a first use, a change of admins.
pub(crate) fn check(
    work: &Path,
    roster: &Roster,
    bytes: &[u8],
    sig: &[u8],
    mode: TrustMode,
    head: &HeadState,
) -> Result<Vec<String>> {
    if mode == TrustMode::Skip {
        return Ok(vec![]);
    }
    let checking = matches!(mode, TrustMode::Check | TrustMode::Peek);
    if let Some(list) = std::env::var_os("SESTO_TRUST").filter(|_| checking) {
        let pinned: HashSet<String> = list
            .to_string_lossy()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        return match chain_back(&History::new(work), roster, bytes, sig, |_, signer| {
            pinned.contains(signer)
        }) {
            Ok(()) => Ok(vec![]),
            Err(reason) => Err(Error::Untrusted {
                reason: format!("no roster signed by a key in SESTO_TRUST leads to it ({reason})"),
                file: PathBuf::from("SESTO_TRUST"),
            }),
        };
    }
    let Some(path) = pin_file(&roster.store) else {
        return Ok(vec![]);
    };
    let hash = node::sha256_hex(bytes);
    let mut pin = match (mode, read_pin(&path)?) {
        (TrustMode::Accept, Some(mut pin)) if pin.store == roster.store => {
            let lowered = pin.accept_exactly(work, roster, bytes);
            write_pin(&path, &pin)?;
            let mut notices = vec![format!(
                "trusting this store's admins: {} (roster version {}, recorded in {})",
                describe(&admin_fingerprints(roster)),
                roster.version,
                path.display()
            )];
            notices.extend(lowered);
            return Ok(notices);
        }
        (TrustMode::Accept, _) | (_, None) => {
            if checking {
                first_use(work, roster, bytes, sig).map_err(|reason| Error::Untrusted {
                    reason,
                    file: path.clone(),
                })?;
            }
            if mode == TrustMode::Peek {
                return Ok(vec![]);
            }
            let mut pin = Pin::of(roster, bytes);
            pin.accept(work, roster, bytes, *head == HeadState::Branch);
            write_pin(&path, &pin)?;
            return Ok(vec![format!(
                "trusting this store's admins: {} (recorded in {})",
                describe(&admin_fingerprints(roster)),
                path.display()
            )]);
        }
        (_, Some(p)) => p,
    };
    let untrusted = |reason: String| Error::Untrusted {
        reason,
        file: path.clone(),
    };
    if pin.store != roster.store {
        return Err(untrusted("the trust file is for another store".into()));
    }
    let here = pin.clones.get(&clone_key(work)).copied().unwrap_or(0);
    // Going back is for history, for a merge or rebase under way, and for
    // the user's own moves (a checkout of another branch, a reset). A branch
    // that came forward, or stayed, with an older roster was rolled back.
    let moved = match head {
        HeadState::Branch => crate::git::git_dir(work)
            .map(|d| crate::rollback::head_move(&d))
            .unwrap_or(crate::rollback::Move::None),
        _ => crate::rollback::Move::Own,
    };
    if roster.version < here && *head == HeadState::Branch && moved != crate::rollback::Move::Own {
        let (said, hint) = match &moved {
            crate::rollback::Move::Forward { from, to } => (
                format!(
                    "version {here} at commit {} went back to version {} at commit {}",
                    &from[..from.len().min(12)],
                    roster.version,
                    &to[..to.len().min(12)]
                ),
                format!(
                    "find the change with `git log -p {}..{} -- .sesto/roster.yaml` and revert it",
                    &from[..from.len().min(12)],
                    &to[..to.len().min(12)]
                ),
            ),
            _ => (
                format!(
                    "it is version {}, older than version {here} this clone used",
                    roster.version
                ),
                "compare with `git diff -- .sesto/roster.yaml`".to_string(),
            ),
        };
        return Err(untrusted(format!(
            "{said} (rolled back?); {hint}; if you moved it back yourself, \
             `sesto trust --accept` takes it as it is"
        )));
    }
    if !pin.accepted.contains(&hash) {
        let judge = Judge {
            history: History::new(work),
            accepted: pin.accepted.clone(),
            pinned: None,
        };
        judge.trusts(bytes, sig).map_err(untrusted)?;
    }
    let (before, members_before) = (pin.admins.clone(), pin.members.clone());
    let newest = pin.version;
    let advance = *head == HeadState::Branch;
    pin.accept(work, roster, bytes, advance);
    if advance && moved == crate::rollback::Move::Own {
        // The user's own move: this roster is now where the clone stands.
        pin.clones.insert(clone_key(work), roster.version);
    }
    if mode == TrustMode::Peek {
        return Ok(vec![]);
    }
    if pin.clones.get(&clone_key(work)) != Some(&here) || pin.version != newest || here == 0 {
        write_pin(&path, &pin)?;
    }
    let mut notices = vec![];
    if roster.version > newest {
        notices.push(roster_change(newest, roster, &before, &members_before));
    }
    Ok(notices)
}

/// What a newer roster, followed through admin signatures, changed: "roster
/// version 4 → 6 (signed by the admins before it): admins unchanged; bob
/// added". Members are compared only when the pin knew them.
fn roster_change(
    from: u64,
    roster: &Roster,
    admins_before: &BTreeMap<String, String>,
    members_before: &BTreeSet<String>,
) -> String {
    let now = admin_fingerprints(roster);
    let mut parts = Vec::new();
    if *admins_before == now {
        parts.push("admins unchanged".to_string());
    } else {
        let added: Vec<&String> = now
            .keys()
            .filter(|a| !admins_before.contains_key(*a))
            .collect();
        let removed: Vec<&String> = admins_before
            .keys()
            .filter(|a| !now.contains_key(*a))
            .collect();
        let mut said = format!("admins now {}", describe(&now));
        if !added.is_empty() {
            said += &format!(" (new: {})", join(&added));
        }
        if !removed.is_empty() {
            said += &format!(" (no longer: {})", join(&removed));
        }
        parts.push(said);
    }
    if !members_before.is_empty() {
        let added: Vec<&String> = roster
            .members
            .keys()
            .filter(|m| !members_before.contains(*m))
            .collect();
        let removed: Vec<&String> = members_before
            .iter()
            .filter(|m| !roster.members.contains_key(*m))
            .collect();
        if !added.is_empty() {
            parts.push(format!("{} added", join(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!("{} removed", join(&removed)));
        }
        if added.is_empty() && removed.is_empty() {
            parts.push("members unchanged".into());
        }
    }
    format!(
        "roster version {from} → {} (signed by the admins before it): {}",
        roster.version,
        parts.join("; ")
    )
}

fn describe(admins: &BTreeMap<String, String>) -> String {
    admins
        .iter()
        .map(|(n, fp)| format!("{n} ({fp})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Trust on first use, where it can be checked: the roster must descend,
/// through admin signatures, from the store's first roster, the oldest one
/// on `HEAD`'s first-parent line (the commit `sesto init` made, or the
/// oldest a shallow clone has). A rival roster someone pushed with no chain
/// back is not pinned by a clone that has never seen the store.
fn first_use(
    work: &Path,
    roster: &Roster,
    bytes: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    let Some((first, commit)) = first_roster(work) else {
        return Ok(());
    };
    let hash = node::sha256_hex(&first);
    if hash == node::sha256_hex(bytes) {
        return Ok(());
    }
    chain_back(&History::new(work), roster, bytes, sig, |h, _| h == hash).map_err(|why| {
        format!(
            "this clone has not trusted the store before, and no chain of admin signatures \
             leads from the store's first roster (commit {}) to it ({why}); ask an admin for \
             their key fingerprint and pin it with SESTO_TRUST=<fingerprint>, or run \
             `sesto trust --accept` once you have checked `sesto trust`",
            &commit[..12]
        )
    })
}

/// The roster file of the oldest commit on `HEAD`'s first-parent line that
/// has one, and that commit.
fn first_roster(work: &Path) -> Option<(Vec<u8>, String)> {
    let repo = git2::Repository::open(work).ok()?;
    let mut walk = repo.revwalk().ok()?;
    walk.push_head().ok()?;
    walk.simplify_first_parent().ok()?;
    let mut oldest = None;
    for oid in walk.flatten() {
        let Some(entry) = repo
            .find_commit(oid)
            .ok()
            .and_then(|c| c.tree().ok())
            .and_then(|t| t.get_path(Path::new(".sesto/roster.yaml")).ok())
        else {
            continue;
        };
        oldest = Some((entry.id(), oid));
    }
    let (blob, commit) = oldest?;
    let bytes = repo.find_blob(blob).ok()?.content().to_vec();
    Some((bytes, commit.to_string()))
}

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
fn chain_back(
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
    history: History,
    /// Accepted roster hashes, newest last.
    accepted: Vec<String>,
    /// Fingerprints from `SESTO_TRUST`.
    pinned: Option<HashSet<String>>,
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
/// higher version, and a signer who is an admin of `older`.
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
        for (yaml, sig) in crate::roster_log::parse(bytes) {
            out.insert(node::sha256_hex(&yaml), (yaml, sig));
        }
    };
    let work_log = work.join(".sesto").join(crate::roster_log::FILE);
    if let Ok(bytes) = crate::store::read_limited(&work_log, crate::roster_log::MAX_LOG) {
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
            if (blob.size() as u64) <= crate::roster_log::MAX_LOG {
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
