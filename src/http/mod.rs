//! Request mechanics that know no credential: inbound checks, body pacing,
//! the upstream client (pinned connections and the pool) and the access line.

pub(crate) mod access;
pub(crate) mod body_deadline;
pub mod form;
pub mod forwarded_cert;
pub(crate) mod hop;
pub mod inbound;
pub mod pinned;
pub(crate) mod upstream;
