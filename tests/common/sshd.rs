//! A real OpenSSH server for tests that use git over SSH: the system `sshd` on a free
//! loopback port, in the foreground, with its own host key, config and authorized
//! keys in the test's temporary directory. Every authorized key may run git and nothing
//! else (`git-shell`), and clients check the server's host key for real.
//!
//! The server logs to `<tmp>/sshd/sshd.log` (shown when it fails to start) and is
//! killed when the [`Sshd`] is dropped.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{pub_key, run_cmd, set_mode, tool_path, TestEnv};

/// How long sshd may take to accept connections once started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a killed sshd may take to be reaped.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Free ports are found by binding port 0 and letting go; another process may take
/// the port in between, so a failed start is retried on a fresh one.
const START_ATTEMPTS: u32 = 5;

/// A running `sshd` serving git to the keys it authorizes.
pub struct Sshd {
    child: Child,
    /// The loopback port sshd listens on.
    pub port: u16,
    /// The login user: the user running the tests.
    pub user: String,
    dir: PathBuf,
    git_shell: PathBuf,
}

impl Sshd {
    /// Starts sshd for `env`, authorizing the public keys beside the private keys in
    /// `authorized` (as [`TestEnv::ssh_keygen`] makes them). Panics, with sshd's log,
    /// when it cannot start. Check [`super::require_tool`]`("sshd")` first.
    pub fn start(env: &TestEnv, authorized: &[&Path]) -> Sshd {
        let sshd =
            tool_path("sshd").expect("sshd is not installed (apt-get install openssh-server)");
        assert!(
            sshd.is_absolute(),
            "sshd must be run by an absolute path, found {}",
            sshd.display()
        );
        let dir = env.root.join("sshd");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        set_mode(&dir, 0o700);

        let host_key = dir.join("host_ed25519");
        let mut keygen = env.command("ssh-keygen");
        keygen
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "sesto-test-host",
                "-f",
            ])
            .arg(&host_key);
        run_cmd(keygen).assert_success();

        let user = current_user(env);
        let git_shell = git_shell(env);
        let root = is_root();
        if root {
            // sshd's privilege-separated children chroot here; Debian makes it at boot
            // only when the ssh service runs.
            privsep_dir();
        }

        let mut server = None;
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(&config, sshd_config(&dir, &host_key, port, &user, root))
                .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            let log = dir.join("sshd.log");
            let log_file = File::create(&log).expect("failed to create sshd.log");
            let mut cmd = env.command(&sshd);
            cmd.arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(log_file);
            // SAFETY: prctl is async-signal-safe and touches only the child. Should the
            // test process die without dropping the Sshd, the kernel kills sshd too.
            // (It fires when the spawning *thread* ends: start and drop the server on
            // the test's own thread, as a local.)
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("failed to start {}: {e}", sshd.display()));
            let mut candidate = Sshd {
                child,
                port,
                user: user.clone(),
                dir: dir.clone(),
                git_shell: git_shell.clone(),
            };
            match candidate.wait_until_listening() {
                Ok(()) => {
                    server = Some(candidate);
                    break;
                }
                Err(why) => {
                    let log = candidate.log();
                    drop(candidate);
                    let port_taken = log.contains("Address already in use");
                    if !port_taken || attempt == START_ATTEMPTS {
                        panic!("sshd did not start: {why}\n--- sshd.log\n{log}");
                    }
                }
            }
        }
        let server = server.expect("the last attempt returns or panics");

        // Host checking stays on: clients trust exactly this server's key, on this port.
        let host_pub = std::fs::read_to_string(dir.join("host_ed25519.pub"))
            .expect("failed to read the host public key");
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            server.known_hosts(),
            format!("[127.0.0.1]:{} {kind} {key}\n", server.port),
        )
        .expect("failed to write known_hosts");

        for key in authorized {
            server.authorize(key);
        }
        server
    }

    /// Authorizes one more key (the public key beside the private key `private_key`),
    /// restricted to git. sshd reads the file at every login, so this works at once.
    pub fn authorize(&self, private_key: &Path) {
        let line = format!(
            "command=\"{} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",restrict {}\n",
            self.git_shell.display(),
            pub_key(private_key)
        );
        let path = self.dir.join("authorized_keys");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        file.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The `ssh://` URL of the repository at the absolute path `repo`.
    pub fn url(&self, repo: &Path) -> String {
        assert!(repo.is_absolute(), "{} is not absolute", repo.display());
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The `GIT_SSH_COMMAND` that logs in with `private_key`: no ssh config, agent or
    /// other identity from the host, no prompts, and this server's host key required.
    pub fn git_ssh_command(&self, private_key: &Path) -> String {
        format!(
            "ssh -F /dev/null -i {} -p {} -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
             -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
             -o ConnectTimeout=10",
            shell_quote(private_key),
            self.port,
            shell_quote(&self.known_hosts()),
        )
    }

    /// The known_hosts file holding this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("failed to wait for sshd") {
                return Err(format!("it exited ({status})"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "port {} not accepting connections after {}s",
                    self.port,
                    START_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // SIGKILL; sessions still open end with their clients, which are ours and
        // time-bounded.
        let _ = self.child.kill();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // No panic in drop: it could abort a test that is already failing.
        eprintln!(
            "warning: sshd (pid {}) did not exit after SIGKILL",
            self.child.id()
        );
    }
}

fn sshd_config(dir: &Path, host_key: &Path, port: u16, user: &str, root: bool) -> String {
    let mut config = format!(
        "# Written by the sesto test harness.\n\
         ListenAddress 127.0.0.1\n\
         Port {port}\n\
         HostKey \"{host_key}\"\n\
         PidFile none\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile \"{keys}\"\n\
         AllowUsers {user}\n\
         LoginGraceTime 30\n\
         LogLevel VERBOSE\n",
        host_key = host_key.display(),
        keys = dir.join("authorized_keys").display(),
    );
    if root {
        // Tests run as root under CI; keys only, as always.
        config.push_str("PermitRootLogin prohibit-password\n");
    }
    config
}

/// A loopback port nobody listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("failed to find a free loopback port")
        .port()
}

fn current_user(env: &TestEnv) -> String {
    let mut cmd = env.command("id");
    cmd.arg("-un");
    let out = run_cmd(cmd);
    out.assert_success();
    out.stdout.trim().to_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `/run/sshd`, which sshd running as root insists on.
fn privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        set_mode(dir, 0o755);
    }
}

/// git-shell by absolute path: sshd runs the forced command with its own default PATH,
/// which need not hold the git the tests use.
fn git_shell(env: &TestEnv) -> PathBuf {
    if let Some(path) = tool_path("git-shell") {
        if path.is_absolute() {
            return path;
        }
    }
    let mut cmd = env.command("git");
    cmd.arg("--exec-path");
    let out = run_cmd(cmd);
    out.assert_success();
    let path = Path::new(out.stdout.trim()).join("git-shell");
    assert!(
        path.is_file(),
        "git-shell not found on PATH or at {}",
        path.display()
    );
    path
}

/// `path` in single quotes for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
