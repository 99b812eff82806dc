use super::*;
use age::secrecy::ExposeSecret;

fn x25519_identity() -> (Identity, String) {
    let id = age::x25519::Identity::generate();
    let text = id.to_string().expose_secret().to_string();
    let parsed = Identity::parse(&text, "test").unwrap().pop().unwrap();
    (parsed, id.to_public().to_string())
}

#[test]
fn encrypt_decrypt_round_trip() {
    let (id, public) = x25519_identity();
    let r = Recipient::parse(&public).unwrap().to_age().unwrap();
    let ct = encrypt(b"hello", &[r.as_ref()]).unwrap();
    let pt = decrypt(&ct, &[id.age_identity(&NoPassphrase).unwrap().unwrap()]).unwrap();
    assert_eq!(&pt[..], b"hello");
    let (other, _) = x25519_identity();
    assert!(matches!(
        decrypt(&ct, &[other.age_identity(&NoPassphrase).unwrap().unwrap()]),
        Err(CryptoError::NoMatchingKeys)
    ));
}

#[test]
fn truncated_and_garbage_files_fail() {
    let (id, public) = x25519_identity();
    let r = Recipient::parse(&public).unwrap().to_age().unwrap();
    let ct = encrypt(&[7u8; 3000], &[r.as_ref()]).unwrap();
    let ids = [id.age_identity(&NoPassphrase).unwrap().unwrap()];
    for cut in [0, 10, 100, ct.len() / 2, ct.len() - 1] {
        assert!(decrypt(&ct[..cut], &ids).is_err(), "cut at {cut}");
    }
    let mut flipped = ct.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 1;
    assert!(decrypt(&flipped, &ids).is_err());
    assert!(decrypt(b"\x00\x01garbage", &ids).is_err());
}

#[test]
fn identity_parse_rejects_garbage() {
    for bad in [
        "",
        "hello",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "AGE-SECRET-KEY-1XYZ",
    ] {
        assert!(Identity::parse(bad, "t").is_err(), "{bad:?}");
    }
}

#[test]
fn public_keys_normalize_and_reject_garbage() {
    let (_, public) = x25519_identity();
    assert_eq!(normalize_public(&public).unwrap(), public);
    for bad in [
        "",
        "ssh-ed25519",
        "ssh-ed25519 AAAA",
        "age1",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    ] {
        assert!(Recipient::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn signatures_verify_and_bind_namespace_and_message() {
    let key = PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let pem = sign(&key, NODE_NAMESPACE, b"msg").unwrap();
    let signer = verify(&pem, NODE_NAMESPACE, b"msg").unwrap();
    assert_eq!(
        signer,
        normalize_ssh_public(&key.public_key().to_openssh().unwrap()).unwrap()
    );
    assert!(verify(&pem, NODE_NAMESPACE, b"other").is_err());
    assert!(verify(&pem, ROSTER_NAMESPACE, b"msg").is_err());
    assert!(verify("garbage", NODE_NAMESPACE, b"msg").is_err());
}

#[test]
fn a_prepared_signer_signs_as_ssh_key_does() {
    // Ed25519 signatures are deterministic: the prepared signer must give
    // ssh-key's own signature byte for byte, message after message.
    let key = PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let signer = Signer::new(&key).unwrap();
    for msg in [&b""[..], b"one", &[0xff; 4096]] {
        let theirs = key
            .sign(NODE_NAMESPACE, HashAlg::Sha512, msg)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(signer.sign(NODE_NAMESPACE, msg).unwrap(), theirs);
    }
    // RSA (ssh-key cannot sign with it, see Signer::new): signatures that
    // verify, bound to their namespace and message.
    let pair = ssh_key::private::RsaKeypair::random(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa = PrivateKey::from(pair);
    let signer = Signer::new(&rsa).unwrap();
    let pem = signer.sign(ROSTER_NAMESPACE, b"roster").unwrap();
    assert_eq!(
        verify(&pem, ROSTER_NAMESPACE, b"roster").unwrap(),
        normalize_ssh_public(&rsa.public_key().to_openssh().unwrap()).unwrap()
    );
    assert!(verify(&pem, ROSTER_NAMESPACE, b"other").is_err());
    assert!(verify(&pem, NODE_NAMESPACE, b"roster").is_err());
}

/// A software FIDO2 authenticator, written from OpenSSH's PROTOCOL.u2f
/// (no hardware here): it signs SHA256(application) || flags || counter
/// || SHA256(data) with an Ed25519 key. `flags` bit 0 is user presence.
struct SoftFido {
    key: ed25519_dalek::SigningKey,
    public: ssh_key::public::KeyData,
    flags: u8,
}

impl SignRaw for SoftFido {
    fn sign_raw(&self, data: &[u8]) -> Result<ssh_key::Signature, String> {
        use ed25519_dalek::Signer as _;
        use sha2::Digest;
        let counter = 7u32.to_be_bytes();
        let mut signed = sha2::Sha256::digest(b"ssh:").to_vec();
        signed.push(self.flags);
        signed.extend_from_slice(&counter);
        signed.extend_from_slice(&sha2::Sha256::digest(data));
        let mut raw = self.key.sign(&signed).to_bytes().to_vec();
        raw.push(self.flags);
        raw.extend_from_slice(&counter);
        ssh_key::Signature::new(ssh_key::Algorithm::SkEd25519, raw).map_err(|e| e.to_string())
    }
}

fn soft_fido(flags: u8) -> SoftFido {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = ssh_key::public::KeyData::SkEd25519(ssh_key::public::SkEd25519::new(
        ssh_key::public::Ed25519PublicKey(key.verifying_key().to_bytes()),
        "ssh:",
    ));
    SoftFido { key, public, flags }
}

#[test]
fn fido2_ed25519_signatures_verify_and_need_user_presence() {
    let fido = soft_fido(1);
    let public = fido.public.clone();
    let signer = Signer::agent(public.clone(), Box::new(fido));
    let pem = signer.sign(NODE_NAMESPACE, b"msg").unwrap();
    let who = verify(&pem, NODE_NAMESPACE, b"msg").unwrap();
    assert!(who.starts_with(SK_ED25519), "{who}");
    assert_eq!(normalize_public(&who).unwrap(), who);
    assert!(verify(&pem, NODE_NAMESPACE, b"other").is_err());
    assert!(verify(&pem, ROSTER_NAMESPACE, b"msg").is_err());
    // A member may sign with it, not be encrypted to it.
    assert_eq!(check_signing_key(&who).unwrap(), who);
    assert!(check_member_key(&who)
        .unwrap_err()
        .0
        .contains("--signing-key"));
    // No touch: Signer::agent's own check passes (ssh-key ignores the
    // flags), and verify refuses it.
    let untouched = soft_fido(0);
    let public = untouched.public.clone();
    let pem = Signer::agent(public, Box::new(untouched))
        .sign(NODE_NAMESPACE, b"msg")
        .unwrap();
    let err = verify(&pem, NODE_NAMESPACE, b"msg")
        .unwrap_err()
        .to_string();
    assert!(err.contains("user presence"), "{err}");
}
