//! Counters and histograms for the admin listener's `/metrics`, in the
//! Prometheus text format. They live for the whole process, across reloads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

mod crl;
mod families;
pub use crl::CrlMetrics;
pub use families::FamilyMetrics;

/// Heap allocations so far (operations, bytes), when the binary counts them
/// (the `count-allocs` feature): set once at startup.
static ALLOCATION_COUNTER: std::sync::OnceLock<fn() -> (u64, u64)> = std::sync::OnceLock::new();

/// Makes `/metrics` report what `counter` counts, as
/// `bindgate_allocations_total` and `bindgate_allocated_bytes_total`.
pub fn count_allocations(counter: fn() -> (u64, u64)) {
    let _ = ALLOCATION_COUNTER.set(counter);
}

/// Counters keyed by their label values.
type Counters<K> = RwLock<HashMap<K, AtomicU64>>;

/// Upper bounds of the latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(duration.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_sum {sum}\n{name}_count {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// Process-wide metrics. Request outcomes are keyed by route, status and the
/// stable reason label from `gateway/reject.rs` (or `forwarded`).
#[derive(Debug)]
pub struct Metrics {
    requests: Counters<(Arc<str>, u16, &'static str, Arc<str>)>,
    binding_reports: Counters<(Arc<str>, &'static str)>,
    bindings_held: Counters<(Arc<str>, &'static str)>,
    replay_store_failures: Counters<(&'static str, &'static str)>,
    jwks_fetches: Counters<(Arc<str>, &'static str)>,
    handshake_failures: Counters<&'static str>,
    reloads: Counters<(&'static str, &'static str)>,
    /// The authorization server's requests, apart from the gateway's: its
    /// endpoints are not routes, and its traffic must not move the gateway's numbers.
    as_requests: Counters<(Arc<str>, u16)>,
    /// Access tokens issued, by grant and binding (`mtls` or `dpop`).
    as_tokens_issued: Counters<(&'static str, &'static str)>,
    /// Token endpoint requests refused, by their RFC 6749 `error` code.
    as_token_errors: Counters<&'static str>,
    /// Failed client authentications, by method.
    as_client_auth_failures: Counters<&'static str>,
    handshakes: AtomicU64,
    token_cache_hits: AtomicU64,
    token_cache_misses: AtomicU64,
    resumed_handshakes: AtomicU64,
    connections_open: AtomicI64,
    connections_parked: AtomicI64,
    upstream_requests_pinned: AtomicU64,
    upstream_requests_pooled: AtomicU64,
    upstream_pinned_opened: AtomicU64,
    /// The earliest `notAfter` of any client certificate seen (seconds since the epoch).
    client_cert_earliest_expiry: AtomicI64,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    /// The refresh-token families and their store.
    pub families: FamilyMetrics,
    /// CRLs fetched from distribution points.
    pub crl: CrlMetrics,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Counters::default(),
            binding_reports: Counters::default(),
            bindings_held: Counters::default(),
            replay_store_failures: Counters::default(),
            jwks_fetches: Counters::default(),
            handshake_failures: Counters::default(),
            reloads: Counters::default(),
            as_requests: Counters::default(),
            as_tokens_issued: Counters::default(),
            as_token_errors: Counters::default(),
            as_client_auth_failures: Counters::default(),
            handshakes: AtomicU64::new(0),
            token_cache_hits: AtomicU64::new(0),
            token_cache_misses: AtomicU64::new(0),
            resumed_handshakes: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_parked: AtomicI64::new(0),
            upstream_requests_pinned: AtomicU64::new(0),
            upstream_requests_pooled: AtomicU64::new(0),
            upstream_pinned_opened: AtomicU64::new(0),
            client_cert_earliest_expiry: AtomicI64::new(i64::MAX),
            request_duration: Histogram::default(),
            upstream_duration: Histogram::default(),
            families: FamilyMetrics::default(),
            crl: CrlMetrics::default(),
        }
    }
}

impl Metrics {
    /// `route` is the route's own label, shared: counting allocates nothing.
    /// `cert_source` is `tls` or `proxy:<name>`.
    pub fn record_request(
        &self,
        route: &Arc<str>,
        status: u16,
        reason: &'static str,
        cert_source: Arc<str>,
        duration: Duration,
    ) {
        increment(&self.requests, (route.clone(), status, reason, cert_source));
        self.request_duration.observe(duration);
    }

    /// An authorization server request was answered; `endpoint` is its
    /// path as served, or `-` for a path it does not serve.
    pub fn record_as_request(&self, endpoint: &Arc<str>, status: u16) {
        increment(&self.as_requests, (endpoint.clone(), status));
    }

    /// The token endpoint issued an access token.
    pub fn record_as_token_issued(&self, grant: &'static str, binding: &'static str) {
        increment(&self.as_tokens_issued, (grant, binding));
    }

    /// The token endpoint refused a request with `error`.
    pub fn record_as_token_error(&self, error: &'static str) {
        increment(&self.as_token_errors, error);
    }

    /// A client failed to authenticate with `method` (`unknown` when no client was named).
    pub fn record_as_client_auth_failure(&self, method: &'static str) {
        increment(&self.as_client_auth_failures, method);
    }

    /// A report-only route forwarded a request whose binding check failed.
    pub fn record_binding_report(&self, route: &Arc<str>, reason: &'static str) {
        increment(&self.binding_reports, (route.clone(), reason));
    }

    /// A request passed the sender check with these bindings (`mtls`, `dpop`, `mtls+dpop`).
    pub fn record_binding_held(&self, route: &Arc<str>, binding: &'static str) {
        increment(&self.bindings_held, (route.clone(), binding));
    }

    /// The DPoP replay store could not be asked; `outcome` is what the request got.
    pub fn record_replay_store_failure(&self, store: &'static str, outcome: &'static str) {
        increment(&self.replay_store_failures, (store, outcome));
    }

    pub fn record_jwks_fetch(&self, issuer: &str, ok: bool) {
        increment(&self.jwks_fetches, (Arc::from(issuer), if ok { "ok" } else { "error" }));
    }

    /// A token lookup in the verified-token cache; misses include tokens then rejected.
    pub fn record_token_cache(&self, hit: bool) {
        let counter = if hit {
            &self.token_cache_hits
        } else {
            &self.token_cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_handshake_failure(&self, reason: &'static str) {
        increment(&self.handshake_failures, reason);
    }

    pub fn record_reload(&self, trigger: &'static str, ok: bool) {
        increment(&self.reloads, (trigger, if ok { "ok" } else { "error" }));
    }

    /// A handshake completed and the connection is open.
    pub fn connection_opened(&self, resumed: bool, client_cert_not_after: Option<i64>) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed_handshakes.fetch_add(1, Ordering::Relaxed);
        }
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        if let Some(not_after) = client_cert_not_after {
            self.client_cert_earliest_expiry.fetch_min(not_after, Ordering::Relaxed);
        }
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// An idle HTTP/1.1 connection let go of its HTTP state (`parked`), or took it up again.
    pub fn connection_parked(&self, parked: bool) {
        self.connections_parked
            .fetch_add(if parked { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// A request went upstream on its client connection's pinned
    /// connection (`pinned`), or through the shared pool.
    pub fn upstream_request(&self, pinned: bool) {
        let counter = if pinned {
            &self.upstream_requests_pinned
        } else {
            &self.upstream_requests_pooled
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection to pin was opened to an upstream.
    pub fn upstream_pinned_opened(&self) {
        self.upstream_pinned_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition; `certificates` are expiry gauges of
    /// the current configuration as `(kind, subject, notAfter)`.
    pub fn render(&self, certificates: &[(&str, String, i64)]) -> String {
        let mut out = String::with_capacity(4096);
        self.render_labelled(&mut out);
        self.render_unlabelled(&mut out);
        self.families.render(&mut out);
        self.crl.render(&mut out, crate::auth::token::now_seconds() as i64);
        if let Some(counter) = ALLOCATION_COUNTER.get() {
            let (operations, bytes) = counter();
            let _ = writeln!(
                out,
                "# HELP bindgate_allocations_total Heap allocations and reallocations (count-allocs builds).\n\
                 # TYPE bindgate_allocations_total counter\nbindgate_allocations_total {operations}\n\
                 # HELP bindgate_allocated_bytes_total Bytes those allocations asked for.\n\
                 # TYPE bindgate_allocated_bytes_total counter\nbindgate_allocated_bytes_total {bytes}"
            );
        }
        self.render_certificates(&mut out, certificates);
        out
    }

    /// The counter families with labels, and the histograms.
    fn render_labelled(&self, out: &mut String) {
        family(
            out,
            "bindgate_requests_total",
            "Requests answered, by route, status, reason and where the client certificate came from.",
            rows(&self.requests, |(route, status, reason, cert_source)| {
                format!(
                    "route=\"{}\",status=\"{status}\",reason=\"{reason}\",cert_source=\"{}\"",
                    escape_label(route),
                    escape_label(cert_source)
                )
            }),
        );
        family(
            out,
            "bindgate_binding_report_only_total",
            "Requests forwarded by report-only routes despite a failed binding check.",
            rows(&self.binding_reports, |(route, reason)| {
                format!("route=\"{}\",reason=\"{reason}\"", escape_label(route))
            }),
        );
        family(
            out,
            "bindgate_sender_checks_passed_total",
            "Requests whose token binding held, by route and binding (mtls, dpop, mtls+dpop).",
            rows(&self.bindings_held, |(route, binding)| {
                format!("route=\"{}\",binding=\"{binding}\"", escape_label(route))
            }),
        );
        family(
            out,
            "bindgate_dpop_replay_store_failures_total",
            "DPoP replay-store lookups that failed, by store and what the request got (rejected or accepted).",
            rows(&self.replay_store_failures, |(store, outcome)| {
                format!("store=\"{store}\",outcome=\"{outcome}\"")
            }),
        );
        self.request_duration.render(
            out,
            "bindgate_request_duration_seconds",
            "Time from request head to response head, every outcome.",
        );
        self.upstream_duration.render(
            out,
            "bindgate_upstream_duration_seconds",
            "Time for the upstream to answer with a response head.",
        );
        family(
            out,
            "bindgate_tls_handshake_failures_total",
            "TLS handshakes that failed, by reason.",
            rows(&self.handshake_failures, |reason| format!("reason=\"{reason}\"")),
        );
        family(
            out,
            "bindgate_jwks_fetches_total",
            "Fetches of issuer keys, by issuer and result.",
            rows(&self.jwks_fetches, |(issuer, result)| {
                format!("issuer=\"{}\",result=\"{result}\"", escape_label(issuer))
            }),
        );
        family(
            out,
            "bindgate_as_requests_total",
            "Authorization server requests answered, by endpoint and status.",
            rows(&self.as_requests, |(endpoint, status)| {
                format!("endpoint=\"{}\",status=\"{status}\"", escape_label(endpoint))
            }),
        );
        family(
            out,
            "bindgate_as_tokens_issued_total",
            "Access tokens the authorization server issued, by grant and binding.",
            rows(&self.as_tokens_issued, |(grant, binding)| {
                format!("grant=\"{grant}\",binding=\"{binding}\"")
            }),
        );
        family(
            out,
            "bindgate_as_token_errors_total",
            "Token endpoint requests refused, by RFC 6749 error code.",
            rows(&self.as_token_errors, |error| format!("error=\"{error}\"")),
        );
        family(
            out,
            "bindgate_as_client_auth_failures_total",
            "Failed client authentications at the authorization server, by method.",
            rows(&self.as_client_auth_failures, |method| format!("method=\"{method}\"")),
        );
        family(
            out,
            "bindgate_reloads_total",
            "Configuration reloads, by trigger and result.",
            rows(&self.reloads, |(trigger, result)| {
                format!("trigger=\"{trigger}\",result=\"{result}\"")
            }),
        );
    }

    /// The counters and gauges that are one number each.
    fn render_unlabelled(&self, out: &mut String) {
        let single = [
            (
                "bindgate_tls_handshakes_total",
                "counter",
                "TLS handshakes completed.",
                self.handshakes.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_tls_resumed_handshakes_total",
                "counter",
                "TLS handshakes completed by resuming a session.",
                self.resumed_handshakes.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_token_cache_hits_total",
                "counter",
                "Tokens answered from the verified-token cache (expiry, binding and policy still checked).",
                self.token_cache_hits.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_token_cache_misses_total",
                "counter",
                "Tokens whose signature had to be verified (not cached, or keys changed since).",
                self.token_cache_misses.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_connections_open",
                "gauge",
                "TLS connections currently open.",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "bindgate_connections_parked",
                "gauge",
                "Open HTTP/1.1 connections idle between requests, holding no HTTP buffers.",
                self.connections_parked.load(Ordering::Relaxed),
            ),
            (
                "bindgate_upstream_requests_pinned_total",
                "counter",
                "Requests sent upstream on a connection pinned to their HTTP/1.1 client connection.",
                self.upstream_requests_pinned.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_upstream_requests_pooled_total",
                "counter",
                "Requests sent upstream through the shared pool (h2 clients, pinning off, or the cap reached).",
                self.upstream_requests_pooled.load(Ordering::Relaxed) as i64,
            ),
            (
                "bindgate_upstream_pinned_connections_opened_total",
                "counter",
                "Upstream connections opened to be pinned to client connections.",
                self.upstream_pinned_opened.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in single {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    }

    fn render_certificates(&self, out: &mut String, certificates: &[(&str, String, i64)]) {
        let _ = writeln!(
            out,
            "# HELP bindgate_certificate_expiry_timestamp_seconds notAfter of configured certificates.\n\
             # TYPE bindgate_certificate_expiry_timestamp_seconds gauge"
        );
        for (kind, subject, not_after) in certificates {
            let _ = writeln!(
                out,
                "bindgate_certificate_expiry_timestamp_seconds{{kind=\"{kind}\",subject=\"{}\"}} {not_after}",
                escape_label(subject)
            );
        }
        let earliest = self.client_cert_earliest_expiry.load(Ordering::Relaxed);
        if earliest != i64::MAX {
            let _ = writeln!(
                out,
                "# HELP bindgate_client_certificate_earliest_expiry_timestamp_seconds Earliest notAfter of any client certificate seen.\n\
                 # TYPE bindgate_client_certificate_earliest_expiry_timestamp_seconds gauge\n\
                 bindgate_client_certificate_earliest_expiry_timestamp_seconds {earliest}"
            );
        }
    }
}

fn rows<K: Clone + Ord>(counters: &Counters<K>, labels: impl Fn(&K) -> String) -> Vec<(String, u64)> {
    let Some(map) = crate::lock::read(counters) else {
        return Vec::new();
    };
    let mut entries: Vec<(K, u64)> = map
        .iter()
        .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (labels(&k), v)).collect()
}

fn family(out: &mut String, name: &str, help: &str, rows: Vec<(String, u64)>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// Bumps a labelled counter: a shared read lock when it exists, a write lock the first time.
fn increment<K: std::hash::Hash + Eq>(map: &Counters<K>, key: K) {
    if let Some(read) = crate::lock::read(map)
        && let Some(counter) = read.get(&key)
    {
        counter.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Some(mut write) = crate::lock::write(map) {
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
    fn renders_counters_with_their_labels() {
        let m = Metrics::default();
        let (root, api): (Arc<str>, Arc<str>) = (Arc::from("/"), Arc::from("/api"));
        let (tls, edge): (Arc<str>, Arc<str>) = (Arc::from("tls"), Arc::from("proxy:edge"));
        m.record_request(&root, 200, "forwarded", tls.clone(), Duration::from_millis(2));
        m.record_request(&root, 200, "forwarded", tls, Duration::from_millis(2));
        m.record_request(&api, 401, "cnf_mismatch", edge, Duration::from_micros(100));
        m.record_handshake_failure("unknown_ca");
        m.record_reload("signal", false);
        let text = m.render(&[("server", "CN=localhost".to_string(), 1_900_000_000)]);
        for expected in [
            "bindgate_requests_total{route=\"/\",status=\"200\",reason=\"forwarded\",cert_source=\"tls\"} 2\n",
            "bindgate_requests_total{route=\"/api\",status=\"401\",reason=\"cnf_mismatch\",cert_source=\"proxy:edge\"} 1\n",
            "bindgate_tls_handshake_failures_total{reason=\"unknown_ca\"} 1\n",
            "bindgate_reloads_total{trigger=\"signal\",result=\"error\"} 1\n",
            "bindgate_request_duration_seconds_bucket{le=\"0.0005\"} 1\n",
            "bindgate_request_duration_seconds_bucket{le=\"0.0025\"} 3\n",
            "bindgate_request_duration_seconds_count 3\n",
            "bindgate_certificate_expiry_timestamp_seconds{kind=\"server\",subject=\"CN=localhost\"} 1900000000\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
