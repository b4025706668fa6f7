//! The shared store: a PostgreSQL server several bindgate replicas use at
//! once. Rotation is one `UPDATE ... WHERE generation = $n` under READ
//! COMMITTED: of concurrent updates of one row, the later ones wait for the
//! first to commit, re-check the `WHERE` on its result, and match nothing.
//!
//! TLS, when the server offers it (`sslmode` as libpq spells it), is always
//! verified, hostname included: against `sslrootcert=PATH` from the URL,
//! otherwise the system's roots. libpq's `require` skips that check; a
//! store of refresh tokens should not.

use std::path::Path;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::{self, FAMILY_COLUMNS};
use super::{
    Family, FamilyBinding, FamilyFilter, MAX_GRACE_RETRIES, NewFamily, Presented, RevokeReason, RevokedFamily,
    Rotation, RotationKind, StoreError, TokenHash, join_list, split_list,
};
use crate::config::StoreLocation;

/// Connections per process: enough for the refreshes two cores can serve.
const POOL_SIZE: usize = 16;

/// The longest a request waits for the store, connection included, before
/// it is answered 503 rather than left hanging on a dead server.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serializes migrations of replicas starting at once (any constant will do).
const MIGRATION_LOCK: i64 = 0x6269_6e64_6761_7465;

pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let location = StoreLocation::Postgres(url.to_string()).to_string();
        let open_error = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        let (url, root_file) = take_sslrootcert(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| open_error(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        let tls = tls_connector(root_file.as_deref()).map_err(&open_error)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let store = PostgresStore { pool };
        store.migrate().await.map_err(|e| match e {
            StoreError::Unavailable(reason) => open_error(reason),
            other => other,
        })?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(unavailable)?;
        tx.batch_execute(schema::VERSION_TABLE).await.map_err(unavailable)?;
        let found: Option<i64> = tx
            .query_one("SELECT MAX(version) FROM bindgate_schema", &[])
            .await
            .map_err(unavailable)?
            .get(0);
        let found = found.unwrap_or(0);
        for step in schema::pending(found)? {
            tx.batch_execute(schema::POSTGRES[step]).await.map_err(unavailable)?;
        }
        tx.execute("DELETE FROM bindgate_schema", &[])
            .await
            .map_err(unavailable)?;
        run(
            &tx,
            "INSERT INTO bindgate_schema (version) VALUES ($1)",
            &[&schema::VERSION.max(found)],
        )
        .await?;
        tx.commit().await.map_err(unavailable)
    }

    pub async fn create(&self, family: &NewFamily) -> Result<(), StoreError> {
        bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            run(
                &tx,
                "INSERT INTO families (id, client_id, subject, scope, audience, binding_kind, binding_value, \
                 generation, parent_generation, rotated_at, grace_retries, created_at, expires_at, last_used_at, \
                 idle_timeout) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, NULL, $8, 0, $8, $9, $8, $10)",
                &[
                    &family.id,
                    &family.client_id,
                    &family.subject,
                    &join_list(&family.scope),
                    &join_list(&family.audience),
                    &family.binding.kind(),
                    &family.binding.value(),
                    &family.created_at,
                    &family.expires_at,
                    &family.idle_timeout,
                ],
            )
            .await?;
            insert_token(&tx, &family.token_hash, &family.id, 0, family.created_at).await?;
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    pub async fn find(&self, token: &TokenHash) -> Result<Option<Presented>, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&format!(
                    "SELECT t.generation, t.replaced, {FAMILY_COLUMNS} FROM refresh_tokens t \
                     JOIN families f ON f.id = t.family_id WHERE t.hash = $1"
                ))
                .await
                .map_err(unavailable)?;
            let Some(row) = client
                .query_opt(&statement, &[&token.0.as_slice()])
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            Ok(Some(Presented {
                generation: row.try_get(0).map_err(corrupt)?,
                replaced: row.try_get(1).map_err(corrupt)?,
                family: family_row(&row, 2)?,
            }))
        })
        .await
    }

    pub async fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!("SELECT {FAMILY_COLUMNS} FROM families f WHERE f.id = $1"),
                    &[&id],
                )
                .await
                .map_err(unavailable)?;
            row.map(|row| family_row(&row, 0)).transpose()
        })
        .await
    }

    pub async fn rotate(&self, rotation: &Rotation<'_>) -> Result<bool, StoreError> {
        bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let id = rotation.family_id;
            let expected = rotation.expected_generation;
            let won = match rotation.kind {
                RotationKind::Advance => {
                    run(
                        &tx,
                        "UPDATE families SET generation = generation + 1, parent_generation = $2, rotated_at = $3, \
                         grace_retries = 0, last_used_at = $3 \
                         WHERE id = $1 AND generation = $2 AND revoked_at IS NULL",
                        &[&id, &expected, &rotation.now],
                    )
                    .await?
                }
                RotationKind::GraceRetry { predecessor } => {
                    let won = run(
                        &tx,
                        "UPDATE families SET generation = generation + 1, grace_retries = grace_retries + 1, \
                             last_used_at = $3 WHERE id = $1 AND generation = $2 AND parent_generation = $4 \
                             AND grace_retries < $5 AND revoked_at IS NULL",
                        &[&id, &expected, &rotation.now, &predecessor, &MAX_GRACE_RETRIES],
                    )
                    .await?;
                    if won == 1 {
                        run(
                            &tx,
                            "UPDATE refresh_tokens SET replaced = TRUE WHERE family_id = $1 AND generation = $2",
                            &[&id, &expected],
                        )
                        .await?;
                    }
                    won
                }
            };
            if won != 1 {
                // Nothing written; dropping the transaction rolls it back.
                return Ok(false);
            }
            insert_token(&tx, &rotation.successor, id, expected + 1, rotation.now).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    pub async fn touch(&self, family_id: &str, generation: i64, now: i64) -> Result<bool, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let touched = run(
                &client,
                "UPDATE families SET last_used_at = $3 WHERE id = $1 AND generation = $2 AND revoked_at IS NULL",
                &[&family_id, &generation, &now],
            )
            .await?;
            Ok(touched == 1)
        })
        .await
    }

    pub async fn revoke(&self, family_id: &str, reason: RevokeReason, now: i64) -> Result<bool, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let revoked = run(
                &client,
                "UPDATE families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
                &[&family_id, &now, &reason.label()],
            )
            .await?;
            Ok(revoked == 1)
        })
        .await
    }

    pub async fn revoke_subject(
        &self,
        subject: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "UPDATE families SET revoked_at = $2, revoked_reason = $3 \
                     WHERE subject = $1 AND revoked_at IS NULL RETURNING id",
                    &[&subject, &now, &reason.label()],
                )
                .await
                .map_err(unavailable)?;
            rows.iter().map(|row| row.try_get(0).map_err(corrupt)).collect()
        })
        .await
    }

    pub async fn list(&self, filter: &FamilyFilter) -> Result<Vec<Family>, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {FAMILY_COLUMNS} FROM families f WHERE ($1::TEXT IS NULL OR f.subject = $1) \
                         AND ($2::TEXT IS NULL OR f.client_id = $2) ORDER BY f.created_at DESC, f.id"
                    ),
                    &[&filter.subject, &filter.client_id],
                )
                .await
                .map_err(unavailable)?;
            rows.iter().map(|row| family_row(row, 0)).collect()
        })
        .await
    }

    pub async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedFamily>, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id, revoked_at, expires_at FROM families \
                     WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
                )
                .await
                .map_err(unavailable)?;
            let rows = client.query(&statement, &[&since]).await.map_err(unavailable)?;
            rows.iter()
                .map(|row| {
                    Ok(RevokedFamily {
                        id: row.try_get(0).map_err(corrupt)?,
                        revoked_at: row.try_get(1).map_err(corrupt)?,
                        expires_at: row.try_get(2).map_err(corrupt)?,
                    })
                })
                .collect()
        })
        .await
    }

    pub async fn purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        bounded(async {
            let client = self.client().await?;
            run(
                &client,
                "DELETE FROM families WHERE id IN (SELECT id FROM families \
                     WHERE expires_at < $1 OR last_used_at + idle_timeout < $1 LIMIT $2)",
                &[&before, &limit],
            )
            .await
        })
        .await
    }

    pub async fn count_active(&self, now: i64) -> Result<u64, StoreError> {
        bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT COUNT(*) FROM families WHERE revoked_at IS NULL AND expires_at > $1 \
                     AND last_used_at + idle_timeout > $1",
                    &[&now],
                )
                .await
                .map_err(unavailable)?;
            let count: i64 = row.try_get(0).map_err(corrupt)?;
            Ok(count.max(0) as u64)
        })
        .await
    }
}

