//! Checks on the inbound request itself, before any authentication: a single
//! unambiguous Host and message framing, and no access token hidden in a
//! form body.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Version};
use http_body_util::{BodyExt, Limited};

use crate::body::{self, Body, BoxError};
use crate::http::form::form_has_access_token;

/// Why a request is malformed regardless of who sent it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request has no Host")]
    MissingHost,
    #[error("request has more than one Host header")]
    MultipleHosts,
    #[error("request framing is ambiguous (Content-Length with Transfer-Encoding, or several Content-Length)")]
    AmbiguousFraming,
    #[error("form body is larger than {limit} bytes")]
    FormTooLarge { limit: usize },
    #[error("request path has dot segments or encoded separators")]
    PathNotNormalized,
    #[error("request body could not be read")]
    BodyUnreadable(#[source] BoxError),
    #[error(transparent)]
    BodyTimedOut(#[from] crate::http::body_deadline::BodyTimedOut),
    #[error("request has a header whose name holds an underscore")]
    UnderscoreInHeaderName,
}

/// The Host (or h2 `:authority`) the client addressed, kept as the header
/// value it arrived in: forwarding it upstream as `Host` and
/// `X-Forwarded-Host` then shares its bytes instead of copying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority(HeaderValue);

impl Authority {
    /// `text` as an authority; `None` if it is empty or no header value.
    pub fn parse(text: &str) -> Option<Authority> {
        let value = HeaderValue::from_str(text).ok()?;
        Authority::checked(value)
    }

    /// A fixed authority, for statics: a bad `text` fails at compile time.
    pub const fn from_static(text: &'static str) -> Authority {
        Authority(HeaderValue::from_static(text))
    }

    fn checked(value: HeaderValue) -> Option<Authority> {
        (!value.is_empty() && value.to_str().is_ok()).then_some(Authority(value))
    }

    pub fn as_str(&self) -> &str {
        // Checked to be visible ASCII when made.
        self.0.to_str().unwrap_or_default()
    }

    pub fn header(&self) -> &HeaderValue {
        &self.0
    }
}

/// Checks Host and framing. Returns the authority the client addressed.
pub fn check_head<B>(req: &Request<B>) -> Result<Authority, RequestError> {
    let headers = req.headers();
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(RequestError::MultipleHosts);
    }
    let content_lengths = headers.get_all(CONTENT_LENGTH).iter().count();
    if content_lengths > 1 || (content_lengths == 1 && headers.contains_key(TRANSFER_ENCODING)) {
        return Err(RequestError::AmbiguousFraming);
    }
    let authority = match (req.version(), host, req.uri().authority()) {
        // h2 and h3 carry :authority; a Host header there is optional.
        (Version::HTTP_2 | Version::HTTP_3, _, Some(authority)) => Authority::parse(authority.as_str()),
        (_, Some(host), _) => Authority::checked(host.clone()),
        _ => None,
    };
    authority.ok_or(RequestError::MissingHost)
}

/// Checks the request path and merges repeated slashes, so that routing, and
/// the upstream, see one spelling of each path. Dot segments (also as
/// `%2e`) and encoded `/` or `\\` are refused: upstreams disagree on what
/// they mean, which is how a path escapes the route that authorised it.
/// Returns the new target when the path changed.
pub fn normalize_target(uri: &http::Uri) -> Result<Option<http::Uri>, RequestError> {
    let path = uri.path();
    if path == "*" {
        return Ok(None);
    }
    if !path.starts_with('/') || path.contains('\\') {
        return Err(RequestError::PathNotNormalized);
    }
    if has_escape(path, b'2', b'f') || has_escape(path, b'5', b'c') {
        return Err(RequestError::PathNotNormalized);
    }
    if path.split('/').any(is_dot_segment) {
        return Err(RequestError::PathNotNormalized);
    }
    if !path.contains("//") {
        return Ok(None);
    }
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    if let Some(query) = uri.query() {
        merged.push('?');
        merged.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(merged.parse().map_err(|_| RequestError::PathNotNormalized)?);
    http::Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| RequestError::PathNotNormalized)
}

/// Whether `path` holds `%<high><low>`, `low` in either case. Read in
/// place: the common path has no `%` at all, and needs no lowercased copy.
fn has_escape(path: &str, high: u8, low: u8) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == high && w[2].eq_ignore_ascii_case(&low))
}

