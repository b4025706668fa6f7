//! Token validation: structure, header rules, key choice, signature, claims.
//! The order matters: nothing from the payload is trusted before the
//! signature has been checked with a key we chose.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Algorithm;
use super::claims::Claims;
use super::jwks::{KeyChoiceError, KeySet};
use super::jws::{self, JwsError};
use crate::config::{TokenSettings, TypPolicy};

/// Why an access token is not accepted. Every variant is an `invalid_token`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("token is malformed: {0}")]
    Malformed(#[source] JwsError),
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("token header marks extensions critical that are not understood: {0:?}")]
    UnsupportedCritical(Vec<String>),
    #[error("token type {0:?} is not accepted")]
    TypeRejected(Option<String>),
    #[error("no key with the token's kid")]
    UnknownKid,
    #[error("token names no kid and the key set holds several keys")]
    KidRequired,
    #[error("the key named by kid does not fit algorithm {0}")]
    KeyAlgorithmMismatch(Algorithm),
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are malformed: {0}")]
    ClaimsMalformed(String),
    #[error("issuer is not trusted")]
    WrongIssuer,
    #[error("audience does not include this resource")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

/// Validates access tokens against one issuer's settings and keys.
pub struct TokenValidator {
    settings: TokenSettings,
    keys: Arc<KeySet>,
}

/// A token whose signature and claims have been checked; binding is checked separately.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub alg: Algorithm,
}

impl TokenValidator {
    pub fn new(settings: TokenSettings, keys: Arc<KeySet>) -> TokenValidator {
        TokenValidator { settings, keys }
    }

    /// Validates `token` at the current time.
    pub fn validate(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.validate_at(token, now_seconds())
    }

    /// Validates `token` as of `now` (seconds since the epoch).
    pub fn validate_at(&self, token: &str, now: f64) -> Result<VerifiedToken, TokenError> {
        if token.len() > self.settings.max_size {
            return Err(TokenError::TooLarge {
                limit: self.settings.max_size,
            });
        }
        let jws = jws::parse(token).map_err(TokenError::Malformed)?;
        let alg = self.allowed_algorithm(&jws.header.alg)?;
        if let Some(crit) = jws.header.crit {
            // No extension is understood, so any critical one (even an empty list, which RFC 7515 forbids) fails.
            return Err(TokenError::UnsupportedCritical(crit));
        }
        self.check_typ(jws.header.typ.as_deref())?;
        let key = self.keys.choose(jws.header.kid.as_deref(), alg).map_err(|e| match e {
            KeyChoiceError::UnknownKid => TokenError::UnknownKid,
            KeyChoiceError::AmbiguousWithoutKid => TokenError::KidRequired,
            KeyChoiceError::AlgorithmMismatch => TokenError::KeyAlgorithmMismatch(alg),
        })?;
        let verified = jsonwebtoken::crypto::verify(
            jws.signature_b64,
            jws.signing_input.as_bytes(),
            &key.key,
            alg.to_jsonwebtoken(),
        )
        .unwrap_or(false);
        if !verified {
            return Err(TokenError::BadSignature);
        }
        let payload = jws::decode_part(jws.payload_b64, "payload").map_err(TokenError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|e| TokenError::ClaimsMalformed(e.to_string()))?;
        self.check_claims(&claims, now)?;
        Ok(VerifiedToken { claims, alg })
    }

    fn allowed_algorithm(&self, name: &str) -> Result<Algorithm, TokenError> {
        Algorithm::from_name(name)
            .ok()
            .filter(|alg| self.settings.algorithms.contains(alg))
            .ok_or_else(|| TokenError::AlgorithmNotAllowed(name.chars().take(32).collect()))
    }

    fn check_typ(&self, typ: Option<&str>) -> Result<(), TokenError> {
        let is = |t: &str, want: &str| t.eq_ignore_ascii_case(want);
        let accepted = match (self.settings.typ, typ) {
            (TypPolicy::Lenient, None) => true,
            (TypPolicy::Lenient, Some(t)) => is(t, "at+jwt") || is(t, "application/at+jwt") || is(t, "JWT"),
            (TypPolicy::RequireAtJwt, Some(t)) => is(t, "at+jwt") || is(t, "application/at+jwt"),
            (TypPolicy::RequireAtJwt, None) => false,
        };
        if accepted {
            Ok(())
        } else {
            Err(TokenError::TypeRejected(typ.map(|t| t.chars().take(64).collect())))
        }
    }

    fn check_claims(&self, claims: &Claims, now: f64) -> Result<(), TokenError> {
        let leeway = self.settings.leeway.as_secs_f64();
        if claims.iss != self.settings.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !claims.aud.contains_any(&self.settings.audience) {
            return Err(TokenError::WrongAudience);
        }
        // RFC 7519 4.1.4: the current time MUST be before exp.
        if now >= claims.exp.0 + leeway {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims.nbf
            && now + leeway < nbf.0
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
