//! Scope and audience on refresh (RFC 6749 section 6): a refresh may ask
//! for less than the family was granted, never more, and asking for more
//! is refused before the token is spent.

use super::*;

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_and_a_wider_one_is_refused_without_spending_the_token() {
    let w = family_world(Options::default()).await;
    let key = DpopKey::new();
    let start = w.exchange("hal", &key).await;
    assert_eq!(start.issued.claims["scope"], SCOPE);

    let narrow = tokens(
        &w.refresh_as(APP, None, start.refresh(), Some(&key), &[("scope", "orders:read")])
            .await,
    );
    assert_eq!(narrow.issued.scope.as_deref(), Some("orders:read"));
    assert_eq!(narrow.issued.claims["scope"], "orders:read");
    assert_eq!(narrow.sid(), start.sid());
    w.assert_passes(narrow.access(), &key, "hal").await;
    let token = narrow.refresh();

    // More than the family's scope, or another audience.
    let wider = w
        .refresh_as(APP, None, token, Some(&key), &[("scope", "orders:read admin")])
        .await;
    assert_token_error(&wider, 400, "invalid_scope");
    w.assert_token_reasons("scope_not_allowed", 1).await;
    let elsewhere = w
        .refresh_as(APP, None, token, Some(&key), &[("resource", OTHER_API)])
        .await;
    assert_token_error(&elsewhere, 400, "invalid_target");
    w.assert_token_reasons("resource_not_allowed", 1).await;

    // The token was not spent: still live, and it refreshes (no reuse).
    assert!(w.active(token).await);
    // Asking for nothing gives the family's whole scope back: narrowing
    // one access token does not narrow the family.
    let full = w.refreshed(token, &key).await;
    assert_eq!(full.issued.scope.as_deref(), Some(SCOPE));
    assert_eq!(full.issued.claims["aud"], serde_json::json!(API));
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "bindgate_as_token_errors_total{error=\"invalid_scope\"}"),
        1.0,
        "{metrics}"
    );
}
