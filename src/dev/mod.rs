//! Developer tooling behind the CLI: dev certificates, token minting and the demo.

pub mod certs;
pub mod demo;
pub mod mint;
