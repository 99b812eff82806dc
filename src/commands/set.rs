//! `sesto set`: store a value from stdin, a file, or a no-echo prompt.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Global;

/// Set a secret's value, creating missing folders (like mkdir -p)
///
/// The value is read from --file, else from stdin when it is not a terminal
/// (the exact bytes: `printf %s "$value"` stores no newline), else from a
/// prompt that does not echo (with -m, everything typed until Ctrl-D). Never
/// from the command line, where it would stay in your shell's history.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto set prod/db/password              # asks twice, without echo\n  \
    sesto set -m prod/tls/key               # paste a PEM, then Ctrl-D\n  \
    printf %s \"$TOKEN\" | sesto set ci/token\n  \
    sesto set --file cert.pem prod/tls/cert")]
pub struct Args {
    /// Path of the secret, e.g. prod/db/password
    path: String,
    /// Never given here: a value on the command line is refused with a hint
    #[arg(hide = true, allow_hyphen_values = true)]
    value: Option<String>,
    /// Read the value from this file (up to 11 MiB, any bytes)
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// On a terminal, read several lines (a key, a certificate) until Ctrl-D
    #[arg(long, short = 'm', conflicts_with = "file")]
    multiline: bool,
    /// Replace an existing secret without asking
    #[arg(long, short = 'f')]
    force: bool,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    if args.value.is_some() {
        // The value is not repeated: it is on the screen and in the history
        // already, and should go no further.
        anyhow::bail!(
            "sesto set takes the value from a prompt, stdin or --file, never from the command \
             line, where it stays in your shell's history and shows in `ps`. Run \
             `sesto set {}` and type it at the prompt (-m for several lines), or pipe it in. \
             If that was a real value, remove it from your history and change it",
            args.path
        );
    }
    let path = sesto::SPath::parse(&args.path)?;
    if path.is_root() {
        anyhow::bail!("give the path of a secret, e.g. prod/db/password");
    }
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let interactive = args.file.is_none() && crate::terminal::stdin_is_terminal();
    if interactive
        && !args.force
        && tx.get(&path).is_ok()
        && !crate::terminal::confirm(&format!("{path} exists; replace its value?"))?
    {
        anyhow::bail!("{path} was left as it was");
    }
    let value = match &args.file {
        Some(f) => {
            let file =
                std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
            super::read_capped(file, &f.display().to_string())
                .with_context(|| format!("cannot read {}", f.display()))?
        }
        None if interactive && args.multiline => prompt_lines(&args.path)?,
        None if interactive => prompt_value(&args.path)?,
        None => super::read_capped(std::io::stdin().lock(), "stdin")?,
    };
    if value.is_empty() {
        anyhow::bail!(
            "the value is empty; nothing was changed (to remove a secret, use `sesto rm`)"
        );
    }
    tx.set(&path, &value)?;
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}

fn prompt_value(path: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let first = zeroize::Zeroizing::new(rpassword::prompt_password(format!(
        "Value for {path} (one line; for several, use sesto set -m): "
    ))?);
    // A pasted key or certificate arrives as several lines at once: the
    // rest would be taken as the confirmation and then run by the shell.
    if crate::terminal::discard_pending_input() {
        anyhow::bail!(
            "that was several lines; nothing was changed and the rest was discarded. \
             Use `sesto set -m {path}` for a multi-line value"
        );
    }
    let again = zeroize::Zeroizing::new(rpassword::prompt_password("Again: ")?);
    crate::terminal::discard_pending_input();
    if first != again {
        anyhow::bail!("the two values differ; nothing was changed");
    }
    if first.is_empty() {
        anyhow::bail!("empty value; nothing was changed");
    }
    Ok(zeroize::Zeroizing::new(first.as_bytes().to_vec()))
}

/// Reads everything typed until end of input (Ctrl-D), echoed so that a
/// pasted key can be seen whole: nothing is left for the shell to run.
fn prompt_lines(path: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    eprintln!("Value for {path}: type or paste it, then press Ctrl-D on a line of its own.");
    super::read_capped(std::io::stdin().lock(), "the value")
}
