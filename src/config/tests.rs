//! Tests of configuration parsing and validation across sections.

use super::*;

const MINIMAL: &str = MINIMAL_FOR_TESTS;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/bindgate/gateway.toml"))
}

#[test]
fn minimal_config_gets_safe_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.server.client_auth, ClientAuth::Required);
    assert_eq!(config.server.cert, Path::new("/etc/bindgate/certs/server.pem"));
    assert_eq!(config.issuers[0].leeway, Duration::from_secs(30));
    assert_eq!(config.issuers[0].algorithms, crate::jose::Algorithm::DEFAULT_ALLOWED);
    assert_eq!(config.issuers[0].typ, TypPolicy::Lenient);
    assert!(!config.forward.strip_authorization);
    assert_eq!(config.forward.claim_headers[0].0.as_str(), "x-auth-subject");
    assert!(config.admin.is_none());
}

#[test]
fn unknown_key_is_an_error_naming_file_and_key() {
    let text = MINIMAL.replace("listen = \"127.0.0.1:8443\"", "lisen = \"127.0.0.1:8443\"");
    let message = parse(&text).unwrap_err().to_string();
    assert!(message.starts_with("/etc/bindgate/gateway.toml:"), "{message}");
    assert!(message.contains("lisen"), "{message}");
}

#[test]
fn hmac_and_none_are_refused_in_the_allow_list() {
    for alg in ["HS256", "none"] {
        let text = MINIMAL.replace(
            "jwks = \"certs/jwks.json\"",
            &format!("jwks = \"certs/jwks.json\"\nalgorithms = [\"ES256\", \"{alg}\"]"),
        );
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::InvalidValue { key, .. } if key == "token.algorithms"
            ),
            "{alg}: {err}"
        );
    }
}

#[test]
fn client_ca_may_be_omitted_only_in_any_mode() {
    let without_ca = MINIMAL.replace("client_ca = \"certs/ca.pem\"", "");
    assert!(matches!(
        parse(&without_ca).unwrap_err(),
        ConfigError::InvalidValue { key, .. } if key == "server.client_ca"
    ));
    let any = without_ca.replace("[upstream]", "client_auth = \"any\"\n[upstream]");
    assert_eq!(parse(&any).unwrap().server.client_auth, ClientAuth::Any);
}

#[test]
fn durations_need_a_unit() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn durations_are_bounded_and_never_overflow() {
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 24 * 3600)));
    assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
    for text in [
        "367d",
        "8785h",
        "18446744073709551615s",
        "18446744073709551615d",
        "99999999999999999999s",
    ] {
        let err = parse_duration(text).unwrap_err();
        assert!(err.contains(text), "{err}");
    }
    let text = MINIMAL.to_string() + "\n[limits]\nidle_timeout = \"9999999999h\"\n";
    let message = parse(&text).unwrap_err().to_string();
    assert!(message.contains("limits.idle_timeout"), "{message}");
    assert!(
        message.contains("longer than the longest duration accepted, 366d"),
        "{message}"
    );
}

#[test]
fn durations_are_printed_in_the_largest_exact_unit() {
    for (millis, text) in [
        (250, "250ms"),
        (90_000, "90s"),
        (300_000, "5m"),
        (7_200_000, "2h"),
        (0, "0ms"),
    ] {
        assert_eq!(format_duration(Duration::from_millis(millis)), text);
        assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)));
    }
    assert_eq!(format_duration(MAX_DURATION), "366d");
}

#[test]
fn token_max_lifetime_is_optional_and_must_be_positive() {
    assert_eq!(parse(MINIMAL).unwrap().issuers[0].max_lifetime, None);
    let with = |value: &str| {
        MINIMAL.replace(
            "jwks = \"certs/jwks.json\"",
            &format!("jwks = \"certs/jwks.json\"\nmax_lifetime = {value:?}"),
        )
    };
    assert_eq!(
        parse(&with("1h")).unwrap().issuers[0].max_lifetime,
        Some(Duration::from_secs(3600))
    );
    for bad in ["0s", "forever"] {
        assert!(
            matches!(
                parse(&with(bad)).unwrap_err(),
                ConfigError::InvalidValue { key, .. } if key == "token.max_lifetime"
            ),
            "{bad}"
        );
    }
}

