//! `sesto otp`: the current TOTP code of a secret.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Print the current TOTP code of a secret
///
/// The secret holds an otpauth://totp/ URI, a base32 secret, or a YAML
/// mapping with an `otpauth`, `otp` or `totp` field holding either.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let secret = store.get(&args.path)?;
    let now = match std::env::var("SESTO_NOW") {
        Ok(text) => {
            let secs = sesto::parse_rfc3339(&text).ok_or_else(|| {
                anyhow::anyhow!("SESTO_NOW={text:?} is not a time like 2026-01-01T00:00:00Z")
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64)
        }
        Err(_) => std::time::SystemTime::now(),
    };
    let code = sesto::otp::current_code(secret.expose_value(), now)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.path))?;
    writeln!(out, "{}", code.code)?;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("valid for {} more seconds", code.remaining_seconds);
    }
    Ok(ExitCode::SUCCESS)
}
