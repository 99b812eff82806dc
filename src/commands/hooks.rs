//! `sesto hooks`: install sesto's git pre-commit hook.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Global;

/// The hook, as kept in the repository's hooks/ directory.
const HOOK: &str = include_str!("../../hooks/pre-commit");

/// The line of [`HOOK`] that names the binary; install writes sesto's path.
const BINARY_LINE: &str = "sesto=sesto\n";

/// How sesto knows its own hook (a line of [`HOOK`]).
const MARK: &str = "# sesto pre-commit hook";

/// Where a hook that was there before sesto's is kept, and run from.
const CHAINED: &str = "pre-commit.sesto-chained";

/// Install or remove sesto's git pre-commit hook
///
/// The hook runs `sesto scan --staged` before each `git commit` and refuses
/// the commit when it finds something; it never prompts. A pre-commit hook
/// already in place is kept as pre-commit.sesto-chained and run first: when
/// it fails, the commit is refused. Installing twice changes nothing;
/// uninstall puts the earlier hook back. The hooks directory is git's
/// (core.hooksPath and worktrees are followed). For the pre-commit framework,
/// use the hooks in this project's .pre-commit-hooks.yaml instead.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: HooksCommand,
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// Install the pre-commit hook, keeping and chaining any hook there
    Install,
    /// Remove sesto's pre-commit hook and restore the one it chained
    Uninstall,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let dir = hooks_dir(g)?;
    let hook = dir.join("pre-commit");
    let chained = dir.join(CHAINED);
    match args.command {
        HooksCommand::Install => install(&dir, &hook, &chained, out)?,
        HooksCommand::Uninstall => uninstall(&hook, &chained, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn install(dir: &Path, hook: &Path, chained: &Path, out: &mut dyn Write) -> Result<()> {
    let text = hook_text()?;
    match std::fs::read(hook) {
        Ok(old) if is_ours(&old) => {
            if old == text.as_bytes() {
                writeln!(out, "the sesto pre-commit hook is installed already")?;
                return Ok(());
            }
        }
        Ok(_) => {
            if chained.exists() {
                anyhow::bail!(
                    "{} exists and so does {}: sesto keeps one earlier hook; merge the two \
                     into {} and run `sesto hooks install` again",
                    hook.display(),
                    chained.display(),
                    chained.display()
                );
            }
            std::fs::rename(hook, chained)
                .with_context(|| format!("cannot move {} aside", hook.display()))?;
            writeln!(
                out,
                "kept the existing hook as {}; it runs first",
                chained.display()
            )?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", hook.display())),
    }
    write_executable(hook, text.as_bytes())?;
    writeln!(out, "installed {}", hook.display())?;
    Ok(())
}

fn uninstall(hook: &Path, chained: &Path, out: &mut dyn Write) -> Result<()> {
    match std::fs::read(hook) {
        Ok(old) if is_ours(&old) => {
            std::fs::remove_file(hook)
                .with_context(|| format!("cannot remove {}", hook.display()))?;
            writeln!(out, "removed {}", hook.display())?;
        }
        Ok(_) => anyhow::bail!(
            "{} is not sesto's hook; it is left as it is",
            hook.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            writeln!(out, "no pre-commit hook is installed")?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", hook.display())),
    }
    if chained.exists() {
        std::fs::rename(chained, hook)
            .with_context(|| format!("cannot restore {}", chained.display()))?;
        writeln!(out, "restored the earlier hook as {}", hook.display())?;
    }
    Ok(())
}

fn is_ours(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains(MARK)
}

/// The hook with this binary's path, so that git clients with a short PATH
/// find sesto.
fn hook_text() -> Result<String> {
    assert!(HOOK.contains(BINARY_LINE) && HOOK.contains(MARK));
    let exe = std::env::current_exe().context("cannot find the sesto binary's path")?;
    let exe = exe.to_string_lossy();
    if exe.contains('\'') || exe.contains('\n') {
        return Ok(HOOK.to_string()); // fall back to `sesto` on PATH
    }
    Ok(HOOK.replacen(BINARY_LINE, &format!("sesto='{exe}'\n"), 1))
}

/// Writes `bytes` to `path` through a temporary file, mode 0755.
fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// git's hooks directory for this repository (`git rev-parse --git-path
/// hooks`), which follows core.hooksPath and linked worktrees.
fn hooks_dir(g: &Global) -> Result<PathBuf> {
    let start = super::start_dir(g)?;
    let out = super::git_stdout(&start, &["rev-parse", "--git-path", "hooks"])
        .with_context(|| format!("{} is not in a git repository", start.display()))?;
    let text = String::from_utf8(out).context("git's hooks path is not UTF-8")?;
    Ok(start.join(text.trim_end_matches('\n')))
}
