//! The sender constraint: access tokens, DPoP proofs, and the binding between
//! a token and the key the caller proves. Checked per request by the gateway.

pub(crate) mod binding;
pub mod dpop;
pub mod token;
