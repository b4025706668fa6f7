//! Every error code of the token endpoint (RFC 6749 section 5.2, RFC 8707,
//! RFC 9449): its status, its JSON body, `Cache-Control: no-store`, and its
//! row in `bindgate_as_token_errors_total`.

use serde_json::json;

use super::*;
use crate::common::dpop::DpopKey;

/// One refused request, from client A's certificate unless said otherwise.
struct Case<'a> {
    error: &'static str,
    /// The access line's reason.
    reason: &'static str,
    body: String,
    certificate: bool,
    proofs: Vec<&'a str>,
}

impl<'a> Case<'a> {
    fn new(error: &'static str, reason: &'static str, body: String) -> Case<'a> {
        Case {
            error,
            reason,
            body,
            certificate: true,
            proofs: Vec::new(),
        }
    }

    fn without_certificate(self) -> Case<'a> {
        Case {
            certificate: false,
            ..self
        }
    }

    fn with_proof(mut self, proof: &'a str) -> Case<'a> {
        self.proofs.push(proof);
        self
    }
}

#[tokio::test]
async fn every_error_code_has_its_status_json_body_no_store_and_metric_row() {
    let w = world(Options {
        authorization_server: vec!["dpop_require_nonce = true".into()],
        ..Options::default()
    })
    .await;
    let key = DpopKey::new();
    let wrong_method = key.sign(&key.header(), &with(proof_claims(AS_ISSUER, None), "htm", json!("GET")));
    let no_nonce = token_proof(&key, None);
    let tls = |extra: &[(&str, &str)]| certificate_form("svc-tls", extra);
    let cases = [
        Case::new("invalid_client", "certificate_missing", tls(&[])).without_certificate(),
        Case::new(
            "invalid_request",
            "form_duplicate_parameter",
            format!("{}&grant_type=client_credentials", tls(&[])),
        ),
        Case::new(
            "invalid_request",
            "grant_type_missing",
            form(&[("client_id", "svc-tls")]),
        ),
        Case::new(
            "unauthorized_client",
            "grant_not_allowed",
            certificate_form("svc-refresh", &[]),
        ),
        Case::new(
            "unsupported_grant_type",
            "grant_type_unsupported",
            form(&[("grant_type", "password"), ("client_id", "svc-tls")]),
        ),
        Case::new(
            "invalid_grant",
            "refresh_token_unknown",
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "svc-refresh"),
                ("refresh_token", "never-issued"),
            ]),
        ),
        Case::new(
            "invalid_scope",
            "scope_not_allowed",
            tls(&[("scope", "orders:read admin")]),
        ),
        Case::new(
            "invalid_target",
            "resource_not_allowed",
            tls(&[("resource", "https://evil.example")]),
        ),
        Case::new("invalid_dpop_proof", "dpop_htm_mismatch", tls(&[])).with_proof(&wrong_method),
        Case::new("use_dpop_nonce", "use_dpop_nonce", tls(&[])).with_proof(&no_nonce),
    ];
    for (i, case) in cases.iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        let cert = case.certificate.then_some(&w.s.pki.client_a);
        let answer = w.post(alpn, cert, &case.body, &case.proofs).await;
        let status = if case.error == "invalid_client" { 401 } else { 400 };
        answer.refused(status, case.error, case.reason);
        assert_eq!(
            answer.reply.headers.contains_key("dpop-nonce"),
            case.error == "use_dpop_nonce",
            "{}: {:?}",
            case.error,
            answer.reply.headers
        );
    }
    let metrics = w.metrics().await;
    let mut expected: Vec<String> = Vec::new();
    for case in &cases {
        let count = cases.iter().filter(|c| c.error == case.error).count();
        let row = format!("{} {count}", token_errors(case.error));
        if !expected.contains(&row) {
            expected.push(row);
        }
    }
    let mut counted = rows(&metrics, "bindgate_as_token_errors_total");
    counted.sort();
    expected.sort();
    assert_eq!(counted, expected, "{metrics}");
    assert_eq!(sample(&metrics, &token_requests(401)), 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, &token_requests(400)),
        (cases.len() - 1) as f64,
        "{metrics}"
    );
    assert_eq!(
        rows(&metrics, "bindgate_as_tokens_issued_total"),
        Vec::<String>::new(),
        "{metrics}"
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow_post_and_no_store() {
    let w = world(Options::default()).await;
    for (i, method) in ["GET", "PUT", "DELETE", "PATCH"].into_iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        let req = request(alpn, method, TOKEN_PATH, None, certificate_form("svc-tls", &[]));
        let answer = w.send(Some(&w.s.pki.client_a), alpn, req).await;
        answer.refused(405, "invalid_request", "method_not_allowed");
        assert_eq!(answer.reply.header("allow").as_deref(), Some("POST"), "{method}");
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &token_requests(405)), 4.0, "{metrics}");
    assert_eq!(rows(&metrics, "bindgate_as_tokens_issued_total"), Vec::<String>::new());
}
