//! The issuer's verification keys (a JWKS document), and the choice of key for a token.

use std::path::Path;

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};

use sha2::Digest as _;

use super::Algorithm;

/// Why a JWKS document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("not a JWKS document: {0}")]
    NotJwks(String),
    #[error("key #{index} ({kid}): {reason}")]
    UnusableKey { index: usize, kid: String, reason: String },
    #[error("holds no signature verification key")]
    NoKeys,
}

/// What a key is, which decides which algorithms may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

/// One public key with what it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    kind: KeyKind,
    /// The JWK's own `alg`, when the issuer pinned one.
    pinned_alg: Option<Algorithm>,
    /// RFC 7638 SHA-256 thumbprint, so a key met in another form (a
    /// certificate's public key) can be recognised without comparing encodings.
    thumbprint: String,
    verifier: Verifier,
}

/// How a key checks signatures.
#[derive(Clone)]
enum Verifier {
    /// EC and Ed25519 keys, parsed once for aws-lc-rs rather than on every
    /// verification as `jsonwebtoken` does: a few microseconds per token.
    /// Such a key serves exactly one algorithm.
    Parsed(ParsedPublicKey),
    /// RSA keys, which may verify several algorithms, through `jsonwebtoken`.
    Library(DecodingKey),
}

impl VerificationKey {
    /// Whether `signature_b64` (unpadded base64url) is a valid `alg` signature over `signing_input`.
    pub fn verify(&self, alg: Algorithm, signing_input: &[u8], signature_b64: &str) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.verifier {
            Verifier::Parsed(key) => {
                // The largest signature of a parsed kind: ES384's 96 bytes.
                let mut signature = [0u8; 96];
                match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) {
                    Ok(len) => key.verify_sig(signing_input, &signature[..len]).is_ok(),
                    Err(_) => false,
                }
            }
            Verifier::Library(key) => {
                jsonwebtoken::crypto::verify(signature_b64, signing_input, key, alg.to_jsonwebtoken()).unwrap_or(false)
            }
        }
    }

    /// The RFC 7638 SHA-256 thumbprint of the key, unpadded base64url.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether a signature made with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        if self.pinned_alg.is_some_and(|pinned| pinned != alg) {
            return false;
        }
        matches!(
            (self.kind, alg),
            (KeyKind::EcP256, Algorithm::ES256)
                | (KeyKind::EcP384, Algorithm::ES384)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
                | (
                    KeyKind::Rsa,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                )
        )
    }
}

/// A key set, as loaded from the issuer's JWKS. Clone, so the authorization
/// server's key ring can hand the gateway a copy of the set it publishes.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    /// SHA-256 of the document the keys came from: a refetch that returns the
    /// same document changes nothing, and cached verifications stay valid.
    document_digest: [u8; 32],
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChoiceError {
    /// The set is empty: keys from the issuer have not been fetched yet.
    NoKeys,
    UnknownKid,
    AmbiguousWithoutKid,
    AlgorithmMismatch,
}

impl KeySet {
    /// Reads a JWKS file.
    pub fn from_file(path: &Path) -> Result<KeySet, JwksError> {
        let bytes = std::fs::read(path).map_err(JwksError::Unreadable)?;
        KeySet::from_json(&bytes)
    }

    /// Parses a JWKS document. Encryption keys are skipped; a symmetric key or
    /// a private key is an error, since either means the wrong thing was published.
    pub fn from_json(bytes: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(bytes).map_err(|e| JwksError::NotJwks(e.to_string()))?;
        let mut keys = Vec::with_capacity(doc.keys.len());
        for (index, value) in doc.keys.into_iter().enumerate() {
            if let Some((key, _)) = parse_key(index, value)? {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoKeys);
        }
        Ok(KeySet {
            keys,
            document_digest: sha2::Sha256::digest(bytes).into(),
        })
    }

    /// Whether `other` came from the very same JWKS document.
    pub fn same_document(&self, other: &KeySet) -> bool {
        self.document_digest == other.document_digest
    }

    /// A set with no keys: what a remote key store holds before its first fetch.
    pub fn empty() -> KeySet {
        KeySet {
            keys: Vec::new(),
            document_digest: [0; 32],
        }
    }

