//! A client that leaves while the upstream is still thinking: hyper drops
//! the request, and the request is still logged and counted, exactly once,
//! as `client_gone` (status 499).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// Longer than any test: the upstream never answers while one runs.
const HELD: &str = "/slow/600000";

/// How long the gateway may take to notice the client left and to log it.
const NOTICE: Duration = Duration::from_secs(10);

fn spec() -> ConfigSpec {
    ConfigSpec {
        // The upstream is slow on purpose: no 504 may come first.
        upstream: vec!["request_timeout = \"600s\"".into()],
        ..ConfigSpec::default()
    }
}

/// How the client leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    /// Closes its HTTP/1.1 connection.
    Http1Close,
    /// Closes its h2 connection.
    H2Close,
    /// Resets its h2 stream (RST_STREAM) and keeps the connection.
    H2ResetStream,
}

/// An h2 connection the client keeps after resetting its stream.
type KeptH2 = (AbortOnDrop, hyper::client::conn::http2::SendRequest<Full<Bytes>>);

/// Sends [`HELD`] and leaves as `leave` says once the upstream has it.
async fn send_then_leave(s: &Setup, gw: &GatewayProcess, leave: Leave) -> Option<KeptH2> {
    let token = s.token_a();
    let alpn = if leave == Leave::Http1Close {
        Alpn::Http1
    } else {
        Alpn::H2
    };
    let mut tls = s.client_a(alpn).connect(gw.addr).await.unwrap();
    if alpn == Alpn::Http1 {
        let head = format!("GET {HELD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        wait_for_upstream(s).await;
        drop(tls);
        return None;
    }
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    let conn = AbortOnDrop(tokio::spawn(conn));
    let mut sending = sender.clone();
    let req = get(Alpn::H2, HELD, Some(&token));
    let pending = tokio::spawn(async move { sending.send_request(req).await.map(drop) });
    wait_for_upstream(s).await;
    if leave == Leave::H2Close {
        // The connection's task goes first, so no RST_STREAM is written: the socket just closes.
        drop(conn);
        pending.abort();
        return None;
    }
    // Dropping the response future resets its stream.
    pending.abort();
    Some((conn, sender))
}

/// Aborts a kept connection's task when the test ends.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_for_upstream(s: &Setup) {
    let seen = eventually(NOTICE, async || s.upstream.count() == 1).await;
    assert!(seen, "the upstream never received the request");
}

/// The access lines of requests for `path`.
fn access_lines(gw: &GatewayProcess, path: &str) -> Vec<String> {
    let needle = format!("path={path} ");
    gw.stderr()
        .lines()
        .filter(|l| l.contains("bindgate::access") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// The `bindgate_requests_total` samples with reason `client_gone`.
async fn client_gone_samples(gw: &GatewayProcess) -> Vec<String> {
    let (_, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    text.lines()
        .filter(|l| l.starts_with("bindgate_requests_total{") && l.contains("reason=\"client_gone\""))
        .map(str::to_string)
        .collect()
}

/// A request served after the abandoned one: once its line is written, the
/// gateway has had every chance to write a second line for the first.
async fn barrier(s: &Setup, gw: &GatewayProcess) {
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/after", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let logged = eventually(NOTICE, async || !access_lines(gw, "/after").is_empty()).await;
    assert!(logged, "no access line for the barrier request:\n{}", gw.stderr());
}

async fn abandoned_request_is_logged_and_counted_once(leave: Leave) {
    let s = Setup::new().await;
    let gw = s.start(&spec()).await;
    let mut kept = send_then_leave(&s, &gw, leave).await;

    let noticed = eventually(NOTICE, async || {
        !access_lines(&gw, HELD).is_empty() && !client_gone_samples(&gw).await.is_empty()
    })
    .await;
    assert!(noticed, "the abandoned request left no trace:\n{}", gw.stderr());
    if let Some((_, sender)) = &mut kept {
        // Only the stream went: the connection still serves.
        let reply = tokio::time::timeout(NOTICE, sender.send_request(get(Alpn::H2, "/same-connection", None)));
        assert_eq!(reply.await.unwrap().unwrap().status(), 401);
    }
    barrier(&s, &gw).await;

    let lines = access_lines(&gw, HELD);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    for field in [
        "status=499 ",
        "reason=\"client_gone\" ",
        "completed=false ",
        "bytes_out=0 ",
    ] {
        assert!(lines[0].contains(field), "no {field:?} in {}", lines[0]);
    }
    assert_eq!(
        client_gone_samples(&gw).await,
        ["bindgate_requests_total{route=\"/\",status=\"499\",reason=\"client_gone\",cert_source=\"tls\"} 1"]
    );
    assert_eq!(s.upstream.requests()[0].target, HELD);
    drop(kept);
}

#[tokio::test]
async fn an_http1_client_closing_mid_request_is_logged_and_counted_once_as_client_gone() {
    abandoned_request_is_logged_and_counted_once(Leave::Http1Close).await;
}

#[tokio::test]
async fn an_h2_client_closing_mid_request_is_logged_and_counted_once_as_client_gone() {
    abandoned_request_is_logged_and_counted_once(Leave::H2Close).await;
}

#[tokio::test]
async fn an_h2_stream_reset_mid_request_is_logged_and_counted_once_as_client_gone() {
    abandoned_request_is_logged_and_counted_once(Leave::H2ResetStream).await;
}
