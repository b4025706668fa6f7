//! Refresh-token families, where every replica sees the same ones: an
//! embedded SQLite file ([`sqlite`]) or a shared PostgreSQL server
//! ([`postgres`]), one schema ([`schema`]) for both.
//!
//! The store keeps facts and applies compare-and-sets; it decides nothing.
//! What a presented refresh token is (current, grace-eligible predecessor,
//! reuse) is decided by `issuer::refresh` from a [`Presented`], and carried
//! out here with a [`Rotation`] whose `UPDATE ... WHERE generation = ?` wins
//! for exactly one of any number of concurrent callers: the row count says
//! which.
//!
//! Only a refresh token's SHA-256 ([`TokenHash`]) is stored, never the token.

pub mod postgres;
pub mod schema;
pub mod sqlite;

use std::fmt;

use sha2::{Digest, Sha256};

use crate::config::StoreLocation;

/// The most times the predecessor may be retried within the grace (design.md).
pub const MAX_GRACE_RETRIES: i64 = 3;

/// A family store, embedded or shared. An enum rather than a trait object:
/// two backends, async methods, and no boxing on the refresh path.
pub enum FamilyStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// The SHA-256 of a refresh token: what the store keys tokens by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl fmt::Debug for TokenHash {
    // Not the token, but no reason to print even its hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// What a family's refresh tokens are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FamilyBinding {
    /// A public client's DPoP key (RFC 9449 section 5): every refresh proves it.
    Dpop { jkt: String },
    /// A public client's (self-signed) certificate (RFC 8705 section 4).
    Certificate { x5t_s256: String },
    /// A confidential client: its client authentication binds the family.
    Client,
}

impl FamilyBinding {
    /// The stored `binding_kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            FamilyBinding::Dpop { .. } => "dpop",
            FamilyBinding::Certificate { .. } => "certificate",
            FamilyBinding::Client => "client",
        }
    }

    /// The stored `binding_value` column: the thumbprint, or empty.
    pub fn value(&self) -> &str {
        match self {
            FamilyBinding::Dpop { jkt } => jkt,
            FamilyBinding::Certificate { x5t_s256 } => x5t_s256,
            FamilyBinding::Client => "",
        }
    }

    pub fn from_columns(kind: &str, value: String) -> Result<FamilyBinding, StoreError> {
        match kind {
            "dpop" => Ok(FamilyBinding::Dpop { jkt: value }),
            "certificate" => Ok(FamilyBinding::Certificate { x5t_s256: value }),
            "client" => Ok(FamilyBinding::Client),
            other => Err(StoreError::Corrupt(format!("unknown binding_kind {other:?}"))),
        }
    }
}

/// A family about to be started, with its first refresh token (generation 0).
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: String,
    pub client_id: String,
    pub subject: String,
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub binding: FamilyBinding,
    pub created_at: i64,
    /// `created_at` + the absolute lifetime: rotation never moves it.
    pub expires_at: i64,
    /// Seconds without a refresh after which the family is dead.
    pub idle_timeout: i64,
    pub token_hash: TokenHash,
}

/// A family as stored. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub subject: String,
    /// The most any of its access tokens may carry; a refresh may narrow it per token.
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub binding: FamilyBinding,
    /// The generation of its one live refresh token.
    pub generation: i64,
    /// The generation the live token was minted from: the grace-eligible
    /// predecessor. `None` until the first rotation.
    pub parent_generation: Option<i64>,
    /// When the predecessor was first rotated away: the grace runs from here,
    /// and a grace retry does not move it.
    pub rotated_at: i64,
    /// Grace retries of the predecessor since it was rotated away.
    pub grace_retries: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
    pub idle_timeout: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl Family {
    /// The moment the family stops being usable unless refreshed first.
    pub fn idle_deadline(&self) -> i64 {
        self.last_used_at.saturating_add(self.idle_timeout)
    }

    /// When its last refresh token dies, whichever limit comes first.
    pub fn usable_until(&self) -> i64 {
        self.expires_at.min(self.idle_deadline())
    }

    /// Neither revoked, expired nor idle at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.usable_until()
    }
}

/// A presented refresh token: its family, and where in the family it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub family: Family,
    pub generation: i64,
    /// Superseded by a grace retry before anyone used it.
    pub replaced: bool,
}

/// One compare-and-set on a family's generation, with the successor's row.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    pub family_id: &'a str,
    /// The generation the decision was made on: the compare of the compare-and-set.
    pub expected_generation: i64,
    pub kind: RotationKind,
    /// The successor, generation `expected_generation + 1`.
    pub successor: TokenHash,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationKind {
    /// The live token was used: it becomes the predecessor, the successor the
    /// live token, the grace clock and its retries start over.
    Advance,
    /// The predecessor was retried within the grace: the unused live token is
    /// marked replaced, the successor takes its place, the predecessor stays
    /// the predecessor. Fails once `MAX_GRACE_RETRIES` were spent, or when
    /// `predecessor` no longer is one.
    GraceRetry { predecessor: i64 },
}

