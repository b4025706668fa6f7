//! The introspection endpoint, `POST /introspect` (RFC 7662): an
//! authenticated confidential client asks whether a token is active and
//! what it says.
//!
//! - Client authentication as at the token endpoint; a public client
//!   (`auth = "none"`) proves nothing and is refused with `invalid_client`.
//! - `active: true` only for an access token this issuer signed with a key
//!   of the current ring, with this `iss`, `typ` `at+jwt`, and not expired
//!   (no leeway: the answer is about now). Anything else, including a token
//!   signed by a key since removed, is `{"active": false}`, with no reason:
//!   RFC 7662 section 2.2 says to disclose nothing about an inactive token.
//! - A refresh token is active while it is its family's live one and the
//!   family is neither revoked, expired nor idle; an access token of a
//!   family only while the family is not revoked.
//! - `token_type_hint` is accepted and ignored: access tokens are JWTs and
//!   refresh tokens are not, so each is recognised by what it is.
//! - Any confidential client may introspect any token: the audience check is
//!   the resource server's, which is who asks.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::body::{self, Body};
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::issuer::Issuer;
use crate::issuer::client_auth::{AuthMethod, ClientAuthError};
use crate::issuer::client_request;
use crate::issuer::outcome::Outcome;
use crate::issuer::refresh::RefreshError;
use crate::issuer::reject::Rejection;
use crate::jose::Algorithm;
use crate::jose::jwk::KeySet;
use crate::jose::jws::{self, JoseHeader};

/// Answers one introspection request.
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
    if authenticated.method == AuthMethod::None {
        return Err(ClientAuthError::PublicClient.into());
    }

    let token = form.get("token").ok_or(Rejection::TokenMissing)?;
    let answer = match introspect(issuer.keys.verification(), &issuer.settings.issuer, token, now as u64) {
        Some(answer) => match answer["sid"].as_str() {
            Some(sid) => family_alive(issuer, sid).await?.then_some(answer),
            None => Some(answer),
        },
        None => refresh_token(issuer, token, now as i64).await?,
    };
    Ok(json_response(&answer.unwrap_or_else(inactive)))
}

/// An access token of a family is active only while the family is: its
/// revocation (reuse, RFC 7009, an operator) takes the access tokens too.
async fn family_alive(issuer: &Issuer, family_id: &str) -> Result<bool, Rejection> {
    let families = &issuer.token.families;
    if families.revoked.contains(family_id) {
        return Ok(false);
    }
    let family = families.family(family_id).await.map_err(RefreshError::from)?;
    // A purged family was dead for longer than an access token lives, so
    // a live token cannot name one; unknown is refused all the same.
    Ok(family.is_some_and(|f| f.revoked_at.is_none()))
}

/// A refresh token is active while it is its family's live token and the
/// family is neither revoked, expired nor idle.
async fn refresh_token(issuer: &Issuer, token: &str, now: i64) -> Result<Option<Value>, Rejection> {
    let found = issuer.token.families.find(token).await.map_err(RefreshError::from)?;
    let Some(presented) = found else {
        return Ok(None);
    };
    let family = presented.family;
    if presented.replaced || presented.generation != family.generation || !family.is_active(now) {
        return Ok(None);
    }
    let mut answer = serde_json::json!({
        "active": true,
        "iss": issuer.settings.issuer,
        "sub": family.subject,
        "aud": family.audience,
        "client_id": family.client_id,
        "exp": family.usable_until(),
        "token_type": "refresh_token",
        "sid": family.id,
    });
    if !family.scope.is_empty() {
        answer["scope"] = family.scope.join(" ").into();
    }
    Ok(Some(answer))
}

/// The members of an active token's answer, or `None` for an inactive one:
/// `token` must verify against `keys` and name `issuer`.
fn introspect(keys: &KeySet, issuer: &str, token: &str, now: u64) -> Option<Value> {
    let claims = verify_issued(keys, issuer, token, now)?;
    let token_type = if claims.cnf.contains_key("jkt") {
        "DPoP"
    } else {
        "Bearer"
    };
    let mut answer = serde_json::json!({
        "active": true,
        "iss": claims.iss,
        "sub": claims.sub,
        "aud": claims.aud,
        "client_id": claims.client_id,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
        "token_type": token_type,
        "cnf": claims.cnf,
    });
    if let Some(scope) = claims.scope {
        answer["scope"] = scope.into();
    }
    if let Some(sid) = claims.sid {
        answer["sid"] = sid.into();
    }
    Some(answer)
}

