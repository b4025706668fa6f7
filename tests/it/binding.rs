//! The core promise: a token is forwarded only from the certificate it is bound to.

use crate::common::*;

#[tokio::test]
async fn bound_token_is_forwarded_with_identity_headers() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/orders?id=7", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", gw.stderr());
    let seen = s.upstream.only();
    assert_eq!(seen.target, "/orders?id=7");
    let xfcc = seen.one("x-forwarded-client-cert").unwrap();
    assert!(
        xfcc.starts_with(&format!("Hash={};", s.pki.client_a.sha256_hex())),
        "{xfcc}"
    );
    assert!(xfcc.contains("Subject=\"CN=client-a,O=bindgate tests\""), "{xfcc}");
    assert!(xfcc.contains("URI=spiffe://test/client-a"), "{xfcc}");
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("host").as_deref(), Some("localhost"));
}

#[tokio::test]
async fn token_replayed_from_another_certificate_is_rejected_and_not_forwarded() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let reply = s
        .client_b(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "cnf_mismatch");
    let challenge = reply.challenge().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"bindgate\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(s.upstream.count(), 0);
}
