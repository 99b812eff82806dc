//! Sharing one secret with someone outside the store: its value as an ASCII-armored
//! age file that the reference `age` CLI opens with the recipient's own key or a
//! generated passphrase, no sesto needed.
//!
//! The file is a copy: it is not a node, is not signed and changes nothing in the
//! store. Recipients come from the command line or a file of public keys; anything
//! that looks like a private key is refused without echoing it.

use std::io::Write;

use age::secrecy::SecretString;

use crate::format::crypto::{KeyError, Recipient};
use crate::local::generate::GenerateError;

/// Words in the passphrase [`with_passphrase`] generates: about 77 bits.
pub const PASSPHRASE_WORDS: usize = 6;

/// scrypt work factor (log2 N) of passphrase-encrypted files. The reference age CLI
/// encrypts with 18 and refuses more than 22 when decrypting, while the age crate
/// would time its own machine and could pick more there; a generated passphrase of
/// 77 bits does not need a slower KDF, and 18 keeps decryption at 256 MiB of memory.
const SCRYPT_LOG_N: u8 = 18;

/// Why a secret could not be shared.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// A recipient could not be parsed; `at` says where it was given (`keys.pub:3`).
    #[error("{at}: {error}")]
    Recipient {
        /// Where the key was given.
        at: String,
        /// What is wrong with it.
        error: KeyError,
    },
    /// A recipients file holds no key.
    #[error("{0} holds no public key (one per line; blank lines and # comments are skipped)")]
    NoKeys(String),
    /// A parsed recipient cannot wrap a key (an age plugin is missing or failed).
    #[error(transparent)]
    Unusable(KeyError),
    /// The passphrase could not be generated.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// An armored age file made with a generated passphrase, and that passphrase.
pub struct PassphraseShare {
    /// The ASCII-armored age file.
    pub armored: String,
    /// The passphrase that opens it; to be given over another channel than the file.
    pub passphrase: SecretString,
}

/// Parses one public key given by the user: `ssh-ed25519`, `ssh-rsa`, `age1…` or an
/// age plugin recipient. A private key (OpenSSH, PEM or PuTTY, `AGE-SECRET-KEY-1…`,
/// `AGE-PLUGIN-…`) is refused with a message that shows none of it.
pub fn parse_recipient(text: &str) -> Result<Recipient, KeyError> {
    let trimmed = text.trim();
    if crate::format::crypto::looks_private(trimmed) {
        return Err(KeyError(
            "this is a private key, which must not leave your machine; give the public key \
             instead (the .pub file beside an SSH key, or `age-keygen -y` of an age identity)"
                .into(),
        ));
    }
    Recipient::parse(trimmed)
}

/// Parses a recipients file: one public key per line, blank lines and lines starting
/// with `#` skipped. Errors name `source` and the line (`keys.pub:3: …`); a file
/// without any key is an error too.
pub fn parse_recipients(text: &str, source: &str) -> Result<Vec<Recipient>, ShareError> {
    let mut recipients = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let recipient = parse_recipient(line).map_err(|error| ShareError::Recipient {
            at: format!("{source}:{}", i + 1),
            error,
        })?;
        recipients.push(recipient);
    }
    if recipients.is_empty() {
        return Err(ShareError::NoKeys(source.to_owned()));
    }
    Ok(recipients)
}

