//! What a token request may be granted, decided from the registered client
//! and the request alone: the grant type, the scope (RFC 6749 section 3.3),
//! the audience (RFC 8707 `resource`) and the key the token is bound to.
//! No I/O here; client authentication and the DPoP proof check come first.

use crate::config::{GrantType, RegisteredClient};
use crate::issuer::access_token::Binding;
use crate::issuer::form::Form;

/// The keys the request proved it holds, from which the binding is chosen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The JWK thumbprint of a DPoP proof already verified for this request.
    pub dpop_jkt: Option<&'a str>,
    /// `x5t#S256` of the connection's client certificate, whatever
    /// authenticated the client: its handshake proved possession of the key.
    pub certificate_x5t: Option<&'a str>,
}

/// Why a grant is refused. The RFC 6749 section 5.2 code of each is in
/// [`GrantError::code`], its metric label in [`GrantError::label`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant_type is missing")]
    MissingGrantType,
    #[error("grant_type {0:?} is not supported")]
    UnsupportedGrantType(String),
    #[error("the client may not use the {0} grant")]
    UnauthorizedClient(&'static str),
    #[error("scope {0:?} is not one this client may be granted")]
    InvalidScope(String),
    #[error("resource {0:?} is not an audience of this client")]
    InvalidTarget(String),
    #[error("this client's tokens may not be bound to a DPoP key")]
    DpopBindingNotAllowed,
    #[error("this client's tokens must be bound to a DPoP key: send a DPoP proof")]
    DpopBindingRequired,
    #[error("no key to bind the token to: present a client certificate or a DPoP proof")]
    NoKeyToBind,
}

impl GrantError {
    /// The `error` of the RFC 6749 section 5.2 response.
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::MissingGrantType
            | GrantError::DpopBindingNotAllowed
            | GrantError::DpopBindingRequired
            | GrantError::NoKeyToBind => "invalid_request",
            GrantError::UnsupportedGrantType(_) => "unsupported_grant_type",
            GrantError::UnauthorizedClient(_) => "unauthorized_client",
            GrantError::InvalidScope(_) => "invalid_scope",
            GrantError::InvalidTarget(_) => "invalid_target",
        }
    }

    /// The stable label of logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GrantError::MissingGrantType => "grant_type_missing",
            GrantError::UnsupportedGrantType(_) => "grant_type_unsupported",
            GrantError::UnauthorizedClient(_) => "grant_not_allowed",
            GrantError::InvalidScope(_) => "scope_not_allowed",
            GrantError::InvalidTarget(_) => "resource_not_allowed",
            GrantError::DpopBindingNotAllowed => "dpop_binding_not_allowed",
            GrantError::DpopBindingRequired => "dpop_binding_required",
            GrantError::NoKeyToBind => "no_key_to_bind",
        }
    }
}

/// The request's `grant_type`, if bindgate knows it and the client may use it.
pub fn grant_type(client: &RegisteredClient, form: &Form) -> Result<GrantType, GrantError> {
    let name = form.get("grant_type").ok_or(GrantError::MissingGrantType)?;
    let grant = GrantType::from_name(name).ok_or_else(|| GrantError::UnsupportedGrantType(name.to_string()))?;
    if !client.grant_types.contains(&grant) {
        return Err(GrantError::UnauthorizedClient(grant.name()));
    }
    Ok(grant)
}

/// The scope granted: what was asked, if the client may have all of it, or
/// the client's whole scope when nothing was asked. In the client's order,
/// so equal requests give equal tokens.
pub fn scope(client: &RegisteredClient, requested: Option<&str>) -> Result<Vec<String>, GrantError> {
    narrow_scope(&client.scope, requested)
}

/// The scope granted out of `allowed` (a client's, or a family's for a
/// refresh: RFC 6749 section 6 lets a refresh narrow, never widen).
pub fn narrow_scope(allowed: &[String], requested: Option<&str>) -> Result<Vec<String>, GrantError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let asked: Vec<&str> = requested.split(' ').filter(|token| !token.is_empty()).collect();
    if let Some(unknown) = asked.iter().find(|token| !allowed.iter().any(|s| s == *token)) {
        return Err(GrantError::InvalidScope((*unknown).to_string()));
    }
    Ok(allowed
        .iter()
        .filter(|s| asked.contains(&s.as_str()))
        .cloned()
        .collect())
}

