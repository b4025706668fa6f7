//! DPoP proofs (RFC 9449 section 4.2) for --dpop-key: ES256 or EdDSA.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Makes the DPoP proofs: the header (typ, alg, public jwk) is encoded once,
/// each proof gets its own jti (a random prefix and a counter), iat and signature.
pub struct DpopSigner {
    key: DpopKey,
    header_b64: String,
    htm: String,
    htu: String,
    jti_prefix: String,
    counter: AtomicU64,
    rng: SystemRandom,
}

enum DpopKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl DpopSigner {
    pub fn load(path: &Path, htm: &str, htu: &str) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let der = match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der,
            Ok(_) => return Err(format!("{}: not a PKCS#8 \"PRIVATE KEY\"", path.display())),
            Err(e) => return Err(format!("{}: no private key: {e}", path.display())),
        };
        let pkcs8 = der.secret_pkcs8_der();
        let (key, alg, jwk) = if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8) {
            // The uncompressed point: 0x04, x, y.
            let point = pair.public_key().as_ref();
            let (x, y) = (
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                URL_SAFE_NO_PAD.encode(&point[33..]),
            );
            let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
            (DpopKey::Es256(pair), "ES256", jwk)
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key()) });
            (DpopKey::EdDsa(pair), "EdDSA", jwk)
        } else {
            return Err(format!("{}: neither an EC P-256 nor an Ed25519 key", path.display()));
        };
        let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk });
        let rng = SystemRandom::new();
        let mut prefix = [0u8; 9];
        rng.fill(&mut prefix)
            .map_err(|_| "no randomness for the DPoP jti".to_string())?;
        Ok(Self {
            key,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            htm: htm.to_string(),
            htu: htu.to_string(),
            jti_prefix: URL_SAFE_NO_PAD.encode(prefix),
            counter: AtomicU64::new(0),
            rng,
        })
    }

    pub fn proof(&self) -> Result<HeaderValue, std::io::Error> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let jti = format!("{}-{}", self.jti_prefix, self.counter.fetch_add(1, Relaxed));
        let claims = json!({ "jti": jti, "htm": self.htm, "htu": self.htu, "iat": iat });
        let mut jws = format!("{}.{}", self.header_b64, URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = match &self.key {
            DpopKey::Es256(pair) => pair.sign(&self.rng, jws.as_bytes()).map_err(std::io::Error::other)?,
            DpopKey::EdDsa(pair) => pair.sign(jws.as_bytes()),
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        HeaderValue::try_from(jws).map_err(std::io::Error::other)
    }
}
