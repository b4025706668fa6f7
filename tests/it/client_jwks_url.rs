//! A `private_key_jwt` client whose keys live at an https URL: fetched with
//! the gateway's own key store, trusted through `jwks_ca`, refetched when an
//! assertion names a key the cached set lacks.

use crate::common::jwks_server::JwksServer;
use crate::common::*;

/// The JWKS of Ed25519 assertion keys, as a client would publish it.
fn jwks(keys: &[&SigningKeyFile]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid, "alg": "EdDSA" }))
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// An assertion of client `app` for the test issuer, by `bindgate client-assertion`.
fn assertion(key: &SigningKeyFile) -> String {
    let (status, stdout, stderr) = run_cli(&[
        "client-assertion",
        "--key",
        key.path.to_str().unwrap(),
        "--client-id",
        "app",
        "--aud",
        AS_ISSUER,
    ]);
    assert!(status.success(), "{stderr}");
    stdout.trim().to_string()
}

async fn token_request(s: &Setup, gw: &GatewayProcess, assertion: &str) -> Reply {
    let body = format!(
        "grant_type=client_credentials&client_id=app\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={assertion}"
    );
    let mut req = request(Alpn::Http1, "POST", "/token", None, body);
    req.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    s.client(Some(&s.pki.client_a), Alpn::Http1)
        .send(gw.authorization_server.unwrap(), req)
        .await
        .unwrap()
}

#[tokio::test]
async fn client_keys_are_fetched_from_their_url_and_refetched_for_a_new_kid() {
    let s = Setup::new().await;
    let signing = SigningKeyFile::ed25519(s.path(), "as-key");
    let (first, second, unpublished) = (
        SigningKeyFile::ed25519(s.path(), "app-1"),
        SigningKeyFile::ed25519(s.path(), "app-2"),
        SigningKeyFile::ed25519(s.path(), "app-3"),
    );
    let server = JwksServer::start(&s.pki.ca.server(s.path(), "client-keys"), jwks(&[&first])).await;
    let client = format!(
        r#"assertion_algorithms = ["EdDSA"]

[[authorization_server.client]]
client_id = "app"
auth = "private_key_jwt"
jwks = {:?}
jwks_ca = {:?}
grant_types = ["client_credentials"]
audience = ["https://api.example"]
"#,
        server.url(),
        s.pki.ca.cert_path.display().to_string()
    );
    let spec = ConfigSpec {
        tail: vec![as_table(&[signing.path.as_path()], &[&client])],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    assert_eq!(server.fetches(), 1, "fetched once at start");

    let reply = token_request(&s, &gw, &assertion(&first)).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, gw.stderr());
    assert_eq!(reply.json()["token_type"], "Bearer");
    assert_eq!(server.fetches(), 1, "a known kid needs no fetch");

    // The client rotates: its new key is published, and the first assertion
    // naming it makes the authorization server look again.
    server.set_jwks(jwks(&[&first, &second]));
    let reply = token_request(&s, &gw, &assertion(&second)).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, gw.stderr());
    assert_eq!(server.fetches(), 2);

    // A key the client never published stays unknown, within the refetch cooldown without a fetch.
    let reply = token_request(&s, &gw, &assertion(&unpublished)).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert!(
        gw.stderr().contains("reason=\"assertion_unknown_kid\""),
        "{}",
        gw.stderr()
    );
    assert_eq!(server.fetches(), 2);
}
