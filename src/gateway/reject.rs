//! Every way a request can fail, mapped in one place to its status,
//! `WWW-Authenticate` challenge (RFC 6750 section 3), JSON body, the stable
//! reason label used in logs and metrics, and who is at fault.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::auth::binding::BindingError;
use crate::auth::dpop::DPOP_NONCE;
use crate::auth::dpop::check::DpopError;
use crate::auth::token::TokenError;
use crate::auth::token::extract::CredentialError;
use crate::auth::token::extract::Scheme;
use crate::body::{self, Body};
use crate::gateway::client_cert::{CertificateRefusal, ClientCertError};
use crate::gateway::routes::InsufficientScope;
use crate::http::body_deadline::{self, BodyTimedOut};
use crate::http::forwarded_cert::ForwardedCertError;
use crate::http::inbound::{FormScreenError, RequestError};
use crate::http::upstream::UpstreamError;

/// Why a request was not forwarded, or why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The form body screen: an `access_token` in the form, or a body that
    /// could not be read whole.
    #[error(transparent)]
    Form(#[from] FormScreenError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(transparent)]
    Dpop(#[from] DpopError),
    #[error(transparent)]
    Scope(#[from] InsufficientScope),
    /// Built by the `From` below, which first rules out the client's body.
    #[error(transparent)]
    Upstream(UpstreamError),
    /// A CRL loaded after the connection's handshake revokes its certificate.
    #[error("the client certificate has been revoked")]
    ClientCertRevoked,
    /// A certificate forwarded by a front proxy, or a header claiming one.
    #[error(transparent)]
    ClientCert(#[from] ClientCertError),
}

impl From<CertificateRefusal> for Rejection {
    fn from(refusal: CertificateRefusal) -> Rejection {
        Rejection::ClientCert(ClientCertError::Refused(refusal))
    }
}

impl From<UpstreamError> for Rejection {
    /// hyper's client fails the upstream request when the client's body
    /// fails under it; a body that came too slowly is the client's fault, and
    /// the client is told so, not that the upstream is unavailable.
    fn from(e: UpstreamError) -> Rejection {
        match &e {
            UpstreamError::Unavailable(cause) if body_deadline::timed_out(cause.as_ref()) => {
                Rejection::Request(BodyTimedOut.into())
            }
            UpstreamError::Unavailable(_) | UpstreamError::Timeout => Rejection::Upstream(e),
        }
    }
}

/// The RFC 6750 error code carried in the challenge, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credential at all: a bare `Bearer realm="..."`.
    Bare,
    /// The verdict's `error` code (`invalid_request`, `invalid_token`,
    /// `invalid_dpop_proof`, `use_dpop_nonce`) with the realm.
    Error,
    /// `insufficient_scope` with the scope the route requires.
    InsufficientScope,
    /// Not an authentication failure: no `WWW-Authenticate` header.
    None,
}

/// Which scheme an error challenge is issued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeScheme {
    /// The scheme the request used.
    AsPresented,
    /// `DPoP`, whatever the request used (where the route accepts DPoP).
    Dpop,
}

/// What the challenges of a response depend on besides the rejection.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeContext<'a> {
    pub realm: &'a str,
    /// The route accepts mTLS-bound tokens (the `Bearer` scheme).
    pub bearer: bool,
    /// The route accepts DPoP-bound tokens.
    pub dpop: bool,
    /// The `algs` attribute of `DPoP` challenges.
    pub dpop_algs: &'a str,
    pub presented: Scheme,
}

/// Who a failed request is to blame on: it decides the status class and
/// whether the gateway's own log hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request itself (4xx): reported to the client, not logged.
    Client,
    /// The upstream failed or was too slow (502, 504).
    Upstream,
    /// The gateway cannot decide yet: keys or the replay store unavailable (503).
    Gateway,
}

/// How one rejection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub status: StatusCode,
    pub challenge: Challenge,
    pub scheme: ChallengeScheme,
    /// The body's `error` member.
    pub error: &'static str,
    /// Stable machine-readable reason: the body's `reason`, the log field and the metric label.
    pub reason: &'static str,
    /// Close the connection after this response (HTTP/1.1 `Connection: close`).
    pub close_connection: bool,
    pub fault: Fault,
}

