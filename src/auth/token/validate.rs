//! Token validation: structure, header rules, key choice, signature, claims.
//! The order matters: nothing from the payload is trusted before the
//! signature has been checked with a key we chose.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::{self, CachedToken, TokenCache};
use super::claims::Claims;
use super::keystore::KeyStore;
use crate::config::{TokenSettings, TypPolicy};
use crate::jose::Algorithm;
use crate::jose::jwk::KeyChoiceError;
use crate::jose::jws::{self, JoseHeader, JwsError};
use crate::metrics::Metrics;

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
    #[error("the issuer's keys are not available yet")]
    KeysUnavailable,
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
    #[error("token expires further ahead than the {max:?} this issuer's tokens may live")]
    LifetimeExceeded { max: std::time::Duration },
    /// Its refresh-token family (`sid`) was revoked: reuse, RFC 7009, or an operator.
    #[error("token was revoked")]
    Revoked,
}

/// `typ`s of JWTs an identity provider signs (or a client does) that are
/// never a subject token, though some carry `iss`, `aud`, `sub` and `exp`
/// like one: a DPoP proof (RFC 9449), an OpenID Connect back-channel
/// logout token, a security event token (RFC 8417).
const NEVER_SUBJECT_TOKENS: [&str; 3] = ["dpop+jwt", "logout+jwt", "secevent+jwt"];

/// One trusted issuer: its settings and its keys.
pub struct Issuer {
    pub settings: TokenSettings,
    pub keys: Arc<KeyStore>,
}

/// Validates access tokens from any of the trusted issuers.
pub struct TokenValidator {
    issuers: Vec<Issuer>,
    /// The largest `max_size` of any issuer: checked before the issuer is known.
    max_size: usize,
    cache: TokenCache,
    metrics: Arc<Metrics>,
}

/// A token whose signature and claims have been checked; binding is checked separately.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub alg: Algorithm,
}

impl TokenValidator {
    /// A validator for `issuers`, caching up to `cache_bytes` of verified tokens (0: no cache).
    pub fn new(issuers: Vec<Issuer>, cache_bytes: usize, metrics: Arc<Metrics>) -> TokenValidator {
        let max_size = issuers.iter().map(|i| i.settings.max_size).max().unwrap_or(0);
        TokenValidator {
            issuers,
            max_size,
            cache: TokenCache::new(cache_bytes),
            metrics,
        }
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// Validates `token` now. A `kid` the issuer's keys do not hold triggers
    /// one (rate-limited) refetch of remote keys before giving up.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        // The refetch is boxed: it is rare, and inline its state would size
        // every request's future (which is moved, whole, several times).
        match self.validate_at(token, now_seconds()) {
            Err(e) if Box::pin(self.refetched_for(token, &e)).await => self.validate_at(token, now_seconds()),
            other => other,
        }
    }

    /// As [`TokenValidator::validate`], as of `now` (seconds since the
    /// epoch), for a caller that decides a whole request at one instant.
    pub async fn validate_refetching_at(&self, token: &str, now: f64) -> Result<Arc<VerifiedToken>, TokenError> {
        // Boxed, as in `validate`.
        match self.validate_at(token, now) {
            Err(e) if Box::pin(self.refetched_for(token, &e)).await => self.validate_at(token, now),
            other => other,
        }
    }

    /// Whether `error` was for want of a key (an unknown `kid`, no keys
    /// yet), and refetching the keys of `token`'s issuer changed them.
    async fn refetched_for(&self, token: &str, error: &TokenError) -> bool {
        if !matches!(error, TokenError::UnknownKid | TokenError::KeysUnavailable) {
            return false;
        }
        match self.issuer_of(token) {
            Ok((_, issuer)) => issuer.keys.refetch_for_unknown_kid().await,
            Err(_) => false,
        }
    }

