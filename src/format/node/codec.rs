//! A node body's bytes: encoding, and decoding with a fast path for the
//! forms sesto writes; anything else goes through serde_yaml and must
//! re-serialise to the same bytes.

use zeroize::Zeroizing;

use super::*;

/// Serialises a body to the exact bytes that will be signed.
pub fn encode_body(body: &Body) -> Zeroizing<Vec<u8>> {
    let text = Zeroizing::new(serde_yaml::to_string(body).expect("a body always serialises"));
    let local = format!("value: {BINARY_LOCAL_TAG} ");
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 8));
    for line in text.split_inclusive('\n') {
        // Top-level keys start at column 0, so this only ever matches the value field.
        match line.strip_prefix(local.as_str()) {
            Some(rest) => {
                out.extend_from_slice(b"value: !!binary ");
                out.extend_from_slice(rest.as_bytes());
            }
            None => out.extend_from_slice(line.as_bytes()),
        }
    }
    out
}

/// Parses body bytes, refusing anything that is not exactly what
/// [`encode_body`] would write for the parsed body (aliases, anchors, comments,
/// duplicate or reordered fields).
///
/// Most bodies take a fast path: a strict line parser for the layout
/// `encode_body` writes, accepting only plain scalars that serde_yaml also
/// writes plain, so what it accepts is canonical by construction. Anything
/// else (quoted names, say) goes through serde_yaml and a comparison with the
/// body written out again. Reading a folder of 200 entries is the bulk of a
/// `get`, and the fast path makes it about twenty times cheaper.
pub fn decode_body(bytes: &[u8]) -> Result<Body, FormatError> {
    let body = match decode_simple(bytes) {
        Some(body) => body,
        None => {
            match declared_version(bytes) {
                Some(v) if v != u64::from(BODY_FORMAT) => {
                    return Err(version_error(v, BODY_FORMAT))
                }
                _ => {}
            }
            crate::format::limits::check_yaml(bytes)?;
            let body: Body = serde_yaml::from_slice(bytes).map_err(yaml_error)?;
            if encode_body(&body).as_slice() != bytes {
                return Err(FormatError::NotCanonical);
            }
            body
        }
    };
    body.check()?;
    Ok(body)
}

type Lines<'a> = std::iter::Peekable<std::str::Split<'a, char>>;

/// The value of the next line if it is `key: value`, consuming it.
fn take<'a>(lines: &mut Lines<'a>, key: &str) -> Option<&'a str> {
    let value = lines.peek()?.strip_prefix(key)?.strip_prefix(": ")?;
    lines.next();
    Some(value)
}

