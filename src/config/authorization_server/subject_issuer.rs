//! `[[authorization_server.subject_issuer]]`: whose tokens a token exchange
//! (RFC 8693) accepts as its `subject_token` (an identity provider's
//! id_token or access token), with which keys, for which audiences.

use std::borrow::Cow;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigError, JwksSource, RemoteJwksSettings, Validator};
use crate::jose::Algorithm;

/// One identity provider whose tokens may be exchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectIssuer {
    /// The exact `iss` accepted; unique among subject issuers.
    pub issuer: String,
    /// A file (read when the configuration is prepared, and on every
    /// reload) or an https URL; never discovery.
    pub jwks: JwksSource,
    /// How a `jwks` URL is fetched: `jwks_ca` and the `[token]` defaults
    /// for refresh, cooldown and timeout. Unused for a file.
    pub jwks_remote: RemoteJwksSettings,
    /// The subject token's `aud` must contain one of these; never empty.
    pub audience: Vec<String>,
    /// The allow-list of the subject token's `alg`; never empty.
    pub algorithms: Vec<Algorithm>,
}

impl SubjectIssuer {
    /// Its JWKS file, when its keys come from one.
    pub fn jwks_file(&self) -> Option<&PathBuf> {
        match &self.jwks {
            JwksSource::File(path) => Some(path),
            JwksSource::Url(_) | JwksSource::Discovery(_) => None,
        }
    }
}

/// Options rather than required fields, so that a missing key is refused
/// naming its dotted key (`authorization_server.subject_issuer[1].audience`),
/// not a line number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubjectIssuer {
    issuer: Option<String>,
    jwks: Option<String>,
    jwks_ca: Option<PathBuf>,
    audience: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
}

/// The dotted name of one key of one subject issuer.
struct Keys(usize);

impl Keys {
    fn key(&self, name: &str) -> Cow<'static, str> {
        format!("authorization_server.subject_issuer[{}].{name}", self.0).into()
    }
}

impl Validator<'_> {
    /// Every subject issuer, in file order, `issuer`s unique. `embedded` is
    /// `[authorization_server] issuer`, which may not be one of them.
    pub(super) fn subject_issuers(
        &self,
        raw: Vec<RawSubjectIssuer>,
        embedded: &str,
    ) -> Result<Vec<SubjectIssuer>, ConfigError> {
        let mut issuers: Vec<SubjectIssuer> = Vec::with_capacity(raw.len());
        for (index, raw) in raw.into_iter().enumerate() {
            let keys = Keys(index);
            let issuer = self.subject_issuer(&keys, raw, embedded)?;
            if let Some(first) = issuers.iter().position(|i| i.issuer == issuer.issuer) {
                return Err(self.invalid(
                    keys.key("issuer"),
                    format!("{:?} is already subject_issuer[{first}]", issuer.issuer),
                ));
            }
            issuers.push(issuer);
        }
        Ok(issuers)
    }

    fn subject_issuer(&self, keys: &Keys, raw: RawSubjectIssuer, embedded: &str) -> Result<SubjectIssuer, ConfigError> {
        let issuer = match raw.issuer {
            None => return Err(self.invalid(keys.key("issuer"), "required: the exact iss of its tokens")),
            Some(issuer) if issuer.is_empty() => return Err(self.invalid(keys.key("issuer"), "must not be empty")),
            // Our own tokens are bound to a key: exchanging one for a token
            // bound to another key would unbind a stolen token.
            Some(issuer) if issuer == embedded => {
                return Err(self.invalid(
                    keys.key("issuer"),
                    format!(
                        "{issuer:?} is this authorization server's own issuer: its tokens are sender-constrained, \
                         and a token exchange would re-bind one to whoever presents it"
                    ),
                ));
            }
            Some(issuer) => issuer,
        };
        let jwks = match raw.jwks {
            None => {
                return Err(self.invalid(keys.key("jwks"), "required: a JWKS file path or an https:// URL"));
            }
            Some(text) if text.contains("://") => JwksSource::Url(self.https_url(keys.key("jwks"), &text)?),
            Some(text) => JwksSource::File(self.path(PathBuf::from(text))),
        };
        if raw.jwks_ca.is_some() && !matches!(jwks, JwksSource::Url(_)) {
            return Err(self.invalid(keys.key("jwks_ca"), "only applies with an https:// jwks URL"));
        }
        let audience = match raw.audience {
            None => {
                return Err(self.invalid(
                    keys.key("audience"),
                    "required: the subject token's aud must contain one of these",
                ));
            }
            Some(list) if list.is_empty() || list.iter().any(String::is_empty) => {
                return Err(self.invalid(keys.key("audience"), "needs at least one non-empty audience"));
            }
            Some(list) => super::client::dedup(list),
        };
        Ok(SubjectIssuer {
            issuer,
            jwks,
            jwks_remote: RemoteJwksSettings::defaults(raw.jwks_ca.map(|p| self.path(p))),
            audience,
            algorithms: self.algorithms(keys.key("algorithms"), raw.algorithms, &Algorithm::DEFAULT_ALLOWED)?,
        })
    }
}

#[cfg(test)]
mod tests;
