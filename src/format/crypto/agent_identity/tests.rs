//! Agent-derived identities against an in-process test double of ssh-agent
//! that signs with real keys: deterministically (as OpenSSH's agent does),
//! or with a fresh random nonce each time (valid signatures that differ).

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

use ed25519_dalek::Signer as _;
use ssh_encoding::Decode;
use ssh_key::{Algorithm, PrivateKey};

use super::*;
use crate::format::crypto::{decrypt, encrypt, Recipient};

fn ed25519() -> PrivateKey {
    PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap()
}

fn put(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

fn sign(key: &PrivateKey, data: &[u8], random_nonce: bool) -> ssh_key::Signature {
    let ssh_key::private::KeypairData::Ed25519(pair) = key.key_data() else {
        panic!("the test agent holds Ed25519 keys only");
    };
    let signing = ed25519_dalek::SigningKey::try_from(pair).unwrap();
    let sig = if random_nonce {
        let mut esk = ed25519_dalek::hazmat::ExpandedSecretKey::from(&signing.to_bytes());
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut esk.hash_prefix);
        ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(&esk, data, &signing.verifying_key())
    } else {
        signing.sign(data)
    };
    ssh_key::Signature::new(Algorithm::Ed25519, sig.to_bytes().to_vec()).unwrap()
}

fn answer(keys: &[PrivateKey], req: &[u8], random_nonce: bool) -> Vec<u8> {
    let mut out = Vec::new();
    match req.first() {
        Some(11) => {
            out.push(12);
            out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
            for k in keys {
                put(
                    &mut out,
                    &ssh_agent::encode(k.public_key().key_data()).unwrap(),
                );
                put(&mut out, b"test");
            }
        }
        Some(13) => {
            let mut r = &req[1..];
            let blob = Vec::<u8>::decode(&mut r).unwrap();
            let data = Vec::<u8>::decode(&mut r).unwrap();
            let want = KeyData::decode(&mut blob.as_slice()).unwrap();
            match keys.iter().find(|k| k.public_key().key_data() == &want) {
                Some(k) => {
                    out.push(14);
                    put(
                        &mut out,
                        &ssh_agent::encode(&sign(k, &data, random_nonce)).unwrap(),
                    );
                }
                None => out.push(5),
            }
        }
        _ => out.push(5),
    }
    out
}

/// Starts a test double agent holding `keys`; it serves until the process ends.
fn serve(keys: Vec<PrivateKey>, random_nonce: bool) -> (tempfile::TempDir, Arc<Agent>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let keys = Arc::new(keys);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let keys = keys.clone();
            std::thread::spawn(move || loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
                if s.read_exact(&mut req).is_err() {
                    return;
                }
                let body = answer(&keys, &req, random_nonce);
                let mut framed = (body.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&body);
                if s.write_all(&framed).is_err() {
                    return;
                }
            });
        }
    });
    (dir, Arc::new(Agent::new(path)))
}

fn recipient(agent: &Agent, key: &PrivateKey) -> String {
    derive(agent, key.public_key().key_data())
        .unwrap()
        .to_public()
        .to_string()
}

#[test]
fn derivation_is_deterministic_across_agents_and_differs_by_key() {
    let key = ed25519();
    let other = ed25519();
    let (_d1, one) = serve(vec![key.clone(), other.clone()], false);
    let (_d2, two) = serve(vec![key.clone()], false);
    let r = recipient(&one, &key);
    assert_eq!(r, recipient(&one, &key));
    assert_eq!(r, recipient(&two, &key));
    assert_ne!(r, recipient(&one, &other));
    assert!(r.starts_with("age1"));
}

#[test]
fn enrolment_round_trips_through_the_identity_line() {
    let key = ed25519();
    let (_d, agent) = serve(vec![key.clone()], false);
    let picked = pick_key(&agent, None).unwrap();
    let e = enrol(&agent, &picked).unwrap();
    assert_eq!(e.recipient, recipient(&agent, &key));
    assert!(e.identity_line.starts_with("SESTO-SSH-AGENT-1 age1"));
    assert!(e.ssh_key.starts_with("ssh-ed25519 "));
    assert_eq!(
        pick_key(&agent, Some(&e.fingerprint)).unwrap(),
        picked,
        "by fingerprint"
    );
    assert_eq!(pick_key(&agent, Some(&e.ssh_key)).unwrap(), picked);

    let id = parse_line(&e.identity_line, "t:1", Some(agent.clone())).unwrap();
    assert_eq!(id.public(), Some(e.recipient.as_str()));
    assert_eq!(id.signing_public(), Some(e.ssh_key.as_str()));
    assert!(id.can_sign());
    let r = Recipient::parse(&e.recipient).unwrap().to_age().unwrap();
    let ct = encrypt(b"secret", &[r.as_ref()]).unwrap();
    let age_id = id
        .age_identity(&crate::format::crypto::NoPassphrase)
        .unwrap()
        .unwrap();
    assert_eq!(&decrypt(&ct, &[age_id]).unwrap()[..], b"secret");
    // It signs through the agent, as the SSH key.
    let pem = id
        .signer(&crate::format::crypto::NoPassphrase)
        .unwrap()
        .sign("sesto-node-v1", b"m")
        .unwrap();
    assert_eq!(
        crate::format::crypto::verify(&pem, "sesto-node-v1", b"m").unwrap(),
        e.ssh_key
    );
}

