//! The end of every authorization server request, however it ends: the one
//! place that counts it (`bindgate_as_requests_total`) and hands its access
//! line on. The same shape as the gateway's: the line is written by the
//! response body when it has been sent, and by this guard's `Drop` when
//! hyper drops the request first (the client left while a later endpoint
//! was waiting on a key fetch or a store).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::{Method, Request, Response, Version};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::conn::Connection;
use crate::http::access::{AccessRecord, CLIENT_CLOSED_REQUEST, CLIENT_GONE, LoggedBody, RequestLine};
use crate::issuer::routes::Endpoint;
use crate::metrics::Metrics;

/// An end-of-request guard: [`Outcome::respond`] counts the request and
/// gives its access line to the response body; dropped without that, it
/// counts and logs the request as [`CLIENT_GONE`].
pub struct Outcome<'a> {
    metrics: &'a Metrics,
    conn: &'a Arc<Connection>,
    line: RequestLine,
    /// The endpoint's path as served, once the request was routed to one.
    endpoint: Option<Arc<str>>,
    routed_to: Option<Endpoint>,
    /// What the token endpoint decided, for the access line.
    client_id: Option<String>,
    grant: Option<&'static str>,
    binding: Option<&'static str>,
    bytes_in: u64,
    answered: bool,
}

impl<'a> Outcome<'a> {
    /// Starts the clock on `req`.
    pub fn begin<B>(metrics: &'a Metrics, conn: &'a Arc<Connection>, req: &Request<B>) -> Outcome<'a> {
        let line = RequestLine::of(req);
        Outcome {
            metrics,
            conn,
            endpoint: None,
            routed_to: None,
            line,
            client_id: None,
            grant: None,
            binding: None,
            bytes_in: 0,
            answered: false,
        }
    }

    /// The request was routed to `endpoint`, served at `path`.
    pub fn routed(&mut self, path: &Arc<str>, endpoint: Endpoint) {
        self.endpoint = Some(path.clone());
        self.routed_to = Some(endpoint);
    }

    /// The endpoint the request was routed to, if any.
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.routed_to
    }

    /// The client the request names, then the one it authenticated as.
    /// Kept only for the access log.
    pub fn client(&mut self, client_id: &str) {
        if self.line.access_log && self.client_id.as_deref() != Some(client_id) {
            self.client_id = Some(client_id.to_string());
        }
    }

    pub fn grant(&mut self, grant: &'static str) {
        self.grant = Some(grant);
    }

    /// What the issued token is bound to (`mtls` or `dpop`).
    pub fn binding(&mut self, binding: &'static str) {
        self.binding = Some(binding);
    }

    /// The request body was read whole: `bytes` long.
    pub fn read_body(&mut self, bytes: usize) {
        self.bytes_in = bytes as u64;
    }

    pub fn version(&self) -> Version {
        self.line.version
    }

    /// The response head is ready: counts the request now; the access line
    /// follows when the body has been sent or abandoned.
    pub fn respond(mut self, response: Response<Body>, reason: &'static str) -> Response<Body> {
        self.answered = true;
        let head = self.line.started.elapsed();
        let status = response.status().as_u16();
        self.count(status);
        match self.record(status, reason, head) {
            Some(record) => response.map(|body| LoggedBody::new(body, record).boxed()),
            None => response,
        }
    }

    fn count(&self, status: u16) {
        static UNROUTED: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));
        let endpoint = self.endpoint.as_ref().unwrap_or(&UNROUTED);
        self.metrics.record_as_request(endpoint, status);
    }

    fn record(&mut self, status: u16, reason: &'static str, head: Duration) -> Option<AccessRecord> {
        if !self.line.access_log {
            return None;
        }
        Some(AccessRecord {
            cert: crate::conn::identity::RequestCert::Handshake,
            conn: self.conn.clone(),
            method: std::mem::replace(&mut self.line.method, Method::GET),
            path: std::mem::take(&mut self.line.path),
            version: self.line.version,
            status,
            reason,
            route: self.endpoint.take(),
            binding_violation: None,
            binding: self.binding,
            client_id: self.client_id.take(),
            grant: self.grant,
            started: self.line.started,
            head_us: head.as_micros() as u64,
            upstream_us: None,
            bytes_in: Arc::new(AtomicU64::new(self.bytes_in)),
        })
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let waited = self.line.started.elapsed();
        self.count(CLIENT_CLOSED_REQUEST);
        if let Some(record) = self.record(CLIENT_CLOSED_REQUEST, CLIENT_GONE, waited) {
            record.write(0, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Arc<Connection> {
        Arc::new(Connection::new(([127, 0, 0, 1], 40000).into(), None, false, None))
    }

    fn counted(metrics: &Metrics) -> Vec<String> {
        let text = metrics.render(&[]);
        text.lines()
            .filter(|l| l.starts_with("bindgate_as_requests_total{") || l.starts_with("bindgate_requests_total{"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn an_answered_request_is_counted_once_by_endpoint_apart_from_the_gateway() {
        let (metrics, conn) = (Metrics::default(), conn());
        let req = Request::get("/jwks").body(()).unwrap();
        let mut outcome = Outcome::begin(&metrics, &conn, &req);
        outcome.routed(&Arc::from("/jwks"), Endpoint::Jwks);
        drop(outcome.respond(Response::new(crate::body::full("{}")), "served"));
        assert_eq!(
            counted(&metrics),
            ["bindgate_as_requests_total{endpoint=\"/jwks\",status=\"200\"} 1"]
        );
        assert!(
            metrics
                .render(&[])
                .contains("bindgate_request_duration_seconds_count 0\n")
        );
    }

    #[test]
    fn a_request_dropped_before_its_response_is_counted_as_499() {
        let (metrics, conn) = (Metrics::default(), conn());
        let req = Request::get("/nowhere").body(()).unwrap();
        drop(Outcome::begin(&metrics, &conn, &req));
        assert_eq!(
            counted(&metrics),
            ["bindgate_as_requests_total{endpoint=\"-\",status=\"499\"} 1"]
        );
    }
}
