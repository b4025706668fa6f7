//! Micro-benchmarks of the per-request pieces, and of the whole decision a
//! request goes through before it is forwarded, in process and without
//! sockets: `cargo bench --bench request_path`.
//!
//! The fixture is the real thing: dev certificates and an issuer key written
//! by `bindgate dev-certs` into a temp dir, a configuration parsed from TOML
//! and prepared by the same `bindgate::app::prepare` that `bindgate run` uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bindgate::config::Config;
use bindgate::conn::Connection;
use bindgate::conn::identity::{self, ClientIdentity};
use bindgate::dev::mint::{MintRequest, Minter};
use bindgate::gateway::forward::{self, ForwardContext};
use bindgate::gateway::{self, RequestNotes};
use bindgate::metrics::Metrics;
use bindgate::{KeysPolicy, Prepared};
use http::Request;

/// Counts every allocation, so that each benchmark also reports allocations
/// per iteration: the request path's allocation count is a goal of its own.
#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    // Built before timing starts, so the first sample of no benchmark pays for it.
    fixture();
    divan::main();
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// Token cache on (the default) and off.
    cached: Prepared,
    uncached: Prepared,
    /// Token cache off, the key set the authorization server's Ed25519 key.
    eddsa: Prepared,
    /// Token cache on, a `[[trusted_proxy]]` by address forwarding `base64-der`.
    behind_proxy: Prepared,
    /// The proxy's connection: no certificate of its own (trusted by address).
    proxy_conn: Arc<Connection>,
    leaf_der: Vec<u8>,
    conn: Arc<Connection>,
    tokens: Vec<String>,
    /// Signed by the authorization server's key (EdDSA), otherwise as `tokens`.
    eddsa_tokens: Vec<String>,
    /// The issuer's public key as an uncompressed SEC1 point.
    issuer_point: Vec<u8>,
    runtime: tokio::runtime::Runtime,
}

const DISTINCT_TOKENS: u64 = 20_000;

static AUTHORITY: bindgate::http::inbound::Authority = bindgate::http::inbound::Authority::from_static("api.example");

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        bindgate::dev::certs::write(dir.path(), false).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let as_key = bindgate::jose::sign::SigningKey::from_pem_file(&dir.path().join("as-signing-key.pem")).unwrap();
        let as_jwks = serde_json::json!({ "keys": [as_key.public_jwk()] });
        std::fs::write(dir.path().join("jwks-eddsa.json"), as_jwks.to_string()).unwrap();
        let prepare = |cache_bytes: usize, jwks: &str, tail: &str| {
            let text = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"ca.pem\"\n\
                 [upstream]\nurl = \"http://127.0.0.1:9\"\n\
                 [token]\nissuer = \"https://issuer.example\"\naudience = \"https://api.example\"\njwks = \"{jwks}\"\n\
                 [limits]\ntoken_cache_bytes = {cache_bytes}\n{tail}"
            );
            let config = Config::parse(&text, &dir.path().join("gateway.toml")).unwrap();
            runtime
                .block_on(bindgate::prepare(config, Arc::new(Metrics::default()), None, KeysPolicy::Require))
                .unwrap()
        };
        let cached = prepare(16 << 20, "jwks.json", "");
        let uncached = prepare(0, "jwks.json", "");
        let eddsa = prepare(0, "jwks-eddsa.json", "");
        let behind_proxy = prepare(
            16 << 20,
            "jwks.json",
            "[[trusted_proxy]]\nname = \"lb\"\ncidr = [\"127.0.0.1/32\"]\nformat = \"base64-der\"\nheader = \"x-ssl-client-der\"\n",
        );
        let leaf_der = bindgate::conn::pem::certificates(&dir.path().join("client-a.pem")).unwrap()[0].to_vec();
        let conn = Arc::new(Connection::new(
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            Some(ClientIdentity::from_der(&leaf_der).unwrap()),
            false,
            None,
        ));
        let proxy_conn = Arc::new(Connection::new(SocketAddr::from(([127, 0, 0, 1], 40001)), None, false, None));
        let cert = dir.path().join("client-a.pem");
        let issuer_key = dir.path().join("issuer-key.pem");
        let request = MintRequest {
            cert: Some(&cert),
            dpop_key: None,
            issuer_key: &issuer_key,
            iss: "https://issuer.example",
            aud: "https://api.example",
            sub: "bench",
            ttl: Duration::from_secs(3600),
            scope: None,
            id_token: false,
        };
        let minter = Minter::new(&request).unwrap();
        let tokens = (0..DISTINCT_TOKENS).map(|i| minter.mint(i).unwrap()).collect();
        let as_key_path = dir.path().join("as-signing-key.pem");
        let eddsa_request = MintRequest {
            issuer_key: &as_key_path,
            ..request
        };
        let minter = Minter::new(&eddsa_request).unwrap();
        let eddsa_tokens = (0..DISTINCT_TOKENS).map(|i| minter.mint(i).unwrap()).collect();
        let jwks: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("jwks.json")).unwrap()).unwrap();
        let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwks["keys"][0][name].as_str().unwrap()).unwrap();
        let issuer_point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
        Fixture {
            _dir: dir,
            cached,
            uncached,
            eddsa,
            behind_proxy,
            proxy_conn,
            leaf_der,
            conn,
            tokens,
            eddsa_tokens,
            issuer_point,
            runtime,
        }
    })
}

