//! `sesto scan` and `sesto hooks`: plaintext secrets are found in staged changes
//! and files (values the user can read, known token shapes, stray files in
//! .sesto/) without ever being printed; real `git commit`s through sesto's hook
//! and through the pre-commit framework are refused when they hold one; sesto's
//! own commits are checked; and ordinary source and configuration scan clean.
//!
//! Token samples are built at run time by concatenation, so that this file (which
//! the false-positive test scans) holds none.

mod common;

use std::path::{Path, PathBuf};

use common::{
    insta_settings, path_with_sesto, require_tool, run_cmd, snapshot_text, KeyKind, Output, TestEnv,
};

/// A value alice can read, pasted into files by the tests.
const PASSWORD: &str = "Corr3ct-Horse-Battery-Staple-42";

/// Lines of a multi-line value (a key), one of which gets pasted alone.
const PEM_LINES: [&str; 3] = [
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MqwertyuiopasdfghjklzxcvbnmQWER",
];

fn store() -> TestEnv {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    env.run_stdin(
        &["set", "prod/db/password"],
        format!("{PASSWORD}\n").as_bytes(),
    )
    .assert_success();
    env.run_stdin(&["set", "prod/tls/key"], PEM_LINES.join("\n").as_bytes())
        .assert_success();
    env.run_stdin(&["set", "prod/short"], b"abc123")
        .assert_success();
    env
}

fn write(env: &TestEnv, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = env.repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[track_caller]
fn assert_no_value(out: &Output) {
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains(PASSWORD), "a value was printed:\n{all}");
    for line in PEM_LINES {
        assert!(!all.contains(line), "a value's line was printed:\n{all}");
    }
}

/// One sample of each token rule, and a near miss of each, built at run time.
fn samples() -> Vec<(&'static str, String, String)> {
    let b36 = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5";
    let b64 = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
    let bech = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE";
    let dash = "-----";
    vec![
        (
            "private-key",
            format!("{dash}BEGIN OPENSSH {}{dash}\n{b64}\n", "PRIVATE KEY"),
            format!("{dash}BEGIN PUBLIC {}{dash}\n{b64}\n", "KEY"),
        ),
        (
            "private-key",
            format!("{dash}BEGIN RSA {}{dash}\nProc-Type: 4,ENCRYPTED\n\n{b64}\n", "PRIVATE KEY"),
            format!("if line.starts_with(\"{dash}BEGIN RSA {}{dash}\") {{", "PRIVATE KEY"),
        ),
        (
            "age-secret-key",
            format!("{}-KEY-1{bech}", "AGE-SECRET"),
            format!("{}-KEY-1{}", "AGE-SECRET", &bech[..40]),
        ),
        (
            "aws-access-key-id",
            format!("aws_access_key_id = {}IA{}", "AK", "IOSFODNN7EXAMPLE"),
            format!("aws_access_key_id = {}IA{}", "AK", "IOSFODNN7EXAMPL"),
        ),
        (
            "github-token",
            format!("GH_TOKEN={}p_{b36}", "gh"),
            format!("GH_TOKEN={}p_{}", "gh", &b36[..30]),
        ),
        (
            "github-token",
            format!("token: {}s_{b36}", "gh"),
            format!("token: {}x_{b36}", "gh"),
        ),
        (
            "github-token",
            format!("{}_pat_{b36}{b36}{}", "github", &b36[..10]),
            format!("{}_pat_{b36}", "github"),
        ),
        (
            "gitlab-token",
            format!("{}-{}", "glpat", &b36[..20]),
            format!("{}-{}", "glpat", &b36[..12]),
        ),
        (
            "slack-token",
            format!("{}b-123456789012-1234567890123-{}", "xox", &b36[..24]),
            format!("{}z-123456789012-1234567890123-{}", "xox", &b36[..24]),
        ),
        (
            "slack-webhook",
            format!("https://hooks.slack.{}/services/T0AB1CD2E/B0AB1CD2E/{}", "com", &b36[..24]),
            format!("https://hooks.slack.{}/services/", "com"),
        ),
        (
            "stripe-key",
            format!("{}_live_{}", "sk", &b36[..24]),
            format!("{}_test_{}", "sk", &b36[..24]),
        ),
        (
            "jwt",
            format!(
                "Authorization: Bearer {}JhbGciOiJIUzI1NiJ9.{}JzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "ey", "ey"
            ),
            format!("{}JhbGciOiJIUzI1NiJ9 is only a header", "ey"),
        ),
    ]
}

