//! Why a revocation request is refused (RFC 7009 section 2.2.1). An unknown
//! or expired token is no error: it is answered 200, as the RFC says.

use crate::issuer::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// RFC 7009 section 2.1: the server "verifies whether the token was
    /// issued to the client making the revocation request"; if not, refuses.
    #[error("the token was issued to another client")]
    OtherClient,
    /// An access token outside any family: a JWT cannot be recalled, and
    /// answering 200 would tell the client it was.
    #[error("access tokens without a refresh-token family cannot be revoked; they expire on their own")]
    UnsupportedTokenType,
    /// Never a 200 without the revocation committed (CVE-2020-15223).
    #[error("the token store is unavailable; the token was not revoked, retry later")]
    Store(#[from] StoreError),
}

impl RevokeError {
    /// The `error` of the RFC 6749 section 5.2 body.
    pub fn code(&self) -> &'static str {
        match self {
            RevokeError::OtherClient => "unauthorized_client",
            RevokeError::UnsupportedTokenType => "unsupported_token_type",
            RevokeError::Store(_) => "temporarily_unavailable",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            RevokeError::OtherClient => "revoke_other_client",
            RevokeError::UnsupportedTokenType => "revoke_unsupported_token_type",
            RevokeError::Store(_) => "store_unavailable",
        }
    }
}
