//! RFC 7662 introspection of a family's tokens: a refresh token is active
//! while it is its family's live one and the family is alive, and says
//! whose it is; a rotated-away, idle or revoked family's token is
//! `{"active": false}`, and so is an access token of a revoked family.
//! Introspecting a stale token is no reuse.

use std::time::Duration;

use serde_json::json;

use super::*;

/// Idle after one second.
const IDLE_APP: &str = "app-idle";

#[tokio::test]
async fn a_live_refresh_token_is_active_with_its_family_and_every_dead_one_is_inactive() {
    let w = family_world(Options {
        clients: vec![public_client(IDLE_APP, &["refresh_idle_timeout = \"1s\""])],
        ..Options::default()
    })
    .await;
    let key = DpopKey::new();
    let start = w.exchange("lea", &key).await;
    let current = w.refreshed(start.refresh(), &key).await;
    assert_eq!(
        w.introspect(current.refresh()).await,
        json!({
            "active": true,
            "iss": AS_ISSUER,
            "sub": "lea",
            "aud": [API],
            "client_id": APP,
            "exp": current.iat() + IDLE_SECONDS,
            "token_type": "refresh_token",
            "sid": current.sid(),
            "scope": SCOPE,
        })
    );
    let access = w.introspect(current.access()).await;
    assert_eq!(access["active"], true, "{access}");
    assert_eq!(access["sid"], current.sid().as_str());
    assert_eq!(access["token_type"], "DPoP");

    // Rotated away: inactive. Asking was no presentation: the family lives on.
    assert!(!w.active(start.refresh()).await);
    let next = w.refreshed(current.refresh(), &key).await;
    assert!(!w.active(current.refresh()).await);
    assert!(w.active(next.refresh()).await);
    assert_eq!(w.metric(REUSE_TOTAL).await, 0.0);

    // Idle: inactive, though never revoked.
    let idle = tokens(&w.exchange_as(IDLE_APP, None, "lea", Some(&key)).await);
    assert!(w.active(idle.refresh()).await);
    until_second(idle.iat() + 2, Duration::from_secs(5)).await;
    assert!(!w.active(idle.refresh()).await);

    // Revoked: the refresh token and every access token of the family.
    assert_eq!(w.revoke(next.refresh()).await.status, 200);
    for token in [next.refresh(), next.access(), current.access(), start.access()] {
        assert!(!w.active(token).await);
    }
    // The other families' tokens are unaffected.
    let other = w.exchange("lea", &DpopKey::new()).await;
    assert!(w.active(other.refresh()).await && w.active(other.access()).await);
    assert!(!w.active("no-such-token").await);
}
