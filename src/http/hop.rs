//! Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection,
//! so a proxy removes them in both directions, with every header the
//! `Connection` header names.

use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");
const PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");

/// Headers that describe one hop, never the end-to-end message (RFC 9110 section 7.6.1).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATE,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_hop_by_hop_and(headers, |_| false);
}

/// Removes hop-by-hop headers and those `also` picks. One pass over the
/// names the message has, instead of a hash lookup for each name that might
/// be there (on almost every request, none is).
pub fn strip_hop_by_hop_and(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    // Found one at a time and removed, rather than collected first: a
    // request has one or two such headers, and a list of them is an
    // allocation on every request.
    // `Connection` itself goes last: until then it says what else goes.
    loop {
        let doomed = headers
            .keys()
            .filter(|name| *name != CONNECTION)
            .find(|name| HOP_BY_HOP.contains(name) || connection_names(headers, name) || also(name))
            .cloned();
        let Some(name) = doomed else { break };
        headers.remove(&name);
    }
    headers.remove(CONNECTION);
}

/// `name` equals `protected` with some of its `-` written as `_`. Both are
/// lowercase, as every `HeaderName` is. CGI, WSGI, PHP and Rack read both
/// spellings as one variable.
pub fn same_but_underscores(name: &str, protected: &str) -> bool {
    name.len() == protected.len()
        && name
            .bytes()
            .zip(protected.bytes())
            .all(|(n, p)| n == p || (n == b'_' && p == b'-'))
}

/// Whether `Connection` lists `name`. Compared as text, since making a
/// `HeaderName` of each token (`keep-alive`, on most requests) allocates.
fn connection_names(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }
}