/// `.` or `..`, each dot perhaps written `%2e` or `%2E`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if e.eq_ignore_ascii_case(&b'e') => tail,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// Whether the body is a urlencoded form, the one body where RFC 6750 lets a
/// client put its token.
pub fn is_form<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Buffers a form body (bounded) and fails if it carries `access_token`;
/// anything else streams through untouched.
pub async fn screen_form<B>(req: Request<B>, limit: usize) -> Result<Request<Body>, FormScreenError>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    if !is_form(&req) {
        return Ok(req.map(body::stream));
    }
    // Boxed: forms are rare, and inline the body's collection would size
    // every request's future (which is moved, whole, several times).
    Box::pin(screen_form_body(req, limit)).await
}

async fn screen_form_body<B>(req: Request<B>, limit: usize) -> Result<Request<Body>, FormScreenError>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, incoming) = req.into_parts();
    let collected = Limited::new(incoming, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            FormScreenError::Request(RequestError::FormTooLarge { limit })
        } else if crate::http::body_deadline::timed_out(e.as_ref()) {
            FormScreenError::Request(crate::http::body_deadline::BodyTimedOut.into())
        } else {
            FormScreenError::Request(RequestError::BodyUnreadable(e))
        }
    })?;
    let bytes = collected.to_bytes();
    if form_has_access_token(&bytes) {
        return Err(FormScreenError::TokenInForm);
    }
    Ok(Request::from_parts(parts, body::full(bytes)))
}

/// The outcomes of [`screen_form`] that stop the request.
#[derive(Debug, thiserror::Error)]
pub enum FormScreenError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("access tokens are not accepted in a form body")]
    TokenInForm,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http1_needs_exactly_one_host() {
        let ok = request(Version::HTTP_11, "/", &[("host", "api.example")]);
        assert_eq!(check_head(&ok).unwrap().as_str(), "api.example");
        let empty = request(Version::HTTP_11, "/", &[("host", "")]);
        assert!(matches!(check_head(&empty), Err(RequestError::MissingHost)));
        assert!(matches!(
            check_head(&request(Version::HTTP_11, "/", &[])),
            Err(RequestError::MissingHost)
        ));
        let two = request(Version::HTTP_11, "/", &[("host", "a"), ("host", "b")]);
        assert!(matches!(check_head(&two), Err(RequestError::MultipleHosts)));
    }

    #[test]
    fn h2_uses_authority() {
        let req = request(Version::HTTP_2, "https://api.example:8443/x", &[]);
        assert_eq!(check_head(&req).unwrap().as_str(), "api.example:8443");
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let both = request(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("content-length", "3"), ("transfer-encoding", "chunked")],
        );
        assert!(matches!(check_head(&both), Err(RequestError::AmbiguousFraming)));
        let dup = request(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("content-length", "3"), ("content-length", "3")],
        );
        assert!(matches!(check_head(&dup), Err(RequestError::AmbiguousFraming)));
    }

    #[test]
    fn paths_are_merged_or_refused() {
        let norm = |p: &str| normalize_target(&p.parse().unwrap()).map(|u| u.map(|u| u.to_string()));
        assert_eq!(norm("/a/b?x=1").unwrap(), None);
        assert_eq!(norm("//a///b?x=//").unwrap().as_deref(), Some("/a/b?x=//"));
        for bad in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a%2fb",
            "/a%5Cb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a/%2E",
            "/a/%2e.",
        ] {
            assert!(norm(bad).is_err(), "{bad}");
        }
        for fine in [
            "/a/..b/c.d",
            "/a/.../b",
            "/a/%2e%2e%2e",
            "/a/%2",
            "/a/%",
            "/a/%25",
            "/a/%2g",
            "/%5",
        ] {
            assert_eq!(norm(fine).unwrap(), None, "{fine}");
        }
    }

    #[test]
    fn form_content_type_is_recognised_with_parameters() {
        let req = request(
            Version::HTTP_11,
            "/",
            &[("content-type", "Application/X-WWW-Form-Urlencoded; charset=utf-8")],
        );
        assert!(is_form(&req));
        assert!(!is_form(&request(
            Version::HTTP_11,
            "/",
            &[("content-type", "application/json")]
        )));
    }
}
