//! Teams: members, grants, revocation with rotation, trust pinning, and the
//! attacks a team store must shrug off. Every command runs the real binary; keys
//! come from the real `ssh-keygen` and `age-keygen`, and the real `age` CLI plays
//! the removed member who kept their keys.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{
    insta_settings, pub_key, require_tool, require_tools, run_cmd, snapshot_text, KeyKind, Output,
    TestEnv,
};
use sesto::format::crypto;
use sesto::format::node::{self, NodeId, Roster};
use ssh_key::PrivateKey;

const PASSWORD: &str = "canary-Pr0d-DB-pw-7d1c";
const TOKEN: &str = "canary-api-token-93ab";
const STAGING: &str = "canary-staging-0f2e";

/// alice (admin, `~/.ssh/id_ed25519`), bob (ed25519 key, a member with no
/// grants) and a store with `prod/db/password`, `prod/api/token`,
/// `staging/db/password`. Each person has their own trust state.
struct Team {
    env: TestEnv,
    alice: PathBuf,
    bob: PathBuf,
}

impl Team {
    fn new() -> Team {
        let env = TestEnv::new();
        env.init_repo();
        let alice = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
        let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
        env.run(&["init", "--name", "alice"]).assert_success();
        for (path, value) in [
            ("prod/db/password", PASSWORD),
            ("prod/api/token", TOKEN),
            ("staging/db/password", STAGING),
        ] {
            env.run_stdin(&["set", path], value.as_bytes())
                .assert_success();
        }
        let team = Team { env, alice, bob };
        let bob_pub = format!("{}.pub", team.bob.display());
        team.ok(&["member", "add", "bob", "--key-file", &bob_pub]);
        team
    }

    /// `sesto args` as alice; must succeed.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.env.run(args);
        out.assert_success();
        out
    }

    /// `sesto -i KEY args` as `who` (a key path), each person with their own
    /// trust state.
    fn run_as(&self, who: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
        let name = who.file_name().unwrap().to_string_lossy().to_string();
        let state = self.env.root.join(format!("state-{name}"));
        let mut full = vec!["-i", who.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut cmd = self.env.sesto(&full);
        if who != self.alice {
            // alice keeps the environment's own trust state, where init pinned.
            cmd.env("XDG_STATE_HOME", &state);
        }
        match input {
            Some(i) => common::run_cmd_stdin(cmd, i),
            None => run_cmd(cmd),
        }
    }

    /// Makes `name` an SSH key and adds them as an admin; returns the key.
    fn add_admin(&self, name: &str) -> PathBuf {
        let key = self.env.ssh_keygen(name, KeyKind::Ed25519, None);
        let public = format!("{}.pub", key.display());
        self.ok(&["member", "add", name, "--key-file", &public, "--admin"]);
        key
    }

    fn bob(&self, args: &[&str]) -> Output {
        self.run_as(&self.bob, args, None)
    }

    fn roster(&self) -> Roster {
        Roster::decode(&fs::read(self.env.repo.join(".sesto/roster.yaml")).unwrap()).unwrap()
    }

    fn head(&self) -> String {
        self.env.git(&["rev-parse", "HEAD"]).stdout
    }

    /// Files changed by the last commit.
    fn last_commit_files(&self) -> Vec<String> {
        let out = self.env.git(&["show", "--name-only", "--format=", "HEAD"]);
        out.stdout.lines().map(str::to_string).collect()
    }

    /// Every node file, at any depth below `nodes/`.
    fn node_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(self.env.repo.join(".sesto/nodes"))
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(walkdir::DirEntry::into_path)
            .collect();
        files.sort();
        files
    }
}

fn assert_no_canary(out: &Output) {
    for canary in [PASSWORD, TOKEN, STAGING] {
        assert!(
            !out.stdout.contains(canary) && !out.stderr.contains(canary),
            "a secret value was printed:\n{}",
            snapshot_text(out)
        );
    }
}

fn snap(name: &str, out: &Output) {
    assert_no_canary(out);
    insta_settings().bind(|| insta::assert_snapshot!(name, snapshot_text(out)));
}

