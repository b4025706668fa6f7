//! `POST /token` through the real binary: each client authentication
//! method accepted and refused, DPoP proofs and nonces at the token
//! endpoint, the binding rules (never an unbound token), every error code
//! with its status, body, `no-store` and metric row, the token's claims,
//! malformed forms, the access line, and the gateway accepting what the
//! authorization server issued, from the right holder only.
//!
//! One world per test: a gateway with an embedded authorization server, its
//! standard clients (below), and the gateway trusting the authorization
//! server's signing key for [`API`].

mod access;
mod binding;
mod certificates;
mod claims;
mod dpop;
mod errors;
mod form;
mod gateway;
mod private_key_jwt;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{DnType, SanType};

use crate::common::pki::{self, CertFiles};
use crate::common::token_request::*;
use crate::common::*;

/// How long an access line may take to appear after its response.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject of client A's certificate, as the standard clients register it.
const CLIENT_A_DN: &str = "CN=client-a,O=bindgate tests";

/// What a test adds to the standard world.
#[derive(Default)]
struct Options {
    /// Replaces the standard `["ES256", "EdDSA"]`, as TOML.
    assertion_algorithms: Option<&'static str>,
    /// Lines of `[authorization_server]`, after the standard ones.
    authorization_server: Vec<String>,
    limits: Vec<String>,
    /// Lines of `[dpop]`.
    dpop: Vec<String>,
    /// Clients after the standard ones.
    clients: Vec<Client>,
}

/// A gateway with an authorization server, and every key and certificate
/// its standard clients are known by:
///
/// - `svc-tls`: `tls_client_auth`, client A's subject DN;
/// - `svc-jwt`: `private_key_jwt` with [`World::es`] and [`World::ed`];
/// - `svc-self`: `self_signed_tls_client_auth` with [`World::self_signed`]'s key;
/// - `svc-mtls-only` (client A's DN) and `svc-dpop-only` (`private_key_jwt`
///   with [`World::es`]): one binding each;
/// - `svc-refresh`: client A's DN, the `refresh_token` grant only.
///
/// Each is registered for [`SCOPE`] and the audiences [`API`] and [`OTHER_API`].
struct World {
    s: Setup,
    gw: GatewayProcess,
    /// The first signing key, which signs; a second, P-256 one is published only.
    signer: SigningKeyFile,
    es: AssertionKey,
    ed: AssertionKey,
    self_signed: CertFiles,
    /// By a second CA the authorization server trusts (its `client_ca`
    /// holds both, each with a CRL): DNS SAN `svc.example.org`.
    dns_leaf: CertFiles,
    /// By the second CA, client A's subject DN: revoked by its CRL, and expired.
    revoked: CertFiles,
    expired: CertFiles,
    /// Access lines of /token already handed to a test.
    lines_seen: AtomicUsize,
}

/// One token request's answer and its access line.
struct Answer {
    reply: Reply,
    line: String,
}

impl Answer {
    /// Asserts the RFC 6749 error and the access line's reason; returns the description.
    #[track_caller]
    fn refused(&self, status: u16, error: &str, reason: &str) -> String {
        let description = assert_token_error(&self.reply, status, error);
        assert_eq!(
            field(&self.line, "reason").as_deref(),
            Some(reason),
            "{error}: {description}\n{}",
            self.line
        );
        assert_eq!(field(&self.line, "status"), Some(status.to_string()), "{}", self.line);
        description
    }

    /// Asserts a token was issued with `token_type`, bound as `binding` in the access line.
    #[track_caller]
    fn issued(&self, token_type: &str, binding: &str) -> Issued {
        let issued = assert_issued(&self.reply);
        assert_eq!(issued.token_type, token_type, "{:?}", issued);
        assert_eq!(field(&self.line, "reason").as_deref(), Some("served"), "{}", self.line);
        assert_eq!(field(&self.line, "binding").as_deref(), Some(binding), "{}", self.line);
        issued
    }
}

