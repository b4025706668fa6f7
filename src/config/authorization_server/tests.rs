//! `[authorization_server]` and its clients: defaults, the full example, and
//! each rule's refusal naming the file and the dotted key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{BindingMethods, Config, DistinguishedName, JwksSource, MINIMAL_FOR_TESTS};

pub(super) const FILE: &str = "/etc/bindgate/gateway.toml";

pub(super) const TABLE: &str = r#"
[authorization_server]
issuer = "https://localhost:8444"
listen = "127.0.0.1:8444"
signing_keys = ["certs/as-signing-key.pem"]
"#;

pub(super) const TLS_CLIENT: &str = r#"
[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc-a,O=example"
grant_types = ["client_credentials"]
audience = ["https://api.example"]
"#;

pub(super) fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{MINIMAL_FOR_TESTS}\n{extra}"), Path::new(FILE))
}

pub(super) fn settings(extra: &str) -> AuthorizationServerSettings {
    parse(extra).unwrap().authorization_server.unwrap()
}

/// The key an invalid value is refused under, after checking the message
/// names the file and that key.
pub(super) fn refused_key(extra: &str) -> String {
    let err = parse(extra).expect_err(extra);
    let message = err.to_string();
    assert!(message.starts_with(FILE), "{message}");
    match err {
        ConfigError::InvalidValue { key, .. } => {
            assert!(message.contains(&format!("key `{key}`")), "{message}");
            key.to_string()
        }
        other => panic!("expected an invalid value for {extra}, got {other:?}"),
    }
}

