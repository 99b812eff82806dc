//! The `sesto` command: parse, run, print the error chain with a hint, exit.

mod cli;
mod commands;
mod terminal;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Everything sesto creates is private to the user.
    // SAFETY: umask only changes this process's file creation mask.
    let umask = unsafe { libc::umask(0o077) };
    commands::set_original_umask(umask);
    // Node files carry their own signatures, checked on every read; git's
    // re-hashing of each object read (SHA-1 with collision detection) adds
    // nothing to that and is a large part of reading many folders at once.
    git2::opts::strict_hash_verification(false);
    let cli = cli::Cli::parse();
    pass_identities_on(&cli.global.identities);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = cli::run(cli, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            terminal::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Hands the `-i` keys to whatever sesto runs in turn through git (the merge
/// driver during `sync`, hooks), which would otherwise look for keys of its
/// own: as `SESTO_IDENTITY_FILE`, absolute, since git runs the driver from
/// the work tree's top.
fn pass_identities_on(files: &[std::path::PathBuf]) {
    if files.is_empty() {
        return;
    }
    let absolute: Vec<_> = files
        .iter()
        .filter_map(|f| std::path::absolute(f).ok())
        .collect();
    if let Ok(list) = std::env::join_paths(&absolute) {
        // Before any thread starts: nothing else reads the environment yet.
        std::env::set_var("SESTO_IDENTITY_FILE", list);
        std::env::remove_var("SESTO_IDENTITY");
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
