//! The claims of an access token: the JSON payload, read into strict types,
//! and every claim rendered as a forwarded header would be.
#![no_main]

use bindgate::auth::token::Claims;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<Claims>(data) else {
        return;
    };
    for name in ["iss", "sub", "aud", "exp", "nbf", "iat", "scope", "cnf"] {
        let _ = claims.render(name);
    }
    let names: Vec<String> = claims.other.keys().cloned().collect();
    for name in &names {
        assert!(
            claims.render(name).is_some(),
            "claim {name:?} is present but renders as absent"
        );
    }
    let audiences: Vec<String> = claims.aud.values().iter().map(|a| a.to_string()).collect();
    assert_eq!(claims.aud.contains_any(&audiences), !audiences.is_empty());
    assert!(claims.exp.0.is_finite());
});