/// `base` with `changes` applied: each `key = value` replaces that key's
/// line (or is added at the end), each `-key` removes it.
pub(super) fn edit(base: &str, changes: &[&str]) -> String {
    let key_of = |line: &str| {
        line.trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for change in changes {
        let key = key_of(change);
        lines.retain(|l| key_of(l) != key);
        if !change.starts_with('-') {
            lines.push(change.to_string());
        }
    }
    lines.join("\n") + "\n"
}

fn table_with(change: &str) -> String {
    edit(TABLE, &[change])
}

/// `TABLE` plus one client: `TLS_CLIENT` with `changes` applied.
pub(super) fn with_client(changes: &[&str]) -> String {
    format!("{TABLE}\n{}", edit(TLS_CLIENT, changes))
}

#[test]
fn configs_without_the_table_parse_exactly_as_before() {
    let config = parse("").unwrap();
    assert!(config.authorization_server.is_none());
    assert_eq!(config.limits.max_token_request_bytes, 64 * 1024);
    let watched: Vec<PathBuf> = [
        "gateway.toml",
        "certs/server.pem",
        "certs/server-key.pem",
        "certs/ca.pem",
        "certs/jwks.json",
    ]
    .iter()
    .map(|p| Path::new("/etc/bindgate").join(p))
    .collect();
    assert_eq!(config.watched_files(), watched);
}

#[test]
fn a_minimal_table_inherits_the_server_files_and_takes_the_documented_defaults() {
    let base = Path::new("/etc/bindgate");
    let expected = AuthorizationServerSettings {
        issuer: "https://localhost:8444".into(),
        listen: "127.0.0.1:8444".parse().unwrap(),
        cert: base.join("certs/server.pem"),
        key: base.join("certs/server-key.pem"),
        client_ca: Some(base.join("certs/ca.pem")),
        crls: vec![],
        signing_keys: vec![base.join("certs/as-signing-key.pem")],
        access_token_ttl: Duration::from_secs(300),
        store: StoreLocation::Sqlite(base.join("as.db")),
        refresh: RefreshSettings {
            absolute_lifetime: Duration::from_secs(30 * 86_400),
            idle_timeout: Duration::from_secs(14 * 86_400),
            grace: Duration::from_secs(60),
        },
        dpop_require_nonce: false,
        assertion_algorithms: Algorithm::DEFAULT_ALLOWED.to_vec(),
        clients: vec![],
        subject_issuers: vec![],
    };
    assert_eq!(settings(TABLE), expected);
    let crls = MINIMAL_FOR_TESTS.replace(
        "client_ca = \"certs/ca.pem\"",
        "client_ca = \"certs/ca.pem\"\ncrl = [\"ca.crl\"]",
    );
    let config = Config::parse(&format!("{crls}\n{TABLE}"), Path::new(FILE)).unwrap();
    assert_eq!(config.authorization_server.unwrap().crls, vec![base.join("ca.crl")]);
    // [server]'s revocation lists speak for [server]'s CA, not for another one.
    let own_ca = edit(TABLE, &["client_ca = \"as-ca.pem\""]);
    let config = Config::parse(&format!("{crls}\n{own_ca}"), Path::new(FILE)).unwrap();
    assert_eq!(config.authorization_server.unwrap().crls, Vec::<PathBuf>::new());
}

#[test]
fn a_full_example_parses_to_the_expected_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("clients")).unwrap();
    let jwks = dir.path().join("clients/svc-b.jwks.json");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/jwks.json"), &jwks).unwrap();
    let text = format!(
        r#"{MINIMAL_FOR_TESTS}
[limits]
max_token_request_bytes = 16384

[authorization_server]
issuer = "https://auth.example.com/tenant"
listen = "[::1]:9444"
cert = "as/cert.pem"
key = "/srv/as/key.pem"
client_ca = "as/clients-ca.pem"
crl = ["as/clients.crl"]
signing_keys = ["as/new.pem", "as/old.pem"]
access_token_ttl = "10m"
store = "postgresql://bindgate@db.internal:5432/as?sslmode=verify-full"
refresh_absolute_lifetime = "7d"
refresh_idle_timeout = "1d"
refresh_grace = "0s"
dpop_require_nonce = true
assertion_algorithms = ["ES256", "EdDSA", "ES256"]

[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc-a, O=Example"
grant_types = ["client_credentials", "refresh_token", "client_credentials"]
scope = "orders:read  orders:write orders:read"
audience = ["https://api.example", "https://api.example"]
binding = ["mtls"]
refresh_rotation = "always"

[[authorization_server.client]]
client_id = "svc-b"
auth = "self_signed_tls_client_auth"
jwks = "clients/svc-b.jwks.json"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "app"
auth = "private_key_jwt"
jwks = "https://app.example/jwks"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
audience = ["https://api.example"]
binding = ["dpop"]

[[authorization_server.client]]
client_id = "mobile app"
auth = "none"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token"]
scope = "profile"
audience = ["mobile"]

[[authorization_server.client]]
client_id = "edge"
auth = "tls_client_auth"
tls_client_auth_san_dns = "Edge.Example.ORG"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "spiffe-svc"
auth = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://example.org/ns/svc"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.subject_issuer]]
issuer = "https://login.example"
jwks = "https://login.example/keys"
audience = ["mobile", "mobile"]
"#
    );
    let config = Config::parse(&text, &dir.path().join("gateway.toml")).unwrap();
    let base = dir.path();
    assert_eq!(config.limits.max_token_request_bytes, 16384);
    let client = |client_id: &str, auth: ClientAuthMethod, grant_types: Vec<GrantType>| RegisteredClient {
        client_id: client_id.into(),
        auth,
        grant_types,
        scope: vec![],
        audience: vec!["https://api.example".into()],
        binding: BindingMethods { mtls: true, dpop: true },
        refresh_rotation: RefreshRotation::Never,
        family_lifetime: crate::config::FamilyLifetime {
            absolute: Duration::from_secs(7 * 86_400),
            idle: Duration::from_secs(86_400),
        },
        jwks_remote: crate::config::RemoteJwksSettings::defaults(None),
    };
    let expected = AuthorizationServerSettings {
        issuer: "https://auth.example.com/tenant".into(),
        listen: "[::1]:9444".parse().unwrap(),
        cert: base.join("as/cert.pem"),
        key: PathBuf::from("/srv/as/key.pem"),
        client_ca: Some(base.join("as/clients-ca.pem")),
        crls: vec![base.join("as/clients.crl")],
        signing_keys: vec![base.join("as/new.pem"), base.join("as/old.pem")],
        access_token_ttl: Duration::from_secs(600),
        store: StoreLocation::Postgres("postgresql://bindgate@db.internal:5432/as?sslmode=verify-full".into()),
        refresh: RefreshSettings {
            absolute_lifetime: Duration::from_secs(7 * 86_400),
            idle_timeout: Duration::from_secs(86_400),
            grace: Duration::ZERO,
        },
        dpop_require_nonce: true,
        assertion_algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        clients: vec![
            RegisteredClient {
                scope: vec!["orders:read".into(), "orders:write".into()],
                binding: BindingMethods::MTLS,
                refresh_rotation: RefreshRotation::Always,
                ..client(
                    "svc-a",
                    ClientAuthMethod::TlsClientAuth {
                        subject: CertificateSubject::SubjectDn(DistinguishedName::parse("cn=SVC-A,o=example").unwrap()),
                    },
                    vec![GrantType::ClientCredentials, GrantType::RefreshToken],
                )
            },
            client(
                "svc-b",
                ClientAuthMethod::SelfSignedTlsClientAuth {
                    jwks: JwksSource::File(jwks.clone()),
                },
                vec![GrantType::ClientCredentials],
            ),
            RegisteredClient {
                binding: BindingMethods {
                    mtls: false,
                    dpop: true,
                },
                ..client(
                    "app",
                    ClientAuthMethod::PrivateKeyJwt {
                        jwks: JwksSource::Url("https://app.example/jwks".parse().unwrap()),
                    },
                    vec![GrantType::TokenExchange],
                )
            },
            RegisteredClient {
                scope: vec!["profile".into()],
                audience: vec!["mobile".into()],
                binding: BindingMethods {
                    mtls: false,
                    dpop: true,
                },
                refresh_rotation: RefreshRotation::Always,
                ..client(
                    "mobile app",
                    ClientAuthMethod::None,
                    vec![GrantType::TokenExchange, GrantType::RefreshToken],
                )
            },
            client(
                "edge",
                ClientAuthMethod::TlsClientAuth {
                    subject: CertificateSubject::SanDns("edge.example.org".into()),
                },
                vec![GrantType::ClientCredentials],
            ),
            client(
                "spiffe-svc",
                ClientAuthMethod::TlsClientAuth {
                    subject: CertificateSubject::SanUri("spiffe://example.org/ns/svc".into()),
                },
                vec![GrantType::ClientCredentials],
            ),
        ],
        subject_issuers: vec![SubjectIssuer {
            issuer: "https://login.example".into(),
            jwks: JwksSource::Url("https://login.example/keys".parse().unwrap()),
            jwks_remote: crate::config::RemoteJwksSettings::defaults(None),
            audience: vec!["mobile".into()],
            algorithms: Algorithm::DEFAULT_ALLOWED.to_vec(),
        }],
    };
    let settings = config.authorization_server.clone().unwrap();
    assert_eq!(settings, expected);
    // A reload re-reads every file the table names, once, but never the store.
    let watched = config.watched_files();
    for file in [
        base.join("as/cert.pem"),
        base.join("as/clients-ca.pem"),
        base.join("as/clients.crl"),
        base.join("as/new.pem"),
        base.join("as/old.pem"),
        jwks,
    ] {
        assert_eq!(watched.iter().filter(|w| **w == file).count(), 1, "{}", file.display());
    }
}

