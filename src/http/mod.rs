//! Request mechanics that know no credential: inbound checks, body pacing,
//! the upstream pool and the access line.

pub mod access;
pub mod body_deadline;
pub mod form;
pub mod hop;
pub mod inbound;
pub mod upstream;
