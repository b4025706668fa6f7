//! `bindgate mint`: a dev access token signed with the dev issuer key and
//! bound to a client certificate.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::EncodingKey;
use rcgen::KeyPair;

use crate::identity::x5t_s256;
use crate::pem;

/// What goes into a minted token.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    pub cert: &'a Path,
    pub issuer_key: &'a Path,
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub ttl: Duration,
    pub scope: Option<&'a str>,
}

/// Why no token could be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{path}: {source}")]
    Pem {
        path: String,
        #[source]
        source: pem::PemError,
    },
    #[error("{path}: not an EC P-256 key in PKCS#8 PEM (the kind `bindgate dev-certs` writes)")]
    IssuerKey { path: String },
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Mints an ES256 token whose `cnf."x5t#S256"` is the thumbprint of `cert`.
pub fn mint(req: &MintRequest<'_>) -> Result<String, MintError> {
    let chain = pem::certificates(req.cert).map_err(|source| MintError::Pem {
        path: req.cert.display().to_string(),
        source,
    })?;
    let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
    let key_pem = std::fs::read_to_string(req.issuer_key).map_err(|e| MintError::Pem {
        path: req.issuer_key.display().to_string(),
        source: pem::PemError::Unreadable(e),
    })?;
    let bad_key = || MintError::IssuerKey {
        path: req.issuer_key.display().to_string(),
    };
    let key_pair = KeyPair::from_pem(&key_pem).map_err(|_| bad_key())?;
    if !key_pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        return Err(bad_key());
    }
    let (_, kid) = super::certs::ec_p256_jwk(&key_pair);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut claims = serde_json::json!({
        "iss": req.iss,
        "sub": req.sub,
        "aud": req.aud,
        "iat": now.as_secs(),
        "nbf": now.as_secs(),
        "exp": (now + req.ttl).as_secs(),
        "jti": format!("{:x}", now.as_nanos()),
        "cnf": { "x5t#S256": x5t_s256(leaf) },
    });
    if let Some(scope) = req.scope {
        claims["scope"] = serde_json::Value::String(scope.to_string());
    }
    let header = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
    Ok(sign_es256(&key_pair, &header, &claims)?)
}

/// Signs exactly `header` and `claims` as a compact JWS with an EC P-256
/// key: what `mint` does, and what tests use to craft tokens and proofs.
pub fn sign_es256(
    key: &KeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, jsonwebtoken::errors::Error> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signing_key = EncodingKey::from_ec_der(&key.serialize_der());
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &signing_key, jsonwebtoken::Algorithm::ES256)?;
    Ok(format!("{input}.{signature}"))
}
