//! Header names with underscores: CGI, WSGI, PHP and Rack read
//! `x_auth_subject` as `x-auth-subject`, so an underscore spelling of a
//! header the gateway sets must never reach the upstream, and
//! `[forward] headers_with_underscores` decides about all the others.

use std::time::Duration;

use crate::common::*;

/// Spellings of headers the gateway sets, each with the value a spoofer wants.
const SPOOFS: [(&str, &str); 5] = [
    ("x_auth_subject", "admin"),
    ("X_Forwarded_Client_Cert", "Hash=0000;Subject=\"CN=admin\""),
    ("x_forwarded-for", "203.0.113.9"),
    ("X-Forwarded_Proto", "http"),
    ("x_forwarded_host", "evil.example"),
];

fn spec(mode: Option<&str>) -> ConfigSpec {
    ConfigSpec {
        tail: mode
            .map(|m| vec![format!("[forward]\nheaders_with_underscores = {m:?}\n")])
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// A request with every spoof, one innocent underscore name and one plain name.
fn spoofing_request(alpn: Alpn, token: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = get(alpn, "/", Some(token));
    let headers = req.headers_mut();
    for (name, value) in SPOOFS {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    headers.append("x_tenant", "t1".parse().unwrap());
    headers.append("x-plain", "p1".parse().unwrap());
    req
}

/// What the upstream got must be the gateway's own identity headers only.
fn assert_no_spoof_reached(s: &Setup, seen: &Seen, alpn: Alpn) {
    for (name, _) in SPOOFS {
        assert_eq!(
            seen.all(&name.to_ascii_lowercase()),
            Vec::<String>::new(),
            "{alpn:?}: {name}"
        );
    }
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"), "{alpn:?}");
    let xfcc = seen.one("x-forwarded-client-cert").unwrap();
    assert!(
        xfcc.starts_with(&format!("Hash={};", s.pki.client_a.sha256_hex())),
        "{alpn:?}: {xfcc}"
    );
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("127.0.0.1"), "{alpn:?}");
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"), "{alpn:?}");
    assert_eq!(seen.one("x-forwarded-host").as_deref(), Some("localhost"), "{alpn:?}");
    assert_eq!(seen.one("x-plain").as_deref(), Some("p1"), "{alpn:?}");
}

/// Sends the spoofing request over HTTP/1.1 and h2, checks both were
/// forwarded without a spoof, and returns what the upstream saw of each.
async fn send_spoofs(s: &Setup, gw: &GatewayProcess) -> Vec<(Alpn, Seen)> {
    let token = s.token_a();
    let mut out = Vec::new();
    for (i, alpn) in [Alpn::Http1, Alpn::H2].into_iter().enumerate() {
        let reply = s
            .client_a(alpn)
            .send(gw.addr, spoofing_request(alpn, &token))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{alpn:?}: {:?}", reply.body);
        let seen = s.upstream.requests()[i].clone();
        assert_no_spoof_reached(s, &seen, alpn);
        out.push((alpn, seen));
    }
    out
}

#[tokio::test]
async fn underscore_spellings_of_identity_headers_never_reach_the_upstream_and_others_are_dropped_by_default() {
    let s = Setup::new().await;
    let gw = s.start(&spec(None)).await;
    for (alpn, seen) in send_spoofs(&s, &gw).await {
        assert_eq!(seen.one("x_tenant"), None, "{alpn:?}: drop is the default");
    }
}

#[tokio::test]
async fn allow_forwards_other_underscore_names_but_never_identity_spellings() {
    let s = Setup::new().await;
    let gw = s.start(&spec(Some("allow"))).await;
    for (alpn, seen) in send_spoofs(&s, &gw).await {
        assert_eq!(seen.one("x_tenant").as_deref(), Some("t1"), "{alpn:?}");
    }
    let token = s.token_a();
    // Mixed case on the wire, as a raw HTTP/1.1 client sends it.
    let raw = format!(
        "GET /raw HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         X_AUTH_SUBJECT: admin\r\nX_Tenant: t2\r\nConnection: close\r\n\r\n"
    );
    let out = s
        .client_a(Alpn::Http1)
        .raw(gw.addr, raw.as_bytes(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    let seen = s.upstream.requests().pop().unwrap();
    assert_eq!(seen.target, "/raw");
    assert_eq!(seen.one("x_auth_subject"), None);
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.one("x_tenant").as_deref(), Some("t2"));
}

#[tokio::test]
async fn reject_refuses_any_underscore_name_with_400_and_forwards_nothing() {
    let s = Setup::new().await;
    let gw = s.start(&spec(Some("reject"))).await;
    let token = s.token_a();
    for alpn in [Alpn::Http1, Alpn::H2] {
        for name in ["x_tenant", "x_auth_subject"] {
            let mut req = get(alpn, "/", Some(&token));
            req.headers_mut()
                .append(http::HeaderName::from_static(name), "v".parse().unwrap());
            let reply = s.client_a(alpn).send(gw.addr, req).await.unwrap();
            assert_eq!(reply.status, 400, "{alpn:?} {name}");
            assert_eq!(reply.json()["error"], "invalid_request", "{alpn:?} {name}");
            assert_eq!(reply.reason(), "header_name_underscore", "{alpn:?} {name}");
        }
    }
    assert_eq!(s.upstream.count(), 0, "a rejected request reached the upstream");
    let reply = s
        .client_a(Alpn::H2)
        .send(gw.addr, spoofing_request(Alpn::H2, &token))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(s.upstream.count(), 0);
    let mut plain = get(Alpn::Http1, "/", Some(&token));
    plain.headers_mut().append("x-tenant", "t1".parse().unwrap());
    let reply = s.client_a(Alpn::Http1).send(gw.addr, plain).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(s.upstream.only().one("x-tenant").as_deref(), Some("t1"));
}
