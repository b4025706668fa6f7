//! The request body of the token, introspection and revocation endpoints:
//! `application/x-www-form-urlencoded` (RFC 6749 section 3.2), read within a
//! bound and parsed strictly. A parameter given twice is refused rather than
//! resolved (RFC 6749 section 3.1: "MUST NOT be included more than once"),
//! since two components could each read a different one of them. The one
//! exception is `resource`, which RFC 8707 section 2 lets a client repeat.

use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;

/// Why a request body is not a usable form. Every variant is an
/// `invalid_request`, with 413 for [`FormError::TooLarge`] and 408 for
/// [`FormError::TimedOut`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the request body must be application/x-www-form-urlencoded")]
    NotForm,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    Unreadable,
    /// `[limits] body_read_timeout` / `body_min_rate`, as for the gateway's bodies.
    #[error("the request body came too slowly")]
    TimedOut,
    #[error("parameter {0:?} is given more than once")]
    Duplicate(String),
    #[error("the request body is not valid UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("the request body has a malformed percent-encoding")]
    BadEscape,
}

impl FormError {
    /// The stable label of logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FormError::NotForm => "form_content_type",
            FormError::TooLarge { .. } => "form_too_large",
            FormError::Unreadable => "form_unreadable",
            FormError::TimedOut => "body_timeout",
            FormError::Duplicate(_) => "form_duplicate_parameter",
            FormError::NotUtf8 => "form_not_utf8",
            FormError::BadEscape => "form_bad_escape",
        }
    }
}

/// The parameters RFC 8707 allows more than once.
const REPEATABLE: [&str; 1] = ["resource"];

/// The parameters of a form, each name at most once (but see [`REPEATABLE`]). Parameters without a
/// value count as absent (RFC 6749 section 3.1), but still as given for the
/// duplicate check: `scope=&scope=admin` is refused, not read as `admin`.
#[derive(Debug, Default)]
pub struct Form {
    params: Vec<(String, String)>,
}

impl Form {
    /// Every value of a repeatable parameter, in the order given; empty ones skipped.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, if given with a value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Parses an urlencoded body: `+` is a space, `%XX` a byte, and the
    /// decoded names and values must be UTF-8.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name)?;
            if !REPEATABLE.contains(&name.as_str()) && params.iter().any(|(n, _)| *n == name) {
                return Err(FormError::Duplicate(name));
            }
            params.push((name, decode(value)?));
        }
        Ok(Form { params })
    }
}

/// Refuses any media type but `application/x-www-form-urlencoded`; a
/// `charset` parameter is allowed (clients send `charset=UTF-8`).
pub fn check_content_type(content_type: Option<&HeaderValue>) -> Result<(), FormError> {
    let media_type = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match media_type {
        Some(t) if t.eq_ignore_ascii_case("application/x-www-form-urlencoded") => Ok(()),
        _ => Err(FormError::NotForm),
    }
}

/// Reads `body` whole, refusing it once it passes `limit` bytes, without
/// buffering more than that.
pub async fn read_bounded<B>(body: B, limit: usize) -> Result<bytes::Bytes, FormError>
where
    B: HttpBody,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(FormError::TooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FormError::TooLarge { limit }),
        Err(e) if crate::http::body_deadline::timed_out(&*e) => Err(FormError::TimedOut),
        Err(_) => Err(FormError::Unreadable),
    }
}

fn decode(part: &[u8]) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let byte = part
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or(FormError::BadEscape)?;
                bytes.push(byte);
                i += 2;
            }
            other => bytes.push(other),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded() {
        let form = Form::parse(b"grant_type=client_credentials&scope=a+b%20c&resource=https%3A%2F%2Fapi").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("a b c"));
        assert_eq!(form.get("resource"), Some("https://api"));
        assert_eq!(form.get("absent"), None);
    }

    #[test]
    fn a_parameter_given_twice_is_refused_even_when_one_is_empty() {
        assert_eq!(
            Form::parse(b"scope=a&grant_type=x&scope=b").unwrap_err(),
            FormError::Duplicate("scope".into())
        );
        assert_eq!(
            Form::parse(b"scope=&scope=admin").unwrap_err(),
            FormError::Duplicate("scope".into())
        );
        // The same name, percent-encoded, is the same parameter.
        assert_eq!(
            Form::parse(b"scope=a&sc%6Fpe=b").unwrap_err(),
            FormError::Duplicate("scope".into())
        );
    }

    #[test]
    fn resource_may_be_repeated_as_rfc_8707_allows() {
        let form = Form::parse(b"resource=https%3A%2F%2Fa&scope=x&resource=https%3A%2F%2Fb&resource=").unwrap();
        assert_eq!(form.get_all("resource").collect::<Vec<_>>(), ["https://a", "https://b"]);
        assert_eq!(form.get_all("scope").collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = Form::parse(b"scope=&client_id&&grant_type=x").unwrap();
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("client_id"), None);
        assert_eq!(form.get("grant_type"), Some("x"));
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_refused() {
        assert_eq!(Form::parse(b"a=%zz").unwrap_err(), FormError::BadEscape);
        assert_eq!(Form::parse(b"a=%4").unwrap_err(), FormError::BadEscape);
        assert_eq!(Form::parse(b"a=%+1").unwrap_err(), FormError::BadEscape);
        assert_eq!(Form::parse(b"a=%ff%fe").unwrap_err(), FormError::NotUtf8);
        assert_eq!(Form::parse(b"a=\xff").unwrap_err(), FormError::NotUtf8);
        assert_eq!(Form::parse("a=%C3%BC".as_bytes()).unwrap().get("a"), Some("\u{fc}"));
    }

    #[test]
    fn only_the_form_media_type_is_accepted() {
        let ok = |v: &'static str| check_content_type(Some(&HeaderValue::from_static(v)));
        assert_eq!(ok("application/x-www-form-urlencoded"), Ok(()));
        assert_eq!(ok("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), Ok(()));
        assert_eq!(ok("application/json"), Err(FormError::NotForm));
        assert_eq!(ok("application/x-www-form-urlencodedx"), Err(FormError::NotForm));
        assert_eq!(check_content_type(None), Err(FormError::NotForm));
    }

    #[test]
    fn every_error_has_its_own_label() {
        let all = [
            FormError::NotForm,
            FormError::TooLarge { limit: 1 },
            FormError::Unreadable,
            FormError::Duplicate("a".into()),
            FormError::NotUtf8,
            FormError::BadEscape,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(FormError::label).collect();
        assert_eq!(labels.len(), all.len());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let body = http_body_util::Full::new(bytes::Bytes::from(vec![b'a'; 1025]));
        assert_eq!(
            read_bounded(body, 1024).await.unwrap_err(),
            FormError::TooLarge { limit: 1024 }
        );
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"grant_type=x"));
        assert_eq!(read_bounded(body, 1024).await.unwrap(), &b"grant_type=x"[..]);
        let stream = http_body_util::StreamBody::new(futures_stream(vec![vec![b'a'; 600], vec![b'b'; 600]]));
        assert_eq!(
            read_bounded(stream, 1024).await.unwrap_err(),
            FormError::TooLarge { limit: 1024 }
        );
    }

    /// A body of several frames whose size is not known up front.
    fn futures_stream(
        chunks: Vec<Vec<u8>>,
    ) -> impl futures_core::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> {
        struct Chunks(std::collections::VecDeque<Vec<u8>>);
        impl futures_core::Stream for Chunks {
            type Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(hyper::body::Frame::data(c.into()))))
            }
        }
        Chunks(chunks.into())
    }
}
