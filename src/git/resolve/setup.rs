//! Registering the merge driver (and the diff textconv) in a clone.

use std::path::Path;

use crate::error::{Error, Result};

/// How git should call this executable: `sesto` when that is what `PATH`
/// finds (so an upgrade that moves the binary keeps working), else its
/// absolute path.
fn driver_program() -> Result<String> {
    let exe = std::env::current_exe().map_err(Error::io("cannot find", "the sesto executable"))?;
    let real = std::fs::canonicalize(&exe).unwrap_or(exe.clone());
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("sesto"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) if std::fs::canonicalize(&p).ok().as_ref() == Some(&real) => Ok("sesto".into()),
        _ => Ok(exe.to_string_lossy().into_owned()),
    }
}

/// Registers the merge driver when the clone has none. Returns whether it
/// did.
pub fn ensure_merge_driver(work: &Path) -> Result<bool> {
    let repo = crate::git::open(work)?;
    let config = repo.config()?;
    if config.get_string("merge.sesto.driver").is_ok() {
        return Ok(false);
    }
    setup_git(work, false)?;
    Ok(true)
}

/// Registers sesto's merge driver (and, with `diff`, its textconv) in the
/// repository's `.git/config`, pointing at this executable.
pub fn setup_git(work: &Path, diff: bool) -> Result<()> {
    let repo = crate::git::open(work)?;
    let exe = driver_program()?;
    let quoted = format!("'{}'", exe.replace('\'', "'\\''"));
    let mut config = repo.config()?.open_level(git2::ConfigLevel::Local)?;
    config.set_str("merge.sesto.name", "sesto: merge encrypted nodes")?;
    config.set_str(
        "merge.sesto.driver",
        &format!("{quoted} merge-driver %O %A %B %P"),
    )?;
    if diff {
        config.set_str("diff.sesto.textconv", &format!("{quoted} textconv"))?;
        config.set_bool("diff.sesto.cachetextconv", false)?;
    }
    // A clone of a repository of secrets alone commits each change, as the
    // clone it came from does (`sesto init` chose that there). Judged by
    // what is committed: after `sesto init` beside untracked files the
    // index holds only `.sesto/` too, staged and not committed, and there
    // each change is staged.
    let only_secrets = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_tree().ok())
        .is_some_and(|tree| !tree.is_empty() && tree.iter().all(|e| e.name() == Some(".sesto")));
    if only_secrets {
        if config.get_bool("sesto.commit").is_err() {
            config.set_bool("sesto.commit", true)?;
        }
        // git's settings for an index of many files (as `feature.manyFiles`):
        // a store of 100,000 secrets writes its index in a fraction of the time.
        if config.get_bool("index.skipHash").is_err() {
            config.set_bool("index.skipHash", true)?;
        }
        if config.get_i32("index.version").is_err() {
            config.set_i32("index.version", 4)?;
        }
    }
    Ok(())
}
