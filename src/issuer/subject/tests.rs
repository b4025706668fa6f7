//! Subject tokens accepted and refused in each way the rules name, with the
//! exact reason; key stores loaded, started and carried over as a client's are.

use std::path::Path;
use std::sync::Arc;

use rcgen::KeyPair;
use serde_json::{Value, json};

use super::*;
use crate::config::{MINIMAL_FOR_TESTS, RemoteJwksSettings};
use crate::jose::jwk::KeySet;
use crate::jose::sign::SigningKey;

const NOW: f64 = 1_800_000_000.0;
const IDP: &str = "https://login.example";

fn signing_key() -> SigningKey {
    let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    SigningKey::from_pem(pair.serialize_pem().as_bytes()).unwrap()
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() }).to_string()
}

fn subject_issuer(issuer: &str, algorithms: Vec<Algorithm>) -> SubjectIssuer {
    SubjectIssuer {
        issuer: issuer.into(),
        jwks: JwksSource::File("unused".into()),
        jwks_remote: RemoteJwksSettings::defaults(None),
        audience: vec!["mobile-app".into(), "web-app".into()],
        algorithms,
    }
}

/// An identity provider's key and a verifier trusting it (and a second
/// provider, so that tokens are matched to their issuer by `iss`).
struct Idp {
    key: SigningKey,
    verifier: SubjectVerifier,
}

impl Idp {
    fn new() -> Idp {
        Idp::with_algorithms(Algorithm::DEFAULT_ALLOWED.to_vec())
    }

    fn with_algorithms(algorithms: Vec<Algorithm>) -> Idp {
        let key = signing_key();
        let other = signing_key();
        let store = |k: &SigningKey, issuer: &str| {
            Arc::new(KeyStore::from_keys(
                issuer,
                KeySet::from_json(jwks(&[k]).as_bytes()).unwrap(),
            ))
        };
        let first = subject_issuer(IDP, algorithms);
        let second = subject_issuer("https://other-idp.example", Algorithm::DEFAULT_ALLOWED.to_vec());
        let verifier = SubjectVerifier::with_key_stores(
            [(&first, store(&key, IDP)), (&second, store(&other, &second.issuer))],
            Arc::new(Metrics::default()),
        );
        Idp { key, verifier }
    }

    fn header(&self) -> Value {
        json!({ "alg": "ES256", "kid": self.key.kid(), "typ": "JWT" })
    }

    fn sign(&self, header: Value, changes: Value) -> String {
        self.key.sign_with_header(&header, &claims(changes)).unwrap()
    }

    fn verify(&self, header: Value, changes: Value) -> Result<Subject, SubjectTokenError> {
        self.verifier
            .verify(&self.sign(header, changes), SubjectTokenType::IdToken, NOW)
    }

    fn verify_claims(&self, changes: Value) -> Result<Subject, SubjectTokenError> {
        self.verify(self.header(), changes)
    }
}

/// An id_token's claims, with `changes` merged in (a `null` removes a claim).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": IDP, "sub": "alice", "aud": "mobile-app", "azp": "mobile-app",
        "iat": NOW - 10.0, "exp": NOW + 300.0, "nonce": "n-0S6_WzA2Mj",
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

#[test]
fn a_good_id_token_names_its_issuer_and_subject_as_every_type() {
    let idp = Idp::new();
    let expected = Subject {
        issuer: IDP.into(),
        subject: "alice".into(),
    };
    let token = idp.sign(idp.header(), json!({}));
    for token_type in SubjectTokenType::ALL {
        assert_eq!(idp.verifier.verify(&token, token_type, NOW).unwrap(), expected);
    }
    // An id_token's usual shapes: no typ, an audience list, an access token's at+jwt.
    let untyped = json!({ "alg": "ES256", "kid": idp.key.kid() });
    assert_eq!(idp.verify(untyped, json!({})).unwrap(), expected);
    let listed = json!({ "aud": ["someone-else", "web-app"] });
    assert_eq!(idp.verify_claims(listed).unwrap(), expected);
    let at_jwt = json!({ "alg": "ES256", "kid": idp.key.kid(), "typ": "at+jwt" });
    assert_eq!(idp.verify(at_jwt, json!({})).unwrap(), expected);
}

