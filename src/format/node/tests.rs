use super::codec::{decode_simple, hex_id, plain_str};
use super::*;
use age::secrecy::ExposeSecret;
use std::collections::BTreeMap;

fn secret_body(value: &[u8]) -> Body {
    Body {
        sesto: BODY_FORMAT,
        store: NodeId::random().to_string(),
        id: NodeId::random(),
        kind: Kind::Secret,
        name: "password".into(),
        version: 1,
        path: None,
        recipient: None,
        children: vec![],
        value: Some(Value::new(value.to_vec())),
        updated: Some("2026-11-23T10:00:00Z".into()),
        updated_by: Some("alice".into()),
        exposed_to: vec![],
    }
}

/// Everything the fast path reads plain, serde_yaml writes plain: so the
/// fast path accepts only canonical text.
#[test]
fn fast_path_plain_scalars_are_what_serde_writes_plain() {
    use rand::Rng;
    let alphabet = b"aZ09._@+-/ e:#'&*!yYnN";
    let mut rng = rand::rngs::OsRng;
    let mut checked = 0;
    for _ in 0..20_000 {
        let len = rng.gen_range(1..12);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
            .collect();
        for slashes in [false, true] {
            if plain_str(&s, slashes).is_some() {
                assert_eq!(
                    serde_yaml::to_string(&s).unwrap(),
                    format!("{s}\n"),
                    "{s:?}"
                );
                checked += 1;
            }
        }
    }
    for word in [
        "yes", "No", "ON", "null", "true", "y", "nan", "inf", "a.", "a-",
    ] {
        assert!(plain_str(word, false).is_none(), "{word}");
    }
    for _ in 0..2_000 {
        let id = NodeId::random().to_string();
        if hex_id(&id).is_some() {
            assert_eq!(
                serde_yaml::to_string(&id).unwrap(),
                format!("{id}\n"),
                "{id}"
            );
        }
    }
    let all_digits = "1".repeat(32);
    let float = format!("{}e{}", "1".repeat(20), "2".repeat(11));
    assert!(hex_id(&all_digits).is_none() && hex_id(&float).is_none());
    assert!(checked > 1000);
}

