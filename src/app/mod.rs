//! The process lifecycle: what a configuration prepares, the live generation
//! requests read, its replacement on reload, and the admin listener.

pub(crate) mod admin;
pub(crate) mod families;
pub(crate) mod fingerprint;
pub mod live;
pub(crate) mod prepare;
pub(crate) mod reload;
