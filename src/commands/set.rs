//! `sesto set`: store a value from stdin, a file, or a no-echo prompt.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::Global;

/// Set a secret's value, creating missing folders (like mkdir -p)
///
/// The value is read from --file, else from stdin when it is not a terminal
/// (the exact bytes: `printf %s "$value"` stores no newline), else from a
/// prompt that does not echo.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret, e.g. prod/db/password
    path: String,
    /// Read the value from this file (up to 16 MiB, any bytes)
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    if path.is_root() {
        anyhow::bail!("give the path of a secret, e.g. prod/db/password");
    }
    let store = super::open(g)?;
    let value = match &args.file {
        Some(f) => {
            let file =
                std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
            super::read_capped(file, &f.display().to_string())
                .with_context(|| format!("cannot read {}", f.display()))?
        }
        None if crate::terminal::stdin_is_terminal() => prompt_value(&args.path)?,
        None => super::read_capped(std::io::stdin().lock(), "stdin")?,
    };
    if value.is_empty() {
        anyhow::bail!(
            "the value is empty; nothing was changed (to remove a secret, use `sesto rm`)"
        );
    }
    let mut tx = store.transaction()?;
    tx.set(&path, &value)?;
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}

fn prompt_value(path: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let first = zeroize::Zeroizing::new(rpassword::prompt_password(format!("Value for {path}: "))?);
    let again = zeroize::Zeroizing::new(rpassword::prompt_password("Again: ")?);
    if first != again {
        anyhow::bail!("the two values differ; nothing was changed");
    }
    if first.is_empty() {
        anyhow::bail!("empty value; nothing was changed");
    }
    Ok(zeroize::Zeroizing::new(first.as_bytes().to_vec()))
}