/// The client's fault, the usual case.
const fn verdict(status: StatusCode, challenge: Challenge, error: &'static str, reason: &'static str) -> Verdict {
    Verdict {
        status,
        challenge,
        scheme: ChallengeScheme::AsPresented,
        error,
        reason,
        close_connection: false,
        fault: Fault::Client,
    }
}

/// Nothing more may be read from this connection.
const fn closing(verdict: Verdict) -> Verdict {
    Verdict {
        close_connection: true,
        ..verdict
    }
}

const fn in_dpop(verdict: Verdict) -> Verdict {
    Verdict {
        scheme: ChallengeScheme::Dpop,
        ..verdict
    }
}

fn invalid_dpop_proof(reason: &'static str) -> Verdict {
    in_dpop(verdict(UNAUTHORIZED, Challenge::Error, "invalid_dpop_proof", reason))
}

fn unavailable(reason: &'static str) -> Verdict {
    Verdict {
        fault: Fault::Gateway,
        ..verdict(
            StatusCode::SERVICE_UNAVAILABLE,
            Challenge::None,
            "temporarily_unavailable",
            reason,
        )
    }
}

fn upstream_failed(status: StatusCode, error: &'static str, reason: &'static str) -> Verdict {
    Verdict {
        fault: Fault::Upstream,
        ..verdict(status, Challenge::None, error, reason)
    }
}

const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;

fn invalid_token(reason: &'static str) -> Verdict {
    verdict(UNAUTHORIZED, Challenge::Error, "invalid_token", reason)
}

impl Rejection {
    /// The one mapping from reason to response, one function per concern.
    /// No wildcard arms: a new variant does not compile until it is mapped.
    pub fn verdict(&self) -> Verdict {
        match self {
            Rejection::Request(e) => request(e),
            Rejection::Form(e) => form(e),
            Rejection::Credential(e) => credential(e),
            Rejection::Token(e) => token(e),
            Rejection::Binding(e) => binding(e),
            Rejection::Dpop(e) => dpop(e),
            Rejection::Scope(_) => verdict(
                StatusCode::FORBIDDEN,
                Challenge::InsufficientScope,
                "insufficient_scope",
                "insufficient_scope",
            ),
            Rejection::Upstream(e) => upstream(e),
            Rejection::ClientCertRevoked => closing(invalid_token("client_cert_revoked")),
            Rejection::ClientCert(e) => client_cert(e),
        }
    }

    /// The response the client gets. Descriptions never carry the token.
    pub fn to_response(&self, ctx: &ChallengeContext<'_>) -> Response<Body> {
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
        for challenge in self.challenges(&verdict, ctx, &description) {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, value);
            }
        }
        if let Rejection::Dpop(DpopError::NonceRequired { nonce }) = self
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert(DPOP_NONCE, value);
        }
        response
    }

    /// The `WWW-Authenticate` values: none, bare ones for each scheme the
    /// route accepts, or one carrying the verdict's error code.
    fn challenges(&self, verdict: &Verdict, ctx: &ChallengeContext<'_>, description: &str) -> Vec<String> {
        let realm = ctx.realm;
        let dpop_scheme = match verdict.scheme {
            ChallengeScheme::Dpop => ctx.dpop || ctx.presented == Scheme::Dpop,
            ChallengeScheme::AsPresented => ctx.presented == Scheme::Dpop,
        };
        let (scheme, algs) = if dpop_scheme {
            ("DPoP", format!(", algs=\"{}\"", ctx.dpop_algs))
        } else {
            ("Bearer", String::new())
        };
        let with_error = |error: &str| {
            format!("{scheme} realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\"{algs}")
        };
        match verdict.challenge {
            Challenge::None => vec![],
            Challenge::Bare => {
                let mut bare = Vec::with_capacity(2);
                if ctx.bearer || !ctx.dpop {
                    bare.push(format!("Bearer realm=\"{realm}\""));
                }
                if ctx.dpop {
                    bare.push(format!("DPoP realm=\"{realm}\", algs=\"{}\"", ctx.dpop_algs));
                }
                bare
            }
            Challenge::Error => vec![with_error(verdict.error)],
            Challenge::InsufficientScope => {
                // Only a scope rejection has this challenge; it names what the route requires.
                let scope = if let Rejection::Scope(e) = self {
                    header_safe(&e.required)
                } else {
                    String::new()
                };
                vec![format!("{}, scope=\"{scope}\"", with_error("insufficient_scope"))]
            }
        }
    }
}

