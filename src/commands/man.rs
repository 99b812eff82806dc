//! `sesto man-pages DIR` (hidden): the manual pages, one per command, made
//! from the same definitions as `--help`. The pages in `man/` are checked
//! against these by a test, so they never go stale.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Write sesto's manual pages (sesto.1, sesto-get.1, …) into DIR
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write them (created if missing)
    dir: PathBuf,
}

/// Every page: its file name and its roff text. Hidden commands have none.
/// `root` is sesto's whole command tree (`Cli::command()`).
pub fn pages(root: clap::Command) -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut text = Vec::new();
        man.render(&mut text)?;
        out.push((man.get_filename(), text));
        Ok(())
    }
    let mut cmd = root.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out)?;
    out.sort();
    Ok(out)
}

pub fn run(args: Args, root: clap::Command, out: &mut dyn Write) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let pages = pages(root)?;
    for (name, text) in &pages {
        let path = args.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    writeln!(
        out,
        "Wrote {} manual pages to {}.",
        pages.len(),
        args.dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// The pages in `man/` are what the definitions make today.
    #[test]
    fn checked_in_man_pages_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let pages = super::pages(<crate::cli::Cli as clap::CommandFactory>::command()).unwrap();
        let mut stale = Vec::new();
        for (name, text) in &pages {
            if std::fs::read(dir.join(name)).ok().as_deref() != Some(text.as_slice()) {
                stale.push(name.clone());
            }
        }
        let mut extra: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        extra.retain(|f| !pages.iter().any(|(n, _)| n == f));
        assert!(
            stale.is_empty() && extra.is_empty(),
            "man/ is out of date (stale: {stale:?}, not made any more: {extra:?}); \
             run `rm -r man && cargo run -- man-pages man`"
        );
        assert!(pages.iter().any(|(n, _)| n == "sesto-member-add.1"));
        assert!(!pages.iter().any(|(n, _)| n.contains("merge-driver")));
    }
}
