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

use crate::app::live::Live;
use crate::body::{self, Body};
use crate::conn::accept::AcceptBackoff;

/// Serves admin requests until `shutdown` completes.
pub async fn serve(listener: TcpListener, live: Arc<Live>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    let delay = backoff.failed(|| tracing::warn!(error = %e, "admin accept failed; backing off until it succeeds"));
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            },
        };
        backoff.succeeded(|| tracing::info!("admin listener accepting connections again"));
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, live.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// Everything that keeps the gateway from serving requests successfully:
/// issuer keys not loaded, the server certificate outside its validity, an
/// upstream that refuses connections.
async fn not_ready(live: &Live) -> Vec<String> {
    let generation = live.current();
    let mut problems = Vec::new();
    for issuer in generation.gateway.validator.issuers() {
        if !issuer.keys.is_loaded() {
            problems.push(format!("keys of issuer {} are not loaded", issuer.settings.issuer));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Some(server) = generation.certificates.first()
        && (now < server.not_before || now > server.not_after)
    {
        problems.push(format!("the server certificate ({}) is not valid now", server.subject));
    }
    let mut upstreams: Vec<std::sync::Arc<crate::http::upstream::Upstream>> = Vec::new();
    for route in generation.gateway.routes.iter() {
        if !upstreams.iter().any(|u| std::sync::Arc::ptr_eq(u, &route.upstream)) {
            upstreams.push(route.upstream.clone());
        }
    }
    for upstream in upstreams {
        if !upstream.reachable(std::time::Duration::from_secs(1)).await {
            problems.push(format!("upstream {} is unreachable", upstream.base()));
        }
    }
    problems
}

async fn respond(req: Request<Incoming>, live: Arc<Live>) -> Result<Response<Body>, Infallible> {
    let (status, content_type, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/readyz") => match not_ready(&live).await {
            problems if problems.is_empty() => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            problems => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready:\n{}\n", problems.join("\n")),
            ),
        },
        (&Method::GET, "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", {
            let generation = live.current();
            let certificates: Vec<(&str, String, i64)> = generation
                .certificates
                .iter()
                .map(|c| (c.kind, c.subject.clone(), c.not_after))
                .collect();
            live.metrics.render(&certificates)
        }),
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
