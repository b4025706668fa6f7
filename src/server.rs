//! The accept loop and the per-connection handler: TLS handshake (bounded
//! in time), client identity read once, then HTTP/1.1 or h2, as ALPN
//! chose, until the client leaves or the gateway drains. Both sites, the
//! gateway and the authorization server, are served by this one shell, each
//! on its own listener: the same limits, idle parking, drain and connection
//! metrics, and one access-line format.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::app::live::Live;
use crate::config::{ClientCertHeader, Limits};
use crate::conn::Connection;
use crate::conn::accept::AcceptBackoff;
use crate::conn::activity::{Activity, CountedResponse, InFlight, QuietTimer, RequestBody};
use crate::conn::framing::{FramingLog, FramingScanner};
use crate::conn::identity::ClientIdentity;
use crate::conn::io::ClientIo;
use crate::conn::park::Companion;
use crate::conn::streams::{StreamExec, Streams};
use crate::http::forwarded_cert;
use crate::http::pinned::{PINNED_PER_H2_CONNECTION, PINNED_PER_HTTP1_CONNECTION, UpstreamPin};
use crate::{gateway, issuer};

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The resource-server pipeline: `[server] listen`.
    Gateway,
    /// The embedded OAuth authorization server: `[authorization_server] listen`.
    AuthorizationServer,
}

impl Site {
    /// The TLS configuration a new connection of this site gets from
    /// `generation`; `None` when the generation does not serve the site.
    fn tls(self, generation: &crate::Prepared) -> Option<Arc<rustls::ServerConfig>> {
        match self {
            Site::Gateway => Some(generation.tls.clone()),
            Site::AuthorizationServer => generation.issuer.as_ref().map(|issuer| issuer.tls.clone()),
        }
    }
}

/// Accepts connections for `site` on `listener` until `shutdown` completes,
/// then stops accepting and lets in-flight requests finish for up to
/// `limits.shutdown_grace`. A connection keeps the TLS configuration and
/// HTTP limits of its accept; each request is judged by the generation of
/// `live` current when it arrives. Each listener has its own
/// `limits.max_connections`.
pub async fn serve(listener: TcpListener, live: Arc<Live>, site: Site, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(live.current().config.limits.max_connections));
    // Every connection holds a receiver: true asks it to finish, and the
    // last one dropped tells that all have.
    let (drain, draining) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();

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
                    let delay = backoff.failed(|| tracing::warn!(error = %e, "accept failed; backing off until it succeeds"));
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            },
        };
        backoff.succeeded(|| tracing::info!("accepting connections again"));
        let _ = tcp.set_nodelay(true);
        let generation = live.current();
        let Some(tls) = site.tls(&generation) else {
            // A reload can neither add nor remove the authorization server,
            // so only a listener bound without one is refused here.
            tracing::warn!(%peer, ?site, "this configuration does not serve the listener; closing");
            continue;
        };
        let task = ConnectionTask {
            acceptor: TlsAcceptor::from(tls),
            live: live.clone(),
            limits: generation.config.limits.clone(),
            site,
            rfc9440_out: generation.config.forward.client_cert_header,
        };
        let mut drain = draining.clone();
        tokio::spawn(async move {
            task.run(tcp, peer, &mut drain).await;
            drop(permit);
        });
    }

    drop(listener);
    drop(draining);
    let _ = drain.send(true);
    let grace = live.current().config.limits.shutdown_grace;
    if tokio::time::timeout(grace, drain.closed()).await.is_err() {
        tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
    }
}

fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
}

fn http2_builder(limits: &Limits, streams: StreamExec) -> http2::Builder<StreamExec> {
    let mut builder = http2::Builder::new(streams);
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

struct ConnectionTask {
    acceptor: TlsAcceptor,
    /// Not a generation: a reload must reach requests on open connections.
    live: Arc<Live>,
    limits: Limits,
    site: Site,
    /// `forward.client_cert_header = "rfc9440"` when the connection was accepted:
    /// the certificate's header value is rendered once, with its identity.
    rfc9440_out: ClientCertHeader,
}

impl ConnectionTask {
    async fn run(self, tcp: TcpStream, peer: std::net::SocketAddr, drain: &mut watch::Receiver<bool>) {
        let limits = &self.limits;
        let Some(tls) = self.handshake(tcp, peer).await else {
            return;
        };
        let session = tls.get_ref().1;
        let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
            None => None,
            Some(leaf) => match ClientIdentity::from_der(leaf.as_ref()) {
                Ok(mut identity) => {
                    if self.rfc9440_out.sends_cert() {
                        identity.rfc9440 = Some(forwarded_cert::rfc9440_value(leaf.as_ref()));
                    }
                    if self.rfc9440_out.sends_chain()
                        && let Some(chain) = session.peer_certificates()
                    {
                        identity.rfc9440_chain = forwarded_cert::rfc9440_chain_value(&chain[1..]);
                    }
                    Some(identity)
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "client certificate unreadable; closing");
                    return;
                }
            },
        };
        // Client authentication at the token endpoint needs the whole chain;
        // the gateway reads only the leaf, once, above.
        let peer_chain = match self.site {
            Site::Gateway => None,
            Site::AuthorizationServer => session.peer_certificates().map(Arc::from),
        };
        let is_h2 = session.alpn_protocol() == Some(b"h2");
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        // h2 frames its own messages; only HTTP/1 needs the framing guard.
        let framing = (!is_h2).then(|| Arc::new(FramingLog::default()));
        let scanner = FramingScanner::new(limits.max_header_bytes, framing.clone().unwrap_or_default());
        let activity = Arc::new(Activity::default());
        let idle = QuietTimer::new(limits.idle_timeout);
        let io = ClientIo::new(
            tls,
            if is_h2 { scanner.disabled() } else { scanner },
            idle,
            activity.clone(),
        );
        let conn = Arc::new(Connection::new(peer, identity, resumed, framing).with_peer_chain(peer_chain));
        let metrics = self.live.metrics.clone();
        metrics.connection_opened(resumed, conn.identity.as_ref().map(|i| i.not_after));
        let http = Http {
            limits,
            is_h2,
            activity,
            drain,
            metrics: &metrics,
        };
        let live = self.live.clone();
        let served = match self.site {
            Site::Gateway => {
                let pin = Arc::new(UpstreamPin::new(match http.is_h2 {
                    true => PINNED_PER_H2_CONNECTION,
                    false => PINNED_PER_HTTP1_CONNECTION,
                }));
                let pinned = Some(pin.clone());
                http.serve(io, conn, &pin, move |conn, req| {
                    gateway::handle(live.gateway(), conn, pinned.clone(), req)
                })
                .await
            }
            Site::AuthorizationServer => {
                http.serve(io, conn, &(), move |conn, req| {
                    let issuer = live.issuer();
                    async move {
                        match issuer {
                            Some(issuer) => issuer::handle(issuer, conn, req).await,
                            None => Ok(issuer::unconfigured(req.version(), &conn)),
                        }
                    }
                })
                .await
            }
        };
        if let Err(e) = served {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        metrics.connection_closed();
    }
}

