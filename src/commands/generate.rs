//! `sesto generate`: store a new random password or passphrase.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Global;

/// Generate a random password (or diceware passphrase) and store it
///
/// The value is not printed unless --print is given; read it with `sesto get`,
/// or copy it with --clip. An existing secret is only replaced with --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
    /// Password length in characters (8-4096)
    #[arg(long, short = 'l', default_value_t = 32, conflicts_with = "words")]
    length: usize,
    /// A passphrase of N words from the EFF wordlist instead (3-64)
    #[arg(long, short = 'w', value_name = "N")]
    words: Option<usize>,
    /// Letters and digits only
    #[arg(long, conflicts_with = "words")]
    no_symbols: bool,
    /// Replace an existing secret
    #[arg(long)]
    force: bool,
    /// Print the new value once on stdout (and "Stored …" on stderr)
    #[arg(long, conflicts_with = "clip")]
    print: bool,
    /// Copy the new value to the clipboard; cleared after 45 s (SESTO_CLIP_TIME seconds)
    #[arg(long, short = 'c')]
    clip: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    if path.is_root() {
        anyhow::bail!("give the path of a secret, e.g. prod/api/token");
    }
    // Before anything is stored: a missing clipboard tool fails here.
    let clip = args.clip.then(super::clip::Clip::prepare).transpose()?;
    let value = match args.words {
        Some(n) => sesto::local::generate::passphrase(n)?,
        None => sesto::local::generate::password(args.length, !args.no_symbols)?,
    };
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    if !args.force && tx.get(&path).is_ok() {
        anyhow::bail!("{path} already exists; pass --force to replace it");
    }
    tx.set(&path, value.as_bytes())?;
    super::commit(tx)?;
    let what = match args.words {
        Some(n) => format!("a {n}-word passphrase"),
        None => format!("a {}-character password", args.length),
    };
    if args.print {
        eprintln!("Stored {what} at {path}.");
        super::get::write_value(out, value.as_bytes())?;
    } else {
        writeln!(out, "Stored {what} at {path}.")?;
    }
    if let Some(clip) = clip {
        clip.copy(value.as_bytes(), &path.to_string())
            .with_context(|| {
                format!("{path} is stored, but not copied; `sesto get -c {path}` copies it")
            })?;
    }
    Ok(ExitCode::SUCCESS)
}
