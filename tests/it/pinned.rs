//! Upstream connections pinned to client connections: one per HTTP/1.1
//! client connection, one per stream in flight (up to 16) on an h2 one,
//! handed on through the stash when a client connection parks or ends,
//! bounded by `upstream.max_pinned_connections` with the shared pool past it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::common::client::KeptConnection;
use crate::common::*;

/// Requests sent pinned, requests sent through the pool, pinned connections opened.
async fn counts(admin: SocketAddr) -> (f64, f64, f64) {
    let (_, text) = admin_get(admin, "/metrics").await;
    let read = |name| metric(&text, name).unwrap_or(-1.0);
    (
        read("bindgate_upstream_requests_pinned_total"),
        read("bindgate_upstream_requests_pooled_total"),
        read("bindgate_upstream_pinned_connections_opened_total"),
    )
}

fn peers(s: &Setup) -> Vec<SocketAddr> {
    s.upstream.requests().into_iter().map(|r| r.peer).collect()
}

fn distinct(peers: &[SocketAddr]) -> usize {
    peers.iter().collect::<HashSet<_>>().len()
}

/// Sends GET `path` on `client`; its status.
async fn status(client: &mut KeptConnection, path: &str, token: &str) -> u16 {
    client
        .send(get(Alpn::Http1, path, Some(token)))
        .await
        .unwrap()
        .status
        .as_u16()
}

/// Two keep-alive client connections, each with a slow request in flight
/// at the same time as the other's.
async fn two_at_once(s: &Setup, gw: &GatewayProcess, token: &str) -> (KeptConnection, KeptConnection) {
    let mut a = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    let mut b = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    let both = tokio::join!(status(&mut a, "/slow/300", token), status(&mut b, "/slow/300", token));
    assert_eq!(both, (200, 200));
    (a, b)
}

async fn gateway_with(s: &Setup, upstream: &[&str]) -> GatewayProcess {
    s.start(&ConfigSpec {
        upstream: upstream.iter().map(|line| line.to_string()).collect(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_keep_alive_client_connection_sends_all_its_requests_on_one_pinned_connection() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let mut client = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    for i in 0..5 {
        let body = format!("request {i}");
        let reply = client
            .send(request(
                Alpn::Http1,
                "POST",
                "/echo",
                Some(&token),
                Bytes::from(body.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body.as_bytes());
    }
    // A streamed response: its second chunk comes only while the client's
    // task drives the pinned connection between the two.
    let reply = client
        .send(get(Alpn::Http1, "/stream/200", Some(&token)))
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), &reply.body[..]), (200, &b"first-second"[..]));
    assert_eq!(counts(gw.admin.unwrap()).await, (6.0, 0.0, 1.0));
    assert_eq!(distinct(&peers(&s)), 1, "{:?}", peers(&s));
}

#[tokio::test]
async fn client_connections_in_flight_at_once_each_have_their_own_upstream_connection() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let (mut a, mut b) = two_at_once(&s, &gw, &token).await;
    assert_eq!(distinct(&peers(&s)), 2, "{:?}", peers(&s));
    // Later requests reuse those two, whether still pinned or from the stash.
    for client in [&mut a, &mut b] {
        assert_eq!(status(client, "/", &token).await, 200);
    }
    assert_eq!(counts(gw.admin.unwrap()).await, (4.0, 0.0, 2.0));
    assert_eq!(distinct(&peers(&s)), 2, "{:?}", peers(&s));
}

#[tokio::test]
async fn an_upstream_that_closes_its_connection_gets_a_new_one_on_the_next_request() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let mut client = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    let mut closing = get(Alpn::Http1, "/first", Some(&token));
    closing
        .headers_mut()
        .insert("x-reply-header", http::HeaderValue::from_static("Connection: close"));
    let reply = client.send(closing).await.unwrap();
    assert_eq!(reply.status, 200);
    // Hop-by-hop: the upstream's close is not the client's.
    assert_eq!(reply.header("connection"), None);
    for path in ["/second", "/third"] {
        assert_eq!(status(&mut client, path, &token).await, 200);
    }
    let seen = peers(&s);
    assert_eq!(seen.len(), 3);
    assert_ne!(seen[0], seen[1], "the closed connection was used again");
    assert_eq!(seen[1], seen[2]);
    let (pinned, pooled, opened) = counts(gw.admin.unwrap()).await;
    assert_eq!((pinned + pooled, opened), (3.0, 2.0));
}

