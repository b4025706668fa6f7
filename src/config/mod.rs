//! `gateway.toml`: the raw schema as written by operators, and the validated
//! [`Config`] the rest of the gateway runs on.
//!
//! Parsing is strict on purpose: an unknown key is an error, not a silently
//! ignored typo, and every error names the file and the key at fault.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use crate::jose::Algorithm;
use serde::Deserialize;

mod authorization_server;
mod crl;
mod dn;
mod dpop;
mod loosened;
mod routes;
mod token;
mod trusted_proxy;
pub use authorization_server::{
    AuthorizationServerSettings, CertificateSubject, ClientAuthMethod, FamilyLifetime, GrantType, RefreshRotation,
    RefreshSettings, RegisteredClient, StoreLocation, SubjectIssuer,
};
pub use crl::{CrlExpired, CrlFetchSettings};
pub use dn::{DistinguishedName, DnError};
pub use dpop::{DpopSettings, ReplayStoreSettings, StoreFailure};
pub use routes::{AuthPolicy, BindingMethods, BindingMode, RouteSettings};
pub use token::{IssuerKeys, JwksSource, RemoteJwksSettings, TokenSettings, TypPolicy};
pub use trusted_proxy::{CLIENT_CERT, CLIENT_CERT_CHAIN, Cidr, ForwardedFormat, HopMatch, TrustedProxy};

/// Exit code for an invalid configuration (`EX_CONFIG` would be 78; design.md
/// fixes 64, `EX_USAGE`, so scripts can tell "bad config" from "crashed").
pub const EXIT_INVALID_CONFIG: i32 = 64;

/// `upstream.max_pinned_connections` when unset: enough for every client
/// of a busy sidecar to keep its own upstream connection, few enough that
/// an edge proxy with thousands of clients does not open thousands
/// upstream (past it, requests share the pool).
const DEFAULT_MAX_PINNED_CONNECTIONS: usize = 256;

/// A configuration problem, always naming the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    InvalidValue {
        file: PathBuf,
        key: Cow<'static, str>,
        reason: String,
    },
    #[error("{file}: key `{key}` names {path}: {reason}")]
    UnusableFile {
        file: PathBuf,
        key: Cow<'static, str>,
        path: PathBuf,
        reason: String,
    },
}

/// How the TLS layer treats client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// The handshake fails unless the client presents a certificate issued by `client_ca`.
    Required,
    /// A certificate from `client_ca` is verified when presented; requests
    /// without one fail at the HTTP layer unless their route needs no auth.
    Optional,
    /// RFC 8705 section 2.2: any certificate whose handshake signature proves
    /// possession of its key; the token binding is the only check.
    Any,
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
            ClientAuth::Any => "any",
        })
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths inside it are resolved against its directory.
    pub source: PathBuf,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    /// Every trusted issuer: `[token]` first, then each `[[issuer]]`.
    pub issuers: Vec<TokenSettings>,
    pub forward: ForwardSettings,
    pub admin: Option<AdminSettings>,
    pub limits: Limits,
    pub reload: ReloadSettings,
    /// `[[route]]` entries, as written; the route table is built from them.
    pub routes: Vec<RouteSettings>,
    pub dpop: DpopSettings,
    /// `[authorization_server]`: absent, no authorization server runs.
    pub authorization_server: Option<AuthorizationServerSettings>,
    /// `[[trusted_proxy]]` entries in file order: the first that matches a connection wins.
    pub trusted_proxies: Vec<TrustedProxy>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Absent only with `client_auth = "any"`.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// The `realm` of every `WWW-Authenticate` challenge.
    pub realm: String,
    /// Certificate revocation lists (PEM or DER) for client certificates.
    pub crls: Vec<PathBuf>,
    /// A forwarded-certificate header from a peer that is no trusted proxy
    /// is answered with 400 instead of being removed.
    pub reject_forwarded_cert_headers: bool,
    /// `crl_fetch = true`: CRLs are also fetched from the distribution
    /// points the CAs and client certificates name.
    pub crl_fetch: Option<CrlFetchSettings>,
    /// What an expired CRL means, fetched or from a file.
    pub crl_expired: CrlExpired,
}

