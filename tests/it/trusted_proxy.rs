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

/// The headers a direct client forges, each naming client B's certificate:
/// the trusted proxy's own header, RFC 9440's (always screened) and an
/// underscore spelling of the proxy's that a CGI-style upstream would read as it.
fn forgeries(s: &Setup) -> Vec<(&'static str, String)> {
    vec![
        ("x-client-cert", Dialect::NginxUrlPem.encode(&s.pki.client_b)),
        ("x_client_cert", Dialect::NginxUrlPem.encode(&s.pki.client_b)),
        ("client-cert", Dialect::HaproxyRfc9440.encode(&s.pki.client_b)),
    ]
}

/// A peer that is no trusted proxy, presenting `cert` (or none), forges the
/// certificate header: it is removed unread, so a token bound to the forged
/// certificate is refused, the peer's own binds, and the upstream never sees
/// the forgery, not even on a route without auth; with
/// `reject_forwarded_cert_headers` the request is a 400.
async fn forged_headers_from_an_untrusted_peer(w: &World, cert: Option<&CertFiles>) {
    let s = &w.s;
    let forged = forgeries(s);
    let headers: Vec<(&str, &str)> = forged.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let optional = ConfigSpec {
        server: vec!["client_auth = \"optional\"".into()],
        tail: vec!["[[route]]\nprefix = \"/open\"\nauth = \"none\"\n".into()],
        ..Default::default()
    };
    let gw = w.gateway(Dialect::NginxUrlPem, optional.clone()).await;
    let client = s.client(cert, Alpn::Http1);
    s.upstream.clear();
    let assert_no_forgery_reached = |seen: &Seen| {
        for (name, _) in &forged {
            assert_eq!(seen.all(name), Vec::<String>::new(), "{name} reached the upstream");
        }
        match cert {
            Some(own) => assert_identity(seen, own, &[&s.pki.client_b]),
            None => assert_eq!(seen.one("x-forwarded-client-cert"), None),
        }
    };

    let reply = send(&client, gw.addr, with_headers("/", &w.token(&s.pki.client_b), &headers)).await;
    let missing = if cert.is_some() {
        "cnf_mismatch"
    } else {
        "client_cert_missing"
    };
    assert_refused(&reply, missing);
    assert_eq!(s.upstream.count(), 0);
    let mut open = with_headers("/open/x", "-", &headers);
    open.headers_mut().remove("authorization");
    let reply = send(&client, gw.addr, open).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_no_forgery_reached(&s.upstream.only());
    if let Some(own) = cert {
        s.upstream.clear();
        let reply = send(&client, gw.addr, with_headers("/", &w.token(own), &headers)).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_no_forgery_reached(&s.upstream.only());
        assert_eq!(requests_total(&gw, "/", 200, "forwarded", "tls").await, Some(1.0));
    }
    drop(gw);

    let mut reject = optional;
    reject.server.push("reject_forwarded_cert_headers = true".into());
    let gw = w.gateway(Dialect::NginxUrlPem, reject).await;
    let before = s.upstream.count();
    for (name, value) in &forged {
        let token = w.token(cert.unwrap_or(&s.pki.client_b));
        let reply = send(&client, gw.addr, with_headers("/", &token, &[(name, value)])).await;
        assert_bad_header(&reply, "forwarded_cert_from_untrusted_peer");
    }
    assert_eq!(s.upstream.count(), before);
    if let Some(own) = cert {
        // Without the header the same peer is served: the 400s were for the header alone.
        let reply = send(&client, gw.addr, get(Alpn::Http1, "/", Some(&w.token(own)))).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
}

#[tokio::test]
async fn a_forged_certificate_header_from_a_direct_client_is_stripped_or_refused() {
    let w = World::new().await;
    // A client with a certificate of its own, and one with none.
    forged_headers_from_an_untrusted_peer(&w, Some(&w.s.pki.client_a)).await;
    forged_headers_from_an_untrusted_peer(&w, None).await;
}

/// A certificate from the proxies' CA, with the proxy's very name and SAN,
/// but not the pinned key: it is a client like any other.
#[tokio::test]
async fn a_look_alike_of_the_proxy_from_the_same_ca_is_not_trusted() {
    let w = World::new().await;
    let dir = w.s.path().join("look-alike");
    std::fs::create_dir(&dir).unwrap();
    let look_alike = w.s.pki.ca.client(&dir, "proxy", false);
    assert_ne!(look_alike.spki_sha256(), w.hop.spki_sha256());
    forged_headers_from_an_untrusted_peer(&w, Some(&look_alike)).await;
}

/// A source address authenticates nobody, and with client_auth = "any" no
/// chain does either: such a gateway does not start.
#[tokio::test]
async fn a_cidr_trusted_proxy_with_client_auth_any_is_refused_at_startup() {
    let s = Setup::new().await;
    let table = "[[trusted_proxy]]\nname = \"lb\"\ncidr = [\"127.0.0.1/32\"]\nformat = \"url-pem\"\nheader = \"x-client-cert\"\n";
    let spec = |client_auth: &str| ConfigSpec {
        server: vec![format!("client_auth = {client_auth:?}")],
        tail: vec![table.into()],
        ..Default::default()
    };
    let config = s.write_config("any", &spec("any"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bindgate"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bindgate started with a cidr trusted_proxy and client_auth = \"any\"");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("trusted_proxy[0].cidr"), "{stderr}");
    assert!(stderr.contains("client_auth"), "{stderr}");

    // The same entry with a chain to check starts, and then believes that address.
    let gw = s.start(&spec("required")).await;
    let forwarded = Dialect::NginxUrlPem.encode(&s.pki.client_b);
    let reply = send(
        &s.client_a(Alpn::Http1),
        gw.addr,
        with_headers(
            "/",
            &s.issuer.token(&s.pki.client_b.x5t()),
            &[("x-client-cert", &forwarded)],
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = s.upstream.only();
    assert_identity(&seen, &s.pki.client_b, &[&s.pki.client_a]);
    assert_eq!(seen.all("x-client-cert"), Vec::<String>::new());
    assert_eq!(requests_total(&gw, "/", 200, "forwarded", "proxy:lb").await, Some(1.0));
}

/// Two header lines from the trusted hop itself (which a proxy that appends
/// instead of replacing would send, the client's first): which one is the
/// proxy's cannot be told, so the request is refused, and the hop's
/// connection, which carries other clients' requests too, stays open.
#[tokio::test]
async fn two_certificate_header_lines_from_the_trusted_hop_are_refused() {
    let w = World::new().await;
    let s = &w.s;
    for dialect in [Dialect::NginxUrlPem, Dialect::HaproxyBase64Der, Dialect::HaproxyRfc9440] {
        let gw = w.gateway(dialect, ConfigSpec::default()).await;
        let (a, b) = (dialect.encode(&s.pki.client_a), dialect.encode(&s.pki.client_b));
        let mut conn = w.as_hop().keep(gw.addr).await.unwrap();
        for lines in [[&b, &a], [&a, &a]] {
            let headers = [
                (dialect.header(), lines[0].as_str()),
                (dialect.header(), lines[1].as_str()),
            ];
            let reply = conn.send(with_headers("/", &s.token_a(), &headers)).await.unwrap();
            assert_bad_header(&reply, "forwarded_cert_repeated");
        }
        assert_eq!(s.upstream.count(), 0, "{dialect:?}");
        let reply = conn
            .send(with_headers("/", &s.token_a(), &[(dialect.header(), &a)]))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{dialect:?}: {:?}", reply.body);
        assert_identity(&s.upstream.only(), &s.pki.client_a, &[&w.hop]);
        let source = format!("proxy:{}", dialect.name());
        assert_eq!(
            requests_total(&gw, "-", 400, "forwarded_cert_repeated", &source).await,
            Some(2.0)
        );
        drop(gw);
        s.upstream.clear();
    }
}

/// An XFCC element, as Envoy writes one: `Hash` and the quoted, URL-encoded PEM.
fn xfcc_element(cert: &CertFiles) -> String {
    format!("Hash={};Cert=\"{}\"", cert.sha256_hex(), url_escape(&cert.leaf_pem()))
}

/// XFCC is appended to hop by hop: only the last element is the trusted
/// hop's, and an attacker's element before it is never read.
#[tokio::test]
async fn xfcc_binds_the_last_element_and_never_the_attackers_first() {
    let w = World::new().await;
    let s = &w.s;
    let table = trusted_proxy_table("envoy", &w.hop.spki_sha256(), "xfcc", None);
    let gw = s
        .start(&ConfigSpec {
            tail: vec![table],
            ..Default::default()
        })
        .await;
    let (attacker, client) = (xfcc_element(&s.pki.client_b), xfcc_element(&s.pki.client_a));
    let one_line = format!("{attacker},{client}");
    let hop = w.as_hop();
    for headers in [
        vec![("x-forwarded-client-cert", one_line.as_str())],
        vec![
            ("x-forwarded-client-cert", attacker.as_str()),
            ("x-forwarded-client-cert", client.as_str()),
        ],
    ] {
        let reply = send(&hop, gw.addr, with_headers("/", &w.token(&s.pki.client_b), &headers)).await;
        assert_refused(&reply, "cnf_mismatch");
        assert_eq!(s.upstream.count(), 0);
        let reply = send(&hop, gw.addr, with_headers("/", &s.token_a(), &headers)).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        // The upstream gets the gateway's own XFCC, for client A alone.
        assert_identity(&s.upstream.only(), &s.pki.client_a, &[&s.pki.client_b, &w.hop]);
        s.upstream.clear();
    }
    // The other way round, client A's element is the attacker's.
    let reversed = format!("{client},{attacker}");
    let reply = send(
        &hop,
        gw.addr,
        with_headers("/", &s.token_a(), &[("x-forwarded-client-cert", &reversed)]),
    )
    .await;
    assert_refused(&reply, "cnf_mismatch");
    assert_eq!(s.upstream.count(), 0);
}

/// The size is checked before anything is decoded: past
/// `limits.max_forwarded_cert_bytes` (10240 by default) a header is refused
/// as too large, under it the same garbage as undecodable.
#[tokio::test]
async fn an_oversized_certificate_header_is_refused_before_it_is_read() {
    let w = World::new().await;
    let s = &w.s;
    // The default limits.max_header_bytes (64 KiB) lets the 16 KiB header reach the check.
    let gw = w.gateway(Dialect::HaproxyBase64Der, ConfigSpec::default()).await;
    let hop = w.as_hop();
    let header = Dialect::HaproxyBase64Der.header();
    let huge = "A".repeat(16 * 1024);
    let reply = send(&hop, gw.addr, with_headers("/", &s.token_a(), &[(header, &huge)])).await;
    assert_bad_header(&reply, "forwarded_cert_too_large");
    // Twice 6 KiB: the limit is on the lines together.
    let half = "A".repeat(6 * 1024);
    let reply = send(
        &hop,
        gw.addr,
        with_headers("/", &s.token_a(), &[(header, &half), (header, &half)]),
    )
    .await;
    assert_bad_header(&reply, "forwarded_cert_too_large");
    let at_limit = "!".repeat(10240);
    let reply = send(&hop, gw.addr, with_headers("/", &s.token_a(), &[(header, &at_limit)])).await;
    assert_bad_header(&reply, "forwarded_cert_undecodable");
    assert_eq!(s.upstream.count(), 0);
}

/// An expired certificate the hop forwards is judged as the handshake would
/// judge it, though no handshake ever saw it. Sent by the hop directly:
/// nginx refuses an expired client certificate itself (400), even with
/// `optional_no_ca`, so it never forwards one.
#[tokio::test]
async fn an_expired_forwarded_certificate_is_refused() {
    let w = World::new().await;
    let s = &w.s;
    let now = time::OffsetDateTime::now_utc();
    let expired = s.pki.ca.client_valid(
        s.path(),
        "expired",
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    );
    let gw = w.gateway(Dialect::NginxUrlPem, ConfigSpec::default()).await;
    let forwarded = Dialect::NginxUrlPem.encode(&expired);
    let reply = send(
        &w.as_hop(),
        gw.addr,
        with_headers("/", &w.token(&expired), &[("x-client-cert", &forwarded)]),
    )
    .await;
    assert_refused(&reply, "client_cert_expired");
    assert_eq!(s.upstream.count(), 0);
    assert_eq!(
        requests_total(&gw, "-", 401, "client_cert_expired", "proxy:nginx").await,
        Some(1.0)
    );
}

/// A proxy that checks nothing (`optional_no_ca`) passes on a certificate
/// from another CA and a self-signed one: the gateway's verifier refuses both.
#[tokio::test]
async fn via_a_lax_nginx_a_certificate_from_another_ca_is_refused() {
    let w = World::new().await;
    let s = &w.s;
    let gw = w.gateway(Dialect::NginxUrlPem, ConfigSpec::default()).await;
    let proxy = w.proxy(Dialect::NginxUrlPem, &gw, ClientVerify::OptionalNoCa).await;
    let dir = s.path().join("other");
    std::fs::create_dir(&dir).unwrap();
    let other_ca = pki::Ca::new(&dir, "other-ca");
    let strangers = [
        other_ca.client(&dir, "stranger", false),
        pki::self_signed_client(&dir, "self-signed"),
    ];
    for stranger in &strangers {
        let client = s.client(Some(stranger), Alpn::Http1);
        let reply = send(&client, proxy.addr, get(Alpn::Http1, "/", Some(&w.token(stranger)))).await;
        assert_refused(&reply, "client_cert_untrusted");
    }
    assert_eq!(s.upstream.count(), 0);
    // The lax proxy is still a working one: a certificate from the CA passes.
    let reply = send(
        &s.client_a(Alpn::Http1),
        proxy.addr,
        get(Alpn::Http1, "/", Some(&s.token_a())),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, proxy.log());
    assert_identity(&s.upstream.only(), &s.pki.client_a, &[&w.hop]);
    assert_eq!(
        requests_total(&gw, "-", 401, "client_cert_untrusted", "proxy:nginx").await,
        Some(2.0)
    );
}

/// A certificate the gateway's CRL revokes is refused when a proxy forwards
/// it (the proxy has no CRL and lets it through), without closing the
/// hop's connection, and other clients behind the same proxy are served.
#[tokio::test]
async fn a_revoked_forwarded_certificate_is_refused_and_the_hops_connection_kept() {
    let w = World::new().await;
    let s = &w.s;
    let crl = s
        .pki
        .ca
        .crl(s.path(), "ca", &[pki::serial_of(&s.pki.client_a.leaf_der)]);
    let gw = w
        .gateway(
            Dialect::NginxUrlPem,
            ConfigSpec {
                server: vec![format!("crl = [{:?}]", crl.display().to_string())],
                ..Default::default()
            },
        )
        .await;
    let proxy = w.proxy(Dialect::NginxUrlPem, &gw, ClientVerify::Required).await;
    let reply = send(
        &s.client_a(Alpn::Http1),
        proxy.addr,
        get(Alpn::Http1, "/", Some(&s.token_a())),
    )
    .await;
    assert_refused(&reply, "client_cert_revoked");
    assert_eq!(s.upstream.count(), 0);
    let token_b = w.token(&s.pki.client_b);
    let reply = send(
        &s.client_b(Alpn::Http1),
        proxy.addr,
        get(Alpn::Http1, "/", Some(&token_b)),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, proxy.log());
    assert_identity(&s.upstream.only(), &s.pki.client_b, &[&w.hop]);

    // On one connection of the hop's own: the refusal leaves it open for the next client.
    let mut conn = w.as_hop().keep(gw.addr).await.unwrap();
    let (a, b) = (
        Dialect::NginxUrlPem.encode(&s.pki.client_a),
        Dialect::NginxUrlPem.encode(&s.pki.client_b),
    );
    let reply = conn
        .send(with_headers("/", &s.token_a(), &[("x-client-cert", &a)]))
        .await
        .unwrap();
    assert_refused(&reply, "client_cert_revoked");
    let reply = conn
        .send(with_headers("/", &token_b, &[("x-client-cert", &b)]))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(s.upstream.count(), 2);
    assert_eq!(
        requests_total(&gw, "-", 401, "client_cert_revoked", "proxy:nginx").await,
        Some(2.0)
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
