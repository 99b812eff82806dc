//! `sesto rm`: remove secrets and folders.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Remove secrets or folders (their files are deleted; git history keeps them)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove folders with everything in them
    #[arg(short, long)]
    recursive: bool,
    /// Paths to remove
    #[arg(required = true)]
    paths: Vec<String>,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    for p in &args.paths {
        tx.remove(&sesto::SPath::parse(p)?, args.recursive)?;
    }
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}
