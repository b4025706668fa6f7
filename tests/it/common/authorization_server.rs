//! The embedded authorization server in a test configuration: signing keys
//! written as PEM, and the `[authorization_server]` table that names them.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use sha2::{Digest, Sha256};

/// The issuer of every test configuration: the externally visible URL,
/// not the port the test binds (that is port 0).
pub const AS_ISSUER: &str = "https://localhost:8444";

/// A signing key written to disk, with what its JWK must say.
#[derive(Clone, Debug)]
pub struct SigningKeyFile {
    pub path: PathBuf,
    /// `ES256` or `EdDSA`.
    pub alg: &'static str,
    /// The JWK's `x`, computed here from the public key.
    pub x: String,
    /// The RFC 7638 thumbprint, computed here: what `kid` must be.
    pub kid: String,
}

impl SigningKeyFile {
    /// A fresh Ed25519 key in PKCS#8 PEM.
    pub fn ed25519(dir: &Path, name: &str) -> SigningKeyFile {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        SigningKeyFile::write(dir, name, &pair, "EdDSA", x, kid)
    }

    /// A fresh EC P-256 key in PKCS#8 PEM.
    pub fn p256(dir: &Path, name: &str) -> SigningKeyFile {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // Uncompressed point: 0x04 || x || y.
        let raw = pair.public_key_raw();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&raw[1..33]),
            URL_SAFE_NO_PAD.encode(&raw[33..65]),
        );
        let kid = thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
        SigningKeyFile::write(dir, name, &pair, "ES256", x, kid)
    }

    /// `claims` signed with this key as the authorization server signs an
    /// access token (`alg`, `kid`, `typ: at+jwt`), by another implementation.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let pem = std::fs::read(&self.path).unwrap();
        let (key, alg) = match self.alg {
            "EdDSA" => (EncodingKey::from_ed_pem(&pem).unwrap(), Algorithm::EdDSA),
            _ => (EncodingKey::from_ec_pem(&pem).unwrap(), Algorithm::ES256),
        };
        let header = serde_json::json!({ "alg": self.alg, "typ": "at+jwt", "kid": self.kid });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
        format!("{input}.{signature}")
    }

    fn write(
        dir: &Path,
        name: &str,
        pair: &rcgen::KeyPair,
        alg: &'static str,
        x: String,
        kid: String,
    ) -> SigningKeyFile {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, pair.serialize_pem()).unwrap();
        SigningKeyFile { path, alg, x, kid }
    }
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}

/// The `[authorization_server]` table, listening on port 0, with its keys
/// in the order given and `extra` lines and client tables after them.
pub fn as_table(keys: &[&Path], extra: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    format!(
        "[authorization_server]\nissuer = {AS_ISSUER:?}\nlisten = \"127.0.0.1:0\"\nsigning_keys = [{}]\n{}\n",
        keys.join(", "),
        extra.join("\n")
    )
}
