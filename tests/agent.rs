//! Unlock once (issue 12): `sesto unlock` hands passphrase-protected keys to
//! the sesto agent, after which commands with no terminal decrypt and sign
//! through it; `sesto lock` and the idle time make it forget them; another
//! user is refused; a `sync` whose merges run the driver ten times asks once;
//! passphrases get three tries on a terminal and come from `SSH_ASKPASS`
//! where there is a display but no terminal. Keys are made by `ssh-keygen`,
//! prompts are counted through a real askpass program or a pseudo-terminal.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    require_tool, run_cmd, run_cmd_stdin, snapshot_text, without_terminal, KeyKind, Output, TestEnv,
};

const PASSPHRASE: &str = "correct horse";

/// A store made by alice with a passphrase-protected `~/.ssh/id_ed25519`,
/// and an askpass program that types the passphrase and counts its runs.
struct Setup {
    env: TestEnv,
    askpass: PathBuf,
    count: PathBuf,
}

fn setup() -> Setup {
    require_tool("ssh-keygen");
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, Some(PASSPHRASE));
    env.init_repo();
    let count = env.root.join("askpass-count");
    let askpass = env.write_script(
        "askpass",
        &format!(
            "echo \"$1\" >> '{}'\nprintf '%s\\n' '{PASSPHRASE}'",
            count.display()
        ),
    );
    let s = Setup {
        env,
        askpass,
        count,
    };
    s.asked(&["init", "--name", "alice"], b"").assert_success();
    s.asked(&["set", "prod/db"], b"first").assert_success();
    s
}

impl Setup {
    /// How many times the askpass program was run.
    fn prompts(&self) -> usize {
        std::fs::read_to_string(&self.count)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// sesto with no terminal and the passphrase given by askpass (forced).
    fn asked(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.env.sesto(args);
        cmd.env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force");
        without_terminal(&mut cmd);
        run_cmd_stdin(cmd, input)
    }

    /// sesto with no terminal and no way to ask for a passphrase.
    fn bare(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.env.sesto(args);
        without_terminal(&mut cmd);
        run_cmd_stdin(cmd, input)
    }

    fn socket(&self) -> PathBuf {
        self.env.xdg_runtime.join("sesto/agent.sock")
    }
}

/// Waits up to five seconds for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn unlock_once_then_commands_without_a_terminal_decrypt_and_sign_until_lock() {
    let s = setup();
    // Without the agent, no terminal means no passphrase: an error at once.
    let out = s.bare(&["get", "prod/db"], b"");
    out.assert_code(1);
    assert!(out.stderr.contains("sesto unlock"), "{}", out.stderr);

    let before = s.prompts();
    let out = s.asked(&["unlock"], b"");
    out.assert_success();
    assert_eq!(s.prompts(), before + 1, "unlock asks once");
    assert!(
        out.stdout.contains("forgets keys unused for 15m"),
        "{}",
        out.stdout
    );
    assert!(s.socket().exists());
    // Unlocking again asks nothing: the agent already holds the key.
    let out = s.asked(&["unlock"], b"");
    out.assert_success();
    assert_eq!(s.prompts(), before + 1);
    assert!(out.stdout.contains("Already unlocked"), "{}", out.stdout);

    // Decrypt, sign (a new node and the folders above it), run a command.
    let out = s.bare(&["get", "prod/db"], b"");
    out.assert_success();
    assert_eq!(out.stdout, "first");
    s.bare(&["set", "prod/new/api"], b"second").assert_success();
    let out = s.bare(
        &["exec", "prod/new", "--", "sh", "-c", "printf %s \"$API\""],
        b"",
    );
    out.assert_success();
    assert_eq!(out.stdout, "second");
    // A roster change, signed through the agent.
    let bob = s.env.ssh_keygen("bob", KeyKind::Ed25519, None);
    let mut bob_pub = bob.clone().into_os_string();
    bob_pub.push(".pub");
    s.bare(
        &[
            "member",
            "add",
            "bob",
            "--key-file",
            bob_pub.to_str().unwrap(),
        ],
        b"",
    )
    .assert_success();
    s.bare(&["fsck"], b"").assert_success();
    s.bare(&["verify"], b"").assert_success();
    assert_eq!(s.prompts(), before + 1, "nothing asked after unlock");

