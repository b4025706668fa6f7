//! Serving an HTTP/1.1 connection so that, while it waits for its next
//! request, it holds no HTTP buffers.
//!
//! hyper keeps about 20 KiB per HTTP/1 connection (an 8 KiB read buffer, an
//! 8 KiB write buffer, its dispatcher) for as long as the connection lives,
//! even when it sits idle between requests; with thousands of keep-alive
//! clients that is most of the gateway's memory. HAProxy and nginx free
//! their buffers as soon as a connection goes idle. Here, once a connection
//! has been quiescent (see [`Activity::is_quiescent`]) for [`PARK_AFTER`],
//! hyper's connection is taken apart and dropped: the connection is
//! *parked*, holding only its TLS session. When the client sends again, a
//! fresh hyper connection picks the stream up. Being quiescent means no
//! request or body in flight, every byte written flushed, and every byte
//! read part of a complete request, so nothing hyper held is lost.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::conn::activity::{Activity, QuietTimer};
use crate::conn::io::{ClientIo, ReadReadiness};
use crate::metrics::Metrics;

/// How long a connection stays quiescent before it is parked. Long enough
/// that a busy connection (one request every few milliseconds) never pays
/// for taking hyper's connection apart and building it again; short enough
/// that idle connections give their memory back almost at once.
pub const PARK_AFTER: Duration = Duration::from_millis(100);

/// How long closing a parked connection may take (TLS close_notify, FIN).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Work the connection's task does beside serving the client: an upstream
/// connection pinned to this one (`http::pinned`), driven here so that the
/// request's trip upstream and back needs no other task.
pub trait Companion {
    /// Makes progress; called each time the task is woken, before and
    /// after hyper's connection, which may have given it work.
    fn poll_beside(&self, cx: &mut Context<'_>);
    /// The connection parks or ends: give back what an idle one should
    /// not hold.
    fn release(&self);
}

impl Companion for () {
    fn poll_beside(&self, _: &mut Context<'_>) {}
    fn release(&self) {}
}

impl<C: Companion> Companion for Option<C> {
    fn poll_beside(&self, cx: &mut Context<'_>) {
        if let Some(companion) = self {
            companion.poll_beside(cx);
        }
    }
    fn release(&self) {
        if let Some(companion) = self {
            companion.release();
        }
    }
}

impl<C: Companion + ?Sized> Companion for Arc<C> {
    fn poll_beside(&self, cx: &mut Context<'_>) {
        (**self).poll_beside(cx);
    }
    fn release(&self) {
        (**self).release();
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves, the idle timeout ends
/// the connection, or `drain` turns true (then the request in progress, if
/// any, finishes first). `companion` is polled beside it.
pub async fn serve<IO, S>(
    builder: &http1::Builder,
    mut io: ClientIo<IO>,
    mut service: S,
    companion: &impl Companion,
    activity: Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
    metrics: &Metrics,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + ReadReadiness + Unpin + Send + 'static,
    S: HttpService<Incoming> + Clone + Unpin + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut park_timer = QuietTimer::new(PARK_AFTER);
    loop {
        // Boxed, so that a parked connection's task does not keep room for it.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service));
        match drive(&mut conn, companion, &activity, &mut park_timer, drain).await {
            Driven::Finished(result) => {
                companion.release();
                return result;
            }
            Driven::Quiescent => companion.release(),
        }
        let parts = (*conn).into_parts();
        io = parts.io.into_inner();
        service = parts.service;
        if !parts.read_buf.is_empty() {
            // Not expected while quiescent, but never drop a client's bytes.
            io.unread(parts.read_buf);
            continue;
        }
        // The empty read buffer still owns hyper's allocation: let it go now.
        drop(parts.read_buf);
        metrics.connection_parked(true);
        let wake = park(&mut io, drain).await;
        metrics.connection_parked(false);
        if let Wake::Close = wake {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
            return Ok(());
        }
    }
}

enum Driven {
    Finished(Result<(), hyper::Error>),
    /// Quiescent for [`PARK_AFTER`]: the connection may be parked.
    Quiescent,
}

/// Runs hyper's connection until it ends or may be parked. On drain the
/// connection is asked to close after the request in progress.
async fn drive<C>(
    conn: &mut C,
    companion: &impl Companion,
    activity: &Activity,
    park_timer: &mut QuietTimer,
    drain: &mut watch::Receiver<bool>,
) -> Driven
where
    C: Future<Output = Result<(), hyper::Error>> + Unpin + GracefulConnection,
{
    let mut draining = pin!(drain.wait_for(|&draining| draining));
    let mut shutting_down = false;
    poll_fn(|cx| {
        loop {
            let poll = activity.begin_poll();
            companion.poll_beside(cx);
            if let Poll::Ready(result) = Pin::new(&mut *conn).poll(cx) {
                return Poll::Ready(Driven::Finished(result));
            }
            companion.poll_beside(cx);
            if !shutting_down && draining.as_mut().poll(cx).is_ready() {
                shutting_down = true;
                Pin::new(&mut *conn).shut_down_gracefully();
                // hyper closes an idle connection at once; poll to let it.
                continue;
            }
            if !shutting_down && activity.is_quiescent(poll) && park_timer.elapsed(cx, activity, || true) {
                return Poll::Ready(Driven::Quiescent);
            }
            return Poll::Pending;
        }
    })
    .await
}

enum Wake {
    /// The client sent something: serve it.
    Readable,
    /// Idle timeout or drain: close the connection.
    Close,
}

/// Waits, holding no HTTP state, for the client's next bytes.
async fn park<IO: ReadReadiness>(io: &mut ClientIo<IO>, drain: &mut watch::Receiver<bool>) -> Wake {
    let mut draining = pin!(drain.wait_for(|&draining| draining));
    poll_fn(|cx| {
        // Readiness first: bytes that arrived before a drain are a request
        // to serve (hyper then closes after it), not one to drop unread.
        // An error surfaces on the next read, where hyper reports it.
        if io.poll_read_ready(cx).is_ready() {
            return Poll::Ready(Wake::Readable);
        }
        if draining.as_mut().poll(cx).is_ready() || io.idle_expired(cx) {
            return Poll::Ready(Wake::Close);
        }
        Poll::Pending
    })
    .await
}

/// hyper's graceful shutdown, behind a trait so [`drive`] does not name the
/// connection's full type.
pub trait GracefulConnection {
    fn shut_down_gracefully(self: Pin<&mut Self>);
}

impl<I, S> GracefulConnection for http1::Connection<I, S>
where
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<C: GracefulConnection + Unpin> GracefulConnection for Box<C> {
    fn shut_down_gracefully(mut self: Pin<&mut Self>) {
        Pin::new(&mut **self).shut_down_gracefully();
    }
}
