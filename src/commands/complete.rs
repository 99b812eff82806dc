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
use clap::{Arg, ArgAction, CommandFactory};
use sesto::complete::Want;

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

pub fn run(args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let (words, current, line) = match args.shell {
        Shell::Bash => {
            let (Some(text), Some(bash_word)) = (args.words.first(), args.words.get(1)) else {
                return Ok(ExitCode::SUCCESS);
            };
            let Some(line) = sesto::complete::split_line(text) else {
                return Ok(ExitCode::SUCCESS);
            };
            let current = line.current.clone();
            (line.words.clone(), current, Some((line, bash_word.clone())))
        }
        Shell::Zsh | Shell::Fish => {
            let mut words = args.words;
            let current = words.pop().unwrap_or_default();
            if words.len() > sesto::complete::MAX_WORDS
                || current.len() > sesto::complete::MAX_INPUT
            {
                return Ok(ExitCode::SUCCESS);
            }
            (words, current, None)
        }
    };
    let mut root = crate::cli::Cli::command();
    root.build();
    let (directive, candidates) = complete(&root, &words, &current);
    writeln!(out, "{directive}")?;
    for (value, help) in candidates {
        match (&line, args.shell) {
            (Some((line, bash_word)), _) => {
                if let Some(text) = sesto::complete::bash_replacement(line, bash_word, &value) {
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
                    let names =
                        with_store(&seen, |store| sesto::complete::paths(store, current, want));
                    out.extend(names.into_iter().map(|n| (n, String::new())));
                }
                Some(Source::Member) => {
                    let names = with_store(&seen, |store| sesto::complete::members(store, current));
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
    let Ok(ids) = sesto::Identities::load(&sources, Arc::new(sesto::crypto::NoPassphrase)) else {
        return Vec::new();
    };
    let options = sesto::OpenOptions {
        start,
        trust: sesto::trust::TrustMode::Peek,
    };
    match sesto::Store::open(&options, ids) {
        Ok(store) => f(&store),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        let mut root = crate::cli::Cli::command();
        root.build();
        root
    }

    fn names(line: &str) -> (&'static str, Vec<String>) {
        let root = cli();
        let l = sesto::complete::split_line(line).unwrap();
        let (d, c) = complete(&root, &l.words, &l.current);
        (d, c.into_iter().map(|(v, _)| v).collect())
    }

    fn slot_of(line: &str) -> String {
        let root = cli();
        let l = sesto::complete::split_line(line).unwrap();
        match walk(&root, &l.words, &l.current).0 {
            Slot::Subcommand(c) => format!("subcommand of {}", c.get_name()),
            Slot::Option(c) => format!("option of {}", c.get_name()),
            Slot::Value(a, p) => format!("value of {} {p}", a.get_id()),
            Slot::Positional(p, a) => format!("{p} {}", a.get_id()),
            Slot::Unknown => "unknown".into(),
        }
    }

    #[test]
    fn every_table_entry_names_a_real_positional() {
        let root = cli();
        for (path, id, _) in TABLE {
            let mut cmd = &root;
            for name in path.split(' ') {
                cmd = cmd
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no command {path}"));
            }
            assert!(
                cmd.get_positionals().any(|a| a.get_id() == *id),
                "{path} has no positional {id}"
            );
        }
    }

    /// A new command's positionals must be put in the table (or knowingly
    /// left to file completion, which is what PathBuf arguments want).
    #[test]
    fn every_string_positional_is_decided() {
        fn visit(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_positionals() {
                let names = arg.get_value_names().unwrap_or_default();
                let file_like = names.iter().any(|n| {
                    [
                        "FILE", "DIR", "PATH", "TEMPLATE", "COMMAND", "BASE", "OURS", "THEIRS",
                        "SHELL",
                    ]
                    .contains(&n.as_str())
                });
                let decided = TABLE
                    .iter()
                    .any(|(p, id, _)| *p == path && *id == arg.get_id());
                if !decided && !file_like && !cmd.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let p = if path.is_empty() {
                    sub.get_name().to_string()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                visit(sub, &p, missing);
            }
        }
        let mut missing = Vec::new();
        visit(&cli(), "", &mut missing);
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "positionals the table does not decide"
        );
    }

    #[test]
    fn the_walk_finds_the_slot() {
        for (line, want) in [
            ("sesto ", "subcommand of sesto"),
            ("sesto g", "subcommand of sesto"),
            ("sesto get ", "get path"),
            ("sesto --store /x get prod/", "get path"),
            ("sesto get prod/db ", "get field"),
            ("sesto get -", "option of get"),
            ("sesto -i ", "value of identities "),
            ("sesto member remove ", "member remove name"),
            ("sesto member ", "subcommand of member"),
            ("sesto grant alice ", "grant path"),
            ("sesto grant --write ", "grant member"),
            ("sesto export --format ", "value of format "),
            ("sesto export --format=d", "value of format --format="),
            ("sesto export -fd ", "export folders"),
            ("sesto export -fd", "option of export"),
            ("sesto rm -r a b ", "rm paths"),
            ("sesto exec prod -- ", "exec command"),
            ("FOO=1 sesto ls ", "ls path"),
            ("sesto merge-driver ", "unknown"),
            ("sesto nope ", "unknown"),
            ("sesto help ", "subcommand of help"),
        ] {
            assert_eq!(slot_of(line), want, "{line:?}");
        }
    }

    #[test]
    fn subcommands_leave_out_hidden_ones() {
        let (d, subs) = names("sesto ");
        assert_eq!(d, "names");
        assert!(subs.contains(&"get".to_string()) && subs.contains(&"completions".to_string()));
        for hidden in ["merge-driver", "textconv", "__complete"] {
            assert!(!subs.contains(&hidden.to_string()), "{hidden} in {subs:?}");
        }
        assert_eq!(names("sesto ex").1, ["exec", "export"]);
        assert_eq!(
            names("sesto completions ").1,
            ["bash", "elvish", "fish", "powershell", "zsh"]
        );
        assert_eq!(
            names("sesto export --format=g").1,
            ["--format=github-actions"]
        );
        assert_eq!(names("sesto render ").0, "files");
        assert_eq!(names("sesto --store ").0, "dirs");
        assert!(names("sesto get --").1.contains(&"--store".to_string()));
    }

    #[test]
    fn hostile_words_never_panic() {
        let root = cli();
        let long = "x".repeat(100_000);
        let lists: Vec<Vec<String>> = vec![
            vec![],
            vec!["sesto".into()],
            vec!["sesto".into(), "-".into()],
            vec!["sesto".into(), "--".into(), "--".into()],
            vec!["sesto".into(), "--=".into(), "-=".into(), "-é".into()],
            vec!["sesto".into(), "get".into(), "../".into()],
            vec!["sesto".into(), long.clone(), long.clone()],
            vec!["sesto".into(), "-i".into()],
            vec!["sesto".into(), "export".into(), "-f".into()],
            vec!["sesto".into(), "export".into(), "-oé".into()],
        ];
        for words in &lists {
            for current in [
                "",
                "-",
                "--",
                "--=",
                "--format=",
                "../",
                "/",
                "//",
                "é",
                long.as_str(),
            ] {
                let _ = walk(&root, words, current);
                complete_no_store(&root, words, current);
            }
        }
    }

    /// `complete` for a slot that needs no store (the test has none).
    fn complete_no_store(root: &clap::Command, words: &[String], current: &str) {
        if !matches!(walk(root, words, current).0, Slot::Positional(..)) {
            let _ = complete(root, words, current);
        }
    }
}
