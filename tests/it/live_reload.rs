//! A reload reaches connections that are already open: every request is
//! judged by the configuration current when it arrives, not by the one its
//! connection was accepted under.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps sending requests on connections opened once, until stopped.
struct KeptLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl KeptLoad {
    async fn start(clients: &[TlsClient], addr: std::net::SocketAddr, token: &str) -> KeptLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for client in clients {
            let mut conn = client.keep(addr).await.unwrap();
            let (alpn, token, stop, ok) = (client.alpn(), token.to_string(), stop.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                // Bounded: at most 20000 requests per connection.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match conn.send(get(alpn, "/load", Some(&token))).await {
                        Ok(reply) if reply.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(reply) => errors.push(format!("{alpn:?}: status {}: {:?}", reply.status, reply.body)),
                        Err(e) => {
                            errors.push(format!("{alpn:?}: {e}"));
                            break;
                        }
                    }
                }
                errors
            }));
        }
        KeptLoad { stop, ok, tasks }
    }

    /// Waits (bounded) until `n` more requests succeeded.
    async fn progressed(&self, n: usize) -> bool {
        let target = self.ok.load(Ordering::Relaxed) + n;
        eventually(Duration::from_secs(20), async || {
            self.ok.load(Ordering::Relaxed) >= target
        })
        .await
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.unwrap());
        }
        (self.ok.load(Ordering::Relaxed), errors)
    }
}

