//! The token endpoint, `POST /token` (RFC 6749 section 3.2), in the order a
//! request is decided:
//!
//! 1. the form (`client_request::read_form`);
//! 2. the DPoP proof, if the request has one (RFC 9449 section 5): the
//!    gateway's own checks, with `htu` the token endpoint's URL, then the
//!    server nonce and the replay store. Before client authentication, so a
//!    client told `use_dpop_nonce` has not spent its client assertion's
//!    `jti` on the refused attempt;
//! 3. client authentication (`client_request::authenticate`);
//! 4. the grant (`grant`): type, scope, audience and the binding;
//! 5. the access token, signed by the ring's current key.
//!
//! Every answer, success or error, carries `Cache-Control: no-store`.
//! Nothing here logs a credential: the access line gets the client_id, the
//! grant and the binding, never the form.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use serde::Serialize;

use crate::auth::dpop::DPOP_NONCE;
use crate::auth::dpop::check::{DpopVerifier, RequestTarget};
use crate::body::{self, Body};
use std::sync::Arc;

use crate::config::{BodyPace, ClientAuthMethod, GrantType, RefreshSettings, RegisteredClient};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::conn::identity::x5t_s256;
use crate::issuer::Issuer;
use crate::issuer::access_token::{self, Binding, Grant};
use crate::issuer::client_auth::{AuthenticatedClient, ClientAuthenticator};
use crate::issuer::client_request;
use crate::issuer::exchange::{self, ExchangeError};
use crate::issuer::form::Form;
use crate::issuer::grant::{self, Evidence};
use crate::issuer::outcome::Outcome;
use crate::issuer::refresh::{self, Families, RefreshError, Start};
use crate::issuer::reject::Rejection;
use crate::issuer::store::{Family, FamilyBinding};
use crate::issuer::subject::SubjectVerifier;

/// What the token endpoint of one generation checks requests against.
pub struct TokenEndpoint {
    pub clients: ClientAuthenticator,
    /// The gateway's DPoP checks, with this endpoint's URL as the only `htu`
    /// and the nonces of `[authorization_server] dpop_require_nonce`.
    pub dpop: DpopVerifier,
    /// The refresh-token families, shared with every other generation.
    pub families: Arc<Families>,
    /// Verifies a token exchange's `subject_token`, from a `[[authorization_server.subject_issuer]]`.
    pub subjects: SubjectVerifier,
    pub access_token_ttl_seconds: u64,
    pub refresh: RefreshSettings,
    pub max_request_bytes: usize,
    pub body_pace: BodyPace,
}

/// A successful token response (RFC 6749 section 5.1, RFC 8693 section 2.2.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    token_type: &'static str,
    expires_in: u64,
    /// Written whenever a scope was granted, though RFC 6749 makes it
    /// optional when it equals the request's: a client that asked for
    /// nothing learns what it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// Not in RFC 6749, but what GitHub, Microsoft and others call it: the
    /// seconds the refresh token lives unless used, so the app knows when
    /// its user must sign in again.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<i64>,
}

/// What one grant decided: the access token's claims, and what else the
/// response carries.
struct Granted {
    subject: String,
    scope: Vec<String>,
    audience: Vec<String>,
    binding: Binding,
    /// The family, for a grant that started or continued one (`sid`).
    family: Option<String>,
    refresh_token: Option<(String, i64)>,
    issued_token_type: Option<&'static str>,
}

