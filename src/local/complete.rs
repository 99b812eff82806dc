//! Shell completion's library side: a partly typed command line split into
//! words as a POSIX shell would, names quoted back for bash, and the store
//! names that complete a partly typed path or member name. It knows nothing
//! of clap, of terminals or of the scripts that ask.

use crate::format::node::Kind;
use crate::store::Store;

/// Longest line or word completion looks at. Longer input is someone
/// pasting, not typing a path: nothing completes it.
pub const MAX_INPUT: usize = 16 * 1024;

/// Most words of a line completion looks at.
pub const MAX_WORDS: usize = 1024;

/// The quote still open at the end of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// None: the word ends where it was typed.
    None,
    /// Inside `'…`.
    Single,
    /// Inside `"…`.
    Double,
}

/// A command line typed up to the cursor, split into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The complete words before the cursor's word, quotes removed.
    pub words: Vec<String>,
    /// The word under the cursor, quotes removed (empty after a space).
    pub current: String,
    /// The word under the cursor as typed, quotes and backslashes included.
    pub current_raw: String,
    /// The quote left open in the word under the cursor.
    pub open: Open,
    /// How many bytes of `current` come before the quote still open.
    pub before_open: usize,
}

/// Splits a command line typed up to the cursor as bash does: blanks
/// separate words, `'…'`, `"…"` and backslashes quote, and `;`, `|`, `&`
/// start a new command (only the last one is returned). `$(…)`, `$'…'` and
/// other expansions are taken literally: completion never runs anything.
/// `None` for input longer than [`MAX_INPUT`] or with more than
/// [`MAX_WORDS`] words.
pub fn split_line(line: &str) -> Option<Line> {
    if line.len() > MAX_INPUT {
        return None;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut raw = String::new();
    let mut in_word = false;
    let mut open = Open::None;
    let mut before_open = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match open {
            Open::Single => {
                raw.push(c);
                if c == '\'' {
                    open = Open::None;
                } else {
                    word.push(c);
                }
            }
            Open::Double => {
                raw.push(c);
                match c {
                    '"' => open = Open::None,
                    '\\' => match chars.next() {
                        Some(n @ ('"' | '\\' | '$' | '`')) => {
                            raw.push(n);
                            word.push(n);
                        }
                        Some('\n') => raw.push('\n'),
                        Some(n) => {
                            raw.push(n);
                            word.push('\\');
                            word.push(n);
                        }
                        None => word.push('\\'),
                    },
                    _ => word.push(c),
                }
            }
            Open::None => match c {
                ' ' | '\t' | '\n' | ';' | '|' | '&' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        raw.clear();
                        in_word = false;
                    }
                    if matches!(c, ';' | '|' | '&') {
                        words.clear();
                    }
                    if words.len() > MAX_WORDS {
                        return None;
                    }
                }
                '\'' | '"' => {
                    in_word = true;
                    raw.push(c);
                    before_open = word.len();
                    open = if c == '\'' {
                        Open::Single
                    } else {
                        Open::Double
                    };
                }
                '\\' => {
                    in_word = true;
                    raw.push(c);
                    match chars.next() {
                        Some('\n') => raw.push('\n'),
                        Some(n) => {
                            raw.push(n);
                            word.push(n);
                        }
                        None => {}
                    }
                }
                _ => {
                    in_word = true;
                    raw.push(c);
                    word.push(c);
                }
            },
        }
    }
    if open == Open::None {
        before_open = 0;
    }
    Some(Line {
        words,
        current: word,
        current_raw: raw,
        open,
        before_open,
    })
}

/// Whether bash takes `c` literally outside quotes.
fn bash_plain(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '@' | '%' | ',' | ':' | '=' | '-')
}

