//! `[[trusted_proxy]]` end to end: real nginx and HAProxy terminating the
//! client's mTLS in front of the real gateway and forwarding the client's
//! certificate in a header, and the attacks on that header: forged by a
//! direct client or by a look-alike of the proxy, repeated, listed, oversized,
//! expired, revoked. Each test asserts what the client got and what the
//! recording upstream received, or that it received nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;

use crate::common::front_proxy::{ClientVerify, Dialect, FrontProxy, FrontProxySpec, trusted_proxy_table, url_escape};
use crate::common::*;

/// How long a line may take to reach the gateway's log.
mod attacks;

const LOG_WAIT: Duration = Duration::from_secs(5);

/// A test's world plus the front proxy's own client certificate, issued by
/// the same CA as the clients' (so only the pin tells it apart).
struct World {
    s: Setup,
    /// What the proxy presents to the gateway.
    hop: CertFiles,
}

impl World {
    async fn new() -> World {
        let s = Setup::new().await;
        let hop = s.pki.ca.client(s.path(), "proxy", false);
        World { s, hop }
    }

    /// A gateway trusting the proxy of `dialect` by its key, with `extra` on top.
    fn spec(&self, dialect: Dialect, extra: ConfigSpec) -> ConfigSpec {
        let mut spec = extra;
        spec.tail.push(dialect.trusted_proxy(&self.hop));
        spec
    }

    async fn gateway(&self, dialect: Dialect, extra: ConfigSpec) -> GatewayProcess {
        self.s.start(&self.spec(dialect, extra)).await
    }

    async fn proxy(&self, dialect: Dialect, gw: &GatewayProcess, verify_client: ClientVerify) -> FrontProxy {
        FrontProxy::start(&FrontProxySpec {
            dialect,
            gateway: gw.addr,
            ca: &self.s.pki.ca.cert_path,
            server: &self.s.pki.server,
            hop: &self.hop,
            verify_client,
        })
        .await
    }

    /// A client presenting the proxy's own certificate: the trusted hop,
    /// with headers the test writes itself.
    fn as_hop(&self) -> TlsClient {
        self.s.client(Some(&self.hop), Alpn::Http1)
    }

    /// A token bound to `cert`.
    fn token(&self, cert: &CertFiles) -> String {
        self.s.issuer.token(&cert.x5t())
    }
}

/// `GET path` with a token and extra header lines (appended, so a name may repeat).
fn with_headers(path: &str, token: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut req = get(Alpn::Http1, path, Some(token));
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    req
}

async fn send(client: &TlsClient, addr: std::net::SocketAddr, req: http::Request<Full<Bytes>>) -> Reply {
    client.send(addr, req).await.unwrap()
}

/// The `x-forwarded-client-cert` the upstream got names `who` and no one else.
fn assert_identity(seen: &Seen, who: &CertFiles, not: &[&CertFiles]) {
    let xfcc = seen
        .one("x-forwarded-client-cert")
        .expect("no x-forwarded-client-cert upstream");
    assert!(xfcc.starts_with(&format!("Hash={};", who.sha256_hex())), "{xfcc}");
    for other in not {
        assert!(!xfcc.contains(&other.sha256_hex()), "{xfcc}");
    }
}

/// The 400 a refused forwarded-certificate header gets.
fn assert_bad_header(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_request", "{:?}", reply.body);
    assert_eq!(reply.reason(), reason);
}

/// The 401 a refused token or certificate gets.
fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.reason(), reason, "{:?}", reply.body);
    let challenge = reply.challenge().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// `bindgate_requests_total` on `route` for `status` and `reason` from