/// The audience granted: the `resource`s asked for, each one of the
/// client's audiences, or all of them when none was asked.
pub fn audience<'a>(
    client: &RegisteredClient,
    resources: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, GrantError> {
    narrow_audience(&client.audience, resources)
}

/// The audience granted out of `allowed` (a client's, or a family's).
pub fn narrow_audience<'a>(
    allowed: &[String],
    resources: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, GrantError> {
    let mut granted: Vec<String> = Vec::new();
    for resource in resources {
        if !allowed.iter().any(|a| a == resource) {
            return Err(GrantError::InvalidTarget(resource.to_string()));
        }
        if !granted.iter().any(|g| g == resource) {
            granted.push(resource.to_string());
        }
    }
    if granted.is_empty() {
        granted = allowed.to_vec();
    }
    Ok(granted)
}

/// The key the token is bound to. A DPoP proof binds when there is one
/// (design: it wins over a certificate); otherwise the connection's
/// certificate. Never nothing: bindgate issues no bearer token.
pub fn binding(client: &RegisteredClient, evidence: Evidence<'_>) -> Result<Binding, GrantError> {
    match (evidence.dpop_jkt, evidence.certificate_x5t) {
        (Some(_), _) if !client.binding.dpop => Err(GrantError::DpopBindingNotAllowed),
        (Some(jkt), _) => Ok(Binding::Dpop { jkt: jkt.to_string() }),
        (None, Some(_)) if !client.binding.mtls => Err(GrantError::DpopBindingRequired),
        (None, Some(x5t)) => Ok(Binding::Certificate {
            x5t_s256: x5t.to_string(),
        }),
        (None, None) if !client.binding.mtls => Err(GrantError::DpopBindingRequired),
        (None, None) => Err(GrantError::NoKeyToBind),
    }
}

/// What a `client_credentials` request (RFC 6749 section 4.4) is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub binding: Binding,
}

