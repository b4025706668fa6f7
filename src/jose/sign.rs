//! The authorization server's signing keys: one private key read from a PEM
//! file ([`SigningKey`]), and the ordered set of them it signs with and
//! publishes ([`KeyRing`]).
//!
//! Only EC P-256 (ES256) and Ed25519 (EdDSA): every resource server verifies
//! both, and their keys are small and fast. An RSA key is refused by name
//! rather than signing tokens some verifiers would not expect.

mod keyring;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, Signature,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject};
use serde::Serialize;
use x509_parser::asn1_rs::{Any, FromDer, Sequence};
use x509_parser::x509::AlgorithmIdentifier;

pub use self::keyring::{KeyRing, KeyRingError};
use super::Algorithm;
use super::jwk::{ThumbprintInput, thumbprint};

/// A private key the authorization server signs with, and what it publishes
/// about it. Its `Debug` shows the algorithm and key id, never key material.
pub struct SigningKey {
    pair: Pair,
    kid: String,
    public_jwk: serde_json::Value,
}

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// Why a file holds no usable signing key; shown with the file's name.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct SigningKeyError {
    pub path: PathBuf,
    #[source]
    pub reason: UnusableKey,
}

/// What is wrong with a would-be signing key. Never quotes the key.
#[derive(Debug, thiserror::Error)]
pub enum UnusableKey {
    #[error("cannot read: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("is not valid PEM: {0}")]
    NotPem(&'static str),
    #[error("holds no PEM private key (a PKCS#8 \"PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")")]
    NoPrivateKey,
    #[error("holds an encrypted private key; bindgate reads unencrypted PKCS#8 only (protect the file instead)")]
    Encrypted,
    #[error("holds {0} private keys; put each signing key in a file of its own")]
    SeveralKeys(usize),
    #[error("{0}; signing keys must be EC P-256 (ES256) or Ed25519 (EdDSA)")]
    Unsupported(KeyType),
    #[error("is not a valid {what} private key ({reason})")]
    Malformed { what: &'static str, reason: String },
}

/// The type of a private key, as its encoding names it. Displayed as a
/// phrase ("an RSA key") for the error that refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    EcP256,
    Ed25519,
    EcP384,
    EcP521,
    /// An EC key on another curve, with the curve's OID.
    EcCurve(String),
    Rsa,
    RsaPss,
    Ed448,
    X25519,
    X448,
    /// Any other algorithm, with its OID.
    Other(String),
}

/// Why no JWS could be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot encode the header or the claims as JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the signature could not be computed")]
    Crypto,
    /// Only from [`super::jws::sign_es256`], which takes raw key bytes.
    #[error("not an EC P-256 private key in PKCS#8 DER")]
    NotP256Key,
}

