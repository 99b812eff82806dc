//! The format layer: what a store is made of on disk, with no I/O of its own.
//!
//! Owns the node and roster schema and their byte layout ([`node`]), age
//! encryption, SSH signatures and identities ([`crypto`]), the limits every
//! parser of outside bytes enforces ([`limits`]), the roster log's layout
//! ([`roster_log`]) and timestamps (`time`). `docs/format.md` is the
//! contract these modules implement.
//!
//! May use: `crate::error` and the crates it wraps (age, ssh-key, serde).
//! Nothing here reads the work tree or runs git; the layers above do.

pub mod crypto;
pub mod limits;
pub mod node;
pub mod roster_log;
pub(crate) mod time;
