//! Closed-loop load generator for bench/: mutual TLS, HTTP/1.1 or HTTP/2,
//! keep-alive or a connection per request, and an idle-connections mode.
//! GET by default; with --post-form, a form POST (a token request), and with
//! --dpop-key a fresh DPoP proof (RFC 9449) in every request. With
//! --refresh-chains, every connection refreshes a rotating refresh token of
//! its own in a loop (chain.rs).
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
//!
//! Refresh chains: token exchanges whose refresh tokens seed them, then 64 chains:
//!
//!   cargo run --release --example loadgen -- --ca certs/ca.pem --dpop-key certs/dpop-key.pem \
//!       --post-form "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&client_id=mobile&\
//!       subject_token=$ID_TOKEN&subject_token_type=urn:ietf:params:oauth:token-type:id_token" \
//!       -c 8 --max-requests 64 --save-refresh-tokens seeds.txt https://localhost:8444/token
//!   cargo run --release --example loadgen -- --ca certs/ca.pem --dpop-key certs/dpop-key.pem \
//!       --refresh-chains seeds.txt --client-id mobile --chains-out seeds.txt -c 64 --duration 10s \
//!       https://localhost:8444/token

mod chain;
mod dpop;
mod errors;
mod idle;
mod stats;
mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_rustls::TlsConnector;

use crate::dpop::{DPOP, DpopSigner};
use crate::errors::{first, hyper_kind, io_kind};
use crate::idle::idle;
use crate::stats::{lock, merged_stats, record, round3, summary};
use crate::tls::client_config;

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
    /// Write the `refresh_token` of every successful JSON answer to this file, one per line,
    /// in the order they arrived (e.g. the first tokens of refresh chains, from token exchanges).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["refresh_chains", "idle_connections"])]
    save_refresh_tokens: Option<PathBuf>,
    /// Refresh-chain mode: each of the --connections workers takes one refresh token from this
    /// file (one per line) and refreshes it in a loop (`grant_type=refresh_token`), sending the
    /// `refresh_token` of each answer in the next request. A non-2xx answer, an answer without a
    /// refresh token or a failed request ends that worker's chain.
    #[arg(long, value_name = "FILE", requires = "client_id",
          conflicts_with_all = ["post_form", "tokens", "token", "idle_connections", "new_connection", "http2"])]
    refresh_chains: Option<PathBuf>,
    /// The `client_id` of the refresh requests.
    #[arg(long, requires = "refresh_chains")]
    client_id: Option<String>,
    /// At the end, write the chains' refresh tokens here (may be the --refresh-chains file): each
    /// live chain's current token, then the lines no worker took; ended chains are left out.
    #[arg(long, value_name = "FILE", requires = "refresh_chains")]
    chains_out: Option<PathBuf>,
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
    let outcome = match (args.idle_connections, &args.refresh_chains) {
        (Some(n), _) => {
            runtime.block_on(idle(shared, n, args.hold));
            Ok(())
        }
        (None, Some(seeds)) => match chain::Chains::load(seeds, args.connections, args.client_id.as_deref()) {
            Ok(chains) => {
                let report = runtime.block_on(chain::run(shared, chains, args.chains_out.as_deref()));
                report.map(|report| println!("{report}"))
            }
            Err(e) => Err(e),
        },
        (None, None) => {
            let report = runtime.block_on(load(shared.clone(), &args));
            println!("{report}");
            save_refresh_tokens(&shared, args.save_refresh_tokens.as_deref())
        }
    };
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Writes what --save-refresh-tokens collected, one token per line.
fn save_refresh_tokens(shared: &Shared, path: Option<&Path>) -> Result<(), String> {
    let (Some(path), Some(saved)) = (path, &shared.saved_refresh_tokens) else {
        return Ok(());
    };
    let saved = lock(saved);
    chain::write_lines(path, saved.iter().map(String::as_str))
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
    /// With --save-refresh-tokens: the refresh tokens answered so far.
    saved_refresh_tokens: Option<Mutex<Vec<String>>>,
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
        // A refresh chain's form is made per request, from the chain's current token.
        let form = match (&args.post_form, &args.refresh_chains) {
            (Some(form), _) => Some(Bytes::from(form.clone())),
            (None, Some(_)) => Some(Bytes::new()),
            (None, None) => None,
        };
        let (method, body) = match form {
            Some(form) => {
                let form_type = HeaderValue::from_static("application/x-www-form-urlencoded");
                headers.entry(CONTENT_TYPE).or_insert(form_type);
                (Method::POST, form)
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
            saved_refresh_tokens: args.save_refresh_tokens.as_ref().map(|_| Mutex::default()),
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
    let want_body = shared.saved_refresh_tokens.is_some();
    let answer = send(shared, conn, auth, shared.body.clone(), want_body).await?;
    if let (Some(saved), Some(body)) = (&shared.saved_refresh_tokens, &answer.body)
        && answer.status.is_success()
    {
        match chain::refresh_token_of(body) {
            Some(token) => lock(saved).push(token),
            None => record(|s| s.error("no_refresh_token")),
        }
    }
    Ok(answer.status)
}

/// A response: its status, and its body when the caller asked for it.
struct Answer {
    status: StatusCode,
    body: Option<Vec<u8>>,
}

/// Sends one request with `body` (the shared method, URI and headers) and reads the
/// response body to its end, keeping up to [`ANSWER_BYTES`] of it if `want_body`.
async fn send(
    shared: &Shared,
    conn: &mut Conn,
    auth: Option<HeaderValue>,
    body: Bytes,
    want_body: bool,
) -> Result<Answer, Kind> {
    // An empty `Full` is what `Empty` is on the wire: no body, no Content-Length on a GET.
    let mut request = Request::new(Full::new(body));
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
    let sample = (shared.sample.as_ref())
        .map(|[ok, failed]| if status.is_success() { ok } else { failed })
        .filter(|sample| sample.get().is_none());
    let limit = if want_body {
        ANSWER_BYTES
    } else if sample.is_some() {
        SAMPLE_BYTES
    } else {
        0
    };
    let mut kept = Vec::new();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| first(hyper_kind(&e), &e))?;
        if let Some(data) = frame.data_ref() {
            kept.extend_from_slice(&data[..data.len().min(limit.saturating_sub(kept.len()))]);
        }
    }
    if let Some(sample) = sample {
        let text = &kept[..kept.len().min(SAMPLE_BYTES)];
        let _ = sample.set(String::from_utf8_lossy(text).into_owned());
    }
    Ok(Answer {
        status,
        body: want_body.then_some(kept),
    })
}

/// How much of a response body --sample-body keeps.
const SAMPLE_BYTES: usize = 4096;
/// How much of a response body is kept when it is read (a token response is about 1 KiB).
const ANSWER_BYTES: usize = 64 * 1024;
