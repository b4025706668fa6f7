//! What the access token says (RFC 9068), who signed it, and how `scope`
//! and `resource` narrow it.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

#[tokio::test]
async fn the_token_is_an_rfc_9068_jwt_signed_by_the_first_signing_key_under_its_kid() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    let before = now();
    let answer = w
        .post(Alpn::Http1, Some(client_a), &certificate_form("svc-tls", &[]), &[])
        .await;
    let after = now();
    let issued = answer.issued("Bearer", "mtls");

    assert_eq!(
        issued.header,
        json!({"typ": "at+jwt", "alg": "EdDSA", "kid": w.signer.kid}),
        "signed by the first of signing_keys"
    );
    assert!(signed_by(&issued.access_token, &w.signer), "{}", issued.access_token);
    // The check itself can fail: another payload under the same signature does not verify.
    let (head, rest) = issued.access_token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_claims = with(issued.claims.clone(), "sub", json!("svc-jwt"));
    let forged = format!("{head}.{}.{signature}", base64_url(&forged_claims.to_string()));
    assert!(!signed_by(&forged, &w.signer));

    let claims = &issued.claims;
    let names: BTreeSet<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope", "cnf"]),
        "{claims}"
    );
    assert_eq!(claims["iss"], AS_ISSUER);
    assert_eq!(claims["sub"], "svc-tls");
    assert_eq!(claims["client_id"], "svc-tls");
    assert_eq!(
        claims["aud"],
        json!([API, OTHER_API]),
        "no resource: every audience of the client"
    );
    assert_eq!(claims["scope"], SCOPE, "no scope asked: the client's whole scope");
    assert_eq!(claims["cnf"], json!({ "x5t#S256": client_a.x5t() }));
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=after).contains(&iat), "iat {iat} not in {before}..={after}");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 120), "access_token_ttl = 2m");
    assert_eq!(issued.expires_in, 120);
    assert_eq!(issued.scope.as_deref(), Some(SCOPE));
    assert_eq!(claims["jti"].as_str().map(str::len), Some(22), "{claims}");

    let again = w
        .post(Alpn::H2, Some(client_a), &certificate_form("svc-tls", &[]), &[])
        .await
        .issued("Bearer", "mtls");
    assert_ne!(again.claims["jti"], claims["jti"], "each token has its own jti");
}

#[tokio::test]
async fn scope_narrows_and_never_widens_and_resource_selects_the_audience() {
    let w = world(Options::default()).await;
    let client_a = Some(&w.s.pki.client_a);
    let granted = [
        // (scope asked, resources asked) -> (scope granted, aud)
        (Some("orders:write"), vec![], "orders:write", json!([API, OTHER_API])),
        // In the client's order, whatever the request's.
        (
            Some("orders:write orders:read"),
            vec![],
            "orders:read orders:write",
            json!([API, OTHER_API]),
        ),
        (None, vec![OTHER_API], SCOPE, json!(OTHER_API)),
        (Some("orders:read"), vec![API], "orders:read", json!(API)),
        (None, vec![OTHER_API, API], SCOPE, json!([OTHER_API, API])),
        (None, vec![API, API], SCOPE, json!(API)),
    ];
    for (scope, resources, scope_granted, aud) in &granted {
        let mut extra: Vec<(&str, &str)> = resources.iter().map(|r| ("resource", *r)).collect();
        if let Some(scope) = scope {
            extra.push(("scope", scope));
        }
        let issued = w
            .post(Alpn::Http1, client_a, &certificate_form("svc-tls", &extra), &[])
            .await
            .issued("Bearer", "mtls");
        let case = format!("scope {scope:?}, resource {resources:?}");
        assert_eq!(issued.claims["scope"], *scope_granted, "{case}");
        assert_eq!(issued.scope.as_deref(), Some(*scope_granted), "{case}");
        assert_eq!(issued.claims["aud"], *aud, "{case}");
    }
    let refused = [
        (("scope", "orders:read admin"), "invalid_scope", "scope_not_allowed"),
        // A prefix of a scope is not that scope.
        (("scope", "orders"), "invalid_scope", "scope_not_allowed"),
        (
            ("resource", "https://api.example/"),
            "invalid_target",
            "resource_not_allowed",
        ),
        (
            ("resource", "https://evil.example"),
            "invalid_target",
            "resource_not_allowed",
        ),
    ];
    for (param, error, reason) in refused {
        let description = w
            .post(Alpn::H2, client_a, &certificate_form("svc-tls", &[param]), &[])
            .await
            .refused(400, error, reason);
        assert!(
            description.contains(param.1.split(' ').next_back().unwrap()),
            "{description}"
        );
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
