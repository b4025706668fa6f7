//! `[[authorization_server.subject_issuer]]`: the parsed settings, each rule's
//! refusal naming the file and the dotted key, and the token exchange grant
//! that needs one.

use std::path::{Path, PathBuf};

use super::super::tests::{FILE, TABLE, edit, parse, refused_key, settings, with_client};
use super::*;
use crate::config::ConfigError;

const SUBJECT_ISSUER: &str = r#"
[[authorization_server.subject_issuer]]
issuer = "https://login.example"
jwks = "https://login.example/keys"
audience = ["mobile-app"]
"#;

/// `TABLE` plus one subject issuer: `SUBJECT_ISSUER` with `changes` applied.
fn with_subject_issuer(changes: &[&str]) -> String {
    format!("{TABLE}\n{}", edit(SUBJECT_ISSUER, changes))
}

fn base(path: &str) -> PathBuf {
    Path::new("/etc/bindgate").join(path)
}

#[test]
fn subject_issuers_parse_in_file_order_with_the_documented_defaults() {
    let text = format!(
        "{}{}",
        with_subject_issuer(&[]),
        edit(
            SUBJECT_ISSUER,
            &[
                "issuer = \"https://idp.example/tenant\"",
                "jwks = \"idp/keys.json\"",
                "audience = [\"app\", \"web\", \"app\"]",
                "algorithms = [\"RS256\", \"EdDSA\", \"RS256\"]",
            ],
        )
    );
    let url_with_ca = edit(
        SUBJECT_ISSUER,
        &["issuer = \"https://third.example\"", "jwks_ca = \"idp-ca.pem\""],
    );
    let settings = settings(&format!("{text}{url_with_ca}"));
    let expected = vec![
        SubjectIssuer {
            issuer: "https://login.example".into(),
            jwks: JwksSource::Url("https://login.example/keys".parse().unwrap()),
            jwks_remote: RemoteJwksSettings::defaults(None),
            audience: vec!["mobile-app".into()],
            algorithms: Algorithm::DEFAULT_ALLOWED.to_vec(),
        },
        SubjectIssuer {
            issuer: "https://idp.example/tenant".into(),
            jwks: JwksSource::File(base("idp/keys.json")),
            jwks_remote: RemoteJwksSettings::defaults(None),
            audience: vec!["app".into(), "web".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::EdDSA],
        },
        SubjectIssuer {
            issuer: "https://third.example".into(),
            jwks: JwksSource::Url("https://login.example/keys".parse().unwrap()),
            jwks_remote: RemoteJwksSettings::defaults(Some(base("idp-ca.pem"))),
            audience: vec!["mobile-app".into()],
            algorithms: Algorithm::DEFAULT_ALLOWED.to_vec(),
        },
    ];
    assert_eq!(settings.subject_issuers, expected);
}

#[test]
fn a_jwks_file_is_watched_once_and_a_url_is_not() {
    let file = edit(SUBJECT_ISSUER, &["jwks = \"certs/jwks.json\""]);
    let text = format!(
        "{}{}",
        with_subject_issuer(&["issuer = \"https://other.example\""]),
        file
    );
    let watched = parse(&text).unwrap().watched_files();
    let jwks = base("certs/jwks.json");
    assert_eq!(watched.iter().filter(|w| **w == jwks).count(), 1, "{watched:?}");
    assert!(!watched.iter().any(|w| w.to_string_lossy().contains("login.example")));
    let idp = with_subject_issuer(&["jwks = \"idp.jwks.json\""]);
    assert!(parse(&idp).unwrap().watched_files().contains(&base("idp.jwks.json")));
}

#[test]
fn each_subject_issuer_rule_is_refused_with_its_key_at_fault() {
    for (changes, key) in [
        (&["-issuer"][..], "issuer"),
        (&["issuer = \"\""], "issuer"),
        // The embedded issuer's own tokens are bound: exchanging one would re-bind it.
        (&["issuer = \"https://localhost:8444\""], "issuer"),
        (&["-jwks"], "jwks"),
        (&["jwks = \"http://login.example/keys\""], "jwks"),
        (&["jwks = \"https://\""], "jwks"),
        (&["jwks = \"keys.json\"", "jwks_ca = \"ca.pem\""], "jwks_ca"),
        (&["-audience"], "audience"),
        (&["audience = []"], "audience"),
        (&["audience = [\"mobile-app\", \"\"]"], "audience"),
        (&["algorithms = [\"HS256\"]"], "algorithms"),
        (&["algorithms = [\"none\"]"], "algorithms"),
        (&["algorithms = []"], "algorithms"),
    ] {
        let extra = with_subject_issuer(changes);
        assert_eq!(
            refused_key(&extra),
            format!("authorization_server.subject_issuer[0].{key}"),
            "{extra}"
        );
    }
}

#[test]
fn issuers_are_unique_and_the_repeat_is_named() {
    let other = edit(SUBJECT_ISSUER, &["issuer = \"https://other.example\""]);
    let repeat = edit(SUBJECT_ISSUER, &["jwks = \"keys.json\"", "audience = [\"web\"]"]);
    let text = format!("{}{other}{repeat}", with_subject_issuer(&[]));
    let message = parse(&text).unwrap_err().to_string();
    assert_eq!(refused_key(&text), "authorization_server.subject_issuer[2].issuer");
    assert!(
        message.contains("\"https://login.example\" is already subject_issuer[0]"),
        "{message}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    for typo in [
        "audiences = [\"a\"]",
        "discovery = \"https://login.example\"",
        "leeway = \"5s\"",
    ] {
        let extra = format!("{}{typo}\n", with_subject_issuer(&[]));
        let err = parse(&extra).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{message}");
        assert!(message.starts_with(FILE), "{message}");
        let name = typo.split(' ').next().unwrap_or_default();
        assert!(message.contains(&format!("unknown field `{name}`")), "{message}");
    }
}

#[test]
fn a_token_exchange_client_needs_a_subject_issuer() {
    const EXCHANGE: &str = "grant_types = [\"refresh_token\", \"urn:ietf:params:oauth:grant-type:token-exchange\"]";
    let first = edit(
        &with_client(&[]),
        &["client_id = \"svc-b\"", "tls_client_auth_subject_dn = \"CN=svc-b\""],
    );
    let exchanging = format!("{first}\n{}", edit(super::super::tests::TLS_CLIENT, &[EXCHANGE]));
    let message = parse(&exchanging).unwrap_err().to_string();
    assert_eq!(refused_key(&exchanging), "authorization_server.client[1].grant_types");
    assert!(
        message.contains("needs at least one [[authorization_server.subject_issuer]]"),
        "{message}"
    );
    let configured = format!("{exchanging}\n{SUBJECT_ISSUER}");
    assert_eq!(settings(&configured).subject_issuers.len(), 1);
    // Without the grant, no subject issuer is needed.
    assert!(
        settings(&with_client(&["grant_types = [\"refresh_token\"]"]))
            .subject_issuers
            .is_empty()
    );
}
