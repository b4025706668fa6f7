//! An issuer's current key set, from a file or fetched over HTTPS.
//!
//! Remote keys are cached, refreshed in the background (honouring
//! `Cache-Control: max-age` within configured bounds), refetched at once when
//! a token names an unknown `kid` (at most once per cooldown, one fetch at a
//! time), and the last good set is kept whenever a fetch fails.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{JwksSource, RemoteJwksSettings};
use crate::conn::tls::{self, ClientRoots, ClientTlsError};
use crate::jose::jwk::{JwksError, KeySet};
use crate::jose::sign::KeyRing;
use crate::metrics::Metrics;

/// Largest JWKS or metadata document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why fetching keys failed. The previous key set stays in use.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: {source}")]
    Document {
        url: String,
        #[source]
        source: JwksError,
    },
    #[error("{url}: metadata is unusable: {reason}")]
    Metadata { url: String, reason: String },
}

/// The key set of one issuer.
pub struct KeyStore {
    issuer: String,
    keys: ArcSwap<KeySet>,
    /// Bumped after every key-set change: verified-token cache entries of an
    /// older generation are no longer trusted.
    generation: AtomicU64,
    remote: Option<Remote>,
}

struct Remote {
    source: JwksSource,
    settings: RemoteJwksSettings,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    metrics: Arc<Metrics>,
    /// One fetch at a time; holds when the last fetch caused by an unknown
    /// `kid` started (scheduled refreshes do not count against the cooldown).
    last_miss_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// `jwks_uri` found by discovery, reused until a fetch fails.
    discovered: std::sync::Mutex<Option<Uri>>,
}

impl KeyStore {
    /// Keys read from a JWKS file.
    pub fn from_file(issuer: &str, path: &std::path::Path) -> Result<KeyStore, JwksError> {
        Ok(KeyStore {
            issuer: issuer.to_string(),
            keys: ArcSwap::from_pointee(KeySet::from_file(path)?),
            generation: AtomicU64::new(0),
            remote: None,
        })
    }

    /// A fixed key set.
    pub fn from_keys(issuer: &str, keys: KeySet) -> KeyStore {
        KeyStore {
            issuer: issuer.to_string(),
            keys: ArcSwap::from_pointee(keys),
            generation: AtomicU64::new(0),
            remote: None,
        }
    }

    /// The embedded authorization server's published keys, taken from its
    /// ring in-process. Never fetched and never empty: each generation
    /// builds its own from the ring it loaded, so a rotation is in effect
    /// for the gateway the moment the reload that made it is.
    pub fn embedded(issuer: &str, ring: &KeyRing) -> KeyStore {
        KeyStore::from_keys(issuer, ring.verification_keys())
    }

