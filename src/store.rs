//! Opening a store, resolving hidden paths, and reading verified nodes.
//!
//! Every node read here is decrypted, its signature checked against the
//! roster (the signer must be allowed to write it), and its body bound to the
//! id it was read under. Writes go through [`crate::tx::Tx`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::crypto::{self, Identities, Recipient};
use crate::error::{Error, Result};
use crate::journal::{Journal, Lock};
use crate::node::{self, Body, Kind, NodeId, NodeKey, Roster, MAX_NODE_FILE};

/// A path inside the store: names separated by `/`. The empty path is the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SPath(Vec<String>);

impl SPath {
    /// The root folder.
    pub fn root() -> SPath {
        SPath(Vec::new())
    }
    /// Parses user input; empty components (`a//b`, a trailing `/`) are ignored.
    pub fn parse(text: &str) -> Result<SPath> {
        let mut parts = Vec::new();
        for part in text.split('/').filter(|p| !p.is_empty()) {
            if parts.len() == node::MAX_DEPTH {
                return Err(Error::Value(format!(
                    "paths are at most {} names deep",
                    node::MAX_DEPTH
                )));
            }
            node::check_name(part)?;
            parts.push(part.to_string());
        }
        Ok(SPath(parts))
    }
    /// The names from the root down.
    pub fn names(&self) -> &[String] {
        &self.0
    }
    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// The parent path and last name; `None` for the root.
    pub fn split_last(&self) -> Option<(SPath, &str)> {
        let (last, rest) = self.0.split_last()?;
        Some((SPath(rest.to_vec()), last))
    }
    /// This path with one more name.
    pub fn join(&self, name: &str) -> SPath {
        let mut v = self.0.clone();
        v.push(name.to_string());
        SPath(v)
    }
    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for SPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0.join("/"))
        }
    }
}

impl FromStr for SPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<SPath> {
        SPath::parse(s)
    }
}

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
    pub trust: crate::trust::TrustMode,
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
    pub(crate) trust: crate::trust::TrustMode,
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

