//! The RFC 8414 authorization server metadata, and the endpoint URLs it
//! publishes, all derived from the configured `issuer`: the issuer is the
//! externally visible base URL, so a client that reads the metadata finds
//! every endpoint without further configuration.

use crate::config::{AuthorizationServerSettings, GrantType};
use crate::jose::Algorithm;

/// The RFC 8414 section 3 well-known suffix.
pub const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// The absolute URLs of the endpoints, as clients address them: the
/// issuer without its trailing `/`, then the endpoint's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrls {
    /// What a DPoP proof's `htu` must name at the token endpoint.
    pub token: String,
    pub jwks: String,
    pub introspection: String,
    pub revocation: String,
}

impl EndpointUrls {
    pub fn new(issuer: &str) -> EndpointUrls {
        let base = issuer.trim_end_matches('/');
        EndpointUrls {
            token: format!("{base}/token"),
            jwks: format!("{base}/jwks"),
            introspection: format!("{base}/introspect"),
            revocation: format!("{base}/revoke"),
        }
    }
}

/// `scheme://authority` of `issuer`: with a request's path, the URL a
/// client addressed, which a DPoP proof's `htu` names.
pub fn issuer_origin(issuer: &str) -> String {
    match issuer.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => issuer.trim_end_matches('/').to_string(),
        },
        Err(_) => issuer.trim_end_matches('/').to_string(),
    }
}

/// The path part of `issuer` without a terminating `/` (`""` for a bare
/// host): the listener serves every endpoint under it, and the metadata at
/// [`WELL_KNOWN`] followed by it (RFC 8414 section 3.1).
pub fn issuer_path(issuer: &str) -> String {
    let path = issuer
        .parse::<http::Uri>()
        .map(|uri| uri.path().to_string())
        .unwrap_or_default();
    path.trim_end_matches('/').to_string()
}

/// The metadata document, rendered once per generation.
///
/// - `response_types_supported` is REQUIRED by RFC 8414 section 2 with no
///   exception, and it names what the authorization endpoint answers; there
///   is none here, so it is the empty list.
/// - `grant_types_supported` and `token_endpoint_auth_methods_supported`
///   have defaults (`authorization_code`, `client_secret_basic`) that would
///   be wrong here, so they are always written: what the configured
///   clients use, or, with no client yet, what bindgate implements.
/// - `scopes_supported` is left out: the document is public, and every
///   client knows its own scope.
/// - `mtls_endpoint_aliases` (RFC 8705 section 5) name the same URLs: the
///   one listener serves clients with and without certificates.
/// - Revocation takes every client method, `none` included: a public
///   client must be able to revoke its own refresh token at sign-out
///   (RFC 7009 section 2.1); introspection only confidential ones.
pub fn render(settings: &AuthorizationServerSettings, urls: &EndpointUrls, dpop_algorithms: &[Algorithm]) -> String {
    let methods = auth_methods(settings);
    // Introspection is for confidential clients only: a public client cannot authenticate.
    let confidential: Vec<&str> = methods.iter().copied().filter(|m| *m != "none").collect();
    let assertion_algs = names(&settings.assertion_algorithms);
    serde_json::json!({
        "issuer": settings.issuer,
        "token_endpoint": urls.token,
        "jwks_uri": urls.jwks,
        "introspection_endpoint": urls.introspection,
        "revocation_endpoint": urls.revocation,
        "response_types_supported": [],
        "grant_types_supported": grant_types(settings),
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": confidential,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "tls_client_certificate_bound_access_tokens": true,
        "dpop_signing_alg_values_supported": names(dpop_algorithms),
        "mtls_endpoint_aliases": {
            "token_endpoint": urls.token,
            "introspection_endpoint": urls.introspection,
            "revocation_endpoint": urls.revocation,
        },
    })
    .to_string()
}