// ---------------------------------------------------------------------------------
// Members and keys

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn member_add_checks_keys_and_names() {
    require_tools(&["ssh-keygen", "age-keygen"]);
    let t = Team::new();
    let env = &t.env;
    let (_, carol_age) = env.age_keygen("carol");
    let (_, eve_age) = env.age_keygen("eve");
    let rsa = env.ssh_keygen("rsa3072", KeyKind::Rsa, None);
    t.ok(&["member", "add", "carol", "--key", &carol_age]);
    t.ok(&["member", "add", "dave", "--key", &pub_key(&rsa)]);

    // Each bad key: exit 1, a clear reason, the roster unchanged.
    let small = env.root.join("rsa1024");
    let mut cmd = env.command("ssh-keygen");
    cmd.args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&small);
    run_cmd(cmd).assert_success();
    let ecdsa = env.root.join("ecdsa");
    let mut cmd = env.command("ssh-keygen");
    cmd.args(["-q", "-t", "ecdsa", "-N", "", "-f"]).arg(&ecdsa);
    run_cmd(cmd).assert_success();
    let private = fs::read_to_string(&t.bob).unwrap();
    let bob_pub = pub_key(&t.bob);
    let two = format!("{}\n{}", pub_key(&rsa), bob_pub);
    let roster = t.roster();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "rsa_1024",
            vec!["eve".into(), "--key".into(), pub_key(&small)],
            "1024 bits",
        ),
        (
            "ecdsa",
            vec!["eve".into(), "--key".into(), pub_key(&ecdsa)],
            "ecdsa",
        ),
        (
            "private_key",
            vec!["eve".into(), "--key".into(), private.clone()],
            "private key",
        ),
        (
            "duplicate_key",
            vec!["eve".into(), "--key".into(), bob_pub.clone()],
            "already belongs to member bob",
        ),
        (
            "duplicate_name",
            vec!["bob".into(), "--key".into(), eve_age.clone()],
            "already exists",
        ),
        (
            "garbage",
            vec![
                "eve".into(),
                "--key".into(),
                "ssh-ed25519 AAAAnotbase64!!".into(),
            ],
            "malformed",
        ),
        (
            "two_keys",
            vec!["eve".into(), "--key".into(), two],
            "one key per member",
        ),
        (
            "bad_name",
            vec!["../eve".into(), "--key".into(), pub_key(&small)],
            "invalid member name",
        ),
        (
            "empty",
            vec!["eve".into(), "--key".into(), "   ".into()],
            "empty",
        ),
    ];
    for (name, args, phrase) in cases {
        let mut full = vec!["member", "add"];
        full.extend(args.iter().map(String::as_str));
        let out = env.run(&full);
        out.assert_code(1);
        assert!(out.stderr.contains(phrase), "{name}: {}", out.stderr);
        assert!(
            !out.stderr.contains("PRIVATE KEY"),
            "{name} echoed a private key"
        );
        assert_eq!(t.roster(), roster, "{name} changed the roster");
        snap(&format!("member_add_{name}"), &out);
    }
    // A huge key file is refused before it is read.
    let huge = env.root.join("huge.pub");
    fs::write(&huge, vec![b'A'; 1 << 20]).unwrap();
    let out = env.run(&["member", "add", "eve", "--key-file", huge.to_str().unwrap()]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("larger than the 64 KiB limit"),
        "{}",
        out.stderr
    );

    let out = t.ok(&["member", "list"]);
    snap("member_list", &out);
    let out = t.ok(&["member", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[0]["name"], "alice");
    assert_eq!(v[0]["admin"], true);
}

#[test]
fn only_admins_change_the_roster() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod", "--write"]);
    let head = t.head();
    let bob_pub = format!("{}.pub", t.bob.display());
    for args in [
        &[
            "member",
            "add",
            "eve",
            "--key",
            "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        ][..],
        &["member", "add", "eve", "--key-file", &bob_pub],
        &["grant", "bob", "staging"],
        &["revoke", "bob", "prod"],
        &["member", "remove", "alice"],
    ] {
        let out = t.bob(args);
        out.assert_code(1);
        assert!(
            out.stderr.contains("only admins") && out.stderr.contains("alice"),
            "{args:?}: {}",
            out.stderr
        );
        // The refusal is about bob, not about the key file.
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("error: only admins")),
            "{}",
            out.stderr
        );
    }
    assert_eq!(t.head(), head);
}

// ---------------------------------------------------------------------------------
// Grants

