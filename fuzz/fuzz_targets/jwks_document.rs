//! JWKS documents, as read from a file or fetched from an issuer: parsed
//! into verification keys, each then asked to choose and verify.
#![no_main]

use bindgate::jose::Algorithm;
use bindgate::jose::jwk::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = KeySet::from_json(data) else {
        return;
    };
    assert!(!keys.is_empty());
    let kids: Vec<Option<String>> = keys.kids().map(|k| k.map(str::to_string)).collect();
    assert_eq!(kids.len(), keys.len());
    for kid in &kids {
        if let Some(kid) = kid {
            assert!(keys.has_kid(kid));
        }
        for alg in Algorithm::ALL {
            if let Ok(key) = keys.choose(kid.as_deref(), alg) {
                assert!(key.accepts(alg));
                // No signature over this input verifies; the point is that none panics.
                assert!(!key.verify(alg, b"e30.e30", "c2ln"));
            }
        }
    }
});
