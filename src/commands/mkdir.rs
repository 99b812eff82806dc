//! `sesto mkdir`: create folders.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Create folders
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Create missing parents too; an existing folder is not an error
    #[arg(short, long)]
    parents: bool,
    /// Folders to create
    #[arg(required = true)]
    paths: Vec<String>,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    for p in &args.paths {
        tx.mkdir(&sesto::SPath::parse(p)?, args.parents)?;
    }
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}
