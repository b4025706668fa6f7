//! `bindgate client-assertion`: a `private_key_jwt` client assertion
//! (RFC 7523 section 3) made with a client's key, for asking the embedded
//! authorization server for a token by hand.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::jose::sign::{SignError, SigningKey, SigningKeyError};

/// What goes into an assertion, besides the key.
#[derive(Debug, Clone)]
pub struct AssertionRequest<'a> {
    /// `iss` and `sub`.
    pub client_id: &'a str,
    /// `aud`: the authorization server's issuer identifier, nothing else.
    pub audience: &'a str,
    /// How long until `exp`; the server takes at most 5 minutes.
    pub lifetime: Duration,
}

/// Why no assertion could be made.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error(transparent)]
    Key(#[from] SigningKeyError),
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot sign: {0}")]
    Sign(#[from] SignError),
}

/// Reads the client key at `key_path` (EC P-256 or Ed25519, PKCS#8 PEM) and
/// signs an assertion for `req`, with a random `jti`: one per request.
pub fn assertion_with_key_file(key_path: &Path, req: &AssertionRequest<'_>) -> Result<String, AssertionError> {
    let key = SigningKey::from_pem_file(key_path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let jti = crate::issuer::access_token::random_id().map_err(|_| AssertionError::Random)?;
    let claims = serde_json::json!({
        "iss": req.client_id,
        "sub": req.client_id,
        "aud": req.audience,
        "iat": now,
        "exp": now + req.lifetime.as_secs(),
        "jti": jti,
    });
    // The explicit type of draft-ietf-oauth-rfc7523bis; the kid is the
    // key's RFC 7638 thumbprint, as in the JWKS dev-certs writes for it.
    Ok(key.sign("client-authentication+jwt", &claims)?)
}
