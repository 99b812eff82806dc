//! `sesto __complete`: the hidden command the completion scripts of
//! `sesto completions` run on every TAB. It walks the words typed so far
//! through the clap definition (subcommands, options, which positional comes
//! next) and prints what completes the word under the cursor: subcommands,
//! options, option values, and store paths and member names read with the
//! user's keys. It never prompts, never prints an error, and never prints a
//! value: only names `sesto ls` and `sesto member list` would show.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Arg, ArgAction};
use sesto::local::complete::Want;

/// The shells the completion scripts are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Complete a command line (run by the `sesto completions` scripts)
///
/// bash passes the line up to the cursor and its own current word; zsh and
/// fish pass the words up to the cursor, quotes removed, the last being the
/// word under the cursor. Prints a first line `names`, `files` or `dirs`
/// (what the shell should complete), then one candidate a line; for zsh and
/// fish a tab and a description may follow a candidate.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell asking
    shell: Shell,
    /// The words (see above)
    #[arg(last = true)]
    words: Vec<String>,
}

/// What an argument's values complete from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Store paths.
    Store(Want),
    /// Roster member names.
    Member,
    /// Nothing: a free-form value (a pattern, a new member's name, a field
    /// of a secret, which only reading the value could list).
    Nothing,
}

/// Which positional arguments complete store names, by subcommand path and
/// argument id. Positionals not here complete file names, as clap's static
/// scripts did; `every_string_positional_is_decided` keeps the table whole.
const TABLE: &[(&str, &str, Source)] = &[
    ("get", "path", Source::Store(Want::Any)),
    ("get", "field", Source::Nothing),
    ("edit", "path", Source::Store(Want::Any)),
    ("set", "path", Source::Store(Want::Any)),
    ("generate", "path", Source::Store(Want::Any)),
    ("otp", "path", Source::Store(Want::Any)),
    ("share", "path", Source::Store(Want::Any)),
    ("log", "path", Source::Store(Want::Any)),
    ("show", "path", Source::Store(Want::Any)),
    ("restore", "path", Source::Store(Want::Any)),
    ("rm", "paths", Source::Store(Want::Any)),
    ("mv", "from", Source::Store(Want::Any)),
    ("mv", "to", Source::Store(Want::Any)),
    ("cp", "from", Source::Store(Want::Any)),
    ("cp", "to", Source::Store(Want::Any)),
    ("grep", "pattern", Source::Nothing),
    ("grep", "folder", Source::Store(Want::Folders)),
    // A value on the command line is refused; nothing to offer.
    ("set", "value", Source::Nothing),
    ("access", "path", Source::Store(Want::Any)),
    ("ls", "path", Source::Store(Want::Folders)),
    ("tree", "path", Source::Store(Want::Folders)),
    ("mkdir", "paths", Source::Store(Want::Folders)),
    ("exec", "folders", Source::Store(Want::Folders)),
    ("export", "folders", Source::Store(Want::Folders)),
    ("materialize", "folder", Source::Store(Want::Folders)),
    ("grant", "member", Source::Member),
    ("grant", "path", Source::Store(Want::Folders)),
    ("revoke", "member", Source::Member),
    ("revoke", "path", Source::Store(Want::Folders)),
    ("member remove", "name", Source::Member),
    ("member add", "name", Source::Nothing),
    ("find", "pattern", Source::Nothing),
    ("sync", "remote_branch", Source::Nothing),
];

