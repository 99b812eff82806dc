//! Secrets as environment variables: their names, env files that map names
//! to references, and the formats `sesto export` writes.
//!
//! A secret named `db-password` becomes `DB_PASSWORD`. Two secrets that map
//! to one name, or a name that is no valid variable, are errors naming both.
//! Values pass byte for byte; a value with a NUL byte cannot be an
//! environment variable and is an error for the env formats.

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use crate::deploy::template::{Reference, SCHEME};
use crate::error::{Error, Result};

/// The environment variable name for a secret's name: ASCII letters upper
/// cased, `-`, `.` and spaces turned into `_`, and `_` between a lower-case
/// letter or digit and an upper-case one (`apiKey` → `API_KEY`).
pub fn env_name(name: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => {
                out.push(c.to_ascii_uppercase());
                prev_lower = true;
            }
            'A'..='Z' => {
                if prev_lower {
                    out.push('_');
                }
                out.push(c);
                prev_lower = false;
            }
            '-' | '.' | ' ' | '_' => {
                out.push('_');
                prev_lower = false;
            }
            _ => {
                return Err(format!(
                    "{c:?} has no place in an environment variable name"
                ))
            }
        }
    }
    check_var(&out)?;
    Ok(out)
}

/// Checks a variable name: `[A-Za-z_][A-Za-z0-9_]*`, as POSIX shells take.
pub fn check_var(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("an environment variable name may not be empty".into()),
        Some(c) if c.is_ascii_digit() => Err(format!(
            "`{name}` starts with a digit, which no variable may"
        )),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            Err(format!("`{name}` is not a valid variable name"))
        }
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => Err(format!(
            "`{name}` is not a valid variable name (letters, digits and _ only)"
        )),
        _ => Ok(()),
    }
}

/// One variable: its name, where it came from (for messages) and its value.
pub struct Var {
    /// The variable name.
    pub name: String,
    /// What set it: a secret's path or an env file's line.
    pub source: String,
    value: Zeroizing<Vec<u8>>,
}

impl Var {
    /// The value's bytes. Never print or log them.
    pub fn expose_value(&self) -> &[u8] {
        &self.value
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({} from {}, <redacted>)", self.name, self.source)
    }
}

/// Variables by name, each name set once.
#[derive(Debug, Default)]
pub struct Vars(BTreeMap<String, Var>);

impl Vars {
    /// Adds a variable; a name already set is an error naming both sources.
    pub fn add(&mut self, name: String, source: String, value: Zeroizing<Vec<u8>>) -> Result<()> {
        if let Some(old) = self.0.get(&name) {
            return Err(Error::Value(format!(
                "{} and {source} both set {name}; rename one, or name them in an env file",
                old.source
            )));
        }
        self.0.insert(
            name.clone(),
            Var {
                name,
                source,
                value,
            },
        );
        Ok(())
    }

