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
    let cli = cli::Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = commands::run(cli, &mut out).and_then(|code| {
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
