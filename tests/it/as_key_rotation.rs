//! Signing-key rotation by reload under steady load: clients keep asking
//! the token endpoint for tokens and calling the gateway with each, while
//! the key ring goes through every documented step; not one request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::common::*;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const RELOADED: &str = "bindgate_reloads_total{trigger=\"file_change\",result=\"ok\"}";
/// Load tasks, each a closed loop of token request then gateway call.
const CLIENTS: usize = 4;
/// A bound on each task's loop, whatever happens to the rotation.
const MAX_ROUNDS: u64 = 3_000;

fn spec(keys: &[&SigningKeyFile]) -> ConfigSpec {
    let paths: Vec<&std::path::Path> = keys.iter().map(|k| k.path.as_path()).collect();
    let client = format!(
        r#"
[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=client-a,O=bindgate tests"
grant_types = ["client_credentials"]
audience = [{AUD:?}]
"#
    );
    ConfigSpec {
        token_head: Some(vec![format!("issuer = {AS_ISSUER:?}"), format!("audience = [{AUD:?}]")]),
        tail: vec![as_table(&paths, &[&client])],
        ..ConfigSpec::default()
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    rounds: AtomicU64,
    failures: AtomicU64,
    /// The `kid`s of the tokens issued, in the order first seen.
    kids: std::sync::Mutex<Vec<String>>,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().unwrap().get_or_insert(what);
    }

    fn saw_kid(&self, token: &str) {
        let header = token.split('.').next().unwrap_or_default();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap_or_default()).unwrap_or_default();
        let kid = header["kid"].as_str().unwrap_or("-").to_string();
        let mut kids = self.kids.lock().unwrap();
        if !kids.contains(&kid) {
            kids.push(kid);
        }
    }
}

/// One client's closed loop until `stop`: a token, then a call with it.
async fn load(
    s: Arc<Setup>,
    as_addr: std::net::SocketAddr,
    gw_addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let client = s.client_a(Alpn::Http1);
    for _ in 0..MAX_ROUNDS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut req = request(
            Alpn::Http1,
            "POST",
            "/token",
            None,
            "grant_type=client_credentials&client_id=svc-a",
        );
        req.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let token = match client.send(as_addr, req).await {
            Ok(reply) if reply.status == 200 => reply.json()["access_token"].as_str().unwrap_or_default().to_string(),
            Ok(reply) => {
                tally.fail(format!("token endpoint: {} {:?}", reply.status, reply.body));
                continue;
            }
            Err(e) => {
                tally.fail(format!("token endpoint: {e}"));
                continue;
            }
        };
        tally.saw_kid(&token);
        match client.send(gw_addr, get(Alpn::Http1, "/", Some(&token))).await {
            Ok(reply) if reply.status == 200 => {}
            Ok(reply) => tally.fail(format!("gateway: {} {:?}", reply.status, reply.body)),
            Err(e) => tally.fail(format!("gateway: {e}")),
        }
        tally.rounds.fetch_add(1, Ordering::Relaxed);
    }
}

async fn reloads(gw: &GatewayProcess) -> f64 {
    let (_, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    metric(&text, RELOADED).unwrap_or(0.0)
}

/// Waits until the load has done `more` rounds beyond now.
async fn rounds_pass(tally: &Tally, more: u64) -> bool {
    let target = tally.rounds.load(Ordering::Relaxed) + more;
    eventually(Duration::from_secs(20), async || {
        tally.rounds.load(Ordering::Relaxed) >= target
    })
    .await
}

#[tokio::test]
async fn signing_keys_rotate_by_reload_under_load_with_no_failed_request() {
    let s = Arc::new(Setup::new().await);
    let (old, new) = (
        SigningKeyFile::ed25519(s.path(), "old-key"),
        SigningKeyFile::p256(s.path(), "new-key"),
    );
    let config = s.write_config("gateway", &spec(&[&old]));
    let gw = GatewayProcess::start(&config).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(load(
                s.clone(),
                gw.authorization_server.unwrap(),
                gw.addr,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    assert!(rounds_pass(&tally, 20).await, "no load: {}", gw.stderr());

    // The documented steps: add the new key second, move it first, and once
    // every token the old key signed has been used (here: a few rounds of
    // every client; in production, access_token_ttl), remove the old one.
    let steps: [&[&SigningKeyFile]; 3] = [&[&old, &new], &[&new, &old], &[&new]];
    for (done, keys) in steps.into_iter().enumerate() {
        write_atomically(&config, s.render(&spec(keys)));
        let step = (done + 1) as f64;
        let reloaded = eventually(RELOAD_TIMEOUT, async || reloads(&gw).await >= step).await;
        assert!(reloaded, "no reload {step}: {}", gw.stderr());
        assert!(
            rounds_pass(&tally, 5 * CLIENTS as u64).await,
            "the load stalled at step {step}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    assert_eq!(
        tally.failures.load(Ordering::Relaxed),
        0,
        "first failure: {:?} ({} rounds)",
        tally.first_failure.lock().unwrap(),
        tally.rounds.load(Ordering::Relaxed)
    );
    assert_eq!(
        *tally.kids.lock().unwrap(),
        [old.kid.clone(), new.kid.clone()],
        "tokens were signed by the old key, then by the new one"
    );
    let (_, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let issued = metric(
        &text,
        "bindgate_as_tokens_issued_total{grant=\"client_credentials\",binding=\"mtls\"}",
    );
    assert_eq!(issued, Some(tally.rounds.load(Ordering::Relaxed) as f64));
}
