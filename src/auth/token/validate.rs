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
        match self.validate_at(token, now_seconds()) {
            Err(e) if self.refetched_for(token, &e).await => self.validate_at(token, now_seconds()),
            other => other,
        }
    }

    /// As [`TokenValidator::validate`], as of `now` (seconds since the
    /// epoch), for a caller that decides a whole request at one instant.
    pub async fn validate_refetching_at(&self, token: &str, now: f64) -> Result<Arc<VerifiedToken>, TokenError> {
        match self.validate_at(token, now) {
            Err(e) if self.refetched_for(token, &e).await => self.validate_at(token, now),
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
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::EncodingKey;

    use super::*;
    use crate::auth::token::claims::NumericDate;

    const NOW: f64 = 1_800_000_000.0;

    struct TestIssuer {
        key: rcgen::KeyPair,
        validator: TokenValidator,
    }

    fn issuer(typ: TypPolicy) -> TestIssuer {
        issuer_with_cache(typ, 0)
    }

    fn issuer_with_cache(typ: TypPolicy, cache_bytes: usize) -> TestIssuer {
        issuer_with(typ, cache_bytes, None)
    }

    fn issuer_with(typ: TypPolicy, cache_bytes: usize, max_lifetime: Option<Duration>) -> TestIssuer {
        let key = rcgen::KeyPair::generate().unwrap();
        let (mut jwk, _) = crate::dev::certs::ec_p256_jwk(&key);
        jwk["kid"] = "k1".into();
        let keys =
            crate::jose::jwk::KeySet::from_json(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        let settings = TokenSettings {
            issuer: "https://issuer.example".into(),
            audience: vec!["https://api.example".into()],
            section: "token".into(),
            keys: crate::config::IssuerKeys::Jwks(crate::config::JwksSource::File("unused".into())),
            remote: crate::config::RemoteJwksSettings {
                ca: None,
                refresh: Duration::from_secs(300),
                refresh_min: Duration::from_secs(30),
                refresh_max: Duration::from_secs(3600),
                refetch_cooldown: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            },
            algorithms: Algorithm::DEFAULT_ALLOWED.to_vec(),
            leeway: Duration::from_secs(30),
            typ,
            max_size: 16 * 1024,
            max_lifetime,
        };
        TestIssuer {
            key,
            validator: TokenValidator::new(
                vec![Issuer {
                    keys: Arc::new(KeyStore::from_keys(&settings.issuer, keys)),
                    settings,
                }],
                cache_bytes,
                Arc::new(Metrics::default()),
            ),
        }
    }

    impl TestIssuer {
        fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            crate::jose::jws::sign_es256(&self.key.serialize_der(), &header, &claims).unwrap()
        }

        fn check(
            &self,
            header: serde_json::Value,
            claims: serde_json::Value,
        ) -> Result<Arc<VerifiedToken>, TokenError> {
            self.validator.validate_at(&self.sign(header, claims), NOW)
        }
    }

    fn header() -> serde_json::Value {
        serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"})
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss": "https://issuer.example", "aud": "https://api.example", "exp": NOW + 60.0})
    }

    fn with(mut base: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        base[key] = value;
        base
    }

    #[test]
    fn a_well_formed_token_is_accepted() {
        let i = issuer(TypPolicy::Lenient);
        assert!(i.check(header(), claims()).is_ok());
        assert!(i.check(header(), with(claims(), "exp", (NOW + 0.5).into())).is_ok());
    }

    #[test]
    fn exp_and_nbf_honour_the_leeway() {
        let i = issuer(TypPolicy::Lenient);
        assert!(i.check(header(), with(claims(), "exp", (NOW - 29.0).into())).is_ok());
        assert!(matches!(
            i.check(header(), with(claims(), "exp", (NOW - 30.0).into())),
            Err(TokenError::Expired)
        ));
        assert!(i.check(header(), with(claims(), "nbf", (NOW + 29.0).into())).is_ok());
        assert!(matches!(
            i.check(header(), with(claims(), "nbf", (NOW + 31.0).into())),
            Err(TokenError::NotYetValid)
        ));
    }

    #[test]
    fn header_rules_are_enforced_before_the_signature() {
        let i = issuer(TypPolicy::Lenient);
        let none = with(header(), "alg", "none".into());
        assert!(matches!(
            i.check(none, claims()),
            Err(TokenError::AlgorithmNotAllowed(_))
        ));
        let crit = with(with(header(), "crit", serde_json::json!(["exp"])), "exp", 1.into());
        assert!(matches!(
            i.check(crit, claims()),
            Err(TokenError::UnsupportedCritical(_))
        ));
        let dpop = with(header(), "typ", "dpop+jwt".into());
        assert!(matches!(i.check(dpop, claims()), Err(TokenError::TypeRejected(_))));
        let unknown = with(header(), "kid", "k2".into());
        assert!(matches!(i.check(unknown, claims()), Err(TokenError::UnknownKid)));
    }

    #[test]
    fn the_subject_token_policy_accepts_any_typ_but_those_never_subject_tokens() {
        let i = issuer(TypPolicy::SubjectToken);
        let typ = |t: &str| with(header(), "typ", t.into());
        for accepted in [
            "JWT",
            "at+jwt",
            "application/okta-internal-at+jwt",
            "id_token+jwt",
            "dpop",
        ] {
            assert!(i.check(typ(accepted), claims()).is_ok(), "{accepted}");
        }
        let untyped = serde_json::json!({"alg": "ES256", "kid": "k1"});
        assert!(i.check(untyped, claims()).is_ok());
        for refused in [
            "dpop+jwt",
            "DPoP+JWT",
            "application/dpop+jwt",
            "Application/DPoP+jwt",
            "logout+jwt",
            "application/logout+jwt",
            "secevent+jwt",
        ] {
            assert!(
                matches!(i.check(typ(refused), claims()), Err(TokenError::TypeRejected(_))),
                "{refused}"
            );
        }
        // The gateway's policies are unchanged: a vendor type stays refused.
        let lenient = issuer(TypPolicy::Lenient);
        let vendor = typ("application/okta-internal-at+jwt");
        assert!(matches!(
            lenient.check(vendor, claims()),
            Err(TokenError::TypeRejected(_))
        ));
    }

    #[tokio::test]
    async fn validating_refetching_at_an_instant_decides_as_of_it() {
        let i = issuer(TypPolicy::Lenient);
        let token = i.sign(header(), claims());
        assert!(i.validator.validate_refetching_at(&token, NOW).await.is_ok());
        assert!(matches!(
            i.validator.validate_refetching_at(&token, NOW + 90.0).await,
            Err(TokenError::Expired)
        ));
        // Keys from a file are never refetched: an unknown kid stays unknown.
        let unknown = i.sign(with(header(), "kid", "k2".into()), claims());
        assert!(matches!(
            i.validator.validate_refetching_at(&unknown, NOW).await,
            Err(TokenError::UnknownKid)
        ));
    }

    #[test]
    fn strict_typ_requires_at_jwt() {
        let i = issuer(TypPolicy::RequireAtJwt);
        assert!(i.check(header(), claims()).is_ok());
        let jwt = with(header(), "typ", "JWT".into());
        assert!(matches!(i.check(jwt, claims()), Err(TokenError::TypeRejected(_))));
    }

    #[test]
    fn hmac_with_the_public_key_is_refused() {
        let i = issuer(TypPolicy::Lenient);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        let input = format!("{header}.{payload}");
        let secret = EncodingKey::from_secret(i.key.public_key_raw());
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &secret, jsonwebtoken::Algorithm::HS256).unwrap();
        let token = format!("{input}.{sig}");
        assert!(matches!(
            i.validator.validate_at(&token, NOW),
            Err(TokenError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let i = issuer(TypPolicy::Lenient);
        let token = i.sign(header(), claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with(claims(), "sub", "admin".into()).to_string());
        parts[1] = &forged;
        assert!(matches!(
            i.validator.validate_at(&parts.join("."), NOW),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        let i = issuer(TypPolicy::Lenient);
        let string_exp = with(claims(), "exp", "9999999999".into());
        assert!(matches!(
            i.check(header(), string_exp),
            Err(TokenError::ClaimsMalformed(_))
        ));
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let i = issuer(TypPolicy::Lenient);
        let iss = with(claims(), "iss", "https://evil.example".into());
        assert!(matches!(i.check(header(), iss), Err(TokenError::WrongIssuer)));
        let aud = with(claims(), "aud", serde_json::json!(["https://other.example"]));
        assert!(matches!(i.check(header(), aud), Err(TokenError::WrongAudience)));
        let many = with(claims(), "aud", serde_json::json!(["x", "https://api.example"]));
        assert!(i.check(header(), many).is_ok());
    }

    #[test]
    fn a_cached_token_is_served_without_verifying_again_but_still_expires() {
        let i = issuer_with_cache(TypPolicy::Lenient, 1 << 20);
        let token = i.sign(header(), claims());
        let first = i.validator.validate_at(&token, NOW).unwrap();
        let second = i.validator.validate_at(&token, NOW + 1.0).unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "cached on first sight");
        let third = i.validator.validate_at(&token, NOW + 2.0).unwrap();
        assert!(Arc::ptr_eq(&second, &third), "third use was verified again");
        let text = i.validator.metrics.render(&[]);
        assert!(text.contains("bindgate_token_cache_hits_total 1\n"), "{text}");
        assert!(text.contains("bindgate_token_cache_misses_total 2\n"), "{text}");
        assert!(matches!(
            i.validator.validate_at(&token, NOW + 90.0),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn new_keys_invalidate_cached_verifications() {
        let i = issuer_with_cache(TypPolicy::Lenient, 1 << 20);
        let token = i.sign(header(), claims());
        i.validator.validate_at(&token, NOW).unwrap();
        i.validator.validate_at(&token, NOW).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let (mut jwk, _) = crate::dev::certs::ec_p256_jwk(&other);
        jwk["kid"] = "k1".into();
        let rotated =
            crate::jose::jwk::KeySet::from_json(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        i.validator.issuers()[0].keys.replace_for_test(rotated);
        assert!(matches!(
            i.validator.validate_at(&token, NOW),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn rejected_tokens_are_not_cached() {
        let i = issuer_with_cache(TypPolicy::Lenient, 1 << 20);
        let token = i.sign(header(), with(claims(), "nbf", (NOW + 50.0).into()));
        assert!(matches!(
            i.validator.validate_at(&token, NOW),
            Err(TokenError::NotYetValid)
        ));
        // Had the refusal counted as a first sighting, the next use would be
        // admitted and the one after a hit.
        assert!(i.validator.validate_at(&token, NOW + 25.0).is_ok());
        assert!(i.validator.validate_at(&token, NOW + 25.0).is_ok());
        let text = i.validator.metrics.render(&[]);
        assert!(text.contains("bindgate_token_cache_misses_total 3\n"), "{text}");
    }

    #[test]
    fn out_of_range_dates_are_malformed_claims() {
        let i = issuer(TypPolicy::Lenient);
        // serde_json::Value cannot hold 2^64 as an integer: write the payload by hand.
        let head = URL_SAFE_NO_PAD.encode(header().to_string());
        let payload = URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://issuer.example","aud":"https://api.example","exp":18446744073709551616}"#);
        let input = format!("{head}.{payload}");
        let key = EncodingKey::from_ec_der(&i.key.serialize_der());
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
        assert!(matches!(
            i.validator.validate_at(&format!("{input}.{sig}"), NOW),
            Err(TokenError::ClaimsMalformed(_))
        ));
        assert!(matches!(
            i.check(header(), with(claims(), "exp", (-1).into())),
            Err(TokenError::ClaimsMalformed(_))
        ));
    }

    #[test]
    fn max_lifetime_refuses_tokens_expiring_too_far_ahead() {
        let i = issuer_with(TypPolicy::Lenient, 1 << 20, Some(Duration::from_secs(3600)));
        // Within max_lifetime plus the 30 s leeway: accepted, also from the cache.
        for _ in 0..3 {
            assert!(i.check(header(), with(claims(), "exp", (NOW + 3630.0).into())).is_ok());
        }
        assert!(matches!(
            i.check(header(), with(claims(), "exp", (NOW + 3631.0).into())),
            Err(TokenError::LifetimeExceeded { .. })
        ));
        assert!(matches!(
            i.check(header(), with(claims(), "exp", NumericDate::MAX.into())),
            Err(TokenError::LifetimeExceeded { .. })
        ));
        let unlimited = issuer(TypPolicy::Lenient);
        assert!(
            unlimited
                .check(header(), with(claims(), "exp", NumericDate::MAX.into()))
                .is_ok()
        );
    }
}