    /// Keys fetched from `source` (a URL or discovery); empty until the first fetch.
    pub fn remote(
        issuer: &str,
        source: JwksSource,
        settings: RemoteJwksSettings,
        metrics: Arc<Metrics>,
    ) -> Result<KeyStore, FetchError> {
        let client = https_client(&settings)?;
        Ok(KeyStore {
            issuer: issuer.to_string(),
            keys: ArcSwap::from_pointee(KeySet::empty()),
            generation: AtomicU64::new(0),
            remote: Some(Remote {
                source,
                settings,
                client,
                metrics,
                last_miss_fetch: tokio::sync::Mutex::new(None),
                discovered: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The keys to verify with right now.
    pub fn current(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Changes whenever the keys do. Read it before [`KeyStore::current`]:
    /// a change in between then only makes a cache entry stale, never wrongly fresh.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `keys` in service; a different document starts a new generation.
    fn replace(&self, keys: KeySet) {
        let previous = self.keys.swap(Arc::new(keys));
        if !self.keys.load().same_document(&previous) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    #[cfg(test)]
    pub(crate) fn replace_for_test(&self, keys: KeySet) {
        self.replace(keys);
    }

    /// Whether the store holds keys (a remote store before its first good fetch does not).
    pub fn is_loaded(&self) -> bool {
        !self.keys.load().is_empty()
    }

    /// Whether this store fetches the same keys the same way as `source`/`settings`:
    /// then a reload keeps it, with its cache and refresher.
    pub fn same_remote(&self, source: &JwksSource, settings: &RemoteJwksSettings) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| &r.source == source && &r.settings == settings)
    }

    /// Fetches now, replacing the keys on success. Returns how long the
    /// result may be cached.
    pub async fn fetch(&self) -> Result<Duration, FetchError> {
        let Some(remote) = &self.remote else {
            return Ok(Duration::MAX);
        };
        let _one_at_a_time = remote.last_miss_fetch.lock().await;
        self.fetch_locked(remote).await
    }

    async fn fetch_locked(&self, remote: &Remote) -> Result<Duration, FetchError> {
        let result = remote.fetch_keys(&self.issuer).await;
        remote.metrics.record_jwks_fetch(&self.issuer, result.is_ok());
        match result {
            Ok((keys, ttl)) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), refresh_in = ?ttl, "fetched issuer keys");
                self.replace(keys);
                Ok(ttl)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "fetching issuer keys failed; keeping the previous keys");
                Err(e)
            }
        }
    }

    /// A token named a `kid` that is not in the set (or no keys are loaded):
    /// refetch unless another fetch is running or one started within the
    /// cooldown. Returns whether the set changed and may now hold the key.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let before = self.current();
        let mut last = remote.last_miss_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < remote.settings.refetch_cooldown) {
            // Either another request just fetched (the set may be new) or a flood is being held off.
            return !Arc::ptr_eq(&before, &self.current());
        }
        *last = Some(Instant::now());
        let _ = self.fetch_locked(remote).await;
        !Arc::ptr_eq(&before, &self.current())
    }

    /// Refreshes in the background for as long as the store is in use.
    pub fn spawn_refresher(store: &Arc<KeyStore>, first_delay: Duration) {
        if store.remote.is_none() {
            return;
        }
        let weak: Weak<KeyStore> = Arc::downgrade(store);
        tokio::spawn(async move {
            let mut delay = first_delay;
            let mut failures: u32 = 0;
            loop {
                tokio::time::sleep(delay).await;
                let Some(store) = weak.upgrade() else { return };
                let Some(remote) = &store.remote else { return };
                let settings = remote.settings.clone();
                delay = match store.fetch().await {
                    Ok(ttl) => {
                        failures = 0;
                        ttl
                    }
                    Err(_) => {
                        // Back off from refresh_min, doubling, never beyond the normal refresh.
                        failures = failures.saturating_add(1);
                        let backoff = settings.refresh_min.saturating_mul(1 << failures.min(10));
                        backoff.min(settings.refresh.max(settings.refresh_min))
                    }
                };
            }
        });
    }
}

