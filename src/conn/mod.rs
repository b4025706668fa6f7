//! What is known about a client connection once its TLS handshake is done:
//! the connection layer's product, read by every request on it. Nothing here
//! knows a route or a token.

pub(crate) mod accept;
pub(crate) mod activity;
pub mod framing;
pub mod identity;
pub(crate) mod io;
pub(crate) mod park;
pub mod pem;
pub(crate) mod revocation;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::conn::framing::FramingLog;
use crate::conn::identity::ClientIdentity;

/// What is known about a TLS connection once its handshake is done.
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    /// The client certificate's identity, if one was presented.
    pub identity: Option<ClientIdentity>,
    /// The certificate chain the client presented (DER, leaf first), kept
    /// only on the authorization server's connections: client authentication
    /// there needs the whole chain, and the gateway's idle connections
    /// should not carry it.
    pub peer_chain: Option<Arc<[CertificateDer<'static>]>>,
    pub resumed: bool,
    /// Framing verdicts of an HTTP/1 connection, one per request.
    pub framing: Option<Arc<FramingLog>>,
    /// The peer's address as `X-Forwarded-For` carries it, rendered once.
    pub forwarded_for: http::HeaderValue,
    /// A verdict asked to end this connection. HTTP/1.1 says so with
    /// `Connection: close`; h2 has no such header, so its connection task
    /// waits on this to send GOAWAY.
    pub close_requested: tokio::sync::Notify,
}

impl Connection {
    pub fn new(
        peer: SocketAddr,
        identity: Option<ClientIdentity>,
        resumed: bool,
        framing: Option<Arc<FramingLog>>,
    ) -> Connection {
        let forwarded_for = http::HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Connection {
            peer,
            identity,
            peer_chain: None,
            resumed,
            framing,
            forwarded_for,
            close_requested: tokio::sync::Notify::new(),
        }
    }

    /// Keeps the presented certificate chain, for the authorization server's
    /// per-client certificate checks.
    pub fn with_peer_chain(mut self, chain: Option<Arc<[CertificateDer<'static>]>>) -> Connection {
        self.peer_chain = chain;
        self
    }
}
