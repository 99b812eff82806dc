//! Copying to the clipboard for `get -c`, `otp -c` and `generate --clip`, and the
//! hidden `sesto clip-clear` that empties the clipboard later.
//!
//! The clearing runs in a detached copy of sesto (its own session, stdin a pipe
//! that carries the value's digest, stdout and stderr null), so the shell gets its
//! prompt back at once and no one reading sesto's output waits for it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use sesto::local::clipboard::{self, Backend, Digest};
use zeroize::Zeroizing;

/// Clear the clipboard after a delay if it still holds a copied value (run by sesto)
///
/// Reads the SHA-256 of the copied value, in hex, on stdin.
#[derive(Debug, clap::Args)]
pub struct ClearArgs {
    /// The clipboard tool: wayland, xclip, xsel or pasteboard
    #[arg(long)]
    backend: String,
    /// Seconds to wait before clearing
    #[arg(long)]
    after: u64,
}

/// A clipboard found to be usable, and how long values stay on it.
pub struct Clip {
    backend: Backend,
    after: Duration,
}

impl Clip {
    /// Checks `SESTO_CLIP_TIME` and finds the clipboard tool: call it before reading
    /// any secret, so that a missing tool fails before anything is decrypted.
    pub fn prepare() -> Result<Clip> {
        let after = clipboard::clear_after_from_env()?;
        let backend = Backend::detect()?;
        Ok(Clip { backend, after })
    }

    /// Copies `value` (less one trailing newline, which would press Enter where it
    /// is pasted), starts the helper that clears it later, and says so on stderr,
    /// naming the value `what`.
    pub fn copy(&self, value: &[u8], what: &str) -> Result<()> {
        let value = strip_newline(value);
        if value.is_empty() {
            anyhow::bail!("{what} is empty; there is nothing to copy");
        }
        // The helper starts first: once the value is on the clipboard, nothing may
        // keep it from being cleared.
        let mut helper = spawn_clearer(self.backend, self.after, &Digest::of(value))
            .context("cannot start the helper that clears the clipboard later")?;
        if let Err(e) = clipboard::copy(self.backend, value) {
            let _ = helper.kill();
            let _ = helper.wait();
            return Err(e).context(format!("copying {what} to the clipboard failed"));
        }
        eprintln!(
            "Copied {what} to the clipboard; clearing in {} s.",
            self.after.as_secs()
        );
        Ok(())
    }
}

fn strip_newline(value: &[u8]) -> &[u8] {
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    value.strip_suffix(b"\r").unwrap_or(value)
}

/// Starts `sesto clip-clear` in a session of its own, handing it the digest
/// through its stdin (a command line is visible to every user of the machine).
fn spawn_clearer(backend: Backend, after: Duration, digest: &Digest) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find sesto's own executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["clip-clear", "--backend", backend.name(), "--after"])
        .arg(after.as_secs().to_string())
        .env_remove("SESTO_IDENTITY")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe, as pre_exec requires. A new session has
    // no controlling terminal, so closing the terminal does not stop the clearing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().context("no pipe to the helper")?;
    let hex = digest.to_hex();
    let sent = stdin
        .write_all(hex.as_bytes())
        .and_then(|()| stdin.write_all(b"\n"));
    drop(stdin);
    if let Err(e) = sent {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.into());
    }
    Ok(child)
}

/// `sesto clip-clear`: wait, then clear the clipboard if it still holds the value.
pub fn clear(args: ClearArgs) -> Result<ExitCode> {
    let backend = clipboard::Backend::from_name(&args.backend)
        .with_context(|| format!("unknown clipboard backend {:?}", args.backend))?;
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .take(200)
        .read_to_string(&mut line)
        .context("reading the digest from stdin")?;
    let expected = Digest::from_hex(&line).context("expected a SHA-256 in hex on stdin")?;
    drop(line);
    std::thread::sleep(Duration::from_secs(
        args.after.min(clipboard::MAX_CLEAR_SECONDS),
    ));
    clipboard::clear_if_unchanged(backend, &expected)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_trailing_newline_is_left_out() {
        assert_eq!(super::strip_newline(b"pw\n"), b"pw");
        assert_eq!(super::strip_newline(b"pw\r\n"), b"pw");
        assert_eq!(super::strip_newline(b"pw\n\n"), b"pw\n");
        assert_eq!(super::strip_newline(b"a\nb"), b"a\nb");
    }
}
