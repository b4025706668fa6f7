//! The in-process DPoP replay cache: each proof's `jti` (with its key) may be
//! used once within the `iat` acceptance window. Bounded memory, O(1) checks,
//! entries dropped as they age out of the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Why a proof is refused by the replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the proof's jti was already used")]
    Replayed,
    /// Failing closed: accepting without recording would let a replay through.
    #[error("the replay cache is full")]
    Full,
    /// A shared store could not be asked; what that means is the caller's policy.
    #[error("the replay store is unavailable")]
    Unavailable,
}

/// 32 bytes per entry whatever the `jti` length: the SHA-256 of key thumbprint and `jti`.
pub type ReplayKey = [u8; 32];

/// The cache key of a proof.
pub fn replay_key(jkt: &str, jti: &str) -> ReplayKey {
    let mut hasher = Sha256::new();
    hasher.update(jkt.as_bytes());
    hasher.update([0]);
    hasher.update(jti.as_bytes());
    hasher.finalize().into()
}

const SHARDS: usize = 16;

/// Seen proofs, sharded to keep lock contention low.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    max_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// Key -> expiry (seconds since the epoch).
    seen: HashMap<ReplayKey, u64>,
    /// Insertion order, for expiring from the front.
    order: VecDeque<(ReplayKey, u64)>,
}

impl ReplayCache {
    /// A cache holding at most about `max_entries` live proofs.
    pub fn new(max_entries: usize) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    /// Records `key` until `expires_at`; fails if it is already recorded and not yet expired.
    pub fn check_and_record(&self, key: ReplayKey, expires_at: u64, now: u64) -> Result<(), ReplayError> {
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let mut shard = crate::lock::lock(shard).ok_or(ReplayError::Unavailable)?;
        shard.expire(now);
        if let Some(&expiry) = shard.seen.get(&key)
            && expiry > now
        {
            return Err(ReplayError::Replayed);
        }
        if shard.seen.len() >= self.max_per_shard {
            return Err(ReplayError::Full);
        }
        shard.seen.insert(key, expires_at);
        shard.order.push_back((key, expires_at));
        Ok(())
    }

    /// Live entries, for metrics.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| crate::lock::lock(s).map(|s| s.seen.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    fn expire(&mut self, now: u64) {
        while let Some(&(key, expiry)) = self.order.front() {
            if expiry > now {
                break;
            }
            self.order.pop_front();
            // The key may have been recorded again with a later expiry.
            if self.seen.get(&key) == Some(&expiry) {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_per_window() {
        let cache = ReplayCache::new(100);
        let key = replay_key("thumb", "jti-1");
        assert_eq!(cache.check_and_record(key, 160, 100), Ok(()));
        assert_eq!(cache.check_and_record(key, 170, 110), Err(ReplayError::Replayed));
        // Another key may use the same jti.
        assert_eq!(cache.check_and_record(replay_key("other", "jti-1"), 160, 100), Ok(()));
        // Once expired, the entry is gone (and the proof's iat is out of window anyway).
        assert_eq!(cache.check_and_record(key, 260, 200), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_fails_closed() {
        let cache = ReplayCache::new(SHARDS);
        let mut refused = 0;
        for i in 0..(SHARDS * 8) {
            if cache.check_and_record(replay_key("k", &i.to_string()), 1000, 0) == Err(ReplayError::Full) {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert!(cache.len() <= SHARDS);
        // Expiry frees room again.
        assert_eq!(cache.check_and_record(replay_key("k", "late"), 3000, 2000), Ok(()));
    }

    #[test]
    fn keys_do_not_collide_across_the_separator() {
        assert_ne!(replay_key("ab", "c"), replay_key("a", "bc"));
    }
}
