//! Running for months: reloads under load, revocation, slow clients,
//! draining on SIGTERM, health and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Keeps `workers` clients sending requests (a new connection every few
/// requests) until stopped; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(client: &TlsClient, addr: std::net::SocketAddr, token: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (client, token) = (client.clone(), token.to_string());
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut errors = Vec::new();
                    // Bounded: at most 5000 requests per worker.
                    for _ in 0..5000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match client.send(addr, get(client.alpn(), "/load", Some(&token))).await {
                            Ok(reply) if reply.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(reply) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("status {}: {:?}", reply.status, reply.body));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(e);
                            }
                        }
                    }
                    errors
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.unwrap());
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_rotation_by_symlink_swap_and_rewrite_drops_no_request() {
    let s = Setup::new().await;
    // Kubernetes-style layout: live/server.pem -> ..data/server.pem, ..data -> gen1.
    let live = s.path().join("live");
    let gens: Vec<CertFiles> = (1..=3)
        .map(|g| {
            let dir = s.path().join(format!("gen{g}"));
            std::fs::create_dir_all(&dir).unwrap();
            s.pki.ca.server(&dir, "server")
        })
        .collect();
    std::fs::create_dir_all(&live).unwrap();
    std::os::unix::fs::symlink(s.path().join("gen1"), live.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/server.pem", live.join("server.pem")).unwrap();
    std::os::unix::fs::symlink("..data/server-key.pem", live.join("server-key.pem")).unwrap();
    let text = s
        .render(&ConfigSpec::default())
        .replace(
            s.pki.server.cert.to_str().unwrap(),
            live.join("server.pem").to_str().unwrap(),
        )
        .replace(
            s.pki.server.key.to_str().unwrap(),
            live.join("server-key.pem").to_str().unwrap(),
        );
    let config = s.path().join("rotating.toml");
    std::fs::write(&config, text).unwrap();
    let gw = GatewayProcess::start(&config).await;

    let client = s.client_a(Alpn::Http1);
    assert_eq!(client.server_leaf(gw.addr).await.unwrap(), gens[0].leaf_der);
    let load = Load::start(&client, gw.addr, &s.token_a(), 4);

    // 1. Symlink swap, as the kubelet does it.
    let swap = live.join("..data_new");
    std::os::unix::fs::symlink(s.path().join("gen2"), &swap).unwrap();
    std::fs::rename(&swap, live.join("..data")).unwrap();
    let probe = s.client_a(Alpn::Http1);
    let addr = gw.addr;
    let served = async |der: &Vec<u8>| {
        eventually(Duration::from_secs(10), async || {
            probe.server_leaf(addr).await.ok().as_ref() == Some(der)
        })
        .await
    };
    assert!(
        served(&gens[1].leaf_der).await,
        "symlink swap not picked up: {}",
        gw.stderr()
    );

    // 2. In-place rewrite of the files the link points at (cert-manager style).
    let gen2 = s.path().join("gen2");
    std::fs::write(gen2.join("server.pem"), std::fs::read(&gens[2].cert).unwrap()).unwrap();
    std::fs::write(gen2.join("server-key.pem"), std::fs::read(&gens[2].key).unwrap()).unwrap();
    assert!(
        served(&gens[2].leaf_der).await,
        "rewrite not picked up: {}",
        gw.stderr()
    );

    // Keep the load going on the last certificate for a while before stopping.
    let ok_now = load.ok.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(10), async || load.ok.load(Ordering::Relaxed)
            >= ok_now + 20)
        .await
    );
    let (ok, failed, errors) = load.finish().await;
    eprintln!("server certificate rotation: {ok} requests succeeded, {failed} failed");
    assert_eq!(failed, 0, "failed requests during rotation: {errors:?}");
    assert!(ok > 20, "too little load to mean anything: {ok}");
    assert!(gw.log_count("configuration reloaded") >= 2, "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_rotation_under_load_and_no_resumption_across_reloads() {
    let s = Setup::new().await;
    let new_ca = pki::Ca::new(s.path(), "new-ca");
    let new_client = new_ca.client(s.path(), "new-client", false);
    let bundle = s.path().join("client-cas.pem");
    std::fs::write(&bundle, &s.pki.ca.cert_pem).unwrap();
    let spec = ConfigSpec {
        client_ca: Some(Some(bundle.clone())),
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let old_client = s.client_a(Alpn::Http1);
    let load = Load::start(&old_client, gw.addr, &s.token_a(), 4);

    // Add the new CA: old clients keep working, new ones start to.
    write_atomically(&bundle, format!("{}{}", s.pki.ca.cert_pem, new_ca.cert_pem).as_bytes());
    let newcomer = s.client(Some(&new_client), Alpn::Http1);
    let token_new = s.issuer.token(&new_client.x5t());
    let addr = gw.addr;
    let accepted = eventually(
        Duration::from_secs(10),
        async || matches!(newcomer.send(addr, get(Alpn::Http1, "/", Some(&token_new))).await, Ok(r) if r.status == 200),
    )
    .await;
    assert!(accepted, "new CA not trusted after reload: {}", gw.stderr());
    let (ok, failed, errors) = load.finish().await;
    eprintln!("client CA rotation: {ok} requests succeeded, {failed} failed");
    assert_eq!(failed, 0, "valid clients failed during the CA rotation: {errors:?}");
    assert!(ok > 10);

    // Remove the old CA: a client whose session predates the reload must not resume into it.
    let veteran = s.client_a(Alpn::Http1);
    let first = veteran
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let reloads_before = gw.log_count("configuration reloaded");
    write_atomically(&bundle, new_ca.cert_pem.as_bytes());
    assert!(
        gw.wait_for_log_count("configuration reloaded", reloads_before + 1, Duration::from_secs(10))
            .await
    );
    let again = veteran.send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a()))).await;
    assert!(
        again.is_err(),
        "old-CA client got through after its CA was removed: {again:?}"
    );
    let upstream_before = s.upstream.count();
    assert_eq!(
        newcomer
            .send(gw.addr, get(Alpn::Http1, "/", Some(&token_new)))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(s.upstream.count(), upstream_before + 1);
}

