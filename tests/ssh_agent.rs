//! ssh-agent with the real tools: OpenSSH's `ssh-agent` on a socket of the
//! test's own, keys made by `ssh-keygen` and added with `ssh-add`. Every
//! sesto run here has no terminal (a new session, stdin null), as a CI job
//! or a service runs: nothing may prompt, and nothing may wait for one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{pub_key, require_tools, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv};

/// An `ssh-agent -D` on `<tmp>/agent.sock`, killed when dropped.
struct SshAgent {
    child: Child,
    sock: PathBuf,
}

impl SshAgent {
    fn start(env: &TestEnv) -> SshAgent {
        let sock = env.root.join("agent.sock");
        let mut cmd =
            env.command(common::tool_path("ssh-agent").expect("checked by require_agent_tools()"));
        cmd.arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("cannot start ssh-agent");
        let agent = SshAgent { child, sock };
        let start = Instant::now();
        while !agent.sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ssh-agent did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// `ssh-add KEY`; a passphrase is given by an SSH_ASKPASS script, with no
    /// terminal, as a desktop session would.
    fn add(&self, env: &TestEnv, key: &Path, passphrase: Option<&str>) {
        let mut cmd = env.command("ssh-add");
        cmd.env("SSH_AUTH_SOCK", &self.sock).arg(key);
        if let Some(p) = passphrase {
            let script = env.write_script("askpass", &format!("printf '%s\\n' '{p}'"));
            cmd.env("SSH_ASKPASS", script)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0");
            common::without_terminal(&mut cmd);
        }
        run_cmd(cmd).assert_success();
    }

    /// Stops the agent now (its socket stays, refusing connections).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn require_agent_tools() {
    require_tools(&["ssh-agent", "ssh-add", "ssh-keygen", "age-keygen"]);
}

/// How sesto runs: the environment's variables plus `vars`, with no terminal.
struct Run<'a> {
    env: &'a TestEnv,
    dir: Option<&'a Path>,
    vars: Vec<(&'static str, std::ffi::OsString)>,
}

impl Run<'_> {
    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut cmd = self.env.sesto(args);
        if let Some(d) = self.dir {
            cmd.current_dir(d);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        common::without_terminal(&mut cmd);
        let out = match input {
            Some(i) => run_cmd_stdin(cmd, i),
            None => run_cmd(cmd),
        };
        assert_ne!(out.code, 101, "sesto panicked:\n{}", out.stderr);
        out
    }

    #[track_caller]
    fn ok(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let out = self.run(args, input);
        out.assert_success();
        assert!(
            !out.stderr.contains("passphrase"),
            "asked about a passphrase:\n{}",
            out.stderr
        );
        out
    }
}

