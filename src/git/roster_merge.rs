//! Merging concurrent roster changes: two admins changed members or grants
//! at once. Each side must follow the common base by an admin's signature;
//! the merge takes every change either side made, and an admin on this side
//! signs the result, which names both parents (`previous` and `merges`) so
//! that readers who trusted either side can follow it.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::format::node::{self, Access, NodeId, Roster};

/// One side's roster as committed: bytes and signature.
pub(crate) struct Side {
    pub(crate) roster: Roster,
    pub(crate) bytes: Vec<u8>,
    sig: Vec<u8>,
}

impl Side {
    /// A roster with its bytes and signature, as read from a commit.
    pub(crate) fn new(roster: Roster, bytes: Vec<u8>, sig: Vec<u8>) -> Side {
        Side { roster, bytes, sig }
    }

    /// Checks that this roster follows `base`: signed by one of its admins,
    /// each step of the way (through git history).
    pub(crate) fn follows(&self, work: &std::path::Path, base: &Side) -> Result<()> {
        if self.bytes == base.bytes {
            return Ok(());
        }
        let target = node::sha256_hex(&base.bytes);
        crate::store::trust::chain_from(work, &self.roster, &self.bytes, &self.sig, &target)
            .map_err(|e| Error::Roster(format!("version {}: {e}", self.roster.version)))
    }
}

/// Merges `ours` and `theirs` against `base`: members and grants added,
/// changed or removed on either side. Both sides changing one member or one
/// grant in different ways cannot be settled here.
pub(crate) fn merge(
    work: &std::path::Path,
    base: &Side,
    ours: &Side,
    theirs: &Side,
) -> Result<Roster> {
    ours.follows(work, base)?;
    theirs.follows(work, base)?;
    let (b, o, t) = (&base.roster, &ours.roster, &theirs.roster);
    if o.sesto < t.sesto {
        return Err(format_behind(work, t.sesto, o.sesto));
    }
    let mut conflicts = Vec::new();
    let members = merge_maps(&b.members, &o.members, &t.members, |name| {
        conflicts.push(format!(
            "member {name} was changed differently on each side"
        ))
    });
    let mut grants: BTreeMap<NodeId, BTreeMap<String, Access>> = BTreeMap::new();
    let ids: BTreeSet<NodeId> = b
        .grants
        .keys()
        .chain(o.grants.keys())
        .chain(t.grants.keys())
        .copied()
        .collect();
    let empty = BTreeMap::new();
    for id in ids {
        let g = merge_maps(
            b.grants.get(&id).unwrap_or(&empty),
            o.grants.get(&id).unwrap_or(&empty),
            t.grants.get(&id).unwrap_or(&empty),
            |name| {
                conflicts.push(format!(
                    "{name}'s grant on folder {id} was changed differently on each side"
                ))
            },
        );
        // Grants of members who are gone go with them.
        let g: BTreeMap<String, Access> = g
            .into_iter()
            .filter(|(m, _)| members.contains_key(m))
            .collect();
        if !g.is_empty() {
            grants.insert(id, g);
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Roster(format!(
            "both sides changed the roster in ways that do not merge: {}; \
             keep one side (`git checkout --ours .sesto/roster.yaml .sesto/roster.sig`), \
             run `sesto resolve`, then redo the other side's change",
            conflicts.join("; ")
        )));
    }
    if members.values().all(|m| !m.admin) {
        return Err(Error::Roster(
            "the merged roster would have no admin".into(),
        ));
    }
    // Ours is in the newer format where they differ (theirs changed the
    // roster before a migration ours made): the work tree is in ours'
    // layout, where `resolve` puts theirs' files too.
    Ok(Roster {
        sesto: o.sesto,
        store: o.store.clone(),
        version: o.version.max(t.version) + 1,
        previous: Some(node::sha256_hex(&ours.bytes)),
        merges: Some(node::sha256_hex(&theirs.bytes)),
        root: o.root,
        members,
        grants,
    })
}

/// The error for a merge of roster changes where theirs moved the store to
/// a newer format than ours: ours' side migrates first (an admin does; `sesto
/// sync` does it before merging), so that both sides' node files are in one
/// layout.
pub(crate) fn format_behind(work: &std::path::Path, theirs: u32, ours: u32) -> Error {
    // In a rebase the sides swap: what is replayed (theirs) is this clone's
    // own migration, and the upstream's roster change is ours. Migrating
    // "here" means nothing then; a merge takes that change into the new
    // format.
    if crate::git::open(work).is_ok_and(|repo| crate::git::sides::rebasing(&repo)) {
        return Error::Roster(format!(
            "this rebase replays a move of the store to format {theirs} (`sesto migrate`) onto \
             a roster change made in format {ours}: give it up (`git rebase --abort`) and merge \
             instead (`sesto sync`, or `git pull --no-rebase` and `sesto resolve`), which takes \
             that change into format {theirs}"
        ));
    }
    Error::Roster(format!(
        "the other side moved the store to format {theirs} (`sesto migrate`) while this \
         side changed the roster in format {ours}: give up this merge (`git merge --abort`), \
         run `sesto migrate` here, and merge again (`sesto sync` does both)"
    ))
}

/// A three-way merge of two maps: a key changed on one side takes that
/// side's value (or absence); changed the same way on both is fine; changed
/// differently is reported through `conflict`.
fn merge_maps<V: Clone + PartialEq>(
    base: &BTreeMap<String, V>,
    ours: &BTreeMap<String, V>,
    theirs: &BTreeMap<String, V>,
    mut conflict: impl FnMut(&str),
) -> BTreeMap<String, V> {
    let keys: BTreeSet<&String> = base
        .keys()
        .chain(ours.keys())
        .chain(theirs.keys())
        .collect();
    let mut out = BTreeMap::new();
    for k in keys {
        let (b, o, t) = (base.get(k), ours.get(k), theirs.get(k));
        let pick = if o == t || t == b {
            o
        } else if o == b {
            t
        } else {
            conflict(k);
            o
        };
        if let Some(v) = pick {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, u8)]) -> BTreeMap<String, u8> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn maps_merge_by_who_changed_what() {
        let base = m(&[("a", 1), ("b", 1), ("c", 1)]);
        let ours = m(&[("a", 2), ("b", 1), ("d", 1)]); // a changed, c removed, d added
        let theirs = m(&[("a", 1), ("c", 1), ("e", 1)]); // b removed, e added
        let mut conflicts = vec![];
        let merged = merge_maps(&base, &ours, &theirs, |k| conflicts.push(k.to_string()));
        assert_eq!(merged, m(&[("a", 2), ("d", 1), ("e", 1)]));
        assert!(conflicts.is_empty());
        let theirs = m(&[("a", 3), ("b", 1), ("c", 1)]);
        let merged = merge_maps(&base, &ours, &theirs, |k| conflicts.push(k.to_string()));
        assert_eq!(conflicts, ["a"]);
        assert_eq!(merged["a"], 2);
    }
}