#[test]
fn granting_a_folder_rewrites_that_folder_and_the_roster_only() {
    let t = Team::new();
    // Many secrets below: the grant must not touch them.
    let mut tx_input = Vec::new();
    for i in 0..40 {
        tx_input.push(format!("prod/bulk/s{i:02}"));
    }
    for p in &tx_input {
        t.env.run_stdin(&["set", p], b"v").assert_success();
    }
    let before = t.node_files().len();
    let out = t.ok(&["grant", "bob", "prod"]);
    snap("grant", &out);
    let files = t.last_commit_files();
    // The folder's node, and the roster with its signature and its log.
    assert_eq!(files.len(), 4, "grant changed {files:?}");
    assert!(files.contains(&".sesto/roster.yaml".to_string()));
    assert!(files.contains(&".sesto/roster.sig".to_string()));
    assert!(files.contains(&".sesto/roster.log".to_string()));
    assert_eq!(t.node_files().len(), before);
    // Granting again changes nothing.
    let head = t.head();
    let out = t.ok(&["grant", "bob", "prod"]);
    assert!(out.stdout.contains("already"), "{}", out.stdout);
    assert_eq!(t.head(), head);
}

#[test]
fn granted_members_reach_their_folders_directly() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    let out = t.bob(&["ls"]);
    out.assert_success();
    snap("bob_ls_root", &out);
    let out = t.bob(&["tree"]);
    out.assert_success();
    assert!(out.stdout.contains("password") && !out.stdout.contains("staging"));
    snap("bob_tree", &out);
    let out = t.bob(&["get", "prod/db/password"]);
    assert_eq!(out.assert_success().stdout, PASSWORD);
    let out = t.bob(&["whoami"]);
    snap("bob_whoami", &out.assert_success().clone());

    // Outside the grant: a clear error naming the path and who can grant it.
    let out = t.bob(&["get", "staging/db/password"]);
    out.assert_code(1);
    assert!(out
        .stderr
        .contains("staging/db/password is not granted to bob"));
    assert!(out.stderr.contains("alice"));
    snap("bob_not_granted", &out);

    // Read-only: writing is refused and changes nothing.
    let head = t.head();
    let out = t.run_as(&t.bob, &["set", "prod/db/password"], Some(b"bob was here"));
    out.assert_code(1);
    assert!(out.stderr.contains("may not write"), "{}", out.stderr);
    assert_eq!(t.head(), head);

    // With --write: bob writes below, and creates a folder inside prod (which
    // rewrites prod itself, whose key bob never saw: its own recipient is used).
    t.ok(&["grant", "bob", "prod", "--write"]);
    let out = t.run_as(&t.bob, &["set", "prod/new/thing"], Some(b"from bob"));
    out.assert_success();
    let out = t.run_as(
        &t.bob,
        &["set", "prod/db/password"],
        Some(b"rotated by bob"),
    );
    out.assert_success();
    // alice reads what bob wrote; fsck and verify are clean for both.
    assert_eq!(t.ok(&["get", "prod/new/thing"]).stdout, "from bob");
    assert_eq!(t.ok(&["get", "prod/db/password"]).stdout, "rotated by bob");
    t.ok(&["fsck"]);
    t.ok(&["verify"]);
    t.bob(&["verify"]).assert_success();
    let out = t.ok(&["access", "prod/db/password"]);
    snap("access", &out);
    let out = t.ok(&["access", "prod/db/password", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[1]["member"], "bob");
    assert_eq!(v[1]["access"], "write");
    assert_eq!(v[1]["via"], "prod");
}

#[test]
fn moving_a_shared_folder_keeps_it_reachable() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod/db"]);
    t.ok(&["mv", "prod", "production"]);
    let out = t.bob(&["ls"]);
    assert_eq!(out.assert_success().stdout, "production/\n");
    let out = t.bob(&["get", "production/db/password"]);
    assert_eq!(out.assert_success().stdout, PASSWORD);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn age_only_member_reads_and_needs_a_signing_key_to_write() {
    require_tool("age-keygen");
    let t = Team::new();
    let (carol, carol_pub) = t.env.age_keygen("carol");
    t.ok(&["member", "add", "carol", "--key", &carol_pub]);
    let out = t.env.run(&["grant", "carol", "prod", "--write"]);
    out.assert_code(1);
    assert!(out.stderr.contains("signing key"), "{}", out.stderr);
    t.ok(&["grant", "carol", "prod"]);
    let out = t.run_as(&carol, &["get", "prod/api/token"], None);
    assert_eq!(out.assert_success().stdout, TOKEN);

    // With an SSH signing key, an age-key member writes.
    let dave_sign = t.env.ssh_keygen("dave_sign", KeyKind::Ed25519, None);
    let (dave, dave_pub) = t.env.age_keygen("dave");
    t.ok(&[
        "member",
        "add",
        "dave",
        "--key",
        &dave_pub,
        "--signing-key",
        &pub_key(&dave_sign),
    ]);
    t.ok(&["grant", "dave", "prod", "--write"]);
    let mut cmd = t.env.sesto(&[
        "-i",
        dave.to_str().unwrap(),
        "-i",
        dave_sign.to_str().unwrap(),
        "set",
        "prod/api/token",
    ]);
    cmd.env("XDG_STATE_HOME", t.env.root.join("state-dave"));
    common::run_cmd_stdin(cmd, b"dave's token").assert_success();
    assert_eq!(t.ok(&["get", "prod/api/token"]).stdout, "dave's token");
}

