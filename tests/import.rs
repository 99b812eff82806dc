//! `sesto import` against source stores built by the real tools: `pass` and
//! `gpg` (a throwaway GNUPGHOME per test), `age` for passage stores, pass
//! stores laid out as gopass keeps them, and dotenv, JSON and YAML files and
//! stdin. Every value must come back byte for byte (read back with `sesto
//! get` and compared with what `pass show` or the bytes given print), each
//! import must be one commit, and every failure must leave the store, its
//! files and git exactly as they were.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{require_tool, require_tools, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv};

/// A store with admin alice in an empty repository (so sesto commits).
fn store() -> TestEnv {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    env
}

/// A GnuPG home inside the test's directory, with its agent stopped when
/// the test ends.
struct Gpg {
    home: PathBuf,
    store: PathBuf,
}

impl Gpg {
    fn new(env: &TestEnv, store: &Path) -> Gpg {
        let home = env.root.join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Gpg {
            home,
            store: store.to_path_buf(),
        }
    }

    /// `program` in the sealed environment, with this GNUPGHOME and pass store.
    fn cmd(&self, env: &TestEnv, program: &str) -> Command {
        let mut cmd = env.command(program);
        cmd.env("GNUPGHOME", &self.home)
            .env("PASSWORD_STORE_DIR", &self.store);
        cmd
    }

    /// Makes a key with no passphrase and returns its fingerprint.
    fn key(&self, env: &TestEnv, email: &str) -> String {
        let mut cmd = self.cmd(env, "gpg");
        cmd.args(["--batch", "--passphrase", "", "--quick-gen-key"])
            .arg(format!("Test <{email}>"))
            .args(["default", "default", "never"]);
        run_cmd(cmd).assert_success();
        let mut cmd = self.cmd(env, "gpg");
        cmd.args(["--batch", "--with-colons", "--list-secret-keys", email]);
        let out = run_cmd(cmd);
        out.assert_success();
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_string())
            .expect("a fingerprint")
    }

    fn pass(&self, env: &TestEnv, args: &[&str]) -> Output {
        let mut cmd = self.cmd(env, "pass");
        cmd.args(args);
        run_cmd(cmd)
    }

    /// `pass insert -m PATH` with `value` on stdin: gpg encrypts exactly these bytes.
    fn insert(&self, env: &TestEnv, path: &str, value: &[u8]) {
        let mut cmd = self.cmd(env, "pass");
        cmd.args(["insert", "-m", path]);
        run_cmd_stdin(cmd, value).assert_success();
    }

    /// `pass show PATH`, as bytes.
    fn show(&self, env: &TestEnv, path: &str) -> Vec<u8> {
        let out = self.cmd(env, "pass").args(["show", path]).output().unwrap();
        assert!(out.status.success(), "pass show {path}");
        out.stdout
    }

    /// sesto with this GNUPGHOME and pass store.
    fn sesto(&self, env: &TestEnv, args: &[&str]) -> Output {
        let mut cmd = env.sesto(args);
        cmd.env("GNUPGHOME", &self.home)
            .env("PASSWORD_STORE_DIR", &self.store);
        run_cmd(cmd)
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.home)
            .output();
    }
}

