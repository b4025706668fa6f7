//! The token endpoint with an OAuth client nobody here wrote: panva's
//! openid-client (v6), run by tests/interop/token-client.mjs, finds the
//! endpoints in bindgate's RFC 8414 metadata, authenticates with
//! `tls_client_auth` over mTLS or with `private_key_jwt`, gets a
//! `client_credentials` token (bound with its own DPoP key when asked, after
//! the `use_dpop_nonce` retry), and calls the gateway with it.
//!
//! A missing Node.js or package fails these tests (`scripts/test-deps.sh`
//! installs them); nothing is skipped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::interop::ensure_test_deps;
use crate::common::token_request::*;
use crate::common::*;

/// How long one run of the Node.js client may take: discovery, one or two
/// token requests, one call.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// A gateway whose authorization server listens on a port chosen up front,
/// so that its issuer (`https://localhost:<port>`) is where the client
/// really finds it: openid-client checks the metadata's `issuer` against
/// the URL it discovered it from.
struct World {
    s: Setup,
    gw: GatewayProcess,
    issuer: String,
    jwt_key: AssertionKey,
}

async fn world() -> World {
    let s = Setup::new().await;
    let dir = s.path();
    let port = free_port();
    let issuer = format!("https://localhost:{port}");
    let signer = SigningKeyFile::ed25519(dir, "as-signer");
    let jwt_key = AssertionKey::es256(dir, "es-1");
    let jwks = write_jwks(dir, "svc-jwt.jwks.json", &[jwt_key.jwk()]);
    let clients = [
        Client::tls_subject_dn("svc-tls", "CN=client-a,O=bindgate tests"),
        Client::private_key_jwt("svc-jwt", &jwks),
    ];
    let as_lines = ["dpop_require_nonce = true".to_string()];
    let spec = ConfigSpec {
        // A DPoP client has no certificate for the gateway either.
        server: vec!["client_auth = \"optional\"".into()],
        tail: vec![
            as_table_at(&issuer, &format!("127.0.0.1:{port}"), &[&signer], &as_lines, &clients),
            "[dpop]\n".to_string(),
            trust_the_issuer(dir, &issuer, &signer),
            "[[route]]\nprefix = \"/\"\nbinding = [\"mtls\", \"dpop\"]\n".to_string(),
        ],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    assert_eq!(gw.authorization_server.map(|a| a.port()), Some(port));
    World { s, gw, issuer, jwt_key }
}

impl World {
    /// The client's input with what every run shares, and `fields` on top.
    fn input(&self, fields: Value) -> Value {
        let mut input = json!({
            "issuer": self.issuer,
            "ca": self.s.pki.ca.cert_path,
            "cert": null, "key": null,
            "assertion_key": null, "assertion_alg": null,
            "dpop": false,
            "scope": "orders:read",
            "resource": API,
            "call": format!("https://localhost:{}/orders/7", self.gw.addr.port()),
        });
        for (name, value) in fields.as_object().unwrap() {
            input[name] = value.clone();
        }
        input
    }

    fn client_a(&self) -> Value {
        json!({ "cert": self.s.pki.client_a.cert, "key": self.s.pki.client_a.key })
    }

    async fn metrics(&self) -> String {
        metrics_text(&self.gw).await
    }
}

/// Asserts the client got a token of `token_type` and a 200 from the gateway; returns the token.
#[track_caller]
fn assert_token_and_call(out: &Value, token_type: &str) -> Value {
    assert!(out.get("error").is_none(), "the token endpoint refused: {out:#}");
    let token = &out["token"];
    // openid-client lowercases token_type.
    assert_eq!(token["token_type"], token_type, "{out:#}");
    assert_eq!(token["scope"], "orders:read", "{out:#}");
    assert!(token["expires_in"].as_u64().is_some_and(|n| n > 0), "{out:#}");
    assert_eq!(out["call"]["status"], 200, "the gateway refused the token: {out:#}");
    let (_, claims) = decode_jwt(token["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API, "{claims}");
    claims
}

#[tokio::test]
async fn openid_client_gets_a_certificate_bound_token_with_tls_client_auth_and_calls_the_gateway() {
    let w = world().await;
    let input = w.input(json!({ "client_id": "svc-tls", "auth": "tls_client_auth" }));
    let input = merge(input, w.client_a());
    let out = run_token_client(&input).await;
    let claims = assert_token_and_call(&out, "bearer");
    assert_eq!(claims["client_id"], "svc-tls");
    assert_eq!(claims["cnf"], json!({ "x5t#S256": w.s.pki.client_a.x5t() }));
    let seen = w.s.upstream.only();
    assert_eq!(seen.target, "/orders/7");
    assert_eq!(
        seen.one("authorization"),
        Some(format!("Bearer {}", out["token"]["access_token"].as_str().unwrap()))
    );
    let metrics = w.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "bindgate_as_tokens_issued_total{grant=\"client_credentials\",binding=\"mtls\"}"
        ),
        1.0,
        "{metrics}"
    );
    // Discovery went to the RFC 8414 document.
    assert_eq!(
        sample(
            &metrics,
            "bindgate_as_requests_total{endpoint=\"/.well-known/oauth-authorization-server\",status=\"200\"}"
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn openid_client_authenticates_with_private_key_jwt_bound_to_its_certificate() {
    let w = world().await;
    let input = w.input(json!({
        "client_id": "svc-jwt",
        "auth": "private_key_jwt",
        "assertion_key": w.jwt_key.pem_path,
        "assertion_alg": "ES256",
    }));
    let out = run_token_client(&merge(input, w.client_a())).await;
    let claims = assert_token_and_call(&out, "bearer");
    assert_eq!(claims["client_id"], "svc-jwt");
    assert_eq!(claims["cnf"], json!({ "x5t#S256": w.s.pki.client_a.x5t() }));
    assert_eq!(w.s.upstream.count(), 1);
    let metrics = w.metrics().await;
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn openid_client_with_dpop_retries_on_use_dpop_nonce_and_calls_the_gateway_with_proofs() {
    let w = world().await;
    let input = w.input(json!({
        "client_id": "svc-jwt",
        "auth": "private_key_jwt",
        "assertion_key": w.jwt_key.pem_path,
        "assertion_alg": "ES256",
        "dpop": true,
    }));
    let out = run_token_client(&input).await;
    let claims = assert_token_and_call(&out, "dpop");
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    assert!(claims["cnf"].get("x5t#S256").is_none(), "{claims}");
    let seen = w.s.upstream.only();
    let token = out["token"]["access_token"].as_str().unwrap();
    assert_eq!(seen.one("authorization"), Some(format!("DPoP {token}")));
    assert!(seen.one("dpop").is_some(), "the gateway forwards the proof it checked");

    // The first request was told to use a nonce, the retry got the token.
    let lines = token_access_lines(&w.gw);
    let outcomes: Vec<(Option<String>, Option<String>)> =
        lines.iter().map(|l| (field(l, "status"), field(l, "reason"))).collect();
    assert_eq!(
        outcomes,
        [
            (Some("400".into()), Some("use_dpop_nonce".into())),
            (Some("200".into()), Some("served".into()))
        ],
        "{lines:#?}"
    );
    let metrics = w.metrics().await;
    assert_eq!(
        sample(&metrics, "bindgate_as_token_errors_total{error=\"use_dpop_nonce\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "bindgate_as_tokens_issued_total{grant=\"client_credentials\",binding=\"dpop\"}"
        ),
        1.0,
        "{metrics}"
    );
}

/// openid-client signs with an Ed25519 key under RFC 9864's name, `alg:
/// "Ed25519"`, which bindgate takes for `EdDSA` at the token endpoint and at
/// the gateway alike.
#[tokio::test]
async fn openid_client_binds_with_an_ed25519_dpop_key_named_by_rfc_9864() {
    let w = world().await;
    let input = w.input(json!({
        "client_id": "svc-tls",
        "auth": "tls_client_auth",
        "cert": w.s.pki.client_a.cert,
        "key": w.s.pki.client_a.key,
        "dpop": true,
        "dpop_alg": "Ed25519",
    }));
    let out = run_token_client(&input).await;
    let claims = assert_token_and_call(&out, "dpop");
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    let seen = w.s.upstream.only();
    let proof = seen.one("dpop").expect("the gateway forwards the proof it checked");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            proof.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "Ed25519", "{header}");
    assert_eq!(header["jwk"]["crv"], "Ed25519", "{header}");
}

#[tokio::test]
async fn openid_client_reads_an_oauth_error_of_the_token_endpoint() {
    let w = world().await;
    let input = w.input(json!({ "client_id": "svc-tls", "auth": "tls_client_auth", "scope": "admin", "call": null }));
    let out = run_token_client(&merge(input, w.client_a())).await;
    assert_eq!(out["error"], "invalid_scope", "{out:#}");
    assert_eq!(out["status"], 400, "{out:#}");
    // Without a certificate, tls_client_auth is refused as invalid_client.
    let input = w.input(json!({ "client_id": "svc-tls", "auth": "tls_client_auth", "call": null }));
    let out = run_token_client(&input).await;
    assert_eq!(out["error"], "invalid_client", "{out:#}");
    assert_eq!(out["status"], 401, "{out:#}");
    assert_eq!(w.s.upstream.count(), 0);
}

fn merge(mut base: Value, more: Value) -> Value {
    for (name, value) in more.as_object().unwrap() {
        base[name] = value.clone();
    }
    base
}

async fn run_token_client(input: &Value) -> Value {
    run_node_client("token-client.mjs", input).await
}

/// Runs `node tests/interop/<script> <input>` off the async runtime (the
/// recording upstream must keep answering) and returns its output.
pub async fn run_node_client(script: &str, input: &Value) -> Value {
    ensure_test_deps();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let child = Command::new("node")
        .arg(dir.join(script))
        .arg(input.to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn node for {}: {e}", dir.display()));
    let pid = child.id();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = match tokio::time::timeout(NODE_TIMEOUT, output).await {
        Ok(joined) => joined.unwrap().unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{script} gave no answer within {NODE_TIMEOUT:?}; input {input}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}); input {input}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n--- stderr\n{stderr}"))
}

/// A loopback port nothing listens on now, for a listener the test must name up front.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
