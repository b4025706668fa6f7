//! private_key_jwt.

use super::*;

async fn assertion_refused(f: &Fixture, assertion: &str) -> ClientAuthError {
    refused(f, with_assertion(assertion)).await
}

#[tokio::test]
async fn private_key_jwt_accepts_an_es256_assertion_naming_its_client() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({}));
    let ok = f.authenticate(with_assertion(&assertion)).await.unwrap();
    assert_eq!(ok.client.client_id, "svc-jwt");
    assert_eq!(ok.method, AuthMethod::PrivateKeyJwt);
    assert_eq!(ok.certificate_thumbprint, None);
}

#[tokio::test]
async fn private_key_jwt_accepts_an_eddsa_assertion_with_the_form_client_id_and_no_kid() {
    let f = Fixture::new();
    let assertion = assertion_by(
        &f.eddsa,
        json!({ "alg": "EdDSA", "typ": "client-authentication+jwt" }),
        json!({ "aud": [ISSUER] }),
    );
    let credentials = ClientCredentials {
        client_id: Some("svc-jwt"),
        ..with_assertion(&assertion)
    };
    let ok = f.authenticate(credentials).await.unwrap();
    assert_eq!(ok.client.client_id, "svc-jwt");
}

#[tokio::test]
async fn private_key_jwt_accepts_a_certificate_beside_the_assertion() {
    // The certificate may bind the token (RFC 8705 section 3); it is no second method.
    let f = Fixture::new();
    let assertion = f.assertion(json!({}));
    let chain = [f.ca.issue(client_params("svc-jwt", vec![]))];
    let credentials = ClientCredentials {
        peer_chain: Some(&chain),
        ..with_assertion(&assertion)
    };
    let ok = f.authenticate(credentials).await.unwrap();
    assert_eq!(ok.certificate_thumbprint, None);
}

#[tokio::test]
async fn private_key_jwt_refuses_the_token_endpoint_as_audience() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "aud": format!("{ISSUER}/token") }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionAudienceMismatch), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_audience_array_of_two() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "aud": [ISSUER, format!("{ISSUER}/token")] }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionAudienceMismatch), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_assertion_without_exp() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "exp": null }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionExpirationMissing), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_exp_ten_minutes_ahead() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "exp": now_seconds() as u64 + 600 }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionLifetimeExceeded), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_expired_assertion_beyond_the_leeway() {
    let f = Fixture::new();
    let now = now_seconds() as u64;
    let assertion = f.assertion(json!({ "iat": now - 120, "exp": now - 60 }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionExpired), "{err:?}");
    // Within the leeway, a clock a little ahead of the client's is forgiven.
    let assertion = f.assertion(json!({ "iat": now - 70, "exp": now - 10 }));
    f.authenticate(with_assertion(&assertion)).await.unwrap();
}

