//! Refresh-token families through the real binary, against design.md's
//! "Rules of the trade for refresh tokens": a token exchange starts a
//! family, each refresh rotates it, a rotated-away token presented again
//! revokes it (refresh and access tokens, at the gateway too), a lost
//! response may be retried within the grace, families die idle or old,
//! RFC 7009 revocation and RFC 7662 introspection see the same families,
//! confidential clients need not rotate, concurrent refreshes leave one
//! live branch, and what was answered survives SIGTERM and SIGKILL.
//!
//! The harness is `common::family`: the test is the identity provider and
//! the app, the gateway trusts the embedded issuer in-process.

mod confidential;
mod durability;
mod grace;
mod introspection;
mod lifetimes;
mod races;
mod revocation;
mod rotation;
mod scope;

use crate::common::dpop::DpopKey;
use crate::common::family::*;
use crate::common::token_request::*;
use crate::common::*;

/// A public client's families live 14 days unless refreshed (the world's
/// `refresh_idle_timeout`; its absolute lifetime is 30 days).
const IDLE_SECONDS: i64 = 14 * 24 * 3600;
