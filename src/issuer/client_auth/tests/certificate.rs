//! tls_client_auth and self_signed_tls_client_auth.

use super::*;

#[tokio::test]
async fn tls_client_auth_accepts_a_subject_dn_written_differently() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params("svc-dn", vec![]))];
    let ok = f.authenticate(with_chain("svc-dn", &chain)).await.unwrap();
    assert_eq!(ok.client.client_id, "svc-dn");
    assert_eq!(ok.method, AuthMethod::TlsClientAuth);
    assert_eq!(
        ok.certificate_thumbprint.as_deref(),
        Some(crate::conn::identity::x5t_s256(&chain[0]).as_str())
    );
}

#[tokio::test]
async fn tls_client_auth_accepts_the_san_uri() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params(
        "anything",
        vec![uri("spiffe://example.org/other"), uri("spiffe://example.org/svc-uri")],
    ))];
    let ok = f.authenticate(with_chain("svc-uri", &chain)).await.unwrap();
    assert_eq!(ok.client.client_id, "svc-uri");
}

#[tokio::test]
async fn tls_client_auth_accepts_the_san_dns_in_any_case() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params("anything", vec![dns("SVC-DNS.Example.org")]))];
    let ok = f.authenticate(with_chain("svc-dns", &chain)).await.unwrap();
    assert_eq!(ok.client.client_id, "svc-dns");
}

#[tokio::test]
async fn tls_client_auth_refuses_a_uri_that_only_differs_in_case() {
    let f = Fixture::new();
    let chain =
        [f.ca.issue(client_params("anything", vec![uri("spiffe://example.org/SVC-URI")]))];
    let err = refused(&f, with_chain("svc-uri", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateSubjectMismatch), "{err:?}");
}

#[tokio::test]
async fn tls_client_auth_refuses_a_certificate_of_another_ca() {
    let f = Fixture::new();
    let chain = [Ca::new("another CA").issue(client_params("svc-dn", vec![]))];
    let err = refused(&f, with_chain("svc-dn", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateUntrusted(_)), "{err:?}");
    assert_eq!(
        (err.label(), err.method()),
        ("certificate_untrusted", "tls_client_auth")
    );
}

#[tokio::test]
async fn tls_client_auth_refuses_a_certificate_the_crl_revokes() {
    let f = Fixture::new();
    let mut params = client_params("svc-dn", vec![]);
    params.serial_number = Some(SerialNumber::from(REVOKED_SERIAL));
    let chain = [f.ca.issue(params)];
    let err = refused(&f, with_chain("svc-dn", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateRevoked), "{err:?}");
}

