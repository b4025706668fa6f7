//! The authorization server: bindgate issuing the sender-constrained tokens
//! its gateway checks. Served on its own listener by the same accept loop and
//! connection task as the gateway (`server.rs`); it never issues an unbound
//! token.
pub(crate) mod client_auth;