/// What a command printed on either stream (git gives hooks' stdout to stderr).
fn all(out: &Output) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

fn parse_json(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", snapshot_text(out)))
}

#[test]
fn a_value_pasted_into_a_staged_file_is_found_and_never_printed() {
    let env = store();
    write(
        &env,
        "config/app.env",
        format!(
            "HOST=db.internal\nDB_PASSWORD={PASSWORD}\nTLS_PART={}\nSHORT=abc123\n",
            PEM_LINES[1]
        ),
    );
    env.git(&["add", "config"]).assert_success();
    let out = env.run(&["scan", "--staged"]);
    out.assert_code(1);
    assert_no_value(&out);
    assert_eq!(
        out.stdout,
        "config/app.env:2: known-value (secret prod/db/password)\n\
         config/app.env:3: known-value (secret prod/tls/key)\n"
    );
    insta_settings().bind(|| insta::assert_snapshot!("staged_value", snapshot_text(&out)));

    let json = env.run(&["scan", "--staged", "--json"]);
    json.assert_code(1);
    assert_no_value(&json);
    let found = parse_json(&json);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0]["file"], "config/app.env");
    assert_eq!(found[0]["line"], 2);
    assert_eq!(found[0]["rule"], "known-value");
    assert_eq!(found[0]["secret"], "prod/db/password");

    // Only what is staged counts: the work tree may differ.
    write(&env, "config/app.env", "HOST=db.internal\n");
    env.run(&["scan", "--staged"]).assert_code(1);
    env.run(&["scan", "config"]).assert_success();
    env.git(&["add", "config"]).assert_success();
    env.run(&["scan", "--staged"]).assert_success();
}

#[test]
fn every_token_rule_hits_its_sample_and_not_its_near_miss() {
    let env = TestEnv::new();
    for (i, (_, hit, miss)) in samples().iter().enumerate() {
        write(&env, &format!("s/hit-{i:02}.txt"), format!("x\n{hit}\n"));
        write(&env, &format!("s/miss-{i:02}.txt"), format!("x\n{miss}\n"));
    }
    let out = env.run(&["scan", "--json", "s"]);
    out.assert_code(1);
    let found = parse_json(&out);
    for (i, (rule, _, _)) in samples().iter().enumerate() {
        let hit = format!("s/hit-{i:02}.txt");
        let rules: Vec<&str> = found
            .iter()
            .filter(|f| f["file"] == hit.as_str())
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert_eq!(rules, [*rule], "{hit}");
        assert_eq!(
            found.iter().find(|f| f["file"] == hit.as_str()).unwrap()["line"],
            2
        );
    }
    let misses: Vec<_> = found
        .iter()
        .filter(|f| f["file"].as_str().unwrap().contains("miss"))
        .collect();
    assert!(misses.is_empty(), "near misses reported: {misses:?}");
}

#[test]
fn sesto_allow_on_a_line_silences_it() {
    let env = store();
    let aws = format!("{}IA{}", "AK", "IOSFODNN7EXAMPLE");
    write(
        &env,
        "a.yaml",
        format!("example: {PASSWORD}  # sesto:allow\nkey: {aws} # sesto:allow (docs sample)\n"),
    );
    env.run(&["scan", "a.yaml"]).assert_success();
    write(
        &env,
        "a.yaml",
        format!("example: {PASSWORD}\nkey: {aws} # allow\n"),
    );
    let out = env.run(&["scan", "a.yaml"]);
    out.assert_code(1);
    assert_eq!(
        out.stdout,
        "a.yaml:1: known-value (secret prod/db/password)\na.yaml:2: aws-access-key-id\n"
    );
}

