//! A token of the embedded authorization server at the gateway: forwarded
//! from the holder of the key it is bound to, refused from anyone else, and
//! then the upstream receives nothing.

use super::*;
use crate::common::dpop::{DpopKey, dpop_request};

#[tokio::test]
async fn a_certificate_bound_token_passes_the_gateway_with_its_certificate_only() {
    let w = world(Options::default()).await;
    let client_a = &w.s.pki.client_a;
    let issued = w
        .post(
            Alpn::Http1,
            Some(client_a),
            &certificate_form("svc-tls", &[("resource", API)]),
            &[],
        )
        .await
        .issued("Bearer", "mtls");
    let token = &issued.access_token;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let reply =
            w.s.client_a(alpn)
                .send(w.gw.addr, get(alpn, "/orders/7", Some(token)))
                .await
                .unwrap();
        assert_eq!(reply.status, 200, "{alpn:?}: {:?}\n{}", reply.body, w.gw.stderr());
    }
    let seen = w.s.upstream.requests();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].target, "/orders/7");
    assert_eq!(seen[0].one("authorization"), Some(format!("Bearer {token}")));
    assert_eq!(seen[0].one("x-auth-subject").as_deref(), Some("svc-tls"));

    // The same token from client B's connection: refused, and not forwarded.
    for alpn in [Alpn::Http1, Alpn::H2] {
        let reply =
            w.s.client_b(alpn)
                .send(w.gw.addr, get(alpn, "/orders/7", Some(token)))
                .await
                .unwrap();
        assert_eq!(reply.status, 401, "{alpn:?}: {:?}", reply.body);
        assert_eq!(reply.reason(), "cnf_mismatch");
    }
    assert_eq!(w.s.upstream.count(), 2, "a refused request reached the upstream");
}

#[tokio::test]
async fn a_dpop_bound_token_passes_the_gateway_with_proofs_of_its_key_only() {
    let w = world(Options::default()).await;
    let key = DpopKey::new();
    let issued = w
        .post(
            Alpn::H2,
            None,
            &w.jwt_form(&[("resource", API), ("scope", "orders:read")]),
            &[&token_proof(&key, None)],
        )
        .await
        .issued("DPoP", "dpop");
    let token = &issued.access_token;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let proof = key.proof("GET", "/orders/7", token);
        let reply =
            w.s.client_a(alpn)
                .send(w.gw.addr, dpop_request(alpn, "GET", "/orders/7", token, &[&proof]))
                .await
                .unwrap();
        assert_eq!(reply.status, 200, "{alpn:?}: {:?}\n{}", reply.body, w.gw.stderr());
    }
    let seen = w.s.upstream.requests();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].one("x-auth-subject").as_deref(), Some("svc-jwt"));

    // Another key's proof; the proof the token was requested with; no proof at all.
    let another = DpopKey::new();
    let refusals = [
        (another.proof("GET", "/orders/7", token), "jkt_mismatch"),
        (token_proof(&key, None), "dpop_htm_mismatch"),
    ];
    for (proof, reason) in &refusals {
        let reply =
            w.s.client_a(Alpn::Http1)
                .send(
                    w.gw.addr,
                    dpop_request(Alpn::Http1, "GET", "/orders/7", token, &[proof]),
                )
                .await
                .unwrap();
        assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
        assert_eq!(reply.reason(), *reason);
    }
    let as_bearer =
        w.s.client_a(Alpn::Http1)
            .send(w.gw.addr, get(Alpn::Http1, "/orders/7", Some(token)))
            .await
            .unwrap();
    assert_eq!(as_bearer.status, 401, "{:?}", as_bearer.body);
    assert_eq!(as_bearer.reason(), "dpop_token_with_bearer");
    assert_eq!(w.s.upstream.count(), 2, "a refused request reached the upstream");
}
