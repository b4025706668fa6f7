//! The TLS layer: who may connect, and that identity survives resumption.

use std::time::Duration;

use crate::common::*;

/// Whether an exchange on a fresh connection fails (at the handshake, or at
/// the first read: with TLS 1.3 the client learns of a refused certificate late).
async fn refused(client: &TlsClient, gw: &GatewayProcess, token: Option<&str>) -> bool {
    client.send(gw.addr, get(client.alpn(), "/", token)).await.is_err()
}

#[tokio::test]
async fn without_a_client_certificate_required_mode_fails_the_handshake() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let anonymous = s.client(None, Alpn::Http1);
    assert!(refused(&anonymous, &gw, Some(&s.token_a())).await);
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn a_client_certificate_from_an_untrusted_ca_fails_the_handshake() {
    let s = Setup::new().await;
    let rogue_ca = pki::Ca::new(s.path(), "rogue-ca");
    let rogue = rogue_ca.client(s.path(), "rogue", false);
    let gw = s.gateway().await;
    let token = s.issuer.token(&rogue.x5t());
    assert!(refused(&s.client(Some(&rogue), Alpn::Http1), &gw, Some(&token)).await);
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn a_client_certificate_through_an_intermediate_is_accepted() {
    let s = Setup::new().await;
    let intermediate = s.pki.ca.intermediate(s.path(), "intermediate");
    let leaf = intermediate.client(s.path(), "via-intermediate", true);
    let gw = s.gateway().await;
    let reply = s
        .client(Some(&leaf), Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.issuer.token(&leaf.x5t()))))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", gw.stderr());
    // The thumbprint is over the leaf only, not the chain.
    let xfcc = s.upstream.only().one("x-forwarded-client-cert").unwrap();
    assert!(xfcc.starts_with(&format!("Hash={};", leaf.sha256_hex())), "{xfcc}");
}

#[tokio::test]
async fn optional_mode_answers_401_without_a_certificate() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        server: vec!["client_auth = \"optional\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let anonymous = s.client(None, Alpn::Http1);
    let reply = anonymous.send(gw.addr, get(Alpn::Http1, "/", None)).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "token_missing");
    let reply = anonymous
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "client_cert_missing");
    assert_eq!(s.upstream.count(), 0);
    // With the certificate, the same gateway forwards.
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn any_mode_accepts_self_signed_certificates_and_relies_on_the_binding() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        server: vec!["client_auth = \"any\"".into()],
        client_ca: Some(None),
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let own = pki::self_signed_client(s.path(), "self-signed");
    let other = pki::self_signed_client(s.path(), "other-self-signed");
    let client = s.client(Some(&own), Alpn::Http1);
    let reply = client
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.issuer.token(&own.x5t()))))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", gw.stderr());
    let reply = client
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.issuer.token(&other.x5t()))))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "cnf_mismatch");
    assert_eq!(s.upstream.count(), 1);
    // Still a certificate is required.
    assert!(refused(&s.client(None, Alpn::Http1), &gw, None).await);
}

#[tokio::test]
async fn both_http1_and_h2_are_served() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let reply = s
            .client_a(alpn)
            .send(gw.addr, get(alpn, "/p", Some(&s.token_a())))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{alpn:?}");
    }
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        // h2 carries only :authority; the HTTP/1.1 upstream still gets a Host.
        assert_eq!(request.one("host").as_deref(), Some("localhost"));
        assert_eq!(request.one("x-forwarded-host").as_deref(), Some("localhost"));
        assert_eq!(request.target, "/p");
    }
}

#[tokio::test]
async fn a_resumed_session_keeps_the_binding_of_its_certificate() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token_a = s.token_a();
    for alpn in [Alpn::Http1, Alpn::H2] {
        let a = s.client_a(alpn);
        let first = a.send(gw.addr, get(alpn, "/", Some(&token_a))).await.unwrap();
        assert_eq!(first.status, 200);
        assert!(!first.resumed);
        let resumed = a.send(gw.addr, get(alpn, "/", Some(&token_a))).await.unwrap();
        assert!(resumed.resumed, "{alpn:?}: the second connection did not resume");
        assert_eq!(resumed.status, 200, "{alpn:?}");

        let b = s.client_b(alpn);
        assert_eq!(
            b.send(gw.addr, get(alpn, "/", Some(&token_a))).await.unwrap().status,
            401
        );
        let b_resumed = b.send(gw.addr, get(alpn, "/", Some(&token_a))).await.unwrap();
        assert!(b_resumed.resumed);
        assert_eq!(
            b_resumed.status, 401,
            "{alpn:?}: resumption must not change who the client is"
        );
        assert_eq!(b_resumed.reason(), "cnf_mismatch");
    }
    let hashes: Vec<String> = s
        .upstream
        .requests()
        .iter()
        .map(|r| r.one("x-forwarded-client-cert").unwrap())
        .collect();
    assert_eq!(hashes.len(), 4);
    assert!(
        hashes
            .iter()
            .all(|h| h.starts_with(&format!("Hash={};", s.pki.client_a.sha256_hex())))
    );
}

#[tokio::test]
async fn a_handshake_that_never_finishes_is_cut_off() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        limits: vec!["handshake_timeout = \"300ms\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection was not closed: {read:?}"
    );
}
