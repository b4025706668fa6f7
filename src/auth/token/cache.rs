//! A bounded cache of verified tokens, so a client reusing its token pays
//! for the signature check once, not on every request.
//!
//! Only the signature and the time-independent claim checks are cached: the
//! caller still checks expiry, binding and route policy on every hit. An
//! entry names the key-set generation it was verified with, so a key
//! rotation invalidates it. Keys are SHA-256 digests of the token, which
//! keeps the memory per entry independent of how long tokens are and never
//! holds a bearer credential in memory longer than the request needs it.
//!
//! A token is admitted on its second verification, not its first (a
//! "doorkeeper", as in TinyLFU): single-use tokens, however many, cost no
//! insertion and evict nothing, so they cannot flush out the tokens clients
//! keep reusing. A reused token pays for one extra verification.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::VerifiedToken;
use super::claims;

/// Shards keep lock contention low on many-core machines; 16 is plenty for the
/// sizes of box a sidecar runs on. A hit holds its shard's lock for one
/// lookup, one bit and an `Arc` clone: no allocation.
const SHARDS: usize = 16;

/// What every entry costs besides its claims' heap: the `Arc` allocation
/// holding the verified token, its slot, and its index entry (digest, slot
/// number and a control byte). Slots and index grow by doubling, so each is
/// charged twice: the most they take per entry just after growing.
const ENTRY_FIXED: usize = claims::allocation(2 * size_of::<usize>() + size_of::<VerifiedToken>())
    + 2 * size_of::<Option<Slot>>()
    + 2 * (size_of::<(TokenDigest, usize)>() + 1)
    + size_of::<usize>();

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Word `n` (0 to 3) of a digest. A SHA-256 digest is uniformly
/// distributed, so each of its words is a hash of the token already, and
/// independent of the others: the doorkeeper probes words 0 and 1, the
/// shard is word 2, the shard's index word 3. No keyed hasher is needed
/// against collisions chosen by a client: only verified tokens are stored.
fn word(digest: &TokenDigest, n: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[n * 8..n * 8 + 8]);
    u64::from_le_bytes(bytes)
}

/// The shard index's hasher: word 3 of the digest, not SipHash over all of it.
#[derive(Default)]
struct DigestWord(u64);

impl Hasher for DigestWord {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Ok(digest) = <&TokenDigest>::try_from(bytes) {
            self.0 = word(digest, 3);
        }
    }

    /// The slice's length prefix: the same for every digest.
    fn write_usize(&mut self, _: usize) {}
}

/// A verified token and what it was verified against.
#[derive(Clone)]
pub struct CachedToken {
    pub token: Arc<VerifiedToken>,
    /// Index of the issuer in the validator that built the cache.
    pub issuer: usize,
    /// The issuer's key-set generation at verification time.
    pub generation: u64,
    /// What this entry counts against the byte budget. The token's text is
    /// not kept (entries are keyed by its digest), so its length is not charged.
    cost: usize,
}

impl CachedToken {
    /// An entry for `token`, charged what it holds: measured per entry by
    /// the integration test `token_cache_memory`, within 1.2x of the charge.
    pub fn new(token: Arc<VerifiedToken>, issuer: usize, generation: u64) -> CachedToken {
        let cost = ENTRY_FIXED + token.claims.heap_bytes();
        CachedToken {
            token,
            issuer,
            generation,
            cost,
        }
    }
}

/// One lock's worth of the cache. Entries live in `slots`, swept by a CLOCK
/// hand: a hit sets an entry's `referenced` bit, the hand clears set bits
/// and evicts the first entry it finds without one. So an entry stays while
/// it is being reused, a new entry gets a full turn of the hand before it
/// can go, and the entries that go are those not used for the longest
/// (approximately): the recent, reused tokens are the ones kept.
#[derive(Default)]
struct Shard {
    index: HashMap<TokenDigest, usize, BuildHasherDefault<DigestWord>>,
    slots: Vec<Option<Slot>>,
    /// Empty slots; the last freed is reused first, which puts a new entry
    /// just behind the hand, the last place it looks.
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
    /// When stale entries were last swept out (seconds since the epoch). A
    /// sweep walks the whole shard, so a full cache under a flood of new
    /// tokens sweeps at most once a second and otherwise lets the hand evict.
    last_sweep: u64,
}

