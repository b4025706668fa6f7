//! Each check of the validator, its cache, and the typ policies, with the exact reason.

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

    fn check(&self, header: serde_json::Value, claims: serde_json::Value) -> Result<Arc<VerifiedToken>, TokenError> {
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

/// The gateway checks a token's RFC 6750 `b64token` syntax only once the
/// validator refuses it, which is sound only if nothing outside the
/// base64url alphabet and the two dots is ever accepted, in any part, by
/// the cache or by verification.
#[test]
fn only_base64url_parts_and_dots_are_ever_accepted() {
    let i = issuer_with_cache(TypPolicy::Lenient, 1 << 20);
    let token = i.sign(header(), claims());
    assert!(i.validator.validate_at(&token, NOW).is_ok());
    let dots: Vec<usize> = token.match_indices('.').map(|(at, _)| at).collect();
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    // Inside the header, the payload and the signature, and at the very end.
    let places = [1, dots[0] + 2, dots[1] + 2, token.len()];
    for b in (0u8..=127).filter(|&b| !base64url(b) && b != b'.') {
        for at in places {
            let mut bytes = token.clone().into_bytes();
            bytes.insert(at, b);
            let odd = String::from_utf8(bytes).unwrap();
            assert!(i.validator.validate_at(&odd, NOW).is_err(), "byte {b:#04x} at {at}");
        }
    }
    // Non-ASCII, which a header value may carry as UTF-8.
    for at in places {
        let odd = format!("{}é{}", &token[..at], &token[at..]);
        assert!(i.validator.validate_at(&odd, NOW).is_err(), "é at {at}");
    }
    // The same token is still served from the cache afterwards.
    assert!(i.validator.validate_at(&token, NOW).is_ok());
}
