//! What is known about a client connection once its TLS handshake is done:
//! the connection layer's product, read by every request on it. Nothing here
//! knows a route or a token.

pub(crate) mod accept;
pub(crate) mod activity;
pub mod crl;
pub mod framing;
pub mod identity;
pub(crate) mod io;
pub(crate) mod park;
pub mod pem;
pub(crate) mod revocation;
pub(crate) mod streams;
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
    /// Which verifier last accepted `peer_chain`, so the authorization
    /// server verifies a connection's chain once, not once per request.
    pub chain_verdict: ChainVerdict,
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

/// A chain verification that held on this connection. The chain cannot
/// change for the connection's life; the verifier (trust anchors and CRLs)
/// changes only with a new configuration generation, which gives it a new
/// id; and time matters only until the chain's earliest `notAfter`. So a
/// verdict for the same verifier, before that instant, is the verdict a
/// new verification would reach.
#[derive(Debug, Default)]
pub struct ChainVerdict {
    /// The id of the last verifier that accepted the chain; 0 for none.
    accepted_by: std::sync::atomic::AtomicU64,
    /// Seconds since the epoch (`f64` bits) after which acceptance lapses.
    /// Always the same value for a given chain, so a racing writer cannot
    /// pair an id with a wrong instant.
    until: std::sync::atomic::AtomicU64,
}

impl ChainVerdict {
    /// Whether verifier `verifier` accepted the chain and it is still before its expiry at `now`.
    pub fn accepted(&self, verifier: u64, now: f64) -> bool {
        use std::sync::atomic::Ordering;
        verifier != 0
            && self.accepted_by.load(Ordering::Acquire) == verifier
            && now <= f64::from_bits(self.until.load(Ordering::Relaxed))
    }

    /// Verifier `verifier` accepted the chain, which expires at `until`.
    pub fn record(&self, verifier: u64, until: f64) {
        use std::sync::atomic::Ordering;
        self.until.store(until.to_bits(), Ordering::Relaxed);
        self.accepted_by.store(verifier, Ordering::Release);
    }
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
            chain_verdict: ChainVerdict::default(),
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