    /// Adds the secrets of a folder, named by [`env_name`].
    pub fn add_folder(
        &mut self,
        folder: &str,
        secrets: Vec<(String, crate::store::read::Secret)>,
    ) -> Result<()> {
        let folder = folder.trim_matches('/');
        for (name, secret) in secrets {
            let source = if folder.is_empty() {
                name.clone()
            } else {
                format!("{folder}/{name}")
            };
            let var = env_name(&name).map_err(|why| {
                Error::Value(format!(
                    "{source}: {why}; rename the secret, or name it in an env file \
                     (NAME={SCHEME}{source})"
                ))
            })?;
            self.add(var, source, Zeroizing::new(secret.expose_value().to_vec()))?;
        }
        Ok(())
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Var> {
        self.0.values()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fails on the first value an environment cannot hold (a NUL byte).
    pub fn check_env_safe(&self) -> Result<()> {
        match self.0.values().find(|v| v.value.contains(&0)) {
            Some(v) => Err(Error::Value(format!(
                "{} ({}): the value holds a NUL byte, which no environment variable can \
                 carry; use `sesto materialize` or `sesto get` to pass it as a file",
                v.name, v.source
            ))),
            None => Ok(()),
        }
    }
}

/// What one line of an env file sets.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// A value from the store.
    Ref(Reference),
    /// A value written in the file itself.
    Literal(String),
}

/// Largest env file read.
pub const MAX_ENV_FILE: usize = 1 << 20;

/// Most variables the env files of one command may set, together. Far more
/// than any program reads, and far fewer than would strain memory or the
/// kernel's limit on an environment's size.
pub const MAX_ENV_VARS: usize = 10_000;

/// Parses an env file: `NAME=sesto://path[#field]` or `NAME=literal` per
/// line, `export ` allowed before a name, `#` comments and blank lines
/// ignored, a literal optionally in matching single or double quotes (taken
/// as written, no escapes). Errors name the file and line.
pub fn parse_env_file(file: &Path, text: &[u8]) -> Result<Vec<(String, String, EnvValue)>> {
    let shown = file.display();
    if text.len() > MAX_ENV_FILE {
        return Err(Error::Value(format!(
            "{shown}: an env file is at most 1 MiB"
        )));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::Value(format!("{shown}: an env file must be UTF-8 text")))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{shown}:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| Error::Value(format!("{at}: expected NAME={SCHEME}path#field")))?;
        let name = name.trim_end();
        check_var(name).map_err(|why| Error::Value(format!("{at}: {why}")))?;
        let value = value.trim_start();
        let value = if value.starts_with(SCHEME) {
            EnvValue::Ref(
                Reference::parse(value).map_err(|why| Error::Value(format!("{at}: {why}")))?,
            )
        } else {
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(value);
            EnvValue::Literal(unquoted.to_string())
        };
        if out.len() == MAX_ENV_VARS {
            return Err(too_many_vars(&at));
        }
        out.push((name.to_string(), at, value));
    }
    Ok(out)
}

/// The error for an env file line past [`MAX_ENV_VARS`]; `at` names it.
pub fn too_many_vars(at: &str) -> Error {
    Error::Value(format!(
        "{at}: env files may set at most {MAX_ENV_VARS} variables together; \
         split the command's settings, or take a whole folder with `sesto exec FOLDER`"
    ))
}

/// An output format of `sesto export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `NAME='value'` lines, for docker --env-file, compose and dotenv loaders
    Dotenv,
    /// One JSON object of names to values (values must be UTF-8)
    Json,
    /// One YAML mapping of names to values (values must be UTF-8)
    Yaml,
    /// `export NAME='value'` lines for `eval` in sh, bash or zsh
    Shell,
    /// Blocks for $GITHUB_ENV, with an ::add-mask:: command per value
    GithubActions,
}

