//! `[authorization_server]`: the embedded OAuth authorization server, its
//! listener, signing keys, token lifetimes and family store. Its clients,
//! `[[authorization_server.client]]`, are in [`client`]; the identity
//! providers whose tokens a token exchange accepts,
//! `[[authorization_server.subject_issuer]]`, in [`subject_issuer`].

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{AdminSettings, ConfigError, ServerSettings, Validator, format_duration};
use crate::jose::Algorithm;

mod client;
mod subject_issuer;
pub use client::{CertificateSubject, ClientAuthMethod, FamilyLifetime, GrantType, RefreshRotation, RegisteredClient};
pub use subject_issuer::SubjectIssuer;

const TABLE: &str = "authorization_server";

/// The validated `[authorization_server]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationServerSettings {
    /// The `iss` of its tokens and of its metadata, exactly as written.
    pub issuer: String,
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CAs for `tls_client_auth` clients; absent only when no client uses it.
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    /// PEM private keys; the first signs, all are published.
    pub signing_keys: Vec<PathBuf>,
    pub access_token_ttl: Duration,
    pub store: StoreLocation,
    pub refresh: RefreshSettings,
    /// RFC 9449 section 8 nonces at the token endpoint.
    pub dpop_require_nonce: bool,
    /// Algorithms a `private_key_jwt` client assertion may be signed with.
    pub assertion_algorithms: Vec<Algorithm>,
    /// `[[authorization_server.client]]`, in file order; `client_id`s are unique.
    pub clients: Vec<RegisteredClient>,
    /// `[[authorization_server.subject_issuer]]`, in file order; `issuer`s are unique.
    pub subject_issuers: Vec<SubjectIssuer>,
}

/// Lifetimes of a refresh-token family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSettings {
    /// A family never outlives this; rotation does not extend it.
    pub absolute_lifetime: Duration,
    /// A family unused for this long is dead. Never above `absolute_lifetime`.
    pub idle_timeout: Duration,
    /// How long the previous token may be retried after a lost response; zero disables it.
    pub grace: Duration,
}

/// Where refresh-token families are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite database file (resolved against the config file's directory).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, shared by replicas. It may hold a
    /// password, so `Debug` and `Display` print it redacted.
    Postgres(String),
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_passwords(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreLocation::Postgres(url) => f.debug_tuple("Postgres").field(&redact_passwords(url)).finish(),
        }
    }
}

