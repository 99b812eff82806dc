//! dotenv, JSON and YAML files as secrets: parsers for outside input that
//! return names and values, never panic, and name the line or key path (never
//! a value) in every error.
//!
//! dotenv: `NAME=value` lines, `export ` allowed, `#` comments; a value in
//! single quotes is literal, in double quotes it takes `\n`, `\r`, `\t`, `\"`,
//! `\\` and `\$` escapes; both kinds may span lines. An unquoted value ends at
//! ` #` and is trimmed.
//!
//! JSON and YAML: nested mappings become folders (an empty mapping an empty
//! folder), strings are stored as they are, integers and booleans as their
//! text. Lists, nulls and floats are refused with the key path: a list has
//! no single value, and a float's text (`1.10`) is lost in parsing, so it
//! must be quoted to say which text is meant.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::node;

/// One thing parsed from a file: a secret's value, or an empty folder, at a
/// path of names below the import's target.
pub(crate) enum Parsed {
    Secret(Vec<String>, Zeroizing<Vec<u8>>),
    Folder(Vec<String>),
}

/// Checks one name from a file: sesto's name rules, with where it came from
/// and the fix.
fn check(name: &str, at: &str) -> Result<()> {
    node::check_name(name).map_err(|e| {
        Error::Value(format!(
            "{at}: {e}; rename the key in the file (nothing was imported)"
        ))
    })
}

/// Parses a dotenv file. `source` names it in errors (`stdin`, a path).
pub(crate) fn parse_dotenv(bytes: &[u8], source: &str) -> Result<Vec<Parsed>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::Value(format!(
            "{source}: not UTF-8 text (bad byte at offset {}); is it a dotenv file?",
            e.valid_up_to()
        ))
    })?;
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = text.split('\n').enumerate();
    while let Some((i, raw)) = lines.next() {
        let at = format!("{source}:{}", i + 1);
        // The line's end is trimmed only outside quotes: a quoted value that
        // goes on past this line keeps its trailing spaces.
        let line = raw.trim_start();
        if line.trim_end().is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, rest)) = line.split_once('=') else {
            return Err(Error::Value(format!(
                "{at}: expected NAME=value (a dotenv line); nothing was imported"
            )));
        };
        let name = name.trim_end();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(Error::Value(format!(
                "{at}: {:?} is not a name (a name has no spaces); nothing was imported",
                shown(name)
            )));
        }
        check(name, &at)?;
        if let Some(first) = seen.insert(name.to_string(), i + 1) {
            return Err(Error::Value(format!(
                "{at}: {name} is set twice (first on line {first}); keep one (nothing was imported)"
            )));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let mut body = String::new();
                let mut current = &rest[1..];
                let mut line_no = i + 1;
                loop {
                    match quoted(current, q, &mut body) {
                        Some(after) => {
                            let after = after.trim_start();
                            if !(after.is_empty() || after.starts_with('#')) {
                                return Err(Error::Value(format!(
                                    "{source}:{line_no}: text after the closing quote of {name}; \
                                     quote the whole value (nothing was imported)"
                                )));
                            }
                            break;
                        }
                        None => {
                            body.push('\n');
                            match lines.next() {
                                Some((j, next)) => {
                                    line_no = j + 1;
                                    current = next;
                                }
                                None => {
                                    return Err(Error::Value(format!(
                                        "{at}: the quote that starts {name}'s value is never \
                                         closed; nothing was imported"
                                    )))
                                }
                            }
                        }
                    }
                }
                body
            }
            _ => {
                let end = rest.find(" #").or_else(|| rest.find("\t#"));
                rest[..end.unwrap_or(rest.len())].trim_end().to_string()
            }
        };
        let value = Zeroizing::new(value.into_bytes());
        out.push(Parsed::Secret(vec![name.to_string()], value));
    }
    Ok(out)
}

