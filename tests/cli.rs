//! Snapshots of what `sesto` prints: the `--help` of every command, each command's
//! output on a small store, and its main errors. Every error is also checked to exit
//! 1 and to leave the store exactly as it was (git's view and every byte of .sesto/).
//!
//! Random ids, keys, fingerprints, dates, commits and temporary paths are redacted by
//! `common::insta_settings()`. Values in these tests are dummies (`value-1`…); generated
//! values are checked by shape, never snapshotted.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{insta_settings, run_cmd, snapshot_text, KeyKind, Output, TestEnv};

/// Every subcommand, in the order of `sesto --help`.
const COMMANDS: &[&str] = &[
    "init",
    "set",
    "get",
    "edit",
    "ls",
    "tree",
    "mkdir",
    "mv",
    "rm",
    "find",
    "generate",
    "otp",
    "fsck",
    "member",
    "member add",
    "member list",
    "member remove",
    "grant",
    "revoke",
    "access",
    "whoami",
    "verify",
    "stale",
    "share",
    "trust",
    "ssh-agent-identity",
    "sync",
    "resolve",
    "setup-git",
    "log",
    "show",
    "restore",
    "exec",
    "export",
    "import",
    "import pass",
    "import gopass",
    "import passage",
    "import dotenv",
    "import json",
    "import yaml",
    "render",
    "materialize",
    "scan",
    "hooks",
    "hooks install",
    "hooks uninstall",
    "completions",
];

/// The RFC 6238 test secret ("12345678901234567890" in base32): a published test
/// vector, not a secret.
const RFC6238_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Snapshots `out` (exit code, stdout, stderr) under `name`, redacted.
#[track_caller]
fn snap(name: &str, out: &Output) {
    insta_settings().bind(|| insta::assert_snapshot!(name, snapshot_text(out)));
}

/// A TestEnv with a git repository and `~/.ssh/id_ed25519` as the default identity.
fn env_with_key() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env
}

/// A fresh store (empty repository, so sesto commits each change), admin `alice`.
fn new_store() -> TestEnv {
    let env = env_with_key();
    env.run(&["init", "--name", "alice"]).assert_success();
    env
}

/// A small store:
///
/// ```text
/// prod/api/token        value-3
/// prod/db/login         user: app / password: value-2 (a YAML mapping)
/// prod/db/password      value-1
/// staging/db/password   value-4
/// ```
fn small_store() -> TestEnv {
    let env = new_store();
    for (path, value) in [
        ("prod/db/password", "value-1"),
        ("prod/db/login", "user: app\npassword: value-2\n"),
        ("prod/api/token", "value-3"),
        ("staging/db/password", "value-4"),
    ] {
        set(&env, path, value.as_bytes());
    }
    env
}

/// `sesto set path` with `value` on stdin; asserts it succeeds silently.
#[track_caller]
fn set(env: &TestEnv, path: &str, value: &[u8]) {
    let out = env.run_stdin(&["set", path], value);
    out.assert_success();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
}

