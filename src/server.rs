//! The accept loop and the per-connection handler: TLS handshake (bounded
//! in time), client identity read once, then HTTP/1.1 or h2 until the
//! client leaves or the gateway drains.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::client_io::{ClientIo, IdleTimer};
use crate::config::Limits;
use crate::framing::{FramingLog, FramingScanner};
use crate::identity::ClientIdentity;
use crate::proxy::{self, Connection, Gateway};
use crate::runtime::Live;

/// Accepts connections on `listener` until `shutdown` completes, then stops
/// accepting and lets in-flight requests finish for up to `limits.shutdown_grace`.
/// Each new connection uses the generation of `live` current at its accept.
pub async fn serve(listener: TcpListener, live: Arc<Live>, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(live.current().config.limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually EMFILE/ENFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let generation = live.current();
        let limits = &generation.config.limits;
        let task = ConnectionTask {
            acceptor: TlsAcceptor::from(generation.tls.clone()),
            gateway: generation.gateway.clone(),
            http: http_builder(limits),
            handshake_timeout: limits.handshake_timeout,
            max_header_bytes: limits.max_header_bytes,
            idle_timeout: limits.idle_timeout,
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            task.run(tcp, peer, watcher).await;
            drop(permit);
        });
    }

    drop(listener);
    let grace = live.current().config.limits.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

struct ConnectionTask {
    acceptor: TlsAcceptor,
    gateway: Arc<Gateway>,
    http: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    max_header_bytes: usize,
    idle_timeout: Duration,
}

impl ConnectionTask {
    async fn run(self, tcp: TcpStream, peer: std::net::SocketAddr, watcher: Watcher) {
        let tls = match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.gateway
                    .metrics
                    .record_handshake_failure(handshake_failure_reason(&e));
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.gateway.metrics.record_handshake_failure("timeout");
                tracing::info!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let session = tls.get_ref().1;
        let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
            None => None,
            Some(leaf) => match ClientIdentity::from_der(leaf.as_ref()) {
                Ok(identity) => Some(identity),
                Err(e) => {
                    tracing::info!(%peer, error = %e, "client certificate unreadable; closing");
                    return;
                }
            },
        };
        let is_h2 = session.alpn_protocol() == Some(b"h2");
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        // h2 frames its own messages; only HTTP/1 needs the framing guard.
        let framing = (!is_h2).then(|| Arc::new(FramingLog::default()));
        let scanner = FramingScanner::new(self.max_header_bytes, framing.clone().unwrap_or_default());
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let idle = IdleTimer::new(self.idle_timeout, in_flight.clone());
        let io = ClientIo::new(tls, if is_h2 { scanner.disabled() } else { scanner }, idle);
        let conn = Arc::new(Connection {
            peer,
            identity,
            resumed,
            framing,
            in_flight,
        });
        let gateway = self.gateway;
        let metrics = gateway.metrics.clone();
        metrics.connection_opened(resumed, conn.identity.as_ref().map(|i| i.not_after));
        let service = service_fn(move |req| proxy::handle(gateway.clone(), conn.clone(), req));
        let served = watcher.watch(self.http.serve_connection(TokioIo::new(io), service).into_owned());
        if let Err(e) = served.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        metrics.connection_closed();
    }
}

/// A stable label for why a handshake failed, from the rustls error inside the I/O error.
fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return "io";
    };
    match tls {
        Error::NoCertificatesPresented => "client_cert_missing",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "client_cert_unknown_ca",
        Error::InvalidCertificate(CertificateError::Revoked) => "client_cert_revoked",
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            "client_cert_expired"
        }
        Error::InvalidCertificate(_) => "client_cert_invalid",
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => "incompatible",
        Error::AlertReceived(_) => "alert_received",
        _ => "protocol",
    }
}
