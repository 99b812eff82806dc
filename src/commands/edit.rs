//! `sesto edit`: change a secret in $VISUAL / $EDITOR on a private tmpfs file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::editor::Edit;

use crate::cli::Global;

/// Edit a secret in $VISUAL or $EDITOR (a new path creates the secret)
///
/// The plaintext is written to a private 0700 directory on /dev/shm or
/// $XDG_RUNTIME_DIR and removed on every way out, Ctrl-C included. An
/// unchanged or emptied buffer writes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    let Some((_, name)) = path.split_last() else {
        anyhow::bail!("give the path of a secret, e.g. prod/db/password");
    };
    let store = super::open(g)?;
    let current = match store.get(&args.path) {
        Ok(secret) => zeroize::Zeroizing::new(secret.expose_value().to_vec()),
        Err(sesto::Error::NotFound { .. }) => zeroize::Zeroizing::new(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let edited = sesto::editor::edit(&current, name)?;
    if let Some(w) = &edited.warning {
        eprintln!("warning: {w}");
    }
    match edited.edit {
        Edit::Unchanged => eprintln!("{}: unchanged, nothing written", args.path),
        Edit::Emptied => eprintln!(
            "{}: the buffer was emptied, nothing written (use `sesto rm` to remove)",
            args.path
        ),
        Edit::Changed(value) => {
            let mut tx = store.transaction()?;
            tx.set(&path, &value)?;
            super::commit(tx)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
