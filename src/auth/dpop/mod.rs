//! DPoP (RFC 9449): proofs of possession for tokens bound to a key the
//! client generated itself, checked per request.

pub mod check;
pub mod htu;
pub(crate) mod nonce;
pub(crate) mod proof;
pub(crate) mod replay;
pub mod store;

use http::header::HeaderName;

pub const DPOP: HeaderName = HeaderName::from_static("dpop");
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
