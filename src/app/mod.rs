//! The process lifecycle: what a configuration prepares, the live generation
//! requests read, its replacement on reload, and the admin listener.

pub mod admin;
pub mod fingerprint;
pub mod live;
pub mod prepare;
pub mod reload;
