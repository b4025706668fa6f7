//! A token exchange's `subject_token` (RFC 8693 section 2.1): an identity
//! provider's id_token or access token, from a
//! `[[authorization_server.subject_issuer]]`, verified exactly as the
//! gateway verifies an access token, by the gateway's own validator: the
//! signature with a key of the issuer's JWKS chosen by `kid`, `alg` on the
//! allow-list, no `crit`, `iss` exact, `aud` naming one of `audience`,
//! `exp` and `nbf`, claims parsed strictly. Then a non-empty `sub`, which
//! becomes the `sub` of the token issued.
//!
//! Decisions:
//! - One validator issuer per subject issuer, with the `[token]` defaults
//!   for what the table does not set: 30 s leeway, 16 KiB at most, no
//!   `max_lifetime`. No verified-token cache: a subject token is exchanged
//!   once, and its claims (a person's) are not worth keeping.
//! - `typ`: anything, or none, but `dpop+jwt`, `logout+jwt` and
//!   `secevent+jwt` ([`TypPolicy::SubjectToken`]). Identity providers type
//!   their tokens as they please (`JWT`, `at+jwt`, vendor types like
//!   `application/okta-internal-at+jwt`, nothing), so requiring a `typ` per
//!   `subject_token_type` would refuse real tokens; what ties a token to us
//!   is `aud`. Those three are refused because they are JWTs that are never
//!   subject tokens yet may carry `iss`, `aud`, `sub` and `exp`: a logout
//!   token is signed by the very identity provider, for the very client.
//!   Every [`SubjectTokenType`] is checked alike.
//! - A subject token carrying `cnf` is refused: it is bound to a key the
//!   exchange cannot see proven, and exchanging it would re-bind a stolen
//!   token to its thief's key. The embedded issuer's own tokens are all
//!   bound, which is why configuration refuses it as a subject issuer.
//! - Key sets as for `[[issuer]]`: a JWKS file read afresh with each
//!   generation, or a URL's store carried across reloads that fetch it the
//!   same way; `app/prepare` starts the first fetch and refresher of each
//!   new one ([`SubjectVerifier::new_key_stores`]).
//! - Nothing here logs, and no error's message quotes the token, its
//!   claims or its signature.

use std::sync::Arc;

use crate::auth::token::{self, KeyStore, TokenError, TokenValidator, VerifiedToken};
use crate::config::{Config, ConfigError, IssuerKeys, JwksSource, SubjectIssuer, TokenSettings, TypPolicy};
use crate::jose::Algorithm;
use crate::jose::jws::JwsError;
use crate::metrics::Metrics;

/// An RFC 8693 section 3 token type a subject token may be presented as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectTokenType {
    /// An OpenID Connect ID Token.
    IdToken,
    /// An OAuth 2 access token (a JWT here: nothing is introspected).
    AccessToken,
    /// Any other JWT.
    Jwt,
}

impl SubjectTokenType {
    pub const ALL: [SubjectTokenType; 3] = [
        SubjectTokenType::IdToken,
        SubjectTokenType::AccessToken,
        SubjectTokenType::Jwt,
    ];

    /// The `subject_token_type` value of a token exchange request.
    pub fn uri(self) -> &'static str {
        match self {
            SubjectTokenType::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            SubjectTokenType::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            SubjectTokenType::Jwt => "urn:ietf:params:oauth:token-type:jwt",
        }
    }

    /// The type `uri` names, compared exactly; `None` for any other, such
    /// as a SAML assertion or a refresh token, which are never accepted.
    pub fn from_uri(uri: &str) -> Option<SubjectTokenType> {
        SubjectTokenType::ALL.into_iter().find(|t| t.uri() == uri)
    }
}

/// Whom a verified subject token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its `iss`: one of the subject issuers, exactly.
    pub issuer: String,
    /// Its `sub`, never empty.
    pub subject: String,
}

