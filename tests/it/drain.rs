//! SIGTERM drains: a request whose bytes reached the gateway before the
//! signal is served (then its connection closes), whether its keep-alive
//! connection was busy, idle or parked.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::*;

const CONNECTIONS: usize = 40;

/// Reads one HTTP/1.1 response (head and `Content-Length` body): its status
/// and head, or `None` if the connection ends first.
async fn read_response(tls: &mut TlsStream<TcpStream>) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some((status, head));
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn request_bytes(token: &str) -> Vec<u8> {
    format!("GET /drain HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes()
}

async fn parked(gw: &GatewayProcess) -> f64 {
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    metric(&metrics, "bindgate_connections_parked").unwrap_or(-1.0)
}

/// Opens `CONNECTIONS` keep-alive connections, each with one request served.
async fn open_connections(s: &Setup, gw: &GatewayProcess, token: &str) -> Vec<TlsStream<TcpStream>> {
    let client = s.client_a(Alpn::Http1);
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut tls = client.connect(gw.addr).await.unwrap();
        tls.write_all(&request_bytes(token)).await.unwrap();
        assert_eq!(read_response(&mut tls).await.map(|r| r.0), Some(200));
        conns.push(tls);
    }
    conns
}

/// Writes a request on every connection, SIGTERMs at once, and counts the full 200 responses.
async fn requests_served_across_sigterm(
    gw: &mut GatewayProcess,
    conns: &mut [TlsStream<TcpStream>],
    token: &str,
) -> (usize, Vec<String>) {
    let request = request_bytes(token);
    // `kill` waits on its stdin, so the signal follows the last write within
    // microseconds rather than after a process spawn.
    let mut kill = std::process::Command::new("sh")
        .args(["-c", &format!("read go; exec kill -TERM {}", gw.pid())])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut go = kill.stdin.take().unwrap();
    for tls in conns.iter_mut() {
        tls.write_all(&request).await.unwrap();
        tls.flush().await.unwrap();
    }
    {
        use std::io::Write;
        go.write_all(b"go\n").unwrap();
    }
    assert!(kill.wait().unwrap().success());
    let mut served = 0;
    let mut heads = Vec::new();
    for tls in conns.iter_mut() {
        match read_response(tls).await {
            Some((200, head)) => {
                served += 1;
                heads.push(head);
            }
            other => heads.push(format!("{other:?}")),
        }
    }
    (served, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_written_before_sigterm_on_parked_connections_are_served() {
    let s = Setup::new().await;
    let mut gw = s.gateway().await;
    let token = s.token_a();
    let mut conns = open_connections(&s, &gw, &token).await;
    let all_parked = eventually(Duration::from_secs(10), async || {
        parked(&gw).await == CONNECTIONS as f64
    })
    .await;
    assert!(all_parked, "connections did not park: {}", parked(&gw).await);
    let forwarded_before = s.upstream.count();

    let (served, heads) = requests_served_across_sigterm(&mut gw, &mut conns, &token).await;
    assert_eq!(served, CONNECTIONS, "requests dropped by the drain: {heads:?}");
    assert_eq!(s.upstream.count(), forwarded_before + CONNECTIONS);
    // Served, then closed (a response written before the signal may not say
    // `connection: close`, so the end of each stream is what is checked).
    for tls in &mut conns {
        let mut byte = [0u8; 1];
        let end = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut byte)).await;
        assert!(
            matches!(end, Ok(Ok(0)) | Ok(Err(_))),
            "a drained connection stays open: {end:?}"
        );
    }
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("bindgate did not exit after draining");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_written_before_sigterm_on_idle_unparked_connections_are_served() {
    let s = Setup::new().await;
    let mut gw = s.gateway().await;
    let token = s.token_a();
    // Written right after the first responses: well within the 100 ms before parking.
    let mut conns = open_connections(&s, &gw, &token).await;
    let (served, heads) = requests_served_across_sigterm(&mut gw, &mut conns, &token).await;
    assert_eq!(served, CONNECTIONS, "requests dropped by the drain: {heads:?}");
}
