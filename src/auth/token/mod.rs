//! Access tokens: pulling the credential out of a request ([`extract`]),
//! the issuers' key sets ([`keystore`]), the claims we rely on ([`claims`])
//! and the validator that ties them together. The JWS and JWK mechanics are
//! in [`crate::jose`].

mod cache;
pub(crate) mod claims;
pub mod extract;
pub(crate) mod keystore;
pub mod revoked;
mod validate;

pub use claims::{Claims, Confirmation};
pub use keystore::KeyStore;
pub use revoked::RevokedFamilies;
pub use validate::{Issuer, TokenError, TokenValidator, VerifiedToken, now_seconds};
