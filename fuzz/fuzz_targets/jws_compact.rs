//! The JWS compact form and its protected header, as every access token
//! arrives: `base64url(header).base64url(payload).base64url(signature)`.
#![no_main]

use bindgate::jose::Algorithm;
use bindgate::jose::jws::{self, JoseHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compact) = jws::parse::<JoseHeader>(token) else {
        return;
    };
    // The three parts are the token, cut at its two dots.
    let rebuilt = format!("{}.{}", compact.signing_input, compact.signature_b64);
    assert_eq!(rebuilt, token);
    assert!(compact.signing_input.ends_with(compact.payload_b64));
    // The DPoP path's parse, which decodes empty parts instead of refusing
    // them, cuts every token the strict one accepts in the same places.
    let lenient = jws::parse_with::<JoseHeader>(token, jws::EmptyParts::Decode);
    assert!(
        lenient.is_ok_and(|l| (l.signing_input, l.signature_b64) == (compact.signing_input, compact.signature_b64))
    );
    let _ = jws::decode_part(compact.payload_b64, "payload");
    let _ = jws::decode_part(compact.signature_b64, "signature");
    let _ = Algorithm::from_name(&compact.header.alg);
});
