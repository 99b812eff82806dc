//! `sesto rm`: remove secrets and folders.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Remove secrets or folders (their files are deleted; git history keeps them)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove folders with everything in them
    #[arg(short, long)]
    recursive: bool,
    /// Do not ask for confirmation on a terminal
    #[arg(short, long)]
    force: bool,
    /// Paths to remove
    #[arg(required = true)]
    paths: Vec<String>,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    // On a terminal, a folder's contents are counted and confirmed first.
    if args.recursive && !args.force && crate::terminal::stdin_is_terminal() {
        let mut secrets = 0;
        let mut folders = Vec::new();
        for p in &args.paths {
            if let Ok(tree) = store.tree(p) {
                secrets += tree.secret_count();
                folders.push(p.as_str());
            }
        }
        if !folders.is_empty()
            && !crate::terminal::confirm(&format!(
                "Remove {} with {secrets} secret{}?",
                folders.join(", "),
                if secrets == 1 { "" } else { "s" }
            ))?
        {
            anyhow::bail!("nothing was removed");
        }
    }
    let mut tx = store.transaction()?;
    for p in &args.paths {
        tx.remove(&sesto::SPath::parse(p)?, args.recursive)?;
    }
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}