/// The exact bytes `sesto get path` prints (no lossy UTF-8 conversion).
#[track_caller]
fn get_bytes(env: &TestEnv, path: &str) -> Vec<u8> {
    let out = env
        .sesto(&["get", path])
        .output()
        .expect("failed to run sesto get");
    assert!(
        out.status.success(),
        "sesto get {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `sesto get path` as text; asserts success.
#[track_caller]
fn get(env: &TestEnv, path: &str) -> String {
    String::from_utf8(get_bytes(env, path)).expect("value is not UTF-8")
}

/// Everything a failed command must leave alone: HEAD, the index and the work tree as
/// git reports them, and every file under .sesto/ byte for byte.
#[derive(Debug, PartialEq, Eq)]
struct State {
    git_status: String,
    files: BTreeMap<String, Vec<u8>>,
}

fn state(env: &TestEnv) -> State {
    let status = env.git(&[
        "status",
        "--porcelain=v2",
        "--branch",
        "--untracked-files=all",
    ]);
    status.assert_success();
    let mut files = BTreeMap::new();
    let dir = env.repo.join(".sesto");
    if dir.exists() {
        for entry in walkdir::WalkDir::new(&dir) {
            let entry = entry.expect("failed to walk .sesto");
            if entry.file_type().is_file() {
                let rel = entry.path().strip_prefix(&env.repo).unwrap();
                let bytes = std::fs::read(entry.path()).unwrap();
                files.insert(rel.display().to_string(), bytes);
            }
        }
    }
    State {
        git_status: status.stdout,
        files,
    }
}

#[track_caller]
fn assert_unchanged(before: &State, after: &State, what: &str) {
    assert_eq!(
        before.git_status, after.git_status,
        "{what}: git status changed"
    );
    assert_eq!(
        before.files.keys().collect::<Vec<_>>(),
        after.files.keys().collect::<Vec<_>>(),
        "{what}: the files under .sesto/ changed"
    );
    for (name, bytes) in &before.files {
        assert!(after.files[name] == *bytes, "{what}: {name} was rewritten");
    }
}

/// Runs each step (args, expected exit code), checking the code, and returns a
/// transcript of commands and their output for one snapshot.
#[track_caller]
fn transcript(env: &TestEnv, steps: &[(&[&str], i32)]) -> String {
    let mut text = String::new();
    for (args, code) in steps {
        let out = env.run(args);
        out.assert_code(*code);
        text.push_str(&format!(
            "$ sesto {}\n{}\n\n",
            args.join(" "),
            snapshot_text(&out)
        ));
    }
    text
}

// --- help and usage ---------------------------------------------------------------

#[test]
fn help_of_every_command_and_version() {
    let env = TestEnv::new();
    let out = env.run(&["--help"]);
    out.assert_success();
    snap("help", &out);
    // Every subcommand is listed in the top-level help and has its own.
    for cmd in COMMANDS {
        let words: Vec<&str> = cmd.split(' ').collect();
        if words.len() == 1 {
            assert!(
                out.stdout.contains(&format!("\n  {cmd} ")),
                "`sesto --help` does not list {cmd}"
            );
        }
        let mut args = words.clone();
        args.push("--help");
        let out = env.run(&args);
        out.assert_success();
        assert_eq!(out.stderr, "");
        snap(&format!("help_{}", words.join("_")), &out);
    }
    // `sesto help CMD` is the same text.
    assert_eq!(
        env.run(&["help", "mv"]).stdout,
        env.run(&["mv", "--help"]).stdout
    );

    let out = env.run(&["--version"]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("sesto {}\n", env!("CARGO_PKG_VERSION")),
        "--version"
    );
    // The number changes with every release; the assertion above checks it.
    let mut settings = insta_settings();
    settings.add_filter(&regex::escape(env!("CARGO_PKG_VERSION")), "[VERSION]");
    settings.bind(|| insta::assert_snapshot!("version", snapshot_text(&out)));
}

#[test]
fn usage_errors_exit_2() {
    let env = env_with_key();
    for (name, args) in [
        ("usage_unknown_command", &["bogus"][..]),
        ("usage_no_command", &[]),
        ("usage_get_missing_path", &["get"]),
        ("usage_mv_missing_destination", &["mv", "a"]),
        ("usage_rm_missing_path", &["rm"]),
        ("usage_unknown_option", &["ls", "--bogus"]),
        (
            "usage_generate_words_and_length",
            &["generate", "x", "--words", "5", "--length", "20"],
        ),
        ("usage_completions_unknown_shell", &["completions", "tcsh"]),
    ] {
        let out = env.run(args);
        out.assert_code(2);
        assert_eq!(out.stdout, "", "{name}: usage errors go to stderr");
        snap(name, &out);
    }
    // A usage error never gets as far as creating anything.
    assert!(!env.repo.join(".sesto").exists());
}

// --- init --------------------------------------------------------------------------

/// The SHA256 fingerprint of a public key as `ssh-keygen -l` prints it.
fn ssh_fingerprint(env: &TestEnv, private_key: &Path) -> String {
    let mut cmd = env.command("ssh-keygen");
    cmd.arg("-lf").arg(private_key.with_extension("pub"));
    let out = run_cmd(cmd);
    out.assert_success();
    out.stdout
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .expect("no SHA256 fingerprint in ssh-keygen -l output")
        .to_owned()
}

#[test]
fn init_in_an_empty_repository_commits_each_change() {
    let env = TestEnv::new();
    env.init_repo();
    let key = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    let mut cmd = env.sesto(&["init"]);
    cmd.env("USER", "carol");
    let out = run_cmd(cmd);
    out.assert_success();
    assert!(
        out.stdout.contains(&ssh_fingerprint(&env, &key)),
        "init shows the admin key's fingerprint:\n{}",
        out.stdout
    );
    snap("init_empty_repo", &out);

    assert_eq!(env.git(&["config", "sesto.commit"]).stdout, "true\n");
    assert_eq!(
        env.git(&["log", "--format=%s"]).stdout,
        "sesto: new store\n"
    );
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
    let roster = std::fs::read_to_string(env.repo.join(".sesto/roster.yaml")).unwrap();
    assert!(
        roster.contains("Test-User:"),
        "member named after git's user.name, before $USER"
    );

    // The next change is committed too.
    set(&env, "a", b"value-1");
    assert_eq!(env.git(&["log", "--format=%s"]).stdout.lines().count(), 2);
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
}

#[test]
fn init_beside_committed_files_only_stages() {
    let env = env_with_key();
    std::fs::write(env.repo.join("README"), "infra\n").unwrap();
    env.git(&["add", "README"]).assert_success();
    env.git(&["commit", "--quiet", "-m", "infra"])
        .assert_success();

    let out = env.run(&["init", "--name", "alice"]);
    out.assert_success();
    snap("init_repo_with_files", &out);

    assert_eq!(env.git(&["config", "sesto.commit"]).code, 1, "not set");
    assert_eq!(env.git(&["log", "--format=%s"]).stdout, "infra\n");
    let status = env.git(&["status", "--porcelain"]).stdout;
    for file in [
        ".sesto/roster.yaml",
        ".sesto/roster.sig",
        ".sesto/.gitattributes",
    ] {
        assert!(
            status.contains(&format!("A  {file}\n")),
            "{file} staged:\n{status}"
        );
    }
    assert!(status.contains("A  .sesto/nodes/"), "root node staged");
}

#[test]
fn init_beside_untracked_files_only_stages_and_later_writes_stage_too() {
    // The index then holds only .sesto/, which setup-git (run by init)
    // took for a clone of a secrets-only repository: it turned on
    // sesto.commit, and the next write committed its node files without
    // the roster, which stayed staged.
    let env = env_with_key();
    std::fs::write(env.repo.join("notes.txt"), "infra\n").unwrap();
    let out = env.run(&["init", "--name", "alice"]);
    out.assert_success();
    assert!(out.stdout.contains("Changes are staged"), "{}", out.stdout);
    assert_eq!(env.git(&["config", "sesto.commit"]).code, 1, "not set");
    set(&env, "a", b"value-1");
    assert_eq!(
        env.git(&["rev-parse", "--verify", "-q", "HEAD"]).code,
        1,
        "no commit"
    );
    let status = env.git(&["status", "--porcelain"]).stdout;
    assert!(status.contains("A  .sesto/roster.yaml\n"), "{status}");
    env.git(&["commit", "--quiet", "-m", "secrets"])
        .assert_success();
    let tree = env.git(&["ls-tree", "-r", "--name-only", "HEAD"]).stdout;
    assert!(tree.contains(".sesto/roster.yaml"), "{tree}");
    assert_eq!(env.run(&["get", "a"]).stdout, "value-1");
}

// --- set and get -------------------------------------------------------------------

#[test]
fn set_is_silent_and_get_prints_exact_bytes() {
    let env = new_store();
    let out = env.run_stdin(&["set", "prod/db/password"], b"value-1");
    out.assert_success();
    snap("set", &out);

    let out = env.run(&["get", "prod/db/password"]);
    out.assert_success();
    assert_eq!(out.stdout, "value-1", "no newline added");
    snap("get", &out);

    // Binary: a NUL, a byte that is not UTF-8, no trailing newline; stdin and --file.
    let binary: &[u8] = b"\x00bin\xffary\r\n\x00end";
    set(&env, "bin/stdin", binary);
    assert_eq!(get_bytes(&env, "bin/stdin"), binary);
    let file = env.root.join("value.bin");
    std::fs::write(&file, binary).unwrap();
    let out = env.run(&["set", "bin/file", "--file", file.to_str().unwrap()]);
    out.assert_success();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    assert_eq!(get_bytes(&env, "bin/file"), binary);
    // A binary value has no fields, and the error shows none of it.
    let out = env.run(&["get", "bin/file", "user"]);
    out.assert_code(1);
    assert!(!out.stderr.contains("ary") && !out.stderr.contains("end"));
    snap("error_field_not_text", &out);

    // A trailing newline given is a trailing newline kept.
    set(&env, "newline", b"value-2\n");
    assert_eq!(get_bytes(&env, "newline"), b"value-2\n");

    // Overwriting replaces the value.
    set(&env, "prod/db/password", b"value-3");
    assert_eq!(get(&env, "prod/db/password"), "value-3");
}

#[test]
fn get_field_of_a_yaml_mapping() {
    let env = new_store();
    set(
        &env,
        "prod/db",
        b"user: app\npassword: value-2\nport: 5432\nopts:\n  ssl: true\n",
    );
    let out = env.run(&["get", "prod/db", "user"]);
    out.assert_success();
    snap("get_field", &out);
    assert_eq!(out.stdout, "app");
    assert_eq!(env.run(&["get", "prod/db", "password"]).stdout, "value-2");
    assert_eq!(env.run(&["get", "prod/db", "port"]).stdout, "5432");
    let out = env.run(&["get", "prod/db", "opts"]);
    out.assert_success();
    snap("get_field_mapping", &out);
}

// --- ls, tree, find ----------------------------------------------------------------

#[test]
fn ls_tree_and_find_on_a_small_store() {
    let env = small_store();
    for (name, args) in [
        ("ls_root", &["ls"][..]),
        ("ls_folder", &["ls", "prod"]),
        ("ls_json", &["ls", "prod/db", "--json"]),
        ("ls_secret", &["ls", "prod/db/password"]),
        ("tree", &["tree"]),
        ("tree_folder", &["tree", "prod"]),
        ("tree_json", &["tree", "prod", "--json"]),
        ("find_substring", &["find", "db"]),
        ("find_case_insensitive", &["find", "API"]),
        ("find_glob", &["find", "*password"]),
        ("find_glob_path", &["find", "prod/*/password"]),
        ("find_json", &["find", "token", "--json"]),
    ] {
        let out = env.run(args);
        out.assert_success();
        assert_eq!(out.stderr, "", "{name}");
        snap(name, &out);
    }
    // The JSON forms parse, and say the same as the text forms.
    let ls: serde_json::Value = serde_json::from_str(&env.run(&["ls", "--json"]).stdout).unwrap();
    assert_eq!(
        ls,
        serde_json::json!([
            {"name": "prod", "kind": "folder"},
            {"name": "staging", "kind": "folder"},
        ])
    );
    let tree: serde_json::Value =
        serde_json::from_str(&env.run(&["tree", "--json"]).stdout).unwrap();
    assert_eq!(
        tree["children"][1]["children"][0]["children"][0]["name"],
        "password"
    );

    let out = env.run(&["find", "nothing-like-this"]);
    out.assert_code(1);
    snap("find_no_match", &out);
    let out = env.run(&["find", "nothing-like-this", "--json"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "[]\n");
}

#[test]
fn ls_and_tree_of_an_empty_store() {
    let env = new_store();
    let out = env.run(&["ls"]);
    out.assert_success();
    assert_eq!(out.stdout, "");
    let out = env.run(&["tree"]);
    out.assert_success();
    snap("tree_empty", &out);
}

// --- mkdir, mv, rm -----------------------------------------------------------------

#[test]
fn mkdir_mv_and_rm() {
    let env = small_store();
    let text = transcript(
        &env,
        &[
            (&["mkdir", "-p", "shared/certs"], 0),
            (&["mkdir", "-p", "shared/certs", "shared"], 0),
            (&["mkdir", "one", "two"], 0),
            // Rename within a folder.
            (&["mv", "prod/api/token", "prod/api/key"], 0),
            // Onto an existing folder: into it.
            (&["mv", "staging/db/password", "shared"], 0),
            // A folder to a new path in another folder.
            (&["mv", "one", "shared/certs/one"], 0),
            (&["rm", "prod/api/key", "two"], 0),
            (&["rm", "-r", "staging"], 0),
            (&["tree"], 0),
        ],
    );
    insta_settings().bind(|| insta::assert_snapshot!("mkdir_mv_rm", text));

    // Moved secrets keep their values.
    assert_eq!(get(&env, "shared/password"), "value-4");
    assert_eq!(get(&env, "prod/db/password"), "value-1");
    // Nothing is left behind: every node file is reachable and verifies.
    let out = env.run(&["fsck"]);
    out.assert_success();
    assert!(out.stdout.ends_with(": ok\n"), "{}", out.stdout);
    // Each change was committed, so the work tree is clean.
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
}

// --- generate ----------------------------------------------------------------------

/// The words `generate --words` draws from: the EFF list without hyphenated words.
fn eff_words() -> std::collections::HashSet<&'static str> {
    include_str!("../src/local/eff_large_wordlist.txt")
        .lines()
        .filter(|w| !w.is_empty() && !w.contains('-'))
        .collect()
}

#[test]
fn generate_stores_a_value_without_printing_it() {
    let env = new_store();
    const SYMBOLS: &str = "-_.~@#%^+=:,";

    let out = env.run(&["generate", "app/password"]);
    out.assert_success();
    snap("generate", &out);
    let value = get(&env, "app/password");
    assert_eq!(value.len(), 32);
    assert!(
        value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SYMBOLS.contains(c)),
        "unexpected character in a generated password"
    );
    assert!(!out.stdout.contains(&value) && !out.stderr.contains(&value));

    let out = env.run(&["generate", "app/pin", "--length", "12", "--no-symbols"]);
    out.assert_success();
    snap("generate_no_symbols", &out);
    let value = get(&env, "app/pin");
    assert_eq!(value.len(), 12);
    assert!(value.chars().all(|c| c.is_ascii_alphanumeric()));

    let out = env.run(&["generate", "app/phrase", "--words", "5"]);
    out.assert_success();
    snap("generate_words", &out);
    let value = get(&env, "app/phrase");
    assert!(!out.stdout.contains(&value) && !out.stderr.contains(&value));
    let words = eff_words();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 5, "five words joined by -");
    assert!(
        parts.iter().all(|w| words.contains(w)),
        "words from the EFF list"
    );

    // An existing secret is kept unless --force.
    let old = get(&env, "app/password");
    let before = state(&env);
    let out = env.run(&["generate", "app/password"]);
    out.assert_code(1);
    snap("generate_existing", &out);
    assert_unchanged(&before, &state(&env), "generate without --force");
    assert_eq!(get(&env, "app/password"), old);

    let out = env.run(&["generate", "app/password", "--force"]);
    out.assert_success();
    let new = get(&env, "app/password");
    assert_eq!(new.len(), 32);
    assert_ne!(new, old, "--force replaced the value");

    let before = state(&env);
    let out = env.run(&["generate", "app/short", "--length", "7"]);
    out.assert_code(1);
    snap("generate_too_short", &out);
    assert_unchanged(&before, &state(&env), "generate -l 7");
}

