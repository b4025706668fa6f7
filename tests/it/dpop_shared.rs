//! DPoP with state shared beyond one process: replays caught across two
//! gateways on one redis-server, Redis outages (fail closed and fail open),
//! and proofs made by an independent implementation (panva's `dpop`).

use std::time::Duration;

use crate::common::dpop::{BASE, DpopKey, dpop_spec, dpop_token, jkt_of, send_dpop};
use crate::common::interop::{NodeDpopClient, RedisServer, redis_server};
use crate::common::*;

fn with_dpop(lines: &[String]) -> ConfigSpec {
    dpop_spec(r#"["dpop"]"#, lines)
}

fn on_redis(redis: &RedisServer, extra: &[&str]) -> ConfigSpec {
    let mut lines = vec![format!("replay_store = {:?}", redis.url())];
    lines.extend(extra.iter().map(|l| l.to_string()));
    with_dpop(&lines)
}

async fn send(s: &Setup, gw: &GatewayProcess, alpn: Alpn, token: &str, proof: &str) -> Reply {
    send_dpop(s, gw, alpn, ("GET", "/r"), token, &[proof]).await
}

#[tokio::test]
async fn a_proof_replayed_to_another_replica_is_caught_through_redis() {
    let redis = redis_server();
    let s = Setup::new().await;
    let spec = on_redis(&redis, &[]);
    let one = GatewayProcess::start(&s.write_config("one", &spec)).await;
    let two = GatewayProcess::start(&s.write_config("two", &spec)).await;
    let key = DpopKey::new();
    let token = dpop_token(&s, &key.jkt(), None);

    let proof = key.proof("GET", "/r", &token);
    assert_eq!(
        send(&s, &one, Alpn::Http1, &token, &proof).await.status,
        200,
        "{}",
        one.stderr()
    );
    let replayed = send(&s, &two, Alpn::H2, &token, &proof).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.reason()),
        (401, "dpop_replayed".into()),
        "{}",
        two.stderr()
    );
    // The other replica serves fresh proofs.
    let fresh = key.proof("GET", "/r", &token);
    assert_eq!(send(&s, &two, Alpn::Http1, &token, &fresh).await.status, 200);
    assert_eq!(s.upstream.count(), 2);
}

#[tokio::test]
async fn redis_down_fails_closed_then_recovers() {
    let mut redis = redis_server();
    let s = Setup::new().await;
    let gw = s.start(&on_redis(&redis, &["replay_store_timeout = \"200ms\""])).await;
    let key = DpopKey::new();
    let token = dpop_token(&s, &key.jkt(), None);
    assert_eq!(
        send(&s, &gw, Alpn::Http1, &token, &key.proof("GET", "/r", &token))
            .await
            .status,
        200
    );

    redis.stop();
    let reply = send(&s, &gw, Alpn::Http1, &token, &key.proof("GET", "/r", &token)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (503, "replay_store_unavailable".into()),
        "{}",
        gw.stderr()
    );
    assert_eq!(
        s.upstream.count(),
        1,
        "a proof that could not be recorded was forwarded"
    );
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert!(
        metric(
            &metrics,
            "bindgate_dpop_replay_store_failures_total{store=\"redis\",outcome=\"rejected\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );

    redis.start_again();
    let recovered = eventually(Duration::from_secs(15), async || {
        send(&s, &gw, Alpn::Http1, &token, &key.proof("GET", "/r", &token))
            .await
            .status
            == 200
    })
    .await;
    assert!(recovered, "never recovered after redis came back: {}", gw.stderr());
}

#[tokio::test]
async fn redis_down_with_fail_open_accepts_counts_and_warns_once_not_per_request() {
    const LOOSENING: &str = "dpop.replay_store_failure = \"open\"";
    const PER_OUTAGE: &str = "accepting proofs unrecorded";
    let mut redis = redis_server();
    let s = Setup::new().await;
    let gw = s
        .start(&on_redis(
            &redis,
            &["replay_store_timeout = \"200ms\"", "replay_store_failure = \"open\""],
        ))
        .await;
    // Said at start, naming the key, before any request needs it.
    assert!(
        eventually(Duration::from_secs(5), async || gw.log_count(LOOSENING) == 1).await,
        "{}",
        gw.stderr()
    );
    redis.stop();
    let key = DpopKey::new();
    let token = dpop_token(&s, &key.jkt(), None);
    const REQUESTS: usize = 5;
    for _ in 0..REQUESTS {
        let reply = send(&s, &gw, Alpn::Http1, &token, &key.proof("GET", "/r", &token)).await;
        assert_eq!(reply.status, 200, "{}", gw.stderr());
    }
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "bindgate_dpop_replay_store_failures_total{store=\"redis\",outcome=\"accepted\"}"
        ),
        Some(REQUESTS as f64),
        "{metrics}"
    );
    // Every request was counted; the outage was logged once, not per request.
    assert_eq!(gw.log_count(PER_OUTAGE), 1, "{}", gw.stderr());

    gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), async || gw.log_count(LOOSENING) == 2).await,
        "a reload says it again: {}",
        gw.stderr()
    );
}

#[tokio::test]
async fn proofs_from_an_independent_implementation_are_accepted() {
    let s = Setup::new().await;
    let gw = s.start(&with_dpop(&["require_nonce = true".into()])).await;
    let mut node = NodeDpopClient::start();
    let jkt = jkt_of(node.jwk());
    let token = dpop_token(&s, &jkt, None);
    let path = "/r?query=is-not-part-of-htu";
    let url = format!("{BASE}{path}");

    // First without a nonce: the server asks for one, as RFC 9449 section 9 describes.
    let proof = node.proof("GET", &url, &token, None);
    let first = send_dpop(&s, &gw, Alpn::Http1, ("GET", path), &token, &[&proof]).await;
    assert_eq!((first.status.as_u16(), first.reason()), (401, "use_dpop_nonce".into()));
    let nonce = first.header("dpop-nonce").unwrap();

    for alpn in [Alpn::Http1, Alpn::H2] {
        let proof = node.proof("GET", &url, &token, Some(&nonce));
        let reply = send_dpop(&s, &gw, alpn, ("GET", path), &token, &[&proof]).await;
        assert_eq!(reply.status, 200, "{alpn:?} {:?}: {}", reply.body, gw.stderr());
    }
    // Its proofs are held to the same rules: a POST proof does not pass for a GET.
    let post = node.proof("POST", &url, &token, Some(&nonce));
    let reply = send_dpop(&s, &gw, Alpn::Http1, ("GET", path), &token, &[&post]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "dpop_htm_mismatch".into())
    );
    assert_eq!(s.upstream.count(), 2);
    let seen = s.upstream.requests();
    assert_eq!(seen[0].headers["authorization"], format!("DPoP {token}").as_str());
    assert_eq!(seen[0].target, path);
}
