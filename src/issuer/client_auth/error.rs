//! Why a client is not authenticated, each reason with its stable label,
//! the method it counts against, and who is at fault.

use super::{AuthMethod, JWT_BEARER, MAX_ASSERTION_LIFETIME};
use crate::jose::Algorithm;
use crate::jose::jws::JwsError;

/// Who a failed authentication is to blame on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request: 401 `invalid_client`.
    Client,
    /// We cannot decide now (the replay store is down or full): a 503, not
    /// a verdict on the client's credentials.
    Server,
}

/// Why a request's client is not authenticated. The messages are for logs
/// and never quote a credential.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("no client_id and no client assertion")]
    ClientIdMissing,
    #[error("no such client")]
    UnknownClient,
    #[error("the form's client_id is not the client assertion's issuer")]
    ClientIdMismatch,
    /// RFC 6749 section 2.3: a client assertion from a client registered for
    /// another method is either a second method beside its certificate or
    /// not its method at all.
    #[error("a client assertion from a client registered for {}", registered.name())]
    MultipleMethods { registered: AuthMethod },

    /// Introspection and revocation answer confidential clients only: a
    /// public client is named, never authenticated.
    #[error("a public client cannot authenticate to this endpoint")]
    PublicClient,

    #[error("no client certificate on the connection")]
    CertificateMissing { method: AuthMethod },
    #[error("the client certificate is not valid X.509")]
    CertificateMalformed { method: AuthMethod },
    #[error("the client certificate has expired")]
    CertificateExpired { method: AuthMethod },
    #[error("the client certificate is not valid yet")]
    CertificateNotYetValid { method: AuthMethod },
    #[error("the client certificate is revoked")]
    CertificateRevoked,
    #[error("the client certificate does not chain to client_ca: {0}")]
    CertificateUntrusted(#[source] rustls::Error),
    #[error("the client certificate does not name the client")]
    CertificateSubjectMismatch,
    #[error("the client certificate's key is not in the client's JWKS")]
    CertificateKeyNotRegistered,

    #[error("client_assertion is missing")]
    AssertionMissing,
    #[error("client_assertion_type is not {JWT_BEARER}")]
    AssertionTypeUnsupported,
    #[error("the client assertion is malformed: {0}")]
    AssertionMalformed(#[source] JwsError),
    #[error("the client assertion marks extensions critical: {0:?}")]
    AssertionCritical(Vec<String>),
    #[error("the client assertion's typ {0:?} is not a client authentication JWT")]
    AssertionTypRejected(String),
    #[error("algorithm {0:?} is not allowed for client assertions")]
    AssertionAlgorithmNotAllowed(String),
    #[error("the client assertion's claims are malformed: {0}")]
    AssertionClaimsMalformed(String),
    #[error("no key of the client has the client assertion's kid")]
    AssertionUnknownKid,
    #[error("no key of the client fits the client assertion's algorithm {0}")]
    AssertionNoKeyForAlgorithm(Algorithm),
    #[error("the client assertion's signature does not verify")]
    AssertionBadSignature,
    #[error("the client assertion's sub is not the client")]
    AssertionSubjectMismatch,
    #[error("the client assertion's aud is not exactly the issuer identifier")]
    AssertionAudienceMismatch,
    #[error("the client assertion has no exp")]
    AssertionExpirationMissing,
    #[error("the client assertion has expired")]
    AssertionExpired,
    #[error("the client assertion expires more than {:?} ahead", MAX_ASSERTION_LIFETIME)]
    AssertionLifetimeExceeded,
    #[error("the client assertion is not valid yet (nbf)")]
    AssertionNotYetValid,
    #[error("the client assertion was issued in the future (iat)")]
    AssertionIssuedInFuture,
    #[error("the client assertion has no jti")]
    AssertionJtiMissing,
    #[error("the client assertion was already used")]
    AssertionReplayed,
    #[error("the replay store is unavailable")]
    ReplayStoreUnavailable,
    #[error("the replay cache is full")]
    ReplayCacheFull,
}

impl ClientAuthError {
    /// A stable, machine-readable reason: the log field and a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ClientAuthError::ClientIdMissing => "client_id_missing",
            ClientAuthError::UnknownClient => "unknown_client",
            ClientAuthError::ClientIdMismatch => "client_id_mismatch",
            ClientAuthError::MultipleMethods { .. } => "multiple_methods",
            ClientAuthError::PublicClient => "public_client",
            ClientAuthError::CertificateMissing { .. } => "certificate_missing",
            ClientAuthError::CertificateMalformed { .. } => "certificate_malformed",
            ClientAuthError::CertificateExpired { .. } => "certificate_expired",
            ClientAuthError::CertificateNotYetValid { .. } => "certificate_not_yet_valid",
            ClientAuthError::CertificateRevoked => "certificate_revoked",
            ClientAuthError::CertificateUntrusted(_) => "certificate_untrusted",
            ClientAuthError::CertificateSubjectMismatch => "certificate_subject_mismatch",
            ClientAuthError::CertificateKeyNotRegistered => "certificate_key_not_registered",
            ClientAuthError::AssertionMissing => "assertion_missing",
            ClientAuthError::AssertionTypeUnsupported => "assertion_type_unsupported",
            ClientAuthError::AssertionMalformed(_) => "assertion_malformed",
            ClientAuthError::AssertionCritical(_) => "assertion_crit_unsupported",
            ClientAuthError::AssertionTypRejected(_) => "assertion_typ_rejected",
            ClientAuthError::AssertionAlgorithmNotAllowed(_) => "assertion_alg_not_allowed",
            ClientAuthError::AssertionClaimsMalformed(_) => "assertion_claims_malformed",
            ClientAuthError::AssertionUnknownKid => "assertion_unknown_kid",
            ClientAuthError::AssertionNoKeyForAlgorithm(_) => "assertion_no_key_for_alg",
            ClientAuthError::AssertionBadSignature => "assertion_bad_signature",
            ClientAuthError::AssertionSubjectMismatch => "assertion_sub_mismatch",
            ClientAuthError::AssertionAudienceMismatch => "assertion_aud_mismatch",
            ClientAuthError::AssertionExpirationMissing => "assertion_exp_missing",
            ClientAuthError::AssertionExpired => "assertion_expired",
            ClientAuthError::AssertionLifetimeExceeded => "assertion_lifetime_exceeded",
            ClientAuthError::AssertionNotYetValid => "assertion_not_yet_valid",
            ClientAuthError::AssertionIssuedInFuture => "assertion_iat_in_future",
            ClientAuthError::AssertionJtiMissing => "assertion_jti_missing",
            ClientAuthError::AssertionReplayed => "assertion_replayed",
            ClientAuthError::ReplayStoreUnavailable => "replay_store_unavailable",
            ClientAuthError::ReplayCacheFull => "replay_cache_full",
        }
    }

    /// The `method` label of `bindgate_as_client_auth_failures_total`: the
    /// method the client is registered for, or that the request attempted;
    /// `unknown` when no client could be named.
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuthError::ClientIdMissing | ClientAuthError::UnknownClient => "unknown",
            ClientAuthError::PublicClient => AuthMethod::None.name(),
            ClientAuthError::MultipleMethods { registered: method }
            | ClientAuthError::CertificateMissing { method }
            | ClientAuthError::CertificateMalformed { method }
            | ClientAuthError::CertificateExpired { method }
            | ClientAuthError::CertificateNotYetValid { method } => method.name(),
            ClientAuthError::CertificateRevoked
            | ClientAuthError::CertificateUntrusted(_)
            | ClientAuthError::CertificateSubjectMismatch => AuthMethod::TlsClientAuth.name(),
            ClientAuthError::CertificateKeyNotRegistered => AuthMethod::SelfSignedTlsClientAuth.name(),
            ClientAuthError::ClientIdMismatch
            | ClientAuthError::AssertionMissing
            | ClientAuthError::AssertionTypeUnsupported
            | ClientAuthError::AssertionMalformed(_)
            | ClientAuthError::AssertionCritical(_)
            | ClientAuthError::AssertionTypRejected(_)
            | ClientAuthError::AssertionAlgorithmNotAllowed(_)
            | ClientAuthError::AssertionClaimsMalformed(_)
            | ClientAuthError::AssertionUnknownKid
            | ClientAuthError::AssertionNoKeyForAlgorithm(_)
            | ClientAuthError::AssertionBadSignature
            | ClientAuthError::AssertionSubjectMismatch
            | ClientAuthError::AssertionAudienceMismatch
            | ClientAuthError::AssertionExpirationMissing
            | ClientAuthError::AssertionExpired
            | ClientAuthError::AssertionLifetimeExceeded
            | ClientAuthError::AssertionNotYetValid
            | ClientAuthError::AssertionIssuedInFuture
            | ClientAuthError::AssertionJtiMissing
            | ClientAuthError::AssertionReplayed
            | ClientAuthError::ReplayStoreUnavailable
            | ClientAuthError::ReplayCacheFull => AuthMethod::PrivateKeyJwt.name(),
        }
    }

    /// Whether the client failed, or we could not tell.
    pub fn fault(&self) -> Fault {
        match self {
            ClientAuthError::ReplayStoreUnavailable | ClientAuthError::ReplayCacheFull => Fault::Server,
            ClientAuthError::ClientIdMissing
            | ClientAuthError::UnknownClient
            | ClientAuthError::ClientIdMismatch
            | ClientAuthError::MultipleMethods { .. }
            | ClientAuthError::PublicClient
            | ClientAuthError::CertificateMissing { .. }
            | ClientAuthError::CertificateMalformed { .. }
            | ClientAuthError::CertificateExpired { .. }
            | ClientAuthError::CertificateNotYetValid { .. }
            | ClientAuthError::CertificateRevoked
            | ClientAuthError::CertificateUntrusted(_)
            | ClientAuthError::CertificateSubjectMismatch
            | ClientAuthError::CertificateKeyNotRegistered
            | ClientAuthError::AssertionMissing
            | ClientAuthError::AssertionTypeUnsupported
            | ClientAuthError::AssertionMalformed(_)
            | ClientAuthError::AssertionCritical(_)
            | ClientAuthError::AssertionTypRejected(_)
            | ClientAuthError::AssertionAlgorithmNotAllowed(_)
            | ClientAuthError::AssertionClaimsMalformed(_)
            | ClientAuthError::AssertionUnknownKid
            | ClientAuthError::AssertionNoKeyForAlgorithm(_)
            | ClientAuthError::AssertionBadSignature
            | ClientAuthError::AssertionSubjectMismatch
            | ClientAuthError::AssertionAudienceMismatch
            | ClientAuthError::AssertionExpirationMissing
            | ClientAuthError::AssertionExpired
            | ClientAuthError::AssertionLifetimeExceeded
            | ClientAuthError::AssertionNotYetValid
            | ClientAuthError::AssertionIssuedInFuture
            | ClientAuthError::AssertionJtiMissing
            | ClientAuthError::AssertionReplayed => Fault::Client,
        }
    }
}
