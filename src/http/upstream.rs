//! The pooled client that carries authorized requests to the upstream, with
//! bodies streamed both ways.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, BoxError};
use crate::config::{Config, ConfigError, UpstreamSettings};
use crate::conn::pem;

/// Why forwarding failed; the upstream, not the client, is at fault.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("upstream did not answer in time")]
    Timeout,
}

/// A connection pool to one upstream.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    scheme: Scheme,
    authority: http::uri::Authority,
    /// Prefix prepended to every forwarded path, without a trailing `/`.
    base_path: String,
    request_timeout: Duration,
}

impl Upstream {
    /// Builds a pool to `url`, with the TLS settings (CA bundle, client
    /// certificate) and timeouts of `config`'s `[upstream]`.
    pub fn new(config: &Config, url: &Uri) -> Result<Upstream, ConfigError> {
        let settings = &config.upstream;
        let tls = client_tls(config, settings, url)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            client,
            scheme: url.scheme().cloned().unwrap_or(Scheme::HTTP),
            authority: url
                .authority()
                .cloned()
                .ok_or_else(|| config.unusable("upstream.url", &config.source, "has no host"))?,
            base_path: url.path().trim_end_matches('/').to_string(),
            request_timeout: settings.request_timeout,
        })
    }

    /// Whether a TCP connection to the upstream can be opened within `timeout`.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        let default_port = if self.scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = self.authority.port_u16().unwrap_or(default_port);
        let host = self.authority.host().trim_start_matches('[').trim_end_matches(']');
        matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
            Ok(Ok(_))
        )
    }

    /// The base URL requests are forwarded to.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }

    /// The upstream URI for an inbound request target.
    pub fn target(&self, inbound: &Uri) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = match inbound.path_and_query() {
            // The usual case: shared, not copied and parsed again.
            Some(path_and_query) if self.base_path.is_empty() => Some(path_and_query.clone()),
            path_and_query => {
                let path_and_query = path_and_query.map(PathAndQuery::as_str).unwrap_or("/");
                PathAndQuery::try_from(format!("{}{}", self.base_path, path_and_query))
                    .ok()
                    .or_else(|| Some(PathAndQuery::from_static("/")))
            }
        };
        Uri::from_parts(parts).unwrap_or_else(|_| inbound.clone())
    }

    /// Sends `req` (already rewritten) and waits for the response head.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        *req.uri_mut() = self.target(req.uri());
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(self.request_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(Box::new(e))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

fn client_tls(config: &Config, settings: &UpstreamSettings, url: &Uri) -> Result<rustls::ClientConfig, ConfigError> {
    let roots = match (&settings.ca, url.scheme() == Some(&Scheme::HTTPS)) {
        (Some(path), _) => pem::trust_store(Some(path)).map_err(|e| config.unusable("upstream.ca", path, e))?,
        (None, true) => pem::trust_store(None).map_err(|e| config.unusable("upstream.ca", &config.source, e))?,
        // Plain http: no certificate is ever verified.
        (None, false) => rustls::RootCertStore::empty(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config.unusable("upstream.url", &config.source, e))?
        .with_root_certificates(roots);
    let tls = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let chain =
                pem::certificates(cert_path).map_err(|e| config.unusable("upstream.client_cert", cert_path, e))?;
            let key = pem::private_key(key_path).map_err(|e| config.unusable("upstream.client_key", key_path, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config.unusable("upstream.client_key", key_path, e))?
        }
    };
    Ok(tls)
}
