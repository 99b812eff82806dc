//! `sesto otp`: the current TOTP code of a secret, or its QR code for a phone.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use qrcode::{Color, QrCode};
use zeroize::Zeroizing;

use super::Global;

/// Print the current TOTP code of a secret
///
/// The secret holds an otpauth://totp/ URI, a base32 secret, or a YAML
/// mapping with an `otpauth`, `otp` or `totp` field holding either.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the secret
    path: String,
    /// Copy the code to the clipboard instead of printing it; cleared after 45 s
    /// (SESTO_CLIP_TIME seconds)
    #[arg(long, short = 'c', conflicts_with = "qr")]
    clip: bool,
    /// Draw the secret's otpauth URI as a QR code, to add it to an authenticator
    /// app; only on a terminal, since it shows the secret itself
    #[arg(long)]
    qr: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    if args.qr && !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--qr draws the OTP secret itself, so it only draws on a terminal, and stdout \
             is not one; run it in a terminal (`sesto get {}` gives the value)",
            args.path
        );
    }
    let clip = args.clip.then(super::clip::Clip::prepare).transpose()?;
    let store = super::open(g)?;
    let secret = store.get(&args.path)?;
    let now = match std::env::var("SESTO_NOW") {
        Ok(text) => {
            let secs = sesto::parse_rfc3339(&text).ok_or_else(|| {
                anyhow::anyhow!("SESTO_NOW={text:?} is not a time like 2026-01-01T00:00:00Z")
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64)
        }
        Err(_) => std::time::SystemTime::now(),
    };
    // Checked first, so a value that gives no code draws no QR code either.
    let code = sesto::local::otp::current_code(secret.expose_value(), now)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.path))?;
    if args.qr {
        let uri = otpauth_uri(secret.expose_value(), &args.path)
            .ok_or_else(|| anyhow::anyhow!("{}: cannot make an otpauth URI of it", args.path))?;
        let qr = QrCode::new(uri.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "{}: the otpauth URI does not fit in a QR code: {e}",
                args.path
            )
        })?;
        eprintln!("{}: scan it with an authenticator app", args.path);
        out.write_all(draw(&qr).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(clip) = clip {
        clip.copy(
            code.code.as_bytes(),
            &format!(
                "the code of {} (valid for {} more seconds)",
                args.path, code.remaining_seconds
            ),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{}", code.code)?;
    if std::io::stderr().is_terminal() {
        eprintln!("valid for {} more seconds", code.remaining_seconds);
    }
    Ok(ExitCode::SUCCESS)
}

/// The otpauth URI a value stands for, in the forms `sesto::local::otp::current_code`
/// reads: the URI itself, or for a bare base32 secret one made with the secret's
/// path as its label (the defaults SHA1, 6 digits and 30 s need no parameters).
/// `None` where the value is neither.
fn otpauth_uri(value: &[u8], label: &str) -> Option<Zeroizing<String>> {
    let text = std::str::from_utf8(value).ok()?;
    if let Some(uri) = uri_or_base32(text, label) {
        return Some(uri);
    }
    // A mapping: the first of the fields current_code looks at, as it does.
    let inner = sesto::local::otp::MAPPING_FIELDS
        .iter()
        .find_map(|name| sesto::field(value, name).ok())?;
    uri_or_base32(std::str::from_utf8(&inner).ok()?, label)
}

fn uri_or_base32(text: &str, label: &str) -> Option<Zeroizing<String>> {
    let text = text.trim();
    // "otpauth://", not "otpauth:": a mapping's `otpauth: …` line is no URI.
    if text
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("otpauth://"))
    {
        return Some(Zeroizing::new(text.to_owned()));
    }
    let base32 = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b.is_ascii_whitespace());
    base32.then(|| {
        let mut uri = Zeroizing::new(format!("otpauth://totp/{}?secret=", percent_encode(label)));
        uri.extend(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase()),
        );
        uri
    })
}

/// `label` with everything but unreserved URI characters percent-encoded.
fn percent_encode(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// Black on bright white, whatever the terminal's own colours: scanners want dark
/// modules on a light ground, which a dark terminal would invert.
const COLOURS: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";

/// The QR code in Unicode half blocks, two module rows per line, with the quiet
/// zone: each character's upper half is one module and its lower half the one
/// below it, dark where drawn in the foreground colour.
fn draw(code: &QrCode) -> Zeroizing<String> {
    let width = code.width();
    let side = width + 2 * QUIET_ZONE;
    let dark = |x: usize, y: usize| {
        (QUIET_ZONE..QUIET_ZONE + width).contains(&x)
            && (QUIET_ZONE..QUIET_ZONE + width).contains(&y)
            && code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Dark
    };
    let mut text = Zeroizing::new(String::new());
    for y in (0..side).step_by(2) {
        text.push_str(COLOURS);
        for x in 0..side {
            text.push(match (dark(x, y), dark(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        text.push_str(RESET);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published example secret (RFC 4226's "12345678901234567890"), not a secret.
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn the_drawing_is_the_module_matrix() {
        let uri = format!("otpauth://totp/Example:alice?secret={SECRET}&issuer=Example");
        let code = QrCode::new(uri.as_bytes()).unwrap();
        let drawn = draw(&code);
        let side = code.width() + 2 * QUIET_ZONE;
        let lines: Vec<Vec<char>> = drawn
            .lines()
            .map(|l| {
                l.strip_prefix(COLOURS)
                    .and_then(|l| l.strip_suffix(RESET))
                    .expect("each line is coloured")
                    .chars()
                    .collect()
            })
            .collect();
        assert_eq!(lines.len(), side.div_ceil(2));
        for (row, line) in lines.iter().enumerate() {
            assert_eq!(line.len(), side, "line {row}");
            for (x, ch) in line.iter().enumerate() {
                let (top, bottom) = match ch {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                for (y, is_dark) in [(2 * row, top), (2 * row + 1, bottom)] {
                    let inside = |v: usize| (QUIET_ZONE..QUIET_ZONE + code.width()).contains(&v);
                    let want = inside(x)
                        && inside(y)
                        && code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Dark;
                    assert_eq!(is_dark, want, "module ({x}, {y})");
                }
            }
        }
        assert!(!drawn.contains(SECRET));
    }

    #[test]
    fn uri_of_each_form() {
        let uri = format!("otpauth://totp/Example:alice?secret={SECRET}");
        assert_eq!(
            otpauth_uri(format!("  {uri}\n").as_bytes(), "x")
                .unwrap()
                .as_str(),
            uri
        );
        let want = format!("otpauth://totp/prod%2Fgithub?secret={SECRET}");
        let loose = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq\n";
        assert_eq!(
            otpauth_uri(loose.as_bytes(), "prod/github")
                .unwrap()
                .as_str(),
            want
        );
        let yaml = format!("user: alice\ntotp: {SECRET}\n");
        assert_eq!(
            otpauth_uri(yaml.as_bytes(), "prod/github")
                .unwrap()
                .as_str(),
            want
        );
        let yaml = format!("otpauth: {uri}\n");
        assert_eq!(otpauth_uri(yaml.as_bytes(), "y").unwrap().as_str(), uri);
        assert!(otpauth_uri(b"user: alice\n", "z").is_none());
    }
}
