//! Fetched CRLs: how old each one is, when it runs out, and how its fetches go.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::RwLock;

use super::{Counters, escape_label, family, increment, rows};

#[derive(Debug, Default)]
pub struct CrlMetrics {
    /// By distribution point: the list in use.
    lists: RwLock<BTreeMap<Box<str>, ListTimes>>,
    /// By distribution point and result (`ok`, `error`).
    fetches: Counters<(Box<str>, &'static str)>,
}

#[derive(Debug, Clone, Copy)]
struct ListTimes {
    this_update: i64,
    next_update: Option<i64>,
}

impl CrlMetrics {
    pub fn record_fetch(&self, url: &str, ok: bool) {
        increment(&self.fetches, (Box::from(url), if ok { "ok" } else { "error" }));
    }

    /// The list now in use for `url`; times in seconds since the epoch.
    pub fn set_list(&self, url: &str, this_update: i64, next_update: Option<i64>) {
        if let Some(mut lists) = crate::lock::write(&self.lists) {
            lists.insert(
                Box::from(url),
                ListTimes {
                    this_update,
                    next_update,
                },
            );
        }
    }

    pub(super) fn render(&self, out: &mut String, now: i64) {
        let lists = crate::lock::read(&self.lists).map(|l| l.clone()).unwrap_or_default();
        if !lists.is_empty() {
            let name = "bindgate_crl_age_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Seconds since the thisUpdate of the CRL in use, by distribution point.\n# TYPE {name} gauge"
            );
            for (url, times) in &lists {
                let _ = writeln!(
                    out,
                    "{name}{{url=\"{}\"}} {}",
                    escape_label(url),
                    now - times.this_update
                );
            }
            let name = "bindgate_crl_next_update_timestamp_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} nextUpdate of the CRL in use (seconds since the epoch), by distribution point.\n# TYPE {name} gauge"
            );
            for (url, times) in &lists {
                if let Some(next_update) = times.next_update {
                    let _ = writeln!(out, "{name}{{url=\"{}\"}} {next_update}", escape_label(url));
                }
            }
        }
        family(
            out,
            "bindgate_crl_fetches_total",
            "CRL fetches from distribution points, by URL and result (ok, error).",
            rows(&self.fetches, |(url, result)| {
                format!("url=\"{}\",result=\"{result}\"", escape_label(url))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_age_expiry_and_fetch_results_per_url() {
        let metrics = CrlMetrics::default();
        metrics.record_fetch("http://ca.test/a.crl", true);
        metrics.record_fetch("http://ca.test/a.crl", false);
        metrics.record_fetch("http://ca.test/a.crl", false);
        metrics.set_list("http://ca.test/a.crl", 1000, Some(5000));
        let mut out = String::new();
        metrics.render(&mut out, 1600);
        assert!(
            out.contains("bindgate_crl_age_seconds{url=\"http://ca.test/a.crl\"} 600\n"),
            "{out}"
        );
        assert!(out.contains("bindgate_crl_next_update_timestamp_seconds{url=\"http://ca.test/a.crl\"} 5000\n"));
        assert!(out.contains("bindgate_crl_fetches_total{url=\"http://ca.test/a.crl\",result=\"error\"} 2\n"));
        assert!(out.contains("bindgate_crl_fetches_total{url=\"http://ca.test/a.crl\",result=\"ok\"} 1\n"));
    }
}
