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
use crate::config::{BodyPace, GrantType};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::conn::identity::x5t_s256;
use crate::issuer::Issuer;
use crate::issuer::access_token::{self, Binding, Grant};
use crate::issuer::client_auth::{AuthenticatedClient, ClientAuthenticator};
use crate::issuer::client_request;
use crate::issuer::grant::{self, Evidence, GrantError};
use crate::issuer::outcome::Outcome;
use crate::issuer::reject::Rejection;
use crate::issuer::subject::SubjectVerifier;

/// What the token endpoint of one generation checks requests against.
pub struct TokenEndpoint {
    pub clients: ClientAuthenticator,
    /// The gateway's DPoP checks, with this endpoint's URL as the only `htu`
    /// and the nonces of `[authorization_server] dpop_require_nonce`.
    pub dpop: DpopVerifier,
    /// Verifies a token exchange's `subject_token`, from a `[[authorization_server.subject_issuer]]`.
    pub subjects: SubjectVerifier,
    pub access_token_ttl_seconds: u64,
    pub max_request_bytes: usize,
    pub body_pace: BodyPace,
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    /// Written whenever a scope was granted, though RFC 6749 makes it
    /// optional when it equals the request's: a client that asked for
    /// nothing learns what it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
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
    let granted = match grant_type {
        GrantType::ClientCredentials => grant::client_credentials(authenticated.client, &form, evidence)?,
        // The next issue's grants: configurable already, not served yet.
        GrantType::RefreshToken | GrantType::TokenExchange => {
            return Err(GrantError::UnsupportedGrantType(grant_type.name().to_string()).into());
        }
    };
    outcome.binding(granted.binding.label());

    let client_id = authenticated.client.client_id.as_str();
    let token_grant = Grant {
        issuer: &issuer.settings.issuer,
        subject: client_id,
        client_id,
        audience: &granted.audience,
        scope: &granted.scope,
        binding: &granted.binding,
        family: None,
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
    Ok(token_response(&issued, &granted.binding, &granted.scope, next_nonce))
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

fn token_response(
    issued: &access_token::Issued,
    binding: &Binding,
    scope: &[String],
    next_nonce: Option<String>,
) -> Response<Body> {
    let json = TokenResponse {
        access_token: &issued.token,
        token_type: binding.token_type(),
        expires_in: issued.expires_in,
        scope: (!scope.is_empty()).then(|| scope.join(" ")),
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
