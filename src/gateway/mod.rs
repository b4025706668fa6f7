//! The request path, top to bottom: request checks -> route -> credentials
//! -> token -> binding -> scopes -> form screen -> header rewrite ->
//! upstream. [`handle`] turns any rejection into its response; its
//! [`Outcome`] counts and logs every request exactly once, also one whose
//! client left before the answer.

pub mod client_cert;
pub mod forward;
pub(crate) mod outcome;
pub(crate) mod reject;
pub(crate) mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use self::client_cert::{CertificateRefusal, ForwardedCerts};
use self::forward::ForwardContext;
pub use self::outcome::{Outcome, RequestNotes};
use self::routes::{Route, RouteTable};
use crate::auth::binding::{self, Proofs};
use crate::auth::dpop::DPOP_NONCE;
use crate::auth::dpop::check::{DpopError, DpopVerifier, RequestTarget};
use crate::auth::token::extract::{self, CredentialError, Scheme};
use crate::auth::token::{RevokedFamilies, TokenError, TokenValidator, VerifiedToken};
use crate::body::{self, Body};
use crate::config::{AuthPolicy, BindingMethods, BindingMode};
use crate::config::{ForwardSettings, Limits};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::conn::crl::{CrlFetcher, CrlVerdict};
use crate::conn::framing::Framing;
use crate::conn::identity::{ClientIdentity, RequestCert};
use crate::conn::revocation::RevocationSet;
use crate::gateway::reject::{ChallengeContext, Fault, Rejection};
use crate::http::access::CountedBody;
use crate::http::body_deadline::BodyDeadline;
use crate::http::hop;
use crate::http::inbound::{self, Authority, RequestError};
use crate::http::pinned::UpstreamPin;
use crate::metrics::Metrics;

/// Everything the request path needs, shared by all connections.
pub struct Gateway {
    pub realm: String,
    pub validator: TokenValidator,
    pub routes: RouteTable,
    pub dpop: DpopVerifier,
    pub forward: ForwardSettings,
    pub limits: Limits,
    /// Client certificates the CRLs revoke: refused also on connections
    /// whose handshake predates the CRL.
    pub revoked: RevocationSet,
    /// `server.crl_fetch`: the lists fetched from distribution points, checked per request.
    pub crls: Option<Arc<CrlFetcher>>,
    /// Trusted front proxies, and the verifier of the certificates they forward.
    pub forwarded: ForwardedCerts,
    /// Refresh-token families revoked, whose access tokens are refused too.
    pub revoked_families: Arc<RevokedFamilies>,
    /// The embedded authorization server's `iss`: only its tokens' `sid`
    /// names one of our families (another issuer's `sid` is its own session).
    pub family_issuer: Option<String>,
    pub metrics: Arc<Metrics>,
}

/// The reason label of a request that went upstream.
const FORWARDED: &str = "forwarded";

/// Serves one request; never fails, since every rejection becomes a response.
/// `pin` is the client connection's pinned upstream connection, if it may have one.
pub async fn handle(
    gateway: Arc<Gateway>,
    conn: Arc<Connection>,
    pin: Option<Arc<UpstreamPin>>,
    req: Request<RequestBody>,
) -> Result<Response<Body>, Infallible> {
    // Dropped before `gateway` and `conn`, also when hyper drops this future.
    let mut outcome = Outcome::begin(&gateway.metrics, &conn, &req);
    let forwarded = authorize_and_forward(&gateway, &conn, pin.as_deref(), req, outcome.notes_mut()).await;
    let (response, reason) = match forwarded {
        Ok(response) => (response, FORWARDED),
        Err(rejection) => answer(&gateway, &conn, &outcome, &rejection),
    };
    Ok(outcome.respond(response, reason))
}