#[derive(Debug, Clone)]
pub struct ReloadSettings {
    /// Poll the configuration and every file it names, reloading on change.
    pub watch_files: bool,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub url: http::Uri,
    /// CA bundle for an `https` upstream; the system trust store when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate and key for upstream mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send its response head.
    pub request_timeout: Duration,
    /// Upstream connections pinned to (or stashed for) HTTP/1.1 client
    /// connections, per upstream; 0 sends every request through the pool.
    pub max_pinned_connections: usize,
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub strip_authorization: bool,
    /// Header set upstream from a token claim, e.g. `x-auth-subject` <- `sub`.
    pub claim_headers: Vec<(HeaderName, String)>,
    pub headers_with_underscores: UnderscoreHeaders,
    /// Also send the client certificate upstream in RFC 9440's `Client-Cert`.
    pub client_cert_header: ClientCertHeader,
}

/// `forward.client_cert_header`: the certificate itself, beside bindgate's XFCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertHeader {
    /// XFCC only (hash, subject and names).
    None,
    /// `Client-Cert: :base64(DER):` as well.
    Rfc9440,
    /// And `Client-Cert-Chain`: the intermediates the client (or the
    /// trusted proxy) sent, when there are any.
    #[serde(rename = "rfc9440-chain")]
    Rfc9440Chain,
}

impl ClientCertHeader {
    /// Whether `Client-Cert` goes upstream.
    pub fn sends_cert(self) -> bool {
        self != ClientCertHeader::None
    }

    /// Whether `Client-Cert-Chain` goes upstream too.
    pub fn sends_chain(self) -> bool {
        self == ClientCertHeader::Rfc9440Chain
    }
}

/// What happens to an inbound header whose name holds `_`. CGI, WSGI, PHP
/// and Rack read `x_auth_subject` and `x-auth-subject` as one variable, so
/// such a name spelling a header the gateway sets is removed in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnderscoreHeaders {
    /// Forwarded as they are.
    Allow,
    /// Removed before forwarding (nginx's default).
    Drop,
    /// The request is refused with 400.
    Reject,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// Largest `application/x-www-form-urlencoded` body inspected for a smuggled token.
    pub max_form_bytes: usize,
    pub shutdown_grace: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Memory for verified tokens, so a reused token is verified once; 0 disables.
    pub token_cache_bytes: usize,
    /// How fast a request body must arrive.
    pub body_pace: BodyPace,
    /// Largest body the authorization server's token endpoint reads.
    pub max_token_request_bytes: usize,
    /// Largest forwarded certificate header (with its chain) read from a trusted proxy.
    pub max_forwarded_cert_bytes: usize,
}

/// `limits.body_read_timeout` and `limits.body_min_rate`: a request body may
/// stall at most `timeout`, and once `timeout` has passed since it started it
/// must have averaged `min_rate` bytes per second (0: stalls only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    pub timeout: Duration,
    pub min_rate: u64,
}

impl Config {
    /// Reads and validates `path`. Files named inside are checked when loaded,
    /// not here; the one exception is an authorization-server client's JWKS file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_path_buf(),
            message: authorization_server::redact_passwords(e.to_string().trim_end()).into_owned(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let v = Validator {
            file: path,
            base: &base,
        };
        let server = v.server(raw.server)?;
        let trusted_proxies = v.trusted_proxies(raw.trusted_proxy, server.client_auth)?;
        let admin = raw.admin.map(|a| v.admin(a)).transpose()?;
        let upstream = v.upstream(raw.upstream)?;
        // Before the issuers, wherever the table is in the file: the one
        // whose `issuer` is its issuer takes its keys from it.
        let authorization_server = raw
            .authorization_server
            .map(|a| v.authorization_server(a, &server, admin.as_ref()))
            .transpose()?;
        let embedded = authorization_server.as_ref().map(|a| a.issuer.as_str());
        Ok(Config {
            source: path.to_path_buf(),
            upstream,
            issuers: v.issuers(raw.token, raw.issuer, embedded)?,
            forward: v.forward(raw.forward.unwrap_or_default())?,
            limits: v.limits(raw.limits.unwrap_or_default())?,
            reload: v.reload(raw.reload.unwrap_or_default())?,
            routes: v.routes(raw.route)?,
            dpop: v.dpop(raw.dpop.unwrap_or_default())?,
            authorization_server,
            server,
            admin,
            trusted_proxies,
        })
    }