/// What the word under the cursor is.
enum Slot<'a> {
    /// A subcommand name of this command.
    Subcommand(&'a clap::Command),
    /// An option of this command.
    Option(&'a clap::Command),
    /// The value of an option; `prefix` is `--name=` when typed in one word.
    Value(&'a Arg, String),
    /// A positional argument of the subcommand at `path`.
    Positional(String, &'a Arg),
    /// Nothing sesto knows of.
    Unknown,
}

/// What the walk learned besides the slot: the options that say where the
/// store and keys are.
#[derive(Default)]
struct Seen {
    store: Option<std::path::PathBuf>,
    identities: Vec<std::path::PathBuf>,
}

/// `root` is sesto's whole command tree (`Cli::command()`).
pub fn run(args: Args, mut root: clap::Command, out: &mut dyn Write) -> Result<ExitCode> {
    let (words, current, line) = match args.shell {
        Shell::Bash => {
            let (Some(text), Some(bash_word)) = (args.words.first(), args.words.get(1)) else {
                return Ok(ExitCode::SUCCESS);
            };
            let Some(line) = sesto::local::complete::split_line(text) else {
                return Ok(ExitCode::SUCCESS);
            };
            let current = line.current.clone();
            (line.words.clone(), current, Some((line, bash_word.clone())))
        }
        Shell::Zsh | Shell::Fish => {
            let mut words = args.words;
            let current = words.pop().unwrap_or_default();
            if words.len() > sesto::local::complete::MAX_WORDS
                || current.len() > sesto::local::complete::MAX_INPUT
            {
                return Ok(ExitCode::SUCCESS);
            }
            (words, current, None)
        }
    };
    root.build();
    let (directive, candidates) = complete(&root, &words, &current);
    writeln!(out, "{directive}")?;
    for (value, help) in candidates {
        match (&line, args.shell) {
            (Some((line, bash_word)), _) => {
                if let Some(text) =
                    sesto::local::complete::bash_replacement(line, bash_word, &value)
                {
                    writeln!(out, "{text}")?;
                }
            }
            (None, _) if help.is_empty() => writeln!(out, "{value}")?,
            (None, _) => writeln!(out, "{value}\t{help}")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The directive and candidates (value, description) for `current`, the
/// word after `words` (the first of which is the command's name).
fn complete(
    root: &clap::Command,
    words: &[String],
    current: &str,
) -> (&'static str, Vec<(String, String)>) {
    let (slot, seen) = walk(root, words, current);
    let mut out = Vec::new();
    let starts = |s: &str| s.starts_with(current);
    match slot {
        Slot::Subcommand(cmd) => {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                if starts(sub.get_name()) {
                    out.push((sub.get_name().to_string(), about(sub)));
                }
            }
        }
        Slot::Option(cmd) => {
            for arg in cmd
                .get_arguments()
                .filter(|a| !a.is_positional() && !a.is_hide_set())
            {
                let help = arg
                    .get_help()
                    .map(|h| first_line(&h.to_string()))
                    .unwrap_or_default();
                if let Some(long) = arg.get_long() {
                    let long = format!("--{long}");
                    if starts(&long) {
                        out.push((long, help.clone()));
                    }
                }
                if let Some(short) = arg.get_short() {
                    let short = format!("-{short}");
                    if starts(&short) {
                        out.push((short, help));
                    }
                }
            }
        }
        Slot::Value(arg, prefix) => {
            let values = possible_values(arg);
            if values.is_empty() {
                return (path_directive(arg), out);
            }
            for (v, help) in values {
                let v = format!("{prefix}{v}");
                if starts(&v) {
                    out.push((v, help));
                }
            }
        }
        Slot::Positional(path, arg) => {
            let source = TABLE
                .iter()
                .find(|(p, id, _)| *p == path && *id == arg.get_id().as_str())
                .map(|(_, _, s)| *s);
            match source {
                Some(Source::Store(want)) => {
                    let names = with_store(&seen, |store| {
                        sesto::local::complete::paths(store, current, want)
                    });
                    out.extend(names.into_iter().map(|n| (n, String::new())));
                }
                Some(Source::Member) => {
                    let names = with_store(&seen, |store| {
                        sesto::local::complete::members(store, current)
                    });
                    out.extend(names.into_iter().map(|n| (n, String::new())));
                }
                Some(Source::Nothing) => {}
                None => {
                    let values = possible_values(arg);
                    if values.is_empty() {
                        return (path_directive(arg), out);
                    }
                    out.extend(values.into_iter().filter(|(v, _)| starts(v)));
                }
            }
        }
        Slot::Unknown => {}
    }
    ("names", out)
}

/// `files`, or `dirs` for an argument whose values are directories.
fn path_directive(arg: &Arg) -> &'static str {
    let names = arg.get_value_names().unwrap_or_default();
    if arg.get_value_hint() == clap::ValueHint::DirPath || names.iter().any(|n| n == "DIR") {
        "dirs"
    } else {
        "files"
    }
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about()
        .map(|a| first_line(&a.to_string()))
        .unwrap_or_default()
}

/// The first line of a help text, tabs and control characters removed (the
/// scripts read a tab as the end of the candidate).
fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// The visible values of an argument with a fixed set (`--format`, shells).
fn possible_values(arg: &Arg) -> Vec<(String, String)> {
    arg.get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| {
            let help = v
                .get_help()
                .map(|h| first_line(&h.to_string()))
                .unwrap_or_default();
            (v.get_name().to_string(), help)
        })
        .collect()
}

/// Whether `arg` (an option) takes a value in the next word.
fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// Walks `words` (the first is the command's name) through `root`, and says
/// what the next word, `current`, is.
fn walk<'a>(root: &'a clap::Command, words: &[String], current: &str) -> (Slot<'a>, Seen) {
    let mut seen = Seen::default();
    let mut cmd = root;
    let mut path: Vec<&str> = Vec::new();
    let mut positionals = 0;
    let mut dashdash = false;
    let mut i = words
        .iter()
        .position(|w| !is_assignment(w))
        .map_or(words.len(), |first| first + 1);
    while i < words.len() {
        let w = words[i].as_str();
        i += 1;
        if !dashdash && w == "--" {
            dashdash = true;
            continue;
        }
        if !dashdash && w.starts_with('-') && w.len() > 1 {
            let Some((arg, inline)) = find_option(cmd, w) else {
                continue;
            };
            let value = match inline {
                Some(v) => Some(v.to_string()),
                None if takes_value(arg) => {
                    let next = words.get(i).cloned();
                    i += 1;
                    // The option's value is the word under the cursor.
                    if next.is_none() {
                        return (Slot::Value(arg, String::new()), seen);
                    }
                    next
                }
                None => None,
            };
            if let Some(v) = value {
                note(&mut seen, arg, &v);
            }
            continue;
        }
        if !dashdash && positionals == 0 && cmd.has_subcommands() {
            match cmd.find_subcommand(w) {
                Some(sub) if !sub.is_hide_set() => {
                    cmd = sub;
                    path.push(sub.get_name());
                    continue;
                }
                _ => return (Slot::Unknown, seen),
            }
        }
        positionals += 1;
    }
    if !dashdash && current.starts_with('-') {
        if let Some(rest) = current.strip_prefix("--") {
            if let Some((name, _)) = rest.split_once('=') {
                return match cmd.get_arguments().find(|a| a.get_long() == Some(name)) {
                    Some(arg) if takes_value(arg) => (Slot::Value(arg, format!("--{name}=")), seen),
                    _ => (Slot::Unknown, seen),
                };
            }
        }
        return (Slot::Option(cmd), seen);
    }
    if positionals == 0 && cmd.has_subcommands() && !dashdash {
        return (Slot::Subcommand(cmd), seen);
    }
    match nth_positional(cmd, positionals, dashdash) {
        Some(arg) => (Slot::Positional(path.join(" "), arg), seen),
        None => (Slot::Unknown, seen),
    }
}

/// `NAME=value` before the command (an environment assignment).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The option `word` names, and its value when given in the same word
/// (`--name=value`, `-ovalue`).
fn find_option<'a, 'w>(
    cmd: &'a clap::Command,
    word: &'w str,
) -> Option<(&'a Arg, Option<&'w str>)> {
    if let Some(rest) = word.strip_prefix("--") {
        let (name, value) = match rest.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (rest, None),
        };
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(name))?;
        return Some((arg, value));
    }
    // A cluster of short flags; the first that takes a value takes the rest.
    let mut chars = word.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        let arg = cmd.get_arguments().find(|a| a.get_short() == Some(c))?;
        if takes_value(arg) {
            let rest = &word[at + c.len_utf8()..];
            return Some((arg, (!rest.is_empty()).then_some(rest)));
        }
        if chars.clone().next().is_none() {
            return Some((arg, None));
        }
    }
    None
}

