//! Rotation and reuse: each refresh hands out a new refresh token in the
//! same family; a rotated-away one presented again revokes the family, its
//! access tokens at the gateway included, and nothing else. A refresh must
//! prove the family's DPoP key, and a refused proof spends nothing.

use super::*;

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_family_at_the_gateway_and_no_other() {
    let w = family_world(Options {
        grace: "0s",
        ..Options::default()
    })
    .await;
    let (phone, tablet) = (DpopKey::new(), DpopKey::new());
    let first = w.exchange("alice", &phone).await;
    assert_eq!(first.refresh_expires_in, Some(IDLE_SECONDS), "{:?}", first.json);
    assert_eq!(first.issued.scope.as_deref(), Some(SCOPE));
    w.assert_passes(first.access(), &phone, "alice").await;
    // Another device of the same person: a family of its own.
    let other = w.exchange("alice", &tablet).await;
    assert_ne!(other.sid(), first.sid());

    let second = w.refreshed(first.refresh(), &phone).await;
    let third = w.refreshed(second.refresh(), &phone).await;
    assert_ne!(third.refresh(), first.refresh());
    for refreshed in [&second, &third] {
        assert_eq!(refreshed.sid(), first.sid(), "the same family");
        assert_eq!(refreshed.issued.claims["sub"], "alice");
        assert_eq!(refreshed.issued.claims["client_id"], APP);
        assert_ne!(refreshed.issued.claims["jti"], first.issued.claims["jti"]);
        assert!(refreshed.json.get("issued_token_type").is_none(), "not an exchange");
    }
    w.assert_passes(third.access(), &phone, "alice").await;

    // The first refresh token again: a copy exists, the family dies.
    assert_invalid_grant(&w.refresh(first.refresh(), &phone).await);
    w.assert_token_reasons("refresh_token_reused", 1).await;
    // The app's current refresh token, and a stale one, are refused now;
    // neither counts as a second reuse.
    assert_invalid_grant(&w.refresh(third.refresh(), &phone).await);
    assert_invalid_grant(&w.refresh(second.refresh(), &phone).await);
    w.assert_token_reasons("family_revoked", 2).await;
    // Every access token of the family, the current one first.
    w.assert_refused(third.access(), &phone, "token_revoked").await;
    w.assert_refused(first.access(), &phone, "token_revoked").await;

    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &revocations("reuse")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, FAMILIES_STARTED_TOTAL), 2.0, "{metrics}");
    let issued = |grant: &str| format!("bindgate_as_tokens_issued_total{{grant=\"{grant}\",binding=\"dpop\"}}");
    assert_eq!(sample(&metrics, &issued(TOKEN_EXCHANGE)), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &issued("refresh_token")), 2.0, "{metrics}");
    let refreshes: Vec<String> = token_access_lines(&w.gw)
        .into_iter()
        .filter(|l| field(l, "grant").as_deref() == Some("refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 5, "{refreshes:#?}");
    for line in &refreshes[..2] {
        assert_eq!(field(line, "reason").as_deref(), Some("served"), "{line}");
        assert_eq!(field(line, "binding").as_deref(), Some("dpop"), "{line}");
        assert_eq!(field(line, "client_id").as_deref(), Some(APP), "{line}");
    }
    let log = w.gw.stderr();
    let event = log
        .lines()
        .find(|l| l.contains("refresh_token_reuse"))
        .unwrap_or_else(|| panic!("no reuse event:\n{log}"));
    assert!(event.contains(&first.sid()), "the event names the family: {event}");
    for token in [first.refresh(), second.refresh(), third.refresh()] {
        assert!(!log.contains(token), "a refresh token in the log");
    }

    // The other device never noticed.
    w.assert_passes(other.access(), &tablet, "alice").await;
    let other_next = w.refreshed(other.refresh(), &tablet).await;
    assert_eq!(other_next.sid(), other.sid());
    w.assert_passes(other_next.access(), &tablet, "alice").await;
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 1.0, "{metrics}");
    assert_eq!(
        rows(&metrics, "bindgate_as_family_revocations_total").len(),
        1,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refresh_must_prove_the_familys_key_and_a_refused_one_spends_nothing() {
    let w = family_world(Options::default()).await;
    let (key, thief) = (DpopKey::new(), DpopKey::new());
    let client_a = &w.s.pki.client_a;
    let start = w.exchange("bob", &key).await;
    let token = start.refresh();

    // Another key's proof.
    assert_invalid_grant(&w.refresh(token, &thief).await);
    w.assert_token_reasons("refresh_binding_mismatch", 1).await;
    // No proof at all, then no proof but a client certificate: a
    // certificate is no proof of the family's DPoP key.
    assert_invalid_grant(&w.refresh_as(APP, None, token, None, &[]).await);
    assert_invalid_grant(&w.refresh_as(APP, Some(client_a), token, None, &[]).await);
    w.assert_token_reasons("refresh_binding_missing", 2).await;
    // Another client, with the right key.
    assert_invalid_grant(&w.refresh_as(OTHER_APP, None, token, Some(&key), &[]).await);
    w.assert_token_reasons("refresh_token_other_client", 1).await;

    // None of that revoked or rotated anything.
    assert!(w.active(token).await, "still the family's live token");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), 0.0, "{metrics}");
    assert!(
        rows(&metrics, "bindgate_as_family_revocations_total").is_empty(),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "bindgate_as_token_errors_total{error=\"invalid_grant\"}"),
        4.0,
        "{metrics}"
    );
    w.assert_passes(start.access(), &key, "bob").await;

    // The right key refreshes; the thief fails on the new token as on the old.
    let next = w.refreshed(token, &key).await;
    w.assert_passes(next.access(), &key, "bob").await;
    assert_invalid_grant(&w.refresh(next.refresh(), &thief).await);
    w.assert_token_reasons("refresh_binding_mismatch", 2).await;
    let last = w.refreshed(next.refresh(), &key).await;
    assert_eq!(last.sid(), start.sid());
    assert_eq!(w.metric(REUSE_TOTAL).await, 0.0);
}
