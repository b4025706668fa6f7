//! The command line: check, thumbprint, dev-certs, mint.

use crate::common::*;

#[tokio::test]
async fn check_accepts_a_valid_config_and_names_file_and_key_of_an_invalid_one() {
    let s = Setup::new().await;
    let good = s.write_config("good", &ConfigSpec::default());
    let (status, stdout, stderr) = run_cli(&["check", "--config", good.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains(ISS), "{stdout}");
    assert!(!stdout.contains("revocation"), "{stdout}");

    let fetching = s.write_config(
        "fetching",
        &ConfigSpec {
            server: vec!["crl_fetch = true".into(), "crl_expired = \"allow\"".into()],
            ..Default::default()
        },
    );
    let (status, stdout, stderr) = run_cli(&["check", "--config", fetching.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("revocation   0 CRL file(s), crl_fetch = true, crl_expired = \"allow\""),
        "{stdout}"
    );

    let typo = s.path().join("typo.toml");
    std::fs::write(
        &typo,
        s.render(&ConfigSpec::default())
            .replace("[upstream]\nurl", "[upstream]\nurll"),
    )
    .unwrap();
    let (status, _, stderr) = run_cli(&["check", "--config", typo.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(typo.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("urll"), "{stderr}");

    let missing = s.path().join("missing.toml");
    let text = s
        .render(&ConfigSpec::default())
        .replace(s.pki.server.cert.to_str().unwrap(), "/nonexistent/server.pem");
    std::fs::write(&missing, text).unwrap();
    let (status, _, stderr) = run_cli(&["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("server.cert") && stderr.contains("/nonexistent/server.pem"),
        "{stderr}"
    );

    // run refuses the same way, before binding anything.
    let (status, stdout, _) = run_cli(&["run", "--config", missing.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64));
    assert!(!stdout.contains("listening on"));
}

#[tokio::test]
async fn thumbprint_prints_the_rfc8705_value() {
    let s = Setup::new().await;
    let (status, stdout, stderr) = run_cli(&["thumbprint", s.pki.client_a.cert.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), s.pki.client_a.x5t());
}

#[tokio::test]
async fn minted_dev_tokens_work_for_their_certificate_only() {
    let s = Setup::new().await;
    let dev = s.path().join("dev");
    let (status, _, stderr) = run_cli(&["dev-certs", "--out", dev.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    // Refuses to overwrite without --force.
    let (status, _, _) = run_cli(&["dev-certs", "--out", dev.to_str().unwrap()]);
    assert!(!status.success());

    let (status, token, stderr) = run_cli(&[
        "mint",
        "--cert",
        dev.join("client-a.pem").to_str().unwrap(),
        "--key",
        dev.join("issuer-key.pem").to_str().unwrap(),
        "--iss",
        ISS,
        "--aud",
        AUD,
    ]);
    assert!(status.success(), "{stderr}");
    let token = token.trim().to_string();

    let config = s.path().join("dev.toml");
    let d = |name: &str| format!("{:?}", dev.join(name).display().to_string());
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ncert = {}\nkey = {}\nclient_ca = {}\n\
             [upstream]\nurl = {:?}\n[token]\nissuer = {ISS:?}\naudience = {AUD:?}\njwks = {}\n",
            d("server.pem"),
            d("server-key.pem"),
            d("ca.pem"),
            s.upstream.url(),
            d("jwks.json"),
        ),
    )
    .unwrap();
    let gw = GatewayProcess::start(&config).await;
    let files = |name: &str| CertFiles {
        cert: dev.join(format!("{name}.pem")),
        key: dev.join(format!("{name}-key.pem")),
        leaf_der: Vec::new(),
    };
    let ca = dev.join("ca.pem");
    let a = TlsClient::new(&ca, Some(&files("client-a")), Alpn::Http1);
    let b = TlsClient::new(&ca, Some(&files("client-b")), Alpn::Http1);
    assert_eq!(
        a.send(gw.addr, get(Alpn::Http1, "/", Some(&token)))
            .await
            .unwrap()
            .status,
        200
    );
    let reply = b.send(gw.addr, get(Alpn::Http1, "/", Some(&token))).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "cnf_mismatch");
    assert_eq!(s.upstream.count(), 1);
}

#[test]
fn the_shipped_configuration_checks_out() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let (status, stdout, stderr) = run_cli(&["check", "--config", &format!("{manifest}/gateway.toml")]);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("127.0.0.1:8443 (client_auth = \"optional\")"),
        "{stdout}"
    );
    // In the configuration's own words, not the gateway's type names.
    assert!(
        stdout.contains(r#"(auth = "bound", binding = { mode = "enforce", methods = ["mtls", "dpop"] })"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"iat_window = "1m", leeway = "5s""#), "{stdout}");
    for internal in ["Bound", "Enforce", "Required"] {
        assert!(!stdout.contains(internal), "{internal} in {stdout}");
    }
}

#[tokio::test]
async fn check_names_the_crl_file_that_cannot_be_parsed_and_what_is_wrong() {
    let s = Setup::new().await;
    let good = s.pki.ca.crl(s.path(), "ca", &[]);
    let not_a_crl = s.path().join("not-a-crl.pem");
    // Valid PEM and base64, but the DER inside is a bare INTEGER, not a CRL.
    std::fs::write(&not_a_crl, "-----BEGIN X509 CRL-----\nAgEB\n-----END X509 CRL-----\n").unwrap();
    let truncated = s.path().join("truncated.crl");
    let der = std::fs::read_to_string(&good).unwrap();
    let der: String = der.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(der).unwrap();
    std::fs::write(&truncated, &der[..der.len() / 2]).unwrap();

    for (broken, wrong) in [(&not_a_crl, "not a CRL structure"), (&truncated, "truncated")] {
        let spec = ConfigSpec {
            server: vec![format!(
                "crl = [{:?}, {:?}]",
                good.display().to_string(),
                broken.display().to_string()
            )],
            ..Default::default()
        };
        let config = s.write_config("crl", &spec);
        let (status, _, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
        assert_eq!(status.code(), Some(64), "{stderr}");
        assert!(stderr.contains("server.crl"), "{stderr}");
        assert!(
            stderr.contains(broken.to_str().unwrap()),
            "the broken file is not named: {stderr}"
        );
        assert!(
            !stderr.contains(good.to_str().unwrap()),
            "the good file is blamed: {stderr}"
        );
        assert!(stderr.contains("not a valid X.509 CRL"), "{stderr}");
        assert!(stderr.contains(wrong), "{stderr}");
    }
}

#[tokio::test]
async fn check_refuses_a_claim_header_the_gateway_sets_itself_naming_file_and_key() {
    let s = Setup::new().await;
    let spec = ConfigSpec {
        tail: vec!["[forward]\nclaim_headers = { \"x-forwarded-client-cert\" = \"sub\" }\n".into()],
        ..Default::default()
    };
    let config = s.write_config("reserved", &spec);
    let (status, _, stderr) = run_cli_async(&["check", "--config", config.to_str().unwrap()]).await;
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains("key `forward.claim_headers`: \"x-forwarded-client-cert\" is set by the gateway itself"),
        "{stderr}"
    );
}

/// The demo on the shipped configuration and freshly written dev material,
/// on free ports: every scene of the loop, from the token endpoint to the
/// gateway's verdict, shows what it should (the demo exits non-zero when a
/// scene does not).
#[test]
fn the_demo_runs_the_whole_loop_on_the_shipped_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let (status, _, stderr) = run_cli(&["dev-certs", "--out", certs.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let config = dir.path().join("gateway.toml");
    let on_free_ports = shipped
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:8444", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0");
    assert_ne!(on_free_ports, shipped, "the shipped listeners moved; update this test");
    std::fs::write(&config, on_free_ports).unwrap();

    let (status, stdout, stderr) = run_cli(&[
        "demo",
        "--config",
        config.to_str().unwrap(),
        "--certs",
        certs.to_str().unwrap(),
        "--once",
    ]);
    assert!(status.success(), "{stdout}\n{stderr}");
    for scene in [
        "1. client-a asks the token endpoint",
        "2. client-a calls the gateway",
        "3. client-b replays",
        "5. an app, with no certificate, asks for a token without a DPoP proof",
        "6. the app asks again",
        "8. someone replays that request",
        "9. the mobile app signs alice in",
        "13. a thief who copied the app's first refresh token replays it",
        "15. the app's current refresh token",
    ] {
        assert!(stdout.contains(scene), "{scene:?} missing:\n{stdout}");
    }
    // The family scenes: exchange, call, two rotations, then the thief's
    // replay revokes everything the app holds.
    assert_eq!(stdout.matches("the refresh token changed").count(), 2, "{stdout}");
    assert!(stdout.contains("\"reason\":\"token_revoked\""), "{stdout}");
    assert_eq!(stdout.matches("\"error\":\"invalid_grant\"").count(), 2, "{stdout}");
    assert!(
        config.with_file_name("as.db").exists(),
        "the store is beside the config file"
    );
    assert!(stdout.contains("token_type \"Bearer\""), "{stdout}");
    assert!(stdout.contains("token_type \"DPoP\""), "{stdout}");
    assert!(stdout.contains("cnf: {\"x5t#S256\":"), "{stdout}");
    assert!(stdout.contains("cnf: {\"jkt\":"), "{stdout}");
    assert_eq!(stdout.matches("-> 200 OK").count(), 8, "{stdout}");
    assert!(stdout.contains("cnf_mismatch"), "{stdout}");
    assert!(stdout.contains("dpop_replayed"), "{stdout}");
}

#[tokio::test]
async fn check_reads_each_subject_issuers_jwks_file_naming_file_and_key() {
    use crate::common::token_request::{as_table_at, write_jwks};
    let s = Setup::new().await;
    let signer = SigningKeyFile::ed25519(s.path(), "as-signer");
    let idp = SigningKeyFile::ed25519(s.path(), "idp");
    let idp_jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": idp.x, "kid": idp.kid });
    let good = write_jwks(s.path(), "idp.jwks.json", &[idp_jwk]);
    let missing = s.path().join("missing.jwks.json");
    let check = |jwks: &std::path::Path| {
        let subject_issuer = format!(
            "[[authorization_server.subject_issuer]]\nissuer = \"https://login.example\"\njwks = {:?}\naudience = [\"app\"]\n",
            jwks.display().to_string()
        );
        let spec = ConfigSpec {
            tail: vec![
                as_table_at(AS_ISSUER, "127.0.0.1:0", &[&signer], &[], &[]),
                subject_issuer,
            ],
            ..ConfigSpec::default()
        };
        let config = s.write_config("subject-issuer", &spec);
        run_cli(&["check", "--config", config.to_str().unwrap()])
    };
    let (status, _, stderr) = check(&good);
    assert!(status.success(), "{stderr}");
    let (status, _, stderr) = check(&missing);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("key `authorization_server.subject_issuer[0].jwks`"),
        "{stderr}"
    );
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}
