//! Closed-loop load generator for bench/: mutual TLS, HTTP/1.1 or HTTP/2,
//! keep-alive or a connection per request, and an idle-connections mode.
//! GET by default; with --post-form, a form POST (a token request), and with
//! --dpop-key a fresh DPoP proof (RFC 9449) in every request.
//!
//! Each worker sends its next request only once the previous response has been
//! read in full, and stops at the deadline, at --max-requests, or when the
//! --tokens file runs out. The result is one JSON object on stdout.
//!
//!   cargo run --release --example loadgen -- --ca certs/ca.pem --cert certs/client-a.pem \
//!       --key certs/client-a-key.pem --token "$TOKEN" -c 64 --duration 10s https://127.0.0.1:8443/hello
//!
//!   cargo run --release --example loadgen -- --ca certs/ca.pem --cert certs/client-a.pem \
//!       --key certs/client-a-key.pem --post-form 'grant_type=client_credentials&client_id=svc-a' \
//!       --dpop-key certs/dpop-key.pem -c 16 --duration 10s https://localhost:8444/token

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clap::Parser;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::{ClientConfig, HandshakeKind, NamedGroup, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_rustls::TlsConnector;

/// Closed-loop mTLS load generator for bench/ (GET, or form POST requests; results as JSON on stdout).
#[derive(Parser)]
struct Args {
    /// https:// URL to request; its host is also the TLS server name (an IP address is sent as one).
    /// A plain http:// URL (HTTP/1.1 only) measures an upstream without TLS.
    url: String,
    /// PEM roots to trust for the server certificate (required for https://).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate chain (PEM, leaf first) presented in the handshake.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// How long to send requests (`10s`, `500ms`); in idle mode, a bound on opening the connections.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Tokio worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many requests in all.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Speak HTTP/2 (ALPN h2) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Requests in flight per HTTP/2 connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// A new TCP+TLS connection for every request (HTTP/1.1, `Connection: close`); latency then includes the handshake.
    #[arg(long, conflicts_with = "http2")]
    new_connection: bool,
    /// Allow TLS session resumption (a client session cache shared by all connections); off: every handshake is full.
    #[arg(long)]
    resume: bool,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// File with one access token per line: each request takes the next unused one (`Authorization: Bearer`).
    #[arg(long, conflicts_with = "token")]
    tokens: Option<PathBuf>,
    /// Access token sent as `Authorization: Bearer` with every request.
    #[arg(long)]
    token: Option<String>,
    /// Idle mode: open this many connections, one request on each, then hold them open for --hold.
    #[arg(long, conflicts_with = "new_connection")]
    idle_connections: Option<usize>,
    /// How long idle mode holds the connections open.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: Duration,
    /// Per-request timeout (connect, handshake, request and response body).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// POST this `application/x-www-form-urlencoded` body instead of a GET (e.g. a token request).
    #[arg(long, value_name = "BODY")]
    post_form: Option<String>,
    /// Send a fresh DPoP proof (RFC 9449) with every request, signed with this key
    /// (PKCS#8 PEM: EC P-256 signs ES256, Ed25519 EdDSA); no `ath`, no nonce.
    #[arg(long, value_name = "PEM")]
    dpop_key: Option<PathBuf>,
    /// The proofs' `htu` (default: the URL, without query).
    #[arg(long, value_name = "URL", requires = "dpop_key")]
    dpop_htu: Option<String>,
    /// Report the body of the first successful response (up to 4 KiB) as `sample_body`,
    /// and that of the first other response as `sample_failure`.
    #[arg(long)]
    sample_body: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.streams == 0 || args.connections == 0 || (args.streams > 1 && !args.http2) {
        eprintln!("loadgen: --connections and --streams must be at least 1, and --streams needs --http2");
        return ExitCode::from(64);
    }
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        builder.worker_threads(args.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let shared = match Shared::load(&args) {
        Ok(shared) => Arc::new(shared),
        Err(e) => return fail(e),
    };
    match args.idle_connections {
        Some(n) => runtime.block_on(idle(shared, n, args.hold)),
        None => {
            let report = runtime.block_on(load(shared, &args));
            println!("{report}");
        }
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    ExitCode::SUCCESS
}

fn fail(message: String) -> ExitCode {
    eprintln!("loadgen: {message}");
    ExitCode::from(64)
}

/// How far past the deadline in-flight requests may run before they are cut.
const GRACE: Duration = Duration::from_secs(3);
/// Pause after a failed request, so a refused connection does not become a busy loop.
const BACKOFF: Duration = Duration::from_millis(10);
/// Handshakes in progress at once in idle mode.
const IDLE_OPEN_CONCURRENCY: usize = 256;

/// Why a request failed: the key in `error_kinds`.
type Kind = &'static str;

/// What every connection shares: fixed at start, apart from the counters.
struct Shared {
    /// None for a plain http:// target.
    tls: Option<TlsConnector>,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    /// The request body: empty for a GET.
    body: Bytes,
    dpop: Option<DpopSigner>,
    /// With --sample-body: the first successful response's body, and the first other one's.
    sample: Option<[OnceLock<String>; 2]>,
    /// `Authorization` values: each used once, or with `same_token` the one (if any) every time.
    tokens: Vec<HeaderValue>,
    same_token: bool,
    next_token: AtomicUsize,
    tokens_exhausted: AtomicBool,
    max_requests: Option<u64>,
    issued: AtomicU64,
    http2: bool,
    timeout: Duration,
    started: Instant,
    deadline: Instant,
    hard_deadline: Instant,
}

impl Shared {
    /// Reads every file and resolves the target; the clock starts when this returns.
    fn load(args: &Args) -> Result<Self, String> {
        let url = &args.url;
        let uri: Uri = url.parse().map_err(|e| format!("{url}: not a URL: {e}"))?;
        let (authority, plain) = match (uri.scheme_str(), uri.authority()) {
            (Some("https"), Some(authority)) => (authority.clone(), false),
            (Some("http"), Some(authority)) if !args.http2 => (authority.clone(), true),
            _ => return Err(format!("{url}: not an https:// URL (or http:// without --http2)")),
        };
        let htu = args
            .dpop_htu
            .clone()
            .unwrap_or_else(|| url.split(['?', '#']).next().unwrap_or(url).to_string());
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))?;
        let default_port = if plain { 80 } else { 443 };
        let resolved = (host, authority.port_u16().unwrap_or(default_port)).to_socket_addrs();
        let addrs: Vec<SocketAddr> = resolved.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        // Benchmark targets listen on 127.0.0.1: prefer IPv4 when a name resolves to both.
        let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
        let addr = *addr.ok_or_else(|| format!("{host}: no address"))?;
        let mut headers = HeaderMap::new();
        for line in &args.headers {
            let header = line
                .split_once(':')
                .ok_or("expected `Name: value`")
                .and_then(|(name, value)| {
                    let name = HeaderName::try_from(name.trim()).map_err(|_| "bad name")?;
                    Ok((name, HeaderValue::try_from(value.trim()).map_err(|_| "bad value")?))
                });
            let (name, value) = header.map_err(|e| format!("-H {line:?}: {e}"))?;
            headers.append(name, value);
        }
        // HTTP/2 takes :scheme and :authority from the URI; HTTP/1.1 wants the path and a Host header.
        let uri = if args.http2 {
            uri
        } else {
            if !headers.contains_key(HOST) {
                let host = HeaderValue::try_from(authority.as_str()).map_err(|e| e.to_string())?;
                headers.insert(HOST, host);
            }
            Uri::from(
                uri.path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
        };
        if args.new_connection {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let (method, body) = match &args.post_form {
            Some(form) => {
                let form_type = HeaderValue::from_static("application/x-www-form-urlencoded");
                headers.entry(CONTENT_TYPE).or_insert(form_type);
                (Method::POST, Bytes::from(form.clone()))
            }
            None => (Method::GET, Bytes::new()),
        };
        let dpop = match &args.dpop_key {
            Some(path) => Some(DpopSigner::load(path, method.as_str(), &htu)?),
            None => None,
        };
        let (tokens, same_token) = match (&args.tokens, &args.token) {
            (Some(path), _) => (read_tokens(path)?, false),
            (None, Some(token)) => (vec![bearer(token).map_err(|_| "--token: not a header value")?], true),
            (None, None) => (Vec::new(), true),
        };
        let tls = if plain {
            None
        } else {
            Some(TlsConnector::from(Arc::new(client_config(args)?)))
        };
        let duration = match (args.duration, args.idle_connections) {
            (Some(duration), _) => duration,
            (None, None) => Duration::from_secs(10),
            (None, Some(_)) => Duration::from_secs(24 * 3600),
        };
        let started = Instant::now();
        Ok(Self {
            tls,
            addr,
            server_name,
            uri,
            method,
            headers,
            body,
            dpop,
            sample: args.sample_body.then(Default::default),
            tokens,
            same_token,
            next_token: AtomicUsize::new(0),
            tokens_exhausted: AtomicBool::new(false),
            max_requests: args.max_requests,
            issued: AtomicU64::new(0),
            http2: args.http2,
            timeout: args.timeout,
            started,
            deadline: started + duration,
            hard_deadline: started + duration + GRACE,
        })
    }

    /// Leave to send one more request, with its Authorization value; `None`: stop.
    fn next_permit(&self) -> Option<Option<HeaderValue>> {
        if Instant::now() >= self.deadline {
            return None;
        }
        if let Some(max) = self.max_requests
            && self.issued.fetch_add(1, Relaxed) >= max
        {
            return None;
        }
        if self.same_token {
            return Some(self.tokens.first().cloned());
        }
        match self.tokens.get(self.next_token.fetch_add(1, Relaxed)) {
            Some(token) => Some(Some(token.clone())),
            None => {
                self.tokens_exhausted.store(true, Relaxed);
                None
            }
        }
    }

    /// Whether another request may be sent: for loops that have to open a connection first.
    fn next_permit_is_likely(&self) -> bool {
        Instant::now() < self.deadline
            && !self.tokens_exhausted.load(Relaxed)
            && self.max_requests.is_none_or(|max| self.issued.load(Relaxed) < max)
    }
}

fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let ca = args.ca.as_ref().ok_or("--ca is required for an https:// URL")?;
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: no private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("{}: {e}", key.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    let alpn: &[u8] = if args.http2 { b"h2" } else { b"http/1.1" };
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = if args.resume {
        let capacity = 8 + 2 * args.connections.max(args.idle_connections.unwrap_or(0));
        Resumption::store(Arc::new(TicketStore::new(capacity)))
    } else {
        Resumption::disabled()
    };
    Ok(config)
}

/// The client session cache for --resume, shared by all connections. The one
/// rustls provides keeps 8 TLS 1.3 tickets per server: with more connections
/// handshaking at once, some would be full for want of a ticket, not by the
/// server's choice. Tickets are kept in one queue, as there is one server.
#[derive(Debug)]
struct TicketStore {
    others: ClientSessionMemoryCache,
    tickets: Mutex<VecDeque<Tls13ClientSessionValue>>,
    capacity: usize,
}

impl TicketStore {
    fn new(capacity: usize) -> Self {
        let (others, tickets) = (ClientSessionMemoryCache::new(4), Mutex::new(VecDeque::new()));
        Self {
            others,
            tickets,
            capacity,
        }
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.others.set_kx_hint(name, group);
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.others.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.others.set_tls12_session(name, value);
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.others.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.others.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut tickets = lock(&self.tickets);
        if tickets.len() >= self.capacity {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        lock(&self.tickets).pop_back()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_tokens(path: &Path) -> Result<Vec<HeaderValue>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tokens = (text.lines().enumerate())
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            bearer(line.trim()).map_err(|_| format!("{}:{}: not a valid header value", path.display(), i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() {
        return Err(format!("{}: no tokens", path.display()));
    }
    Ok(tokens)
}

fn bearer(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::try_from(format!("Bearer {token}"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit): (&str, fn(u64) -> Duration) = match text.strip_suffix("ms") {
        Some(n) => (n, Duration::from_millis),
        None => (
            text.strip_suffix('s').ok_or("expected e.g. `10s` or `500ms`")?,
            Duration::from_secs,
        ),
    };
    number.parse().map(unit).map_err(|e| format!("{text:?}: {e}"))
}

/// The keep-alive and new-connection modes: `--connections` closed loops.
async fn load(shared: Arc<Shared>, args: &Args) -> serde_json::Value {
    let protocol = if args.http2 {
        format!("h2 x {} streams", args.streams)
    } else {
        "http/1.1".into()
    };
    let (per_request, resumption) = (args.new_connection, args.resume);
    eprintln!(
        "loadgen: {} connections ({protocol}, new per request: {per_request}, resumption: {resumption}) to {} for {:?}",
        args.connections,
        shared.addr,
        shared.deadline - shared.started,
    );
    let mut workers = JoinSet::new();
    for _ in 0..args.connections {
        if args.http2 {
            workers.spawn(h2_connection(shared.clone(), args.streams));
        } else {
            workers.spawn(h1_connection(shared.clone(), args.new_connection));
        }
    }
    let all_done = async { while workers.join_next().await.is_some() {} };
    if timeout_at(shared.hard_deadline + Duration::from_secs(1), all_done)
        .await
        .is_err()
    {
        eprintln!("loadgen: some connections did not finish in time; reporting without them");
        workers.abort_all();
    }
    let elapsed = shared.started.elapsed().as_secs_f64();
    let exhausted = shared.tokens_exhausted.load(Relaxed);
    if exhausted {
        eprintln!("loadgen: the tokens file ran out after {} tokens", shared.tokens.len());
    }
    let stats = merged_stats();
    let mut report = summary(&stats);
    report["elapsed_s"] = json!(round3(elapsed));
    report["rps_ok"] = json!((stats.ok as f64 / elapsed).round());
    report["tokens_exhausted"] = json!(exhausted);
    if let Some([ok, failed]) = &shared.sample {
        report["sample_body"] = json!(ok.get());
        report["sample_failure"] = json!(failed.get());
    }
    report
}

/// The counts both modes report.
fn summary(stats: &Stats) -> serde_json::Value {
    let h = &stats.latency;
    // No successful request, no latency: null rather than a flattering 0.
    let ms = |us: u64| (h.total > 0).then_some(us as f64 / 1000.0);
    let quantiles = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)];
    let mut latency: serde_json::Map<_, _> = quantiles
        .iter()
        .map(|(k, q)| (k.to_string(), json!(ms(h.quantile(*q)))))
        .collect();
    latency.insert("max".into(), json!(ms(h.max_us)));
    json!({
        "requests": stats.ok + stats.non2xx + stats.errors.values().sum::<u64>(),
        "ok": stats.ok,
        "non2xx": stats.non2xx,
        "non2xx_status": stats.non2xx_status,
        "errors": stats.errors.values().sum::<u64>(),
        "error_kinds": stats.errors,
        "latency_ms": latency,
        "handshakes": { "full": stats.handshakes[0], "resumed": stats.handshakes[1] },
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One HTTP/1.1 connection's closed loop, reconnecting after an error (or
/// for every request with `new_connection`).
async fn h1_connection(shared: Arc<Shared>, new_connection: bool) {
    let mut kept: Option<Conn> = None;
    while let Some(auth) = shared.next_permit() {
        let start = Instant::now();
        let reuse = kept.take();
        let attempt = async {
            let mut conn = match reuse {
                Some(conn) => conn,
                None => open(&shared).await?.0,
            };
            let sent = Instant::now();
            let status = exchange(&shared, &mut conn, auth).await?;
            Ok((conn, status, sent))
        };
        if let Some((conn, status, sent)) = bounded(&shared, start, attempt).await {
            // With a connection per request, the handshake is part of the request's cost.
            record(|s| s.response(status, if new_connection { start } else { sent }));
            kept = (!new_connection).then_some(conn);
        }
    }
}

/// One HTTP/2 connection carrying `streams` closed loops, reopened when it closes.
async fn h2_connection(shared: Arc<Shared>, streams: usize) {
    while shared.next_permit_is_likely() {
        // `open` speaks HTTP/2 whenever `shared.http2` is set, as here.
        let Some((Conn::Http2(sender), _)) = bounded(&shared, Instant::now(), open(&shared)).await else {
            continue;
        };
        let mut loops = JoinSet::new();
        for _ in 0..streams {
            loops.spawn(h2_stream(shared.clone(), Conn::Http2(sender.clone())));
        }
        drop(sender);
        while loops.join_next().await.is_some() {}
    }
}

async fn h2_stream(shared: Arc<Shared>, mut conn: Conn) {
    while let Some(auth) = shared.next_permit() {
        let sent = Instant::now();
        match bounded(&shared, sent, exchange(&shared, &mut conn, auth)).await {
            Some(status) => record(|s| s.response(status, sent)),
            None if conn.is_closed() => return,
            None => {}
        }
    }
}

/// Runs one attempt within the request timeout; a failure is counted, then
/// paused on, so that a refused connection does not become a busy loop.
async fn bounded<T>(shared: &Shared, start: Instant, attempt: impl Future<Output = Result<T, Kind>>) -> Option<T> {
    let limit = (start + shared.timeout).min(shared.hard_deadline);
    let kind = match timeout_at(limit, attempt).await {
        Ok(Ok(value)) => return Some(value),
        Ok(Err(kind)) => kind,
        Err(_) if limit == shared.hard_deadline => "cut_at_end",
        Err(_) => "timeout",
    };
    record(|s| s.error(kind));
    sleep_until((Instant::now() + BACKOFF).min(shared.deadline)).await;
    None
}

/// Idle mode: open `n` connections, one request on each, hold them for `hold`.
async fn idle(shared: Arc<Shared>, n: usize, hold: Duration) {
    eprintln!("loadgen: opening {n} idle connections to {}", shared.addr);
    let gate = Arc::new(Semaphore::new(IDLE_OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for _ in 0..n {
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        opening.spawn(async move {
            let Some(auth) = shared.next_permit() else {
                record(|s| s.error("not_attempted"));
                return None;
            };
            let start = Instant::now();
            let attempt = async {
                let (mut conn, task) = open(&shared).await?;
                let status = exchange(&shared, &mut conn, auth).await?;
                Ok((conn, task, status))
            };
            let (conn, task, status) = bounded(&shared, start, attempt).await?;
            record(|s| s.response(status, start));
            drop(permit);
            Some((conn, task))
        });
    }
    let mut held = Vec::with_capacity(n);
    while let Some(joined) = opening.join_next().await {
        held.extend(joined.ok().flatten());
    }
    let failed = n - held.len();
    let open_s = round3(shared.started.elapsed().as_secs_f64());
    print_line(json!({ "idle_open": held.len(), "failed": failed, "open_s": open_s }));
    tokio::time::sleep(hold).await;
    let closed = held.iter().filter(|(_, task)| task.is_finished()).count();
    let mut report = summary(&merged_stats());
    report["idle_open"] = json!(held.len() - closed);
    report["failed"] = json!(failed);
    report["closed_during_hold"] = json!(closed);
    print_line(report);
    // Dropped senders close their connections; what is left closes with the runtime.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn print_line(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}").and_then(|()| out.flush());
}

/// The client half of a connection.
enum Conn {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::Http1(sender) => sender.is_closed(),
            Conn::Http2(sender) => sender.is_closed(),
        }
    }
}

/// TCP connect, TLS handshake (counted as full or resumed), HTTP handshake;
/// the connection is driven by its own task.
async fn open(shared: &Shared) -> Result<(Conn, JoinHandle<()>), Kind> {
    let tcp = TcpStream::connect(shared.addr)
        .await
        .map_err(|e| first(io_kind("connect", &e), &e))?;
    tcp.set_nodelay(true).map_err(|e| first("connect", &e))?;
    let Some(connector) = &shared.tls else {
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| first("http_handshake", &e))?;
        return Ok((Conn::Http1(sender), tokio::spawn(async move { drop(conn.await) })));
    };
    let tls = connector
        .connect(shared.server_name.clone(), tcp)
        .await
        .map_err(|e| first(io_kind("tls", &e), &e))?;
    let session = tls.get_ref().1;
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    let alpn_h2 = session.alpn_protocol() == Some(b"h2");
    record(|s| s.handshakes[usize::from(resumed)] += 1);
    let io = TokioIo::new(tls);
    if !shared.http2 {
        let (sender, conn) = http1::handshake(io).await.map_err(|e| first("http_handshake", &e))?;
        return Ok((Conn::Http1(sender), tokio::spawn(async move { drop(conn.await) })));
    }
    if !alpn_h2 {
        let error = std::io::Error::other("the server did not negotiate h2 by ALPN");
        return Err(first("no_h2", &error));
    }
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| first("http_handshake", &e))?;
    Ok((Conn::Http2(sender), tokio::spawn(async move { drop(conn.await) })))
}

/// Sends one request (a GET, or the --post-form POST) and reads the response body to its end.
async fn exchange(shared: &Shared, conn: &mut Conn, auth: Option<HeaderValue>) -> Result<StatusCode, Kind> {
    // An empty `Full` is what `Empty` is on the wire: no body, no Content-Length on a GET.
    let mut request = Request::new(Full::new(shared.body.clone()));
    *request.method_mut() = shared.method.clone();
    *request.uri_mut() = shared.uri.clone();
    *request.headers_mut() = shared.headers.clone();
    if let Some(auth) = auth {
        request.headers_mut().insert(AUTHORIZATION, auth);
    }
    if let Some(dpop) = &shared.dpop {
        let proof = dpop.proof().map_err(|e| first("dpop_sign", &e))?;
        request.headers_mut().insert(DPOP, proof);
    }
    let response = match conn {
        Conn::Http1(sender) => match sender.ready().await {
            Ok(()) => sender.send_request(request).await,
            Err(e) => Err(e),
        },
        Conn::Http2(sender) => sender.send_request(request).await,
    };
    let response = response.map_err(|e| first(hyper_kind(&e), &e))?;
    let status = response.status();
    let keep = (shared.sample.as_ref())
        .map(|[ok, failed]| if status.is_success() { ok } else { failed })
        .filter(|sample| sample.get().is_none());
    let mut kept = Vec::new();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| first(hyper_kind(&e), &e))?;
        if let (Some(_), Some(data)) = (keep, frame.data_ref()) {
            kept.extend_from_slice(&data[..data.len().min(SAMPLE_BYTES.saturating_sub(kept.len()))]);
        }
    }
    if let Some(sample) = keep {
        let _ = sample.set(String::from_utf8_lossy(&kept).into_owned());
    }
    Ok(status)
}

const DPOP: HeaderName = HeaderName::from_static("dpop");
/// How much of a response body --sample-body keeps.
const SAMPLE_BYTES: usize = 4096;

/// Makes the DPoP proofs: the header (typ, alg, public jwk) is encoded once,
/// each proof gets its own jti (a random prefix and a counter), iat and signature.
struct DpopSigner {
    key: DpopKey,
    header_b64: String,
    htm: String,
    htu: String,
    jti_prefix: String,
    counter: AtomicU64,
    rng: SystemRandom,
}

enum DpopKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl DpopSigner {
    fn load(path: &Path, htm: &str, htu: &str) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let der = match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der,
            Ok(_) => return Err(format!("{}: not a PKCS#8 \"PRIVATE KEY\"", path.display())),
            Err(e) => return Err(format!("{}: no private key: {e}", path.display())),
        };
        let pkcs8 = der.secret_pkcs8_der();
        let (key, alg, jwk) = if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8) {
            // The uncompressed point: 0x04, x, y.
            let point = pair.public_key().as_ref();
            let (x, y) = (
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                URL_SAFE_NO_PAD.encode(&point[33..]),
            );
            let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
            (DpopKey::Es256(pair), "ES256", jwk)
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key()) });
            (DpopKey::EdDsa(pair), "EdDSA", jwk)
        } else {
            return Err(format!("{}: neither an EC P-256 nor an Ed25519 key", path.display()));
        };
        let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk });
        let rng = SystemRandom::new();
        let mut prefix = [0u8; 9];
        rng.fill(&mut prefix)
            .map_err(|_| "no randomness for the DPoP jti".to_string())?;
        Ok(Self {
            key,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            htm: htm.to_string(),
            htu: htu.to_string(),
            jti_prefix: URL_SAFE_NO_PAD.encode(prefix),
            counter: AtomicU64::new(0),
            rng,
        })
    }

    fn proof(&self) -> Result<HeaderValue, std::io::Error> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let jti = format!("{}-{}", self.jti_prefix, self.counter.fetch_add(1, Relaxed));
        let claims = json!({ "jti": jti, "htm": self.htm, "htu": self.htu, "iat": iat });
        let mut jws = format!("{}.{}", self.header_b64, URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = match &self.key {
            DpopKey::Es256(pair) => pair.sign(&self.rng, jws.as_bytes()).map_err(std::io::Error::other)?,
            DpopKey::EdDsa(pair) => pair.sign(jws.as_bytes()),
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        HeaderValue::try_from(jws).map_err(std::io::Error::other)
    }
}

