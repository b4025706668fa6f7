//! The requests and answers of a family: token exchange, refresh and
//! revocation forms, concurrent sends, the token response read, and the
//! names of the families' metrics.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use super::{APP, ID_TOKEN_TYPE, TOKEN_EXCHANGE};
use crate::common::dpop::DpopKey;
use crate::common::token_request::*;
use crate::common::*;

/// A token response, read.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub issued: Issued,
    pub json: Value,
    pub refresh_token: Option<String>,
    pub refresh_expires_in: Option<i64>,
}

impl Tokens {
    pub fn access(&self) -> &str {
        &self.issued.access_token
    }

    /// The refresh token; panics when the response had none.
    pub fn refresh(&self) -> &str {
        self.refresh_token.as_deref().expect("a refresh token in the response")
    }

    /// The access token's `sid`: the family.
    pub fn sid(&self) -> String {
        self.issued.claims["sid"].as_str().expect("sid").to_string()
    }

    /// The access token's `iat`: the second the authorization server decided in.
    pub fn iat(&self) -> i64 {
        self.issued.claims["iat"].as_i64().expect("iat")
    }

    pub fn jkt(&self) -> Option<&str> {
        self.issued.claims["cnf"]["jkt"].as_str()
    }
}

/// Asserts `reply` is a token response and reads it.
#[track_caller]
pub fn tokens(reply: &Reply) -> Tokens {
    let issued = assert_issued(reply);
    let json = reply.json();
    Tokens {
        issued,
        refresh_token: json["refresh_token"].as_str().map(str::to_string),
        refresh_expires_in: json["refresh_token_expires_in"].as_i64(),
        json,
    }
}

/// Asserts `reply` is a 400 `invalid_grant`.
#[track_caller]
pub fn assert_invalid_grant(reply: &Reply) {
    assert_token_error(reply, 400, "invalid_grant");
}

/// `POST path` with a form body and `proofs` as DPoP headers.
pub fn post_request(path: &str, body: String, proofs: &[&str]) -> Request<Full<Bytes>> {
    let mut req = request(Alpn::Http1, "POST", path, None, body);
    let headers = req.headers_mut();
    headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    for proof in proofs {
        headers.append("dpop", proof.parse().unwrap());
    }
    req
}

/// The form of a token exchange of `subject_token` (an id_token) by `client_id`.
pub fn exchange_form(client_id: &str, subject_token: &str) -> String {
    form(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("client_id", client_id),
        ("subject_token", subject_token),
        ("subject_token_type", ID_TOKEN_TYPE),
    ])
}

/// The form of a refresh of `token` by `client_id`, plus `extra`.
pub fn refresh_form(client_id: &str, token: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    params.extend_from_slice(extra);
    form(&params)
}

/// [`APP`]'s refresh of `token` with a fresh proof of `key`, as a request.
pub fn app_refresh(token: &str, key: &DpopKey) -> Request<Full<Bytes>> {
    let proof = token_proof(key, None);
    post_request(TOKEN_PATH, refresh_form(APP, token, &[]), &[&proof])
}

/// Sends every request on its own connection, all at once: the handshakes
/// first, then every request, so they reach the server together. Each
/// answer in the order of `requests`; `Err` for a connection that failed.
pub async fn send_together(
    client: &TlsClient,
    addr: SocketAddr,
    requests: Vec<Request<Full<Bytes>>>,
) -> Vec<Result<Reply, String>> {
    let mut connections = Vec::new();
    for _ in &requests {
        connections.push(client.connect(addr).await.map_err(|e| format!("handshake: {e}")));
    }
    let mut tasks = Vec::new();
    for (connection, req) in connections.into_iter().zip(requests) {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.send_on(connection?, req).await }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// `bindgate_as_family_revocations_total{reason="<reason>"}`.
pub fn revocations(reason: &str) -> String {
    format!("bindgate_as_family_revocations_total{{reason=\"{reason}\"}}")
}

pub const REUSE_TOTAL: &str = "bindgate_as_refresh_reuse_total";
pub const ROTATIONS_TOTAL: &str = "bindgate_as_refresh_rotations_total";
pub const GRACE_RETRIES_TOTAL: &str = "bindgate_as_refresh_grace_retries_total";
pub const FAMILIES_STARTED_TOTAL: &str = "bindgate_as_families_started_total";

/// Waits until the wall clock's second is at least `second`, bounded by `limit`.
pub async fn until_second(second: i64, limit: Duration) {
    let reached = eventually(limit, async || now() >= second).await;
    assert!(reached, "the clock did not reach {second} within {limit:?}");
}