/// A secret's value, as bytes.
fn get(env: &TestEnv, path: &str) -> Vec<u8> {
    let out = env.sesto(&["get", path]).output().unwrap();
    assert!(
        out.status.success(),
        "get {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn commits(env: &TestEnv) -> usize {
    let out = env.git(&["rev-list", "--count", "HEAD"]);
    out.assert_success();
    out.stdout.trim().parse().unwrap()
}

/// Everything that must not change when an import fails: the listing, the
/// node files, the commits, and a clean git status.
fn snapshot(env: &TestEnv) -> (String, Vec<(PathBuf, Vec<u8>)>, usize) {
    let tree = env.run(&["tree"]);
    tree.assert_success();
    let mut files: Vec<(PathBuf, Vec<u8>)> = walk(&env.repo.join(".sesto"))
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    let status = env.git(&["status", "--porcelain"]);
    assert_eq!(status.stdout, "", "git status is clean");
    (tree.stdout, files, commits(env))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Values that must survive: multi-line with pass's password-first layout,
/// no final newline, blank lines at both ends, non-ASCII, bytes that are
/// not UTF-8.
const PASS_ENTRIES: &[(&str, &[u8])] = &[
    (
        "web/github",
        b"hunter2\nuser: alice\nurl: https://github.com\n",
    ),
    ("email/no-newline", b"printf-value-without-newline"),
    ("deep/a/b/c/d", b"\n\n  spaced  \n\n"),
    ("unicode", "grüß 🔑\n".as_bytes()),
    ("binary", b"\x00\xff\xfe\r\n\x01"),
    ("team/shared/db", b"teampass\n"),
];

#[test]
#[cfg_attr(missing_gpg, ignore = "needs gpg, gpgconf: apt-get install gnupg")]
#[cfg_attr(missing_pass, ignore = "needs pass: apt-get install pass")]
fn pass_store_imports_byte_for_byte_in_one_commit() {
    require_tools(&["pass", "gpg"]);
    let env = store();
    let pass_dir = env.root.join("password-store");
    let gpg = Gpg::new(&env, &pass_dir);
    let me = gpg.key(&env, "me@example.com");
    let team = gpg.key(&env, "team@example.com");
    gpg.pass(&env, &["init", &me]).assert_success();
    gpg.pass(&env, &["git", "init"]).assert_success();
    // A folder encrypted to other recipients: its own .gpg-id.
    gpg.pass(&env, &["init", "-p", "team", &me, &team])
        .assert_success();
    for (path, value) in PASS_ENTRIES {
        gpg.insert(&env, path, value);
    }
    // `pass insert -e` stores the line with a newline, as pass does.
    let mut cmd = gpg.cmd(&env, "pass");
    cmd.args(["insert", "-e", "echoed"]);
    run_cmd_stdin(cmd, b"one line\n").assert_success();
    std::fs::write(pass_dir.join("README.md"), "not an entry").unwrap();
    assert!(pass_dir.join("team/.gpg-id").exists());
    assert!(pass_dir.join(".git").is_dir());

    let before = commits(&env);
    let out = gpg.sesto(&env, &["import", "pass", "--json"]);
    out.assert_success();
    let report = json(&out);
    let mut want: Vec<String> = PASS_ENTRIES.iter().map(|(p, _)| p.to_string()).collect();
    want.push("echoed".into());
    want.sort();
    assert_eq!(strings(&report["imported"]), want);
    let mut skipped = strings(&report["skipped"]);
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ".git/",
            ".gitattributes",
            ".gpg-id",
            "README.md",
            "team/.gpg-id"
        ]
    );

    for (path, value) in PASS_ENTRIES {
        let got = get(&env, path);
        assert_eq!(got, *value, "{path}");
        assert_eq!(got, gpg.show(&env, path), "{path}: as pass shows it");
    }
    assert_eq!(get(&env, "echoed"), b"one line\n");

    assert_eq!(commits(&env), before + 1, "one commit for the whole import");
    let message = env.git(&["log", "-1", "--format=%s"]).stdout;
    assert!(
        message.starts_with("sesto: import 7 secrets from pass ("),
        "{message}"
    );
    assert!(!message.contains("github") && !message.contains("hunter2"));
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
}

