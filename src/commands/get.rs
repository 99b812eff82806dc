//! `sesto get`: print a secret's exact bytes, or one field of a YAML mapping.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Print a secret's value, byte for byte, with nothing added
///
/// With FIELD, the value is read as a YAML mapping and that field is printed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
    /// A field of a secret whose value is a YAML mapping
    field: Option<String>,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let secret = store.get(&args.path)?;
    match &args.field {
        None => out.write_all(secret.expose_value())?,
        Some(name) => out.write_all(
            &sesto::field(secret.expose_value(), name)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.path))?,
        )?,
    }
    Ok(ExitCode::SUCCESS)
}
