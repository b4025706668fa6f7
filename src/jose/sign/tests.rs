use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;
use crate::jose::jwk::KeySet;
use crate::jose::jws::{self, JoseHeader};

/// A PEM block of `der`, wrapped at 64 columns as OpenSSL writes it.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://as.example", "sub": "svc-a", "exp": 1_800_000_000u64, "cnf": {"jkt": "abc"}})
}

/// The key pairs of both algorithms, from rcgen rather than our own code.
fn generated() -> [(rcgen::KeyPair, Algorithm); 2] {
    [
        (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            Algorithm::ES256,
        ),
        (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            Algorithm::EdDSA,
        ),
    ]
}

#[test]
fn tokens_of_both_algorithms_verify_with_the_published_key_set() {
    let dir = tempfile::tempdir().unwrap();
    for (pair, alg) in generated() {
        let path = write(dir.path(), &format!("{alg}.pem"), &pair.serialize_pem());
        let ring = KeyRing::load(&[path]).unwrap();
        let token = ring.signer().sign("at+jwt", &claims()).unwrap();

        let parsed = jws::parse::<JoseHeader>(&token).unwrap();
        assert_eq!(parsed.header.alg, alg.name());
        assert_eq!(parsed.header.kid.as_deref(), Some(ring.signer().kid()));
        assert_eq!(parsed.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            jws::decode_part(parsed.signature_b64, "signature").unwrap().len(),
            64,
            "{alg}"
        );
        let payload: serde_json::Value =
            serde_json::from_slice(&jws::decode_part(parsed.payload_b64, "payload").unwrap()).unwrap();
        assert_eq!(payload, claims());

        let kid = parsed.header.kid.as_deref();
        for set in [
            KeySet::from_json(ring.jwks_json().as_bytes()).unwrap(),
            ring.verification_keys(),
        ] {
            let key = set.choose(kid, alg).unwrap();
            assert!(
                key.verify(alg, parsed.signing_input.as_bytes(), parsed.signature_b64),
                "{alg}"
            );
            assert!(!key.verify(alg, b"other input", parsed.signature_b64), "{alg}");
        }

        // jsonwebtoken, given the public key rcgen made, agrees.
        let public = match alg {
            Algorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_der(pair.public_key_raw()),
            _ => jsonwebtoken::DecodingKey::from_ed_der(pair.public_key_raw()),
        };
        assert!(
            jsonwebtoken::crypto::verify(
                parsed.signature_b64,
                parsed.signing_input.as_bytes(),
                &public,
                alg.to_jsonwebtoken()
            )
            .unwrap(),
            "{alg}"
        );
    }
}

#[test]
fn the_kid_is_the_rfc7638_thumbprint_of_the_public_key() {
    for (pair, alg) in generated() {
        let key = SigningKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
        assert_eq!(key.alg(), alg);
        let raw = pair.public_key_raw();
        // Written out by hand: required members, sorted, no whitespace (RFC 7638 section 3).
        let canonical = match alg {
            Algorithm::ES256 => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(&raw[1..33]),
                b64(&raw[33..])
            ),
            _ => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(raw)),
        };
        assert_eq!(key.kid(), b64(&Sha256::digest(canonical.as_bytes())), "{alg}");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).unwrap();
        assert_eq!(
            key.kid(),
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap()
        );
        assert_eq!(key.public_jwk()["kid"], key.kid());
        assert_eq!(key.public_jwk()["alg"], alg.name());
        assert_eq!(key.public_jwk()["use"], "sig");
    }
}

/// The private key of RFC 8037 appendix A.1 as PKCS#8 v1 (RFC 8410 section 7).
fn rfc8037_key() -> SigningKey {
    let seed = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let prefix = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    SigningKey::from_pem(pem("PRIVATE KEY", &[&prefix[..], &seed].concat()).as_bytes()).unwrap()
}