#[tokio::test]
async fn tls_client_auth_refuses_an_expired_certificate() {
    let f = Fixture::new();
    let mut params = client_params("svc-dn", vec![]);
    params.not_after = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let chain = [f.ca.issue(params)];
    let err = refused(&f, with_chain("svc-dn", &chain)).await;
    assert!(
        matches!(
            err,
            ClientAuthError::CertificateExpired {
                method: AuthMethod::TlsClientAuth
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_client_auth_refuses_a_server_certificate() {
    let f = Fixture::new();
    let mut params = client_params("svc-dn", vec![]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let chain = [f.ca.issue(params)];
    let err = refused(&f, with_chain("svc-dn", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateUntrusted(_)), "{err:?}");
}

#[tokio::test]
async fn tls_client_auth_refuses_a_request_without_a_certificate() {
    let f = Fixture::new();
    for chain in [None, Some(&[][..])] {
        let credentials = ClientCredentials {
            client_id: Some("svc-dn"),
            peer_chain: chain,
            ..ClientCredentials::default()
        };
        let err = refused(&f, credentials).await;
        assert!(
            matches!(
                err,
                ClientAuthError::CertificateMissing {
                    method: AuthMethod::TlsClientAuth
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn tls_client_auth_refuses_a_certificate_naming_someone_else() {
    let f = Fixture::new();
    // Chains fine, and names a client: just not this one.
    let chain =
        [f.ca.issue(client_params("svc-dn2", vec![uri("spiffe://example.org/svc-uri")]))];
    let err = refused(&f, with_chain("svc-dn", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateSubjectMismatch), "{err:?}");
}

// ---- self_signed_tls_client_auth ----

fn self_signed(pair: &KeyPair, not_after: OffsetDateTime) -> CertificateDer<'static> {
    let mut params = client_params("svc-self", vec![]);
    params.not_after = not_after;
    params.self_signed(pair).unwrap().der().clone()
}

#[tokio::test]
async fn self_signed_accepts_a_certificate_of_a_registered_key() {
    let f = Fixture::new();
    let chain = [self_signed(
        &f.self_pair,
        OffsetDateTime::now_utc() + time::Duration::days(1),
    )];
    let ok = f.authenticate(with_chain("svc-self", &chain)).await.unwrap();
    assert_eq!(ok.method, AuthMethod::SelfSignedTlsClientAuth);
    assert_eq!(
        ok.certificate_thumbprint.as_deref(),
        Some(crate::conn::identity::x5t_s256(&chain[0]).as_str())
    );
}

#[tokio::test]
async fn self_signed_accepts_ed25519_and_rsa_keys_registered_as_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_key = SigningKey::from_pem(ed.serialize_pem().as_bytes()).unwrap();
    // An RSA certificate's key, as a JWK written by hand from the certificate's own numbers.
    let rsa = rsa_pair();
    let rsa_cert = self_signed(&rsa, OffsetDateTime::now_utc() + time::Duration::days(1));
    let rsa_jwk = rsa_jwk_of(&rsa_cert);
    let document = json!({ "keys": [ed_key.public_jwk(), rsa_jwk] }).to_string();
    std::fs::write(dir.path().join("self.jwks.json"), document).unwrap();
    let table = format!(
        r#"
[authorization_server]
issuer = "{ISSUER}"
listen = "127.0.0.1:8444"
signing_keys = ["as-signing-key.pem"]

[[authorization_server.client]]
client_id = "svc-self"
auth = "self_signed_tls_client_auth"
jwks = "self.jwks.json"
grant_types = ["client_credentials"]
audience = ["https://api.example"]
"#
    );
    let authenticator = build(dir.path(), &table, ReplayStoreSettings::Memory { max_entries: 10 }).unwrap();
    for cert in [
        self_signed(&ed, OffsetDateTime::now_utc() + time::Duration::days(1)),
        rsa_cert,
    ] {
        let chain = [cert];
        let ok = authenticator
            .authenticate(&with_chain("svc-self", &chain), now_seconds())
            .await
            .unwrap();
        assert_eq!(ok.client.client_id, "svc-self");
    }
}

/// An RSA key pair made by aws-lc-rs, which rcgen signs with but does not generate.
fn rsa_pair() -> KeyPair {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&key).unwrap();
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap()
}

fn rsa_jwk_of(cert: &CertificateDer<'_>) -> Value {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let (_, parsed) = x509_parser::prelude::X509Certificate::from_der(cert.as_ref()).unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = parsed.public_key().parsed().unwrap() else {
        panic!("not an RSA certificate");
    };
    let trim = |bytes: &[u8]| bytes.iter().skip_while(|&&b| b == 0).copied().collect::<Vec<u8>>();
    json!({ "kty": "RSA", "n": b64(&trim(rsa.modulus)), "e": b64(&trim(rsa.exponent)), "alg": "RS256" })
}

#[tokio::test]
async fn self_signed_refuses_a_certificate_of_another_key() {
    let f = Fixture::new();
    let other = KeyPair::generate().unwrap();
    let chain = [self_signed(&other, OffsetDateTime::now_utc() + time::Duration::days(1))];
    let err = refused(&f, with_chain("svc-self", &chain)).await;
    assert!(matches!(err, ClientAuthError::CertificateKeyNotRegistered), "{err:?}");
    assert_eq!(err.method(), "self_signed_tls_client_auth");
}

#[tokio::test]
async fn self_signed_refuses_an_expired_certificate_of_the_registered_key() {
    let f = Fixture::new();
    let chain = [self_signed(
        &f.self_pair,
        OffsetDateTime::now_utc() - time::Duration::hours(1),
    )];
    let err = refused(&f, with_chain("svc-self", &chain)).await;
    assert!(
        matches!(
            err,
            ClientAuthError::CertificateExpired {
                method: AuthMethod::SelfSignedTlsClientAuth
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn self_signed_refuses_a_request_without_a_certificate() {
    let f = Fixture::new();
    let credentials = ClientCredentials {
        client_id: Some("svc-self"),
        ..ClientCredentials::default()
    };
    let err = refused(&f, credentials).await;
    assert!(
        matches!(
            err,
            ClientAuthError::CertificateMissing {
                method: AuthMethod::SelfSignedTlsClientAuth
            }
        ),
        "{err:?}"
    );
}

/// The verifier id of `client_id`, a `tls_client_auth` client of `f`.
fn verifier_id(f: &Fixture, client_id: &str) -> u64 {
    match &f.authenticator.clients[client_id].check {
        Check::Tls { verifier_id, .. } => *verifier_id,
        _ => panic!("{client_id} is not a tls_client_auth client"),
    }
}

#[tokio::test]
async fn an_accepted_chain_is_remembered_for_its_verifier_and_still_must_name_the_client() {
    let f = Fixture::new();
    let chain = [f.ca.issue(client_params("svc-dn", vec![]))];
    let verdict = crate::conn::ChainVerdict::default();
    let remembering = |client_id| ClientCredentials {
        chain_verdict: Some(&verdict),
        ..with_chain(client_id, &chain)
    };
    let id = verifier_id(&f, "svc-dn");
    assert!(!verdict.accepted(id, now_seconds()));
    f.authenticate(remembering("svc-dn")).await.unwrap();
    assert!(verdict.accepted(id, now_seconds()), "remembered under its verifier");
    assert!(
        !verdict.accepted(id + 1_000_000, now_seconds()),
        "not for another verifier"
    );
    // A remembered chain skips the chain check only: it still names svc-dn and nobody else.
    f.authenticate(remembering("svc-dn")).await.unwrap();
    let err = f.authenticate(remembering("svc-uri")).await.unwrap_err();
    assert!(matches!(err, ClientAuthError::CertificateSubjectMismatch), "{err:?}");
}

#[tokio::test]
async fn a_refused_chain_is_not_remembered() {
    let f = Fixture::new();
    let stranger = Ca::new("another CA");
    let chain = [stranger.issue(client_params("svc-dn", vec![]))];
    let verdict = crate::conn::ChainVerdict::default();
    let credentials = ClientCredentials {
        chain_verdict: Some(&verdict),
        ..with_chain("svc-dn", &chain)
    };
    let err = f.authenticate(credentials).await.unwrap_err();
    assert!(matches!(err, ClientAuthError::CertificateUntrusted(_)), "{err:?}");
    assert!(!verdict.accepted(verifier_id(&f, "svc-dn"), now_seconds()));
}
