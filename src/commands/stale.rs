//! `sesto stale`: secrets whose values a former reader knows.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// List secrets not changed since someone who could read them lost access
///
/// Revoking rotates keys, but a former reader may remember a value: change
/// each listed value (`sesto set`, `sesto generate --force`) and it drops off.
/// Exits 1 while any is listed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: [{"path", "lost_access": [member…]}]
    #[arg(long)]
    json: bool,
    /// Count them by folder instead of naming each
    #[arg(long, conflicts_with = "json")]
    by_folder: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let report = store.fsck(false)?;
    for p in &report.problems {
        eprintln!("warning: {}: {}", p.file, p.detail);
    }
    if args.json {
        let v: Vec<_> = report
            .exposed
            .iter()
            .map(|(p, who)| serde_json::json!({"path": p.to_string(), "lost_access": who}))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else if report.exposed.is_empty() {
        writeln!(out, "No stale secrets.")?;
    } else if args.by_folder {
        let groups = super::by_folder(report.exposed.iter().map(|(p, _)| p));
        for (folder, n) in &groups {
            writeln!(out, "{folder}/  {n}")?;
        }
        writeln!(
            out,
            "{} stale secret{} in {} folder{}.",
            report.exposed.len(),
            if report.exposed.len() == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        )?;
    } else {
        for (p, who) in &report.exposed {
            writeln!(
                out,
                "{p}  (readable by {}, who lost access)",
                who.join(", ")
            )?;
        }
    }
    Ok(if report.exposed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
