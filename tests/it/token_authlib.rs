//! A second OAuth client nobody here wrote: Python's Authlib
//! (tests/interop/authlib-client.py) reads bindgate's metadata and does
//! `client_credentials` with `tls_client_auth` and with `private_key_jwt`,
//! then calls the gateway with the certificate-bound token it got.
//! `scripts/test-deps.sh` installs it; if it cannot, the test fails.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::interop::ensure_test_deps;
use crate::common::*;

/// A loopback port free right now: the issuer URL must name the port the
/// client really reaches, since the client finds the endpoints from it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The public JWKS of a P-256 key file. (P-256 rather than Ed25519: the
/// Python `cryptography` package refuses the PKCS#8 v2 Ed25519 PEM rcgen writes.)
fn ec_jwks(key: &SigningKeyFile) -> String {
    use base64::Engine;
    let pair = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key.path).unwrap()).unwrap();
    let raw = pair.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "kid": key.kid, "alg": "ES256" });
    json!({ "keys": [jwk] }).to_string()
}

/// Runs the Authlib client with `input`; its one JSON line.
fn authlib(input: Value) -> Value {
    ensure_test_deps();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("tests/interop/.venv/bin/python"))
        .arg(root.join("tests/interop/authlib-client.py"))
        .arg(input.to_string())
        .output()
        .expect("the Authlib client's virtualenv, made by scripts/test-deps.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "authlib-client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn authlib_gets_certificate_bound_tokens_with_tls_client_auth_and_private_key_jwt() {
    let s = Setup::new().await;
    let port = free_port();
    let issuer = format!("https://localhost:{port}");
    let signing = SigningKeyFile::ed25519(s.path(), "as-key");
    let (app_key, stranger) = (
        SigningKeyFile::p256(s.path(), "app-key"),
        SigningKeyFile::p256(s.path(), "stranger"),
    );
    let app_jwks = s.path().join("app.jwks.json");
    std::fs::write(&app_jwks, ec_jwks(&app_key)).unwrap();
    let table = format!(
        r#"[authorization_server]
issuer = {issuer:?}
listen = "127.0.0.1:{port}"
signing_keys = [{:?}]
assertion_algorithms = ["ES256"]

[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=client-a,O=bindgate tests"
grant_types = ["client_credentials"]
scope = "orders:read orders:write"
audience = [{AUD:?}]

[[authorization_server.client]]
client_id = "app"
auth = "private_key_jwt"
jwks = {:?}
grant_types = ["client_credentials"]
audience = [{AUD:?}]
"#,
        signing.path.display().to_string(),
        app_jwks.display().to_string(),
    );
    let spec = ConfigSpec {
        token_head: Some(vec![format!("issuer = {issuer:?}"), format!("audience = [{AUD:?}]")]),
        tail: vec![table],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    let base = |cert: &CertFiles| {
        json!({
            "issuer": issuer,
            "ca": s.pki.ca.cert_path,
            "cert": cert.cert,
            "key": cert.key,
            "call": format!("https://localhost:{}/orders", gw.addr.port()),
        })
    };
    // Off the runtime: the client blocks while the gateway answers.
    let run = |input: Value| async move { tokio::task::spawn_blocking(move || authlib(input)).await.unwrap() };

    // tls_client_auth: the certificate authenticates and binds.
    let mut input = base(&s.pki.client_a);
    input["client_id"] = "svc-a".into();
    input["auth"] = "tls_client_auth".into();
    input["scope"] = "orders:read".into();
    let out = run(input).await;
    assert_eq!(out["token"]["token_type"], "Bearer", "{out}\n{}", gw.stderr());
    assert_eq!(out["token"]["scope"], "orders:read", "{out}");
    let claims = claims_of(out["token"]["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["x5t#S256"], s.pki.client_a.x5t());
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(out["call"]["status"], 200, "{out}\n{}", gw.stderr());

    // private_key_jwt over a connection with client B's certificate: the
    // assertion authenticates, the certificate binds.
    let mut input = base(&s.pki.client_b);
    input["client_id"] = "app".into();
    input["auth"] = "private_key_jwt".into();
    input["assertion_key"] = app_key.path.display().to_string().into();
    input["assertion_alg"] = "ES256".into();
    let out = run(input.clone()).await;
    assert_eq!(out["token"]["token_type"], "Bearer", "{out}\n{}", gw.stderr());
    let claims = claims_of(out["token"]["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["x5t#S256"], s.pki.client_b.x5t());
    assert_eq!(claims["client_id"], "app");
    assert_eq!(out["call"]["status"], 200, "{out}\n{}", gw.stderr());

    // An assertion signed by a key the client never registered.
    input["assertion_key"] = stranger.path.display().to_string().into();
    let out = run(input).await;
    assert_eq!(out["error"], "invalid_client", "{out}");
    assert_eq!(s.upstream.count(), 2, "only the two good calls reached the upstream");
}