/// Both paths give the same body, and the fast one is taken for ordinary names.
#[test]
fn fast_and_slow_paths_agree() {
    let mut folder = Body::new(
        &NodeId::random().to_string(),
        NodeId::random(),
        Kind::Folder,
        "prod",
    );
    for name in [
        "db",
        "api-key",
        "a b",
        "'q'",
        "123",
        "yes",
        "ü",
        "x.y_z@w+v",
        "-dash",
        "with: colon",
    ] {
        folder.put_child(Entry {
            name: name.into(),
            kind: Kind::Secret,
            id: NodeId::random(),
            key: NodeKey::new(
                age::x25519::Identity::generate()
                    .to_string()
                    .expose_secret()
                    .to_string(),
            ),
        });
    }
    folder.version = 7;
    let bytes = encode_body(&folder);
    let slow: Body = serde_yaml::from_slice(&bytes).unwrap();
    assert_eq!(decode_body(&bytes).unwrap(), slow);
    assert_eq!(slow, folder);
    // Names serde_yaml quotes, or writes plain with a space, stay on the
    // fast path: one such name no longer sends the whole folder through
    // serde_yaml.
    assert_eq!(decode_simple(&bytes).as_ref(), Some(&folder));
    // Another spelling of the same names is not what encode_body writes.
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for (canonical, other) in [
        ("- name: a b\n", "- name: 'a b'\n"),
        ("- name: a b\n", "- name: \"a b\"\n"),
        ("- name: ü\n", "- name: \"\\xFC\"\n"),
        ("- name: ü\n", "- name: !!str ü\n"),
    ] {
        assert!(text.contains(canonical), "{text}");
        let respelled = text.replacen(canonical, other, 1);
        assert_eq!(decode_simple(respelled.as_bytes()), None, "{other}");
        assert!(decode_body(respelled.as_bytes()).is_err(), "{other}");
    }
    let mut plain = Body::new(
        &NodeId::random().to_string(),
        NodeId::random(),
        Kind::Folder,
        "",
    );
    plain.put_child(Entry {
        name: "db".into(),
        kind: Kind::Folder,
        id: NodeId::random(),
        key: NodeKey::new(
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
                .to_string(),
        ),
    });
    let secret = secret_body(b"\x00\xffvalue");
    // After a revoke: every secret lists who may have read it.
    let mut exposed = secret_body(b"v");
    exposed.exposed_to = vec!["bob".into(), "carol-2".into()];
    // Member names that do not start with a letter are valid, and written plain.
    let mut digits = secret_body(b"v");
    digits.updated_by = Some("2fa-bot".into());
    digits.exposed_to = vec!["1ci".into(), "_deploy".into()];
    for body in [plain, secret, exposed, digits] {
        let bytes = encode_body(&body);
        assert_eq!(
            decode_simple(&bytes).as_ref(),
            Some(&body),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn ids_round_trip_and_reject_bad_text() {
    let id = NodeId::random();
    assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
    for bad in [
        "",
        "0",
        "../../../../etc/passwd",
        "ABCDEF0123456789abcdef0123456789",
        &"a".repeat(33),
        "0123456789abcdef0123456789abcdeg",
    ] {
        assert!(bad.parse::<NodeId>().is_err(), "{bad}");
    }
    assert_eq!(
        id.rel_path(1),
        format!("nodes/{}/{id}.age", &id.to_string()[..2])
    );
    let hex = id.to_string();
    assert_eq!(
        id.rel_path(2),
        format!(
            "nodes/{}/{}/{}/{}/{hex}.age",
            &hex[..1],
            &hex[1..2],
            &hex[2..3],
            &hex[3..4]
        )
    );
}

#[test]
fn a_node_path_names_its_node_only_where_rel_path_puts_it() {
    let id = NodeId::random();
    for format in [1, 2] {
        assert_eq!(
            NodeId::from_rel_path(&id.rel_path(format), format),
            Some(id)
        );
        assert_eq!(
            NodeId::from_any_rel_path(&id.rel_path(format)),
            Some((id, format))
        );
    }
    // Each format's layout is not the other's.
    assert_eq!(NodeId::from_rel_path(&id.rel_path(1), 2), None);
    assert_eq!(NodeId::from_rel_path(&id.rel_path(2), 1), None);
    let hex = id.to_string();
    let other_shard = if hex.starts_with("00") { "01" } else { "00" };
    let (a, b, c, d) = (&hex[..1], &hex[1..2], &hex[2..3], &hex[3..4]);
    let other = if a == "0" { "1" } else { "0" };
    for bad in [
        format!("nodes/{other_shard}/{hex}.age"),
        format!("nodes/{}/{hex}", &hex[..2]),
        format!("nodes/{}/{hex}.age.tmp", &hex[..2]),
        format!("nodes/{}/{}.age", &hex[..2], hex.to_uppercase()),
        format!("nodes/{}/{}/{hex}.age", &hex[..1], &hex[1..2]),
        format!("nodes/{}/x/{hex}.age", &hex[..2]),
        format!("nodes/{}/{hex}.age", &hex[..3]),
        format!("nodes/../{}/{hex}.age", &hex[..2]),
        format!("./nodes/{}/{hex}.age", &hex[..2]),
        format!("{}/{hex}.age", &hex[..2]),
        format!("nodes/{hex}.age"),
        format!("nodes/{other}/{b}/{c}/{d}/{hex}.age"),
        format!("nodes/{a}/{b}/{c}/{hex}.age"),
        format!("nodes/{a}/{b}/{c}/{d}/{d}/{hex}.age"),
        format!("nodes/{a}/{b}/{c}/{d}/{hex}"),
        format!("nodes/{a}/{b}/../{c}/{d}/{hex}.age"),
        format!("nodes/{a}{b}/{c}/{d}/{hex}.age"),
        format!("/nodes/{a}/{b}/{c}/{d}/{hex}.age"),
        format!("nodes/{a}/{b}/{c}/{d}//{hex}.age"),
        String::new(),
        "nodes//.age".into(),
    ] {
        assert_eq!(NodeId::from_any_rel_path(&bad), None, "{bad}");
    }
}

#[test]
fn body_round_trips_with_binary_value() {
    let body = secret_body(b"\x00\xffhunter2\n");
    let bytes = encode_body(&body);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("value: !!binary "), "{text}");
    assert_eq!(decode_body(&bytes).unwrap(), body);
}

#[test]
fn aliases_and_comments_are_not_canonical() {
    let body = secret_body(b"x");
    let text = String::from_utf8(encode_body(&body).to_vec()).unwrap();
    let aliased = text
        .replace("name: password", "name: &a password")
        .replace("updated_by: alice", "updated_by: *a");
    assert!(decode_body(aliased.as_bytes()).is_err());
    let commented = format!("# hi\n{text}");
    assert!(matches!(
        decode_body(commented.as_bytes()),
        Err(FormatError::NotCanonical)
    ));
    let duplicate = format!("{text}name: other\n");
    assert!(decode_body(duplicate.as_bytes()).is_err());
}

#[test]
fn hostile_bodies_are_errors_not_panics() {
    let body = secret_body(b"x");
    let bytes = encode_body(&body);
    for cut in 0..bytes.len() {
        let _ = decode_body(&bytes[..cut]);
    }
    for junk in [
        &b"\xff\xfe"[..],
        b"- - - -",
        b"{",
        b"sesto: [",
        b"value: !!binary ***",
    ] {
        assert!(decode_body(junk).is_err());
    }
}

#[test]
fn assemble_split_round_trip_and_padding() {
    let body = encode_body(&secret_body(b"v"));
    let plain = assemble(
        &body,
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
    );
    assert_eq!(plain.len(), 512);
    let parts = split(&plain).unwrap();
    assert_eq!(parts.body, &body[..]);
    assert!(parts.signature.signature.contains("BEGIN SSH SIGNATURE"));
}

#[test]
fn padme_leaks_little() {
    assert_eq!(padded_len(1), 512);
    assert_eq!(padded_len(512), 512);
    assert!(padded_len(513) >= 513);
    for len in [600usize, 1000, 5000, 70_000, 1 << 20, (1 << 20) + 1] {
        let p = padded_len(len);
        assert!(p >= len && p - len <= len / 8, "{len} -> {p}");
    }
}

#[test]
fn names() {
    for good in ["a", "db password", "R&D", "ü", &"x".repeat(255)] {
        check_name(good).unwrap();
    }
    for bad in ["", ".", "..", "a/b", "a\nb", "\u{7f}", &"x".repeat(256)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn roster_round_trip_and_rules() {
    let mut members = BTreeMap::new();
    members.insert(
        "alice".to_string(),
        Member {
            key: "ssh-ed25519 AAAA".into(),
            admin: true,
            signing_key: None,
        },
    );
    let roster = Roster::new(members);
    let bytes = roster.encode();
    assert_eq!(Roster::decode(&bytes).unwrap(), roster);
    let no_admin = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("  admin: true\n", "");
    assert!(Roster::decode(no_admin.as_bytes()).is_err());
    let unknown = format!("{}extra: 1\n", String::from_utf8(bytes).unwrap());
    assert!(Roster::decode(unknown.as_bytes()).is_err());
}
