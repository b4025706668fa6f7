//! DPoP at the token endpoint (RFC 9449 section 5): a proof binds the
//! token to its key, and wins over a certificate; each bad proof is a 400
//! `invalid_dpop_proof`, checked before the client is authenticated; server
//! nonces (section 8) with `dpop_require_nonce`.

use serde_json::json;

use super::*;
use crate::common::dpop::{DpopKey, jkt_of};

#[tokio::test]
async fn a_dpop_proof_binds_the_token_to_the_proof_key_over_http1_and_h2() {
    let w = world(Options::default()).await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let key = DpopKey::new();
        let proof = token_proof(&key, None);
        let answer = w.post(alpn, None, &w.jwt_form(&[]), &[&proof]).await;
        let issued = answer.issued("DPoP", "dpop");
        // The thumbprint computed here, from the JWK the proof carried.
        assert_eq!(issued.claims["cnf"], json!({ "jkt": jkt_of(&key.jwk()) }), "{alpn:?}");
        assert_eq!(key.jkt(), jkt_of(&key.jwk()));
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("dpop")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), 0.0, "{metrics}");
}

#[tokio::test]
async fn a_dpop_proof_wins_over_the_connection_certificate() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    let cases = [
        ("svc-tls", client_a, certificate_form("svc-tls", &[])),
        ("svc-self", &w.self_signed, certificate_form("svc-self", &[])),
        ("svc-jwt", client_a, w.jwt_form(&[])),
    ];
    for (id, cert, form) in &cases {
        let key = DpopKey::new();
        let proof = token_proof(&key, None);
        let answer = w.post(Alpn::H2, Some(cert), form, &[&proof]).await;
        let issued = answer.issued("DPoP", "dpop");
        assert_eq!(
            issued.claims["cnf"],
            json!({ "jkt": key.jkt() }),
            "{id}: no x5t#S256 beside the jkt"
        );
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("dpop")), 3.0, "{metrics}");
}

#[tokio::test]
async fn each_bad_proof_is_an_invalid_dpop_proof_refused_before_client_authentication() {
    let w = world(Options::default()).await;
    let key = DpopKey::new();
    let another = DpopKey::new();
    let h = key.header();
    let c = || proof_claims(AS_ISSUER, None);
    let now = now();
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let cases: Vec<(&str, String)> = vec![
        ("dpop_htm_mismatch", key.sign(&h, &with(c(), "htm", json!("GET")))),
        (
            "dpop_htu_mismatch",
            key.sign(&h, &with(c(), "htu", json!(format!("{AS_ISSUER}/jwks")))),
        ),
        // Where the request went (localhost, the port bound), not the issuer's URL.
        (
            "dpop_htu_mismatch",
            key.sign(&h, &with(c(), "htu", json!("https://localhost/token"))),
        ),
        (
            "dpop_htu_mismatch",
            key.sign(&h, &with(c(), "htu", json!("https://localhost:9444/token"))),
        ),
        (
            "dpop_iat_out_of_window",
            key.sign(&h, &with(c(), "iat", json!(now - 120))),
        ),
        (
            "dpop_iat_out_of_window",
            key.sign(&h, &with(c(), "iat", json!(now + 120))),
        ),
        ("dpop_typ", key.sign(&with(h.clone(), "typ", json!("JWT")), &c())),
        ("dpop_jwk_private", key.sign(&with(h.clone(), "jwk", private_jwk), &c())),
        ("dpop_jwk_missing", key.sign(&without(h.clone(), "jwk"), &c())),
        // Signed by another key than the one in its header.
        ("dpop_bad_signature", another.sign(&h, &c())),
        ("dpop_malformed", "not-a-jwt".to_string()),
    ];
    // One assertion for every refused request: none of them may spend its jti.
    let form = w.jwt_form(&[]);
    for (i, (reason, proof)) in cases.iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        w.post(alpn, None, &form, &[proof])
            .await
            .refused(400, "invalid_dpop_proof", reason);
    }
    let (first, second) = (token_proof(&key, None), token_proof(&key, None));
    w.post(Alpn::Http1, None, &form, &[&first, &second]).await.refused(
        400,
        "invalid_dpop_proof",
        "dpop_proof_duplicate",
    );
    let metrics = w.metrics().await;
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );

    // The assertion is still unused; the proof it now comes with is spent.
    w.post(Alpn::Http1, None, &form, &[&first]).await.issued("DPoP", "dpop");
    w.post(Alpn::H2, None, &w.jwt_form(&[]), &[&first])
        .await
        .refused(400, "invalid_dpop_proof", "dpop_replayed");

    let metrics = w.metrics().await;
    let refused = cases.len() as f64 + 2.0;
    assert_eq!(
        sample(&metrics, &token_errors("invalid_dpop_proof")),
        refused,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, &token_requests(400)), refused, "{metrics}");
    assert_eq!(sample(&metrics, &tokens_issued("dpop")), 1.0, "{metrics}");
}

#[tokio::test]
async fn with_dpop_require_nonce_the_first_proof_gets_use_dpop_nonce_and_the_retry_a_token() {
    let w = world(Options {
        authorization_server: vec!["dpop_require_nonce = true".into()],
        ..Options::default()
    })
    .await;
    // One assertion throughout: a client told to use a nonce retries with the same one.
    let form = w.jwt_form(&[]);
    let mut nonces = Vec::new();
    for (alpn, nonce) in [(Alpn::Http1, None), (Alpn::H2, Some("not-a-nonce-of-ours"))] {
        let key = DpopKey::new();
        let answer = w.post(alpn, None, &form, &[&token_proof(&key, nonce)]).await;
        answer.refused(400, "use_dpop_nonce", "use_dpop_nonce");
        let nonce = answer.reply.header("dpop-nonce");
        assert!(
            nonce.as_ref().is_some_and(|n| !n.is_empty()),
            "{alpn:?}: {:?}",
            answer.reply.headers
        );
        nonces.push(nonce.unwrap());
    }
    for (alpn, nonce) in [(Alpn::Http1, &nonces[0]), (Alpn::H2, &nonces[1])] {
        let key = DpopKey::new();
        let form = if alpn == Alpn::Http1 {
            form.clone()
        } else {
            w.jwt_form(&[])
        };
        let answer = w.post(alpn, None, &form, &[&token_proof(&key, Some(nonce))]).await;
        let issued = answer.issued("DPoP", "dpop");
        assert_eq!(issued.claims["cnf"]["jkt"], key.jkt().as_str(), "{alpn:?}");
    }
    // A request without a proof is bound to its certificate and needs no nonce.
    w.post(
        Alpn::Http1,
        Some(&w.s.pki.client_a),
        &certificate_form("svc-tls", &[]),
        &[],
    )
    .await
    .issued("Bearer", "mtls");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &token_errors("use_dpop_nonce")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &tokens_issued("dpop")), 2.0, "{metrics}");
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );
}