/// A forwarded certificate: an unusable header is the request's mistake
/// (400); a certificate that fails verification gets the reason a handshake
/// certificate would. Never closing: the connection is the proxy's, and
/// carries other clients' requests too.
fn client_cert(e: &ClientCertError) -> Verdict {
    let bad_header = |reason| verdict(BAD_REQUEST, Challenge::None, "invalid_request", reason);
    match e {
        ClientCertError::FromUntrustedPeer => bad_header("forwarded_cert_from_untrusted_peer"),
        ClientCertError::Header(header) => bad_header(match header {
            ForwardedCertError::Repeated => "forwarded_cert_repeated",
            ForwardedCertError::List => "forwarded_cert_list",
            ForwardedCertError::TooLarge { .. } => "forwarded_cert_too_large",
            ForwardedCertError::Undecodable(_) => "forwarded_cert_undecodable",
        }),
        ClientCertError::NotX509(_) => invalid_token("client_cert_invalid"),
        ClientCertError::Refused(refusal) => match refusal {
            CertificateRefusal::Expired => invalid_token("client_cert_expired"),
            CertificateRefusal::NotYetValid => invalid_token("client_cert_not_yet_valid"),
            CertificateRefusal::Untrusted => invalid_token("client_cert_untrusted"),
            CertificateRefusal::Revoked => invalid_token("client_cert_revoked"),
            CertificateRefusal::WrongPurpose => invalid_token("client_cert_wrong_purpose"),
            CertificateRefusal::Invalid => invalid_token("client_cert_invalid"),
            // Not the client's fault: no current CRL says whether it is revoked.
            CertificateRefusal::RevocationUnknown => unavailable("crl_unavailable"),
            CertificateRefusal::RevocationListExpired => unavailable("crl_expired"),
        },
    }
}

fn request(e: &RequestError) -> Verdict {
    use Challenge::None;
    match e {
        RequestError::MissingHost => verdict(BAD_REQUEST, None, "invalid_request", "host_missing"),
        RequestError::MultipleHosts => verdict(BAD_REQUEST, None, "invalid_request", "host_duplicate"),
        // RFC 9112 section 6.1: close after answering a message with ambiguous framing.
        RequestError::AmbiguousFraming => closing(verdict(BAD_REQUEST, None, "invalid_request", "ambiguous_framing")),
        RequestError::FormTooLarge { .. } => {
            verdict(StatusCode::PAYLOAD_TOO_LARGE, None, "invalid_request", "form_too_large")
        }
        RequestError::BodyUnreadable(_) => verdict(BAD_REQUEST, None, "invalid_request", "body_unreadable"),
        // The rest of a body that came too slowly is not worth waiting for.
        RequestError::BodyTimedOut(_) => closing(verdict(
            StatusCode::REQUEST_TIMEOUT,
            None,
            "invalid_request",
            "body_timeout",
        )),
        RequestError::PathNotNormalized => verdict(BAD_REQUEST, None, "invalid_request", "path_not_normalized"),
        RequestError::UnderscoreInHeaderName => verdict(BAD_REQUEST, None, "invalid_request", "header_name_underscore"),
    }
}

fn form(e: &FormScreenError) -> Verdict {
    match e {
        // A body too large, unreadable or too slow is answered as anywhere else.
        FormScreenError::Request(e) => request(e),
        FormScreenError::TokenInForm => verdict(BAD_REQUEST, Challenge::Error, "invalid_request", "token_in_form"),
    }
}

