//! The JWS compact form and its protected header, as every access token
//! arrives: `base64url(header).base64url(payload).base64url(signature)`.
#![no_main]

use bindgate::jose::Algorithm;
use bindgate::jose::jws;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compact) = jws::parse(token) else {
        return;
    };
    // The three parts are the token, cut at its two dots.
    let rebuilt = format!("{}.{}", compact.signing_input, compact.signature_b64);
    assert_eq!(rebuilt, token);
    assert!(compact.signing_input.ends_with(compact.payload_b64));
    let _ = jws::decode_part(compact.payload_b64, "payload");
    let _ = jws::decode_part(compact.signature_b64, "signature");
    let _ = Algorithm::from_name(&compact.header.alg);
});