#[test]
fn enrolment_refuses_an_agent_that_signs_non_deterministically() {
    let key = ed25519();
    let (_d, agent) = serve(vec![key.clone()], true);
    let err = enrol(&agent, key.public_key().key_data())
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-deterministically"), "{err}");
}

#[test]
fn a_line_whose_agent_derives_another_identity_fails_clearly() {
    let key = ed25519();
    let (_d, agent) = serve(vec![key.clone()], false);
    let e = enrol(&agent, key.public_key().key_data()).unwrap();
    // Recorded recipient of another key: the agent derives a different one.
    let wrong = age::x25519::Identity::generate().to_public().to_string();
    let line = format!("{LINE_PREFIX} {wrong} {}", e.ssh_key);
    let id = parse_line(&line, "t:1", Some(agent.clone())).unwrap();
    let err = id
        .age_identity(&crate::format::crypto::NoPassphrase)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("different key") && err.contains(&wrong),
        "{err}"
    );
    // An agent without the key.
    let (_d2, empty) = serve(vec![], false);
    let id = parse_line(&e.identity_line, "t:1", Some(empty)).unwrap();
    assert!(!id.can_sign());
    let err = id
        .age_identity(&crate::format::crypto::NoPassphrase)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not hold"), "{err}");
    // A randomizing agent is caught at use too.
    let (_d3, random) = serve(vec![key.clone()], true);
    let id = parse_line(&e.identity_line, "t:1", Some(random)).unwrap();
    assert!(id
        .age_identity(&crate::format::crypto::NoPassphrase)
        .is_err());
}

#[test]
fn pick_key_needs_a_choice_among_several() {
    let (_d, agent) = serve(vec![ed25519(), ed25519()], false);
    let err = pick_key(&agent, None).unwrap_err().to_string();
    assert!(err.contains("--key"), "{err}");
    assert!(pick_key(&agent, Some("SHA256:nope")).is_err());
    let (_d, none) = serve(vec![], false);
    assert!(pick_key(&none, None).is_err());
}

#[test]
fn identity_lines_reject_garbage_without_panic() {
    let key = ed25519();
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let ssh = key.public_key().to_openssh().unwrap();
    let good = format!("{LINE_PREFIX} {recipient} {ssh}");
    assert!(parse_line(&good, "t", None).is_ok());
    // A comment after the SSH key makes five fields: refused.
    assert!(parse_line(&format!("{good} me@host"), "t", None).is_err());
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBF\
                 o7bf1bkUQt0AlS5QlrB1OOMNN0H6B2nFj2ZmAtQ3AWMYqPJCQn4rfPvN1mHi+r1Hx8y9yoVLsk\
                 JDuzXLG14Tg=";
    let mut bad = vec![
        String::new(),
        LINE_PREFIX.to_string(),
        format!("{LINE_PREFIX} {recipient}"),
        format!("SESTO-SSH-AGENT-2 {recipient} ssh-ed25519 AAAA"),
        format!("{LINE_PREFIX} age1xyz ssh-ed25519 AAAA"),
        format!("{LINE_PREFIX} {recipient} ssh-ed25519 AAAA"),
        format!("{LINE_PREFIX} {recipient} ssh-ed25519 !!!!"),
        format!("{LINE_PREFIX} {recipient} {ecdsa}"),
        format!(
            "{LINE_PREFIX} {recipient} ssh-ed25519 {}",
            "A".repeat(MAX_LINE)
        ),
    ];
    for cut in (0..good.len()).step_by(7) {
        bad.push(good[..cut].to_string());
    }
    for b in &bad {
        assert!(parse_line(b, "t", None).is_err(), "{b:?}");
        // Through Identity::parse too, where the prefix routes it here.
        let _ = Identity::parse(b, "t");
    }
    let mut flipped = good.clone().into_bytes();
    for i in (LINE_PREFIX.len() + 1..flipped.len()).step_by(5) {
        let keep = flipped[i];
        flipped[i] = b'x';
        if let Ok(text) = std::str::from_utf8(&flipped) {
            let _ = parse_line(text, "t", None);
        }
        flipped[i] = keep;
    }
}
