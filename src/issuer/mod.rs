//! The authorization server: bindgate issuing the sender-constrained tokens
//! its gateway checks. Served on its own listener by the same accept loop and
//! connection task as the gateway (`server.rs`); it never issues an unbound
//! token.
//!
//! [`handle`] routes a request by exact path ([`routes`]) and method to its
//! endpoint; any rejection becomes a JSON error ([`reject`]); its
//! [`outcome::Outcome`] counts and logs every request exactly once.

pub(crate) mod access_token;
pub(crate) mod client_auth;
pub(crate) mod client_request;
pub(crate) mod exchange;
pub(crate) mod form;
pub(crate) mod grant;
pub(crate) mod introspect;
pub mod metadata;
pub(crate) mod outcome;
pub(crate) mod refresh;
pub(crate) mod reject;
pub mod respond;
pub(crate) mod revoke;
pub mod routes;
pub mod store;
pub mod subject;
pub mod token;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, Version};
use rustls::ServerConfig;

use self::metadata::EndpointUrls;
use self::outcome::Outcome;
use self::reject::Rejection;
use self::routes::{Endpoint, Routes};
use self::token::TokenEndpoint;
use crate::body::Body;
use crate::config::AuthorizationServerSettings;
use crate::conn::Connection;
use crate::conn::activity::RequestBody;
use crate::conn::framing::Framing;
use crate::http::inbound;
use crate::jose::Algorithm;
use crate::jose::sign::KeyRing;
use crate::metrics::Metrics;

/// Everything one generation of the authorization server needs, shared by
/// all its connections.
pub struct Issuer {
    pub settings: AuthorizationServerSettings,
    /// The signing keys: the first signs, all are published. Shared, so the
    /// gateway can verify the embedded issuer's tokens against the same ring.
    pub keys: Arc<KeyRing>,
    /// The listener's TLS configuration: new connections take the current
    /// generation's, as the gateway's do.
    pub tls: Arc<ServerConfig>,
    /// The absolute URL of each endpoint, as published in the metadata.
    pub urls: EndpointUrls,
    pub metrics: Arc<Metrics>,
    pub token: TokenEndpoint,
    routes: Routes,
    /// Rendered once: they change only with the generation.
    metadata: Bytes,
    jwks: Bytes,
}

impl Issuer {
    /// `dpop_algorithms` are the proof algorithms `[dpop]` accepts, which
    /// the token endpoint accepts too.
    pub fn new(
        settings: AuthorizationServerSettings,
        keys: Arc<KeyRing>,
        dpop_algorithms: &[Algorithm],
        tls: Arc<ServerConfig>,
        token: TokenEndpoint,
        metrics: Arc<Metrics>,
    ) -> Issuer {
        let urls = EndpointUrls::new(&settings.issuer);
        let metadata = Bytes::from(metadata::render(&settings, &urls, dpop_algorithms));
        let jwks = Bytes::from(keys.jwks_json());
        Issuer {
            routes: Routes::new(&metadata::issuer_path(&settings.issuer)),
            settings,
            keys,
            tls,
            urls,
            metrics,
            token,
            metadata,
            jwks,
        }
    }
}

/// The reason label of a request an endpoint answered.
const SERVED: &str = "served";

/// Serves one request; never fails, since every rejection becomes a response.
pub async fn handle(
    issuer: Arc<Issuer>,
    conn: Arc<Connection>,
    req: Request<RequestBody>,
) -> Result<Response<Body>, Infallible> {
    // Dropped before `issuer` and `conn`, also when hyper drops this future.
    let mut outcome = Outcome::begin(&issuer.metrics, &conn, &req);
    let (response, reason) = match serve(&issuer, &conn, req, &mut outcome).await {
        Ok(response) => (response, SERVED),
        Err(rejection) => {
            count(&issuer.metrics, &rejection, outcome.endpoint());
            answer(&rejection, outcome.version(), &conn)
        }
    };
    Ok(outcome.respond(response, reason))
}

/// The answer on a listener whose configuration has no authorization
/// server: a reload can neither add nor remove one, so only a caller that
/// bound the listener without one gets here.
pub fn unconfigured(version: Version, conn: &Connection) -> Response<Body> {
    answer(&Rejection::Unconfigured, version, conn).0
}

/// Checks that hold for every endpoint, then the endpoint itself. Takes the
/// request whole: an endpoint that reads a form needs its body.
async fn serve(
    issuer: &Issuer,
    conn: &Connection,
    req: Request<RequestBody>,
    outcome: &mut Outcome<'_>,
) -> Result<Response<Body>, Rejection> {
    // Taken first and unconditionally: verdicts pair with requests by order.
    if conn.framing.as_ref().and_then(|log| log.next()) == Some(Framing::Ambiguous) {
        return Err(inbound::RequestError::AmbiguousFraming.into());
    }
    inbound::check_head(&req)?;
    let (path, endpoint) = issuer.routes.find(req.uri().path()).ok_or(Rejection::NotFound)?;
    outcome.routed(path, endpoint);
    if !endpoint.allows(req.method()) {
        return Err(Rejection::MethodNotAllowed {
            allow: endpoint.allow_header(),
        });
    }
    let head_only = req.method() == Method::HEAD;
    match endpoint {
        Endpoint::Metadata => Ok(respond::document(&issuer.metadata, head_only)),
        Endpoint::Jwks => Ok(respond::document(&issuer.jwks, head_only)),
        Endpoint::Token => token::serve(issuer, &issuer.token, conn, req, outcome).await,
        Endpoint::Introspect => introspect::serve(issuer, conn, req, outcome).await,
        Endpoint::Revoke => revoke::serve(issuer, conn, req, outcome).await,
    }
}

/// The refusal counters beside `bindgate_as_requests_total`: the token
/// endpoint's by error code, and failed client authentications by method.
fn count(metrics: &Metrics, rejection: &Rejection, endpoint: Option<Endpoint>) {
    if endpoint == Some(Endpoint::Token) {
        metrics.record_as_token_error(rejection.verdict().error);
    }
    if let Rejection::ClientAuth(e) = rejection {
        metrics.record_as_client_auth_failure(e.method());
    }
}

/// The response to a rejection and its reason label.
fn answer(rejection: &Rejection, version: Version, conn: &Connection) -> (Response<Body>, &'static str) {
    let verdict = rejection.verdict();
    let mut response = rejection.to_response();
    if verdict.close_connection {
        if version < Version::HTTP_2 {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        } else {
            // Kept as a permit if the connection task is not waiting yet.
            conn.close_requested.notify_one();
        }
    }
    (response, verdict.reason)
}
