//! What the binary does with the terminal: passphrase prompts and error printing.

use std::io::IsTerminal;

use age::secrecy::SecretString;

/// Prompts on the controlling terminal; fails at once where there is none.
pub struct TtyPassphrase;

impl sesto::Passphrase for TtyPassphrase {
    fn passphrase(&self, source: &str) -> Result<SecretString, String> {
        if std::fs::File::open("/dev/tty").is_err() {
            return Err(
                "there is no terminal to ask for its passphrase; use an unencrypted deploy key \
                        in SESTO_IDENTITY, or remove the passphrase with `ssh-keygen -p`"
                    .into(),
            );
        }
        rpassword::prompt_password(format!("Enter passphrase for {source}: "))
            .map(SecretString::from)
            .map_err(|e| format!("reading the passphrase failed: {e}"))
    }
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
                .find_map(|c| c.downcast_ref::<sesto::materialize::Error>())
                .and_then(sesto::materialize::Error::hint)
        });
    if let Some(h) = hint {
        text.push_str(&format!("\nhint: {h}"));
    }
    eprintln!("{text}");
}