/// The grant types of the configured clients, in the order first written.
fn grant_types(settings: &AuthorizationServerSettings) -> Vec<&'static str> {
    let mut grants: Vec<GrantType> = Vec::new();
    for grant in settings.clients.iter().flat_map(|c| &c.grant_types) {
        if !grants.contains(grant) {
            grants.push(*grant);
        }
    }
    if grants.is_empty() {
        grants.push(GrantType::ClientCredentials);
    }
    grants.into_iter().map(GrantType::name).collect()
}

/// Every `[[authorization_server.client]] auth` value, as RFC 8414 names them.
const IMPLEMENTED_AUTH_METHODS: [&str; 4] = [
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "private_key_jwt",
    "none",
];

/// The client authentication methods of the configured clients, in the order first written.
fn auth_methods(settings: &AuthorizationServerSettings) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    for method in settings.clients.iter().map(|c| c.auth.name()) {
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    if methods.is_empty() {
        methods = IMPLEMENTED_AUTH_METHODS.to_vec();
    }
    methods
}

fn names(algorithms: &[Algorithm]) -> Vec<&'static str> {
    algorithms.iter().map(|a| a.name()).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, MINIMAL_FOR_TESTS};

    fn settings(extra: &str) -> AuthorizationServerSettings {
        let text = format!("{MINIMAL_FOR_TESTS}\n{extra}");
        let config = Config::parse(&text, Path::new("/etc/bindgate/gateway.toml")).unwrap();
        config.authorization_server.unwrap()
    }

    fn table(issuer: &str) -> String {
        format!("[authorization_server]\nissuer = {issuer:?}\nlisten = \"127.0.0.1:0\"\nsigning_keys = [\"k.pem\"]\n")
    }

    const CLIENTS: &str = r#"
[[authorization_server.client]]
client_id = "svc-a"
auth = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc-a"
grant_types = ["client_credentials"]
audience = ["https://api.example"]

[[authorization_server.client]]
client_id = "app"
auth = "none"
grant_types = ["refresh_token"]
audience = ["https://api.example"]
binding = ["dpop"]

[[authorization_server.client]]
client_id = "svc-b"
auth = "tls_client_auth"
tls_client_auth_san_dns = "svc-b.example"
grant_types = ["client_credentials", "refresh_token"]
audience = ["https://api.example"]
"#;

    fn document(extra: &str, issuer: &str) -> serde_json::Value {
        let s = settings(&format!("{}{extra}", table(issuer)));
        let urls = EndpointUrls::new(&s.issuer);
        serde_json::from_str(&render(&s, &urls, &[Algorithm::ES256, Algorithm::EdDSA])).unwrap()
    }

    #[test]
    fn endpoints_are_the_issuer_without_its_trailing_slash_and_the_endpoint_path() {
        for issuer in ["https://as.example", "https://as.example/"] {
            let urls = EndpointUrls::new(issuer);
            assert_eq!(urls.token, "https://as.example/token");
            assert_eq!(urls.jwks, "https://as.example/jwks");
            assert_eq!(issuer_path(issuer), "");
        }
        let urls = EndpointUrls::new("https://as.example/tenant/");
        assert_eq!(urls.introspection, "https://as.example/tenant/introspect");
        assert_eq!(issuer_path("https://as.example/tenant/"), "/tenant");
    }

    #[test]
    fn the_document_names_what_the_configured_clients_use_each_once_in_order() {
        let doc = document(CLIENTS, "https://as.example:8444");
        assert_eq!(doc["issuer"], "https://as.example:8444");
        assert_eq!(doc["token_endpoint"], "https://as.example:8444/token");
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["client_credentials", "refresh_token"])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["tls_client_auth", "none"])
        );
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(["tls_client_auth"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!([]));
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA"])
        );
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            doc["mtls_endpoint_aliases"]["token_endpoint"],
            "https://as.example:8444/token"
        );
        assert!(doc.get("scopes_supported").is_none());
    }

    #[test]
    fn without_clients_the_document_names_what_bindgate_implements() {
        let doc = document("", "https://as.example");
        assert_eq!(doc["grant_types_supported"], serde_json::json!(["client_credentials"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!([
                "tls_client_auth",
                "self_signed_tls_client_auth",
                "private_key_jwt",
                "none"
            ])
        );
    }
}
