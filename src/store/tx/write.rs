//! Committing a transaction: sign and encrypt what changed, write it all
//! through the journal, then stage (and commit) it.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{self, NodeId, Roster};
use crate::store::journal::{self, Journal, Op};
use crate::store::{Node, Store};

use super::keys::public_of;
use super::Tx;
use crate::store::staging::stage_pending;

impl Tx<'_> {
    /// Signs, encrypts and writes every changed node, then stages (and, where
    /// configured, commits) the change.
    pub fn commit(mut self) -> Result<Committed> {
        if self.dirty.is_empty() && self.removed.is_empty() && self.roster.is_none() {
            return Ok(Committed {
                files: 0,
                warning: self.warning.take(),
            });
        }
        // What the store read before (its tops) may be rewritten now; a
        // later transaction from the same store reads them again.
        *self.store.tops.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let crate::git::HeadState::Detached(commit) = &self.store.head {
            return Err(Error::Denied(format!(
                "this clone is reading history at commit {} (detached HEAD); \
                 check out a branch (`git checkout main`) to write",
                &commit[..commit.len().min(12)]
            )));
        }
        let me = self
            .store
            .me
            .clone()
            .ok_or_else(|| not_member(self.store))?;
        let signer = signer_for(self.store, &me)?;
        // Deepest first, so parents land after the children they point to.
        let mut order: Vec<(usize, NodeId)> = self
            .dirty
            .iter()
            .map(|id| (self.chain_of(*id).len(), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id) in &order {
            let chain = self.chain_of(*id);
            if !self.store.may_write(&me, &chain) {
                return Err(Error::Denied(format!(
                    "{me} may not write here; ask an admin for a write grant"
                )));
            }
            let created = self.created.contains(id);
            let shared = *id != self.roster().root && self.roster().grants.contains_key(id);
            let path = shared.then(|| self.path_of(*id).to_string());
            let node = self.nodes.get_mut(id).expect("dirty nodes are loaded");
            node.body.version = if created { 1 } else { node.body.version + 1 };
            // A shared folder records where it sits and its own recipient, for
            // members who reach it directly and must re-encrypt it.
            if let Some(key) = node.key.as_ref().filter(|_| shared) {
                node.body.recipient = Some(public_of(key)?);
            } else if !shared {
                node.body.recipient = None;
            }
            node.body.path = path;
        }
        let roster = self.roster();
        let nodes: Vec<&Node> = order.iter().map(|(_, id)| &self.nodes[id]).collect();
        let encoded = encode_all(self.store, roster, &nodes, &signer)?;
        let mut writes: Vec<(std::path::PathBuf, Vec<u8>)> = order
            .iter()
            .zip(encoded)
            .map(|((_, id), bytes)| (self.store.node_file(id), bytes))
            .collect();
        let roster_bytes = match &self.roster {
            Some(next) => {
                let bytes = next.encode();
                let sig = signer
                    .sign(crypto::ROSTER_NAMESPACE, &bytes)
                    .map_err(|e| Error::Denied(format!("cannot sign the roster: {e}")))?;
                writes.extend(self.log_writes()?);
                writes.push((self.store.dir.join("roster.sig"), sig.into_bytes()));
                writes.push((self.store.dir.join("roster.yaml"), bytes.clone()));
                Some(bytes)
            }
            None => None,
        };
        let removes: Vec<std::path::PathBuf> = self
            .removed
            .iter()
            .map(|id| self.store.node_file(id))
            .collect();
        let moves = std::mem::take(&mut self.moves);
        let mut committed = write_change(
            self.store,
            writes,
            &moves,
            &removes,
            self.summary.as_deref(),
        )?;
        let pinning = matches!(
            self.store.trust,
            crate::store::trust::TrustMode::Check | crate::store::trust::TrustMode::Accept
        );
        if let (Some(next), Some(bytes), true) = (&self.roster, &roster_bytes, pinning) {
            // We signed it: it is the roster we trust from now on.
            if let Err(e) = crate::store::trust::pin(&self.store.work, next, bytes) {
                committed.warning =
                    Some(format!("could not record the new roster as trusted: {e}"));
            }
        }
        self.dirty.clear();
        committed.warning = committed.warning.or(self.warning.take());
        Ok(committed)
    }
}