// --- otp ---------------------------------------------------------------------------

#[test]
fn otp_prints_the_rfc6238_code() {
    let env = new_store();
    set(&env, "otp/base32", RFC6238_SECRET.as_bytes());
    set(
        &env,
        "otp/uri",
        format!("otpauth://totp/Example:alice?secret={RFC6238_SECRET}&issuer=Example&digits=8")
            .as_bytes(),
    );
    set(
        &env,
        "otp/yaml",
        format!("user: alice\ntotp: {RFC6238_SECRET}\n").as_bytes(),
    );
    let otp = |path: &str, now: &str| {
        let mut cmd = env.sesto(&["otp", path]);
        cmd.env("SESTO_NOW", now);
        run_cmd(cmd)
    };
    // RFC 6238 appendix B, SHA-1: T = 59 -> 94287082, T = 1111111109 -> 07081804.
    let out = otp("otp/base32", "1970-01-01T00:00:59Z");
    out.assert_success();
    snap("otp", &out);
    assert_eq!(out.stdout, "287082\n");
    assert_eq!(otp("otp/base32", "2005-03-18T01:58:29Z").stdout, "081804\n");
    assert_eq!(otp("otp/uri", "2005-03-18T01:58:29Z").stdout, "07081804\n");
    assert_eq!(otp("otp/yaml", "2005-03-18T01:58:29Z").stdout, "081804\n");
}

