//! Routes: longest prefix wins, per-route upstreams, pass-through routes,
//! scopes, and report-only binding.

use crate::common::*;

fn route(lines: &[&str]) -> String {
    format!("[[route]]\n{}\n", lines.join("\n"))
}

#[tokio::test]
async fn the_longest_prefix_picks_upstream_and_policy() {
    let s = Setup::new().await;
    let other = RecordingUpstream::start().await;
    let spec = ConfigSpec {
        tail: vec![
            route(&["prefix = \"/public\"", "auth = \"none\""]),
            route(&["prefix = \"/public/private\""]),
            route(&["prefix = \"/other\"", &format!("upstream = {:?}", other.url())]),
        ],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let client = s.client_a(Alpn::Http1);
    let send =
        async |path: &str, token: Option<&str>| client.send(gw.addr, get(Alpn::Http1, path, token)).await.unwrap();

    // Pass-through: no token needed, identity headers still set by the gateway.
    let mut spoofed = get(Alpn::Http1, "/public/page", None);
    spoofed.headers_mut().insert("x-auth-subject", "root".parse().unwrap());
    assert_eq!(client.send(gw.addr, spoofed).await.unwrap().status, 200);
    let seen = s.upstream.only();
    assert_eq!(seen.one("x-auth-subject"), None);
    assert!(seen.one("x-forwarded-client-cert").is_some());

    // Longer prefix wins: a token is required again below /public/private.
    assert_eq!(send("/public/private/x", None).await.status, 401);
    // Prefixes match on segment boundaries.
    assert_eq!(send("/publicity", None).await.status, 401);
    // Even pass-through routes refuse tokens in the query string.
    assert_eq!(send("/public?access_token=abc", None).await.status, 400);

    let token = s.token_a();
    assert_eq!(send("/other/thing", Some(&token)).await.status, 200);
    assert_eq!(other.only().target, "/other/thing");
    assert_eq!(s.upstream.count(), 1);
}

#[tokio::test]
async fn missing_scopes_are_403_insufficient_scope() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        tail: vec![route(&[
            "prefix = \"/admin\"",
            "required_scopes = [\"admin\", \"read\"]",
        ])],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let client = s.client_a(Alpn::Http1);
    // The default test token grants "read write".
    let reply = client
        .send(gw.addr, get(Alpn::Http1, "/admin/users", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.reason(), "insufficient_scope");
    let challenge = reply.challenge().unwrap();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"admin read\""), "{challenge}");
    assert_eq!(s.upstream.count(), 0);

    let claims = with(s.issuer.claims(&s.pki.client_a.x5t()), "scope", "read admin".into());
    let admin = s.issuer.sign(&s.issuer.header(), &claims);
    let reply = client
        .send(gw.addr, get(Alpn::Http1, "/admin/users", Some(&admin)))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    // scp as an array works too.
    let claims = with(
        without(s.issuer.claims(&s.pki.client_a.x5t()), "scope"),
        "scp",
        serde_json::json!(["admin", "read"]),
    );
    let scp = s.issuer.sign(&s.issuer.header(), &claims);
    let reply = client
        .send(gw.addr, get(Alpn::Http1, "/admin/x", Some(&scp)))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn report_only_routes_forward_unbound_tokens_and_count_them() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        tail: vec![route(&["prefix = \"/legacy\"", "binding = \"report\""])],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let token_a = s.token_a();
    let unbound = s.issuer.sign(
        &s.issuer.header(),
        &without(s.issuer.claims(&s.pki.client_a.x5t()), "cnf"),
    );
    let b = s.client_b(Alpn::Http1);
    // Mismatched and unbound tokens pass on the report-only route...
    assert_eq!(
        b.send(gw.addr, get(Alpn::Http1, "/legacy/a", Some(&token_a)))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        b.send(gw.addr, get(Alpn::Http1, "/legacy/b", Some(&unbound)))
            .await
            .unwrap()
            .status,
        200
    );
    // ...but everything else is still enforced there,
    let expired = s.issuer.sign(
        &s.issuer.header(),
        &with(s.issuer.claims(&s.pki.client_b.x5t()), "exp", (now() - 120).into()),
    );
    assert_eq!(
        b.send(gw.addr, get(Alpn::Http1, "/legacy/c", Some(&expired)))
            .await
            .unwrap()
            .status,
        401
    );
    // and the binding stays enforced elsewhere.
    assert_eq!(
        b.send(gw.addr, get(Alpn::Http1, "/api", Some(&token_a)))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(s.upstream.count(), 2);

    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    for reason in ["cnf_mismatch", "cnf_missing"] {
        let sample = format!("bindgate_binding_report_only_total{{route=\"/legacy\",reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &sample), Some(1.0), "{sample} in\n{metrics}");
    }
    assert!(gw.stderr().contains("binding_violation=\"cnf_mismatch\""));
}