#[test]
fn the_issuer_must_be_a_subject_issuer_and_sign_its_own_tokens() {
    let idp = Idp::new();
    let iss = |iss: &str| json!({ "iss": iss });
    assert!(matches!(
        idp.verify_claims(iss("https://evil.example")),
        Err(SubjectTokenError::WrongIssuer)
    ));
    assert!(matches!(
        idp.verify_claims(iss("https://login.example/")),
        Err(SubjectTokenError::WrongIssuer)
    ));
    // The other provider is trusted, but not with this key.
    assert!(matches!(
        idp.verify_claims(iss("https://other-idp.example")),
        Err(SubjectTokenError::UnknownKid)
    ));
}

#[test]
fn an_audience_not_listed_is_refused() {
    let idp = Idp::new();
    for aud in [json!("api"), json!(["api", "https://login.example"]), json!([])] {
        assert!(
            matches!(
                idp.verify_claims(json!({ "aud": aud })),
                Err(SubjectTokenError::WrongAudience)
            ),
            "{aud}"
        );
    }
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let idp = Idp::new();
    assert!(idp.verify_claims(json!({ "exp": NOW - 29.0 })).is_ok());
    assert!(matches!(
        idp.verify_claims(json!({ "exp": NOW - 30.0 })),
        Err(SubjectTokenError::Expired)
    ));
    assert!(idp.verify_claims(json!({ "nbf": NOW + 29.0 })).is_ok());
    assert!(matches!(
        idp.verify_claims(json!({ "nbf": NOW + 31.0 })),
        Err(SubjectTokenError::NotYetValid)
    ));
    assert!(matches!(
        idp.verify_claims(json!({ "exp": null })),
        Err(SubjectTokenError::ClaimsMalformed)
    ));
}