#[test]
fn a_stray_file_in_sesto_dir_is_reported_and_real_nodes_are_not() {
    let env = store();
    write(&env, ".sesto/notes.txt", "remember the password\n");
    write(
        &env,
        ".sesto/nodes/ab/abababababababababababababababab.age",
        "not age\n",
    );
    write(
        &env,
        ".sesto/nodes/ab/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd.age",
        "wrong shard\n",
    );
    env.git(&["add", "-A", ".sesto"]).assert_success();
    let out = env.run(&["scan", "--staged"]);
    out.assert_code(1);
    assert_eq!(
        out.stdout,
        ".sesto/nodes/ab/abababababababababababababababab.age:1: sesto-node\n\
         .sesto/nodes/ab/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd.age:1: sesto-layout\n\
         .sesto/notes.txt:1: sesto-layout\n"
    );
    // The real nodes and roster pass the same check, staged or in the work tree.
    for f in [
        ".sesto/notes.txt",
        ".sesto/nodes/ab/abababababababababababababababab.age",
        ".sesto/nodes/ab/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd.age",
    ] {
        env.git(&["rm", "-q", "-f", f]).assert_success();
    }
    env.git(&["config", "sesto.commit", "false"])
        .assert_success();
    env.run_stdin(&["set", "prod/db/user"], b"app-user-name")
        .assert_success();
    let staged = env.git(&["diff", "--cached", "--name-only"]);
    assert!(staged.stdout.contains(".sesto/nodes/"), "{}", staged.stdout);
    env.run(&["scan", "--staged"]).assert_success();
    env.run(&["scan", ".sesto"]).assert_success();
    env.run(&["scan"]).assert_success();
}

