//! Reads one secret with the library: `cargo run --example read_secret -- PATH`.
//!
//! Run it inside a repository with a sesto store. Identities are found as the
//! `sesto` command finds them (SESTO_IDENTITY, ~/.ssh/id_ed25519, …); keys
//! with a passphrase are refused, since this program has no prompt.

use std::io::Write;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: read_secret PATH")?;
    let sources = sesto::IdentitySources::from_env(Vec::new());
    let ids = sesto::Identities::load(&sources, Arc::new(sesto::format::crypto::NoPassphrase))?;
    let store = sesto::Store::open(&sesto::OpenOptions::default(), ids)?;
    let secret = store.get(&path)?;
    std::io::stdout().write_all(secret.expose_value())?;
    Ok(())
}