fn io_kind(stage: Kind, e: &std::io::Error) -> Kind {
    // Linux errno values: the ones a benchmark script can act on.
    match e.raw_os_error() {
        Some(24) => "emfile",
        Some(23) => "enfile",
        Some(99) => "eaddrnotavail",
        Some(111) => "refused",
        _ => stage,
    }
}

fn hyper_kind(e: &hyper::Error) -> Kind {
    // A TLS 1.3 server rejects a client certificate after the client's handshake
    // is done: the alert arrives with the response.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let io_inner = cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if cause.is::<rustls::Error>() || io_inner.is_some_and(|inner| inner.is::<rustls::Error>()) {
            return "tls";
        }
        source = cause.source();
    }
    if e.is_incomplete_message() {
        "incomplete_response"
    } else if e.is_closed() || e.is_canceled() {
        "closed"
    } else if e.is_parse() {
        "parse"
    } else {
        "http"
    }
}

/// Returns `kind`, printing the details of its first occurrence to stderr.
fn first(kind: Kind, error: &(dyn std::error::Error + 'static)) -> Kind {
    static SEEN: Mutex<BTreeSet<Kind>> = Mutex::new(BTreeSet::new());
    if lock(&SEEN).insert(kind) {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        eprintln!("loadgen: first {kind} error: {detail}");
        if matches!(kind, "emfile" | "enfile") {
            eprintln!("loadgen: out of file descriptors: raise `ulimit -n` (and fs.file-max)");
        }
    }
    kind
}

/// Counters of one thread: only it writes them until they are merged at the end.
#[derive(Default)]
struct Stats {
    ok: u64,
    non2xx: u64,
    non2xx_status: BTreeMap<u16, u64>,
    errors: BTreeMap<Kind, u64>,
    /// Full and resumed TLS handshakes.
    handshakes: [u64; 2],
    latency: Histogram,
}

impl Stats {
    fn response(&mut self, status: StatusCode, since: Instant) {
        if status.is_success() {
            self.ok += 1;
            self.latency.record(since.elapsed());
        } else {
            self.non2xx += 1;
            *self.non2xx_status.entry(status.as_u16()).or_default() += 1;
        }
    }

    fn error(&mut self, kind: Kind) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.non2xx += other.non2xx;
        for (status, n) in &other.non2xx_status {
            *self.non2xx_status.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.handshakes[0] += other.handshakes[0];
        self.handshakes[1] += other.handshakes[1];
        self.latency.merge(&other.latency);
    }
}

/// Every thread's `Stats`, registered on the thread's first record.
static ALL_STATS: Mutex<Vec<Arc<Mutex<Stats>>>> = Mutex::new(Vec::new());

thread_local! {
    static THREAD_STATS: Arc<Mutex<Stats>> = {
        let stats = Arc::new(Mutex::new(Stats::default()));
        lock(&ALL_STATS).push(stats.clone());
        stats
    };
}

/// Updates this thread's counters: the lock is only ever contended by `merged_stats`.
fn record(update: impl FnOnce(&mut Stats)) {
    THREAD_STATS.with(|stats| update(&mut lock(stats)));
}

fn merged_stats() -> Stats {
    let mut total = Stats::default();
    for stats in lock(&ALL_STATS).iter() {
        total.merge(&lock(stats));
    }
    total
}

/// A load generator's counters are still worth reporting after a worker
/// panicked, unlike the gateway's state (src/lock.rs).
#[allow(clippy::disallowed_methods)]
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Latency histogram in microseconds: exact 1 µs buckets below 1024 µs, then
/// 128 buckets per power of two (under 0.8% relative error), up to ~67 s.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

const LINEAR_US: u64 = 1024;
const SUB_BITS: u32 = 7;
/// Highest power of two with its own buckets: larger values land in the last one.
const TOP_EXP: u32 = 25;
const BUCKETS: usize = LINEAR_US as usize + (((TOP_EXP - 9) as usize) << SUB_BITS);

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < LINEAR_US {
            return us as usize;
        }
        let us = us.min((2 << TOP_EXP) - 1);
        let exp = 63 - us.leading_zeros();
        let sub = (us >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        LINEAR_US as usize + (((exp - 10) as usize) << SUB_BITS) + sub as usize
    }

    /// The largest value that lands in bucket `index`.
    fn upper(index: usize) -> u64 {
        let Some(k) = index.checked_sub(LINEAR_US as usize) else {
            return index as u64;
        };
        let exp = 10 + (k >> SUB_BITS) as u32;
        let width = 1u64 << (exp - SUB_BITS);
        (1u64 << exp) + (k as u64 & ((1 << SUB_BITS) - 1)) * width + width - 1
    }

    fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The smallest bucket bound at or below which a fraction `q` of the values lie.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper(index).min(self.max_us);
            }
        }
        self.max_us
    }

    fn merge(&mut self, other: &Histogram) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_bound_is_within_one_percent() {
        for us in (0..5_000).chain((5_000..1 << 26).step_by(997)) {
            let index = Histogram::index(us);
            assert!(index < BUCKETS);
            let upper = Histogram::upper(index);
            assert!(
                upper >= us && (upper - us) as f64 <= us as f64 * 0.008,
                "{us} -> {upper}"
            );
        }
    }
}