// --- fsck and completions ----------------------------------------------------------

#[test]
fn fsck_of_a_clean_store() {
    let env = small_store();
    let out = env.run(&["fsck"]);
    out.assert_success();
    snap("fsck", &out);
    let out = env.run(&["fsck", "--json"]);
    out.assert_success();
    snap("fsck_json", &out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["secrets"], 4);
}

#[test]
fn completions_bash() {
    let env = TestEnv::new();
    let out = env.run(&["completions", "bash"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
    // A small script that asks `sesto __complete` on every TAB.
    assert!(out.stdout.contains("complete -F _sesto sesto"));
    assert!(out.stdout.contains("sesto __complete bash"));
    // Which completes every command, at every level.
    for cmd in COMMANDS {
        let mut words = vec!["__complete", "zsh", "--", "sesto"];
        words.extend(cmd.split(' '));
        let last = words.pop().expect("a word");
        words.push("");
        let out = env.run(&words);
        out.assert_success();
        assert!(
            out.stdout
                .lines()
                .any(|l| l.split('\t').next() == Some(last)),
            "completes {cmd}: {}",
            out.stdout
        );
    }
    // No store is needed, none is made.
    assert!(!env.repo.join(".sesto").exists());
}

// --- edit --------------------------------------------------------------------------

#[test]
fn edit_with_a_fake_editor() {
    let env = small_store();
    let seen = env.root.join("editor-saw");
    let append = env.write_script(
        "append",
        &format!(
            "printf '%s\\n' \"$1\" > '{seen}'\nstat -c '%a' \"$(dirname \"$1\")\" \"$1\" >> '{seen}'\n\
             printf 'line-2\\n' >> \"$1\"",
            seen = seen.display()
        ),
    );
    let noop = env.write_script("noop", ":");
    let empty = env.write_script("empty", ": > \"$1\"");
    let fail = env.write_script("fail", "printf 'line-2\\n' >> \"$1\"\nexit 1");
    let edit = |editor: &Path, path: &str| {
        let mut cmd = env.sesto(&["edit", path]);
        cmd.env("EDITOR", editor);
        let out = run_cmd(cmd);
        assert_eq!(
            env.edit_dir_entries(),
            Vec::<String>::new(),
            "the edit directory is empty after `sesto edit {path}`"
        );
        out
    };

    let out = edit(&append, "prod/db/password");
    out.assert_success();
    snap("edit_changed", &out);
    assert_eq!(get(&env, "prod/db/password"), "value-1line-2");
    // The editor got a 0600 file in a 0700 directory under SESTO_EDIT_DIR.
    let saw = std::fs::read_to_string(&seen).unwrap();
    let mut lines = saw.lines();
    let file = lines.next().unwrap();
    assert!(
        Path::new(file).starts_with(&env.edit),
        "edited {file}, outside SESTO_EDIT_DIR"
    );
    assert_eq!(lines.next(), Some("700"), "directory mode");
    assert_eq!(lines.next(), Some("600"), "file mode");
    assert_eq!(
        std::fs::metadata(&env.edit).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let before = state(&env);
    let out = edit(&noop, "prod/db/password");
    out.assert_success();
    snap("edit_unchanged", &out);
    assert_unchanged(&before, &state(&env), "unchanged edit");

    let out = edit(&empty, "prod/db/password");
    out.assert_success();
    snap("edit_emptied", &out);
    assert_unchanged(&before, &state(&env), "emptied edit");

    let out = edit(&fail, "prod/db/password");
    out.assert_code(1);
    snap("edit_editor_fails", &out);
    assert_unchanged(&before, &state(&env), "failed edit");
    assert_eq!(get(&env, "prod/db/password"), "value-1line-2");

    let out = edit(&noop, "prod/db");
    out.assert_code(1);
    snap("edit_folder", &out);
    assert_unchanged(&before, &state(&env), "edit of a folder");

    // A new path creates the secret; an untouched new buffer creates nothing.
    let out = edit(&noop, "prod/new");
    out.assert_success();
    snap("edit_new_unchanged", &out);
    assert_unchanged(&before, &state(&env), "untouched new secret");
    let out = edit(&append, "prod/new");
    out.assert_success();
    assert_eq!(get(&env, "prod/new"), "line-2\n");
}

#[test]
fn issue11_case7_edit_keeps_bytes_and_never_saves_broken_fields_silently() {
    let env = small_store();
    let edit = |script: &str, path: &str| {
        let editor = env.write_script("editor", script);
        let mut cmd = env.sesto(&["edit", path]);
        cmd.env("EDITOR", editor);
        let out = run_cmd(cmd);
        assert_eq!(env.edit_dir_entries(), Vec::<String>::new());
        out
    };
    // vim's habit, by hand: the saved file ends with a newline the value lacked.
    edit("printf 'value-1-x\\n' > \"$1\"", "prod/db/password").assert_success();
    assert_eq!(get(&env, "prod/db/password"), "value-1-x");

    // A secret of YAML fields edited into something that does not parse:
    // with no terminal to offer another edit, nothing is saved.
    let before = state(&env);
    let out = edit("printf 'user: [app\\n' > \"$1\"", "prod/db/login");
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("held YAML fields and it no longer parses as YAML (line")
            && out.stderr.contains("nothing was saved"),
        "{}",
        snapshot_text(&out)
    );
    assert!(!out.stderr.contains("app") && !out.stderr.contains("value-2"));
    assert_unchanged(&before, &state(&env), "broken YAML edit");
    edit(
        "printf 'user: app\\npassword: value-5\\n' > \"$1\"",
        "prod/db/login",
    )
    .assert_success();
    assert_eq!(get(&env, "prod/db/login"), "user: app\npassword: value-5\n");

    // A binary value is refused before any editor runs.
    set(&env, "prod/bin", b"\xff\x00\xfe");
    let marker = env.root.join("editor-ran");
    let out = edit(&format!("touch '{}'", marker.display()), "prod/bin");
    out.assert_code(1);
    assert!(out.stderr.contains("binary"), "{}", snapshot_text(&out));
    assert!(!marker.exists());
}

/// issue 11 case 8: an editor killed in raw mode leaves the terminal as it
/// found it. sesto's stdin is a pseudo-terminal the test holds.
#[test]
fn issue11_case8_edit_restores_the_terminal_after_the_editor_dies() {
    let env = small_store();
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    let modes = |fd| {
        // SAFETY: a zeroed termios filled by tcgetattr on our descriptor.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut t), 0);
            (
                t.c_lflag & (libc::ICANON | libc::ECHO),
                t.c_iflag & libc::ICRNL,
            )
        }
    };
    let before = modes(slave);
    assert_ne!(before.0, 0, "a fresh pty is in cooked mode");
    // The editor puts the terminal in raw mode and dies there.
    let editor = env.write_script("raw", "stty raw -echo\nkill -9 $$");
    let mut cmd = env.sesto(&["edit", "prod/db/password"]);
    // SAFETY: dup gives a new descriptor for the child's stdin.
    let stdin = unsafe { std::os::fd::FromRawFd::from_raw_fd(libc::dup(slave)) };
    cmd.env("EDITOR", editor).stdin::<std::fs::File>(stdin);
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert!(
        out.stderr.contains("nothing was saved"),
        "{}",
        snapshot_text(&out)
    );
    assert_eq!(modes(slave), before, "the terminal's modes after the edit");
    assert_eq!(env.edit_dir_entries(), Vec::<String>::new());
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(slave);
        libc::close(master);
    }
}

