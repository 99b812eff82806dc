//! `sesto share`: the file it prints opens with the reference `age` CLI and nothing
//! else from sesto, for every kind of recipient and for a generated passphrase typed
//! on a pseudo-terminal (util-linux `script`); its errors are snapshotted, never show
//! the value or a private key, and nothing in the store changes.

mod common;

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use common::{
    insta_settings, pub_key, require_tools, run_cmd, run_cmd_stdin, snapshot_text, KeyKind, Output,
    TestEnv,
};

/// The shared secret's path.
const PATH: &str = "prod/db/password";
/// What no output may contain: the start of the value.
const CANARY: &str = "canary-7Qx-share";
/// The value: the canary, bytes that are not UTF-8 and a trailing newline, all of
/// which must come back exactly.
const VALUE: &[u8] = b"canary-7Qx-share \xfe\xff\n";

/// A store whose admin is `alice` (`~/.ssh/id_ed25519`) holding [`VALUE`] at [`PATH`]
/// and a folder `prod/db`, everything committed.
fn store() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    env.run_stdin(&["set", PATH], VALUE).assert_success();
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
    env
}

/// Runs `sesto share args`, checks it wrote nothing to the store and leaked nothing,
/// and returns its output.
#[track_caller]
fn share(env: &TestEnv, args: &[&str]) -> Output {
    let before = env.git(&["status", "--porcelain"]).stdout;
    let out = env.run(&[&["share"], args].concat());
    assert_eq!(
        env.git(&["status", "--porcelain"]).stdout,
        before,
        "share changed the repository"
    );
    assert!(
        !out.stdout.contains(CANARY) && !out.stderr.contains(CANARY),
        "the value leaked:\n{}",
        snapshot_text(&out)
    );
    out
}

