//! `[dpop]`: how DPoP proofs (RFC 9449) are checked on routes that accept them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};
use crate::jose::Algorithm;

/// Proof algorithms accepted when `dpop.algorithms` is not set: what DPoP
/// client libraries produce (ES256 first), never `none` or HMAC.
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// Validated `[dpop]` settings; defaults apply when the section is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct DpopSettings {
    /// The externally visible `scheme://host[:port][/prefix]` that `htu` is
    /// checked against; without it, `https://` and the request's Host.
    pub public_url: Option<String>,
    pub algorithms: Vec<Algorithm>,
    /// How far `iat` may lie from now, either way.
    pub iat_window: Duration,
    /// Clock skew allowed on top of the window.
    pub leeway: Duration,
    pub max_proof_size: usize,
    pub nonce: Option<NonceSettings>,
    pub replay: ReplaySettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NonceSettings {
    /// Secret files; the first signs new nonces, all verify. Empty: a random
    /// secret per process (and per reload), fine for a single replica.
    pub secret_files: Vec<PathBuf>,
    /// A nonce is good for this window and the next.
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySettings {
    pub store: ReplayStoreSettings,
    /// What an unreachable shared store means for the request.
    pub on_store_failure: StoreFailure,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStoreSettings {
    /// In-process, bounded to this many live proofs.
    Memory { max_entries: usize },
    /// Shared by every replica: a proof replayed to another replica is caught too.
    Redis { url: String, timeout: Duration },
}

/// Behaviour when the shared replay store cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailure {
    /// Refuse the request (503): a replay could otherwise slip through.
    Closed,
    /// Accept the proof unrecorded, log and count it.
    Open,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDpop {
    public_url: Option<String>,
    algorithms: Option<Vec<String>>,
    iat_window: Option<String>,
    leeway: Option<String>,
    max_proof_size: Option<usize>,
    require_nonce: Option<bool>,
    nonce_secrets: Option<Vec<PathBuf>>,
    nonce_window: Option<String>,
    replay_store: Option<String>,
    replay_cache_entries: Option<usize>,
    replay_store_timeout: Option<String>,
    replay_store_failure: Option<StoreFailure>,
}

impl Validator<'_> {
    pub(super) fn dpop(&self, raw: RawDpop) -> Result<DpopSettings, ConfigError> {
        let public_url = raw.public_url.map(|url| self.public_url(url)).transpose()?;
        let algorithms = self.algorithms("dpop.algorithms".into(), raw.algorithms, &DEFAULT_PROOF_ALGORITHMS)?;
        let iat_window = self.duration("dpop.iat_window", raw.iat_window, Duration::from_secs(60))?;
        if iat_window.is_zero() {
            return Err(self.invalid("dpop.iat_window", "must be more than 0s"));
        }
        let require_nonce = raw.require_nonce.unwrap_or(false);
        if !require_nonce && (raw.nonce_secrets.is_some() || raw.nonce_window.is_some()) {
            return Err(self.invalid(
                "dpop.require_nonce",
                "nonce_secrets and nonce_window only apply with require_nonce = true",
            ));
        }
        let nonce = if require_nonce {
            let window = self.duration("dpop.nonce_window", raw.nonce_window, Duration::from_secs(60))?;
            if window < Duration::from_secs(1) {
                return Err(self.invalid("dpop.nonce_window", "must be at least 1s"));
            }
            Some(NonceSettings {
                secret_files: raw
                    .nonce_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| self.path(p))
                    .collect(),
                window,
            })
        } else {
            None
        };
        let store = match raw.replay_store.as_deref() {
            None | Some("memory") => {
                if raw.replay_store_timeout.is_some() {
                    return Err(self.invalid("dpop.replay_store_timeout", "only applies to a redis replay store"));
                }
                let max_entries = raw.replay_cache_entries.unwrap_or(1_000_000);
                if max_entries == 0 {
                    return Err(self.invalid("dpop.replay_cache_entries", "must be at least 1"));
                }
                ReplayStoreSettings::Memory { max_entries }
            }
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                if raw.replay_cache_entries.is_some() {
                    return Err(self.invalid(
                        "dpop.replay_cache_entries",
                        "only applies to the in-memory replay store",
                    ));
                }
                redis::Client::open(url)
                    .map_err(|e| self.invalid("dpop.replay_store", format!("is not a usable redis URL: {e}")))?;
                ReplayStoreSettings::Redis {
                    url: url.to_string(),
                    timeout: self.duration(
                        "dpop.replay_store_timeout",
                        raw.replay_store_timeout,
                        Duration::from_millis(250),
                    )?,
                }
            }
            Some(other) => {
                return Err(self.invalid(
                    "dpop.replay_store",
                    format!("{other:?}: expected \"memory\" or a redis://host:port/db URL"),
                ));
            }
        };
        Ok(DpopSettings {
            public_url,
            algorithms,
            iat_window,
            leeway: self.duration("dpop.leeway", raw.leeway, Duration::from_secs(5))?,
            max_proof_size: raw.max_proof_size.unwrap_or(8 * 1024),
            nonce,
            replay: ReplaySettings {
                store,
                on_store_failure: raw.replay_store_failure.unwrap_or(StoreFailure::Closed),
            },
        })
    }

    /// `https://host[:port][/prefix]`, kept without a trailing slash.
    fn public_url(&self, url: String) -> Result<String, ConfigError> {
        let bad = |why: &str| self.invalid("dpop.public_url", format!("{url:?}: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(bad("must be an absolute http(s) URL like \"https://api.example.com\""));
        }
        if uri.query().is_some() || url.contains('#') || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("must not carry userinfo, a query or a fragment"));
        }
        Ok(url.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{BindingMethods, BindingMode, Config};

    const BASE: &str = crate::config::MINIMAL_FOR_TESTS;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}\n{extra}"), Path::new("/etc/bindgate/gateway.toml"))
    }

    fn invalid_key(extra: &str) -> String {
        match parse(extra) {
            Err(ConfigError::InvalidValue { key, .. }) => key.to_string(),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    #[test]
    fn without_a_section_the_defaults_apply() {
        let config = parse("").unwrap();
        let documented = DpopSettings {
            public_url: None,
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            iat_window: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            max_proof_size: 8 * 1024,
            nonce: None,
            replay: ReplaySettings {
                store: ReplayStoreSettings::Memory { max_entries: 1_000_000 },
                on_store_failure: StoreFailure::Closed,
            },
        };
        assert_eq!(config.dpop, documented);
        assert_eq!(config.dpop.replay.on_store_failure, StoreFailure::Closed);
    }

    #[test]
    fn binding_takes_a_mode_a_list_or_a_table() {
        let routes = |binding: &str| {
            parse(&format!("[[route]]\nprefix = \"/x\"\nbinding = {binding}"))
                .map(|c| (c.routes[0].methods, c.routes[0].binding))
        };
        let both = BindingMethods { mtls: true, dpop: true };
        let dpop = BindingMethods {
            mtls: false,
            dpop: true,
        };
        assert_eq!(
            routes("\"report\"").unwrap(),
            (BindingMethods::MTLS, BindingMode::Report)
        );
        assert_eq!(routes("[\"mtls\", \"dpop\"]").unwrap(), (both, BindingMode::Enforce));
        assert_eq!(
            routes("{ methods = [\"dpop\"], mode = \"report\" }").unwrap(),
            (dpop, BindingMode::Report)
        );
        assert!(matches!(routes("[]"), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(routes("[\"saml\"]"), Err(ConfigError::Syntax { .. })));
        assert!(matches!(
            routes("{ method = [\"dpop\"] }"),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn replay_store_settings_are_checked() {
        let config =
            parse("[dpop]\nreplay_store = \"redis://10.0.0.5:6379/2\"\nreplay_store_failure = \"open\"").unwrap();
        assert_eq!(
            config.dpop.replay.store,
            ReplayStoreSettings::Redis {
                url: "redis://10.0.0.5:6379/2".into(),
                timeout: Duration::from_millis(250)
            }
        );
        assert_eq!(config.dpop.replay.on_store_failure, StoreFailure::Open);
        assert_eq!(
            invalid_key("[dpop]\nreplay_store = \"memcached://x\""),
            "dpop.replay_store"
        );
        assert_eq!(
            invalid_key("[dpop]\nreplay_store = \"redis://x:6379\"\nreplay_cache_entries = 10"),
            "dpop.replay_cache_entries"
        );
        assert_eq!(
            invalid_key("[dpop]\nreplay_store_timeout = \"1s\""),
            "dpop.replay_store_timeout"
        );
    }

    #[test]
    fn nonce_settings_need_require_nonce() {
        assert_eq!(invalid_key("[dpop]\nnonce_secrets = [\"n.key\"]"), "dpop.require_nonce");
        let config = parse("[dpop]\nrequire_nonce = true\nnonce_secrets = [\"n.key\"]").unwrap();
        let nonce = config.dpop.nonce.clone().unwrap();
        assert_eq!(nonce.secret_files, vec![Path::new("/etc/bindgate/n.key").to_path_buf()]);
        assert!(
            config
                .watched_files()
                .contains(&Path::new("/etc/bindgate/n.key").to_path_buf())
        );
    }

    #[test]
    fn public_url_is_an_absolute_base_without_query() {
        let config = parse("[dpop]\npublic_url = \"https://api.example.com/v1/\"").unwrap();
        assert_eq!(config.dpop.public_url.as_deref(), Some("https://api.example.com/v1"));
        for bad in [
            "/v1",
            "ftp://x",
            "https://api.example.com/?a=1",
            "https://u@api.example.com",
        ] {
            assert_eq!(
                invalid_key(&format!("[dpop]\npublic_url = {bad:?}")),
                "dpop.public_url",
                "{bad}"
            );
        }
        assert_eq!(invalid_key("[dpop]\nalgorithms = [\"HS256\"]"), "dpop.algorithms");
    }
}