impl Tx<'_> {
    /// The roster log with the roster this change replaces (and any other
    /// side of a merge) added, and `.gitattributes` where it lacks the log's
    /// merge rule.
    fn log_writes(&self) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
        let dir = &self.store.dir;
        let read = |name: &str, limit: u64| -> Result<Vec<u8>> {
            match crate::store::files::read_limited(&dir.join(name), limit) {
                Ok(b) => Ok(b),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            }
        };
        let old = read(
            crate::format::roster_log::FILE,
            crate::format::roster_log::MAX_LOG,
        )?;
        let bytes = read("roster.yaml", 1 << 20)?;
        let sig = read("roster.sig", 1 << 20)?;
        let mut added: Vec<(&[u8], &[u8])> = self
            .log_also
            .iter()
            .map(|(b, s)| (b.as_slice(), s.as_slice()))
            .collect();
        added.push((&bytes, &sig));
        let mut writes = vec![(
            dir.join(crate::format::roster_log::FILE),
            crate::format::roster_log::append(&old, &added),
        )];
        let attributes = String::from_utf8_lossy(&read(".gitattributes", 1 << 20)?).into_owned();
        if let Some(text) = crate::format::roster_log::with_attribute(&attributes) {
            writes.push((dir.join(".gitattributes"), text.into_bytes()));
        }
        Ok(writes)
    }
}

/// Writes a change of several files atomically through the journal, stages
/// it, and commits where `sesto.commit` is set. Files in `moves` (old path,
/// new path) are moved first, unchanged; then new files are renamed in the
/// order given (children before parents), removals last; a change of
/// [`journal::IN_PLACE_FROM`] files or more is written in place from the
/// journal instead; `summary` says what the change is in sesto's commit
/// message (see [`Tx::set_summary`]). Hold the lock.
pub(crate) fn write_change(
    store: &Store,
    writes: Vec<(std::path::PathBuf, Vec<u8>)>,
    moves: &[(std::path::PathBuf, std::path::PathBuf)],
    removes: &[std::path::PathBuf],
    summary: Option<&str>,
) -> Result<Committed> {
    // The moves' directories are made (and checked for symlinks) before the
    // journal makes the change unstoppable.
    journal::prepare_dirs(moves.iter().map(|(_, to)| to.as_path()))?;
    let mut ops: Vec<Op> = moves
        .iter()
        .map(|(from, to)| Op::Rename {
            from: rel(store, from),
            to: rel(store, to),
        })
        .collect();
    if writes.len() >= journal::IN_PLACE_FROM {
        // Thousands of files (a key rotation): their bytes go in the journal
        // and over the old files, with no temp file each.
        journal::prepare_dirs(writes.iter().map(|(target, _)| target.as_path()))?;
        ops.extend(writes.into_iter().map(|(target, bytes)| Op::Write {
            path: rel(store, &target),
            bytes,
        }));
    } else {
        for ((target, _), tmp) in
            writes
                .iter()
                .zip(journal::write_temps(&store.state, &store.work, &writes)?)
        {
            ops.push(Op::Rename {
                from: rel(store, &tmp),
                to: rel(store, target),
            });
        }
    }
    for path in removes {
        ops.push(Op::Remove(rel(store, path)));
    }
    journal::failpoint("after-temp");
    let journal = Journal::at(&store.state);
    journal.record(&ops)?;
    journal::clear_temp_list(&store.state)?;
    journal::failpoint("after-journal");
    // The new files of a large change go into git's object database while
    // they are written in place.
    let in_git: Vec<(&str, &[u8])> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Write { path, bytes } => Some((path.as_str(), bytes.as_slice())),
            _ => None,
        })
        .collect();
    let known = if in_git.is_empty() {
        Journal::apply(&store.work, &ops)?;
        crate::git::Blobs::new()
    } else {
        std::thread::scope(|s| {
            let packing = s.spawn(|| crate::git::store_blobs(&store.work, &in_git));
            let applied = Journal::apply(&store.work, &ops);
            // A failed pack costs nothing but time: staging reads the files.
            let known = packing
                .join()
                .expect("packing does not panic")
                .unwrap_or_default();
            applied.map(|()| known)
        })?
    };
    journal::failpoint("after-renames");
    journal::remove_empty_dirs(moves.iter().map(|(from, _)| from.as_path()));
    let paths: Vec<String> = ops.iter().flat_map(Op::paths).map(str::to_string).collect();
    let warning = stage_pending(&store.work, &store.state, &paths, &known, summary)?;
    journal.clear()?;
    Ok(Committed {
        files: ops.len(),
        warning,
    })
}

