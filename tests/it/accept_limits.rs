//! Out of file descriptors: the accept loop backs off (logging once per
//! episode, not per retry) and serves again once descriptors are free.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_gateway_backs_off_logs_once_and_serves_again() {
    let s = Setup::new().await;
    let gw = s.gateway().await;
    let client = s.client_a(Alpn::Http1);
    let token = s.token_a();
    assert_eq!(
        client
            .send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
            .await
            .unwrap()
            .status,
        200
    );

    // The client's connection must be gone first: its descriptor, freed
    // during the episode below, would let one accept succeed and end it.
    let admin = gw.admin.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(&admin_get(admin, "/metrics").await.1, "bindgate_connections_open") == Some(0.0)
        })
        .await,
        "{}",
        gw.stderr()
    );

    // A few descriptors above what the warm gateway holds.
    let open = std::fs::read_dir(format!("/proc/{}/fd", gw.pid())).unwrap().count();
    let limit = format!("--nofile={}:{}", open + 6, open + 6);
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &gw.pid().to_string(), &limit])
        .status()
        .unwrap();
    assert!(status.success());

    // The gateway accepts some, then runs out; the rest wait in the backlog.
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(10), async || gw.log_count("accept failed") >= 1).await,
        "{}",
        gw.stderr()
    );
    // Retrying every 50 ms and logging each retry would add a line every 50 ms.
    let flooded = eventually(Duration::from_millis(1500), async || gw.log_count("accept failed") > 1).await;
    assert!(!flooded, "one line per retry: {}", gw.stderr());

    drop(held);
    let served = eventually(
        Duration::from_secs(15),
        async || matches!(client.send(gw.addr, get(Alpn::Http1, "/", Some(&token))).await, Ok(r) if r.status == 200),
    )
    .await;
    assert!(served, "not serving after descriptors were freed: {}", gw.stderr());
    assert!(gw.log_count("accepting connections again") >= 1, "{}", gw.stderr());
}
