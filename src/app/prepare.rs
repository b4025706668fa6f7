//! A configuration made ready to serve: every file it names loaded and
//! checked, the request path built. What carries over from the previous
//! generation on reload (remote key sets, the DPoP replay store and nonce
//! secret) is decided here.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::app::{families, fingerprint};
use crate::auth::dpop::check::DpopVerifier;
use crate::auth::dpop::nonce::NonceIssuer;
use crate::auth::dpop::store::ReplayStore;
use crate::auth::token::{self, KeyStore, RevokedFamilies, TokenValidator};
use crate::config::{AuthorizationServerSettings, Config, ConfigError, IssuerKeys, JwksSource, TokenSettings};
use crate::conn::crl::CrlFetcher;
use crate::conn::crl::verifier::WithFetchedRevocations;
use crate::conn::{pem, tls};
use crate::gateway::Gateway;
use crate::gateway::client_cert::ForwardedCerts;
use crate::gateway::{forward, routes};
use crate::issuer::Issuer;
use crate::issuer::client_auth::ClientAuthenticator;
use crate::issuer::metadata;
use crate::issuer::refresh::Families;
use crate::issuer::subject::SubjectVerifier;
use crate::issuer::token::TokenEndpoint;
use crate::jose::sign::{KeyRing, KeyRingError};
use crate::metrics::Metrics;

/// A configuration with every file it names loaded and checked: ready to serve.
pub struct Prepared {
    pub config: Config,
    pub tls: Arc<ServerConfig>,
    /// The server's leaf certificate first, then the client CAs.
    pub certificates: Vec<tls::CertificateSummary>,
    /// Content of the watched files, taken just before they were read.
    pub fingerprint: fingerprint::Fingerprint,
    pub gateway: Arc<Gateway>,
    /// The authorization server, when `[authorization_server]` is configured.
    pub issuer: Option<Arc<Issuer>>,
}

/// What to do about an issuer whose keys cannot be fetched while preparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysPolicy {
    /// Starting up: serve anyway, report not ready, keep fetching in the background.
    StartUnready,
    /// Reloading or checking: every issuer's keys must load.
    Require,
}

/// Loads certificates, keys and key sets named by `config`, failing with the
/// file and key at fault. Remote key sets unchanged since `previous` are
/// carried over with their cache.
pub async fn prepare(
    config: Config,
    metrics: Arc<Metrics>,
    previous: Option<&Prepared>,
    policy: KeysPolicy,
) -> Result<Prepared, ConfigError> {
    let fingerprint = fingerprint::fingerprint(&config.watched_files());
    forward::check_claim_headers(&config)?;
    let crls = crl_fetcher(&config, &metrics, previous)?;
    let gateway_tls = tls::server_config(&config, |verifier| match &crls {
        None => verifier,
        Some(crls) => Arc::new(WithFetchedRevocations {
            inner: verifier,
            crls: crls.clone(),
        }),
    })?;
    forward::check_proxy_headers(&config)?;
    let mut certificates = tls::summaries("server", &config.server.cert)
        .map_err(|e| config.unusable("server.cert", &config.server.cert, e))?;
    certificates.truncate(1);
    if let Some(path) = &config.server.client_ca {
        certificates
            .extend(tls::summaries("client_ca", path).map_err(|e| config.unusable("server.client_ca", path, e))?);
    }
    // Read once, afresh each generation (a reload is how keys rotate), and
    // shared: the embedded issuer's tokens are verified against this very ring.
    let signing_keys = match &config.authorization_server {
        Some(settings) => Some(Arc::new(
            KeyRing::load(&settings.signing_keys).map_err(|e| signing_keys_error(&config, settings, e))?,
        )),
        None => None,
    };
    let mut issuers = Vec::with_capacity(config.issuers.len());
    for settings in &config.issuers {
        let keys = key_store(&config, settings, signing_keys.as_deref(), &metrics, previous, policy).await?;
        issuers.push(token::Issuer {
            settings: settings.clone(),
            keys,
        });
    }
    // Said at every start and reload, not per request: a Redis outage with
    // `replay_store_failure = "open"` would otherwise flood the log.
    for loosening in config.loosenings() {
        tracing::warn!(setting = %loosening.setting, "{}", loosening.effect);
    }
    let routes = routes::RouteTable::build(&config)?;
    let dpop = dpop_verifier(&config, &metrics, previous)?;
    let revoked_families = previous
        .map(|p| p.gateway.revoked_families.clone())
        .unwrap_or_else(|| Arc::new(RevokedFamilies::new()));
    let issuer = match config.authorization_server.as_ref().zip(signing_keys) {
        Some((settings, keys)) => {
            let carried = previous
                .and_then(|p| Some((p.config.authorization_server.as_ref()?, p.issuer.as_ref()?)))
                .filter(|(before, _)| before.store == settings.store)
                .map(|(_, issuer)| issuer.token.families.store.clone());
            let families = families::families(&config, settings, &revoked_families, &metrics, carried).await?;
            Some(Arc::new(authorization_server(
                &config, settings, keys, &dpop, families, &metrics, previous,
            )?))
        }
        None => None,
    };
    if let Some(issuer) = &issuer {
        let token = &issuer.token;
        for (key, store) in token
            .clients
            .new_key_stores()
            .iter()
            .chain(token.subjects.new_key_stores())
        {
            start_remote(&config, store, key, policy).await?;
        }
    }
    let gateway = Arc::new(Gateway {
        realm: config.server.realm.clone(),
        validator: TokenValidator::new(issuers, config.limits.token_cache_bytes, metrics.clone()),
        routes,
        dpop,
        forward: config.forward.clone(),
        limits: config.limits.clone(),
        revoked: gateway_tls.revoked,
        crls,
        forwarded: ForwardedCerts::new(&config, gateway_tls.verifier),
        revoked_families,
        family_issuer: config.authorization_server.as_ref().map(|s| s.issuer.clone()),
        metrics,
    });
    Ok(Prepared {
        config,
        tls: gateway_tls.config,
        certificates,
        fingerprint,
        gateway,
        issuer,
    })
}

