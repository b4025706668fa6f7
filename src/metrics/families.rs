//! The refresh-token families' metrics: what rotated, what was retried,
//! what was reused and revoked, and how the store is doing.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::{Counters, Histogram, family, increment, rows};

#[derive(Debug, Default)]
pub struct FamilyMetrics {
    started: AtomicU64,
    rotations: AtomicU64,
    grace_retries: AtomicU64,
    reuse: AtomicU64,
    /// Families revoked, by reason (`reuse`, `revocation`, `operator`).
    revocations: Counters<&'static str>,
    /// Failed store calls, by the store error's label.
    store_errors: Counters<&'static str>,
    /// Set by the purger, which counts them anyway.
    active: AtomicI64,
    pub store_duration: Histogram,
}

impl FamilyMetrics {
    pub fn record_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_grace_retry(&self) {
        self.grace_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_reuse(&self) {
        self.reuse.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_revocation(&self, reason: &'static str) {
        increment(&self.revocations, reason);
    }

    pub fn record_store_error(&self, label: &'static str) {
        increment(&self.store_errors, label);
    }

    pub fn record_store_call(&self, took: Duration) {
        self.store_duration.observe(took);
    }

    pub fn set_active(&self, families: u64) {
        self.active
            .store(families.min(i64::MAX as u64) as i64, Ordering::Relaxed);
    }

    pub(super) fn render(&self, out: &mut String) {
        let single = [
            (
                "bindgate_as_families_started_total",
                "counter",
                "Refresh-token families started by a token exchange.",
                self.started.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_as_refresh_rotations_total",
                "counter",
                "Refresh tokens rotated: the live token used, a successor issued.",
                self.rotations.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_as_refresh_grace_retries_total",
                "counter",
                "Predecessors retried within refresh_grace (a lost response), each replacing the unused successor.",
                self.grace_retries.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_as_refresh_reuse_total",
                "counter",
                "Rotated-away refresh tokens presented again; each revoked its family.",
                self.reuse.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_as_families_active",
                "gauge",
                "Families neither revoked, expired nor idle, as of the last purge.",
                self.active.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in single {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        family(
            out,
            "bindgate_as_family_revocations_total",
            "Families revoked, by reason (reuse, revocation, operator).",
            rows(&self.revocations, |reason| format!("reason=\"{reason}\"")),
        );
        family(
            out,
            "bindgate_as_store_errors_total",
            "Family store calls that failed, by error.",
            rows(&self.store_errors, |error| format!("error=\"{error}\"")),
        );
        self.store_duration.render(
            out,
            "bindgate_as_store_duration_seconds",
            "Time a family store call took, commit included.",
        );
    }
}
