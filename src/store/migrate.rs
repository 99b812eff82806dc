//! `sesto migrate`: moving a store of format 1 to format 2's layout.
//!
//! Format 2 changed only where node files live (`nodes/3/f/2/a/<id>.age`
//! instead of `nodes/3f/<id>.age`), so the migration moves every node file
//! unchanged and writes a roster, signed by an admin, that says `sesto: 2`.
//! Nothing is decrypted or re-encrypted: git stores no new blob, only new
//! trees, and a node's history carries on under its new path. All of it is
//! one journal transaction, so a run killed at any point is finished by the
//! next sesto command, as any write is.

use crate::error::{Error, Result};
use crate::format::node::{self, NodeId};
use crate::store::tx::Tx;
use crate::store::Store;

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The store format before.
    pub from: u32,
    /// The store format now.
    pub to: u32,
    /// Node files moved to the new layout.
    pub moved: usize,
    /// The roster version that records the new format (none when the store
    /// was in the newest format already).
    pub roster_version: Option<u64>,
}

impl Store {
    /// Moves this store to the newest format ([`node::FORMAT`]): every node
    /// file to its new path, and a roster saying so, in one transaction;
    /// staged, and committed where `sesto.commit` is set. Admins only. A
    /// store in the newest format already is left as it is.
    pub fn migrate(&self) -> Result<Migrated> {
        let from = self.roster.sesto;
        let mut tx = self.transaction()?;
        tx.require_admin("migrate the store")?;
        if from >= node::FORMAT {
            return Ok(Migrated {
                from,
                to: from,
                moved: 0,
                roster_version: None,
            });
        }
        let moved = tx.move_nodes_to(node::FORMAT)?;
        tx.set_summary(format!("move the store to format {}", node::FORMAT));
        let version = tx.roster().version;
        tx.commit()?;
        Ok(Migrated {
            from,
            to: node::FORMAT,
            moved,
            roster_version: Some(version),
        })
    }
}

impl Tx<'_> {
    /// Records a move of every node file in the work tree to where `format`
    /// keeps it, and a roster change to `format`; returns how many files move.
    /// Every file that is a node file where the store's format keeps it moves,
    /// whether or not this member can read it. A symlink, or a file where
    /// both layouts would put one, stops it before anything is recorded.
    fn move_nodes_to(&mut self, format: u32) -> Result<usize> {
        let from = self.store.roster.sesto;
        let dir = &self.store.dir;
        let nodes = dir.join("nodes");
        let mut moves = Vec::new();
        for entry in walkdir::WalkDir::new(&nodes)
            .follow_links(false)
            .min_depth(1)
            .max_depth(node::shard_levels(from) + 1)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| Error::Refused {
                path: nodes.clone(),
                reason: e.to_string(),
            })?;
            if entry.path_is_symlink() {
                return Err(Error::Refused {
                    path: entry.path().to_path_buf(),
                    reason: "symlinks are not allowed in .sesto/; see `sesto fsck`".into(),
                });
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            let Some(id) = rel
                .to_str()
                .and_then(|rel| NodeId::from_rel_path(rel, from))
            else {
                continue;
            };
            let to = dir.join(id.rel_path(format));
            if std::fs::symlink_metadata(&to).is_ok() {
                return Err(Error::Refused {
                    path: to,
                    reason: format!(
                        "a file is already where format {format} keeps node {id}; \
                         remove it (see `sesto fsck`) and migrate again"
                    ),
                });
            }
            moves.push((entry.path().to_path_buf(), to));
        }
        if !self.dirty.is_empty() {
            return Err(Error::Value(
                "a migration changes no node; commit other changes on their own".into(),
            ));
        }
        self.next_roster().sesto = format;
        let count = moves.len();
        self.moves = moves;
        Ok(count)
    }
}
