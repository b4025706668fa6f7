//! The `htu` comparison of RFC 9449 section 4.3: both URIs without query
//! and fragment, normalised per RFC 3986 sections 6.2.2 (syntax: case,
//! percent-encoding, dot segments) and 6.2.3 (scheme: default port, empty path).

/// A URI reduced to the form two equivalent `htu` values share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUri(String);

impl NormalizedUri {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a string is not an absolute http(s) URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an absolute http or https URI")]
pub struct NotHttpUri;

/// Normalises an absolute `http`/`https` URI, dropping query and fragment.
pub fn normalize(uri: &str) -> Result<NormalizedUri, NotHttpUri> {
    let (scheme, rest) = uri.split_once("://").ok_or(NotHttpUri)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(NotHttpUri),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        // Userinfo has no place in an htu and would only hide the real host.
        return Err(NotHttpUri);
    }
    let (host, port) = split_port(authority)?;
    let host = percent_normalize(host, true);
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = port
        && port != default_port
    {
        out.push(':');
        out.push_str(port);
    }
    let path = remove_dot_segments(&percent_normalize(path, false));
    out.push_str(if path.is_empty() { "/" } else { &path });
    Ok(NormalizedUri(out))
}

/// Host and port of an authority; IPv6 literals keep their brackets.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), NotHttpUri> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(NotHttpUri)?;
        let (host, after) = authority.split_at(end + 1);
        if !after.is_empty() && !after.starts_with(':') {
            // `[::1]junk` would otherwise drop the junk and name [::1].
            return Err(NotHttpUri);
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return Err(NotHttpUri);
    }
    match port {
        Some("") => Ok((host, None)),
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => Err(NotHttpUri),
        // "080" and "80" are the same port.
        Some(p) => Ok((
            host,
            Some(p.trim_start_matches('0')).filter(|p| !p.is_empty()).or(Some("0")),
        )),
        None => Ok((host, None)),
    }
}

/// Uppercases percent-encoding hex digits and decodes octets of unreserved
/// characters, lowercasing them too for a host. A `%` that starts no escape
/// and the UTF-8 bytes of non-ASCII characters are percent-encoded, so that
/// the result is ASCII and normalises to itself.
fn percent_normalize(text: &str, lowercase: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let literal = |b: u8| if lowercase { b.to_ascii_lowercase() } else { b } as char;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[h, l]) if bytes[i] == b'%' => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(octet), _) if octet.is_ascii_alphanumeric() || matches!(octet, b'-' | b'.' | b'_' | b'~') => {
                out.push(literal(octet));
                i += 3;
            }
            (Some(octet), _) => {
                out.push_str(&format!("%{octet:02X}"));
                i += 3;
            }
            (None, b) if b == b'%' || !b.is_ascii() => {
                out.push_str(&format!("%{b:02X}"));
                i += 1;
            }
            (None, b) => {
                out.push(literal(b));
                i += 1;
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 section 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    output.push("");
                }
            }
            ".." => {
                if output.len() > 1 {
                    output.pop();
                }
                if i == last {
                    output.push("");
                }
            }
            s => output.push(s),
        }
    }
    let joined = output.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(uri: &str) -> String {
        normalize(uri).unwrap().as_str().to_string()
    }

    #[test]
    fn equivalent_spellings_normalise_alike() {
        let expected = "https://api.example/a/b";
        for uri in [
            "https://api.example/a/b",
            "HTTPS://API.Example/a/b",
            "https://api.example:443/a/b",
            "https://api.example/a/./b",
            "https://api.example/a/c/../b",
            "https://api.example/%61/b",
            "https://api.example/a/b?x=1",
            "https://api.example/a/b#frag",
        ] {
            assert_eq!(n(uri), expected, "{uri}");
        }
        assert_eq!(n("https://api.example"), "https://api.example/");
        assert_eq!(n("http://api.example:80/"), "http://api.example/");
        assert_eq!(n("https://api.example:8443/x"), "https://api.example:8443/x");
        assert_eq!(n("https://[::1]:443/x"), "https://[::1]/x");
        assert_eq!(n("https://api.example/a%2fb"), "https://api.example/a%2Fb");
    }

    /// Found by fuzz/fuzz_targets/htu_normalize.rs: a normal form must
    /// normalise to itself, or one resource has two normal forms.
    #[test]
    fn normal_forms_are_ascii_and_normalise_to_themselves() {
        for (uri, expected) in [
            // A `%` that starts no escape is a literal percent sign.
            ("http://[::1]:8080/%f%41/x/../", "http://[::1]:8080/%25fA/"),
            ("https://h/100%", "https://h/100%25"),
            // UTF-8 as its percent-encoded octets (RFC 3987 section 3.1).
            ("https://h/Z\u{fc}rich", "https://h/Z%C3%BCrich"),
            // A decoded host letter is lowercased like any other.
            ("https://%41pi.example/", "https://api.example/"),
        ] {
            assert_eq!(n(uri), expected, "{uri}");
            assert_eq!(n(expected), expected, "{expected}");
        }
        assert_eq!(n("https://h/Z\u{fc}rich"), n("https://h/Z%c3%bcrich"));
    }

    #[test]
    fn different_resources_stay_different() {
        assert_ne!(n("https://api.example/a"), n("https://api.example/b"));
        assert_ne!(n("https://api.example/a"), n("http://api.example/a"));
        assert_ne!(n("https://api.example:8443/a"), n("https://api.example/a"));
        assert_ne!(n("https://api.example/A"), n("https://api.example/a"));
    }

    #[test]
    fn non_http_uris_are_refused() {
        for uri in [
            "ftp://x/",
            "/relative",
            "https://",
            "https://user@api.example/",
            "https://h:port/",
            "https://:443/",
            "https://h::/",
            "https://[::1]junk/",
        ] {
            assert!(normalize(uri).is_err(), "{uri}");
        }
    }
}
