//! A rustls client presenting a chosen certificate (or none), speaking
//! HTTP/1.1 or h2 with hyper, or raw bytes for malformed requests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::pki::CertFiles;

/// How long any single exchange may take in a test.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    H2,
}

/// A TLS client. Reusing one client reuses its session cache, so a second
/// connection resumes the first one's session.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    alpn: Alpn,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub resumed: bool,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The stable rejection reason of a gateway-made response.
    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or_default().to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    pub fn challenge(&self) -> Option<String> {
        self.header("www-authenticate")
    }
}

impl TlsClient {
    /// Trusts `ca`; presents `cert` when given.
    pub fn new(ca: &Path, cert: Option<&CertFiles>, alpn: Alpn) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(der.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match cert {
            None => builder.with_no_client_auth(),
            Some(files) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
                let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = match alpn {
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
        };
        TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            alpn,
        }
    }

    /// Completes a TLS handshake with the gateway.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::other("handshake timed out"))?
    }

    /// Sends one request on a new connection.
    pub async fn send(&self, addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let tls = self.connect(addr).await.map_err(|e| format!("handshake: {e}"))?;
        self.send_on(tls, req).await
    }

    /// Sends one request on an established connection.
    pub async fn send_on(&self, tls: TlsStream<TcpStream>, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let exchange = async {
            let mut reply = self.keep_on(tls).await?.send(req).await?;
            reply.resumed = resumed;
            Ok(reply)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .map_err(|_| "exchange timed out".to_string())?
    }

    /// Writes `bytes` on a new connection and reads until the gateway closes
    /// it or `quiet` passes without data.
    pub async fn raw(&self, addr: SocketAddr, bytes: &[u8], quiet: Duration) -> Result<Vec<u8>, String> {
        let mut tls = self.connect(addr).await.map_err(|e| e.to_string())?;
        tls.write_all(bytes).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(quiet, tls.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) if out.is_empty() => return Err(e.to_string()),
                Ok(Err(_)) => break,
            }
        }
        Ok(out)
    }

    /// The DER of the certificate the gateway presents on a new connection.
    pub async fn server_leaf(&self, addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let tls = self.connect(addr).await?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        leaf.ok_or_else(|| std::io::Error::other("no server certificate"))
    }

    pub fn alpn(&self) -> Alpn {
        self.alpn
    }
}

/// A request for `path`, with a bearer token when given. HTTP/1.1 requests
/// carry Host; h2 requests carry only `:authority`.
pub fn request(
    alpn: Alpn,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = match alpn {
        Alpn::Http1 => Request::builder().uri(path).header("host", "localhost"),
        Alpn::H2 => Request::builder()
            .uri(format!("https://localhost{path}"))
            .version(http::Version::HTTP_2),
    }
    .method(method);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::new(body.into())).unwrap()
}

pub fn get(alpn: Alpn, path: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    request(alpn, "GET", path, token, Bytes::new())
}

/// One connection kept open for many requests: what a keep-alive HTTP/1.1
/// or h2 client does, so a test can tell "the same connection" from "a new one".
pub struct KeptConnection {
    sender: KeptSender,
    conn: tokio::task::JoinHandle<()>,
}

enum KeptSender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl TlsClient {
    /// Opens a connection and keeps it for [`KeptConnection::send`].
    pub async fn keep(&self, addr: SocketAddr) -> Result<KeptConnection, String> {
        let tls = self.connect(addr).await.map_err(|e| format!("handshake: {e}"))?;
        self.keep_on(tls).await
    }

    /// HTTP over an established TLS connection, as ALPN chose.
    async fn keep_on(&self, tls: TlsStream<TcpStream>) -> Result<KeptConnection, String> {
        let io = TokioIo::new(tls);
        let (sender, conn) = match self.alpn {
            Alpn::Http1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| e.to_string())?;
                (KeptSender::Http1(sender), tokio::spawn(async move { drop(conn.await) }))
            }
            Alpn::H2 => {
                let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
                (KeptSender::H2(sender), tokio::spawn(async move { drop(conn.await) }))
            }
        };
        Ok(KeptConnection { sender, conn })
    }
}

impl KeptConnection {
    /// Sends one request on this connection and reads the whole response.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let sender = &mut self.sender;
        whole_reply(async move {
            match sender {
                KeptSender::Http1(sender) => {
                    sender.ready().await.map_err(|e| format!("connection unusable: {e}"))?;
                    sender.send_request(req).await.map_err(|e| format!("{e:?}"))
                }
                KeptSender::H2(sender) => {
                    sender.ready().await.map_err(|e| format!("connection unusable: {e}"))?;
                    sender.send_request(req).await.map_err(|e| format!("{e:?}"))
                }
            }
        })
        .await
    }

    /// Sends `reqs` at once, each on a stream of its own (h2 only), and
    /// reads every response whole; in the order of `reqs`.
    pub async fn send_at_once(&mut self, reqs: Vec<Request<Full<Bytes>>>) -> Vec<Result<Reply, String>> {
        let KeptSender::H2(sender) = &self.sender else {
            return reqs
                .iter()
                .map(|_| Err("streams at once need h2".to_string()))
                .collect();
        };
        let exchanges = reqs.into_iter().map(|req| {
            let mut sender = sender.clone();
            whole_reply(async move {
                sender.ready().await.map_err(|e| format!("connection unusable: {e}"))?;
                sender.send_request(req).await.map_err(|e| format!("{e:?}"))
            })
        });
        futures_util::future::join_all(exchanges).await
    }

    /// Whether the gateway closes the connection within `timeout`. The
    /// sender stays alive meanwhile: dropping it would close the connection
    /// from this side.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, &mut self.conn).await.is_ok()
    }
}

/// The response `exchange` gets, read whole, within [`EXCHANGE_TIMEOUT`].
async fn whole_reply(
    exchange: impl std::future::Future<Output = Result<hyper::Response<hyper::body::Incoming>, String>>,
) -> Result<Reply, String> {
    let read = async {
        let (parts, body) = exchange.await?.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            resumed: false,
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, read)
        .await
        .map_err(|_| "exchange timed out".to_string())?
}
