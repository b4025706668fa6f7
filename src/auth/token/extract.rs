//! Finding the access token in a request: exactly one `Authorization`
//! header with the `Bearer` or `DPoP` scheme, and never a token in the query
//! string (form bodies: `http::inbound::screen_form`).

use http::header::AUTHORIZATION;
use http::{HeaderMap, Uri};

use crate::http::form::form_has_access_token;

/// How the request presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Bearer,
    Dpop,
}

/// Why no usable credential could be taken from a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no access token in the request")]
    Missing,
    #[error("authorization scheme is not accepted here")]
    UnsupportedScheme,
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    #[error("Authorization header is not `<scheme> <token>`")]
    MalformedAuthorization,
    #[error("access tokens are not accepted in the query string")]
    TokenInQuery,
}

/// The token of a request and the scheme it came with.
///
/// `token` is not yet known to be an RFC 6750 `b64token`: see
/// [`check_b64token`], which the gateway runs only once a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    pub scheme: Scheme,
    pub token: &'a str,
}

/// The access token of the request's one `Authorization` header, `Bearer`
/// (RFC 6750) or `DPoP` (RFC 9449), schemes matched case-insensitively.
/// The token's own syntax is left to [`check_b64token`].
pub fn credential<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<Credential<'a>, CredentialError> {
    refuse_token_in_query(uri)?;
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(CredentialError::Missing)?;
    if values.next().is_some() {
        return Err(CredentialError::MultipleAuthorization);
    }
    // Not `to_str`, which tests every byte one at a time: a header value holds
    // no control bytes but tab, and UTF-8 validation of ASCII goes a word at a
    // time. Anything but ASCII is then refused by the scheme or b64token check.
    let value = std::str::from_utf8(value.as_bytes()).map_err(|_| CredentialError::MalformedAuthorization)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else if scheme.is_empty() || !scheme.bytes().all(is_token_char) {
        return Err(CredentialError::MalformedAuthorization);
    } else {
        return Err(CredentialError::UnsupportedScheme);
    };
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(CredentialError::MalformedAuthorization);
    }
    Ok(Credential { scheme, token })
}

/// Fails when `token` is not an RFC 6750 `b64token`: a malformed request.
///
/// Not part of [`credential`]: this scan of the whole token cost more than
/// the token cache lookup it preceded. A token the validator accepts passes
/// it anyway (a compact JWS verifies only as unpadded base64url parts and
/// dots, and a cached token is one that verified), so only a refused token
/// needs the check, to be answered 400 `invalid_request` ahead of any 401.
pub fn check_b64token(token: &str) -> Result<(), CredentialError> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(CredentialError::MalformedAuthorization)
    }
}

/// Fails when the query string carries `access_token`: such a token is never
/// accepted, and never passed on unverified either, whatever the route.
pub fn refuse_token_in_query(uri: &Uri) -> Result<(), CredentialError> {
    match uri.query() {
        Some(query) if form_has_access_token(query.as_bytes()) => Err(CredentialError::TokenInQuery),
        _ => Ok(()),
    }
}

/// RFC 7230 `tchar`, for the auth-scheme.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=').as_bytes();
    // Every request's token passes here (hundreds of bytes): checked a block
    // at a time, without branches inside a block, so the compiler vectorises it.
    !body.is_empty()
        && body
            .chunks(32)
            .all(|block| block.iter().fold(true, |ok, &b| ok & is_b64token_byte(b)))
}

fn is_b64token_byte(b: u8) -> bool {
    b.is_ascii_lowercase()
        | b.is_ascii_uppercase()
        | b.is_ascii_digit()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn b64token_accepts_exactly_the_rfc_6750_alphabet_anywhere_in_a_long_token() {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        for b in 0..=255u8 {
            if b == b'=' {
                continue;
            }
            // A long valid token with the byte under test in its second block.
            let mut token = vec![b'a'; 100];
            token[45] = b;
            let token = String::from_utf8_lossy(&token);
            assert_eq!(is_b64token(&token), allowed(b), "byte {b:#04x}");
        }
        assert!(is_b64token("abc=="));
        assert!(!is_b64token("=="), "padding alone");
        assert!(!is_b64token("ab=c"), "padding only at the end");
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// The credential as the gateway settles it for a token it refuses.
    fn extract(values: &[&str], uri: &str) -> Result<String, CredentialError> {
        let map = headers(values);
        let credential = credential(&map, &uri.parse().unwrap())?;
        check_b64token(credential.token)?;
        Ok(credential.token.to_string())
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(extract(&["Bearer abc.def.ghi"], "/"), Ok("abc.def.ghi".into()));
        assert_eq!(extract(&["bEaReR abc.def.ghi"], "/"), Ok("abc.def.ghi".into()));
        let map = headers(&["dpop abc.def.ghi"]);
        assert_eq!(
            credential(&map, &"/".parse().unwrap()),
            Ok(Credential {
                scheme: Scheme::Dpop,
                token: "abc.def.ghi"
            })
        );
    }

    #[test]
    fn malformed_and_multiple_headers_are_invalid_requests() {
        assert_eq!(extract(&[], "/"), Err(CredentialError::Missing));
        assert_eq!(
            extract(&["Bearer a", "Bearer b"], "/"),
            Err(CredentialError::MultipleAuthorization)
        );
        assert_eq!(extract(&["Bearer"], "/"), Err(CredentialError::MalformedAuthorization));
        assert_eq!(
            extract(&["Bearer a b"], "/"),
            Err(CredentialError::MalformedAuthorization)
        );
        assert_eq!(
            extract(&["Bearer a,b"], "/"),
            Err(CredentialError::MalformedAuthorization)
        );
        assert_eq!(
            extract(&["Basic dXNlcjpwdw=="], "/"),
            Err(CredentialError::UnsupportedScheme)
        );
    }

    #[test]
    fn bytes_beyond_ascii_are_malformed_in_the_scheme_or_the_token() {
        let settle = |raw: &[u8]| {
            let mut map = HeaderMap::new();
            map.append(AUTHORIZATION, HeaderValue::from_bytes(raw).unwrap());
            credential(&map, &"/".parse().unwrap()).and_then(|c| check_b64token(c.token))
        };
        let malformed = Err(CredentialError::MalformedAuthorization);
        assert_eq!(settle(b"Bearer abc\xff"), malformed, "not UTF-8");
        assert_eq!(settle("Bearer abcé".as_bytes()), malformed, "UTF-8, not b64token");
        assert_eq!(settle("Béarer abc".as_bytes()), malformed, "not a token68 scheme");
        assert_eq!(settle(b"Bearer abc\tdef"), malformed, "tab");
        assert_eq!(settle(b"Bearer abc.def"), Ok(()));
    }

    #[test]
    fn token_in_query_is_refused_even_when_encoded() {
        for uri in [
            "/x?access_token=abc",
            "/x?a=1&access_token",
            "/x?access%5Ftoken=abc",
            "/x?access%5ftoken=a",
        ] {
            assert_eq!(
                extract(&["Bearer a.b.c"], uri),
                Err(CredentialError::TokenInQuery),
                "{uri}"
            );
        }
        assert_eq!(
            extract(&["Bearer a.b.c"], "/x?access_tokens=1&my_access_token=2"),
            Ok("a.b.c".into())
        );
    }
}
