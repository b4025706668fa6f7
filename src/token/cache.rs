//! A bounded cache of verified tokens, so a client reusing its token pays
//! for the signature check once, not on every request.
//!
//! Only the signature and the time-independent claim checks are cached: the
//! caller still checks expiry, binding and route policy on every hit. An
//! entry names the key-set generation it was verified with, so a key
//! rotation invalidates it. Keys are SHA-256 digests of the token, which
//! keeps the memory per entry independent of how long tokens are and never
//! holds a bearer credential in memory longer than the request needs it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::VerifiedToken;

/// Shards keep lock contention low on many-core machines; 16 is plenty for the
/// sizes of box a sidecar runs on.
const SHARDS: usize = 16;

/// A rough per-entry cost beyond the payload: map slot, digest, Arc, claim structs.
const ENTRY_OVERHEAD: usize = 160;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A verified token and what it was verified against.
#[derive(Clone)]
pub struct CachedToken {
    pub token: Arc<VerifiedToken>,
    /// Index of the issuer in the validator that built the cache.
    pub issuer: usize,
    /// The issuer's key-set generation at verification time.
    pub generation: u64,
    /// What this entry counts against the byte budget.
    cost: usize,
}

impl CachedToken {
    pub fn new(token: Arc<VerifiedToken>, issuer: usize, generation: u64, token_len: usize) -> CachedToken {
        CachedToken {
            token,
            issuer,
            generation,
            cost: token_len + ENTRY_OVERHEAD,
        }
    }
}

#[derive(Default)]
struct Shard {
    entries: HashMap<TokenDigest, CachedToken>,
    bytes: usize,
    /// When stale entries were last swept out (seconds since the epoch). A
    /// sweep walks the whole shard, so a full cache under a flood of new
    /// tokens sweeps at most once a second and otherwise evicts at random.
    last_sweep: u64,
}

pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    /// Byte budget per shard; 0 disables the cache.
    shard_budget: usize,
    hasher: RandomState,
}

impl TokenCache {
    /// A cache holding about `max_bytes` of verified tokens; 0 disables it.
    pub fn new(max_bytes: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: max_bytes / SHARDS,
            hasher: RandomState::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    pub fn get(&self, key: &TokenDigest) -> Option<CachedToken> {
        let shard = self.shard(key).lock().ok()?;
        shard.entries.get(key).cloned()
    }

    pub fn remove(&self, key: &TokenDigest) {
        if let Ok(mut shard) = self.shard(key).lock()
            && let Some(old) = shard.entries.remove(key)
        {
            shard.bytes -= old.cost;
        }
    }

    /// Stores `entry`, evicting others of its shard until it fits. Entries
    /// for which `stale` holds go first; then arbitrary ones, which with a
    /// randomly seeded hasher is random eviction: cheap, and no access
    /// pattern can pin an entry.
    pub fn insert(&self, key: TokenDigest, entry: CachedToken, now: u64, stale: impl Fn(&CachedToken) -> bool) {
        if entry.cost > self.shard_budget {
            return;
        }
        let Ok(mut guard) = self.shard(&key).lock() else {
            return;
        };
        let shard = &mut *guard;
        if let Some(old) = shard.entries.remove(&key) {
            shard.bytes -= old.cost;
        }
        if shard.bytes + entry.cost > self.shard_budget && shard.last_sweep < now {
            shard.last_sweep = now;
            let before = shard.entries.len();
            shard.entries.retain(|_, e| !stale(e));
            if shard.entries.len() != before {
                shard.bytes = shard.entries.values().map(|e| e.cost).sum();
            }
        }
        while shard.bytes + entry.cost > self.shard_budget {
            let Some(victim) = shard.entries.keys().next().copied() else {
                break;
            };
            if let Some(old) = shard.entries.remove(&victim) {
                shard.bytes -= old.cost;
            }
        }
        shard.bytes += entry.cost;
        shard.entries.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.entries.len()).unwrap_or(0))
            .sum()
    }

    fn shard(&self, key: &TokenDigest) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Algorithm, Claims};

    fn verified() -> Arc<VerifiedToken> {
        let claims: Claims =
            serde_json::from_str(r#"{"iss":"https://issuer.example","aud":"https://api.example","exp":2000000000}"#)
                .unwrap();
        Arc::new(VerifiedToken {
            claims,
            alg: Algorithm::ES256,
        })
    }

    #[test]
    fn a_stored_entry_is_found_and_removed() {
        let cache = TokenCache::new(1 << 20);
        let key = digest("a.b.c");
        assert!(cache.get(&key).is_none());
        cache.insert(key, CachedToken::new(verified(), 0, 7, 5), 1, |_| false);
        let hit = cache.get(&key).unwrap();
        assert_eq!((hit.issuer, hit.generation), (0, 7));
        cache.remove(&key);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn the_byte_budget_bounds_the_entries() {
        let budget = SHARDS * 4 * (100 + ENTRY_OVERHEAD);
        let cache = TokenCache::new(budget);
        for i in 0..1000 {
            cache.insert(
                digest(&i.to_string()),
                CachedToken::new(verified(), 0, 0, 100),
                1,
                |_| false,
            );
        }
        assert!(cache.len() <= SHARDS * 4, "{} entries", cache.len());
        assert!(
            cache.len() >= SHARDS,
            "eviction emptied shards: {} entries",
            cache.len()
        );
    }

    #[test]
    fn stale_entries_are_evicted_before_live_ones() {
        let cache = TokenCache::new(SHARDS * 2 * (100 + ENTRY_OVERHEAD));
        let live = digest("live");
        cache.insert(live, CachedToken::new(verified(), 0, 1, 100), 1, |_| false);
        for i in 0..200u64 {
            // A new second for every insert, so every full shard gets its sweep.
            let entry = CachedToken::new(verified(), 0, 0, 100);
            cache.insert(digest(&i.to_string()), entry, 2 + i, |e| e.generation == 0);
        }
        assert!(cache.get(&live).is_some());
    }

    #[test]
    fn a_zero_budget_disables_the_cache() {
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        cache.insert(digest("t"), CachedToken::new(verified(), 0, 0, 1), 1, |_| false);
        assert!(cache.get(&digest("t")).is_none());
    }
}
