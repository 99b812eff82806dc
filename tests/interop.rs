//! Interoperability with the real tools sesto promises to work with, and the canary
//! tests.
//!
//! Peers: the reference `age` CLI reads sesto's node files with nothing but an admin's
//! key and the keys in parent entries (the README's recovery recipe, run as written),
//! and sesto reads files `age` made; keys from `ssh-keygen` (ed25519, RSA 3072, with
//! and without passphrase, on a pseudo-terminal from util-linux `script` and with no
//! terminal at all under `setsid`) and from `age-keygen` serve as identities; the
//! roster and node signatures verify with `ssh-keygen -Y verify`.
//!
//! Canary: a store with distinctive names and values goes through every command; no
//! value shows in any output but the `get` that asked for it, and no name, field or
//! value shows anywhere on disk: `.sesto/`, git objects, commit messages, the index,
//! the edit directory or anything else in the test's directory.

mod common;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    pub_key, redact, require_tool, require_tools, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv,
};

/// Passphrase of the passphrase-protected keys.
const PASSPHRASE: &str = "open sesame 42";
/// What the prompt of the binary starts with (src/terminal.rs).
const PROMPT: &str = "Enter passphrase for";
/// How long a command that must fail at once may take, generously: the point is that
/// it does not wait for a terminal (the harness would kill it after minutes).
const AT_ONCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn default_key_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Ed25519 => "id_ed25519",
        KeyKind::Rsa => "id_rsa",
    }
}

/// A repository with a store whose first admin is `alice`, using her default key
/// `~/.ssh/id_ed25519` (no passphrase). Returns the key's path.
fn alice_store(env: &TestEnv) -> PathBuf {
    env.init_repo();
    let key = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    key
}

/// `sesto set path` with `value` on stdin; panics on failure.
fn set(env: &TestEnv, path: &str, value: &[u8]) {
    env.run_stdin(&["set", path], value).assert_success();
}

/// The root id, as the README's recipe reads it from the roster.
fn root_id(env: &TestEnv) -> String {
    let roster = std::fs::read_to_string(env.repo.join(".sesto/roster.yaml")).unwrap();
    roster
        .lines()
        .find_map(|l| l.strip_prefix("root: "))
        .expect("no root: line in roster.yaml")
        .to_owned()
}

/// The node file of `id`, relative to the repository (format 2's layout).
fn node_file(id: &str) -> String {
    format!(
        ".sesto/nodes/{}/{}/{}/{}/{id}.age",
        &id[..1],
        &id[1..2],
        &id[2..3],
        &id[3..4]
    )
}

/// The README recovery recipe's first line, verbatim: where a node's file is.
const README_NODE_FN: &str =
    "node() { echo \".sesto/nodes/${1:0:1}/${1:1:1}/${1:2:1}/${1:3:1}/$1.age\"; }";

/// Runs `script` with `bash -c` in the repository, sealed, with `set -euo pipefail`
/// so that a failing step of a pipeline fails the whole, after the README's
/// `node` function.
fn bash(env: &TestEnv, script: &str, vars: &[(&str, &OsStr)]) -> Output {
    let mut cmd = env.command("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail\n{README_NODE_FN}\n{script}"));
    for (name, value) in vars {
        cmd.env(name, value);
    }
    run_cmd(cmd)
}

/// A node's body: its plaintext up to the `---` before the signature document.
fn body_of(plaintext: &str) -> &str {
    let at = plaintext
        .find("\n---\n")
        .unwrap_or_else(|| panic!("no signature document in:\n{}", redact(plaintext)));
    &plaintext[..=at]
}

/// One `children:` entry of a folder body, read as text the way a person with only
/// `age` would read it.
#[derive(Debug)]
struct Entry {
    kind: String,
    id: String,
    key: String,
}

fn entry(body: &str, name: &str) -> Entry {
    let lines: Vec<&str> = body.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("- name: {name}"))
        .unwrap_or_else(|| panic!("no entry {name:?} in:\n{}", redact(body)));
    let field = |k: &str| {
        let prefix = format!("  {k}: ");
        lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("entry {name:?} has no {k}: in:\n{}", redact(body)))
            .to_owned()
    };
    Entry {
        kind: field("kind"),
        id: field("id"),
        key: field("key"),
    }
}

/// Asserts that a body is the node called `name` of kind `kind`.
#[track_caller]
fn assert_node(body: &str, name: &str, kind: &str) {
    let lines: Vec<&str> = body.lines().collect();
    let want_name = if name.is_empty() {
        "name: ''".to_owned()
    } else {
        format!("name: {name}")
    };
    assert!(
        lines.contains(&want_name.as_str()) && lines.contains(&format!("kind: {kind}").as_str()),
        "expected the {kind} {name:?}, got:\n{}",
        redact(body)
    );
}

/// Quotes `s` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The binary under test, quoted for a shell command line.
fn bin() -> String {
    sh_quote(env!("CARGO_BIN_EXE_sesto"))
}

/// Runs `command_line` (a `sh` command) on a fresh pseudo-terminal made by util-linux
/// `script`, with `input` typed on it. The terminal merges stdout and stderr into
/// `Output::stdout`, with `\r\n` line ends.
fn on_terminal(env: &TestEnv, command_line: &str, input: &str, vars: &[(&str, &str)]) -> Output {
    let mut cmd = env.command("script");
    cmd.args(["-qec", command_line, "/dev/null"]);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    run_cmd_stdin(cmd, input.as_bytes())
}

/// Runs sesto in a new session (`setsid`), so that it has no controlling terminal
/// even where the tests run in one, with stdin null. Returns the output and how long
/// it took.
fn without_terminal(env: &TestEnv, args: &[&str], vars: &[(&str, &OsStr)]) -> (Output, Duration) {
    let mut cmd = env.command("setsid");
    cmd.arg("--wait")
        .arg(env!("CARGO_BIN_EXE_sesto"))
        .args(args);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let start = Instant::now();
    let out = run_cmd(cmd);
    (out, start.elapsed())
}

fn prompts(out: &Output) -> usize {
    out.stdout.matches(PROMPT).count() + out.stderr.matches(PROMPT).count()
}

/// `key` with a passphrase added by `ssh-keygen -p`.
fn add_passphrase(env: &TestEnv, key: &Path) {
    let mut cmd = env.command("ssh-keygen");
    cmd.args(["-q", "-p", "-P", "", "-N", PASSPHRASE, "-f"])
        .arg(key);
    run_cmd(cmd).assert_success();
}