#[tokio::test]
async fn a_broken_file_is_rejected_and_the_running_configuration_stays() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    std::fs::write(&s.jwks, "{ not json").unwrap();
    assert!(
        gw.wait_for_log("reload failed", Duration::from_secs(10)).await,
        "{}",
        gw.stderr()
    );
    assert!(gw.stderr().contains("token.jwks"), "{}", gw.stderr());
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "the old keys should still be in use");
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "bindgate_reloads_total{trigger=\"file_change\",result=\"error\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn sighup_reloads_the_configuration() {
    let s = Setup::new().await;
    let mut spec = ConfigSpec::default();
    // Two gateways polling every 100 ms; only the control one watches files.
    let unwatched = |text: String| {
        text.replace(
            "poll_interval = \"100ms\"",
            "watch_files = false\npoll_interval = \"100ms\"",
        )
    };
    let config = s.path().join("hup.toml");
    std::fs::write(&config, unwatched(s.render(&spec))).unwrap();
    let control_config = s.write_config("control", &spec);
    let gw = GatewayProcess::start(&config).await;
    let control = GatewayProcess::start(&control_config).await;
    let anonymous = async |gw: &GatewayProcess| {
        s.client_a(Alpn::Http1)
            .send(gw.addr, get(Alpn::Http1, "/open/x", None))
            .await
            .unwrap()
            .status
    };
    assert_eq!(anonymous(&gw).await, 401);
    spec.tail
        .push("[[route]]\nprefix = \"/open\"\nauth = \"none\"\n".into());
    std::fs::write(&config, unwatched(s.render(&spec))).unwrap();
    std::fs::write(&control_config, s.render(&spec)).unwrap();
    // Once the watching one has picked the change up, the other would have too.
    assert!(
        control
            .wait_for_log("configuration reloaded", Duration::from_secs(10))
            .await,
        "{}",
        control.stderr()
    );
    assert_eq!(anonymous(&control).await, 200);
    assert_eq!(anonymous(&gw).await, 401, "reloaded without a signal");
    gw.signal("HUP");
    assert!(
        gw.wait_for_log("configuration reloaded", Duration::from_secs(10)).await,
        "{}",
        gw.stderr()
    );
    assert_eq!(anonymous(&gw).await, 200);
}

