//! What the token cache really holds against `limits.token_cache_bytes`.
//!
//! Measured in process with a counting allocator rather than from RSS: RSS
//! moves with the allocator's arenas, page reuse and whatever other tests
//! run in parallel threads, while this counts exactly the bytes allocated
//! and not freed on the test's own thread, each rounded as glibc's malloc
//! rounds it (8-byte header, 16-byte steps, 32 at least).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use bindgate::auth::token::{Issuer, KeyStore, TokenValidator, now_seconds};
use bindgate::config::Config;
use bindgate::jose::jwk::KeySet;
use bindgate::metrics::Metrics;
use serde_json::json;

use crate::common::*;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn chunk(size: usize) -> isize {
    (size + 8).next_multiple_of(16).max(32) as isize
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping is a thread-local counter that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| live.set(live.get() + chunk(layout.size())));
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get() - chunk(layout.size())));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// A validator for `issuer` with a cache of `cache_bytes`, and its metrics.
fn validator(issuer: &TestIssuer, cache_bytes: usize) -> (TokenValidator, Arc<Metrics>) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n\
         [upstream]\nurl = \"http://127.0.0.1:9\"\n\
         [token]\nissuer = {ISS:?}\naudience = {AUD:?}\njwks = \"jwks.json\"\n"
    );
    let config = Config::parse(&text, Path::new("/nonexistent/gateway.toml")).unwrap();
    let keys = KeySet::from_json(TestIssuer::jwks(&[issuer]).as_bytes()).unwrap();
    let issuer = Issuer {
        settings: config.issuers[0].clone(),
        keys: Arc::new(KeyStore::from_keys(ISS, keys)),
    };
    let metrics = Arc::new(Metrics::default());
    (TokenValidator::new(vec![issuer], cache_bytes, metrics.clone()), metrics)
}

/// Tokens as an authorization server issues them: the usual claims, a
/// unique `jti` and a `client_id`.
fn tokens(issuer: &TestIssuer, count: usize) -> Vec<String> {
    let x5t = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    (0..count)
        .map(|i| {
            let claims = with(issuer.claims(x5t), "jti", json!(format!("{i:016x}-{:x}", now())));
            issuer.sign(&issuer.header(), &with(claims, "client_id", json!("svc-orders")))
        })
        .collect()
}

fn cache_hits(metrics: &Metrics) -> f64 {
    metric(&metrics.render(&[]), "bindgate_token_cache_hits_total").unwrap()
}

/// Each token verified twice, so each is admitted to the cache.
fn fill(validator: &TokenValidator, tokens: &[String]) {
    let now = now_seconds();
    for token in tokens {
        validator.validate_at(token, now).unwrap();
        validator.validate_at(token, now).unwrap();
    }
}

#[test]
fn token_cache_memory_stays_within_its_byte_budget() {
    let issuer = TestIssuer::new("k1");
    let tokens = tokens(&issuer, 3000);

    // Room for all: what one entry really takes.
    let before = live_bytes();
    let (roomy, metrics) = validator(&issuer, 64 << 20);
    fill(&roomy, &tokens);
    let per_entry = (live_bytes() - before) as f64 / tokens.len() as f64;
    // Counted from here: the doorkeeper is probabilistic, so a false
    // positive may admit a token on its first verification and give a hit
    // while filling.
    let hits_before = cache_hits(&metrics);
    for token in &tokens {
        roomy.validate_at(token, now_seconds()).unwrap();
    }
    assert_eq!(
        cache_hits(&metrics) - hits_before,
        tokens.len() as f64,
        "not every token was cached"
    );
    drop(roomy);

    // A budget for about a third of them: full, and within 1.2x of it.
    let budget = 1 << 20;
    let before = live_bytes();
    let (tight, metrics) = validator(&issuer, budget);
    fill(&tight, &tokens);
    let held = (live_bytes() - before) as f64;
    for token in &tokens[tokens.len() - 200..] {
        tight.validate_at(token, now_seconds()).unwrap();
    }
    assert!(cache_hits(&metrics) >= 190.0, "the newest tokens are not cached");
    let ratio = held / budget as f64;
    eprintln!("token cache: {per_entry:.0} B per entry; {held} B held for a budget of {budget} B ({ratio:.2}x)");
    assert!(
        (0.75..=1.2).contains(&ratio),
        "{held} B held for a budget of {budget} B ({ratio:.2}x); one entry takes {per_entry:.0} B"
    );
}
