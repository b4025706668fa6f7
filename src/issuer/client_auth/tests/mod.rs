//! Each method accepted, and refused in each way the rules name, with the
//! exact reason. Certificates come from rcgen; assertions are signed with
//! the authorization server's own `SigningKey`.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::*;
use crate::auth::token::now_seconds;
use crate::config::{MINIMAL_FOR_TESTS, ReplayStoreSettings};
use crate::jose::Algorithm;
use crate::jose::jws::JwsError;
use crate::jose::sign::SigningKey;
use crate::metrics::Metrics;

const ISSUER: &str = "https://localhost:8444";
const REVOKED_SERIAL: u64 = 0x7777;

/// The clients, one per method and certificate name; the DN is written
/// unlike the certificate's (`CN=svc-dn,O=Example Org`) on purpose.
const CLIENTS: &str = r#"
[[authorization_server.client]]
client_id = "svc-dn"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "cn=SVC-DN ,  o=example   org"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "svc-uri"
auth = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://example.org/svc-uri"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "svc-dns"
auth = "tls_client_auth"
tls_client_auth_san_dns = "svc-dns.example.org"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "svc-self"
auth = "self_signed_tls_client_auth"
jwks = "self.jwks.json"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "svc-jwt"
auth = "private_key_jwt"
jwks = "jwt.jwks.json"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "app"
auth = "none"
grant_types = ["refresh_token"]
audience = ["https://api.example"]
"#;

/// A CA able to issue client certificates and a CRL.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    fn issue(&self, params: CertificateParams) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(&key, &issuer).unwrap().der().clone()
    }

    fn crl(&self, revoked: u64) -> String {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(5),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: SerialNumber::from(revoked),
                revocation_time: now - time::Duration::minutes(1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&Issuer::from_params(&self.params, &self.key))
            .unwrap()
            .pem()
            .unwrap()
    }
}

/// A client certificate's parameters: EKU clientAuth, valid from yesterday for a month.
fn client_params(cn: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    // The most general RDN first, as CAs issue them: `CN=...,O=Example Org` in RFC 4514 order.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "Example Org");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    params
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

fn dns(text: &str) -> SanType {
    SanType::DnsName(text.try_into().unwrap())
}

/// A key pair as rcgen makes it, and the same key as the authorization server signs with.
fn signing_pair(alg: &'static rcgen::SignatureAlgorithm) -> (KeyPair, SigningKey) {
    let pair = KeyPair::generate_for(alg).unwrap();
    let key = SigningKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
    (pair, key)
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() }).to_string()
}

/// The PKI, the clients' keys, and an authenticator built from a real configuration.
struct Fixture {
    ca: Ca,
    /// The key `svc-self` registered, and a certificate of it.
    self_pair: KeyPair,
    es256: SigningKey,
    eddsa: SigningKey,
    authenticator: ClientAuthenticator,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_store(ReplayStoreSettings::Memory { max_entries: 1000 })
    }

    fn with_store(store: ReplayStoreSettings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("client CA");
        std::fs::write(dir.path().join("as-ca.pem"), &ca.pem).unwrap();
        std::fs::write(dir.path().join("as-crl.pem"), ca.crl(REVOKED_SERIAL)).unwrap();
        let (self_pair, self_key) = signing_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        std::fs::write(dir.path().join("self.jwks.json"), jwks(&[&self_key])).unwrap();
        let (_, es256) = signing_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, eddsa) = signing_pair(&rcgen::PKCS_ED25519);
        std::fs::write(dir.path().join("jwt.jwks.json"), jwks(&[&es256, &eddsa])).unwrap();
        let table = format!(
            r#"
[authorization_server]
issuer = "{ISSUER}"
listen = "127.0.0.1:8444"
signing_keys = ["as-signing-key.pem"]
client_ca = "as-ca.pem"
crl = ["as-crl.pem"]
assertion_algorithms = ["ES256", "EdDSA"]
{CLIENTS}"#
        );
        let authenticator = build(dir.path(), &table, store).unwrap();
        Fixture {
            ca,
            self_pair,
            es256,
            eddsa,
            authenticator,
        }
    }

    async fn authenticate(
        &self,
        credentials: ClientCredentials<'_>,
    ) -> Result<AuthenticatedClient<'_>, ClientAuthError> {
        self.authenticator.authenticate(&credentials, now_seconds()).await
    }

    /// An assertion of `svc-jwt` signed with its ES256 key, `changes` applied to the claims.
    fn assertion(&self, changes: Value) -> String {
        assertion_by(&self.es256, json!({ "alg": "ES256", "kid": self.es256.kid() }), changes)
    }
}

