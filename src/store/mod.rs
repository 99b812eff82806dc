//! Opening a store, resolving hidden paths, and reading verified nodes.
//!
//! Every node read here is decrypted, its signature checked against the
//! roster (the signer must be allowed to write it), and its body bound to the
//! id it was read under. Writes go through [`crate::store::tx::Tx`].
//!
//! The store layer owns the work tree's `.sesto/`: opening and trusting it
//! ([`trust`], `rollback`), reading (`read`, `tree_index`), writing in
//! crash-safe transactions (`tx`, [`journal`]), checking ([`fsck`]) and
//! creating (`init`) a store.
//!
//! May use: [`crate::format`], and [`crate::git`] for the local repository
//! (staging, `HEAD`, the commits a merge is made of).

pub(crate) mod files;
pub mod fsck;
pub(crate) mod init;
pub mod journal;
pub mod migrate;
pub(crate) mod moves;
mod nodes;
mod path;
pub(crate) mod read;
pub(crate) mod rollback;
pub(crate) mod staging;
pub(crate) mod tree_index;
pub mod trust;
pub(crate) mod tx;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::crypto::{self, Identities, Recipient};
use crate::format::node::{Body, NodeId, NodeKey, Roster};
use crate::store::files::read_limited;
use crate::store::journal::{Journal, Lock, Op};

pub(crate) use path::nearest;
pub use path::SPath;

/// A decrypted, verified node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// Its own key, from the parent's entry (`None` for the root).
    pub key: Option<NodeKey>,
    /// The body.
    pub body: Body,
    /// The member whose signature it carries.
    pub signer: String,
}

/// What verifying a node needs besides identities: a roster, its members'
/// keys, and which member the identities belong to under it.
pub(crate) struct Rules<'a> {
    pub(crate) roster: &'a Roster,
    pub(crate) keys: &'a HashMap<String, String>,
    pub(crate) me: Option<&'a str>,
}

impl Rules<'_> {
    /// Whether `me` may read a node below `chain` directly.
    pub(crate) fn may_read(&self, chain: &[NodeId]) -> bool {
        self.me.is_some_and(|me| self.roster.may_read(me, chain))
    }
}

/// How to find and open a store.
#[derive(Default)]
pub struct OpenOptions {
    /// Start the search here instead of the current directory (`--store`).
    pub start: Option<PathBuf>,
    /// Whether to check the roster against the admins the user trusts.
    pub trust: crate::store::trust::TrustMode,
}

/// An open store: its roster verified, identities loaded.
pub struct Store {
    pub(crate) work: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) roster: Roster,
    pub(crate) ids: Identities,
    /// Normalized public key (encryption or signing) → member name.
    pub(crate) keys: HashMap<String, String>,
    pub(crate) me: Option<String>,
    /// The folders the current member starts from, read once and forgotten
    /// when a transaction commits (they may have been rewritten).
    pub(crate) tops: std::sync::Mutex<Option<Vec<(SPath, Node)>>>,
    /// What opening found worth telling the user (a first use, new admins).
    pub(crate) notices: Vec<String>,
    /// Where `HEAD` was when the store was opened: on a branch, detached
    /// behind one (history, read but never written), or mid-merge.
    pub(crate) head: crate::git::HeadState,
    /// How the roster is trusted; with `Skip`, rosters this process signs
    /// are not pinned either.
    pub(crate) trust: crate::store::trust::TrustMode,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("work", &self.work)
            .field("me", &self.me)
            .finish()
    }
}

/// Largest roster accepted.
const MAX_ROSTER: u64 = 1 << 20;

