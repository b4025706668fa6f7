//! `private_key_jwt` (RFC 7523 section 3, with draft-ietf-oauth-rfc7523bis'
//! audience rule): assertions accepted with ES256 and EdDSA, each bad one
//! refused with its reason, each accepted once, and a replay store outage
//! failing closed.

use serde_json::json;

use super::*;
use crate::common::interop::redis_server;

#[tokio::test]
async fn private_key_jwt_accepts_es256_and_eddsa_assertions() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    for (alpn, key) in [
        (Alpn::Http1, &w.es),
        (Alpn::H2, &w.ed),
        (Alpn::H2, &w.es),
        (Alpn::Http1, &w.ed),
    ] {
        let form = assertion_form(Some("svc-jwt"), &key.assertion("svc-jwt"), &[]);
        let answer = w.post(alpn, Some(client_a), &form, &[]).await;
        // Authenticated by the assertion, bound to the connection's certificate.
        let issued = answer.issued("Bearer", "mtls");
        assert_eq!(issued.claims["client_id"], "svc-jwt", "{alpn:?} {}", key.alg);
        assert_eq!(issued.claims["cnf"], json!({ "x5t#S256": client_a.x5t() }));
    }
    let c = || w.es.claims("svc-jwt", AS_ISSUER);
    let also_accepted = [
        // Without client_id: the assertion's iss names the client.
        assertion_form(None, &w.es.assertion("svc-jwt"), &[]),
        // An audience array holding the issuer alone.
        assertion_form(
            Some("svc-jwt"),
            &w.es.sign(&w.es.header(), &with(c(), "aud", json!([AS_ISSUER]))),
            &[],
        ),
        // No kid: the one key taking ES256 verifies it; and rfc7523bis' typ.
        assertion_form(
            Some("svc-jwt"),
            &w.es
                .sign(&json!({"alg": "ES256", "typ": "client-authentication+jwt"}), &c()),
            &[],
        ),
        // Expiring in exactly five minutes, the longest allowed.
        assertion_form(
            Some("svc-jwt"),
            &w.es.sign(&w.es.header(), &with(c(), "exp", json!(now() + 300))),
            &[],
        ),
    ];
    for form in &also_accepted {
        w.post(Alpn::Http1, Some(client_a), form, &[])
            .await
            .issued("Bearer", "mtls");
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), 8.0, "{metrics}");
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn private_key_jwt_refuses_each_bad_assertion_with_its_reason() {
    let w = world(Options::default()).await;
    let (es, h) = (&w.es, w.es.header());
    let c = || es.claims("svc-jwt", AS_ISSUER);
    // Another key under the registered kid.
    let elsewhere = w.s.path().join("impostor");
    std::fs::create_dir(&elsewhere).unwrap();
    let impostor = AssertionKey::es256(&elsewhere, "es-1");
    let now = now();
    let signed = |header: &serde_json::Value, claims: serde_json::Value| es.sign(header, &claims);
    let cases: Vec<(&str, String)> = vec![
        ("assertion_sub_mismatch", signed(&h, with(c(), "sub", json!("svc-tls")))),
        ("client_id_mismatch", signed(&h, with(c(), "iss", json!("svc-tls")))),
        (
            "assertion_aud_mismatch",
            signed(&h, with(c(), "aud", json!(token_url(AS_ISSUER)))),
        ),
        (
            "assertion_aud_mismatch",
            signed(&h, with(c(), "aud", json!([AS_ISSUER, "https://other-as.example"]))),
        ),
        (
            "assertion_aud_mismatch",
            signed(&h, with(c(), "aud", json!("https://other-as.example"))),
        ),
        ("assertion_exp_missing", signed(&h, without(c(), "exp"))),
        (
            "assertion_lifetime_exceeded",
            signed(&h, with(c(), "exp", json!(now + 600))),
        ),
        ("assertion_expired", signed(&h, with(c(), "exp", json!(now - 60)))),
        (
            "assertion_not_yet_valid",
            signed(&h, with(c(), "nbf", json!(now + 120))),
        ),
        (
            "assertion_iat_in_future",
            signed(&h, with(c(), "iat", json!(now + 120))),
        ),
        ("assertion_jti_missing", signed(&h, without(c(), "jti"))),
        ("assertion_bad_signature", impostor.sign(&h, &c())),
        // The EdDSA key's kid with an ES256 signature.
        (
            "assertion_no_key_for_alg",
            signed(&with(h.clone(), "kid", json!("ed-1")), c()),
        ),
        (
            "assertion_alg_not_allowed",
            signed(&with(h.clone(), "alg", json!("PS256")), c()),
        ),
        (
            "assertion_alg_not_allowed",
            signed(&with(h.clone(), "alg", json!("HS256")), c()),
        ),
        (
            "assertion_unknown_kid",
            signed(&with(h.clone(), "kid", json!("es-9")), c()),
        ),
        (
            "assertion_typ_rejected",
            signed(&with(h.clone(), "typ", json!("dpop+jwt")), c()),
        ),
        (
            "assertion_crit_unsupported",
            signed(&with(h.clone(), "crit", json!(["exp"])), c()),
        ),
        ("assertion_malformed", "not-a-jwt".to_string()),
    ];
    let client_a = &w.s.pki.client_a;
    for (i, (reason, assertion)) in cases.iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        let answer = w
            .post(
                alpn,
                Some(client_a),
                &assertion_form(Some("svc-jwt"), assertion, &[]),
                &[],
            )
            .await;
        let description = answer.refused(401, "invalid_client", reason);
        assert!(!description.contains(assertion.as_str()), "{description}");
    }
    // The form's parameters themselves.
    let assertion = es.assertion("svc-jwt");
    let forms = [
        (
            "assertion_type_unsupported",
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "svc-jwt"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &assertion),
            ]),
        ),
        ("assertion_missing", certificate_form("svc-jwt", &[])),
        ("client_id_missing", form(&[("grant_type", "client_credentials")])),
    ];
    for (reason, body) in &forms {
        w.post(Alpn::Http1, Some(client_a), body, &[])
            .await
            .refused(401, "invalid_client", reason);
    }
    // An assertion beside the certificate of a tls_client_auth client is a second method.
    let both = assertion_form(Some("svc-tls"), &es.assertion("svc-tls"), &[]);
    w.post(Alpn::Http1, Some(client_a), &both, &[])
        .await
        .refused(401, "invalid_client", "multiple_methods");

    let metrics = w.metrics().await;
    let by_jwt = (cases.len() + 2) as f64;
    assert_eq!(sample(&metrics, &auth_failures("private_key_jwt")), by_jwt, "{metrics}");
    assert_eq!(sample(&metrics, &auth_failures("tls_client_auth")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &auth_failures("unknown")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &token_errors("invalid_client")), by_jwt + 2.0);
    assert_eq!(rows(&metrics, "bindgate_as_tokens_issued_total"), Vec::<String>::new());
}