impl AuthorizationServerSettings {
    /// Adds the files a reload re-reads for it, those [`Config`](super::Config)
    /// does not already watch for `[server]`. Not the store: it changes all the time.
    pub(super) fn add_watched_files(&self, files: &mut Vec<PathBuf>) {
        let jwks_files = self
            .clients
            .iter()
            .filter_map(|client| client.auth.jwks_file())
            .chain(self.subject_issuers.iter().filter_map(SubjectIssuer::jwks_file));
        let own = [&self.cert, &self.key]
            .into_iter()
            .chain(&self.client_ca)
            .chain(&self.crls)
            .chain(&self.signing_keys)
            .chain(jwks_files);
        for file in own {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
    }
}

/// Replaces the password of every `scheme://user:password@` in `text`, and
/// every `password=` parameter value, with `***`: store URLs must never
/// reach a log or a terminal with their password, not even quoted in a
/// syntax error's excerpt of the file.
pub(super) fn redact_passwords(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !text.contains("://") && !lower.contains("password=") {
        return Cow::Borrowed(text);
    }
    let ends_value = |c: char| matches!(c, '"' | '\'' | '`') || c.is_whitespace();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_len = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends_value(c))
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        let user_and_host = authority.rfind('@').and_then(|at_sign| {
            let userinfo = &authority[..at_sign];
            userinfo
                .find(':')
                .map(|colon| (&userinfo[..colon], &authority[at_sign..]))
        });
        match user_and_host {
            Some((user, host)) => {
                out.push_str(user);
                out.push_str(":***");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    // libpq also takes the password as a parameter: `?password=...`.
    let lower = out.to_ascii_lowercase();
    let mut redacted = String::with_capacity(out.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find("password=") {
        let value_start = from + found + "password=".len();
        redacted.push_str(&out[from..value_start]);
        redacted.push_str("***");
        let value_len = out[value_start..]
            .find(|c: char| c == '&' || ends_value(c))
            .unwrap_or(out.len() - value_start);
        from = value_start + value_len;
    }
    redacted.push_str(&out[from..]);
    Cow::Owned(redacted)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorizationServer {
    issuer: Option<String>,
    listen: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    crl: Option<Vec<PathBuf>>,
    signing_keys: Option<Vec<PathBuf>>,
    access_token_ttl: Option<String>,
    store: Option<String>,
    refresh_absolute_lifetime: Option<String>,
    refresh_idle_timeout: Option<String>,
    refresh_grace: Option<String>,
    dpop_require_nonce: Option<bool>,
    assertion_algorithms: Option<Vec<String>>,
    #[serde(default)]
    client: Vec<client::RawClient>,
    #[serde(default)]
    subject_issuer: Vec<subject_issuer::RawSubjectIssuer>,
}

/// The longest access token lifetime accepted: a bound token is still a
/// bearer of authority until it expires, and nothing revokes an at+jwt early.
const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest retry window for a lost refresh response; every second of it
/// is a second in which a stolen predecessor is not yet reuse.
const MAX_REFRESH_GRACE: Duration = Duration::from_secs(300);

impl Validator<'_> {
    pub(super) fn authorization_server(
        &self,
        raw: RawAuthorizationServer,
        server: &ServerSettings,
        admin: Option<&AdminSettings>,
    ) -> Result<AuthorizationServerSettings, ConfigError> {
        let required = |key: &'static str| self.invalid(format!("{TABLE}.{key}"), "required");
        let issuer = self.issuer(raw.issuer.ok_or_else(|| required("issuer"))?)?;
        let listen = self.as_listen(&raw.listen.ok_or_else(|| required("listen"))?, server, admin)?;
        let signing_keys = self.signing_keys(raw.signing_keys.ok_or_else(|| required("signing_keys"))?)?;
        let access_token_ttl = self.access_token_ttl(raw.access_token_ttl)?;
        let refresh = self.refresh(
            raw.refresh_absolute_lifetime,
            raw.refresh_idle_timeout,
            raw.refresh_grace,
        )?;
        let clients = self.clients(raw.client, &refresh)?;
        let subject_issuers = self.subject_issuers(raw.subject_issuer, &issuer)?;
        self.exchanges_have_subject_issuers(&clients, &subject_issuers)?;
        let (client_ca, crls) = self.client_trust(raw.client_ca, raw.crl, server, &clients)?;
        Ok(AuthorizationServerSettings {
            issuer,
            listen,
            cert: raw.cert.map(|p| self.path(p)).unwrap_or_else(|| server.cert.clone()),
            key: raw.key.map(|p| self.path(p)).unwrap_or_else(|| server.key.clone()),
            client_ca,
            crls,
            signing_keys,
            access_token_ttl,
            store: self.store(raw.store)?,
            refresh,
            dpop_require_nonce: raw.dpop_require_nonce.unwrap_or(false),
            assertion_algorithms: self.algorithms(
                "authorization_server.assertion_algorithms".into(),
                raw.assertion_algorithms,
                &Algorithm::DEFAULT_ALLOWED,
            )?,
            clients,
            subject_issuers,
        })
    }

    /// A client may use the token exchange grant only if some issuer's
    /// tokens can be exchanged: otherwise every exchange would be refused.
    fn exchanges_have_subject_issuers(
        &self,
        clients: &[RegisteredClient],
        subject_issuers: &[SubjectIssuer],
    ) -> Result<(), ConfigError> {
        let exchanging = clients
            .iter()
            .position(|c| c.grant_types.contains(&GrantType::TokenExchange));
        match exchanging {
            Some(index) if subject_issuers.is_empty() => Err(self.invalid(
                format!("{TABLE}.client[{index}].grant_types"),
                format!(
                    "{:?} needs at least one [[authorization_server.subject_issuer]]: the identity provider whose tokens it exchanges",
                    GrantType::TokenExchange.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn access_token_ttl(&self, text: Option<String>) -> Result<Duration, ConfigError> {
        let key = "authorization_server.access_token_ttl";
        let ttl = self.duration(key, text, Duration::from_secs(300))?;
        if ttl.is_zero() || ttl > MAX_ACCESS_TOKEN_TTL {
            return Err(self.invalid(
                key,
                format!("must be above 0s and at most {}", format_duration(MAX_ACCESS_TOKEN_TTL)),
            ));
        }
        Ok(ttl)
    }

    /// `client_ca` and `crl`. Both are inherited from `[server]` when
    /// `client_ca` is not written; an own `client_ca` comes with its own
    /// CRLs or none, since `[server]`'s speak for another CA.
    fn client_trust(
        &self,
        client_ca: Option<PathBuf>,
        crl: Option<Vec<PathBuf>>,
        server: &ServerSettings,
        clients: &[RegisteredClient],
    ) -> Result<(Option<PathBuf>, Vec<PathBuf>), ConfigError> {
        let (client_ca, inherited_crls) = match client_ca {
            Some(ca) => (Some(self.path(ca)), Vec::new()),
            None => (server.client_ca.clone(), server.crls.clone()),
        };
        let tls_client = clients
            .iter()
            .enumerate()
            .find(|(_, c)| matches!(c.auth, ClientAuthMethod::TlsClientAuth { .. }));
        if client_ca.is_none()
            && let Some((index, client)) = tls_client
        {
            return Err(self.invalid(
                "authorization_server.client_ca",
                format!(
                    "required (and [server] has none to inherit): client[{index}] ({:?}) uses tls_client_auth, whose certificate must chain to a CA",
                    client.client_id
                ),
            ));
        }
        let crls = match crl {
            Some(crls) if !crls.is_empty() && client_ca.is_none() => {
                return Err(self.invalid(
                    "authorization_server.crl",
                    "revocation lists need a CA chain; set client_ca",
                ));
            }
            Some(crls) => crls.into_iter().map(|p| self.path(p)).collect(),
            None => inherited_crls,
        };
        Ok((client_ca, crls))
    }

    /// RFC 8414 section 2: an https URL with no query or fragment.
    fn issuer(&self, text: String) -> Result<String, ConfigError> {
        let bad = |why: &str| self.invalid("authorization_server.issuer", format!("{text:?}: {why}"));
        let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none_or(str::is_empty) {
            return Err(bad(
                "must be an absolute https:// URL, e.g. \"https://auth.example.com\"",
            ));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(bad("must not carry a query or a fragment (RFC 8414 section 2)"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("must not carry userinfo"));
        }
        Ok(text)
    }

    fn as_listen(
        &self,
        text: &str,
        server: &ServerSettings,
        admin: Option<&AdminSettings>,
    ) -> Result<SocketAddr, ConfigError> {
        let listen = self.socket_addr("authorization_server.listen", text)?;
        let taken = [
            Some(("server.listen", server.listen)),
            admin.map(|a| ("admin.listen", a.listen)),
        ];
        if let Some((other, _)) = taken.into_iter().flatten().find(|(_, addr)| overlaps(listen, *addr)) {
            return Err(self.invalid(
                "authorization_server.listen",
                format!("{listen} is also {other}; the authorization server needs its own listener"),
            ));
        }
        Ok(listen)
    }

    fn signing_keys(&self, keys: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
        let key = "authorization_server.signing_keys";
        if keys.is_empty() {
            return Err(self.invalid(key, "needs at least one PEM private key; the first signs"));
        }
        let mut resolved: Vec<PathBuf> = Vec::with_capacity(keys.len());
        for path in keys {
            let path = self.path(path);
            if resolved.contains(&path) {
                return Err(self.invalid(key, format!("{} is listed twice", path.display())));
            }
            resolved.push(path);
        }
        Ok(resolved)
    }

    fn store(&self, text: Option<String>) -> Result<StoreLocation, ConfigError> {
        let key = "authorization_server.store";
        let Some(text) = text else {
            return Ok(StoreLocation::Sqlite(self.path(PathBuf::from("as.db"))));
        };
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() || path.starts_with("//") {
                return Err(self.invalid(
                    key,
                    format!(
                        "{text:?}: write sqlite:<path>, e.g. \"sqlite:as.db\" or \"sqlite:/var/lib/bindgate/as.db\""
                    ),
                ));
            }
            return Ok(StoreLocation::Sqlite(self.path(PathBuf::from(path))));
        }
        let shown = redact_passwords(&text);
        let rest = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.contains(|c: char| c.is_whitespace() || c.is_control()) => {
                Ok(StoreLocation::Postgres(self.resolve_sslrootcert(&text)))
            }
            Some(_) => Err(self.invalid(
                key,
                format!("{shown:?}: a postgres URL names a host or a database, without spaces"),
            )),
            None => Err(self.invalid(
                key,
                format!("{shown:?}: expected \"sqlite:<path>\" or a postgres:// URL"),
            )),
        }
    }

    /// A relative `sslrootcert=` is relative to the configuration file, as
    /// every other path in it is, not to wherever bindgate was started.
    fn resolve_sslrootcert(&self, url: &str) -> String {
        let Some((base, query)) = url.split_once('?') else {
            return url.to_string();
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.strip_prefix("sslrootcert=") {
                Some(path) if !path.is_empty() => {
                    format!("sslrootcert={}", self.path(PathBuf::from(path)).display())
                }
                _ => pair.to_string(),
            })
            .collect();
        format!("{base}?{}", pairs.join("&"))
    }

    fn refresh(
        &self,
        absolute: Option<String>,
        idle: Option<String>,
        grace: Option<String>,
    ) -> Result<RefreshSettings, ConfigError> {
        let idle_written = idle.is_some();
        let absolute_lifetime = self.duration(
            "authorization_server.refresh_absolute_lifetime",
            absolute,
            Duration::from_secs(30 * 24 * 3600),
        )?;
        if absolute_lifetime.is_zero() {
            return Err(self.invalid("authorization_server.refresh_absolute_lifetime", "must be above 0s"));
        }
        let idle_timeout = self.duration(
            "authorization_server.refresh_idle_timeout",
            idle,
            Duration::from_secs(14 * 24 * 3600),
        )?;
        if idle_timeout.is_zero() || idle_timeout > absolute_lifetime {
            return Err(self.invalid(
                "authorization_server.refresh_idle_timeout",
                format!(
                    "{}{} must be above 0s and at most refresh_absolute_lifetime ({})",
                    format_duration(idle_timeout),
                    if idle_written { "" } else { " (the default)" },
                    format_duration(absolute_lifetime)
                ),
            ));
        }
        let grace = self.duration("authorization_server.refresh_grace", grace, Duration::from_secs(60))?;
        if grace > MAX_REFRESH_GRACE {
            return Err(self.invalid(
                "authorization_server.refresh_grace",
                format!("must be at most {}", format_duration(MAX_REFRESH_GRACE)),
            ));
        }
        Ok(RefreshSettings {
            absolute_lifetime,
            idle_timeout,
            grace,
        })
    }

    fn unusable(&self, key: Cow<'static, str>, path: &std::path::Path, reason: impl fmt::Display) -> ConfigError {
        ConfigError::UnusableFile {
            file: self.file.to_path_buf(),
            key,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Whether binding `a` would collide with a listener on `b`. Port 0 never
/// collides (the kernel picks); a wildcard address covers its own family,
/// and IPv6's covers IPv4 too (Linux binds `[::]` dual-stack).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |x: SocketAddr, y: SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