fn credential(e: &CredentialError) -> Verdict {
    use Challenge::{Bare, Error};
    match e {
        CredentialError::Missing => verdict(UNAUTHORIZED, Bare, "unauthorized", "token_missing"),
        CredentialError::UnsupportedScheme => verdict(UNAUTHORIZED, Bare, "unauthorized", "scheme_unsupported"),
        CredentialError::MultipleAuthorization => {
            verdict(BAD_REQUEST, Error, "invalid_request", "authorization_duplicate")
        }
        CredentialError::MalformedAuthorization => {
            verdict(BAD_REQUEST, Error, "invalid_request", "authorization_malformed")
        }
        CredentialError::TokenInQuery => verdict(BAD_REQUEST, Error, "invalid_request", "token_in_query"),
    }
}

fn token(e: &TokenError) -> Verdict {
    invalid_token(match e {
        // Not the token's fault: the issuer's keys have not loaded yet.
        TokenError::KeysUnavailable => return unavailable("keys_unavailable"),
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
        TokenError::LifetimeExceeded { .. } => "token_lifetime_exceeded",
        TokenError::Revoked => "token_revoked",
    })
}

fn binding(e: &BindingError) -> Verdict {
    invalid_token(match e {
        BindingError::CnfMissing => "cnf_missing",
        BindingError::CnfUnsupported => "cnf_unsupported",
        BindingError::ThumbprintMalformed => "cnf_malformed",
        BindingError::CertificateMissing => "client_cert_missing",
        BindingError::CertificateMismatch => "cnf_mismatch",
        BindingError::JktMalformed => "jkt_malformed",
        BindingError::JktMismatch => "jkt_mismatch",
        BindingError::DpopTokenWithBearer => return in_dpop(invalid_token("dpop_token_with_bearer")),
        BindingError::NotDpopBound => "token_not_dpop_bound",
        BindingError::MethodNotAccepted => "binding_method_not_accepted",
    })
}

fn dpop(e: &DpopError) -> Verdict {
    match e {
        DpopError::ProofMissing
        | DpopError::MultipleProofs
        | DpopError::ProofTooLarge { .. }
        | DpopError::Replayed
        | DpopError::Proof(_) => invalid_dpop_proof(e.label()),
        DpopError::NonceRequired { .. } => {
            in_dpop(verdict(UNAUTHORIZED, Challenge::Error, "use_dpop_nonce", e.label()))
        }
        DpopError::ReplayStoreUnavailable | DpopError::ReplayCacheFull => unavailable(e.label()),
    }
}