fn request(token: &str) -> Request<()> {
    Request::get("/orders/42?page=2")
        .header("host", "api.example")
        .header("authorization", format!("Bearer {token}"))
        .header("user-agent", "bench/1")
        .header("accept", "application/json")
        .header("x-forwarded-client-cert", "spoofed")
        .body(())
        .unwrap()
}

/// The thumbprint of a client certificate: done once per connection.
#[divan::bench]
fn thumbprint_x5t_s256() -> String {
    identity::x5t_s256(divan::black_box(&fixture().leaf_der))
}

/// Thumbprint plus subject and SANs: the whole per-connection identity.
#[divan::bench]
fn client_identity_from_der() -> ClientIdentity {
    ClientIdentity::from_der(divan::black_box(&fixture().leaf_der)).unwrap()
}

/// The floor under token validation: one ES256 verification with aws-lc-rs,
/// the key parsed once, the signature already decoded.
#[divan::bench]
fn es256_verify_parsed_key(bencher: divan::Bencher) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
    let f = fixture();
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &f.issuer_point).unwrap();
    let (input, signature) = signed_token(f);
    bencher.bench_local(|| key.verify_sig(input.as_bytes(), &signature).unwrap());
}

/// The same verification with ring, the other crypto provider rustls and
/// jsonwebtoken offer: the "which provider" lever, measured.
#[divan::bench]
fn es256_verify_ring(bencher: divan::Bencher) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    let f = fixture();
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &f.issuer_point);
    let (input, signature) = signed_token(f);
    bencher.bench_local(|| key.verify(input.as_bytes(), &signature).unwrap());
}

/// The same with the key parsed on every call, as `UnparsedPublicKey` does.
#[divan::bench]
fn es256_verify_unparsed_key(bencher: divan::Bencher) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    let f = fixture();
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &f.issuer_point);
    let (input, signature) = signed_token(f);
    bencher.bench_local(|| key.verify(input.as_bytes(), &signature).unwrap());
}

/// The signing input of a token and its decoded signature.
fn signed_token(f: &Fixture) -> (&str, Vec<u8>) {
    let (input, signature) = f.tokens[0].rsplit_once('.').unwrap();
    (input, URL_SAFE_NO_PAD.decode(signature).unwrap())
}

/// A token never seen before: parse, ES256 verify, claims.
#[divan::bench]
fn token_validation_cold(bencher: divan::Bencher) {
    let f = fixture();
    let mut next = 0usize;
    bencher.bench_local(|| {
        next = (next + 1) % f.tokens.len();
        f.runtime
            .block_on(f.uncached.gateway.validator.validate(&f.tokens[next]))
            .unwrap()
    });
}

/// The same for a token the authorization server signed (EdDSA, Ed25519):
/// what `bench/as.sh`'s `bindgate-full-distinct-eddsa` row pays per request.
#[divan::bench]
fn token_validation_cold_eddsa(bencher: divan::Bencher) {
    let f = fixture();
    let mut next = 0usize;
    bencher.bench_local(|| {
        next = (next + 1) % f.eddsa_tokens.len();
        f.runtime
            .block_on(f.eddsa.gateway.validator.validate(&f.eddsa_tokens[next]))
            .unwrap()
    });
}

/// The same token again: a cache hit, expiry still checked.
#[divan::bench]
fn token_validation_cached(bencher: divan::Bencher) {
    let f = fixture();
    let token = &f.tokens[0];
    // The cache admits a token on its second verification.
    for _ in 0..2 {
        f.runtime.block_on(f.cached.gateway.validator.validate(token)).unwrap();
    }
    bencher.bench_local(|| f.runtime.block_on(f.cached.gateway.validator.validate(token)).unwrap());
}

