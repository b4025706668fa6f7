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
    let host = percent_normalize(&host.to_ascii_lowercase());
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = port
        && port != default_port
    {
        out.push(':');
        out.push_str(port);
    }
    let path = remove_dot_segments(&percent_normalize(path));
    out.push_str(if path.is_empty() { "/" } else { &path });
    Ok(NormalizedUri(out))
}

/// Host and port of an authority; IPv6 literals keep their brackets.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), NotHttpUri> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(NotHttpUri)?;
        let (host, after) = authority.split_at(end + 1);
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
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

/// Uppercases percent-encoding hex digits and decodes octets of unreserved characters.
fn percent_normalize(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(&[h, l]) = bytes.get(i + 1..i + 3)
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            let octet = h << 4 | l;
            if octet.is_ascii_alphanumeric() || matches!(octet, b'-' | b'.' | b'_' | b'~') {
                out.push(octet as char);
            } else {
                out.push_str(&format!("%{octet:02X}"));
            }
            i += 3;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
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
        ] {
            assert!(normalize(uri).is_err(), "{uri}");
        }
    }
}
