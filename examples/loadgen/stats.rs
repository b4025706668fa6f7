//! The load generator's counters: per-thread `Stats` merged at the end, a
//! latency histogram, and the JSON summary every mode reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::Kind;

/// The counts both modes report.
pub fn summary(stats: &Stats) -> serde_json::Value {
    let h = &stats.latency;
    // No successful request, no latency: null rather than a flattering 0.
    let ms = |us: u64| (h.total > 0).then_some(us as f64 / 1000.0);
    let quantiles = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)];
    let mut latency: serde_json::Map<_, _> = quantiles
        .iter()
        .map(|(k, q)| (k.to_string(), json!(ms(h.quantile(*q)))))
        .collect();
    latency.insert("max".into(), json!(ms(h.max_us)));
    json!({
        "requests": stats.ok + stats.non2xx + stats.errors.values().sum::<u64>(),
        "ok": stats.ok,
        "non2xx": stats.non2xx,
        "non2xx_status": stats.non2xx_status,
        "errors": stats.errors.values().sum::<u64>(),
        "error_kinds": stats.errors,
        "latency_ms": latency,
        "handshakes": { "full": stats.handshakes[0], "resumed": stats.handshakes[1] },
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Counters of one thread: only it writes them until they are merged at the end.
#[derive(Default)]
pub struct Stats {
    pub ok: u64,
    pub non2xx: u64,
    pub non2xx_status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<Kind, u64>,
    /// Full and resumed TLS handshakes.
    pub handshakes: [u64; 2],
    pub latency: Histogram,
}

impl Stats {
    pub fn response(&mut self, status: StatusCode, since: Instant) {
        if status.is_success() {
            self.ok += 1;
            self.latency.record(since.elapsed());
        } else {
            self.non2xx += 1;
            *self.non2xx_status.entry(status.as_u16()).or_default() += 1;
        }
    }

    pub fn error(&mut self, kind: Kind) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.non2xx += other.non2xx;
        for (status, n) in &other.non2xx_status {
            *self.non2xx_status.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.handshakes[0] += other.handshakes[0];
        self.handshakes[1] += other.handshakes[1];
        self.latency.merge(&other.latency);
    }
}

/// Every thread's `Stats`, registered on the thread's first record.
static ALL_STATS: Mutex<Vec<Arc<Mutex<Stats>>>> = Mutex::new(Vec::new());

thread_local! {
    static THREAD_STATS: Arc<Mutex<Stats>> = {
        let stats = Arc::new(Mutex::new(Stats::default()));
        lock(&ALL_STATS).push(stats.clone());
        stats
    };
}

/// Updates this thread's counters: the lock is only ever contended by `merged_stats`.
pub fn record(update: impl FnOnce(&mut Stats)) {
    THREAD_STATS.with(|stats| update(&mut lock(stats)));
}

pub fn merged_stats() -> Stats {
    let mut total = Stats::default();
    for stats in lock(&ALL_STATS).iter() {
        total.merge(&lock(stats));
    }
    total
}

/// A load generator's counters are still worth reporting after a worker
/// panicked, unlike the gateway's state (src/lock.rs).
#[allow(clippy::disallowed_methods)]
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Latency histogram in microseconds: exact 1 µs buckets below 1024 µs, then
/// 128 buckets per power of two (under 0.8% relative error), up to ~67 s.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

const LINEAR_US: u64 = 1024;
const SUB_BITS: u32 = 7;
/// Highest power of two with its own buckets: larger values land in the last one.
const TOP_EXP: u32 = 25;
const BUCKETS: usize = LINEAR_US as usize + (((TOP_EXP - 9) as usize) << SUB_BITS);

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < LINEAR_US {
            return us as usize;
        }
        let us = us.min((2 << TOP_EXP) - 1);
        let exp = 63 - us.leading_zeros();
        let sub = (us >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        LINEAR_US as usize + (((exp - 10) as usize) << SUB_BITS) + sub as usize
    }

    /// The largest value that lands in bucket `index`.
    fn upper(index: usize) -> u64 {
        let Some(k) = index.checked_sub(LINEAR_US as usize) else {
            return index as u64;
        };
        let exp = 10 + (k >> SUB_BITS) as u32;
        let width = 1u64 << (exp - SUB_BITS);
        (1u64 << exp) + (k as u64 & ((1 << SUB_BITS) - 1)) * width + width - 1
    }

    fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The smallest bucket bound at or below which a fraction `q` of the values lie.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper(index).min(self.max_us);
            }
        }
        self.max_us
    }

    fn merge(&mut self, other: &Histogram) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_bound_is_within_one_percent() {
        for us in (0..5_000).chain((5_000..1 << 26).step_by(997)) {
            let index = Histogram::index(us);
            assert!(index < BUCKETS);
            let upper = Histogram::upper(index);
            assert!(
                upper >= us && (upper - us) as f64 <= us as f64 * 0.008,
                "{us} -> {upper}"
            );
        }
    }
}
