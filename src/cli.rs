//! Command-line definitions. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// sesto: secrets in your git repository, one encrypted file per folder and
/// secret, names hidden, every write signed.
#[derive(Debug, Parser)]
#[command(
    name = "sesto",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Exit codes: 0 success, 1 failure, 2 usage error.\n\
Identities: the -i files if given; else SESTO_IDENTITY (key text) and\n\
SESTO_IDENTITY_FILE if set; else ~/.config/sesto/identity, ~/.ssh/id_ed25519, ~/.ssh/id_rsa.\n\
Keys in ssh-agent (SSH_AUTH_SOCK) sign writes too; with -i, only those of the -i files.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Without a command, in a store: the tree of what you can read
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options for every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Use the store of this directory instead of searching upwards from here
    #[arg(long, global = true, env = "SESTO_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Identity file: an OpenSSH private key or an age identity file (repeatable)
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(commands::init::Args),
    Set(commands::set::Args),
    Get(commands::get::Args),
    Edit(commands::edit::Args),
    Ls(commands::ls::Args),
    Tree(commands::tree::Args),
    Mkdir(commands::mkdir::Args),
    Mv(commands::mv::Args),
    Cp(commands::cp::Args),
    Rm(commands::rm::Args),
    Find(commands::find::Args),
    Grep(commands::grep::Args),
    Generate(commands::generate::Args),
    Otp(commands::otp::Args),
    Fsck(commands::fsck::Args),
    Member(commands::member::Args),
    Grant(commands::grant::Args),
    Revoke(commands::grant::RevokeArgs),
    Access(commands::access::Args),
    Whoami(commands::whoami::Args),
    Unlock(commands::agent::UnlockArgs),
    Lock(commands::agent::LockArgs),
    Agent(commands::agent::AgentArgs),
    Verify(commands::verify::Args),
    Stale(commands::stale::Args),
    Share(commands::share::Args),
    Trust(commands::trust::Args),
    SshAgentIdentity(commands::ssh_agent_identity::Args),
    Sync(commands::sync::SyncArgs),
    Resolve(commands::sync::ResolveArgs),
    SetupGit(commands::sync::SetupGitArgs),
    Log(commands::log::LogArgs),
    Show(commands::log::ShowArgs),
    Restore(commands::log::RestoreArgs),
    #[command(hide = true)]
    MergeDriver(commands::sync::MergeDriverArgs),
    #[command(hide = true)]
    Textconv(commands::sync::TextconvArgs),
    Exec(commands::exec::Args),
    Export(commands::export::Args),
    Import(commands::import::Args),
    Render(commands::render::Args),
    Materialize(commands::materialize::Args),
    Scan(commands::scan::Args),
    Hooks(commands::hooks::Args),
    Completions(commands::completions::Args),
    #[command(hide = true)]
    ManPages(commands::man::Args),
    #[command(name = "__complete", hide = true)]
    Complete(commands::complete::Args),
    #[command(hide = true)]
    ClipClear(commands::clip::ClearArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
