//! The authorization server: bindgate issuing the sender-constrained tokens
//! its gateway checks. Served on its own listener by the same accept loop and
//! connection task as the gateway (`server.rs`); it never issues an unbound
//! token.

// The token endpoint, next, is the first caller of these four; until then
// they are exercised by their unit tests only.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod access_token;
pub(crate) mod client_auth;
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod form;
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod grant;
