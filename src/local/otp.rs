//! TOTP codes (RFC 6238) from a secret's value: an `otpauth://totp/` URI, a bare
//! base32 secret, or a YAML mapping holding either under `otpauth`, `otp` or `totp`.
//!
//! Parsing is ours; base32 decoding and the HMAC arithmetic are `totp-rs`'s.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::{Zeroize, Zeroizing};

/// Largest value [`current_code`] reads. Real OTP values are under a kilobyte; the
/// cap keeps a hostile value from costing a large parse.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Longest period, in seconds, an otpauth URI may ask for.
pub const MAX_PERIOD: u64 = 3600;

/// Fields of a YAML mapping looked at for an OTP secret, in this order.
pub const MAPPING_FIELDS: [&str; 3] = ["otpauth", "otp", "totp"];

/// A one-time code and how long it stays valid.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    /// The code, 6 to 8 decimal digits with leading zeros kept.
    pub code: String,
    /// Seconds until the next period starts and the code changes (1..=period).
    pub remaining_seconds: u64,
}

// The code grants a login for a few seconds: keep it out of logs.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("code", &"<redacted>")
            .field("remaining_seconds", &self.remaining_seconds)
            .finish()
    }
}

/// Why no code could be made. No variant carries any part of the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtpError {
    /// The value is none of the accepted forms.
    #[error(
        "not an otpauth URI, base32 secret or mapping with an `otpauth`, `otp` or `totp` field"
    )]
    NotOtp,
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("the value is larger than {MAX_VALUE_BYTES} bytes, too large for an OTP secret")]
    TooLarge,
    /// An `otpauth://hotp/` URI: counter-based codes need state sesto does not keep.
    #[error("HOTP (counter-based) codes are not supported; only otpauth://totp/ URIs are")]
    Hotp,
    /// An otpauth URI of a type other than `totp` or `hotp`.
    #[error("unsupported otpauth URI type; expected otpauth://totp/")]
    UnsupportedType,
    /// An otpauth URI without a `secret` parameter.
    #[error("the otpauth URI has no `secret` parameter")]
    MissingSecret,
    /// A parameter sesto reads appears twice, so its meaning is ambiguous.
    #[error("the otpauth URI has the parameter `{0}` more than once")]
    DuplicateParameter(&'static str),
    /// A `%` not followed by two hex digits, or an encoding that is not UTF-8.
    #[error("invalid percent-encoding in the otpauth URI")]
    PercentEncoding,
    /// The secret is not valid base32 (RFC 4648 alphabet `A-Z2-7`).
    #[error("invalid base32 in the OTP secret")]
    Base32,
    /// The secret decodes to no bytes at all.
    #[error("the OTP secret is empty")]
    EmptySecret,
    /// An `algorithm` other than SHA1, SHA256 or SHA512. Holds the name when it is
    /// short and plain enough to show, else nothing.
    #[error("unsupported algorithm{}; expected SHA1, SHA256 or SHA512", .0.as_deref().map(|a| format!(" {a}")).unwrap_or_default())]
    Algorithm(Option<String>),
    /// A `digits` parameter other than 6, 7 or 8.
    #[error("digits must be 6, 7 or 8")]
    Digits,
    /// A `period` parameter outside 1..=3600.
    #[error("period must be 1..=3600 seconds")]
    Period,
    /// The time given is before 1970.
    #[error("the system clock is set before 1970; cannot compute a TOTP code")]
    Clock,
}

/// The TOTP code valid at `now` for the secret value `value`.
///
/// `value` is one of, after trimming surrounding whitespace:
/// - an `otpauth://totp/LABEL?secret=BASE32&algorithm=SHA1&digits=6&period=30` URI
///   (parameters percent-decoded, `secret` required, the others defaulting as shown,
///   unknown ones such as `issuer` ignored);
/// - a bare base32 secret (spaces and lowercase allowed, `=` padding optional);
/// - a YAML mapping whose first field among `otpauth`, `otp`, `totp` holds one of
///   the two forms above.
pub fn current_code(value: &[u8], now: SystemTime) -> Result<Code, OtpError> {
    let params = parse_value(value)?;
    let time = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| OtpError::Clock)?
        .as_secs();
    let totp = TOTP::new_unchecked(
        params.algorithm,
        params.digits,
        1,
        params.period,
        params.key.to_vec(),
    );
    Ok(Code {
        code: totp.generate(time),
        remaining_seconds: params.period - time % params.period,
    })
}

/// What a code is computed from.
struct Params {
    key: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    digits: usize,
    period: u64,
}

fn parse_value(value: &[u8]) -> Result<Params, OtpError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(OtpError::TooLarge);
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| OtpError::NotOtp)?
        .trim();
    if text.is_empty() {
        return Err(OtpError::NotOtp);
    }
    if let Some(params) = parse_uri_or_base32(text) {
        return params;
    }
    parse_mapping(text)
}

/// `Some` when `text` looks like a URI or a base32 secret, even a bad one.
fn parse_uri_or_base32(text: &str) -> Option<Result<Params, OtpError>> {
    // A YAML secret may start with an `otpauth:` field (a space or the end
    // of the line after the colon); a URI never has one there.
    let after = text.get("otpauth:".len()..).and_then(|r| r.chars().next());
    if starts_with_ignore_case(text, "otpauth:") && after.is_some_and(|c| !c.is_whitespace()) {
        return Some(parse_uri(text));
    }
    let looks_base32 = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b.is_ascii_whitespace());
    looks_base32.then(|| {
        Ok(Params {
            key: decode_base32(text)?,
            algorithm: Algorithm::SHA1,
            digits: 6,
            period: 30,
        })
    })
}