/// Bounds a whole store call, so a server that stopped answering mid-query
/// costs a request 5 s and a 503, not a hung connection.
async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "PostgreSQL did not answer within {TIMEOUT:?}"
        )))
    })
}

/// Runs a statement prepared once per connection: the refresh path's
/// statements are few and hot, and an unnamed one costs a round trip each time.
async fn run(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
    client.execute(&statement, params).await.map_err(unavailable)
}

fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: {e}"))
}

fn corrupt(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

async fn insert_token(
    tx: &deadpool_postgres::Transaction<'_>,
    hash: &TokenHash,
    family_id: &str,
    generation: i64,
    now: i64,
) -> Result<(), StoreError> {
    run(
        tx,
        "INSERT INTO refresh_tokens (hash, family_id, generation, replaced, issued_at) VALUES ($1, $2, $3, FALSE, $4)",
        &[&hash.0.as_slice(), &family_id, &generation, &now],
    )
    .await?;
    Ok(())
}

fn family_row(row: &Row, at: usize) -> Result<Family, StoreError> {
    let text = |i: usize| row.try_get::<_, String>(at + i).map_err(corrupt);
    let number = |i: usize| row.try_get::<_, i64>(at + i).map_err(corrupt);
    Ok(Family {
        id: text(0)?,
        client_id: text(1)?,
        subject: text(2)?,
        scope: split_list(&text(3)?),
        audience: split_list(&text(4)?),
        binding: FamilyBinding::from_columns(&text(5)?, text(6)?)?,
        generation: number(7)?,
        parent_generation: row.try_get(at + 8).map_err(corrupt)?,
        rotated_at: number(9)?,
        grace_retries: number(10)?,
        created_at: number(11)?,
        expires_at: number(12)?,
        last_used_at: number(13)?,
        idle_timeout: number(14)?,
        revoked_at: row.try_get(at + 15).map_err(corrupt)?,
        revoked_reason: row.try_get(at + 16).map_err(corrupt)?,
    })
}

/// Splits libpq's `sslrootcert=PATH` off the URL: tokio-postgres refuses
/// parameters it does not know, and the roots are ours to load. libpq's
/// `verify-ca` and `verify-full` become `require`, which tokio-postgres
/// knows: the rustls connector verifies the chain and the hostname anyway.
fn take_sslrootcert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter_map(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(path.to_string());
                None
            }
            None if pair == "sslmode=verify-full" || pair == "sslmode=verify-ca" => Some("sslmode=require"),
            None => Some(pair),
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

fn tls_connector(root_file: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let roots = crate::conn::pem::trust_store(root_file.map(Path::new))
        .map_err(|e| format!("sslrootcert {}: {e}", root_file.unwrap_or("(system roots)")))?;
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_off_the_url_and_the_rest_kept() {
        assert_eq!(
            take_sslrootcert("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem&application_name=x"),
            (
                "postgres://u@h/db?sslmode=require&application_name=x".to_string(),
                Some("/ca.pem".to_string())
            )
        );
        assert_eq!(
            take_sslrootcert("postgres://u@h/db?sslrootcert=ca.pem"),
            ("postgres://u@h/db".to_string(), Some("ca.pem".to_string()))
        );
        assert_eq!(
            take_sslrootcert("postgres://u@h/db"),
            ("postgres://u@h/db".to_string(), None)
        );
    }
}