/// Walks up from `start` to the first directory holding `.sesto/roster.yaml`.
pub fn find_work_tree(start: &Path) -> Result<PathBuf> {
    let start = std::path::absolute(start).map_err(Error::io("cannot resolve", start))?;
    let candidate = if start.file_name().is_some_and(|n| n == ".sesto") {
        start
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(start.clone())
    } else {
        start.clone()
    };
    for dir in candidate.ancestors() {
        if dir.join(".sesto/roster.yaml").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    Err(Error::NoStore { searched: start })
}

impl Store {
    /// Finds the store from `options.start` (or the working directory), checks
    /// the roster's signature, and finishes any interrupted write.
    pub fn open(options: &OpenOptions, ids: Identities) -> Result<Store> {
        let start = match &options.start {
            Some(p) => p.clone(),
            None => std::env::current_dir()
                .map_err(Error::io("cannot read", "the current directory"))?,
        };
        let work = find_work_tree(&start)?;
        Store::open_at(work, ids, options.trust)
    }

    pub(crate) fn open_at(
        work: PathBuf,
        ids: Identities,
        trust: crate::store::trust::TrustMode,
    ) -> Result<Store> {
        let loaded = Loaded::read(&work, trust)?;
        let mut store = Store {
            work,
            dir: loaded.dir,
            state: loaded.state,
            roster: loaded.roster,
            ids,
            keys: loaded.keys,
            me: None,
            tops: Default::default(),
            notices: loaded.notices,
            head: loaded.head,
            trust,
        };
        store.me = store.find_me();
        store.check_rollback()?;
        Ok(store)
    }

    /// Reads the store again from disk, as [`Store::open`] does (the roster,
    /// its signature and trust, any interrupted write), keeping the identities
    /// already loaded: a long-running process follows a `git pull` without
    /// asking for a passphrase again. On failure the store is left as it was.
    pub fn reload(&mut self) -> Result<()> {
        let loaded = Loaded::read(&self.work, self.trust)?;
        self.dir = loaded.dir;
        self.state = loaded.state;
        self.roster = loaded.roster;
        self.keys = loaded.keys;
        self.notices = loaded.notices;
        self.head = loaded.head;
        self.tops = Default::default();
        self.me = self.find_me();
        Ok(())
    }

    /// The member whose key is among the identities, if any.
    fn find_me(&self) -> Option<String> {
        self.member_among(&self.keys)
    }

    /// The member, among `keys` (public key → name), whose key is among the
    /// identities.
    pub(crate) fn member_among(&self, keys: &HashMap<String, String>) -> Option<String> {
        self.ids
            .iter()
            .find_map(|i| i.public().and_then(|p| keys.get(p)).cloned())
    }
}

/// What [`Store::open`] reads from disk, before any identity is involved.
struct Loaded {
    dir: PathBuf,
    state: PathBuf,
    roster: Roster,
    keys: HashMap<String, String>,
    notices: Vec<String>,
    head: crate::git::HeadState,
}

impl Loaded {
    fn read(work: &Path, trust: crate::store::trust::TrustMode) -> Result<Loaded> {
        let dir = work.join(".sesto");
        if std::fs::symlink_metadata(&dir)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            return Err(Error::Refused {
                path: dir,
                reason: "symlinks are not allowed for .sesto/".into(),
            });
        }
        let state = crate::git::git_dir(work)?.join("sesto");
        recover(work, &state)?;
        let bytes = read_limited(&dir.join("roster.yaml"), MAX_ROSTER)?;
        let sig = read_limited(&dir.join("roster.sig"), MAX_ROSTER)
            .map_err(|e| Error::Roster(format!("cannot read roster.sig: {e}")))?;
        let roster = Roster::decode(&bytes).map_err(|e| Error::Roster(e.to_string()))?;
        let keys = member_keys(&roster)?;
        let sig_text = std::str::from_utf8(&sig)
            .map_err(|_| Error::Roster("roster.sig is not text".into()))?;
        let signer = crypto::verify(sig_text, crypto::ROSTER_NAMESPACE, &bytes)
            .map_err(|e| Error::Roster(format!("roster.sig: {e}")))?;
        match keys.get(&signer).and_then(|n| roster.members.get(n)) {
            Some(m)
                if m.admin
                    && m.signer_key().is_some_and(|k| {
                        crypto::normalize_public(k).ok().as_deref() == Some(&signer)
                    }) => {}
            _ => {
                return Err(Error::Roster(format!(
                    "signed by {}, who is not an admin",
                    crypto::fingerprint(&signer)
                )))
            }
        }
        let head = crate::git::head_state(work);
        let mut notices = crate::store::trust::check(work, &roster, &bytes, &sig, trust, &head)?;
        if let crate::git::HeadState::Detached(commit) = &head {
            notices.push(format!(
                "reading history at commit {} (a detached HEAD behind a branch); \
                 writes are refused until you check out a branch",
                &commit[..commit.len().min(12)]
            ));
        }
        Ok(Loaded {
            dir,
            state,
            roster,
            keys,
            notices,
            head,
        })
    }
}