/// `source`; `None` when there is no such sample. A request refused for its
/// certificate is refused before routing, on route `-`.
async fn requests_total(gw: &GatewayProcess, route: &str, status: u16, reason: &str, source: &str) -> Option<f64> {
    let (code, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    let sample = format!(
        "bindgate_requests_total{{route=\"{route}\",status=\"{status}\",reason=\"{reason}\",cert_source=\"{source}\"}}"
    );
    metric(&text, &sample)
}

/// Through a real proxy: the client's certificate is the request's, for the
/// binding and for the identity upstream; the proxy's own is neither; a
/// copy of the header the client sent itself never counts; the hop's
/// X-Forwarded-For is kept and extended; log and metrics say which proxy.
async fn the_proxy_forwards_the_clients_certificate_and_not_its_own(dialect: Dialect) {
    let w = World::new().await;
    let s = &w.s;
    let gw = w.gateway(dialect, ConfigSpec::default()).await;
    let proxy = w.proxy(dialect, &gw, ClientVerify::Required).await;
    let a = s.client_a(Alpn::Http1);
    // Client A claims to be B in the very header the proxy sets: the proxy replaces it.
    let forged = dialect.encode(&s.pki.client_b);
    let forgery = [(dialect.header(), forged.as_str()), ("x-forwarded-for", "203.0.113.9")];

    let reply = send(&a, proxy.addr, with_headers("/orders", &s.token_a(), &forgery)).await;
    assert_eq!(reply.status, 200, "{:?}\n{}\n{}", reply.body, gw.stderr(), proxy.log());
    let seen = s.upstream.only();
    assert_eq!(seen.target, "/orders");
    assert_identity(&seen, &s.pki.client_a, &[&w.hop, &s.pki.client_b]);
    let xfcc = seen.one("x-forwarded-client-cert").unwrap();
    assert!(xfcc.contains("URI=spiffe://test/client-a"), "{xfcc}");
    assert!(!xfcc.contains("spiffe://test/proxy"), "{xfcc}");
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"));
    // The forwarded certificate header itself is the gateway's input, never the upstream's.
    assert_eq!(seen.all(dialect.header()), Vec::<String>::new());
    // The client's claim, the proxy's address for the client, the gateway's for the proxy.
    assert_eq!(
        seen.one("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1, 127.0.0.1")
    );

    // A token bound to the proxy's certificate proves nothing through the proxy.
    let reply = send(&a, proxy.addr, get(Alpn::Http1, "/", Some(&w.token(&w.hop)))).await;
    assert_refused(&reply, "cnf_mismatch");
    // Nor one bound to the certificate client A forged the header with.
    let reply = send(&a, proxy.addr, with_headers("/", &w.token(&s.pki.client_b), &forgery)).await;
    assert_refused(&reply, "cnf_mismatch");
    assert_eq!(s.upstream.count(), 1);

    let source = format!("proxy:{}", dialect.name());
    assert_eq!(requests_total(&gw, "/", 200, "forwarded", &source).await, Some(1.0));
    assert_eq!(requests_total(&gw, "/", 401, "cnf_mismatch", &source).await, Some(2.0));
    assert_eq!(requests_total(&gw, "/", 200, "forwarded", "tls").await, None);
    let line = format!("cert_source=\"{source}\" ");
    assert!(gw.wait_for_log_count(&line, 3, LOG_WAIT).await, "{}", gw.stderr());
    let x5t = format!("x5t=\"{}\" ", s.pki.client_a.x5t());
    let logged = gw.stderr().lines().any(|l| {
        l.contains("bindgate::access") && l.contains(&line) && l.contains("path=/orders ") && l.contains(&x5t)
    });
    assert!(logged, "no access line with {line} and {x5t}:\n{}", gw.stderr());
}

#[tokio::test]
async fn via_nginx_url_pem_the_clients_certificate_binds_and_the_proxys_does_not() {
    the_proxy_forwards_the_clients_certificate_and_not_its_own(Dialect::NginxUrlPem).await;
}

#[tokio::test]
async fn via_haproxy_base64_der_the_clients_certificate_binds_and_the_proxys_does_not() {
    the_proxy_forwards_the_clients_certificate_and_not_its_own(Dialect::HaproxyBase64Der).await;
}

#[tokio::test]
async fn via_haproxy_rfc9440_the_clients_certificate_binds_and_the_proxys_does_not() {
    the_proxy_forwards_the_clients_certificate_and_not_its_own(Dialect::HaproxyRfc9440).await;
}

/// The same gateway, trusting the proxy by `peer_san` instead of its key.
#[tokio::test]
async fn via_nginx_a_proxy_trusted_by_its_san_forwards_the_clients_certificate() {
    let w = World::new().await;
    let s = &w.s;
    let table = "[[trusted_proxy]]\nname = \"edge\"\npeer_san = \"spiffe://test/proxy\"\n\
                 format = \"url-pem\"\nheader = \"x-client-cert\"\n";
    let gw = s
        .start(&ConfigSpec {
            tail: vec![table.into()],
            ..Default::default()
        })
        .await;
    let proxy = w.proxy(Dialect::NginxUrlPem, &gw, ClientVerify::Required).await;
    let b = s.client_b(Alpn::Http1);
    let reply = send(&b, proxy.addr, get(Alpn::Http1, "/", Some(&w.token(&s.pki.client_b)))).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, proxy.log());
    assert_identity(&s.upstream.only(), &s.pki.client_b, &[&w.hop]);
    assert_eq!(
        requests_total(&gw, "/", 200, "forwarded", "proxy:edge").await,
        Some(1.0)
    );
}

