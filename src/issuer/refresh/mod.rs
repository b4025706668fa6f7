//! Refresh-token families: starting one ([`Families::start`], from a token
//! exchange), redeeming a refresh token ([`Families::redeem`]: rotation,
//! grace, reuse) and revoking one ([`Families::revoke`]).
//!
//! [`decide`] says what a presented token is; this module carries the
//! answer out on the store and reacts to losing a race: a compare-and-set
//! that matched nothing means the family moved on meanwhile, so the token is
//! looked up and decided again, now as the predecessor it has become.
//!
//! A refresh token is 256 random bits, base64url; the store keeps its
//! SHA-256 only. Nothing here logs a token.

mod decide;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use self::decide::{Decision, Request, decide};
use crate::auth::token::RevokedFamilies;
use crate::issuer::store::{
    Family, FamilyBinding, FamilyStore, NewFamily, Presented, RevokeReason, Rotation, RotationKind, StoreError,
    TokenHash,
};
use crate::metrics::Metrics;

/// How often a refresh re-decides after losing a compare-and-set before it
/// gives up with a 503: each loss means another request rotated the family,
/// and after two the token is stale for good, so this is never reached
/// but under a pathological storm.
const MAX_ATTEMPTS: usize = 8;

/// A refresh grant refused. Each maps to one `error` code and one label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("refresh_token is missing")]
    Missing,
    #[error("the refresh token is unknown or expired")]
    Unknown,
    #[error("the refresh token was issued to another client")]
    OtherClient,
    #[error("the refresh token's family was revoked")]
    FamilyRevoked,
    #[error("the refresh token's family has reached its absolute lifetime")]
    FamilyExpired,
    #[error("the refresh token's family was unused for longer than its idle timeout")]
    FamilyIdle,
    #[error("the refresh token was replaced by a retry of its predecessor")]
    Replaced,
    #[error("the refresh token was already used; its family is revoked")]
    Reused,
    #[error("the refresh token is bound to a key: prove it with a DPoP proof (or the certificate it is bound to)")]
    BindingMissing,
    #[error("the refresh token is bound to another key")]
    BindingMismatch,
    #[error("the refresh token is being refreshed concurrently; retry")]
    Contended,
    #[error("the refresh token could not be generated")]
    Random,
    /// The store's own error is logged where it happens; the client learns
    /// only that it may retry.
    #[error("the token store is unavailable; retry later")]
    Store(#[from] StoreError),
}

impl RefreshError {
    /// The RFC 6749 section 5.2 `error`.
    pub fn code(&self) -> &'static str {
        match self {
            RefreshError::Missing => "invalid_request",
            RefreshError::Unknown
            | RefreshError::OtherClient
            | RefreshError::FamilyRevoked
            | RefreshError::FamilyExpired
            | RefreshError::FamilyIdle
            | RefreshError::Replaced
            | RefreshError::Reused
            | RefreshError::BindingMissing
            | RefreshError::BindingMismatch => "invalid_grant",
            RefreshError::Contended | RefreshError::Store(_) => "temporarily_unavailable",
            RefreshError::Random => "server_error",
        }
    }

    /// The stable label of logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RefreshError::Missing => "refresh_token_missing",
            RefreshError::Unknown => "refresh_token_unknown",
            RefreshError::OtherClient => "refresh_token_other_client",
            RefreshError::FamilyRevoked => "family_revoked",
            RefreshError::FamilyExpired => "family_expired",
            RefreshError::FamilyIdle => "family_idle",
            RefreshError::Replaced => "refresh_token_replaced",
            RefreshError::Reused => "refresh_token_reused",
            RefreshError::BindingMissing => "refresh_binding_missing",
            RefreshError::BindingMismatch => "refresh_binding_mismatch",
            RefreshError::Contended => "refresh_contended",
            RefreshError::Random => "random_failed",
            RefreshError::Store(_) => "store_unavailable",
        }
    }
}

/// The families of one process: the store, shared by every generation, and
/// the revocations the gateway checks `sid` against.
pub struct Families {
    pub store: Arc<FamilyStore>,
    pub revoked: Arc<RevokedFamilies>,
    metrics: Arc<Metrics>,
    /// The access-token lifetime: how long a revoked family's tokens may still
    /// be presented, so how long the gateway must remember it.
    access_token_ttl: i64,
}