fn upstream(e: &UpstreamError) -> Verdict {
    match e {
        UpstreamError::Unavailable(_) => {
            upstream_failed(StatusCode::BAD_GATEWAY, "bad_gateway", "upstream_unavailable")
        }
        UpstreamError::Timeout => upstream_failed(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", "upstream_timeout"),
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
    use crate::auth::dpop::proof::ProofError;

    fn challenge(r: Rejection) -> (StatusCode, Option<String>) {
        let response = r.to_response(&ChallengeContext {
            realm: "bindgate",
            bearer: true,
            dpop: false,
            dpop_algs: "ES256",
            presented: Scheme::Bearer,
        });
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

    #[test]
    fn a_token_in_a_form_is_the_clients_fault_with_an_invalid_request_challenge() {
        let v = Rejection::from(FormScreenError::TokenInForm).verdict();
        assert_eq!(
            (v.status, v.challenge, v.error, v.reason, v.close_connection, v.fault),
            (
                BAD_REQUEST,
                Challenge::Error,
                "invalid_request",
                "token_in_form",
                false,
                Fault::Client
            )
        );
        let (_, header) = challenge(FormScreenError::TokenInForm.into());
        assert!(
            header
                .unwrap()
                .contains("error_description=\"access tokens are not accepted in a form body\"")
        );
    }

    #[test]
    fn a_form_body_that_fails_to_arrive_is_answered_as_the_request_error_it_is() {
        let form = Rejection::from(FormScreenError::from(RequestError::FormTooLarge { limit: 1 })).verdict();
        let request = Rejection::from(RequestError::FormTooLarge { limit: 1 }).verdict();
        assert_eq!(form, request);
        let slow = Rejection::from(FormScreenError::from(RequestError::from(BodyTimedOut))).verdict();
        assert_eq!((slow.reason, slow.close_connection), ("body_timeout", true));
    }

    #[test]
    fn an_upstream_failing_on_a_slow_client_body_is_the_clients_timeout() {
        let rejection = Rejection::from(UpstreamError::Unavailable(Box::new(BodyTimedOut)));
        assert!(matches!(rejection, Rejection::Request(RequestError::BodyTimedOut(_))));
        let v = rejection.verdict();
        assert_eq!(
            (v.status, v.reason, v.close_connection, v.fault),
            (StatusCode::REQUEST_TIMEOUT, "body_timeout", true, Fault::Client)
        );
    }

    #[test]
    fn each_verdict_names_who_is_at_fault() {
        let fault = |r: Rejection| r.verdict().fault;
        let refused: crate::body::BoxError = "connection refused".into();
        assert_eq!(fault(UpstreamError::Unavailable(refused).into()), Fault::Upstream);
        assert_eq!(fault(UpstreamError::Timeout.into()), Fault::Upstream);
        assert_eq!(fault(TokenError::KeysUnavailable.into()), Fault::Gateway);
        assert_eq!(fault(DpopError::ReplayStoreUnavailable.into()), Fault::Gateway);
        assert_eq!(fault(TokenError::Expired.into()), Fault::Client);
        assert_eq!(fault(Rejection::ClientCertRevoked), Fault::Client);
    }

    fn dpop_route(presented: Scheme) -> ChallengeContext<'static> {
        ChallengeContext {
            realm: "bindgate",
            bearer: true,
            dpop: true,
            dpop_algs: "ES256 EdDSA",
            presented,
        }
    }

    fn challenges(r: &Rejection, ctx: &ChallengeContext<'_>) -> Vec<String> {
        r.to_response(ctx)
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_route_accepting_both_schemes_offers_both_challenges() {
        let missing = Rejection::from(CredentialError::Missing);
        assert_eq!(
            challenges(&missing, &dpop_route(Scheme::Bearer)),
            vec![
                "Bearer realm=\"bindgate\"".to_string(),
                "DPoP realm=\"bindgate\", algs=\"ES256 EdDSA\"".to_string()
            ]
        );
    }

    #[test]
    fn dpop_errors_are_dpop_challenges_with_algs() {
        let bad = Rejection::from(DpopError::Proof(ProofError::AthMismatch));
        let got = challenges(&bad, &dpop_route(Scheme::Dpop));
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("DPoP realm=\"bindgate\", error=\"invalid_dpop_proof\""),
            "{got:?}"
        );
        assert!(got[0].ends_with("algs=\"ES256 EdDSA\""), "{got:?}");
        let expired = Rejection::from(TokenError::Expired);
        assert!(
            challenges(&expired, &dpop_route(Scheme::Dpop))[0]
                .starts_with("DPoP realm=\"bindgate\", error=\"invalid_token\"")
        );
        assert!(
            challenges(&expired, &dpop_route(Scheme::Bearer))[0]
                .starts_with("Bearer realm=\"bindgate\", error=\"invalid_token\"")
        );
    }

    #[test]
    fn a_nonce_challenge_carries_the_nonce() {
        let r = Rejection::from(DpopError::NonceRequired { nonce: "n-1".into() });
        let response = r.to_response(&dpop_route(Scheme::Dpop));
        assert_eq!(response.status(), UNAUTHORIZED);
        assert_eq!(response.headers().get("dpop-nonce").unwrap(), "n-1");
        let challenge = response.headers().get(WWW_AUTHENTICATE).unwrap().to_str().unwrap();
        assert!(challenge.contains("error=\"use_dpop_nonce\""), "{challenge}");
    }
}
