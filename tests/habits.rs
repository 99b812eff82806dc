//! What a pass or gopass user expects (issue 13): `sesto` alone shows the
//! tree, `show` without `--rev`, `cp`, `grep`, a hint (and no echo) for a
//! value given as an argument, `set -m`, confirmations on a terminal with
//! `--force` to skip them, `--dry-run` for revoke and member remove, grants
//! that say when they raise or lower, summaries by folder, and a first
//! contact that says what to send an admin. Terminal cases run on a
//! pseudo-terminal made by util-linux `script`.

mod common;

use std::path::{Path, PathBuf};

use common::{pub_key, require_tool, run_cmd_stdin, KeyKind, Output, TestEnv};

/// alice (admin, default key) with prod/db/password, prod/db/user,
/// prod/api/token and staging/app/key; bob (key `~/.ssh/bob`) granted
/// staging only.
struct Store {
    env: TestEnv,
    bob: PathBuf,
}

fn store() -> Store {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    for (path, value) in [
        ("prod/db/password", "hunter2-prod"),
        ("prod/db/user", "app\nsecond line with hunter2"),
        ("prod/api/token", "tok-123"),
        ("staging/app/key", "hunter2-staging"),
    ] {
        env.run_stdin(&["set", path], value.as_bytes())
            .assert_success();
    }
    let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    env.run(&["member", "add", "bob", "--key", &pub_key(&bob)])
        .assert_success();
    env.run(&["grant", "bob", "staging"]).assert_success();
    Store { env, bob }
}

impl Store {
    fn run(&self, args: &[&str]) -> Output {
        self.env.run(args)
    }

    fn as_bob(&self, args: &[&str]) -> Output {
        let bob = self.bob.display().to_string();
        self.env.run(&[&["-i", bob.as_str()][..], args].concat())
    }

    fn head(&self) -> String {
        self.env.git(&["rev-parse", "HEAD"]).stdout
    }

    /// `sesto args` on a pseudo-terminal with `typed` typed on it; stdout
    /// and stderr arrive together in `stdout`.
    fn on_terminal(&self, args: &[&str], typed: &str) -> Output {
        let sesto = env!("CARGO_BIN_EXE_sesto");
        let line = std::iter::once(sesto)
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = self.env.command("script");
        cmd.args(["-qec", &line, "/dev/null"]);
        run_cmd_stdin(cmd, typed.as_bytes())
    }
}

#[test]
fn sesto_alone_shows_the_tree_in_a_store_and_the_help_outside() {
    let s = store();
    let out = s.run(&[]);
    out.assert_success();
    assert!(out.stdout.starts_with(".\n"), "{}", out.stdout);
    for name in ["prod/", "db/", "password", "staging/", "key"] {
        assert!(out.stdout.contains(name), "{name}: {}", out.stdout);
    }
    assert!(!out.stdout.contains("hunter2"), "no values");
    let outside = TestEnv::new();
    let out = outside.run(&[]);
    out.assert_code(2);
    assert!(out.stderr.contains("Usage: sesto"), "{}", out.stderr);
}

#[test]
fn show_without_a_revision_prints_the_current_value() {
    let s = store();
    let out = s.run(&["show", "prod/api/token"]);
    out.assert_success();
    assert_eq!(out.stdout, "tok-123");
    s.run_stdin_set("prod/api/token", "tok-456");
    let out = s.run(&["show", "prod/api/token", "--rev", "HEAD~1"]);
    assert_eq!(out.stdout, "tok-123");
}

impl Store {
    fn run_stdin_set(&self, path: &str, value: &str) {
        self.env
            .run_stdin(&["set", "--force", path], value.as_bytes())
            .assert_success();
    }
}