    /// Validates `token` as of `now` (seconds since the epoch), with the keys
    /// held right now, answering from the cache when the same token was
    /// verified before with the same keys.
    pub fn validate_at(&self, token: &str, now: f64) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > self.max_size {
            return Err(TokenError::TooLarge { limit: self.max_size });
        }
        if !self.cache.enabled() {
            let jws = jws::parse::<JoseHeader>(token).map_err(TokenError::Malformed)?;
            return self.issuer_for(&jws)?.1.validate(jws, now).map(Arc::new);
        }
        let digest = cache::digest(token);
        if let Some(hit) = self.cache.get(&digest) {
            let issuer = &self.issuers[hit.issuer];
            if hit.generation == issuer.keys.generation() {
                self.metrics.record_token_cache(true);
                return match issuer.check_time(&hit.token.claims, now) {
                    Ok(()) => Ok(hit.token),
                    Err(e) => {
                        self.cache.remove(&digest);
                        Err(e)
                    }
                };
            }
            self.cache.remove(&digest);
        }
        self.metrics.record_token_cache(false);
        let jws = jws::parse::<JoseHeader>(token).map_err(TokenError::Malformed)?;
        let (index, issuer) = self.issuer_for(&jws)?;
        let generation = issuer.keys.generation();
        let verified = Arc::new(issuer.validate(jws, now)?);
        let entry = CachedToken::new(verified.clone(), index, generation);
        self.cache.insert(digest, entry, now as u64, |e| self.is_stale(e, now));
        Ok(verified)
    }

    fn is_stale(&self, entry: &CachedToken, now: f64) -> bool {
        let issuer = &self.issuers[entry.issuer];
        entry.generation != issuer.keys.generation() || issuer.check_time(&entry.token.claims, now).is_err()
    }

    fn issuer_of(&self, token: &str) -> Result<(usize, &Issuer), TokenError> {
        let jws = jws::parse::<JoseHeader>(token).map_err(TokenError::Malformed)?;
        self.issuer_for(&jws)
    }

    /// With one issuer, that one (its `iss` is checked after the signature).
    /// With several, the one the payload names: read before the signature is
    /// checked, but only to choose which keys to check it with.
    fn issuer_for(&self, jws: &jws::CompactJws<'_>) -> Result<(usize, &Issuer), TokenError> {
        if let [only] = self.issuers.as_slice() {
            return Ok((0, only));
        }
        #[derive(serde::Deserialize)]
        struct IssuerOnly {
            iss: String,
        }
        let payload = jws::decode_part(jws.payload_b64, "payload").map_err(TokenError::Malformed)?;
        let named: IssuerOnly =
            serde_json::from_slice(&payload).map_err(|e| TokenError::ClaimsMalformed(e.to_string()))?;
        self.issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.settings.issuer == named.iss)
            .ok_or(TokenError::WrongIssuer)
    }
}

impl Issuer {
    fn validate(&self, jws: jws::CompactJws<'_>, now: f64) -> Result<VerifiedToken, TokenError> {
        if jws.signing_input.len() + 1 + jws.signature_b64.len() > self.settings.max_size {
            return Err(TokenError::TooLarge {
                limit: self.settings.max_size,
            });
        }
        let alg = self.allowed_algorithm(&jws.header.alg)?;
        if let Some(crit) = jws.header.crit {
            // No extension is understood, so any critical one (even an empty list, which RFC 7515 forbids) fails.
            return Err(TokenError::UnsupportedCritical(crit));
        }
        self.check_typ(jws.header.typ.as_deref())?;
        let keys = self.keys.current();
        let key = keys.choose(jws.header.kid.as_deref(), alg).map_err(|e| match e {
            KeyChoiceError::NoKeys => TokenError::KeysUnavailable,
            KeyChoiceError::UnknownKid => TokenError::UnknownKid,
            KeyChoiceError::AmbiguousWithoutKid => TokenError::KidRequired,
            KeyChoiceError::AlgorithmMismatch => TokenError::KeyAlgorithmMismatch(alg),
        })?;
        if !key.verify(alg, jws.signing_input.as_bytes(), jws.signature_b64) {
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
            (TypPolicy::SubjectToken, None) => true,
            (TypPolicy::SubjectToken, Some(t)) => {
                // RFC 7515 section 4.1.9: the `application/` prefix may be left out.
                let media = t.get(..12).filter(|p| is(p, "application/")).map_or(t, |_| &t[12..]);
                !NEVER_SUBJECT_TOKENS.iter().any(|never| is(media, never))
            }
        };
        if accepted {
            Ok(())
        } else {
            Err(TokenError::TypeRejected(typ.map(|t| t.chars().take(64).collect())))
        }
    }

    fn check_claims(&self, claims: &Claims, now: f64) -> Result<(), TokenError> {
        if claims.iss != self.settings.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !claims.aud.contains_any(&self.settings.audience) {
            return Err(TokenError::WrongAudience);
        }
        // Not repeated on a cache hit: time only brings `exp` closer.
        if let Some(max) = self.settings.max_lifetime
            && claims.exp.0 - now > max.saturating_add(self.settings.leeway).as_secs_f64()
        {
            return Err(TokenError::LifetimeExceeded { max });
        }
        self.check_time(claims, now)
    }

    /// The checks that change with time, and so are repeated on a cache hit.
    fn check_time(&self, claims: &Claims, now: f64) -> Result<(), TokenError> {
        let leeway = self.settings.leeway.as_secs_f64();
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

/// Seconds since the epoch, as the `exp`/`iat` comparisons need them.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
