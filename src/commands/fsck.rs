//! `sesto fsck`: verify every node and the layout of .sesto/.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Check the whole store: decrypt and verify every node, find orphans
///
/// Exits 1 when a problem remains. --fix removes orphaned node files and
/// temp files left by interrupted writes, and stages the removal.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove orphans and leftover temp files
    #[arg(long)]
    fix: bool,
    /// Print JSON: {"folders", "secrets", "problems": [{"file", "detail", "fixable"}], "fixed"}
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let report = store.fsck(args.fix)?;
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| serde_json::json!({"file": p.file, "detail": p.detail, "fixable": p.fixable}))
            .collect();
        let v = serde_json::json!({
            "folders": report.folders, "secrets": report.secrets,
            "problems": problems, "fixed": report.fixed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for f in &report.fixed {
            writeln!(out, "removed {f}")?;
        }
        for p in &report.problems {
            writeln!(out, "{}: {}", p.file, p.detail)?;
        }
        let verdict = if report.problems.is_empty() {
            "ok".to_string()
        } else {
            format!("{} problem(s)", report.problems.len())
        };
        writeln!(
            out,
            "checked {}, {}: {verdict}",
            plural(report.folders, "folder", "folders"),
            plural(report.secrets, "secret", "secrets")
        )?;
        if report.problems.iter().any(|p| p.fixable) {
            writeln!(
                out,
                "run `sesto fsck --fix` to remove orphans and temp files"
            )?;
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
