//! `sesto completions`: shell completion scripts. The bash, zsh and fish
//! scripts are small and ask `sesto __complete` (`complete.rs`) on every TAB,
//! so store paths and member names complete too; elvish and powershell get
//! clap's static script (subcommands and options).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

/// Print a completion script for bash, zsh, fish, elvish or powershell
///
/// bash, zsh and fish complete subcommands, options, store paths and member
/// names (read with your keys, never prompting); elvish and powershell
/// complete subcommands and options.
///
/// bash:  source <(sesto completions bash)                  (in ~/.bashrc)
/// zsh:   sesto completions zsh > ~/.zfunc/_sesto           (~/.zfunc in $fpath)
/// fish:  sesto completions fish > ~/.config/fish/completions/sesto.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell
    shell: clap_complete::Shell,
}

const BASH: &str = include_str!("completions/sesto.bash");
const ZSH: &str = include_str!("completions/sesto.zsh");
const FISH: &str = include_str!("completions/sesto.fish");

/// `root` is sesto's whole command tree (`Cli::command()`).
pub fn run(args: Args, root: clap::Command, out: &mut dyn Write) -> Result<ExitCode> {
    use clap_complete::Shell;
    match args.shell {
        Shell::Bash => out.write_all(BASH.as_bytes())?,
        Shell::Zsh => out.write_all(ZSH.as_bytes())?,
        Shell::Fish => out.write_all(FISH.as_bytes())?,
        shell => clap_complete::generate(shell, &mut visible(root), "sesto", out),
    }
    Ok(ExitCode::SUCCESS)
}

/// `cmd` without its hidden subcommands (the git plumbing, `__complete`):
/// clap's generators list every subcommand, and clap can add but not remove.
fn visible(cmd: clap::Command) -> clap::Command {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .map(visible)
        .collect();
    let mut pruned = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(subcommands);
    if let Some(about) = cmd.get_about() {
        pruned = pruned.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        pruned = pruned.version(version.to_string());
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_scripts_leave_out_hidden_commands() {
        for shell in [
            clap_complete::Shell::Elvish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            run(
                Args { shell },
                <crate::cli::Cli as clap::CommandFactory>::command(),
                &mut out,
            )
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            // How each script names a subcommand it completes.
            for hidden in ["merge-driver", "textconv", "__complete"] {
                for form in [format!("cand {hidden} "), format!("new('{hidden}'")] {
                    assert!(!text.contains(&form), "{form} in the {shell} script");
                }
            }
            assert!(text.contains("cand materialize ") || text.contains("new('materialize'"));
        }
    }
}
