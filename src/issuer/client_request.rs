//! What every client-facing endpoint (token, introspection, later
//! revocation) does first: read the form within its bounds, then
//! authenticate the client it names. Shared, so the three cannot drift on
//! what a well-formed request or an authenticated client is.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_TYPE, EXPECT};
use http::request::Parts;

use crate::config::BodyPace;
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::http::body_deadline::BodyDeadline;
use crate::issuer::client_auth::{AuthenticatedClient, ClientAuthenticator, ClientCredentials};
use crate::issuer::form::{self, Form};
use crate::issuer::outcome::Outcome;
use crate::issuer::reject::Rejection;

/// The request's form: `application/x-www-form-urlencoded` only, read
/// within `[limits] max_token_request_bytes` and the body pace, each
/// parameter at most once.
pub async fn read_form(
    parts: &Parts,
    body: RequestBody,
    max_request_bytes: usize,
    body_pace: BodyPace,
    outcome: &mut Outcome<'_>,
) -> Result<Form, Rejection> {
    form::check_content_type(parts.headers.get(CONTENT_TYPE))?;
    let awaits_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let body = BodyDeadline::new(body, body_pace);
    let bytes = form::read_bounded(body, max_request_bytes, awaits_continue).await?;
    outcome.read_body(bytes.len());
    Ok(Form::parse(&bytes)?)
}

/// The client the form and the connection's certificate authenticate, as
/// of `now`. The access line names the client asked for even when it fails.
pub async fn authenticate<'c>(
    clients: &'c ClientAuthenticator,
    form: &Form,
    conn: &Connection,
    now: f64,
    outcome: &mut Outcome<'_>,
) -> Result<AuthenticatedClient<'c>, Rejection> {
    let credentials = ClientCredentials {
        client_id: form.get("client_id"),
        client_assertion_type: form.get("client_assertion_type"),
        client_assertion: form.get("client_assertion"),
        peer_chain: conn.peer_chain.as_deref(),
        chain_verdict: Some(&conn.chain_verdict),
    };
    if let Some(client_id) = credentials.client_id {
        outcome.client(client_id);
    }
    let authenticated = clients.authenticate(&credentials, now).await?;
    outcome.client(&authenticated.client.client_id);
    Ok(authenticated)
}

/// Seconds since the epoch, fractional: the clock client assertions, DPoP
/// proofs and token lifetimes are checked against.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