    /// Every key, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter()
    }

    /// Whether a key with this `kid` is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, for `bindgate check`.
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Picks the key for a token: by `kid`, or the only key when the token
    /// names none; then the key must suit the token's algorithm.
    pub fn choose(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerificationKey, KeyChoiceError> {
        if self.keys.is_empty() {
            return Err(KeyChoiceError::NoKeys);
        }
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(KeyChoiceError::UnknownKid)?,
            None => match self.keys.as_slice() {
                [only] => only,
                _ => return Err(KeyChoiceError::AmbiguousWithoutKid),
            },
        };
        if key.accepts(alg) {
            Ok(key)
        } else {
            Err(KeyChoiceError::AlgorithmMismatch)
        }
    }
}

impl VerificationKey {
    /// A key met outside any key set (a DPoP proof's `jwk`), under the same
    /// rules as a set's keys, with the JWK it was parsed from. A key meant
    /// for encryption is no key at all here.
    pub fn from_jwk(jwk: serde_json::Value) -> Result<(VerificationKey, Jwk), JwksError> {
        parse_key(0, jwk)?.ok_or(JwksError::NoKeys)
    }
}

/// The members of a public JWK that its RFC 7638 thumbprint covers: the
/// required members of its key type and nothing else, so `kid`, `alg` and
/// `use` never change a thumbprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbprintInput<'a> {
    Ec { crv: &'a str, x: &'a str, y: &'a str },
    Okp { crv: &'a str, x: &'a str },
    Rsa { e: &'a str, n: &'a str },
}

/// The RFC 7638 SHA-256 thumbprint of a public key, unpadded base64url: the
/// `kid` of the keys bindgate signs with (stable across restarts and hosts)
/// and the `cnf.jkt` naming a DPoP key.
pub fn thumbprint(key: ThumbprintInput<'_>) -> String {
    // Section 3.2: the required members in lexicographic order of their names, no whitespace.
    let members: Vec<(&str, &str)> = match key {
        ThumbprintInput::Ec { crv, x, y } => vec![("crv", crv), ("kty", "EC"), ("x", x), ("y", y)],
        ThumbprintInput::Okp { crv, x } => vec![("crv", crv), ("kty", "OKP"), ("x", x)],
        ThumbprintInput::Rsa { e, n } => vec![("e", e), ("kty", "RSA"), ("n", n)],
    };
    let mut canonical = String::from("{");
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":");
        // A JSON string as serde_json writes it: escaped where JSON requires, UTF-8 otherwise.
        canonical.push_str(&serde_json::Value::from(value).to_string());
    }
    canonical.push('}');
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// A set's key `index`, with the JWK it was parsed from; `None` for a key meant for encryption.
fn parse_key(index: usize, value: serde_json::Value) -> Result<Option<(VerificationKey, Jwk)>, JwksError> {
    let kid_label = value
        .get("kid")
        .and_then(|k| k.as_str())
        .map(|k| format!("kid {k:?}"))
        .unwrap_or_else(|| "no kid".to_string());
    let unusable = |reason: String| JwksError::UnusableKey {
        index,
        kid: kid_label.clone(),
        reason,
    };
    if value.get("d").is_some() || value.get("p").is_some() {
        return Err(unusable(
            "contains private key material; publish public keys only".to_string(),
        ));
    }
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| unusable(e.to_string()))?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Ok(None);
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            ref other => return Err(unusable(format!("EC curve {other:?} is not supported"))),
        },
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            ref other => return Err(unusable(format!("OKP curve {other:?} is not supported"))),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(unusable(
                "symmetric (oct) keys are never used to verify tokens".to_string(),
            ));
        }
        _ => return Err(unusable("unsupported key type".to_string())),
    };
    let pinned_alg = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(pinned_algorithm(alg).ok_or_else(|| unusable(format!("alg {alg:?} is not allowed")))?),
    };
    let verifier = match parse_for_aws_lc(&jwk.algorithm, kind).map_err(unusable)? {
        Some(parsed) => Verifier::Parsed(parsed),
        None => Verifier::Library(DecodingKey::from_jwk(&jwk).map_err(|e| unusable(e.to_string()))?),
    };
    let thumbprint = thumbprint(match (&jwk.algorithm, kind) {
        (AlgorithmParameters::EllipticCurve(ec), KeyKind::EcP256) => ThumbprintInput::Ec {
            crv: "P-256",
            x: &ec.x,
            y: &ec.y,
        },
        (AlgorithmParameters::EllipticCurve(ec), _) => ThumbprintInput::Ec {
            crv: "P-384",
            x: &ec.x,
            y: &ec.y,
        },
        (AlgorithmParameters::OctetKeyPair(okp), _) => ThumbprintInput::Okp {
            crv: "Ed25519",
            x: &okp.x,
        },
        (AlgorithmParameters::RSA(rsa), _) => ThumbprintInput::Rsa { e: &rsa.e, n: &rsa.n },
        _ => return Err(unusable("unsupported key type".to_string())),
    });
    let key = VerificationKey {
        kid: jwk.common.key_id.clone(),
        kind,
        pinned_alg,
        thumbprint,
        verifier,
    };
    if let Some(pinned) = key.pinned_alg
        && !key.accepts(pinned)
    {
        return Err(unusable(format!("alg {pinned} does not fit the key type")));
    }
    Ok(Some((key, jwk)))
}