#[test]
fn a_value_on_the_command_line_is_refused_without_being_repeated() {
    let s = store();
    let head = s.head();
    let out = s.run(&["set", "prod/new", "s3cr3t-typed-here"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("never from the command"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sesto set prod/new"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cr3t"), "the value is not repeated");
    assert!(!out.stdout.contains("s3cr3t"));
    assert_eq!(s.head(), head, "nothing written");
    // A value starting with a dash is caught the same way.
    let out = s.run(&["set", "prod/new", "-x-secret"]);
    out.assert_code(1);
    assert!(!out.stderr.contains("-x-secret"), "{}", out.stderr);
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn set_on_a_terminal_reads_several_lines_with_m_and_refuses_a_pasted_block_without_it() {
    let s = store();
    require_tool("script");
    let pem = "-----BEGIN KEY-----\nAAAA\nBBBB\n-----END KEY-----\n";
    let out = s.on_terminal(&["set", "-m", "prod/tls/key"], pem);
    out.assert_success();
    assert!(out.stdout.contains("Ctrl-D"), "{}", out.stdout);
    assert_eq!(s.run(&["get", "prod/tls/key"]).stdout, pem);
    // Pasted at the one-line prompt: refused, nothing stored, and the
    // other lines are thrown away rather than left for the shell.
    let head = s.head();
    let out = s.on_terminal(&["set", "prod/tls/other"], pem);
    out.assert_code(1);
    assert!(out.stdout.contains("several lines"), "{}", out.stdout);
    assert!(
        out.stdout.contains("sesto set -m prod/tls/other"),
        "{}",
        out.stdout
    );
    assert_eq!(s.head(), head);
    s.run(&["get", "prod/tls/other"]).assert_code(1);
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn set_over_an_existing_secret_asks_on_a_terminal_and_force_skips() {
    let s = store();
    require_tool("script");
    let out = s.on_terminal(&["set", "prod/api/token"], "n\n");
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("prod/api/token exists; replace its value? [y/N]"),
        "{}",
        out.stdout
    );
    assert_eq!(s.run(&["get", "prod/api/token"]).stdout, "tok-123");
    // (-m here: the test types ahead, which the one-line prompt would take
    // for a pasted block.)
    let out = s.on_terminal(&["set", "-m", "prod/api/token"], "y\nnew-tok\n");
    out.assert_success();
    assert_eq!(s.run(&["get", "prod/api/token"]).stdout, "new-tok\n");
    let out = s.on_terminal(&["set", "-f", "-m", "prod/api/token"], "newer\n");
    out.assert_success();
    assert!(!out.stdout.contains("replace its value"), "{}", out.stdout);
    assert_eq!(s.run(&["get", "prod/api/token"]).stdout, "newer\n");
    // Piped values (scripts) are never asked about.
    s.env
        .run_stdin(&["set", "prod/api/token"], b"piped")
        .assert_success();
    assert_eq!(s.run(&["get", "prod/api/token"]).stdout, "piped");
}

#[test]
fn cp_copies_secrets_and_folders_and_keeps_what_exists() {
    let s = store();
    let out = s.run(&["cp", "prod/api/token", "staging/token"]);
    out.assert_success();
    assert_eq!(s.run(&["get", "staging/token"]).stdout, "tok-123");
    assert_eq!(s.run(&["get", "prod/api/token"]).stdout, "tok-123");
    // A folder needs -r; onto an existing folder it goes inside.
    let out = s.run(&["cp", "prod/db", "staging"]);
    out.assert_code(1);
    assert!(out.stderr.contains("-r"), "{}", out.stderr);
    let out = s.run(&["cp", "-r", "prod/db", "staging"]);
    out.assert_success();
    assert!(out.stdout.contains("(2 secrets)"), "{}", out.stdout);
    assert_eq!(
        s.run(&["get", "staging/db/password"]).stdout,
        "hunter2-prod"
    );
    assert_eq!(
        s.run(&["get", "staging/db/user"]).stdout,
        "app\nsecond line with hunter2"
    );
    // bob, granted staging, reads the copies: they are new secrets with
    // staging's keys, not links to prod.
    assert_eq!(
        s.as_bob(&["get", "staging/db/password"]).stdout,
        "hunter2-prod"
    );
    // What exists is kept unless --force.
    let head = s.head();
    let out = s.run(&["cp", "prod/api/token", "staging/app/key"]);
    out.assert_code(1);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(s.head(), head);
    s.run(&["cp", "--force", "prod/api/token", "staging/app/key"])
        .assert_success();
    assert_eq!(s.run(&["get", "staging/app/key"]).stdout, "tok-123");
    // Into itself, or from nowhere: refused.
    s.run(&["cp", "-r", "prod", "prod/inner"]).assert_code(1);
    s.run(&["cp", "nothing", "x"]).assert_code(1);
    s.run(&["fsck"]).assert_success();
}

#[test]
fn grep_searches_the_values_a_member_can_read() {
    let s = store();
    let out = s.run(&["grep", "hunter2"]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        "prod/db/password:hunter2-prod\nprod/db/user:second line with hunter2\n\
         staging/app/key:hunter2-staging\n"
    );
    let out = s.run(&["grep", "-l", "hunter2", "prod"]);
    assert_eq!(out.stdout, "prod/db/password\nprod/db/user\n");
    let out = s.run(&["grep", "--ignore-case", "HUNTER2-PROD"]);
    assert_eq!(out.stdout, "prod/db/password:hunter2-prod\n");
    let out = s.run(&["grep", "-F", "tok-1.3"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "");
    let out = s.run(&["grep", "tok-1.3"]);
    out.assert_success();
    // bob sees only what he may read.
    let out = s.as_bob(&["grep", "hunter2"]);
    assert_eq!(out.stdout, "staging/app/key:hunter2-staging\n");
    let out = s.run(&["grep", "("]);
    out.assert_code(1);
    assert!(out.stderr.contains("not a valid pattern"), "{}", out.stderr);
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn removals_ask_on_a_terminal_and_dry_runs_change_nothing() {
    let s = store();
    require_tool("script");
    let out = s.on_terminal(&["rm", "-r", "prod/db"], "n\n");
    out.assert_code(1);
    assert!(
        out.stdout.contains("Remove prod/db with 2 secrets? [y/N]"),
        "{}",
        out.stdout
    );
    s.run(&["get", "prod/db/password"]).assert_success();
    s.on_terminal(&["rm", "-r", "prod/db"], "y\n")
        .assert_success();
    s.run(&["get", "prod/db/password"]).assert_code(1);
    s.on_terminal(&["rm", "-rf", "prod/api"], "")
        .assert_success();
    s.run(&["get", "prod/api/token"]).assert_code(1);

    // member remove: a dry run writes nothing; a terminal asks.
    let head = s.head();
    let out = s.run(&["member", "remove", "bob", "--dry-run"]);
    out.assert_success();
    assert!(out.stdout.contains("Would remove bob"), "{}", out.stdout);
    assert!(out.stdout.contains("staging/app/key"), "{}", out.stdout);
    assert_eq!(s.head(), head);
    assert_eq!(s.env.git(&["status", "--porcelain"]).stdout, "");
    let out = s.run(&["member", "remove", "bob", "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["exposed"][0], "staging/app/key");
    let out = s.run(&["revoke", "bob", "staging", "--dry-run"]);
    out.assert_success();
    assert!(out.stdout.contains("Would revoke"), "{}", out.stdout);
    assert_eq!(s.head(), head);
    let out = s.on_terminal(&["member", "remove", "bob"], "no\n");
    out.assert_code(1);
    assert!(
        out.stdout.contains("Remove bob and rotate the keys"),
        "{}",
        out.stdout
    );
    s.as_bob(&["get", "staging/app/key"]).assert_success();
    // On a terminal the exposed secrets are counted by folder.
    let out = s.on_terminal(&["member", "remove", "bob"], "y\n");
    out.assert_success();
    assert!(
        out.stdout.contains("bob could read 1 secret in 1 folder"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("staging/app/  1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("sesto stale --by-folder"),
        "{}",
        out.stdout
    );
    s.as_bob(&["get", "staging/app/key"]).assert_code(1);
    let out = s.run(&["stale", "--by-folder"]);
    assert!(
        out.stdout
            .contains("staging/app/  1\n1 stale secret in 1 folder."),
        "{}",
        out.stdout
    );
}

#[test]
fn grant_says_when_it_raises_or_lowers_access() {
    let s = store();
    let out = s.run(&["grant", "bob", "staging", "--write"]);
    assert!(
        out.stdout
            .contains("Raised bob's access to staging from read to write"),
        "{}",
        out.stdout
    );
    let out = s.run(&["grant", "bob", "staging", "--write"]);
    assert!(
        out.stdout.contains("bob has write on staging already"),
        "{}",
        out.stdout
    );
    let out = s.run(&["grant", "bob", "staging"]);
    assert!(
        out.stdout
            .contains("Lowered bob's access to staging from write to read"),
        "{}",
        out.stdout
    );
    let out = s.run(&["grant", "bob", "prod"]);
    assert!(
        out.stdout.contains("Granted bob read on prod."),
        "{}",
        out.stdout
    );
}

#[test]
fn a_newcomer_is_told_what_to_send_an_admin() {
    let s = store();
    let carol = s.env.ssh_keygen("carol", KeyKind::Ed25519, None);
    let carol_arg = carol.display().to_string();
    let public = pub_key(&carol);
    let public: String = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    for args in [&["ls"][..], &["whoami"], &["get", "prod/api/token"]] {
        let out = s.env.run(&[&["-i", carol_arg.as_str()][..], args].concat());
        out.assert_code(1);
        assert!(
            out.stderr.contains("not a member of this store"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("sesto member add YOUR-NAME --key '{public}'")),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// The first member's name: git's user.name, else the key's comment, else
/// $USER.
#[test]
fn init_names_the_first_member_from_git_then_the_key_then_user() {
    let cases: [(Option<&str>, &str, &str); 3] = [
        (Some("Ada Lovelace"), "ada@laptop", "Ada-Lovelace"),
        (None, "ada@laptop", "ada@laptop"),
        (None, "", "ada-user"),
    ];
    for (git_name, comment, want) in cases {
        let env = TestEnv::new();
        std::fs::write(
            env.gitconfig(),
            match git_name {
                Some(n) => format!("[user]\n\tname = {n}\n\temail = a@example.com\n[init]\n\tdefaultBranch = main\n"),
                None => "[user]\n\temail = a@example.com\n[init]\n\tdefaultBranch = main\n".into(),
            },
        )
        .unwrap();
        let key = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
        let mut cmd = env.command("ssh-keygen");
        cmd.args(["-q", "-c", "-C", comment, "-f"]).arg(&key);
        common::run_cmd(cmd).assert_success();
        env.init_repo();
        let mut cmd = env.sesto(&["init"]);
        cmd.env("USER", "ada-user");
        let out = common::run_cmd(cmd);
        out.assert_success();
        assert!(
            out.stdout.contains(&format!("Admin: {want} (")),
            "{want}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("sesto hooks install"), "{}", out.stdout);
        let _ = Path::new(&key);
    }
}
