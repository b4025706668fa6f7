//! Accepting connections when accept itself fails.

use std::time::Duration;

/// The wait between failed accepts: doubling from [`AcceptBackoff::FIRST`] to
/// [`AcceptBackoff::MAX`], back to the start once an accept succeeds. Out of
/// file descriptors, retrying at once only burns CPU, and logging every
/// retry floods the log; one line per episode says enough.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// The next wait; `None` when the last accept succeeded.
    next: Option<Duration>,
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(5);
    pub const MAX: Duration = Duration::from_secs(1);

    /// An accept failed: how long to wait. `log` runs on the first failure of an episode only.
    pub fn failed(&mut self, log: impl FnOnce()) -> Duration {
        let delay = match self.next {
            None => {
                log();
                Self::FIRST
            }
            Some(delay) => delay,
        };
        self.next = Some((delay * 2).min(Self::MAX));
        delay
    }

    /// An accept succeeded: `log` runs when this ends an episode of failures.
    pub fn succeeded(&mut self, log: impl FnOnce()) {
        if self.next.take().is_some() {
            log();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_logs_once_and_resets_on_success() {
        let mut backoff = AcceptBackoff::default();
        let mut logged = 0;
        let delays: Vec<u64> = (0..11)
            .map(|_| backoff.failed(|| logged += 1).as_millis() as u64)
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(logged, 1);
        let mut recovered = 0;
        backoff.succeeded(|| recovered += 1);
        backoff.succeeded(|| recovered += 1);
        assert_eq!(recovered, 1);
        assert_eq!(backoff.failed(|| logged += 1), AcceptBackoff::FIRST);
        assert_eq!(logged, 2);
    }
}
