//! Upstream HTTP/1.1 connections pinned to one client connection and
//! driven by that client connection's own task.
//!
//! Through the shared pool, every request takes the pool's lock twice
//! (checkout and return), and the upstream connection runs in a task of
//! its own: the client's task wakes it to write the request, and it wakes
//! the client's task when the response arrives. A keep-alive HTTP/1.1
//! client sends its requests one after another, so it never needs more
//! than one upstream connection at a time; an h2 client needs one per
//! stream in flight. Pinned, they are polled by the client connection's
//! task right beside hyper's server connection (see
//! [`crate::conn::park::Companion`], and [`crate::conn::streams`] for h2):
//! no lock and no second task.
//!
//! When the client connection parks or ends, its upstream connections go
//! to the upstream's stash of idle ones, where the next client connection
//! to pin takes it: a sparse client does not pay a new upstream connection
//! per burst. Pinned and stashed connections together are bounded per
//! upstream by `upstream.max_pinned_connections`; past the cap, requests
//! take the shared pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::{Body, BoxError};
use crate::conn::park::Companion;
use crate::lock::lock;
use crate::metrics::Metrics;

/// How long a stashed connection may wait for a client before it is closed.
pub const STASH_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the stash closes what timed out or what the upstream closed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

type UpstreamIo = MaybeHttpsStream<TokioIo<TcpStream>>;

/// One upstream connection: the handle requests go through, and the
/// future that does its I/O, which whoever holds it must poll.
struct PinnedConn {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<http1::Connection<UpstreamIo, Body>>>,
    /// A place under the upstream's cap, given back when the connection closes.
    _permit: OwnedSemaphorePermit,
}

impl PinnedConn {
    /// Polls the connection's I/O; true once it has ended (closed by
    /// either side, or failed).
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.driver.as_mut().poll(cx).is_ready()
    }

    /// Whether it could carry a request now, judged without a task to wake:
    /// a connection whose upstream closed it, or that is still busy, is not.
    fn usable_now(&mut self) -> bool {
        !self.poll_ended(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
    }
}

/// The pinning side of one upstream: where it is, the cap, the connector
/// and the stash of idle connections.
pub struct Pins {
    origin: Uri,
    connector: HttpsConnector<HttpConnector>,
    cap: Arc<Semaphore>,
    enabled: bool,
    stash: Mutex<Stash>,
}

#[derive(Default)]
struct Stash {
    idle: Vec<(PinnedConn, Instant)>,
    sweeping: bool,
}

