//! Counters for the admin listener's `/metrics`, in Prometheus text format.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Counters keyed by their label values.
type Counters<K> = RwLock<HashMap<K, AtomicU64>>;

/// Process-wide counters. Request outcomes are keyed by status and the
/// stable reason label from `reject.rs` (or `forwarded`).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Counters<(Arc<str>, u16, &'static str)>,
    binding_reports: Counters<(Arc<str>, &'static str)>,
    jwks_fetches: Counters<(Arc<str>, &'static str)>,
    handshake_failures: AtomicU64,
    connections_total: AtomicU64,
    connections_open: AtomicI64,
    /// By trigger (signal, file_change) and result (ok, error).
    reloads: [[AtomicU64; 2]; 2],
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16, reason: &'static str) {
        increment(&self.requests, (Arc::from(route), status, reason));
    }

    /// A report-only route forwarded a request whose binding check failed.
    pub fn record_binding_report(&self, route: &str, reason: &'static str) {
        increment(&self.binding_reports, (Arc::from(route), reason));
    }

    pub fn record_jwks_fetch(&self, issuer: &str, ok: bool) {
        increment(&self.jwks_fetches, (Arc::from(issuer), if ok { "ok" } else { "error" }));
    }

    pub fn record_handshake_failure(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_reload(&self, trigger: &'static str, ok: bool) {
        let by_trigger = usize::from(trigger != "signal");
        self.reloads[by_trigger][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP bindgate_requests_total Requests answered, by route, status and reason.\n");
        out.push_str("# TYPE bindgate_requests_total counter\n");
        if let Ok(map) = self.requests.read() {
            let mut rows: Vec<_> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect();
            rows.sort();
            for ((route, status, reason), count) in rows {
                let route = escape_label(&route);
                let _ = writeln!(
                    out,
                    "bindgate_requests_total{{route=\"{route}\",status=\"{status}\",reason=\"{reason}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP bindgate_binding_report_only_total Requests forwarded by report-only routes despite a failed binding check.\n",
        );
        out.push_str("# TYPE bindgate_binding_report_only_total counter\n");
        if let Ok(map) = self.binding_reports.read() {
            let mut rows: Vec<_> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect();
            rows.sort();
            for ((route, reason), count) in rows {
                let route = escape_label(&route);
                let _ = writeln!(
                    out,
                    "bindgate_binding_report_only_total{{route=\"{route}\",reason=\"{reason}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP bindgate_jwks_fetches_total Fetches of issuer keys, by issuer and result.\n");
        out.push_str("# TYPE bindgate_jwks_fetches_total counter\n");
        if let Ok(map) = self.jwks_fetches.read() {
            let mut rows: Vec<_> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect();
            rows.sort();
            for ((issuer, result), count) in rows {
                let issuer = escape_label(&issuer);
                let _ = writeln!(
                    out,
                    "bindgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"{result}\"}} {count}"
                );
            }
        }
        let counters = [
            (
                "bindgate_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or timed out.",
                self.handshake_failures.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_connections_total",
                "counter",
                "TLS connections established.",
                self.connections_total.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_connections_open",
                "gauge",
                "TLS connections currently open.",
                self.connections_open.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out.push_str("# HELP bindgate_reloads_total Configuration reloads, by trigger and result.\n");
        out.push_str("# TYPE bindgate_reloads_total counter\n");
        for (t, trigger) in ["signal", "file_change"].iter().enumerate() {
            for (r, result) in ["ok", "error"].iter().enumerate() {
                let count = self.reloads[t][r].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "bindgate_reloads_total{{trigger=\"{trigger}\",result=\"{result}\"}} {count}"
                );
            }
        }
        out
    }
}

/// Bumps a labelled counter: a shared read lock when it exists, a write lock the first time.
fn increment<K: std::hash::Hash + Eq>(map: &Counters<K>, key: K) {
    if let Ok(read) = map.read()
        && let Some(counter) = read.get(&key)
    {
        counter.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Ok(mut write) = map.write() {
        write.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
    }
}

/// Prometheus label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_status_and_reason() {
        let m = Metrics::default();
        m.record_request("/", 200, "forwarded");
        m.record_request("/", 200, "forwarded");
        m.record_request("/api", 401, "cnf_mismatch");
        m.record_handshake_failure();
        let text = m.render();
        assert!(
            text.contains("bindgate_requests_total{route=\"/\",status=\"200\",reason=\"forwarded\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("bindgate_requests_total{route=\"/api\",status=\"401\",reason=\"cnf_mismatch\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("bindgate_tls_handshake_failures_total 1\n"), "{text}");
    }
}
