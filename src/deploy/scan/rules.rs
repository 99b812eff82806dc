//! The token shapes `sesto scan` knows: each a name and a regular expression
//! taken from a published scanner (gitleaks' `config/gitleaks.toml`, v8, or
//! Yelp's detect-secrets `detect_secrets/plugins/*.py`), cited per rule.
//!
//! Every rule starts with a literal prefix (`ghp_`, `AKIA`, `-----BEGIN`…),
//! so the regex engine skips to candidates with a substring search and a
//! pass over megabytes of ordinary text costs little.

use std::sync::OnceLock;

use regex::bytes::Regex;

/// One known token shape.
pub struct Rule {
    /// The name findings carry (`github-token`).
    pub name: &'static str,
    /// Where the pattern was published.
    pub source: &'static str,
    pattern: &'static str,
}

/// The rules, in the order findings of one line are reported.
pub const RULES: &[Rule] = &[
    Rule {
        name: "private-key",
        // The header is gitleaks' `private-key` rule; where gitleaks asks for
        // 64 characters of anything up to a `KEY-----`, this asks for a line
        // of base64 after the header (and any `Proc-Type:` style headers), so
        // code that merely names the header (parsers, this file) is no hit.
        // Covers PKCS#1/#8, EC, DSA, OpenSSH and PGP private key blocks.
        source: "gitleaks private-key (body check adapted)",
        pattern: r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----\r?\n(?:[A-Za-z0-9-]+:[^\n]*\r?\n)*\s*[A-Za-z0-9+/=]{40,}",
    },
    Rule {
        name: "age-secret-key",
        source: "gitleaks age-secret-key",
        pattern: r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    },
    Rule {
        name: "aws-access-key-id",
        source: "gitleaks aws-access-token",
        pattern: r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
    },
    Rule {
        name: "github-token",
        // gitleaks github-pat, github-oauth, github-app-token and
        // github-refresh-token, one alternation.
        source: "gitleaks github-pat/-oauth/-app-token/-refresh-token",
        pattern: r"\b(?:ghp|gho|ghu|ghs|ghr)_[0-9a-zA-Z]{36}\b",
    },
    Rule {
        name: "github-token",
        source: "gitleaks github-fine-grained-pat",
        pattern: r"\bgithub_pat_[0-9a-zA-Z_]{82}\b",
    },
    Rule {
        name: "gitlab-token",
        source: "gitleaks gitlab-pat",
        pattern: r"\bglpat-[0-9a-zA-Z_-]{20}\b",
    },
    Rule {
        name: "slack-token",
        source: "detect-secrets slack.py SlackDetector",
        pattern: r"(?i)\bxox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+",
    },
    Rule {
        name: "slack-webhook",
        source: "detect-secrets slack.py SlackDetector",
        pattern: r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
    },
    Rule {
        name: "stripe-key",
        source: "detect-secrets stripe.py StripeDetector",
        pattern: r"\b(?:r|s)k_live_[0-9a-zA-Z]{24}",
    },
    Rule {
        name: "jwt",
        source: "gitleaks jwt",
        pattern: r"\bey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9/\\_-]{17,}\.(?:[a-zA-Z0-9/\\_-]{10,}={0,2})?",
    },
];

/// The rules compiled, once per process.
pub fn compiled() -> &'static [(&'static Rule, Regex)] {
    static COMPILED: OnceLock<Vec<(&'static Rule, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        RULES
            .iter()
            .map(|r| {
                let re = regex::bytes::RegexBuilder::new(r.pattern)
                    .unicode(false)
                    .size_limit(1 << 22)
                    .build()
                    .unwrap_or_else(|e| panic!("rule {} does not compile: {e}", r.name));
                (r, re)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample for each rule, built by concatenation so this file holds no token.
    fn hits(text: &str) -> Vec<&'static str> {
        compiled()
            .iter()
            .filter(|(_, re)| re.is_match(text.as_bytes()))
            .map(|(r, _)| r.name)
            .collect()
    }

    #[test]
    fn every_rule_compiles() {
        assert_eq!(compiled().len(), RULES.len());
    }

    #[test]
    fn samples_hit_and_near_misses_do_not() {
        let b36 = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5";
        assert_eq!(hits(&format!("token = gh{}_{b36}", "p")), ["github-token"]);
        assert!(hits(&format!("token = gh{}_{}", "p", &b36[1..])).is_empty());
        assert_eq!(
            hits(&format!("{}IA{}", "AK", "IOSFODNN7EXAMPLE")),
            ["aws-access-key-id"]
        );
        assert!(hits(&format!("{}IA{}", "AK", "iosfodnn7example")).is_empty());
    }
}
