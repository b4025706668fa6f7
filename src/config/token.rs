//! `[token]` and `[[issuer]]`: which issuers are trusted, for which
//! audiences, with which keys and algorithms.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};
use crate::jose::Algorithm;

/// Where a trusted issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWKS document: a file, a URL, or one found by discovery.
    Jwks(JwksSource),
    /// The embedded authorization server's key ring, read in-process:
    /// nothing to fetch, so nothing to cache or refresh, and a rotation
    /// takes effect with the reload that makes it.
    Embedded,
}

impl fmt::Display for IssuerKeys {
    /// Where the keys are, as `check` and the demo print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssuerKeys::Jwks(JwksSource::File(path)) => write!(f, "{}", path.display()),
            IssuerKeys::Jwks(JwksSource::Url(url) | JwksSource::Discovery(url)) => write!(f, "{url}"),
            IssuerKeys::Embedded => f.write_str("the embedded authorization server, in-process"),
        }
    }
}

/// Where a JWKS document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// The issuer's `jwks_uri`.
    Url(http::Uri),
    /// OpenID Connect discovery or RFC 8414 metadata naming `jwks_uri`.
    Discovery(http::Uri),
}

/// How keys fetched over HTTPS are cached and refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwksSettings {
    /// CA bundle to verify the issuer's TLS certificate; the system store when absent.
    pub ca: Option<PathBuf>,
    /// Refresh interval when the response carries no `Cache-Control: max-age`.
    pub refresh: Duration,
    /// Bounds applied to `max-age`.
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    /// Least time between two fetches caused by tokens naming an unknown `kid`.
    pub refetch_cooldown: Duration,
    pub timeout: Duration,
}

