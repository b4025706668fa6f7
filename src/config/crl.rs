//! `[server]`'s revocation settings beyond the CRL files: fetching CRLs
//! from their distribution points, and what an expired CRL means.

use std::time::Duration;

use serde::Deserialize;

use super::{ClientAuth, ConfigError, Validator};

/// What a CRL past its `nextUpdate`, or one that could not be fetched at
/// all, means for the certificates it would cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrlExpired {
    /// Refuse them: an attacker who can block the CRL's server must not
    /// thereby keep a revoked certificate usable (OpenSSL's and nginx's choice).
    #[default]
    Deny,
    /// Let them through on the last list known, logging a warning.
    Allow,
}

/// `server.crl_fetch = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFetchSettings {
    /// Connect, request and body, together.
    pub timeout: Duration,
    /// Largest CRL accepted; a bigger body is a failed fetch.
    pub max_bytes: usize,
}

/// The raw keys, as `[server]` spells them.
pub(super) struct RawCrl {
    pub fetch: Option<bool>,
    pub expired: Option<CrlExpired>,
    pub fetch_timeout: Option<String>,
    pub fetch_max_bytes: Option<usize>,
}

const MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=256 * 1024 * 1024;

impl Validator<'_> {
    pub(super) fn crl_fetch(
        &self,
        raw: RawCrl,
        client_auth: ClientAuth,
    ) -> Result<(Option<CrlFetchSettings>, CrlExpired), ConfigError> {
        let expired = raw.expired.unwrap_or_default();
        if raw.fetch != Some(true) {
            for (key, set) in [
                ("server.crl_fetch_timeout", raw.fetch_timeout.is_some()),
                ("server.crl_fetch_max_bytes", raw.fetch_max_bytes.is_some()),
            ] {
                if set {
                    return Err(self.invalid(key, "applies only with crl_fetch = true"));
                }
            }
            return Ok((None, expired));
        }
        if client_auth == ClientAuth::Any {
            return Err(self.invalid(
                "server.crl_fetch",
                "revocation lists need a CA chain; they do not apply with client_auth = \"any\"",
            ));
        }
        let timeout = self.duration("server.crl_fetch_timeout", raw.fetch_timeout, Duration::from_secs(10))?;
        if timeout < Duration::from_millis(100) {
            return Err(self.invalid("server.crl_fetch_timeout", "must be at least 100ms"));
        }
        let max_bytes = raw.fetch_max_bytes.unwrap_or(10 * 1024 * 1024);
        if !MAX_BYTES_RANGE.contains(&max_bytes) {
            return Err(self.invalid(
                "server.crl_fetch_max_bytes",
                format!("must be {} to {}", MAX_BYTES_RANGE.start(), MAX_BYTES_RANGE.end()),
            ));
        }
        Ok((Some(CrlFetchSettings { timeout, max_bytes }), expired))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError, MINIMAL_FOR_TESTS};
    use super::*;

    fn parse_server(lines: &str, any: bool) -> Result<Config, ConfigError> {
        let mut text = MINIMAL_FOR_TESTS.replace(
            "client_ca = \"certs/ca.pem\"",
            &format!("client_ca = \"certs/ca.pem\"\n{lines}"),
        );
        if any {
            text = text.replace("client_ca = \"certs/ca.pem\"", "client_auth = \"any\"");
        }
        Config::parse(&text, Path::new("gateway.toml"))
    }

    fn refused_key(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::InvalidValue { key, .. }) => key.into_owned(),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    #[test]
    fn off_by_default_and_expired_lists_deny_by_default() {
        let config = parse_server("", false).unwrap();
        assert_eq!(config.server.crl_fetch, None);
        assert_eq!(config.server.crl_expired, CrlExpired::Deny);
        let on = parse_server("crl_fetch = true\ncrl_expired = \"allow\"", false).unwrap();
        assert_eq!(
            on.server.crl_fetch,
            Some(CrlFetchSettings {
                timeout: Duration::from_secs(10),
                max_bytes: 10 * 1024 * 1024
            })
        );
        assert_eq!(on.server.crl_expired, CrlExpired::Allow);
        let tuned = parse_server(
            "crl_fetch = true\ncrl_fetch_timeout = \"2s\"\ncrl_fetch_max_bytes = 65536",
            false,
        )
        .unwrap();
        assert_eq!(
            tuned.server.crl_fetch,
            Some(CrlFetchSettings {
                timeout: Duration::from_secs(2),
                max_bytes: 65536
            })
        );
    }

    #[test]
    fn fetch_knobs_need_fetching_a_ca_and_sane_bounds() {
        assert_eq!(
            refused_key(parse_server("crl_fetch_timeout = \"2s\"", false)),
            "server.crl_fetch_timeout"
        );
        assert_eq!(refused_key(parse_server("crl_fetch = true", true)), "server.crl_fetch");
        assert_eq!(
            refused_key(parse_server("crl_fetch = true\ncrl_fetch_timeout = \"10ms\"", false)),
            "server.crl_fetch_timeout"
        );
        assert_eq!(
            refused_key(parse_server("crl_fetch = true\ncrl_fetch_max_bytes = 10", false)),
            "server.crl_fetch_max_bytes"
        );
        assert!(parse_server("crl_expired = \"sometimes\"", false).is_err());
    }
}