#[test]
#[cfg_attr(missing_gpg, ignore = "needs gpg, gpgconf: apt-get install gnupg")]
#[cfg_attr(missing_pass, ignore = "needs pass: apt-get install pass")]
fn gpg_failing_midway_leaves_the_store_unchanged() {
    require_tools(&["pass", "gpg"]);
    let env = store();
    env.run_stdin(&["set", "kept/one"], b"before")
        .assert_success();
    let pass_dir = env.root.join("password-store");
    let gpg = Gpg::new(&env, &pass_dir);
    let me = gpg.key(&env, "me@example.com");
    gpg.pass(&env, &["init", &me]).assert_success();
    for i in 0..12 {
        gpg.insert(
            &env,
            &format!("entries/e{i:02}"),
            b"value-that-must-not-leak\n",
        );
    }
    // Not an OpenPGP message: gpg fails on this one, in the middle.
    std::fs::write(pass_dir.join("entries/e06.gpg"), b"garbage, not OpenPGP").unwrap();
    let before = snapshot(&env);

    // A dry run decrypts nothing, so the bad file does not stop it.
    let out = gpg.sesto(&env, &["import", "pass", "--dry-run"]);
    out.assert_success();
    assert!(out.stdout.contains("entries/e06\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("would import 12 secrets from pass into /"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(&env), before);

    let out = gpg.sesto(&env, &["import", "pass"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("gpg could not decrypt") && out.stderr.contains("entries/e06.gpg"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("value-that-must-not-leak"));
    assert_eq!(snapshot(&env), before, "the store is as it was");
    assert_eq!(get(&env, "kept/one"), b"before");
}

#[test]
#[cfg_attr(missing_gpg, ignore = "needs gpg, gpgconf: apt-get install gnupg")]
#[cfg_attr(missing_pass, ignore = "needs pass: apt-get install pass")]
fn gopass_root_store_and_mounts_become_folders() {
    require_tools(&["pass", "gpg"]);
    let env = store();
    // gopass's default root, in the sealed HOME (XDG_DATA_HOME unset).
    let root = env.home.join(".local/share/gopass/stores/root");
    let gpg = Gpg::new(&env, &root);
    let me = gpg.key(&env, "me@example.com");
    gpg.pass(&env, &["init", &me]).assert_success();
    gpg.insert(&env, "personal/bank", b"1234\n");
    // One mount listed in gopass's config, one given with --mount.
    let work = env.root.join("gopass-work");
    let team = env.root.join("gopass-team");
    for (dir, entries) in [
        (
            &work,
            &[("aws/key", &b"AKIA\nsecret: x\n"[..]), ("ci", b"token")][..],
        ),
        (&team, &[("ops/pager", &b"555\n"[..])][..]),
    ] {
        let other = Gpg {
            home: gpg.home.clone(),
            store: dir.clone(),
        };
        other.pass(&env, &["init", &me]).assert_success();
        for (path, value) in entries {
            other.insert(&env, path, value);
        }
        std::mem::forget(other); // one agent: `gpg` stops it
    }
    std::fs::create_dir_all(env.xdg_config.join("gopass")).unwrap();
    std::fs::write(
        env.xdg_config.join("gopass/config"),
        format!(
            "[core]\n\tautoclip = false\n[mounts]\n\tpath = {}\n[mounts \"work\"]\n\tpath = {}\n",
            root.display(),
            work.display()
        ),
    )
    .unwrap();

    let mount = format!("team={}", team.display());
    let out = gpg.sesto(&env, &["import", "gopass", "--mount", &mount, "--json"]);
    out.assert_success();
    assert_eq!(
        strings(&json(&out)["imported"]),
        ["personal/bank", "team/ops/pager", "work/aws/key", "work/ci"]
    );
    assert_eq!(get(&env, "personal/bank"), b"1234\n");
    assert_eq!(get(&env, "work/aws/key"), b"AKIA\nsecret: x\n");
    assert_eq!(get(&env, "work/ci"), b"token");
    assert_eq!(get(&env, "team/ops/pager"), b"555\n");
    let message = env.git(&["log", "-1", "--format=%s"]).stdout;
    assert!(
        message.starts_with("sesto: import 4 secrets from gopass"),
        "{message}"
    );

    // A DIR given is that store alone: the config's mounts are not read.
    let out = gpg.sesto(
        &env,
        &[
            "import",
            "gopass",
            root.to_str().unwrap(),
            "--to",
            "again",
            "-n",
            "--json",
        ],
    );
    out.assert_success();
    assert_eq!(strings(&json(&out)["imported"]), ["again/personal/bank"]);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn passage_store_imports_with_age_identities() {
    require_tools(&["age", "age-keygen"]);
    let env = store();
    let (identity, recipient) = env.age_keygen("passage");
    // passage's defaults: ~/.passage/store and ~/.passage/identities.
    let passage = env.home.join(".passage");
    let dir = passage.join("store");
    std::fs::create_dir_all(dir.join("cloud/aws")).unwrap();
    std::fs::copy(&identity, passage.join("identities")).unwrap();
    std::fs::write(dir.join(".age-recipients"), format!("{recipient}\n")).unwrap();
    let entries: &[(&str, &[u8], bool)] = &[
        ("cloud/aws/root", b"pw\nline two\n", false),
        ("armored", b"no newline", true),
        ("bytes", b"\x00\xff\n", false),
    ];
    for (path, value, armor) in entries {
        let mut cmd = env.command("age");
        cmd.args(["-r", &recipient]);
        if *armor {
            cmd.arg("-a");
        }
        cmd.arg("-o").arg(dir.join(format!("{path}.age")));
        run_cmd_stdin(cmd, value).assert_success();
    }
    let before = commits(&env);
    let out = env.run(&["import", "passage"]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("imported 3 secrets from passage into /"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("skipped 1 file"), "{}", out.stdout);
    for (path, value, _) in entries {
        assert_eq!(get(&env, path), *value, "{path}");
    }
    assert_eq!(commits(&env), before + 1);

    // The wrong identity: an error naming the file, and nothing written.
    let (other, _) = env.age_keygen("other");
    let snap = snapshot(&env);
    let out = env.run(&[
        "import",
        "passage",
        "--identities",
        other.to_str().unwrap(),
        "--to",
        "again",
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("cannot decrypt"), "{}", out.stderr);
    assert!(out.stderr.contains("armored.age"), "{}", out.stderr);
    assert_eq!(snapshot(&env), snap);
}

#[test]
fn existing_secrets_are_refused_unless_forced() {
    let env = store();
    env.run_stdin(&["set", "prod/A"], b"old").assert_success();
    let file = env.root.join("app.env");
    std::fs::write(&file, "A=new\nB=two\n").unwrap();
    let file = file.to_str().unwrap();
    let snap = snapshot(&env);

    let out = env.run(&["import", "dotenv", file, "--to", "prod"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("1 secret of the import exists already: prod/A")
            && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&env), snap, "nothing written, B included");

    let out = env.run(&[
        "import", "dotenv", file, "--to", "prod", "--force", "--json",
    ]);
    out.assert_success();
    assert_eq!(strings(&json(&out)["replaced"]), ["prod/A"]);
    assert_eq!(get(&env, "prod/A"), b"new");
    assert_eq!(get(&env, "prod/B"), b"two");
    assert_eq!(commits(&env), snap.2 + 1);

    // A folder where the import has a secret is refused even with --force.
    env.run_stdin(&["set", "prod/C/inner"], b"x")
        .assert_success();
    std::fs::write(env.root.join("c.env"), "C=value\n").unwrap();
    let snap = snapshot(&env);
    let c = env.root.join("c.env");
    let out = env.run(&[
        "import",
        "dotenv",
        c.to_str().unwrap(),
        "--to",
        "prod",
        "--force",
    ]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("prod/C is a folder in the store"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&env), snap);
}

#[test]
fn dry_run_lists_paths_and_writes_nothing() {
    let env = store();
    let file = env.root.join("s.json");
    std::fs::write(
        &file,
        r#"{"db": {"password": "dry-run-value", "port": 5432}, "empty": {}}"#,
    )
    .unwrap();
    let snap = snapshot(&env);
    let out = env.run(&[
        "import",
        "json",
        file.to_str().unwrap(),
        "--to",
        "prod",
        "-n",
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        "prod/db/password\nprod/db/port\nprod/empty/\n\
         would import 2 secrets from json into prod; dry run, nothing was written\n"
    );
    assert!(!out.stdout.contains("dry-run-value") && !out.stderr.contains("dry-run-value"));
    assert_eq!(snapshot(&env), snap);

    let out = env.run(&["import", "json", file.to_str().unwrap(), "--to", "prod"]);
    out.assert_success();
    assert_eq!(get(&env, "prod/db/password"), b"dry-run-value");
    assert_eq!(get(&env, "prod/db/port"), b"5432");
    let ls = env.run(&["ls", "prod"]);
    assert!(ls.stdout.contains("empty/"), "{}", ls.stdout);
}

#[test]
fn yaml_and_dotenv_from_stdin_keep_every_byte() {
    let env = store();
    let yaml = b"db:\n  password: \"p@ss'w\\\"rd\\n\"\n  cert: |\n    -----BEGIN-----\n    abc\n  \
                 port: 5432\n  tls: true\nplain: 'single ''quoted'''\n";
    let out = env.run_stdin(&["import", "yaml", "-", "--to", "prod"], yaml);
    out.assert_success();
    assert_eq!(get(&env, "prod/db/password"), b"p@ss'w\"rd\n");
    assert_eq!(get(&env, "prod/db/cert"), b"-----BEGIN-----\nabc\n");
    assert_eq!(get(&env, "prod/db/port"), b"5432");
    assert_eq!(get(&env, "prod/db/tls"), b"true");
    assert_eq!(get(&env, "prod/plain"), b"single 'quoted'");

    let dotenv = b"# app\nexport TOKEN=abc123 # comment\nKEY='lit $HOME \\n'\n\
                   MULTI=\"line one\\nline \\\"two\\\"\"\nPEM=\"-----BEGIN-----\nxyz\n-----END-----\n\"\n";
    let out = env.run_stdin(&["import", "dotenv", "-", "--to", "app"], dotenv);
    out.assert_success();
    assert_eq!(get(&env, "app/TOKEN"), b"abc123");
    assert_eq!(get(&env, "app/KEY"), b"lit $HOME \\n");
    assert_eq!(get(&env, "app/MULTI"), b"line one\nline \"two\"");
    assert_eq!(
        get(&env, "app/PEM"),
        b"-----BEGIN-----\nxyz\n-----END-----\n"
    );
}

#[test]
fn hostile_files_fail_cleanly_naming_the_key_and_no_value() {
    let env = store();
    env.run_stdin(&["set", "prod/keep"], b"k").assert_success();
    let snap = snapshot(&env);
    let bomb = "[".repeat(1 << 20);
    let deep = "{\"a\":".repeat(100) + "\"leak-me\"" + &"}".repeat(100);
    let huge = vec![b'a'; (16 << 20) + 10];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotenv",
            b"GOOD=x\nbad/name=leak-me\n".to_vec(),
            "stdin:2: invalid name \"bad/name\"",
        ),
        (
            "dotenv",
            b"GOOD=x\nnot a line\n".to_vec(),
            "stdin:2: expected NAME=value",
        ),
        (
            "json",
            br#"{"ok": "x", "a": {"..": "leak-me"}}"#.to_vec(),
            "key a...: invalid name",
        ),
        (
            "json",
            br#"{"hosts": ["leak-me"]}"#.to_vec(),
            "key hosts is a list",
        ),
        ("json", deep.into_bytes(), "nested deeper than 64"),
        ("yaml", bomb.into_bytes(), "nested deeper than 32"),
        (
            "yaml",
            b"a: &x leak-me\nb: *x\n".to_vec(),
            "anchors or aliases",
        ),
        (
            "yaml",
            b"\x00\xff\xfe garbage leak-me".to_vec(),
            "not a YAML file",
        ),
        ("yaml", huge, "larger than 16 MiB"),
    ];
    for (kind, input, want) in cases {
        let out = env.run_stdin(&["import", kind, "-", "--to", "prod"], &input);
        out.assert_code(1);
        assert!(
            out.stderr.contains(want),
            "{kind}: {want:?} not in {}",
            out.stderr
        );
        assert!(!out.stderr.contains("leak-me"), "{kind}: {}", out.stderr);
    }
    // A file name, not stdin: a FIFO is refused without blocking.
    let fifo = env.root.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = env.run(&["import", "yaml", fifo.to_str().unwrap(), "--to", "prod"]);
    out.assert_code(1);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert_eq!(snapshot(&env), snap);
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn a_long_import_shows_progress_on_a_terminal_only() {
    require_tool("script");
    let env = store();
    let dotenv: String = (0..600)
        .map(|i| format!("VAR_{i:03}=value-{i}\n"))
        .collect();
    let file = env.home.join("big.env");
    std::fs::write(&file, &dotenv).unwrap();
    let file = file.to_str().unwrap();

    // Without a terminal (as here): one summary line, no progress.
    let out = env.run(&["import", "dotenv", file, "--to", "quiet"]);
    out.assert_success();
    assert!(!out.stderr.contains("nodes"), "{}", out.stderr);

    // On a terminal: a running count of what is written, cleared at the end.
    let mut cmd = env.command("script");
    let line = format!(
        "{} import dotenv {file} --to loud",
        env!("CARGO_BIN_EXE_sesto")
    );
    cmd.args(["-qec", &line, "/dev/null"]);
    cmd.current_dir(&env.repo);
    let out = run_cmd(cmd);
    out.assert_success();
    assert!(
        out.stdout.contains("writing ") && out.stdout.contains(" nodes"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("value-"), "{}", out.stdout);
    assert_eq!(get(&env, "loud/VAR_599"), b"value-599");
}
