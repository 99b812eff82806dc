use super::*;

fn cli() -> clap::Command {
    let mut root = <crate::cli::Cli as clap::CommandFactory>::command();
    root.build();
    root
}

fn names(line: &str) -> (&'static str, Vec<String>) {
    let root = cli();
    let l = sesto::local::complete::split_line(line).unwrap();
    let (d, c) = complete(&root, &l.words, &l.current);
    (d, c.into_iter().map(|(v, _)| v).collect())
}

fn slot_of(line: &str) -> String {
    let root = cli();
    let l = sesto::local::complete::split_line(line).unwrap();
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
                    "FILE", "DIR", "PATH", "TEMPLATE", "COMMAND", "BASE", "OURS", "THEIRS", "SHELL",
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
