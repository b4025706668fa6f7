//! The request path, top to bottom: request checks -> route -> credentials
//! -> token -> binding -> scopes -> header rewrite -> upstream. [`handle`]
//! turns any failure into its response and writes the access log exactly once.

pub mod forward;
pub mod reject;
pub mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};

use http_body_util::BodyExt;

use self::forward::ForwardContext;
use self::routes::{Route, RouteTable};
use crate::auth::binding::{self, Proofs};
use crate::auth::dpop::DPOP_NONCE;
use crate::auth::dpop::check::{DpopError, DpopVerifier, RequestTarget};
use crate::auth::token::extract::{self, CredentialError, Scheme};
use crate::auth::token::{TokenValidator, VerifiedToken};
use crate::body::{self, Body};
use crate::config::{AuthPolicy, BindingMethods, BindingMode};
use crate::config::{ForwardSettings, Limits};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::conn::framing::Framing;
use crate::conn::revocation::RevocationSet;
use crate::gateway::reject::{ChallengeContext, Fault, Rejection};
use crate::http::access::{AccessRecord, CountedBody, LoggedBody};
use crate::http::body_deadline::BodyDeadline;
use crate::http::hop;
use crate::http::inbound::{self, RequestError};
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
    pub metrics: Arc<Metrics>,
}

/// Serves one request; never fails, since every error becomes a response.
pub async fn handle(
    gateway: Arc<Gateway>,
    conn: Arc<Connection>,
    req: Request<RequestBody>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    // Without an access log nothing below needs the request line or byte counts.
    let access_log = tracing::enabled!(target: "bindgate::access", tracing::Level::INFO);
    let method = req.method().clone();
    let path = if access_log {
        req.uri().path().to_string()
    } else {
        String::new()
    };
    let version = req.version();
    let mut notes = RequestNotes {
        bytes_in: access_log.then(Arc::default),
        ..RequestNotes::default()
    };
    let (response, reason) = match authorize_and_forward(&gateway, &conn, req, &mut notes).await {
        Ok(response) => (response, "forwarded"),
        Err(rejection) => {
            let verdict = rejection.verdict();
            let reason = verdict.reason;
            match verdict.fault {
                Fault::Upstream => {
                    tracing::warn!(error = %crate::error::error_chain(&rejection), "upstream request failed");
                }
                // A client's mistakes are in its access line and the metrics:
                // a warning each would let any client flood the log.
                Fault::Client => {}
                // Logged where they arise (key fetches, the replay store), at most so often.
                Fault::Gateway => {}
            }
            let methods = notes.methods.unwrap_or(BindingMethods::MTLS);
            let mut response = rejection.to_response(&ChallengeContext {
                realm: &gateway.realm,
                bearer: methods.mtls,
                dpop: methods.dpop,
                dpop_algs: gateway.dpop.algs(),
                presented: notes.scheme,
            });
            if verdict.close_connection {
                if version < http::Version::HTTP_2 {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                } else {
                    // Kept as a permit if the connection task is not waiting yet.
                    conn.close_requested.notify_one();
                }
            }
            (response, reason)
        }
    };
    let head = started.elapsed();
    static NO_ROUTE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));
    let route = notes.route.as_ref().unwrap_or(&NO_ROUTE);
    let status = response.status().as_u16();
    gateway.metrics.record_request(route, status, reason, head);
    if let Some(violation) = notes.binding_violation {
        gateway.metrics.record_binding_report(route, violation);
    }
    if let Some(binding) = notes.binding {
        gateway.metrics.record_binding_held(route, binding);
    }
    if !access_log {
        return Ok(response);
    }
    let record = AccessRecord {
        conn: conn.clone(),
        method,
        path,
        version,
        status,
        reason,
        route: notes.route,
        binding_violation: notes.binding_violation,
        binding: notes.binding,
        started,
        head_us: head.as_micros() as u64,
        upstream_us: notes.upstream_us,
        bytes_in: notes.bytes_in.unwrap_or_default(),
    };
    Ok(response.map(|body| LoggedBody::new(body, record).boxed()))
}

/// What the request path learned that the access log and metrics report.
#[derive(Default)]
pub struct RequestNotes {
    route: Option<Arc<str>>,
    /// Set when a report-only route forwarded a request that failed the binding check.
    binding_violation: Option<&'static str>,
    /// The binding methods of the route, once it is known.
    methods: Option<BindingMethods>,
    scheme: Scheme,
    /// Which bindings held: `mtls`, `dpop` or `mtls+dpop`.
    binding: Option<&'static str>,
    upstream_us: Option<u64>,
    /// Request body bytes, counted only for the access log.
    bytes_in: Option<Arc<std::sync::atomic::AtomicU64>>,
}

