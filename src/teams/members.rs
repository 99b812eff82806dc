//! Team changes: members, grants, revocation with key rotation. Each is a
//! transaction that writes the signed roster together with the nodes it
//! touches, so a change lands whole or not at all.
//!
//! Granting costs the shared folder's node and the roster. Revoking gives
//! every node the member could read a new key (ids stay) and re-signs what
//! they had written, so a kept copy of their key opens nothing written after.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{self, Access, Kind, Member, NodeId};
use crate::store::tx::Tx;
use crate::store::{SPath, Store};

impl Store {
    /// Adds a member with a public key (`ssh-ed25519`, `ssh-rsa`, `age1…`),
    /// in one transaction. Only admins may change the roster.
    pub fn add_member(&mut self, name: &str, key: &str, admin: bool) -> Result<()> {
        let mut tx = self.transaction()?;
        tx.add_member(name, key, None, admin)?;
        let next = tx.roster.clone();
        tx.commit()?;
        self.replace_roster(next.expect("add_member changes the roster"))
    }

    /// Grants `member` read or write access to the folder at `path`, in one
    /// transaction.
    pub fn grant(&mut self, member: &str, path: &str, access: Access) -> Result<()> {
        let mut tx = self.transaction()?;
        tx.grant(member, &SPath::parse(path)?, access)?;
        let next = tx.roster.clone();
        tx.commit()?;
        if let Some(next) = next {
            self.replace_roster(next)?;
        }
        Ok(())
    }

    /// Where each shared folder the current member can see sits: by a walk
    /// of the folders for an admin, by the granted folders for a member.
    pub fn shared_folders(&self) -> Result<BTreeMap<NodeId, SPath>> {
        let mut out = BTreeMap::new();
        if !self.is_admin() {
            for (path, node) in self.tops()? {
                out.insert(node.id, path);
            }
            return Ok(out);
        }
        let root = self.read_root()?;
        if self.roster.grants.contains_key(&root.id) {
            out.insert(root.id, SPath::root());
        }
        let mut level = vec![(root, SPath::root(), vec![self.roster.root])];
        while !level.is_empty() {
            let mut next = Vec::new();
            for (node, path, chain) in level {
                for e in node.body.children.iter().filter(|e| e.kind == Kind::Folder) {
                    if chain.contains(&e.id) || chain.len() > node::MAX_DEPTH {
                        continue; // fsck reports such damage
                    }
                    let mut c = chain.clone();
                    c.push(e.id);
                    let child = self.read_node(&e.id, Some(&e.key), &c)?;
                    let p = path.join(&e.name);
                    if self.roster.grants.contains_key(&e.id) {
                        out.insert(e.id, p.clone());
                    }
                    next.push((child, p, c));
                }
            }
            level = next;
        }
        Ok(out)
    }

    /// Who can read and who can write `path`, and why, member by member.
    pub fn access(&self, path: &str) -> Result<Vec<AccessEntry>> {
        let path = SPath::parse(path)?;
        let chain = self.walk(&path)?;
        let from = path.names().len() + 1 - chain.len();
        let mut out = Vec::new();
        for (name, m) in &self.roster.members {
            if m.admin {
                out.push(AccessEntry {
                    member: name.clone(),
                    access: Access::Write,
                    via: None,
                });
                continue;
            }
            let mut best: Option<(Access, SPath)> = None;
            for (i, n) in chain.iter().enumerate() {
                if let Some(a) = self.roster.grants.get(&n.id).and_then(|g| g.get(name)) {
                    let at = SPath::parse(&path.names()[..from + i].join("/"))?;
                    if best
                        .as_ref()
                        .is_none_or(|(b, _)| *a == Access::Write && *b == Access::Read)
                    {
                        best = Some((*a, at));
                    }
                }
            }
            if let Some((access, at)) = best {
                out.push(AccessEntry {
                    member: name.clone(),
                    access,
                    via: Some(at),
                });
            }
        }
        Ok(out)
    }

