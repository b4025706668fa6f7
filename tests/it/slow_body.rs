//! A request body must arrive at a minimum pace (`limits.body_read_timeout`,
//! `limits.body_min_rate`), whether or not the upstream has answered yet.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::upstream::EarlyBody;
use crate::common::*;

/// Far longer than the configured timeout: a connection still open after
/// this was not cut.
const CUT_WITHIN: Duration = Duration::from_secs(10);

fn spec() -> ConfigSpec {
    ConfigSpec {
        limits: vec!["body_read_timeout = \"1s\"".into(), "body_min_rate = 1024".into()],
        ..ConfigSpec::default()
    }
}

/// Sends a POST head announcing `length` body bytes, then one byte every
/// 100 ms, while reading whatever the gateway answers. Returns what was read
/// and whether the gateway closed the connection within [`CUT_WITHIN`].
async fn trickle(tls: &mut TlsStream<TcpStream>, path: &str, token: &str, length: usize) -> (String, bool) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let deadline = Instant::now() + CUT_WITHIN;
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 0;
    while Instant::now() < deadline {
        if sent < length {
            if tls.write_all(b"x").await.is_err() {
                // The gateway is gone: what it said before is all there is.
                let _ = tokio::time::timeout(Duration::from_secs(1), tls.read_to_end(&mut read)).await;
                return (String::from_utf8_lossy(&read).into_owned(), true);
            }
            let _ = tls.flush().await;
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_millis(100), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&read).into_owned(), true),
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&read).into_owned(), false)
}

#[tokio::test]
async fn a_trickled_body_is_cut_after_the_upstream_answered_early() {
    let s = Setup::new().await;
    let gw = s.start(&spec()).await;
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    let (response, closed) = trickle(&mut tls, "/early", &s.token_a(), 1000).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        closed,
        "a body at 10 B/s still held the connection after {CUT_WITHIN:?}"
    );
    // The upstream's connection was cut mid-body too, not left waiting.
    assert!(
        eventually(Duration::from_secs(5), async || s.upstream.early_bodies()
            == [EarlyBody::Aborted])
        .await,
        "{:?}",
        s.upstream.early_bodies()
    );
}

#[tokio::test]
async fn a_trickled_body_the_upstream_waits_for_gets_408_and_a_close() {
    let s = Setup::new().await;
    let gw = s.start(&spec()).await;
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    let (response, closed) = trickle(&mut tls, "/echo", &s.token_a(), 1000).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"reason\":\"body_timeout\""), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(closed, "the connection stayed open");
}

#[tokio::test]
async fn a_body_at_a_reasonable_pace_is_forwarded_whole() {
    let s = Setup::new().await;
    let gw = s.start(&spec()).await;
    let mut tls = s.client_a(Alpn::Http1).connect(gw.addr).await.unwrap();
    let chunk = vec![b'y'; 4096];
    let length = chunk.len() * 8;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Length: {length}\r\n\r\n",
        s.token_a()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    // 8 chunks of 4 KiB, 250 ms apart: 16 KiB/s, well above 1 KiB/s, over
    // about twice the body_read_timeout.
    for _ in 0..8 {
        tls.write_all(&chunk).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut buf = vec![0u8; length + 4096];
    let mut read = 0;
    let deadline = Instant::now() + CUT_WITHIN;
    while !String::from_utf8_lossy(&buf[..read]).contains("\r\n\r\n") || read < length {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tls.read(&mut buf[read..])).await {
            Ok(Ok(n)) if n > 0 => read += n,
            other => panic!("read ended early ({other:?}) after {read} bytes"),
        }
    }
    let response = String::from_utf8_lossy(&buf[..read]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(s.upstream.only().body_len, length);
}