/// A member whose signing key is a passphrase-protected file held in
/// ssh-agent writes (secrets, folders, the roster) with no terminal; the
/// same writes without the agent fail for want of a terminal.
fn passphrase_key_in_agent_signs(kind: KeyKind) {
    require_agent_tools();
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", kind, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    env.run_stdin(&["set", "team/db"], b"db-value-1")
        .assert_success();
    // carol decrypts with an age key and signs with a passphrase-protected SSH key.
    let (carol_age, carol_recipient) = env.age_keygen("carol");
    let carol_ssh = env.ssh_keygen("carol_sign", kind, Some("carol-pass-9"));
    let signing = pub_key(&carol_ssh);
    env.run(&[
        "member",
        "add",
        "carol",
        "--key",
        &carol_recipient,
        "--signing-key",
        &signing,
        "--admin",
    ])
    .assert_success();
    let dave = env.ssh_keygen("dave", KeyKind::Ed25519, None);
    let ids = [
        "-i",
        carol_age.to_str().unwrap(),
        "-i",
        carol_ssh.to_str().unwrap(),
    ];
    let with = |args: &[&'static str]| -> Vec<String> {
        ids.iter().chain(args).map(|s| s.to_string()).collect()
    };

    let mut agent = SshAgent::start(&env);
    let no_agent = Run {
        env: &env,
        dir: None,
        vars: vec![],
    };
    let set = with(&["set", "team/api"]);
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let out = no_agent.run(&set, Some(b"api-value"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no terminal"), "{}", out.stderr);

    agent.add(&env, &carol_ssh, Some("carol-pass-9"));
    let carol = Run {
        env: &env,
        dir: None,
        vars: vec![("SSH_AUTH_SOCK", agent.sock.clone().into())],
    };
    carol.ok(&set, Some(b"api-value"));
    let mkdir = with(&["mkdir", "team/sub"]);
    carol.ok(&mkdir.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let dave_pub = format!("{}.pub", dave.display());
    let mut add = with(&["member", "add", "dave", "--key-file"]);
    add.push(dave_pub);
    carol.ok(&add.iter().map(String::as_str).collect::<Vec<_>>(), None);
    agent.stop();

    // What carol signed verifies for alice, who reads it.
    env.run(&["verify"]).assert_success();
    env.run(&["fsck"]).assert_success();
    assert_eq!(
        env.run(&["get", "team/api"]).assert_success().stdout,
        "api-value"
    );
    let members = env.run(&["member", "list"]);
    assert!(members.assert_success().stdout.contains("dave"));
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn a_passphrase_ed25519_key_in_ssh_agent_signs_writes_without_a_terminal() {
    passphrase_key_in_agent_signs(KeyKind::Ed25519);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn a_passphrase_rsa_key_in_ssh_agent_signs_writes_without_a_terminal() {
    passphrase_key_in_agent_signs(KeyKind::Rsa);
}

/// bob's only key is in ssh-agent: he enrols with `sesto ssh-agent-identity`,
/// an admin adds him with the command it prints, and with only the identity
/// line he reads, runs a command with secrets, writes, and syncs a conflict.
#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn an_agent_derived_member_reads_writes_and_syncs_without_a_key_file() {
    require_agent_tools();
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    env.run_stdin(&["set", "shared/db-password"], b"db-value-1")
        .assert_success();
    let remote = env.publish("remote.git");

    // bob's key goes into the agent, then its files are deleted.
    let mut agent = SshAgent::start(&env);
    let bob_key = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    agent.add(&env, &bob_key, None);
    let bob_pub = pub_key(&bob_key);
    std::fs::remove_file(&bob_key).unwrap();
    std::fs::remove_file(format!("{}.pub", bob_key.display())).unwrap();

    let bob_home = env.root.join("bob-home");
    let bob_config = bob_home.join(".config");
    std::fs::create_dir_all(bob_config.join("sesto")).unwrap();
    let bob_clone = env.root.join("bob-clone");
    let sock: std::ffi::OsString = agent.sock.clone().into();
    let bob = Run {
        env: &env,
        dir: Some(&bob_clone),
        vars: vec![
            ("HOME", bob_home.clone().into()),
            ("XDG_CONFIG_HOME", bob_config.clone().into()),
            ("XDG_STATE_HOME", env.root.join("bob-state").into()),
            ("SSH_AUTH_SOCK", sock.clone()),
            ("PATH", common::path_with_sesto().into()),
        ],
    };

    // Enrolment: the identity line on stdout, the admin's command on stderr.
    let enrol = Run {
        env: &env,
        dir: Some(&env.root),
        vars: bob.vars.clone(),
    };
    let out = enrol.ok(&["ssh-agent-identity"], None);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("SESTO-SSH-AGENT-1 age1"))
        .unwrap_or_else(|| panic!("no identity line:\n{}", out.stdout))
        .to_string();
    let json = enrol.ok(&["ssh-agent-identity", "--json"], None).stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let recipient = v["recipient"].as_str().unwrap().to_string();
    assert_eq!(v["identity_line"].as_str(), Some(line.as_str()));
    assert!(bob_pub.starts_with(v["ssh_key"].as_str().unwrap()));
    assert!(v["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    let signing = v["ssh_key"].as_str().unwrap().to_string();
    let command = format!("sesto member add NAME --key {recipient} --signing-key \"{signing}\"");
    assert!(out.stderr.contains(&command), "{}", out.stderr);
    let identity = bob_config.join("sesto/identity");
    std::fs::write(&identity, &out.stdout).unwrap();
    let mut perms = std::fs::metadata(&identity).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&identity, perms).unwrap();

    // The admin runs what bob sent, and grants him the folder.
    env.run(&[
        "member",
        "add",
        "bob",
        "--key",
        &recipient,
        "--signing-key",
        &signing,
    ])
    .assert_success();
    env.run(&["grant", "bob", "shared", "--write"])
        .assert_success();
    env.git(&["push", "--quiet"]).assert_success();
    let mut clone = env.command("git");
    clone
        .current_dir(&env.root)
        .args(["clone", "--quiet", remote.to_str().unwrap()])
        .arg(&bob_clone);
    run_cmd(clone).assert_success();
    bob.ok(&["setup-git"], None);

    // bob reads, runs a command with the secret, and writes: signed by the agent.
    assert_eq!(
        bob.ok(&["get", "shared/db-password"], None).stdout,
        "db-value-1"
    );
    let env_out = bob.ok(&["exec", "shared", "--", "env"], None).stdout;
    assert!(env_out.contains("DB_PASSWORD=db-value-1"), "{env_out}");
    bob.ok(&["set", "shared/api-token"], Some(b"token-from-bob"));
    bob.ok(&["whoami"], None);
    bob.ok(&["verify"], None);
    let mut push = env.command("git");
    push.current_dir(&bob_clone).args(["push", "--quiet"]);
    run_cmd(push).assert_success();

    // A conflict: alice and bob change one secret; bob's sync settles it.
    env.git(&["pull", "--quiet", "--no-rebase"])
        .assert_success();
    env.run_stdin(&["set", "shared/db-password"], b"alice-2")
        .assert_success();
    env.git(&["push", "--quiet"]).assert_success();
    bob.ok(&["set", "shared/db-password"], Some(b"bob-2"));
    bob.ok(&["sync"], None);
    bob.ok(&["fsck"], None);
    bob.ok(&["verify"], None);
    let after = bob.ok(&["get", "shared/db-password"], None).stdout;
    assert!(after == "alice-2" || after == "bob-2", "{after}");
    let all = bob.ok(&["find", ""], None).stdout;
    assert!(all.contains("api-token"), "{all}");

    // Alice reads what bob signed.
    env.git(&["pull", "--quiet", "--no-rebase"])
        .assert_success();
    env.run(&["verify"]).assert_success();
    assert_eq!(
        env.run(&["get", "shared/api-token"])
            .assert_success()
            .stdout,
        "token-from-bob"
    );

    // With the agent stopped, or SSH_AUTH_SOCK unset, bob's identity fails
    // clearly, at once, naming what is missing.
    agent.stop();
    let out = bob.run(&["get", "shared/db-password"], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("ssh-agent") && out.stderr.contains("SSH_AUTH_SOCK"),
        "{}",
        out.stderr
    );
    let unset = Run {
        env: &env,
        dir: Some(&bob_clone),
        vars: bob
            .vars
            .iter()
            .filter(|(k, _)| *k != "SSH_AUTH_SOCK")
            .cloned()
            .collect(),
    };
    let out = unset.run(&["get", "shared/db-password"], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("SSH_AUTH_SOCK is not set"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("db-value") && !out.stderr.contains("bob-2"));
}

/// `sesto ssh-agent-identity` with no agent says so; with several keys it
/// asks which; an ECDSA key is refused.
#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn enrolment_errors_name_the_fix() {
    require_agent_tools();
    let env = TestEnv::new();
    let none = Run {
        env: &env,
        dir: None,
        vars: vec![],
    };
    let out = none.run(&["ssh-agent-identity"], None);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("SSH_AUTH_SOCK is not set"),
        "{}",
        out.stderr
    );

    let agent = SshAgent::start(&env);
    let run = Run {
        env: &env,
        dir: None,
        vars: vec![("SSH_AUTH_SOCK", agent.sock.clone().into())],
    };
    let out = run.run(&["ssh-agent-identity"], None);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no Ed25519 or RSA key"),
        "{}",
        out.stderr
    );
    for name in ["k1", "k2"] {
        let k = env.ssh_keygen(name, KeyKind::Ed25519, None);
        agent.add(&env, &k, None);
    }
    let out = run.run(&["ssh-agent-identity"], None);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--key"), "{}", out.stderr);
    let k1 = pub_key(&env.home.join(".ssh/k1"));
    let out = run.ok(&["ssh-agent-identity", "--key", &k1], None);
    assert!(out.stdout.contains("SESTO-SSH-AGENT-1 age1"));
}