/// Reads a quoted value from `text` (just past the opening quote `q`) into
/// `out`; returns what follows the closing quote, or `None` when the line
/// ends first (the value goes on).
fn quoted<'t>(text: &'t str, q: char, out: &mut String) -> Option<&'t str> {
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Some(&text[i + 1..]);
        }
        if c == '\\' && q == '"' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e @ ('"' | '\\' | '$'))) => out.push(e),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
            continue;
        }
        out.push(c);
    }
    None
}

/// A mapping's entries, in the document's order.
type Entries = Vec<(String, Tree)>;

/// A parsed JSON or YAML document: what the visitor saw, before the walk
/// that names paths.
enum Tree {
    Text(Zeroizing<String>),
    Map(Entries),
    List,
    Null,
    Float,
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping, string, integer or boolean")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_i128<E>(self, v: i128) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_u128<E>(self, v: u128) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Tree, E> {
        Ok(Tree::Float)
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Tree, E> {
        Ok(Tree::Text(Zeroizing::new(v)))
    }
    fn visit_unit<E>(self) -> std::result::Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Tree, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Tree::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Tree, A::Error> {
        let mut entries: Entries = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        while let Some(Key(key)) = map.next_key()? {
            if !names.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "the key {:?} appears twice in one mapping",
                    shown(&key)
                )));
            }
            let value: Tree = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Tree::Map(entries))
    }
}

/// A mapping key: a string, or a YAML integer or boolean key as its text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// A name as shown in an error: at most 60 characters.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(60).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

/// Parses a JSON document whose top level is a mapping.
pub(crate) fn parse_json(bytes: &[u8], source: &str) -> Result<Vec<Parsed>> {
    // serde_json stops at 128 levels of nesting by itself.
    let tree: Tree = serde_json::from_slice(bytes)
        .map_err(|e| Error::Value(format!("{source}: not a JSON file sesto can import: {e}")))?;
    walk(tree, source)
}

/// Parses a YAML document whose top level is a mapping; aliases and deep
/// nesting are refused before or while parsing.
pub(crate) fn parse_yaml(bytes: &[u8], source: &str) -> Result<Vec<Parsed>> {
    crate::format::limits::check_yaml(bytes).map_err(|e| Error::Value(format!("{source}: {e}")))?;
    if std::str::from_utf8(bytes).is_ok_and(crate::store::read::has_alias) {
        return Err(Error::Value(format!(
            "{source}: uses YAML anchors or aliases (`&a`, `*a`), which sesto refuses; \
             write the values out"
        )));
    }
    let tree = serde_yaml::Deserializer::from_slice(bytes)
        .next()
        .map(Tree::deserialize)
        .transpose()
        .map_err(|e| Error::Value(format!("{source}: not a YAML file sesto can import: {e}")))?
        .unwrap_or(Tree::Null);
    if serde_yaml::Deserializer::from_slice(bytes).nth(1).is_some() {
        return Err(Error::Value(format!(
            "{source}: holds several YAML documents (`---`); import one at a time"
        )));
    }
    walk(tree, source)
}

