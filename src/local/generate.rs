//! Generated secrets: random passwords and diceware-style passphrases, drawn from
//! the operating system's random number generator with unbiased sampling.

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use zeroize::Zeroizing;

/// Lowercase letters, one of the character classes of a password.
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
/// Uppercase letters, one of the character classes of a password.
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Digits, one of the character classes of a password.
const DIGITS: &[u8] = b"0123456789";
/// The symbols a password may hold when symbols are asked for.
///
/// None of them quotes, escapes or expands anything inside single or double quotes in
/// a POSIX shell: no quotes, `\`, `$`, `` ` ``, `!` (history expansion), glob
/// characters, brackets, braces, `&`, `;`, `|`, `<`, `>`, `/` or whitespace. `-_.~`
/// are unreserved in URLs; the others need percent-encoding in some parts of a URL.
pub const SYMBOLS: &str = "-_.~@#%^+=:,";

/// Shortest password [`password`] makes.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longest password [`password`] makes.
pub const MAX_PASSWORD_LENGTH: usize = 4096;
/// Fewest words [`passphrase`] joins.
pub const MIN_PASSPHRASE_WORDS: usize = 3;
/// Most words [`passphrase`] joins.
pub const MAX_PASSPHRASE_WORDS: usize = 64;

/// Why a secret could not be generated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenerateError {
    /// The requested password length is out of range.
    #[error(
        "password length {0} is out of range; choose {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    )]
    PasswordLength(usize),
    /// The requested number of passphrase words is out of range.
    #[error(
        "a passphrase of {0} words is out of range; choose {MIN_PASSPHRASE_WORDS} to {MAX_PASSPHRASE_WORDS} words"
    )]
    PassphraseWords(usize),
}

/// A random password of `length` characters.
///
/// Each character is drawn uniformly from letters and digits, plus [`SYMBOLS`] when
/// `symbols` is true: about 5.95 bits per character without symbols (62 characters)
/// and 6.21 bits with them (74 characters). The password holds at least one
/// lowercase letter, one uppercase letter, one digit and, with `symbols`, one symbol,
/// so it passes common password rules. That guarantee comes from drawing whole
/// passwords until one qualifies (rejection sampling), which keeps every qualifying
/// password equally likely; inserting the missing classes would bias positions.
///
/// `length` must be 8 to 4096.
pub fn password(length: usize, symbols: bool) -> Result<Zeroizing<String>, GenerateError> {
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        return Err(GenerateError::PasswordLength(length));
    }
    let mut classes = vec![LOWER, UPPER, DIGITS];
    if symbols {
        classes.push(SYMBOLS.as_bytes());
    }
    let alphabet: Vec<u8> = classes.concat();
    loop {
        // Capacity is exact and every character is ASCII, so the buffer never
        // reallocates and leaves no unzeroized copy behind.
        let mut candidate = Zeroizing::new(String::with_capacity(length));
        for _ in 0..length {
            let byte = *alphabet.choose(&mut OsRng).expect("alphabet is not empty");
            candidate.push(char::from(byte));
        }
        let bytes = candidate.as_bytes();
        if classes
            .iter()
            .all(|class| bytes.iter().any(|b| class.contains(b)))
        {
            return Ok(candidate);
        }
    }
}

/// A diceware-style passphrase of `words` words joined by `-`.
///
/// Words come uniformly from the EFF large wordlist, leaving out its four words that
/// hold a hyphen themselves (`drop-down`, `felt-tip`, `t-shirt`, `yo-yo`) so that a
/// passphrase splits back into exactly `words` words. That leaves 7,772 words:
/// log2(7772) ≈ 12.9 bits per word, so 6 words give about 77 bits.
///
/// `words` must be 3 to 64.
pub fn passphrase(words: usize) -> Result<Zeroizing<String>, GenerateError> {
    if !(MIN_PASSPHRASE_WORDS..=MAX_PASSPHRASE_WORDS).contains(&words) {
        return Err(GenerateError::PassphraseWords(words));
    }
    let list = wordlist();
    // EFF words are at most 9 bytes; reserving the most a passphrase can need keeps
    // the buffer from reallocating and leaving copies behind.
    let longest = list.iter().map(|w| w.len()).max().unwrap_or(0);
    let mut phrase = Zeroizing::new(String::with_capacity(words * (longest + 1)));
    for i in 0..words {
        if i > 0 {
            phrase.push('-');
        }
        phrase.push_str(list.choose(&mut OsRng).expect("wordlist is not empty"));
    }
    Ok(phrase)
}