/// Writes `vars` in `format`. For GitHub Actions the variable blocks go to
/// `env_out` and the mask commands to `out`; with `env_out` `None` the
/// blocks go to `out` without masks. `delimiter` ends each heredoc block and
/// must not occur in any value (pass a random one).
pub fn write(
    vars: &Vars,
    format: Format,
    out: &mut dyn std::io::Write,
    env_out: Option<&mut dyn std::io::Write>,
    delimiter: &str,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Value(format!("writing the output failed: {e}"));
    let mut buf = Zeroizing::new(Vec::new());
    match format {
        Format::Dotenv | Format::Shell => {
            vars.check_env_safe()?;
            let prefix = if format == Format::Shell {
                "export "
            } else {
                ""
            };
            for v in vars.iter() {
                buf.extend_from_slice(format!("{prefix}{}=", v.name).as_bytes());
                if format == Format::Dotenv && !v.value.contains(&b'\'') {
                    if v.value.contains(&b'\n') {
                        dotenv_double_quoted(&v.value, &mut buf);
                    } else {
                        buf.push(b'\'');
                        buf.extend_from_slice(&v.value);
                        buf.push(b'\'');
                    }
                } else if format == Format::Dotenv {
                    dotenv_double_quoted(&v.value, &mut buf);
                } else {
                    shell_quote(&v.value, &mut buf);
                }
                buf.push(b'\n');
            }
        }
        Format::Json => {
            let mut map = serde_json::Map::new();
            for v in vars.iter() {
                map.insert(v.name.clone(), utf8(v, format)?.into());
            }
            let text = Zeroizing::new(serde_json::to_string_pretty(&map).expect("strings"));
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'\n');
            // serde_json keeps no copy, but the map holds the values.
            for (_, v) in map.iter_mut() {
                if let serde_json::Value::String(s) = v {
                    zeroize::Zeroize::zeroize(s);
                }
            }
        }
        Format::Yaml => {
            let mut map = BTreeMap::new();
            for v in vars.iter() {
                map.insert(v.name.as_str(), utf8(v, format)?);
            }
            let text = Zeroizing::new(serde_yaml::to_string(&map).expect("strings"));
            buf.extend_from_slice(text.as_bytes());
        }
        Format::GithubActions => {
            vars.check_env_safe()?;
            let mut masks = Vec::new();
            for v in vars.iter() {
                if contains(&v.value, delimiter.as_bytes()) {
                    return Err(Error::Value(format!(
                        "{}: the value holds the block delimiter; run again",
                        v.name
                    )));
                }
                buf.extend_from_slice(format!("{}<<{delimiter}\n", v.name).as_bytes());
                buf.extend_from_slice(&v.value);
                buf.extend_from_slice(format!("\n{delimiter}\n").as_bytes());
                // One mask per line: the runner masks line by line.
                for line in v.value.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        masks.extend_from_slice(b"::add-mask::");
                        for &b in line {
                            match b {
                                b'%' => masks.extend_from_slice(b"%25"),
                                b'\r' => masks.extend_from_slice(b"%0D"),
                                _ => masks.push(b),
                            }
                        }
                        masks.push(b'\n');
                    }
                }
            }
            if let Some(env_out) = env_out {
                out.write_all(&masks).map_err(io)?;
                zeroize::Zeroize::zeroize(&mut masks);
                return env_out.write_all(&buf).map_err(io);
            }
            zeroize::Zeroize::zeroize(&mut masks);
        }
    }
    out.write_all(&buf).map_err(io)
}

fn utf8(v: &Var, format: Format) -> Result<&str> {
    std::str::from_utf8(&v.value).map_err(|_| {
        Error::Value(format!(
            "{} ({}): the value is not UTF-8 text, which {format:?} cannot hold; \
             use --format shell or `sesto materialize`",
            v.name, v.source
        ))
    })
}