#[test]
fn without_a_readable_identity_scan_notes_it_and_still_checks_patterns() {
    let env = store();
    let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    let aws = format!("{}IA{}", "AK", "IOSFODNN7EXAMPLE");
    write(&env, "c.env", format!("PW={PASSWORD}\nAWS={aws}\n"));
    env.git(&["add", "c.env"]).assert_success();
    let out = env.run(&["-i", bob.to_str().unwrap(), "scan", "--staged"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "c.env:2: aws-access-key-id\n");
    assert!(
        out.stderr.contains("note: known-value scanning skipped"),
        "{}",
        out.stderr
    );
    assert_no_value(&out);

    // No store at all: the same.
    let bare = TestEnv::new();
    bare.init_repo();
    std::fs::write(bare.repo.join("c.env"), format!("AWS={aws}\n")).unwrap();
    let out = bare.run(&["scan"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "c.env:1: aws-access-key-id\n");
    assert!(
        out.stderr.contains("note: known-value scanning skipped"),
        "{}",
        out.stderr
    );
    // Staged in a repository with no commit yet.
    bare.git(&["add", "c.env"]).assert_success();
    let out = bare.run(&["scan", "--staged"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "c.env:1: aws-access-key-id\n");
}

#[test]
fn a_passphrase_key_is_never_prompted_for() {
    let env = store();
    // alice's key gets a passphrase after the store is made.
    let key = env.home.join(".ssh/id_ed25519");
    let mut cmd = env.command("ssh-keygen");
    cmd.args(["-q", "-p", "-P", "", "-N", "pass phrase", "-f"])
        .arg(&key);
    run_cmd(cmd).assert_success();
    let aws = format!("{}IA{}", "AK", "IOSFODNN7EXAMPLE");
    write(&env, "c.env", format!("PW={PASSWORD}\nAWS={aws}\n"));
    env.git(&["add", "c.env"]).assert_success();
    let out = env.run(&["scan", "--staged"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "c.env:2: aws-access-key-id\n");
    assert!(
        out.stderr.contains("never asks for a passphrase"),
        "{}",
        out.stderr
    );
    assert_no_value(&out);
}

#[test]
fn hostile_input_does_not_crash_the_scan() {
    let env = store();
    let mut bytes = b"\0\0\xff\xfe binary \x00\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
    bytes.extend_from_slice(PASSWORD.as_bytes());
    bytes.extend_from_slice(b"\n\xc3\x28 invalid utf-8\n");
    write(&env, "data/blob.bin", &bytes);
    write(&env, "data/empty", "");
    let out = env.run(&["scan", "../repo/data"]);
    out.assert_code(1);
    assert_eq!(
        out.stdout,
        "../repo/data/blob.bin:2: known-value (secret prod/db/password)\n"
    );
    assert_no_value(&out);
    env.git(&["add", "data"]).assert_success();
    env.run(&["scan", "--staged"]).assert_code(1);
    let missing = env.run(&["scan", "no/such/file"]);
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("no/such/file"),
        "{}",
        missing.stderr
    );
    env.run(&["scan", "--staged", "x"]).assert_code(2);
}

#[test]
fn hooks_install_chains_the_old_hook_and_refuses_a_commit_with_a_secret() {
    let env = store();
    let hooks = env.repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let ran = env.root.join("old-hook-ran");
    std::fs::write(
        hooks.join("pre-commit"),
        format!(
            "#!/bin/sh\necho ran >> '{}'\n[ ! -e '{}/fail' ]\n",
            ran.display(),
            env.root.display()
        ),
    )
    .unwrap();
    set_exec(&hooks.join("pre-commit"));

    let out = env.run(&["hooks", "install"]);
    out.assert_success();
    assert!(hooks.join("pre-commit.sesto-chained").exists());
    let installed = std::fs::read(hooks.join("pre-commit")).unwrap();
    env.run(&["hooks", "install"]).assert_success();
    assert_eq!(
        std::fs::read(hooks.join("pre-commit")).unwrap(),
        installed,
        "not idempotent"
    );

    write(&env, "app.env", format!("DB_PASSWORD={PASSWORD}\n"));
    env.git(&["add", "app.env"]).assert_success();
    let refused = env.git(&["commit", "-q", "-m", "oops"]);
    assert_ne!(refused.code, 0, "a commit with a secret went through");
    assert!(
        all(&refused).contains("app.env:1: known-value"),
        "{}",
        snapshot_text(&refused)
    );
    assert_no_value(&refused);
    assert!(ran.exists(), "the chained hook did not run");

    write(&env, "app.env", "DB_PASSWORD_FILE=/run/secrets/db\n");
    env.git(&["add", "app.env"]).assert_success();
    env.git(&["commit", "-q", "-m", "clean"]).assert_success();

    // The chained hook failing refuses the commit too.
    std::fs::write(env.root.join("fail"), "").unwrap();
    write(&env, "other.txt", "fine\n");
    env.git(&["add", "other.txt"]).assert_success();
    assert_ne!(env.git(&["commit", "-q", "-m", "x"]).code, 0);
    std::fs::remove_file(env.root.join("fail")).unwrap();

    env.run(&["hooks", "uninstall"]).assert_success();
    assert!(!hooks.join("pre-commit.sesto-chained").exists());
    assert!(
        !hooks.join("pre-push").exists(),
        "sesto's pre-push hook stayed"
    );
    let restored = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert!(restored.contains("old-hook-ran"), "{restored}");
}

#[test]
fn the_pre_push_hook_chains_the_old_one_and_both_read_the_refs() {
    let env = store();
    let hooks = env.repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let seen = env.root.join("old-hook-saw");
    std::fs::write(
        hooks.join("pre-push"),
        format!("#!/bin/sh\ncat > '{}'\n", seen.display()),
    )
    .unwrap();
    set_exec(&hooks.join("pre-push"));
    let out = env.run(&["hooks", "install"]);
    out.assert_success();
    assert!(
        out.stdout.contains("pre-push.sesto-chained"),
        "{}",
        out.stdout
    );
    let bare = env.root.join("remote.git");
    env.git(&["init", "-q", "--bare", bare.to_str().unwrap()])
        .assert_success();
    let pushed = env.git(&["push", bare.to_str().unwrap(), "HEAD:refs/heads/main"]);
    pushed.assert_success();
    let head = env.git(&["rev-parse", "HEAD"]).stdout;
    let saw = std::fs::read_to_string(&seen).unwrap();
    assert!(
        saw.contains(head.trim()) && saw.contains("refs/heads/main"),
        "the chained hook saw {saw:?}"
    );
    // sesto read the same line and judged the commits it sends.
    assert!(
        all(&pushed).contains("push: HEAD → refs/heads/main:"),
        "{}",
        snapshot_text(&pushed)
    );
    // Tags go too: an annotated one names its commit through a tag object,
    // and deleting one sends nothing.
    env.git(&["tag", "-a", "v1", "-m", "v1"]).assert_success();
    env.git(&["tag", "light"]).assert_success();
    let tags = env.git(&["push", bare.to_str().unwrap(), "v1", "light"]);
    tags.assert_success();
    assert!(
        all(&tags).contains("push: refs/tags/v1 → refs/tags/v1:"),
        "{}",
        snapshot_text(&tags)
    );
    env.git(&["push", bare.to_str().unwrap(), ":refs/tags/v1"])
        .assert_success();
    // Lines that are not git's are refused, naming the form.
    let bad = env.run_stdin(&["verify", "--push"], b"not four fields\n");
    bad.assert_code(1);
    assert!(
        bad.stderr.contains("<local ref> <local commit>"),
        "{}",
        bad.stderr
    );
}

#[test]
fn hooks_install_follows_core_hooks_path() {
    let env = TestEnv::new();
    env.init_repo();
    env.git(&["config", "core.hooksPath", "githooks"])
        .assert_success();
    env.run(&["hooks", "install"]).assert_success();
    assert!(env.repo.join("githooks/pre-commit").exists());
}

#[test]
fn hooks_install_in_a_linked_worktree_guards_every_worktree() {
    let env = store();
    // sesto committed the store as it wrote it: there is a HEAD to branch from.
    let other = env.root.join("other");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "other",
        other.to_str().unwrap(),
    ])
    .assert_success();
    let other_text = other.to_str().unwrap();
    env.run(&["--store", other_text, "hooks", "install"])
        .assert_success();
    // Hooks are shared by all worktrees: git's common hooks directory.
    assert!(env.repo.join(".git/hooks/pre-commit").exists());

    std::fs::write(other.join("app.env"), format!("DB_PASSWORD={PASSWORD}\n")).unwrap();
    env.git(&["-C", other_text, "add", "app.env"])
        .assert_success();
    let refused = env.git(&["-C", other_text, "commit", "-q", "-m", "oops"]);
    assert_ne!(refused.code, 0, "a commit with a secret went through");
    assert!(
        all(&refused).contains("app.env:1: known-value"),
        "{}",
        snapshot_text(&refused)
    );
    assert_no_value(&refused);
}

fn set_exec(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_commit_sesto_makes_is_checked_first() {
    let env = store();
    env.git(&["config", "sesto.commit", "true"])
        .assert_success();
    env.run_stdin(&["set", "prod/a"], b"first value")
        .assert_success();
    let head = env.git(&["rev-parse", "HEAD"]).stdout;
    // A stray file that an interrupted write left to be staged with the next change.
    write(&env, ".sesto/stray.txt", "plaintext\n");
    let state = env.repo.join(".git/sesto");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("unstaged"), ".sesto/stray.txt\n").unwrap();
    let out = env.run_stdin(&["set", "prod/a"], b"second value");
    assert!(
        out.stderr.contains("did not commit") && out.stderr.contains(".sesto/stray.txt"),
        "{}",
        snapshot_text(&out)
    );
    assert_eq!(
        env.git(&["rev-parse", "HEAD"]).stdout,
        head,
        "sesto committed"
    );
    // The change is saved and staged.
    assert_eq!(env.run(&["get", "prod/a"]).stdout, "second value");
    let staged = env.git(&["diff", "--cached", "--name-only"]).stdout;
    assert!(
        staged.contains(".sesto/stray.txt") && staged.contains(".sesto/nodes/"),
        "{staged}"
    );
    // Once the stray file is gone, the next change commits.
    std::fs::remove_file(env.repo.join(".sesto/stray.txt")).unwrap();
    env.run_stdin(&["set", "prod/a"], b"third value")
        .assert_success();
    assert_ne!(env.git(&["rev-parse", "HEAD"]).stdout, head);
}

#[test]
#[cfg_attr(
    missing_pre_commit,
    ignore = "needs pre-commit: pip install pre-commit"
)]
fn the_pre_commit_framework_runs_the_hooks_of_this_repository() {
    require_tool("pre-commit");
    let env = store();
    // pre-commit wants a git repository with a rev: this project's hook files alone.
    let hook_repo = env.root.join("hook-repo");
    std::fs::create_dir_all(hook_repo.join("hooks")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [".pre-commit-hooks.yaml", "hooks/pre-commit"] {
        std::fs::copy(manifest.join(f), hook_repo.join(f)).unwrap();
    }
    let git_in = |dir: &Path, args: &[&str]| {
        let mut cmd = env.command("git");
        cmd.current_dir(dir).args(args);
        run_cmd(cmd)
    };
    git_in(&hook_repo, &["init", "-q"]).assert_success();
    git_in(&hook_repo, &["add", "."]).assert_success();
    git_in(&hook_repo, &["commit", "-q", "-m", "hooks"]).assert_success();
    let rev = git_in(&hook_repo, &["rev-parse", "HEAD"])
        .stdout
        .trim()
        .to_string();
    write(
        &env,
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: sesto-scan\n      - id: sesto-verify\n      - id: sesto-push\n",
            hook_repo.display()
        ),
    );
    let pc = |args: &[&str]| {
        let mut cmd = env.command("pre-commit");
        cmd.args(args);
        run_cmd(with_pre_commit_env(&env, cmd))
    };
    pc(&["install"]).assert_success();
    pc(&["install", "--hook-type", "pre-push"]).assert_success();
    env.git(&["add", ".pre-commit-config.yaml"])
        .assert_success();
    let git_commit = |msg: &str| {
        let mut cmd = env.command("git");
        cmd.args(["commit", "-q", "-m", msg]);
        run_cmd(with_pre_commit_env(&env, cmd))
    };
    git_commit("pre-commit config").assert_success();

    write(&env, "deploy/app.env", format!("DB_PASSWORD={PASSWORD}\n"));
    env.git(&["add", "deploy"]).assert_success();
    let refused = git_commit("oops");
    assert_ne!(
        refused.code,
        0,
        "a secret got through pre-commit:\n{}",
        snapshot_text(&refused)
    );
    assert!(
        all(&refused).contains("deploy/app.env:1: known-value"),
        "{}",
        snapshot_text(&refused)
    );
    assert_no_value(&refused);

    write(&env, "deploy/app.env", "DB_PASSWORD_FILE=/run/secrets/db\n");
    env.git(&["add", "deploy"]).assert_success();
    git_commit("clean").assert_success();

    // sesto's own writes, committed by git, pass sesto-verify and sesto-scan.
    env.git(&["config", "sesto.commit", "false"])
        .assert_success();
    env.run_stdin(&["set", "prod/new"], b"another value here")
        .assert_success();
    let out = git_commit("store change");
    out.assert_success();
    assert!(
        out.stderr.contains("sesto verify (.sesto/ files)") && out.stderr.contains("Passed"),
        "{}",
        snapshot_text(&out)
    );
    // A stray file in .sesto/ is refused by sesto-verify.
    write(&env, ".sesto/notes.txt", "not for here\n");
    env.git(&["add", ".sesto/notes.txt"]).assert_success();
    let refused = git_commit("stray");
    assert_ne!(refused.code, 0, "{}", snapshot_text(&refused));
    assert!(
        all(&refused).contains(".sesto/notes.txt:1: sesto-layout"),
        "{}",
        snapshot_text(&refused)
    );
    env.git(&["rm", "-q", "--cached", ".sesto/notes.txt"])
        .assert_success();
    std::fs::remove_file(env.repo.join(".sesto/notes.txt")).unwrap();

    // sesto-push judges what a push sends, from the framework's variables.
    let bare = env.root.join("remote.git");
    env.git(&["init", "-q", "--bare", bare.to_str().unwrap()])
        .assert_success();
    let push = || {
        let mut cmd = env.command("git");
        cmd.args(["push", bare.to_str().unwrap(), "HEAD:refs/heads/main"]);
        run_cmd(with_pre_commit_env(&env, cmd))
    };
    let pushed = push();
    pushed.assert_success();
    assert!(
        all(&pushed).contains("sesto verify --push") && all(&pushed).contains("Passed"),
        "{}",
        snapshot_text(&pushed)
    );
    // prod/new's first file put back over its second: refused.
    env.run_stdin(&["set", "prod/new"], b"a newer value here")
        .assert_success();
    git_commit("newer").assert_success();
    let file = env
        .git(&[
            "diff",
            "--name-only",
            "HEAD~1",
            "HEAD",
            "--",
            ".sesto/nodes",
        ])
        .stdout
        .trim()
        .to_string();
    assert!(!file.is_empty() && !file.contains('\n'), "{file}");
    let older = {
        let mut cmd = env.command("git");
        cmd.args(["show", &format!("HEAD~1:{file}")]);
        cmd.output().unwrap().stdout
    };
    std::fs::write(env.repo.join(&file), older).unwrap();
    env.git(&["add", &file]).assert_success();
    git_commit("older").assert_success();
    let refused = push();
    assert_ne!(refused.code, 0, "{}", snapshot_text(&refused));
    assert!(
        all(&refused).contains("went back from version"),
        "{}",
        snapshot_text(&refused)
    );
}