/// The response to a rejection and its reason label: the verdict applied
/// the same way whatever the reason.
fn answer(
    gateway: &Gateway,
    conn: &Connection,
    outcome: &Outcome<'_>,
    rejection: &Rejection,
) -> (Response<Body>, &'static str) {
    let verdict = rejection.verdict();
    match verdict.fault {
        Fault::Upstream => {
            tracing::warn!(error = %crate::error::error_chain(rejection), "upstream request failed");
        }
        // A client's mistakes are in its access line and the metrics:
        // a warning each would let any client flood the log.
        Fault::Client => {}
        // Logged where they arise (key fetches, the replay store), at most so often.
        Fault::Gateway => {}
    }
    let notes = outcome.notes();
    let methods = notes.methods.unwrap_or(BindingMethods::MTLS);
    let mut response = rejection.to_response(&ChallengeContext {
        realm: &gateway.realm,
        bearer: methods.mtls,
        dpop: methods.dpop,
        dpop_algs: gateway.dpop.algs(),
        presented: notes.scheme,
    });
    if verdict.close_connection {
        close_after(&mut response, outcome.version(), conn);
    }
    (response, verdict.reason)
}

/// Makes `response` the connection's last.
fn close_after(response: &mut Response<Body>, version: Version, conn: &Connection) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    } else {
        // Kept as a permit if the connection task is not waiting yet.
        conn.close_requested.notify_one();
    }
}

/// The request path in request order; each `?` is a rejection [`handle`] answers.
async fn authorize_and_forward(
    gateway: &Gateway,
    conn: &Connection,
    pin: Option<&UpstreamPin>,
    mut req: Request<RequestBody>,
    notes: &mut RequestNotes,
) -> Result<Response<Body>, Rejection> {
    let admitted = admit(gateway, conn, &mut req, notes).await?;
    // Only an admitted request may make us read its body: the form screen, then the upstream.
    let pace = gateway.limits.body_pace;
    let req = req.map(|body| BodyDeadline::new(body, pace));
    let req = inbound::screen_form(req, gateway.limits.max_form_bytes).await?;
    let req = rewrite(req, conn, &admitted, notes, gateway)?;
    let response = send_upstream(gateway, admitted.route, pin, req, notes).await?;
    Ok(to_client(response, admitted.next_nonce))
}

/// The request as the upstream gets it: headers rewritten, and its body
/// counted when the access log reports it.
fn rewrite(
    req: Request<Body>,
    conn: &Connection,
    admitted: &Admitted<'_>,
    notes: &RequestNotes,
    gateway: &Gateway,
) -> Result<Request<Body>, Rejection> {
    let (mut parts, body) = req.into_parts();
    let body = match &notes.bytes_in {
        Some(counter) => CountedBody::new(body, counter.clone()).boxed(),
        None => body,
    };
    let extended = forward::forwarded_for(&parts.headers, &conn.forwarded_for, admitted.from_trusted_hop);
    let context = ForwardContext {
        authority: &admitted.authority,
        forwarded_for: extended.as_ref().unwrap_or(&conn.forwarded_for),
        identity: notes.cert.identity(conn.identity.as_ref()),
        claims: admitted.verified.as_ref().map(|v| &v.claims),
        screened: gateway.forwarded.screened(),
    };
    forward::rewrite_request(&mut parts.headers, &context, &gateway.forward)?;
    Ok(Request::from_parts(parts, body))
}

/// Sends `req` to the route's upstream and waits for the response head,
/// timed whether or not one comes.
async fn send_upstream(
    gateway: &Gateway,
    route: &Route,
    pin: Option<&UpstreamPin>,
    req: Request<Body>,
    notes: &mut RequestNotes,
) -> Result<Response<Incoming>, Rejection> {
    let started = Instant::now();
    let response = route.upstream.send(pin, req, &gateway.metrics).await;
    let waited = started.elapsed();
    gateway.metrics.upstream_duration.observe(waited);
    notes.upstream_us = Some(waited.as_micros() as u64);
    Ok(response?)
}

/// The upstream's response as the client gets it: no hop-by-hop headers,
/// no `Vary` on a header the client never sent, and a newer DPoP nonce
/// when there is one.
fn to_client(response: Response<Incoming>, next_nonce: Option<String>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    hop::strip_hop_by_hop(&mut parts.headers);
    forward::uncache_client_cert_variants(&mut parts.headers);
    if let Some(nonce) = next_nonce.and_then(|n| http::HeaderValue::from_str(&n).ok()) {
        parts.headers.insert(DPOP_NONCE, nonce);
    }
    Response::from_parts(parts, body::stream(body))
}

