//! The admin listener: `/healthz` (the process is alive), `/readyz` (ready
//! to serve traffic) and `/metrics` (Prometheus text). Plain HTTP: bind it
//! to loopback or a pod-internal address.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::runtime::Live;

/// Serves admin requests until `shutdown` completes.
pub async fn serve(listener: TcpListener, live: Arc<Live>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, live.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn respond(req: Request<Incoming>, live: Arc<Live>) -> Result<Response<Body>, Infallible> {
    let (status, content_type, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        // The gateway only starts serving once config, certificates and keys
        // loaded; while this listener answers, the proxy listener is up too.
        (&Method::GET, "/readyz") => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        (&Method::GET, "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", live.metrics.render()),
        (_, "/healthz" | "/readyz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_string(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
    };
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    Ok(response)
}