async fn authorize_and_forward(
    gateway: &Gateway,
    conn: &Connection,
    mut req: Request<RequestBody>,
    notes: &mut RequestNotes,
) -> Result<Response<Body>, Rejection> {
    let Admitted {
        route,
        authority,
        verified,
        next_nonce,
    } = admit(gateway, conn, &mut req, notes).await?;
    // From here on the body is read: by the form screen, then by the upstream.
    let pace = gateway.limits.body_pace;
    let req = req.map(|body| BodyDeadline::new(body, pace));
    let req = inbound::screen_form(req, gateway.limits.max_form_bytes).await?;

    let (mut parts, body) = req.into_parts();
    let body = match &notes.bytes_in {
        Some(counter) => CountedBody::new(body, counter.clone()).boxed(),
        None => body,
    };
    let context = ForwardContext {
        authority: &authority,
        forwarded_for: &conn.forwarded_for,
        identity: conn.identity.as_ref(),
        claims: verified.as_ref().map(|v| &v.claims),
    };
    forward::rewrite_request(&mut parts.headers, &context, &gateway.forward)?;
    let upstream_started = Instant::now();
    let response = route.upstream.send(Request::from_parts(parts, body)).await;
    let upstream_time = upstream_started.elapsed();
    gateway.metrics.upstream_duration.observe(upstream_time);
    notes.upstream_us = Some(upstream_time.as_micros() as u64);
    let response = response?;

    let (mut parts, body) = response.into_parts();
    hop::strip_hop_by_hop(&mut parts.headers);
    if let Some(nonce) = next_nonce.and_then(|n| http::HeaderValue::from_str(&n).ok()) {
        parts.headers.insert(DPOP_NONCE, nonce);
    }
    Ok(Response::from_parts(parts, body::stream(body)))
}

/// What a request admitted upstream carries with it.
pub struct Admitted<'g> {
    pub route: &'g Route,
    /// Host or `:authority`, as received.
    pub authority: String,
    pub verified: Option<Arc<VerifiedToken>>,
    /// A newer DPoP nonce for the response.
    pub next_nonce: Option<String>,
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
    // Before any route: the handshake would refuse this certificate today.
    if let Some(identity) = &conn.identity
        && gateway.revoked.is_revoked(&identity.issuer_serial)
    {
        return Err(Rejection::ClientCertRevoked);
    }
    let authority = inbound::check_head(req)?;
    // Route on exactly the path the upstream will receive, but keep what the
    // client addressed: DPoP's htu is about that.
    let original_path = inbound::normalize_target(req.uri())?
        .map(|normalized| std::mem::replace(req.uri_mut(), normalized).path().to_string());
    let route = gateway.routes.find(req.uri().path());
    notes.route = Some(route.prefix.clone());

    notes.methods = Some(route.methods);
    let mut next_nonce = None;
    let verified = match route.auth {
        AuthPolicy::None => {
            extract::refuse_token_in_query(req.uri())?;
            None
        }
        AuthPolicy::Bound => {
            let credential = extract::credential(req.headers(), req.uri())?;
            notes.scheme = credential.scheme;
            if credential.scheme == Scheme::Dpop && !route.methods.dpop {
                return Err(CredentialError::UnsupportedScheme.into());
            }
            let verified = gateway.validator.validate(credential.token).await?;
            let target = RequestTarget {
                method: req.method().as_str(),
                authority: &authority,
                path: original_path.as_deref().unwrap_or(req.uri().path()),
            };
            match check_sender(
                gateway,
                conn,
                req.headers(),
                &target,
                credential,
                &verified,
                route.methods,
            )
            .await
            {
                Ok(held) => {
                    notes.binding = Some(held.binding);
                    next_nonce = held.next_nonce;
                }
                // A nonce challenge is a protocol step, not a verdict: even report-only routes make it.
                Err(e @ Rejection::Dpop(DpopError::NonceRequired { .. })) => return Err(e),
                Err(e) if route.binding == BindingMode::Report => {
                    notes.binding_violation = Some(e.verdict().reason);
                }
                Err(e) => return Err(e),
            }
            routes::check_scopes(route, &verified.claims)?;
            Some(verified)
        }
    };
    Ok(Admitted {
        route,
        authority,
        verified,
        next_nonce,
    })
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
    conn: &Connection,
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
            Some(gateway.dpop.verify(proof, target, credential.token, now)?)
        }
    };
    let proofs = Proofs {
        client_certificate: conn.identity.as_ref(),
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