/// A family to start.
#[derive(Debug, Clone)]
pub struct Start<'a> {
    pub client_id: &'a str,
    pub subject: &'a str,
    pub scope: &'a [String],
    pub audience: &'a [String],
    pub binding: FamilyBinding,
    pub now: i64,
    pub absolute_lifetime: i64,
    pub idle_timeout: i64,
}

/// A family started, with its first refresh token.
#[derive(Debug)]
pub struct Started {
    pub family_id: String,
    pub refresh_token: String,
    /// Seconds the refresh token lives unless refreshed (the idle timeout, or
    /// the absolute lifetime if that is shorter).
    pub refresh_expires_in: i64,
}

/// A refresh token redeemed.
#[derive(Debug)]
pub struct Redeemed {
    /// The family after this refresh.
    pub family: Family,
    /// The successor, unless the family does not rotate.
    pub refresh_token: Option<String>,
    pub refresh_expires_in: i64,
}

impl Families {
    pub fn new(
        store: Arc<FamilyStore>,
        revoked: Arc<RevokedFamilies>,
        metrics: Arc<Metrics>,
        access_token_ttl: i64,
    ) -> Families {
        Families {
            store,
            revoked,
            metrics,
            access_token_ttl,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts a family; its row is committed before this returns.
    pub async fn start(&self, start: Start<'_>) -> Result<Started, RefreshError> {
        let family_id = random_text::<16>()?;
        let refresh_token = random_text::<32>()?;
        let expires_at = start.now.saturating_add(start.absolute_lifetime);
        let family = NewFamily {
            id: family_id.clone(),
            client_id: start.client_id.to_string(),
            subject: start.subject.to_string(),
            scope: start.scope.to_vec(),
            audience: start.audience.to_vec(),
            binding: start.binding,
            created_at: start.now,
            expires_at,
            idle_timeout: start.idle_timeout,
            token_hash: TokenHash::of(&refresh_token),
        };
        self.timed(self.store.create(&family)).await?;
        self.metrics.families.record_started();
        Ok(Started {
            family_id,
            refresh_token,
            refresh_expires_in: expires_at.min(start.now.saturating_add(start.idle_timeout)) - start.now,
        })
    }

    /// Redeems `token` for `request`: rotates, keeps, retries within the
    /// grace, or (for a stale token) revokes the family and refuses.
    ///
    /// `shape` decides what the new access token may say (scope, audience,
    /// binding) from the family, and runs before anything is written: a
    /// request refused for asking too much must not have spent its token.
    pub async fn redeem<T, E: From<RefreshError>>(
        &self,
        token: &str,
        request: &Request<'_>,
        shape: impl Fn(&Family) -> Result<T, E>,
    ) -> Result<(Redeemed, T), E> {
        let hash = TokenHash::of(token);
        for _ in 0..MAX_ATTEMPTS {
            let found = self.timed(self.store.find(&hash)).await.map_err(RefreshError::from)?;
            let presented = found.ok_or(RefreshError::Unknown)?;
            let family = &presented.family;
            let decision = decide(&presented, request)?;
            if decision == Decision::Reuse {
                self.reused(family, presented.generation, request.now)
                    .await
                    .map_err(RefreshError::from)?;
                return Err(RefreshError::Reused.into());
            }
            let shaped = shape(family)?;
            let rotation_kind = match decision {
                // Handled above, before shaping.
                Decision::Reuse => return Err(RefreshError::Reused.into()),
                Decision::Keep => {
                    let touch = self.store.touch(&family.id, family.generation, request.now);
                    if self.timed(touch).await.map_err(RefreshError::from)? {
                        let mut family = presented.family;
                        family.last_used_at = request.now;
                        let redeemed = Redeemed {
                            refresh_expires_in: family.usable_until() - request.now,
                            family,
                            refresh_token: None,
                        };
                        return Ok((redeemed, shaped));
                    }
                    continue;
                }
                Decision::Rotate => RotationKind::Advance,
                Decision::GraceRetry => RotationKind::GraceRetry {
                    predecessor: presented.generation,
                },
            };
            let successor = random_text::<32>()?;
            let expected_generation = family.generation;
            let rotation = Rotation {
                family_id: &family.id,
                expected_generation,
                kind: rotation_kind,
                successor: TokenHash::of(&successor),
                now: request.now,
            };
            if !self
                .timed(self.store.rotate(&rotation))
                .await
                .map_err(RefreshError::from)?
            {
                continue;
            }
            let mut family = presented.family;
            family.generation += 1;
            family.last_used_at = request.now;
            match rotation_kind {
                RotationKind::Advance => {
                    family.parent_generation = Some(expected_generation);
                    family.rotated_at = request.now;
                    family.grace_retries = 0;
                    self.metrics.families.record_rotation();
                }
                RotationKind::GraceRetry { .. } => {
                    family.grace_retries += 1;
                    self.metrics.families.record_grace_retry();
                }
            }
            let redeemed = Redeemed {
                refresh_expires_in: family.usable_until() - request.now,
                family,
                refresh_token: Some(successor),
            };
            return Ok((redeemed, shaped));
        }
        Err(RefreshError::Contended.into())
    }

    /// The family and standing of a presented refresh token (for
    /// introspection and revocation), timed and counted as every store call.
    pub async fn find(&self, token: &str) -> Result<Option<Presented>, StoreError> {
        self.timed(self.store.find(&TokenHash::of(token))).await
    }

    /// A family by id, timed and counted as every store call.
    pub async fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        self.timed(self.store.family(id)).await
    }

    /// Revokes a family: the store first, then the gateway's set. `true` if
    /// this call revoked it. Only a committed revocation is reported.
    pub async fn revoke(&self, family_id: &str, reason: RevokeReason, now: i64) -> Result<bool, StoreError> {
        let revoked = self.timed(self.store.revoke(family_id, reason, now)).await?;
        // Also when another request revoked it first: remembering twice is harmless.
        self.remember_revoked(family_id, now);
        if revoked {
            self.metrics.families.record_revocation(reason.label());
        }
        Ok(revoked)
    }

    /// Adds a revocation (this process's, or another replica's) to the
    /// gateway's set, for as long as an access token of it can live.
    pub fn remember_revoked(&self, family_id: &str, revoked_at: i64) {
        let forget_after = revoked_at
            .saturating_add(self.access_token_ttl)
            .saturating_add(LEEWAY_SECONDS);
        self.revoked.insert(family_id, forget_after);
    }

    /// A stale token: the family dies, the event is logged for the security
    /// team (ids and generations only) and counted.
    async fn reused(&self, family: &Family, presented_generation: i64, now: i64) -> Result<(), StoreError> {
        self.metrics.families.record_reuse();
        tracing::warn!(
            target: "bindgate::security",
            event = "refresh_token_reuse",
            client_id = %family.client_id,
            family_id = %family.id,
            presented_generation,
            current_generation = family.generation,
            "a rotated-away refresh token was presented again; its family is revoked"
        );
        self.revoke(&family.id, RevokeReason::Reuse, now).await.map(|_| ())
    }

    /// Times a store call and counts its failure.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.families.record_store_call(started.elapsed());
        if let Err(e) = &result {
            self.metrics.families.record_store_error(e.label());
            tracing::error!(error = %e, "family store call failed");
        }
        result
    }
}

/// Clock skew allowed between the replica that revoked and the gateway that
/// checks, on top of the access-token lifetime.
const LEEWAY_SECONDS: i64 = 120;

/// `N` random bytes, base64url without padding.
fn random_text<const N: usize>() -> Result<String, RefreshError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RefreshError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_own_label() {
        let all = [
            RefreshError::Missing,
            RefreshError::Unknown,
            RefreshError::OtherClient,
            RefreshError::FamilyRevoked,
            RefreshError::FamilyExpired,
            RefreshError::FamilyIdle,
            RefreshError::Replaced,
            RefreshError::Reused,
            RefreshError::BindingMissing,
            RefreshError::BindingMismatch,
            RefreshError::Contended,
            RefreshError::Random,
            RefreshError::Store(StoreError::Unavailable(String::new())),
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(RefreshError::label).collect();
        assert_eq!(labels.len(), all.len());
        assert_eq!(RefreshError::Reused.code(), "invalid_grant");
        assert_eq!(RefreshError::Missing.code(), "invalid_request");
    }

    #[test]
    fn refresh_tokens_are_256_random_bits() {
        let a = random_text::<32>().unwrap();
        let b = random_text::<32>().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
