//! How long a client may take to send a request body.
//!
//! `header_read_timeout` bounds the head and `upstream.request_timeout` the
//! upstream's answer; without this, a body sent at one byte a second (to an
//! upstream that already answered, say) would hold a client connection and an
//! upstream connection for as long as the client likes. The rule is Apache
//! mod_reqtimeout's: after `limits.body_read_timeout` the body must have
//! averaged at least `limits.body_min_rate` bytes per second, and it may never
//! stall for longer than `body_read_timeout`. Large uploads at a reasonable
//! rate are never cut; trickles and stalls are.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
pub use crate::config::BodyPace;
use crate::config::MAX_DURATION;

/// The body did not arrive in time; the client is at fault.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body arrived too slowly (limits.body_read_timeout, limits.body_min_rate)")]
pub struct BodyTimedOut;

/// Whether `error`, or any error it was caused by, is a [`BodyTimedOut`]:
/// hyper's client wraps a body's error when the upstream request fails on it.
pub fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// When a body that started at `started`, has delivered `received` bytes
/// and last delivered at `last_data`, runs out of time.
fn deadline(pace: &BodyPace, started: Instant, received: u64, last_data: Instant) -> Instant {
    let stall = last_data + pace.timeout;
    if pace.min_rate == 0 {
        return stall;
    }
    let earned = Duration::try_from_secs_f64(received as f64 / pace.min_rate as f64)
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION);
    stall.min(started + pace.timeout + earned)
}

/// A request body held to a [`BodyPace`]. The timer is allocated only when
/// the body first has to wait, so a request without a body, or one that
/// arrived with its head, costs none.
pub struct BodyDeadline<B> {
    inner: B,
    pace: BodyPace,
    started: Instant,
    last_data: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> BodyDeadline<B> {
    pub fn new(inner: B, pace: BodyPace) -> BodyDeadline<B> {
        let now = Instant::now();
        BodyDeadline {
            inner,
            pace,
            started: now,
            last_data: now,
            received: 0,
            timer: None,
        }
    }
}

impl<B> HttpBody for BodyDeadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    this.last_data = Instant::now();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = deadline(&this.pace, this.started, this.received, this.last_data);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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

    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    const PACE: BodyPace = BodyPace {
        timeout: Duration::from_secs(10),
        min_rate: 100,
    };

    #[test]
    fn the_rate_earns_time_and_a_stall_never_exceeds_the_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(deadline(&PACE, t0, 0, t0), t0 + s(10));
        // 500 bytes at 100 B/s earn 5 s beyond the grace...
        assert_eq!(deadline(&PACE, t0, 500, t0 + s(9)), t0 + s(15));
        // ...but never more than the timeout since the last data.
        assert_eq!(deadline(&PACE, t0, 1_000_000, t0 + s(3)), t0 + s(13));
        let stalls_only = BodyPace { min_rate: 0, ..PACE };
        assert_eq!(deadline(&stalls_only, t0, 0, t0 + s(50)), t0 + s(60));
    }

    type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

    fn channel_body() -> (mpsc::Sender<Chunk>, BodyDeadline<StreamBody<ChunkStream>>) {
        let (tx, rx) = mpsc::channel(8);
        (tx, BodyDeadline::new(StreamBody::new(ChunkStream(rx)), PACE))
    }

    struct ChunkStream(mpsc::Receiver<Chunk>);

    impl futures_core::Stream for ChunkStream {
        type Item = Chunk;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
            self.0.poll_recv(cx)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_once_it_falls_below_the_rate() {
        let (tx, mut body) = channel_body();
        tokio::spawn(async move {
            // One byte a second: far below 100 B/s.
            for _ in 0..60 {
                if tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let started = Instant::now();
        let mut received = 0;
        let error = loop {
            match body.frame().await {
                Some(Ok(_)) => received += 1,
                Some(Err(e)) => break e,
                None => panic!("the trickle ended without a timeout"),
            }
        };
        assert!(timed_out(error.as_ref()), "{error}");
        // 10 s of grace plus 0.1 s earned per byte.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
            "{waited:?}"
        );
        assert!((10..=12).contains(&received), "{received}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_never_cut() {
        let (tx, mut body) = channel_body();
        tokio::spawn(async move {
            // 200 B/s for 60 s, then the end.
            for _ in 0..60 {
                let _ = tx.send(Ok(Frame::data(Bytes::from(vec![0u8; 200])))).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
        }
        assert_eq!(received, 60 * 200);
    }
}
