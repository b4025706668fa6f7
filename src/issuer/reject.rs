//! Every way an authorization server request can fail, mapped in one
//! exhaustive `match` to its status, JSON `error` code, the stable reason
//! label of logs and metrics, and whether the connection must close.

use http::{HeaderValue, Response, StatusCode};

use crate::auth::dpop::DPOP_NONCE;
use crate::auth::dpop::check::DpopError;
use crate::body::Body;
use crate::http::inbound::RequestError;
use crate::issuer::access_token::MintError;
use crate::issuer::client_auth::{ClientAuthError, Fault};
use crate::issuer::exchange::ExchangeError;
use crate::issuer::form::FormError;
use crate::issuer::grant::GrantError;
use crate::issuer::refresh::RefreshError;
use crate::issuer::respond;
use crate::issuer::revoke::error::RevokeError;
use crate::issuer::subject::SubjectTokenError;

/// Why a request got no answer from an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Malformed whoever sent it: framing, Host; answered as the gateway
    /// answers them, with the same reason labels.
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("no such endpoint")]
    NotFound,
    /// `allow` is the endpoint's `Allow` header.
    #[error("method not allowed here; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// The configuration serving this listener has no authorization server;
    /// a reload cannot remove it, so only a listener given without one sees this.
    #[error("no authorization server is configured")]
    Unconfigured,
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("client authentication failed: {0}")]
    ClientAuth(#[from] ClientAuthError),
    #[error(transparent)]
    Dpop(#[from] DpopError),
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// `/introspect` without a `token` parameter.
    #[error("token is missing")]
    TokenMissing,
    /// Our failure, not the client's: the description says only that much.
    #[error("the token could not be issued")]
    Mint(#[from] MintError),
}

/// How one rejection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub status: StatusCode,
    /// The body's `error` member: an RFC 6749 section 5.2 code where one fits.
    pub error: &'static str,
    /// Stable machine-readable reason: the access line's and the log's label.
    pub reason: &'static str,
    /// End the connection after this response: its byte stream cannot be trusted.
    pub close_connection: bool,
}

impl Rejection {
    pub fn verdict(&self) -> Verdict {
        let verdict = |status, error, reason| Verdict {
            status,
            error,
            reason,
            close_connection: false,
        };
        match self {
            Rejection::Request(e) => request_verdict(e),
            Rejection::NotFound => verdict(StatusCode::NOT_FOUND, "not_found", "not_found"),
            Rejection::MethodNotAllowed { .. } => {
                verdict(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method_not_allowed")
            }
            Rejection::Unconfigured => Verdict {
                close_connection: true,
                ..verdict(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "unconfigured",
                )
            },
            Rejection::Form(e) => form_verdict(e),
            Rejection::ClientAuth(e) => match e.fault() {
                Fault::Client => verdict(StatusCode::UNAUTHORIZED, "invalid_client", e.label()),
                Fault::Server => verdict(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", e.label()),
            },
            Rejection::Dpop(e) => dpop_verdict(e),
            Rejection::Grant(e) => verdict(StatusCode::BAD_REQUEST, e.code(), e.label()),
            Rejection::Refresh(e) => refresh_verdict(e),
            Rejection::Exchange(e) => {
                let status = match e {
                    ExchangeError::Subject(SubjectTokenError::KeysUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
                    ExchangeError::SubjectTokenMissing
                    | ExchangeError::SubjectTokenTypeMissing
                    | ExchangeError::SubjectTokenTypeUnsupported
                    | ExchangeError::ActorUnsupported
                    | ExchangeError::RequestedTypeUnsupported
                    | ExchangeError::Subject(_) => StatusCode::BAD_REQUEST,
                };
                verdict(status, e.code(), e.label())
            }
            Rejection::Revoke(e) => {
                let status = match e {
                    RevokeError::OtherClient | RevokeError::UnsupportedTokenType => StatusCode::BAD_REQUEST,
                    RevokeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                verdict(status, e.code(), e.label())
            }
            Rejection::TokenMissing => verdict(StatusCode::BAD_REQUEST, "invalid_request", "token_missing"),
            Rejection::Mint(MintError::Random) => {
                verdict(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "random_failed")
            }
            Rejection::Mint(MintError::Sign(_)) => {
                verdict(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing_failed")
            }
        }
    }

    /// The response: JSON error body, `no-store`, `Allow` for a 405, and
    /// the nonce to use for `use_dpop_nonce` (RFC 9449 section 8).
    pub fn to_response(&self) -> Response<Body> {
        let verdict = self.verdict();
        let mut response = respond::error(verdict.status, verdict.error, &self.to_string());
        match self {
            Rejection::MethodNotAllowed { allow } => {
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            Rejection::Dpop(DpopError::NonceRequired { nonce }) => {
                if let Ok(value) = HeaderValue::from_str(nonce) {
                    response.headers_mut().insert(DPOP_NONCE, value);
                }
            }
            _ => {}
        }
        response
    }
}

fn request_verdict(e: &RequestError) -> Verdict {
    let bad = |reason| Verdict {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        reason,
        close_connection: false,
    };
    let closing = |verdict: Verdict| Verdict {
        close_connection: true,
        ..verdict
    };
    match e {
        RequestError::MissingHost => bad("host_missing"),
        RequestError::MultipleHosts => bad("host_duplicate"),
        // RFC 9112 section 6.1: close after answering a message with ambiguous framing.
        RequestError::AmbiguousFraming => closing(bad("ambiguous_framing")),
        RequestError::FormTooLarge { .. } => Verdict {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..bad("form_too_large")
        },
        RequestError::BodyUnreadable(_) => bad("body_unreadable"),
        // The rest of a body that came too slowly is not worth waiting for.
        RequestError::BodyTimedOut(_) => closing(Verdict {
            status: StatusCode::REQUEST_TIMEOUT,
            ..bad("body_timeout")
        }),
        RequestError::PathNotNormalized => bad("path_not_normalized"),
        RequestError::UnderscoreInHeaderName => bad("header_name_underscore"),
    }
}

fn form_verdict(e: &FormError) -> Verdict {
    let bad = |status| Verdict {
        status,
        error: "invalid_request",
        reason: e.label(),
        close_connection: false,
    };
    match e {
        FormError::TooLarge { .. } => bad(StatusCode::PAYLOAD_TOO_LARGE),
        // The rest of a body that came too slowly is not worth waiting for.
        FormError::TimedOut => Verdict {
            close_connection: true,
            ..bad(StatusCode::REQUEST_TIMEOUT)
        },
        FormError::NotForm
        | FormError::Unreadable
        | FormError::Duplicate(_)
        | FormError::NotUtf8
        | FormError::BadEscape => bad(StatusCode::BAD_REQUEST),
    }
}

/// A refresh the client may retry later (the store, a race) is a 503, as
/// `temporarily_unavailable` says; every other refusal a 400.
fn refresh_verdict(e: &RefreshError) -> Verdict {
    let status = match e {
        RefreshError::Missing
        | RefreshError::Unknown
        | RefreshError::OtherClient
        | RefreshError::FamilyRevoked
        | RefreshError::FamilyExpired
        | RefreshError::FamilyIdle
        | RefreshError::Replaced
        | RefreshError::Reused
        | RefreshError::BindingMissing
        | RefreshError::BindingMismatch => StatusCode::BAD_REQUEST,
        RefreshError::Contended | RefreshError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        RefreshError::Random => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Verdict {
        status,
        error: e.code(),
        reason: e.label(),
        close_connection: false,
    }
}

/// RFC 9449 section 5: the token endpoint answers a bad proof with a 400
/// `invalid_dpop_proof` and a missing nonce with a 400 `use_dpop_nonce`
/// (the gateway, a resource server, answers 401 with a challenge instead).
fn dpop_verdict(e: &DpopError) -> Verdict {
    let verdict = |status, error| Verdict {
        status,
        error,
        reason: e.label(),
        close_connection: false,
    };
    match e {
        DpopError::ProofMissing
        | DpopError::MultipleProofs
        | DpopError::ProofTooLarge { .. }
        | DpopError::Proof(_)
        | DpopError::Replayed => verdict(StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
        DpopError::NonceRequired { .. } => verdict(StatusCode::BAD_REQUEST, "use_dpop_nonce"),
        DpopError::ReplayStoreUnavailable | DpopError::ReplayCacheFull => {
            verdict(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
    }
}