/// `server.crl_fetch`'s fetcher, keeping the previous generation's lists
/// that still verify, and refreshing in the background.
fn crl_fetcher(
    config: &Config,
    metrics: &Arc<Metrics>,
    previous: Option<&Prepared>,
) -> Result<Option<Arc<CrlFetcher>>, ConfigError> {
    let (Some(settings), Some(ca)) = (&config.server.crl_fetch, &config.server.client_ca) else {
        return Ok(None);
    };
    let cas = pem::certificates(ca).map_err(|e| config.unusable("server.client_ca", ca, e))?;
    let ders: Vec<&[u8]> = cas.iter().map(|der| der.as_ref()).collect();
    let previous = previous.and_then(|p| p.gateway.crls.as_deref());
    let fetcher = CrlFetcher::new(
        settings.clone(),
        config.server.crl_expired,
        &ders,
        previous,
        metrics.clone(),
    )
    .map_err(|e| config.unusable("server.crl_fetch", &config.source, e))?;
    CrlFetcher::spawn_refresher(&fetcher);
    Ok(Some(fetcher))
}

/// The authorization server of this generation: its signing keys (loaded
/// by the caller, shared with the gateway), its clients' and subject
/// issuers' key sets read afresh (a reload is how keys rotate), its TLS
/// configuration, its metadata
/// rendered. It shares the gateway's DPoP replay store: one place remembers
/// every proof and assertion `jti`.
fn authorization_server(
    config: &Config,
    settings: &AuthorizationServerSettings,
    keys: Arc<KeyRing>,
    gateway_dpop: &DpopVerifier,
    families: Arc<Families>,
    metrics: &Arc<Metrics>,
    previous: Option<&Prepared>,
) -> Result<Issuer, ConfigError> {
    let tls = tls::authorization_server_config(config, settings)?;
    let replay = gateway_dpop.replay_store().clone();
    let previous_token = previous.and_then(|p| p.issuer.as_ref()).map(|i| &i.token);
    let token = TokenEndpoint {
        clients: ClientAuthenticator::new(
            config,
            settings,
            replay.clone(),
            previous_token.map(|t| &t.clients),
            metrics,
        )?,
        dpop: token_endpoint_dpop(config, settings, gateway_dpop, replay, metrics, previous)?,
        families,
        subjects: SubjectVerifier::new(
            config,
            &settings.subject_issuers,
            previous_token.map(|t| &t.subjects),
            metrics,
        )?,
        access_token_ttl_seconds: settings.access_token_ttl.as_secs(),
        refresh: settings.refresh,
        max_request_bytes: config.limits.max_token_request_bytes,
        body_pace: config.limits.body_pace,
    };
    Ok(Issuer::new(
        settings.clone(),
        keys,
        &config.dpop.algorithms,
        tls,
        token,
        metrics.clone(),
    ))
}

