//! sesto: a secrets store that lives inside a git repository.
//!
//! Every folder and every secret is one standard age file under a random id in
//! `.sesto/nodes/`, so the repository shows neither names nor structure. A
//! secret's key is held by its folder, a folder's key by its parent, and the
//! root is encrypted to the store's admins. Every node carries an SSH
//! signature (SSHSIG) of a member allowed to write it, and every read checks
//! it. `DESIGN.md` in the repository describes the format.
//!
//! The library knows nothing of terminals: passphrase prompts come in through
//! [`Passphrase`], and errors are values.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # git2::Repository::init(tmp.path())?;
//! # std::env::set_var("XDG_STATE_HOME", tmp.path().join("state"));
//! # let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)?;
//! # let key_text = key.to_openssh(ssh_key::LineEnding::LF)?;
//! use sesto::{init, InitOptions, OpenOptions, Store};
//!
//! // The first admin's SSH private key (here made in memory; usually ~/.ssh/id_ed25519).
//! let ids = sesto::identities_from_text(&key_text)?;
//! let options = InitOptions { start: Some(tmp.path().into()), name: Some("alice".into()), ..Default::default() };
//! init(&options, ids)?;
//!
//! // Later, or in another process: open the store and use it.
//! let ids = sesto::identities_from_text(&key_text)?;
//! let options = OpenOptions { start: Some(tmp.path().into()), ..Default::default() };
//! let store = Store::open(&options, ids)?;
//! store.set("prod/db/password", b"correct horse")?;
//! assert_eq!(store.get("prod/db/password")?.expose_value(), b"correct horse");
//! assert_eq!(store.list("prod")?[0].name, "db");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

// The layers, from the bytes on disk up; each module says what it may use.
pub mod deploy;
mod error;
pub mod format;
pub mod git;
pub mod local;
mod par;
pub mod store;
pub mod teams;

pub use error::{Error, Result};
pub use format::crypto::{Identities, Identity, IdentitySources, Passphrase};
pub use format::node::Access;
pub use format::time::{format_rfc3339, now_rfc3339, parse_rfc3339};
pub use store::init::{init, InitOptions, Initialized, GITATTRIBUTES};
pub use store::read::{field, Found, Listing, Secret, Tree};
pub use store::tx::{Committed, Tx};
pub use store::{find_work_tree, identities_from_text, Node, OpenOptions, SPath, Store};
pub use teams::AccessEntry;