#[test]
fn an_algorithm_off_the_allow_list_is_refused() {
    let idp = Idp::with_algorithms(vec![Algorithm::RS256]);
    assert!(matches!(
        idp.verify_claims(json!({})),
        Err(SubjectTokenError::AlgorithmNotAllowed(alg)) if alg == "ES256"
    ));
    let none = json!({ "alg": "none", "kid": idp.key.kid() });
    assert!(matches!(
        idp.verify(none, json!({})),
        Err(SubjectTokenError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn a_missing_or_empty_sub_is_refused() {
    let idp = Idp::new();
    for sub in [Value::Null, json!("")] {
        assert!(
            matches!(
                idp.verify_claims(json!({ "sub": sub })),
                Err(SubjectTokenError::SubjectMissing)
            ),
            "{sub}"
        );
    }
    assert!(matches!(
        idp.verify_claims(json!({ "sub": 42 })),
        Err(SubjectTokenError::ClaimsMalformed)
    ));
}

#[test]
fn a_bad_signature_is_refused() {
    let idp = Idp::new();
    let token = idp.sign(idp.header(), json!({}));
    let forged = idp.sign(idp.header(), json!({ "sub": "admin" }));
    let (head, _) = forged.rsplit_once('.').unwrap();
    let (_, signature) = token.rsplit_once('.').unwrap();
    let spliced = format!("{head}.{signature}");
    assert!(matches!(
        idp.verifier.verify(&spliced, SubjectTokenType::Jwt, NOW),
        Err(SubjectTokenError::BadSignature)
    ));
    // Another key claiming the provider's kid.
    let impostor = signing_key();
    let header = idp.header();
    let token = impostor.sign_with_header(&header, &claims(json!({}))).unwrap();
    assert!(matches!(
        idp.verifier.verify(&token, SubjectTokenType::IdToken, NOW),
        Err(SubjectTokenError::BadSignature)
    ));
    assert!(matches!(
        idp.verifier.verify("not.a-jwt", SubjectTokenType::IdToken, NOW),
        Err(SubjectTokenError::Malformed(JwsError::NotThreeParts))
    ));
}

#[test]
fn jwts_that_are_never_subject_tokens_are_refused_by_typ() {
    let idp = Idp::new();
    for typ in ["dpop+jwt", "application/dpop+jwt", "logout+jwt", "secevent+jwt"] {
        let header = json!({ "alg": "ES256", "kid": idp.key.kid(), "typ": typ });
        assert!(
            matches!(idp.verify(header, json!({})), Err(SubjectTokenError::TypeRejected(_))),
            "{typ}"
        );
    }
}

#[test]
fn a_sender_constrained_subject_token_is_refused() {
    let idp = Idp::new();
    for cnf in [
        json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        json!({}),
    ] {
        assert!(
            matches!(
                idp.verify_claims(json!({ "cnf": cnf })),
                Err(SubjectTokenError::SenderConstrained)
            ),
            "{cnf}"
        );
    }
}

#[test]
fn only_the_three_jwt_token_types_are_known() {
    for token_type in SubjectTokenType::ALL {
        assert_eq!(SubjectTokenType::from_uri(token_type.uri()), Some(token_type));
    }
    assert_eq!(
        SubjectTokenType::from_uri("urn:ietf:params:oauth:token-type:id_token"),
        Some(SubjectTokenType::IdToken)
    );
    for unknown in [
        "urn:ietf:params:oauth:token-type:saml2",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:ID_TOKEN",
        "id_token",
        "",
    ] {
        assert_eq!(SubjectTokenType::from_uri(unknown), None, "{unknown}");
    }
}

#[test]
fn without_subject_issuers_every_token_has_the_wrong_issuer() {
    let verifier = SubjectVerifier::with_key_stores([], Arc::new(Metrics::default()));
    let idp = Idp::new();
    let token = idp.sign(idp.header(), json!({}));
    assert!(matches!(
        verifier.verify(&token, SubjectTokenType::IdToken, NOW),
        Err(SubjectTokenError::WrongIssuer)
    ));
}

#[tokio::test]
async fn verifying_with_a_refetch_decides_as_verify_does() {
    let idp = Idp::new();
    let token = idp.sign(idp.header(), json!({}));
    let subject = idp
        .verifier
        .verify_refetching(&token, SubjectTokenType::AccessToken, NOW)
        .await
        .unwrap();
    assert_eq!(subject.subject, "alice");
    let unknown = idp.sign(json!({ "alg": "ES256", "kid": "rotated" }), json!({}));
    assert!(matches!(
        idp.verifier
            .verify_refetching(&unknown, SubjectTokenType::IdToken, NOW)
            .await,
        Err(SubjectTokenError::UnknownKid)
    ));
}

#[test]
fn every_reason_has_its_own_label_and_no_message_quotes_the_token() {
    let all = [
        SubjectTokenError::TooLarge { limit: 1 },
        SubjectTokenError::Malformed(JwsError::NotThreeParts),
        SubjectTokenError::AlgorithmNotAllowed(String::new()),
        SubjectTokenError::UnsupportedCritical,
        SubjectTokenError::TypeRejected(None),
        SubjectTokenError::UnknownKid,
        SubjectTokenError::KeysUnavailable,
        SubjectTokenError::KidRequired,
        SubjectTokenError::KeyAlgorithmMismatch(Algorithm::ES256),
        SubjectTokenError::BadSignature,
        SubjectTokenError::ClaimsMalformed,
        SubjectTokenError::WrongIssuer,
        SubjectTokenError::WrongAudience,
        SubjectTokenError::Expired,
        SubjectTokenError::NotYetValid,
        SubjectTokenError::LifetimeExceeded {
            max: std::time::Duration::from_secs(1),
        },
        SubjectTokenError::SubjectMissing,
        SubjectTokenError::SenderConstrained,
        SubjectTokenError::Revoked,
    ];
    let mut labels: Vec<&str> = all.iter().map(SubjectTokenError::label).collect();
    assert!(
        labels
            .iter()
            .all(|l| l.starts_with("subject_") && l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());

    let idp = Idp::new();
    for changes in [
        json!({ "sub": "alice@secret.example", "exp": "9999999999" }),
        json!({ "sub": "alice@secret.example", "aud": "nobody" }),
        json!({ "sub": "alice@secret.example", "cnf": { "jkt": "secret-thumbprint" } }),
    ] {
        let token = idp.sign(idp.header(), changes);
        let err = idp.verifier.verify(&token, SubjectTokenType::IdToken, NOW).unwrap_err();
        let message = crate::error::error_chain(&err);
        let signature = token.rsplit('.').next().unwrap();
        for secret in ["secret", signature, token.as_str()] {
            assert!(!message.contains(secret), "{message}");
        }
    }
}

/// A verifier built from a real configuration in `dir`, after `previous`.
fn build(dir: &Path, issuers: &str, previous: Option<&SubjectVerifier>) -> Result<SubjectVerifier, ConfigError> {
    let table = format!(
        "[authorization_server]\nissuer = \"https://localhost:8444\"\nlisten = \"127.0.0.1:8444\"\n\
         signing_keys = [\"as-signing-key.pem\"]\n{issuers}"
    );
    let config = Config::parse(&format!("{MINIMAL_FOR_TESTS}\n{table}"), &dir.join("gateway.toml")).unwrap();
    let settings = config.authorization_server.clone().unwrap();
    SubjectVerifier::new(
        &config,
        &settings.subject_issuers,
        previous,
        &Arc::new(Metrics::default()),
    )
}

fn subject_issuer_table(issuer: &str, jwks: &str, more: &str) -> String {
    format!(
        "[[authorization_server.subject_issuer]]\nissuer = {issuer:?}\njwks = {jwks:?}\naudience = [\"mobile-app\"]\n{more}\n"
    )
}

#[test]
fn a_jwks_file_is_read_when_built_and_a_bad_one_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key();
    std::fs::write(dir.path().join("idp.jwks.json"), jwks(&[&key])).unwrap();
    std::fs::write(dir.path().join("broken.json"), "{\"keys\": 1}").unwrap();
    let good = subject_issuer_table(IDP, "idp.jwks.json", "");
    let verifier = build(dir.path(), &good, None).unwrap();
    assert!(verifier.new_key_stores().is_empty(), "a file is not fetched");
    let token = key
        .sign_with_header(&json!({ "alg": "ES256", "kid": key.kid() }), &claims(json!({})))
        .unwrap();
    assert_eq!(
        verifier.verify(&token, SubjectTokenType::IdToken, NOW).unwrap().subject,
        "alice"
    );
    for (file, reason) in [("missing.json", "cannot read"), ("broken.json", "not a JWKS document")] {
        let second = subject_issuer_table("https://other.example", file, "");
        let message = match build(dir.path(), &format!("{good}{second}"), None) {
            Err(err @ ConfigError::UnusableFile { .. }) => err.to_string(),
            Err(other) => panic!("{file}: {other}"),
            Ok(_) => panic!("{file}: accepted"),
        };
        assert!(
            message.contains("key `authorization_server.subject_issuer[1].jwks`"),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn a_jwks_url_gets_a_key_store_to_start_which_a_rebuild_carries_over_unless_it_fetches_differently() {
    let dir = tempfile::tempdir().unwrap();
    let url = subject_issuer_table(IDP, "https://login.example/keys", "");
    let first = build(dir.path(), &url, None).unwrap();
    let started: Vec<&str> = first.new_key_stores().iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(started, ["authorization_server.subject_issuer[0].jwks"]);
    assert!(!first.new_key_stores()[0].1.is_loaded(), "nothing fetched yet");
    let key = signing_key();
    let token = key
        .sign_with_header(&json!({ "alg": "ES256", "kid": key.kid() }), &claims(json!({})))
        .unwrap();
    assert!(matches!(
        first.verify(&token, SubjectTokenType::IdToken, NOW),
        Err(SubjectTokenError::KeysUnavailable)
    ));

    let same = build(dir.path(), &url, Some(&first)).unwrap();
    assert!(
        same.new_key_stores().is_empty(),
        "carried over, cache and refresher too"
    );
    assert!(Arc::ptr_eq(
        &same.validator.issuers()[0].keys,
        &first.validator.issuers()[0].keys
    ));

    let ca = rcgen::generate_simple_self_signed(vec!["login.example".to_string()]).unwrap();
    std::fs::write(dir.path().join("idp-ca.pem"), ca.cert.pem()).unwrap();
    let other_ca = subject_issuer_table(IDP, "https://login.example/keys", "jwks_ca = \"idp-ca.pem\"");
    assert_eq!(
        build(dir.path(), &other_ca, Some(&first))
            .unwrap()
            .new_key_stores()
            .len(),
        1
    );
    let other_url = subject_issuer_table(IDP, "https://login.example/keys/v2", "");
    assert_eq!(
        build(dir.path(), &other_url, Some(&first))
            .unwrap()
            .new_key_stores()
            .len(),
        1
    );
}