/// The `ssh-<type> <base64>` part of a public key line, without the comment.
fn key_without_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------
// 1. The reference age CLI reads sesto's files (the README's recovery recipe)
// ---------------------------------------------------------------------------------

/// The README's first two recovery lines, verbatim: decrypt the root with the admin's
/// SSH key. Returns the plaintext.
fn readme_decrypt_root(env: &TestEnv) -> String {
    let out = bash(
        env,
        "root=$(sed -n 's/^root: //p' .sesto/roster.yaml)\n\
         age -d -i ~/.ssh/id_ed25519 $(node $root)",
        &[],
    );
    out.assert_success();
    out.stdout
}

/// The README's next step: write the entry's key to a 0600 file and decrypt the
/// entry's node with it. Returns the plaintext.
fn readme_decrypt_child(env: &TestEnv, keyfile: &Path, e: &Entry) -> String {
    let out = bash(
        env,
        "echo \"$KEY\" > \"$K\" && chmod 600 \"$K\"\n\
         age -d -i \"$K\" $(node $ID)",
        &[
            ("KEY", e.key.as_ref()),
            ("K", keyfile.as_os_str()),
            ("ID", e.id.as_ref()),
        ],
    );
    out.assert_success();
    out.stdout
}

/// The README's last step: decrypt a secret and decode its `value: !!binary` line,
/// then remove the key file. `rev` reads the file from git history instead
/// (`git show REV:.sesto/nodes/…`). Returns the decoded bytes.
fn readme_decode_value(env: &TestEnv, keyfile: &Path, e: &Entry, rev: Option<&str>) -> Vec<u8> {
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("value");
    let source = match rev {
        None => "age -d -i \"$K\" $(node $ID)",
        Some(_) => "git show \"$REV:$(node $ID)\" | age -d -i \"$K\"",
    };
    let out = bash(
        env,
        &format!(
            "echo \"$KEY\" > \"$K\" && chmod 600 \"$K\"\n\
             {source} | sed -n 's/^value: !!binary //p' | base64 -d > \"$OUT\"\n\
             rm \"$K\""
        ),
        &[
            ("KEY", e.key.as_ref()),
            ("K", keyfile.as_os_str()),
            ("ID", e.id.as_ref()),
            ("REV", rev.unwrap_or("").as_ref()),
            ("OUT", out_file.as_os_str()),
        ],
    );
    out.assert_success();
    assert!(!keyfile.exists(), "the recipe's rm left the key file");
    std::fs::read(&out_file).unwrap()
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_coreutils,
    ignore = "needs sha256sum, base64: apt-get install coreutils"
)]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
#[cfg_attr(missing_sed, ignore = "needs sed: apt-get install sed")]
fn age_cli_recovers_secrets_by_the_readme_recipe() {
    require_tools(&["age", "bash", "base64", "sed"]);
    let env = TestEnv::new();
    alice_store(&env);
    let password = b"correct horse battery staple";
    // Every byte value, and long enough that its base64 exceeds any line-wrap width.
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let conn = b"url: postgres://db\nuser: app\n";
    set(&env, "prod/db/password", password);
    set(&env, "prod/db/conn", conn);
    set(&env, "prod/tls/key", &binary);
    let keyfile = env.root.join("k");

    // The root, with the admin's SSH key.
    let root = readme_decrypt_root(&env);
    let root_body = body_of(&root);
    assert_node(root_body, "", "folder");
    assert!(
        root_body
            .lines()
            .any(|l| l == format!("id: {}", root_id(&env))),
        "the root names another id:\n{}",
        redact(root_body)
    );

    // Down the tree with the keys from parent entries.
    let prod = entry(root_body, "prod");
    assert_eq!(prod.kind, "folder");
    assert!(prod.key.starts_with("AGE-SECRET-KEY-1"), "{prod:?}");
    let prod_plain = readme_decrypt_child(&env, &keyfile, &prod);
    let prod_body = body_of(&prod_plain);
    assert_node(prod_body, "prod", "folder");
    let meta = std::fs::metadata(&keyfile).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    let db = entry(prod_body, "db");
    assert_eq!(db.kind, "folder");
    let db_plain = readme_decrypt_child(&env, &keyfile, &db);
    let db_body = body_of(&db_plain);
    assert_node(db_body, "db", "folder");

    let pw = entry(db_body, "password");
    assert_eq!(pw.kind, "secret");
    let pw_plain = readme_decrypt_child(&env, &keyfile, &pw);
    let pw_body = body_of(&pw_plain);
    assert_node(pw_body, "password", "secret");
    assert!(
        pw_body.lines().any(|l| l.starts_with("value: !!binary ")),
        "no `value: !!binary` line"
    );
    assert_eq!(
        readme_decode_value(&env, &keyfile, &pw, None),
        password,
        "the recipe decoded another value"
    );

    let conn_entry = entry(db_body, "conn");
    assert_eq!(conn_entry.kind, "secret");
    assert_eq!(readme_decode_value(&env, &keyfile, &conn_entry, None), conn);

    let tls_plain = readme_decrypt_child(&env, &keyfile, &entry(prod_body, "tls"));
    let tls_key = entry(body_of(&tls_plain), "key");
    assert_eq!(tls_key.kind, "secret");
    assert_eq!(readme_decode_value(&env, &keyfile, &tls_key, None), binary);

    // "Older versions are in git history: git show REV:.sesto/nodes/… and the same
    // steps." A changed value keeps its id and key, so the same entry opens both.
    set(&env, "prod/db/password", b"the new password");
    assert_eq!(
        readme_decode_value(&env, &keyfile, &pw, None),
        b"the new password"
    );
    assert_eq!(
        readme_decode_value(&env, &keyfile, &pw, Some("HEAD~1")),
        password
    );

    // A key from another entry does not open the node: the recipe is not vacuous.
    let wrong = Entry {
        key: conn_entry.key.clone(),
        ..entry(db_body, "password")
    };
    let out = bash(
        &env,
        "echo \"$KEY\" > \"$K\" && chmod 600 \"$K\"\n\
         age -d -i \"$K\" $(node $ID)",
        &[
            ("KEY", wrong.key.as_ref()),
            ("K", keyfile.as_os_str()),
            ("ID", wrong.id.as_ref()),
        ],
    );
    assert_ne!(out.code, 0, "age opened a node with another node's key");
}

// ---------------------------------------------------------------------------------
// 2. sesto's library reads files the age CLI made, and the other way round
// ---------------------------------------------------------------------------------

/// Runs `age args` with `input` on stdin; panics on failure.
fn age(env: &TestEnv, args: &[&OsStr], input: &[u8]) {
    let mut cmd = env.command("age");
    cmd.args(args);
    run_cmd_stdin(cmd, input).assert_success();
}