/// Writes a successful share's stdout to `<tmp>/<name>.age`, checking it is one
/// armored age file and nothing else, and returns the file's path.
#[track_caller]
fn armored_file(env: &TestEnv, out: &Output, name: &str) -> PathBuf {
    out.assert_success();
    assert!(
        out.stdout
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n")
            && out.stdout.ends_with("-----END AGE ENCRYPTED FILE-----\n"),
        "not one armored age file:\n{}",
        out.stdout
    );
    let path = env.root.join(format!("{name}.age"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Decrypts `file` with the reference `age` CLI and `identity`, returning the bytes.
#[track_caller]
fn age_decrypt(env: &TestEnv, identity: &Path, file: &Path) -> Vec<u8> {
    let plain = env.root.join("decrypted");
    let _ = std::fs::remove_file(&plain);
    let mut cmd = env.command("age");
    cmd.arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg(&plain)
        .arg(file);
    run_cmd(cmd).assert_success();
    std::fs::read(&plain).unwrap()
}

#[track_caller]
fn snap(name: &str, out: &Output) {
    insta_settings().bind(|| insta::assert_snapshot!(name, snapshot_text(out)));
}

// ---------------------------------------------------------------------------------
// The age CLI opens what share prints
// ---------------------------------------------------------------------------------

/// `share --to` a fresh SSH key of `kind`; the age CLI opens the file with its private
/// key, and alice's key (a store member, not a recipient) cannot.
fn shared_to_ssh_key(kind: KeyKind) {
    require_tools(&["ssh-keygen", "age"]);
    let env = store();
    let bob = env.ssh_keygen("bob", kind, None);
    let out = share(&env, &[PATH, "--to", &pub_key(&bob)]);
    let file = armored_file(&env, &out, "bob");
    assert_eq!(out.stderr, "");
    assert_eq!(age_decrypt(&env, &bob, &file), VALUE);

    let mut cmd = env.command("age");
    cmd.arg("-d")
        .arg("-i")
        .arg(env.home.join(".ssh/id_ed25519"))
        .arg(&file);
    assert!(
        !run_cmd(cmd).success(),
        "a key that is not a recipient opened it"
    );
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn age_cli_opens_share_to_ssh_ed25519_key() {
    shared_to_ssh_key(KeyKind::Ed25519);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn age_cli_opens_share_to_ssh_rsa_key() {
    shared_to_ssh_key(KeyKind::Rsa);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn age_cli_opens_share_to_age_keygen_recipient() {
    require_tools(&["age-keygen", "age"]);
    let env = store();
    let (carol, recipient) = env.age_keygen("carol");
    let out = share(&env, &[PATH, "--to", &recipient]);
    let file = armored_file(&env, &out, "carol");
    assert_eq!(age_decrypt(&env, &carol, &file), VALUE);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn to_file_and_to_combine_and_every_key_opens_the_file() {
    require_tools(&["ssh-keygen", "age-keygen", "age"]);
    let env = store();
    let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    let (carol, carol_recipient) = env.age_keygen("carol");
    let (dave, dave_recipient) = env.age_keygen("dave");
    let keys = env.root.join("keys.pub");
    std::fs::write(
        &keys,
        format!(
            "# the ops team\n{}\n\n   \n  # carol's laptop\n{carol_recipient}\n",
            pub_key(&bob)
        ),
    )
    .unwrap();
    let keys = keys.to_str().unwrap();

    let out = share(&env, &[PATH, "--to-file", keys]);
    let file = armored_file(&env, &out, "team");
    assert_eq!(age_decrypt(&env, &bob, &file), VALUE);
    assert_eq!(age_decrypt(&env, &carol, &file), VALUE);

    let out = share(&env, &[PATH, "--to-file", keys, "--to", &dave_recipient]);
    let file = armored_file(&env, &out, "team-and-dave");
    for identity in [&bob, &carol, &dave] {
        assert_eq!(age_decrypt(&env, identity, &file), VALUE);
    }
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn passphrase_on_stderr_opens_the_file_with_age_cli_on_a_terminal() {
    // age reads a passphrase from the terminal only, so it runs under `script`.
    require_tools(&["age", "script"]);
    let env = store();
    let out = share(&env, &[PATH, "--passphrase"]);
    let file = armored_file(&env, &out, "passphrase");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "stderr:\n{}", out.stderr);
    let passphrase = lines[0]
        .strip_prefix("Passphrase: ")
        .unwrap_or_else(|| panic!("no passphrase line in:\n{}", out.stderr));
    assert_eq!(passphrase.split('-').count(), 6, "{passphrase}");
    assert!(passphrase
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_lowercase()));
    assert!(lines[1].contains("another channel"), "{}", lines[1]);
    assert!(!out.stdout.contains(passphrase));

    let plain = env.root.join("decrypted");
    let command_line = format!("age -d -o '{}' '{}'", plain.display(), file.display());
    let run_age = |typed: &str| {
        let mut cmd = env.command("script");
        cmd.args(["-qec", &command_line, "/dev/null"]);
        run_cmd_stdin(cmd, typed.as_bytes())
    };
    let typed = run_age(&format!("{passphrase}\n"));
    typed.assert_success();
    assert!(
        typed.stdout.contains("Enter passphrase"),
        "{}",
        typed.stdout
    );
    assert_eq!(std::fs::read(&plain).unwrap(), VALUE);

    std::fs::remove_file(&plain).unwrap();
    let wrong = run_age("not-the-passphrase\n");
    assert!(!wrong.success(), "a wrong passphrase opened it");
    assert!(
        wrong.stdout.contains("incorrect passphrase"),
        "{}",
        wrong.stdout
    );
}

// ---------------------------------------------------------------------------------
// Errors and help
// ---------------------------------------------------------------------------------

#[test]
fn errors_are_clear_and_show_neither_value_nor_private_key() {
    let env = store();
    let alice_private = std::fs::read_to_string(env.home.join(".ssh/id_ed25519")).unwrap();
    let alice_public = pub_key(&env.home.join(".ssh/id_ed25519"));
    // Files are named by their absolute paths, which the snapshots redact.
    let file = |name: &str, text: String| {
        let path = env.root.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let keys = file(
        "keys.pub",
        format!("# team\n{alice_public}\nnot-a-key here\n"),
    );
    let empty = file("empty.pub", "# nobody yet\n\n".into());
    // An age identity file given where its public key belongs: the secret key is on
    // line 3, under the `# public key:` comment.
    let age_identity = age::x25519::Identity::generate();
    let age_secret = age_identity.to_string().expose_secret().to_owned();
    let identity = file(
        "identity.txt",
        format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{age_secret}\n",
            age_identity.to_public()
        ),
    );
    let to_private = format!("--to={alice_private}");

    let cases: &[(&str, &[&str], i32)] = &[
        ("error_unknown", &["prod/db/nope", "--to", &alice_public], 1),
        ("error_folder", &["prod/db", "--to", &alice_public], 1),
        ("error_no_recipient", &[PATH], 2),
        (
            "error_passphrase_and_to",
            &[PATH, "--passphrase", "--to", &alice_public],
            2,
        ),
        ("error_garbage_to", &[PATH, "--to", "hunter2"], 1),
        (
            "error_bad_ssh_to",
            &[PATH, "--to", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBroken"],
            1,
        ),
        ("error_bad_line_in_file", &[PATH, "--to-file", &keys], 1),
        ("error_empty_file", &[PATH, "--to-file", &empty], 1),
        ("error_missing_file", &[PATH, "--to-file", "nokeys.pub"], 1),
        // Pasted as the next argument, and glued with `=`: either way the key
        // reaches sesto's check, not a clap error that would echo it.
        ("error_private_key_to", &[PATH, "--to", &alice_private], 1),
        ("error_private_key_to_equals", &[PATH, &to_private], 1),
        (
            "error_age_identity_file",
            &[PATH, "--to-file", &identity],
            1,
        ),
    ];
    for (name, args, code) in cases {
        let out = share(&env, args);
        out.assert_code(*code);
        assert_eq!(out.stdout, "", "{name}");
        // The first base64 line of an OpenSSH key is its public header.
        for secret in alice_private
            .lines()
            .skip(2)
            .filter(|l| !l.starts_with("-----"))
        {
            assert!(!shows_part(&out.stderr, secret), "{name} shows the SSH key");
        }
        let age_secret = &age_secret["AGE-SECRET-KEY-1".len()..];
        assert!(
            !shows_part(&out.stderr, age_secret),
            "{name} shows the age key"
        );
        snap(name, &out);
    }
}

/// Whether `text` holds any 16 consecutive characters of `secret` (ASCII).
fn shows_part(text: &str, secret: &str) -> bool {
    secret
        .as_bytes()
        .windows(16)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

#[test]
fn help() {
    let env = TestEnv::new();
    let out = env.run(&["share", "--help"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
    snap("help", &out);
    assert_eq!(
        env.run(&["help", "share"]).stdout,
        out.stdout,
        "`sesto help share` differs from `sesto share --help`"
    );
}
