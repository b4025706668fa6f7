//! The authorization server: bindgate issuing the sender-constrained tokens
//! its gateway checks. Served on its own listener by the same accept loop and
//! connection task as the gateway (`server.rs`); it never issues an unbound
//! token.

// The token, introspection and revocation endpoints read their bodies with it next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod form;
// The token endpoint mints with it next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod access_token;
// The token endpoint decides its grants with it next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod grant;