    /// Takes over a roster this process wrote and signed.
    fn replace_roster(&mut self, roster: node::Roster) -> Result<()> {
        self.roster = roster;
        self.tops = Default::default();
        self.keys = crate::store::member_keys(&self.roster)?;
        Ok(())
    }
}

/// One member's access to a path, as [`Store::access`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// The member.
    pub member: String,
    /// Read, or read and write.
    pub access: Access,
    /// The granted folder it comes from; `None` for an admin.
    pub via: Option<SPath>,
}

impl Tx<'_> {
    /// Adds a member. `key` is their SSH or age public key; `signing_key` an
    /// SSH key to sign with when `key` is an age recipient.
    pub fn add_member(
        &mut self,
        name: &str,
        key: &str,
        signing_key: Option<&str>,
        admin: bool,
    ) -> Result<()> {
        self.require_admin("add members")?;
        node::check_member_name(name).map_err(Error::Value)?;
        let key = crypto::check_member_key(key)?;
        let signing_key = signing_key.map(crypto::check_signing_key).transpose()?;
        if self.roster().members.contains_key(name) {
            return Err(Error::Exists {
                path: format!("member {name}"),
            });
        }
        for k in std::iter::once(&key).chain(signing_key.as_ref()) {
            if let Some(other) = self.store.keys.get(k) {
                return Err(Error::Value(format!(
                    "that key ({}) already belongs to member {other}",
                    crypto::fingerprint(k)
                )));
            }
        }
        if signing_key.as_ref() == Some(&key) {
            return Err(Error::Value(
                "the signing key is the member's key already".into(),
            ));
        }
        self.next_roster().members.insert(
            name.to_string(),
            Member {
                key,
                admin,
                signing_key,
            },
        );
        if admin {
            // The root is encrypted to the admins.
            let root = self.store.roster.root;
            self.dirty.insert(root);
        }
        Ok(())
    }

    /// Grants `member` access to the folder at `path` and everything below:
    /// its node is re-encrypted to the member's key, nothing else is touched.
    /// Lowering write to read re-signs what the member wrote there.
    /// Returns the access the member had there before (`None`: none); the
    /// same access as before changes nothing.
    pub fn grant(&mut self, member: &str, path: &SPath, access: Access) -> Result<Option<Access>> {
        self.require_admin("grant access")?;
        let m = self
            .roster()
            .members
            .get(member)
            .ok_or_else(|| unknown_member(member))?;
        if m.admin {
            return Err(Error::Value(format!(
                "{member} is an admin and reads and writes everything already"
            )));
        }
        if access == Access::Write && m.signer_key().is_none() {
            return Err(Error::Value(format!(
                "{member} has only an age key and cannot sign writes; add an SSH signing key \
                 (sesto member remove {member}, then sesto member add {member} --key … --signing-key …)"
            )));
        }
        let id = self.resolve(path)?;
        if self.node(&id).body.kind != Kind::Folder {
            return Err(Error::Value(format!(
                "{path} is a secret; grants are on folders (grant the folder that holds it)"
            )));
        }
        let before = self
            .roster()
            .grants
            .get(&id)
            .and_then(|g| g.get(member))
            .copied();
        if before == Some(access) {
            return Ok(before);
        }
        self.next_roster()
            .grants
            .entry(id)
            .or_default()
            .insert(member.to_string(), access);
        self.dirty.insert(id);
        if before == Some(Access::Write) {
            self.resign_below(id)?;
        }
        Ok(before)
    }

    /// Takes `member`'s grant on the folder at `path` away and rotates the
    /// keys of everything they could read there and no longer can. Returns
    /// the secrets they could read, whose values should change too.
    pub fn revoke(&mut self, member: &str, path: &SPath) -> Result<Vec<SPath>> {
        self.require_admin("revoke access")?;
        if !self.roster().members.contains_key(member) {
            return Err(unknown_member(member));
        }
        let id = self.resolve(path)?;
        let before = self.roster().clone();
        let next = self.next_roster();
        let removed = next.grants.get_mut(&id).and_then(|g| g.remove(member));
        if removed.is_none() {
            return Err(Error::Value(format!(
                "{member} has no grant on {path}; `sesto access {path}` shows who has"
            )));
        }
        if next.grants.get(&id).is_some_and(|g| g.is_empty()) {
            next.grants.remove(&id);
        }
        self.dirty.insert(id);
        self.rotate_lost(member, &[id], &before)
    }

    /// Removes a member: every grant goes, every node they could read gets a
    /// new key. Returns the secrets they could read.
    pub fn remove_member(&mut self, member: &str) -> Result<Vec<SPath>> {
        let me = self.require_admin("remove members")?;
        let before = self.roster().clone();
        let m = before
            .members
            .get(member)
            .ok_or_else(|| unknown_member(member))?;
        if member == me {
            return Err(Error::Value(
                "you cannot remove yourself; ask another admin".into(),
            ));
        }
        let root = before.root;
        let subtrees: Vec<NodeId> = if m.admin {
            vec![root]
        } else {
            let granted: Vec<NodeId> = before
                .grants
                .iter()
                .filter(|(_, g)| g.contains_key(member))
                .map(|(id, _)| *id)
                .collect();
            // Grants name ids; find where those folders sit.
            let mut found = Vec::new();
            if granted.contains(&root) {
                found.push(root);
            }
            if !granted.is_empty() {
                for id in self.load_subtree(root, true)? {
                    if granted.contains(&id) {
                        found.push(id);
                    }
                }
            }
            found
        };
        let next = self.next_roster();
        next.members.remove(member);
        for g in next.grants.values_mut() {
            g.remove(member);
        }
        next.grants.retain(|_, g| !g.is_empty());
        if m.admin {
            self.dirty.insert(root);
        }
        for id in &subtrees {
            self.dirty.insert(*id);
        }
        self.rotate_lost(member, &subtrees, &before)
    }

    /// Rekeys every node below `tops` that `member` could read under `before`
    /// and cannot now, marks their secrets as exposed to them, and re-signs
    /// nodes whose signer may no longer write them.
    fn rotate_lost(
        &mut self,
        member: &str,
        tops: &[NodeId],
        before: &node::Roster,
    ) -> Result<Vec<SPath>> {
        let mut ids = Vec::new();
        for top in tops {
            ids.push(*top);
            ids.extend(self.load_subtree(*top, false)?);
        }
        ids.sort();
        ids.dedup();
        let mut exposed = Vec::new();
        for id in ids {
            let chain = self.chain_of(id);
            let lost = before.may_read(member, &chain) && !self.roster().may_read(member, &chain);
            if lost {
                self.rekey(id);
                if self.node(&id).body.kind == Kind::Secret {
                    exposed.push(self.path_of(id));
                    let body = &mut self.node_mut(id).body;
                    if !body.exposed_to.iter().any(|m| m == member) {
                        body.exposed_to.push(member.to_string());
                        body.exposed_to.sort();
                    }
                }
            }
            self.resign_if_needed(id);
        }
        exposed.sort();
        Ok(exposed)
    }

    /// Marks every node below `top` whose signer may no longer write it, so
    /// the commit re-signs it.
    pub(crate) fn resign_below(&mut self, top: NodeId) -> Result<()> {
        let mut ids = vec![top];
        ids.extend(self.load_subtree(top, false)?);
        for id in ids {
            self.resign_if_needed(id);
        }
        Ok(())
    }

    /// Marks a loaded node for writing when its signer may no longer write
    /// it under the roster this transaction writes.
    fn resign_if_needed(&mut self, id: NodeId) {
        let chain = self.chain_of(id);
        let signer = &self.node(&id).signer;
        if !signer.is_empty() && !self.roster().may_write(signer, &chain) {
            self.dirty.insert(id);
        }
    }
}

fn unknown_member(name: &str) -> Error {
    Error::Value(format!(
        "no member named {name:?}; `sesto member list` shows the members"
    ))
}
