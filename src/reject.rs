//! Every way a request can fail, mapped in one place to its status,
//! `WWW-Authenticate` challenge (RFC 6750 section 3), JSON body and the
//! stable reason label used in logs and metrics.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::binding::BindingError;
use crate::body::{self, Body};
use crate::inbound::RequestError;
use crate::policy::InsufficientScope;
use crate::token::TokenError;
use crate::token::extract::CredentialError;
use crate::upstream::UpstreamError;

/// Why a request was not forwarded, or why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(transparent)]
    Scope(#[from] InsufficientScope),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// The RFC 6750 error code carried in the challenge, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credential at all: a bare `Bearer realm="..."`.
    Bare,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    /// Not an authentication failure: no `WWW-Authenticate` header.
    None,
}

/// How one rejection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub status: StatusCode,
    pub challenge: Challenge,
    /// The body's `error` member.
    pub error: &'static str,
    /// Stable machine-readable reason: the body's `reason`, the log field and the metric label.
    pub reason: &'static str,
}

const fn verdict(status: StatusCode, challenge: Challenge, error: &'static str, reason: &'static str) -> Verdict {
    Verdict {
        status,
        challenge,
        error,
        reason,
    }
}

const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;

fn invalid_token(reason: &'static str) -> Verdict {
    verdict(UNAUTHORIZED, Challenge::InvalidToken, "invalid_token", reason)
}

impl Rejection {
    /// The one mapping from reason to response. No wildcard arms: a new
    /// variant does not compile until it is mapped here.
    pub fn verdict(&self) -> Verdict {
        use Challenge::{Bare, InvalidRequest, None};
        match self {
            Rejection::Request(e) => match e {
                RequestError::MissingHost => verdict(BAD_REQUEST, None, "invalid_request", "host_missing"),
                RequestError::MultipleHosts => verdict(BAD_REQUEST, None, "invalid_request", "host_duplicate"),
                RequestError::AmbiguousFraming => verdict(BAD_REQUEST, None, "invalid_request", "ambiguous_framing"),
                RequestError::FormTooLarge { .. } => {
                    verdict(StatusCode::PAYLOAD_TOO_LARGE, None, "invalid_request", "form_too_large")
                }
                RequestError::BodyUnreadable(_) => verdict(BAD_REQUEST, None, "invalid_request", "body_unreadable"),
                RequestError::PathNotNormalized => verdict(BAD_REQUEST, None, "invalid_request", "path_not_normalized"),
            },
            Rejection::Credential(e) => match e {
                CredentialError::Missing => verdict(UNAUTHORIZED, Bare, "unauthorized", "token_missing"),
                CredentialError::UnsupportedScheme => verdict(UNAUTHORIZED, Bare, "unauthorized", "scheme_unsupported"),
                CredentialError::MultipleAuthorization => verdict(
                    BAD_REQUEST,
                    InvalidRequest,
                    "invalid_request",
                    "authorization_duplicate",
                ),
                CredentialError::MalformedAuthorization => verdict(
                    BAD_REQUEST,
                    InvalidRequest,
                    "invalid_request",
                    "authorization_malformed",
                ),
                CredentialError::TokenInQuery => {
                    verdict(BAD_REQUEST, InvalidRequest, "invalid_request", "token_in_query")
                }
                CredentialError::TokenInForm => {
                    verdict(BAD_REQUEST, InvalidRequest, "invalid_request", "token_in_form")
                }
            },
            Rejection::Token(TokenError::KeysUnavailable) => verdict(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "temporarily_unavailable",
                "keys_unavailable",
            ),
            Rejection::Token(e) => invalid_token(match e {
                TokenError::KeysUnavailable => "keys_unavailable",
                TokenError::TooLarge { .. } => "token_too_large",
                TokenError::Malformed(_) => "token_malformed",
                TokenError::AlgorithmNotAllowed(_) => "alg_not_allowed",
                TokenError::UnsupportedCritical(_) => "crit_unsupported",
                TokenError::TypeRejected(_) => "typ_rejected",
                TokenError::UnknownKid => "unknown_kid",
                TokenError::KidRequired => "kid_required",
                TokenError::KeyAlgorithmMismatch(_) => "alg_key_mismatch",
                TokenError::BadSignature => "bad_signature",
                TokenError::ClaimsMalformed(_) => "claims_malformed",
                TokenError::WrongIssuer => "wrong_issuer",
                TokenError::WrongAudience => "wrong_audience",
                TokenError::Expired => "token_expired",
                TokenError::NotYetValid => "token_not_yet_valid",
            }),
            Rejection::Binding(e) => invalid_token(match e {
                BindingError::CnfMissing => "cnf_missing",
                BindingError::CnfUnsupported => "cnf_unsupported",
                BindingError::ThumbprintMalformed => "cnf_malformed",
                BindingError::CertificateMissing => "client_cert_missing",
                BindingError::CertificateMismatch => "cnf_mismatch",
                BindingError::DpopUnsupported => "dpop_unsupported",
            }),
            Rejection::Scope(_) => verdict(
                StatusCode::FORBIDDEN,
                Challenge::InsufficientScope,
                "insufficient_scope",
                "insufficient_scope",
            ),
            Rejection::Upstream(e) => match e {
                UpstreamError::Unavailable(_) => {
                    verdict(StatusCode::BAD_GATEWAY, None, "bad_gateway", "upstream_unavailable")
                }
                UpstreamError::Timeout => {
                    verdict(StatusCode::GATEWAY_TIMEOUT, None, "gateway_timeout", "upstream_timeout")
                }
            },
        }
    }

