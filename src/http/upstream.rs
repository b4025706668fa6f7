//! The client that carries authorized requests to the upstream, with
//! bodies streamed both ways: on a connection pinned to the client's
//! connection when there is one (see `pinned`), else through a shared pool.

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
use crate::conn::tls::{self, ClientRoots, ClientTlsError};
use crate::http::pinned::{Pinned, Pins, STASH_IDLE_TIMEOUT, SendFailed, UpstreamPin};
use crate::metrics::Metrics;

/// Why forwarding failed; the upstream, not the client, is at fault.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("upstream did not answer in time")]
    Timeout,
}

/// One upstream: its pinned connections, and a pool for the rest.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    pins: Arc<Pins>,
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
        // A pinned connection carries one request at a time: HTTP/1.1 only.
        let pinned_connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http.clone());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(STASH_IDLE_TIMEOUT)
            .build(connector);
        let scheme = url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = url
            .authority()
            .cloned()
            .ok_or_else(|| config.unusable("upstream.url", &config.source, "has no host"))?;
        let origin = origin(&scheme, &authority);
        Ok(Upstream {
            client,
            pins: Arc::new(Pins::new(origin, pinned_connector, settings.max_pinned_connections)),
            scheme,
            authority,
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

    /// The upstream's request target (origin form) for an inbound one.
    fn path_and_query(&self, inbound: &Uri) -> PathAndQuery {
        match inbound.path_and_query() {
            // The usual case: shared, not copied and parsed again.
            Some(path_and_query) if self.base_path.is_empty() => path_and_query.clone(),
            path_and_query => {
                let path_and_query = path_and_query.map(PathAndQuery::as_str).unwrap_or("/");
                PathAndQuery::try_from(format!("{}{}", self.base_path, path_and_query))
                    .unwrap_or_else(|_| PathAndQuery::from_static("/"))
            }
        }
    }

    /// The absolute form of an origin-form target, as the pool wants it.
    fn absolute(&self, origin_form: &Uri) -> Uri {
        let path_and_query = origin_form.path_and_query().cloned();
        absolute_uri(&self.scheme, &self.authority, path_and_query).unwrap_or_else(|| origin_form.clone())
    }

    /// Sends `req` (already rewritten) and waits for the response head:
    /// on the client connection's pinned upstream connection when `pin`
    /// is given and the cap allows, else through the pool.
    pub async fn send(
        &self,
        pin: Option<&UpstreamPin>,
        mut req: Request<Body>,
        metrics: &Metrics,
    ) -> Result<Response<Incoming>, UpstreamError> {
        *req.uri_mut() = Uri::from(self.path_and_query(req.uri()));
        *req.version_mut() = Version::HTTP_11;
        let sent = async {
            let req = match pin {
                Some(pin) if self.pins.enabled() => match self.send_pinned(pin, req, metrics).await? {
                    Ok(response) => return Ok(response),
                    Err(not_sent) => not_sent,
                },
                _ => req,
            };
            metrics.upstream_request(false);
            self.send_pooled(req).await
        };
        match tokio::time::timeout(self.request_timeout, sent).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(result) => result,
        }
    }

    /// Sends `req` (origin-form target) on `pin`'s connection; gives the
    /// request back when it could not go there (the cap is reached, or the
    /// connection closed before writing it).
    async fn send_pinned(
        &self,
        pin: &UpstreamPin,
        req: Request<Body>,
        metrics: &Metrics,
    ) -> Result<Result<Response<Incoming>, Request<Body>>, UpstreamError> {
        let response = match pin.send(&self.pins, req, metrics).await {
            Ok(Pinned::Sent(response)) => response,
            Ok(Pinned::Declined(req)) => return Ok(Err(req)),
            Err(e) => return Err(UpstreamError::Unavailable(e)),
        };
        metrics.upstream_request(true);
        match response.await {
            Ok(response) => Ok(Ok(response)),
            Err(SendFailed::Unwritten(req)) => Ok(Err(*req)),
            Err(SendFailed::Failed(e)) => Err(UpstreamError::Unavailable(Box::new(e))),
        }
    }

    /// Sends `req` (origin-form target) through the shared pool.
    async fn send_pooled(&self, mut req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        *req.uri_mut() = self.absolute(req.uri());
        self.client
            .request(req)
            .await
            .map_err(|e| UpstreamError::Unavailable(Box::new(e)))
    }
}

