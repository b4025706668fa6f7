//! Where seen proofs are recorded: in this process, or in Redis so that a
//! proof replayed to another replica behind the same load balancer is caught.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::replay::{ReplayCache, ReplayError, ReplayKey};
use crate::config::ReplayStoreSettings;
use crate::throttle::Throttle;

/// Keys in Redis: a prefix so the database can be shared, then the hex replay key.
const REDIS_PREFIX: &str = "bindgate:dpop:jti:";

/// After a failed connection attempt, requests fail fast for this long
/// instead of each waiting for its own connect timeout.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

pub enum ReplayStore {
    Memory(ReplayCache),
    Redis(Box<RedisReplay>),
}

impl ReplayStore {
    pub fn new(settings: &ReplayStoreSettings) -> Result<ReplayStore, redis::RedisError> {
        Ok(match settings {
            ReplayStoreSettings::Memory { max_entries } => ReplayStore::Memory(ReplayCache::new(*max_entries)),
            ReplayStoreSettings::Redis { url, timeout } => {
                ReplayStore::Redis(Box::new(RedisReplay::new(url, *timeout)?))
            }
        })
    }

    /// The label of this store in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplayStore::Memory(_) => "memory",
            ReplayStore::Redis(_) => "redis",
        }
    }

    /// Records `key` until `expires_at` (seconds since the epoch); fails if
    /// it was recorded before and has not expired.
    pub async fn check_and_record(&self, key: ReplayKey, expires_at: f64, now: f64) -> Result<(), ReplayError> {
        match self {
            ReplayStore::Memory(cache) => cache.check_and_record(key, expires_at.ceil() as u64, now as u64),
            ReplayStore::Redis(redis) => {
                // At least a second, so a proof at the edge of its window is still recorded.
                let ttl_ms = (((expires_at - now) * 1000.0).ceil() as u64).max(1000);
                redis.check_and_record(&key, ttl_ms).await
            }
        }
    }
}

/// A replay store on Redis: `SET key 1 NX PX ttl` records and checks in one
/// atomic step, so two replicas racing with the same proof cannot both win.
pub struct RedisReplay {
    client: redis::Client,
    timeout: Duration,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_failed_connect: Mutex<Option<Instant>>,
    /// An outage fails every request the same way: logged once in a while.
    failure_log: Throttle,
}

impl RedisReplay {
    /// Connects lazily: a Redis that is down at start makes requests fail
    /// (or pass, with `replay_store_failure = "open"`), not the gateway.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisReplay, redis::RedisError> {
        Ok(RedisReplay {
            client: redis::Client::open(url)?,
            timeout,
            connection: tokio::sync::Mutex::new(None),
            last_failed_connect: Mutex::new(None),
            failure_log: Throttle::new(super::check::OUTAGE_LOG_INTERVAL),
        })
    }

    async fn check_and_record(&self, key: &ReplayKey, ttl_ms: u64) -> Result<(), ReplayError> {
        let mut connection = self.connection().await?;
        let name = redis_key(key);
        let command = redis::cmd("SET")
            .arg(&name)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .to_owned();
        let reply: Result<Option<String>, _> = match tokio::time::timeout(
            self.timeout,
            command.query_async(&mut connection),
        )
        .await
        {
            Ok(reply) => reply,
            Err(_) => {
                if let Some(held_back) = self.failure_log.admit() {
                    tracing::warn!(timeout = ?self.timeout, since_last_warning = held_back, "DPoP replay store did not answer in time");
                }
                return Err(ReplayError::Unavailable);
            }
        };
        match reply {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ReplayError::Replayed),
            Err(e) => {
                if let Some(held_back) = self.failure_log.admit() {
                    tracing::warn!(error = %e, since_last_warning = held_back, "DPoP replay store failed");
                }
                Err(ReplayError::Unavailable)
            }
        }
    }

    /// A handle on the shared connection, connecting first if there is none.
    /// The connection manager reconnects by itself once it exists.
    async fn connection(&self) -> Result<ConnectionManager, ReplayError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let last_failed = *crate::lock::lock(&self.last_failed_connect).ok_or(ReplayError::Unavailable)?;
        let recently_failed = last_failed.is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF);
        if recently_failed {
            return Err(ReplayError::Unavailable);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        match tokio::time::timeout(
            self.timeout.saturating_mul(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(connection)) => {
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Ok(Err(e)) => {
                if let Some(held_back) = self.failure_log.admit() {
                    tracing::warn!(error = %e, since_last_warning = held_back, "cannot connect to the DPoP replay store");
                }
                self.connect_failed();
                Err(ReplayError::Unavailable)
            }
            Err(_) => {
                if let Some(held_back) = self.failure_log.admit() {
                    tracing::warn!(
                        since_last_warning = held_back,
                        "connecting to the DPoP replay store timed out"
                    );
                }
                self.connect_failed();
                Err(ReplayError::Unavailable)
            }
        }
    }

    fn connect_failed(&self) {
        if let Some(mut last) = crate::lock::lock(&self.last_failed_connect) {
            *last = Some(Instant::now());
        }
    }
}

fn redis_key(key: &ReplayKey) -> String {
    let mut name = String::with_capacity(REDIS_PREFIX.len() + 64);
    name.push_str(REDIS_PREFIX);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in key {
        name.push(char::from(HEX[usize::from(byte >> 4)]));
        name.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::dpop::replay::replay_key;

    #[test]
    fn redis_keys_are_prefixed_hex() {
        let name = redis_key(&replay_key("jkt", "jti"));
        assert!(name.starts_with(REDIS_PREFIX));
        assert_eq!(name.len(), REDIS_PREFIX.len() + 64);
        assert!(name[REDIS_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn the_memory_store_refuses_a_second_use() {
        let store = ReplayStore::new(&ReplayStoreSettings::Memory { max_entries: 100 }).unwrap();
        let key = replay_key("jkt", "jti");
        assert_eq!(store.check_and_record(key, 1060.0, 1000.0).await, Ok(()));
        assert_eq!(
            store.check_and_record(key, 1070.0, 1010.0).await,
            Err(ReplayError::Replayed)
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_fresh() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", closed.local_addr().unwrap());
        drop(closed);
        let store = ReplayStore::new(&ReplayStoreSettings::Redis {
            url,
            timeout: Duration::from_millis(200),
        })
        .unwrap();
        let key = replay_key("jkt", "jti");
        assert_eq!(
            store.check_and_record(key, 1060.0, 1000.0).await,
            Err(ReplayError::Unavailable)
        );
    }
}