    /// The configuration file and every file it names: what a reload re-reads.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.source.clone(), self.server.cert.clone(), self.server.key.clone()];
        files.extend(self.server.client_ca.iter().cloned());
        files.extend(self.server.crls.iter().cloned());
        for issuer in &self.issuers {
            // The embedded issuer's signing keys are the authorization server's, watched below.
            if let IssuerKeys::Jwks(JwksSource::File(path)) = &issuer.keys {
                files.push(path.clone());
            }
            files.extend(issuer.remote.ca.iter().cloned());
        }
        files.extend(self.upstream.ca.iter().cloned());
        if let Some((cert, key)) = &self.upstream.client_cert {
            files.push(cert.clone());
            files.push(key.clone());
        }
        if let Some(nonce) = &self.dpop.nonce {
            files.extend(nonce.secret_files.iter().cloned());
        }
        if let Some(authorization_server) = &self.authorization_server {
            authorization_server.add_watched_files(&mut files);
        }
        files
    }

    /// Builds the error for a file named under `key` that exists but cannot be used.
    pub fn unusable(&self, key: impl Into<Cow<'static, str>>, path: &Path, reason: impl fmt::Display) -> ConfigError {
        ConfigError::UnusableFile {
            file: self.source.clone(),
            key: key.into(),
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

// ---- raw schema: exactly what the file may contain ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    upstream: RawUpstream,
    token: Option<token::RawToken>,
    #[serde(default)]
    issuer: Vec<token::RawToken>,
    forward: Option<RawForward>,
    admin: Option<RawAdmin>,
    limits: Option<RawLimits>,
    reload: Option<RawReload>,
    #[serde(default)]
    route: Vec<routes::RawRoute>,
    dpop: Option<dpop::RawDpop>,
    authorization_server: Option<authorization_server::RawAuthorizationServer>,
    #[serde(default)]
    trusted_proxy: Vec<trusted_proxy::RawTrustedProxy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReload {
    watch_files: Option<bool>,
    poll_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
    realm: Option<String>,
    crl: Option<Vec<PathBuf>>,
    reject_forwarded_cert_headers: Option<bool>,
    crl_fetch: Option<bool>,
    crl_expired: Option<CrlExpired>,
    crl_fetch_timeout: Option<String>,
    crl_fetch_max_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: String,
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    max_pinned_connections: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForward {
    strip_authorization: Option<bool>,
    claim_headers: Option<BTreeMap<String, String>>,
    headers_with_underscores: Option<UnderscoreHeaders>,
    client_cert_header: Option<ClientCertHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    handshake_timeout: Option<String>,
    header_read_timeout: Option<String>,
    max_header_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_form_bytes: Option<usize>,
    shutdown_grace: Option<String>,
    idle_timeout: Option<String>,
    token_cache_bytes: Option<usize>,
    body_read_timeout: Option<String>,
    body_min_rate: Option<u64>,
    max_token_request_bytes: Option<usize>,
    max_forwarded_cert_bytes: Option<usize>,
}

// ---- validation: raw -> typed, one error per bad key ----

struct Validator<'a> {
    file: &'a Path,
    base: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: impl Into<Cow<'static, str>>, reason: impl fmt::Display) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_path_buf(),
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    fn path(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() { p } else { self.base.join(p) }
    }

    fn socket_addr(&self, key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
        value.parse().map_err(|_| {
            self.invalid(
                key,
                format!("{value:?} is not an IP:port address (e.g. \"127.0.0.1:8443\")"),
            )
        })
    }

    fn duration(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => parse_duration(&text).map_err(|reason| self.invalid(key, reason)),
        }
    }

    /// An algorithm allow-list: names checked (never `none` or HMAC), repeats
    /// dropped, at least one; `default` when the key is absent.
    fn algorithms(
        &self,
        key: Cow<'static, str>,
        names: Option<Vec<String>>,
        default: &[Algorithm],
    ) -> Result<Vec<Algorithm>, ConfigError> {
        let Some(names) = names else {
            return Ok(default.to_vec());
        };
        let mut algs = Vec::with_capacity(names.len());
        for name in &names {
            let alg = Algorithm::from_name(name).map_err(|reason| self.invalid(key.clone(), reason))?;
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        if algs.is_empty() {
            return Err(self.invalid(key, "needs at least one algorithm"));
        }
        Ok(algs)
    }

    fn server(&self, raw: RawServer) -> Result<ServerSettings, ConfigError> {
        let client_auth = raw.client_auth.unwrap_or(ClientAuth::Required);
        let client_ca = raw.client_ca.map(|p| self.path(p));
        if client_ca.is_none() && client_auth != ClientAuth::Any {
            return Err(self.invalid(
                "server.client_ca",
                format!("required with client_auth = \"{client_auth}\""),
            ));
        }
        if client_auth == ClientAuth::Any && raw.crl.as_ref().is_some_and(|crls| !crls.is_empty()) {
            return Err(self.invalid(
                "server.crl",
                "revocation lists need a CA chain; they do not apply with client_auth = \"any\"",
            ));
        }
        let (crl_fetch, crl_expired) = self.crl_fetch(
            crl::RawCrl {
                fetch: raw.crl_fetch,
                expired: raw.crl_expired,
                fetch_timeout: raw.crl_fetch_timeout,
                fetch_max_bytes: raw.crl_fetch_max_bytes,
            },
            client_auth,
        )?;
        let realm = raw.realm.unwrap_or_else(|| "bindgate".to_string());
        if realm.is_empty() || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(self.invalid(
                "server.realm",
                "must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        Ok(ServerSettings {
            listen: self.socket_addr("server.listen", &raw.listen)?,
            cert: self.path(raw.cert),
            key: self.path(raw.key),
            client_ca,
            client_auth,
            realm,
            crls: raw.crl.unwrap_or_default().into_iter().map(|p| self.path(p)).collect(),
            reject_forwarded_cert_headers: raw.reject_forwarded_cert_headers.unwrap_or(false),
            crl_fetch,
            crl_expired,
        })
    }

    /// An `http`/`https` base URL; `context` prefixes the reason (e.g. which route).
    fn upstream_url(&self, key: &'static str, text: &str, context: &str) -> Result<http::Uri, ConfigError> {
        let url: http::Uri = text
            .parse()
            .map_err(|e| self.invalid(key, format!("{context}{text:?} is not a URL: {e}")))?;
        match url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(self.invalid(key, format!("{context}scheme must be http or https"))),
        }
        if url.authority().is_none() {
            return Err(self.invalid(key, format!("{context}must name a host, e.g. http://127.0.0.1:8080")));
        }
        if url.query().is_some() {
            return Err(self.invalid(key, format!("{context}must not carry a query string")));
        }
        Ok(url)
    }

    fn upstream(&self, raw: RawUpstream) -> Result<UpstreamSettings, ConfigError> {
        let url = self.upstream_url("upstream.url", &raw.url, "")?;
        let is_https = url.scheme_str() == Some("https");
        if !is_https && (raw.ca.is_some() || raw.client_cert.is_some() || raw.client_key.is_some()) {
            return Err(self.invalid("upstream.url", "ca, client_cert and client_key need an https upstream"));
        }
        let client_cert = match (raw.client_cert, raw.client_key) {
            (Some(c), Some(k)) => Some((self.path(c), self.path(k))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.invalid("upstream.client_key", "required with upstream.client_cert"));
            }
            (None, Some(_)) => {
                return Err(self.invalid("upstream.client_cert", "required with upstream.client_key"));
            }
        };
        Ok(UpstreamSettings {
            url,
            ca: raw.ca.map(|p| self.path(p)),
            client_cert,
            connect_timeout: self.duration("upstream.connect_timeout", raw.connect_timeout, Duration::from_secs(5))?,
            request_timeout: self.duration("upstream.request_timeout", raw.request_timeout, Duration::from_secs(30))?,
            max_pinned_connections: raw.max_pinned_connections.unwrap_or(DEFAULT_MAX_PINNED_CONNECTIONS),
        })
    }

    fn forward(&self, raw: RawForward) -> Result<ForwardSettings, ConfigError> {
        let claim_headers = match raw.claim_headers {
            None => vec![(HeaderName::from_static("x-auth-subject"), "sub".to_string())],
            Some(map) => {
                let mut list = Vec::with_capacity(map.len());
                for (header, claim) in map {
                    let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                        self.invalid(
                            "forward.claim_headers",
                            format!("{header:?} is not a valid header name"),
                        )
                    })?;
                    if claim.is_empty() {
                        return Err(self.invalid("forward.claim_headers", format!("{header:?} names an empty claim")));
                    }
                    list.push((name, claim));
                }
                list
            }
        };
        Ok(ForwardSettings {
            strip_authorization: raw.strip_authorization.unwrap_or(false),
            claim_headers,
            headers_with_underscores: raw.headers_with_underscores.unwrap_or(UnderscoreHeaders::Drop),
            client_cert_header: raw.client_cert_header.unwrap_or(ClientCertHeader::None),
        })
    }

    fn admin(&self, raw: RawAdmin) -> Result<AdminSettings, ConfigError> {
        Ok(AdminSettings {
            listen: self.socket_addr("admin.listen", &raw.listen)?,
        })
    }

    fn reload(&self, raw: RawReload) -> Result<ReloadSettings, ConfigError> {
        let poll_interval = self.duration("reload.poll_interval", raw.poll_interval, Duration::from_secs(2))?;
        if poll_interval < Duration::from_millis(100) {
            return Err(self.invalid("reload.poll_interval", "must be at least 100ms"));
        }
        Ok(ReloadSettings {
            watch_files: raw.watch_files.unwrap_or(true),
            poll_interval,
        })
    }

    fn limits(&self, raw: RawLimits) -> Result<Limits, ConfigError> {
        let max_header_bytes = raw.max_header_bytes.unwrap_or(64 * 1024);
        // hyper refuses read buffers below 8 KiB.
        if max_header_bytes < 8192 {
            return Err(self.invalid("limits.max_header_bytes", "must be at least 8192"));
        }
        let max_connections = raw.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            return Err(self.invalid("limits.max_connections", "must be at least 1"));
        }
        // A client assertion and a DPoP-bound request already take about 1 KiB.
        let max_token_request_bytes = raw.max_token_request_bytes.unwrap_or(64 * 1024);
        if max_token_request_bytes < 1024 {
            return Err(self.invalid("limits.max_token_request_bytes", "must be at least 1024"));
        }
        // A P-256 leaf is about 700 bytes of DER; an RSA-4096 one with a chain of two is about 8 KiB in base64.
        let max_forwarded_cert_bytes = raw.max_forwarded_cert_bytes.unwrap_or(10 * 1024);
        if !(1024..=max_header_bytes).contains(&max_forwarded_cert_bytes) {
            return Err(self.invalid(
                "limits.max_forwarded_cert_bytes",
                format!("must be between 1024 and limits.max_header_bytes ({max_header_bytes})"),
            ));
        }
        Ok(Limits {
            handshake_timeout: self.duration(
                "limits.handshake_timeout",
                raw.handshake_timeout,
                Duration::from_secs(10),
            )?,
            header_read_timeout: self.duration(
                "limits.header_read_timeout",
                raw.header_read_timeout,
                Duration::from_secs(10),
            )?,
            max_header_bytes,
            max_connections,
            max_form_bytes: raw.max_form_bytes.unwrap_or(1024 * 1024),
            shutdown_grace: self.duration("limits.shutdown_grace", raw.shutdown_grace, Duration::from_secs(30))?,
            idle_timeout: self.duration("limits.idle_timeout", raw.idle_timeout, Duration::from_secs(60))?,
            token_cache_bytes: raw.token_cache_bytes.unwrap_or(16 * 1024 * 1024),
            body_pace: self.body_pace(raw.body_read_timeout, raw.body_min_rate)?,
            max_token_request_bytes,
            max_forwarded_cert_bytes,
        })
    }

    fn body_pace(&self, timeout: Option<String>, min_rate: Option<u64>) -> Result<BodyPace, ConfigError> {
        let timeout = self.duration("limits.body_read_timeout", timeout, Duration::from_secs(30))?;
        if timeout < Duration::from_millis(100) {
            return Err(self.invalid("limits.body_read_timeout", "must be at least 100ms"));
        }
        Ok(BodyPace {
            timeout,
            // Apache mod_reqtimeout's MinRate is 500; slower than 1 KiB/s
            // after the grace is a trickle, not an upload.
            min_rate: min_rate.unwrap_or(1024),
        })
    }
}

