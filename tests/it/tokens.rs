//! Token validation through the real gateway: each bad token is refused with
//! its own reason, and nothing reaches the upstream.

use serde_json::{Value, json};

use crate::common::*;

/// Sends `token` from client A and returns the reply.
async fn send(s: &Setup, gw: &GatewayProcess, token: &str) -> Reply {
    s.client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(token)))
        .await
        .unwrap()
}

async fn assert_rejected(s: &Setup, gw: &GatewayProcess, token: &str, reason: &str) {
    let reply = send(s, gw, token).await;
    assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
    assert_eq!(reply.reason(), reason);
    let challenge = reply.challenge().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(
        s.upstream.count(),
        0,
        "{reason}: a rejected request reached the upstream"
    );
}

fn claims(s: &Setup) -> Value {
    s.issuer.claims(&s.pki.client_a.x5t())
}

#[tokio::test]
async fn each_invalid_token_is_refused_with_its_reason() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let h = s.issuer.header();
    let now = now();
    let other_key_same_kid = TestIssuer::new("k1");
    let cases: Vec<(&str, String)> = vec![
        ("cnf_missing", s.issuer.sign(&h, &without(claims(&s), "cnf"))),
        (
            "token_expired",
            s.issuer.sign(&h, &with(claims(&s), "exp", json!(now - 60))),
        ),
        (
            "token_not_yet_valid",
            s.issuer.sign(&h, &with(claims(&s), "nbf", json!(now + 120))),
        ),
        (
            "wrong_issuer",
            s.issuer.sign(&h, &with(claims(&s), "iss", json!("https://evil.test"))),
        ),
        (
            "wrong_audience",
            s.issuer.sign(&h, &with(claims(&s), "aud", json!("https://other.test"))),
        ),
        ("bad_signature", other_key_same_kid.sign(&h, &claims(&s))),
        (
            "unknown_kid",
            s.issuer.sign(&with(h.clone(), "kid", json!("k9")), &claims(&s)),
        ),
        (
            "claims_malformed",
            s.issuer.sign(&h, &with(claims(&s), "exp", json!("9999999999"))),
        ),
        (
            "crit_unsupported",
            s.issuer.sign(&with(h.clone(), "crit", json!(["exp"])), &claims(&s)),
        ),
        (
            "typ_rejected",
            s.issuer.sign(&with(h.clone(), "typ", json!("dpop+jwt")), &claims(&s)),
        ),
        (
            "cnf_malformed",
            s.issuer.sign(
                &h,
                &with(
                    claims(&s),
                    "cnf",
                    json!({"x5t#S256": format!("{}=", s.pki.client_a.x5t())}),
                ),
            ),
        ),
        ("token_malformed", "not.a-jwt".to_string()),
    ];
    for (reason, token) in cases {
        assert_rejected(&s, &gw, &token, reason).await;
    }
}

#[tokio::test]
async fn alg_none_and_hmac_with_the_public_key_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let payload = URL_SAFE_NO_PAD.encode(claims(&s).to_string());
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#));
    let reply = send(&s, &gw, &none).await;
    assert_eq!(reply.status, 401);
    // An empty signature part is malformed before alg is even looked at.
    assert_eq!(reply.reason(), "token_malformed");
    let none_sig = format!(
        "{}.{payload}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#)
    );
    assert_rejected(&s, &gw, &none_sig, "alg_not_allowed").await;

    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#);
    let input = format!("{header}.{payload}");
    let secret = jsonwebtoken::EncodingKey::from_secret(&s.issuer.public_key_bytes());
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &secret, jsonwebtoken::Algorithm::HS256).unwrap();
    assert_rejected(&s, &gw, &format!("{input}.{sig}"), "alg_not_allowed").await;
}

