//! `sesto share`: hand one secret to someone outside the store as an age file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Print one secret as an armored age file for someone outside the store
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("sesto share is not built yet")
}