#[test]
fn the_table_is_refused_with_the_key_at_fault() {
    let admin = format!(
        "[admin]\nlisten = \"127.0.0.1:9090\"\n{}",
        table_with("listen = \"127.0.0.1:9090\"")
    );
    for (extra, key) in [
        (table_with("issuer = \"http://localhost:8444\""), "issuer"),
        (table_with("issuer = \"localhost:8444\""), "issuer"),
        (table_with("issuer = \"/as\""), "issuer"),
        (table_with("issuer = \"https://localhost:8444/?tenant=a\""), "issuer"),
        (table_with("issuer = \"https://localhost:8444/#a\""), "issuer"),
        (table_with("issuer = \"https://user@localhost:8444\""), "issuer"),
        (table_with("-issuer"), "issuer"),
        (table_with("listen = \"localhost:8444\""), "listen"),
        (table_with("listen = \"127.0.0.1:8443\""), "listen"),
        (table_with("listen = \"0.0.0.0:8443\""), "listen"),
        (table_with("listen = \"[::]:8443\""), "listen"),
        (admin, "listen"),
        (table_with("-listen"), "listen"),
        (table_with("signing_keys = []"), "signing_keys"),
        (table_with("signing_keys = [\"k.pem\", \"./k.pem\"]"), "signing_keys"),
        (
            table_with("signing_keys = [\"/etc/bindgate/k.pem\", \"k.pem\"]"),
            "signing_keys",
        ),
        (table_with("-signing_keys"), "signing_keys"),
        (table_with("access_token_ttl = \"0s\""), "access_token_ttl"),
        (table_with("access_token_ttl = \"25h\""), "access_token_ttl"),
        (table_with("access_token_ttl = \"300\""), "access_token_ttl"),
        (table_with("store = \"as.db\""), "store"),
        (table_with("store = \"sqlite:\""), "store"),
        (table_with("store = \"sqlite://as.db\""), "store"),
        (table_with("store = \"postgres://\""), "store"),
        (table_with("store = \"mysql://root:pw@db/as\""), "store"),
        (
            table_with("refresh_absolute_lifetime = \"0s\""),
            "refresh_absolute_lifetime",
        ),
        (table_with("refresh_idle_timeout = \"0s\""), "refresh_idle_timeout"),
        (table_with("refresh_idle_timeout = \"31d\""), "refresh_idle_timeout"),
        (table_with("refresh_absolute_lifetime = \"7d\""), "refresh_idle_timeout"),
        (table_with("refresh_grace = \"6m\""), "refresh_grace"),
        (table_with("refresh_grace = \"soon\""), "refresh_grace"),
        (table_with("assertion_algorithms = [\"HS256\"]"), "assertion_algorithms"),
        (table_with("assertion_algorithms = []"), "assertion_algorithms"),
    ] {
        assert_eq!(refused_key(&extra), format!("authorization_server.{key}"), "{extra}");
    }
}