// ---------------------------------------------------------------------------------
// Revocation

/// Every age identity (node keys and the SSH key) someone holding `ssh_key`
/// learns by decrypting what they can, as the reference `age` CLI does it.
fn learned_keys(t: &Team, ssh_key: &Path) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    loop {
        let before = keys.len();
        for file in t.node_files() {
            if let Some(plain) = age_decrypt(t, ssh_key, &keys, &file) {
                for line in plain.lines() {
                    if let Some(k) = line.trim().strip_prefix("key: ") {
                        keys.insert(k.to_string());
                    }
                }
            }
        }
        if keys.len() == before {
            return keys;
        }
    }
}

/// Decrypts `file` with the `age` CLI given an SSH key and node keys.
fn age_decrypt(t: &Team, ssh_key: &Path, keys: &BTreeSet<String>, file: &Path) -> Option<String> {
    let ids = t.env.root.join("learned.txt");
    fs::write(
        &ids,
        keys.iter().map(|k| format!("{k}\n")).collect::<String>(),
    )
    .unwrap();
    let mut cmd = t.env.command("age");
    cmd.arg("-d").arg("-i").arg(ssh_key);
    if !keys.is_empty() {
        cmd.arg("-i").arg(&ids);
    }
    cmd.arg(file);
    let out = run_cmd(cmd);
    out.success().then_some(out.stdout)
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_revoked_members_kept_keys_open_nothing_written_afterwards() {
    require_tool("age");
    let t = Team::new();
    t.ok(&["grant", "bob", "prod", "--write"]);
    t.run_as(&t.bob, &["set", "prod/db/bobs"], Some(b"bob wrote this"))
        .assert_success();
    // What bob's copy of his key opens now: prod and everything below.
    let kept = learned_keys(&t, &t.bob);
    let opened: Vec<_> = t
        .node_files()
        .into_iter()
        .filter(|f| age_decrypt(&t, &t.bob, &kept, f).is_some())
        .collect();
    assert_eq!(
        opened.len(),
        6,
        "bob should open prod, db, api and 3 secrets"
    );

    let out = t.ok(&["revoke", "bob", "prod"]);
    snap("revoke", &out);
    for p in ["prod/db/password", "prod/api/token", "prod/db/bobs"] {
        assert!(out.stdout.contains(p), "revoke should list {p}");
    }
    // Later changes, then every file tried with everything bob kept.
    t.env
        .run_stdin(&["set", "prod/db/password"], b"new pw")
        .assert_success();
    t.env
        .run_stdin(&["set", "prod/later"], b"later")
        .assert_success();
    for file in t.node_files() {
        assert!(
            age_decrypt(&t, &t.bob, &kept, &file).is_none(),
            "bob's kept keys still open {}",
            file.display()
        );
    }
    // What bob had written is re-signed by alice: everything verifies.
    t.ok(&["fsck"]);
    t.ok(&["verify"]);
    let out = t.bob(&["get", "prod/db/password"]);
    out.assert_code(1);
    assert!(out.stderr.contains("not granted"), "{}", out.stderr);

    // stale lists what bob could read until each value changes.
    let out = t.env.run(&["stale"]);
    out.assert_code(1);
    snap("stale", &out);
    assert!(
        !out.stdout.contains("prod/db/password"),
        "changed after the revoke"
    );
    t.env
        .run_stdin(&["set", "prod/api/token"], b"new token")
        .assert_success();
    t.env
        .run_stdin(&["set", "prod/db/bobs"], b"new")
        .assert_success();
    let out = t.ok(&["stale"]);
    assert_eq!(out.stdout, "No stale secrets.\n");
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn removing_an_admin_rotates_everything_and_their_keys_open_nothing() {
    require_tool("age");
    let t = Team::new();
    let carol = t.add_admin("carol");
    let kept = learned_keys(&t, &carol);
    assert_eq!(
        t.node_files()
            .iter()
            .filter(|f| age_decrypt(&t, &carol, &kept, f).is_some())
            .count(),
        t.node_files().len(),
        "an admin opens every node"
    );
    let out = t.ok(&["member", "remove", "carol"]);
    snap("member_remove_admin", &out);
    assert!(!t.roster().members.contains_key("carol"));
    for file in t.node_files() {
        assert!(
            age_decrypt(&t, &carol, &kept, &file).is_none(),
            "{}",
            file.display()
        );
    }
    t.ok(&["fsck"]);
    assert_eq!(t.ok(&["get", "staging/db/password"]).stdout, STAGING);
    // Removing yourself, or a stranger, is refused.
    t.env.run(&["member", "remove", "alice"]).assert_code(1);
    t.env.run(&["member", "remove", "nobody"]).assert_code(1);
}

// ---------------------------------------------------------------------------------
// Trust pinning

#[test]
fn first_use_shows_the_admins_and_a_valid_chain_is_followed() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    let out = t.bob(&["ls"]);
    out.assert_success();
    assert!(
        out.stderr
            .contains("trusting this store's admins: alice (SHA256:"),
        "{}",
        out.stderr
    );
    // Second use: quiet.
    assert_eq!(t.bob(&["ls"]).stderr, "");
    // Two roster changes by alice (a new admin among them): bob follows the chain
    // through git history and is told what changed.
    t.add_admin("carol");
    t.ok(&["grant", "bob", "staging"]);
    let out = t.bob(&["ls"]);
    out.assert_success();
    assert!(
        out.stderr.contains("admins now alice") && out.stderr.contains("(new: carol); carol added"),
        "{}",
        out.stderr
    );
    snap("trust_admins_changed", &out);
    let out = t.ok(&["verify", "--history"]);
    snap("verify_history", &out);
}

/// Writes roster bytes signed by `signer`.
fn plant_roster(t: &Team, bytes: &[u8], signer: &PrivateKey) {
    let dir = t.env.repo.join(".sesto");
    fs::write(dir.join("roster.yaml"), bytes).unwrap();
    let sig = crypto::sign(signer, crypto::ROSTER_NAMESPACE, bytes).unwrap();
    fs::write(dir.join("roster.sig"), sig).unwrap();
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn attack_roster_with_an_attackers_key_is_refused_until_accepted() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    t.bob(&["ls"]).assert_success(); // bob pins the real admins
    let dir = t.env.repo.join(".sesto");
    let good_yaml = fs::read(dir.join("roster.yaml")).unwrap();
    let good_sig = fs::read(dir.join("roster.sig")).unwrap();
    let mallory = PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let mallory_pub = mallory.public_key().to_openssh().unwrap();

    // 2a. The roster edited to add mallory as an admin, signature left alone.
    let mut edited = t.roster();
    edited.members.insert(
        "mallory".into(),
        node::Member {
            key: mallory_pub.clone(),
            admin: true,
            signing_key: None,
        },
    );
    fs::write(dir.join("roster.yaml"), edited.encode()).unwrap();
    for who in [&t.alice, &t.bob] {
        let out = t.run_as(who, &["ls"], None);
        out.assert_code(1);
        assert!(out.stderr.contains("roster"), "{}", out.stderr);
    }
    // 2b. The same, signed by mallory, a version up, naming the real roster as
    // previous: the chain breaks at mallory's signature.
    edited.version += 1;
    edited.previous = Some(node::sha256_hex(&good_yaml));
    plant_roster(&t, &edited.encode(), &mallory);
    let head = t.head();
    for (who, name) in [(&t.alice, "alice"), (&t.bob, "bob")] {
        for args in [
            &["ls"][..],
            &["set", "prod/x"],
            &["grant", "bob", "staging"],
        ] {
            let out = t.run_as(who, args, Some(b"v"));
            out.assert_code(1);
            assert!(
                out.stderr.contains("not trusted")
                    && out.stderr.contains("not an admin of version"),
                "{name} {args:?}: {}",
                out.stderr
            );
        }
    }
    let out = t.bob(&["ls"]);
    snap("attack_roster_untrusted", &out);
    assert_eq!(
        t.head(),
        head,
        "nothing was written under the forged roster"
    );
    // A fresh clone pinned by SESTO_TRUST to alice's fingerprint refuses it too.
    let alice_fp = crypto::fingerprint(&pub_key(&t.alice));
    let mut cmd = t.env.sesto(&["-i", t.bob.to_str().unwrap(), "ls"]);
    cmd.env("SESTO_TRUST", &alice_fp)
        .env("XDG_STATE_HOME", t.env.root.join("fresh"));
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert!(out.stderr.contains("SESTO_TRUST"), "{}", out.stderr);

    // 6. Only an explicit accept takes it: the user was told what they accept.
    let out = t.bob(&["trust"]);
    out.assert_success();
    assert!(out.stdout.contains("mallory"), "{}", out.stdout);
    t.bob(&["trust", "--accept"]).assert_success();
    t.bob(&["ls"]).assert_success();

    // Restored, alice is fine again; SESTO_TRUST accepts the genuine roster.
    fs::write(dir.join("roster.yaml"), &good_yaml).unwrap();
    fs::write(dir.join("roster.sig"), &good_sig).unwrap();
    t.ok(&["ls"]);
    let mut cmd = t.env.sesto(&["-i", t.bob.to_str().unwrap(), "ls"]);
    cmd.env("SESTO_TRUST", &alice_fp)
        .env("XDG_STATE_HOME", t.env.root.join("fresh"));
    run_cmd(cmd).assert_success();
    // No node was ever encrypted to mallory: age cannot open any with her key.
    let mallory_file = t.env.root.join("mallory");
    fs::write(
        &mallory_file,
        mallory.to_openssh(ssh_key::LineEnding::LF).unwrap(),
    )
    .unwrap();
    require_tool("age");
    for f in t.node_files() {
        assert!(age_decrypt(&t, &mallory_file, &BTreeSet::new(), &f).is_none());
    }
}

#[test]
fn attack_rolled_back_roster_is_refused() {
    let t = Team::new();
    let dir = t.env.repo.join(".sesto");
    let old_yaml = fs::read(dir.join("roster.yaml")).unwrap();
    let old_sig = fs::read(dir.join("roster.sig")).unwrap();
    t.ok(&["grant", "bob", "prod"]);
    // bob's grant undone by replaying the older, genuinely signed roster.
    fs::write(dir.join("roster.yaml"), &old_yaml).unwrap();
    fs::write(dir.join("roster.sig"), &old_sig).unwrap();
    let out = t.env.run(&["ls"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("this clone used (rolled back?)"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------
// Forged nodes from people who can push

/// Decrypts the nodes from the root down to `path` with alice's key.
fn resolve(t: &Team, path: &str) -> (NodeId, Option<String>, Vec<u8>) {
    let text = fs::read_to_string(&t.alice).unwrap();
    let ids = sesto::identities_from_text(&text).unwrap();
    let admin = ids
        .iter()
        .next()
        .unwrap()
        .age_identity(&crypto::NoPassphrase)
        .unwrap()
        .unwrap();
    let root = t.roster().root;
    let open = |id: &NodeId, with: &dyn age::Identity| {
        let bytes = fs::read(
            t.env
                .repo
                .join(".sesto")
                .join(id.rel_path(sesto::format::node::FORMAT)),
        )
        .unwrap();
        crypto::decrypt(&bytes, &[with]).unwrap().to_vec()
    };
    let mut plain = open(&root, admin);
    let (mut id, mut key) = (root, None);
    for name in path.split('/').filter(|n| !n.is_empty()) {
        let body = node::decode_body(node::split(&plain).unwrap().body).unwrap();
        let e = body.child(name).unwrap().clone();
        let k = e.key.expose_secret().to_string();
        plain = open(&e.id, &k.parse::<age::x25519::Identity>().unwrap());
        id = e.id;
        key = Some(k);
    }
    (id, key, plain)
}

fn forge(
    t: &Team,
    id: &NodeId,
    body: &[u8],
    signer: &PrivateKey,
    to: &[&dyn age::Recipient],
) -> Vec<u8> {
    let message = node::node_signed_message(&t.roster().store, id, body);
    let signature = crypto::sign(signer, crypto::NODE_NAMESPACE, &message).unwrap();
    crypto::encrypt(&node::assemble(body, &signature), to).unwrap()
}

#[test]
fn attack_outsider_replaces_root_and_shared_folder_with_files_to_real_keys() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    let mallory = PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let alice_r = crypto::Recipient::parse(&pub_key(&t.alice))
        .unwrap()
        .to_age()
        .unwrap();
    let bob_r = crypto::Recipient::parse(&pub_key(&t.bob))
        .unwrap()
        .to_age()
        .unwrap();
    // The root, re-encrypted to alice with a body mallory signed.
    let (root, _, plain) = resolve(&t, "");
    let body = node::split(&plain).unwrap().body.to_vec();
    let original = fs::read(
        t.env
            .repo
            .join(".sesto")
            .join(root.rel_path(sesto::format::node::FORMAT)),
    )
    .unwrap();
    let forged = forge(&t, &root, &body, &mallory, &[alice_r.as_ref()]);
    fs::write(
        t.env
            .repo
            .join(".sesto")
            .join(root.rel_path(sesto::format::node::FORMAT)),
        forged,
    )
    .unwrap();
    let out = t.env.run(&["ls"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains(&root.to_string()) && out.stderr.contains("not a member"),
        "{}",
        out.stderr
    );
    fs::write(
        t.env
            .repo
            .join(".sesto")
            .join(root.rel_path(sesto::format::node::FORMAT)),
        original,
    )
    .unwrap();

    // The shared folder, to its own recipient and bob: bob rejects it.
    let (prod, key, plain) = resolve(&t, "prod");
    let own: age::x25519::Identity = key.unwrap().parse().unwrap();
    let body = node::split(&plain).unwrap().body.to_vec();
    let forged = forge(
        &t,
        &prod,
        &body,
        &mallory,
        &[&own.to_public(), bob_r.as_ref()],
    );
    fs::write(
        t.env
            .repo
            .join(".sesto")
            .join(prod.rel_path(sesto::format::node::FORMAT)),
        forged,
    )
    .unwrap();
    for who in [&t.alice, &t.bob] {
        let out = t.run_as(who, &["get", "prod/db/password"], None);
        out.assert_code(1);
        assert!(
            out.stderr.contains(&prod.to_string()) && out.stderr.contains("not a member"),
            "{}",
            out.stderr
        );
        assert_no_canary(&out);
    }
}

#[test]
fn attack_read_only_member_signs_a_node_with_their_own_key() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    let (id, key, plain) = resolve(&t, "prod/db/password");
    let mut body = node::decode_body(node::split(&plain).unwrap().body).unwrap();
    body.value = Some(node::Value::new(b"bob's value".to_vec()));
    body.version += 1;
    let bytes = node::encode_body(&body);
    let bob = PrivateKey::read_openssh_file(&t.bob).unwrap();
    let own: age::x25519::Identity = key.unwrap().parse().unwrap();
    let forged = forge(&t, &id, &bytes, &bob, &[&own.to_public()]);
    fs::write(
        t.env
            .repo
            .join(".sesto")
            .join(id.rel_path(sesto::format::node::FORMAT)),
        forged,
    )
    .unwrap();
    for who in [&t.alice, &t.bob] {
        let out = t.run_as(who, &["get", "prod/db/password"], None);
        out.assert_code(1);
        assert!(
            out.stderr.contains("signed by bob, who may not write it"),
            "{}",
            out.stderr
        );
        assert!(!out.stdout.contains("bob's value"));
    }
}

#[test]
fn attack_node_file_copied_over_another_id_is_refused() {
    let t = Team::new();
    let (a, _, _) = resolve(&t, "prod/db/password");
    let (b, _, _) = resolve(&t, "prod/api/token");
    let dir = t.env.repo.join(".sesto");
    fs::copy(
        dir.join(a.rel_path(sesto::format::node::FORMAT)),
        dir.join(b.rel_path(sesto::format::node::FORMAT)),
    )
    .unwrap();
    let out = t.env.run(&["get", "prod/api/token"]);
    out.assert_code(1);
    assert!(out.stderr.contains(&b.to_string()), "{}", out.stderr);
    assert_no_canary(&out);
}

#[test]
fn revoking_an_outer_grant_keeps_an_inner_one() {
    let t = Team::new();
    t.ok(&["grant", "bob", "prod"]);
    t.ok(&["grant", "bob", "prod/db"]);
    let out = t.ok(&["revoke", "bob", "prod"]);
    // Only what bob can no longer read is listed and rotated.
    assert!(out.stdout.contains("prod/api/token"), "{}", out.stdout);
    assert!(!out.stdout.contains("prod/db/password"), "{}", out.stdout);
    assert_eq!(t.bob(&["ls"]).stdout, "prod/\n");
    assert_eq!(t.bob(&["ls", "prod"]).stdout, "db/\n");
    let out = t.bob(&["get", "prod/db/password"]);
    assert_eq!(out.assert_success().stdout, PASSWORD);
    t.bob(&["get", "prod/api/token"]).assert_code(1);
    // A grant that is not there is an error that changes nothing.
    let head = t.head();
    let out = t.env.run(&["revoke", "bob", "staging"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("bob has no grant on staging"),
        "{}",
        out.stderr
    );
    assert_eq!(t.head(), head);
    // Removing bob takes the inner grant too.
    t.ok(&["member", "remove", "bob"]);
    assert!(t.roster().grants.is_empty());
    t.ok(&["fsck"]);
}

#[test]
fn verify_history_finds_a_node_rolled_back_to_an_older_signed_copy() {
    let t = Team::new();
    let (id, _, _) = resolve(&t, "prod/db/password");
    let file = format!(".sesto/{}", id.rel_path(sesto::format::node::FORMAT));
    t.env
        .run_stdin(&["set", "prod/db/password"], b"second")
        .assert_success();
    t.env
        .run_stdin(&["set", "prod/db/password"], b"third")
        .assert_success();
    t.ok(&["verify", "--history"]);
    // Someone who can push puts the first, validly signed file back.
    let old = t.env.git(&["log", "--format=%H", "--", &file]).stdout;
    let first = old.lines().last().unwrap().to_string();
    let mut cmd = t.env.command("git");
    cmd.args(["show", &format!("{first}:{file}")]);
    let bytes = cmd.output().unwrap().stdout;
    fs::write(t.env.repo.join(&file), bytes).unwrap();
    t.env.git(&["commit", "-qam", "innocent"]).assert_success();
    // This clone saw version 3, so a read refuses it (issue 10 case 6); a
    // fresh clone could not tell, but verify --history can.
    let read = t.env.run(&["get", "prod/db/password"]);
    read.assert_code(1);
    assert!(
        read.stderr
            .contains("went back from version 3 to version 1"),
        "{}",
        read.stderr
    );
    // Whoever did it by hand (a `git revert`) is told the way that works.
    assert!(
        read.stderr.contains("sesto restore PATH --rev REV"),
        "{}",
        read.stderr
    );
    let out = t.env.run(&["verify", "--history"]);
    out.assert_code(1);
    // Here the clone's own check speaks first; either way the node is named.
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(&id.to_string())
            && (said.contains("rolled back") || said.contains("went back")),
        "{said}"
    );
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn rotating_many_nodes_shows_progress_on_a_terminal_only() {
    require_tool("script");
    let t = Team::new();
    // 600 secrets, through the library in one transaction.
    let ids = sesto::identities_from_text(&fs::read_to_string(&t.alice).unwrap()).unwrap();
    let options = sesto::OpenOptions {
        start: Some(t.env.repo.clone()),
        trust: sesto::store::trust::TrustMode::Skip,
    };
    let store = sesto::Store::open(&options, ids).unwrap();
    let mut tx = store.transaction().unwrap();
    for i in 0..600 {
        tx.set(&format!("bulk/s{i:03}").parse().unwrap(), b"v")
            .unwrap();
    }
    tx.commit().unwrap();
    drop(store);
    t.add_admin("carol");
    t.add_admin("dave");
    // Without a terminal (as here): no progress, scripts see clean output.
    let out = t.ok(&["member", "remove", "carol"]);
    assert!(!out.stderr.contains("nodes"), "{}", out.stderr);
    // On a terminal: a count on stderr, the line cleared at the end.
    let mut cmd = t.env.command("script");
    let line = format!("{} member remove --force dave", env!("CARGO_BIN_EXE_sesto"));
    cmd.args(["-qec", &line, "/dev/null"]);
    let out = run_cmd(cmd);
    out.assert_success();
    assert!(
        out.stdout.contains("writing ") && out.stdout.contains("/6"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Removed dave"), "{}", out.stdout);
}

#[test]
fn reload_follows_grants_and_keeps_the_last_good_roster() {
    let t = Team::new();
    let ids = sesto::identities_from_text(&fs::read_to_string(&t.bob).unwrap()).unwrap();
    let options = sesto::OpenOptions {
        start: Some(t.env.repo.clone()),
        trust: sesto::store::trust::TrustMode::Skip,
    };
    let mut store = sesto::Store::open(&options, ids).unwrap();
    assert!(
        store.get("prod/db/password").is_err(),
        "bob has no grant yet"
    );

    t.ok(&["grant", "bob", "prod"]);
    store.reload().unwrap();
    assert_eq!(
        store.get("prod/db/password").unwrap().expose_value(),
        PASSWORD.as_bytes()
    );

    // A roster that does not parse (a merge half done, say): reload fails and
    // the store keeps reading with the roster it had.
    let roster = t.env.repo.join(".sesto/roster.yaml");
    let good = fs::read(&roster).unwrap();
    fs::write(&roster, b"members: [\n").unwrap();
    assert!(store.reload().is_err());
    assert_eq!(
        store.get("prod/api/token").unwrap().expose_value(),
        TOKEN.as_bytes()
    );
    fs::write(&roster, good).unwrap();

    t.ok(&["revoke", "bob", "prod"]);
    store.reload().unwrap();
    let err = store.get("prod/db/password").unwrap_err().to_string();
    assert!(err.contains("not granted"), "{err}");
}