#[test]
fn the_rfc8037_example_key_has_its_thumbprint_and_signature() {
    let key = rfc8037_key();
    assert_eq!(key.alg(), Algorithm::EdDSA);
    // Appendix A.2 and A.3.
    assert_eq!(key.public_jwk()["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    // Appendix A.4: Ed25519 is deterministic, so the signature is exactly the RFC's.
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    assert_eq!(
        b64(key.signature(input.as_bytes()).unwrap().as_ref()),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

#[test]
fn a_sec1_p256_key_is_the_same_key_as_its_pkcs8_form() {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let sec1 = pair.private_key().as_der().unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let from_sec1 = SigningKey::from_pem(pem("EC PRIVATE KEY", sec1.as_ref()).as_bytes()).unwrap();
    let from_pkcs8 = SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    assert_eq!(from_sec1.alg(), Algorithm::ES256);
    assert_eq!(from_sec1.kid(), from_pkcs8.kid());
}

#[test]
fn other_key_types_are_refused_by_name_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa: aws_lc_rs::encoding::Pkcs8V1Der<'_> = rsa.as_der().unwrap();
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384_sec1 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let p384_sec1 = p384_sec1.private_key().as_der().unwrap();
    let cases = [
        ("rsa.pem", pem("PRIVATE KEY", rsa.as_ref()), KeyType::Rsa),
        // A PKCS#1 key is RSA by its label alone.
        ("rsa1.pem", pem("RSA PRIVATE KEY", b"unparsed"), KeyType::Rsa),
        ("p384.pem", p384.serialize_pem(), KeyType::EcP384),
        (
            "p384-sec1.pem",
            pem("EC PRIVATE KEY", p384_sec1.as_ref()),
            KeyType::EcP384,
        ),
    ];
    for (name, contents, found) in cases {
        let path = write(dir.path(), name, &contents);
        let err = SigningKey::from_pem_file(&path).unwrap_err();
        assert!(
            matches!(&err.reason, UnusableKey::Unsupported(t) if *t == found),
            "{name}: {err}"
        );
        assert_eq!(err.path, path);
        let message = err.to_string();
        assert!(message.starts_with(&path.display().to_string()), "{message}");
        assert!(
            message.ends_with(&format!(
                "{found}; signing keys must be EC P-256 (ES256) or Ed25519 (EdDSA)"
            )),
            "{message}"
        );
    }
    let rsa_message = SigningKey::from_pem_file(&dir.path().join("rsa.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        rsa_message.contains(": an RSA key; signing keys must be"),
        "{rsa_message}"
    );
}

#[test]
fn files_without_exactly_one_usable_private_key_are_refused() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    let certificate = pem("CERTIFICATE", b"not parsed");
    let encrypted = pem("ENCRYPTED PRIVATE KEY", b"not parsed");
    let two = format!("{ed}{}", rcgen::KeyPair::generate().unwrap().serialize_pem());
    let garbled = "-----BEGIN PRIVATE KEY-----\nMIGH!!notbase64\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        SigningKey::from_pem(certificate.as_bytes()),
        Err(UnusableKey::NoPrivateKey)
    ));
    assert!(matches!(
        SigningKey::from_pem(encrypted.as_bytes()),
        Err(UnusableKey::Encrypted)
    ));
    assert!(matches!(
        SigningKey::from_pem(two.as_bytes()),
        Err(UnusableKey::SeveralKeys(2))
    ));
    assert!(matches!(
        SigningKey::from_pem(garbled.as_bytes()),
        Err(UnusableKey::NotPem(_))
    ));
    assert!(matches!(
        SigningKey::from_pem(pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00").as_bytes()),
        Err(UnusableKey::Malformed { .. })
    ));
    let err = SigningKey::from_pem_file(Path::new("/nonexistent/key.pem")).unwrap_err();
    assert!(matches!(err.reason, UnusableKey::Unreadable(_)), "{err}");
    assert!(
        err.to_string().starts_with("/nonexistent/key.pem: cannot read"),
        "{err}"
    );
}

#[test]
fn debug_and_errors_show_no_key_material() {
    let key = rfc8037_key();
    assert_eq!(
        format!("{key:?}"),
        format!("SigningKey {{ alg: EdDSA, kid: {:?}, .. }}", key.kid())
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    let ring = KeyRing::load(std::slice::from_ref(&path)).unwrap();
    assert_eq!(
        format!("{ring:?}"),
        format!("[SigningKey {{ alg: ES256, kid: {:?}, .. }}]", ring.signer().kid())
    );
    // A key whose body is valid base64 but not a key: the error quotes none of it.
    let body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
    let err =
        SigningKey::from_pem(format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n").as_bytes())
            .unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(&body[..16]), "{shown}");
    }
}

#[test]
fn the_first_key_signs_and_every_key_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let [(p256, _), (ed, _)] = generated();
    let paths = [
        write(dir.path(), "new.pem", &ed.serialize_pem()),
        write(dir.path(), "old.pem", &p256.serialize_pem()),
    ];
    let ring = KeyRing::load(&paths).unwrap();
    assert_eq!(ring.signer().alg(), Algorithm::EdDSA);
    let kids: Vec<&str> = ring.keys().map(SigningKey::kid).collect();
    let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published, kids);
    assert_eq!(jwks.as_object().unwrap().len(), 1);
    // A token of the retiring key still verifies while the key is published.
    let old = ring.keys().nth(1).unwrap();
    let token = old.sign("at+jwt", &claims()).unwrap();
    let parsed = jws::parse::<JoseHeader>(&token).unwrap();
    let set = ring.verification_keys();
    let key = set.choose(parsed.header.kid.as_deref(), Algorithm::ES256).unwrap();
    assert!(key.verify(Algorithm::ES256, parsed.signing_input.as_bytes(), parsed.signature_b64));
    assert!(set.same_document(&KeySet::from_json(ring.jwks_json().as_bytes()).unwrap()));
}

#[test]
fn a_ring_naming_one_key_twice_or_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    let paths = [
        write(dir.path(), "a.pem", &pem),
        write(dir.path(), "b.pem", &ed),
        write(dir.path(), "copy-of-a.pem", &pem),
    ];
    let err = KeyRing::load(&paths).unwrap_err();
    assert!(
        matches!(&err, KeyRingError::Duplicate { index: 2, first_index: 0, path, first_path, .. }
            if *path == paths[2] && *first_path == paths[0]),
        "{err}"
    );
    assert!(err.to_string().contains("copy-of-a.pem"), "{err}");
    assert!(matches!(KeyRing::load(&[]), Err(KeyRingError::NoKeys)));
    let missing = [paths[0].clone(), dir.path().join("missing.pem")];
    let err = KeyRing::load(&missing).unwrap_err();
    assert!(matches!(err, KeyRingError::Key { index: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("key #1: "), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[test]
fn sign_es256_signs_the_header_as_given_and_only_with_a_p256_key() {
    let pair = rcgen::KeyPair::generate().unwrap();
    let header = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": {"kty": "EC"}});
    let token = jws::sign_es256(&pair.serialize_der(), &header, &claims()).unwrap();
    let header_b64 = token.split('.').next().unwrap();
    assert_eq!(header_b64, b64(header.to_string().as_bytes()));
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(matches!(
        jws::sign_es256(&ed.serialize_der(), &header, &claims()),
        Err(SignError::NotP256Key)
    ));
}