/// Why a subject token is not accepted. Messages are safe to log: none
/// quotes the token, a claim or the signature.
#[derive(Debug, thiserror::Error)]
pub enum SubjectTokenError {
    #[error("the subject token is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the subject token is not a compact JWS")]
    Malformed(#[source] JwsError),
    #[error("the subject token's algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("the subject token marks header extensions critical, and none is understood")]
    UnsupportedCritical,
    #[error("the subject token's typ {0:?} is never a subject token")]
    TypeRejected(Option<String>),
    #[error("no key of the subject issuer has the subject token's kid")]
    UnknownKid,
    /// Not the client's fault: the issuer's keys have not been fetched yet.
    #[error("the subject issuer's keys are not available yet")]
    KeysUnavailable,
    #[error("the subject token names no kid and its issuer has several keys")]
    KidRequired,
    #[error("the subject issuer's key named by kid does not fit algorithm {0}")]
    KeyAlgorithmMismatch(Algorithm),
    #[error("the subject token's signature does not verify")]
    BadSignature,
    #[error("the subject token's claims are malformed (iss, aud and exp are required, dates are numbers)")]
    ClaimsMalformed,
    #[error("the subject token's issuer is not a subject_issuer")]
    WrongIssuer,
    #[error("the subject token's audience names none of its issuer's audiences")]
    WrongAudience,
    #[error("the subject token has expired")]
    Expired,
    #[error("the subject token is not valid yet")]
    NotYetValid,
    #[error("the subject token expires further ahead than the {max:?} its issuer's tokens may live")]
    LifetimeExceeded { max: std::time::Duration },
    #[error("the subject token has no sub")]
    SubjectMissing,
    #[error("the subject token is bound to a key (cnf) the exchange cannot see proven")]
    SenderConstrained,
    /// The validator leaves revocation to its caller; kept so the mapping
    /// from `TokenError` stays exhaustive.
    #[error("the subject token was revoked")]
    Revoked,
}

impl SubjectTokenError {
    /// A stable, machine-readable reason: the log field and a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SubjectTokenError::TooLarge { .. } => "subject_token_too_large",
            SubjectTokenError::Malformed(_) => "subject_token_malformed",
            SubjectTokenError::AlgorithmNotAllowed(_) => "subject_alg_not_allowed",
            SubjectTokenError::UnsupportedCritical => "subject_crit_unsupported",
            SubjectTokenError::TypeRejected(_) => "subject_typ_rejected",
            SubjectTokenError::UnknownKid => "subject_unknown_kid",
            SubjectTokenError::KeysUnavailable => "subject_keys_unavailable",
            SubjectTokenError::KidRequired => "subject_kid_required",
            SubjectTokenError::KeyAlgorithmMismatch(_) => "subject_alg_key_mismatch",
            SubjectTokenError::BadSignature => "subject_bad_signature",
            SubjectTokenError::ClaimsMalformed => "subject_claims_malformed",
            SubjectTokenError::WrongIssuer => "subject_wrong_issuer",
            SubjectTokenError::WrongAudience => "subject_wrong_audience",
            SubjectTokenError::Expired => "subject_token_expired",
            SubjectTokenError::NotYetValid => "subject_token_not_yet_valid",
            SubjectTokenError::LifetimeExceeded { .. } => "subject_token_lifetime_exceeded",
            SubjectTokenError::SubjectMissing => "subject_sub_missing",
            SubjectTokenError::SenderConstrained => "subject_token_bound",
            SubjectTokenError::Revoked => "subject_token_revoked",
        }
    }
}

impl From<TokenError> for SubjectTokenError {
    fn from(e: TokenError) -> SubjectTokenError {
        match e {
            TokenError::TooLarge { limit } => SubjectTokenError::TooLarge { limit },
            TokenError::Malformed(source) => SubjectTokenError::Malformed(source),
            TokenError::AlgorithmNotAllowed(alg) => SubjectTokenError::AlgorithmNotAllowed(alg),
            TokenError::UnsupportedCritical(_) => SubjectTokenError::UnsupportedCritical,
            TokenError::TypeRejected(typ) => SubjectTokenError::TypeRejected(typ),
            TokenError::UnknownKid => SubjectTokenError::UnknownKid,
            TokenError::KeysUnavailable => SubjectTokenError::KeysUnavailable,
            TokenError::KidRequired => SubjectTokenError::KidRequired,
            TokenError::KeyAlgorithmMismatch(alg) => SubjectTokenError::KeyAlgorithmMismatch(alg),
            TokenError::BadSignature => SubjectTokenError::BadSignature,
            // serde's message may quote a claim's value: left out.
            TokenError::ClaimsMalformed(_) => SubjectTokenError::ClaimsMalformed,
            TokenError::WrongIssuer => SubjectTokenError::WrongIssuer,
            TokenError::WrongAudience => SubjectTokenError::WrongAudience,
            TokenError::Expired => SubjectTokenError::Expired,
            TokenError::NotYetValid => SubjectTokenError::NotYetValid,
            TokenError::LifetimeExceeded { max } => SubjectTokenError::LifetimeExceeded { max },
            TokenError::Revoked => SubjectTokenError::Revoked,
        }
    }
}

/// Verifies the subject tokens of one configuration generation.
pub struct SubjectVerifier {
    validator: TokenValidator,
    /// Remote key sets made for this generation (not carried over), each
    /// with its configuration key: their first fetch and refresher are for
    /// the caller to start.
    new_key_stores: Vec<(String, Arc<KeyStore>)>,
}

