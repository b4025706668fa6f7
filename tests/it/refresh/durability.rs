//! Durability: the families are in the SQLite file, not in the process. A
//! new process on the same file knows every rotation and revocation of the
//! last one, after a SIGTERM as after a SIGKILL in the middle of a burst:
//! no refresh token was answered whose row was lost, and no rotated-away
//! token came back to life.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

#[tokio::test]
async fn rotations_and_revocations_survive_a_restart_and_a_replay_afterwards_is_reuse() {
    let mut w = family_world(Options::default()).await;
    let (key, revoked_key, live_key) = (DpopKey::new(), DpopKey::new(), DpopKey::new());
    let first = w.exchange("olga", &key).await;
    let second = w.refreshed(first.refresh(), &key).await;
    let third = w.refreshed(second.refresh(), &key).await;
    let revoked = w.exchange("olga", &revoked_key).await;
    assert_eq!(w.revoke(revoked.refresh()).await.status, 200);
    let live = w.exchange("olga", &live_key).await;

    w.restart("TERM").await;
    // The new process counts the live families it found (its purger's first pass).
    let counted = eventually(Duration::from_secs(5), async || {
        w.metric("bindgate_as_families_active").await == 2.0
    })
    .await;
    assert!(counted, "{}", w.metrics().await);
    // The revocation is in force at the new process's gateway from its
    // first request on: its access token has not expired yet.
    w.assert_refused(revoked.access(), &revoked_key, "token_revoked").await;
    assert_invalid_grant(&w.refresh(revoked.refresh(), &revoked_key).await);
    // The live families are live, their access tokens still verify.
    w.assert_passes(third.access(), &key, "olga").await;
    let live_next = w.refreshed(live.refresh(), &live_key).await;
    w.assert_passes(live_next.access(), &live_key, "olga").await;

    // The first token, rotated away by the previous process: reuse.
    assert_invalid_grant(&w.refresh(first.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    assert_invalid_grant(&w.refresh(third.refresh(), &key).await);
    w.assert_refused(third.access(), &key, "token_revoked").await;
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &revocations("reuse")), 1.0, "{metrics}");
    // The other device's family was not touched by any of it.
    let live_last = w.refreshed(live_next.refresh(), &live_key).await;
    w.assert_passes(live_last.access(), &live_key, "olga").await;
}

/// Refreshes in a chain until the connection fails (the process died):
/// every refresh token answered with 200, in order, starting with `first`.
/// A refusal before that is a failure of the test.
async fn burst(
    client: TlsClient,
    addr: std::net::SocketAddr,
    key: Arc<DpopKey>,
    first: String,
    answered: Arc<AtomicUsize>,
) -> Result<Vec<String>, String> {
    let mut chain = vec![first];
    for _ in 0..2000 {
        let current = chain.last().unwrap();
        match client.send(addr, app_refresh(current, &key)).await {
            Ok(reply) if reply.status == 200 => {
                chain.push(tokens(&reply).refresh().to_string());
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(reply) => return Err(format!("{} {:?}", reply.status, reply.body)),
            Err(_) => return Ok(chain),
        }
    }
    Err("2000 refreshes and the process is still alive".into())
}

#[tokio::test]
async fn after_a_sigkill_mid_burst_every_answered_token_works_and_no_stale_one_does() {
    const FAMILIES: usize = 8;
    let mut w = family_world(Options::default()).await;
    let (client, addr) = (w.as_client(None), w.as_addr());
    let answered = Arc::new(AtomicUsize::new(0));
    let mut families = Vec::new();
    for family in 0..FAMILIES {
        let key = Arc::new(DpopKey::new());
        let start = w.exchange(&format!("burst-{family}"), &key).await;
        let task = tokio::spawn(burst(
            client.clone(),
            addr,
            key.clone(),
            start.refresh().to_string(),
            answered.clone(),
        ));
        families.push((key, task));
    }
    let busy = eventually(Duration::from_secs(20), async || answered.load(Ordering::SeqCst) >= 40).await;
    assert!(busy, "the burst did not get going:\n{}", w.gw.stderr());
    w.stop("KILL").await;
    let mut chains = Vec::new();
    for (key, task) in families {
        let chain = task.await.unwrap().expect("only the kill ends a burst");
        chains.push((key, chain));
    }
    w.start_again().await;

    let mut reused = 0;
    for (family, (key, chain)) in chains.iter().enumerate() {
        let (last, stale) = chain.split_last().unwrap();
        for token in stale {
            assert!(!w.active(token).await, "family {family}: a rotated-away token is live");
        }
        // The last token answered works: it is the live one, or its
        // successor was committed but its answer lost to the kill, and
        // then this is the grace retry of a lost response.
        let next = w.refreshed(last, key).await;
        w.assert_passes(next.access(), key, &format!("burst-{family}")).await;
        // A stale one presented is reuse, and takes the family down.
        if let Some(previous) = stale.last() {
            assert_invalid_grant(&w.refresh(previous, key).await);
            assert_invalid_grant(&w.refresh(next.refresh(), key).await);
            w.assert_refused(next.access(), key, "token_revoked").await;
            reused += 1;
        }
    }
    assert!(reused > 0, "no family was refreshed before the kill");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &revocations("reuse")), reused as f64, "{metrics}");
    // A retry for each answer the kill swallowed, at most one per family.
    assert!(sample(&metrics, GRACE_RETRIES_TOTAL) <= FAMILIES as f64, "{metrics}");
}
