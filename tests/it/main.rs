//! Integration tests: the real binary, real TLS, a real upstream.
//! One test binary with a module per topic (every file directly in tests/
//! would be its own binary to link).

mod common;

mod accept_limits;
mod binding;
mod cli;
mod dpop;
mod dpop_shared;
mod drain;
mod idle;
mod keys;
mod live_reload;
mod ops;
mod reload_once;
mod requests;
mod routes;
mod tls;
mod tokens;