/// The claims of a live access token this issuer signed, or `None`.
pub(crate) fn verify_issued(keys: &KeySet, issuer: &str, token: &str, now: u64) -> Option<IssuedClaims> {
    let jws = jws::parse::<JoseHeader>(token).ok()?;
    if !jws
        .header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"))
        || jws.header.crit.is_some()
    {
        return None;
    }
    let alg = Algorithm::from_name(&jws.header.alg).ok()?;
    let key = keys.choose(jws.header.kid.as_deref(), alg).ok()?;
    if !key.verify(alg, jws.signing_input.as_bytes(), jws.signature_b64) {
        return None;
    }
    let payload = jws::decode_part(jws.payload_b64, "payload").ok()?;
    let claims: IssuedClaims = serde_json::from_slice(&payload).ok()?;
    if claims.iss != issuer || claims.exp <= now {
        return None;
    }
    Some(claims)
}

/// The claims `access_token::mint` writes; a token without them is not one of ours.
#[derive(Deserialize)]
pub(crate) struct IssuedClaims {
    iss: String,
    sub: String,
    aud: Value,
    pub client_id: String,
    iat: u64,
    exp: u64,
    jti: String,
    #[serde(default)]
    scope: Option<String>,
    cnf: Map<String, Value>,
    /// The refresh-token family it was issued from.
    #[serde(default)]
    pub sid: Option<String>,
}

fn inactive() -> Value {
    serde_json::json!({ "active": false })
}

fn json_response(answer: &Value) -> Response<Body> {
    let mut response = Response::new(body::full(answer.to_string()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::access_token::{Binding, Grant, mint};
    use crate::jose::sign::SigningKey;

    const ISSUER: &str = "https://as.example";

    fn key() -> SigningKey {
        let pkcs8 =
            aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn keys_of(key: &SigningKey) -> KeySet {
        KeySet::from_json(format!("{{\"keys\":[{}]}}", key.public_jwk()).as_bytes()).unwrap()
    }

    fn token(key: &SigningKey, issuer: &str, binding: &Binding, iat: u64) -> String {
        let grant = Grant {
            issuer,
            subject: "svc-a",
            client_id: "svc-a",
            audience: &["https://api.example".into()],
            scope: &["orders:read".into()],
            binding,
            family: None,
        };
        mint(key, &grant, iat, 300).unwrap().token
    }

    #[test]
    fn a_live_token_of_ours_is_active_with_its_claims_and_token_type() {
        let key = key();
        let dpop = Binding::Dpop { jkt: "jkt-1".into() };
        let answer = introspect(&keys_of(&key), ISSUER, &token(&key, ISSUER, &dpop, 1000), 1100).unwrap();
        assert_eq!(answer["active"], true);
        assert_eq!(answer["token_type"], "DPoP");
        assert_eq!(answer["cnf"], serde_json::json!({ "jkt": "jkt-1" }));
        assert_eq!(answer["scope"], "orders:read");
        assert_eq!(
            (answer["iat"].as_u64(), answer["exp"].as_u64()),
            (Some(1000), Some(1300))
        );
        for member in ["iss", "sub", "aud", "client_id", "jti"] {
            assert!(answer[member].is_string(), "{member} in {answer}");
        }
        let mtls = Binding::Certificate { x5t_s256: "x5t".into() };
        let answer = introspect(&keys_of(&key), ISSUER, &token(&key, ISSUER, &mtls, 1000), 1100).unwrap();
        assert_eq!(answer["token_type"], "Bearer");
        assert_eq!(answer["cnf"], serde_json::json!({ "x5t#S256": "x5t" }));
    }

    #[test]
    fn expired_foreign_tampered_and_unsigned_tokens_are_inactive() {
        let (ours, theirs) = (key(), key());
        let keys = keys_of(&ours);
        let binding = Binding::Dpop { jkt: "k".into() };
        let live = token(&ours, ISSUER, &binding, 1000);
        assert!(introspect(&keys, ISSUER, &live, 1299).is_some());
        assert!(introspect(&keys, ISSUER, &live, 1300).is_none(), "expired at exp");
        assert!(introspect(&keys, ISSUER, &token(&theirs, ISSUER, &binding, 1000), 1100).is_none());
        assert!(
            introspect(
                &keys,
                ISSUER,
                &token(&ours, "https://other.example", &binding, 1000),
                1100
            )
            .is_none()
        );
        let mut tampered = live.clone();
        tampered.pop();
        assert!(introspect(&keys, ISSUER, &tampered, 1100).is_none());
        for junk in ["", "a.b", "a.b.c", "not a token"] {
            assert!(introspect(&keys, ISSUER, junk, 1100).is_none(), "{junk}");
        }
    }
}