/// The token endpoint's DPoP checks: `[dpop]`'s rules, with `htu` fixed to
/// the issuer's own URLs (clients address the issuer, whatever Host the
/// listener sees). Nonces when `dpop_require_nonce` is set: the gateway's
/// own, when `[dpop]` requires them too, so one set of secrets serves both;
/// otherwise a random secret kept across reloads.
fn token_endpoint_dpop(
    config: &Config,
    settings: &AuthorizationServerSettings,
    gateway_dpop: &DpopVerifier,
    replay: Arc<ReplayStore>,
    metrics: &Arc<Metrics>,
    previous: Option<&Prepared>,
) -> Result<DpopVerifier, ConfigError> {
    let nonces = match (settings.dpop_require_nonce, gateway_dpop.nonce_issuer()) {
        (false, _) => None,
        (true, Some(shared)) => Some(shared.clone()),
        (true, None) => {
            let carried = previous
                .and_then(|p| p.issuer.as_ref())
                .filter(|_| previous.is_some_and(|p| p.config.dpop.nonce.is_none()))
                .and_then(|i| i.token.dpop.nonce_issuer().cloned());
            match carried {
                Some(issuer) => Some(issuer),
                None => Some(random_nonce_issuer(
                    config,
                    "authorization_server.dpop_require_nonce",
                    DEFAULT_NONCE_WINDOW,
                )?),
            }
        }
    };
    let dpop = crate::config::DpopSettings {
        public_url: Some(metadata::issuer_origin(&settings.issuer)),
        ..config.dpop.clone()
    };
    Ok(DpopVerifier::new(&dpop, nonces, replay, metrics.clone()))
}

/// How long a token endpoint nonce is good when `[dpop]` sets no window:
/// `[dpop] nonce_window`'s default.
const DEFAULT_NONCE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// A nonce issuer with a fresh random secret: nonces from before a restart
/// are refused, and the client retries with the one it is handed.
fn random_nonce_issuer(
    config: &Config,
    key: &'static str,
    window: std::time::Duration,
) -> Result<Arc<NonceIssuer>, ConfigError> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| config.unusable(key, &config.source, "no randomness for a nonce secret"))?;
    Ok(Arc::new(NonceIssuer::new(&[secret.to_vec()], window.as_secs())))
}

/// Names the entry of `signing_keys` at fault, and its file.
fn signing_keys_error(config: &Config, settings: &AuthorizationServerSettings, e: KeyRingError) -> ConfigError {
    const KEY: &str = "authorization_server.signing_keys";
    match e {
        KeyRingError::Key { index, source } => config.unusable(format!("{KEY}[{index}]"), &source.path, source.reason),
        KeyRingError::Duplicate {
            index,
            path,
            first_index,
            kid,
            ..
        } => config.unusable(
            format!("{KEY}[{index}]"),
            &path,
            format!("is the same key as {KEY}[{first_index}] (kid {kid}); list each key once"),
        ),
        KeyRingError::NoKeys | KeyRingError::Unpublishable(_) => {
            let path = settings.signing_keys.first().cloned().unwrap_or_default();
            config.unusable(KEY, &path, e)
        }
    }
}