/// Encrypts `value` to `recipients` as an ASCII-armored age file.
pub fn to_recipients(value: &[u8], recipients: &[Recipient]) -> Result<String, ShareError> {
    let wrapped = recipients
        .iter()
        .map(|r| r.to_age().map_err(ShareError::Unusable))
        .collect::<Result<Vec<_>, _>>()?;
    armored(
        value,
        wrapped.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
}

/// Encrypts `value` with a generated passphrase of [`PASSPHRASE_WORDS`] EFF words, as
/// an ASCII-armored age file that `age -d` opens after asking for the passphrase.
pub fn with_passphrase(value: &[u8]) -> Result<PassphraseShare, ShareError> {
    let mut words = crate::local::generate::passphrase(PASSPHRASE_WORDS)?;
    // Moves the words into the SecretString rather than copying them.
    let passphrase = SecretString::from(std::mem::take(&mut *words));
    let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
    recipient.set_work_factor(SCRYPT_LOG_N);
    let armored = armored(value, std::iter::once(&recipient as &dyn age::Recipient))?;
    Ok(PassphraseShare {
        armored,
        passphrase,
    })
}

/// The armored age file of `value` encrypted to `recipients`.
fn armored<'a>(
    value: &[u8],
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
) -> Result<String, ShareError> {
    let fail = |e: &dyn std::fmt::Display| ShareError::Encrypt(e.to_string());
    let encryptor = age::Encryptor::with_recipients(recipients).map_err(|e| fail(&e))?;
    let armor = age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor)
        .map_err(|e| fail(&e))?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| fail(&e))?;
    writer.write_all(value).map_err(|e| fail(&e))?;
    let bytes = writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| fail(&e))?;
    String::from_utf8(bytes).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::io::Read;

    fn decrypt(armored: &str, identity: &dyn age::Identity) -> Vec<u8> {
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decryptor = age::Decryptor::new(reader).unwrap();
        let mut out = Vec::new();
        decryptor
            .decrypt(std::iter::once(identity))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The error of a parse that must fail (`Recipient` has no `Debug` for `unwrap_err`).
    fn refused(parsed: Result<Vec<Recipient>, ShareError>) -> ShareError {
        match parsed {
            Ok(_) => panic!("parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn recipients_round_trip_armored() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let recipients = [
            parse_recipient(&a.to_public().to_string()).unwrap(),
            parse_recipient(&b.to_public().to_string()).unwrap(),
        ];
        let value = b"line\n\xff";
        let armored = to_recipients(value, &recipients).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(armored.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        assert_eq!(decrypt(&armored, &a), value);
        assert_eq!(decrypt(&armored, &b), value);
    }

    #[test]
    fn passphrase_round_trips_with_the_reference_work_factor() {
        let shared = with_passphrase(b"value").unwrap();
        let words: Vec<&str> = shared.passphrase.expose_secret().split('-').collect();
        assert_eq!(words.len(), PASSPHRASE_WORDS);
        let mut header = Vec::new();
        age::armor::ArmoredReader::new(shared.armored.as_bytes())
            .read_to_end(&mut header)
            .unwrap();
        let header = String::from_utf8_lossy(&header);
        let stanza = header.lines().nth(1).unwrap();
        assert!(
            stanza.starts_with("-> scrypt ") && stanza.ends_with(" 18"),
            "{stanza}"
        );
        let identity = age::scrypt::Identity::new(shared.passphrase.clone());
        assert_eq!(decrypt(&shared.armored, &identity), b"value");
    }

    #[test]
    fn recipients_file_skips_comments_and_names_bad_lines() {
        let a = age::x25519::Identity::generate().to_public().to_string();
        let text = format!("# team\n\n  {a}  \n# end\n");
        assert_eq!(parse_recipients(&text, "keys.pub").unwrap().len(), 1);
        let err = refused(parse_recipients(&format!("{a}\n\nnot-a-key\n"), "keys.pub"));
        assert!(
            err.to_string().starts_with("keys.pub:3: not a public key"),
            "{err}"
        );
        let err = refused(parse_recipients("# nothing\n\n", "keys.pub"));
        assert!(matches!(err, ShareError::NoKeys(_)), "{err}");
    }

    #[test]
    fn private_keys_are_refused_without_echo() {
        let age_key = age::x25519::Identity::generate();
        let age_text = age_key.to_string().expose_secret().to_owned();
        let ssh_key =
            ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
                .unwrap();
        let ssh_text = ssh_key.to_openssh(ssh_key::LineEnding::LF).unwrap();
        for private in [
            age_text.clone(),
            age_text.to_lowercase(),
            ssh_text.to_string(),
            "AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQ".into(),
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n\
             AAAAIGt5b3VyIHByaXZhdGUga2V5IGdvZXMgaGVyZQAA\n"
                .into(),
        ] {
            let err = parse_recipient(&private)
                .err()
                .expect("a private key was accepted");
            let message = err.to_string();
            assert!(message.starts_with("this is a private key"), "{message}");
            for line in private.lines().filter(|l| l.len() >= 12) {
                assert!(!message.contains(&line[line.len() - 12..]), "{message}");
            }
        }
        let file = format!(
            "# created: now\n# public key: {}\n{age_text}\n",
            age_key.to_public()
        );
        let err = refused(parse_recipients(&file, "id.txt")).to_string();
        assert!(err.starts_with("id.txt:3: this is a private key"), "{err}");
    }
}