/// Decides one token request; every refusal is a [`Rejection`] that
/// `issuer::handle` answers with the RFC 6749 section 5.2 JSON.
pub async fn serve(
    issuer: &Issuer,
    endpoint: &TokenEndpoint,
    conn: &Connection,
    req: Request<RequestBody>,
    outcome: &mut Outcome<'_>,
) -> Result<Response<Body>, Rejection> {
    let (parts, body) = req.into_parts();
    let form = client_request::read_form(&parts, body, endpoint.max_request_bytes, endpoint.body_pace, outcome).await?;
    let now = client_request::unix_now();
    let proven = proven_dpop_key(endpoint, &parts, now).await?;
    let authenticated = client_request::authenticate(&endpoint.clients, &form, conn, now, outcome).await?;
    let grant_type = grant::grant_type(authenticated.client, &form)?;
    outcome.grant(grant_type.name());

    let certificate_x5t = connection_thumbprint(&authenticated, conn);
    let evidence = Evidence {
        dpop_jkt: proven.as_ref().map(|p| p.jkt.as_str()),
        certificate_x5t: certificate_x5t.as_deref(),
    };
    let client = authenticated.client;
    let granted = match grant_type {
        GrantType::ClientCredentials => {
            let granted = grant::client_credentials(client, &form, evidence)?;
            Granted {
                subject: client.client_id.clone(),
                scope: granted.scope,
                audience: granted.audience,
                binding: granted.binding,
                family: None,
                refresh_token: None,
                issued_token_type: None,
            }
        }
        GrantType::RefreshToken => refresh_token(endpoint, client, &form, evidence, now as i64).await?,
        GrantType::TokenExchange => token_exchange(endpoint, client, &form, evidence, now).await?,
    };
    outcome.binding(granted.binding.label());

    let token_grant = Grant {
        issuer: &issuer.settings.issuer,
        subject: &granted.subject,
        client_id: &client.client_id,
        audience: &granted.audience,
        scope: &granted.scope,
        binding: &granted.binding,
        family: granted.family.as_deref(),
    };
    let issued = access_token::mint(
        issuer.keys.signer(),
        &token_grant,
        now as u64,
        endpoint.access_token_ttl_seconds,
    )?;
    issuer
        .metrics
        .record_as_token_issued(grant_type.name(), granted.binding.label());
    let next_nonce = proven.and_then(|p| p.next_nonce);
    Ok(token_response(&issued, &granted, next_nonce))
}

/// RFC 8693: an identity provider's token for a DPoP- or certificate-bound
/// access token of ours, starting a family: its `sub` is the subject
/// token's, its `sid` the family's. A public client's family is bound to
/// the key this request proved; a confidential client's to its client
/// authentication. Everything is decided before the family is written.
async fn token_exchange(
    endpoint: &TokenEndpoint,
    client: &RegisteredClient,
    form: &Form,
    evidence: Evidence<'_>,
    now: f64,
) -> Result<Granted, Rejection> {
    let exchange = exchange::read(form)?;
    let scope = grant::scope(client, form.get("scope"))?;
    // RFC 8693 section 2.1: `audience` names the target logically, `resource` by URI.
    let audience = grant::audience(client, form.get_all("resource").chain(form.get_all("audience")))?;
    let binding = grant::binding(client, evidence)?;
    let subject = endpoint
        .subjects
        .verify_refetching(exchange.subject_token, exchange.subject_token_type, now)
        .await
        .map_err(ExchangeError::from)?;
    let family_binding = match (&client.auth, &binding) {
        (ClientAuthMethod::None, Binding::Dpop { jkt }) => FamilyBinding::Dpop { jkt: jkt.clone() },
        (ClientAuthMethod::None, Binding::Certificate { x5t_s256 }) => FamilyBinding::Certificate {
            x5t_s256: x5t_s256.clone(),
        },
        _ => FamilyBinding::Client,
    };
    let lifetime = client.family_lifetime;
    let started = endpoint
        .families
        .start(Start {
            client_id: &client.client_id,
            subject: &subject.subject,
            scope: &scope,
            audience: &audience,
            binding: family_binding,
            now: now as i64,
            absolute_lifetime: seconds(lifetime.absolute),
            idle_timeout: seconds(lifetime.idle),
        })
        .await?;
    let refreshes = client.grant_types.contains(&GrantType::RefreshToken);
    Ok(Granted {
        subject: subject.subject,
        scope,
        audience,
        binding,
        family: Some(started.family_id),
        refresh_token: refreshes.then_some((started.refresh_token, started.refresh_expires_in)),
        issued_token_type: Some(exchange::ACCESS_TOKEN_TYPE),
    })
}

fn seconds(duration: std::time::Duration) -> i64 {
    duration.as_secs().min(i64::MAX as u64) as i64
}

