//! `sesto hooks`: install sesto's git pre-commit and pre-push hooks.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Global;

/// One of sesto's git hooks, as kept in the repository's hooks/ directory.
struct Hook {
    /// git's name for it, and its file's name.
    name: &'static str,
    /// The script.
    text: &'static str,
}

/// The hooks sesto installs: a scan of what is committed, and a check of
/// what is pushed.
const HOOKS: [Hook; 2] = [
    Hook {
        name: "pre-commit",
        text: include_str!("../../hooks/pre-commit"),
    },
    Hook {
        name: "pre-push",
        text: include_str!("../../hooks/pre-push"),
    },
];

/// The line of each hook that names the binary; install writes sesto's path.
const BINARY_LINE: &str = "sesto=sesto\n";

impl Hook {
    /// How sesto knows its own hook (a line of its text).
    fn mark(&self) -> String {
        format!("# sesto {} hook", self.name)
    }

    /// Where a hook that was there before sesto's is kept, and run from.
    fn chained(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.sesto-chained", self.name))
    }

    fn is_ours(&self, bytes: &[u8]) -> bool {
        String::from_utf8_lossy(bytes).contains(&self.mark())
    }

    /// The hook with this binary's path, so that git clients with a short
    /// PATH find sesto.
    fn text(&self) -> Result<String> {
        assert!(self.text.contains(BINARY_LINE) && self.text.contains(&self.mark()));
        let exe = std::env::current_exe().context("cannot find the sesto binary's path")?;
        let exe = exe.to_string_lossy();
        if exe.contains('\'') || exe.contains('\n') {
            return Ok(self.text.to_string()); // fall back to `sesto` on PATH
        }
        Ok(self
            .text
            .replacen(BINARY_LINE, &format!("sesto='{exe}'\n"), 1))
    }
}

/// Install or remove sesto's git hooks: pre-commit and pre-push
///
/// The pre-commit hook runs `sesto scan --staged` before each `git commit` and
/// refuses the commit when it finds something; it never prompts. The pre-push
/// hook runs `sesto verify --push`: it refuses a push whose commits take a
/// node back to an older signed copy, or remove one against such a copy (what
/// every clone that saw the newer file would refuse after pulling). A hook
/// already in place is kept as <hook>.sesto-chained and run first: when it
/// fails, so does the commit or push. Installing twice changes nothing;
/// uninstall puts the earlier hooks back. The hooks directory is git's
/// (core.hooksPath and worktrees are followed). For the pre-commit framework,
/// use the hooks in this project's .pre-commit-hooks.yaml instead.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: HooksCommand,
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// Install the pre-commit and pre-push hooks, keeping and chaining any hook there
    Install,
    /// Remove sesto's hooks and restore the ones they chained
    Uninstall,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let dir = hooks_dir(g)?;
    match args.command {
        HooksCommand::Install => {
            // Every hook checked before any is written: a refusal changes nothing.
            for hook in &HOOKS {
                check_installable(&dir, hook)?;
            }
            for hook in &HOOKS {
                install(&dir, hook, out)?;
            }
        }
        HooksCommand::Uninstall => {
            for hook in &HOOKS {
                check_removable(&dir, hook)?;
            }
            for hook in &HOOKS {
                uninstall(&dir, hook, out)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to install `hook` where a foreign hook would need chaining but a
/// chained one is kept already.
fn check_installable(dir: &Path, hook: &Hook) -> Result<()> {
    let path = dir.join(hook.name);
    let chained = hook.chained(dir);
    match std::fs::read(&path) {
        Ok(old) if !hook.is_ours(&old) && chained.exists() => anyhow::bail!(
            "{} exists and so does {}: sesto keeps one earlier hook; merge the two \
             into {} and run `sesto hooks install` again",
            path.display(),
            chained.display(),
            chained.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn install(dir: &Path, hook: &Hook, out: &mut dyn Write) -> Result<()> {
    let path = dir.join(hook.name);
    let chained = hook.chained(dir);
    let text = hook.text()?;
    match std::fs::read(&path) {
        Ok(old) if hook.is_ours(&old) => {
            if old == text.as_bytes() {
                writeln!(out, "the sesto {} hook is installed already", hook.name)?;
                return Ok(());
            }
        }
        Ok(_) => {
            std::fs::rename(&path, &chained)
                .with_context(|| format!("cannot move {} aside", path.display()))?;
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
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    write_executable(&path, text.as_bytes())?;
    writeln!(out, "installed {}", path.display())?;
    Ok(())
}

/// Refuses to uninstall where a hook in sesto's place is not sesto's.
fn check_removable(dir: &Path, hook: &Hook) -> Result<()> {
    let path = dir.join(hook.name);
    match std::fs::read(&path) {
        Ok(old) if !hook.is_ours(&old) => anyhow::bail!(
            "{} is not sesto's hook; it is left as it is, and so are the others",
            path.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn uninstall(dir: &Path, hook: &Hook, out: &mut dyn Write) -> Result<()> {
    let path = dir.join(hook.name);
    let chained = hook.chained(dir);
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        writeln!(out, "removed {}", path.display())?;
    } else {
        writeln!(out, "no {} hook is installed", hook.name)?;
    }
    if chained.exists() {
        std::fs::rename(&chained, &path)
            .with_context(|| format!("cannot restore {}", chained.display()))?;
        writeln!(out, "restored the earlier hook as {}", path.display())?;
    }
    Ok(())
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