/// `forward.client_cert_header = "rfc9440"`: the upstream gets the client's
/// certificate itself in `Client-Cert` (the proxy's never), and a response
/// that varies on it, a header the client never sent, becomes `Vary: *`.
#[tokio::test]
async fn via_haproxy_the_upstream_gets_client_cert_and_vary_on_it_becomes_a_star() {
    let w = World::new().await;
    let s = &w.s;
    let dialect = Dialect::HaproxyRfc9440;
    let gw = w
        .gateway(
            dialect,
            ConfigSpec {
                tail: vec!["[forward]\nclient_cert_header = \"rfc9440\"\n".into()],
                ..Default::default()
            },
        )
        .await;
    let proxy = w.proxy(dialect, &gw, ClientVerify::Required).await;
    let a = s.client_a(Alpn::Http1);
    let vary_cert = [("x-reply-header", "Vary: Accept-Encoding, Client-Cert")];
    let reply = send(&a, proxy.addr, with_headers("/", &s.token_a(), &vary_cert)).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, proxy.log());
    let vary: Vec<_> = reply.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["*"]);
    let seen = s.upstream.only();
    let der = base64::engine::general_purpose::STANDARD.encode(&s.pki.client_a.leaf_der);
    assert_eq!(seen.one("client-cert"), Some(format!(":{der}:")));
    assert_identity(&seen, &s.pki.client_a, &[&w.hop]);

    // A Vary on anything else is the upstream's to keep.
    let vary_other = [("x-reply-header", "Vary: Accept-Encoding")];
    let reply = send(&a, proxy.addr, with_headers("/", &s.token_a(), &vary_other)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("vary").as_deref(), Some("Accept-Encoding"));
}

/// `forward.client_cert_header = "rfc9440-chain"`: `Client-Cert-Chain` too,
/// with the intermediates the client presented, computed by bindgate; a
/// client's own `Client-Cert-Chain` never passes.
#[tokio::test]
async fn rfc9440_chain_sends_the_presented_intermediates_upstream() {
    let s = Setup::new().await;
    let chained = s.pki.ca.client(s.path(), "chained", true);
    let gw = s
        .start(&ConfigSpec {
            tail: vec!["[forward]\nclient_cert_header = \"rfc9440-chain\"\n".into()],
            ..Default::default()
        })
        .await;
    let client = s.client(Some(&chained), Alpn::Http1);
    let token = s.issuer.token(&chained.x5t());
    let forged = [("client-cert-chain", ":AAAA:")];
    let reply = send(&client, gw.addr, with_headers("/", &token, &forged)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(s.pki.ca.cert_pem.as_bytes())
        .map(|der: rustls_pki_types::CertificateDer<'static>| der.to_vec())
        .unwrap();
    let seen = s.upstream.only();
    assert_eq!(seen.one("client-cert"), Some(format!(":{}:", b64(&chained.leaf_der))));
    assert_eq!(seen.one("client-cert-chain"), Some(format!(":{}:", b64(&ca_der))));

    // A client that sends no intermediates gets no Client-Cert-Chain.
    s.upstream.clear();
    let reply = send(
        &s.client_a(Alpn::Http1),
        gw.addr,
        with_headers("/", &s.token_a(), &forged),
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.only();
    assert!(seen.one("client-cert").is_some());
    assert_eq!(seen.one("client-cert-chain"), None);
}

/// The harness itself: a dropped proxy is gone, its process reaped and its
/// port closed, so no test leaves one behind.
#[tokio::test]
async fn a_dropped_front_proxy_leaves_no_process_behind() {
    let w = World::new().await;
    let gw = w.gateway(Dialect::HaproxyBase64Der, ConfigSpec::default()).await;
    for dialect in [Dialect::NginxUrlPem, Dialect::HaproxyBase64Der] {
        let started = Instant::now();
        let proxy = w.proxy(dialect, &gw, ClientVerify::Required).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{dialect:?} took {:?}",
            started.elapsed()
        );
        let (pid, addr) = (proxy.pid(), proxy.addr);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(proxy);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{dialect:?} {pid} survived"
        );
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{dialect:?} still listens on {addr}"
        );
    }
}

/// The pin the tests compute is the one an operator gets from
/// `bindgate thumbprint --spki`, and it is not the certificate's x5t#S256.
#[tokio::test]
async fn the_pinned_key_is_what_bindgate_thumbprint_spki_prints() {
    let w = World::new().await;
    let (status, stdout, stderr) = run_cli_async(&["thumbprint", "--spki", w.hop.cert.to_str().unwrap()]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), w.hop.spki_sha256());
    assert_ne!(stdout.trim(), w.hop.x5t());
}
