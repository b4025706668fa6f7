//! The embedded store: one SQLite file in WAL mode with `synchronous =
//! FULL`, so an answered refresh survives a crash of the process or the
//! machine.
//!
//! One thread owns the connection. Requests queue to it; it takes all that
//! are waiting and runs them in one transaction, each in its own savepoint,
//! then commits once and answers them all: a group commit, one fsync for
//! every refresh that arrived meanwhile, instead of one each. No answer
//! leaves before its commit, so no token is handed out whose row could
//! still be lost.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::schema::{self, FAMILY_COLUMNS};
use super::{
    Family, FamilyBinding, FamilyFilter, MAX_GRACE_RETRIES, NewFamily, Presented, RevokeReason, RevokedFamily,
    Rotation, RotationKind, StoreError, TokenHash, join_list, split_list,
};

/// The most requests one transaction takes: bounds how long the first of
/// them waits behind the others.
const MAX_BATCH: usize = 256;

/// How long a statement waits for a lock held by another process (the
/// `bindgate families` command on the same file) before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs inside the transaction; returns what to do once it has committed (or not).
type Job = Box<dyn FnOnce(&Connection) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating with mode 0600) and migrates the file, then starts
    /// its thread.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_connection(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the SQLite opener panicked: {e}")))??;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("bindgate-sqlite".into())
            .spawn(move || run(conn, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite thread: {e}")))?;
        Ok(SqliteStore { jobs })
    }

    /// Runs `op` in the next transaction and answers once that committed.
    async fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, op);
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = answer.send(committed.and(result));
            })
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    pub async fn create(&self, family: &NewFamily) -> Result<(), StoreError> {
        let family = family.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO families (id, client_id, subject, scope, audience, binding_kind, binding_value, \
                 generation, parent_generation, rotated_at, grace_retries, created_at, expires_at, last_used_at, \
                 idle_timeout) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, NULL, ?8, 0, ?8, ?9, ?8, ?10)",
                params![
                    family.id,
                    family.client_id,
                    family.subject,
                    join_list(&family.scope),
                    join_list(&family.audience),
                    family.binding.kind(),
                    family.binding.value(),
                    family.created_at,
                    family.expires_at,
                    family.idle_timeout,
                ],
            )?;
            insert_token(conn, &family.token_hash, &family.id, 0, family.created_at)
        })
        .await
    }

    pub async fn find(&self, token: &TokenHash) -> Result<Option<Presented>, StoreError> {
        let hash = token.0;
        let found = self
            .call(move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT t.generation, t.replaced, {FAMILY_COLUMNS} FROM refresh_tokens t \
                         JOIN families f ON f.id = t.family_id WHERE t.hash = ?1"
                    ),
                    params![hash.as_slice()],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, bool>(1)?, family_row(row, 2)?)),
                )
                .optional()
            })
            .await?;
        found
            .map(|(generation, replaced, family)| {
                Ok(Presented {
                    family: family?,
                    generation,
                    replaced,
                })
            })
            .transpose()
    }

    pub async fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {FAMILY_COLUMNS} FROM families f WHERE f.id = ?1"),
                params![id],
                |row| family_row(row, 0),
            )
            .optional()
        })
        .await?
        .transpose()
    }

    pub async fn rotate(&self, rotation: &Rotation<'_>) -> Result<bool, StoreError> {
        let id = rotation.family_id.to_string();
        let (expected, kind, successor, now) = (
            rotation.expected_generation,
            rotation.kind,
            rotation.successor,
            rotation.now,
        );
        self.call(move |conn| {
            let won = match kind {
                RotationKind::Advance => conn.execute(
                    "UPDATE families SET generation = generation + 1, parent_generation = ?2, rotated_at = ?3, \
                     grace_retries = 0, last_used_at = ?3 \
                     WHERE id = ?1 AND generation = ?2 AND revoked_at IS NULL",
                    params![id, expected, now],
                )?,
                RotationKind::GraceRetry { predecessor } => {
                    let won = conn.execute(
                        "UPDATE families SET generation = generation + 1, grace_retries = grace_retries + 1, \
                         last_used_at = ?3 WHERE id = ?1 AND generation = ?2 AND parent_generation = ?4 \
                         AND grace_retries < ?5 AND revoked_at IS NULL",
                        params![id, expected, now, predecessor, MAX_GRACE_RETRIES],
                    )?;
                    if won == 1 {
                        conn.execute(
                            "UPDATE refresh_tokens SET replaced = 1 WHERE family_id = ?1 AND generation = ?2",
                            params![id, expected],
                        )?;
                    }
                    won
                }
            };
            if won != 1 {
                return Ok(false);
            }
            insert_token(conn, &successor, &id, expected + 1, now)?;
            Ok(true)
        })
        .await
    }

    pub async fn touch(&self, family_id: &str, generation: i64, now: i64) -> Result<bool, StoreError> {
        let id = family_id.to_string();
        self.call(move |conn| {
            let touched = conn.execute(
                "UPDATE families SET last_used_at = ?3 WHERE id = ?1 AND generation = ?2 AND revoked_at IS NULL",
                params![id, generation, now],
            )?;
            Ok(touched == 1)
        })
        .await
    }

    pub async fn revoke(&self, family_id: &str, reason: RevokeReason, now: i64) -> Result<bool, StoreError> {
        let id = family_id.to_string();
        self.call(move |conn| {
            let revoked = conn.execute(
                "UPDATE families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now, reason.label()],
            )?;
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
        let subject = subject.to_string();
        self.call(move |conn| {
            let mut statement = conn.prepare(
                "UPDATE families SET revoked_at = ?2, revoked_reason = ?3 \
                 WHERE subject = ?1 AND revoked_at IS NULL RETURNING id",
            )?;
            let ids = statement.query_map(params![subject, now, reason.label()], |row| row.get(0))?;
            ids.collect()
        })
        .await
    }

    pub async fn list(&self, filter: &FamilyFilter) -> Result<Vec<Family>, StoreError> {
        let filter = filter.clone();
        let rows = self
            .call(move |conn| {
                let mut statement = conn.prepare(&format!(
                    "SELECT {FAMILY_COLUMNS} FROM families f WHERE (?1 IS NULL OR f.subject = ?1) \
                     AND (?2 IS NULL OR f.client_id = ?2) ORDER BY f.created_at DESC, f.id"
                ))?;
                let rows = statement.query_map(params![filter.subject, filter.client_id], |row| family_row(row, 0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().collect()
    }

    pub async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedFamily>, StoreError> {
        self.call(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, revoked_at, expires_at FROM families WHERE revoked_at IS NOT NULL AND revoked_at >= ?1",
            )?;
            let rows = statement.query_map(params![since], |row| {
                Ok(RevokedFamily {
                    id: row.get(0)?,
                    revoked_at: row.get(1)?,
                    expires_at: row.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.call(move |conn| {
            // The tokens go by ON DELETE CASCADE (foreign keys are on).
            let purged = conn.execute(
                "DELETE FROM families WHERE id IN (SELECT id FROM families \
                 WHERE expires_at < ?1 OR last_used_at + idle_timeout < ?1 LIMIT ?2)",
                params![before, limit],
            )?;
            Ok(purged as u64)
        })
        .await
    }

    pub async fn count_active(&self, now: i64) -> Result<u64, StoreError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM families WHERE revoked_at IS NULL AND expires_at > ?1 \
                 AND last_used_at + idle_timeout > ?1",
                params![now],
                |row| row.get::<_, i64>(0),
            )
        })
        .await
        .map(|count| count.max(0) as u64)
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite thread gave no answer (its error is logged)".into())
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {e}"))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        location: format!("sqlite:{}", path.display()),
        reason,
    };
    create_private(path).map_err(|e| open_error(e.to_string()))?;
    let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(e.to_string()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(|e| open_error(e.to_string()))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(|e| open_error(e.to_string()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(format!("journal_mode is {mode}, not wal")));
    }
    migrate(&conn).map_err(|e| match e {
        StoreError::Unavailable(reason) => open_error(reason),
        other => other,
    })?;
    Ok(conn)
}

/// Creates the file readable by its owner only, before SQLite creates it
/// with the umask's mode; its `-wal` and `-shm` files take the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(unavailable)?;
    let result = (|| {
        conn.execute_batch(schema::VERSION_TABLE).map_err(unavailable)?;
        let found: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM bindgate_schema", [], |row| row.get(0))
            .map_err(unavailable)?;
        let found = found.unwrap_or(0);
        for step in schema::pending(found)? {
            conn.execute_batch(schema::SQLITE[step]).map_err(unavailable)?;
        }
        conn.execute("DELETE FROM bindgate_schema", []).map_err(unavailable)?;
        conn.execute(
            "INSERT INTO bindgate_schema (version) VALUES (?1)",
            params![schema::VERSION.max(found)],
        )
        .map_err(unavailable)?;
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(unavailable)?;
    result
}

/// The thread: take what is queued, run it in one transaction, commit, answer.
fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN").map_err(unavailable);
        let deliveries: Vec<Deliver> = match &began {
            Ok(()) => batch.into_iter().map(|job| job(&conn)).collect(),
            Err(e) => {
                let e = e.clone();
                batch.into_iter().for_each(|job| drop(job));
                tracing::error!(error = %e, "the family store could not begin a transaction");
                continue;
            }
        };
        let committed = conn.execute_batch("COMMIT").map_err(unavailable);
        if let Err(e) = &committed {
            tracing::error!(error = %e, "the family store could not commit");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for deliver in deliveries {
            deliver(committed.clone());
        }
    }
}

/// One request's statements, all or none, without failing the others of its batch.
fn in_savepoint<T>(conn: &Connection, op: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT request").map_err(unavailable)?;
    match op(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE request").map_err(unavailable)?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO request; RELEASE request");
            Err(unavailable(e))
        }
    }
}

fn insert_token(
    conn: &Connection,
    hash: &TokenHash,
    family_id: &str,
    generation: i64,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO refresh_tokens (hash, family_id, generation, replaced, issued_at) VALUES (?1, ?2, ?3, 0, ?4)",
        params![hash.0.as_slice(), family_id, generation, now],
    )?;
    Ok(())
}

/// A family from the `FAMILY_COLUMNS` of `row`, starting at column `at`.
/// The outer `Result` is SQLite's, the inner one a row this bindgate cannot read.
fn family_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Result<Family, StoreError>> {
    let binding_kind: String = row.get(at + 5)?;
    let binding_value: String = row.get(at + 6)?;
    let binding = match FamilyBinding::from_columns(&binding_kind, binding_value) {
        Ok(binding) => binding,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Family {
        id: row.get(at)?,
        client_id: row.get(at + 1)?,
        subject: row.get(at + 2)?,
        scope: split_list(&row.get::<_, String>(at + 3)?),
        audience: split_list(&row.get::<_, String>(at + 4)?),
        binding,
        generation: row.get(at + 7)?,
        parent_generation: row.get(at + 8)?,
        rotated_at: row.get(at + 9)?,
        grace_retries: row.get(at + 10)?,
        created_at: row.get(at + 11)?,
        expires_at: row.get(at + 12)?,
        last_used_at: row.get(at + 13)?,
        idle_timeout: row.get(at + 14)?,
        revoked_at: row.get(at + 15)?,
        revoked_reason: row.get(at + 16)?,
    }))
}