#[tokio::test]
async fn past_the_cap_requests_take_the_shared_pool() {
    let s = Setup::new().await;
    let gw = gateway_with(&s, &["max_pinned_connections = 1"]).await;
    let token = s.token_a();
    let _kept = two_at_once(&s, &gw, &token).await;
    assert_eq!(counts(gw.admin.unwrap()).await, (1.0, 1.0, 1.0));
    assert_eq!(distinct(&peers(&s)), 2, "{:?}", peers(&s));
}

#[tokio::test]
async fn with_pinning_off_every_request_takes_the_pool() {
    let s = Setup::new().await;
    let gw = gateway_with(&s, &["max_pinned_connections = 0"]).await;
    let token = s.token_a();
    let mut client = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    for _ in 0..3 {
        assert_eq!(status(&mut client, "/", &token).await, 200);
    }
    let mut h2 = s.client_a(Alpn::H2).keep(gw.addr).await.unwrap();
    for reply in h2.send_at_once(vec![get(Alpn::H2, "/slow/200", Some(&token)); 3]).await {
        assert_eq!(reply.unwrap().status, 200);
    }
    assert_eq!(counts(gw.admin.unwrap()).await, (0.0, 6.0, 0.0));
}

#[tokio::test]
async fn an_h2_connection_pins_one_upstream_connection_per_stream_in_flight_up_to_its_bound() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let admin = gw.admin.unwrap();
    let token = s.token_a();
    let mut client = s.client_a(Alpn::H2).keep(gw.addr).await.unwrap();
    for reply in client
        .send_at_once(vec![get(Alpn::H2, "/slow/300", Some(&token)); 3])
        .await
    {
        assert_eq!(reply.unwrap().status, 200);
    }
    assert_eq!(counts(admin).await, (3.0, 0.0, 3.0));
    assert_eq!(distinct(&peers(&s)), 3, "{:?}", peers(&s));

    // One after another, the streams reuse what the connection pinned.
    for _ in 0..3 {
        assert_eq!(client.send(get(Alpn::H2, "/", Some(&token))).await.unwrap().status, 200);
    }
    assert_eq!(counts(admin).await, (6.0, 0.0, 3.0));
    assert_eq!(distinct(&peers(&s)), 3, "{:?}", peers(&s));

    // Past 16 streams in flight, the rest take the pool.
    for reply in client
        .send_at_once(vec![get(Alpn::H2, "/slow/300", Some(&token)); 18])
        .await
    {
        assert_eq!(reply.unwrap().status, 200);
    }
    assert_eq!(counts(admin).await, (22.0, 2.0, 16.0));
}

#[tokio::test]
async fn a_client_connection_that_ends_or_parks_hands_its_upstream_connection_on() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let admin = gw.admin.unwrap();
    let token = s.token_a();
    let mut first = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    assert_eq!(status(&mut first, "/first", &token).await, 200);
    drop(first);
    let closed = eventually(Duration::from_secs(5), async || {
        metric(&admin_get(admin, "/metrics").await.1, "bindgate_connections_open") == Some(0.0)
    });
    assert!(closed.await, "the first client connection did not end");

    let mut second = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    assert_eq!(status(&mut second, "/second", &token).await, 200);
    // Parked, the second client connection gives it back; waking, it takes it again.
    let parked = eventually(Duration::from_secs(5), async || {
        metric(&admin_get(admin, "/metrics").await.1, "bindgate_connections_parked") == Some(1.0)
    });
    assert!(parked.await, "the second client connection did not park");
    assert_eq!(status(&mut second, "/third", &token).await, 200);

    assert_eq!(counts(admin).await, (3.0, 0.0, 1.0));
    assert_eq!(distinct(&peers(&s)), 1, "{:?}", peers(&s));
}
