//! What crosses the gateway: bodies byte for byte, headers rewritten so the
//! upstream can trust them, malformed framing refused, upstream failures
//! reported.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::upstream::pattern;
use crate::common::*;

const BIG: usize = 20 * 1024 * 1024;

#[tokio::test]
async fn twenty_mib_bodies_round_trip_byte_exact_over_http1_and_h2() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let upload = pattern(BIG);
    let upload_sha: [u8; 32] = Sha256::digest(&upload).into();
    for alpn in [Alpn::Http1, Alpn::H2] {
        let client = s.client_a(alpn);
        // Request body: the upstream echoes it.
        let reply = client
            .send(gw.addr, request(alpn, "POST", "/echo", Some(&token), upload.clone()))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{alpn:?}");
        assert_eq!(reply.body.len(), BIG);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&reply.body)), upload_sha, "{alpn:?}");
        // Response body generated upstream.
        let reply = client
            .send(gw.addr, get(alpn, &format!("/big/{BIG}"), Some(&token)))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), BIG);
        assert!(reply.body == pattern(BIG), "{alpn:?}: response body differs");
    }
    let uploads: Vec<Seen> = s
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(uploads.len(), 2);
    for seen in uploads {
        assert_eq!(seen.body_len, BIG);
        assert_eq!(seen.body_sha256, upload_sha);
    }
}

#[tokio::test]
async fn spoofed_identity_headers_are_replaced_not_passed_through() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let mut req = get(Alpn::Http1, "/", Some(&s.token_a()));
    for (name, value) in [
        ("x-forwarded-client-cert", "Hash=0000;Subject=\"CN=admin\""),
        ("x-auth-subject", "root"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "http"),
        ("forwarded", "for=203.0.113.9"),
    ] {
        req.headers_mut().append(name, value.parse().unwrap());
    }
    let reply = s.client_a(Alpn::Http1).send(gw.addr, req).await.unwrap();
    assert_eq!(reply.status, 200);
    let seen = s.upstream.only();
    let xfcc = seen.one("x-forwarded-client-cert").unwrap();
    assert!(
        xfcc.starts_with(&format!("Hash={};", s.pki.client_a.sha256_hex())),
        "{xfcc}"
    );
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("forwarded"), None);
}

#[tokio::test]
async fn hop_by_hop_headers_and_those_named_in_connection_are_not_forwarded() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let mut req = get(Alpn::Http1, "/", Some(&token));
    for (name, value) in [
        ("connection", "x-hop-secret"),
        ("x-hop-secret", "do-not-forward"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("x-end-to-end", "kept"),
    ] {
        req.headers_mut().append(name, value.parse().unwrap());
    }
    let reply = s.client_a(Alpn::Http1).send(gw.addr, req).await.unwrap();
    assert_eq!(reply.status, 200);
    // The upstream's own hop-by-hop headers do not come back either.
    assert_eq!(reply.header("x-upstream-connection").as_deref(), Some("keep-alive"));
    let seen = s.upstream.only();
    for name in ["x-hop-secret", "keep-alive", "proxy-authorization"] {
        assert_eq!(seen.one(name), None, "{name} was forwarded");
    }
    assert_eq!(seen.one("x-end-to-end").as_deref(), Some("kept"));
    // Authorization is forwarded by default.
    assert_eq!(seen.one("authorization"), Some(format!("Bearer {token}")));
}

#[tokio::test]
async fn authorization_is_stripped_when_configured() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        tail: vec![
            "[forward]\nstrip_authorization = true\nclaim_headers = { \"x-user\" = \"sub\", \"x-scope\" = \"scope\" }"
                .into(),
        ],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let mut req = get(Alpn::Http1, "/", Some(&s.token_a()));
    req.headers_mut().insert("x-user", "mallory".parse().unwrap());
    let reply = s.client_a(Alpn::Http1).send(gw.addr, req).await.unwrap();
    assert_eq!(reply.status, 200);
    let seen = s.upstream.only();
    assert_eq!(seen.one("authorization"), None);
    assert_eq!(seen.one("x-user").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-scope").as_deref(), Some("read write"));
    assert_eq!(
        seen.one("x-auth-subject"),
        None,
        "the default claim header was replaced"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let s = Setup::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let spec = ConfigSpec {
        upstream_url: Some(closed_url),
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(reply.reason(), "upstream_unavailable");
    assert_eq!(reply.header("content-type").as_deref(), Some("application/json"));
    drop(gw);

    let spec = ConfigSpec {
        upstream: vec!["request_timeout = \"300ms\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/slow/3000", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 504);
    assert_eq!(reply.reason(), "upstream_timeout");
}

/// Sends raw HTTP/1.1 bytes from client A and returns the first response line.
async fn raw_status(s: &Setup, gw: &GatewayProcess, bytes: String) -> String {
    let out = s
        .client_a(Alpn::Http1)
        .raw(gw.addr, bytes.as_bytes(), Duration::from_millis(500))
        .await
        .unwrap();
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn ambiguous_framing_and_bad_host_headers_are_400_and_never_forwarded() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let auth = format!("Authorization: Bearer {}\r\n", s.token_a());
    let cases = [
        format!("POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        format!("POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        format!("GET / HTTP/1.1\r\n{auth}\r\n"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n{auth}\r\n"),
    ];
    for (i, bytes) in cases.into_iter().enumerate() {
        let status = raw_status(&s, &gw, bytes).await;
        assert!(status.starts_with("HTTP/1.1 400"), "case {i}: {status:?}");
    }
    assert_eq!(s.upstream.count(), 0, "{:#?}", s.upstream.requests());
    // A well-framed request on the same gateway still goes through.
    let ok = raw_status(
        &s,
        &gw,
        format!("POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 3\r\nConnection: close\r\n\r\nabc"),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(s.upstream.only().body_len, 3);
}

#[tokio::test]
async fn dot_segments_and_encoded_slashes_are_refused() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let auth = format!("Authorization: Bearer {}\r\n", s.token_a());
    for path in ["/a/../admin", "/a/%2e%2e/admin", "/a%2fadmin"] {
        let status = raw_status(
            &s,
            &gw,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
        .await;
        assert!(status.starts_with("HTTP/1.1 400"), "{path}: {status}");
    }
    assert_eq!(s.upstream.count(), 0);
    let status = raw_status(
        &s,
        &gw,
        format!("GET //a//b HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(s.upstream.only().target, "/a/b");
}

#[tokio::test]
async fn the_access_log_counts_bytes_and_never_contains_a_token() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let reply = s
        .client_a(Alpn::Http1)
        .send(
            gw.addr,
            request(Alpn::Http1, "POST", "/echo?q=1", Some(&token), vec![7u8; 1000]),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let stolen = s.issuer.token(&s.pki.client_b.x5t());
    let reply = s
        .client_a(Alpn::Http1)
        .send(
            gw.addr,
            get(Alpn::Http1, &format!("/x?access_token={stolen}"), Some(&stolen)),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        gw.wait_for_log("bytes_in=1000 bytes_out=1000 completed=true", Duration::from_secs(5))
            .await,
        "{}",
        gw.stderr()
    );
    let log = gw.stderr();
    assert!(log.contains("path=/echo "), "{log}");
    for secret in [&token, &stolen] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token leaked into the log:\n{log}");
    }
}
