//! The clipboard and terminal habits of `get`, `otp` and `generate`, with real
//! tools: an X server (`Xvfb`) read back with `xclip`, a headless Wayland
//! compositor (`sway`) read back with `wl-paste`, and pseudo-terminals made by
//! util-linux `script`.
//!
//! Every X11 test starts its own Xvfb on a free display number and kills it when
//! done; the Wayland test does the same with sway. Without the tools the tests are
//! skipped with a notice, and fail under `CI=true`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{require_tool, require_tools, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv};

/// A dummy value, distinctive enough to search every output for.
const VALUE: &str = "clip-test-value-7Qm2";

/// The RFC 6238 test secret ("12345678901234567890" in base32): a published test
/// vector, not a secret.
const RFC6238_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// A store (admin alice) holding VALUE at prod/db/password.
fn store() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    set(&env, "prod/db/password", VALUE.as_bytes());
    env
}

#[track_caller]
fn set(env: &TestEnv, path: &str, value: &[u8]) {
    env.run_stdin(&["set", path], value).assert_success();
}

/// Asserts that nothing sesto printed holds `value`.
#[track_caller]
fn assert_not_shown(out: &Output, value: &str) {
    assert!(
        !out.stdout.contains(value) && !out.stderr.contains(value),
        "the value was printed:\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

/// Polls `read` until it gives `want`, for at most `limit`; returns how long it took.
fn wait_for(limit: Duration, want: &str, mut read: impl FnMut() -> String) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if read() == want {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

// --- X11 ---------------------------------------------------------------------------

/// A private X server, killed when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(0);

impl Xvfb {
    /// Starts Xvfb on the first free display number from a range this process
    /// picks by its pid, so that test binaries running at once rarely meet.
    fn start() -> Xvfb {
        let base = 100 + (std::process::id() % 400) * 10;
        for _ in 0..50 {
            let n = base + NEXT_DISPLAY.fetch_add(1, Ordering::Relaxed);
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if Path::new(&format!("/tmp/.X{n}-lock")).exists() || socket.exists() {
                continue;
            }
            let mut child = Command::new(common::tool_path("Xvfb").expect("Xvfb"))
                .arg(format!(":{n}"))
                .args(["-screen", "0", "640x480x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("failed to start Xvfb");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().expect("wait for Xvfb").is_some() {
                    break; // lost a race for the number; try the next one
                }
                if socket.exists() {
                    return Xvfb {
                        child,
                        display: format!(":{n}"),
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start Xvfb on any display number from {base}");
    }

    /// `sesto args` on this display.
    fn sesto(&self, env: &TestEnv, args: &[&str]) -> Command {
        let mut cmd = env.sesto(args);
        cmd.env("DISPLAY", &self.display);
        cmd
    }

    /// What the CLIPBOARD selection holds, read with `xclip -o` ("" when nothing).
    fn clipboard(&self) -> String {
        let out = Command::new("xclip")
            .args(["-selection", "clipboard", "-o"])
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .output()
            .expect("failed to run xclip -o");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies `text` as a user would, with xclip. Its output goes nowhere: the xclip
    /// that keeps serving the selection would hold a pipe open.
    fn user_copies(&self, text: &str) {
        let mut child = Command::new("xclip")
            .args(["-selection", "clipboard", "-in"])
            .env("DISPLAY", &self.display)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to run xclip");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "xclip -in failed");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // The clearing helpers this test's sesto left waiting: a later Xvfb on the
        // same number must not meet them.
        for (pid, _, _) in clear_helpers(&self.display) {
            // SAFETY: kill of a process this test started (through sesto).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn x11() -> Xvfb {
    require_tools(&["Xvfb", "xclip"]);
    Xvfb::start()
}

#[test]
#[cfg_attr(missing_xvfb, ignore = "needs Xvfb: apt-get install xvfb")]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn get_clip_copies_the_value_and_prints_nothing_of_it() {
    let x = x11();
    let env = store();
    let mut cmd = x.sesto(&env, &["get", "-c", "prod/db/password"]);
    cmd.env("SESTO_CLIP_TIME", "30");
    let out = run_cmd(cmd);
    out.assert_success();
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "Copied prod/db/password to the clipboard; clearing in 30 s.\n"
    );
    assert_eq!(x.clipboard(), VALUE);

    // The helper that clears later: its own session, neither the value nor its
    // digest on its command line or in its environment.
    let helpers = clear_helpers(&x.display);
    assert_eq!(helpers.len(), 1, "one clip-clear helper");
    let (pid, cmdline, environ) = &helpers[0];
    let digest = sha256_hex(VALUE.as_bytes());
    for text in [cmdline, environ] {
        assert!(!text.contains(VALUE) && !text.contains(&digest), "{text}");
    }
    // SAFETY: getsid only reads the session id of a process.
    let (mine, theirs) = unsafe { (libc::getsid(0), libc::getsid(*pid as libc::pid_t)) };
    assert_ne!(mine, theirs, "the helper runs in a session of its own");
    // SAFETY: kill of a process this test started (through sesto).
    unsafe { libc::kill(*pid as libc::pid_t, libc::SIGTERM) };

    // A field of a mapping, and a value stored with a trailing newline.
    set(
        &env,
        "prod/db/login",
        b"user: app\npassword: field-value-9\n",
    );
    set(&env, "prod/api/token", b"token-value-4\n");
    let out = run_cmd(x.sesto(&env, &["get", "--clip", "prod/db/login", "password"]));
    out.assert_success();
    assert_not_shown(&out, "field-value-9");
    assert!(out
        .stderr
        .starts_with("Copied prod/db/login (field password) to the clipboard"));
    assert_eq!(x.clipboard(), "field-value-9");
    let out = run_cmd(x.sesto(&env, &["get", "-c", "prod/api/token"]));
    out.assert_success();
    assert_eq!(
        x.clipboard(),
        "token-value-4",
        "one trailing newline is left out"
    );
}

#[test]
#[cfg_attr(missing_xvfb, ignore = "needs Xvfb: apt-get install xvfb")]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn clipboard_is_cleared_after_sesto_clip_time() {
    let x = x11();
    let env = store();
    let mut cmd = x.sesto(&env, &["get", "-c", "prod/db/password"]);
    cmd.env("SESTO_CLIP_TIME", "1");
    let start = Instant::now();
    let out = run_cmd(cmd);
    out.assert_success();
    assert_not_shown(&out, VALUE);
    let returned = start.elapsed();
    let cleared = wait_for(Duration::from_secs(10), "", || x.clipboard());
    let took = start.elapsed();
    // At least the second asked for, and soon after it: the bound is loose
    // because a loaded CI machine may take seconds to start processes.
    let after_return = cleared.expect("the clipboard still holds the value");
    assert!(
        took >= Duration::from_millis(900) && after_return < Duration::from_secs(8),
        "cleared {took:?} after sesto started ({returned:?} to return), expected about 1 s"
    );
}

#[test]
#[cfg_attr(missing_xvfb, ignore = "needs Xvfb: apt-get install xvfb")]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn clipboard_copied_over_by_the_user_is_not_cleared() {
    let x = x11();
    let env = store();
    let mut cmd = x.sesto(&env, &["get", "-c", "prod/db/password"]);
    cmd.env("SESTO_CLIP_TIME", "2");
    run_cmd(cmd).assert_success();
    x.user_copies("something the user copied");
    // Until the helper has looked and exited, then a little more.
    let start = Instant::now();
    while !clear_helpers(&x.display).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the helper never exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(x.clipboard(), "something the user copied");
}

#[test]
#[cfg_attr(missing_xvfb, ignore = "needs Xvfb: apt-get install xvfb")]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn otp_clip_copies_the_current_code() {
    let x = x11();
    let env = store();
    set(&env, "otp/github", RFC6238_SECRET.as_bytes());
    let printed = env.run(&["otp", "otp/github"]);
    printed.assert_success();
    let code = printed.stdout.trim_end();
    let out = run_cmd(x.sesto(&env, &["otp", "-c", "otp/github"]));
    out.assert_success();
    assert_eq!(out.stdout, "");
    assert_not_shown(&out, code);
    assert!(out
        .stderr
        .starts_with("Copied the code of otp/github (valid for "));
    let copied = x.clipboard();
    assert_eq!(copied, code);
    assert!(copied.len() == 6 && copied.bytes().all(|b| b.is_ascii_digit()));
}

#[test]
#[cfg_attr(missing_xvfb, ignore = "needs Xvfb: apt-get install xvfb")]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn generate_clip_copies_the_new_value() {
    let x = x11();
    let env = store();
    let out = run_cmd(x.sesto(&env, &["generate", "--clip", "new/pw"]));
    out.assert_success();
    let stored = env.run(&["get", "new/pw"]);
    stored.assert_success();
    assert_eq!(stored.stdout.len(), 32);
    assert_not_shown(&out, &stored.stdout);
    assert_eq!(out.stdout, "Stored a 32-character password at new/pw.\n");
    assert!(out.stderr.starts_with("Copied new/pw to the clipboard"));
    assert_eq!(x.clipboard(), stored.stdout);
}

#[test]
#[cfg_attr(missing_xclip, ignore = "needs xclip: apt-get install xclip")]
fn without_a_clipboard_nothing_is_copied_printed_or_stored() {
    require_tool("xclip");
    let env = store();
    let check = |cmd: Command, want: &str| {
        let out = run_cmd(cmd);
        out.assert_code(1);
        assert_eq!(out.stdout, "");
        assert_not_shown(&out, VALUE);
        assert!(out.stderr.contains(want), "{}", out.stderr);
    };
    // No display at all.
    check(
        env.sesto(&["get", "-c", "prod/db/password"]),
        "neither WAYLAND_DISPLAY nor DISPLAY is set",
    );
    // A display, but none of the tools (PATH without them).
    let empty = env.root.join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let mut cmd = env.sesto(&["get", "-c", "prod/db/password"]);
    cmd.env("DISPLAY", ":9999").env("PATH", &empty);
    check(cmd, "`apt install xclip`");
    let mut cmd = env.sesto(&["otp", "-c", "prod/db/password"]);
    cmd.env("WAYLAND_DISPLAY", "wayland-9").env("PATH", &empty);
    check(cmd, "`apt install wl-clipboard`");
    // xclip there, but no X server answering: xclip's own error, and no helper
    // left waiting to clear.
    let mut cmd = env.sesto(&["get", "-c", "prod/db/password"]);
    cmd.env("DISPLAY", ":9999");
    check(cmd, "xclip failed");
    assert!(clear_helpers(":9999").is_empty());
    // A bad SESTO_CLIP_TIME, before anything else.
    for bad in ["0", "soon", "-5", "86401"] {
        let mut cmd = env.sesto(&["get", "-c", "prod/db/password"]);
        cmd.env("DISPLAY", ":9999").env("SESTO_CLIP_TIME", bad);
        check(cmd, "is not a whole number of seconds from 1 to 86400");
    }
    // generate --clip stores nothing when it cannot copy.
    check(
        env.sesto(&["generate", "--clip", "never/stored"]),
        "neither WAYLAND_DISPLAY nor DISPLAY",
    );
    env.run(&["get", "never/stored"]).assert_code(1);
}

/// The running `sesto clip-clear` helpers of this display: pid, command line and
/// environment (NULs as spaces).
fn clear_helpers(display: &str) -> Vec<(u32, String, String)> {
    let want_env = format!("DISPLAY={display}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let read = |name: &str| std::fs::read(entry.path().join(name)).unwrap_or_default();
        let cmdline = read("cmdline");
        let environ = read("environ");
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        let environ = String::from_utf8_lossy(&environ).into_owned();
        if cmdline.starts_with(env!("CARGO_BIN_EXE_sesto"))
            && cmdline.contains("\0clip-clear\0")
            && environ.contains(&want_env)
        {
            found.push((pid, cmdline.replace('\0', " "), environ.replace('\0', " ")));
        }
    }
    found
}

fn sha256_hex(value: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// --- Wayland -----------------------------------------------------------------------

/// A headless sway, killed when dropped. sway refuses to run as root, so as root it
/// runs as `nobody` (through util-linux `setpriv`) in a runtime directory given to
/// that user; its socket is named by absolute path in WAYLAND_DISPLAY.
struct Sway {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sway {
    fn start() -> Sway {
        let dir = tempfile::Builder::new()
            .prefix("sesto-sway-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("config"), "").unwrap();
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let mut cmd = if root {
            let nobody = 65534;
            std::os::unix::fs::chown(dir.path(), Some(nobody), Some(nobody)).unwrap();
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ]);
            cmd.arg(common::tool_path("sway").unwrap());
            cmd
        } else {
            Command::new(common::tool_path("sway").unwrap())
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        cmd.arg("-c")
            .arg(dir.path().join("config"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("WLR_BACKENDS", "headless")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env("WLR_RENDERER", "pixman")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("failed to start sway");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("sway exited at start: {status}");
            }
            let socket = std::fs::read_dir(dir.path()).unwrap().flatten().find(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("wayland-") && !name.ends_with(".lock")
            });
            if let Some(socket) = socket {
                return Sway {
                    child,
                    socket: socket.path(),
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sway made no Wayland socket in 20 s");
    }

    fn paste(&self) -> Option<String> {
        let out = Command::new("wl-paste")
            .arg("--no-newline")
            .env("WAYLAND_DISPLAY", &self.socket)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("failed to run wl-paste");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Sway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(missing_sway, ignore = "needs sway: apt-get install sway")]
#[cfg_attr(
    missing_wl_clipboard,
    ignore = "needs wl-copy, wl-paste: apt-get install wl-clipboard"
)]
#[cfg_attr(
    missing_util_linux,
    ignore = "needs setpriv, setsid, unshare: apt-get install util-linux"
)]
fn wayland_copy_and_clear_with_wl_clipboard() {
    require_tools(&["sway", "wl-copy", "wl-paste", "setpriv"]);
    let sway = Sway::start();
    let env = store();
    let mut cmd = env.sesto(&["get", "-c", "prod/db/password"]);
    cmd.env("WAYLAND_DISPLAY", &sway.socket)
        .env("SESTO_CLIP_TIME", "2");
    let out = run_cmd(cmd);
    out.assert_success();
    assert_not_shown(&out, VALUE);
    assert_eq!(sway.paste().as_deref(), Some(VALUE));
    // Cleared: wl-copy --clear leaves nothing to paste.
    let cleared = wait_for(Duration::from_secs(10), "<none>", || {
        sway.paste().unwrap_or_else(|| "<none>".into())
    });
    assert!(cleared.is_some(), "the Wayland clipboard was not cleared");
}

// --- terminals ---------------------------------------------------------------------

/// Runs `sesto args` on a fresh pseudo-terminal made by util-linux `script`; the
/// terminal merges stdout and stderr, with `\r\n` line ends.
fn on_terminal(env: &TestEnv, args: &[&str]) -> Output {
    let mut line = env!("CARGO_BIN_EXE_sesto").to_string();
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut cmd = env.command("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    run_cmd_stdin(cmd, b"")
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn get_adds_a_newline_on_a_terminal_only() {
    require_tool("script");
    let env = store();
    set(&env, "ends/with/newline", b"line-value\n");
    // A pipe gets the exact bytes.
    assert_eq!(env.run(&["get", "prod/db/password"]).stdout, VALUE);
    assert_eq!(
        env.run(&["get", "ends/with/newline"]).stdout,
        "line-value\n"
    );
    assert_eq!(
        env.run(&["show", "prod/db/password", "--rev", "HEAD"])
            .stdout,
        VALUE
    );
    // A terminal gets a newline where the value has none, and no second one.
    let out = on_terminal(&env, &["get", "prod/db/password"]);
    out.assert_success();
    assert_eq!(out.stdout, format!("{VALUE}\r\n"));
    let out = on_terminal(&env, &["get", "ends/with/newline"]);
    assert_eq!(out.stdout, "line-value\r\n");
    let out = on_terminal(&env, &["show", "prod/db/password", "--rev", "HEAD"]);
    out.assert_success();
    assert_eq!(out.stdout, format!("{VALUE}\r\n"));
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn generate_print_prints_the_value_once() {
    require_tool("script");
    let env = store();
    let out = env.run(&["generate", "--print", "new/pw"]);
    out.assert_success();
    assert_eq!(out.stderr, "Stored a 32-character password at new/pw.\n");
    assert_eq!(
        out.stdout.len(),
        32,
        "the value alone, no newline in a pipe"
    );
    assert_eq!(env.run(&["get", "new/pw"]).stdout, out.stdout);

    let out = on_terminal(&env, &["generate", "--print", "-w", "4", "new/words"]);
    out.assert_success();
    let stored = env.run(&["get", "new/words"]).stdout;
    assert_eq!(stored.split('-').count(), 4);
    assert_eq!(out.stdout.matches(&stored).count(), 1);
    assert!(
        out.stdout.ends_with(&format!("{stored}\r\n")),
        "{}",
        out.stdout
    );
    // Without --print the value is not shown.
    let out = env.run(&["generate", "--force", "new/pw"]);
    assert_eq!(out.stdout, "Stored a 32-character password at new/pw.\n");
    assert_not_shown(&out, &env.run(&["get", "new/pw"]).stdout);
}

/// The QR code lines of a terminal's output: those drawn in black on white, with the
/// colours and line ends taken off.
fn qr_lines(text: &str) -> Vec<String> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("\x1b[30;107m"))
        .map(|l| {
            l.strip_suffix("\x1b[0m")
                .expect("reset at line end")
                .to_owned()
        })
        .collect()
}

#[test]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn otp_qr_draws_a_square_on_a_terminal_only() {
    require_tool("script");
    let env = store();
    let uri = format!("otpauth://totp/Example:alice?secret={RFC6238_SECRET}&issuer=Example");
    set(&env, "otp/uri", uri.as_bytes());
    set(&env, "otp/base32", RFC6238_SECRET.as_bytes());

    let out = on_terminal(&env, &["otp", "--qr", "otp/uri"]);
    out.assert_success();
    let lines = qr_lines(&out.stdout);
    // The URI is 77 bytes: a version 5 code at level M, 37 modules a side, plus a
    // quiet zone of 4 each side; two module rows per line.
    let side: usize = 37 + 2 * 4;
    assert_eq!(lines.len(), side.div_ceil(2), "{}", out.stdout);
    for line in &lines {
        assert_eq!(line.chars().count(), side);
        assert!(line.chars().all(|c| " ▀▄█".contains(c)), "{line:?}");
    }
    // The quiet zone: the first two lines and the first and last four columns blank.
    assert!(lines[..2].iter().all(|l| l.trim().is_empty()));
    assert!(lines
        .iter()
        .all(|l| l.starts_with("    ") && l.ends_with("    ")));
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(&uri) && !text.contains(RFC6238_SECRET));
    }
    assert!(out
        .stdout
        .contains("otp/uri: scan it with an authenticator app"));
    // The same URI draws the same code.
    let again = on_terminal(&env, &["otp", "--qr", "otp/uri"]);
    assert_eq!(qr_lines(&again.stdout), lines);
    // A bare secret draws too (its URI is made with the path as label).
    let base32 = on_terminal(&env, &["otp", "--qr", "otp/base32"]);
    base32.assert_success();
    assert!(!qr_lines(&base32.stdout).is_empty());
    assert_ne!(qr_lines(&base32.stdout), lines);

    // Not on a terminal: refused, nothing on stdout.
    let out = env.run(&["otp", "--qr", "otp/uri"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("only draws on a terminal"),
        "{}",
        out.stderr
    );
    // A value that is no OTP secret draws nothing.
    let out = on_terminal(&env, &["otp", "--qr", "prod/db/password"]);
    out.assert_code(1);
    assert!(qr_lines(&out.stdout).is_empty());
    assert_not_shown(&out, VALUE);
}

/// The QR code drawn on a terminal as a PGM image, 8 pixels a module.
fn qr_pgm(lines: &[String]) -> Vec<u8> {
    const SCALE: usize = 8;
    let rows: Vec<Vec<bool>> = lines
        .iter()
        .flat_map(|l| {
            let top = l.chars().map(|c| c == '█' || c == '▀').collect();
            let bottom = l.chars().map(|c| c == '█' || c == '▄').collect();
            [top, bottom]
        })
        .collect();
    let (w, h) = (rows[0].len() * SCALE, rows.len() * SCALE);
    let mut pgm = format!("P5 {w} {h} 255\n").into_bytes();
    for row in &rows {
        let line: Vec<u8> = row
            .iter()
            .flat_map(|&dark| [if dark { 0 } else { 255 }; SCALE])
            .collect();
        for _ in 0..SCALE {
            pgm.extend_from_slice(&line);
        }
    }
    pgm
}

#[test]
#[cfg_attr(missing_zbar, ignore = "needs zbarimg: apt-get install zbar-tools")]
#[cfg_attr(missing_script, ignore = "needs script: apt-get install bsdutils")]
fn otp_qr_decodes_to_the_uri_with_zbarimg() {
    require_tools(&["script", "zbarimg"]);
    let env = store();
    let uri = format!("otpauth://totp/Example:alice?secret={RFC6238_SECRET}&issuer=Example");
    set(&env, "otp/uri", format!("{uri}\n").as_bytes());
    set(
        &env,
        "otp/base32",
        b"gezd gnbv gy3t qojq gezd gnbv gy3t qojq\n",
    );
    for (path, want) in [
        ("otp/uri", uri.clone()),
        (
            "otp/base32",
            format!("otpauth://totp/otp%2Fbase32?secret={RFC6238_SECRET}"),
        ),
    ] {
        let out = on_terminal(&env, &["otp", "--qr", path]);
        out.assert_success();
        let image = env.root.join("qr.pgm");
        std::fs::write(&image, qr_pgm(&qr_lines(&out.stdout))).unwrap();
        let mut cmd = env.command("zbarimg");
        cmd.args(["-q", "--raw"]).arg(&image);
        let decoded = run_cmd(cmd);
        decoded.assert_success();
        assert_eq!(decoded.stdout.trim_end(), want);
    }
}
