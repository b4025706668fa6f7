//! `server.crl_fetch`: CRLs fetched from the distribution points client
//! certificates name, from a real HTTP server on loopback, and checked on
//! every request and at every full handshake: a revocation reaches open
//! keep-alive connections and resumed sessions, the last good list outlives
//! its server, and an expired list means what `crl_expired` says.

use std::time::Duration;

use crate::common::crl_server::CrlServer;
use crate::common::pki::serial_of;
use crate::common::*;

const MINUTE: time::Duration = time::Duration::minutes(1);

struct Fetching {
    s: Setup,
    crl: CrlServer,
}

impl Fetching {
    async fn new() -> Fetching {
        Fetching {
            s: Setup::new().await,
            crl: CrlServer::start().await,
        }
    }

    fn client_cert(&self, name: &str) -> CertFiles {
        self.s.pki.ca.client_with_crl_url(self.s.path(), name, &self.crl.url())
    }

    /// A list valid for `validity` from now, revoking `certs`.
    fn list(&self, certs: &[&CertFiles], validity: time::Duration) -> Vec<u8> {
        let serials: Vec<Vec<u8>> = certs.iter().map(|c| serial_of(&c.leaf_der)).collect();
        self.s.pki.ca.crl_der(&serials, time::Duration::ZERO, validity)
    }

    async fn gateway(&self, extra: &[&str]) -> GatewayProcess {
        let mut server = vec!["crl_fetch = true".to_string(), "crl_fetch_timeout = \"1s\"".to_string()];
        server.extend(extra.iter().map(|l| l.to_string()));
        self.s
            .start(&ConfigSpec {
                server,
                ..Default::default()
            })
            .await
    }

    async fn get(&self, gw: &GatewayProcess, cert: &CertFiles) -> Reply {
        self.try_get(gw, cert).await.unwrap()
    }

    /// A request on a new connection with a full handshake.
    async fn try_get(&self, gw: &GatewayProcess, cert: &CertFiles) -> Result<Reply, String> {
        let token = self.s.issuer.token(&cert.x5t());
        self.s
            .client(Some(cert), Alpn::Http1)
            .send(gw.addr, get(Alpn::Http1, "/x", Some(&token)))
            .await
    }

    async fn fetches(&self, gw: &GatewayProcess, result: &str) -> f64 {
        let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
        let sample = format!(
            "bindgate_crl_fetches_total{{url=\"{}\",result=\"{result}\"}}",
            self.crl.url()
        );
        metric(&metrics, &sample).unwrap_or(0.0)
    }
}

#[tokio::test]
async fn a_revocation_published_later_reaches_an_open_connection_and_a_resumed_session() {
    let f = Fetching::new().await;
    let cert = f.client_cert("moving");
    // Valid 20 s: refreshed after half of it.
    f.crl.serve(f.list(&[], time::Duration::seconds(20)));
    let gw = f.gateway(&[]).await;
    let token = f.s.issuer.token(&cert.x5t());
    let client = f.s.client(Some(&cert), Alpn::Http1);
    let mut open = client.keep(gw.addr).await.unwrap();
    let reply = open.send(get(Alpn::Http1, "/x", Some(&token))).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        f.crl.hits(),
        1,
        "the first request fetches the certificate's list, once"
    );
    // A second connection leaves a session to resume.
    assert_eq!(
        client
            .send(gw.addr, get(Alpn::Http1, "/x", Some(&token)))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(f.crl.hits(), 1, "a known list is not fetched per request");

    f.crl.serve(f.list(&[&cert], time::Duration::seconds(20)));
    let mut last = None;
    let refused = eventually(Duration::from_secs(30), async || {
        let reply = open.send(get(Alpn::Http1, "/x", Some(&token))).await.unwrap();
        let refused = reply.status == 401;
        last = Some(reply);
        refused
    })
    .await;
    let last = last.unwrap();
    assert!(
        refused,
        "the revocation never reached the open connection: {last:?}\n{}",
        gw.stderr()
    );
    assert_eq!(last.reason(), "client_cert_revoked");
    assert_eq!(last.header("connection").as_deref(), Some("close"));
    let upstream_after = f.s.upstream.count();

    let resumed = client
        .send(gw.addr, get(Alpn::Http1, "/x", Some(&token)))
        .await
        .unwrap();
    assert!(resumed.resumed, "the client did not resume its session");
    assert_eq!(resumed.status, 401, "a resumed session escaped the revocation");
    assert_eq!(resumed.reason(), "client_cert_revoked");
    assert_eq!(
        f.s.upstream.count(),
        upstream_after,
        "a revoked certificate's request went upstream"
    );
    // A full handshake is refused outright.
    let fresh = f.try_get(&gw, &cert).await;
    assert!(
        fresh.as_ref().is_err_and(|e| e.contains("CertificateRevoked")),
        "{fresh:?}"
    );
    assert!(f.fetches(&gw, "ok").await >= 2.0);
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let age = metric(
        &metrics,
        &format!("bindgate_crl_age_seconds{{url=\"{}\"}}", f.crl.url()),
    );
    assert!(age.is_some_and(|age| (0.0..60.0).contains(&age)), "{metrics}");
}