/// `text` quoted for bash outside quotes: a backslash before every
/// character bash would otherwise read as something else.
pub fn bash_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        // A leading `~` or `#` means something; inside a word they do not.
        let literal = bash_plain(c) || (i > 0 && matches!(c, '~' | '#'));
        if !literal {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The text bash should put in place of its word `bash_word` (its `$2`:
/// the part of the current word after the last word-break character or
/// open quote) so that the word reads `candidate`. `None` when `candidate`
/// does not continue what was typed.
pub fn bash_replacement(line: &Line, bash_word: &str, candidate: &str) -> Option<String> {
    let typed = candidate.get(..line.before_open)?;
    if !line.current.starts_with(typed) || !candidate.starts_with(line.current.as_str()) {
        return None;
    }
    let rest = &candidate[line.before_open..];
    match line.open {
        Open::Single => Some(rest.replace('\'', "'\\''")),
        Open::Double => {
            let mut out = String::with_capacity(rest.len());
            for c in rest.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            Some(out)
        }
        Open::None => {
            let rendered = bash_escape(candidate);
            let kept = line.current_raw.strip_suffix(bash_word)?;
            rendered.strip_prefix(kept).map(str::to_string)
        }
    }
}

/// Which store names a path argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Folders and secrets (folders lead to secrets).
    Any,
    /// Folders only.
    Folders,
}

/// The store paths that complete `typed`: the entries of the folder typed
/// so far whose names start with what follows its last `/`, each as the
/// whole path, folders ending in `/`. Only names [`Store::list`] shows (what
/// `sesto ls` prints); nothing for a path that does not parse, a folder the
/// user cannot read, or a secret.
pub fn paths(store: &Store, typed: &str, want: Want) -> Vec<String> {
    if typed.len() > MAX_INPUT {
        return Vec::new();
    }
    let (dir, partial) = match typed.rfind('/') {
        Some(i) => typed.split_at(i + 1),
        None => ("", typed),
    };
    let Ok(entries) = store.list(dir) else {
        return Vec::new();
    };
    if !is_folder(store, dir, &entries) {
        return Vec::new();
    }
    entries
        .into_iter()
        .filter(|e| e.name.starts_with(partial) && !e.name.chars().any(char::is_control))
        .filter(|e| want == Want::Any || e.kind == Kind::Folder)
        .map(|e| match e.kind {
            Kind::Folder => format!("{dir}{}/", e.name),
            Kind::Secret => format!("{dir}{}", e.name),
        })
        .collect()
}

/// Whether `dir`, listed as `entries`, is a folder: [`Store::list`] of a
/// secret lists the secret itself, which a folder holding one secret of
/// its own name also does; its parent tells them apart.
fn is_folder(store: &Store, dir: &str, entries: &[crate::Listing]) -> bool {
    let trimmed = dir.trim_end_matches('/');
    let (parent, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    match entries {
        [one] if one.kind == Kind::Secret && one.name == last && !last.is_empty() => store
            .list(parent)
            .map(|up| up.iter().any(|e| e.name == last && e.kind == Kind::Folder))
            .unwrap_or(false),
        _ => true,
    }
}

/// The member names of the store's roster that start with `typed` (what
/// `sesto member list` prints).
pub fn members(store: &Store, typed: &str) -> Vec<String> {
    store
        .roster()
        .members
        .keys()
        .filter(|m| m.starts_with(typed) && !m.chars().any(char::is_control))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Line {
        split_line(line).expect("within the limits")
    }

    #[test]
    fn words_split_on_blanks_and_the_last_is_current() {
        let l = split("sesto get prod/d");
        assert_eq!(l.words, ["sesto", "get"]);
        assert_eq!((l.current.as_str(), l.open), ("prod/d", Open::None));
        let l = split("sesto  get ");
        assert_eq!(l.words, ["sesto", "get"]);
        assert_eq!(l.current, "");
    }

    #[test]
    fn quotes_and_backslashes_are_removed() {
        let l = split(r#"sesto get 'a b'/c\ d"e f"/g"#);
        assert_eq!(l.current, "a b/c de f/g");
        assert_eq!(l.current_raw, r#"'a b'/c\ d"e f"/g"#);
        let l = split("sesto get 'prod/my se");
        assert_eq!(
            (l.current.as_str(), l.open, l.before_open),
            ("prod/my se", Open::Single, 0)
        );
        let l = split(r#"sesto get prod/"my \"se"#);
        assert_eq!(l.current, r#"prod/my "se"#);
        assert_eq!((l.open, l.before_open), (Open::Double, 5));
    }

    #[test]
    fn a_new_command_starts_after_separators() {
        let l = split("sesto ls | sesto get x");
        assert_eq!(l.words, ["sesto", "get"]);
        assert_eq!(l.current, "x");
    }

    #[test]
    fn hostile_lines_never_panic() {
        let long = "a".repeat(MAX_INPUT + 1);
        assert_eq!(split_line(&long), None);
        let many = "a ".repeat(MAX_WORDS + 2);
        assert_eq!(split_line(&many), None);
        for line in [
            "",
            "\\",
            "'",
            "\"",
            "\"\\",
            "sesto get ../",
            "sesto get ../../etc/passwd",
            "sesto get $(rm -rf /)",
            "sesto get `x`",
            "é\\é'é\"é",
            "\u{7f}\u{1b}[31m",
            "a\\\nb",
            "\"a\\\nb",
            ";;;|||&&&",
        ] {
            let l = split(line);
            // Quoting back what was split gives the same word.
            if l.open == Open::None && !l.current.is_empty() {
                let again = split(&bash_escape(&l.current));
                assert_eq!(again.current, l.current, "{line:?}");
            }
            for candidate in [l.current.clone(), format!("{}x y/", l.current)] {
                let _ = bash_replacement(&l, &l.current_raw, &candidate);
                let _ = bash_replacement(&l, "", &candidate);
                let _ = bash_replacement(&l, "zz", &candidate);
            }
        }
    }

    #[test]
    fn names_come_back_quoted_for_bash() {
        let r = |line: &str, word: &str, candidate: &str| {
            bash_replacement(&split(line), word, candidate)
        };
        assert_eq!(r("sesto get pro", "pro", "prod/").as_deref(), Some("prod/"));
        assert_eq!(
            r(r"sesto get prod/my\ s", r"prod/my\ s", "prod/my secret").as_deref(),
            Some(r"prod/my\ secret")
        );
        // Inside quotes bash's word starts after the quote.
        assert_eq!(
            r("sesto get 'prod/my s", "prod/my s", "prod/my secret").as_deref(),
            Some("prod/my secret")
        );
        assert_eq!(
            r("sesto get \"prod/a", "prod/a", "prod/a$b").as_deref(),
            Some("prod/a\\$b")
        );
        // After a word break (`=`, `:`) bash's word is the tail.
        assert_eq!(
            r("sesto export --format=do", "do", "--format=dotenv").as_deref(),
            Some("dotenv")
        );
        assert_eq!(r("sesto get a:b", "b", "a:bc").as_deref(), Some("bc"));
        // A candidate that does not continue the word is dropped.
        assert_eq!(r("sesto get xy", "xy", "prod/"), None);
        assert_eq!(bash_escape("~a b#(c)'"), r"\~a\ b#\(c\)\'");
    }
}
