//! The demo's TLS client: one of the dev client certificates, or none (an
//! app), over HTTP/1.1, one connection per request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::{DemoError, setup};
use crate::conn::pem;

/// What came back: status, the `WWW-Authenticate` challenges (`-` for
/// none), and the body as text.
pub struct Reply {
    pub status: StatusCode,
    pub challenge: String,
    pub body: String,
}

/// A TLS client trusting the dev CA, with a client certificate or without.
pub struct DemoClient {
    connector: tokio_rustls::TlsConnector,
}

impl DemoClient {
    /// Presents `certs/<name>.pem` with its key.
    pub fn new(certs: &Path, name: &str) -> Result<DemoClient, DemoError> {
        let cert_path = certs.join(format!("{name}.pem"));
        let key_path = certs.join(format!("{name}-key.pem"));
        let chain = pem::certificates(&cert_path).map_err(|e| setup(format!("{}: {e}", cert_path.display())))?;
        let key = pem::private_key(&key_path).map_err(|e| setup(format!("{}: {e}", key_path.display())))?;
        let tls = builder(certs)?.with_client_auth_cert(chain, key).map_err(setup)?;
        Ok(DemoClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Presents no certificate: an app on a device, which has only its DPoP key.
    pub fn without_certificate(certs: &Path) -> Result<DemoClient, DemoError> {
        let tls = builder(certs)?.with_no_client_auth();
        Ok(DemoClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    pub async fn get(&self, addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Reply, DemoError> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.send(addr, Method::GET, path, authorization, None, None).await
    }

    pub async fn get_dpop(&self, addr: SocketAddr, path: &str, token: &str, proof: &str) -> Result<Reply, DemoError> {
        self.send(
            addr,
            Method::GET,
            path,
            Some(format!("DPoP {token}")),
            Some(proof),
            None,
        )
        .await
    }

    /// A form POST, as to a token endpoint, with a DPoP proof if given.
    pub async fn post_form(
        &self,
        addr: SocketAddr,
        path: &str,
        form: &[(&str, &str)],
        proof: Option<&str>,
    ) -> Result<Reply, DemoError> {
        let body = form
            .iter()
            .map(|(name, value)| format!("{}={}", urlencode(name), urlencode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(addr, Method::POST, path, None, proof, Some(body)).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        authorization: Option<String>,
        proof: Option<&str>,
        form: Option<String>,
    ) -> Result<Reply, DemoError> {
        let tcp = TcpStream::connect(addr).await.map_err(setup)?;
        let name = ServerName::try_from("localhost").map_err(setup)?;
        let tls = self.connector.connect(name, tcp).await.map_err(setup)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(setup)?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", addr.port()));
        if let Some(authorization) = authorization {
            req = req.header("authorization", authorization);
        }
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(setup)?;
        let response = sender.send_request(req).await.map_err(setup)?;
        let status = response.status();
        let challenges: Vec<&str> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenge = if challenges.is_empty() {
            "-".to_string()
        } else {
            challenges.join("\n   WWW-Authenticate: ")
        };
        let body = response.into_body().collect().await.map_err(setup)?.to_bytes();
        Ok(Reply {
            status,
            challenge,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// A client config trusting `certs/ca.pem`, waiting for its client auth choice.
fn builder(
    certs: &Path,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, DemoError> {
    let ca: PathBuf = certs.join("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem::certificates(&ca).map_err(|e| setup(format!("{}: {e}", ca.display())))? {
        roots.add(cert).map_err(setup)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(roots))
}

/// `application/x-www-form-urlencoded` escaping of one name or value.
fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
