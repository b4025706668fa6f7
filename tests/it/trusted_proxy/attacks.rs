//! The attacks on a trusted proxy's certificate header: forged by a direct
//! client or by a look-alike of the proxy, trusted by address where only a
//! key would do, repeated, with the attacker's XFCC element first,
//! oversized, expired, from another CA, revoked. Each is refused or
//! stripped, and the upstream receives nothing it could trust.

use super::*;

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