impl RemoteJwksSettings {
    /// The `[token]` defaults (refresh 5 min within 30 s to a day, cooldown
    /// 10 s, timeout 5 s), verifying the server against `ca` or the system store.
    pub fn defaults(ca: Option<PathBuf>) -> RemoteJwksSettings {
        RemoteJwksSettings {
            ca,
            refresh: Duration::from_secs(300),
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(86_400),
            refetch_cooldown: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Which token `typ` header values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypPolicy {
    /// `at+jwt`, `application/at+jwt`, `JWT` or absent.
    Lenient,
    /// Only `at+jwt` / `application/at+jwt` (RFC 9068).
    RequireAtJwt,
    /// Any `typ` or none, except those of JWTs that are never a token
    /// exchange's subject token: `dpop+jwt`, `logout+jwt`, `secevent+jwt`
    /// (each also with `application/`). For an identity provider's tokens,
    /// typed as it pleases (`JWT`, `at+jwt`, vendor types, none); never
    /// chosen by `gateway.toml`'s `[token]`.
    SubjectToken,
}

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Where it was configured (`token` or `issuer[N]`), for messages.
    pub section: String,
    pub issuer: String,
    pub audience: Vec<String>,
    pub keys: IssuerKeys,
    /// Used only for keys fetched ([`JwksSource::Url`], [`JwksSource::Discovery`]);
    /// always the defaults for [`IssuerKeys::Embedded`], which refuses the knobs.
    pub remote: RemoteJwksSettings,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub typ: TypPolicy,
    pub max_size: usize,
    /// The furthest ahead a token's `exp` may be (plus `leeway`); unlimited when absent.
    pub max_lifetime: Option<Duration>,
}

impl TokenSettings {
    /// `leeway` when not written.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// `max_size` when not written.
    pub const DEFAULT_MAX_SIZE: usize = 16 * 1024;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    issuer: String,
    audience: OneOrMany,
    jwks: Option<String>,
    discovery: Option<String>,
    jwks_ca: Option<PathBuf>,
    jwks_refresh: Option<String>,
    jwks_refresh_min: Option<String>,
    jwks_refresh_max: Option<String>,
    jwks_refetch_cooldown: Option<String>,
    jwks_timeout: Option<String>,
    algorithms: Option<Vec<String>>,
    leeway: Option<String>,
    require_typ: Option<String>,
    max_size: Option<usize>,
    max_lifetime: Option<String>,
}

impl RawToken {
    /// The first `jwks_*` knob written (in the README's order): they tune
    /// fetching, so one written where nothing is fetched is a mistake.
    fn first_remote_knob(&self) -> Option<&'static str> {
        [
            ("jwks_ca", self.jwks_ca.is_some()),
            ("jwks_refresh", self.jwks_refresh.is_some()),
            ("jwks_refresh_min", self.jwks_refresh_min.is_some()),
            ("jwks_refresh_max", self.jwks_refresh_max.is_some()),
            ("jwks_refetch_cooldown", self.jwks_refetch_cooldown.is_some()),
            ("jwks_timeout", self.jwks_timeout.is_some()),
        ]
        .into_iter()
        .find_map(|(name, written)| written.then_some(name))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Validator<'_> {
    /// `[token]` and `[[issuer]]` together: at least one, issuers unique.
    /// `embedded` is `[authorization_server] issuer`, when there is one.
    pub(super) fn issuers(
        &self,
        token: Option<RawToken>,
        more: Vec<RawToken>,
        embedded: Option<&str>,
    ) -> Result<Vec<TokenSettings>, ConfigError> {
        let mut issuers = Vec::with_capacity(1 + more.len());
        if let Some(raw) = token {
            issuers.push(self.token("token".into(), raw, embedded)?);
        }
        for (index, raw) in more.into_iter().enumerate() {
            issuers.push(self.token(format!("issuer[{index}]").into(), raw, embedded)?);
        }
        if issuers.is_empty() {
            return Err(self.invalid("token", "a [token] table or at least one [[issuer]] is required"));
        }
        for (i, issuer) in issuers.iter().enumerate() {
            if issuers[..i].iter().any(|other| other.issuer == issuer.issuer) {
                return Err(self.invalid("issuer.issuer", format!("{:?} is configured twice", issuer.issuer)));
            }
        }
        Ok(issuers)
    }

    fn token(
        &self,
        section: Cow<'static, str>,
        raw: RawToken,
        embedded: Option<&str>,
    ) -> Result<TokenSettings, ConfigError> {
        let key = |name: &str| -> Cow<'static, str> { format!("{section}.{name}").into() };
        if raw.issuer.is_empty() {
            return Err(self.invalid(key("issuer"), "must not be empty"));
        }
        let keys = self.issuer_keys(&key, &raw, embedded)?;
        let audience = match raw.audience {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(list) => list,
        };
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(self.invalid(key("audience"), "needs at least one non-empty audience"));
        }
        let remote = RemoteJwksSettings {
            ca: raw.jwks_ca.map(|p| self.path(p)),
            refresh: self.duration(key("jwks_refresh"), raw.jwks_refresh, Duration::from_secs(300))?,
            refresh_min: self.duration(key("jwks_refresh_min"), raw.jwks_refresh_min, Duration::from_secs(30))?,
            refresh_max: self.duration(
                key("jwks_refresh_max"),
                raw.jwks_refresh_max,
                Duration::from_secs(86_400),
            )?,
            refetch_cooldown: self.duration(
                key("jwks_refetch_cooldown"),
                raw.jwks_refetch_cooldown,
                Duration::from_secs(10),
            )?,
            timeout: self.duration(key("jwks_timeout"), raw.jwks_timeout, Duration::from_secs(5))?,
        };
        if remote.refresh_min > remote.refresh_max || remote.refresh_min.is_zero() {
            return Err(self.invalid(
                key("jwks_refresh_min"),
                "must be above zero and not above jwks_refresh_max",
            ));
        }
        let algorithms = self.algorithms(key("algorithms"), raw.algorithms, &Algorithm::DEFAULT_ALLOWED)?;
        let typ = match raw.require_typ.as_deref() {
            None => TypPolicy::Lenient,
            Some(t) if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => {
                TypPolicy::RequireAtJwt
            }
            Some(other) => {
                return Err(self.invalid(key("require_typ"), format!("{other:?}: only \"at+jwt\" is supported")));
            }
        };
        let max_size = raw.max_size.unwrap_or(TokenSettings::DEFAULT_MAX_SIZE);
        if max_size < 64 {
            return Err(self.invalid(key("max_size"), "must be at least 64 bytes"));
        }
        let max_lifetime = match raw.max_lifetime {
            None => None,
            Some(text) => {
                let max = self.duration(key("max_lifetime"), Some(text), Duration::ZERO)?;
                if max.is_zero() {
                    return Err(self.invalid(key("max_lifetime"), "must be above zero"));
                }
                Some(max)
            }
        };
        Ok(TokenSettings {
            section: section.to_string(),
            issuer: raw.issuer,
            audience,
            keys,
            remote,
            algorithms,
            leeway: self.duration(key("leeway"), raw.leeway, TokenSettings::DEFAULT_LEEWAY)?,
            typ,
            max_size,
            max_lifetime,
        })
    }

    /// `jwks` or `discovery`; neither for the embedded issuer, compared
    /// exactly as a token's `iss` is, which then takes no `jwks_*` knob.
    fn issuer_keys(
        &self,
        key: &impl Fn(&str) -> Cow<'static, str>,
        raw: &RawToken,
        embedded: Option<&str>,
    ) -> Result<IssuerKeys, ConfigError> {
        let source = match (&raw.jwks, &raw.discovery) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(key("discovery"), "set either jwks or discovery, not both"));
            }
            (None, None) if embedded == Some(raw.issuer.as_str()) => {
                if let Some(knob) = raw.first_remote_knob() {
                    return Err(self.invalid(
                        key(knob),
                        "tunes fetching keys over https://, and this issuer is the embedded authorization \
                         server's: its keys are read in-process, with nothing to fetch",
                    ));
                }
                return Ok(IssuerKeys::Embedded);
            }
            (None, None) => {
                let reason = match embedded {
                    None => "required (a file path or an https:// URL)".to_string(),
                    Some(embedded) => format!(
                        "required (a file path or an https:// URL); only the embedded authorization \
                         server's issuer, {embedded:?}, needs none, and this one is {:?}",
                        raw.issuer
                    ),
                };
                return Err(self.invalid(key("jwks"), reason));
            }
            (None, Some(url)) => JwksSource::Discovery(self.https_url(key("discovery"), url)?),
            (Some(text), None) if text.contains("://") => JwksSource::Url(self.https_url(key("jwks"), text)?),
            (Some(text), None) => JwksSource::File(self.path(PathBuf::from(text))),
        };
        Ok(IssuerKeys::Jwks(source))
    }

    pub(super) fn https_url(&self, key: Cow<'static, str>, text: &str) -> Result<http::Uri, ConfigError> {
        let url: http::Uri = text
            .parse()
            .map_err(|e| self.invalid(key.clone(), format!("{text:?} is not a URL: {e}")))?;
        if url.scheme_str() != Some("https") || url.authority().is_none() {
            return Err(self.invalid(key, format!("{text:?}: keys are only fetched over https://")));
        }
        Ok(url)
    }
}
