//! Command-line definitions. Doc comments here are the `--help` text.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{self, Global};

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
    Migrate(commands::migrate::Args),
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

/// Runs the parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode> {
    let g = &cli.global;
    let Some(command) = cli.command else {
        // `sesto` alone, as `pass` alone: the tree, in a store; else usage.
        let in_store = commands::start_dir(g)
            .ok()
            .and_then(|d| sesto::find_work_tree(&d).ok())
            .is_some_and(|w| w.join(".sesto").is_dir());
        if in_store {
            return commands::tree::run(g, commands::tree::Args::whole_store(), out);
        }
        // The help, as before, and the usage-error exit status.
        let help = Cli::command().render_help();
        eprint!("{help}");
        return Ok(ExitCode::from(2));
    };
    match command {
        Command::Init(a) => commands::init::run(g, a, out),
        Command::Set(a) => commands::set::run(g, a, out),
        Command::Get(a) => commands::get::run(g, a, out),
        Command::Edit(a) => commands::edit::run(g, a, out),
        Command::Ls(a) => commands::ls::run(g, a, out),
        Command::Tree(a) => commands::tree::run(g, a, out),
        Command::Mkdir(a) => commands::mkdir::run(g, a, out),
        Command::Mv(a) => commands::mv::run(g, a, out),
        Command::Cp(a) => commands::cp::run(g, a, out),
        Command::Grep(a) => commands::grep::run(g, a, out),
        Command::Rm(a) => commands::rm::run(g, a, out),
        Command::Find(a) => commands::find::run(g, a, out),
        Command::Generate(a) => commands::generate::run(g, a, out),
        Command::Otp(a) => commands::otp::run(g, a, out),
        Command::Fsck(a) => commands::fsck::run(g, a, out),
        Command::Member(a) => commands::member::run(g, a, out),
        Command::Grant(a) => commands::grant::run(g, a, out),
        Command::Revoke(a) => commands::grant::revoke(g, a, out),
        Command::Access(a) => commands::access::run(g, a, out),
        Command::Whoami(a) => commands::whoami::run(g, a, out),
        Command::Unlock(a) => commands::agent::unlock(g, a, out),
        Command::Lock(a) => commands::agent::lock(g, a, out),
        Command::Agent(a) => commands::agent::agent(g, a, out),
        Command::Verify(a) => commands::verify::run(g, a, out),
        Command::Migrate(a) => commands::migrate::run(g, a, out),
        Command::Stale(a) => commands::stale::run(g, a, out),
        Command::Share(a) => commands::share::run(g, a, out),
        Command::Trust(a) => commands::trust::run(g, a, out),
        Command::SshAgentIdentity(a) => commands::ssh_agent_identity::run(g, a, out),
        Command::Sync(a) => commands::sync::sync(g, a, out),
        Command::Resolve(a) => commands::sync::resolve(g, a, out),
        Command::SetupGit(a) => commands::sync::setup_git(g, a, out),
        Command::Log(a) => commands::log::log(g, a, out),
        Command::Show(a) => commands::log::show(g, a, out),
        Command::Restore(a) => commands::log::restore(g, a, out),
        Command::MergeDriver(a) => commands::sync::merge_driver(g, a, out),
        Command::Textconv(a) => commands::sync::textconv(g, a, out),
        Command::Exec(a) => commands::exec::run(g, a, out),
        Command::Export(a) => commands::export::run(g, a, out),
        Command::Import(a) => commands::import::run(g, a, out),
        Command::Render(a) => commands::render::run(g, a, out),
        Command::Materialize(a) => commands::materialize::run(g, a, out),
        Command::Scan(a) => commands::scan::run(g, a, out),
        Command::Hooks(a) => commands::hooks::run(g, a, out),
        Command::Completions(a) => commands::completions::run(a, Cli::command(), out),
        Command::ManPages(a) => commands::man::run(a, Cli::command(), out),
        Command::Complete(a) => commands::complete::run(a, Cli::command(), out),
        Command::ClipClear(a) => commands::clip::clear(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