/// Records the options that change which store and keys completion uses.
fn note(seen: &mut Seen, arg: &Arg, value: &str) {
    let path = expand_tilde(value);
    match arg.get_id().as_str() {
        "store" => seen.store = Some(path),
        "identities" => seen.identities.push(path),
        _ => {}
    }
}

/// `~/x` as the shell would have expanded it had it not been quoted.
fn expand_tilde(value: &str) -> std::path::PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => value.into(),
    }
}

/// The positional argument that takes the `n`th positional word (0-based);
/// after `--`, the one that takes what follows it, if any.
fn nth_positional(cmd: &clap::Command, n: usize, dashdash: bool) -> Option<&Arg> {
    let mut list: Vec<&Arg> = cmd.get_positionals().filter(|a| !a.is_hide_set()).collect();
    list.sort_by_key(|a| a.get_index().unwrap_or(usize::MAX));
    if let Some(last) = list.iter().find(|a| a.is_last_set()) {
        if dashdash {
            return Some(last);
        }
    }
    for (at, arg) in list.into_iter().filter(|a| !a.is_last_set()).enumerate() {
        let many = arg.get_num_args().is_some_and(|r| r.max_values() > 1);
        if many || at == n {
            return Some(arg);
        }
    }
    None
}

/// Runs `f` on the store as `sesto ls` would open it, without prompting,
/// printing, or recording anything; nothing when it cannot be opened.
fn with_store(seen: &Seen, f: impl FnOnce(&sesto::Store) -> Vec<String>) -> Vec<String> {
    let start = seen.store.clone().or_else(|| {
        std::env::var_os("SESTO_STORE")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    let sources = sesto::IdentitySources::from_env(seen.identities.clone());
    let Ok(ids) = sesto::Identities::load(&sources, Arc::new(sesto::format::crypto::NoPassphrase))
    else {
        return Vec::new();
    };
    let options = sesto::OpenOptions {
        start,
        trust: sesto::store::trust::TrustMode::Peek,
    };
    match sesto::Store::open(&options, ids) {
        Ok(store) => f(&store),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