/// What a request admitted upstream carries with it.
pub struct Admitted<'g> {
    pub route: &'g Route,
    /// Host or `:authority`, as received.
    pub authority: Authority,
    pub verified: Option<Arc<VerifiedToken>>,
    /// A newer DPoP nonce for the response.
    pub next_nonce: Option<String>,
    /// The connection is a trusted proxy's.
    pub from_trusted_hop: bool,
}

/// Every check a request must pass before it may go upstream, short of
/// screening a form body: framing, Host, path, route, credential, token,
/// sender constraint, scopes. Generic over the body, so the micro-benchmarks
/// run the whole decision without sockets.
pub async fn admit<'g, B>(
    gateway: &'g Gateway,
    conn: &Connection,
    req: &mut Request<B>,
    notes: &mut RequestNotes,
) -> Result<Admitted<'g>, Rejection> {
    // Taken first and unconditionally: verdicts pair with requests by order.
    if conn.framing.as_ref().and_then(|log| log.next()) == Some(Framing::Ambiguous) {
        return Err(RequestError::AmbiguousFraming.into());
    }
    let hop = gateway.forwarded.hop(conn);
    if let Some(proxy) = hop {
        // Said in the log and metrics even when its header is refused.
        notes.cert = RequestCert::Forwarded {
            source: proxy.source.clone(),
            identity: None,
        };
    }
    let cert = gateway.forwarded.resolve(hop, req.headers())?;
    // Cheap: a handshake's is a tag, a forwarded one two reference counts.
    notes.cert = cert.clone();
    let identity = cert.identity(conn.identity.as_ref());
    // Before any route: the handshake would refuse this certificate today.
    if let Some(identity) = identity
        && gateway.revoked.is_revoked(&identity.issuer_serial)
    {
        return Err(match hop {
            // The connection is the proxy's, carrying other clients too: keep it.
            Some(_) => CertificateRefusal::Revoked.into(),
            None => Rejection::ClientCertRevoked,
        });
    }
    if let Some(identity) = identity
        && let Some(crls) = &gateway.crls
        && let Err(verdict) = crls.check(identity).await
    {
        return Err(match (verdict, hop) {
            (CrlVerdict::Revoked, None) => Rejection::ClientCertRevoked,
            (CrlVerdict::Revoked, Some(_)) => CertificateRefusal::Revoked.into(),
            (CrlVerdict::ListExpired, _) => CertificateRefusal::RevocationListExpired.into(),
            (CrlVerdict::Unknown, _) => CertificateRefusal::RevocationUnknown.into(),
        });
    }
    let authority = inbound::check_head(req)?;
    // Route on exactly the path the upstream will receive, but keep what the
    // client addressed: DPoP's htu is about that.
    let original_path = inbound::normalize_target(req.uri())?
        .map(|normalized| std::mem::replace(req.uri_mut(), normalized).path().to_string());
    let route = gateway.routes.find(req.uri().path());
    notes.route = Some(route.prefix.clone());
    notes.methods = Some(route.methods);
    let (verified, next_nonce) = match route.auth {
        AuthPolicy::None => {
            extract::refuse_token_in_query(req.uri())?;
            (None, None)
        }
        AuthPolicy::Bound => {
            let target = RequestTarget {
                method: req.method().as_str(),
                authority: authority.as_str(),
                path: original_path.as_deref().unwrap_or(req.uri().path()),
            };
            let (verified, next_nonce) = authorize(gateway, identity, req, &target, route, notes).await?;
            (Some(verified), next_nonce)
        }
    };
    Ok(Admitted {
        route,
        authority,
        verified,
        next_nonce,
        from_trusted_hop: hop.is_some(),
    })
}