#[tokio::test]
async fn the_last_good_list_is_kept_while_the_distribution_point_is_down() {
    let f = Fetching::new().await;
    let (good, revoked) = (f.client_cert("good"), f.client_cert("revoked"));
    f.crl.serve(f.list(&[&revoked], time::Duration::seconds(20)));
    let gw = f.gateway(&[]).await;
    assert_eq!(f.get(&gw, &good).await.status, 200);
    // The good client's request fetched its issuer's list: from then on the
    // handshake itself refuses the revoked certificate.
    let refused = f.try_get(&gw, &revoked).await.unwrap_err();
    assert!(refused.contains("CertificateRevoked"), "{refused}");

    f.crl.down();
    let tried = eventually(Duration::from_secs(30), async || f.fetches(&gw, "error").await >= 1.0).await;
    assert!(tried, "no refresh was attempted\n{}", gw.stderr());
    let refused = f.try_get(&gw, &revoked).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("CertificateRevoked")),
        "the revocation was forgotten when its server went down: {refused:?}"
    );
    assert_eq!(f.get(&gw, &good).await.status, 200);
    assert!(
        gw.stderr()
            .contains("CRL fetch failed; the last good list stays in use")
    );
}

#[tokio::test]
async fn an_expired_or_unreachable_list_refuses_under_deny_and_passes_under_allow() {
    let f = Fetching::new().await;
    let cert = f.client_cert("stale");
    // Issued two minutes ago, valid for one: expired as served.
    f.crl.serve(f.s.pki.ca.crl_der(&[], 2 * MINUTE, MINUTE));
    let deny = f.gateway(&[]).await;
    let upstream_before = f.s.upstream.count();
    let reply = f.get(&deny, &cert).await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.reason(), "crl_expired");
    assert_eq!(f.s.upstream.count(), upstream_before);
    let allow = f.gateway(&["crl_expired = \"allow\""]).await;
    assert_eq!(f.get(&allow, &cert).await.status, 200);

    // A distribution point down from the start: nothing is known.
    let other = Fetching::new().await;
    let cert = other.client_cert("unknown");
    let deny = other.gateway(&[]).await;
    let reply = other.get(&deny, &cert).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason(), "crl_unavailable");
    // A dead distribution point costs one attempt, not one per request.
    let hits = other.crl.hits();
    assert_eq!(hits, 1);
    let burst = tokio::join!(
        other.get(&deny, &cert),
        other.get(&deny, &cert),
        other.get(&deny, &cert),
        other.get(&deny, &cert)
    );
    let burst = [burst.0, burst.1, burst.2, burst.3];
    assert!(burst.iter().all(|reply| reply.status == 503), "{burst:?}");
    assert_eq!(
        other.crl.hits(),
        hits,
        "every request retried the dead distribution point"
    );
    assert_eq!(other.s.upstream.count(), 0);
    let allow = other.gateway(&["crl_expired = \"allow\""]).await;
    assert_eq!(other.get(&allow, &cert).await.status, 200);
}

#[tokio::test]
async fn a_forged_list_is_not_believed() {
    let f = Fetching::new().await;
    let cert = f.client_cert("target");
    // Same subject as the configured CA, other key: a forger's list.
    let elsewhere = f.s.path().join("forger");
    std::fs::create_dir(&elsewhere).unwrap();
    let forger = crate::common::pki::Ca::new(&elsewhere, "ca");
    f.crl.serve(forger.crl_der(&[], time::Duration::ZERO, MINUTE));
    let gw = f.gateway(&[]).await;
    let reply = f.get(&gw, &cert).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason().as_str()),
        (503, "crl_unavailable")
    );
    assert!(f.fetches(&gw, "error").await >= 1.0);
    assert!(
        gw.stderr()
            .contains("its signature does not verify with its issuer's key"),
        "{}",
        gw.stderr()
    );
    assert_eq!(f.s.upstream.count(), 0);
}
