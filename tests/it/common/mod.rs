//! The harness: a PKI and an issuer in a temp dir, a recording upstream, the
//! real binary started on port 0 with a generated configuration, and a TLS
//! client presenting the certificate a test chooses.

pub mod authorization_server;
pub mod client;
pub mod crl_server;
pub mod dpop;
pub mod family;
pub mod front_proxy;
pub mod gateway;
pub mod interop;
pub mod issuer;
pub mod jwks_server;
pub mod pki;
pub mod postgres;
pub mod token_request;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use authorization_server::{AS_ISSUER, SigningKeyFile, as_table};
pub use client::{Alpn, Reply, TlsClient, get, request};
pub use gateway::{GatewayProcess, run_cli, run_cli_async};
pub use issuer::{AUD, ISS, TestIssuer, now, with, without};
pub use pki::{CertFiles, Pki};
pub use upstream::{RecordingUpstream, Seen};

/// Extra lines per configuration table; `render` writes a complete gateway.toml.
#[derive(Clone, Debug, Default)]
pub struct ConfigSpec {
    pub server: Vec<String>,
    pub upstream: Vec<String>,
    pub token: Vec<String>,
    /// Replaces the `[token]` lines `issuer`, `audience` and `jwks` (None
    /// keeps the test issuer and its JWKS file).
    pub token_head: Option<Vec<String>>,
    pub limits: Vec<String>,
    /// Whole tables appended at the end (`[[route]]`, `[forward]`, ...).
    pub tail: Vec<String>,
    /// Replaces the recording upstream's URL.
    pub upstream_url: Option<String>,
    /// Replaces `client_ca = ...` (None keeps the test CA).
    pub client_ca: Option<Option<PathBuf>>,
}

/// One test's world.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub issuer: TestIssuer,
    pub jwks: PathBuf,
    pub upstream: RecordingUpstream,
}

impl Setup {
    pub async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let issuer = TestIssuer::new("k1");
        let jwks = TestIssuer::write_jwks(dir.path(), "jwks.json", &[&issuer]);
        let upstream = RecordingUpstream::start().await;
        Setup {
            dir,
            pki,
            issuer,
            jwks,
            upstream,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn render(&self, spec: &ConfigSpec) -> String {
        let p = |path: &Path| format!("{:?}", path.display().to_string());
        let client_ca = match &spec.client_ca {
            None => format!("client_ca = {}\n", p(&self.pki.ca.cert_path)),
            Some(Some(path)) => format!("client_ca = {}\n", p(path)),
            Some(None) => String::new(),
        };
        let lines = |v: &Vec<String>| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        let token_head = match &spec.token_head {
            Some(head) => lines(head),
            None => format!("issuer = {ISS:?}\naudience = [{AUD:?}]\njwks = {}\n", p(&self.jwks)),
        };
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ncert = {}\nkey = {}\n{client_ca}{}\n\
             [upstream]\nurl = {:?}\n{}\n\
             [token]\n{}{}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [limits]\n{}\n\
             [reload]\npoll_interval = \"100ms\"\n\n{}",
            p(&self.pki.server.cert),
            p(&self.pki.server.key),
            lines(&spec.server),
            spec.upstream_url.clone().unwrap_or_else(|| self.upstream.url()),
            lines(&spec.upstream),
            token_head,
            lines(&spec.token),
            lines(&spec.limits),
            spec.tail.join("\n"),
        )
    }

    /// Writes the configuration as `name.toml` and returns its path.
    pub fn write_config(&self, name: &str, spec: &ConfigSpec) -> PathBuf {
        let path = self.path().join(format!("{name}.toml"));
        std::fs::write(&path, self.render(spec)).unwrap();
        path
    }

    /// Starts a gateway with `spec`.
    pub async fn start(&self, spec: &ConfigSpec) -> GatewayProcess {
        GatewayProcess::start(&self.write_config("gateway", spec)).await
    }

    /// Starts a gateway with the default configuration.
    pub async fn gateway(&self) -> GatewayProcess {
        self.start(&ConfigSpec::default()).await
    }

    /// A client presenting client A's certificate.
    pub fn client_a(&self, alpn: Alpn) -> TlsClient {
        TlsClient::new(&self.pki.ca.cert_path, Some(&self.pki.client_a), alpn)
    }

    pub fn client_b(&self, alpn: Alpn) -> TlsClient {
        TlsClient::new(&self.pki.ca.cert_path, Some(&self.pki.client_b), alpn)
    }

    pub fn client(&self, cert: Option<&CertFiles>, alpn: Alpn) -> TlsClient {
        TlsClient::new(&self.pki.ca.cert_path, cert, alpn)
    }

    /// A valid token bound to client A.
    pub fn token_a(&self) -> String {
        self.issuer.token(&self.pki.client_a.x5t())
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
/// Replaces `path` by rename, as operators and agents do: a poll never sees it half-written.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub async fn eventually(timeout: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain-HTTP GET to the admin listener: status and body.
pub async fn admin_get(admin: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample in Prometheus text, by its full name with labels.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// The lines of a child's output, read on a thread of their own, so that
/// every wait for a line can have a deadline (`recv_timeout`).
pub fn line_channel(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
