//! CRLs fetched from where their CAs publish them (`server.crl_fetch`).
//!
//! The distribution points come from the configured CAs (their issuers'
//! lists, which can revoke the CA itself) and from every verified client
//! certificate (its issuer's list). Each list is believed only once its
//! signature verifies with a configured CA's key, never replaced by an
//! older one, refreshed well before its `nextUpdate`, and kept when a fetch
//! fails. Certificates are checked on every request, so a revocation
//! reaches resumed sessions and open keep-alive connections alike: a
//! resumed handshake verifies nothing.

pub mod fetch;
pub mod signed;
pub mod verifier;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls::crypto::WebPkiSupportedAlgorithms;

use crate::config::{CrlExpired, CrlFetchSettings};
use crate::conn::identity::{ClientIdentity, IssuerSerial};
use crate::metrics::Metrics;
use fetch::HttpClient;
use signed::{CrlRefusal, TrustedCa, VerifiedCrl};

/// Distribution points tracked at most; past this, new ones are not fetched.
const MAX_SOURCES: usize = 256;
/// A request does not fetch a list again sooner than this after a failure:
/// a dead CRL server must not be hit once per request.
const RETRY_ON_REQUEST_AFTER: i64 = 10;
/// Refresh bounds: however long a list is valid, it is fetched again within
/// an hour; however short, not more often than every ten seconds.
const REFRESH_MIN: i64 = 10;
const REFRESH_MAX: i64 = 3600;
/// The refresher looks at the schedule at least this often (seconds).
const SCHEDULE_POLL: i64 = 5;

/// Why a certificate fails its fetched CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlVerdict {
    Revoked,
    /// The issuer's list is past its `nextUpdate` (with `crl_expired = "deny"`).
    ListExpired,
    /// The certificate names a list, and none could be fetched (with `crl_expired = "deny"`).
    Unknown,
}

