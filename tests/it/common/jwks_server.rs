//! An issuer's key endpoint over real HTTPS: serves whatever document the
//! test sets, can fail or go down, and counts fetches.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;

use super::pki::CertFiles;

/// What `/jwks` (and `/.well-known/openid-configuration`) answer.
#[derive(Clone, Debug)]
pub enum Serve {
    Document {
        body: String,
        cache_control: Option<String>,
    },
    Status(u16),
}

struct State {
    jwks: Mutex<Serve>,
    metadata: Mutex<Option<String>>,
    fetches: AtomicUsize,
}

pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `jwks` over HTTPS with `cert` (which the gateway must trust via `jwks_ca`).
    pub async fn start(cert: &CertFiles, jwks: String) -> JwksServer {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            jwks: Mutex::new(Serve::Document {
                body: jwks,
                cache_control: None,
            }),
            metadata: Mutex::new(None),
            fetches: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |req| respond(req, state.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    /// The JWKS URL, by the name the test server certificate carries.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/jwks", self.addr.port())
    }

    pub fn discovery_url(&self) -> String {
        format!(
            "https://localhost:{}/.well-known/openid-configuration",
            self.addr.port()
        )
    }

    pub fn set(&self, serve: Serve) {
        *self.state.jwks.lock().unwrap() = serve;
    }

    pub fn set_jwks(&self, body: String) {
        self.set(Serve::Document {
            body,
            cache_control: None,
        });
    }

    /// Publishes discovery metadata naming this server's JWKS.
    pub fn publish_metadata(&self, issuer: &str) {
        let doc = serde_json::json!({ "issuer": issuer, "jwks_uri": self.url() });
        *self.state.metadata.lock().unwrap() = Some(doc.to_string());
    }

    /// How many times `/jwks` was requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Stops answering (connections are refused from now on).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, body: String, cache: Option<String>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(cache) = cache {
            response.headers_mut().insert("cache-control", cache.parse().unwrap());
        }
        Ok(response)
    };
    match req.uri().path() {
        "/jwks" => {
            state.fetches.fetch_add(1, Ordering::SeqCst);
            let serve = state.jwks.lock().unwrap().clone();
            match serve {
                Serve::Document { body, cache_control } => reply(200, body, cache_control),
                Serve::Status(code) => reply(code, "unavailable".into(), None),
            }
        }
        "/.well-known/openid-configuration" => match state.metadata.lock().unwrap().clone() {
            Some(doc) => reply(200, doc, None),
            None => reply(404, "no metadata".into(), None),
        },
        _ => reply(404, "not found".into(), None),
    }
}