    let out = s.bare(&["lock"], b"");
    out.assert_success();
    assert!(out.stdout.contains("forgot 1 key"), "{}", out.stdout);
    let out = s.bare(&["get", "prod/db"], b"");
    out.assert_code(1);
    assert!(out.stderr.contains("passphrase"), "{}", out.stderr);
    // The agent `unlock` started exits once it holds nothing.
    eventually("the agent's socket is removed", || !s.socket().exists());
    let out = s.bare(&["lock"], b"");
    out.assert_success();
    assert!(
        out.stdout.contains("No sesto agent is running"),
        "{}",
        out.stdout
    );
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn keys_unused_for_the_idle_time_are_forgotten() {
    let s = setup();
    s.asked(&["unlock", "--for", "2s"], b"").assert_success();
    s.bare(&["get", "prod/db"], b"").assert_success();
    // Each use restarts the clock; two seconds without one ends it.
    std::thread::sleep(Duration::from_millis(1200));
    s.bare(&["get", "prod/db"], b"").assert_success();
    std::thread::sleep(Duration::from_millis(3000));
    let out = s.bare(&["get", "prod/db"], b"");
    out.assert_code(1);
    assert!(out.stderr.contains("passphrase"), "{}", out.stderr);
    s.bare(&["lock"], b"").assert_success();
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_python3, ignore = "needs python3: apt-get install python3")]
fn the_agent_serves_no_other_user() {
    let s = setup();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipping: switching to another user needs root");
        return;
    }
    require_tool("python3");
    s.asked(&["unlock"], b"").assert_success();
    // Open the way to the socket for everyone, as a careless chmod would:
    // the agent still checks who connects.
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        (s.env.root.clone(), 0o755),
        (s.env.xdg_runtime.clone(), 0o755),
        (s.env.xdg_runtime.join("sesto"), 0o755),
        (s.socket(), 0o777),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // A hello and a lock from uid 65534, in the agent's wire format.
    let client = r#"
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for req in ({"op": "hello"}, {"op": "lock"}):
    body = json.dumps(req).encode()
    try:
        s.sendall(struct.pack(">I", len(body)) + body)
        n = struct.unpack(">I", s.recv(4))[0]
        print(s.recv(n).decode())
    except Exception as e:
        print("closed:", type(e).__name__)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", client]).arg(s.socket());
    // SAFETY: setgid/setuid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_cmd(cmd);
    assert!(
        out.stdout.contains("uid 65534 may not use this agent"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("\"keys\""), "{}", out.stdout);
    // The owner's key is still held: the other user's lock did nothing.
    s.bare(&["get", "prod/db"], b"").assert_success();
    s.bare(&["lock"], b"").assert_success();
}

