//! Issuer keys fetched over HTTPS: rotation, unknown-kid refetch with a rate
//! limit, last good keys kept when the issuer fails, discovery, several issuers.

use std::time::Duration;

use serde_json::json;

use crate::common::jwks_server::{JwksServer, Serve};
use crate::common::*;

/// A gateway whose `[token]` fetches keys from `server`.
fn remote_spec(s: &Setup, jwks_line: String, extra: &[&str]) -> String {
    let mut text = s
        .render(&ConfigSpec::default())
        .replace(&format!("jwks = {:?}", s.jwks.display().to_string()), &jwks_line);
    text = text.replace(
        "[admin]",
        &format!(
            "jwks_ca = {:?}\n{}\n\n[admin]",
            s.pki.ca.cert_path.display().to_string(),
            extra.join("\n")
        ),
    );
    text
}

/// An HTTPS key server with a certificate from the test CA.
async fn jwks_server(s: &Setup, jwks: String) -> JwksServer {
    JwksServer::start(&s.pki.ca.server(s.path(), "jwks-server"), jwks).await
}

/// Starts a gateway whose `[token]` takes its keys from `source` (a `jwks =` or `discovery =` line).
async fn remote_gateway(s: &Setup, name: &str, source: String, extra: &[&str]) -> GatewayProcess {
    start_with(s, name, remote_spec(s, source, extra)).await
}

async fn start_with(s: &Setup, name: &str, text: String) -> GatewayProcess {
    let path = s.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    GatewayProcess::start(&path).await
}

/// A key server whose keys may be cached for 0 s (clamped to the 200 ms
/// minimum), and a gateway that therefore refreshes them constantly.
async fn constantly_refreshing(s: &Setup) -> (JwksServer, GatewayProcess) {
    let server = jwks_server(s, TestIssuer::jwks(&[&s.issuer])).await;
    server.set(Serve::Document {
        body: TestIssuer::jwks(&[&s.issuer]),
        cache_control: Some("max-age=0".into()),
    });
    let gw = remote_gateway(
        s,
        "remote",
        format!("jwks = {:?}", server.url()),
        &["jwks_refresh_min = \"200ms\""],
    )
    .await;
    (server, gw)
}

async fn status(s: &Setup, gw: &GatewayProcess, token: &str) -> (u16, String) {
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(token)))
        .await
        .unwrap();
    let reason = if reply.status == 200 {
        String::new()
    } else {
        reply.reason()
    };
    (reply.status.as_u16(), reason)
}

