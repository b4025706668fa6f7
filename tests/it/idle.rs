//! Idle connections. An HTTP/1.1 connection waiting for its next request is
//! parked (hyper's buffers released) and must pick up exactly where it left
//! off; the idle timeout and a drain close idle connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::*;

async fn parked(admin: std::net::SocketAddr) -> f64 {
    metric(&admin_get(admin, "/metrics").await.1, "bindgate_connections_parked").unwrap_or(-1.0)
}

async fn wait_parked(admin: std::net::SocketAddr, count: f64) {
    assert!(
        eventually(Duration::from_secs(5), async || parked(admin).await == count).await,
        "expected {count} parked connections, metrics say {}",
        parked(admin).await
    );
}

/// One HTTP/1.1 response read off the wire: status and body.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

/// Reads exactly `count` Content-Length framed responses.
async fn read_responses(tls: &mut TlsStream<TcpStream>, count: usize) -> Vec<RawResponse> {
    let mut buf = Vec::new();
    let mut responses = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while responses.len() < count {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = head.parse(&buf) {
            let length: usize = head
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("responses here carry Content-Length");
            if buf.len() >= head_len + length {
                let status = head.code.unwrap();
                let body = buf[head_len..head_len + length].to_vec();
                buf.drain(..head_len + length);
                responses.push(RawResponse { status, body });
                continue;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk))
            .await
            .expect("response timed out")
            .expect("read failed");
        assert!(
            n > 0,
            "connection closed after {} of {count} responses",
            responses.len()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.is_empty(), "unexpected bytes after the responses: {buf:?}");
    responses
}

fn get_bytes(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// Sends one GET on `tls` and returns the status of its response.
async fn get_status(tls: &mut TlsStream<TcpStream>, path: &str, token: &str) -> u16 {
    tls.write_all(get_bytes(path, token).as_bytes()).await.unwrap();
    read_responses(tls, 1).await[0].status
}

/// The request targets the upstream received, in order.
fn targets(s: &Setup) -> Vec<String> {
    s.upstream.requests().into_iter().map(|r| r.target).collect()
}

/// Reads until the gateway closes the connection; how long that took.
async fn until_closed(tls: &mut TlsStream<TcpStream>, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, tls.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_serves_its_next_requests_in_order() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let admin = gw.admin.unwrap();
    let token = s.token_a();
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();

    assert_eq!(get_status(&mut tls, "/first", &token).await, 200);
    wait_parked(admin, 1.0).await;

    let post = format!(
        "POST /second HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\n\r\nhello"
    );
    tls.write_all(post.as_bytes()).await.unwrap();
    let echoed = read_responses(&mut tls, 1).await;
    assert_eq!((echoed[0].status, echoed[0].body.as_slice()), (200, &b"hello"[..]));
    wait_parked(admin, 1.0).await;

    // Two pipelined requests in one write wake the parked connection.
    let pipelined = get_bytes("/third", &token) + &get_bytes("/fourth", &token);
    tls.write_all(pipelined.as_bytes()).await.unwrap();
    let both = read_responses(&mut tls, 2).await;
    assert_eq!([both[0].status, both[1].status], [200, 200]);

    assert_eq!(targets(&s), ["/first", "/second", "/third", "/fourth"]);
    let (_, metrics) = admin_get(admin, "/metrics").await;
    assert_eq!(metric(&metrics, "bindgate_connections_open"), Some(1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_that_looks_like_a_request_is_never_served_after_parking() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let admin = gw.admin.unwrap();
    let token = s.token_a();
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();

    // No credential: refused before the body is read. The body is a request of its own.
    let smuggled = get_bytes("/smuggled", &token);
    let outer = format!(
        "POST /refused HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    tls.write_all(outer.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut tls, 1).await[0].status, 401);
    wait_parked(admin, 1.0).await;

    assert_eq!(get_status(&mut tls, "/after", &token).await, 200);
    assert_eq!(targets(&s), ["/after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_arriving_after_its_refusal_is_not_taken_for_a_request() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let token = s.token_a();
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();

    let smuggled = get_bytes("/smuggled", &token);
    let head = format!(
        "POST /refused HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut tls, 1).await[0].status, 401);
    // Until the gateway has settled the connection one way or the other:
    // parked (it waits for what comes next) or closed (it gave up on the body).
    let admin = gw.admin.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || {
            let metrics = admin_get(admin, "/metrics").await.1;
            metric(&metrics, "bindgate_connections_parked") == Some(1.0)
                || metric(&metrics, "bindgate_connections_open") == Some(0.0)
        })
        .await
    );
    let late = smuggled + &get_bytes("/after", &token);
    // The gateway may have closed the connection instead of draining the body; both are fine.
    let _ = tls.write_all(late.as_bytes()).await;
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    // Never `/smuggled`. Either the body was drained and `/after` served (and answered), or
    // the connection was closed without serving anything more: one of the two must be seen.
    match targets(&s).as_slice() {
        [after] if after == "/after" => assert!(rest.starts_with("HTTP/1.1 200"), "{rest}"),
        [] => assert!(
            matches!(ended, Ok(Ok(_)) | Ok(Err(_))) && !rest.contains("HTTP/1.1 200"),
            "neither served nor closed: {rest}"
        ),
        other => panic!("the upstream saw {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_outlives_header_read_timeout_and_ends_at_idle_timeout() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        limits: vec!["header_read_timeout = \"1s\"".into(), "idle_timeout = \"3s\"".into()],
        ..Default::default()
    };
    let gw = s.start(&spec).await;
    let token = s.token_a();
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    assert_eq!(get_status(&mut tls, "/one", &token).await, 200);

    // Wait until header_read_timeout has demonstrably passed: a connection
    // opened after this one, stuck in a request head, gets closed by it.
    let mut stuck = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    stuck.write_all(b"GET /stuck HTTP/1.1\r\n").await.unwrap();
    until_closed(&mut stuck, Duration::from_secs(10)).await;
    // The idle one is still fine: that timeout bounds a request head, not the wait for one.
    assert_eq!(get_status(&mut tls, "/two", &token).await, 200);

    let closed_after = until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(
        closed_after >= Duration::from_millis(2500),
        "closed after {closed_after:?}, before the idle timeout"
    );
    let admin = gw.admin.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(&admin_get(admin, "/metrics").await.1, "bindgate_connections_open") == Some(0.0)
        })
        .await
    );
    assert_eq!(parked(admin).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_parked_connections_without_waiting_for_the_grace_period() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        limits: vec!["shutdown_grace = \"60s\"".into()],
        ..Default::default()
    };
    let mut gw = s.start(&spec).await;
    let token = s.token_a();
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    assert_eq!(get_status(&mut tls, "/", &token).await, 200);
    wait_parked(gw.admin.unwrap(), 1.0).await;

    gw.signal("TERM");
    let closed_after = until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(closed_after < Duration::from_secs(5), "closed after {closed_after:?}");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("bindgate did not exit after draining");
    assert!(status.success(), "{status:?}");
}
