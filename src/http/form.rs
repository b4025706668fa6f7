//! `application/x-www-form-urlencoded` screening shared by the query string
//! and form bodies: a bearer token is never accepted there (RFC 6750
//! sections 2.2 and 2.3), so it is found however its name is encoded.

/// Whether an `application/x-www-form-urlencoded` string (a query or a form
/// body) has a parameter named `access_token` (RFC 6750 sections 2.2 and 2.3),
/// however its name is percent-encoded.
pub fn form_has_access_token(form: &[u8]) -> bool {
    form.split(|&b| b == b'&')
        .map(|pair| pair.split(|&b| b == b'=').next().unwrap_or(pair))
        .any(|name| percent_decoded_equals(name, b"access_token"))
}

fn percent_decoded_equals(encoded: &[u8], expected: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(expected.len() + 1);
    let mut i = 0;
    while i < encoded.len() && decoded.len() <= expected.len() {
        let escaped = match encoded.get(i + 1..i + 3) {
            Some(&[h, l]) if encoded[i] == b'%' => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, encoded[i]) {
            (Some(byte), _) => {
                decoded.push(byte);
                i += 3;
            }
            (None, b'+') => {
                decoded.push(b' ');
                i += 1;
            }
            (None, other) => {
                decoded.push(other);
                i += 1;
            }
        }
    }
    i >= encoded.len() && decoded == expected
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_detection_handles_edges() {
        assert!(form_has_access_token(b"access_token=x"));
        assert!(form_has_access_token(b"a=%&access_token=x"));
        assert!(!form_has_access_token(b"access_toke%"));
        assert!(!form_has_access_token(b"%"));
        assert!(!form_has_access_token(b""));
    }
}
