//! A token issuer for tests: an ES256 key, its JWKS, and a signer for any
//! header and payload, so tests can craft exactly the token they need.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use rcgen::KeyPair;
use serde_json::{Value, json};

pub const ISS: &str = "https://issuer.test";
pub const AUD: &str = "https://api.test";

pub struct TestIssuer {
    key: KeyPair,
    pub kid: String,
}

impl TestIssuer {
    pub fn new(kid: &str) -> TestIssuer {
        TestIssuer {
            key: KeyPair::generate().unwrap(),
            kid: kid.to_string(),
        }
    }

    /// The public JWK (EC P-256) of this issuer.
    pub fn jwk(&self) -> Value {
        let point = self.key.public_key_raw();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "kid": self.kid,
            "use": "sig",
        })
    }

    /// Writes a JWKS holding the keys of `issuers` and returns its path.
    pub fn write_jwks(dir: &Path, name: &str, issuers: &[&TestIssuer]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, Self::jwks(issuers)).unwrap();
        path
    }

    pub fn jwks(issuers: &[&TestIssuer]) -> String {
        json!({ "keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>() }).to_string()
    }

    /// The SEC1 public point: what a confused verifier might use as an HMAC secret.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.key.public_key_raw().to_vec()
    }

    /// Signs exactly `header` and `claims` with ES256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header, &claims.to_string())
    }

    /// Signs `payload` as given: for JSON a `Value` cannot hold, such as `2^64`.
    pub fn sign_raw(&self, header: &Value, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = EncodingKey::from_ec_der(&self.key.serialize_der());
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
        format!("{input}.{sig}")
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid})
    }

    /// Claims of a valid token bound to `x5t`.
    pub fn claims(&self, x5t: &str) -> Value {
        let now = now();
        json!({
            "iss": ISS,
            "aud": AUD,
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "scope": "read write",
            "cnf": { "x5t#S256": x5t },
        })
    }

    /// A valid token bound to `x5t`.
    pub fn token(&self, x5t: &str) -> String {
        self.sign(&self.header(), &self.claims(x5t))
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `base` with `key` set to `value`.
pub fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

/// `base` without `key`.
pub fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}
