//! One GET of a CRL distribution point, bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::conn::tls::{self, ClientRoots, ClientTlsError};

/// Why a CRL could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("not a URL: {0}")]
    Url(String),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the body is larger than {0} bytes (server.crl_fetch_max_bytes)")]
    TooLarge(usize),
}

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client for http and https distribution points; https is verified
/// against the system's trust store, as CAs publish CRLs on public servers.
pub fn client(timeout: Duration) -> Result<HttpClient, ClientTlsError> {
    let roots = match tls::client_config(ClientRoots::System, None) {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(error = %e, "no system trust store: https CRL distribution points will fail to verify");
            tls::client_config(ClientRoots::Empty, None)?
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(roots)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// GETs `url`: the body of a 200, at most `max_bytes` of it, within `timeout`.
pub async fn get(client: &HttpClient, url: &str, timeout: Duration, max_bytes: usize) -> Result<Bytes, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| FetchError::Url(e.to_string()))?;
    let request = Request::get(uri)
        .header(http::header::ACCEPT, "application/pkix-crl, */*")
        .body(Empty::new())
        .map_err(|e| FetchError::Url(e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(crate::error::error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge(max_bytes)
                } else {
                    FetchError::Transport(format!("reading the body: {e}"))
                }
            })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}
