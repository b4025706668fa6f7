//! The client's byte stream as hyper sees it, watched on the way: every byte
//! read goes through the HTTP/1 [`FramingScanner`], reads, writes and flushes
//! are recorded in the connection's [`Activity`], and a connection with no
//! request in flight and no traffic for the idle timeout is ended.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::conn::activity::{Activity, QuietTimer};
use crate::conn::framing::FramingScanner;

/// The client connection's I/O with the framing scanner and idle timer attached.
pub struct ClientIo<IO> {
    inner: IO,
    scanner: FramingScanner,
    /// Ends the connection once nothing is in flight and no bytes moved for the idle timeout.
    idle: QuietTimer,
    activity: Arc<Activity>,
    /// Bytes read and scanned already, handed back by an HTTP layer that
    /// stopped before using them; read again before anything new.
    unread: Bytes,
}

impl<IO> ClientIo<IO> {
    pub fn new(inner: IO, scanner: FramingScanner, idle: QuietTimer, activity: Arc<Activity>) -> ClientIo<IO> {
        ClientIo {
            inner,
            scanner,
            idle,
            activity,
            unread: Bytes::new(),
        }
    }

    /// Puts bytes back in front of the stream (see `unread`).
    pub fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.unread.is_empty());
        self.unread = bytes;
    }

    /// Whether the idle timeout has passed; registers a wake-up for when it may.
    pub fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let activity = &self.activity;
        self.idle.elapsed(cx, activity, || activity.in_flight() == 0)
    }
}

/// Transports that can say when bytes arrive without reading them.
pub trait ReadReadiness {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReadiness for Box<tokio_rustls::server::TlsStream<TcpStream>> {
    /// The socket's readiness: rustls holds no unread plaintext whenever the
    /// last read of this stream came back pending, and that is the only
    /// time this is asked.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}

impl<IO: ReadReadiness> ClientIo<IO> {
    /// Ready when the client sent something (or closed); only valid after a
    /// read of this stream came back pending and nothing is unread.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ClientIo<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let take = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..take]);
            this.unread.advance(take);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.scanner.feed(read);
                    this.activity.on_read(this.scanner.between_messages());
                }
                Poll::Ready(Ok(()))
            }
            // An idle connection reads as closed: hyper then ends it cleanly.
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ClientIo<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(()))) {
            this.activity.on_flushed();
        }
        result
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
            this.activity.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
