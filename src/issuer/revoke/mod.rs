//! The revocation endpoint, `POST /revoke` (RFC 7009).
//!
//! - Client authentication as at the token endpoint; a public client names
//!   itself with `client_id`, so an app can revoke its own refresh token at
//!   sign-out.
//! - A refresh token, or an access token carrying `sid`, revokes its whole
//!   family, access tokens included, exactly as reuse does.
//! - A token that is not ours, or not live, is answered 200 (section 2.2):
//!   the client's goal, that the token no longer works, holds.
//! - The 200 is sent only once the revocation is committed: a store that
//!   cannot be reached is a 503 (fosite answered 200, CVE-2020-15223).

pub mod error;

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response};

use self::error::RevokeError;
use crate::body::{self, Body};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::issuer::Issuer;
use crate::issuer::client_request;
use crate::issuer::introspect::verify_issued;
use crate::issuer::outcome::Outcome;
use crate::issuer::reject::Rejection;
use crate::issuer::store::RevokeReason;

pub async fn serve(
    issuer: &Issuer,
    conn: &Connection,
    req: Request<RequestBody>,
    outcome: &mut Outcome<'_>,
) -> Result<Response<Body>, Rejection> {
    let (parts, body) = req.into_parts();
    let endpoint = &issuer.token;
    let form = client_request::read_form(&parts, body, endpoint.max_request_bytes, endpoint.body_pace, outcome).await?;
    let now = client_request::unix_now();
    let authenticated = client_request::authenticate(&endpoint.clients, &form, conn, now, outcome).await?;
    let client_id = authenticated.client.client_id.as_str();
    let token = form.get("token").ok_or(Rejection::TokenMissing)?;
    let now = now as i64;

    let Some(family_id) = family_of(issuer, token, client_id, now).await? else {
        return Ok(revoked());
    };
    let families = &endpoint.families;
    families
        .revoke(&family_id, RevokeReason::Revocation, now)
        .await
        .map_err(RevokeError::from)?;
    tracing::info!(
        target: "bindgate::security",
        event = "family_revoked",
        client_id,
        family_id = %family_id,
        reason = RevokeReason::Revocation.label(),
        "a client revoked a token family"
    );
    Ok(revoked())
}

/// The family `token` belongs to, if it is one of ours and `client_id`'s.
/// Whatever the hint says: refresh tokens are opaque and access tokens
/// are JWTs, so the token says what it is.
async fn family_of(issuer: &Issuer, token: &str, client_id: &str, now: i64) -> Result<Option<String>, RevokeError> {
    if let Some(claims) = verify_issued(issuer.keys.verification(), &issuer.settings.issuer, token, now as u64) {
        if claims.client_id != client_id {
            return Err(RevokeError::OtherClient);
        }
        return claims.sid.map(Some).ok_or(RevokeError::UnsupportedTokenType);
    }
    let Some(presented) = issuer.token.families.find(token).await? else {
        return Ok(None);
    };
    if presented.family.client_id != client_id {
        return Err(RevokeError::OtherClient);
    }
    Ok(Some(presented.family.id))
}

/// RFC 7009 section 2.2: 200 with an empty body.
fn revoked() -> Response<Body> {
    let mut response = Response::new(body::full(bytes::Bytes::new()));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
