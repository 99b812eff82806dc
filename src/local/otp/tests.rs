use super::*;
use std::time::Duration;

const SHA1_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SHA256_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====";
const SHA512_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA=";
const EXAMPLE: &str = "JBSWY3DPEHPK3PXP";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn code(value: &str, secs: u64) -> Result<Code, OtpError> {
    current_code(value.as_bytes(), at(secs))
}

#[test]
fn rfc6238_vectors() {
    // RFC 6238 appendix B.
    let vectors: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];
    for (t, sha1, sha256, sha512) in vectors {
        for (key, alg, want) in [
            (SHA1_KEY, "SHA1", sha1),
            (SHA256_KEY, "SHA256", sha256),
            (SHA512_KEY, "SHA512", sha512),
        ] {
            let uri = format!("otpauth://totp/x?secret={key}&algorithm={alg}&digits=8");
            assert_eq!(code(&uri, t).unwrap().code, want, "{alg} at {t}");
        }
    }
}

#[test]
fn remaining_seconds() {
    let uri = format!("otpauth://totp/x?secret={SHA1_KEY}&digits=8");
    assert_eq!(code(&uri, 59).unwrap().remaining_seconds, 1);
    assert_eq!(code(&uri, 60).unwrap().remaining_seconds, 30);
    let uri = format!("otpauth://totp/x?secret={SHA1_KEY}&period=60");
    assert_eq!(code(&uri, 61).unwrap().remaining_seconds, 59);
}

#[test]
fn real_looking_uri() {
    let uri = "otpauth://totp/ACME%20Co:john.doe%40email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30&image=https%3A%2F%2Fx";
    let c = code(uri, 1111111111).unwrap();
    assert_eq!(c.code.len(), 6);
    assert!(c.code.bytes().all(|b| b.is_ascii_digit()));
    // Same key, bare: same code.
    assert_eq!(
        code("hxdm vjec jjws rb3h wizr 4ifu gftm xboz", 1111111111).unwrap(),
        c
    );
}

#[test]
fn defaults_are_sha1_six_digits_thirty_seconds() {
    let c = code(&format!("otpauth://totp/?secret={SHA1_KEY}"), 59).unwrap();
    assert_eq!(c.code, "287082");
    assert_eq!(code(SHA1_KEY, 59).unwrap(), c);
}

#[test]
fn uri_details() {
    let want = code(SHA1_KEY, 59).unwrap();
    // Scheme and type in any case, percent-encoded secret, fragment, trailing
    // whitespace, upper-case parameter names, `+` for space.
    for uri in [
        format!("OTPAUTH://TOTP/Label?SECRET={SHA1_KEY}"),
        "otpauth://totp/Label?secret=%47EZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_owned(),
        format!("otpauth://totp/Label?secret={SHA1_KEY}#frag"),
        format!("  otpauth://totp/Label?issuer=a+b&secret={SHA1_KEY}&counter=3\n"),
        format!("otpauth://totp/Label?&&secret={SHA1_KEY}&flag"),
        format!("otpauth://totp?secret={SHA1_KEY}"),
        // Parameters sesto does not read are not decoded, so bad escapes there pass.
        format!("otpauth://totp/x?issuer=%C3%28&image=%zz&secret={SHA1_KEY}"),
    ] {
        assert_eq!(code(&uri, 59).unwrap(), want, "{uri}");
    }
}

#[test]
fn bare_base32_forms() {
    let want = code(SHA256_KEY.trim_end_matches('='), 59).unwrap();
    assert_eq!(code(SHA256_KEY, 59).unwrap(), want);
    assert_eq!(code(&SHA256_KEY.to_lowercase(), 59).unwrap(), want);
    let spaced: String = SHA1_KEY
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(code(&spaced, 59).unwrap(), code(SHA1_KEY, 59).unwrap());
}

#[test]
fn yaml_mapping() {
    let want = code(SHA1_KEY, 59).unwrap();
    let yaml = format!("username: alice\npassword: hunter2\notp: {SHA1_KEY}\n");
    assert_eq!(code(&yaml, 59).unwrap(), want);
    let yaml =
        format!("totp: nonsense\notpauth: \"otpauth://totp/a?secret={SHA1_KEY}&digits=8\"\n");
    assert_eq!(code(&yaml, 59).unwrap().code, "94287082");
    // The `otpauth:` field first: a mapping, not a URI.
    let yaml = format!("otpauth: \"otpauth://totp/a?secret={SHA1_KEY}&digits=8\"\nuser: a\n");
    assert_eq!(code(&yaml, 59).unwrap().code, "94287082");
    // No OTP field, a field that is not a string, a mapping inside the field.
    for yaml in [
        "username: alice\npassword: hunter2\n",
        "otp: 123\n",
        "otp: [a]\n",
        "otp: {secret: JBSWY3DPEHPK3PXP}\n",
        "- otp\n",
    ] {
        assert_eq!(code(yaml, 59).unwrap_err(), OtpError::NotOtp, "{yaml}");
    }
    // A mapping holding a mapping-shaped string is not parsed again.
    assert_eq!(
        code("otp: \"otp: JBSWY3DPEHPK3PXP\"", 59).unwrap_err(),
        OtpError::NotOtp
    );
}