#[test]
fn headers_with_underscores_defaults_to_drop_and_names_its_key_when_wrong() {
    assert_eq!(
        parse(MINIMAL).unwrap().forward.headers_with_underscores,
        UnderscoreHeaders::Drop
    );
    for (text, mode) in [
        ("allow", UnderscoreHeaders::Allow),
        ("drop", UnderscoreHeaders::Drop),
        ("reject", UnderscoreHeaders::Reject),
    ] {
        let config = parse(&format!(
            "{MINIMAL}\n[forward]\nheaders_with_underscores = \"{text}\"\n"
        ))
        .unwrap();
        assert_eq!(config.forward.headers_with_underscores, mode);
    }
    let message = parse(&format!("{MINIMAL}\n[forward]\nheaders_with_underscores = \"strip\"\n"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("/etc/bindgate/gateway.toml:"), "{message}");
    assert!(message.contains("headers_with_underscores"), "{message}");
}

#[test]
fn max_token_request_bytes_defaults_to_64_kib_and_has_a_floor() {
    assert_eq!(parse(MINIMAL).unwrap().limits.max_token_request_bytes, 64 * 1024);
    let with = |n: usize| parse(&format!("{MINIMAL}\n[limits]\nmax_token_request_bytes = {n}\n"));
    assert_eq!(with(16384).unwrap().limits.max_token_request_bytes, 16384);
    assert!(matches!(
        with(1000).unwrap_err(),
        ConfigError::InvalidValue { key, .. } if key == "limits.max_token_request_bytes"
    ));
}

const AS_TABLE: &str = r#"
[authorization_server]
issuer = "https://localhost:8444"
listen = "127.0.0.1:8444"
signing_keys = ["certs/as-signing-key.pem"]
"#;

/// `MINIMAL` with its `[token]` naming `issuer` and no `jwks`.
fn token_of(issuer: &str) -> String {
    MINIMAL
        .replace("issuer = \"https://issuer.example\"", &format!("issuer = {issuer:?}"))
        .replace("jwks = \"certs/jwks.json\"", "")
}

fn refused(text: &str) -> (String, String) {
    match parse(text) {
        Err(ConfigError::InvalidValue { key, reason, .. }) => (key.to_string(), reason),
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

#[test]
fn the_embedded_issuer_needs_no_jwks_wherever_its_table_is_written() {
    let after = token_of("https://localhost:8444") + AS_TABLE;
    let before = token_of("https://localhost:8444").replace("[token]", &format!("{AS_TABLE}\n[token]"));
    for text in [after, before] {
        let config = parse(&text).unwrap();
        assert_eq!(config.issuers[0].keys, IssuerKeys::Embedded, "{text}");
        // Its keys are the signing keys, which a reload watches already.
        let signing_key = Path::new("/etc/bindgate/certs/as-signing-key.pem");
        assert!(config.watched_files().iter().any(|f| f == signing_key));
    }
    let second = format!(
        "{MINIMAL}\n[[issuer]]\nissuer = \"https://localhost:8444\"\naudience = \"https://api.example\"\n{AS_TABLE}"
    );
    let config = parse(&second).unwrap();
    assert!(matches!(config.issuers[0].keys, IssuerKeys::Jwks(JwksSource::File(_))));
    assert_eq!(config.issuers[1].keys, IssuerKeys::Embedded);
}

#[test]
fn the_embedded_issuer_may_still_name_jwks_or_discovery() {
    for (line, expected) in [
        (
            "jwks = \"https://localhost:8444/jwks\"",
            JwksSource::Url("https://localhost:8444/jwks".parse().unwrap()),
        ),
        (
            "discovery = \"https://localhost:8444/.well-known/oauth-authorization-server\"",
            JwksSource::Discovery(
                "https://localhost:8444/.well-known/oauth-authorization-server"
                    .parse()
                    .unwrap(),
            ),
        ),
    ] {
        let text = token_of("https://localhost:8444").replace(
            "audience = [\"https://api.example\"]",
            &format!("audience = [\"https://api.example\"]\n{line}"),
        ) + AS_TABLE;
        assert_eq!(parse(&text).unwrap().issuers[0].keys, IssuerKeys::Jwks(expected));
    }
}

#[test]
fn another_issuer_without_jwks_is_refused_naming_the_embedded_one() {
    let (key, reason) = refused(&token_of("https://localhost:8444"));
    assert_eq!(key, "token.jwks");
    assert_eq!(reason, "required (a file path or an https:// URL)");
    // Compared exactly, as a token's `iss` is: a trailing slash is another issuer.
    let (key, reason) = refused(&(token_of("https://localhost:8444/") + AS_TABLE));
    assert_eq!(key, "token.jwks");
    assert_eq!(
        reason,
        "required (a file path or an https:// URL); only the embedded authorization server's \
         issuer, \"https://localhost:8444\", needs none, and this one is \"https://localhost:8444/\""
    );
    let second = format!("{MINIMAL}\n[[issuer]]\nissuer = \"https://login.example\"\naudience = \"x\"\n{AS_TABLE}");
    assert_eq!(refused(&second).0, "issuer[0].jwks");
    let message = parse(&second).unwrap_err().to_string();
    assert!(
        message.starts_with("/etc/bindgate/gateway.toml: key `issuer[0].jwks`: "),
        "{message}"
    );
}

#[test]
fn fetch_knobs_are_refused_for_the_embedded_issuer() {
    for knob in [
        "jwks_ca = \"certs/ca.pem\"",
        "jwks_refresh = \"5m\"",
        "jwks_refresh_min = \"30s\"",
        "jwks_refresh_max = \"1h\"",
        "jwks_refetch_cooldown = \"10s\"",
        "jwks_timeout = \"5s\"",
    ] {
        let text = token_of("https://localhost:8444").replace(
            "audience = [\"https://api.example\"]",
            &format!("audience = [\"https://api.example\"]\n{knob}"),
        ) + AS_TABLE;
        let (key, reason) = refused(&text);
        let name = knob.split(' ').next().unwrap();
        assert_eq!(key, format!("token.{name}"));
        assert!(reason.contains("embedded authorization server"), "{reason}");
    }
}