impl SubjectVerifier {
    /// Loads each subject issuer's keys: its JWKS file read now, or its
    /// URL's store taken from `previous` when that fetches the same way,
    /// else made empty (see [`SubjectVerifier::new_key_stores`]).
    pub fn new(
        config: &Config,
        issuers: &[SubjectIssuer],
        previous: Option<&SubjectVerifier>,
        metrics: &Arc<Metrics>,
    ) -> Result<SubjectVerifier, ConfigError> {
        let mut stores = Vec::with_capacity(issuers.len());
        let mut new_key_stores = Vec::new();
        for (index, issuer) in issuers.iter().enumerate() {
            let key = format!("{}.jwks", section(index));
            // The label of its fetch metric and log lines, apart from a gateway issuer's.
            let label = format!("subject issuer {}", issuer.issuer);
            let store = match &issuer.jwks {
                JwksSource::File(path) => {
                    Arc::new(KeyStore::from_file(&label, path).map_err(|e| config.unusable(key, path, e))?)
                }
                source => match previous.and_then(|p| p.fetched_keys(issuer)) {
                    Some(store) => store.clone(),
                    None => {
                        let store =
                            KeyStore::remote(&label, source.clone(), issuer.jwks_remote.clone(), metrics.clone())
                                .map_err(|e| config.unusable(key.clone(), &config.source, e))?;
                        let store = Arc::new(store);
                        new_key_stores.push((key, store.clone()));
                        store
                    }
                },
            };
            stores.push(store);
        }
        Ok(SubjectVerifier {
            new_key_stores,
            ..SubjectVerifier::with_key_stores(issuers.iter().zip(stores), metrics.clone())
        })
    }

    /// A verifier for `issuers`, each with the keys it is verified with, none to start.
    pub fn with_key_stores<'a>(
        issuers: impl IntoIterator<Item = (&'a SubjectIssuer, Arc<KeyStore>)>,
        metrics: Arc<Metrics>,
    ) -> SubjectVerifier {
        let issuers = issuers
            .into_iter()
            .enumerate()
            .map(|(index, (issuer, keys))| token::Issuer {
                settings: token_settings(index, issuer),
                keys,
            })
            .collect();
        SubjectVerifier {
            validator: TokenValidator::new(issuers, 0, metrics),
            new_key_stores: Vec::new(),
        }
    }

    /// The remote key sets this generation made, with the configuration key
    /// each comes from: the caller fetches each first and starts its refresher.
    pub fn new_key_stores(&self) -> &[(String, Arc<KeyStore>)] {
        &self.new_key_stores
    }

    /// Verifies `token`, presented as `token_type`, as of `now` (seconds
    /// since the epoch), with the keys held right now.
    pub fn verify(&self, token: &str, token_type: SubjectTokenType, now: f64) -> Result<Subject, SubjectTokenError> {
        if self.validator.issuers().is_empty() {
            return Err(SubjectTokenError::WrongIssuer);
        }
        let verified = self.validator.validate_at(token, now)?;
        subject_of(&verified, token_type)
    }

    /// As [`SubjectVerifier::verify`], but a `kid` the issuer's fetched keys
    /// lack (or keys not fetched yet) makes them refetch once, within their
    /// cooldown, before it is refused: how an identity provider's key
    /// rotation is noticed before the next scheduled refresh.
    pub async fn verify_refetching(
        &self,
        token: &str,
        token_type: SubjectTokenType,
        now: f64,
    ) -> Result<Subject, SubjectTokenError> {
        if self.validator.issuers().is_empty() {
            return Err(SubjectTokenError::WrongIssuer);
        }
        let verified = self.validator.validate_refetching_at(token, now).await?;
        subject_of(&verified, token_type)
    }

    /// The fetched key store of `issuer` in this generation, if it fetches
    /// the same way: a reload keeps its keys and refresher.
    fn fetched_keys(&self, issuer: &SubjectIssuer) -> Option<&Arc<KeyStore>> {
        self.validator
            .issuers()
            .iter()
            .find(|i| i.settings.issuer == issuer.issuer && i.keys.same_remote(&issuer.jwks, &issuer.jwks_remote))
            .map(|i| &i.keys)
    }
}

/// `authorization_server.subject_issuer[N]`, as configuration errors name it.
fn section(index: usize) -> String {
    format!("authorization_server.subject_issuer[{index}]")
}

/// What the validator checks a subject issuer's tokens against.
fn token_settings(index: usize, issuer: &SubjectIssuer) -> TokenSettings {
    TokenSettings {
        section: section(index),
        issuer: issuer.issuer.clone(),
        audience: issuer.audience.clone(),
        keys: IssuerKeys::Jwks(issuer.jwks.clone()),
        remote: issuer.jwks_remote.clone(),
        algorithms: issuer.algorithms.clone(),
        leeway: TokenSettings::DEFAULT_LEEWAY,
        typ: TypPolicy::SubjectToken,
        max_size: TokenSettings::DEFAULT_MAX_SIZE,
        max_lifetime: None,
    }
}

/// The subject of a token whose signature and claims were verified.
fn subject_of(verified: &VerifiedToken, token_type: SubjectTokenType) -> Result<Subject, SubjectTokenError> {
    // Every type is held to the same rules (see the module's decisions);
    // a rule of one type's own belongs here.
    match token_type {
        SubjectTokenType::IdToken | SubjectTokenType::AccessToken | SubjectTokenType::Jwt => {}
    }
    let claims = &verified.claims;
    if claims.cnf.is_some() {
        return Err(SubjectTokenError::SenderConstrained);
    }
    match claims.sub.as_deref() {
        Some(sub) if !sub.is_empty() => Ok(Subject {
            issuer: claims.iss.clone(),
            subject: sub.to_string(),
        }),
        Some(_) | None => Err(SubjectTokenError::SubjectMissing),
    }
}

#[cfg(test)]
mod tests;