/// The fetched CRLs of one configuration generation, carried into the next.
pub struct CrlFetcher {
    settings: CrlFetchSettings,
    policy: CrlExpired,
    cas: Vec<TrustedCa>,
    algorithms: WebPkiSupportedAlgorithms,
    client: HttpClient,
    index: ArcSwap<Index>,
    sources: Mutex<BTreeMap<Box<str>, Source>>,
    /// One fetch at a time: lists are few, and a burst of first requests
    /// for the same one must cause a single GET.
    fetching: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

#[derive(Default, Clone)]
struct Source {
    crl: Option<Arc<VerifiedCrl>>,
    /// As fetched, so the next generation can verify it with its own CAs.
    der: Option<Bytes>,
    /// When to fetch again, seconds since the epoch.
    due: i64,
    last_attempt: i64,
    failures: u32,
}

/// What every list in use says, by the issuer it covers.
#[derive(Default)]
struct Index {
    by_issuer: HashMap<Box<[u8]>, Covered>,
    /// Subjects of configured CAs their issuer's list revokes: their leaves are revoked too.
    revoked_cas: HashSet<Box<[u8]>>,
}

#[derive(Default)]
struct Covered {
    revoked: HashSet<Box<[u8]>>,
    /// The earliest of the lists' `nextUpdate`s.
    next_update: Option<i64>,
}

enum Status {
    Good,
    Revoked,
    Expired,
    Unknown,
}

impl CrlFetcher {
    /// `ca_ders` are the `client_ca` certificates; `previous` is the last
    /// generation's fetcher, whose lists are kept if they still verify.
    pub fn new(
        settings: CrlFetchSettings,
        policy: CrlExpired,
        ca_ders: &[&[u8]],
        previous: Option<&CrlFetcher>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<CrlFetcher>, crate::conn::tls::ClientTlsError> {
        let cas: Vec<TrustedCa> = ca_ders.iter().filter_map(|der| TrustedCa::from_der(der)).collect();
        let algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        let now = now();
        let mut sources = BTreeMap::new();
        if let Some(previous) = previous
            && let Some(old) = crate::lock::lock(&previous.sources)
        {
            for (url, source) in old.iter() {
                let crl = source
                    .der
                    .as_ref()
                    .and_then(|der| signed::verify(der, &cas, &algorithms, now).ok())
                    .map(Arc::new);
                let der = crl.as_ref().and(source.der.clone());
                sources.insert(
                    url.clone(),
                    Source {
                        crl,
                        der,
                        ..source.clone()
                    },
                );
            }
        }
        for url in cas.iter().flat_map(|ca| ca.crl_urls.iter()) {
            sources.entry(url.clone()).or_default();
        }
        let fetcher = CrlFetcher {
            client: fetch::client(settings.timeout)?,
            settings,
            policy,
            cas,
            algorithms,
            index: ArcSwap::default(),
            sources: Mutex::new(sources),
            fetching: tokio::sync::Mutex::new(()),
            metrics,
        };
        fetcher.reindex();
        Ok(Arc::new(fetcher))
    }

    /// Refreshes every list when it falls due, for as long as the fetcher is in use.
    pub fn spawn_refresher(fetcher: &Arc<CrlFetcher>) {
        let weak: Weak<CrlFetcher> = Arc::downgrade(fetcher);
        tokio::spawn(async move {
            loop {
                let Some(fetcher) = weak.upgrade() else { return };
                let now = now();
                let due: Vec<Box<str>> = match crate::lock::lock(&fetcher.sources) {
                    Some(sources) => sources
                        .iter()
                        .filter(|(_, source)| source.due <= now)
                        .map(|(url, _)| url.clone())
                        .collect(),
                    None => return,
                };
                for url in due {
                    let _guard = fetcher.fetching.lock().await;
                    fetcher.fetch(&url).await;
                }
                let next = crate::lock::lock(&fetcher.sources)
                    .and_then(|sources| sources.values().map(|source| source.due).min())
                    .unwrap_or(now + REFRESH_MAX);
                drop(fetcher);
                // Lists first seen by a request join the schedule without a wake-up.
                let wait = (next - now).clamp(1, SCHEDULE_POLL);
                tokio::time::sleep(Duration::from_secs(wait as u64)).await;
            }
        });
    }

    /// The fetched lists' verdict on `cert`. A certificate whose issuer no
    /// list covers yet has its own distribution points fetched first, once
    /// (bounded by `crl_fetch_timeout`); one that names none is not judged
    /// here (CRL files still apply).
    pub async fn check(&self, cert: &ClientIdentity) -> Result<(), CrlVerdict> {
        let status = match self.status(&cert.issuer_serial) {
            Status::Unknown if !cert.crl_urls.is_empty() => {
                self.fetch_first_sight(&cert.issuer_serial, &cert.crl_urls).await;
                self.status(&cert.issuer_serial)
            }
            status => status,
        };
        match status {
            Status::Good => Ok(()),
            Status::Revoked => Err(CrlVerdict::Revoked),
            Status::Expired if self.policy == CrlExpired::Deny => Err(CrlVerdict::ListExpired),
            Status::Unknown if self.policy == CrlExpired::Deny && !cert.crl_urls.is_empty() => Err(CrlVerdict::Unknown),
            Status::Expired | Status::Unknown => Ok(()),
        }
    }

    /// Whether a fetched list revokes `cert`, as the handshake asks.
    pub fn is_revoked(&self, cert: &IssuerSerial) -> bool {
        matches!(self.status(cert), Status::Revoked)
    }

    fn status(&self, cert: &IssuerSerial) -> Status {
        let index = self.index.load();
        if index.revoked_cas.contains(&cert.issuer) {
            return Status::Revoked;
        }
        let Some(covered) = index.by_issuer.get(&cert.issuer) else {
            return Status::Unknown;
        };
        if covered.revoked.contains(&cert.serial) {
            Status::Revoked
        } else if covered.next_update.is_some_and(|next| next < now()) {
            Status::Expired
        } else {
            Status::Good
        }
    }

    /// Fetches the lists `urls` name, in order, until one covers the
    /// certificate's issuer. Requests arriving meanwhile wait for that fetch
    /// instead of starting their own, and a list that just failed is not
    /// tried again for a while: a dead server costs one timeout, not one per request.
    async fn fetch_first_sight(&self, cert: &IssuerSerial, urls: &[Box<str>]) {
        for url in urls {
            if !self.worth_fetching(url) {
                continue;
            }
            let _guard = self.fetching.lock().await;
            if self.worth_fetching(url) {
                self.fetch(url).await;
            }
            if !matches!(self.status(cert), Status::Unknown) {
                return;
            }
        }
    }

    /// Whether a request should fetch `url`: it has no list yet, was not
    /// tried in the last few seconds, and fits within [`MAX_SOURCES`].
    fn worth_fetching(&self, url: &str) -> bool {
        let Some(mut sources) = crate::lock::lock(&self.sources) else {
            return false;
        };
        if !sources.contains_key(url) && sources.len() >= MAX_SOURCES {
            return false;
        }
        let source = sources.entry(Box::from(url)).or_default();
        source.crl.is_none() && now() - source.last_attempt >= RETRY_ON_REQUEST_AFTER
    }

    /// Fetches `url` and, if the list verifies and is not older than the
    /// one held, puts it in use. The caller holds `fetching`.
    async fn fetch(&self, url: &str) {
        let started = now();
        // Marked before the wait: a request that gives up (its client gone)
        // still counts as an attempt, so the next one does not start over.
        if let Some(mut sources) = crate::lock::lock(&self.sources)
            && let Some(source) = sources.get_mut(url)
        {
            source.last_attempt = started;
        }
        let settings = &self.settings;
        let result = fetch::get(&self.client, url, settings.timeout, settings.max_bytes)
            .await
            .map_err(|e| e.to_string())
            .and_then(|der| self.accept(url, der).map_err(|e| e.to_string()));
        self.metrics.crl.record_fetch(url, result.is_ok());
        let Some(mut sources) = crate::lock::lock(&self.sources) else {
            return;
        };
        let Some(source) = sources.get_mut(url) else {
            return;
        };
        match result {
            Ok(crl) => {
                source.failures = 0;
                source.due = started + refresh_in(crl.next_update, started);
                self.metrics.crl.set_list(url, crl.this_update, crl.next_update);
                tracing::info!(%url, revoked = crl.revoked.len(), "CRL fetched");
            }
            Err(error) => {
                source.failures = source.failures.saturating_add(1);
                source.due = started + (5i64 << source.failures.min(6)).min(300);
                tracing::warn!(%url, %error, kept = source.crl.is_some(), "CRL fetch failed; the last good list stays in use");
            }
        }
    }

    /// Verifies a fetched list and, if it is no older than the one held, installs it.
    fn accept(&self, url: &str, der: Bytes) -> Result<Arc<VerifiedCrl>, CrlRefusal> {
        let der = pem_or_der(der);
        let crl = Arc::new(signed::verify(&der, &self.cas, &self.algorithms, now())?);
        {
            let Some(mut sources) = crate::lock::lock(&self.sources) else {
                return Err(CrlRefusal::NotACrl);
            };
            let source = sources.entry(Box::from(url)).or_default();
            if let Some(held) = &source.crl
                && held.issuer == crl.issuer
                && held.this_update > crl.this_update
            {
                return Err(CrlRefusal::Older);
            }
            source.crl = Some(crl.clone());
            source.der = Some(der);
        }
        self.reindex();
        Ok(crl)
    }

    fn reindex(&self) {
        let Some(sources) = crate::lock::lock(&self.sources) else {
            return;
        };
        let mut index = Index::default();
        for crl in sources.values().filter_map(|source| source.crl.as_ref()) {
            let covered = index.by_issuer.entry(crl.issuer.clone()).or_default();
            covered.revoked.extend(crl.revoked.iter().cloned());
            covered.next_update = match (covered.next_update, crl.next_update) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            for ca in &self.cas {
                if ca.issuer == crl.issuer && crl.revoked.contains(&ca.serial) {
                    index.revoked_cas.insert(ca.subject.clone());
                }
            }
        }
        self.index.store(Arc::new(index));
    }
}

/// How long until a list valid until `next_update` is fetched again: half
/// its remaining life, so that one failed fetch still leaves time for another.
fn refresh_in(next_update: Option<i64>, now: i64) -> i64 {
    match next_update {
        Some(next) if next > now => ((next - now) / 2).clamp(REFRESH_MIN, REFRESH_MAX),
        // Already stale as served: the CA may publish a fresh one any moment.
        Some(_) => 30,
        None => REFRESH_MAX,
    }
}

/// Distribution points serve DER; some serve PEM all the same.
fn pem_or_der(body: Bytes) -> Bytes {
    use rustls_pki_types::CertificateRevocationListDer;
    use rustls_pki_types::pem::PemObject;
    if !body.starts_with(b"-----BEGIN") {
        return body;
    }
    match CertificateRevocationListDer::from_pem_slice(&body) {
        Ok(der) => Bytes::from(der.as_ref().to_vec()),
        Err(_) => body,
    }
}

fn now() -> i64 {
    crate::auth::token::now_seconds() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_refreshed_at_half_their_remaining_life_within_bounds() {
        assert_eq!(refresh_in(Some(1000 + 600), 1000), 300);
        assert_eq!(refresh_in(Some(1000 + 4), 1000), REFRESH_MIN);
        assert_eq!(refresh_in(Some(1000 + 86_400 * 7), 1000), REFRESH_MAX);
        assert_eq!(refresh_in(Some(900), 1000), 30);
        assert_eq!(refresh_in(None, 1000), REFRESH_MAX);
    }
}
