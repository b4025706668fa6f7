//! A family's two limits: unused for `refresh_idle_timeout` it dies, and it
//! never outlives `refresh_absolute_lifetime`, however often it is
//! refreshed; `refresh_token_expires_in` says which comes first. Per-client
//! values override the server's.

use std::time::{Duration, Instant};

use super::*;

/// Idle after two seconds.
const IDLE_APP: &str = "app-idle";
/// Three seconds at most, idle after two.
const BRIEF_APP: &str = "app-brief";
/// Three seconds at most; the server's 14-day idle timeout capped to that.
const CAPPED_APP: &str = "app-capped";

async fn world() -> FamilyWorld {
    family_world(Options {
        clients: vec![
            public_client(IDLE_APP, &["refresh_idle_timeout = \"2s\""]),
            public_client(
                BRIEF_APP,
                &["refresh_absolute_lifetime = \"3s\"", "refresh_idle_timeout = \"2s\""],
            ),
            public_client(CAPPED_APP, &["refresh_absolute_lifetime = \"3s\""]),
        ],
        ..Options::default()
    })
    .await
}

async fn exchange(w: &FamilyWorld, client_id: &str, key: &DpopKey) -> Tokens {
    tokens(&w.exchange_as(client_id, None, "gus", Some(key)).await)
}

async fn refresh(w: &FamilyWorld, client_id: &str, token: &str, key: &DpopKey) -> Reply {
    w.refresh_as(client_id, None, token, Some(key), &[]).await
}

#[tokio::test]
async fn a_family_unused_for_its_idle_timeout_is_refused_and_inactive() {
    let w = world().await;
    let key = DpopKey::new();
    let start = exchange(&w, IDLE_APP, &key).await;
    assert_eq!(start.refresh_expires_in, Some(2), "{:?}", start.json);
    // Used in time, the idle timeout starts over.
    let used = tokens(&refresh(&w, IDLE_APP, start.refresh(), &key).await);
    assert_eq!(used.refresh_expires_in, Some(2), "{:?}", used.json);
    assert_eq!(w.introspect(used.refresh()).await["exp"], used.iat() + 2);

    // Three seconds without a refresh.
    let waited = Instant::now();
    until_second(used.iat() + 3, Duration::from_secs(6)).await;
    assert!(waited.elapsed() < Duration::from_secs(6));
    assert!(!w.active(used.refresh()).await);
    assert_invalid_grant(&refresh(&w, IDLE_APP, used.refresh(), &key).await);
    w.assert_token_reasons("family_idle", 1).await;
    // Dead of age is no revocation: nothing was stolen.
    let metrics = w.metrics().await;
    assert!(
        rows(&metrics, "bindgate_as_family_revocations_total").is_empty(),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
    // The world's own app keeps the server's limits.
    let app = w.exchange("gus", &key).await;
    assert_eq!(app.refresh_expires_in, Some(IDLE_SECONDS));
}

#[tokio::test]
async fn refreshing_never_extends_a_family_past_its_absolute_lifetime() {
    let w = world().await;
    let key = DpopKey::new();
    // The idle timeout inherited from the server is capped at the client's lifetime.
    let capped = exchange(&w, CAPPED_APP, &key).await;
    assert_eq!(capped.refresh_expires_in, Some(3), "{:?}", capped.json);

    let start = exchange(&w, BRIEF_APP, &key).await;
    assert_eq!(start.refresh_expires_in, Some(2), "the idle timeout comes first");
    let expires_at = start.iat() + 3;
    let mut token = start.refresh().to_string();
    let mut refreshed_at = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Every 400 ms, so every second sees a refresh and the idle timeout never strikes.
    let refused = loop {
        assert!(Instant::now() < deadline, "still refreshing at {refreshed_at:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let reply = refresh(&w, BRIEF_APP, &token, &key).await;
        if reply.status != 200 {
            break reply;
        }
        let next = tokens(&reply);
        let at = next.iat();
        assert!(at < expires_at, "refreshed at {at}, the family ends at {expires_at}");
        assert_eq!(
            next.refresh_expires_in,
            Some(expires_at.min(at + 2) - at),
            "at {at}: {:?}",
            next.json
        );
        refreshed_at.push(at);
        token = next.refresh().to_string();
    };
    assert_invalid_grant(&refused);
    assert!(now() >= expires_at, "refused before the end: {refreshed_at:?}");
    w.assert_token_reasons("family_expired", 1).await;
    // Refreshed past the first idle deadline, so the idle timeout did slide,
    // and still it ended at three seconds.
    assert!(refreshed_at.contains(&(start.iat() + 2)), "{refreshed_at:?}");
    assert!(!w.active(&token).await);
    assert_eq!(w.metric(REUSE_TOTAL).await, 0.0);
}