/// RFC 6749 section 6: a refresh token for a new access token, and (when
/// the family rotates) a new refresh token. The access token says what the
/// family was granted, narrowed by `scope` and `resource`, bound to the
/// family's key, or for a confidential client to the key of this request.
async fn refresh_token(
    endpoint: &TokenEndpoint,
    client: &RegisteredClient,
    form: &Form,
    evidence: Evidence<'_>,
    now: i64,
) -> Result<Granted, Rejection> {
    let token = form.get("refresh_token").ok_or(RefreshError::Missing)?;
    let request = refresh::Request {
        client_id: &client.client_id,
        rotation: client.refresh_rotation,
        evidence,
        now,
        grace_seconds: seconds(endpoint.refresh.grace),
    };
    let shape = |family: &Family| -> Result<(Vec<String>, Vec<String>, Binding), Rejection> {
        let scope = grant::narrow_scope(&family.scope, form.get("scope"))?;
        let audience = grant::narrow_audience(&family.audience, form.get_all("resource"))?;
        let binding = match &family.binding {
            FamilyBinding::Dpop { jkt } => Binding::Dpop { jkt: jkt.clone() },
            FamilyBinding::Certificate { x5t_s256 } => Binding::Certificate {
                x5t_s256: x5t_s256.clone(),
            },
            FamilyBinding::Client => grant::binding(client, evidence)?,
        };
        Ok((scope, audience, binding))
    };
    let (redeemed, (scope, audience, binding)) = endpoint.families.redeem(token, &request, shape).await?;
    Ok(Granted {
        subject: redeemed.family.subject,
        scope,
        audience,
        binding,
        family: Some(redeemed.family.id),
        refresh_token: redeemed.refresh_token.map(|t| (t, redeemed.refresh_expires_in)),
        issued_token_type: None,
    })
}

/// A DPoP key the request proved it holds.
struct ProvenKey {
    /// Its RFC 7638 thumbprint: the token's `cnf.jkt`.
    jkt: String,
    /// A newer nonce for the client, when its proof's was from the last window.
    next_nonce: Option<String>,
}

/// The request's DPoP proof, if it has one, checked as the gateway checks
/// proofs: everything stateless, then the nonce, then the replay store.
async fn proven_dpop_key(endpoint: &TokenEndpoint, parts: &Parts, now: f64) -> Result<Option<ProvenKey>, Rejection> {
    let Some(proof) = DpopVerifier::proof_header(&parts.headers)? else {
        return Ok(None);
    };
    let target = RequestTarget {
        method: parts.method.as_str(),
        // Unused: the verifier's public URL is the issuer's origin, which
        // is what the client addressed whatever Host the listener saw.
        authority: "",
        path: parts.uri.path(),
    };
    let verified = endpoint.dpop.verify(proof, &target, None, now)?;
    let next_nonce = endpoint.dpop.check_fresh(&verified, now).await?;
    Ok(Some(ProvenKey {
        jkt: verified.jkt,
        next_nonce,
    }))
}

/// `x5t#S256` of the connection's certificate: the one that authenticated
/// the client when a certificate method did, otherwise whatever certificate
/// the handshake proved the client holds the key of.
fn connection_thumbprint(authenticated: &AuthenticatedClient<'_>, conn: &Connection) -> Option<String> {
    if let Some(thumbprint) = &authenticated.certificate_thumbprint {
        return Some(thumbprint.clone());
    }
    let leaf = conn.peer_chain.as_deref()?.first()?;
    Some(x5t_s256(leaf))
}

fn token_response(issued: &access_token::Issued, granted: &Granted, next_nonce: Option<String>) -> Response<Body> {
    let json = TokenResponse {
        access_token: &issued.token,
        issued_token_type: granted.issued_token_type,
        token_type: granted.binding.token_type(),
        expires_in: issued.expires_in,
        scope: (!granted.scope.is_empty()).then(|| granted.scope.join(" ")),
        refresh_token: granted.refresh_token.as_ref().map(|(token, _)| token.as_str()),
        refresh_token_expires_in: granted.refresh_token.as_ref().map(|(_, expires_in)| *expires_in),
    };
    // Serializing a struct of strings and numbers cannot fail; an empty
    // object would still be a well-formed (if useless) answer.
    let text = serde_json::to_string(&json).unwrap_or_default();
    let mut response = Response::new(body::full(text));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // For HTTP/1.0 caches, which know no Cache-Control (RFC 6749 section 5.1's example).
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(nonce) = next_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert(DPOP_NONCE, nonce);
    }
    response
}
