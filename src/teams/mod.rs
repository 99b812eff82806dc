//! The teams layer: members, grants and sharing.
//!
//! Owns changing who may read and write what (`members`: add, remove,
//! grant, revoke, with the key rotations they need) and reading the
//! recipients a user types or pastes ([`share`]).
//!
//! May use: [`crate::format`] and [`crate::store`] (every change is one
//! [`crate::store::tx::Tx`]).

mod members;
pub mod share;

pub use members::AccessEntry;