/// The words [`passphrase`] draws from.
///
/// The list is the EFF Large Wordlist for passphrases (Electronic Frontier
/// Foundation, CC BY 3.0 US), one word per line in `eff_large_wordlist.txt`.
fn wordlist() -> Vec<&'static str> {
    include_str!("eff_large_wordlist.txt")
        .lines()
        .filter(|word| !word.is_empty() && !word.contains('-'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn has_any(s: &str, class: &[u8]) -> bool {
        s.bytes().any(|b| class.contains(&b))
    }

    #[test]
    fn password_has_requested_length_and_every_class() {
        for &length in &[8, 9, 16, 64, 4096] {
            for &symbols in &[false, true] {
                let p = password(length, symbols).unwrap();
                assert_eq!(p.len(), length);
                assert_eq!(p.chars().count(), length);
                assert!(has_any(&p, LOWER));
                assert!(has_any(&p, UPPER));
                assert!(has_any(&p, DIGITS));
                assert_eq!(has_any(&p, SYMBOLS.as_bytes()), symbols);
            }
        }
    }

    #[test]
    fn password_without_symbols_is_alphanumeric() {
        for _ in 0..200 {
            let p = password(8, false).unwrap();
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn password_length_bounds() {
        for &bad in &[0, 1, 7, 4097, usize::MAX] {
            assert_eq!(
                password(bad, true).unwrap_err(),
                GenerateError::PasswordLength(bad)
            );
        }
        assert!(password(8, true).is_ok());
        assert!(password(4096, false).is_ok());
    }

    #[test]
    fn password_uses_every_allowed_character_and_nothing_else() {
        let allowed: HashSet<u8> = [LOWER, UPPER, DIGITS, SYMBOLS.as_bytes()]
            .concat()
            .into_iter()
            .collect();
        assert_eq!(allowed.len(), 74, "classes overlap");
        let mut seen = HashSet::new();
        let mut counts = [0usize; 256];
        let draws = 200;
        for _ in 0..draws {
            for b in password(100, true).unwrap().bytes() {
                assert!(allowed.contains(&b), "unexpected byte {b}");
                seen.insert(b);
                counts[b as usize] += 1;
            }
        }
        assert_eq!(seen, allowed);
        // 20,000 characters over 74 values: about 270 each. A gross bias (a
        // character twice or half as likely) would fall far outside these bounds.
        for &b in &allowed {
            let n = counts[b as usize];
            assert!((135..=540).contains(&n), "{} drawn {n} times", b as char);
        }
    }

    #[test]
    fn symbols_are_shell_inert() {
        for c in SYMBOLS.chars() {
            assert!(!"'\"\\$`!*?[]{}()&;|<> \t\n/".contains(c), "{c}");
        }
    }

    #[test]
    fn passphrase_has_requested_words_from_the_list() {
        let list: HashSet<&str> = wordlist().into_iter().collect();
        assert_eq!(list.len(), 7772);
        for &n in &[3, 6, 64] {
            let p = passphrase(n).unwrap();
            let words: Vec<&str> = p.split('-').collect();
            assert_eq!(words.len(), n);
            assert!(words.iter().all(|w| list.contains(w)));
        }
    }

    #[test]
    fn passphrase_word_bounds() {
        for &bad in &[0, 1, 2, 65, usize::MAX] {
            assert_eq!(
                passphrase(bad).unwrap_err(),
                GenerateError::PassphraseWords(bad)
            );
        }
    }

    #[test]
    fn passphrases_differ() {
        let a = passphrase(6).unwrap();
        let b = passphrase(6).unwrap();
        assert_ne!(*a, *b);
    }

    #[test]
    fn errors_name_the_bounds() {
        let msg = password(3, false).unwrap_err().to_string();
        assert!(msg.contains('8') && msg.contains("4096"), "{msg}");
        let msg = passphrase(2).unwrap_err().to_string();
        assert!(msg.contains('3') && msg.contains("64"), "{msg}");
    }
}
