//! The one schema both backends keep, and its migrations. A store records
//! its version in `bindgate_schema`; opening it applies every later
//! migration in one transaction, and refuses a store newer than this binary
//! (an older bindgate must not write rows it does not understand).
//!
//! The two dialects differ only in the type of the token hash (`BLOB` or
//! `BYTEA`) and of a boolean; timestamps are Unix seconds in 64-bit integers.

/// The version this bindgate writes.
pub const VERSION: i64 = 1;

/// `SQLITE[n]` migrates a SQLite store from version `n` to `n + 1`.
pub const SQLITE: [&str; VERSION as usize] = [r#"
CREATE TABLE families (
    id                TEXT PRIMARY KEY,
    client_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    scope             TEXT NOT NULL,
    audience          TEXT NOT NULL,
    binding_kind      TEXT NOT NULL,
    binding_value     TEXT NOT NULL,
    generation        INTEGER NOT NULL,
    parent_generation INTEGER,
    rotated_at        INTEGER NOT NULL,
    grace_retries     INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    last_used_at      INTEGER NOT NULL,
    idle_timeout      INTEGER NOT NULL,
    revoked_at        INTEGER,
    revoked_reason    TEXT
);
CREATE INDEX families_by_subject ON families (subject);
CREATE INDEX families_by_client ON families (client_id);
CREATE INDEX families_by_revocation ON families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX families_by_expiry ON families (expires_at);
CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    replaced   INTEGER NOT NULL DEFAULT 0,
    issued_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id, generation);
"#];

/// `POSTGRES[n]` migrates a PostgreSQL store from version `n` to `n + 1`.
pub const POSTGRES: [&str; VERSION as usize] = [r#"
CREATE TABLE families (
    id                TEXT PRIMARY KEY,
    client_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    scope             TEXT NOT NULL,
    audience          TEXT NOT NULL,
    binding_kind      TEXT NOT NULL,
    binding_value     TEXT NOT NULL,
    generation        BIGINT NOT NULL,
    parent_generation BIGINT,
    rotated_at        BIGINT NOT NULL,
    grace_retries     BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    last_used_at      BIGINT NOT NULL,
    idle_timeout      BIGINT NOT NULL,
    revoked_at        BIGINT,
    revoked_reason    TEXT
);
CREATE INDEX families_by_subject ON families (subject);
CREATE INDEX families_by_client ON families (client_id);
CREATE INDEX families_by_revocation ON families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX families_by_expiry ON families (expires_at);
CREATE TABLE refresh_tokens (
    hash       BYTEA PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    replaced   BOOLEAN NOT NULL DEFAULT FALSE,
    issued_at  BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id, generation);
"#];

/// Creates the version table; harmless when it exists.
pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS bindgate_schema (version BIGINT NOT NULL)";

/// The family columns, in the order `Family` is read from a row.
pub const FAMILY_COLUMNS: &str = "f.id, f.client_id, f.subject, f.scope, f.audience, f.binding_kind, \
     f.binding_value, f.generation, f.parent_generation, f.rotated_at, f.grace_retries, f.created_at, \
     f.expires_at, f.last_used_at, f.idle_timeout, f.revoked_at, f.revoked_reason";

/// Which migrations a store at version `found` needs, or why it cannot be used.
pub fn pending(found: i64) -> Result<std::ops::Range<usize>, super::StoreError> {
    if found > VERSION {
        return Err(super::StoreError::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    let from = usize::try_from(found).map_err(|_| super::StoreError::Corrupt(format!("schema version {found}")))?;
    Ok(from..VERSION as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_store_is_refused_and_an_older_one_migrated() {
        assert_eq!(pending(0).unwrap(), 0..1);
        assert_eq!(pending(VERSION).unwrap(), 1..1);
        assert!(matches!(
            pending(VERSION + 1),
            Err(super::super::StoreError::SchemaTooNew { .. })
        ));
        assert!(pending(-1).is_err());
    }
}