async fn world(options: Options) -> World {
    let s = Setup::new().await;
    let dir = s.path();
    let signer = SigningKeyFile::ed25519(dir, "as-signer");
    let published = SigningKeyFile::p256(dir, "as-next");
    let es = AssertionKey::es256(dir, "es-1");
    let ed = AssertionKey::ed25519(dir, "ed-1");
    let self_signed = pki::self_signed_client(dir, "self-signed");
    let own = OwnCa::new(dir, "own-ca");
    let client_a_subject = [
        (DnType::OrganizationName, "bindgate tests"),
        (DnType::CommonName, "client-a"),
    ];
    let dns_leaf = own.leaf(
        dir,
        "dns-leaf",
        &[(DnType::CommonName, "svc-dns")],
        vec![SanType::DnsName("svc.example.org".try_into().unwrap())],
        false,
    );
    let revoked = own.leaf(dir, "revoked", &client_a_subject, vec![], false);
    let expired = own.leaf(dir, "expired", &client_a_subject, vec![], true);

    let bundle = dir.join("as-client-ca.pem");
    std::fs::write(&bundle, format!("{}{}", s.pki.ca.cert_pem, own.cert_pem)).unwrap();
    // Every CA of the bundle needs a CRL, or its leaves' revocation status is unknown.
    let crls = [s.pki.ca.crl(dir, "ca-empty", &[]), own.crl(dir, "own-ca", &[&revoked])];
    let path = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    let mut as_lines = vec![
        format!(
            "assertion_algorithms = {}",
            options.assertion_algorithms.unwrap_or("[\"ES256\", \"EdDSA\"]")
        ),
        "access_token_ttl = \"2m\"".to_string(),
        format!("client_ca = {}", path(&bundle)),
        format!("crl = [{}, {}]", path(&crls[0]), path(&crls[1])),
    ];
    as_lines.extend(options.authorization_server);

    let jwt_keys = write_jwks(dir, "svc-jwt.jwks.json", &[es.jwk(), ed.jwk()]);
    let es_only = write_jwks(dir, "svc-dpop-only.jwks.json", &[es.jwk()]);
    let self_keys = write_jwks(dir, "svc-self.jwks.json", &[certificate_jwk(&self_signed, "self-1")]);
    let mut clients = vec![
        Client::tls_subject_dn("svc-tls", CLIENT_A_DN),
        Client::private_key_jwt("svc-jwt", &jwt_keys),
        Client::self_signed("svc-self", &self_keys),
        Client::tls_subject_dn("svc-mtls-only", CLIENT_A_DN).binding("[\"mtls\"]"),
        Client::private_key_jwt("svc-dpop-only", &es_only).binding("[\"dpop\"]"),
        Client::tls_subject_dn("svc-refresh", CLIENT_A_DN).grant_types("[\"refresh_token\"]"),
    ];
    clients.extend(options.clients);

    let spec = ConfigSpec {
        limits: options.limits,
        tail: vec![
            as_table_at(AS_ISSUER, "127.0.0.1:0", &[&signer, &published], &as_lines, &clients),
            format!("[dpop]\n{}\n", options.dpop.join("\n")),
            trust_the_issuer(dir, AS_ISSUER, &signer),
            "[[route]]\nprefix = \"/\"\nbinding = [\"mtls\", \"dpop\"]\n".to_string(),
        ],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    World {
        s,
        gw,
        signer,
        es,
        ed,
        self_signed,
        dns_leaf,
        revoked,
        expired,
        lines_seen: AtomicUsize::new(0),
    }
}

impl World {
    /// A client of the authorization server presenting `cert`, if any.
    fn client(&self, cert: Option<&CertFiles>, alpn: Alpn) -> TlsClient {
        self.s.client(cert, alpn)
    }

    /// `POST /token` with `body` and `proofs` from a client presenting
    /// `cert`; waits for the request's access line.
    async fn post(&self, alpn: Alpn, cert: Option<&CertFiles>, body: &str, proofs: &[&str]) -> Answer {
        let req = token_request(alpn, body.to_string(), proofs);
        self.send(cert, alpn, req).await
    }

    /// Sends any request to the authorization server; waits for its access line.
    async fn send(
        &self,
        cert: Option<&CertFiles>,
        alpn: Alpn,
        req: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Answer {
        let reply = send_to_as(&self.client(cert, alpn), &self.gw, req).await;
        let line = self.next_line().await;
        Answer { reply, line }
    }

    /// The access line of the next /token request, waited for.
    async fn next_line(&self) -> String {
        let index = self.lines_seen.fetch_add(1, Ordering::SeqCst);
        let written = eventually(LINE_TIMEOUT, async || token_access_lines(&self.gw).len() > index).await;
        assert!(
            written,
            "no access line for /token request {index}:\n{}",
            self.gw.stderr()
        );
        token_access_lines(&self.gw).swap_remove(index)
    }

    /// A valid `client_credentials` form of `svc-jwt`, signed with the ES256 key.
    fn jwt_form(&self, extra: &[(&str, &str)]) -> String {
        assertion_form(Some("svc-jwt"), &self.es.assertion("svc-jwt"), extra)
    }

    async fn metrics(&self) -> String {
        metrics_text(&self.gw).await
    }
}

/// `bindgate_as_token_errors_total{error="<error>"}`.
fn token_errors(error: &str) -> String {
    format!("bindgate_as_token_errors_total{{error=\"{error}\"}}")
}

/// `bindgate_as_tokens_issued_total` for client_credentials and `binding`.
fn tokens_issued(binding: &str) -> String {
    format!("bindgate_as_tokens_issued_total{{grant=\"client_credentials\",binding=\"{binding}\"}}")
}

/// `bindgate_as_client_auth_failures_total{method="<method>"}`.
fn auth_failures(method: &str) -> String {
    format!("bindgate_as_client_auth_failures_total{{method=\"{method}\"}}")
}

/// `bindgate_as_requests_total` of /token with `status`.
fn token_requests(status: u16) -> String {
    format!("bindgate_as_requests_total{{endpoint=\"/token\",status=\"{status}\"}}")
}