impl Pins {
    /// Connections to `origin` (scheme and authority), `max` pinned and
    /// stashed at most; 0 turns pinning off. `connector` must offer
    /// HTTP/1.1 only.
    pub fn new(origin: Uri, connector: HttpsConnector<HttpConnector>, max: usize) -> Pins {
        Pins {
            origin,
            connector,
            cap: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            enabled: max > 0,
            stash: Mutex::new(Stash::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// An idle connection from the stash, newest first, closing any that
    /// timed out or ended meanwhile.
    fn take(&self) -> Option<PinnedConn> {
        let mut stash = lock(&self.stash)?;
        while let Some((mut conn, since)) = stash.idle.pop() {
            if since.elapsed() < STASH_IDLE_TIMEOUT && conn.usable_now() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next client connection, if it can carry a
    /// request; starts the sweeper if none runs.
    fn put(self: &Arc<Self>, mut conn: PinnedConn) {
        if !conn.usable_now() {
            return;
        }
        let Some(mut stash) = lock(&self.stash) else { return };
        stash.idle.push((conn, Instant::now()));
        if !stash.sweeping && tokio::runtime::Handle::try_current().is_ok() {
            stash.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// Opens a new connection, if the cap allows one.
    async fn open(&self) -> Result<Option<PinnedConn>, BoxError> {
        let Ok(permit) = self.cap.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let mut connector = self.connector.clone();
        let io = tower_service::Service::call(&mut connector, self.origin.clone()).await?;
        let (sender, driver) = http1::Builder::new().handshake(io).await?;
        Ok(Some(PinnedConn {
            sender,
            driver: Box::pin(driver),
            _permit: permit,
        }))
    }
}

/// Closes stashed connections that timed out or that the upstream closed,
/// until the stash is empty or its upstream is gone.
async fn sweep(pins: Weak<Pins>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pins) = pins.upgrade() else { return };
        let Some(mut stash) = lock(&pins.stash) else { return };
        stash
            .idle
            .retain_mut(|(conn, since)| since.elapsed() < STASH_IDLE_TIMEOUT && conn.usable_now());
        if stash.idle.is_empty() {
            stash.sweeping = false;
            return;
        }
    }
}

/// A client connection's pinned upstream connections. Shared by the
/// connection's requests, which send on them, and its task, which drives
/// them; they are the same task (h2 streams included, see
/// [`crate::conn::streams`]), so the lock is never contended.
///
/// An HTTP/1.1 client sends one request at a time and pins one upstream
/// connection; an h2 client pins one per stream in flight, up to
/// [`UpstreamPin::new`]'s bound, past which its streams take the pool.
pub struct UpstreamPin {
    held: Mutex<HeldSet>,
    max_held: usize,
}

#[derive(Default)]
struct HeldSet {
    conns: Vec<Held>,
    /// Connections being taken or opened for a request: they count against
    /// the bound already, or streams arriving together would all open one.
    opening: usize,
}

/// A place under the bound, taken while a connection is found; given back
/// when dropped, whether it was found or not.
struct Reservation<'a>(&'a UpstreamPin);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(mut held) = lock(&self.0.held) {
            held.opening -= 1;
        }
    }
}

struct Held {
    pins: Arc<Pins>,
    conn: PinnedConn,
}

/// What became of a request offered to the pinned connection.
// The request goes back by value: boxing it would cost the fallback path
// an allocation to save a move.
#[allow(clippy::large_enum_variant)]
pub enum Pinned {
    /// Sent; the response head, when it comes.
    Sent(Pin<Box<dyn Future<Output = Result<Response<Incoming>, SendFailed>> + Send>>),
    /// No pinned connection could take it (the cap is reached, or the
    /// pinned ones are busy): the request, for the shared pool.
    Declined(Request<Body>),
}

/// What a client connection that sends one request at a time pins.
pub const PINNED_PER_HTTP1_CONNECTION: usize = 1;

/// The most upstream connections one h2 client connection pins: enough for
/// the streams a client keeps in flight, few enough that one client cannot
/// take the upstream's whole cap.
pub const PINNED_PER_H2_CONNECTION: usize = 16;

impl UpstreamPin {
    /// Pins at most `max_held` upstream connections at a time.
    pub fn new(max_held: usize) -> UpstreamPin {
        UpstreamPin {
            held: Mutex::new(HeldSet::default()),
            max_held,
        }
    }

    /// Sends `req` (origin-form target) on one of this client connection's
    /// connections to the upstream of `pins`: an idle one pinned already,
    /// else one from the stash, else a new one. Fails only to open one.
    pub async fn send(&self, pins: &Arc<Pins>, req: Request<Body>, metrics: &Metrics) -> Result<Pinned, BoxError> {
        let _reserved = {
            let Some(mut held) = lock(&self.held) else {
                return Ok(Pinned::Declined(req));
            };
            let conns = &mut held.conns;
            if let Some(h) = conns
                .iter_mut()
                .find(|h| Arc::ptr_eq(&h.pins, pins) && h.conn.sender.is_ready())
            {
                return Ok(Pinned::Sent(send_on(&mut h.conn, req)));
            }
            // Idle, but to another upstream (another route's, or a reload's):
            // it goes back to its stash rather than count against the bound.
            let mut index = 0;
            while index < conns.len() {
                if !Arc::ptr_eq(&conns[index].pins, pins) && conns[index].conn.sender.is_ready() {
                    let other = conns.swap_remove(index);
                    other.pins.put(other.conn);
                } else {
                    index += 1;
                }
            }
            if held.conns.len() + held.opening >= self.max_held {
                return Ok(Pinned::Declined(req));
            }
            held.opening += 1;
            Reservation(self)
        };
        let conn = match pins.take() {
            Some(conn) => conn,
            // Boxed: connecting is rare, and inline its state would size every request's future.
            None => match Box::pin(pins.open()).await? {
                Some(conn) => {
                    metrics.upstream_pinned_opened();
                    conn
                }
                None => return Ok(Pinned::Declined(req)),
            },
        };
        Ok(self.pin_and_send(pins, conn, req))
    }

    fn pin_and_send(&self, pins: &Arc<Pins>, mut conn: PinnedConn, req: Request<Body>) -> Pinned {
        let sent = send_on(&mut conn, req);
        let pinned = Held {
            pins: pins.clone(),
            conn,
        };
        // Poisoned: the connection is dropped, and the request on it fails upstream.
        if let Some(mut held) = lock(&self.held) {
            held.conns.push(pinned);
        }
        Pinned::Sent(sent)
    }

    fn release(&self) {
        let held = lock(&self.held).map(|mut held| std::mem::take(&mut held.conns));
        for Held { pins, conn } in held.into_iter().flatten() {
            pins.put(conn);
        }
    }
}

/// Why a pinned connection gave no response.
pub enum SendFailed {
    /// It never wrote the request (the upstream had closed it while idle):
    /// the request may go again, as the pool itself would retry it.
    Unwritten(Box<Request<Body>>),
    Failed(hyper::Error),
}

fn send_on(
    conn: &mut PinnedConn,
    req: Request<Body>,
) -> Pin<Box<dyn Future<Output = Result<Response<Incoming>, SendFailed>> + Send>> {
    let sent = conn.sender.try_send_request(req);
    Box::pin(async move {
        sent.await.map_err(|mut error| match error.take_message() {
            Some(req) => SendFailed::Unwritten(Box::new(req)),
            None => SendFailed::Failed(error.into_error()),
        })
    })
}

impl Companion for UpstreamPin {
    fn poll_beside(&self, cx: &mut Context<'_>) {
        let Some(mut held) = lock(&self.held) else { return };
        held.conns.retain_mut(|h| !h.conn.poll_ended(cx));
    }

    fn release(&self) {
        UpstreamPin::release(self);
    }
}

impl Drop for UpstreamPin {
    fn drop(&mut self) {
        self.release();
    }
}
