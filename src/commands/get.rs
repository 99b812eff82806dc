//! `sesto get`: print a secret's exact bytes, or one field of a YAML mapping, or
//! copy it to the clipboard.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Print a secret's value, byte for byte, or copy it to the clipboard
///
/// With FIELD, the value is read as a YAML mapping and that field is used. On a
/// terminal, a newline follows a value that does not end in one; pipes and files
/// get the exact bytes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
    /// A field of a secret whose value is a YAML mapping
    field: Option<String>,
    /// Copy to the clipboard instead of printing; cleared after 45 s (SESTO_CLIP_TIME
    /// seconds) unless it changed. One trailing newline is left out
    #[arg(long, short = 'c')]
    clip: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let clip = args.clip.then(super::clip::Clip::prepare).transpose()?;
    let store = super::open(g)?;
    let secret = store.get(&args.path)?;
    let value = match &args.field {
        None => zeroize::Zeroizing::new(secret.expose_value().to_vec()),
        Some(name) => sesto::field(secret.expose_value(), name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.path))?,
    };
    match (&clip, &args.field) {
        (Some(clip), None) => clip.copy(&value, &args.path)?,
        (Some(clip), Some(name)) => clip.copy(&value, &format!("{} (field {name})", args.path))?,
        (None, _) => write_value(out, &value)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a value as it is, and a newline after it where stdout is a terminal and
/// the value does not end in one, so that the prompt starts on a line of its own.
pub fn write_value(out: &mut dyn Write, value: &[u8]) -> std::io::Result<()> {
    out.write_all(value)?;
    if !value.is_empty() && !value.ends_with(b"\n") && std::io::stdout().is_terminal() {
        out.write_all(b"\n")?;
    }
    Ok(())
}