#[tokio::test]
async fn private_key_jwt_refuses_nbf_and_iat_in_the_future() {
    let f = Fixture::new();
    let later = now_seconds() as u64 + 120;
    let err = assertion_refused(&f, &f.assertion(json!({ "nbf": later, "exp": later + 60 }))).await;
    assert!(matches!(err, ClientAuthError::AssertionNotYetValid), "{err:?}");
    let err = assertion_refused(&f, &f.assertion(json!({ "iat": later, "exp": later + 60 }))).await;
    assert!(matches!(err, ClientAuthError::AssertionIssuedInFuture), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_issuer_other_than_the_subject() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "iss": "svc-dn" }));
    let credentials = ClientCredentials {
        client_id: Some("svc-jwt"),
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::ClientIdMismatch), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_a_subject_other_than_the_client() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "sub": "svc-dn" }));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionSubjectMismatch), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_unknown_kid() {
    let f = Fixture::new();
    let assertion = assertion_by(&f.es256, json!({ "alg": "ES256", "kid": "nope" }), json!({}));
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionUnknownKid), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_algorithm_off_the_allow_list() {
    let f = Fixture::new();
    // PS256 is a real algorithm, but not in this server's assertion_algorithms.
    for alg in ["PS256", "HS256"] {
        let assertion = assertion_by(&f.es256, json!({ "alg": alg, "kid": f.es256.kid() }), json!({}));
        let err = assertion_refused(&f, &assertion).await;
        assert!(
            matches!(&err, ClientAuthError::AssertionAlgorithmNotAllowed(named) if named == alg),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn private_key_jwt_refuses_alg_none_signed_or_not() {
    let f = Fixture::new();
    let signed = assertion_by(&f.es256, json!({ "alg": "none" }), json!({}));
    let err = assertion_refused(&f, &signed).await;
    assert!(
        matches!(err, ClientAuthError::AssertionAlgorithmNotAllowed(_)),
        "{err:?}"
    );
    // The unsecured form, with its empty signature, is not even a JWS here.
    let unsecured = format!("{}.", signed.rsplit_once('.').unwrap().0);
    let err = assertion_refused(&f, &unsecured).await;
    assert!(matches!(err, ClientAuthError::AssertionMalformed(_)), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_a_bad_signature() {
    let f = Fixture::new();
    let (_, stranger) = signing_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
    let forged = assertion_by(&stranger, json!({ "alg": "ES256", "kid": f.es256.kid() }), json!({}));
    let err = assertion_refused(&f, &forged).await;
    assert!(matches!(err, ClientAuthError::AssertionBadSignature), "{err:?}");
    // Without a kid, every key that takes the algorithm is tried, and none verifies.
    let forged = assertion_by(&stranger, json!({ "alg": "ES256" }), json!({}));
    let err = assertion_refused(&f, &forged).await;
    assert!(matches!(err, ClientAuthError::AssertionBadSignature), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_a_second_use_of_a_jti() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({ "jti": "once" }));
    f.authenticate(with_assertion(&assertion)).await.unwrap();
    let err = assertion_refused(&f, &assertion).await;
    assert!(matches!(err, ClientAuthError::AssertionReplayed), "{err:?}");
    // Even re-signed with another key of the client: the jti is what is spent.
    let again = assertion_by(&f.eddsa, json!({ "alg": "EdDSA" }), json!({ "jti": "once" }));
    let err = assertion_refused(&f, &again).await;
    assert!(matches!(err, ClientAuthError::AssertionReplayed), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_an_assertion_without_jti() {
    let f = Fixture::new();
    for jti in [Value::Null, json!("")] {
        let err = assertion_refused(&f, &f.assertion(json!({ "jti": jti }))).await;
        assert!(matches!(err, ClientAuthError::AssertionJtiMissing), "{err:?}");
    }
}

#[tokio::test]
async fn private_key_jwt_refuses_another_assertion_type() {
    let f = Fixture::new();
    let assertion = f.assertion(json!({}));
    let credentials = ClientCredentials {
        client_assertion_type: Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::AssertionTypeUnsupported), "{err:?}");
    let credentials = ClientCredentials {
        client_assertion_type: None,
        ..with_assertion(&assertion)
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::AssertionTypeUnsupported), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_a_request_without_an_assertion() {
    let f = Fixture::new();
    let credentials = ClientCredentials {
        client_id: Some("svc-jwt"),
        ..ClientCredentials::default()
    };
    let err = refused(&f, credentials).await;
    assert!(matches!(err, ClientAuthError::AssertionMissing), "{err:?}");
}

#[tokio::test]
async fn private_key_jwt_refuses_critical_extensions_and_foreign_types() {
    let f = Fixture::new();
    let header = json!({ "alg": "ES256", "kid": f.es256.kid(), "crit": ["exp"], "exp": 1 });
    let err = assertion_refused(&f, &assertion_by(&f.es256, header, json!({}))).await;
    assert!(matches!(err, ClientAuthError::AssertionCritical(_)), "{err:?}");
    for typ in ["at+jwt", "dpop+jwt"] {
        let header = json!({ "alg": "ES256", "kid": f.es256.kid(), "typ": typ });
        let err = assertion_refused(&f, &assertion_by(&f.es256, header, json!({}))).await;
        assert!(
            matches!(err, ClientAuthError::AssertionTypRejected(_)),
            "{typ}: {err:?}"
        );
    }
    let header = json!({ "alg": "ES256", "kid": f.es256.kid(), "typ": "application/JWT" });
    f.authenticate(with_assertion(&assertion_by(&f.es256, header, json!({}))))
        .await
        .unwrap();
}

#[tokio::test]
async fn private_key_jwt_fails_closed_when_the_replay_store_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", closed.local_addr().unwrap());
    drop(closed);
    let f = Fixture::with_store(ReplayStoreSettings::Redis {
        url,
        timeout: std::time::Duration::from_millis(200),
    });
    let assertion = f.assertion(json!({}));
    let err = f.authenticate(with_assertion(&assertion)).await.unwrap_err();
    assert!(matches!(err, ClientAuthError::ReplayStoreUnavailable), "{err:?}");
    assert_eq!(err.fault(), Fault::Server);
}