    /// The response the client gets. Descriptions never carry the token.
    pub fn to_response(&self, realm: &str) -> Response<Body> {
        let verdict = self.verdict();
        let description = header_safe(&self.to_string());
        let json = serde_json::json!({
            "error": verdict.error,
            "error_description": description,
            "reason": verdict.reason,
        });
        let mut response = Response::new(body::full(json.to_string()));
        *response.status_mut() = verdict.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match verdict.challenge {
            Challenge::None => None,
            Challenge::Bare => Some(format!("Bearer realm=\"{realm}\"")),
            Challenge::InvalidRequest | Challenge::InvalidToken => Some(format!(
                "Bearer realm=\"{realm}\", error=\"{}\", error_description=\"{description}\"",
                verdict.error
            )),
            Challenge::InsufficientScope => {
                let scope = match self {
                    Rejection::Scope(e) => header_safe(&e.required),
                    _ => String::new(),
                };
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{scope}\""
                ))
            }
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// RFC 6750 limits `error_description` to printable ASCII without `"` and `\`.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(r: Rejection) -> (StatusCode, Option<String>) {
        let response = r.to_response("bindgate");
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        (response.status(), header)
    }

    #[test]
    fn missing_token_gets_a_bare_challenge() {
        assert_eq!(
            challenge(CredentialError::Missing.into()),
            (UNAUTHORIZED, Some("Bearer realm=\"bindgate\"".to_string()))
        );
    }

    #[test]
    fn invalid_token_challenge_carries_the_error_code() {
        let (status, header) = challenge(TokenError::AlgorithmNotAllowed("none".into()).into());
        assert_eq!(status, UNAUTHORIZED);
        let header = header.unwrap();
        assert!(header.starts_with("Bearer realm=\"bindgate\", error=\"invalid_token\", error_description=\""));
        assert!(!header.contains("\"none\""), "{header}");
    }

    #[test]
    fn malformed_request_is_400_invalid_request() {
        let (status, header) = challenge(CredentialError::MultipleAuthorization.into());
        assert_eq!(status, BAD_REQUEST);
        assert!(header.unwrap().contains("error=\"invalid_request\""));
    }

    #[test]
    fn upstream_failures_carry_no_challenge() {
        assert_eq!(
            challenge(UpstreamError::Timeout.into()),
            (StatusCode::GATEWAY_TIMEOUT, None)
        );
    }
}
