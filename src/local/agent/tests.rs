use super::server::is_sesto_sshsig;
use super::*;
use crate::format::crypto::NoPassphrase;
use std::sync::Arc;

#[test]
fn durations_parse_and_refuse_nonsense() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    for bad in [
        "",
        "m",
        "0s",
        "31d",
        "1y",
        "-5m",
        "99999999999999999999d",
        "1.5h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn only_sesto_sshsig_data_is_signed() {
    let ok = ssh_key::SshSig::signed_data("sesto-node-v1", ssh_key::HashAlg::Sha512, b"m").unwrap();
    assert!(is_sesto_sshsig(&ok));
    let git = ssh_key::SshSig::signed_data("git", ssh_key::HashAlg::Sha512, b"m").unwrap();
    assert!(!is_sesto_sshsig(&git));
    for bad in [
        &b""[..],
        b"SSHSIG",
        b"SSHSIG\x00\x00\x00\x09sesto",
        b"SSHSIG\xff\xff\xff\xffsesto-",
        b"\x00\x00\x00\x0essh-connection",
    ] {
        assert!(!is_sesto_sshsig(bad), "{bad:?}");
    }
}

#[test]
fn hostile_messages_are_refused_without_panic() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    // Over the limit: refused before allocating.
    a.write_all(&(u32::MAX).to_be_bytes()).unwrap();
    assert!(read_msg::<Request>(&mut b).is_err());
    for body in [
        &b"garbage"[..],
        b"{}",
        b"{\"op\":\"sign\"}",
        b"{\"op\":\"nope\"}",
        b"[]",
    ] {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
        a.write_all(body).unwrap();
        assert!(read_msg::<Request>(&mut b).is_err(), "{body:?}");
    }
    // Truncated: the length promises more than comes.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.write_all(&10u32.to_be_bytes()).unwrap();
    a.write_all(b"{\"op\"").unwrap();
    drop(a);
    assert!(read_msg::<Request>(&mut b).is_err());
}

#[test]
fn an_agent_unwraps_and_signs_and_forgets_on_lock() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent/agent.sock");
    let listener = bind(&sock).unwrap();
    let options = ServeOptions {
        socket: sock.clone(),
        idle: Duration::from_secs(60),
        exit_when_empty: false,
        harden: false,
    };
    std::thread::spawn(move || serve(listener, &options));
    let key =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let text = Zeroizing::new(key.to_openssh(ssh_key::LineEnding::LF).unwrap().to_string());
    let public =
        crate::format::crypto::normalize_public(&key.public_key().to_openssh().unwrap()).unwrap();
    let client = Arc::new(Client::connect(&sock).unwrap());
    client
        .add(vec![("k".into(), text)], Duration::from_secs(60))
        .unwrap();
    let status = client.status().unwrap();
    assert_eq!(status.keys.len(), 1);
    assert_eq!(status.keys[0].public, public);
    let ids = identities(client.clone(), &status);

    let recipient = crate::format::crypto::Recipient::parse(&public)
        .unwrap()
        .to_age()
        .unwrap();
    let ct = crate::format::crypto::encrypt(b"value", &[recipient.as_ref()]).unwrap();
    let age_id = ids[0].age_identity(&NoPassphrase).unwrap().unwrap();
    assert_eq!(
        &crate::format::crypto::decrypt(&ct, &[age_id]).unwrap()[..],
        b"value"
    );

    let pem = ids[0]
        .signer(&NoPassphrase)
        .unwrap()
        .sign(crate::format::crypto::NODE_NAMESPACE, b"msg")
        .unwrap();
    assert_eq!(
        crate::format::crypto::verify(&pem, crate::format::crypto::NODE_NAMESPACE, b"msg").unwrap(),
        public
    );
    // Signatures are Ed25519's: the same as the key's own, byte for byte.
    assert_eq!(
        pem,
        crate::format::crypto::sign(&key, crate::format::crypto::NODE_NAMESPACE, b"msg").unwrap()
    );

    client.lock().unwrap();
    assert!(client.status().unwrap().keys.is_empty());
    assert!(crate::format::crypto::decrypt(&ct, &[age_id]).is_err());
    assert!(ids[0]
        .signer(&NoPassphrase)
        .unwrap()
        .sign(crate::format::crypto::NODE_NAMESPACE, b"msg")
        .is_err());
}
