//! A public client's refresh-token family with an OAuth client nobody here
//! wrote: openid-client (tests/interop/family-client.mjs) exchanges an
//! identity provider's id_token for DPoP-bound tokens with
//! `genericGrantRequest`, refreshes twice with `refreshTokenGrant` and its
//! DPoP handle, calls the gateway, and then plays the thief: the first
//! refresh token replayed revokes the family, and the library sees its
//! current refresh token refused and its access token challenged.

use serde_json::{Value, json};

use crate::common::token_request::*;
use crate::common::*;
use crate::token_interop::{free_port, run_node_client};

const IDP: &str = "https://idp.interop.test";

#[tokio::test]
async fn openid_client_exchanges_refreshes_and_sees_a_replayed_refresh_token_revoke_its_family() {
    let s = Setup::new().await;
    let dir = s.path();
    let port = free_port();
    let issuer = format!("https://localhost:{port}");
    let signer = SigningKeyFile::ed25519(dir, "as-signer");
    let idp = SigningKeyFile::ed25519(dir, "idp");
    let idp_jwks = write_jwks(dir, "idp.jwks.json", &[signing_jwk(&idp)]);
    let mobile = Client::public("mobile")
        .grant_types("[\"urn:ietf:params:oauth:grant-type:token-exchange\", \"refresh_token\"]");
    let as_lines = [
        format!("store = {:?}", format!("sqlite:{}", dir.join("families.db").display())),
        // A replay long after the rotation, as a thief's would be: no grace.
        "refresh_grace = \"0s\"".to_string(),
        "dpop_require_nonce = true".to_string(),
    ];
    let subject_issuer = format!(
        "[[authorization_server.subject_issuer]]\nissuer = {IDP:?}\njwks = {:?}\naudience = [\"mobile\"]\n",
        idp_jwks.display().to_string()
    );
    let spec = ConfigSpec {
        server: vec!["client_auth = \"optional\"".into()],
        tail: vec![
            as_table_at(&issuer, &format!("127.0.0.1:{port}"), &[&signer], &as_lines, &[mobile]),
            subject_issuer,
            "[dpop]\n".to_string(),
            trust_the_issuer(dir, &issuer, &signer),
            "[[route]]\nprefix = \"/\"\nbinding = [\"dpop\"]\n".to_string(),
        ],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    let id_token = idp.sign(&json!({
        "iss": IDP, "aud": "mobile", "sub": "alice",
        "iat": now(), "exp": now() + 300,
    }));
    let input = json!({
        "issuer": issuer,
        "client_id": "mobile",
        "ca": s.pki.ca.cert_path,
        "subject_token": id_token,
        "call": format!("https://localhost:{}/orders/7", gw.addr.port()),
    });
    let out = run_node_client("family-client.mjs", &input).await;

    let exchange = &out["exchange"];
    assert_eq!(exchange["token_type"], "dpop", "{out:#}");
    assert_eq!(
        exchange["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token",
        "{out:#}"
    );
    let (_, claims) = decode_jwt(exchange["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice", "{claims}");
    let family = claims["sid"]
        .as_str()
        .expect("the exchange starts a family")
        .to_string();
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");

    let refresh_tokens: Vec<&str> = std::iter::once(exchange)
        .chain(out["refreshes"].as_array().unwrap())
        .map(|t| t["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(refresh_tokens.len(), 3, "{out:#}");
    assert!(
        refresh_tokens[0] != refresh_tokens[1] && refresh_tokens[1] != refresh_tokens[2],
        "every refresh rotates: {refresh_tokens:?}"
    );
    for refreshed in out["refreshes"].as_array().unwrap() {
        let (_, claims) = decode_jwt(refreshed["access_token"].as_str().unwrap());
        assert_eq!(
            (claims["sid"].as_str(), claims["sub"].as_str()),
            (Some(family.as_str()), Some("alice"))
        );
    }
    assert_eq!(out["call"]["status"], 200, "{out:#}");
    let seen = s.upstream.only();
    assert_eq!(seen.one("x-auth-subject").as_deref(), Some("alice"));

    assert_eq!(out["replay"]["error"], "invalid_grant", "{out:#}");
    assert_eq!(out["after_replay"]["refresh"]["error"], "invalid_grant", "{out:#}");
    let challenge = out["after_replay"]["call"]["www_authenticate"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(out["after_replay"]["call"]["status"], 401, "{out:#}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(s.upstream.count(), 1, "the revoked family's token reached the upstream");

    let metrics = metrics_text(&gw).await;
    for (row, value) in [
        ("bindgate_as_refresh_reuse_total", 1.0),
        ("bindgate_as_refresh_rotations_total", 2.0),
        ("bindgate_as_families_started_total", 1.0),
        ("bindgate_as_family_revocations_total{reason=\"reuse\"}", 1.0),
        (
            "bindgate_as_tokens_issued_total{grant=\"urn:ietf:params:oauth:grant-type:token-exchange\",binding=\"dpop\"}",
            1.0,
        ),
        (
            "bindgate_as_tokens_issued_total{grant=\"refresh_token\",binding=\"dpop\"}",
            2.0,
        ),
    ] {
        assert_eq!(sample(&metrics, row), value, "{row}\n{metrics}");
    }
    let reasons: Vec<Value> = token_access_lines(&gw)
        .iter()
        .filter_map(|line| field(line, "reason"))
        .map(Value::from)
        .collect();
    assert!(reasons.contains(&json!("refresh_token_reused")), "{reasons:?}");
    assert!(reasons.contains(&json!("family_revoked")), "{reasons:?}");
    assert!(
        !gw.stderr().contains(refresh_tokens[0]),
        "a refresh token reached the log"
    );
}
