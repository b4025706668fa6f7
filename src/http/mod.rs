//! Request mechanics that know no credential: inbound checks, body pacing,
//! the upstream pool and the access line.

pub(crate) mod access;
pub(crate) mod body_deadline;
pub mod form;
pub mod forwarded_cert;
pub(crate) mod hop;
pub mod inbound;
pub(crate) mod upstream;