/// The longest duration any key accepts. Every timer and deadline stays far
/// from `Instant`/`Duration` overflow (a `timeout * 2` or `now + ttl` never
/// panics), and no legitimate setting is anywhere near it.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"30d"`: an integer and a unit,
/// nothing else, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"250ms\", \"10s\", \"5m\""))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "d" => 24 * 3600 * 1000,
        _ => return Err(format!("{text:?}: unit must be ms, s, m, h or d")),
    };
    let too_long = || {
        format!(
            "{text:?} is longer than the longest duration accepted, {}",
            format_duration(MAX_DURATION)
        )
    };
    let millis = value.checked_mul(millis_per_unit).ok_or_else(too_long)?;
    let duration = Duration::from_millis(millis);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// A duration in the largest unit that states it exactly, as `gateway.toml`
/// would write it: `"90s"`, `"5m"`, `"250ms"`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let units = [
        (24 * 3600 * 1000, "d"),
        (3600 * 1000, "h"),
        (60 * 1000, "m"),
        (1000, "s"),
    ];
    for (size, unit) in units {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// The smallest valid configuration, for tests of any section.
#[cfg(test)]
pub(crate) const MINIMAL_FOR_TESTS: &str = r#"
        [server]
        listen = "127.0.0.1:8443"
        cert = "certs/server.pem"
        key = "certs/server-key.pem"
        client_ca = "certs/ca.pem"

        [upstream]
        url = "http://127.0.0.1:8080"

        [token]
        issuer = "https://issuer.example"
        audience = ["https://api.example"]
        jwks = "certs/jwks.json"
    "#;

#[cfg(test)]
mod tests;