/// PATH with the built sesto and pre-commit, and pre-commit's cache in the test.
fn with_pre_commit_env(env: &TestEnv, mut cmd: std::process::Command) -> std::process::Command {
    cmd.env("PATH", path_with_sesto())
        .env("PRE_COMMIT_HOME", env.root.join("pre-commit-cache"))
        .env("PRE_COMMIT_COLOR", "never");
    cmd
}

#[test]
fn sestos_own_source_and_ordinary_config_scan_clean() {
    let env = TestEnv::new();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = env.root.join("config");
    std::fs::create_dir_all(&generated).unwrap();
    std::fs::write(generated.join("nginx.conf"), nginx()).unwrap();
    std::fs::write(generated.join("k8s.yaml"), k8s()).unwrap();
    std::fs::write(generated.join("main.tf"), terraform()).unwrap();
    std::fs::write(generated.join("package-lock.json"), package_lock()).unwrap();
    // The C2SP age vectors hold published test keys: real findings, checked
    // below, so everything else in tests/ is scanned without them.
    let vectors = manifest.join("tests/data/age-cctv");
    let mut cmd = env.sesto(&["scan"]);
    for dir in [
        "src",
        "examples",
        "hooks",
        "bench",
        "README.md",
        ".pre-commit-hooks.yaml",
    ] {
        cmd.arg(manifest.join(dir));
    }
    let mut pending = vec![manifest.join("tests")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == vectors {
                continue;
            }
            if path.is_dir() && vectors.starts_with(&path) {
                pending.push(path);
            } else {
                cmd.arg(path);
            }
        }
    }
    cmd.arg(&generated);
    let out = run_cmd(cmd);
    assert_eq!(out.code, 0, "false positives:\n{}", snapshot_text(&out));
    let mut cmd = env.sesto(&["scan"]);
    cmd.arg(&vectors);
    let found = run_cmd(cmd);
    assert_eq!(found.code, 1, "{}", snapshot_text(&found));
    assert!(
        found.stdout.contains("armor_crlf:4: age-secret-key"),
        "{}",
        found.stdout
    );
    let lines: usize = ["nginx.conf", "k8s.yaml", "main.tf", "package-lock.json"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(generated.join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(lines > 3000, "only {lines} lines of config");
}

/// A cheap deterministic generator of hex and base64-looking text.
fn pseudo(seed: u64, n: usize, alphabet: &[u8]) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn uuid(i: u64) -> String {
    let h = pseudo(i, 32, HEX);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn nginx() -> String {
    let mut s =
        String::from("worker_processes auto;\nevents { worker_connections 1024; }\nhttp {\n");
    for i in 0..120 {
        s += &format!(
            "  server {{\n    listen 443 ssl http2;\n    server_name svc{i}.example.com;\n    \
             ssl_certificate /etc/ssl/certs/svc{i}.pem;\n    ssl_certificate_key /etc/ssl/private/svc{i}.key;\n    \
             location / {{ proxy_pass http://10.0.{}.{}:8080; proxy_set_header X-Request-Id {}; }}\n  }}\n",
            i % 255,
            (i * 7) % 255,
            uuid(i)
        );
    }
    s + "}\n"
}

fn k8s() -> String {
    let mut s = String::new();
    for i in 0..150 {
        s += &format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}\n  uid: {}\n  annotations:\n    \
             checksum/config: {}\ndata:\n  settings.json: {}\n  ca.crt: {}\n---\napiVersion: apps/v1\nkind: Deployment\n\
             metadata:\n  name: app-{i}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          \
             image: registry.example.com/app@sha256:{}\n",
            uuid(i + 1000),
            pseudo(i + 2000, 64, HEX),
            pseudo(i + 3000, 120, B64),
            pseudo(i + 4000, 76, B64),
            pseudo(i + 5000, 64, HEX),
        );
    }
    s
}

fn terraform() -> String {
    let mut s = String::from("terraform {\n  required_version = \">= 1.5\"\n}\n");
    for i in 0..200 {
        s += &format!(
            "resource \"aws_s3_bucket\" \"b{i}\" {{\n  bucket = \"logs-{i}-{}\"\n  tags = {{ commit = \"{}\" }}\n}}\n",
            &pseudo(i + 6000, 8, HEX),
            pseudo(i + 7000, 40, HEX)
        );
    }
    s
}

fn package_lock() -> String {
    let mut s = String::from("{\n  \"lockfileVersion\": 3,\n  \"packages\": {\n");
    for i in 0..400 {
        s += &format!(
            "    \"node_modules/pkg-{i}\": {{\n      \"version\": \"1.{i}.0\",\n      \"resolved\": \"https://registry.npmjs.org/pkg-{i}/-/pkg-{i}-1.{i}.0.tgz\",\n      \"integrity\": \"sha512-{}==\"\n    }},\n",
            pseudo(i + 8000, 86, B64)
        );
    }
    s + "  }\n}\n"
}