/// The aws-lc-rs form of EC and Ed25519 keys; RSA keys stay with `jsonwebtoken`,
/// since one RSA key may verify several algorithms.
fn parse_for_aws_lc(params: &AlgorithmParameters, kind: KeyKind) -> Result<Option<ParsedPublicKey>, String> {
    let decode = |member: &str, value: &str, len: usize| -> Result<Vec<u8>, String> {
        match URL_SAFE_NO_PAD.decode(value) {
            Ok(bytes) if bytes.len() == len => Ok(bytes),
            _ => Err(format!("{member} is not {len} bytes of unpadded base64url")),
        }
    };
    let (algorithm, bytes): (&'static dyn VerificationAlgorithm, Vec<u8>) = match (params, kind) {
        (AlgorithmParameters::EllipticCurve(ec), KeyKind::EcP256 | KeyKind::EcP384) => {
            let (algorithm, len): (&'static dyn VerificationAlgorithm, usize) = if kind == KeyKind::EcP256 {
                (&signature::ECDSA_P256_SHA256_FIXED, 32)
            } else {
                (&signature::ECDSA_P384_SHA384_FIXED, 48)
            };
            let point = [vec![4u8], decode("x", &ec.x, len)?, decode("y", &ec.y, len)?].concat();
            (algorithm, point)
        }
        (AlgorithmParameters::OctetKeyPair(okp), KeyKind::Ed25519) => (&signature::ED25519, decode("x", &okp.x, 32)?),
        _ => return Ok(None),
    };
    ParsedPublicKey::new(algorithm, bytes)
        .map(Some)
        .map_err(|e| format!("not a valid public key: {e}"))
}

