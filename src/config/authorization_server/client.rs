//! `[[authorization_server.client]]`: the clients the authorization server
//! knows, how each authenticates, and the most each may be granted.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::RefreshSettings;
use crate::config::dn::DistinguishedName;
use crate::config::{BindingMethods, ConfigError, JwksSource, RemoteJwksSettings, Validator, format_duration};
use crate::jose::jwk::KeySet;

/// One registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredClient {
    /// RFC 6749 appendix A.1: printable ASCII, spaces only inside.
    pub client_id: String,
    pub auth: ClientAuthMethod,
    /// Deduplicated, in the order written; never empty.
    pub grant_types: Vec<GrantType>,
    /// The scope tokens it may be granted at most (RFC 6749 section 3.3); may be empty.
    pub scope: Vec<String>,
    /// The audiences its tokens may name; never empty.
    pub audience: Vec<String>,
    /// The keys its tokens may be bound to; at least one.
    pub binding: BindingMethods,
    /// `Always` for a public client, whose refresh tokens rotate on every use.
    pub refresh_rotation: RefreshRotation,
    /// How long its families live: its own `refresh_absolute_lifetime` and
    /// `refresh_idle_timeout`, or the server's.
    pub family_lifetime: FamilyLifetime,
    /// How a `jwks` URL is fetched: `jwks_ca` and the `[token]` defaults
    /// for refresh, cooldown and timeout. Unused for a file.
    pub jwks_remote: RemoteJwksSettings,
}

/// How a client proves who it is at the token endpoint, with what it is checked against.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuthMethod {
    /// RFC 8705 section 2.1: a certificate chained to `client_ca` that names the client.
    TlsClientAuth { subject: CertificateSubject },
    /// RFC 8705 section 2.2: a certificate whose public key is in `jwks`.
    SelfSignedTlsClientAuth { jwks: JwksSource },
    /// RFC 7523: a JWT assertion signed by a key in `jwks`.
    PrivateKeyJwt { jwks: JwksSource },
    /// A public client: no authentication, so only grants that demand a DPoP proof.
    None,
}

/// Which name in a `tls_client_auth` client's certificate identifies it (exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSubject {
    /// `tls_client_auth_subject_dn`, matched by RFC 4517 `distinguishedNameMatch`.
    SubjectDn(DistinguishedName),
    /// `tls_client_auth_san_uri`: a URI SAN, compared exactly.
    SanUri(String),
    /// `tls_client_auth_san_dns`: a DNS SAN, lowercased here since DNS names compare case-insensitively.
    SanDns(String),
}

/// An OAuth grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 section 4.4.
    ClientCredentials,
    /// RFC 6749 section 6.
    RefreshToken,
    /// RFC 8693.
    TokenExchange,
}

/// How long a family lives, resolved per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyLifetime {
    /// Never extended by rotation.
    pub absolute: Duration,
    /// Sliding: each refresh starts it over. Never above `absolute`.
    pub idle: Duration,
}

/// Whether a refresh grant replaces the refresh token it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The same refresh token keeps working (the client's authentication binds it).
    Never,
    /// Every refresh returns a new token; the old one presented again is reuse.
    Always,
}

impl ClientAuthMethod {
    /// The RFC 8414 `token_endpoint_auth_methods_supported` value, as `gateway.toml` writes it.
    pub fn name(&self) -> &'static str {
        match self {
            ClientAuthMethod::TlsClientAuth { .. } => "tls_client_auth",
            ClientAuthMethod::SelfSignedTlsClientAuth { .. } => "self_signed_tls_client_auth",
            ClientAuthMethod::PrivateKeyJwt { .. } => "private_key_jwt",
            ClientAuthMethod::None => "none",
        }
    }

    /// The client's JWKS file, when its keys come from one.
    pub fn jwks_file(&self) -> Option<&PathBuf> {
        match self {
            ClientAuthMethod::SelfSignedTlsClientAuth {
                jwks: JwksSource::File(path),
            }
            | ClientAuthMethod::PrivateKeyJwt {
                jwks: JwksSource::File(path),
            } => Some(path),
            _ => None,
        }
    }
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::TokenExchange,
    ];

    /// The `grant_type` value of a token request (RFC 6749, RFC 8693).
    pub fn name(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn from_name(name: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.name() == name)
    }
}

impl RefreshRotation {
    /// The word `gateway.toml` uses for it.
    pub fn name(self) -> &'static str {
        match self {
            RefreshRotation::Never => "never",
            RefreshRotation::Always => "always",
        }
    }
}

