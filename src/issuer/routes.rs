//! Which endpoint a request path names. Paths are matched exactly, under
//! the issuer's own path: nothing here is a prefix, so `/jwks/x` or
//! `/jwks/` is no endpoint at all.

use std::sync::Arc;

use http::Method;

use crate::issuer::metadata::WELL_KNOWN;

/// An endpoint of the authorization server. Adding one: a variant here, its
/// path in [`Endpoint::path`], its methods in [`Endpoint::allows`], and its
/// arm in `issuer::serve`, which the compiler then asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata.
    Metadata,
    /// `GET /jwks`: every signing key, the signer first.
    Jwks,
    /// `POST /token`: RFC 6749 section 3.2.
    Token,
    /// `POST /introspect`: RFC 7662.
    Introspect,
    /// `POST /revoke`: RFC 7009.
    Revoke,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Metadata,
        Endpoint::Jwks,
        Endpoint::Token,
        Endpoint::Introspect,
        Endpoint::Revoke,
    ];

    /// The path the listener serves it at, for an issuer whose path is
    /// `issuer_path` (no trailing `/`; empty for a bare host).
    pub fn path(self, issuer_path: &str) -> String {
        match self {
            // RFC 8414 section 3.1: the well-known segment goes before the issuer's path.
            Endpoint::Metadata => format!("{WELL_KNOWN}{issuer_path}"),
            Endpoint::Jwks => format!("{issuer_path}/jwks"),
            Endpoint::Token => format!("{issuer_path}/token"),
            Endpoint::Introspect => format!("{issuer_path}/introspect"),
            Endpoint::Revoke => format!("{issuer_path}/revoke"),
        }
    }

    /// Whether it answers `method`.
    pub fn allows(self, method: &Method) -> bool {
        match self {
            Endpoint::Metadata | Endpoint::Jwks => method == Method::GET || method == Method::HEAD,
            // RFC 6749 section 3.2: "The client MUST use the HTTP POST method".
            Endpoint::Token | Endpoint::Introspect | Endpoint::Revoke => method == Method::POST,
        }
    }

    /// The `Allow` header of a 405 (RFC 9110 section 15.5.6).
    pub fn allow_header(self) -> &'static str {
        match self {
            Endpoint::Metadata | Endpoint::Jwks => "GET, HEAD",
            Endpoint::Token | Endpoint::Introspect | Endpoint::Revoke => "POST",
        }
    }
}

/// The endpoints by path, built once per generation.
#[derive(Debug)]
pub struct Routes {
    /// The path doubles as the access line's `route` and the metrics' `endpoint`.
    entries: Vec<(Arc<str>, Endpoint)>,
}

impl Routes {
    pub fn new(issuer_path: &str) -> Routes {
        let entries = Endpoint::ALL
            .into_iter()
            .map(|endpoint| (Arc::from(endpoint.path(issuer_path)), endpoint))
            .collect();
        Routes { entries }
    }

    /// The endpoint at exactly `path`, with its label.
    pub fn find(&self, path: &str) -> Option<(&Arc<str>, Endpoint)> {
        self.entries
            .iter()
            .find(|(served, _)| served.as_ref() == path)
            .map(|(served, endpoint)| (served, *endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_exactly_under_the_issuer_path() {
        let routes = Routes::new("");
        assert_eq!(routes.find("/jwks").map(|r| r.1), Some(Endpoint::Jwks));
        assert_eq!(
            routes.find("/.well-known/oauth-authorization-server").map(|r| r.1),
            Some(Endpoint::Metadata)
        );
        assert_eq!(routes.find("/token").map(|r| r.1), Some(Endpoint::Token));
        assert_eq!(routes.find("/revoke").map(|r| r.1), Some(Endpoint::Revoke));
        for other in ["/jwks/", "/jwks/x", "/JWKS", "//jwks", "/", "/token/", "/revoke/"] {
            assert!(routes.find(other).is_none(), "{other}");
        }
        let routes = Routes::new("/tenant");
        assert_eq!(routes.find("/tenant/jwks").map(|r| r.1), Some(Endpoint::Jwks));
        assert_eq!(
            routes
                .find("/.well-known/oauth-authorization-server/tenant")
                .map(|r| r.1),
            Some(Endpoint::Metadata)
        );
        assert!(routes.find("/jwks").is_none());
    }

    #[test]
    fn every_endpoint_answers_the_methods_its_allow_header_names() {
        for endpoint in Endpoint::ALL {
            for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE] {
                assert_eq!(
                    endpoint.allows(&method),
                    endpoint.allow_header().split(", ").any(|m| m == method.as_str()),
                    "{endpoint:?} {method}"
                );
            }
        }
    }
}