/// Two clones of one store; ten secrets changed on both sides: git runs the
/// merge driver ten times during bob's... alice's second clone's `sync`.
#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn a_sync_with_ten_conflicting_nodes_asks_once() {
    let s = setup();
    let env = &s.env;
    for i in 0..10 {
        s.asked(
            &["set", &format!("prod/s{i}")],
            format!("base {i}").as_bytes(),
        )
        .assert_success();
    }
    env.publish("remote.git");
    let other = env.root.join("other");
    let mut clone = env.command("git");
    clone
        .arg("clone")
        .arg("--quiet")
        .arg(env.root.join("remote.git"))
        .arg(&other);
    run_cmd(clone).assert_success();
    let at = |dir: &Path, args: &[&str], input: &[u8], askpass: bool| {
        let mut cmd = env.sesto(args);
        cmd.current_dir(dir);
        if askpass {
            cmd.env("SSH_ASKPASS", &s.askpass)
                .env("SSH_ASKPASS_REQUIRE", "force");
        }
        without_terminal(&mut cmd);
        run_cmd_stdin(cmd, input)
    };
    // The other clone changes all ten and pushes.
    for i in 0..10 {
        at(
            &other,
            &["set", &format!("prod/s{i}")],
            format!("theirs {i}").as_bytes(),
            true,
        )
        .assert_success();
    }
    at(&other, &["sync"], b"", true).assert_success();
    // This clone changes the same ten, then syncs: ten nodes to merge.
    for i in 0..10 {
        s.asked(
            &["set", &format!("prod/s{i}")],
            format!("ours {i}").as_bytes(),
        )
        .assert_success();
    }
    let before = s.prompts();
    let out = s.asked(&["sync"], b"");
    out.assert_success();
    assert_eq!(
        s.prompts(),
        before + 1,
        "one sync, one passphrase:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout.matches("kept both values").count(),
        10,
        "{}",
        out.stdout
    );
    for i in 0..10 {
        let out = s.asked(&["get", &format!("prod/s{i}")], b"");
        assert_eq!(out.stdout, format!("ours {i}"));
        let out = s.asked(&["get", &format!("prod/s{i} (conflict 1)")], b"");
        assert_eq!(out.stdout, format!("theirs {i}"));
    }
    // The agent of that sync is gone with it.
    let left: Vec<_> = std::fs::read_dir(&env.xdg_runtime)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sesto-agent-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn askpass_is_used_with_a_display_and_no_terminal_and_nothing_hangs_without() {
    let s = setup();
    let before = s.prompts();
    let mut cmd = s.env.sesto(&["get", "prod/db"]);
    cmd.env("SSH_ASKPASS", &s.askpass).env("DISPLAY", ":0");
    without_terminal(&mut cmd);
    let out = run_cmd(cmd);
    out.assert_success();
    assert_eq!(out.stdout, "first");
    assert_eq!(s.prompts(), before + 1);
    // An askpass that fails is a cancelled prompt, not three.
    let cancel = s.env.write_script("cancel", "exit 1");
    let mut cmd = s.env.sesto(&["get", "prod/db"]);
    cmd.env("SSH_ASKPASS", &cancel).env("DISPLAY", ":0");
    without_terminal(&mut cmd);
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert!(out.stderr.contains("cancelled"), "{}", out.stderr);
    // No display: askpass is not run, and the error comes at once.
    let start = Instant::now();
    let mut cmd = s.env.sesto(&["get", "prod/db"]);
    cmd.env("SSH_ASKPASS", &s.askpass);
    without_terminal(&mut cmd);
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert_eq!(s.prompts(), before + 1);
    assert!(start.elapsed() < Duration::from_secs(10));
    // A wrong passphrase from askpass is asked three times, then refused.
    let wrong = s.env.write_script(
        "wrong",
        &format!("echo x >> '{}'\necho nope", s.count.display()),
    );
    let mut cmd = s.env.sesto(&["get", "prod/db"]);
    cmd.env("SSH_ASKPASS", &wrong).env("DISPLAY", ":0");
    without_terminal(&mut cmd);
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert!(
        out.stderr.contains("wrong passphrase (3 tries)"),
        "{}",
        out.stderr
    );
    assert_eq!(s.prompts(), before + 4);
}

/// On a terminal (a pseudo-terminal from util-linux `script`): two wrong
/// passphrases, then the right one, unlock; three wrong ones do not.
#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn a_terminal_gets_three_tries() {
    let s = setup();
    require_tool("script");
    let sesto = env!("CARGO_BIN_EXE_sesto");
    let on_terminal = |typed: &str| {
        let mut cmd = s.env.command("script");
        cmd.args(["-qec", &format!("'{sesto}' unlock --for 1m"), "/dev/null"]);
        run_cmd_stdin(cmd, typed.as_bytes())
    };
    let out = on_terminal("one\ntwo\nthree\n");
    out.assert_code(1);
    assert_eq!(
        out.stdout.matches("Enter passphrase for").count(),
        3,
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("Wrong passphrase; try again.").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("wrong passphrase (3 tries)"),
        "{}",
        out.stdout
    );
    assert!(!s.socket().exists(), "no agent for a failed unlock");

    let out = on_terminal(&format!("one\ntwo\n{PASSPHRASE}\n"));
    out.assert_success();
    assert_eq!(
        out.stdout.matches("Enter passphrase for").count(),
        3,
        "{}",
        out.stdout
    );
    s.bare(&["get", "prod/db"], b"").assert_success();
    s.bare(&["lock"], b"").assert_success();
}

