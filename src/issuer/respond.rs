//! The authorization server's responses: its public JSON documents, and
//! the JSON error body of RFC 6749 section 5.2.
//!
//! Caching: an error, and anything a later endpoint answers about tokens or
//! clients, carries `Cache-Control: no-store`. Only the two public
//! documents, the metadata and `/jwks`, may be cached, and only briefly
//! (see [`DOCUMENT_CACHE`]).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

/// How long a client or a cache in between may reuse the metadata or the
/// key set: a minute. Key rotation introduces a key (published, not
/// signing) a reload before it signs, so a key set up to a minute old
/// still verifies every new token if the operator waits longer than that
/// (and than the resource servers' own refresh) before the next step. A
/// bindgate gateway fetching `/jwks` refreshes on this `max-age`, and
/// fetches at once a `kid` it does not know.
pub const DOCUMENT_CACHE: &str = "max-age=60";

/// `application/json` for every body, `/jwks` included: RFC 7517's
/// `application/jwk-set+json` is the precise type, but every JWKS client
/// accepts plain JSON and not all accept the precise one.
const JSON: &str = "application/json";

/// A public document: 200, JSON, cacheable for [`DOCUMENT_CACHE`]. For
/// `HEAD`, the same head without the body.
pub fn document(json: &Bytes, head_only: bool) -> Response<Body> {
    let body = if head_only {
        body::full(Bytes::new())
    } else {
        body::full(json.clone())
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(DOCUMENT_CACHE));
    // Said explicitly: the empty HEAD body would otherwise claim zero bytes.
    headers.insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
    response
}

/// An error: `status`, the JSON `error` and `error_description` members,
/// `Cache-Control: no-store`.
pub fn error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let json = serde_json::json!({ "error": error, "error_description": description });
    let mut response = Response::new(body::full(json.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
