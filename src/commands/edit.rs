//! `sesto edit`: change a secret in $VISUAL / $EDITOR on a private tmpfs file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::local::editor::Edit;

use super::Global;

/// Edit a secret in $VISUAL or $EDITOR (a new path creates the secret)
///
/// The plaintext is written to a private 0700 directory on /dev/shm or
/// $XDG_RUNTIME_DIR and removed on every way out (Ctrl-C, SIGTERM and SIGHUP
/// included). An unchanged or emptied buffer writes nothing. A value keeps
/// its bytes: one without a final newline gets none; binary values are
/// refused (replace them with `sesto set`). A secret of YAML fields that no
/// longer parses is offered for another edit, never saved silently.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    let Some((_, name)) = path.split_last() else {
        anyhow::bail!("give the path of a secret, e.g. prod/db/password");
    };
    let store = super::open(g)?;
    let current = match store.get(&args.path) {
        Ok(secret) => zeroize::Zeroizing::new(secret.expose_value().to_vec()),
        Err(sesto::Error::NotFound { .. }) => zeroize::Zeroizing::new(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    // What goes into the editor: the value, or on another round the buffer
    // the user saved, which broke the value's YAML.
    let mut buffer = current.clone();
    let value = loop {
        let edited = sesto::local::editor::edit(&buffer, name)?;
        if let Some(w) = &edited.warning {
            eprintln!("warning: {w}");
        }
        let saved = match edited.edit {
            Edit::Unchanged => buffer.clone(),
            Edit::Emptied => {
                eprintln!(
                    "{}: the buffer was emptied, nothing written (use `sesto rm` to remove)",
                    args.path
                );
                return Ok(ExitCode::SUCCESS);
            }
            Edit::Changed(value) => value,
        };
        if saved == current {
            eprintln!("{}: unchanged, nothing written", args.path);
            return Ok(ExitCode::SUCCESS);
        }
        let Some(problem) = sesto::local::editor::broken_mapping(&current, &saved) else {
            break saved;
        };
        if !crate::terminal::stdin_is_terminal() {
            anyhow::bail!(
                "{} held YAML fields and {problem}; nothing was saved: run `sesto edit {}` \
                 again, or `sesto set {}` to store the text as it is",
                args.path,
                args.path,
                args.path
            );
        }
        match ask(&format!(
            "{} held YAML fields and {problem}. (e)dit again, (s)ave anyway, (a)bort? ",
            args.path
        ))? {
            'e' => buffer = saved,
            's' => break saved,
            _ => {
                eprintln!("{}: nothing written", args.path);
                return Ok(ExitCode::SUCCESS);
            }
        }
    };
    let mut tx = store.transaction()?;
    tx.set(&path, &value)?;
    super::commit(tx)?;
    Ok(ExitCode::SUCCESS)
}

/// Asks on stderr until the answer starts with e, s or a (end of input: a).
fn ask(question: &str) -> Result<char> {
    loop {
        eprint!("{question}");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            return Ok('a');
        }
        match line.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
            Some(c @ ('e' | 's' | 'a')) => return Ok(c),
            _ => continue,
        }
    }
}
