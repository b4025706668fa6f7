//! The grace for a lost response, each of its limits: only the immediately
//! previous token, with the family's key, while its successor is unused,
//! within `refresh_grace`, at most three times. A retry replaces the unused
//! successor, so one branch lives; anything past a limit is reuse.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn a_lost_response_may_be_retried_three_times_each_replacing_the_unused_successor() {
    let w = family_world(Options::default()).await;
    let key = DpopKey::new();
    let start = w.exchange("carol", &key).await;
    let lost = w.refreshed(start.refresh(), &key).await;

    // The app never saw `lost` and retries with the token it has.
    let retried = w.refreshed(start.refresh(), &key).await;
    assert_ne!(retried.refresh(), lost.refresh(), "a new successor");
    assert_eq!(retried.sid(), start.sid());
    w.assert_passes(retried.access(), &key, "carol").await;
    // The successor it replaced is refused, without harm to the family.
    assert!(!w.active(lost.refresh()).await);
    assert_invalid_grant(&w.refresh(lost.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_replaced", 1).await;
    assert!(w.active(retried.refresh()).await, "one live branch: the retry's");
    assert_eq!(w.metric(REUSE_TOTAL).await, 0.0);

    // Two more retries are allowed; each leaves only its own successor live.
    let mut live = retried;
    for retry in 2..=3 {
        let next = w.refreshed(start.refresh(), &key).await;
        assert!(
            !w.active(live.refresh()).await,
            "retry {retry} replaced the previous successor"
        );
        assert!(w.active(next.refresh()).await, "retry {retry}");
        live = next;
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, GRACE_RETRIES_TOTAL), 3.0, "{metrics}");
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 1.0, "{metrics}");

    // A fourth is reuse: the family dies, the last successor with it.
    assert_invalid_grant(&w.refresh(start.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    assert_invalid_grant(&w.refresh(live.refresh(), &key).await);
    w.assert_token_reasons("family_revoked", 1).await;
    w.assert_refused(live.access(), &key, "token_revoked").await;
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &revocations("reuse")), 1.0, "{metrics}");
}

#[tokio::test]
async fn a_retry_with_another_key_or_none_or_after_the_successor_was_used_is_reuse() {
    let w = family_world(Options::default()).await;
    let (key, thief) = (DpopKey::new(), DpopKey::new());

    // The previous token with another key: a thief's retry.
    let a = w.exchange("dave", &key).await;
    let a1 = w.refreshed(a.refresh(), &key).await;
    assert_invalid_grant(&w.refresh(a.refresh(), &thief).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    assert_invalid_grant(&w.refresh(a1.refresh(), &key).await);
    w.assert_refused(a1.access(), &key, "token_revoked").await;

    // The previous token with no proof at all.
    let b = w.exchange("dave", &key).await;
    let b1 = w.refreshed(b.refresh(), &key).await;
    assert_invalid_grant(&w.refresh_as(APP, None, b.refresh(), None, &[]).await);
    w.assert_token_reasons("refresh_token_reused", 2).await;
    assert_invalid_grant(&w.refresh(b1.refresh(), &key).await);

    // The successor was used: the response was not lost, so the old token
    // presented again is a copy.
    let c = w.exchange("dave", &key).await;
    let c1 = w.refreshed(c.refresh(), &key).await;
    let c2 = w.refreshed(c1.refresh(), &key).await;
    assert_invalid_grant(&w.refresh(c.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_reused", 3).await;
    assert_invalid_grant(&w.refresh(c2.refresh(), &key).await);
    w.assert_refused(c2.access(), &key, "token_revoked").await;
    w.assert_token_reasons("family_revoked", 3).await;

    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 3.0, "{metrics}");
    assert_eq!(sample(&metrics, &revocations("reuse")), 3.0, "{metrics}");
    assert_eq!(sample(&metrics, GRACE_RETRIES_TOTAL), 0.0, "{metrics}");
}

#[tokio::test]
async fn without_grace_any_replay_of_the_previous_token_is_reuse() {
    let w = family_world(Options {
        grace: "0s",
        ..Options::default()
    })
    .await;
    let key = DpopKey::new();
    let start = w.exchange("erin", &key).await;
    let next = w.refreshed(start.refresh(), &key).await;
    // At once, same key, successor unused: still reuse.
    assert_invalid_grant(&w.refresh(start.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    assert_invalid_grant(&w.refresh(next.refresh(), &key).await);
    w.assert_refused(next.access(), &key, "token_revoked").await;
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, GRACE_RETRIES_TOTAL), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, &revocations("reuse")), 1.0, "{metrics}");
}

#[tokio::test]
async fn a_retry_after_the_grace_window_is_reuse() {
    let w = family_world(Options {
        grace: "1s",
        ..Options::default()
    })
    .await;
    let key = DpopKey::new();

    // Within the second of grace: a retry. The server decides between the
    // request and its answer, so only an answer by then proves the rule.
    let a = w.exchange("fay", &key).await;
    let a1 = w.refreshed(a.refresh(), &key).await;
    let retry = w.refresh(a.refresh(), &key).await;
    if now() <= a1.iat() + 1 {
        assert_eq!(retry.status, 200, "within the grace: {:?}", retry.body);
    }
    // A slow machine may have answered after the grace: then that was reuse too.
    let earlier = usize::from(retry.status != 200);

    // Past it: the grace ran from the rotation (its access token's `iat`).
    let b = w.exchange("fay", &key).await;
    let b1 = w.refreshed(b.refresh(), &key).await;
    let waited = Instant::now();
    until_second(b1.iat() + 2, Duration::from_secs(5)).await;
    assert!(waited.elapsed() < Duration::from_secs(5));
    assert_invalid_grant(&w.refresh(b.refresh(), &key).await);
    w.assert_token_reasons("refresh_token_reused", 1 + earlier).await;
    assert_invalid_grant(&w.refresh(b1.refresh(), &key).await);
    w.assert_refused(b1.access(), &key, "token_revoked").await;
    assert_eq!(w.metric(&revocations("reuse")).await, (1 + earlier) as f64);
}