/// `'…'` with each `'` written as `'\''`: exact for every byte but NUL.
fn shell_quote(value: &[u8], out: &mut Vec<u8>) {
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

/// `"…"` with `\`, `"`, `$` and newlines escaped, as dotenv loaders read it.
fn dotenv_double_quoted(value: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'$' => out.extend_from_slice(b"\\$"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &[u8])]) -> Vars {
        let mut v = Vars::default();
        for (name, value) in list {
            v.add(
                name.to_string(),
                format!("t/{name}"),
                Zeroizing::new(value.to_vec()),
            )
            .unwrap();
        }
        v
    }

    fn written(v: &Vars, f: Format) -> Result<String> {
        let mut out = Vec::new();
        write(v, f, &mut out, None, "EOF_1234")?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn names_become_upper_snake_case() {
        for (name, var) in [
            ("db-password", "DB_PASSWORD"),
            ("api.key", "API_KEY"),
            ("apiKey", "API_KEY"),
            ("TLS_CERT", "TLS_CERT"),
            ("aws secret", "AWS_SECRET"),
            ("v2Token", "V2_TOKEN"),
            ("_x", "_X"),
        ] {
            assert_eq!(env_name(name).unwrap(), var, "{name}");
        }
        for bad in ["2fa", "pass#word", "ключ", "a=b", "", "-"] {
            // "-" becomes "_", a valid name.
            if bad == "-" {
                assert_eq!(env_name(bad).unwrap(), "_");
                continue;
            }
            assert!(env_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_set_twice_names_both_sources() {
        let mut v = vars(&[("DB_PASSWORD", b"x")]);
        let e = v
            .add(
                "DB_PASSWORD".into(),
                "prod/db_password".into(),
                Zeroizing::new(vec![]),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/DB_PASSWORD and prod/db_password"), "{e}");
    }

    #[test]
    fn env_formats_refuse_nul_and_name_it() {
        let v = vars(&[("A", b"ok"), ("B", b"x\0y")]);
        for f in [Format::Dotenv, Format::Shell, Format::GithubActions] {
            let e = written(&v, f).unwrap_err().to_string();
            assert!(e.contains("B (t/B)") && e.contains("NUL"), "{e}");
            assert!(!e.contains("x\0y"));
        }
        // JSON and YAML can hold a NUL.
        assert!(written(&v, Format::Json).unwrap().contains("\\u0000"));
    }

    #[test]
    fn non_utf8_values_fail_json_and_yaml_only() {
        let v = vars(&[("A", b"\xff\xfe")]);
        assert!(written(&v, Format::Json).is_err());
        assert!(written(&v, Format::Yaml).is_err());
        let mut out = Vec::new();
        write(&v, Format::Shell, &mut out, None, "EOF").unwrap();
        assert_eq!(out, b"export A='\xff\xfe'\n");
    }

    #[test]
    fn formats_quote_what_needs_quoting() {
        let v = vars(&[("A", b"it's $x"), ("B", b"line1\nline2"), ("C", b"plain")]);
        assert_eq!(
            written(&v, Format::Dotenv).unwrap(),
            "A=\"it's \\$x\"\nB=\"line1\\nline2\"\nC='plain'\n"
        );
        assert_eq!(
            written(&v, Format::Shell).unwrap(),
            "export A='it'\\''s $x'\nexport B='line1\nline2'\nexport C='plain'\n"
        );
        let mut masks = Vec::new();
        let mut env = Vec::new();
        write(
            &v,
            Format::GithubActions,
            &mut masks,
            Some(&mut env),
            "EOF_1",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(env).unwrap(),
            "A<<EOF_1\nit's $x\nEOF_1\nB<<EOF_1\nline1\nline2\nEOF_1\nC<<EOF_1\nplain\nEOF_1\n"
        );
        assert_eq!(
            String::from_utf8(masks).unwrap(),
            "::add-mask::it's $x\n::add-mask::line1\n::add-mask::line2\n::add-mask::plain\n"
        );
        let v = vars(&[("A", b"x EOF_1 y")]);
        assert!(write(&v, Format::GithubActions, &mut Vec::new(), None, "EOF_1").is_err());
    }

    #[test]
    fn env_files_parse_refs_literals_and_comments() {
        let text = b"# app\n\nDB_URL=sesto://prod/db#url\nexport API_KEY = sesto://prod/api/key\n\
                     MODE='production'\nEMPTY=\n";
        let got = parse_env_file(Path::new("app.env"), text).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].0, "DB_URL");
        assert_eq!(got[0].1, "app.env:3");
        assert!(matches!(&got[0].2, EnvValue::Ref(r) if r.to_string() == "sesto://prod/db#url"));
        assert_eq!(got[1].0, "API_KEY");
        assert_eq!(got[2].2, EnvValue::Literal("production".into()));
        assert_eq!(got[3].2, EnvValue::Literal(String::new()));
    }

    #[test]
    fn hostile_env_files_fail_with_file_and_line() {
        for (text, want) in [
            (&b"OK=1\nno equals sign\n"[..], "app.env:2"),
            (b"1BAD=sesto://a/b", "app.env:1"),
            (b"A-B=x", "app.env:1"),
            (b"=x", "app.env:1"),
            (b"X=sesto://../../etc/passwd", "app.env:1"),
            (b"X=sesto://a/b#", "app.env:1"),
            (b"\xff=1", "UTF-8"),
        ] {
            let e = parse_env_file(Path::new("app.env"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let huge = vec![b'#'; MAX_ENV_FILE + 1];
        assert!(parse_env_file(Path::new("app.env"), &huge).is_err());
        let at_cap: String = (0..MAX_ENV_VARS).map(|i| format!("V{i}=x\n")).collect();
        assert_eq!(
            parse_env_file(Path::new("app.env"), at_cap.as_bytes())
                .unwrap()
                .len(),
            MAX_ENV_VARS
        );
        let past = format!("{at_cap}# a comment does not count\nW=x\n");
        let e = parse_env_file(Path::new("app.env"), past.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("app.env:10002") && e.contains("at most 10000"),
            "{e}"
        );
    }
}