impl Store {
    /// The repository's work tree.
    pub fn work_tree(&self) -> &Path {
        &self.work
    }

    /// What opening the store found worth telling the user: trusting its
    /// admins on first use, or a change of admins since the last use.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// The verified roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The member the current identities belong to, if any.
    pub fn whoami(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The identities in use.
    pub fn identities(&self) -> &Identities {
        &self.ids
    }

    pub(crate) fn node_file(&self, id: &NodeId) -> PathBuf {
        self.dir.join(self.rel_path(id))
    }

    /// Node `id`'s file relative to `.sesto/`, in this store's format.
    pub(crate) fn rel_path(&self, id: &NodeId) -> String {
        id.rel_path(self.roster.sesto)
    }

    /// The error for node `id`, rejected for `reason`.
    pub(crate) fn reject(&self, id: &NodeId, reason: impl fmt::Display) -> Error {
        Error::Node {
            id: *id,
            file: self.rel_path(id),
            reason: reason.to_string(),
        }
    }

    /// Whether `member` may write a node below the ancestors `chain` (root
    /// first, the node itself last).
    pub(crate) fn may_write(&self, member: &str, chain: &[NodeId]) -> bool {
        self.roster.may_write(member, chain)
    }

    /// Whether the current identities belong to an admin.
    pub fn is_admin(&self) -> bool {
        self.me
            .as_deref()
            .is_some_and(|me| self.roster.is_admin(me))
    }
}

/// Every member's normalized public keys (encryption and signing) → name.
pub(crate) fn member_keys(roster: &Roster) -> Result<HashMap<String, String>> {
    let mut keys = HashMap::new();
    for (name, m) in &roster.members {
        for k in std::iter::once(&m.key).chain(m.signing_key.as_ref()) {
            let n = crypto::normalize_public(k)
                .map_err(|e| Error::Roster(format!("member {name}: {e}")))?;
            keys.insert(n, name.clone());
        }
    }
    Ok(keys)
}

/// Members' recipients for the node `id` beyond its own key, by `roster`: the
/// admins for the root, and members granted this folder directly.
pub(crate) fn member_recipients(roster: &Roster, id: &NodeId) -> Result<Vec<Recipient>> {
    let mut names: Vec<&String> = Vec::new();
    if *id == roster.root {
        names.extend(
            roster
                .members
                .iter()
                .filter(|(_, m)| m.admin)
                .map(|(n, _)| n),
        );
    }
    if let Some(g) = roster.grants.get(id) {
        names.extend(g.keys());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for n in names {
        if seen.insert(n) {
            let key = &roster.members[n].key;
            out.push(Recipient::parse(key).map_err(|e| Error::Roster(format!("member {n}: {e}")))?);
        }
    }
    Ok(out)
}

/// Options shared by library callers that build a store from keys in memory.
pub fn identities_from_text(text: &str) -> Result<Identities> {
    let list = crypto::Identity::parse(text, "key text")?;
    Ok(Identities::from_list(list, Arc::new(crypto::NoPassphrase)))
}

/// Replays an interrupted write, if one is pending. Runs before the roster is
/// read, since the interrupted write may have been a roster change.
fn recover(work: &Path, state: &Path) -> Result<()> {
    let journal = Journal::at(state);
    if !journal.pending() {
        return Ok(());
    }
    let _lock = Lock::acquire(state)?;
    finish_journal(work, state, &journal)
}

/// Applies and stages a pending journal, then removes it. Hold the lock.
pub(crate) fn finish_journal(work: &Path, state: &Path, journal: &Journal) -> Result<()> {
    if !journal.pending() {
        return Ok(());
    }
    let ops = journal.read()?;
    Journal::apply(work, &ops)?;
    let paths: Vec<String> = ops.iter().flat_map(Op::paths).map(str::to_string).collect();
    // What moved (a migration) leaves empty directories behind.
    let moved: Vec<PathBuf> = ops
        .iter()
        .filter_map(Op::moved_from)
        .map(|p| work.join(p))
        .collect();
    journal::remove_empty_dirs(moved.iter().map(PathBuf::as_path));
    // A locked git index must not make the store unreadable: what cannot be
    // staged now is kept for the next write.
    let _ = crate::store::staging::stage_pending(work, state, &paths, &Default::default(), None)?;
    journal.clear()
}