/// Decides a `client_credentials` request of an authenticated `client`.
pub fn client_credentials(
    client: &RegisteredClient,
    form: &Form,
    evidence: Evidence<'_>,
) -> Result<ClientCredentials, GrantError> {
    Ok(ClientCredentials {
        scope: scope(client, form.get("scope"))?,
        audience: audience(client, form.get_all("resource"))?,
        binding: binding(client, evidence)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BindingMethods, ClientAuthMethod, RefreshRotation};

    fn client(binding: BindingMethods) -> RegisteredClient {
        RegisteredClient {
            client_id: "svc-a".into(),
            auth: ClientAuthMethod::None,
            grant_types: vec![GrantType::ClientCredentials],
            scope: vec!["orders:read".into(), "orders:write".into()],
            audience: vec!["https://api.example".into(), "https://other.example".into()],
            binding,
            refresh_rotation: RefreshRotation::Never,
            family_lifetime: crate::config::FamilyLifetime {
                absolute: std::time::Duration::from_secs(3600),
                idle: std::time::Duration::from_secs(600),
            },
            jwks_remote: crate::config::RemoteJwksSettings::defaults(None),
        }
    }

    fn both() -> BindingMethods {
        BindingMethods { mtls: true, dpop: true }
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn grant_types_are_known_and_allowed_per_client() {
        let c = client(both());
        assert_eq!(
            grant_type(&c, &form("grant_type=client_credentials")),
            Ok(GrantType::ClientCredentials)
        );
        assert_eq!(grant_type(&c, &form("scope=x")), Err(GrantError::MissingGrantType));
        assert_eq!(
            grant_type(&c, &form("grant_type=password")),
            Err(GrantError::UnsupportedGrantType("password".into()))
        );
        let e = grant_type(&c, &form("grant_type=refresh_token")).unwrap_err();
        assert_eq!((e.code(), e.label()), ("unauthorized_client", "grant_not_allowed"));
    }

    #[test]
    fn scope_narrows_never_widens() {
        let c = client(both());
        assert_eq!(scope(&c, None).unwrap(), ["orders:read", "orders:write"]);
        assert_eq!(
            scope(&c, Some("orders:write orders:read")).unwrap(),
            ["orders:read", "orders:write"]
        );
        assert_eq!(scope(&c, Some("orders:write")).unwrap(), ["orders:write"]);
        let e = scope(&c, Some("orders:read admin")).unwrap_err();
        assert_eq!(e, GrantError::InvalidScope("admin".into()));
        assert_eq!(e.code(), "invalid_scope");
        // A prefix of a scope is not that scope.
        assert!(scope(&c, Some("orders")).is_err());
    }

    #[test]
    fn resource_must_be_an_audience_of_the_client() {
        let c = client(both());
        assert_eq!(audience(&c, std::iter::empty()).unwrap(), c.audience);
        assert_eq!(
            audience(&c, ["https://api.example", "https://api.example"].into_iter()).unwrap(),
            ["https://api.example"]
        );
        let e = audience(&c, ["https://api.example", "https://evil.example"].into_iter()).unwrap_err();
        assert_eq!((e.code(), e.label()), ("invalid_target", "resource_not_allowed"));
    }

    #[test]
    fn a_dpop_proof_binds_before_a_certificate_and_nothing_binds_nothing() {
        let c = client(both());
        let dpop = Evidence {
            dpop_jkt: Some("jkt"),
            certificate_x5t: Some("x5t"),
        };
        assert_eq!(binding(&c, dpop), Ok(Binding::Dpop { jkt: "jkt".into() }));
        let cert = Evidence {
            dpop_jkt: None,
            certificate_x5t: Some("x5t"),
        };
        assert_eq!(binding(&c, cert), Ok(Binding::Certificate { x5t_s256: "x5t".into() }));
        let e = binding(&c, Evidence::default()).unwrap_err();
        assert_eq!((e.code(), e), ("invalid_request", GrantError::NoKeyToBind));
    }

    #[test]
    fn a_client_restricted_to_one_binding_gets_only_that_one() {
        let mtls_only = client(BindingMethods {
            mtls: true,
            dpop: false,
        });
        let with_proof = Evidence {
            dpop_jkt: Some("jkt"),
            certificate_x5t: Some("x5t"),
        };
        assert_eq!(binding(&mtls_only, with_proof), Err(GrantError::DpopBindingNotAllowed));
        let dpop_only = client(BindingMethods {
            mtls: false,
            dpop: true,
        });
        let cert_only = Evidence {
            dpop_jkt: None,
            certificate_x5t: Some("x5t"),
        };
        assert_eq!(binding(&dpop_only, cert_only), Err(GrantError::DpopBindingRequired));
        assert_eq!(
            binding(&dpop_only, Evidence::default()),
            Err(GrantError::DpopBindingRequired)
        );
    }

    #[test]
    fn client_credentials_combines_the_three_decisions() {
        let c = client(both());
        let evidence = Evidence {
            dpop_jkt: None,
            certificate_x5t: Some("x5t"),
        };
        let granted = client_credentials(
            &c,
            &form("grant_type=client_credentials&scope=orders%3Aread&resource=https%3A%2F%2Fother.example"),
            evidence,
        )
        .unwrap();
        assert_eq!(
            granted,
            ClientCredentials {
                scope: vec!["orders:read".into()],
                audience: vec!["https://other.example".into()],
                binding: Binding::Certificate { x5t_s256: "x5t".into() },
            }
        );
    }

    #[test]
    fn every_error_has_its_own_label() {
        let all = [
            GrantError::MissingGrantType,
            GrantError::UnsupportedGrantType(String::new()),
            GrantError::UnauthorizedClient("x"),
            GrantError::InvalidScope(String::new()),
            GrantError::InvalidTarget(String::new()),
            GrantError::DpopBindingNotAllowed,
            GrantError::DpopBindingRequired,
            GrantError::NoKeyToBind,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(GrantError::label).collect();
        assert_eq!(labels.len(), all.len());
    }
}
