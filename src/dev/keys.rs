//! Key files of the dev tools: reading the EC P-256 keys `bindgate dev-certs`
//! writes, and the RFC 7638 thumbprint a DPoP-bound token names.

use std::path::Path;

use rcgen::KeyPair;

/// Why a private key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an EC P-256 key in PKCS#8 PEM (the kind `bindgate dev-certs` writes)")]
    NotP256 { path: String },
}

/// Reads an EC P-256 private key in PKCS#8 PEM, the kind `bindgate dev-certs` writes.
pub fn read_p256_key(path: &Path) -> Result<KeyPair, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    let not_p256 = || KeyFileError::NotP256 {
        path: path.display().to_string(),
    };
    let key = KeyPair::from_pem(&text).map_err(|_| not_p256())?;
    // Every dev signature is ES256; another key type would only fail later, less clearly.
    if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        return Err(not_p256());
    }
    Ok(key)
}

/// The RFC 7638 SHA-256 thumbprint of `key`'s public JWK: the `cnf.jkt` of
/// a token bound to it.
pub fn jkt(key: &KeyPair) -> String {
    // `ec_p256_jwk` derives its `kid` as exactly this thumbprint, through `jose::jwk::thumbprint`.
    let (_, thumbprint) = super::certs::ec_p256_jwk(key);
    thumbprint
}