// --- errors ------------------------------------------------------------------------

#[test]
fn errors_exit_1_and_leave_the_store_unchanged() {
    let env = small_store();
    let long_name = "x".repeat(256);
    let cases: &[(&str, &[&str], &[u8])] = &[
        ("error_get_unknown", &["get", "prod/db/nope"], b""),
        ("error_get_unknown_deep", &["get", "prod/nope/x"], b""),
        ("error_get_unknown_top", &["get", "nope"], b""),
        ("error_get_folder", &["get", "prod/db"], b""),
        (
            "error_get_below_secret",
            &["get", "prod/db/password/x"],
            b"",
        ),
        ("error_ls_unknown", &["ls", "prod/nope"], b""),
        ("error_tree_of_secret", &["tree", "prod/api/token"], b""),
        ("error_set_onto_folder", &["set", "prod/db"], b"value-9"),
        (
            "error_set_below_secret",
            &["set", "prod/api/token/x"],
            b"value-9",
        ),
        ("error_set_root", &["set", ""], b"value-9"),
        (
            "error_set_missing_file",
            &["set", "prod/x", "--file", "no-such-file"],
            b"",
        ),
        ("error_mkdir_existing", &["mkdir", "prod"], b""),
        (
            "error_mkdir_over_secret",
            &["mkdir", "-p", "prod/api/token"],
            b"",
        ),
        ("error_mkdir_missing_parent", &["mkdir", "new/sub"], b""),
        ("error_rm_non_empty", &["rm", "prod/db"], b""),
        ("error_rm_unknown", &["rm", "prod/nope"], b""),
        ("error_rm_root", &["rm", "-r", ""], b""),
        ("error_mv_into_itself", &["mv", "prod", "prod/db"], b""),
        (
            "error_mv_onto_secret",
            &["mv", "prod/api/token", "prod/db/password"],
            b"",
        ),
        ("error_mv_unknown", &["mv", "prod/nope", "prod/x"], b""),
        ("error_name_dotdot", &["set", "a/../b"], b"value-9"),
        ("error_name_control_char", &["mkdir", "a\tb"], b""),
        ("error_name_too_long", &["set", &long_name], b"value-9"),
        (
            "error_field_not_a_mapping",
            &["get", "prod/db/password", "user"],
            b"",
        ),
        (
            "error_field_missing",
            &["get", "prod/db/login", "nope"],
            b"",
        ),
        ("error_otp_not_otp", &["otp", "prod/db/password"], b""),
        ("error_init_twice", &["init"], b""),
    ];
    let before = state(&env);
    for (name, args, input) in cases {
        let out = env.run_stdin(args, input);
        out.assert_code(1);
        assert_eq!(out.stdout, "", "{name}: errors print nothing on stdout");
        assert!(out.stderr.starts_with("error: "), "{name}: {}", out.stderr);
        // No value ever shows in an error.
        for value in ["value-1", "value-2", "value-3", "value-4", "value-9"] {
            assert!(!out.stderr.contains(value), "{name} shows {value}");
        }
        snap(name, &out);
        assert_unchanged(&before, &state(&env), name);
    }
    // A 255-byte name is fine.
    assert_eq!(
        env.run(&["get", &"x".repeat(255)]).code,
        1,
        "only not found"
    );
    assert!(env
        .run(&["get", &"x".repeat(255)])
        .stderr
        .contains("no such"));
}

