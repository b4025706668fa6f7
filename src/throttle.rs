//! At most one log line per interval for a condition that lasts, such as a
//! replay store outage, which would otherwise be logged once per request.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Lets one event through per interval and counts the ones held back.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    /// Milliseconds since [`EPOCH`] before which events are held back.
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last one let through)` when this event may
    /// be logged; `None` when it is held back.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let won = now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if won {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_and_a_count_of_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit_at(1_000), Some(0));
        assert_eq!(throttle.admit_at(1_001), None);
        assert_eq!(throttle.admit_at(10_999), None);
        assert_eq!(throttle.admit_at(11_000), Some(2));
        assert_eq!(throttle.admit_at(11_000), None);
    }
}
