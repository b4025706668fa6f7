//! Credential extraction: the `Authorization` and `DPoP` headers of a request
//! and the query string (a token there is refused).
//!
//! Input: the request target on the first line, then `name: value` header
//! lines, as on the wire. Lines that are not a valid header are skipped, as
//! hyper would have refused them before the gateway saw the request.
#![no_main]

use bindgate::auth::dpop::check::DpopVerifier;
use bindgate::auth::token::extract;
use bindgate::http::form;
use http::Uri;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let uri = Uri::try_from(target.strip_suffix(b"\r").unwrap_or(target)).unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    match extract::credential(&headers, &uri) {
        Ok(credential) => {
            // The token is the tail of the one Authorization header, never empty.
            let value = headers.get(AUTHORIZATION).expect("a credential without Authorization");
            assert!(!credential.token.is_empty());
            assert!(value.as_bytes().ends_with(credential.token.as_bytes()));
            assert!(extract::refuse_token_in_query(&uri).is_ok());
            // What the gateway settles for a refused token: a b64token is
            // ASCII without spaces, anything else is a malformed request.
            if extract::check_b64token(credential.token).is_ok() {
                let value = value.to_str().expect("a b64token from a non-ASCII header");
                assert!(value.ends_with(credential.token));
                assert!(!credential.token.contains(' '));
            }
        }
        Err(extract::CredentialError::TokenInQuery) => {
            assert!(form::form_has_access_token(
                uri.query().unwrap_or_default().as_bytes()
            ));
        }
        Err(_) => {}
    }
    let _ = DpopVerifier::proof_header(&headers);
    let _ = form::form_has_access_token(data);
});
