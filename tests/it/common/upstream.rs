//! A real HTTP/1.1 upstream that records what it receives.
//!
//! `/slow/<ms>` answers after a delay, `/big/<n>` answers `n` bytes of a
//! deterministic pattern, `/stream/<ms>` sends a first chunk then the rest
//! after a delay, `/early` answers at once and reads the body afterwards
//! (how it ended is in [`RecordingUpstream::early_bodies`]); every other path
//! echoes the request body. Each `x-reply-header: Name: value` a request
//! carries becomes a header of its response (not for `/early`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The gateway's end of the connection the request came on.
    pub peer: SocketAddr,
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    pub body_sha256: [u8; 32],
}

impl Seen {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "upstream saw {} values of {name}: {all:?}", all.len());
        all.into_iter().next()
    }
}

pub struct RecordingUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    early: Arc<Mutex<Vec<EarlyBody>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How the body of an `/early` request ended, after its response was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlyBody {
    Complete(usize),
    /// The gateway cut it off (its connection to us failed mid-body).
    Aborted,
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let early = Arc::new(Mutex::new(Vec::new()));
        let record = Record {
            seen: seen.clone(),
            early: early.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, peer, record.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        RecordingUpstream {
            addr,
            seen,
            early,
            task,
        }
    }

    /// How each `/early` request's body ended, once it has.
    pub fn early_bodies(&self) -> Vec<EarlyBody> {
        self.early.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Forgets the requests seen so far, for a test that goes on with a new gateway.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// The only request seen so far.
    pub fn only(&self) -> Seen {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one upstream request, saw {all:#?}");
        all.into_iter().next().unwrap()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
struct Record {
    seen: Arc<Mutex<Vec<Seen>>>,
    early: Arc<Mutex<Vec<EarlyBody>>>,
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, record: Record) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/early" {
        record.seen.lock().unwrap().push(Seen {
            peer,
            method: parts.method.to_string(),
            target: parts.uri.to_string(),
            headers: parts.headers.clone(),
            body_len: 0,
            body_sha256: Sha256::digest([]).into(),
        });
        tokio::spawn(async move {
            let ended = match body.collect().await {
                Ok(collected) => EarlyBody::Complete(collected.to_bytes().len()),
                Err(_) => EarlyBody::Aborted,
            };
            record.early.lock().unwrap().push(ended);
        });
        return Ok(full("early"));
    }
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    record.seen.lock().unwrap().push(Seen {
        peer,
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_len: bytes.len(),
        body_sha256: Sha256::digest(&bytes).into(),
    });
    let path = parts.uri.path();
    let mut response = if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        full("slow")
    } else if let Some(n) = path.strip_prefix("/big/") {
        full(pattern(n.parse().unwrap_or(0)))
    } else if let Some(ms) = path.strip_prefix("/stream/") {
        let delay = Duration::from_millis(ms.parse().unwrap_or(0));
        Response::new(BodyExt::boxed(StreamBody::new(TwoChunks::new(delay))))
    } else {
        let mut response = full(bytes);
        response
            .headers_mut()
            .insert("x-upstream-connection", http::HeaderValue::from_static("keep-alive"));
        response
    };
    for asked in parts.headers.get_all("x-reply-header") {
        let (name, value) = asked.to_str().unwrap().split_once(':').unwrap();
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    Ok(response)
}

fn full(bytes: impl Into<Bytes>) -> Response<Body> {
    Response::new(BodyExt::boxed(http_body_util::Full::new(bytes.into())))
}

/// `n` bytes of a pattern that makes misplaced or dropped chunks visible.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8).collect()
}

/// A body of two chunks: `first-` at once, `second` after a delay.
struct TwoChunks {
    step: u8,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl TwoChunks {
    fn new(delay: Duration) -> TwoChunks {
        TwoChunks {
            step: 0,
            sleep: Box::pin(tokio::time::sleep(delay)),
        }
    }
}

impl futures_core::Stream for TwoChunks {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first-")))))
            }
            1 => match self.sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    self.step = 2;
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"second")))))
                }
            },
            _ => Poll::Ready(None),
        }
    }
}