#[test]
fn the_default_idle_timeout_says_it_is_the_default_when_it_exceeds_the_lifetime() {
    let message = parse(&table_with("refresh_absolute_lifetime = \"7d\""))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("14d (the default) must be above 0s and at most refresh_absolute_lifetime (7d)"),
        "{message}"
    );
}

#[test]
fn listeners_may_share_port_zero_and_separate_addresses() {
    for listen in ["127.0.0.1:0", "127.0.0.2:8443", "[::1]:8444"] {
        let listen_line = format!("listen = \"{listen}\"");
        assert_eq!(settings(&table_with(&listen_line)).listen, listen.parse().unwrap());
    }
    let text = MINIMAL_FOR_TESTS.replace("127.0.0.1:8443", "127.0.0.1:0") + &table_with("listen = \"127.0.0.1:0\"");
    assert!(Config::parse(&text, Path::new(FILE)).is_ok());
    // A v4 wildcard does not cover an IPv6 address.
    let v4_wildcard =
        MINIMAL_FOR_TESTS.replace("127.0.0.1:8443", "0.0.0.0:8443") + &table_with("listen = \"[::1]:8443\"");
    assert!(Config::parse(&v4_wildcard, Path::new(FILE)).is_ok());
}

#[test]
fn client_ca_may_be_absent_only_without_tls_client_auth_clients() {
    let no_server_ca = MINIMAL_FOR_TESTS.replace("client_ca = \"certs/ca.pem\"", "client_auth = \"any\"");
    let parse_any = |extra: &str| Config::parse(&format!("{no_server_ca}\n{extra}"), Path::new(FILE));
    match parse_any(&with_client(&[])) {
        Err(ConfigError::InvalidValue { key, reason, .. }) => {
            assert_eq!(key, "authorization_server.client_ca");
            assert!(
                reason.contains("client[0] (\"svc-a\") uses tls_client_auth"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let public = with_client(&[
        "auth = \"none\"",
        "-tls_client_auth_subject_dn",
        "grant_types = [\"refresh_token\"]",
    ]);
    let settings = parse_any(&public).unwrap().authorization_server.unwrap();
    assert_eq!(settings.client_ca, None);
    assert!(matches!(
        parse_any(&format!("{TABLE}\ncrl = [\"c.crl\"]")),
        Err(ConfigError::InvalidValue { key, .. }) if key == "authorization_server.crl"
    ));
    let own_ca = format!("{}\n{}", table_with("client_ca = \"as-ca.pem\""), TLS_CLIENT);
    let settings = parse_any(&own_ca).unwrap().authorization_server.unwrap();
    assert_eq!(settings.client_ca, Some(PathBuf::from("/etc/bindgate/as-ca.pem")));
}

#[test]
fn each_client_rule_is_refused_with_the_client_key_at_fault() {
    let pkjwt = [
        "auth = \"private_key_jwt\"",
        "-tls_client_auth_subject_dn",
        "jwks = \"https://svc-a.example/jwks\"",
    ];
    let public = [
        "auth = \"none\"",
        "-tls_client_auth_subject_dn",
        "grant_types = [\"refresh_token\"]",
    ];
    let with = |base: &[&str], more: &[&str]| with_client(&[base, more].concat());
    for (extra, key) in [
        (with_client(&["-client_id"]), "client_id"),
        (with_client(&["client_id = \"\""]), "client_id"),
        (with_client(&["client_id = \" svc-a\""]), "client_id"),
        (with_client(&["client_id = \"svc-\u{e9}\""]), "client_id"),
        (with_client(&["client_id = \"svc\\ta\""]), "client_id"),
        (with_client(&["-auth"]), "auth"),
        (with_client(&["auth = \"mtls\""]), "auth"),
        (with_client(&["-tls_client_auth_subject_dn"]), "auth"),
        (
            with_client(&["tls_client_auth_san_uri = \"spiffe://example.org/a\""]),
            "tls_client_auth_san_uri",
        ),
        (
            with_client(&[
                "-tls_client_auth_subject_dn",
                "tls_client_auth_san_uri = \"spiffe://a\"",
                "tls_client_auth_san_dns = \"a.example\"",
            ]),
            "tls_client_auth_san_dns",
        ),
        (
            with_client(&["tls_client_auth_subject_dn = \"svc-a\""]),
            "tls_client_auth_subject_dn",
        ),
        (
            with_client(&["tls_client_auth_subject_dn = \"CN=a;O=b\""]),
            "tls_client_auth_subject_dn",
        ),
        (
            with_client(&["tls_client_auth_subject_dn = \"\""]),
            "tls_client_auth_subject_dn",
        ),
        (
            with_client(&["-tls_client_auth_subject_dn", "tls_client_auth_san_uri = \"svc a\""]),
            "tls_client_auth_san_uri",
        ),
        (
            with_client(&[
                "-tls_client_auth_subject_dn",
                "tls_client_auth_san_dns = \"svc_a.example\"",
            ]),
            "tls_client_auth_san_dns",
        ),
        (with_client(&["jwks = \"https://svc-a.example/jwks\""]), "jwks"),
        (
            with(&pkjwt, &["tls_client_auth_subject_dn = \"CN=svc-a\""]),
            "tls_client_auth_subject_dn",
        ),
        (with(&pkjwt, &["-jwks"]), "jwks"),
        (with_client(&["jwks_ca = \"ca.pem\""]), "jwks_ca"),
        (with(&pkjwt, &["jwks = \"http://svc-a.example/jwks\""]), "jwks"),
        (
            with(
                &["auth = \"self_signed_tls_client_auth\"", "-tls_client_auth_subject_dn"],
                &[],
            ),
            "jwks",
        ),
        (with(&public, &["jwks = \"https://a.example/jwks\""]), "jwks"),
        (
            with(&public, &["tls_client_auth_san_dns = \"a.example\""]),
            "tls_client_auth_san_dns",
        ),
        (with_client(&["-grant_types"]), "grant_types"),
        (with_client(&["grant_types = []"]), "grant_types"),
        (with_client(&["grant_types = [\"password\"]"]), "grant_types"),
        (
            with(&public, &["grant_types = [\"client_credentials\"]"]),
            "grant_types",
        ),
        (with_client(&["scope = \"orders:read \\\"all\\\"\""]), "scope"),
        (with_client(&["scope = \"a\\\\b\""]), "scope"),
        (with_client(&["scope = \"a\\tb\""]), "scope"),
        (with_client(&["-audience"]), "audience"),
        (with_client(&["audience = []"]), "audience"),
        (with_client(&["audience = [\"\"]"]), "audience"),
        (with_client(&["binding = []"]), "binding"),
        (with_client(&["binding = [\"saml\"]"]), "binding"),
        (with(&public, &["binding = [\"mtls\", \"dpop\"]"]), "binding"),
        (with(&public, &["binding = [\"mtls\"]"]), "binding"),
        (
            with_client(&["grant_types = [\"refresh_token\"]", "refresh_rotation = \"sometimes\""]),
            "refresh_rotation",
        ),
        (with_client(&["refresh_rotation = \"always\""]), "refresh_rotation"),
        (with(&public, &["refresh_rotation = \"always\""]), "refresh_rotation"),
    ] {
        assert_eq!(
            refused_key(&extra),
            format!("authorization_server.client[0].{key}"),
            "{extra}"
        );
    }
}

#[test]
fn client_ids_are_unique_and_the_second_is_named() {
    let second = TLS_CLIENT.replace("svc-a\"\nauth", "svc-b\"\nauth");
    let third = TLS_CLIENT.to_string();
    assert_eq!(
        refused_key(&format!("{TABLE}{TLS_CLIENT}{second}{third}")),
        "authorization_server.client[2].client_id"
    );
}

#[test]
fn a_client_jwks_file_is_read_at_load_and_a_bad_one_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.json"), "{\"keys\": 1}").unwrap();
    let config_file = dir.path().join("gateway.toml");
    for (jwks, reason) in [("missing.json", "cannot read"), ("broken.json", "not a JWKS document")] {
        let extra = with_client(&[
            "auth = \"private_key_jwt\"",
            "-tls_client_auth_subject_dn",
            &format!("jwks = \"{jwks}\""),
        ]);
        match Config::parse(&format!("{MINIMAL_FOR_TESTS}\n{extra}"), &config_file) {
            Err(err @ ConfigError::UnusableFile { .. }) => {
                let message = err.to_string();
                assert!(message.starts_with(&config_file.display().to_string()), "{message}");
                assert!(
                    message.contains("key `authorization_server.client[0].jwks`"),
                    "{message}"
                );
                assert!(
                    message.contains(&dir.path().join(jwks).display().to_string()),
                    "{message}"
                );
                assert!(message.contains(reason), "{message}");
            }
            other => panic!("{jwks}: {other:?}"),
        }
    }
}

#[test]
fn unknown_keys_are_refused_in_the_table_and_in_a_client() {
    for (extra, typo) in [
        (table_with("access_token_tll = \"5m\""), "access_token_tll"),
        (table_with("crls = [\"c.crl\"]"), "crls"),
        (with_client(&["scopes = \"a\""]), "scopes"),
        (with_client(&["grant_type = [\"client_credentials\"]"]), "grant_type"),
    ] {
        let err = parse(&extra).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{message}");
        assert!(message.starts_with(FILE), "{message}");
        assert!(message.contains(&format!("unknown field `{typo}`")), "{message}");
    }
}

#[test]
fn a_postgres_password_is_never_printed() {
    let url = "postgres://bindgate:s3cret@db.internal/as?password=s3cret2&sslmode=require";
    let store = settings(&table_with(&format!("store = \"{url}\""))).store;
    assert_eq!(store, StoreLocation::Postgres(url.into()));
    for shown in [format!("{store}"), format!("{store:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("bindgate:***@db.internal/as?password=***&sslmode=require"),
            "{shown}"
        );
    }
    for extra in [
        table_with("store = \"postgres://bindgate:s3cret@db internal/as\""),
        table_with("store = \"postgress://bindgate:s3cret@db/as\""),
        // Syntax errors quote the offending line of the file.
        table_with("stor = \"postgres://bindgate:s3cret@db/as\""),
        table_with("store = \"postgres://bindgate:s3cret@db/as\"\nstore = \"postgres://bindgate:s3cret@db/as\""),
    ] {
        let message = parse(&extra).unwrap_err().to_string();
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("bindgate:***@"), "{message}");
    }
}

#[test]
fn redaction_leaves_other_text_alone() {
    for (text, redacted) in [
        ("no url here", "no url here"),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "\"postgres://u:p@h\" and \"postgres://v:q@i\"",
            "\"postgres://u:***@h\" and \"postgres://v:***@i\"",
        ),
        ("host=db PASSWORD=x user=u", "host=db PASSWORD=*** user=u"),
    ] {
        assert_eq!(redact_passwords(text), redacted);
    }
}