fn parse_identity(path: &Path) -> Vec<sesto::Identity> {
    let text = std::fs::read_to_string(path).unwrap();
    sesto::Identity::parse(&text, &path.display().to_string()).unwrap()
}

fn library_decrypt(
    ciphertext: &[u8],
    ids: &[sesto::Identity],
) -> Result<Vec<u8>, sesto::format::crypto::CryptoError> {
    let ids: Vec<&dyn age::Identity> = ids
        .iter()
        .map(|i| {
            i.age_identity(&sesto::format::crypto::NoPassphrase)
                .unwrap()
                .unwrap()
        })
        .collect();
    sesto::format::crypto::decrypt(ciphertext, &ids).map(|p| p.to_vec())
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn library_decrypts_files_the_age_cli_encrypted() {
    require_tools(&["age", "age-keygen", "ssh-keygen"]);
    let env = TestEnv::new();
    // More than one 64 KiB STREAM chunk, and not a multiple of it.
    let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = env.root.join("file.age");
    let (x25519_key, recipient) = env.age_keygen("me");
    let ed25519 = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    let rsa = env.ssh_keygen("id_rsa", KeyKind::Rsa, None);
    let (other_key, _) = env.age_keygen("other");

    // X25519, binary and armored.
    for armor in [false, true] {
        let mut args: Vec<&OsStr> = vec!["-e".as_ref(), "-r".as_ref(), recipient.as_ref()];
        if armor {
            args.push("-a".as_ref());
        }
        args.extend(["-o".as_ref(), out.as_os_str()]);
        age(&env, &args, &plaintext);
        let ciphertext = std::fs::read(&out).unwrap();
        assert_eq!(ciphertext.starts_with(b"-----BEGIN AGE"), armor);
        let got = library_decrypt(&ciphertext, &parse_identity(&x25519_key))
            .unwrap_or_else(|e| panic!("armor={armor}: {e}"));
        assert!(got == plaintext, "armor={armor}: different plaintext");
        assert!(
            matches!(
                library_decrypt(&ciphertext, &parse_identity(&other_key)),
                Err(sesto::format::crypto::CryptoError::NoMatchingKeys)
            ),
            "another identity opened the file"
        );
    }

    // SSH recipients from `.pub` files, opened with the private keys' text.
    for key in [&ed25519, &rsa] {
        let mut public = key.as_os_str().to_owned();
        public.push(".pub");
        age(
            &env,
            &[
                "-e".as_ref(),
                "-R".as_ref(),
                &public,
                "-o".as_ref(),
                out.as_os_str(),
            ],
            &plaintext,
        );
        let ciphertext = std::fs::read(&out).unwrap();
        let got = library_decrypt(&ciphertext, &parse_identity(key))
            .unwrap_or_else(|e| panic!("{}: {e}", key.display()));
        assert!(got == plaintext, "{}: different plaintext", key.display());
        let other = if key == &ed25519 { &rsa } else { &ed25519 };
        assert!(
            library_decrypt(&ciphertext, &parse_identity(other)).is_err(),
            "{} opened a file for {}",
            other.display(),
            key.display()
        );
    }

    // And the other way: the library encrypts, the age CLI decrypts.
    let decrypted = env.root.join("decrypted");
    for (identity, public) in [
        (&x25519_key, recipient.clone()),
        (&ed25519, pub_key(&ed25519)),
        (&rsa, pub_key(&rsa)),
    ] {
        let r = sesto::format::crypto::Recipient::parse(&public)
            .unwrap()
            .to_age()
            .unwrap();
        let ciphertext = sesto::format::crypto::encrypt(&plaintext, &[r.as_ref()]).unwrap();
        std::fs::write(&out, ciphertext).unwrap();
        age(
            &env,
            &[
                "-d".as_ref(),
                "-i".as_ref(),
                identity.as_os_str(),
                "-o".as_ref(),
                decrypted.as_os_str(),
                out.as_os_str(),
            ],
            b"",
        );
        assert!(
            std::fs::read(&decrypted).unwrap() == plaintext,
            "age decrypted something else for {}",
            identity.display()
        );
    }
}

// ---------------------------------------------------------------------------------
// 3. ssh-keygen keys as identities of the CLI
// ---------------------------------------------------------------------------------

/// init, set and get with an unencrypted key of `kind` at its default path; the age
/// CLI opens the root with the same key.
fn unencrypted_key_works(kind: KeyKind) {
    require_tools(&["ssh-keygen", "age"]);
    let env = TestEnv::new();
    env.init_repo();
    let key = env.ssh_keygen(default_key_name(kind), kind, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    set(&env, "prod/db/password", b"s3cret value");
    let out = env.run(&["get", "prod/db/password"]);
    out.assert_success();
    assert_eq!(out.stdout, "s3cret value");
    assert_eq!(env.run(&["ls", "prod"]).assert_success().stdout, "db/\n");
    let roster = std::fs::read_to_string(env.repo.join(".sesto/roster.yaml")).unwrap();
    assert!(
        roster.contains(&key_without_comment(&pub_key(&key))),
        "the roster does not hold the key"
    );
    // The age CLI opens the root with the same key...
    let mut cmd = env.command("age");
    cmd.arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(node_file(&root_id(&env)));
    let out = run_cmd(cmd);
    out.assert_success();
    assert_node(body_of(&out.stdout), "", "folder");
    entry(body_of(&out.stdout), "prod");
    // ...and ssh-keygen verifies the roster signature it made.
    let roster = std::fs::read(env.repo.join(".sesto/roster.yaml")).unwrap();
    let sig = env.repo.join(".sesto/roster.sig");
    Signers::new(&env, "alice", &key)
        .verify("alice", "sesto-roster-v1", &sig, &roster)
        .assert_success();
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn ssh_keygen_ed25519_key_without_passphrase_works() {
    unencrypted_key_works(KeyKind::Ed25519);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn ssh_keygen_rsa_key_without_passphrase_works() {
    unencrypted_key_works(KeyKind::Rsa);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn identity_from_flag_env_text_and_env_file() {
    require_tool("ssh-keygen");
    let env = TestEnv::new();
    env.init_repo();
    // Not at a default path: only the source under test can supply it.
    let key = env.ssh_keygen("deploy", KeyKind::Ed25519, None);
    let key_str = key.to_str().unwrap();
    env.run(&["-i", key_str, "init", "--name", "deploy"])
        .assert_success();
    env.run_stdin(&["-i", key_str, "set", "ci/token"], b"tok")
        .assert_success();

    let out = env.run(&["-i", key_str, "get", "ci/token"]);
    assert_eq!(out.assert_success().stdout, "tok", "-i");

    let text = std::fs::read_to_string(&key).unwrap();
    let mut cmd = env.sesto(&["get", "ci/token"]);
    cmd.env("SESTO_IDENTITY", &text);
    assert_eq!(
        run_cmd(cmd).assert_success().stdout,
        "tok",
        "SESTO_IDENTITY"
    );

    let mut cmd = env.sesto(&["get", "ci/token"]);
    cmd.env("SESTO_IDENTITY_FILE", &key);
    assert_eq!(
        run_cmd(cmd).assert_success().stdout,
        "tok",
        "SESTO_IDENTITY_FILE"
    );

    // Writing with SESTO_IDENTITY too (CI deploy keys write).
    let mut cmd = env.sesto(&["set", "ci/token"]);
    cmd.env("SESTO_IDENTITY", &text);
    run_cmd_stdin(cmd, b"tok2").assert_success();
    let out = env.run(&["-i", key_str, "get", "ci/token"]);
    assert_eq!(out.assert_success().stdout, "tok2");

    // None of them: no identity, and the error says what was looked for.
    let out = env.run(&["get", "ci/token"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("no identity can decrypt"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// With no terminal, a passphrase-protected key fails at once, naming the key.
fn passphrase_key_without_terminal(kind: KeyKind) {
    require_tools(&["ssh-keygen", "setsid"]);
    let env = TestEnv::new();
    env.init_repo();
    let key = env.ssh_keygen(default_key_name(kind), kind, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    set(&env, "a/b/c", b"value one");
    add_passphrase(&env, &key);
    let head = env
        .git(&["rev-parse", "HEAD"])
        .assert_success()
        .stdout
        .clone();
    let key_path = key.display().to_string();
    let key_text = std::fs::read_to_string(&key).unwrap();
    let value_file = env.root.join("new-value");
    std::fs::write(&value_file, "value two").unwrap();
    let value_file = value_file.to_str().unwrap();

    // What is run, its arguments and environment, and what the error must name.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a OsStr)>, &'a str);
    let cases: Vec<Case> = vec![
        ("default key, get", vec!["get", "a/b/c"], vec![], &key_path),
        (
            "default key, set",
            vec!["set", "a/b/c", "--file", value_file],
            vec![],
            &key_path,
        ),
        ("default key, ls", vec!["ls"], vec![], &key_path),
        (
            "-i",
            vec!["-i", &key_path, "get", "a/b/c"],
            vec![],
            &key_path,
        ),
        (
            "SESTO_IDENTITY_FILE",
            vec!["get", "a/b/c"],
            vec![("SESTO_IDENTITY_FILE", key.as_os_str())],
            &key_path,
        ),
        (
            "SESTO_IDENTITY",
            vec!["get", "a/b/c"],
            vec![("SESTO_IDENTITY", key_text.as_ref())],
            "SESTO_IDENTITY",
        ),
    ];
    for (what, args, vars, names) in cases {
        let (out, took) = without_terminal(&env, &args, &vars);
        assert_eq!(out.code, 1, "{what}: {}", common::snapshot_text(&out));
        assert!(took < AT_ONCE, "{what}: took {took:?}");
        assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
        assert!(
            out.stderr.contains(names) && out.stderr.contains("no terminal"),
            "{what}: the error should name {names} and say there is no terminal:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("passphrase"), "{what}: {}", out.stderr);
        assert_eq!(prompts(&out), 0, "{what}: prompted with no terminal");
    }
    // The failed set changed nothing.
    assert_eq!(env.git(&["rev-parse", "HEAD"]).stdout, head);
    assert_eq!(env.git(&["status", "--porcelain"]).stdout, "");
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(
    missing_util_linux,
    ignore = "needs setpriv, setsid, unshare: apt-get install util-linux"
)]
fn ed25519_passphrase_without_terminal_fails_at_once() {
    passphrase_key_without_terminal(KeyKind::Ed25519);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(
    missing_util_linux,
    ignore = "needs setpriv, setsid, unshare: apt-get install util-linux"
)]
fn rsa_passphrase_without_terminal_fails_at_once() {
    passphrase_key_without_terminal(KeyKind::Rsa);
}

/// On a terminal, the passphrase is asked once per process, however many nodes the
/// command decrypts and signs.
fn passphrase_key_on_terminal(kind: KeyKind) {
    require_tools(&["ssh-keygen", "script"]);
    let env = TestEnv::new();
    env.init_repo();
    let key = env.ssh_keygen(default_key_name(kind), kind, Some(PASSPHRASE));
    let typed = format!("{PASSPHRASE}\n");
    let sesto = bin();

    let out = on_terminal(&env, &format!("{sesto} init --name alice"), &typed, &[]);
    out.assert_success();
    assert_eq!(prompts(&out), 1, "init:\n{}", out.stdout);
    assert!(out.stdout.contains(&format!("{PROMPT} {}", key.display())));

    // Creates a, a/b and a/b/c and rewrites the root: four nodes signed, one prompt.
    let out = on_terminal(
        &env,
        &format!("printf %s 'terminal value' | {sesto} set a/b/c"),
        &typed,
        &[],
    );
    out.assert_success();
    assert_eq!(prompts(&out), 1, "set:\n{}", out.stdout);

    // Four nodes decrypted and verified on the way down, one prompt.
    let out = on_terminal(&env, &format!("{sesto} get a/b/c"), &typed, &[]);
    out.assert_success();
    assert_eq!(prompts(&out), 1, "get:\n{}", out.stdout);
    assert!(
        // On a terminal, `get` ends a value that has no newline with one.
        out.stdout.ends_with("terminal value\r\n"),
        "get printed:\n{}",
        out.stdout
    );

    let out = on_terminal(&env, &format!("{sesto} fsck"), &typed, &[]);
    out.assert_success();
    assert_eq!(prompts(&out), 1, "fsck:\n{}", out.stdout);

    // Wrong passphrases: three tries, as ssh gives, then a clear error naming the key.
    let out = on_terminal(
        &env,
        &format!("{sesto} get a/b/c"),
        "not it\nnor this\nno\n",
        &[],
    );
    out.assert_code(1);
    assert_eq!(prompts(&out), 3, "wrong passphrase:\n{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("{}: wrong passphrase (3 tries)", key.display())),
        "the error should name the key and say the passphrase is wrong:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains("terminal value"));
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn ed25519_passphrase_is_asked_once_on_a_terminal() {
    passphrase_key_on_terminal(KeyKind::Ed25519);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn rsa_passphrase_is_asked_once_on_a_terminal() {
    passphrase_key_on_terminal(KeyKind::Rsa);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn passphrase_key_from_flag_env_text_and_env_file_on_a_terminal() {
    require_tools(&["ssh-keygen", "script"]);
    let env = TestEnv::new();
    env.init_repo();
    // Not at a default path: only the source under test can supply it.
    let key = env.ssh_keygen("alice", KeyKind::Ed25519, Some(PASSPHRASE));
    let key_q = sh_quote(key.to_str().unwrap());
    let typed = format!("{PASSPHRASE}\n");
    let sesto = bin();
    on_terminal(
        &env,
        &format!("{sesto} -i {key_q} init --name alice"),
        &typed,
        &[],
    )
    .assert_success();
    on_terminal(
        &env,
        &format!("printf %s v1 | {sesto} -i {key_q} set x/y"),
        &typed,
        &[],
    )
    .assert_success();

    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_str = key.to_str().unwrap();
    for (what, line, vars, source) in [
        ("-i", format!("{sesto} -i {key_q} get x/y"), vec![], key_str),
        (
            "SESTO_IDENTITY_FILE",
            format!("{sesto} get x/y"),
            vec![("SESTO_IDENTITY_FILE", key_str)],
            key_str,
        ),
        (
            "SESTO_IDENTITY",
            format!("{sesto} get x/y"),
            vec![("SESTO_IDENTITY", key_text.as_str())],
            "SESTO_IDENTITY",
        ),
    ] {
        let out = on_terminal(&env, &line, &typed, &vars);
        assert!(out.success(), "{what}:\n{}", out.stdout);
        assert!(out.stdout.ends_with("v1\r\n"), "{what}:\n{}", out.stdout);
        assert_eq!(prompts(&out), 1, "{what}:\n{}", out.stdout);
        assert!(
            out.stdout.contains(&format!("{PROMPT} {source}")),
            "{what}: the prompt should name {source}:\n{}",
            out.stdout
        );
    }
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn passphrase_is_asked_once_when_the_same_key_is_named_twice() {
    // The same key from two sources (`-i K -i K`, SESTO_IDENTITY and
    // SESTO_IDENTITY_FILE, or ~/.config/sesto/identity a copy of ~/.ssh/id_ed25519)
    // is still one key: its passphrase is asked once per process.
    require_tools(&["ssh-keygen", "script"]);
    let env = TestEnv::new();
    env.init_repo();
    let key = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, Some(PASSPHRASE));
    let key_q = sh_quote(key.to_str().unwrap());
    let sesto = bin();
    // Typed twice so that a second prompt shows as a count, not as a failure to read.
    let typed = format!("{PASSPHRASE}\n{PASSPHRASE}\n");
    on_terminal(&env, &format!("{sesto} init --name alice"), &typed, &[]).assert_success();
    on_terminal(
        &env,
        &format!("printf %s v1 | {sesto} set x/y"),
        &typed,
        &[],
    )
    .assert_success();
    let key_str = key.to_str().unwrap();
    let key_text = std::fs::read_to_string(&key).unwrap();
    let get = format!("{sesto} get x/y");
    let cases = [
        (
            "-i twice",
            format!("{sesto} -i {key_q} -i {key_q} get x/y"),
            vec![],
        ),
        (
            "SESTO_IDENTITY and SESTO_IDENTITY_FILE",
            get.clone(),
            vec![
                ("SESTO_IDENTITY", key_text.as_str()),
                ("SESTO_IDENTITY_FILE", key_str),
            ],
        ),
        ("a copy in ~/.config/sesto/identity", get.clone(), vec![]),
    ];
    for (what, line, vars) in cases {
        if what.starts_with("a copy") {
            let dir = env.xdg_config.join("sesto");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&key, dir.join("identity")).unwrap();
        }
        let out = on_terminal(&env, &line, &typed, &vars);
        assert!(out.success(), "{what}:\n{}", out.stdout);
        assert!(out.stdout.ends_with("v1\r\n"), "{what}:\n{}", out.stdout);
        assert_eq!(
            prompts(&out),
            1,
            "{what}: asked more than once:\n{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------------------------
// 4. age-keygen identities
// ---------------------------------------------------------------------------------

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn age_key_member_reads_but_cannot_sign() {
    require_tools(&["ssh-keygen", "age-keygen", "age"]);
    let env = TestEnv::new();
    env.init_repo();
    // Not at a default path, so that only -i decides who runs each command.
    let alice = env.ssh_keygen("alice", KeyKind::Ed25519, None);
    let alice_str = alice.to_str().unwrap();
    env.run(&["-i", alice_str, "init", "--name", "alice"])
        .assert_success();
    env.run_stdin(&["-i", alice_str, "set", "prod/db/password"], b"pw")
        .assert_success();
    let (bob, bob_recipient) = env.age_keygen("bob");
    let (carol, carol_recipient) = env.age_keygen("carol");
    let bob_str = bob.to_str().unwrap();
    let carol_str = carol.to_str().unwrap();

    // Before bob is a member, his key opens nothing.
    let out = env.run(&["-i", bob_str, "get", "prod/db/password"]);
    out.assert_code(1);
    assert!(out.stdout.is_empty());

    // The CLI has no `member add` yet: the library, with alice's key.
    let ids = sesto::identities_from_text(&std::fs::read_to_string(&alice).unwrap()).unwrap();
    let mut store = sesto::Store::open(
        &sesto::OpenOptions {
            start: Some(env.repo.clone()),
            // The test's trust state lives in its sealed XDG_STATE_HOME, not here.
            trust: sesto::store::trust::TrustMode::Skip,
        },
        ids,
    )
    .unwrap();
    store.add_member("bob", &bob_recipient, true).unwrap();
    store.add_member("carol", &carol_recipient, false).unwrap();
    drop(store);

    // bob, an admin with an age key, reads.
    let out = env.run(&["-i", bob_str, "get", "prod/db/password"]);
    assert_eq!(out.assert_success().stdout, "pw");
    let out = env.run(&["-i", bob_str, "ls", "prod"]);
    assert_eq!(out.assert_success().stdout, "db/\n");
    // So does the age CLI with his key: the root was re-encrypted to him.
    let mut cmd = env.command("age");
    cmd.arg("-d")
        .arg("-i")
        .arg(&bob)
        .arg(node_file(&root_id(&env)));
    let out = run_cmd(cmd);
    out.assert_success();
    assert_node(body_of(&out.stdout), "", "folder");

    // But he cannot write: age keys cannot sign.
    let head = env
        .git(&["rev-parse", "HEAD"])
        .assert_success()
        .stdout
        .clone();
    let out = env.run_stdin(&["-i", bob_str, "set", "prod/db/password"], b"bob was here");
    out.assert_code(1);
    assert!(
        out.stderr.contains("bob") && out.stderr.contains("cannot sign"),
        "the error should say bob cannot sign:\n{}",
        out.stderr
    );
    assert_eq!(env.git(&["rev-parse", "HEAD"]).stdout, head);
    let out = env.run(&["-i", alice_str, "get", "prod/db/password"]);
    assert_eq!(out.assert_success().stdout, "pw");

    // carol, a member with no admin rights and no grants, reads nothing, and is
    // told who could grant it.
    let out = env.run(&["-i", carol_str, "get", "prod/db/password"]);
    out.assert_code(1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("prod/db/password is not granted to carol")
            && out.stderr.contains("alice, bob"),
        "the error should say the path is not granted and name the admins:\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------
// 5. Signatures verify with ssh-keygen -Y verify
// ---------------------------------------------------------------------------------

/// An `allowed_signers` file for `ssh-keygen -Y verify`.
struct Signers<'a> {
    env: &'a TestEnv,
    file: PathBuf,
}

impl<'a> Signers<'a> {
    /// Allows `principal` to sign with the public key beside `private_key`.
    fn new(env: &'a TestEnv, principal: &str, private_key: &Path) -> Self {
        let file = env.root.join("allowed_signers");
        let line = format!(
            "{principal} {}\n",
            key_without_comment(&pub_key(private_key))
        );
        std::fs::write(&file, line).unwrap();
        Signers { env, file }
    }

    /// `ssh-keygen -Y verify` of `message` against the signature file `sig`.
    fn verify(&self, principal: &str, namespace: &str, sig: &Path, message: &[u8]) -> Output {
        let mut cmd = self.env.command("ssh-keygen");
        cmd.args(["-Y", "verify", "-f"])
            .arg(&self.file)
            .args(["-I", principal, "-n", namespace, "-s"])
            .arg(sig);
        run_cmd_stdin(cmd, message)
    }
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn roster_and_node_signatures_verify_with_ssh_keygen() {
    require_tools(&["ssh-keygen", "age", "age-keygen"]);
    let env = TestEnv::new();
    let key = alice_store(&env);
    set(&env, "prod/db/password", b"pw");
    let signers = Signers::new(&env, "alice", &key);
    let roster_sig = env.repo.join(".sesto/roster.sig");
    let roster = || std::fs::read(env.repo.join(".sesto/roster.yaml")).unwrap();

    // As a person would type it.
    let out = bash(
        &env,
        "ssh-keygen -Y verify -f \"$A\" -I alice -n sesto-roster-v1 \
         -s .sesto/roster.sig < .sesto/roster.yaml",
        &[("A", signers.file.as_os_str())],
    );
    out.assert_success();
    assert!(
        out.stdout
            .contains("Good \"sesto-roster-v1\" signature for alice"),
        "{}",
        out.stdout
    );

    // Not vacuous: another namespace, another principal or other bytes fail.
    let out = signers.verify("alice", "sesto-node-v1", &roster_sig, &roster());
    assert_ne!(out.code, 0, "verified under the node namespace");
    let out = signers.verify("mallory", "sesto-roster-v1", &roster_sig, &roster());
    assert_ne!(out.code, 0, "verified for another principal");
    let mut tampered = roster();
    tampered.extend_from_slice(b"# extra\n");
    let out = signers.verify("alice", "sesto-roster-v1", &roster_sig, &tampered);
    assert_ne!(out.code, 0, "verified a changed roster");

    // A roster change (through the library) is signed the same way.
    let (_, bob) = env.age_keygen("bob");
    let ids = sesto::identities_from_text(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut store = sesto::Store::open(
        &sesto::OpenOptions {
            start: Some(env.repo.clone()),
            // The test's trust state lives in its sealed XDG_STATE_HOME, not here.
            trust: sesto::store::trust::TrustMode::Skip,
        },
        ids,
    )
    .unwrap();
    store.add_member("bob", &bob, false).unwrap();
    drop(store);
    assert!(String::from_utf8(roster()).unwrap().contains("bob:"));
    signers
        .verify("alice", "sesto-roster-v1", &roster_sig, &roster())
        .assert_success();

    // Node signatures: the signature document inside a node, decrypted by the age CLI,
    // verifies over `sesto-node-v1\n<store>\n<id>\n<sha256 of body>\n` as the README
    // says.
    let store_id = String::from_utf8(roster())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("store: ").map(str::to_owned))
        .expect("no store: line");
    let root = root_id(&env);
    let mut cmd = env.command("age");
    cmd.arg("-d").arg("-i").arg(&key).arg(node_file(&root));
    let plaintext = run_cmd(cmd).assert_success().stdout.clone();
    let body = body_of(&plaintext);
    let sig_doc = &plaintext[body.len() + "---\n".len()..];
    let mut pem = String::new();
    for line in sig_doc.lines().skip_while(|l| *l != "signature: |").skip(1) {
        match line.strip_prefix("  ") {
            Some(l) => {
                pem.push_str(l);
                pem.push('\n');
            }
            None => break,
        }
    }
    assert!(pem.starts_with("-----BEGIN SSH SIGNATURE-----"), "{pem}");
    let node_sig = env.root.join("node.sig");
    std::fs::write(&node_sig, &pem).unwrap();
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let message = format!("sesto-node-v1\n{store_id}\n{root}\n{digest}\n");
    let out = signers.verify("alice", "sesto-node-v1", &node_sig, message.as_bytes());
    out.assert_success();
    let other = format!(
        "sesto-node-v1\n{store_id}\n{}\n{digest}\n",
        entry(body, "prod").id
    );
    let out = signers.verify("alice", "sesto-node-v1", &node_sig, other.as_bytes());
    assert_ne!(out.code, 0, "a node signature verified for another id");
}

// ---------------------------------------------------------------------------------
// 6. Canary: values only where asked for, names and values never on disk
// ---------------------------------------------------------------------------------

/// Names, field names and paths: they may show in outputs (the user typed them) but
/// never on disk.
const CANARY_NAMES: &[&str] = &[
    "canaryfolderzq",
    "canarysecretzq",
    "canaryyamlzq",
    "canaryfieldzq",
    "canaryfilezq",
    "canarymovedzq",
    "canarygeneratedzq",
    "canarycrashzq",
    "canarydeepzq",
];
/// Values: never in any output but the `get` that asked, never on disk.
const RAW_VALUE: &str = "canaryrawvaluezq-0189!";
const YAML_VALUE: &str = "canaryvaluezq";
const FILE_VALUE: &str = "canaryfilevaluezq";
const EDITED_VALUE: &str = "canaryeditedzq";
const CRASH_VALUE: &str = "canarycrashvaluezq";

/// Which of `needles` occur in `haystack`.
fn found<'a>(haystack: &[u8], needles: &[&'a str]) -> Vec<&'a str> {
    needles
        .iter()
        .copied()
        .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
        .collect()
}

/// Every file under `dir` (not following symlinks) with its bytes; loose git objects
/// are inflated as well, so that their content is searched, not their compression.
fn files_with_content(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.unwrap();
        let path = e.path().to_path_buf();
        if !e.file_type().is_file() {
            out.push((path, Vec::new()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let is_loose_object = path
            .parent()
            .and_then(Path::parent)
            .is_some_and(|p| p.ends_with(".git/objects"));
        if is_loose_object {
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&bytes[..])
                .read_to_end(&mut inflated)
                .unwrap_or_else(|e| panic!("inflate {}: {e}", path.display()));
            out.push((path.with_extension("inflated"), inflated));
        }
        out.push((path, bytes));
    }
    out
}

/// Every command the canary test ran: its output and the values it asked to print.
#[derive(Default)]
struct Log {
    runs: Vec<(String, Output, Vec<String>)>,
    /// Failing commands' outputs, for the snapshot.
    failures: String,
}

impl Log {
    /// Records a command that must succeed.
    #[track_caller]
    fn ok(&mut self, label: &str, out: Output, asked: &[&str]) -> String {
        assert!(out.success(), "{label}:\n{}", common::snapshot_text(&out));
        let stdout = out.stdout.clone();
        self.runs.push((
            label.to_owned(),
            out,
            asked.iter().map(|s| s.to_string()).collect(),
        ));
        stdout
    }

    /// Records a command that must fail, for the snapshot too.
    #[track_caller]
    fn fails(&mut self, label: &str, out: Output) {
        assert_ne!(
            out.code,
            0,
            "{label} should fail:\n{}",
            common::snapshot_text(&out)
        );
        self.failures.push_str(&format!(
            "$ sesto {label}\n{}\n\n",
            common::snapshot_text(&out)
        ));
        self.runs.push((label.to_owned(), out, Vec::new()));
    }
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn canary_values_and_names_never_leak() {
    require_tool("ssh-keygen");
    let env = TestEnv::new();
    alice_store(&env);
    let yaml = format!("canaryfieldzq: {YAML_VALUE}\nuser: app\n");
    let edited = format!("canaryfieldzq: {EDITED_VALUE}\n");
    let mut log = Log::default();
    let sec = "canaryfolderzq/canarysecretzq";
    let yml = "canaryfolderzq/canaryyamlzq";

    // Writes.
    log.ok(
        "set raw",
        env.run_stdin(&["set", sec], RAW_VALUE.as_bytes()),
        &[],
    );
    log.ok(
        "set yaml",
        env.run_stdin(&["set", yml], yaml.as_bytes()),
        &[],
    );
    let outside = tempfile::tempdir().unwrap();
    let value_file = outside.path().join("value");
    std::fs::write(&value_file, FILE_VALUE).unwrap();
    log.ok(
        "set --file",
        env.run(&[
            "set",
            "canaryfolderzq/canarydeepzq/canaryfilezq",
            "--file",
            value_file.to_str().unwrap(),
        ]),
        &[],
    );
    std::fs::remove_file(&value_file).unwrap();
    log.ok(
        "generate",
        env.run(&["generate", "canaryfolderzq/canarygeneratedzq"]),
        &[],
    );
    log.ok(
        "mkdir -p",
        env.run(&["mkdir", "-p", "canaryfolderzq/canarydeepzq/x"]),
        &[],
    );

    // Reads.
    let got = log.ok("get raw", env.run(&["get", sec]), &[RAW_VALUE]);
    assert_eq!(got, RAW_VALUE);
    let got = log.ok("get yaml", env.run(&["get", yml]), &[YAML_VALUE]);
    assert_eq!(got, yaml);
    let got = log.ok(
        "get field",
        env.run(&["get", yml, "canaryfieldzq"]),
        &[YAML_VALUE],
    );
    assert!(got.contains(YAML_VALUE), "get FIELD printed {got:?}");
    log.ok("ls", env.run(&["ls"]), &[]);
    log.ok("ls folder", env.run(&["ls", "canaryfolderzq"]), &[]);
    log.ok(
        "ls --json",
        env.run(&["ls", "canaryfolderzq", "--json"]),
        &[],
    );
    let tree = log.ok("tree", env.run(&["tree"]), &[]);
    assert!(tree.contains("canarysecretzq"), "{tree}");
    log.ok("tree --json", env.run(&["tree", "--json"]), &[]);
    log.ok("find", env.run(&["find", "canary"]), &[]);
    log.ok("find --json", env.run(&["find", "canary", "--json"]), &[]);
    log.ok("find glob", env.run(&["find", "canaryfolderzq/*"]), &[]);
    log.ok("fsck", env.run(&["fsck"]), &[]);
    log.ok("fsck --json", env.run(&["fsck", "--json"]), &[]);
    let generated = env.run(&["get", "canaryfolderzq/canarygeneratedzq"]);
    let generated_value = generated.stdout.clone();
    log.ok("get generated", generated, &[&generated_value]);
    assert!(
        generated_value.len() >= 20,
        "generated {} bytes",
        generated_value.len()
    );

    // Failing commands: each error names what the user typed, never a value.
    let below = format!("{sec}/x");
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["get", yml, "nofieldzq"], None),
        (vec!["get", sec, "canaryfieldzq"], None),
        (vec!["get", "canaryfolderzq"], None),
        (vec!["get", &below], None),
        (vec!["set", "canaryfolderzq"], Some(RAW_VALUE)),
        (vec!["set", &below], Some(RAW_VALUE)),
        (vec!["otp", sec], None),
        (vec!["otp", yml], None),
        (vec!["mkdir", "canaryfolderzq"], None),
        (vec!["rm", "canaryfolderzq"], None),
        (vec!["mv", sec, yml], None),
        (vec!["generate", sec], None),
        (vec!["find", "nomatchzq"], None),
    ];
    for (args, stdin) in &cases {
        let out = match stdin {
            Some(input) => env.run_stdin(args, input.as_bytes()),
            None => env.run(args),
        };
        let label = match stdin {
            Some(_) => format!("{} < value", args.join(" ")),
            None => args.join(" "),
        };
        log.fails(&label, out);
    }

    // Edit with a fake editor that checks it got the value and writes a new one. The
    // values come through the environment so that no file on disk holds them.
    let editor = env.write_script(
        "editor",
        "grep -q \"$CANARY_OLD\" \"$1\"\nprintf '%s' \"$CANARY_NEW\" > \"$1\"",
    );
    let mut cmd = env.sesto(&["edit", yml]);
    cmd.env("EDITOR", &editor)
        .env("CANARY_OLD", YAML_VALUE)
        .env("CANARY_NEW", &edited);
    log.ok("edit", run_cmd(cmd), &[]);
    assert_eq!(env.edit_dir_entries(), Vec::<String>::new());
    let broken = env.write_script("broken-editor", "exit 3");
    let mut cmd = env.sesto(&["edit", yml]);
    cmd.env("EDITOR", &broken);
    log.fails(&format!("edit {yml} (the editor exits 3)"), run_cmd(cmd));
    assert_eq!(env.edit_dir_entries(), Vec::<String>::new());
    let got = log.ok("get edited", env.run(&["get", yml]), &[EDITED_VALUE]);
    assert_eq!(got, edited);

    // Moves and removals re-key and rewrite folders.
    log.ok(
        "mv",
        env.run(&["mv", yml, "canaryfolderzq/canarymovedzq"]),
        &[],
    );
    log.ok(
        "rm -r",
        env.run(&["rm", "-r", "canaryfolderzq/canarydeepzq/x"]),
        &[],
    );

    // A write killed after its journal is durable: the journal and temporary files
    // are on disk until the next command, and must not name anything either.
    let values: Vec<&str> = vec![
        RAW_VALUE,
        YAML_VALUE,
        FILE_VALUE,
        EDITED_VALUE,
        CRASH_VALUE,
        &generated_value,
    ];
    let mut everything: Vec<&str> = CANARY_NAMES.to_vec();
    everything.extend(&values);
    everything.push("canary");
    let check_disk = |when: &str| {
        let files = files_with_content(&env.root);
        // Not vacuous: the walk sees the index, inflated git objects and node files.
        let seen = |end: &str| {
            files
                .iter()
                .filter(|(p, _)| p.to_string_lossy().ends_with(end))
                .count()
        };
        assert!(
            seen(".git/index") == 1 && seen(".inflated") > 10 && seen(".age") >= 6,
            "{when}: the walk missed files (index {}, inflated objects {}, .age files {})",
            seen(".git/index"),
            seen(".inflated"),
            seen(".age")
        );
        for (path, bytes) in files {
            let shown = path.strip_prefix(&env.root).unwrap().display().to_string();
            let hits = found(shown.as_bytes(), &everything);
            assert!(
                hits.is_empty(),
                "{when}: the file name {shown} reveals {hits:?}"
            );
            let hits = found(&bytes, &everything);
            assert!(hits.is_empty(), "{when}: {shown} reveals {hits:?}");
        }
    };
    let mut cmd = env.sesto(&["set", "canaryfolderzq/canarycrashzq"]);
    cmd.env("SESTO_FAILPOINT", "after-journal");
    let out = run_cmd_stdin(cmd, CRASH_VALUE.as_bytes());
    assert_ne!(out.code, 0, "the failpoint did not fire");
    log.runs
        .push(("set, killed after the journal".into(), out, Vec::new()));
    assert!(
        env.repo.join(".git/sesto/journal").exists(),
        "the failpoint left no journal to look at"
    );
    check_disk("after a killed write");
    // The next command finishes the write.
    log.ok("fsck after crash", env.run(&["fsck"]), &[]);
    let got = log.ok(
        "get crash",
        env.run(&["get", "canaryfolderzq/canarycrashzq"]),
        &[CRASH_VALUE],
    );
    assert_eq!(got, CRASH_VALUE);
    let tree = log.ok("tree at the end", env.run(&["tree"]), &[]);
    assert!(tree.contains("canarymovedzq"), "{tree}");

    // No value in any output but where asked for, and never on stderr.
    for (label, out, asked) in &log.runs {
        let hits: Vec<&str> = found(out.stdout.as_bytes(), &values)
            .into_iter()
            .filter(|v| !asked.iter().any(|a| a == v))
            .collect();
        assert!(hits.is_empty(), "{label}: stdout shows {hits:?}");
        let hits = found(out.stderr.as_bytes(), &values);
        assert!(hits.is_empty(), "{label}: stderr shows {hits:?}");
        // Field names are part of the value: an error shows one only if it was typed.
        if !label.contains("canaryfieldzq") {
            assert!(
                !out.stderr.contains("canaryfieldzq"),
                "{label}: stderr shows a field name"
            );
        }
    }

    // Nothing on disk: .sesto/, .git/ (raw and inflated loose objects, the index, the
    // journal), home, XDG dirs, the edit dir, the scripts.
    check_disk("at the end");
    // All git objects, loose or packed, and the commit messages.
    let objects = env.git(&["cat-file", "--batch-all-objects", "--batch"]);
    objects.assert_success();
    assert!(
        objects.stdout.contains(" commit "),
        "no commit objects listed"
    );
    let hits = found(objects.stdout.as_bytes(), &everything);
    assert!(hits.is_empty(), "git objects reveal {hits:?}");
    let log_messages = env.git(&["log", "--format=%B"]);
    log_messages.assert_success();
    assert!(
        log_messages
            .stdout
            .lines()
            .filter(|l| !l.is_empty())
            .count()
            >= 8,
        "too few commits:\n{}",
        log_messages.stdout
    );
    let hits = found(log_messages.stdout.as_bytes(), &everything);
    assert!(hits.is_empty(), "commit messages reveal {hits:?}");
    let index = env.git(&["ls-files", "--stage"]);
    let hits = found(index.assert_success().stdout.as_bytes(), &everything);
    assert!(hits.is_empty(), "the index reveals {hits:?}");

    // The snapshot of the failures shows names, not values; and no snapshot file of
    // any test holds one of these values.
    let failures = log.failures.clone();
    common::insta_settings().bind(|| insta::assert_snapshot!("canary_failures", failures));
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    if snapshots.is_dir() {
        for (path, bytes) in files_with_content(&snapshots) {
            let hits = found(&bytes, &values);
            assert!(hits.is_empty(), "{} shows {hits:?}", path.display());
        }
    }
}