/// The scheme and authority connections are opened to, as a connector takes them.
fn origin(scheme: &Scheme, authority: &http::uri::Authority) -> Uri {
    absolute_uri(scheme, authority, None).unwrap_or_default()
}

/// `scheme://authority` with `path_and_query` (`/` when none).
fn absolute_uri(
    scheme: &Scheme,
    authority: &http::uri::Authority,
    path_and_query: Option<PathAndQuery>,
) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).ok()
}

fn client_tls(config: &Config, settings: &UpstreamSettings, url: &Uri) -> Result<rustls::ClientConfig, ConfigError> {
    let roots = match (&settings.ca, url.scheme() == Some(&Scheme::HTTPS)) {
        (Some(path), _) => ClientRoots::File(path),
        (None, true) => ClientRoots::System,
        // Plain http: no certificate is ever verified.
        (None, false) => ClientRoots::Empty,
    };
    let client_cert = settings
        .client_cert
        .as_ref()
        .map(|(cert, key)| (cert.as_path(), key.as_path()));
    tls::client_config(roots, client_cert).map_err(|e| match e {
        ClientTlsError::Roots { path, source } => {
            config.unusable("upstream.ca", path.as_deref().unwrap_or(&config.source), source)
        }
        ClientTlsError::Protocol(e) => config.unusable("upstream.url", &config.source, e),
        ClientTlsError::Certificate { path, source } => config.unusable("upstream.client_cert", &path, source),
        ClientTlsError::Key { path, source } => config.unusable("upstream.client_key", &path, source),
        ClientTlsError::KeyRefused { path, source } => config.unusable("upstream.client_key", &path, source),
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn config(upstream: &str) -> Config {
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:8443"
cert = "certs/server.pem"
key = "certs/server-key.pem"
client_ca = "certs/ca.pem"

[upstream]
{upstream}

[token]
issuer = "https://issuer.example"
audience = ["https://api.example"]
jwks = "certs/jwks.json"
"#
        );
        Config::parse(&text, Path::new("/etc/bindgate/gateway.toml")).unwrap()
    }

    /// The setting and file an error blames.
    fn blamed(config: &Config) -> (String, PathBuf, String) {
        match Upstream::new(config, &config.upstream.url) {
            Err(ConfigError::UnusableFile {
                file,
                key,
                path,
                reason,
            }) => {
                assert_eq!(file, config.source);
                (key.into_owned(), path, reason)
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("the pool was built"),
        }
    }

    #[test]
    fn tls_errors_name_the_upstream_setting_and_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let issued = rcgen::generate_simple_self_signed(vec!["upstream.example".to_string()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let [cert, key, other_key, missing] =
            ["cert.pem", "key.pem", "other-key.pem", "missing.pem"].map(|name| dir.path().join(name));
        std::fs::write(&cert, issued.cert.pem()).unwrap();
        std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
        std::fs::write(&other_key, other.serialize_pem()).unwrap();
        let upstream = |ca: &Path, cert: &Path, key: &Path| {
            config(&format!(
                "url = \"https://upstream.example\"\nca = {ca:?}\nclient_cert = {cert:?}\nclient_key = {key:?}"
            ))
        };

        let (setting, path, reason) = blamed(&upstream(&missing, &cert, &key));
        assert_eq!((setting.as_str(), path), ("upstream.ca", missing.clone()));
        assert!(reason.starts_with("cannot read: "), "{reason}");
        let (setting, path, reason) = blamed(&upstream(&cert, &missing, &key));
        assert_eq!((setting.as_str(), path), ("upstream.client_cert", missing.clone()));
        assert!(reason.starts_with("cannot read: "), "{reason}");
        let (setting, path, reason) = blamed(&upstream(&cert, &cert, &cert));
        assert_eq!((setting.as_str(), path), ("upstream.client_key", cert.clone()));
        assert_eq!(reason, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)");
        let (setting, path, _) = blamed(&upstream(&cert, &cert, &other_key));
        assert_eq!((setting.as_str(), path), ("upstream.client_key", other_key.clone()));
        let good = upstream(&cert, &cert, &key);
        assert!(Upstream::new(&good, &good.upstream.url).is_ok());
    }
}