struct Slot {
    key: TokenDigest,
    entry: CachedToken,
    referenced: bool,
}

impl Shard {
    fn get(&mut self, key: &TokenDigest) -> Option<CachedToken> {
        let index = *self.index.get(key)?;
        let slot = self.slots.get_mut(index)?.as_mut()?;
        slot.referenced = true;
        Some(slot.entry.clone())
    }

    fn remove(&mut self, key: &TokenDigest) {
        if let Some(index) = self.index.get(key).copied() {
            self.remove_at(index);
        }
    }

    fn remove_at(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index).and_then(Option::take) {
            self.index.remove(&slot.key);
            self.bytes -= slot.entry.cost;
            self.free.push(index);
        }
    }

    /// Evicts one entry by the CLOCK rule; false when there is none.
    fn evict_one(&mut self) -> bool {
        // One turn clears every bit, so a victim turns up within two.
        for _ in 0..2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let index = self.hand;
            self.hand += 1;
            match &mut self.slots[index] {
                None => {}
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(_) => {
                    self.remove_at(index);
                    return true;
                }
            }
        }
        false
    }

    fn push(&mut self, key: TokenDigest, entry: CachedToken) {
        self.bytes += entry.cost;
        let slot = Some(Slot {
            key,
            entry,
            referenced: false,
        });
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.insert(key, index);
    }

    fn sweep(&mut self, stale: impl Fn(&CachedToken) -> bool) {
        for index in 0..self.slots.len() {
            if self.slots[index].as_ref().is_some_and(|slot| stale(&slot.entry)) {
                self.remove_at(index);
            }
        }
    }
}

pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    /// Byte budget per shard; 0 disables the cache.
    shard_budget: usize,
    doorkeeper: Doorkeeper,
}

/// A rough size of an entry with a typical token, to size the doorkeeper.
const TYPICAL_ENTRY: usize = 512;

/// Remembers which tokens were verified recently, in a Bloom filter of two
/// bits per token, cleared once it has taken as many tokens as the cache
/// holds. Lock-free, and a few KiB per MiB of cache.
struct Doorkeeper {
    bits: Box<[AtomicU64]>,
    /// Bit positions are taken modulo this power of two.
    mask: u64,
    marked: AtomicUsize,
    clear_after: usize,
}

impl Doorkeeper {
    fn new(cache_bytes: usize) -> Doorkeeper {
        let entries = (cache_bytes / TYPICAL_ENTRY).max(64);
        // Eight bits per entry: about 5% false positives with two probes.
        let bit_count = (entries * 8).next_power_of_two();
        Doorkeeper {
            bits: (0..bit_count / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bit_count as u64 - 1,
            marked: AtomicUsize::new(0),
            clear_after: entries,
        }
    }

    /// Whether `key` was marked since the last clear; marks it if not.
    fn seen_before(&self, key: &TokenDigest) -> bool {
        // The digest is uniformly distributed: its words are independent hashes.
        let probes = [word(key, 0) & self.mask, word(key, 1) & self.mask];
        let mut seen = true;
        for bit in probes {
            let word = &self.bits[(bit / 64) as usize];
            let flag = 1u64 << (bit % 64);
            if word.load(Ordering::Relaxed) & flag == 0 {
                seen = false;
                word.fetch_or(flag, Ordering::Relaxed);
            }
        }
        if !seen && self.marked.fetch_add(1, Ordering::Relaxed) + 1 >= self.clear_after {
            self.marked.store(0, Ordering::Relaxed);
            for word in self.bits.iter() {
                word.store(0, Ordering::Relaxed);
            }
        }
        seen
    }
}

impl TokenCache {
    /// A cache holding about `max_bytes` of verified tokens; 0 disables it.
    pub fn new(max_bytes: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: max_bytes / SHARDS,
            doorkeeper: Doorkeeper::new(max_bytes),
        }
    }