fn pinned_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::from_name(&alg.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec_key(kid: &str) -> String {
        format!(r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","kid":"{kid}"}}"#)
    }

    #[test]
    fn chooses_by_kid_and_checks_the_algorithm_fits() {
        let set = KeySet::from_json(format!(r#"{{"keys":[{},{}]}}"#, ec_key("a"), ec_key("b")).as_bytes()).unwrap();
        assert_eq!(
            set.choose(Some("b"), Algorithm::ES256).unwrap().kid.as_deref(),
            Some("b")
        );
        assert_eq!(
            set.choose(Some("c"), Algorithm::ES256).err(),
            Some(KeyChoiceError::UnknownKid)
        );
        assert_eq!(
            set.choose(None, Algorithm::ES256).err(),
            Some(KeyChoiceError::AmbiguousWithoutKid)
        );
        assert_eq!(
            set.choose(Some("a"), Algorithm::RS256).err(),
            Some(KeyChoiceError::AlgorithmMismatch)
        );
    }

    #[test]
    fn single_key_without_kid_is_used() {
        let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}"}}"#);
        let set = KeySet::from_json(format!(r#"{{"keys":[{jwk}]}}"#).as_bytes()).unwrap();
        assert!(set.choose(None, Algorithm::ES256).is_ok());
    }

    #[test]
    fn symmetric_and_private_keys_are_refused() {
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(matches!(
            KeySet::from_json(oct.as_bytes()),
            Err(JwksError::UnusableKey { .. })
        ));
        let private = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","d":"AAAA"}}]}}"#);
        assert!(matches!(
            KeySet::from_json(private.as_bytes()),
            Err(JwksError::UnusableKey { .. })
        ));
    }

    #[test]
    fn encryption_keys_are_skipped_and_empty_sets_refused() {
        let enc = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","use":"enc"}}]}}"#);
        assert!(matches!(KeySet::from_json(enc.as_bytes()), Err(JwksError::NoKeys)));
        assert!(matches!(KeySet::from_json(b"{\"keys\":[]}"), Err(JwksError::NoKeys)));
        assert!(matches!(KeySet::from_json(b"[]"), Err(JwksError::NotJwks(_))));
    }

    #[test]
    fn a_pinned_alg_restricts_the_key() {
        let jwk = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","alg":"ES256"}}]}}"#);
        let set = KeySet::from_json(jwk.as_bytes()).unwrap();
        assert!(set.choose(None, Algorithm::ES256).is_ok());
        let mismatched = jwk.replace("\"alg\":\"ES256\"", "\"alg\":\"RS256\"");
        assert!(KeySet::from_json(mismatched.as_bytes()).is_err());
    }

    fn sign(key: &rcgen::KeyPair, alg: jsonwebtoken::Algorithm, input: &str) -> String {
        let encoding = match alg {
            jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_der(&key.serialize_der()),
            _ => jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
        };
        jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, alg).unwrap()
    }

    fn only_key(jwk: serde_json::Value) -> KeySet {
        KeySet::from_json(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn parsed_keys_verify_and_refuse_like_the_library() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ec_jwk = |key: &rcgen::KeyPair, crv: &str| {
            let point = key.public_key_raw();
            let half = (point.len() - 1) / 2;
            serde_json::json!({"kty": "EC", "crv": crv,
                "x": URL_SAFE_NO_PAD.encode(&point[1..1 + half]), "y": URL_SAFE_NO_PAD.encode(&point[1 + half..])})
        };
        let cases = [
            (only_key(ec_jwk(&p256, "P-256")), &p256, Algorithm::ES256),
            (only_key(ec_jwk(&p384, "P-384")), &p384, Algorithm::ES384),
            (
                only_key(
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(ed.public_key_raw())}),
                ),
                &ed,
                Algorithm::EdDSA,
            ),
        ];
        for (set, signer, alg) in cases {
            let key = set.choose(None, alg).unwrap();
            assert!(
                matches!(key.verifier, Verifier::Parsed(_)),
                "{alg}: not parsed for aws-lc-rs"
            );
            let signature = sign(signer, alg.to_jsonwebtoken(), "header.payload");
            assert!(key.verify(alg, b"header.payload", &signature), "{alg}");
            assert!(!key.verify(alg, b"header.payloae", &signature), "{alg}: tampered input");
            assert!(
                !key.verify(alg, b"header.payload", "not!base64"),
                "{alg}: garbage signature"
            );
        }
    }

    #[test]
    fn thumbprints_match_the_rfc_examples() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(ThumbprintInput::Rsa { e: "AQAB", n }),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 appendix A.3.
        assert_eq!(
            thumbprint(ThumbprintInput::Okp {
                crv: "Ed25519",
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn an_ec_thumbprint_agrees_with_the_library() {
        let jwk: Jwk = serde_json::from_str(&ec_key("ignored")).unwrap();
        assert_eq!(
            thumbprint(ThumbprintInput::Ec {
                crv: "P-256",
                x: P256_X,
                y: P256_Y
            }),
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap()
        );
    }

    #[test]
    fn each_key_of_a_set_knows_its_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let document = serde_json::json!({"keys": [
            serde_json::from_str::<serde_json::Value>(&ec_key("ec")).unwrap(),
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kty": "RSA", "e": "AQAB", "n": n, "kid": "rsa", "alg": "RS256"},
        ]});
        let set = KeySet::from_json(document.to_string().as_bytes()).unwrap();
        let thumbprints: Vec<&str> = set.keys().map(VerificationKey::thumbprint).collect();
        let ec: Jwk = serde_json::from_str(&ec_key("ec")).unwrap();
        let ec_thumbprint = ec.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap();
        assert_eq!(
            thumbprints,
            [
                ec_thumbprint.as_str(),
                // RFC 8037 appendix A.3 and RFC 7638 section 3.1: kid and alg do not count.
                "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
            ]
        );
    }

    #[test]
    fn an_ec_point_of_the_wrong_size_is_refused() {
        let short = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1u8; 31]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])}]});
        assert!(KeySet::from_json(short.to_string().as_bytes()).is_err());
    }
}