/// Builds an authenticator from `[authorization_server]` text, in `dir`.
fn build(dir: &Path, table: &str, store: ReplayStoreSettings) -> Result<ClientAuthenticator, ConfigError> {
    let config = Config::parse(&format!("{MINIMAL_FOR_TESTS}\n{table}"), &dir.join("gateway.toml")).unwrap();
    let settings = config.authorization_server.clone().unwrap();
    let replay = Arc::new(ReplayStore::new(&store).unwrap());
    ClientAuthenticator::new(&config, &settings, replay, None, &Arc::new(Metrics::default()))
}

/// Valid claims of `svc-jwt`, with `changes` merged in (a `null` removes a claim).
fn claims(changes: Value) -> Value {
    let now = now_seconds() as u64;
    let mut claims = json!({
        "iss": "svc-jwt", "sub": "svc-jwt", "aud": ISSUER,
        "iat": now, "exp": now + 60, "jti": format!("jti-{}", rand_suffix()),
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

fn rand_suffix() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

fn assertion_by(key: &SigningKey, header: Value, changes: Value) -> String {
    key.sign_with_header(&header, &claims(changes)).unwrap()
}

fn with_assertion(assertion: &str) -> ClientCredentials<'_> {
    ClientCredentials {
        client_assertion_type: Some(JWT_BEARER),
        client_assertion: Some(assertion),
        ..ClientCredentials::default()
    }
}

fn with_chain<'a>(client_id: &'a str, chain: &'a [CertificateDer<'a>]) -> ClientCredentials<'a> {
    ClientCredentials {
        client_id: Some(client_id),
        peer_chain: Some(chain),
        ..ClientCredentials::default()
    }
}

/// The error of a refused request, after checking it is the client's fault.
async fn refused(fixture: &Fixture, credentials: ClientCredentials<'_>) -> ClientAuthError {
    let err = fixture.authenticate(credentials).await.unwrap_err();
    assert_eq!(err.fault(), Fault::Client, "{err}");
    err
}

mod assertion;
mod certificate;

#[tokio::test]
async fn an_assertion_from_a_tls_client_auth_client_is_two_methods() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params("svc-dn", vec![]))];
    let assertion = f.assertion(json!({ "iss": "svc-dn", "sub": "svc-dn" }));
    let credentials = ClientCredentials {
        client_id: Some("svc-dn"),
        peer_chain: Some(&chain),
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(
        matches!(
            err,
            ClientAuthError::MultipleMethods {
                registered: AuthMethod::TlsClientAuth
            }
        ),
        "{err:?}"
    );
    assert_eq!((err.label(), err.method()), ("multiple_methods", "tls_client_auth"));
    // Named by the assertion alone, the client is the same and so is the refusal.
    let err = refused(&f, with_assertion(&assertion)).await;
    assert!(matches!(err, ClientAuthError::MultipleMethods { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unknown_client_is_refused() {
    let f = Fixture::new();
    let credentials = ClientCredentials {
        client_id: Some("nobody"),
        ..ClientCredentials::default()
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::UnknownClient), "{err:?}");
    assert_eq!((err.label(), err.method()), ("unknown_client", "unknown"));
    let assertion = f.assertion(json!({ "iss": "nobody", "sub": "nobody" }));
    let err = refused(&f, with_assertion(&assertion)).await;
    assert!(matches!(err, ClientAuthError::UnknownClient), "{err:?}");
    let err = refused(&f, ClientCredentials::default()).await;
    assert!(matches!(err, ClientAuthError::ClientIdMissing), "{err:?}");
}

#[tokio::test]
async fn a_form_client_id_other_than_the_assertions_is_refused() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "iss": "svc-other", "sub": "svc-other" }));
    let credentials = ClientCredentials {
        client_id: Some("svc-jwt"),
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::ClientIdMismatch), "{err:?}");
}