#[tokio::test]
async fn a_rotated_issuer_key_is_fetched_when_a_token_names_it() {
    let s = Setup::new().await;
    let server = jwks_server(&s, TestIssuer::jwks(&[&s.issuer])).await;
    let gw = remote_gateway(&s, "remote", format!("jwks = {:?}", server.url()), &[]).await;
    assert_eq!(status(&s, &gw, &s.token_a()).await.0, 200, "{}", gw.stderr());
    let fetched_at_start = server.fetches();
    assert_eq!(fetched_at_start, 1);

    let rotated = TestIssuer::new("k2");
    server.set_jwks(TestIssuer::jwks(&[&s.issuer, &rotated]));
    let token = rotated.token(&s.pki.client_a.x5t());
    assert_eq!(status(&s, &gw, &token).await, (200, String::new()), "{}", gw.stderr());
    assert_eq!(server.fetches(), fetched_at_start + 1);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_fetch_per_cooldown() {
    let s = Setup::new().await;
    let server = jwks_server(&s, TestIssuer::jwks(&[&s.issuer])).await;
    let gw = remote_gateway(&s, "remote", format!("jwks = {:?}", server.url()), &[]).await;
    let claims = s.issuer.claims(&s.pki.client_a.x5t());
    for i in 0..30 {
        let token = s
            .issuer
            .sign(&with(s.issuer.header(), "kid", json!(format!("random-{i}"))), &claims);
        assert_eq!(status(&s, &gw, &token).await, (401, "unknown_kid".to_string()));
    }
    // One fetch at start, at most one more for the whole flood (cooldown 10s).
    assert!(server.fetches() <= 2, "{} fetches", server.fetches());
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn the_last_good_keys_stay_when_the_issuer_fails_or_sends_garbage() {
    let s = Setup::new().await;
    let (server, gw) = constantly_refreshing(&s).await;
    let token = s.token_a();
    assert_eq!(status(&s, &gw, &token).await.0, 200);

    server.set(Serve::Status(503));
    let before = server.fetches();
    assert!(eventually(Duration::from_secs(10), async || server.fetches() >= before + 2).await);
    assert_eq!(
        status(&s, &gw, &token).await.0,
        200,
        "keys were dropped when the issuer failed"
    );

    server.set_jwks("{\"keys\": \"garbage\"}".into());
    let before = server.fetches();
    assert!(eventually(Duration::from_secs(10), async || server.fetches() >= before + 2).await);
    assert_eq!(status(&s, &gw, &token).await.0, 200, "keys were replaced by garbage");

    let admin = gw.admin.unwrap();
    let failures = async || {
        let metrics = admin_get(admin, "/metrics").await.1;
        metric(
            &metrics,
            &format!("bindgate_jwks_fetches_total{{issuer=\"{ISS}\",result=\"error\"}}"),
        )
        .unwrap_or(0.0)
    };
    let failed_before = failures().await;
    server.stop();
    // Until the gateway has tried the vanished issuer and failed.
    assert!(eventually(Duration::from_secs(10), async || failures().await > failed_before).await);
    assert_eq!(
        status(&s, &gw, &token).await.0,
        200,
        "keys were dropped when the issuer went away"
    );
    let (code, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    let failures = metric(
        &metrics,
        &format!("bindgate_jwks_fetches_total{{issuer=\"{ISS}\",result=\"error\"}}"),
    );
    assert!(failures.unwrap_or(0.0) >= 2.0, "{metrics}");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_is_withdrawn() {
    let s = Setup::new().await;
    let (server, gw) = constantly_refreshing(&s).await;
    let token = s.token_a();
    // Verified twice (the cache admits a token on its second verification), then a hit.
    for _ in 0..3 {
        assert_eq!(status(&s, &gw, &token).await.0, 200);
    }
    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(
        metric(&metrics, "bindgate_token_cache_hits_total"),
        Some(1.0),
        "{metrics}"
    );

    // The issuer withdraws the key (say, it leaked): the cached verification must not outlive it.
    let rotated = TestIssuer::new("k2");
    server.set(Serve::Document {
        body: TestIssuer::jwks(&[&rotated]),
        cache_control: Some("max-age=0".into()),
    });
    let refused = eventually(Duration::from_secs(10), async || {
        status(&s, &gw, &token).await == (401, "unknown_kid".to_string())
    })
    .await;
    assert!(
        refused,
        "a token signed by a withdrawn key is still accepted: {}",
        gw.stderr()
    );
    let forwarded = s.upstream.count();
    assert_eq!(status(&s, &gw, &token).await.0, 401);
    assert_eq!(s.upstream.count(), forwarded);
}

#[tokio::test]
async fn keys_are_found_through_discovery() {
    let s = Setup::new().await;
    let server = jwks_server(&s, TestIssuer::jwks(&[&s.issuer])).await;
    server.publish_metadata(ISS);
    let gw = remote_gateway(
        &s,
        "discovery",
        format!("discovery = {:?}", server.discovery_url()),
        &[],
    )
    .await;
    assert_eq!(status(&s, &gw, &s.token_a()).await.0, 200, "{}", gw.stderr());

    // Metadata for another issuer is refused: check fails with the key named.
    server.publish_metadata("https://someone-else.test");
    let path = s.path().join("wrong-issuer.toml");
    std::fs::write(
        &path,
        remote_spec(&s, format!("discovery = {:?}", server.discovery_url()), &[]),
    )
    .unwrap();
    let (code, _, stderr) = run_cli_async(&["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(code.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("token.jwks") && stderr.contains("someone-else"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_issuer_unreachable_at_start_leaves_the_gateway_unready_until_it_answers() {
    let s = Setup::new().await;
    let server = jwks_server(&s, TestIssuer::jwks(&[&s.issuer])).await;
    server.set(Serve::Status(500));
    let gw = remote_gateway(
        &s,
        "late",
        format!("jwks = {:?}", server.url()),
        &["jwks_refresh_min = \"200ms\""],
    )
    .await;
    let (code, body) = admin_get(gw.admin.unwrap(), "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("keys of issuer"), "{body}");
    let reply = s
        .client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(&s.token_a())))
        .await
        .unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason(), "keys_unavailable");

    server.set_jwks(TestIssuer::jwks(&[&s.issuer]));
    let admin = gw.admin.unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || admin_get(admin, "/readyz").await.0
            == 200)
        .await
    );
    assert_eq!(status(&s, &gw, &s.token_a()).await.0, 200);
}

#[tokio::test]
async fn several_issuers_are_trusted_each_with_its_own_audience_and_keys() {
    let s = Setup::new().await;
    let partner = TestIssuer::new("partner-key");
    let server = jwks_server(&s, TestIssuer::jwks(&[&partner])).await;
    let text = s.render(&ConfigSpec {
        tail: vec![format!(
            "[[issuer]]\nissuer = \"https://partner.test\"\naudience = \"https://partner-api.test\"\njwks = {:?}\njwks_ca = {:?}\n",
            server.url(),
            s.pki.ca.cert_path.display().to_string()
        )],
        ..Default::default()
    });
    let gw = start_with(&s, "two-issuers", text).await;
    let x5t = s.pki.client_a.x5t();
    let partner_claims = json!({
        "iss": "https://partner.test", "aud": "https://partner-api.test", "sub": "p",
        "exp": now() + 600, "cnf": { "x5t#S256": x5t },
    });
    assert_eq!(status(&s, &gw, &s.token_a()).await.0, 200);
    assert_eq!(
        status(&s, &gw, &partner.sign(&partner.header(), &partner_claims))
            .await
            .0,
        200
    );
    // The partner's key does not vouch for the first issuer's tokens, nor its audience.
    let forged = partner.sign(&partner.header(), &with(partner_claims.clone(), "iss", json!(ISS)));
    assert_eq!(status(&s, &gw, &forged).await, (401, "unknown_kid".to_string()));
    let wrong_aud = partner.sign(&partner.header(), &with(partner_claims, "aud", json!(AUD)));
    assert_eq!(status(&s, &gw, &wrong_aud).await, (401, "wrong_audience".to_string()));
    let stranger = s.issuer.sign(
        &s.issuer.header(),
        &with(s.issuer.claims(&x5t), "iss", json!("https://x.test")),
    );
    assert_eq!(status(&s, &gw, &stranger).await, (401, "wrong_issuer".to_string()));
}