/// Turns the document into secrets and folders, naming the key path of the
/// first thing that cannot be imported.
fn walk(tree: Tree, source: &str) -> Result<Vec<Parsed>> {
    let Tree::Map(top) = tree else {
        return Err(Error::Value(format!(
            "{source}: the top level must be a mapping of names to values or folders"
        )));
    };
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<String>, Entries)> = vec![(Vec::new(), top)];
    while let Some((at, entries)) = stack.pop() {
        for (key, value) in entries {
            let mut path = at.clone();
            path.push(key);
            let shown_path = path.join(".");
            let at_key = format!("{source}: key {shown_path}");
            check(path.last().map_or("", String::as_str), &at_key)?;
            if path.len() > node::MAX_DEPTH {
                return Err(Error::Value(format!(
                    "{at_key}: nested deeper than {} levels, more than sesto's paths hold",
                    node::MAX_DEPTH
                )));
            }
            let refuse = |what: &str, fix: &str| {
                Err(Error::Value(format!(
                    "{at_key} is {what}; {fix} (nothing was imported)"
                )))
            };
            match value {
                Tree::Text(text) => {
                    let bytes = Zeroizing::new(text.as_bytes().to_vec());
                    out.push(Parsed::Secret(path, bytes));
                }
                Tree::Map(children) if children.is_empty() => out.push(Parsed::Folder(path)),
                Tree::Map(children) => stack.push((path, children)),
                Tree::List => refuse(
                    "a list, which has no single value",
                    "make it one string (a YAML block `|` keeps lines) or a mapping of names",
                )?,
                Tree::Null => refuse("empty (null)", "give it a value or remove the key")?,
                Tree::Float => refuse(
                    "a floating-point number, whose exact text is lost in parsing",
                    "quote it (\"1.10\") to store that text",
                )?,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(parsed: Vec<Parsed>) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = parsed
            .into_iter()
            .map(|p| match p {
                Parsed::Secret(path, v) => (path.join("/"), v.to_vec()),
                Parsed::Folder(path) => (path.join("/") + "/", Vec::new()),
            })
            .collect();
        out.sort();
        out
    }

    #[track_caller]
    fn err(r: Result<Vec<Parsed>>) -> String {
        match r {
            Ok(p) => panic!("expected an error, got {:?}", secrets(p)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn dotenv_quotes_escapes_comments_and_export() {
        let text = b"# comment\n\nexport A=plain value # note\nB='single $x \\n'\n\
                     C=\"two\\nlines \\\"q\\\" \\\\ \\$HOME\"\nD=\"multi\nline\"\nE=\n F = spaced \n";
        let got = secrets(parse_dotenv(text, "f").unwrap());
        let want: Vec<(String, Vec<u8>)> = vec![
            ("A".into(), b"plain value".to_vec()),
            ("B".into(), b"single $x \\n".to_vec()),
            ("C".into(), b"two\nlines \"q\" \\ $HOME".to_vec()),
            ("D".into(), b"multi\nline".to_vec()),
            ("E".into(), b"".to_vec()),
            ("F".into(), b"spaced".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn hostile_dotenv_fails_with_line_and_no_value() {
        let cases: &[(&[u8], &str)] = &[
            (b"A=1\nnot a line\n", "f:2: expected NAME=value"),
            (b"A=1\nA=hunter2\n", "f:2: A is set twice (first on line 1)"),
            (b"a/b=hunter2\n", "names may not contain `/`"),
            (b"..=hunter2\n", "`.` and `..` are not names"),
            (b"A B=hunter2\n", "a name has no spaces"),
            (
                b"A=\"hunter2\n",
                "f:1: the quote that starts A's value is never closed",
            ),
            (b"A='hunter2' trailing\n", "text after the closing quote"),
            (b"A=\xff\xfehunter2\n", "not UTF-8"),
            (b"=hunter2\n", "is not a name"),
        ];
        for (text, want) in cases {
            let e = err(parse_dotenv(text, "f"));
            assert!(e.contains(want), "{e:?} lacks {want:?}");
            assert!(!e.contains("hunter2"), "a value leaked: {e}");
        }
    }

    #[test]
    fn huge_dotenv_lines_and_many_lines_parse_without_panic() {
        let mut long = b"A=".to_vec();
        long.extend(std::iter::repeat_n(b'x', 4 << 20));
        assert_eq!(
            secrets(parse_dotenv(&long, "f").unwrap())[0].1.len(),
            4 << 20
        );
        let unclosed = [b"A=\"".as_slice(), &vec![b'\n'; 1 << 20]].concat();
        assert!(err(parse_dotenv(&unclosed, "f")).contains("never closed"));
    }

    #[test]
    fn json_and_yaml_nest_into_folders_with_values_exact() {
        let json = br#"{"prod": {"db": {"password": "p\"w\n", "port": 5432, "tls": true}, "empty": {}}, "top": "x"}"#;
        let yaml = b"prod:\n  db:\n    password: \"p\\\"w\\n\"\n    port: 5432\n    tls: true\n  empty: {}\ntop: x\n";
        let want: Vec<(String, Vec<u8>)> = vec![
            ("prod/db/password".into(), b"p\"w\n".to_vec()),
            ("prod/db/port".into(), b"5432".to_vec()),
            ("prod/db/tls".into(), b"true".to_vec()),
            ("prod/empty/".into(), b"".to_vec()),
            ("top".into(), b"x".to_vec()),
        ];
        assert_eq!(secrets(parse_json(json, "f").unwrap()), want);
        assert_eq!(secrets(parse_yaml(yaml, "f").unwrap()), want);
        let block = b"key: |\n  line one\n  line two\n";
        assert_eq!(
            secrets(parse_yaml(block, "f").unwrap())[0].1,
            b"line one\nline two\n"
        );
    }

    #[test]
    fn hostile_json_and_yaml_fail_naming_the_key_and_no_value() {
        let json: &[(&[u8], &str)] = &[
            (br#"{"a": {"hosts": ["hunter2"]}}"#, "key a.hosts is a list"),
            (br#"{"a": null}"#, "key a is empty (null)"),
            (
                br#"{"a": {"v": 1.10}}"#,
                "key a.v is a floating-point number",
            ),
            (br#"{"a/b": "hunter2"}"#, "key a/b: invalid name"),
            (br#"{"a": "hunter2", "a": "x"}"#, "appears twice"),
            (br#"["hunter2"]"#, "top level must be a mapping"),
            (br#"{"a": "hunter2""#, "not a JSON file"),
            (b"\xff\xfe", "not a JSON file"),
        ];
        for (text, want) in json {
            let e = err(parse_json(text, "f"));
            assert!(e.contains(want), "{e:?} lacks {want:?}");
            assert!(!e.contains("hunter2"), "a value leaked: {e}");
        }
        let yaml: &[(&[u8], &str)] = &[
            (b"a:\n  hosts:\n    - hunter2\n", "key a.hosts is a list"),
            (b"a:\n", "key a is empty (null)"),
            (b"\"..\": hunter2\n", "`.` and `..` are not names"),
            (b"a: &x hunter2\nb: *x\n", "anchors or aliases"),
            (b"a: hunter2\na: x\n", "not a YAML file"),
            (b"a: 1\n---\nb: 2\n", "several YAML documents"),
            (b"a: !tag hunter2\n", "not a YAML file"),
            (b"hunter2", "top level must be a mapping"),
            (b"a: [\"hunter2\"\n", "not a YAML file"),
        ];
        for (text, want) in yaml {
            let e = err(parse_yaml(text, "f"));
            assert!(e.contains(want), "{e:?} lacks {want:?}");
            assert!(!e.contains("hunter2"), "a value leaked: {e}");
        }
    }

    #[test]
    fn nesting_bombs_are_refused_quickly() {
        let start = std::time::Instant::now();
        let json = [vec![b'['; 1 << 20], vec![b']'; 1 << 20]].concat();
        assert!(err(parse_json(&json, "f")).contains("top level must be a mapping"));
        let json = [b"{\"a\":".as_slice(), &vec![b'['; 1 << 20]].concat();
        assert!(err(parse_json(&json, "f")).contains("not a JSON file"));
        let deep_json = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
        assert!(err(parse_json(deep_json.as_bytes(), "f")).contains("not a JSON file"));
        let yaml = vec![b'['; 1 << 20];
        assert!(err(parse_yaml(&yaml, "f")).contains("nested deeper"));
        let block = |levels: usize| {
            let mut text = String::new();
            for i in 0..levels {
                text.push_str(&" ".repeat(i));
                text.push_str("a:\n");
            }
            text + &" ".repeat(levels) + "b: v\n"
        };
        assert!(err(parse_yaml(block(300).as_bytes(), "f")).contains("nested deeper than 32"));
        assert!(err(parse_yaml(block(100).as_bytes(), "f")).contains("nested deeper than 64"));
        // 70 levels: below serde_json's limit, above sesto's path depth.
        let paths = "{\"a\":".repeat(70) + "\"v\"" + &"}".repeat(70);
        assert!(err(parse_json(paths.as_bytes(), "f")).contains("nested deeper than 64"));
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }
}
