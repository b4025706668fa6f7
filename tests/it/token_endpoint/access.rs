//! The token endpoint's access line: who asked (`client_id`), for what
//! (`grant`), bound how (`binding`) and how it ended (`reason`), and never
//! a credential: no assertion, no proof, no token, not even a part of one.

use serde_json::json;

use super::*;
use crate::common::dpop::DpopKey;

#[tokio::test]
async fn the_access_line_names_client_grant_binding_and_reason_and_never_a_credential() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    let key = DpopKey::new();
    let mut secrets: Vec<String> = Vec::new();

    let assertion = w.es.assertion("svc-jwt");
    let proof = token_proof(&key, None);
    let answer = w
        .post(
            Alpn::Http1,
            None,
            &assertion_form(Some("svc-jwt"), &assertion, &[]),
            &[&proof],
        )
        .await;
    let issued = answer.issued("DPoP", "dpop");
    expect_fields(
        &answer.line,
        &[
            ("status", "200"),
            ("reason", "served"),
            ("route", "/token"),
            ("client_id", "svc-jwt"),
            ("grant", "client_credentials"),
            ("binding", "dpop"),
            ("method", "POST"),
        ],
    );
    secrets.extend([assertion, proof, issued.access_token]);

    let answer = w
        .post(Alpn::H2, Some(client_a), &certificate_form("svc-tls", &[]), &[])
        .await;
    let issued = answer.issued("Bearer", "mtls");
    expect_fields(
        &answer.line,
        &[
            ("client_id", "svc-tls"),
            ("grant", "client_credentials"),
            ("binding", "mtls"),
            ("x5t", &client_a.x5t()),
        ],
    );
    secrets.push(issued.access_token);

    // Refused at each step: the fields say how far the request got.
    let forged = w.ed.sign(
        &with(w.ed.header(), "kid", json!("es-1")),
        &w.es.claims("svc-jwt", AS_ISSUER),
    );
    let answer = w
        .post(
            Alpn::Http1,
            Some(client_a),
            &assertion_form(Some("svc-jwt"), &forged, &[]),
            &[],
        )
        .await;
    answer.refused(401, "invalid_client", "assertion_no_key_for_alg");
    expect_fields(
        &answer.line,
        &[("client_id", "svc-jwt"), ("grant", "-"), ("binding", "-")],
    );
    secrets.push(forged);

    let assertion = w.es.assertion("svc-jwt");
    let answer = w
        .post(
            Alpn::Http1,
            Some(client_a),
            &assertion_form(Some("svc-jwt"), &assertion, &[("scope", "admin")]),
            &[],
        )
        .await;
    answer.refused(400, "invalid_scope", "scope_not_allowed");
    expect_fields(
        &answer.line,
        &[
            ("client_id", "svc-jwt"),
            ("grant", "client_credentials"),
            ("binding", "-"),
        ],
    );
    secrets.push(assertion);

    let bad_proof = key.sign(&key.header(), &with(proof_claims(AS_ISSUER, None), "htm", json!("PUT")));
    let assertion = w.es.assertion("svc-jwt");
    let answer = w
        .post(
            Alpn::H2,
            None,
            &assertion_form(Some("svc-jwt"), &assertion, &[]),
            &[&bad_proof],
        )
        .await;
    answer.refused(400, "invalid_dpop_proof", "dpop_htm_mismatch");
    secrets.extend([bad_proof, assertion]);

    let stderr = w.gw.stderr();
    for secret in &secrets {
        let parts: Vec<&str> = secret.split('.').collect();
        for (what, text) in [
            ("whole", secret.as_str()),
            ("payload", parts[1]),
            ("signature", parts[2]),
        ] {
            assert!(
                !stderr.contains(text),
                "the log holds a credential's {what}: {text}\n{stderr}"
            );
        }
    }
    assert!(!stderr.contains(JWT_BEARER), "the log holds the form\n{stderr}");
}

#[track_caller]
fn expect_fields(line: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        assert_eq!(field(line, name).as_deref(), Some(*value), "{name} in {line}");
    }
}
