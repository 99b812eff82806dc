//! Trust pinning: which admins a user trusts for a store, and the signed chain
//! of rosters that leads from the one they trusted to the one in front of them.
//!
//! Anyone who can push can replace `roster.yaml` and sign it with a key they
//! list as an admin. A roster is therefore accepted only when it is the pinned
//! one, or when every roster between the pinned one and it (read from git
//! history by the `previous` hashes) is signed by an admin of the one before.
//! The pin lives in `$XDG_STATE_HOME/sesto/trust/<store>.yaml`; `SESTO_TRUST`
//! (comma-separated SHA256 fingerprints) pins admins for CI and fresh clones.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{self, Roster};
use crate::git::HeadState;

mod chain;

use chain::chain_back;
pub(crate) use chain::{chain_from, History, Judge};
pub use chain::{verify_chain, verify_history};

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
    /// SHA-256 of every roster accepted, newest last (at most `MAX_ACCEPTED`).
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
    let bytes = match crate::store::files::read_limited(path, MAX_PIN) {
        Ok(b) => b,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    crate::format::limits::check_yaml(&bytes)
        .and_then(|()| serde_yaml::from_slice(&bytes).map_err(crate::format::node::yaml_error))
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
    crate::store::journal::write_atomic(path, text.as_bytes())
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
            .map(|d| crate::store::moves::head_move(&d))
            .unwrap_or(crate::store::moves::Move::None),
        _ => crate::store::moves::Move::Own,
    };
    if roster.version < here
        && *head == HeadState::Branch
        && moved != crate::store::moves::Move::Own
    {
        let (said, hint) = match &moved {
            crate::store::moves::Move::Forward { from, to } => (
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
    if advance && moved == crate::store::moves::Move::Own {
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
