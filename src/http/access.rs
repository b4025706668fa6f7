//! The access log: one line per request, written when the response body has
//! been sent (or abandoned), so it can say how many bytes went each way; for
//! a request abandoned before its response, by whoever saw it go.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Version};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};
use crate::conn::Connection;
use crate::conn::identity::RequestCert;

/// The reason label of a request whose client left before its response
/// head was ready: it has no verdict, and nothing was sent.
pub const CLIENT_GONE: &str = "client_gone";

/// The status label of [`CLIENT_GONE`]: nginx's 499 "client closed request",
/// the code operators already read that way. Never sent: there is nobody to
/// send it to.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// What the access line says about the request itself, taken as it arrives:
/// the one part every site's end-of-request guard shares.
pub struct RequestLine {
    pub started: Instant,
    /// Whether the access log is on; without it nothing needs the path.
    pub access_log: bool,
    pub method: Method,
    /// Empty without an access log; never the query, which may carry a token.
    pub path: String,
    pub version: Version,
}

impl RequestLine {
    /// Starts the clock on `req`.
    pub fn of<B>(req: &Request<B>) -> RequestLine {
        let access_log = tracing::enabled!(target: "bindgate::access", tracing::Level::INFO);
        RequestLine {
            started: Instant::now(),
            access_log,
            method: req.method().clone(),
            path: if access_log {
                req.uri().path().to_string()
            } else {
                String::new()
            },
            version: req.version(),
        }
    }
}

/// Everything the access line reports, collected along the request path.
pub struct AccessRecord {
    pub conn: Arc<Connection>,
    /// Whose certificate the request was judged by.
    pub cert: RequestCert,
    pub method: Method,
    /// The path only: a query string may carry a token and is never logged.
    pub path: String,
    pub version: Version,
    pub status: u16,
    pub reason: &'static str,
    pub route: Option<Arc<str>>,
    pub binding_violation: Option<&'static str>,
    /// Which bindings held: `mtls`, `dpop` or `mtls+dpop`. At the token
    /// endpoint, what the issued token is bound to.
    pub binding: Option<&'static str>,
    /// The authorization server's client: the one authenticated, or else
    /// the one the request named.
    pub client_id: Option<String>,
    /// The token endpoint's `grant_type`, once known to be one bindgate serves.
    pub grant: Option<&'static str>,
    pub started: Instant,
    /// Time until the response head was ready (or until the client left, if first).
    pub head_us: u64,
    pub upstream_us: Option<u64>,
    /// Request body bytes read from the client (and forwarded).
    pub bytes_in: Arc<AtomicU64>,
}

impl AccessRecord {
    /// Writes the line: `bytes_out` body bytes sent, `completed` if the body
    /// was sent to its end.
    pub fn write(self, bytes_out: u64, completed: bool) {
        let identity = self.cert.identity(self.conn.identity.as_ref());
        tracing::info!(
            target: "bindgate::access",
            peer = %self.conn.peer,
            method = %self.method,
            path = %self.path,
            version = ?self.version,
            status = self.status,
            reason = self.reason,
            route = self.route.as_deref().unwrap_or("-"),
            binding = self.binding.unwrap_or("-"),
            binding_violation = self.binding_violation.unwrap_or("-"),
            client_id = self.client_id.as_deref().unwrap_or("-"),
            grant = self.grant.unwrap_or("-"),
            cert_source = self.cert.source(),
            subject = identity.map(|i| i.subject.as_str()).unwrap_or("-"),
            x5t = identity.map(|i| i.x5t_s256.as_str()).unwrap_or("-"),
            resumed = self.conn.resumed,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            completed,
            head_us = self.head_us,
            upstream_us = self.upstream_us.unwrap_or(0),
            duration_us = self.started.elapsed().as_micros() as u64,
        );
    }
}

/// A response body that writes the access line when it ends or is dropped.
pub struct LoggedBody {
    inner: Body,
    bytes_out: u64,
    record: Option<AccessRecord>,
}

impl LoggedBody {
    pub fn new(inner: Body, record: AccessRecord) -> LoggedBody {
        let mut body = LoggedBody {
            inner,
            bytes_out: 0,
            record: Some(record),
        };
        // An empty body (most rejections) may never be polled: log right away.
        if body.inner.is_end_stream() {
            body.finish(true);
        }
        body
    }

    fn finish(&mut self, completed: bool) {
        if let Some(record) = self.record.take() {
            record.write(self.bytes_out, completed);
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
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

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // The client went away before the body was done.
        self.finish(false);
    }
}

/// A request body that counts the bytes it yields.
pub struct CountedBody {
    inner: Body,
    count: Arc<AtomicU64>,
}

impl CountedBody {
    pub fn new(inner: Body, count: Arc<AtomicU64>) -> CountedBody {
        CountedBody { inner, count }
    }
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
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