/// What a commit wrote.
#[derive(Debug, Default)]
pub struct Committed {
    /// Files written or removed.
    pub files: usize,
    /// Set when the change is saved but git could not take it yet (a locked
    /// index, say); the next sesto command stages it.
    pub warning: Option<String>,
}

fn rel(store: &Store, path: &std::path::Path) -> String {
    path.strip_prefix(&store.work)
        .expect("inside the work tree")
        .to_string_lossy()
        .into_owned()
}

fn not_member(store: &Store) -> Error {
    Error::Denied(format!(
        "none of your identities ({}) is a member of this store",
        if store.ids.tried().is_empty() {
            "none found".to_string()
        } else {
            store.ids.tried().join(", ")
        }
    ))
}

/// The SSH key `member` signs with, from the loaded identities, made ready
/// for signing.
pub(crate) fn signer_for(store: &Store, member: &str) -> Result<crypto::Signer> {
    let m = &store.roster.members[member];
    let Some(want) = m
        .signer_key()
        .and_then(|k| crypto::normalize_public(k).ok())
    else {
        return Err(Error::Denied(format!(
            "{member} has only an age key and cannot sign; an admin can add an SSH signing_key for {member}"
        )));
    };
    // A key that needs no passphrase (an agent's) before one that does.
    let id = store
        .ids
        .iter()
        .filter(|i| i.signing_public() == Some(want.as_str()) && i.can_sign())
        .min_by_key(|i| i.is_locked())
        .ok_or_else(|| {
            Error::Denied(format!(
                "writing needs {member}'s SSH key ({}); pass it with -i, or add it to ssh-agent",
                crypto::fingerprint(&want)
            ))
        })?;
    Ok(id.signer(store.ids.prompt())?)
}

/// Encodes many nodes, spread over the machine's cores when there are
/// enough to be worth it (building or rotating a large store).
fn encode_all(
    store: &Store,
    roster: &Roster,
    nodes: &[&Node],
    signer: &crypto::Signer,
) -> Result<Vec<Vec<u8>>> {
    let progress = crate::local::progress::Progress::new("writing", nodes.len());
    crate::par::map(nodes, |n| {
        let out = encode_node(store, roster, n, signer);
        progress.tick();
        out
    })
    .into_iter()
    .collect()
}

/// Signs and encrypts one node to its own key and its member recipients.
pub(crate) fn encode_node(
    store: &Store,
    roster: &Roster,
    node: &Node,
    signer: &crypto::Signer,
) -> Result<Vec<u8>> {
    let body = node::encode_body(&node.body);
    let message = node::node_signed_message(&store.roster.store, &node.id, &body);
    let signature = signer
        .sign(crypto::NODE_NAMESPACE, &message)
        .map_err(|e| Error::Denied(format!("cannot sign: {e}")))?;
    let plaintext = node::assemble(&body, &signature);
    let mut recipients: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    if let Some(key) = &node.key {
        let identity = age::x25519::Identity::from_str(key.expose_secret())
            .map_err(|_| Error::Value("a node key is malformed".into()))?;
        recipients.push(Box::new(identity.to_public()));
    } else if let Some(own) = &node.body.recipient {
        // A shared folder reached directly: its key is in a parent we cannot read.
        let r = age::x25519::Recipient::from_str(own)
            .map_err(|_| Error::Value("a shared folder's recipient is malformed".into()))?;
        recipients.push(Box::new(r));
    }
    for r in crate::store::member_recipients(roster, &node.id)? {
        recipients.push(r.to_age()?);
    }
    let refs: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r.as_ref() as &dyn age::Recipient)
        .collect();
    crypto::encrypt(&plaintext, &refs).map_err(|e| Error::Value(e.to_string()))
}