/// Not a timing: the token cache's hit rate once full. Every fixture token
/// is used twice (so admitted) through a 2 MiB cache (under 2,000 entries),
/// then the newest and the oldest 1,000 once more. A cache that favours
/// recent, reused tokens hits nearly all the newest and none of the oldest.
/// Printed on stderr; one sample, a few seconds of verifications.
#[divan::bench(sample_count = 1, sample_size = 1)]
fn token_cache_hit_rate_newest_oldest() {
    use bindgate::auth::token::{Issuer, TokenValidator, now_seconds};
    let f = fixture();
    let issuers = f.cached.gateway.validator.issuers().iter();
    let issuers = issuers.map(|i| Issuer {
        settings: i.settings.clone(),
        keys: i.keys.clone(),
    });
    let metrics = Arc::new(Metrics::default());
    let validator = TokenValidator::new(issuers.collect(), 2 << 20, metrics.clone());
    let now = now_seconds();
    let hits = || {
        let text = metrics.render(&[]);
        let line = text.lines().find(|l| l.starts_with("bindgate_token_cache_hits_total "));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for token in &f.tokens {
        validator.validate_at(token, now).unwrap();
        validator.validate_at(token, now).unwrap();
    }
    let n = f.tokens.len();
    let probe = |tokens: &[String]| {
        let before = hits();
        for token in tokens {
            validator.validate_at(token, now).unwrap();
        }
        hits() - before
    };
    let newest = probe(&f.tokens[n - 1000..]);
    let oldest = probe(&f.tokens[..1000]);
    eprintln!(
        "token cache, {n} tokens through 2 MiB: hits of the newest 1,000: {newest}; of the oldest 1,000: {oldest}"
    );
}

/// Stripping spoofable headers and adding XFCC, forwarded and claim headers.
#[divan::bench]
fn header_rewrite(bencher: divan::Bencher) {
    let f = fixture();
    let verified = f
        .runtime
        .block_on(f.cached.gateway.validator.validate(&f.tokens[0]))
        .unwrap();
    let template = request(&f.tokens[0]).into_parts().0.headers;
    let ctx = ForwardContext {
        authority: &AUTHORITY,
        forwarded_for: &f.conn.forwarded_for,
        identity: f.conn.identity.as_ref(),
        claims: Some(&verified.claims),
        screened: f.cached.gateway.forwarded.screened(),
    };
    bencher
        .with_inputs(|| template.clone())
        .bench_local_values(|mut headers| {
            forward::rewrite_request(&mut headers, &ctx, &f.cached.gateway.forward).unwrap();
            headers
        });
}

/// Everything a request goes through before the upstream, token cached:
/// route, credential, token, binding, scopes, header rewrite.
#[divan::bench]
fn request_path_cached_token(bencher: divan::Bencher) {
    let f = fixture();
    let token = &f.tokens[0];
    bencher
        .with_inputs(|| request(token))
        .bench_local_values(|mut req| admit_and_rewrite(&f.cached, f, &mut req));
}

/// The same from behind a trusted proxy: the client certificate read from
/// its `base64-der` header (and its verdict from the verified-chain cache)
/// instead of the handshake.
#[divan::bench]
fn request_path_cached_token_forwarded_cert(bencher: divan::Bencher) {
    let f = fixture();
    let token = &f.tokens[0];
    let forwarded = base64::engine::general_purpose::STANDARD.encode(&f.leaf_der);
    bencher
        .with_inputs(|| {
            let mut req = request(token);
            req.headers_mut().insert("x-ssl-client-der", forwarded.parse().unwrap());
            req
        })
        .bench_local_values(|mut req| {
            let mut notes = RequestNotes::default();
            let gateway = &f.behind_proxy.gateway;
            let admitted = f
                .runtime
                .block_on(gateway::admit(gateway, &f.proxy_conn, &mut req, &mut notes))
                .unwrap();
            let ctx = ForwardContext {
                authority: &admitted.authority,
                forwarded_for: &f.proxy_conn.forwarded_for,
                identity: notes.cert().identity(None),
                claims: admitted.verified.as_ref().map(|v| &v.claims),
                screened: gateway.forwarded.screened(),
            };
            forward::rewrite_request(req.headers_mut(), &ctx, &gateway.forward).unwrap();
            req
        });
}

/// The same with a token never seen before.
#[divan::bench]
fn request_path_cold_token(bencher: divan::Bencher) {
    let f = fixture();
    let mut next = 0usize;
    bencher
        .with_inputs(|| {
            next = (next + 1) % f.tokens.len();
            request(&f.tokens[next])
        })
        .bench_local_values(|mut req| admit_and_rewrite(&f.uncached, f, &mut req));
}

fn admit_and_rewrite(prepared: &Prepared, f: &Fixture, req: &mut Request<()>) {
    let mut notes = RequestNotes::default();
    let gateway = &prepared.gateway;
    let admitted = f
        .runtime
        .block_on(gateway::admit(gateway, &f.conn, req, &mut notes))
        .unwrap();
    let ctx = ForwardContext {
        authority: &admitted.authority,
        forwarded_for: &f.conn.forwarded_for,
        identity: f.conn.identity.as_ref(),
        claims: admitted.verified.as_ref().map(|v| &v.claims),
        screened: gateway.forwarded.screened(),
    };
    forward::rewrite_request(req.headers_mut(), &ctx, &gateway.forward).unwrap();
}