#[tokio::test]
async fn a_revoked_client_certificate_fails_the_handshake_even_when_resuming() {
    let s = Setup::new().await;
    let crl = s
        .pki
        .ca
        .crl(s.path(), "ca", &[pki::serial_of(&s.pki.client_b.leaf_der)]);
    let spec = ConfigSpec {
        server: vec![format!("crl = [{:?}]", crl.display().to_string())],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let b = s.client_b(Alpn::Http1);
    let token_b = s.issuer.token(&s.pki.client_b.x5t());
    assert!(b.send(gw.addr, get(Alpn::Http1, "/", Some(&token_b))).await.is_err());
    let a = s.client_a(Alpn::Http1);
    assert_eq!(
        a.send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
            .await
            .unwrap()
            .status,
        200
    );

    // Revoke A too by updating the CRL: its cached session must not bring it back.
    let reloads_before = gw.log_count("configuration reloaded");
    s.pki.ca.crl(
        s.path(),
        "ca",
        &[
            pki::serial_of(&s.pki.client_b.leaf_der),
            pki::serial_of(&s.pki.client_a.leaf_der),
        ],
    );
    assert!(
        gw.wait_for_log_count("configuration reloaded", reloads_before + 1, Duration::from_secs(10))
            .await
    );
    assert!(
        a.send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
            .await
            .is_err()
    );
    assert_eq!(s.upstream.count(), 1);
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert!(
        metric(
            &metrics,
            "bindgate_tls_handshake_failures_total{reason=\"client_cert_revoked\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        limits: vec!["header_read_timeout = \"1s\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let mut slow = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Slow: ",
        s.token_a()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let served = s.client_a(Alpn::Http1);
    let mut cut_off = false;
    // One header byte every 200 ms, bounded to 50 bytes (10 s).
    for _ in 0..50 {
        if slow.write_all(b"a").await.is_err() || slow.flush().await.is_err() {
            cut_off = true;
            break;
        }
        let reply = served
            .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "the slow client got a response: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert!(cut_off, "the slow client was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off only after {:?}",
        started.elapsed()
    );
    assert!(s.upstream.requests().iter().all(|r| r.one("x-slow").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_streaming_request_then_exits_zero() {
    let s = Setup::new().await;
    let mut gw = s.gateway().await;
    let client = s.client_a(Alpn::Http1);
    let tls = client.connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(get(Alpn::Http1, "/stream/1500", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The head and first chunk are here; the rest is 1.5 s away. Now drain.
    gw.signal("TERM");
    assert!(gw.wait_for_log("draining", Duration::from_secs(5)).await);
    // New connections are refused while draining.
    let late = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await;
    assert!(late.is_err(), "accepted a new connection while draining: {late:?}");
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.as_ref(), b"first-second", "the in-flight response was cut");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("bindgate did not exit after draining");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn health_readiness_and_metrics_reflect_what_happened() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let admin = gw.admin.unwrap();
    assert_eq!(admin_get(admin, "/healthz").await.0, 200);
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    // One token used three times: verified twice (admitted to the cache on
    // its second verification), then answered from the cache.
    let token = s.token_a();
    let a = s.client_a(Alpn::Http1);
    assert_eq!(
        a.send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        a.send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
            .await
            .unwrap()
            .status,
        200
    );
    let b = s.client_b(Alpn::Http1);
    assert_eq!(
        b.send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(a.send(gw.addr, get(Alpn::Http1, "/", None)).await.unwrap().status, 401);
    assert!(
        s.client(None, Alpn::Http1)
            .send(gw.addr, get(Alpn::Http1, "/", None))
            .await
            .is_err()
    );

    let (status, text) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let expect = [
        (
            "bindgate_requests_total{route=\"/\",status=\"200\",reason=\"forwarded\",cert_source=\"tls\"}",
            2.0,
        ),
        (
            "bindgate_requests_total{route=\"/\",status=\"401\",reason=\"cnf_mismatch\",cert_source=\"tls\"}",
            1.0,
        ),
        (
            "bindgate_requests_total{route=\"/\",status=\"401\",reason=\"token_missing\",cert_source=\"tls\"}",
            1.0,
        ),
        (
            "bindgate_tls_handshake_failures_total{reason=\"client_cert_missing\"}",
            1.0,
        ),
        ("bindgate_request_duration_seconds_count", 4.0),
        ("bindgate_upstream_duration_seconds_count", 2.0),
        ("bindgate_tls_resumed_handshakes_total", 2.0),
        ("bindgate_token_cache_misses_total", 2.0),
        ("bindgate_token_cache_hits_total", 1.0),
    ];
    for (sample, value) in expect {
        assert_eq!(metric(&text, sample), Some(value), "{sample} in\n{text}");
    }
    assert!(
        text.contains("bindgate_certificate_expiry_timestamp_seconds{kind=\"server\""),
        "{text}"
    );

    // An upstream that goes away makes the gateway unready.
    drop(gw);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gw = s
        .start(&ConfigSpec {
            upstream_url: Some(url),
            ..Default::default()
        })
        .await;
    let (status, body) = admin_get(gw.admin.unwrap(), "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("unreachable"), "{body}");
}
