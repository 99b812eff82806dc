//! The local layer: what happens on the user's machine around the store.
//!
//! Owns the passphrase agent ([`agent`]), the clipboard ([`clipboard`]),
//! editing in `$EDITOR` with plaintext on tmpfs only ([`editor`]), generated
//! values ([`generate`]) and one-time codes ([`otp`]), shell completion
//! ([`complete`]), imports from other tools ([`import`]) and progress on a
//! terminal (`progress`).
//!
//! May use: [`crate::format`] and [`crate::store`]. The library knows
//! nothing of terminals beyond this: the binary owns prompts and output.

pub mod agent;
pub mod clipboard;
pub mod complete;
pub mod editor;
pub mod generate;
pub mod import;
pub mod otp;
pub(crate) mod progress;
