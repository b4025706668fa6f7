//! The family store's place in the process: opened once at start (and again
//! only when a reload names another store), shared by every generation, and
//! kept up by two background tasks: a poller that learns the revocations
//! other replicas (or `bindgate families revoke`) committed, and a purger
//! that deletes dead families in small batches, so neither blocks a refresh.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::auth::token::RevokedFamilies;
use crate::config::{AuthorizationServerSettings, Config, ConfigError};
use crate::issuer::refresh::Families;
use crate::issuer::store::FamilyStore;
use crate::metrics::Metrics;

/// How often the poller asks the store for revocations: the bound on how
/// late a replica's gateway learns of another replica's revocation.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Revocations are looked up from this many seconds before the latest one
/// seen, so one committed on a replica whose clock is a little behind, or
/// in the same second as the last poll, is not missed.
const POLL_OVERLAP_SECONDS: i64 = 5;

const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Families per purge statement: small enough that a refresh queued behind
/// it (SQLite has one writer) waits milliseconds.
const PURGE_BATCH: i64 = 500;

/// This generation's families: `carried`, the previous generation's store
/// when the location is unchanged, otherwise a newly opened one, with its
/// tasks.
pub async fn families(
    config: &Config,
    settings: &AuthorizationServerSettings,
    revoked: &Arc<RevokedFamilies>,
    metrics: &Arc<Metrics>,
    carried: Option<Arc<FamilyStore>>,
) -> Result<Arc<Families>, ConfigError> {
    let access_token_ttl = settings.access_token_ttl.as_secs().min(i64::MAX as u64) as i64;
    let store = match carried {
        Some(store) => store,
        None => {
            let store =
                FamilyStore::open(&settings.store)
                    .await
                    .map(Arc::new)
                    .map_err(|e| ConfigError::InvalidValue {
                        file: config.source.clone(),
                        key: "authorization_server.store".into(),
                        reason: e.to_string(),
                    })?;
            tracing::info!(store = %settings.store, "family store open");
            let families = Families::new(store.clone(), revoked.clone(), metrics.clone(), access_token_ttl);
            // Before any listener opens: after a restart, a family revoked
            // before it must not have its access tokens accepted until the
            // first poll.
            let since = load_revocations(&families)
                .await
                .map_err(|e| ConfigError::InvalidValue {
                    file: config.source.clone(),
                    key: "authorization_server.store".into(),
                    reason: e.to_string(),
                })?;
            spawn_maintenance(Arc::downgrade(&store), Arc::new(families), access_token_ttl, since);
            store
        }
    };
    Ok(Arc::new(Families::new(
        store,
        revoked.clone(),
        metrics.clone(),
        access_token_ttl,
    )))
}

/// Starts the poller and the purger of a newly opened store. Their own
/// `families` holds the store too, so they stop once theirs is the last
/// reference: a reload that named another store let go of this one.
fn spawn_maintenance(alive: Weak<FamilyStore>, families: Arc<Families>, access_token_ttl: i64, since: i64) {
    let poller = families.clone();
    let poller_alive = alive.clone();
    tokio::spawn(async move {
        let mut since = since;
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if poller_alive.strong_count() <= 1 {
                return;
            }
            match poller
                .store
                .revoked_since(since.saturating_sub(POLL_OVERLAP_SECONDS))
                .await
            {
                Ok(revoked) => {
                    for family in revoked {
                        poller.remember_revoked(&family.id, family.revoked_at);
                        since = since.max(family.revoked_at);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot poll the family store for revocations"),
            }
        }
    });
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PURGE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if alive.strong_count() <= 1 {
                return;
            }
            purge(&families, access_token_ttl).await;
        }
    });
}

/// Every revocation the store holds, into the gateway's set; returns the
/// latest `revoked_at`, where the poller goes on from.
async fn load_revocations(families: &Families) -> Result<i64, crate::issuer::store::StoreError> {
    let mut latest = i64::MIN;
    for family in families.store.revoked_since(i64::MIN).await? {
        families.remember_revoked(&family.id, family.revoked_at);
        latest = latest.max(family.revoked_at);
    }
    Ok(latest)
}

/// Deletes the families dead for longer than an access token lives (their
/// revocations no longer matter to the gateway), then counts the living.
async fn purge(families: &Families, access_token_ttl: i64) {
    let now = crate::issuer::client_request::unix_now() as i64;
    families.revoked.prune(now);
    let before = now.saturating_sub(access_token_ttl).saturating_sub(120);
    loop {
        match families.store.purge(before, PURGE_BATCH).await {
            Ok(purged) if purged as i64 >= PURGE_BATCH => tokio::task::yield_now().await,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot purge the family store");
                return;
            }
        }
    }
    match families.store.count_active(now).await {
        Ok(active) => families.metrics().families.set_active(active),
        Err(e) => tracing::warn!(error = %e, "cannot count the active families"),
    }
}