/// Why a family was revoked: the `revoked_reason` column and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// A rotated-away refresh token was presented again.
    Reuse,
    /// RFC 7009 revocation of one of its tokens.
    Revocation,
    /// `bindgate families revoke`.
    Operator,
}

impl RevokeReason {
    pub fn label(self) -> &'static str {
        match self {
            RevokeReason::Reuse => "reuse",
            RevokeReason::Revocation => "revocation",
            RevokeReason::Operator => "operator",
        }
    }
}

/// A revoked family, whose access tokens the gateway refuses until the last
/// one minted before `revoked_at` has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedFamily {
    pub id: String,
    pub revoked_at: i64,
    pub expires_at: i64,
}

/// Which families `list` returns; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct FamilyFilter {
    pub subject: Option<String>,
    pub client_id: Option<String>,
}

/// Why the store could not answer. Every one is a 503 at the endpoints:
/// no token is issued, and no revocation is confirmed, without its row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the family store {location} could not be opened: {reason}")]
    Open { location: String, reason: String },
    #[error("the family store's schema is version {found}; this bindgate knows up to {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the family store is unavailable: {0}")]
    Unavailable(String),
    #[error("the family store holds a malformed row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The `bindgate_as_store_errors_total` label.
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "open",
            StoreError::SchemaTooNew { .. } => "schema",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
        }
    }
}

/// Scope and audience lists are stored space-joined: neither a scope token
/// (RFC 6749 section 3.3) nor an audience URI holds a space.
pub fn join_list(items: &[String]) -> String {
    items.join(" ")
}

pub fn split_list(text: &str) -> Vec<String> {
    text.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            FamilyStore::Sqlite($store) => $call,
            FamilyStore::Postgres($store) => $call,
        }
    };
}

impl FamilyStore {
    /// Opens the store and migrates its schema; a SQLite file is created
    /// (mode 0600) when missing.
    pub async fn open(location: &StoreLocation) -> Result<FamilyStore, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Ok(FamilyStore::Sqlite(sqlite::SqliteStore::open(path).await?)),
            StoreLocation::Postgres(url) => Ok(FamilyStore::Postgres(postgres::PostgresStore::open(url).await?)),
        }
    }

    /// The backend's name, for metrics and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            FamilyStore::Sqlite(_) => "sqlite",
            FamilyStore::Postgres(_) => "postgres",
        }
    }

    /// Inserts a family and its generation-0 token, in one transaction.
    pub async fn create(&self, family: &NewFamily) -> Result<(), StoreError> {
        dispatch!(self, store => store.create(family).await)
    }

    /// The family and standing of a presented token, if it is one of ours.
    pub async fn find(&self, token: &TokenHash) -> Result<Option<Presented>, StoreError> {
        dispatch!(self, store => store.find(token).await)
    }

    /// The family by id.
    pub async fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        dispatch!(self, store => store.family(id).await)
    }

    /// Applies a rotation: `true` if this caller's compare-and-set won, and
    /// the successor's row is committed; `false` if the family moved on or
    /// was revoked meanwhile, and nothing was written.
    pub async fn rotate(&self, rotation: &Rotation<'_>) -> Result<bool, StoreError> {
        dispatch!(self, store => store.rotate(rotation).await)
    }

    /// A refresh without rotation: slides the idle timeout. `false` if the
    /// family was revoked or rotated meanwhile.
    pub async fn touch(&self, family_id: &str, generation: i64, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, store => store.touch(family_id, generation, now).await)
    }

    /// Revokes a family: `true` if this call did, `false` if it already was
    /// revoked or does not exist.
    pub async fn revoke(&self, family_id: &str, reason: RevokeReason, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, store => store.revoke(family_id, reason, now).await)
    }

    /// Revokes every live family of a subject; returns the ids this call revoked.
    pub async fn revoke_subject(
        &self,
        subject: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, store => store.revoke_subject(subject, reason, now).await)
    }

    /// Families matching `filter`, newest first.
    pub async fn list(&self, filter: &FamilyFilter) -> Result<Vec<Family>, StoreError> {
        dispatch!(self, store => store.list(filter).await)
    }

    /// Families revoked at or after `since` (purged ones are gone).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedFamily>, StoreError> {
        dispatch!(self, store => store.revoked_since(since).await)
    }

    /// Deletes up to `limit` families (and their tokens) whose refresh tokens
    /// all died before `before` (expired or idle; a revoked family stays
    /// until then too, so replicas still learn of it); returns how many.
    pub async fn purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        dispatch!(self, store => store.purge(before, limit).await)
    }

    /// How many families are active at `now`.
    pub async fn count_active(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, store => store.count_active(now).await)
    }
}