#[test]
fn no_store_in_a_plain_git_repository() {
    let env = env_with_key();
    let before = state(&env);
    let out = env.run(&["ls"]);
    out.assert_code(1);
    snap("error_no_store", &out);
    let out = env.run_stdin(&["set", "a"], b"value-1");
    out.assert_code(1);
    assert_eq!(
        common::redact(&out.stderr),
        common::redact(&env.run(&["ls"]).stderr),
        "set fails like ls"
    );
    assert!(!out.stderr.contains("value-1"));
    assert_unchanged(&before, &state(&env), "no store");
    assert!(!env.repo.join(".sesto").exists());
}

#[test]
fn init_outside_a_git_repository() {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    let out = env.run(&["init"]);
    out.assert_code(1);
    snap("error_init_not_git", &out);
    assert!(!env.repo.join(".sesto").exists());
    assert!(!env.repo.join(".git").exists());
}

#[test]
fn no_identity() {
    let env = small_store();
    let empty_home = env.root.join("empty-home");
    std::fs::create_dir(&empty_home).unwrap();
    let before = state(&env);

    let mut cmd = env.sesto(&["get", "prod/db/password"]);
    cmd.env("HOME", &empty_home);
    let out = run_cmd(cmd);
    out.assert_code(1);
    snap("error_no_identity", &out);
    assert!(!out.stderr.contains("value-1"));
    assert_unchanged(&before, &state(&env), "no identity");

    // init with no key: nothing is created.
    let other = TestEnv::new();
    other.init_repo();
    let out = other.run(&["init"]);
    out.assert_code(1);
    snap("error_init_no_identity", &out);
    assert!(!other.repo.join(".sesto").exists());
}

#[test]
fn a_key_that_is_not_a_member() {
    let env = small_store();
    let other = env.ssh_keygen("other_key", KeyKind::Ed25519, None);
    // Without the member's default key in HOME, only -i is tried.
    let empty_home = env.root.join("empty-home");
    std::fs::create_dir(&empty_home).unwrap();
    let before = state(&env);
    for (name, args, input) in [
        (
            "error_not_a_member_get",
            &["get", "prod/db/password"][..],
            &b""[..],
        ),
        ("error_not_a_member_set", &["set", "prod/x"], b"value-9"),
    ] {
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["-i", other.to_str().unwrap()]);
        let mut cmd = env.sesto(&args);
        cmd.env("HOME", &empty_home);
        let out = common::run_cmd_stdin(cmd, input);
        out.assert_code(1);
        assert!(!out.stderr.contains("value-"), "{name}");
        snap(name, &out);
        assert_unchanged(&before, &state(&env), name);
    }
    // An -i file that does not exist is an error, not skipped.
    let out = env.run(&["ls", "-i", "no-such-key"]);
    out.assert_code(1);
    snap("error_identity_file_missing", &out);
}
