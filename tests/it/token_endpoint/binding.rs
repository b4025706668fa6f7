//! No unbound token, ever: without a certificate or a proof there is no
//! token, and a client gets only the bindings it is registered for.

use super::*;
use crate::common::dpop::DpopKey;

#[tokio::test]
async fn a_client_with_neither_certificate_nor_proof_gets_invalid_request_and_no_token() {
    let w = world(Options::default()).await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let answer = w.post(alpn, None, &w.jwt_form(&[]), &[]).await;
        let description = answer.refused(400, "invalid_request", "no_key_to_bind");
        assert!(description.contains("no key to bind"), "{description}");
        // Authenticated, granted, and still nothing issued.
        assert_eq!(field(&answer.line, "client_id").as_deref(), Some("svc-jwt"));
        assert_eq!(field(&answer.line, "grant").as_deref(), Some("client_credentials"));
        assert_eq!(field(&answer.line, "binding").as_deref(), Some("-"));
        assert!(answer.reply.json().get("access_token").is_none());
    }
    let metrics = w.metrics().await;
    assert_eq!(
        rows(&metrics, "bindgate_as_tokens_issued_total"),
        Vec::<String>::new(),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, &token_errors("invalid_request")), 2.0, "{metrics}");
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_client_gets_only_the_bindings_it_is_registered_for() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    let key = DpopKey::new();
    let mtls_only = certificate_form("svc-mtls-only", &[]);
    let dpop_only = || assertion_form(Some("svc-dpop-only"), &w.es.assertion("svc-dpop-only"), &[]);
    let proof = token_proof(&key, None);
    w.post(Alpn::Http1, Some(client_a), &mtls_only, &[&proof])
        .await
        .refused(400, "invalid_request", "dpop_binding_not_allowed");
    for cert in [Some(client_a), None] {
        w.post(Alpn::H2, cert, &dpop_only(), &[])
            .await
            .refused(400, "invalid_request", "dpop_binding_required");
    }
    let metrics = w.metrics().await;
    assert_eq!(
        rows(&metrics, "bindgate_as_tokens_issued_total"),
        Vec::<String>::new(),
        "{metrics}"
    );

    // Each with the binding it may have.
    w.post(Alpn::Http1, Some(client_a), &mtls_only, &[])
        .await
        .issued("Bearer", "mtls");
    let proof = token_proof(&key, None);
    let issued = w
        .post(Alpn::Http1, Some(client_a), &dpop_only(), &[&proof])
        .await
        .issued("DPoP", "dpop");
    assert_eq!(issued.claims["cnf"], serde_json::json!({ "jkt": key.jkt() }));
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &tokens_issued("dpop")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &token_errors("invalid_request")), 3.0, "{metrics}");
}
