//! Idle mode (--idle-connections): open many connections, one request on
//! each, then hold them open while the script reads the server's memory.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::stats::{merged_stats, record, round3, summary};
use crate::{IDLE_OPEN_CONCURRENCY, Shared, bounded, exchange, open};

/// Idle mode: open `n` connections, one request on each, hold them for `hold`.
pub async fn idle(shared: Arc<Shared>, n: usize, hold: Duration) {
    eprintln!("loadgen: opening {n} idle connections to {}", shared.addr);
    let gate = Arc::new(Semaphore::new(IDLE_OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for _ in 0..n {
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        opening.spawn(async move {
            let Some(auth) = shared.next_permit() else {
                record(|s| s.error("not_attempted"));
                return None;
            };
            let start = Instant::now();
            let attempt = async {
                let (mut conn, task) = open(&shared).await?;
                let status = exchange(&shared, &mut conn, auth).await?;
                Ok((conn, task, status))
            };
            let (conn, task, status) = bounded(&shared, start, attempt).await?;
            record(|s| s.response(status, start));
            drop(permit);
            Some((conn, task))
        });
    }
    let mut held = Vec::with_capacity(n);
    while let Some(joined) = opening.join_next().await {
        held.extend(joined.ok().flatten());
    }
    let failed = n - held.len();
    let open_s = round3(shared.started.elapsed().as_secs_f64());
    print_line(json!({ "idle_open": held.len(), "failed": failed, "open_s": open_s }));
    tokio::time::sleep(hold).await;
    let closed = held.iter().filter(|(_, task)| task.is_finished()).count();
    let mut report = summary(&merged_stats());
    report["idle_open"] = json!(held.len() - closed);
    report["failed"] = json!(failed);
    report["closed_during_hold"] = json!(closed);
    print_line(report);
    // Dropped senders close their connections; what is left closes with the runtime.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn print_line(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}").and_then(|()| out.flush());
}
