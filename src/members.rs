//! Roster changes: adding members, signed by an admin, with the root
//! re-encrypted when the admin set changes.
//!
//! A roster change writes `roster.yaml`, `roster.sig` and (for a new admin)
//! the root node in one journaled change. Each new roster names the SHA-256
//! of the one before it, so its history is a chain of admin signatures.

use crate::crypto;
use crate::error::{Error, Result};
use crate::journal::Lock;
use crate::node::{self, Member, Roster};
use crate::store::Store;

impl Store {
    /// Adds a member with a public key (`ssh-ed25519`, `ssh-rsa`, `age1…`).
    /// Only admins may change the roster. A new admin can read the root at once:
    /// the root is re-encrypted to the new admin set in the same change.
    pub fn add_member(&mut self, name: &str, key: &str, admin: bool) -> Result<()> {
        node::check_member_name(name).map_err(Error::Value)?;
        let normalized = crypto::normalize_public(key)?;
        if self.roster.members.contains_key(name) {
            return Err(Error::Exists {
                path: format!("member {name}"),
            });
        }
        if let Some(other) = self.keys.get(&normalized) {
            return Err(Error::Value(format!(
                "that key already belongs to member {other}"
            )));
        }
        let mut next = self.roster.clone();
        next.members.insert(
            name.to_string(),
            Member {
                key: normalized,
                admin,
                signing_key: None,
            },
        );
        self.change_roster(next, admin)
    }

    /// Signs and writes a new roster; with `reencrypt_root`, also rewrites the
    /// root for the new set of admins.
    fn change_roster(&mut self, mut next: Roster, reencrypt_root: bool) -> Result<()> {
        let _lock = Lock::acquire(&self.state)?;
        let me = self
            .me
            .clone()
            .ok_or_else(|| Error::Denied("none of your identities is a member".into()))?;
        if !self.roster.members[&me].admin {
            return Err(Error::Denied(format!(
                "only admins change the roster, and {me} is not one"
            )));
        }
        let signer = crate::tx::signer_for(self, &me)?.clone();
        let old_bytes = self.roster.encode();
        next.version = self.roster.version + 1;
        next.previous = Some(node::sha256_hex(&old_bytes));
        let bytes = next.encode();
        let sig = crypto::sign(&signer, crypto::ROSTER_NAMESPACE, &bytes)
            .map_err(|e| Error::Denied(format!("cannot sign the roster: {e}")))?;
        let root = if reencrypt_root {
            Some(self.read_root()?)
        } else {
            None
        };
        let previous = std::mem::replace(&mut self.roster, next);
        let written = (|| {
            let mut writes = Vec::new();
            if let Some(mut root) = root {
                root.body.version += 1;
                writes.push((
                    self.node_file(&root.id),
                    crate::tx::encode_node(self, &root, &signer)?,
                ));
            }
            writes.push((self.dir.join("roster.sig"), sig.into_bytes()));
            writes.push((self.dir.join("roster.yaml"), bytes));
            crate::tx::write_change(self, &writes, &[])
        })();
        match written {
            Ok(_) => {
                self.reload_keys()?;
                Ok(())
            }
            Err(e) => {
                self.roster = previous;
                Err(e)
            }
        }
    }

    fn reload_keys(&mut self) -> Result<()> {
        self.keys.clear();
        for (name, m) in &self.roster.members {
            for k in std::iter::once(&m.key).chain(m.signing_key.as_ref()) {
                self.keys.insert(crypto::normalize_public(k)?, name.clone());
            }
        }
        Ok(())
    }
}
