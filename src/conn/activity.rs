//! What a client connection is doing, as seen from both sides of hyper:
//! the service counts requests and their bodies, the connection's I/O
//! records reads, writes and flushes. Together they tell a connection that
//! is between requests, with nothing buffered anywhere, from a busy one:
//! the idle timer needs that, and so does parking an idle HTTP/1.1
//! connection (see `park`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::Body;

/// Shared by a connection's I/O, its service and whoever drives it. All
/// fields are touched by one task at a time; atomics only because that task
/// may move between threads.
#[derive(Debug)]
pub struct Activity {
    /// Requests, request bodies and response bodies not yet finished or dropped.
    in_flight: AtomicUsize,
    /// When the connection began; `last_io` counts from here.
    started: Instant,
    /// Nanoseconds from `started` to the last read or write that moved bytes.
    last_io: AtomicU64,
    /// The last output call was a completed flush: nothing the server wrote
    /// waits in hyper, rustls or the socket's user-space buffers.
    flushed: AtomicBool,
    /// Every byte read so far belongs to complete request messages.
    between_messages: AtomicBool,
    /// Counts the driver's polls of hyper's connection (see [`Activity::begin_poll`]).
    polls: AtomicU64,
    /// The poll during (or after) which a request body was dropped before
    /// its end; 0 if none was. hyper drains or gives up on such a body on
    /// its next poll, so until then its buffer may still hold body bytes.
    body_abandoned_at: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            started: Instant::now(),
            last_io: AtomicU64::new(0),
            flushed: AtomicBool::new(true),
            between_messages: AtomicBool::new(true),
            polls: AtomicU64::new(1),
            body_abandoned_at: AtomicU64::new(0),
        }
    }
}

impl Activity {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When bytes last moved either way (or the connection began).
    pub fn last_io(&self) -> Instant {
        self.started + Duration::from_nanos(self.last_io.load(Ordering::Relaxed))
    }

    fn record_io(&self) {
        let since_start = Instant::now().saturating_duration_since(self.started);
        self.last_io.store(
            u64::try_from(since_start.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Called before each poll of hyper's connection; returns that poll's number.
    pub fn begin_poll(&self) -> u64 {
        self.polls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether, after poll number `poll` of hyper's connection came back
    /// pending, the connection is between requests with no byte pending in
    /// either direction: the HTTP layer holds nothing that matters.
    pub fn is_quiescent(&self, poll: u64) -> bool {
        let abandoned_at = self.body_abandoned_at.load(Ordering::Relaxed);
        self.in_flight() == 0
            && self.flushed.load(Ordering::Relaxed)
            && self.between_messages.load(Ordering::Relaxed)
            && (abandoned_at == 0 || abandoned_at < poll)
    }

    pub(crate) fn on_read(&self, between_messages: bool) {
        self.record_io();
        self.between_messages.store(between_messages, Ordering::Relaxed);
    }

    pub(crate) fn on_write(&self) {
        self.record_io();
        self.flushed.store(false, Ordering::Relaxed);
    }

    pub(crate) fn on_flushed(&self) {
        self.flushed.store(true, Ordering::Relaxed);
    }

    /// A request arrived: the previous request's body, if any, is behind us.
    pub fn request_started(&self) {
        self.body_abandoned_at.store(0, Ordering::Relaxed);
    }

    fn body_abandoned(&self) {
        self.body_abandoned_at
            .store(self.polls.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Tells when a connection has moved no bytes for `quiet_for` while some
/// condition held, without touching a timer on every read or write: the
/// timer is re-armed only when it fires, from the time of the last I/O.
/// The idle timeout and parking (`park`) each use one.
pub struct QuietTimer {
    quiet_for: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl QuietTimer {
    pub fn new(quiet_for: Duration) -> QuietTimer {
        QuietTimer {
            quiet_for,
            sleep: Box::pin(tokio::time::sleep(quiet_for)),
        }
    }

    /// Whether `activity` has been quiet for the whole period and `settled`
    /// holds; registers a wake-up for when that may be so otherwise.
    pub fn elapsed(&mut self, cx: &mut Context<'_>, activity: &Activity, settled: impl Fn() -> bool) -> bool {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            let deadline = activity.last_io() + self.quiet_for;
            if now >= deadline && settled() {
                return true;
            }
            let next = if deadline > now { deadline } else { now + self.quiet_for };
            self.sleep.as_mut().reset(next);
        }
    }
}

/// Counts one thing as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client's request body, in flight until it ends or is dropped.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    /// `None` once the body has ended.
    in_flight: Option<InFlight>,
}

impl RequestBody {
    pub fn new(inner: Incoming, in_flight: InFlight) -> RequestBody {
        RequestBody {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(in_flight) = &self.in_flight
            && !self.inner.is_end_stream()
        {
            in_flight.0.body_abandoned();
        }
    }
}

/// A response body, in flight until hyper has taken all of it and dropped it.
pub struct ResponseBody<B = Body> {
    inner: B,
    _in_flight: Option<InFlight>,
}

pin_project_lite::pin_project! {
    /// A handler's future whose response body, once there is one, stays
    /// counted in flight until the client has it all. A future of its own,
    /// not an `async move` block awaiting the handler: such a block holds
    /// the handler's future twice (before and after its first poll), and
    /// every move of it copies both.
    pub struct CountedResponse<F> {
        #[pin]
        handled: F,
        in_flight: Option<InFlight>,
    }
}

impl<F> CountedResponse<F> {
    pub fn new(handled: F, in_flight: InFlight) -> CountedResponse<F> {
        CountedResponse {
            handled,
            in_flight: Some(in_flight),
        }
    }
}

// Generic over the body, which is always `Body`: bound to `Body` itself,
// rustc cannot prove the connection task `Send` (its higher-ranked
// lifetime check loses the `'static` of the boxed error type).
impl<F, B> Future for CountedResponse<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.in_flight.is_none() {
            // Polled again after it was ready, which hyper never does.
            return Poll::Pending;
        }
        let Ok(response) = std::task::ready!(this.handled.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| ResponseBody {
            inner: body,
            _in_flight: in_flight,
        })))
    }
}

impl<B: HttpBody + Unpin> HttpBody for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiescent_only_with_nothing_in_flight_flushed_and_between_messages() {
        let activity = Arc::new(Activity::default());
        let poll = activity.begin_poll();
        assert!(activity.is_quiescent(poll));
        let request = InFlight::enter(&activity);
        assert!(!activity.is_quiescent(poll));
        drop(request);
        activity.on_write();
        assert!(!activity.is_quiescent(poll), "a write not yet flushed");
        activity.on_flushed();
        activity.on_read(false);
        assert!(!activity.is_quiescent(poll), "half a request head read");
        activity.on_read(true);
        assert!(activity.is_quiescent(poll));
    }

    #[test]
    fn an_abandoned_body_holds_until_hyper_was_polled_again() {
        let activity = Arc::new(Activity::default());
        let poll = activity.begin_poll();
        activity.body_abandoned();
        assert!(!activity.is_quiescent(poll), "hyper may still hold body bytes");
        let next = activity.begin_poll();
        assert!(activity.is_quiescent(next), "that poll drained the body or closed");
        activity.body_abandoned();
        activity.request_started();
        assert!(activity.is_quiescent(next));
    }
}