/// Strings rather than serde enums, so that a bad value is refused naming
/// its dotted key (`authorization_server.client[2].auth`), not a line number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    client_id: Option<String>,
    auth: Option<String>,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    jwks: Option<String>,
    jwks_ca: Option<PathBuf>,
    grant_types: Option<Vec<String>>,
    scope: Option<String>,
    audience: Option<Vec<String>>,
    binding: Option<Vec<String>>,
    refresh_rotation: Option<String>,
    refresh_absolute_lifetime: Option<String>,
    refresh_idle_timeout: Option<String>,
}

/// `auth` as written, before the keys that go with it are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Tls,
    SelfSigned,
    PrivateKeyJwt,
    Public,
}

/// The dotted name of one key of one client: `authorization_server.client[1].jwks`.
struct Keys(usize);

impl Keys {
    fn key(&self, name: &str) -> Cow<'static, str> {
        format!("authorization_server.client[{}].{name}", self.0).into()
    }
}

impl Validator<'_> {
    pub(super) fn clients(
        &self,
        raw: Vec<RawClient>,
        refresh: &RefreshSettings,
    ) -> Result<Vec<RegisteredClient>, ConfigError> {
        let mut clients: Vec<RegisteredClient> = Vec::with_capacity(raw.len());
        for (index, raw) in raw.into_iter().enumerate() {
            let client = self.client(&Keys(index), raw, refresh)?;
            if let Some(first) = clients.iter().position(|c| c.client_id == client.client_id) {
                return Err(self.invalid(
                    Keys(index).key("client_id"),
                    format!("{:?} is already client[{first}]", client.client_id),
                ));
            }
            clients.push(client);
        }
        Ok(clients)
    }

    fn client(
        &self,
        keys: &Keys,
        mut raw: RawClient,
        refresh: &RefreshSettings,
    ) -> Result<RegisteredClient, ConfigError> {
        let client_id = self.client_id(keys, raw.client_id.take())?;
        let auth = self.client_auth(keys, &mut raw)?;
        let fetched = matches!(
            &auth,
            ClientAuthMethod::SelfSignedTlsClientAuth {
                jwks: JwksSource::Url(_)
            } | ClientAuthMethod::PrivateKeyJwt {
                jwks: JwksSource::Url(_)
            }
        );
        if raw.jwks_ca.is_some() && !fetched {
            return Err(self.invalid(keys.key("jwks_ca"), "only applies with an https:// jwks URL"));
        }
        let jwks_remote = RemoteJwksSettings::defaults(raw.jwks_ca.take().map(|p| self.path(p)));
        let public = auth == ClientAuthMethod::None;
        let grant_types = self.grant_types(keys, raw.grant_types, public)?;
        let scope = self.scope(keys, raw.scope)?;
        let audience = match raw.audience {
            None => return Err(self.invalid(keys.key("audience"), "required: the audiences its tokens may name")),
            Some(list) if list.is_empty() || list.iter().any(String::is_empty) => {
                return Err(self.invalid(keys.key("audience"), "needs at least one non-empty audience"));
            }
            Some(list) => dedup(list),
        };
        let binding = self.client_binding(keys, raw.binding, public)?;
        let refresh_rotation = self.refresh_rotation(keys, raw.refresh_rotation.as_deref(), public, &grant_types)?;
        let family_lifetime = self.family_lifetime(
            keys,
            (raw.refresh_absolute_lifetime, raw.refresh_idle_timeout),
            refresh,
            &grant_types,
        )?;
        Ok(RegisteredClient {
            client_id,
            auth,
            grant_types,
            scope,
            audience,
            binding,
            refresh_rotation,
            family_lifetime,
            jwks_remote,
        })
    }

    /// The client's own family lifetimes, each defaulting to the server's;
    /// the idle timeout, as at the server, never above the absolute lifetime.
    fn family_lifetime(
        &self,
        keys: &Keys,
        (absolute, idle): (Option<String>, Option<String>),
        refresh: &RefreshSettings,
        grant_types: &[GrantType],
    ) -> Result<FamilyLifetime, ConfigError> {
        let refreshes = grant_types.contains(&GrantType::RefreshToken);
        for (name, written) in [
            ("refresh_absolute_lifetime", &absolute),
            ("refresh_idle_timeout", &idle),
        ] {
            if written.is_some() && !refreshes {
                return Err(self.invalid(keys.key(name), "only applies with the refresh_token grant"));
            }
        }
        let absolute = self.duration(
            keys.key("refresh_absolute_lifetime"),
            absolute,
            refresh.absolute_lifetime,
        )?;
        if absolute.is_zero() {
            return Err(self.invalid(keys.key("refresh_absolute_lifetime"), "must be above 0s"));
        }
        let idle_written = idle.is_some();
        let idle = self.duration(keys.key("refresh_idle_timeout"), idle, refresh.idle_timeout)?;
        // An inherited idle timeout longer than the client's own lifetime is
        // simply capped: the client asked for shorter families, and gets them.
        let idle = if idle_written { idle } else { idle.min(absolute) };
        if idle.is_zero() || idle > absolute {
            return Err(self.invalid(
                keys.key("refresh_idle_timeout"),
                format!(
                    "{} must be above 0s and at most the client's refresh_absolute_lifetime ({})",
                    format_duration(idle),
                    format_duration(absolute)
                ),
            ));
        }
        Ok(FamilyLifetime { absolute, idle })
    }

    fn refresh_rotation(
        &self,
        keys: &Keys,
        written: Option<&str>,
        public: bool,
        grant_types: &[GrantType],
    ) -> Result<RefreshRotation, ConfigError> {
        let key = || keys.key("refresh_rotation");
        match written {
            Some(_) if public => Err(self.invalid(
                key(),
                "a public client's (auth = \"none\") refresh tokens always rotate",
            )),
            Some(_) if !grant_types.contains(&GrantType::RefreshToken) => {
                Err(self.invalid(key(), "only applies with the refresh_token grant"))
            }
            None if public => Ok(RefreshRotation::Always),
            None | Some("never") => Ok(RefreshRotation::Never),
            Some("always") => Ok(RefreshRotation::Always),
            Some(other) => Err(self.invalid(key(), format!("{other:?}: expected \"never\" or \"always\""))),
        }
    }

    fn client_id(&self, keys: &Keys, raw: Option<String>) -> Result<String, ConfigError> {
        let Some(id) = raw else {
            return Err(self.invalid(keys.key("client_id"), "required"));
        };
        // VSCHAR is %x20-7E; a space at either end is a typo, never an identity.
        let printable = id.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if id.is_empty() || !printable || id.starts_with(' ') || id.ends_with(' ') {
            return Err(self.invalid(
                keys.key("client_id"),
                format!("{id:?}: must be non-empty printable ASCII (RFC 6749 appendix A.1), without leading or trailing spaces"),
            ));
        }
        Ok(id)
    }

    /// `auth` with the keys that only some methods take: `jwks` and the `tls_client_auth_*` names.
    fn client_auth(&self, keys: &Keys, raw: &mut RawClient) -> Result<ClientAuthMethod, ConfigError> {
        const METHODS: &str = "\"tls_client_auth\", \"self_signed_tls_client_auth\", \"private_key_jwt\" or \"none\"";
        let auth = raw
            .auth
            .take()
            .ok_or_else(|| self.invalid(keys.key("auth"), format!("required: {METHODS}")))?;
        let method = match auth.as_str() {
            "tls_client_auth" => Method::Tls,
            "self_signed_tls_client_auth" => Method::SelfSigned,
            "private_key_jwt" => Method::PrivateKeyJwt,
            "none" => Method::Public,
            other => return Err(self.invalid(keys.key("auth"), format!("{other:?}: expected {METHODS}"))),
        };
        let names = [
            ("tls_client_auth_subject_dn", raw.tls_client_auth_subject_dn.take()),
            ("tls_client_auth_san_uri", raw.tls_client_auth_san_uri.take()),
            ("tls_client_auth_san_dns", raw.tls_client_auth_san_dns.take()),
        ];
        let mut written = names.into_iter().filter_map(|(name, value)| value.map(|v| (name, v)));
        if method != Method::Tls
            && let Some((name, _)) = written.next()
        {
            return Err(self.invalid(keys.key(name), "only applies with auth = \"tls_client_auth\""));
        }
        let jwks_text = raw.jwks.take();
        if matches!(method, Method::Tls | Method::Public) && jwks_text.is_some() {
            return Err(self.invalid(
                keys.key("jwks"),
                "only applies with auth = \"self_signed_tls_client_auth\" or \"private_key_jwt\"",
            ));
        }
        let jwks = || match &jwks_text {
            None => Err(self.invalid(
                keys.key("jwks"),
                format!("required with auth = {auth:?}: a JWKS file or an https:// URL"),
            )),
            Some(text) => self.client_jwks(keys, text),
        };
        match method {
            Method::Tls => {
                const NAMES: &str = "tls_client_auth_subject_dn, tls_client_auth_san_uri, tls_client_auth_san_dns";
                let (name, value) = written.next().ok_or_else(|| {
                    self.invalid(
                        keys.key("auth"),
                        format!("\"tls_client_auth\" needs exactly one of {NAMES}"),
                    )
                })?;
                if let Some((second, _)) = written.next() {
                    return Err(self.invalid(
                        keys.key(second),
                        format!("set exactly one of {NAMES}; {name} is set too"),
                    ));
                }
                Ok(ClientAuthMethod::TlsClientAuth {
                    subject: self.certificate_subject(keys, name, value)?,
                })
            }
            Method::SelfSigned => Ok(ClientAuthMethod::SelfSignedTlsClientAuth { jwks: jwks()? }),
            Method::PrivateKeyJwt => Ok(ClientAuthMethod::PrivateKeyJwt { jwks: jwks()? }),
            Method::Public => Ok(ClientAuthMethod::None),
        }
    }

    fn certificate_subject(&self, keys: &Keys, name: &str, value: String) -> Result<CertificateSubject, ConfigError> {
        let bad = |why: String| self.invalid(keys.key(name), format!("{value:?}: {why}"));
        match name {
            "tls_client_auth_subject_dn" => DistinguishedName::parse(&value)
                .map(CertificateSubject::SubjectDn)
                .map_err(|e| bad(e.to_string())),
            "tls_client_auth_san_uri" => {
                if !is_absolute_uri(&value) {
                    return Err(bad("not an absolute URI like \"spiffe://example.org/svc-a\"".into()));
                }
                Ok(CertificateSubject::SanUri(value))
            }
            _ => {
                if !is_dns_name(&value) {
                    return Err(bad("not a DNS name like \"svc-a.example.org\"".into()));
                }
                Ok(CertificateSubject::SanDns(value.to_ascii_lowercase()))
            }
        }
    }

    /// A file (read now, so a broken one fails the load or the reload) or an https URL.
    fn client_jwks(&self, keys: &Keys, text: &str) -> Result<JwksSource, ConfigError> {
        if text.contains("://") {
            return Ok(JwksSource::Url(self.https_url(keys.key("jwks"), text)?));
        }
        let path = self.path(PathBuf::from(text));
        KeySet::from_file(&path).map_err(|e| self.unusable(keys.key("jwks"), &path, e))?;
        Ok(JwksSource::File(path))
    }

    fn grant_types(&self, keys: &Keys, raw: Option<Vec<String>>, public: bool) -> Result<Vec<GrantType>, ConfigError> {
        let key = || keys.key("grant_types");
        let names = raw.ok_or_else(|| self.invalid(key(), "required: the grants this client may use"))?;
        if names.is_empty() {
            return Err(self.invalid(key(), "needs at least one grant"));
        }
        let mut grants = Vec::with_capacity(names.len());
        for name in &names {
            let grant = GrantType::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = GrantType::ALL.iter().map(|g| g.name()).collect();
                self.invalid(
                    key(),
                    format!("{name:?} is not supported (supported: {})", known.join(", ")),
                )
            })?;
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        if public && grants.contains(&GrantType::ClientCredentials) {
            return Err(self.invalid(
                key(),
                "a public client (auth = \"none\") cannot use client_credentials: RFC 6749 section 4.4 needs a confidential client",
            ));
        }
        Ok(grants)
    }

    /// RFC 6749 section 3.3: scope tokens of `%x21 / %x23-5B / %x5D-7E`, separated by spaces.
    fn scope(&self, keys: &Keys, raw: Option<String>) -> Result<Vec<String>, ConfigError> {
        let text = raw.unwrap_or_default();
        let is_scope_char = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        let mut tokens: Vec<String> = Vec::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(self.invalid(
                    keys.key("scope"),
                    format!("{token:?} is not a scope token (RFC 6749 section 3.3: printable ASCII except '\"' and '\\', separated by spaces)"),
                ));
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_string());
            }
        }
        Ok(tokens)
    }

    fn client_binding(
        &self,
        keys: &Keys,
        raw: Option<Vec<String>>,
        public: bool,
    ) -> Result<BindingMethods, ConfigError> {
        let dpop_only = BindingMethods {
            mtls: false,
            dpop: true,
        };
        let Some(names) = raw else {
            // A public client has no certificate to be known by and must prove a DPoP key.
            return Ok(if public {
                dpop_only
            } else {
                BindingMethods { mtls: true, dpop: true }
            });
        };
        let mut binding = BindingMethods {
            mtls: false,
            dpop: false,
        };
        for name in &names {
            match name.as_str() {
                "mtls" => binding.mtls = true,
                "dpop" => binding.dpop = true,
                other => {
                    return Err(self.invalid(keys.key("binding"), format!("{other:?}: expected \"mtls\" or \"dpop\"")));
                }
            }
        }
        if binding
            == (BindingMethods {
                mtls: false,
                dpop: false,
            })
        {
            return Err(self.invalid(
                keys.key("binding"),
                "needs at least one of \"mtls\", \"dpop\": no token is ever issued unbound",
            ));
        }
        if public && binding != dpop_only {
            return Err(self.invalid(
                keys.key("binding"),
                "a public client (auth = \"none\") binds its tokens with DPoP only: [\"dpop\"]",
            ));
        }
        Ok(binding)
    }
}

/// `list` without repeats, in the order first written.
pub(super) fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// RFC 3986 section 3: a scheme, a colon, then something, with no spaces or control characters.
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !text.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// Letters, digits and hyphens in dot-separated labels of 1 to 63 bytes, 253 in all.
fn is_dns_name(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod lifetime_tests;
