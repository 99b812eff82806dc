//! `sesto trust`: the admins you trust for this store, and accepting new ones.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::store::trust::TrustMode;

use super::Global;

/// Show the admins you trust for this store, or accept the current ones
///
/// sesto records the admins' key fingerprints on first use and afterwards
/// accepts a new roster only when a chain of admin signatures leads to it.
/// When that fails, check the fingerprints with the admins, then --accept.
/// CI pins admins with SESTO_TRUST (comma-separated SHA256 fingerprints).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trust the roster as it is now
    #[arg(long)]
    accept: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let mode = if args.accept {
        TrustMode::Accept
    } else {
        TrustMode::Skip
    };
    let store = super::open_with(g, mode)?;
    let roster = store.roster();
    let current = sesto::store::trust::admin_fingerprints(roster);
    writeln!(
        out,
        "store {} roster version {}",
        roster.store, roster.version
    )?;
    writeln!(out, "admins now:")?;
    for (name, fp) in &current {
        writeln!(out, "  {name}  {fp}")?;
    }
    match sesto::store::trust::pin_file(&roster.store) {
        Some(file) => match sesto::store::trust::read_pin(&file)? {
            Some(pin) if pin.admins == current => {
                writeln!(out, "trusted (version {}, {})", pin.version, file.display())?
            }
            Some(pin) => {
                writeln!(out, "you trusted version {}, with admins:", pin.version)?;
                for (name, fp) in &pin.admins {
                    writeln!(out, "  {name}  {fp}")?;
                }
            }
            None => writeln!(out, "not trusted yet; the next command trusts these admins")?,
        },
        None => writeln!(
            out,
            "no state directory (XDG_STATE_HOME, HOME): nothing pinned"
        )?,
    }
    Ok(ExitCode::SUCCESS)
}