/// What serving HTTP on one connection needs besides the site's handler.
struct Http<'a> {
    limits: &'a Limits,
    is_h2: bool,
    activity: Arc<Activity>,
    drain: &'a mut watch::Receiver<bool>,
    metrics: &'a Arc<crate::metrics::Metrics>,
}

impl Http<'_> {
    /// Serves requests on `io` with `handler` until the client leaves, the
    /// listener drains or a verdict closes the connection. Generic over the
    /// handler, so each site's requests pay for no dispatch.
    async fn serve<H, F>(
        self,
        io: ClientIo<Box<TlsStream>>,
        conn: Arc<Connection>,
        companion: &(impl Companion + Sync),
        handler: H,
    ) -> Result<(), hyper::Error>
    where
        H: Fn(Arc<Connection>, http::Request<RequestBody>) -> F + Clone + Unpin + Send + Sync + 'static,
        F: Future<Output = Result<http::Response<crate::body::Body>, std::convert::Infallible>> + Send + 'static,
    {
        let close = conn.clone();
        let requests = self.activity.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            // Counted here, not inside the future: hyper may poll it later.
            requests.request_started();
            let response_in_flight = InFlight::enter(&requests);
            let req = req.map(|body| RequestBody::new(body, InFlight::enter(&requests)));
            CountedResponse::new(handler(conn.clone(), req), response_in_flight)
        });
        if self.is_h2 {
            // Boxed: h2's connection state is large, and inline it would size
            // every connection's task, HTTP/1.1 ones included.
            // Sent behind `dyn`: proving it Send inside the connection's
            // future instead trips a rustc limit on higher-ranked lifetimes.
            let served: Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send + '_>> =
                Box::pin(serve_http2(self.limits, io, service, companion, self.drain, &close));
            served.await
        } else {
            crate::conn::park::serve(
                &http1_builder(self.limits),
                io,
                service,
                companion,
                self.activity,
                self.drain,
                self.metrics,
            )
            .await
        }
    }
}

impl ConnectionTask {
    /// The TLS handshake, bounded in time. The session is boxed, and so is
    /// the handshake's future while it runs: the connection's task keeps
    /// neither inline, which keeps an idle connection small.
    async fn handshake(&self, tcp: TcpStream, peer: std::net::SocketAddr) -> Option<Box<TlsStream>> {
        let accept = Box::pin(tokio::time::timeout(
            self.limits.handshake_timeout,
            self.acceptor.accept(tcp),
        ));
        match accept.await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                self.live.metrics.record_handshake_failure(handshake_failure_reason(&e));
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.live.metrics.record_handshake_failure("timeout");
                tracing::info!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Serves h2 until the client leaves, `drain` turns true or a verdict asks
/// to `close` the connection; then asks the client to stop (GOAWAY) and lets
/// the open streams finish. The streams run in this task (see
/// [`crate::conn::streams`]).
async fn serve_http2<IO, S>(
    limits: &Limits,
    io: IO,
    service: S,
    companion: &(impl Companion + Sync),
    drain: &mut watch::Receiver<bool>,
    close: &Arc<Connection>,
) -> Result<(), hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut streams, exec) = Streams::new();
    let mut conn = pin!(http2_builder(limits, exec).serve_connection(TokioIo::new(io), service));
    let finished = tokio::select! {
        served = streams.run(conn.as_mut(), companion) => Some(served),
        _ = drain.wait_for(|&draining| draining) => None,
        _ = close.close_requested.notified() => None,
    };
    let served = match finished {
        Some(served) => served,
        None => {
            conn.as_mut().graceful_shutdown();
            streams.run(conn.as_mut(), companion).await
        }
    };
    companion.release();
    served
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