/// Credential, token, sender constraint and scopes, for a route that
/// requires a bound token. Returns the token and a newer DPoP nonce.
async fn authorize<B>(
    gateway: &Gateway,
    client_certificate: Option<&ClientIdentity>,
    req: &Request<B>,
    target: &RequestTarget<'_>,
    route: &Route,
    notes: &mut RequestNotes,
) -> Result<(Arc<VerifiedToken>, Option<String>), Rejection> {
    let credential = extract::credential(req.headers(), req.uri())?;
    notes.scheme = credential.scheme;
    if credential.scheme == Scheme::Dpop && !route.methods.dpop {
        return Err(refusal(credential.token, CredentialError::UnsupportedScheme));
    }
    let verified = gateway
        .validator
        .validate(credential.token)
        .await
        .map_err(|e| refusal(credential.token, e))?;
    if family_revoked(gateway, &verified) {
        return Err(TokenError::Revoked.into());
    }
    let sender = check_sender(
        gateway,
        client_certificate,
        req.headers(),
        target,
        credential,
        &verified,
        route.methods,
    )
    .await;
    let next_nonce = match sender {
        Ok(held) => {
            notes.binding = Some(held.binding);
            held.next_nonce
        }
        // A nonce challenge is a protocol step, not a verdict: even report-only routes make it.
        Err(e @ Rejection::Dpop(DpopError::NonceRequired { .. })) => return Err(e),
        Err(e) if route.binding == BindingMode::Report => {
            notes.binding_violation = Some(e.verdict().reason);
            None
        }
        Err(e) => return Err(e),
    };
    routes::check_scopes(route, &verified.claims)?;
    Ok((verified, next_nonce))
}

/// Why `token` is refused: `why`, unless the token is not even an RFC 6750
/// `b64token`, which makes the request malformed (400) whatever else is
/// wrong with it. A token the validator accepts always has that syntax, so
/// the check waits until here, off the path of every accepted request.
fn refusal(token: &str, why: impl Into<Rejection>) -> Rejection {
    match extract::check_b64token(token) {
        Err(malformed) => malformed.into(),
        Ok(()) => why.into(),
    }
}

/// The token was issued from a family since revoked. Checked on every
/// request, cached token or not: a revocation must not wait for the cache.
fn family_revoked(gateway: &Gateway, verified: &VerifiedToken) -> bool {
    let Some(issuer) = &gateway.family_issuer else {
        return false;
    };
    if gateway.revoked_families.is_empty() || verified.claims.iss != *issuer {
        return false;
    }
    match verified.claims.other.get("sid") {
        Some(serde_json::Value::String(sid)) => gateway.revoked_families.contains(sid),
        _ => false,
    }
}

/// What a passed sender check leaves for the response and the log.
struct SenderHeld {
    binding: &'static str,
    next_nonce: Option<String>,
}

/// The sender constraint: the DPoP proof when the DPoP scheme is used, then
/// every binding the token declares, then the proof's nonce and replay
/// checks (last, so that only otherwise valid proofs use up a `jti`).
async fn check_sender(
    gateway: &Gateway,
    client_certificate: Option<&ClientIdentity>,
    headers: &http::HeaderMap,
    target: &RequestTarget<'_>,
    credential: extract::Credential<'_>,
    verified: &VerifiedToken,
    methods: BindingMethods,
) -> Result<SenderHeld, Rejection> {
    let proof_header = DpopVerifier::proof_header(headers)?;
    let now = crate::auth::token::now_seconds();
    let proof = match credential.scheme {
        Scheme::Bearer => None,
        Scheme::Dpop => {
            let proof = proof_header.ok_or(DpopError::ProofMissing)?;
            Some(gateway.dpop.verify(proof, target, Some(credential.token), now)?)
        }
    };
    let proofs = Proofs {
        client_certificate,
        scheme: credential.scheme,
        dpop_jkt: proof.as_ref().map(|p| p.jkt.as_str()),
        dpop_header: proof_header.is_some(),
    };
    let binding = binding::verify(verified.claims.cnf.as_ref(), &proofs, methods)?;
    let next_nonce = match proof {
        Some(proof) => gateway.dpop.check_fresh(&proof, now).await?,
        None => None,
    };
    Ok(SenderHeld { binding, next_nonce })
}
