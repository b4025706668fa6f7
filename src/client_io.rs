//! The client's byte stream as hyper sees it, watched on the way: every byte
//! read goes through the HTTP/1 [`FramingScanner`], and a connection with no
//! request in flight and no traffic for the idle timeout is ended.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::framing::FramingScanner;

/// Ends connections that sit idle: no request in flight and no bytes either way.
pub struct IdleTimer {
    timeout: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
    in_flight: Arc<AtomicUsize>,
}

impl IdleTimer {
    /// `in_flight` counts the connection's requests being served.
    pub fn new(timeout: Duration, in_flight: Arc<AtomicUsize>) -> IdleTimer {
        IdleTimer {
            timeout,
            last_activity: Instant::now(),
            sleep: Box::pin(tokio::time::sleep(timeout)),
            in_flight,
        }
    }

    fn touch(&mut self) {
        // Only a timestamp per read or write; the timer is re-armed lazily when it fires.
        self.last_activity = Instant::now();
    }

    /// Whether the connection has been idle for the whole timeout; registers a wake-up otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            let deadline = self.last_activity + self.timeout;
            if self.in_flight.load(Ordering::Relaxed) == 0 && now >= deadline {
                return true;
            }
            let next = if deadline > now { deadline } else { now + self.timeout };
            self.sleep.as_mut().reset(next);
        }
    }
}

/// The client connection's I/O with the framing scanner and idle timer attached.
pub struct ClientIo<IO> {
    inner: IO,
    scanner: FramingScanner,
    idle: IdleTimer,
}

impl<IO> ClientIo<IO> {
    pub fn new(inner: IO, scanner: FramingScanner, idle: IdleTimer) -> ClientIo<IO> {
        ClientIo { inner, scanner, idle }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ClientIo<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.idle.touch();
                    this.scanner.feed(read);
                }
                Poll::Ready(Ok(()))
            }
            // An idle connection reads as closed: hyper then ends it cleanly.
            Poll::Pending if this.idle.expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ClientIo<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.idle.touch();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.idle.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
