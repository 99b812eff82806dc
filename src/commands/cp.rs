//! `sesto cp`: copy a secret, or a folder with everything in it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::format::node::Kind;
use sesto::SPath;

use super::Global;

/// Copy a secret, or with -r a folder and everything in it
///
/// The copies are new secrets with keys of their own; the original is left
/// as it is. Onto an existing folder: into it, under the same name.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto cp prod/db/password staging/db/password\n  \
    sesto cp -r prod/app staging         # makes staging/app")]
pub struct Args {
    /// What to copy
    from: String,
    /// New path, or an existing folder to copy into
    to: String,
    /// Copy a folder with everything in it
    #[arg(short, long)]
    recursive: bool,
    /// Replace secrets that exist at the destination
    #[arg(short, long)]
    force: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let from = SPath::parse(&args.from)?;
    let mut to = SPath::parse(&args.to)?;
    if from.is_root() {
        anyhow::bail!("the whole store cannot be copied; name a folder or a secret");
    }
    let store = super::open(g)?;
    // A secret has no tree; a folder does (and fails `get`).
    let tree = match store.tree(&args.from) {
        Ok(t) => t,
        Err(_) if store.get(&args.from).is_ok() => sesto::Tree {
            name: String::new(),
            kind: Kind::Secret,
            children: Vec::new(),
            unreadable: None,
        },
        Err(e) => return Err(e.into()),
    };
    // A partial copy would pass for a whole one.
    if let Some((path, why)) = tree.unreadable().first() {
        anyhow::bail!("{}/: cannot copy what it holds: {why}", join(&from, path));
    }
    if store.tree(&args.to).is_ok() {
        let (_, name) = from.split_last().expect("the root was refused above");
        to = to.join(name);
    }
    if to.starts_with(&from) {
        anyhow::bail!("{to} is inside {from}; copy it somewhere else");
    }
    // (relative path below `from`, absolute destination) for each secret.
    let secrets: Vec<(SPath, SPath)> = match tree.kind {
        Kind::Secret => vec![(from.clone(), to.clone())],
        Kind::Folder if !args.recursive => {
            anyhow::bail!("{from} is a folder; copy it with everything in it with -r")
        }
        Kind::Folder => tree
            .paths()
            .into_iter()
            .filter(|(_, k)| *k == Kind::Secret)
            .map(|(rel, _)| (join(&from, &rel), join(&to, &rel)))
            .collect(),
    };
    let mut tx = store.transaction()?;
    if !args.force {
        let taken: Vec<String> = secrets
            .iter()
            .filter(|(_, dest)| tx.get(dest).is_ok())
            .map(|(_, dest)| dest.to_string())
            .take(5)
            .collect();
        if !taken.is_empty() {
            anyhow::bail!(
                "{} exist{} already; pass --force to replace",
                taken.join(", "),
                if taken.len() == 1 { "s" } else { "" }
            );
        }
    }
    if tree.kind == Kind::Folder {
        tx.mkdir(&to, true)?;
    }
    for (src, dest) in &secrets {
        let value = tx.get(src)?;
        tx.set(dest, value.expose_secret())?;
    }
    super::commit(tx)?;
    writeln!(
        out,
        "Copied {from} to {to}{}.",
        if tree.kind == Kind::Folder {
            format!(
                " ({} secret{})",
                secrets.len(),
                if secrets.len() == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

fn join(base: &SPath, rel: &SPath) -> SPath {
    rel.names().iter().fold(base.clone(), |p, n| p.join(n))
}
