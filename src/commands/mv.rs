//! `sesto mv`: rename or move a secret or folder.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Rename or move a secret or folder (onto an existing folder: into it)
///
/// A rename within a folder rewrites only that folder; a move rewrites the
/// old and the new parent. The moved secrets keep their keys and ids.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to move
    from: String,
    /// New path, or an existing folder to move into
    to: String,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    tx.rename(
        &sesto::SPath::parse(&args.from)?,
        &sesto::SPath::parse(&args.to)?,
    )?;
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}