#[test]
fn hostile_input() {
    use OtpError::*;
    let huge = "A".repeat(MAX_VALUE_BYTES + 1);
    let cases: Vec<(String, OtpError)> = vec![
        (String::new(), NotOtp),
        ("   \n\t".into(), NotOtp),
        (huge, TooLarge),
        ("otpauth://".into(), UnsupportedType),
        ("otpauth://totp".into(), MissingSecret),
        ("otpauth://totp/x".into(), MissingSecret),
        ("otpauth://totp/x?secret=".into(), EmptySecret),
        ("otpauth:totp/x?secret=AAAA".into(), UnsupportedType),
        (format!("otpauth://hotp/x?secret={EXAMPLE}&counter=1"), Hotp),
        (
            format!("otpauth://steam/x?secret={EXAMPLE}"),
            UnsupportedType,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&digits=99"),
            Digits,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&digits=-6"),
            Digits,
        ),
        (format!("otpauth://totp/x?secret={EXAMPLE}&digits="), Digits),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&period=0"),
            Period,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&period=3601"),
            Period,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&period=99999999999999999999999"),
            Period,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&algorithm=MD5"),
            Algorithm(Some("MD5".into())),
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&algorithm=%00%01"),
            Algorithm(None),
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}&secret={EXAMPLE}"),
            DuplicateParameter("secret"),
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}%"),
            PercentEncoding,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}%4"),
            PercentEncoding,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}%zz"),
            PercentEncoding,
        ),
        (
            format!("otpauth://totp/x?secret={EXAMPLE}%FF"),
            PercentEncoding,
        ),
        (
            format!("otpauth://totp/x?algorithm=%C3%28&secret={EXAMPLE}"),
            PercentEncoding,
        ),
        ("otpauth://totp/x?secret=JBSWY3DP!".into(), Base32),
        ("otpauth://totp/x?secret=%E2%82%AC".into(), Base32),
        ("JBSWY3DP1".into(), Base32),
        ("JBSWY3".into(), Base32),
        ("J".into(), Base32),
        ("JBSW=Y3DP".into(), Base32),
        ("JBSWY3DPEHPK3PXP=========".into(), Base32),
        ("JBSWY3DPE=".into(), Base32),
        ("====".into(), EmptySecret),
        ("{{{{ not yaml".into(), NotOtp),
        ("a: &x [*x]".into(), NotOtp),
        ("password: hunter2\npassword: again".into(), NotOtp),
        ("\u{0}\u{1}garbage\u{7f}".into(), NotOtp),
    ];
    for (input, want) in cases {
        let got = code(&input, 59).err();
        assert_eq!(got, Some(want), "{:.80}", input);
    }
    assert_eq!(
        current_code(&[0xff, 0xfe, b'A'], at(59)).unwrap_err(),
        NotOtp
    );
    // A huge but legal key still works.
    let big = "A".repeat(MAX_VALUE_BYTES - 8);
    assert_eq!(code(&big, 59).unwrap().code.len(), 6);
}

#[test]
fn clock_before_1970() {
    let before = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(
        current_code(SHA1_KEY.as_bytes(), before).unwrap_err(),
        OtpError::Clock
    );
}

#[test]
fn errors_and_debug_never_show_the_secret() {
    let s = EXAMPLE;
    let inputs = [
        format!("otpauth://hotp/x?secret={s}"),
        format!("otpauth://totp/x?secret={s}&digits=9"),
        format!("otpauth://totp/x?secret={s}&period=0"),
        format!("otpauth://totp/x?secret={s}&algorithm={s}"),
        format!("otpauth://totp/x?secret={s}&secret={s}"),
        format!("otpauth://totp/x?secret={s}!"),
        format!("otpauth://totp/x?secret={s}%zz"),
        format!("otp: [{s}]"),
        format!("{s}1"),
        format!("{s} and more words!"),
    ];
    for input in inputs {
        let err = code(&input, 59).unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(s), "{shown}");
            assert!(!shown.contains(&s.to_lowercase()), "{shown}");
        }
    }
    let ok = code(SHA1_KEY, 59).unwrap();
    assert!(!format!("{ok:?}").contains("287082"));
}
