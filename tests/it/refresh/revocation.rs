//! RFC 7009 revocation: a refresh token, or an access token naming its
//! family in `sid`, revokes the family as reuse does; an unknown token is a
//! 200; another client's token, or an access token outside any family, is
//! refused and revokes nothing; and a store that cannot commit is a 503,
//! never a 200.

use super::*;

#[track_caller]
fn assert_revoked_reply(reply: &Reply) {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.is_empty(), "{:?}", reply.body);
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
}

#[tokio::test]
async fn revoking_a_refresh_or_an_access_token_revokes_its_whole_family() {
    let w = family_world(Options::default()).await;
    let (key, other_key) = (DpopKey::new(), DpopKey::new());

    // By its refresh token: the app signing out.
    let start = w.exchange("ida", &key).await;
    let current = w.refreshed(start.refresh(), &key).await;
    assert_revoked_reply(&w.revoke(current.refresh()).await);
    assert_invalid_grant(&w.refresh(current.refresh(), &key).await);
    w.assert_token_reasons("family_revoked", 1).await;
    w.assert_refused(current.access(), &key, "token_revoked").await;
    w.assert_refused(start.access(), &key, "token_revoked").await;
    // Revoking it again changes nothing and is still a 200.
    assert_revoked_reply(&w.revoke(current.refresh()).await);

    // By an access token of the family.
    let family = w.exchange("ida", &other_key).await;
    let refreshed = w.refreshed(family.refresh(), &other_key).await;
    assert_revoked_reply(&w.revoke(family.access()).await);
    assert_invalid_grant(&w.refresh(refreshed.refresh(), &other_key).await);
    w.assert_refused(refreshed.access(), &other_key, "token_revoked").await;
    assert!(!w.active(refreshed.refresh()).await);

    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &revocations("revocation")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
    assert!(w.gw.stderr().contains("event=\"family_revoked\""), "{}", w.gw.stderr());
}

#[tokio::test]
async fn unknown_tokens_are_a_200_and_others_or_unrevocable_tokens_are_refused_revoking_nothing() {
    let w = family_world(Options::default()).await;
    let key = DpopKey::new();
    let client_a = &w.s.pki.client_a;
    let live = w.exchange("jan", &key).await;

    // Not a token of ours: the goal, that it does not work, holds (RFC 7009 section 2.2).
    for unknown in ["not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        assert_revoked_reply(&w.revoke(unknown).await);
    }
    // Another client's refresh or access token.
    for token in [live.refresh(), live.access()] {
        let reply = w.revoke_as(OTHER_APP, None, token).await;
        assert_token_error(&reply, 400, "unauthorized_client");
    }
    // A client_credentials access token has no family to revoke.
    let own = tokens(
        &w.post(Some(client_a), TOKEN_PATH, certificate_form(INTROSPECTOR, &[]), &[])
            .await,
    );
    assert!(own.issued.claims.get("sid").is_none(), "{:?}", own.issued.claims);
    let reply = w.revoke_as(INTROSPECTOR, Some(client_a), own.access()).await;
    assert_token_error(&reply, 400, "unsupported_token_type");

    // Nothing was revoked.
    assert!(rows(&w.metrics().await, "bindgate_as_family_revocations_total").is_empty());
    assert!(w.active(live.refresh()).await);
    w.assert_passes(live.access(), &key, "jan").await;
    let next = w.refreshed(live.refresh(), &key).await;
    w.assert_passes(next.access(), &key, "jan").await;
    assert_eq!(
        sample(
            &w.metrics().await,
            "bindgate_as_requests_total{endpoint=\"/revoke\",status=\"400\"}"
        ),
        3.0
    );
}

#[tokio::test]
async fn a_store_that_cannot_commit_is_a_503_and_never_a_200() {
    let w = family_world(Options::default()).await;
    let key = DpopKey::new();
    let family = w.exchange("kim", &key).await;

    let broken = BrokenStore::new(&w.store_path());
    let how = broken.how;
    for token in [family.refresh(), family.access()] {
        let reply = w.revoke(token).await;
        assert_token_error(&reply, 503, "temporarily_unavailable");
    }
    // Nor is anything issued that the store could not keep.
    let refresh = w.refresh(family.refresh(), &key).await;
    assert_token_error(&refresh, 503, "temporarily_unavailable");
    w.assert_token_reasons("store_unavailable", 1).await;
    let exchange = w.exchange_as(APP, None, "kim", Some(&key)).await;
    assert_token_error(&exchange, 503, "temporarily_unavailable");
    let metrics = w.metrics().await;
    assert!(
        sample(&metrics, "bindgate_as_store_errors_total{error=\"unavailable\"}") >= 4.0,
        "{how}: {metrics}"
    );
    assert!(
        rows(&metrics, "bindgate_as_family_revocations_total").is_empty(),
        "{metrics}"
    );
    drop(broken);

    // No revocation was committed, so none is in force anywhere.
    w.assert_passes(family.access(), &key, "kim").await;
    assert!(w.active(family.refresh()).await, "{how}");
    // Repaired, the store commits the revocation and only then answers 200.
    assert_revoked_reply(&w.revoke(family.refresh()).await);
    assert_invalid_grant(&w.refresh(family.refresh(), &key).await);
    w.assert_refused(family.access(), &key, "token_revoked").await;
    assert_eq!(w.metric(&revocations("revocation")).await, 1.0);
}
