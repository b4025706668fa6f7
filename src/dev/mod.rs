//! Developer tooling behind the CLI: dev certificates, token minting, DPoP
//! proofs, client assertions and the demo.

pub mod assertion;
pub mod certs;
pub mod demo;
pub(crate) mod keys;
pub mod mint;
pub mod proof;
