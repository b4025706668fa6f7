//! The crate's one lock-poison policy.
//!
//! A std lock is poisoned when a thread panicked while holding it, so what it
//! guards may be half-updated. bindgate never acts on such state: these
//! functions return `None` for a poisoned lock, and each caller treats the
//! guarded state as unavailable and fails closed. A framing verdict that
//! cannot be read is "ambiguous" (400, connection closed); a replay cache that
//! cannot be read is an unavailable store (refused, unless the operator chose
//! `replay_store_failure = "open"`); a cache misses, so the token is verified
//! again; a metric is not recorded. The first poisoning is logged, once per
//! process: every later use of the same lock would log it again.
//!
//! `clippy.toml` bans calling `lock`, `read` and `write` on std locks anywhere
//! else, so a new lock cannot quietly choose another policy.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`; `None` when a panic poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| report_poisoned()).ok()
}

/// Read-locks `lock`; `None` when a panic poisoned it.
pub fn read<T>(lock: &RwLock<T>) -> Option<RwLockReadGuard<'_, T>> {
    lock.read().map_err(|_| report_poisoned()).ok()
}

/// Write-locks `lock`; `None` when a panic poisoned it.
pub fn write<T>(lock: &RwLock<T>) -> Option<RwLockWriteGuard<'_, T>> {
    lock.write().map_err(|_| report_poisoned()).ok()
}

fn report_poisoned() {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if !REPORTED.swap(true, Ordering::Relaxed) {
        tracing::error!("a lock was poisoned by a panic; the state it guards is treated as unavailable from now on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisoned() -> Mutex<u32> {
        let mutex = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let _guard = mutex.lock().unwrap();
            panic!("poison it");
        });
        assert!(mutex.is_poisoned());
        mutex
    }

    #[test]
    fn a_poisoned_lock_gives_nothing() {
        let mutex = poisoned();
        assert!(lock(&mutex).is_none());
        assert_eq!(lock(&Mutex::new(7)).map(|g| *g), Some(7));
    }
}