/// Reads a file under `.sesto/`, refusing symlinks and files over `limit`.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("cannot read", path))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: "symlinks are not allowed in .sesto/".into(),
        });
    }
    if !meta.is_file() {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > limit {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: format!("{} bytes is over the {} MiB limit", meta.len(), limit >> 20),
        });
    }
    std::fs::read(path).map_err(Error::io("cannot read", path))
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
        trust: crate::trust::TrustMode,
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
    fn read(work: &Path, trust: crate::trust::TrustMode) -> Result<Loaded> {
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
        let mut notices = crate::trust::check(work, &roster, &bytes, &sig, trust, &head)?;
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
        self.dir.join(id.rel_path())
    }

    /// The error for node `id`, rejected for `reason`.
    pub(crate) fn reject(&self, id: &NodeId, reason: impl fmt::Display) -> Error {
        Error::Node {
            id: *id,
            file: id.rel_path(),
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

    /// The folders the current member reaches without the root: the shared
    /// folders granted to them, each with the path its body records, sorted by
    /// path. Admins reach everything from the root, so theirs is the root alone.
    pub(crate) fn tops(&self) -> Result<Vec<(SPath, Node)>> {
        if let Some(tops) = self.tops.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(tops.clone());
        }
        let me = match self.me.as_deref() {
            Some(me) if !self.roster.is_admin(me) => me,
            _ => return Ok(vec![(SPath::root(), self.read_root()?)]),
        };
        let mut tops = Vec::new();
        for (id, grants) in &self.roster.grants {
            // A granted folder that is gone (removed by a member, or on one
            // side of a merge) shows nothing; the others still open.
            if !grants.contains_key(me) || !self.node_file(id).exists() {
                continue;
            }
            let node = self.read_node(id, None, &[*id])?;
            if node.body.kind != Kind::Folder {
                return Err(self.reject(id, "a grant names it, but it is not a folder"));
            }
            let path = if *id == self.roster.root {
                SPath::root()
            } else {
                let text = node.body.path.as_deref().ok_or_else(|| {
                    self.reject(
                        id,
                        "a shared folder without its path (written before the grant?)",
                    )
                })?;
                SPath::parse(text).map_err(|e| self.reject(id, format!("its path: {e}")))?
            };
            tops.push((path, node));
        }
        tops.sort_by(|a, b| a.0.cmp(&b.0));
        *self.tops.lock().unwrap_or_else(|e| e.into_inner()) = Some(tops.clone());
        Ok(tops)
    }

    /// The error for a path outside every folder the current member reaches.
    pub(crate) fn not_granted(&self, path: &SPath) -> Error {
        Error::NotGranted {
            path: path.to_string(),
            member: self.me.clone().unwrap_or_default(),
            admins: self.roster.admins().iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Reads and verifies one node. `key` is its key from the parent's entry;
    /// without it (the root, a shared folder) the member identities are used.
    /// `chain` lists its ancestors and itself, root first.
    pub(crate) fn read_node(
        &self,
        id: &NodeId,
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        let path = self.node_file(id);
        if let Some(shard) = path.parent() {
            if is_symlink(shard) || is_symlink(&self.dir.join("nodes")) {
                return Err(self.reject(
                    id,
                    "its directory is a symlink; symlinks are not allowed in .sesto/",
                ));
            }
        }
        let bytes = match read_limited(&path, MAX_NODE_FILE) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.reject(id, "the file is missing (deleted, or not yet merged)"))
            }
            Err(Error::Io { source, .. }) => return Err(self.reject(id, source)),
            Err(Error::Refused { reason, .. }) => return Err(self.reject(id, reason)),
            Err(e) => return Err(e),
        };
        self.open_node(id, &bytes, key, chain)
    }

    /// Decrypts and verifies node bytes read from anywhere (the work tree, a
    /// git object): the checks of [`Store::read_node`] after reading.
    pub(crate) fn open_node(
        &self,
        id: &NodeId,
        bytes: &[u8],
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        self.open_node_under(&self.rules(), id, bytes, key, chain)
    }

    /// The rules this store's own roster sets.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            roster: &self.roster,
            keys: &self.keys,
            me: self.me.as_deref(),
        }
    }

    /// [`Store::open_node`] under another roster's rules (one side of a
    /// merge, read from its own commit), with this store's identities.
    pub(crate) fn open_node_under(
        &self,
        rules: &Rules,
        id: &NodeId,
        bytes: &[u8],
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        if bytes.len() as u64 > MAX_NODE_FILE {
            return Err(self.reject(id, "the file is over the 64 MiB limit"));
        }
        let plaintext = match key {
            Some(k) => {
                let identity = age::x25519::Identity::from_str(k.expose_secret())
                    .map_err(|_| self.reject(id, "its key in the parent folder is malformed"))?;
                crypto::decrypt(bytes, &[&identity]).map_err(|e| match e {
                    crypto::CryptoError::NoMatchingKeys => self.reject(
                        id,
                        "the key in its parent folder does not open it (replaced file?)",
                    ),
                    other => self.reject(id, other),
                })?
            }
            None => {
                let ids = self.ids.age_identities(|p| rules.keys.contains_key(p))?;
                if ids.is_empty() {
                    return Err(Error::NoIdentity {
                        tried: self.ids.tried().to_vec(),
                        public: self.ids.member_key_to_send(),
                    });
                }
                crypto::decrypt(bytes, &ids).map_err(|e| match e {
                    // A key this file is encrypted to could not be unlocked
                    // (no terminal, a wrong passphrase): that is the reason.
                    _ if self.ids.unlock_failure().is_some() => {
                        Error::from(self.ids.unlock_failure().expect("checked"))
                    }
                    // The roster says we may read it, yet it is not encrypted to
                    // us: the file is at fault, not the user's keys.
                    crypto::CryptoError::NoMatchingKeys if rules.may_read(chain) => self.reject(
                        id,
                        format!(
                            "it is not encrypted to {}'s key, though the roster lets {0} read it \
                             (replaced or stale file?); tried: {}",
                            rules.me.unwrap_or("?"),
                            self.ids.tried().join(", ")
                        ),
                    ),
                    crypto::CryptoError::NoMatchingKeys => Error::NoIdentity {
                        tried: self.ids.tried().to_vec(),
                        public: self.ids.member_key_to_send(),
                    },
                    other => self.reject(id, other),
                })?
            }
        };
        let parts = node::split(&plaintext).map_err(|e| self.reject(id, e))?;
        let message = node::node_signed_message(&rules.roster.store, id, parts.body);
        let signer_key =
            crypto::verify(&parts.signature.signature, crypto::NODE_NAMESPACE, &message).map_err(
                |e| {
                    self.reject(
                        id,
                        format!("{e} (signature for another id or store, or a forged file)"),
                    )
                },
            )?;
        let signer = match rules.keys.get(&signer_key) {
            Some(name)
                if rules
                    .roster
                    .members
                    .get(name)
                    .is_some_and(|m| m.signer_key().is_some()) =>
            {
                name.clone()
            }
            _ => {
                return Err(self.reject(
                    id,
                    format!(
                        "signed by {}, who is not a member",
                        crypto::fingerprint(&signer_key)
                    ),
                ))
            }
        };
        if !rules.roster.may_write(&signer, chain) {
            return Err(self.reject(id, format!("signed by {signer}, who may not write it")));
        }
        let body = node::decode_body(parts.body).map_err(|e| self.reject(id, e))?;
        if body.id != *id || body.store != rules.roster.store {
            return Err(self.reject(
                id,
                "its content belongs to another id or store (copied file?)",
            ));
        }
        Ok(Node {
            id: *id,
            key: key.cloned(),
            body,
            signer,
        })
    }

    /// Reads the node a folder entry names, with the entry's key, and checks
    /// it is the kind the entry says. `chain` ends with the entry's id.
    pub(crate) fn read_entry(&self, entry: &crate::node::Entry, chain: &[NodeId]) -> Result<Node> {
        let node = self.read_node(&entry.id, Some(&entry.key), chain)?;
        if node.body.kind != entry.kind {
            return Err(self.reject(
                &entry.id,
                format!(
                    "its parent lists a {} but it is a {}",
                    entry.kind, node.body.kind
                ),
            ));
        }
        Ok(node)
    }

    /// Reads the root folder.
    pub(crate) fn read_root(&self) -> Result<Node> {
        let root = self.roster.root;
        let node = self.read_node(&root, None, &[root])?;
        if node.body.kind != Kind::Folder {
            return Err(self.reject(&root, "the root is not a folder"));
        }
        Ok(node)
    }

    /// Resolves a path to the chain of nodes from where the current member
    /// starts (the root, or a granted folder) down to it.
    pub(crate) fn walk(&self, path: &SPath) -> Result<Vec<Node>> {
        let (top_path, top) = self.start_for(path)?;
        let mut ids = vec![top.id];
        let mut chain = vec![top];
        for depth in top_path.names().len()..path.names().len() {
            let name = &path.names()[depth];
            let parent = chain.last().expect("chain starts with the top");
            let here = SPath(path.names()[..depth].to_vec());
            if parent.body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
            let Some(entry) = parent.body.child(name) else {
                return Err(Error::NotFound {
                    path: path.to_string(),
                    nearest: nearest(&here),
                });
            };
            if ids.contains(&entry.id) {
                return Err(self.reject(&entry.id, "a folder lists itself or an ancestor"));
            }
            ids.push(entry.id);
            let child = self.read_entry(entry, &ids)?;
            chain.push(child);
        }
        Ok(chain)
    }

    /// The deepest folder the current member reaches that holds `path`.
    pub(crate) fn start_for(&self, path: &SPath) -> Result<(SPath, Node)> {
        self.tops()?
            .into_iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.names().len())
            .ok_or_else(|| self.not_granted(path))
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

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

pub(crate) fn nearest(existing: &SPath) -> String {
    if existing.is_root() {
        "the root folder has no such entry".into()
    } else {
        format!("{existing} exists")
    }
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
    let paths: Vec<String> = ops.iter().map(|o| o.target().to_string()).collect();
    // A locked git index must not make the store unreadable: what cannot be
    // staged now is kept for the next write.
    let _ = crate::tx::stage_pending(work, state, &paths, &Default::default(), None)?;
    journal.clear()
}