/// `sesto agent` in the foreground, as a service manager runs it: `unlock`
/// uses it rather than starting another, and SIGTERM ends it with its keys
/// wiped and its socket removed.
#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn a_foreground_agent_serves_unlock_and_stops_cleanly_on_sigterm() {
    let s = setup();
    let mut cmd = s.env.sesto(&["agent", "--for", "1h"]);
    cmd.stderr(std::process::Stdio::piped());
    let mut agent = cmd.spawn().unwrap();
    eventually("the agent listens", || s.socket().exists());
    let out = s.asked(&["unlock"], b"");
    out.assert_success();
    s.bare(&["get", "prod/db"], b"").assert_success();
    // SAFETY: kill on the child's pid.
    unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!s.socket().exists(), "the socket is removed");
    let out = s.bare(&["get", "prod/db"], b"");
    out.assert_code(1);
}

/// A member whose age key decrypts and whose passphrase-protected SSH key
/// only signs: reads never ask for the passphrase (no file is encrypted to
/// the signing key); a write asks once.
#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn a_signing_only_passphrase_key_is_asked_for_only_to_write() {
    let s = setup();
    let env = &s.env;
    let age = age::x25519::Identity::generate();
    let age_file = env.root.join("carol.age");
    std::fs::write(
        &age_file,
        age::secrecy::ExposeSecret::expose_secret(&age.to_string()),
    )
    .unwrap();
    let signing = env.ssh_keygen("carol_sign", KeyKind::Ed25519, Some(PASSPHRASE));
    let signing_pub = common::pub_key(&signing);
    s.asked(
        &[
            "member",
            "add",
            "carol",
            "--key",
            &age.to_public().to_string(),
            "--signing-key",
            &signing_pub,
        ],
        b"",
    )
    .assert_success();
    s.asked(&["grant", "carol", "prod", "--write"], b"")
        .assert_success();
    let carol = |args: &[&str], input: &[u8]| {
        let (a, k) = (
            age_file.display().to_string(),
            signing.display().to_string(),
        );
        s.asked(
            &[&["-i", a.as_str(), "-i", k.as_str()][..], args].concat(),
            input,
        )
    };
    let before = s.prompts();
    let out = carol(&["get", "prod/db"], b"");
    out.assert_success();
    assert_eq!(out.stdout, "first");
    carol(&["ls", "prod"], b"").assert_success();
    assert_eq!(s.prompts(), before, "reading asks for no passphrase");
    carol(&["set", "prod/db"], b"second").assert_success();
    assert_eq!(s.prompts(), before + 1, "writing asks once");
    assert_eq!(carol(&["get", "prod/db"], b"").stdout, "second");
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn the_pre_push_hook_asks_for_the_passphrase_once_or_says_to_unlock() {
    // The hook reads the nodes a push changes: with no terminal and no
    // askpass the push is refused saying what to do, through askpass it is
    // asked once, and once unlocked it asks nothing.
    let s = setup();
    s.asked(&["hooks", "install"], b"").assert_success();
    s.asked(&["set", "prod/db"], b"second").assert_success();
    let bare = s.env.bare_repo("remote.git");
    let bare = bare.to_str().expect("a UTF-8 temp path");
    let push = |askpass: bool| {
        let mut cmd = s.env.command("git");
        cmd.args(["push", "--quiet", bare, "HEAD:refs/heads/main"]);
        if askpass {
            cmd.env("SSH_ASKPASS", &s.askpass)
                .env("SSH_ASKPASS_REQUIRE", "force");
        }
        without_terminal(&mut cmd);
        run_cmd(cmd)
    };
    let refused = push(false);
    assert!(!refused.success(), "pushed: {}", snapshot_text(&refused));
    let said = snapshot_text(&refused);
    assert!(said.contains("sesto unlock"), "{said}");
    assert!(said.contains("could not judge"), "{said}");
    assert_eq!(
        s.env.git(&["ls-remote", bare]).stdout.trim(),
        "",
        "the remote got the push"
    );

    let before = s.prompts();
    push(true).assert_success();
    assert_eq!(s.prompts(), before + 1, "the hook asks once");

    s.asked(&["unlock"], b"").assert_success();
    s.bare(&["set", "prod/db"], b"third").assert_success();
    let before = s.prompts();
    push(false).assert_success();
    assert_eq!(s.prompts(), before, "unlocked, the hook asks nothing");
    s.bare(&["lock"], b"").assert_success();
}