impl SigningKey {
    /// Reads the one private key in a PEM file: PKCS#8 EC P-256 or Ed25519,
    /// or SEC1 EC P-256.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, SigningKeyError> {
        let error = |reason| SigningKeyError {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| error(UnusableKey::Unreadable(e)))?;
        SigningKey::from_pem(&pem).map_err(error)
    }

    /// Reads a PEM document holding exactly one private key.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, UnusableKey> {
        let keys = PrivateKeyDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(not_pem)?;
        match keys.as_slice() {
            [] if contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") => Err(UnusableKey::Encrypted),
            [] => Err(UnusableKey::NoPrivateKey),
            [PrivateKeyDer::Pkcs8(der)] => SigningKey::from_pkcs8_der(der.secret_pkcs8_der()),
            [PrivateKeyDer::Sec1(der)] => SigningKey::from_sec1_der(der.secret_sec1_der()),
            [PrivateKeyDer::Pkcs1(_)] => Err(UnusableKey::Unsupported(KeyType::Rsa)),
            [_] => Err(UnusableKey::NoPrivateKey),
            several => Err(UnusableKey::SeveralKeys(several.len())),
        }
    }

    /// An unencrypted PKCS#8 (RFC 5958) private key, v1 or v2.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, UnusableKey> {
        // The key type is read first so that a refusal can say what the file holds.
        let key_type = pkcs8_key_type(der).ok_or_else(|| UnusableKey::Malformed {
            what: "PKCS#8",
            reason: "no algorithm identifier".to_string(),
        })?;
        match key_type {
            KeyType::EcP256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(|pair| SigningKey::new(Pair::Es256(pair)))
                .map_err(|e| UnusableKey::Malformed {
                    what: "EC P-256",
                    reason: e.to_string(),
                }),
            KeyType::Ed25519 => Ed25519KeyPair::from_pkcs8(der)
                .map(|pair| SigningKey::new(Pair::EdDsa(pair)))
                .map_err(|e| UnusableKey::Malformed {
                    what: "Ed25519",
                    reason: e.to_string(),
                }),
            other => Err(UnusableKey::Unsupported(other)),
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        match self.pair {
            Pair::Es256(_) => Algorithm::ES256,
            Pair::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    /// The RFC 7638 thumbprint of the public key: the same for the same key
    /// on every host and after every restart, so tokens outlive both.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as published in the JWKS: `kty`, `crv`, `x` (and `y`),
    /// `kid`, `alg` and `use: "sig"`.
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public_jwk.clone()
    }

    /// A compact JWS of `claims` with the protected header
    /// `{"alg", "kid", "typ"}`; `typ` is the caller's (`at+jwt` for an access token).
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, SignError> {
        let header = serde_json::json!({ "alg": self.alg().name(), "kid": self.kid, "typ": typ });
        self.sign_with_header(&header, claims)
    }

    /// A compact JWS of exactly `header` and `claims`. The header is not
    /// checked against the key, so tests can craft wrong ones byte for byte.
    pub fn sign_with_header(&self, header: &impl Serialize, claims: &impl Serialize) -> Result<String, SignError> {
        let header = serde_json::to_vec(header).map_err(SignError::Json)?;
        let claims = serde_json::to_vec(claims).map_err(SignError::Json)?;
        let mut jws = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 96);
        URL_SAFE_NO_PAD.encode_string(header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = self.signature(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    /// The JWS signature over `input`: for ES256 the fixed-width `r || s` of
    /// RFC 7518 section 3.4 (64 bytes, not DER), for EdDSA the 64 bytes of RFC 8037.
    fn signature(&self, input: &[u8]) -> Result<Signature, SignError> {
        match &self.pair {
            Pair::Es256(pair) => pair.sign(&SystemRandom::new(), input).map_err(|_| SignError::Crypto),
            Pair::EdDsa(pair) => pair.try_sign(input).map_err(|_| SignError::Crypto),
        }
    }

    /// A SEC1 (RFC 5915) EC private key, as `openssl ecparam -genkey` writes.
    fn from_sec1_der(der: &[u8]) -> Result<SigningKey, UnusableKey> {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(SigningKey::new(Pair::Es256(pair)));
        }
        // Only to name the curve in the refusal.
        for (alg, key_type) in [
            (&ECDSA_P384_SHA384_FIXED_SIGNING, KeyType::EcP384),
            (&ECDSA_P521_SHA512_FIXED_SIGNING, KeyType::EcP521),
        ] {
            if EcdsaKeyPair::from_private_key_der(alg, der).is_ok() {
                return Err(UnusableKey::Unsupported(key_type));
            }
        }
        Err(UnusableKey::Malformed {
            what: "SEC1 EC P-256",
            reason: "not an EC P-256 key, or not valid DER".to_string(),
        })
    }

    fn new(pair: Pair) -> SigningKey {
        let (public_jwk, kid) = match &pair {
            Pair::Es256(pair) => {
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(point.len().saturating_sub(1) / 2);
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                let kid = thumbprint(ThumbprintInput::Ec {
                    crv: "P-256",
                    x: &x,
                    y: &y,
                });
                let jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig",
                });
                (jwk, kid)
            }
            Pair::EdDsa(pair) => {
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let kid = thumbprint(ThumbprintInput::Okp { crv: "Ed25519", x: &x });
                let jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig",
                });
                (jwk, kid)
            }
        };
        SigningKey { pair, kid, public_jwk }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::EcP256 => f.write_str("an EC P-256 key"),
            KeyType::Ed25519 => f.write_str("an Ed25519 key"),
            KeyType::EcP384 => f.write_str("an EC P-384 key"),
            KeyType::EcP521 => f.write_str("an EC P-521 key"),
            KeyType::EcCurve(oid) => write!(f, "an EC key on the curve {oid}"),
            KeyType::Rsa => f.write_str("an RSA key"),
            KeyType::RsaPss => f.write_str("an RSA-PSS key"),
            KeyType::Ed448 => f.write_str("an Ed448 key"),
            KeyType::X25519 => f.write_str("an X25519 key (for key agreement, not signatures)"),
            KeyType::X448 => f.write_str("an X448 key (for key agreement, not signatures)"),
            KeyType::Other(oid) => write!(f, "a key of the algorithm {oid}"),
        }
    }
}

// Object identifiers of key algorithms (RFC 5480, RFC 8017, RFC 8410) and EC curves (RFC 5480).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_X25519: &str = "1.3.101.110";
const OID_X448: &str = "1.3.101.111";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

/// The key type a PKCS#8 `PrivateKeyInfo` names in its algorithm identifier;
/// `None` when it is not even that shape.
fn pkcs8_key_type(der: &[u8]) -> Option<KeyType> {
    let (_, info) = Sequence::from_der(der).ok()?;
    // PrivateKeyInfo ::= SEQUENCE { version, privateKeyAlgorithm, privateKey, ... }
    let (rest, _version) = Any::from_der(&info.content).ok()?;
    let (_, algorithm) = AlgorithmIdentifier::from_der(rest).ok()?;
    let oid = algorithm.algorithm.to_id_string();
    let curve = algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|c| c.to_id_string());
    Some(match (oid.as_str(), curve.as_deref()) {
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => KeyType::EcP256,
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => KeyType::EcP384,
        (OID_EC_PUBLIC_KEY, Some(OID_P521)) => KeyType::EcP521,
        (OID_EC_PUBLIC_KEY, curve) => KeyType::EcCurve(curve.unwrap_or("(unnamed)").to_string()),
        (OID_ED25519, _) => KeyType::Ed25519,
        (OID_RSA, _) => KeyType::Rsa,
        (OID_RSA_PSS, _) => KeyType::RsaPss,
        (OID_ED448, _) => KeyType::Ed448,
        (OID_X25519, _) => KeyType::X25519,
        (OID_X448, _) => KeyType::X448,
        _ => KeyType::Other(oid),
    })
}

/// A PEM error in words that never quote the file: its base64 is key material.
fn not_pem(e: pem::Error) -> UnusableKey {
    UnusableKey::NotPem(match e {
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable",
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