/// Waits (bounded) for the gateway to log one more successful reload than `before`.
async fn reloaded(gw: &GatewayProcess, before: usize) -> bool {
    eventually(RELOAD_TIMEOUT, async || gw.log_count("configuration reloaded") > before).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_change_reaches_open_h1_and_h2_connections_under_load() {
    let s = Setup::new().await;
    let removed = TestIssuer::new("k2");
    let added = TestIssuer::new("k3");
    write_atomically(&s.jwks, TestIssuer::jwks(&[&s.issuer, &removed]).as_bytes());
    let gw = s.gateway().await;
    let x5t = s.pki.client_a.x5t();
    let (token_kept, token_removed, token_added) = (s.token_a(), removed.token(&x5t), added.token(&x5t));

    let clients = [s.client_a(Alpn::Http1), s.client_a(Alpn::H2)];
    let mut probes = Vec::new();
    for client in &clients {
        let mut probe = client.keep(gw.addr).await.unwrap();
        let reply = probe
            .send(get(client.alpn(), "/probe", Some(&token_removed)))
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            200,
            "{:?}: key k2 not accepted before the change",
            client.alpn()
        );
        probes.push((client.alpn(), probe));
    }
    let load = KeptLoad::start(
        &[clients[0].clone(), clients[0].clone(), clients[1].clone()],
        gw.addr,
        &token_kept,
    )
    .await;
    assert!(load.progressed(50).await, "no load before the reload: {}", gw.stderr());

    // Add k3, remove k2 (say it was compromised).
    let before = gw.log_count("configuration reloaded");
    write_atomically(&s.jwks, TestIssuer::jwks(&[&s.issuer, &added]).as_bytes());
    assert!(reloaded(&gw, before).await, "{}", gw.stderr());
    assert!(load.progressed(50).await, "no load after the reload: {}", gw.stderr());

    let forwarded_before = s.upstream.requests().iter().filter(|r| r.target == "/probe").count();
    for (alpn, probe) in &mut probes {
        let reply = probe.send(get(*alpn, "/probe", Some(&token_removed))).await.unwrap();
        assert_eq!(
            reply.status, 401,
            "{alpn:?}: the removed key still verifies on an open connection"
        );
        assert_eq!(reply.reason(), "unknown_kid", "{alpn:?}");
        let reply = probe.send(get(*alpn, "/probe", Some(&token_added))).await.unwrap();
        assert_eq!(
            reply.status, 200,
            "{alpn:?}: the added key is unknown on an open connection"
        );
    }
    let forwarded: Vec<_> = s
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.target == "/probe")
        .collect();
    // Only the two requests with the added key went upstream.
    assert_eq!(forwarded.len(), forwarded_before + 2);

    let (ok, errors) = load.finish().await;
    assert!(
        errors.is_empty(),
        "{} failed requests of the current key (of {}): {:?}",
        errors.len(),
        ok + errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(ok >= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_starts_requiring_a_scope_refuses_on_open_connections() {
    let s = Setup::new().await;
    let route = |scopes: &str| format!("[[route]]\nprefix = \"/admin\"\nrequired_scopes = [{scopes}]\n");
    let spec = |scopes: &str| ConfigSpec {
        tail: vec![route(scopes)],
        ..Default::default()
    };
    let config = s.write_config("gateway", &spec(""));
    let gw = GatewayProcess::start(&config).await;
    let token = s.token_a();
    let clients = [s.client_a(Alpn::Http1), s.client_a(Alpn::H2)];
    let mut probes = Vec::new();
    for client in &clients {
        let mut probe = client.keep(gw.addr).await.unwrap();
        assert_eq!(
            probe
                .send(get(client.alpn(), "/admin/x", Some(&token)))
                .await
                .unwrap()
                .status,
            200
        );
        probes.push((client.alpn(), probe));
    }
    let load = KeptLoad::start(&clients, gw.addr, &token).await;
    assert!(load.progressed(50).await, "{}", gw.stderr());

    let before = gw.log_count("configuration reloaded");
    write_atomically(&config, s.render(&spec("\"admin\"")).as_bytes());
    assert!(reloaded(&gw, before).await, "{}", gw.stderr());

    let admin_seen = || s.upstream.requests().iter().filter(|r| r.target == "/admin/x").count();
    assert_eq!(admin_seen(), 2);
    for (alpn, probe) in &mut probes {
        let reply = probe.send(get(*alpn, "/admin/x", Some(&token))).await.unwrap();
        assert_eq!(
            reply.status, 403,
            "{alpn:?}: the old route still serves an open connection"
        );
        assert_eq!(reply.reason(), "insufficient_scope");
        assert!(
            reply.challenge().unwrap().contains("scope=\"admin\""),
            "{:?}",
            reply.challenge()
        );
    }
    assert_eq!(admin_seen(), 2, "a refused request reached the upstream");
    assert!(load.progressed(50).await, "{}", gw.stderr());
    let (_, errors) = load.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_revoked_by_a_crl_reload_is_refused_on_its_open_connection_and_it_is_closed() {
    let s = Setup::new().await;
    let crl = s.pki.ca.crl(s.path(), "ca", &[]);
    let spec = ConfigSpec {
        server: vec![format!("crl = [{:?}]", crl.display().to_string())],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let token_a = s.token_a();
    let token_b = s.issuer.token(&s.pki.client_b.x5t());
    let mut a1 = s.client_a(Alpn::Http1).keep(gw.addr).await.unwrap();
    let mut a2 = s.client_a(Alpn::H2).keep(gw.addr).await.unwrap();
    let mut b1 = s.client_b(Alpn::Http1).keep(gw.addr).await.unwrap();
    assert_eq!(
        a1.send(get(Alpn::Http1, "/a", Some(&token_a))).await.unwrap().status,
        200
    );
    assert_eq!(a2.send(get(Alpn::H2, "/a", Some(&token_a))).await.unwrap().status, 200);
    assert_eq!(
        b1.send(get(Alpn::Http1, "/b", Some(&token_b))).await.unwrap().status,
        200
    );

    let before = gw.log_count("configuration reloaded");
    let revoked = s.path().join("revoking");
    std::fs::create_dir(&revoked).unwrap();
    let next = s
        .pki
        .ca
        .crl(&revoked, "ca", &[pki::serial_of(&s.pki.client_a.leaf_der)]);
    std::fs::rename(next, &crl).unwrap();
    gw.signal("HUP");
    assert!(reloaded(&gw, before).await, "{}", gw.stderr());

    let upstream_before = s.upstream.count();
    let reply = a1.send(get(Alpn::Http1, "/a", Some(&token_a))).await.unwrap();
    assert_eq!(reply.status, 401, "HTTP/1.1: a revoked certificate still served");
    assert_eq!(reply.reason(), "client_cert_revoked");
    assert!(
        reply.challenge().unwrap().contains("error=\"invalid_token\""),
        "{:?}",
        reply.challenge()
    );
    assert_eq!(reply.header("connection").as_deref(), Some("close"));
    assert!(
        a1.closed_within(Duration::from_secs(5)).await,
        "the revoked client's connection stays open"
    );

    // Even a route without authentication: the certificate itself is refused.
    let reply = a2.send(get(Alpn::H2, "/a", None)).await.unwrap();
    assert_eq!(reply.status, 401, "h2: a revoked certificate still served");
    assert_eq!(reply.reason(), "client_cert_revoked");
    // h2 has no `Connection: close`: the gateway ends the connection with GOAWAY.
    assert!(
        a2.closed_within(Duration::from_secs(5)).await,
        "the revoked client's h2 connection stays open"
    );
    assert_eq!(
        s.upstream.count(),
        upstream_before,
        "a revoked client's request reached the upstream"
    );

    let reply = b1.send(get(Alpn::Http1, "/b", Some(&token_b))).await.unwrap();
    assert_eq!(reply.status, 200, "a client that is not revoked lost its connection");
    assert_eq!(s.upstream.count(), upstream_before + 1);
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let refused = metric(
        &metrics,
        "bindgate_requests_total{route=\"-\",status=\"401\",reason=\"client_cert_revoked\",cert_source=\"tls\"}",
    );
    assert_eq!(refused, Some(2.0), "{metrics}");
}
