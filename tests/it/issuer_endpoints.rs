//! The authorization server's listener and its public endpoints: RFC 8414
//! metadata and `/jwks` over real TLS, with and without a client
//! certificate; key rotation by reload; 404 and 405; its access lines and
//! metrics, apart from the gateway's.

use std::time::Duration;

use crate::common::*;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const METADATA: &str = "/.well-known/oauth-authorization-server";

/// Two clients, one per certificate-free and certificate method, and the
/// algorithms the metadata must repeat.
fn clients(s: &Setup) -> Vec<String> {
    vec![
        "assertion_algorithms = [\"ES256\", \"PS256\"]".to_string(),
        r#"
[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=client-a,O=bindgate tests"
grant_types = ["client_credentials"]
audience = ["https://api.example"]
"#
        .to_string(),
        format!(
            r#"
[[authorization_server.client]]
client_id = "app"
auth = "private_key_jwt"
jwks = {:?}
grant_types = ["client_credentials"]
audience = ["https://api.example"]
binding = ["dpop"]

[dpop]
algorithms = ["ES256", "EdDSA"]
"#,
            s.jwks.display().to_string()
        ),
    ]
}

fn spec_with(s: &Setup, keys: &[&SigningKeyFile]) -> ConfigSpec {
    let paths: Vec<&std::path::Path> = keys.iter().map(|k| k.path.as_path()).collect();
    let extra = clients(s);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    ConfigSpec {
        tail: vec![as_table(&paths, &extra)],
        ..ConfigSpec::default()
    }
}

fn as_addr(gw: &GatewayProcess) -> std::net::SocketAddr {
    gw.authorization_server
        .expect("the authorization server's listener was announced")
}

async fn fetch(client: &TlsClient, gw: &GatewayProcess, method: &str, path: &str) -> Reply {
    client
        .send(as_addr(gw), request(client.alpn(), method, path, None, ""))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", gw.stderr()))
}

async fn metric_value(gw: &GatewayProcess, sample: &str) -> f64 {
    let (_, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    metric(&text, sample).unwrap_or(0.0)
}

/// The `kid`s of `/jwks`, in order, after checking each key's `alg` and `use`.
fn kids(reply: &Reply, keys: &[&SigningKeyFile]) -> Vec<String> {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let jwks = reply.json();
    let published = jwks["keys"].as_array().unwrap();
    let mut kids = Vec::new();
    for jwk in published {
        let kid = jwk["kid"].as_str().unwrap().to_string();
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("unknown kid {kid} in {jwks}"));
        assert_eq!(jwk["alg"], key.alg, "{jwk}");
        assert_eq!(jwk["x"], key.x.as_str(), "{jwk}");
        assert_eq!(jwk["use"], "sig", "{jwk}");
        assert!(jwk.get("d").is_none(), "private key material published: {jwk}");
        kids.push(kid);
    }
    kids
}

#[tokio::test]
async fn metadata_is_served_over_tls_with_a_ca_certificate_a_self_signed_one_or_none() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let gw = s.start(&spec_with(&s, &[&key])).await;
    let self_signed = pki::self_signed_client(s.path(), "self-signed");
    let base = AS_ISSUER;

    for alpn in [Alpn::Http1, Alpn::H2] {
        for (who, cert) in [
            ("CA-issued", Some(&s.pki.client_a)),
            ("self-signed", Some(&self_signed)),
            ("no", None),
        ] {
            let reply = fetch(&s.client(cert, alpn), &gw, "GET", METADATA).await;
            assert_eq!(reply.status, 200, "{alpn:?}, {who} certificate: {:?}", reply.body);
            assert_eq!(reply.header("content-type").as_deref(), Some("application/json"));
            assert_eq!(reply.header("cache-control").as_deref(), Some("max-age=60"));
            let doc = reply.json();
            let expect = |field: &str, value: serde_json::Value| {
                assert_eq!(doc[field], value, "{alpn:?}, {who} certificate: {field} in {doc:#}");
            };
            expect("issuer", base.into());
            expect("token_endpoint", format!("{base}/token").into());
            expect("jwks_uri", format!("{base}/jwks").into());
            expect("introspection_endpoint", format!("{base}/introspect").into());
            expect("revocation_endpoint", format!("{base}/revoke").into());
            expect(
                "revocation_endpoint_auth_methods_supported",
                serde_json::json!(["tls_client_auth", "private_key_jwt"]),
            );
            expect("grant_types_supported", serde_json::json!(["client_credentials"]));
            expect(
                "token_endpoint_auth_methods_supported",
                serde_json::json!(["tls_client_auth", "private_key_jwt"]),
            );
            expect(
                "token_endpoint_auth_signing_alg_values_supported",
                serde_json::json!(["ES256", "PS256"]),
            );
            expect(
                "introspection_endpoint_auth_methods_supported",
                serde_json::json!(["tls_client_auth", "private_key_jwt"]),
            );
            expect("tls_client_certificate_bound_access_tokens", true.into());
            expect(
                "dpop_signing_alg_values_supported",
                serde_json::json!(["ES256", "EdDSA"]),
            );
            expect("response_types_supported", serde_json::json!([]));
            expect(
                "mtls_endpoint_aliases",
                serde_json::json!({
                    "token_endpoint": format!("{base}/token"),
                    "introspection_endpoint": format!("{base}/introspect"),
                    "revocation_endpoint": format!("{base}/revoke"),
                }),
            );
        }
    }
    // The gateway's listener still requires a CA-issued certificate.
    let refused = s
        .client(None, Alpn::Http1)
        .send(gw.addr, get(Alpn::Http1, "/", None))
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn jwks_lists_every_signing_key_signer_first_and_follows_the_order_across_reloads() {
    let s = Setup::new().await;
    let (old, new) = (
        SigningKeyFile::ed25519(s.path(), "old-key"),
        SigningKeyFile::p256(s.path(), "new-key"),
    );
    let config = s.write_config("gateway", &spec_with(&s, &[&old]));
    let gw = GatewayProcess::start(&config).await;
    let client = s.client(Some(&s.pki.client_a), Alpn::Http1);
    let reply = fetch(&client, &gw, "GET", "/jwks").await;
    assert_eq!(reply.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(reply.header("cache-control").as_deref(), Some("max-age=60"));
    assert_eq!(kids(&reply, &[&old, &new]), vec![old.kid.clone()]);

    // One client, one session cache: a resumption tells which TLS configuration served it.
    let resuming = s.client(None, Alpn::Http1);
    fetch(&resuming, &gw, "GET", "/jwks").await;
    assert!(fetch(&resuming, &gw, "GET", "/jwks").await.resumed);
    // Opened before the reloads: requests on them see each new ring too.
    let mut kept = Vec::new();
    for alpn in [Alpn::Http1, Alpn::H2] {
        kept.push((alpn, s.client(None, alpn).keep(as_addr(&gw)).await.unwrap()));
    }
    let reloaded = "bindgate_reloads_total{trigger=\"file_change\",result=\"ok\"}";
    for (step, order) in [(1.0, [&old, &new]), (2.0, [&new, &old])] {
        write_atomically(&config, s.render(&spec_with(&s, &order)));
        let done = eventually(RELOAD_TIMEOUT, async || metric_value(&gw, reloaded).await >= step).await;
        assert!(done, "no reload {step}: {}", gw.stderr());
        let expected: Vec<String> = order.iter().map(|k| k.kid.clone()).collect();
        for (alpn, conn) in &mut kept {
            let reply = conn.send(get(*alpn, "/jwks", None)).await.unwrap();
            assert_eq!(
                kids(&reply, &[&old, &new]),
                expected,
                "{alpn:?}, kept, after reload {step}"
            );
            let reply = fetch(&s.client(None, *alpn), &gw, "GET", "/jwks").await;
            assert_eq!(
                kids(&reply, &[&old, &new]),
                expected,
                "{alpn:?}, new, after reload {step}"
            );
        }
        // New connections get the new generation's TLS configuration, whose
        // session cache has never seen this client.
        assert!(
            !fetch(&resuming, &gw, "GET", "/jwks").await.resumed,
            "after reload {step}"
        );
        assert!(
            fetch(&resuming, &gw, "GET", "/jwks").await.resumed,
            "after reload {step}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_get_404_wrong_methods_405_with_allow_and_head_the_bare_head() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let gw = s.start(&spec_with(&s, &[&key])).await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let client = s.client(None, alpn);
        for path in ["/nowhere", "/jwks/", "/token/", "/.well-known/openid-configuration"] {
            let reply = fetch(&client, &gw, "GET", path).await;
            assert_eq!(reply.status, 404, "{alpn:?} {path}");
            assert_eq!(reply.json()["error"], "not_found", "{alpn:?} {path}");
            assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        }
        for (method, path) in [("POST", "/jwks"), ("DELETE", METADATA), ("PUT", "/jwks")] {
            let reply = fetch(&client, &gw, method, path).await;
            assert_eq!(reply.status, 405, "{alpn:?} {method} {path}");
            assert_eq!(reply.header("allow").as_deref(), Some("GET, HEAD"));
            assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
            assert_eq!(reply.json()["error"], "invalid_request");
        }
        for method in ["GET", "PUT", "DELETE"] {
            let reply = fetch(&client, &gw, method, "/token").await;
            assert_eq!(reply.status, 405, "{alpn:?} {method} /token");
            assert_eq!(reply.header("allow").as_deref(), Some("POST"));
            assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        }
        let full = fetch(&client, &gw, "GET", "/jwks").await;
        let head = fetch(&client, &gw, "HEAD", "/jwks").await;
        assert_eq!(head.status, 200, "{alpn:?}");
        assert!(head.body.is_empty(), "{alpn:?}: {:?}", head.body);
        assert_eq!(
            head.header("content-length"),
            Some(full.body.len().to_string()),
            "{alpn:?}"
        );
    }
}

#[tokio::test]
async fn each_as_request_gets_an_access_line_and_its_own_metric_not_the_gateways() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let gw = s.start(&spec_with(&s, &[&key])).await;
    let (_, before) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let client = s.client(Some(&s.pki.client_a), Alpn::Http1);
    assert_eq!(fetch(&client, &gw, "GET", "/jwks").await.status, 200);
    assert_eq!(
        fetch(&client, &gw, "GET", "/nowhere?access_token=secret").await.status,
        404
    );
    assert_eq!(fetch(&client, &gw, "POST", METADATA).await.status, 405);

    let line = |path: &str| {
        let needle = format!("path={path} ");
        gw.stderr()
            .lines()
            .find(|l| l.contains("bindgate::access") && l.contains(&needle))
            .map(str::to_string)
    };
    let logged = eventually(Duration::from_secs(5), async || {
        line("/jwks").is_some() && line("/nowhere").is_some() && line(METADATA).is_some()
    })
    .await;
    assert!(logged, "{}", gw.stderr());
    for (path, fields) in [
        ("/jwks", ["status=200 ", "reason=\"served\" ", "route=\"/jwks\" "]),
        ("/nowhere", ["status=404 ", "reason=\"not_found\" ", "route=\"-\" "]),
        (
            METADATA,
            [
                "status=405 ",
                "reason=\"method_not_allowed\" ",
                "route=\"/.well-known/oauth-authorization-server\" ",
            ],
        ),
    ] {
        let line = line(path).unwrap();
        for field in fields {
            assert!(line.contains(field), "no {field:?} in {line}");
        }
        assert!(line.contains(&format!("x5t=\"{}\" ", s.pki.client_a.x5t())), "{line}");
    }
    assert!(!gw.stderr().contains("secret"), "a query string reached the log");

    let (_, after) = admin_get(gw.admin.unwrap(), "/metrics").await;
    for sample in [
        "bindgate_as_requests_total{endpoint=\"/jwks\",status=\"200\"} 1",
        "bindgate_as_requests_total{endpoint=\"-\",status=\"404\"} 1",
        "bindgate_as_requests_total{endpoint=\"/.well-known/oauth-authorization-server\",status=\"405\"} 1",
    ] {
        assert!(after.lines().any(|l| l == sample), "no {sample} in\n{after}");
    }
    let gateway_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("bindgate_requests_total") || l.starts_with("bindgate_request_duration_seconds"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(gateway_lines(&before), gateway_lines(&after));
}

#[tokio::test]
async fn a_reload_that_adds_or_removes_the_authorization_server_is_refused() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let config = s.write_config("gateway", &spec_with(&s, &[&key]));
    let gw = GatewayProcess::start(&config).await;
    write_atomically(&config, s.render(&ConfigSpec::default()));
    let failed = "bindgate_reloads_total{trigger=\"file_change\",result=\"error\"}";
    let refused = eventually(RELOAD_TIMEOUT, async || metric_value(&gw, failed).await >= 1.0).await;
    assert!(refused, "{}", gw.stderr());
    assert!(
        gw.stderr().contains("key `authorization_server`: removed by a reload"),
        "{}",
        gw.stderr()
    );
    let reply = fetch(&s.client(None, Alpn::Http1), &gw, "GET", "/jwks").await;
    assert_eq!(kids(&reply, &[&key]), vec![key.kid.clone()]);

    let plain = s.write_config("plain", &ConfigSpec::default());
    let gw = GatewayProcess::start(&plain).await;
    assert!(gw.authorization_server.is_none());
    assert!(!gw.stderr().contains("authorization server"), "{}", gw.stderr());
    write_atomically(&plain, s.render(&spec_with(&s, &[&key])));
    let refused = eventually(RELOAD_TIMEOUT, async || metric_value(&gw, failed).await >= 1.0).await;
    assert!(refused, "{}", gw.stderr());
    assert!(
        gw.stderr().contains("key `authorization_server`: added by a reload"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test]
async fn a_bad_signing_key_file_stops_the_start_naming_the_key_and_the_file() {
    let s = Setup::new().await;
    let good = SigningKeyFile::ed25519(s.path(), "good-key");
    let bad = s.path().join("bad-key.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let missing = s.path().join("missing-key.pem");
    for (index, path) in [(1, &bad), (1, &missing)] {
        let mut spec = spec_with(&s, &[&good]);
        spec.tail = vec![as_table(&[&good.path, path], &[])];
        let config = s.write_config("bad", &spec);
        let config = config.to_str().unwrap();
        for command in ["run", "check"] {
            let (status, _, stderr) = run_cli_async(&[command, "--config", config]).await;
            assert_eq!(status.code(), Some(64), "{command}: {stderr}");
            let key = format!(
                "key `authorization_server.signing_keys[{index}]` names {}",
                path.display()
            );
            assert!(stderr.contains(&key), "{command}: {stderr}");
        }
    }
}

#[tokio::test]
async fn check_prints_the_authorization_server_its_keys_and_its_clients() {
    let s = Setup::new().await;
    let (signer, next) = (
        SigningKeyFile::ed25519(s.path(), "signer"),
        SigningKeyFile::p256(s.path(), "next"),
    );
    let config = s.write_config("gateway", &spec_with(&s, &[&signer, &next]));
    let (status, stdout, stderr) = run_cli_async(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(status.success(), "{stderr}");
    for expected in [
        format!("  authorization server {AS_ISSUER}\n"),
        "    listen     127.0.0.1:0\n".to_string(),
        format!("    key        EdDSA kid {} (signs)\n", signer.kid),
        format!("    key        ES256 kid {} (published, not signing)\n", next.kid),
        "    client     svc-a (auth = \"tls_client_auth\", grant_types = [\"client_credentials\"], binding = [\"mtls\", \"dpop\"])\n".to_string(),
        "    client     app (auth = \"private_key_jwt\", grant_types = [\"client_credentials\"], binding = [\"dpop\"])\n".to_string(),
    ] {
        assert!(stdout.contains(&expected), "no {expected:?} in\n{stdout}");
    }
    let plain = s.write_config("plain", &ConfigSpec::default());
    let (status, stdout, _) = run_cli_async(&["check", "--config", plain.to_str().unwrap()]).await;
    assert!(status.success());
    assert!(!stdout.contains("authorization server"), "{stdout}");
}

#[tokio::test]
async fn sigterm_drains_the_authorization_server_listener_with_the_proxy() {
    let s = Setup::new().await;
    let key = SigningKeyFile::ed25519(s.path(), "as-key");
    let mut gw = s.start(&spec_with(&s, &[&key])).await;
    let mut kept = Vec::new();
    for alpn in [Alpn::Http1, Alpn::H2] {
        let mut conn = s.client(None, alpn).keep(as_addr(&gw)).await.unwrap();
        assert_eq!(conn.send(get(alpn, "/jwks", None)).await.unwrap().status, 200);
        kept.push((alpn, conn));
    }
    gw.signal("TERM");
    for (alpn, conn) in &mut kept {
        assert!(
            conn.closed_within(Duration::from_secs(10)).await,
            "{alpn:?}: idle connection left open"
        );
    }
    let status = gw.wait_exit(Duration::from_secs(15)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {}", gw.stderr());
    let after = s.client(None, Alpn::Http1).connect(as_addr(&gw)).await;
    assert!(after.is_err(), "still accepting after the drain");
}
