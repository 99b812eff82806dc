//! Tests of the test harness itself (tests/common): redaction and the sealed
//! environment. They run no `sesto` command.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{insta_settings, pub_key, redact, require_tool, snapshot_text, KeyKind, TestEnv};

#[test]
fn redact_replaces_ids_keys_dates_and_commits() {
    // Made of two halves so that `sesto scan` of this file finds no age key.
    let age_key = concat!(
        "AGE-SECRET-",
        "KEY-1QQPQZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQQPQZRY9X8GF2TVDW0S3JN54K"
    );
    let text = format!(
        "\
node 3f2a9c0d1e2f3a4b5c6d7e8f90a1b2c3 in store 6f1c00112233445566778899aabbccdd
fpr SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s ok
key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop
key ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+/x== bob
recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
identity {age_key}
updated: 2026-11-23T10:00:00Z, also 2026-01-01T00:00:00+00:00 and 2026-01-01 00:00:00 +0000
commit 0123456789abcdef0123456789abcdef01234567 and abc12345 and (fedcba9876)
previous: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
path /tmp/sesto-test-Ab12Cd/repo/.sesto and '/var/tmp/x/sesto-test-zz99ZZ'
"
    );
    insta::assert_snapshot!(redact(&text), @r"
    node [ID] in store [ID]
    fpr [FPR] ok
    key [SSH-KEY] alice@laptop
    key [SSH-KEY] bob
    recipient [AGE-RECIPIENT]
    identity [AGE-SECRET-KEY]
    updated: [DATE], also [DATE] and [DATE]
    commit [COMMIT] and [COMMIT] and ([COMMIT])
    previous: [SHA256]
    path [TMP]/repo/.sesto and '[TMP]'
    ");
}

#[test]
fn redact_leaves_ordinary_text_alone() {
    // Short hex runs, hex inside longer words, upper case and ordinary numbers stay.
    let text = "deadline facade cafe abcdef 123456 ABCDEF0123 xdeadbeef0 deadbeef0x \
                v1.2.3 prod/db 0600 exit: 2";
    assert_eq!(redact(text), text);
}

#[test]
fn insta_settings_apply_the_same_filters_as_redact() {
    let out = common::Output {
        stdout: "id 3f2a9c0d1e2f3a4b5c6d7e8f90a1b2c3\n".into(),
        stderr: "at 2026-01-01T00:00:00Z by age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
        code: 1,
    };
    let text = snapshot_text(&out);
    insta_settings().bind(|| {
        insta::assert_snapshot!(text, @r"
        exit: 1
        --- stdout
        id [ID]

        --- stderr
        at [DATE] by [AGE-RECIPIENT]
        ");
    });
    assert_eq!(
        redact(&text),
        "exit: 1\n--- stdout\nid [ID]\n\n--- stderr\nat [DATE] by [AGE-RECIPIENT]"
    );
}

#[test]
fn sealed_env_hides_the_host_environment() {
    let env = TestEnv::new();
    let out = common::run_cmd(env.command("env"));
    out.assert_success();
    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "GIT_AUTHOR_DATE",
            "GIT_COMMITTER_DATE",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_NOSYSTEM",
            "GIT_TERMINAL_PROMPT",
            "HOME",
            "LANG",
            "PATH",
            "SESTO_EDIT_DIR",
            "SESTO_NOW",
            "TZ",
            "XDG_CONFIG_HOME",
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME",
        ]
    );
    let home = format!("HOME={}", env.home.display());
    assert!(
        out.stdout.lines().any(|line| line == home),
        "{}",
        out.stdout
    );
    if let Some(host_home) = std::env::var_os("HOME") {
        let host_home = format!("={}\n", host_home.to_string_lossy());
        assert!(
            !out.stdout.contains(&host_home),
            "host HOME leaked:\n{}",
            out.stdout
        );
    }
    // The working directory is the repository, and the private directories are private.
    let pwd = common::run_cmd(env.command("pwd"));
    assert_eq!(pwd.stdout.trim_end(), env.repo.to_str().unwrap());
    for dir in [&env.xdg_runtime, &env.edit] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}

#[test]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn git_sees_only_the_test_identity_and_clock() {
    require_tool("git");
    let env = TestEnv::new();
    env.init_repo();
    assert_eq!(env.git(&["config", "user.name"]).stdout, "Test User\n");
    assert_eq!(
        env.git(&["symbolic-ref", "HEAD"]).stdout,
        "refs/heads/main\n"
    );
    env.git(&["commit", "--quiet", "--allow-empty", "-m", "first"])
        .assert_success();
    // Unix seconds: how git prints an ISO date at UTC changed across versions.
    let log = env.git(&["log", "--format=%an <%ae> %at %ct"]);
    assert_eq!(
        log.stdout,
        "Test User <test@example.com> 1767225600 1767225600\n"
    );
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn ssh_keygen_makes_keys_in_the_test_home() {
    require_tool("ssh-keygen");
    let env = TestEnv::new();
    let alice = env.ssh_keygen("alice", KeyKind::Ed25519, None);
    assert_eq!(alice, env.home.join(".ssh/alice"));
    let public = pub_key(&alice);
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert_eq!(redact(&public), "[SSH-KEY] alice");

    let bob = env.ssh_keygen("bob", KeyKind::Rsa, Some("correct horse"));
    assert_eq!(redact(&pub_key(&bob)), "[SSH-KEY] bob");
    let private = std::fs::read_to_string(&bob).unwrap();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn age_keygen_returns_the_recipient() {
    require_tool("age-keygen");
    let env = TestEnv::new();
    let (path, recipient) = env.age_keygen("carol");
    assert!(path.starts_with(&env.home));
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(redact(&recipient), "[AGE-RECIPIENT]");
    let identity = std::fs::read_to_string(&path).unwrap();
    assert!(redact(&identity).contains("[AGE-SECRET-KEY]"));
}

#[test]
fn stdin_reaches_the_child() {
    let env = TestEnv::new();
    let out = common::run_cmd_stdin(env.command("cat"), b"piped\n");
    assert_eq!(out.stdout, "piped\n");
    // And without input a child reading stdin sees end of file at once, never a terminal.
    let out = common::run_cmd(env.command("cat"));
    out.assert_success();
    assert_eq!(out.stdout, "");
}

#[test]
fn scripts_run_with_the_sealed_environment() {
    let env = TestEnv::new();
    let editor = env.write_script("editor", r#"printf 'edited\n' > "$1""#);
    let file = env.edit.join("f");
    let mut cmd = env.command(&editor);
    cmd.arg(&file);
    common::run_cmd(cmd).assert_success();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "edited\n");
    assert_eq!(env.edit_dir_entries(), ["f"]);
}