fn parse_mapping(text: &str) -> Result<Params, OtpError> {
    // The parser's own error text may quote the input, so it is never shown.
    crate::format::limits::check_yaml(text.as_bytes()).map_err(|_| OtpError::NotOtp)?;
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|_| OtpError::NotOtp)?;
    let found = match doc.as_mapping() {
        Some(map) => MAPPING_FIELDS
            .iter()
            .find_map(|field| map.get(*field))
            .map(|field| field.as_str().map(|s| Zeroizing::new(s.trim().to_owned()))),
        None => None,
    };
    scrub(&mut doc);
    match found {
        Some(Some(inner)) => parse_uri_or_base32(&inner).unwrap_or(Err(OtpError::NotOtp)),
        _ => Err(OtpError::NotOtp),
    }
}

/// Zeroize the strings of a parsed YAML document (best effort: keys and the
/// parser's own buffers are out of reach).
fn scrub(value: &mut serde_yaml::Value) {
    match value {
        serde_yaml::Value::String(s) => s.zeroize(),
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(scrub),
        serde_yaml::Value::Mapping(map) => map.values_mut().for_each(scrub),
        serde_yaml::Value::Tagged(tagged) => scrub(&mut tagged.value),
        _ => {}
    }
}

fn parse_uri(uri: &str) -> Result<Params, OtpError> {
    let rest = &uri["otpauth:".len()..];
    let rest = rest.strip_prefix("//").ok_or(OtpError::UnsupportedType)?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let kind = path.split('/').next().unwrap_or_default();
    if kind.eq_ignore_ascii_case("hotp") {
        return Err(OtpError::Hotp);
    }
    if !kind.eq_ignore_ascii_case("totp") {
        return Err(OtpError::UnsupportedType);
    }

    let mut secret: Option<Zeroizing<Vec<u8>>> = None;
    let mut algorithm: Option<Zeroizing<Vec<u8>>> = None;
    let mut digits: Option<Zeroizing<Vec<u8>>> = None;
    let mut period: Option<Zeroizing<Vec<u8>>> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)?;
        let (slot, name) = match key.to_ascii_lowercase().as_slice() {
            b"secret" => (&mut secret, "secret"),
            b"algorithm" => (&mut algorithm, "algorithm"),
            b"digits" => (&mut digits, "digits"),
            b"period" => (&mut period, "period"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(OtpError::DuplicateParameter(name));
        }
        *slot = Some(percent_decode(value)?);
    }

    let secret = secret.ok_or(OtpError::MissingSecret)?;
    let secret = std::str::from_utf8(&secret).map_err(|_| OtpError::Base32)?;
    Ok(Params {
        key: decode_base32(secret)?,
        algorithm: match algorithm.as_ref().map(|a| a.as_slice()) {
            None => Algorithm::SHA1,
            Some(name) => parse_algorithm(name)?,
        },
        digits: match digits.as_ref().map(|d| d.as_slice()) {
            None => 6,
            Some(b"6") => 6,
            Some(b"7") => 7,
            Some(b"8") => 8,
            Some(_) => return Err(OtpError::Digits),
        },
        period: match period.as_ref().map(|p| p.as_slice()) {
            None => 30,
            Some(p) => std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse::<u64>().ok())
                .filter(|p| (1..=MAX_PERIOD).contains(p))
                .ok_or(OtpError::Period)?,
        },
    })
}

fn parse_algorithm(name: &[u8]) -> Result<Algorithm, OtpError> {
    match name.to_ascii_uppercase().as_slice() {
        b"SHA1" => Ok(Algorithm::SHA1),
        b"SHA256" => Ok(Algorithm::SHA256),
        b"SHA512" => Ok(Algorithm::SHA512),
        _ => {
            // Echo the name only when it cannot be a secret pasted in the wrong place.
            let shown = (name.len() <= 10
                && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
            .then(|| String::from_utf8_lossy(name).into_owned());
            Err(OtpError::Algorithm(shown))
        }
    }
}

/// Decode `%XX` escapes and `+` (a space in query strings).
fn percent_decode(s: &str) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    let bytes = s.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(OtpError::PercentEncoding)?;
                let hi = hex_value(hex[0]).ok_or(OtpError::PercentEncoding)?;
                let lo = hex_value(hex[1]).ok_or(OtpError::PercentEncoding)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&out).is_err() {
        return Err(OtpError::PercentEncoding);
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode a base32 secret written loosely: spaces anywhere, any case, `=` padding
/// optional.
fn decode_base32(text: &str) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    let mut normalized = Zeroizing::new(String::with_capacity(text.len()));
    normalized.extend(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase()),
    );
    let unpadded = normalized.trim_end_matches('=');
    if unpadded.is_empty() {
        return Err(OtpError::EmptySecret);
    }
    let padding = normalized.len() - unpadded.len();
    let valid = unpadded.bytes().all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
        // Lengths 1, 3 and 6 mod 8 are not the encoding of any byte string.
        && !matches!(unpadded.len() % 8, 1 | 3 | 6)
        && padding < 8
        && (padding == 0 || normalized.len() % 8 == 0);
    if !valid {
        return Err(OtpError::Base32);
    }
    // With totp-rs's `zeroize` feature, `Secret` and `TOTP` wipe themselves on drop.
    let key = Secret::Encoded(unpadded.to_owned())
        .to_bytes()
        .map(Zeroizing::new)
        .map_err(|_| OtpError::Base32)?;
    if key.is_empty() {
        return Err(OtpError::EmptySecret);
    }
    Ok(key)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests;