#[tokio::test]
async fn leeway_fractional_dates_audience_arrays_and_typ_variants_are_accepted() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let h = s.issuer.header();
    let now = now();
    let accepted = [
        s.issuer.sign(&h, &with(claims(&s), "exp", json!(now - 10))),
        s.issuer.sign(&h, &with(claims(&s), "exp", json!(now as f64 + 3600.5))),
        s.issuer
            .sign(&h, &with(claims(&s), "aud", json!(["https://other.test", AUD]))),
        s.issuer.sign(&without(h.clone(), "typ"), &claims(&s)),
        s.issuer
            .sign(&with(h.clone(), "typ", json!("application/at+jwt")), &claims(&s)),
    ];
    for (i, token) in accepted.iter().enumerate() {
        let reply = send(&s, &gw, token).await;
        assert_eq!(reply.status, 200, "case {i}: {:?}", reply.body);
    }
    assert_eq!(s.upstream.count(), accepted.len());
}

#[tokio::test]
async fn strict_typ_refuses_tokens_without_at_jwt() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        token: vec!["require_typ = \"at+jwt\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let untyped = s.issuer.sign(&without(s.issuer.header(), "typ"), &claims(&s));
    assert_rejected(&s, &gw, &untyped, "typ_rejected").await;
    assert_eq!(send(&s, &gw, &s.token_a()).await.status, 200);
}

#[tokio::test]
async fn missing_token_gets_a_bare_challenge() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", None))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.challenge().as_deref(), Some("Bearer realm=\"bindgate\""));
    assert_eq!(reply.reason(), "token_missing");
    let mut basic = get(Alpn::Http1, "/", None);
    basic
        .headers_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let reply = s.client_a(Alpn::Http1).send(gw.addr, basic).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.challenge().as_deref(), Some("Bearer realm=\"bindgate\""));
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let mut req = get(Alpn::Http1, "/", Some(&s.token_a()));
    req.headers_mut()
        .append("authorization", format!("Bearer {}", s.token_a()).parse().unwrap());
    let reply = s.client_a(Alpn::Http1).send(gw.addr, req).await.unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.reason(), "authorization_duplicate");
    assert!(reply.challenge().unwrap().contains("error=\"invalid_request\""));
    assert_eq!(s.upstream.count(), 0);
}

/// A token outside RFC 6750's `b64token` syntax is a malformed request, 400
/// `invalid_request`, whatever else would refuse it: its size, its
/// signature, or a scheme the route does not take. The gateway checks that
/// syntax only for tokens it refuses, so each case here is one that would
/// otherwise be refused for another reason.
#[tokio::test]
async fn tokens_outside_the_b64token_syntax_are_invalid_requests_before_anything_else() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        token: vec!["max_size = 4096".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let token = s.token_a();
    // Served, and so cached, first: its variants below must not ride on it.
    assert_eq!(send(&s, &gw, &token).await.status, 200);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("comma", format!("Bearer {token},").into_bytes()),
        (
            "space inside",
            format!("Bearer {} {}", &token[..20], &token[20..]).into_bytes(),
        ),
        (
            "UTF-8",
            format!("Bearer {}é{}", &token[..20], &token[20..]).into_bytes(),
        ),
        ("obs-text", [b"Bearer ".as_slice(), token.as_bytes(), b"\xff"].concat()),
        (
            "too large as well",
            format!("Bearer {}", "a,".repeat(3000)).into_bytes(),
        ),
        (
            "a scheme the route does not take",
            format!("DPoP {token},").into_bytes(),
        ),
    ];
    for (case, value) in cases {
        let mut req = get(Alpn::Http1, "/", None);
        req.headers_mut()
            .insert("authorization", http::HeaderValue::from_bytes(&value).unwrap());
        let reply = s.client_a(Alpn::Http1).send(gw.addr, req).await.unwrap();
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_eq!(reply.reason(), "authorization_malformed", "{case}");
        let challenge = reply.challenge().unwrap();
        assert!(challenge.contains("error=\"invalid_request\""), "{case}: {challenge}");
    }
    assert_eq!(s.upstream.count(), 1, "only the well-formed token was forwarded");
    // Well-formed, the large one is refused for its size.
    let reply = send(&s, &gw, &"a.".repeat(3000)).await;
    assert_eq!((reply.status.as_u16(), reply.reason()), (401, "token_too_large".into()));
}

