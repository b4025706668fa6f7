//! A DPoP proof (RFC 9449 section 4.3) checked against one fixed request, as
//! the gateway checks the `DPoP` header: size, JWS shape, header, `jwk`,
//! signature, then the claims against the request.
//!
//! The seeds are real proofs for this request, signed at `NOW` over
//! `ACCESS_TOKEN` (see fuzz/make-seeds.sh), so they pass every check;
//! mutations mostly fail at the signature, past the header and key parsing.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bindgate::config::Config;
use bindgate::auth::dpop::check::{DpopVerifier, RequestTarget};
use bindgate::auth::dpop::store::ReplayStore;
use bindgate::metrics::Metrics;
use libfuzzer_sys::fuzz_target;

/// The access token the seed proofs carry the hash of (`ath`).
const ACCESS_TOKEN: &str = include_str!("../dpop-access-token.txt").trim_ascii();
/// The time the seed proofs were issued at (`--iat`).
const NOW: f64 = 1_800_000_000.0;
const TARGET: RequestTarget<'static> = RequestTarget {
    method: "GET",
    authority: "api.example",
    path: "/resource",
};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8443"
cert = "certs/server.pem"
key = "certs/server-key.pem"
client_ca = "certs/ca.pem"

[upstream]
url = "http://127.0.0.1:8080"

[token]
issuer = "https://issuer.example"
audience = ["https://api.example"]
jwks = "certs/jwks.json"
"#;

fn verifier() -> &'static DpopVerifier {
    static VERIFIER: OnceLock<DpopVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let config = Config::parse(CONFIG, Path::new("/fuzz/gateway.toml")).expect("the fuzz config is valid");
        let replay = ReplayStore::new(&config.dpop.replay.store).expect("an in-memory replay store");
        DpopVerifier::new(&config.dpop, None, Arc::new(replay), Arc::new(Metrics::default()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(verified) = verifier().verify(proof, &TARGET, Some(ACCESS_TOKEN), NOW) {
        assert!(!verified.jti.is_empty());
        assert!((verified.iat - NOW).abs() <= 120.0, "iat {} accepted", verified.iat);
    }
});