#[tokio::test]
async fn a_public_client_is_named_by_client_id_alone() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params("app", vec![]))];
    for peer_chain in [None, Some(&chain[..])] {
        let credentials = ClientCredentials {
            client_id: Some("app"),
            peer_chain,
            ..ClientCredentials::default()
        };
        let ok = f.authenticate(credentials).await.unwrap();
        assert_eq!((ok.client.client_id.as_str(), ok.method), ("app", AuthMethod::None));
        assert_eq!(ok.certificate_thumbprint, None);
    }
    let assertion = f.assertion(json!({ "iss": "app", "sub": "app" }));
    let credentials = ClientCredentials {
        client_id: Some("app"),
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(
        matches!(
            err,
            ClientAuthError::MultipleMethods {
                registered: AuthMethod::None
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_jwks_url_gets_a_key_store_to_start_which_a_rebuild_carries_over_unless_it_fetches_differently() {
    let dir = tempfile::tempdir().unwrap();
    let table = |ca: &str| {
        format!(
            r#"
[authorization_server]
issuer = "{ISSUER}"
listen = "127.0.0.1:8444"
signing_keys = ["as-signing-key.pem"]

[[authorization_server.client]]
client_id = "svc-jwt"
auth = "private_key_jwt"
jwks = "https://keys.example/svc-jwt.json"
{ca}
grant_types = ["client_credentials"]
audience = ["https://api.example"]
"#
        )
    };
    let build_after = |text: &str, previous: Option<&ClientAuthenticator>| {
        let config = Config::parse(
            &format!("{MINIMAL_FOR_TESTS}\n{text}"),
            &dir.path().join("gateway.toml"),
        )
        .unwrap();
        let settings = config.authorization_server.clone().unwrap();
        let replay = Arc::new(ReplayStore::new(&ReplayStoreSettings::Memory { max_entries: 10 }).unwrap());
        ClientAuthenticator::new(&config, &settings, replay, previous, &Arc::new(Metrics::default())).unwrap()
    };
    let first = build_after(&table(""), None);
    let started: Vec<&str> = first.new_key_stores().iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(started, ["authorization_server.client[0].jwks"]);
    assert!(!first.new_key_stores()[0].1.is_loaded(), "nothing fetched yet");

    let same = build_after(&table(""), Some(&first));
    assert!(
        same.new_key_stores().is_empty(),
        "the store is carried over, cache and refresher too"
    );

    let ca = rcgen::generate_simple_self_signed(vec!["keys.example".to_string()]).unwrap();
    std::fs::write(dir.path().join("keys-ca.pem"), ca.cert.pem()).unwrap();
    let other_ca = build_after(&table("jwks_ca = \"keys-ca.pem\""), Some(&first));
    assert_eq!(other_ca.new_key_stores().len(), 1, "a new CA needs a new store");
}

#[test]
fn every_reason_has_its_own_label() {
    let method = AuthMethod::TlsClientAuth;
    let all = [
        ClientAuthError::ClientIdMissing,
        ClientAuthError::UnknownClient,
        ClientAuthError::ClientIdMismatch,
        ClientAuthError::MultipleMethods { registered: method },
        ClientAuthError::CertificateMissing { method },
        ClientAuthError::CertificateMalformed { method },
        ClientAuthError::CertificateExpired { method },
        ClientAuthError::CertificateNotYetValid { method },
        ClientAuthError::CertificateRevoked,
        ClientAuthError::CertificateUntrusted(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )),
        ClientAuthError::CertificateSubjectMismatch,
        ClientAuthError::CertificateKeyNotRegistered,
        ClientAuthError::AssertionMissing,
        ClientAuthError::AssertionTypeUnsupported,
        ClientAuthError::AssertionMalformed(JwsError::NotThreeParts),
        ClientAuthError::AssertionCritical(vec![]),
        ClientAuthError::AssertionTypRejected(String::new()),
        ClientAuthError::AssertionAlgorithmNotAllowed(String::new()),
        ClientAuthError::AssertionClaimsMalformed(String::new()),
        ClientAuthError::AssertionUnknownKid,
        ClientAuthError::AssertionNoKeyForAlgorithm(Algorithm::ES256),
        ClientAuthError::AssertionBadSignature,
        ClientAuthError::AssertionSubjectMismatch,
        ClientAuthError::AssertionAudienceMismatch,
        ClientAuthError::AssertionExpirationMissing,
        ClientAuthError::AssertionExpired,
        ClientAuthError::AssertionLifetimeExceeded,
        ClientAuthError::AssertionNotYetValid,
        ClientAuthError::AssertionIssuedInFuture,
        ClientAuthError::AssertionJtiMissing,
        ClientAuthError::AssertionReplayed,
        ClientAuthError::ReplayStoreUnavailable,
        ClientAuthError::ReplayCacheFull,
    ];
    let mut labels: Vec<&str> = all.iter().map(ClientAuthError::label).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
    let methods = [
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "private_key_jwt",
        "none",
        "unknown",
    ];
    assert!(all.iter().all(|e| methods.contains(&e.method())));
}
