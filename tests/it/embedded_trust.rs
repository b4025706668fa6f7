//! The gateway trusting the embedded authorization server: a `[token]`
//! naming only its issuer verifies against its key ring in-process, with
//! nothing fetched, and a key rotation by reload is in effect for the
//! gateway as soon as the reload is.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const RELOADED: &str = "bindgate_reloads_total{trigger=\"file_change\",result=\"ok\"}";

/// A `[token]` with the embedded issuer and an audience, nothing else, and
/// the authorization server with `keys`, the first signing.
fn spec(keys: &[&SigningKeyFile]) -> ConfigSpec {
    let paths: Vec<&std::path::Path> = keys.iter().map(|k| k.path.as_path()).collect();
    ConfigSpec {
        token_head: Some(vec![format!("issuer = {AS_ISSUER:?}"), format!("audience = [{AUD:?}]")]),
        tail: vec![as_table(&paths, &[])],
        ..ConfigSpec::default()
    }
}

/// What the authorization server puts in a token it issues to `svc-a`
/// bound to the certificate whose thumbprint is `x5t`.
fn claims(x5t: &str) -> Value {
    let now = now();
    json!({
        "iss": AS_ISSUER,
        "aud": AUD,
        "sub": "svc-a",
        "client_id": "svc-a",
        "iat": now,
        "exp": now + 300,
        "jti": format!("jti-{now}"),
        "scope": "orders:read",
        "cnf": { "x5t#S256": x5t },
    })
}

/// `key`'s token bound to client A.
fn token_a(s: &Setup, key: &SigningKeyFile) -> String {
    key.sign(&claims(&s.pki.client_a.x5t()))
}

/// Sends `token` from client A.
async fn send(s: &Setup, gw: &GatewayProcess, token: &str) -> Reply {
    s.client_a(Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", Some(token)))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.stderr()))
}

async fn assert_refused(s: &Setup, gw: &GatewayProcess, token: &str, reason: &str, when: &str) {
    let before = s.upstream.count();
    let reply = send(s, gw, token).await;
    assert_eq!(reply.status, 401, "{when}: {:?}", reply.body);
    assert_eq!(reply.reason(), reason, "{when}");
    assert_eq!(
        s.upstream.count(),
        before,
        "{when}: a refused token reached the upstream"
    );
}

async fn assert_accepted(s: &Setup, gw: &GatewayProcess, token: &str, when: &str) {
    let before = s.upstream.count();
    let reply = send(s, gw, token).await;
    assert_eq!(reply.status, 200, "{when}: {:?}\n{}", reply.body, gw.stderr());
    assert_eq!(s.upstream.count(), before + 1, "{when}: not forwarded");
}

async fn metric_value(gw: &GatewayProcess, sample: &str) -> f64 {
    let (_, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    metric(&text, sample).unwrap_or(0.0)
}

/// Rewrites `config` with `keys` and waits for the reload to be in service.
async fn rotate(s: &Setup, gw: &GatewayProcess, config: &std::path::Path, keys: &[&SigningKeyFile], step: f64) {
    write_atomically(config, s.render(&spec(keys)));
    let done = eventually(RELOAD_TIMEOUT, async || metric_value(gw, RELOADED).await >= step).await;
    assert!(done, "no reload {step}: {}", gw.stderr());
}

#[tokio::test]
async fn a_token_signed_by_the_authorization_servers_key_is_accepted_with_no_jwks_configured() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let gw = s.start(&spec(&[&key])).await;
    let (status, _) = admin_get(gw.admin.unwrap(), "/readyz").await;
    assert_eq!(status, 200, "the embedded issuer's keys are never awaited");

    let token = token_a(&s, &key);
    let reply = send(&s, &gw, &token).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, gw.stderr());
    let seen = s.upstream.only();
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("svc-a"));
    assert_eq!(seen.one("authorization"), Some(format!("Bearer {token}")));

    let stranger = SigningKeyFile::p256(s.path(), "stranger");
    assert_refused(&s, &gw, &token_a(&s, &stranger), "unknown_kid", "another key").await;
    // Another key claiming the ring key's kid: the signature is what counts.
    let impostor = SigningKeyFile {
        kid: key.kid.clone(),
        ..SigningKeyFile::ed25519(s.path(), "impostor")
    };
    assert_refused(
        &s,
        &gw,
        &token_a(&s, &impostor),
        "bad_signature",
        "the kid of the ring key",
    )
    .await;
    let for_b = key.sign(&claims(&s.pki.client_b.x5t()));
    assert_refused(&s, &gw, &for_b, "cnf_mismatch", "bound to client B, sent by client A").await;

    let (_, metrics) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert!(!metrics.contains("bindgate_jwks_fetches_total{"), "{metrics}");
    assert!(!gw.stderr().contains("fetched issuer keys"), "{}", gw.stderr());
}

