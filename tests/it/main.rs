//! Integration tests: the real binary, real TLS, a real upstream.
//! One test binary with a module per topic (every file directly in tests/
//! would be its own binary to link).

// The crate's lock-poison policy (clippy.toml) is for the gateway; in a test,
// a poisoned lock is a failed test already.
#![allow(clippy::disallowed_methods)]

mod common;

mod accept_limits;
mod as_connection;
mod as_key_rotation;
mod binding;
mod cache_memory;
mod cli;
mod client_gone;
mod client_jwks_url;
mod crl_fetch;
mod dpop;
mod dpop_shared;
mod drain;
mod embedded_trust;
mod families_cli;
mod family_interop;
mod family_store;
mod idle;
mod introspect;
mod issuer_endpoints;
mod keys;
mod live_reload;
mod ops;
mod pinned;
mod postgres_harness;
mod refresh;
mod reload_once;
mod replicas;
mod requests;
mod routes;
mod slow_body;
mod tls;
mod token_authlib;
mod token_endpoint;
mod token_interop;
mod tokens;
mod trusted_proxy;
mod underscores;