#[tokio::test]
async fn tokens_in_the_query_string_or_a_form_body_are_refused() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let client = s.client_a(Alpn::Http1);
    let reply = client
        .send(
            gw.addr,
            get(Alpn::Http1, &format!("/x?access_token={token}"), Some(&token)),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.reason(), "token_in_query");

    let mut form = request(
        Alpn::Http1,
        "POST",
        "/x",
        Some(&token),
        format!("a=1&access_token={token}"),
    );
    form.headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let reply = client.send(gw.addr, form).await.unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.reason(), "token_in_form");
    assert_eq!(s.upstream.count(), 0);

    let mut ok_form = request(Alpn::Http1, "POST", "/x", Some(&token), "a=1&b=2");
    ok_form
        .headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let reply = client.send(gw.addr, ok_form).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_ref(), b"a=1&b=2");
}

#[tokio::test]
async fn thumbprint_in_the_standard_base64_alphabet_is_refused() {
    let s = Setup::new().await;
    // A certificate whose thumbprint has a character that differs between the alphabets.
    let cert = (0..50)
        .map(|i| s.pki.ca.client(s.path(), &format!("alphabet-{i}"), false))
        .find(|c| c.x5t().contains(['-', '_']))
        .expect("no thumbprint with - or _ in 50 certificates");
    let gw = s.gateway().await;
    let standard = cert.x5t().replace('-', "+").replace('_', "/");
    let token = s.issuer.sign(
        &s.issuer.header(),
        &with(s.issuer.claims(&cert.x5t()), "cnf", json!({ "x5t#S256": standard })),
    );
    let reply = s
        .client(Some(&cert), Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "cnf_malformed");
    let good = s.issuer.token(&cert.x5t());
    let reply = s
        .client(Some(&cert), Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&good)))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(s.upstream.count(), 1);
}

#[tokio::test]
async fn dates_outside_1970_to_9999_are_malformed_claims_not_far_futures() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let h = s.issuer.header();
    let valid = claims(&s).to_string();
    let exp = format!("\"exp\":{}", now() + 600);
    assert!(valid.contains(&exp), "{valid}");
    // 2^64 as written, which serde_json::Value cannot carry as an integer.
    for date in ["18446744073709551616", "1e300", "253402300800", "-1"] {
        let token = s.issuer.sign_raw(&h, &valid.replace(&exp, &format!("\"exp\":{date}")));
        assert_rejected(&s, &gw, &token, "claims_malformed").await;
    }
    let nbf = s.issuer.sign(&h, &with(claims(&s), "nbf", json!(-3600)));
    assert_rejected(&s, &gw, &nbf, "claims_malformed").await;
    let iat = s.issuer.sign_raw(
        &h,
        &without(claims(&s), "iat")
            .to_string()
            .replacen('{', "{\"iat\":1e20,", 1),
    );
    assert_rejected(&s, &gw, &iat, "claims_malformed").await;
    let last_second = s.issuer.sign(&h, &with(claims(&s), "exp", json!(253_402_300_799u64)));
    assert_eq!(send(&s, &gw, &last_second).await.status, 200);
}

#[tokio::test]
async fn max_lifetime_refuses_tokens_that_expire_too_far_ahead() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        token: vec!["max_lifetime = \"1h\"".into(), "leeway = \"10s\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let h = s.issuer.header();
    for exp in [now() + 7200, 253_402_300_799] {
        let token = s.issuer.sign(&h, &with(claims(&s), "exp", json!(exp)));
        assert_rejected(&s, &gw, &token, "token_lifetime_exceeded").await;
    }
    let within = s.issuer.sign(&h, &with(claims(&s), "exp", json!(now() + 3590)));
    let reply = send(&s, &gw, &within).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(s.upstream.count(), 1);
}