/// The fast path of [`decode_body`]; `None` sends the body down the slow path.
pub(super) fn decode_simple(bytes: &[u8]) -> Option<Body> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let lines = &mut text.split('\n').peekable();
    let sesto = number(take(lines, "sesto")?)?;
    let store = hex_id(take(lines, "store")?)?;
    let id = hex_id(take(lines, "id")?)?.parse().ok()?;
    let kind = kind_of(take(lines, "kind")?)?;
    let name = match take(lines, "name")? {
        "''" => String::new(),
        v => name_scalar(v, false)?,
    };
    let mut body = Body::new(store, id, kind, &name);
    body.sesto = u32::try_from(sesto).ok()?;
    body.version = number(take(lines, "version")?)?;
    if let Some(v) = take(lines, "path") {
        body.path = Some(name_scalar(v, true)?);
    }
    if let Some(v) = take(lines, "recipient") {
        body.recipient = Some(plain_str(v, false)?.to_string());
    }
    if lines.peek() == Some(&"children:") {
        lines.next();
        while let Some(name) = take(lines, "- name") {
            body.children.push(Entry {
                name: name_scalar(name, false)?,
                kind: kind_of(take(lines, "  kind")?)?,
                id: hex_id(take(lines, "  id")?)?.parse().ok()?,
                key: NodeKey::new(age_key(take(lines, "  key")?)?.to_string()),
            });
        }
        if body.children.is_empty() {
            return None;
        }
    }
    if let Some(v) = take(lines, "value") {
        let b64 = v.strip_prefix("!!binary ")?;
        if b64.is_empty()
            || !b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            return None;
        }
        use base64::Engine;
        body.value = Some(Value::new(
            base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        ));
    }
    if let Some(v) = take(lines, "updated") {
        // Exactly `YYYY-MM-DDTHH:MM:SSZ`, which serde_yaml writes plain; any
        // other shape takes the slow path (found by tests/properties.rs: a
        // trailing `:` was taken here though serde_yaml quotes it).
        let ok = v.len() == 20
            && v.bytes().enumerate().all(|(i, c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !ok {
            return None;
        }
        body.updated = Some(v.to_string());
    }
    if let Some(v) = take(lines, "updated_by") {
        body.updated_by = Some(name_scalar(v, false)?);
    }
    if lines.peek() == Some(&"exposed_to:") {
        lines.next();
        while let Some(member) = lines.peek().and_then(|l| l.strip_prefix("- ")) {
            body.exposed_to.push(name_scalar(member, false)?);
            lines.next();
        }
        if body.exposed_to.is_empty() {
            return None;
        }
    }
    lines.next().is_none().then_some(body)
}

fn kind_of(v: &str) -> Option<Kind> {
    match v {
        "folder" => Some(Kind::Folder),
        "secret" => Some(Kind::Secret),
        _ => None,
    }
}

/// A decimal number as serde_yaml writes it: digits, no leading zero.
fn number(v: &str) -> Option<u64> {
    let canonical =
        !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    canonical.then(|| v.parse().ok()).flatten()
}

/// 32 lowercase hex digits that serde_yaml writes plain: not all digits and
/// not a float such as `123e45` (those it quotes; they take the slow path).
pub(super) fn hex_id(v: &str) -> Option<&str> {
    // One pass without early exits, which the compiler vectorises: a folder
    // of 10,000 entries has as many ids to check.
    let (hex, letters, es) = v.bytes().fold((true, 0usize, 0usize), |(hex, l, e), c| {
        let digit = c.is_ascii_digit();
        let letter = matches!(c, b'a'..=b'f');
        (
            hex & (digit | letter),
            l + usize::from(letter),
            e + usize::from(c == b'e'),
        )
    });
    let float_like = letters == 1 && es == 1;
    (v.len() == 32 && hex && letters > 0 && !float_like).then_some(v)
}

fn age_key(v: &str) -> Option<&str> {
    // Without early exits, as in hex_id: this ran at a tenth of a large `get`.
    let plain = v.bytes().fold(true, |ok, c| {
        ok & (c.is_ascii_uppercase() | c.is_ascii_digit() | (c == b'-'))
    });
    (v.starts_with("AGE-SECRET-KEY-1") && plain).then_some(v)
}

/// A name (a node's or a member's; with `slashes`, a path) as
/// [`encode_body`] writes it. Most are what [`plain_str`] reads. Any other
/// (`1password`, `a: b`, `café`) is read by serde_yaml alone, as one scalar,
/// and taken only if serde_yaml writes the string back as exactly these
/// bytes (it never folds lines: serde_yaml sets no width). So the rest of
/// the body stays on the fast path, where before one such name sent a whole
/// folder of 10,000 entries through serde_yaml, and what is taken is
/// canonical, as on the fast path.
fn name_scalar(v: &str, slashes: bool) -> Option<String> {
    if let Some(plain) = plain_str(v, slashes) {
        return Some(plain.to_string());
    }
    // Quoted, a name of 255 bytes is at most a few times that (escapes).
    if v.len() > 4096 || crate::format::limits::check_yaml(v.as_bytes()).is_err() {
        return None;
    }
    let s: String = serde_yaml::from_str(v).ok()?;
    let written = serde_yaml::to_string(&s).ok()?;
    (written.strip_suffix('\n')? == v).then_some(s)
}

/// A string that serde_yaml writes as a plain scalar, so that reading it
/// plain is canonical: it starts with a letter, holds only letters, digits,
/// spaces and `._@+-` (and `/` in paths), does not end in a space, and is
/// not a word YAML reads as something other than a string (`Email account`
/// is plain; `a: b` and ` a` are not, and go to [`name_scalar`]'s check).
pub(super) fn plain_str(v: &str, slashes: bool) -> Option<&str> {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let first_letter = v.bytes().next().is_some_and(|c| c.is_ascii_alphabetic());
    let chars_ok = v.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, b'.' | b'_' | b'@' | b'+' | b'-' | b' ')
            || (slashes && c == b'/')
    });
    let word = WORDS.iter().any(|w| v.eq_ignore_ascii_case(w));
    (first_letter && chars_ok && !word && !v.ends_with(['.', '-', ' '])).then_some(v)
}

pub(crate) fn yaml_error(e: serde_yaml::Error) -> FormatError {
    // serde_yaml's messages quote field names, never values of secret fields,
    // but a message can echo a scalar it could not place: keep only the kind.
    let text = e.to_string();
    let kind = text.split(" at line").next().unwrap_or(&text);
    let kind: String = if kind.contains("invalid type") || kind.contains("invalid value") {
        "a field has the wrong type".to_string()
    } else {
        kind.chars().take(120).collect()
    };
    match e.location() {
        Some(loc) => FormatError::Yaml(format!("{kind} (line {})", loc.line())),
        None => FormatError::Yaml(kind),
    }
}
