//! `sesto log`, `sesto show` and `sesto restore`: a secret's history.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// List the versions of one secret: date, author, commit (no values)
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Path of the secret
    path: String,
    /// Print JSON: [{"commit", "date", "author", "version", "updated_by"}]
    #[arg(long)]
    json: bool,
}

/// Print a secret's value, now or as it was at a revision (--rev)
///
/// On a terminal, a newline follows a value that does not end in one; pipes and
/// files get the exact bytes.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Path of the secret (as it was named then)
    path: String,
    /// A git revision: HEAD~3, a commit, a tag (default: the current value)
    #[arg(long)]
    rev: Option<String>,
}

/// Set a secret back to its value at a revision (a new, signed version)
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Path of the secret
    path: String,
    /// A git revision: HEAD~3, a commit, a tag
    #[arg(long)]
    rev: String,
}

pub fn log(g: &Global, args: LogArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let versions = store.log(&args.path)?;
    if args.json {
        let v: Vec<_> = versions
            .iter()
            .map(|v| {
                serde_json::json!({"commit": v.commit, "date": v.date, "author": v.author,
                    "version": v.version, "updated_by": v.updated_by})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for v in &versions {
            writeln!(
                out,
                "{}  {}  version {}  by {} ({})",
                v.commit,
                v.date,
                v.version,
                v.updated_by.as_deref().unwrap_or("?"),
                v.author
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(g: &Global, args: ShowArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    match &args.rev {
        Some(rev) => super::get::write_value(out, store.show(&args.path, rev)?.expose_value())?,
        None => super::get::write_value(out, store.get(&args.path)?.expose_value())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(g: &Global, args: RestoreArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let old = store.show(&args.path, &args.rev)?;
    let path = sesto::SPath::parse(&args.path)?;
    let mut tx = store.transaction()?;
    tx.set(&path, old.expose_value())?;
    super::commit(tx)?;
    writeln!(out, "Restored {path} to its value at {}.", args.rev)?;
    Ok(ExitCode::SUCCESS)
}