impl Remote {
    async fn fetch_keys(&self, issuer: &str) -> Result<(KeySet, Duration), FetchError> {
        let url = match &self.source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Discovery(metadata) => self.jwks_uri(issuer, metadata).await?,
            JwksSource::File(path) => {
                return Err(FetchError::Transport {
                    url: path.display().to_string(),
                    reason: "not a remote source".to_string(),
                });
            }
        };
        let result = self.get(&url).await.and_then(|(body, max_age)| {
            let keys = KeySet::from_json(&body).map_err(|source| FetchError::Document {
                url: url.to_string(),
                source,
            })?;
            Ok((keys, self.cache_ttl(max_age)))
        });
        if result.is_err()
            && let Some(mut discovered) = crate::lock::lock(&self.discovered)
        {
            // The issuer may have moved its keys: discover again next time.
            *discovered = None;
        }
        result
    }

    async fn jwks_uri(&self, issuer: &str, metadata_url: &Uri) -> Result<Uri, FetchError> {
        if let Some(known) = crate::lock::lock(&self.discovered).and_then(|d| d.clone()) {
            return Ok(known);
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let unusable = |reason: String| FetchError::Metadata {
            url: metadata_url.to_string(),
            reason,
        };
        let (body, _) = self.get(metadata_url).await?;
        let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| unusable(e.to_string()))?;
        // OpenID Connect Discovery 1.0 section 4.3 and RFC 8414 section 3.3.
        if metadata.issuer != issuer {
            return Err(unusable(format!(
                "issuer is {:?}, expected {issuer:?}",
                metadata.issuer
            )));
        }
        let jwks_uri: Uri = metadata
            .jwks_uri
            .parse()
            .map_err(|_| unusable("jwks_uri is not a URL".to_string()))?;
        if jwks_uri.scheme_str() != Some("https") {
            return Err(unusable("jwks_uri is not https".to_string()));
        }
        if let Some(mut discovered) = crate::lock::lock(&self.discovered) {
            *discovered = Some(jwks_uri.clone());
        }
        Ok(jwks_uri)
    }

    /// GETs `url`, returning the body and the response's `max-age`, if any.
    async fn get(&self, url: &Uri) -> Result<(Bytes, Option<Duration>), FetchError> {
        let transport = |reason: String| FetchError::Transport {
            url: url.to_string(),
            reason,
        };
        let request = Request::get(url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .body(Empty::new())
            .map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(crate::error::error_chain(&e)))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: response.status(),
                });
            }
            let max_age = response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the body: {e}")))?
                .to_bytes();
            Ok((body, max_age))
        };
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout {
                url: url.to_string(),
                timeout: self.settings.timeout,
            })?
    }

    fn cache_ttl(&self, max_age: Option<Duration>) -> Duration {
        let s = &self.settings;
        max_age.unwrap_or(s.refresh).clamp(s.refresh_min, s.refresh_max)
    }
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as zero.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

fn https_client(
    settings: &RemoteJwksSettings,
) -> Result<Client<HttpsConnector<HttpConnector>, Empty<Bytes>>, FetchError> {
    let roots = match settings.ca.as_deref() {
        Some(path) => ClientRoots::File(path),
        None => ClientRoots::System,
    };
    let tls = tls::client_config(roots, None).map_err(|e| match e {
        ClientTlsError::Roots { path, source } => {
            let path = path.map(|p| p.display().to_string()).unwrap_or_default();
            FetchError::Client(format!("{path}: {source}"))
        }
        other => FetchError::Client(other.to_string()),
    })?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[tokio::test]
    async fn an_embedded_store_holds_every_ring_key_and_never_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, alg) in [
            ("signer", &rcgen::PKCS_ED25519),
            ("next", &rcgen::PKCS_ECDSA_P256_SHA256),
        ] {
            let path = dir.path().join(format!("{name}.pem"));
            std::fs::write(&path, rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem()).unwrap();
            paths.push(path);
        }
        let ring = KeyRing::load(&paths).unwrap();
        let store = KeyStore::embedded("https://as.example", &ring);
        let ring_kids: Vec<&str> = ring.keys().map(|k| k.kid()).collect();
        assert_eq!(store.current().len(), ring_kids.len());
        for kid in ring_kids {
            assert!(store.current().has_kid(kid), "{kid}");
        }
        assert!(store.is_loaded());
        assert_eq!(store.fetch().await.unwrap(), Duration::MAX);
        assert!(!store.refetch_for_unknown_kid().await);
        assert_eq!(store.generation(), 0);
    }

    #[test]
    fn an_unusable_ca_is_named_in_the_client_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let settings = |ca: Option<std::path::PathBuf>| RemoteJwksSettings {
            ca,
            refresh: Duration::from_secs(300),
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(3600),
            refetch_cooldown: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        };
        let io = std::fs::read(&missing).unwrap_err();
        match https_client(&settings(Some(missing.clone()))) {
            Err(FetchError::Client(reason)) => {
                assert_eq!(reason, format!("{}: cannot read: {io}", missing.display()))
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a client trusting a missing CA file"),
        }
        assert!(https_client(&settings(None)).is_ok());
    }
}
