//! DPoP (RFC 9449): proofs of possession for tokens bound to a key the
//! client generated itself, checked per request.

pub mod check;
pub mod htu;
pub mod nonce;
pub mod proof;
pub mod replay;
pub mod store;
