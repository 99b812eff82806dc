//! What the binary does with the terminal: passphrase prompts and error printing.

use std::io::IsTerminal;

use age::secrecy::SecretString;

/// Prompts on the controlling terminal (three tries), or through
/// `SSH_ASKPASS` where there is no terminal but a display (or where
/// `SSH_ASKPASS_REQUIRE=force`), as ssh does; fails at once where there is
/// neither, so nothing ever hangs.
pub struct TtyPassphrase;

/// How the passphrase is asked, if it can be.
enum Asker {
    Tty,
    Askpass(std::ffi::OsString),
}

fn asker() -> Option<Asker> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let askpass = var("SSH_ASKPASS");
    let require = std::env::var("SSH_ASKPASS_REQUIRE").unwrap_or_default();
    let display = var("DISPLAY").is_some() || var("WAYLAND_DISPLAY").is_some();
    match (askpass, require.as_str()) {
        (Some(a), "force") => return Some(Asker::Askpass(a)),
        (_, "never") => {}
        (Some(a), _) if display && std::fs::File::open("/dev/tty").is_err() => {
            return Some(Asker::Askpass(a))
        }
        _ => {}
    }
    std::fs::File::open("/dev/tty")
        .is_ok()
        .then_some(Asker::Tty)
}

/// Runs the askpass program with `prompt` and reads the passphrase it prints.
fn askpass(program: &std::ffi::OsStr, prompt: &str) -> Result<SecretString, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let shown = std::path::Path::new(program).display().to_string();
    let mut child = Command::new(program)
        .arg(prompt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("SSH_ASKPASS ({shown}) cannot run: {e}"))?;
    let mut out = zeroize::Zeroizing::new(Vec::new());
    let read = child
        .stdout
        .take()
        .expect("piped")
        .take(4096)
        .read_to_end(&mut out);
    let status = child.wait().map_err(|e| e.to_string())?;
    read.map_err(|e| format!("reading from SSH_ASKPASS ({shown}): {e}"))?;
    if !status.success() {
        return Err(format!("SSH_ASKPASS ({shown}) was cancelled"));
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let text = std::str::from_utf8(&out).map_err(|_| "the passphrase is not UTF-8".to_string())?;
    Ok(SecretString::from(text.to_string()))
}

impl sesto::Passphrase for TtyPassphrase {
    fn passphrase(&self, source: &str) -> Result<SecretString, String> {
        let prompt = format!("Enter passphrase for {source}: ");
        match asker() {
            None => Err(
                "there is no terminal to ask for its passphrase; unlock it once with \
                 `sesto unlock` on a terminal, load it in ssh-agent for signing, or use an \
                 unencrypted deploy key in SESTO_IDENTITY"
                    .into(),
            ),
            Some(Asker::Askpass(program)) => askpass(&program, &prompt),
            Some(Asker::Tty) => rpassword::prompt_password(prompt)
                .map(SecretString::from)
                .map_err(|e| format!("reading the passphrase failed: {e}")),
        }
    }

    fn tries(&self) -> usize {
        3
    }

    fn wrong(&self, _source: &str) {
        if matches!(asker(), Some(Asker::Tty)) {
            if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                let _ = std::io::Write::write_all(&mut tty, b"Wrong passphrase; try again.\n");
            }
        }
    }
}

/// Asks a yes/no question on the terminal (stdin); only "y" or "yes" is yes.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut tty = std::fs::OpenOptions::new().write(true).open("/dev/tty")?;
    std::io::Write::write_all(&mut tty, format!("{question} [y/N] ").as_bytes())?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Throws away input typed (or pasted) on the terminal but not yet read;
/// returns whether there was any.
pub fn discard_pending_input() -> bool {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes an int; tcflush takes our own descriptor.
    unsafe {
        if libc::ioctl(0, libc::FIONREAD, &mut pending) != 0 || pending <= 0 {
            return false;
        }
        libc::tcflush(0, libc::TCIFLUSH);
    }
    true
}

/// Whether stdin is a terminal (then values are prompted for, not read).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Prints an error chain and, where the library has one, a hint.
pub fn print_error(e: &anyhow::Error) {
    let mut text = format!("error: {e}");
    for cause in e.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    let hint = e
        .chain()
        .find_map(|c| c.downcast_ref::<sesto::Error>())
        .and_then(sesto::Error::hint)
        .or_else(|| {
            e.chain()
                .find_map(|c| c.downcast_ref::<sesto::deploy::materialize::Error>())
                .and_then(sesto::deploy::materialize::Error::hint)
        });
    if let Some(h) = hint {
        text.push_str(&format!("\nhint: {h}"));
    }
    eprintln!("{text}");
}