    pub fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    pub fn get(&self, key: &TokenDigest) -> Option<CachedToken> {
        crate::lock::lock(self.shard(key))?.get(key)
    }

    pub fn remove(&self, key: &TokenDigest) {
        if let Some(mut shard) = crate::lock::lock(self.shard(key)) {
            shard.remove(key);
        }
    }

    /// Stores `entry` if its token was verified before (see the doorkeeper
    /// above), evicting others of its shard until it fits: entries for which
    /// `stale` holds first, then by the CLOCK rule (see [`Shard`]).
    pub fn insert(&self, key: TokenDigest, entry: CachedToken, now: u64, stale: impl Fn(&CachedToken) -> bool) {
        if entry.cost > self.shard_budget || !self.doorkeeper.seen_before(&key) {
            return;
        }
        let Some(mut shard) = crate::lock::lock(self.shard(&key)) else {
            return;
        };
        shard.remove(&key);
        if shard.bytes + entry.cost > self.shard_budget && shard.last_sweep < now {
            shard.last_sweep = now;
            shard.sweep(stale);
        }
        while shard.bytes + entry.cost > self.shard_budget {
            if !shard.evict_one() {
                break;
            }
        }
        shard.push(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| crate::lock::lock(s).map(|s| s.index.len()).unwrap_or(0))
            .sum()
    }

