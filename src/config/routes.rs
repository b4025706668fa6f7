//! `[[route]]` entries: path prefixes, each with its own upstream and policy.

use serde::Deserialize;

use super::{ConfigError, Validator};

/// What a route requires of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    /// A valid access token bound to the caller (the default).
    Bound,
    /// No token is checked; the request passes through (TLS client auth still applies).
    None,
}

impl AuthPolicy {
    /// The word `gateway.toml` uses for it.
    pub fn name(self) -> &'static str {
        match self {
            AuthPolicy::Bound => "bound",
            AuthPolicy::None => "none",
        }
    }
}

/// Whether a failed binding check stops the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingMode {
    /// Unbound or wrongly bound tokens are rejected.
    Enforce,
    /// They are forwarded, logged and counted: for rolling binding out without an outage.
    Report,
}

impl BindingMode {
    /// The word `gateway.toml` uses for it.
    pub fn name(self) -> &'static str {
        match self {
            BindingMode::Enforce => "enforce",
            BindingMode::Report => "report",
        }
    }
}

/// The sender constraints a route accepts: a token bound by any of them
/// passes (every binding the token itself declares must still hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingMethods {
    /// RFC 8705: `cnf."x5t#S256"` and the TLS client certificate, `Bearer` scheme.
    pub mtls: bool,
    /// RFC 9449: `cnf.jkt` and a `DPoP` proof, `DPoP` scheme.
    pub dpop: bool,
}

impl BindingMethods {
    pub const MTLS: BindingMethods = BindingMethods {
        mtls: true,
        dpop: false,
    };

    /// `mtls`, `dpop` or `mtls+dpop`: in logs, metrics and `bindgate check`.
    pub fn label(self) -> &'static str {
        match (self.mtls, self.dpop) {
            (true, true) => "mtls+dpop",
            (false, true) => "dpop",
            (true, false) => "mtls",
            (false, false) => "none",
        }
    }

    /// The methods as `gateway.toml` lists them: `["mtls", "dpop"]`.
    pub fn config_list(self) -> String {
        let names: Vec<&str> = [(self.mtls, "\"mtls\""), (self.dpop, "\"dpop\"")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        format!("[{}]", names.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum MethodName {
    Mtls,
    Dpop,
}

/// `binding` as written: a mode, a list of methods, or both in a table.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawBinding {
    Mode(BindingMode),
    Methods(Vec<MethodName>),
    Table(RawBindingTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBindingTable {
    methods: Option<Vec<MethodName>>,
    mode: Option<BindingMode>,
}

/// One validated route.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// Starts with `/`; matches itself and paths below it.
    pub prefix: String,
    /// Overrides `[upstream] url` for this route.
    pub upstream: Option<http::Uri>,
    pub auth: AuthPolicy,
    pub required_scopes: Vec<String>,
    pub binding: BindingMode,
    pub methods: BindingMethods,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    prefix: String,
    upstream: Option<String>,
    auth: Option<AuthPolicy>,
    required_scopes: Option<Vec<String>>,
    binding: Option<RawBinding>,
}

impl Validator<'_> {
    pub(super) fn routes(&self, raw: Vec<RawRoute>) -> Result<Vec<RouteSettings>, ConfigError> {
        let mut routes: Vec<RouteSettings> = Vec::with_capacity(raw.len());
        for (index, route) in raw.into_iter().enumerate() {
            let context = format!("route #{} ({:?}): ", index + 1, route.prefix);
            let prefix = route.prefix;
            if !prefix.starts_with('/') {
                return Err(self.invalid("route.prefix", format!("{context}must start with /")));
            }
            if prefix.split('/').any(|segment| segment == "." || segment == "..")
                || prefix.contains("//")
                || prefix.contains(['%', '?', '#'])
            {
                return Err(self.invalid(
                    "route.prefix",
                    format!("{context}must be a plain normalised path (no dot segments, //, %, ? or #)"),
                ));
            }
            if routes.iter().any(|r| r.prefix == prefix) {
                return Err(self.invalid("route.prefix", format!("{context}is defined twice")));
            }
            let upstream = match route.upstream {
                None => None,
                Some(url) => Some(self.upstream_url("route.upstream", &url, &context)?),
            };
            let auth = route.auth.unwrap_or(AuthPolicy::Bound);
            let required_scopes = route.required_scopes.unwrap_or_default();
            if let Some(bad) = required_scopes
                .iter()
                .find(|s| s.is_empty() || s.contains([' ', '"', '\\']))
            {
                return Err(self.invalid(
                    "route.required_scopes",
                    format!("{context}{bad:?} is not a scope token"),
                ));
            }
            if auth == AuthPolicy::None && (!required_scopes.is_empty() || route.binding.is_some()) {
                return Err(self.invalid(
                    "route.auth",
                    format!("{context}auth = \"none\" checks no token, so required_scopes and binding cannot apply"),
                ));
            }
            let (methods, mode) = match route.binding {
                None => (None, None),
                Some(RawBinding::Mode(mode)) => (None, Some(mode)),
                Some(RawBinding::Methods(methods)) => (Some(methods), None),
                Some(RawBinding::Table(table)) => (table.methods, table.mode),
            };
            let methods = match methods {
                None => BindingMethods::MTLS,
                Some(list) if list.is_empty() => {
                    return Err(self.invalid(
                        "route.binding",
                        format!("{context}needs at least one of \"mtls\", \"dpop\" (auth = \"none\" skips tokens)"),
                    ));
                }
                Some(list) => BindingMethods {
                    mtls: list.contains(&MethodName::Mtls),
                    dpop: list.contains(&MethodName::Dpop),
                },
            };
            routes.push(RouteSettings {
                prefix,
                upstream,
                auth,
                required_scopes,
                binding: mode.unwrap_or(BindingMode::Enforce),
                methods,
            });
        }
        Ok(routes)
    }
}