#[tokio::test]
async fn a_rotation_by_reload_is_in_effect_for_the_gateway_when_the_reload_is() {
    let s = Setup::new().await;
    let (old, new) = (
        SigningKeyFile::ed25519(s.path(), "old-key"),
        SigningKeyFile::p256(s.path(), "new-key"),
    );
    let config = s.write_config("gateway", &spec(&[&old]));
    let gw = GatewayProcess::start(&config).await;
    let (by_old, by_new) = (token_a(&s, &old), token_a(&s, &new));
    assert_accepted(&s, &gw, &by_old, "before the rotation").await;
    assert_refused(&s, &gw, &by_new, "unknown_kid", "before the rotation").await;

    // Each check is one request right after the reload: no poll, no fetch to wait for.
    // Published but not signing: tokens by it already verify, as they must
    // before the authorization server starts signing with it.
    rotate(&s, &gw, &config, &[&old, &new], 1.0).await;
    assert_accepted(&s, &gw, &by_new, "new key published").await;
    assert_accepted(&s, &gw, &by_old, "new key published").await;

    rotate(&s, &gw, &config, &[&new, &old], 2.0).await;
    assert_accepted(&s, &gw, &by_new, "new key signing").await;
    assert_accepted(&s, &gw, &by_old, "old key still published").await;

    rotate(&s, &gw, &config, &[&new], 3.0).await;
    assert_accepted(&s, &gw, &by_new, "old key removed").await;
    assert_refused(&s, &gw, &by_old, "unknown_kid", "old key removed").await;
}

#[tokio::test]
async fn check_says_the_keys_come_from_the_embedded_authorization_server() {
    let s = Setup::new().await;
    let (signer, next) = (
        SigningKeyFile::ed25519(s.path(), "signer"),
        SigningKeyFile::p256(s.path(), "next"),
    );
    let config = s.write_config("gateway", &spec(&[&signer, &next]));
    let (status, stdout, stderr) = run_cli_async(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(status.success(), "{stderr}");
    let issuer = format!(
        "  issuer       {AS_ISSUER}\n    audience   {AUD}\n    keys       2 ({}, {})\n    keys from  the embedded authorization server, in-process\n",
        signer.kid, next.kid
    );
    assert!(stdout.contains(&issuer), "no {issuer:?} in\n{stdout}");
}

#[tokio::test]
async fn another_issuer_without_jwks_stops_the_start_naming_the_file_the_key_and_the_embedded_issuer() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let mut spec = spec(&[&key]);
    spec.token_head = Some(vec![
        "issuer = \"https://login.example\"".to_string(),
        format!("audience = [{AUD:?}]"),
    ]);
    let config = s.write_config("other-issuer", &spec);
    for command in ["check", "run"] {
        let (status, _, stderr) = run_cli_async(&[command, "--config", config.to_str().unwrap()]).await;
        assert_eq!(status.code(), Some(64), "{command}: {stderr}");
        let expected = format!(
            "{}: key `token.jwks`: required (a file path or an https:// URL); only the embedded \
             authorization server's issuer, {AS_ISSUER:?}, needs none, and this one is \"https://login.example\"",
            config.display()
        );
        assert!(stderr.contains(&expected), "{command}: no {expected:?} in\n{stderr}");
    }
}