    fn shard(&self, key: &TokenDigest) -> &Mutex<Shard> {
        &self.shards[word(key, 2) as usize % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_hashes_a_digest_to_its_fourth_word() {
        use std::hash::BuildHasher;
        let key = digest("a token");
        let hashed = BuildHasherDefault::<DigestWord>::default().hash_one(key);
        assert_eq!(hashed, word(&key, 3));
        assert_ne!(hashed, word(&digest("another token"), 3));
    }
    use crate::{auth::token::Claims, jose::Algorithm};

    fn verified() -> Arc<VerifiedToken> {
        let claims: Claims =
            serde_json::from_str(r#"{"iss":"https://issuer.example","aud":"https://api.example","exp":2000000000}"#)
                .unwrap();
        Arc::new(VerifiedToken {
            claims,
            alg: Algorithm::ES256,
        })
    }

    /// Inserts as the validator would on a token's second verification.
    fn insert_admitted(
        cache: &TokenCache,
        key: TokenDigest,
        entry: CachedToken,
        now: u64,
        stale: impl Fn(&CachedToken) -> bool,
    ) {
        cache.insert(key, entry.clone(), now, &stale);
        cache.insert(key, entry, now, &stale);
    }

    #[test]
    fn a_token_is_admitted_on_its_second_verification() {
        let cache = TokenCache::new(1 << 20);
        let key = digest("a.b.c");
        cache.insert(key, CachedToken::new(verified(), 0, 7), 1, |_| false);
        assert!(cache.get(&key).is_none(), "admitted on first sight");
        cache.insert(key, CachedToken::new(verified(), 0, 7), 1, |_| false);
        assert!(cache.get(&key).is_some());
    }

    #[test]
    fn a_flood_of_single_use_tokens_barely_touches_the_cache() {
        let cache = TokenCache::new(1 << 20);
        let reused = digest("reused");
        insert_admitted(&cache, reused, CachedToken::new(verified(), 0, 0), 1, |_| false);
        for i in 0..2000 {
            let entry = CachedToken::new(verified(), 0, 0);
            cache.insert(digest(&i.to_string()), entry, 1, |_| false);
        }
        assert!(cache.get(&reused).is_some());
        // Only the filter's false positives get in: a few percent.
        assert!(cache.len() < 1 + 200, "{} entries", cache.len());
    }

    #[test]
    fn the_doorkeeper_forgets_once_it_has_seen_as_many_tokens_as_the_cache_holds() {
        let keeper = Doorkeeper::new(64 * TYPICAL_ENTRY);
        let key = digest("t");
        assert!(!keeper.seen_before(&key));
        assert!(keeper.seen_before(&key));
        for i in 0..64 {
            keeper.seen_before(&digest(&i.to_string()));
        }
        assert!(!keeper.seen_before(&key), "still remembered after a clear");
    }

    #[test]
    fn a_stored_entry_is_found_and_removed() {
        let cache = TokenCache::new(1 << 20);
        let key = digest("a.b.c");
        assert!(cache.get(&key).is_none());
        insert_admitted(&cache, key, CachedToken::new(verified(), 0, 7), 1, |_| false);
        let hit = cache.get(&key).unwrap();
        assert_eq!((hit.issuer, hit.generation), (0, 7));
        cache.remove(&key);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn the_byte_budget_bounds_the_entries() {
        let budget = SHARDS * 4 * CachedToken::new(verified(), 0, 0).cost;
        let cache = TokenCache::new(budget);
        for i in 0..1000 {
            insert_admitted(
                &cache,
                digest(&i.to_string()),
                CachedToken::new(verified(), 0, 0),
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
        let cache = TokenCache::new(SHARDS * 2 * CachedToken::new(verified(), 0, 0).cost);
        let live = digest("live");
        insert_admitted(&cache, live, CachedToken::new(verified(), 0, 1), 1, |_| false);
        for i in 0..200u64 {
            // A new second for every insert, so every full shard gets its sweep.
            let entry = CachedToken::new(verified(), 0, 0);
            insert_admitted(&cache, digest(&i.to_string()), entry, 2 + i, |e| e.generation == 0);
        }
        assert!(cache.get(&live).is_some());
    }

    #[test]
    fn a_zero_budget_disables_the_cache() {
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        insert_admitted(&cache, digest("t"), CachedToken::new(verified(), 0, 0), 1, |_| false);
        assert!(cache.get(&digest("t")).is_none());
    }

    /// Uses token `id` as the validator does: a hit, or a verification whose
    /// result is offered to the cache. True on a hit.
    fn use_token(cache: &TokenCache, id: u64) -> bool {
        let key = digest(&id.to_string());
        if cache.get(&key).is_some() {
            return true;
        }
        cache.insert(key, CachedToken::new(verified(), 0, 0), 1, |_| false);
        false
    }

    /// A cache holding about `entries` test entries.
    fn cache_of(entries: usize) -> TokenCache {
        let one = CachedToken::new(verified(), 0, 0).cost;
        TokenCache::new(entries * one)
    }

    #[test]
    fn once_full_the_newest_reused_tokens_are_kept_not_the_oldest() {
        // 12,000 tokens each used twice (so admitted) through a cache of
        // 4,000: the last 1,000 must be there, the first 1,000 long gone.
        let cache = cache_of(4000);
        for id in 0..12_000 {
            use_token(&cache, id);
            use_token(&cache, id);
        }
        let newest = (11_000..12_000).filter(|&id| use_token(&cache, id)).count();
        let oldest = (0..1000).filter(|&id| use_token(&cache, id)).count();
        assert!(
            newest >= 950,
            "newest 1,000: {newest} hits; oldest 1,000: {oldest} hits"
        );
        assert!(oldest <= 50, "newest 1,000: {newest} hits; oldest 1,000: {oldest} hits");
    }

    #[test]
    fn tokens_in_use_survive_a_flood_of_newer_ones() {
        // 1,000 tokens used every round, while each round admits 2,000 new
        // ones into a cache of 4,000: the tokens in use must keep hitting.
        let cache = cache_of(4000);
        let hot = 1_000_000..1_001_000u64;
        for id in hot.clone() {
            use_token(&cache, id);
            use_token(&cache, id);
        }
        let mut hot_hits = 0;
        for round in 0..5u64 {
            for id in round * 2000..(round + 1) * 2000 {
                use_token(&cache, id);
                use_token(&cache, id);
            }
            hot_hits += hot.clone().filter(|&id| use_token(&cache, id)).count();
        }
        assert!(hot_hits >= 4900, "{hot_hits} of 5,000 uses of tokens in use hit");
    }
}