#[tokio::test]
async fn an_assertion_is_accepted_once_whatever_the_connection() {
    let w = world(Options::default()).await;
    let form = w.jwt_form(&[]);
    let client_a = &w.s.pki.client_a;
    w.post(Alpn::Http1, Some(client_a), &form, &[])
        .await
        .issued("Bearer", "mtls");
    for alpn in [Alpn::Http1, Alpn::H2] {
        w.post(alpn, Some(client_a), &form, &[])
            .await
            .refused(401, "invalid_client", "assertion_replayed");
    }
    // Its jti is remembered for this client: the same jti from another client is its own.
    let jti = decode_jwt(&w.es.assertion("svc-jwt")).1["jti"].clone();
    let other = w.es.sign(
        &w.es.header(),
        &with(w.es.claims("svc-dpop-only", AS_ISSUER), "jti", jti.clone()),
    );
    let key = crate::common::dpop::DpopKey::new();
    let proof = token_proof(&key, None);
    w.post(
        Alpn::Http1,
        None,
        &assertion_form(Some("svc-dpop-only"), &other, &[]),
        &[&proof],
    )
    .await
    .issued("DPoP", "dpop");
    let same_jti =
        w.es.sign(&w.es.header(), &with(w.es.claims("svc-jwt", AS_ISSUER), "jti", jti));
    w.post(
        Alpn::Http1,
        Some(client_a),
        &assertion_form(Some("svc-jwt"), &same_jti, &[]),
        &[],
    )
    .await
    .issued("Bearer", "mtls");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &auth_failures("private_key_jwt")), 2.0, "{metrics}");
}

#[tokio::test]
async fn an_algorithm_left_out_of_assertion_algorithms_is_refused_even_with_a_registered_key() {
    let w = world(Options {
        assertion_algorithms: Some("[\"ES256\"]"),
        ..Options::default()
    })
    .await;
    let client_a = &w.s.pki.client_a;
    let eddsa = assertion_form(Some("svc-jwt"), &w.ed.assertion("svc-jwt"), &[]);
    w.post(Alpn::Http1, Some(client_a), &eddsa, &[])
        .await
        .refused(401, "invalid_client", "assertion_alg_not_allowed");
    w.post(Alpn::Http1, Some(client_a), &w.jwt_form(&[]), &[])
        .await
        .issued("Bearer", "mtls");
}

#[tokio::test]
async fn a_replay_store_outage_answers_503_and_never_accepts_an_unrecorded_assertion() {
    let mut redis = redis_server();
    let w = world(Options {
        dpop: vec![format!("replay_store = {:?}", redis.url())],
        ..Options::default()
    })
    .await;
    let client_a = &w.s.pki.client_a;
    w.post(Alpn::Http1, Some(client_a), &w.jwt_form(&[]), &[])
        .await
        .issued("Bearer", "mtls");
    redis.stop();
    let form = w.jwt_form(&[]);
    w.post(Alpn::Http1, Some(client_a), &form, &[]).await.refused(
        503,
        "temporarily_unavailable",
        "replay_store_unavailable",
    );
    // A DPoP proof's jti cannot be recorded either: replay_store_failure is "closed".
    let key = crate::common::dpop::DpopKey::new();
    let proof = token_proof(&key, None);
    w.post(
        Alpn::Http1,
        Some(client_a),
        &certificate_form("svc-tls", &[]),
        &[&proof],
    )
    .await
    .refused(503, "temporarily_unavailable", "replay_store_unavailable");
    // A certificate method needs no store.
    w.post(Alpn::Http1, Some(client_a), &certificate_form("svc-tls", &[]), &[])
        .await
        .issued("Bearer", "mtls");
    // Back: the assertion refused during the outage was not recorded, so it is not a replay.
    redis.start_again();
    // Until the store is reached again, the answer stays a 503.
    let mut last = None;
    let reached = eventually(Duration::from_secs(10), async || {
        let answer = w.post(Alpn::Http1, Some(client_a), &form, &[]).await;
        let done = answer.reply.status != 503;
        last = Some(answer);
        done
    })
    .await;
    assert!(reached, "the replay store stays unreachable\n{}", w.gw.stderr());
    last.unwrap().issued("Bearer", "mtls");
    let metrics = w.metrics().await;
    assert!(
        sample(&metrics, &token_errors("temporarily_unavailable")) >= 2.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, &token_errors("invalid_client")), 0.0, "{metrics}");
}
