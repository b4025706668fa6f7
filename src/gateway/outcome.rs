//! The end of every request, however it ends: the one place that counts it
//! in the metrics and hands its access line on.
//!
//! An [`Outcome`] is made when a request arrives and lives until its
//! response head is ready. hyper drops the request's future when the client
//! goes away first (it closed the connection, or reset its h2 stream, while
//! the upstream, a key fetch or the replay store was slow); the guard's
//! `Drop` then counts and logs the request as [`CLIENT_GONE`], so no request
//! leaves without a trace.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::{Method, Request, Response, Version};
use http_body_util::BodyExt;

use crate::auth::token::extract::Scheme;
use crate::body::Body;
use crate::config::BindingMethods;
use crate::conn::Connection;
use crate::conn::identity::RequestCert;
use crate::http::access::{AccessRecord, CLIENT_CLOSED_REQUEST, CLIENT_GONE, LoggedBody, RequestLine};
use crate::metrics::Metrics;

/// What the request path learned that the access log and metrics report.
#[derive(Default)]
pub struct RequestNotes {
    pub(super) route: Option<Arc<str>>,
    /// Set when a report-only route forwarded a request that failed the binding check.
    pub(super) binding_violation: Option<&'static str>,
    /// The binding methods of the route, once it is known.
    pub(super) methods: Option<BindingMethods>,
    pub(super) scheme: Scheme,
    /// Which bindings held: `mtls`, `dpop` or `mtls+dpop`.
    pub(super) binding: Option<&'static str>,
    pub(super) upstream_us: Option<u64>,
    /// Request body bytes, counted only for the access log.
    pub(super) bytes_in: Option<Arc<AtomicU64>>,
    /// Whose certificate the request is judged by.
    pub(super) cert: RequestCert,
}

impl RequestNotes {
    /// Whose certificate the request was judged by, once `admit` has decided.
    pub fn cert(&self) -> &RequestCert {
        &self.cert
    }
}

/// An end-of-request guard: [`Outcome::respond`] counts the request and
/// gives its access line to the response body; dropped without that, it
/// counts and logs the request as [`CLIENT_GONE`].
pub struct Outcome<'a> {
    metrics: &'a Metrics,
    conn: &'a Arc<Connection>,
    line: RequestLine,
    notes: RequestNotes,
    /// The response head is ready: the request is counted and its access
    /// line belongs to the response body.
    answered: bool,
}

impl<'a> Outcome<'a> {
    /// Starts the clock on `req`.
    pub fn begin<B>(metrics: &'a Metrics, conn: &'a Arc<Connection>, req: &Request<B>) -> Outcome<'a> {
        let line = RequestLine::of(req);
        Outcome {
            metrics,
            conn,
            notes: RequestNotes {
                bytes_in: line.access_log.then(Arc::default),
                ..RequestNotes::default()
            },
            line,
            answered: false,
        }
    }

    /// What the request path has learned so far.
    pub fn notes(&self) -> &RequestNotes {
        &self.notes
    }

    /// Where the request path writes what it learns.
    pub fn notes_mut(&mut self) -> &mut RequestNotes {
        &mut self.notes
    }

    pub fn version(&self) -> Version {
        self.line.version
    }

    /// The response head is ready: counts the request under `reason` now;
    /// the access line follows when the body has been sent or abandoned.
    pub fn respond(mut self, response: Response<Body>, reason: &'static str) -> Response<Body> {
        self.answered = true;
        let head = self.line.started.elapsed();
        let status = response.status().as_u16();
        self.count(status, reason, head);
        match self.record(status, reason, head) {
            Some(record) => response.map(|body| LoggedBody::new(body, record).boxed()),
            None => response,
        }
    }

    fn count(&self, status: u16, reason: &'static str, head: Duration) {
        static NO_ROUTE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));
        let route = self.notes.route.as_ref().unwrap_or(&NO_ROUTE);
        self.metrics
            .record_request(route, status, reason, self.notes.cert.source_label(), head);
        if let Some(violation) = self.notes.binding_violation {
            self.metrics.record_binding_report(route, violation);
        }
        if let Some(binding) = self.notes.binding {
            self.metrics.record_binding_held(route, binding);
        }
    }

    /// The access line's fields, taken out of the guard, or `None` without an access log.
    fn record(&mut self, status: u16, reason: &'static str, head: Duration) -> Option<AccessRecord> {
        if !self.line.access_log {
            return None;
        }
        let notes = std::mem::take(&mut self.notes);
        Some(AccessRecord {
            conn: self.conn.clone(),
            cert: notes.cert,
            method: std::mem::replace(&mut self.line.method, Method::GET),
            path: std::mem::take(&mut self.line.path),
            version: self.line.version,
            status,
            reason,
            route: notes.route,
            binding_violation: notes.binding_violation,
            binding: notes.binding,
            client_id: None,
            grant: None,
            started: self.line.started,
            head_us: head.as_micros() as u64,
            upstream_us: notes.upstream_us,
            bytes_in: notes.bytes_in.unwrap_or_default(),
        })
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // hyper dropped the request before its response head was ready: the
        // client left. How long it waited stands in for the time to the head.
        let waited = self.line.started.elapsed();
        self.count(CLIENT_CLOSED_REQUEST, CLIENT_GONE, waited);
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

    fn requests(metrics: &Metrics) -> Vec<String> {
        let text = metrics.render(&[]);
        text.lines()
            .filter(|l| l.starts_with("bindgate_requests_total{"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_request_dropped_before_its_response_is_counted_once_as_client_gone() {
        let (metrics, conn) = (Metrics::default(), conn());
        let req = Request::get("/slow").body(()).unwrap();
        let mut outcome = Outcome::begin(&metrics, &conn, &req);
        outcome.notes_mut().route = Some(Arc::from("/api"));
        outcome.notes_mut().binding = Some("mtls");
        drop(outcome);
        assert_eq!(
            requests(&metrics),
            ["bindgate_requests_total{route=\"/api\",status=\"499\",reason=\"client_gone\",cert_source=\"tls\"} 1"]
        );
        let text = metrics.render(&[]);
        assert!(text.contains("bindgate_sender_checks_passed_total{route=\"/api\",binding=\"mtls\"} 1\n"));
        assert!(text.contains("bindgate_request_duration_seconds_count 1\n"));
    }

    #[test]
    fn an_answered_request_is_counted_once_under_its_own_reason() {
        let (metrics, conn) = (Metrics::default(), conn());
        let req = Request::get("/").body(()).unwrap();
        let outcome = Outcome::begin(&metrics, &conn, &req);
        let response = outcome.respond(Response::new(crate::body::full("ok")), "forwarded");
        drop(response);
        assert_eq!(
            requests(&metrics),
            ["bindgate_requests_total{route=\"-\",status=\"200\",reason=\"forwarded\",cert_source=\"tls\"} 1"]
        );
    }
}
