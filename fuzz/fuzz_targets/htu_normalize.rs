//! `htu` normalisation (RFC 9449 section 4.3, RFC 3986 section 6): what a
//! DPoP proof's `htu` claim and the request URI are both reduced to.
#![no_main]

use bindgate::auth::dpop::htu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normalized) = htu::normalize(uri) else {
        return;
    };
    let text = normalized.as_str();
    assert!(text.starts_with("https://") || text.starts_with("http://"), "{text:?}");
    assert!(!text.contains(['?', '#']), "query or fragment kept: {text:?}");
    // A normal form is its own normal form: two spellings of one resource
    // compare equal however often either was normalised.
    let again = htu::normalize(text).unwrap_or_else(|_| panic!("normal form {text:?} of {uri:?} is refused"));
    assert_eq!(again, normalized, "normalising {uri:?} twice changes it");
});
