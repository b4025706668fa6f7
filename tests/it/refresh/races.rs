//! Races: concurrent refreshes of one token, each on its own connection
//! with its own fresh proof of the family's key, never leave two live
//! branches (design.md: rotation is one compare-and-set, and a grace retry
//! replaces the unused successor); and a revocation racing refreshes takes
//! everything of the family down, whatever was minted meanwhile.
//!
//! Which answered tokens still work is asked by introspection, which has
//! no side effects: presenting a stale token would itself be reuse.

use std::sync::Arc;

use super::*;

const ROUNDS: usize = 20;
const RACERS: usize = 20;

/// The 200s of one round, read; every other answer must be an `invalid_grant`.
fn winners(round: usize, replies: Vec<Result<Reply, String>>) -> Vec<Tokens> {
    let mut won = Vec::new();
    for reply in replies {
        let reply = reply.unwrap_or_else(|e| panic!("round {round}: {e}"));
        match reply.status.as_u16() {
            200 => won.push(tokens(&reply)),
            400 => assert_invalid_grant(&reply),
            other => panic!("round {round}: {other} {:?}", reply.body),
        }
    }
    won
}

/// One family per round, its first refresh token presented `racers` times at once.
async fn race(w: &FamilyWorld, round: usize, racers: usize) -> (Tokens, Vec<Tokens>, DpopKey) {
    let key = DpopKey::new();
    let start = w.exchange(&format!("racer-{round}"), &key).await;
    let requests = (0..racers).map(|_| app_refresh(start.refresh(), &key)).collect();
    let replies = send_together(&w.as_client(None), w.as_addr(), requests).await;
    (start, winners(round, replies), key)
}

/// How many of `tokens`' refresh tokens introspection says are live.
async fn live(w: &FamilyWorld, tokens: &[Tokens]) -> usize {
    let mut live = 0;
    for t in tokens {
        live += usize::from(w.active(t.refresh()).await);
    }
    live
}

#[tokio::test]
async fn twenty_concurrent_refreshes_of_one_token_never_leave_two_live_branches() {
    let w = family_world(Options::default()).await;
    for round in 0..ROUNDS {
        let (start, won, _) = race(&w, round, RACERS).await;
        // One rotation and at most three grace retries; the rest is reuse.
        assert!(
            (1..=4).contains(&won.len()),
            "round {round}: {} answered 200",
            won.len()
        );
        assert!(live(&w, &won).await <= 1, "round {round}: two live branches");
        assert!(!w.active(start.refresh()).await);
    }
    // Twenty presentations of one token are more than a lost response
    // explains: every family was revoked, once.
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &revocations("reuse")), ROUNDS as f64, "{metrics}");
    assert_eq!(sample(&metrics, ROTATIONS_TOTAL), ROUNDS as f64, "{metrics}");
}

#[tokio::test]
async fn concurrent_retries_within_the_grace_limit_all_succeed_and_leave_exactly_one_live_token() {
    let w = family_world(Options::default()).await;
    for round in 0..ROUNDS {
        // A rotation and the three retries the grace allows.
        let (start, won, key) = race(&w, round, 4).await;
        assert_eq!(won.len(), 4, "round {round}");
        assert!(won.iter().all(|t| t.sid() == start.sid()));
        assert_eq!(live(&w, &won).await, 1, "round {round}");
        let mut survivor = None;
        for t in &won {
            if w.active(t.refresh()).await {
                survivor = Some(t);
            }
        }
        let survivor = survivor.unwrap();
        let next = w.refreshed(survivor.refresh(), &key).await;
        w.assert_passes(next.access(), &key, &format!("racer-{round}")).await;
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, GRACE_RETRIES_TOTAL), (3 * ROUNDS) as f64, "{metrics}");
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
}

#[tokio::test]
async fn without_grace_exactly_one_of_twenty_concurrent_refreshes_succeeds() {
    let w = family_world(Options {
        grace: "0s",
        ..Options::default()
    })
    .await;
    for round in 0..ROUNDS {
        let (_, won, key) = race(&w, round, RACERS).await;
        assert_eq!(won.len(), 1, "round {round}");
        // The losers presented a rotated-away token: reuse, so the winner's
        // branch is revoked too, at the gateway as well.
        assert!(!w.active(won[0].refresh()).await, "round {round}");
        w.assert_refused(won[0].access(), &key, "token_revoked").await;
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &revocations("reuse")), ROUNDS as f64, "{metrics}");
    assert_eq!(sample(&metrics, GRACE_RETRIES_TOTAL), 0.0, "{metrics}");
}

/// Refreshes `token` in a chain until refused (bounded): every token minted, and the refusal.
async fn refresh_chain(
    client: TlsClient,
    addr: std::net::SocketAddr,
    key: Arc<DpopKey>,
    token: String,
) -> (Vec<Tokens>, Reply) {
    let mut minted: Vec<Tokens> = Vec::new();
    let mut current = token;
    for _ in 0..500 {
        let reply = client.send(addr, app_refresh(&current, &key)).await.unwrap();
        if reply.status != 200 {
            return (minted, reply);
        }
        let next = tokens(&reply);
        current = next.refresh().to_string();
        minted.push(next);
    }
    panic!("500 refreshes and the revocation never took effect");
}

#[tokio::test]
async fn a_revocation_racing_refreshes_leaves_nothing_of_the_family_working() {
    const FAMILIES: usize = 6;
    let w = family_world(Options::default()).await;
    let (client, addr) = (w.as_client(None), w.as_addr());
    let mut families = Vec::new();
    for family in 0..FAMILIES {
        let key = Arc::new(DpopKey::new());
        let start = w.exchange(&format!("owner-{family}"), &key).await;
        let chain = tokio::spawn(refresh_chain(
            client.clone(),
            addr,
            key.clone(),
            start.refresh().to_string(),
        ));
        // The app signs out with the token it started with, while refreshing.
        let (client, token) = (client.clone(), start.refresh().to_string());
        let revocation = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(15 * (family as u64 + 1))).await;
            let body = form(&[("token", &token), ("client_id", APP)]);
            client.send(addr, post_request("/revoke", body, &[])).await.unwrap()
        });
        families.push((key, start, chain, revocation));
    }
    for (family, (key, start, chain, revocation)) in families.into_iter().enumerate() {
        let revoked = revocation.await.unwrap();
        assert_eq!(revoked.status, 200, "family {family}: {:?}", revoked.body);
        let (minted, refused) = chain.await.unwrap();
        assert_invalid_grant(&refused);
        // Whatever was minted before, during or after: none of it works now.
        for t in std::iter::once(&start).chain(&minted) {
            assert!(!w.active(t.refresh()).await, "family {family}");
            assert!(!w.active(t.access()).await, "family {family}");
            w.assert_refused(t.access(), &key, "token_revoked").await;
        }
    }
    let metrics = w.metrics().await;
    assert_eq!(
        sample(&metrics, &revocations("revocation")),
        FAMILIES as f64,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, REUSE_TOTAL), 0.0, "{metrics}");
}