/// The DPoP checker. The replay store outlives reloads that leave its
/// settings alone: forgetting the proofs seen would let them be replayed.
/// So does a random nonce secret, or every client would need a new nonce.
fn dpop_verifier(
    config: &Config,
    metrics: &Arc<Metrics>,
    previous: Option<&Prepared>,
) -> Result<DpopVerifier, ConfigError> {
    let settings = &config.dpop;
    let before = previous.filter(|p| p.config.dpop.replay.store == settings.replay.store);
    let replay = match before {
        Some(p) => p.gateway.dpop.replay_store().clone(),
        None => Arc::new(
            ReplayStore::new(&settings.replay.store)
                .map_err(|e| config.unusable("dpop.replay_store", &config.source, e))?,
        ),
    };
    let nonces = match &settings.nonce {
        None => None,
        Some(nonce) if nonce.secret_files.is_empty() => {
            let carried = previous
                .filter(|p| p.config.dpop.nonce.as_ref() == Some(nonce))
                .and_then(|p| p.gateway.dpop.nonce_issuer().cloned());
            match carried {
                Some(issuer) => Some(issuer),
                None => Some(random_nonce_issuer(config, "dpop.require_nonce", nonce.window)?),
            }
        }
        Some(nonce) => {
            let mut secrets = Vec::with_capacity(nonce.secret_files.len());
            for path in &nonce.secret_files {
                let secret = std::fs::read(path).map_err(|e| config.unusable("dpop.nonce_secrets", path, e))?;
                let secret = secret.trim_ascii().to_vec();
                if secret.len() < 16 {
                    return Err(config.unusable(
                        "dpop.nonce_secrets",
                        path,
                        "a nonce secret needs at least 16 bytes (e.g. `openssl rand -base64 32`)",
                    ));
                }
                secrets.push(secret);
            }
            Some(Arc::new(NonceIssuer::new(&secrets, nonce.window.as_secs())))
        }
    };
    Ok(DpopVerifier::new(settings, nonces, replay, metrics.clone()))
}

/// The keys of one trusted issuer. `signing_keys` is the embedded
/// authorization server's ring, when there is one.
async fn key_store(
    config: &Config,
    settings: &TokenSettings,
    signing_keys: Option<&KeyRing>,
    metrics: &Arc<Metrics>,
    previous: Option<&Prepared>,
    policy: KeysPolicy,
) -> Result<Arc<KeyStore>, ConfigError> {
    let key = format!("{}.jwks", settings.section);
    let source = match (&settings.keys, signing_keys) {
        (IssuerKeys::Jwks(source), _) => source,
        (IssuerKeys::Embedded, Some(ring)) => return Ok(Arc::new(KeyStore::embedded(&settings.issuer, ring))),
        // Validation chooses Embedded only with the table present; a Config
        // built in code may still get here.
        (IssuerKeys::Embedded, None) => {
            return Err(ConfigError::InvalidValue {
                file: config.source.clone(),
                key: key.into(),
                reason: "required (a file path or an https:// URL): there is no [authorization_server]".into(),
            });
        }
    };
    if let JwksSource::File(path) = source {
        let store = KeyStore::from_file(&settings.issuer, path).map_err(|e| config.unusable(key, path, e))?;
        return Ok(Arc::new(store));
    }
    let carried = previous.and_then(|p| {
        p.gateway
            .validator
            .issuers()
            .iter()
            .find(|i| i.settings.issuer == settings.issuer && i.keys.same_remote(source, &settings.remote))
            .map(|i| i.keys.clone())
    });
    if let Some(store) = carried {
        return Ok(store);
    }
    let store = KeyStore::remote(
        &settings.issuer,
        source.clone(),
        settings.remote.clone(),
        metrics.clone(),
    )
    .map_err(|e| config.unusable(key.clone(), &config.source, e))?;
    let store = Arc::new(store);
    start_remote(config, &store, &key, policy).await?;
    Ok(store)
}

/// The first fetch of a remote key set, then its refresher. Starting up,
/// a failed fetch leaves it empty (not ready, for an issuer; refusing its
/// client, for a client's keys; refusing its tokens, for a subject
/// issuer's) and retried in the background; reloading or checking, it
/// fails the configuration, naming `key`.
async fn start_remote(
    config: &Config,
    store: &Arc<KeyStore>,
    key: &str,
    policy: KeysPolicy,
) -> Result<(), ConfigError> {
    match (store.fetch().await, policy) {
        (Ok(ttl), _) => KeyStore::spawn_refresher(store, ttl),
        (Err(e), KeysPolicy::Require) => return Err(config.unusable(key.to_string(), &config.source, e)),
        (Err(e), KeysPolicy::StartUnready) => {
            tracing::error!(key, error = %e, "keys unavailable; not ready until they load (an issuer's), or the client cannot authenticate (a client's), or its tokens cannot be exchanged (a subject issuer's)");
            KeyStore::spawn_refresher(store, store.refresh_min());
        }
    }
    Ok(())
}
