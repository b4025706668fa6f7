//! Refresh-token families through the real binary: the test plays the
//! identity provider (a signing key, its JWKS file, id_tokens), a public
//! mobile app exchanging them for DPoP-bound tokens and refreshing those,
//! a confidential service introspecting, and it builds every token
//! exchange, refresh, revocation and introspection request itself.
//!
//! [`FamilyWorld`] is a gateway with the embedded authorization server on
//! a SQLite store in the test's temp dir, trusting the issuer in-process,
//! with one DPoP-bound route to the recording upstream; it can be stopped
//! (SIGTERM or SIGKILL) and started again on the same store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

pub use self::broken_store::BrokenStore;
pub use self::requests::*;
use super::dpop::{DpopKey, dpop_request};
use super::token_request::*;
use super::*;

mod broken_store;
mod requests;

/// The identity provider whose id_tokens the app exchanges.
pub const IDP: &str = "https://idp.test";

/// The public client: DPoP-bound, exchanging and refreshing.
pub const APP: &str = "app";
/// Another public client, registered like [`APP`].
pub const OTHER_APP: &str = "app2";
/// A confidential client (client A's certificate) that introspects.
pub const INTROSPECTOR: &str = "svc-introspect";

/// The subject of client A's certificate.
pub const CLIENT_A_DN: &str = "CN=client-a,O=bindgate tests";

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The gateway path the tests call; the route binds by DPoP.
pub const ORDERS: &str = "/orders/1";

/// How long an access line may take to appear after its response.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped process may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The identity provider: an Ed25519 key, published in `idp.jwks.json`.
pub struct Idp {
    key: SigningKeyFile,
}

impl Idp {
    pub fn new(dir: &std::path::Path) -> Idp {
        let key = SigningKeyFile::ed25519(dir, "idp-signer");
        write_jwks(dir, "idp.jwks.json", &[signing_jwk(&key)]);
        Idp { key }
    }

    /// An id_token for [`APP`] naming `sub`, valid for five minutes.
    pub fn id_token(&self, sub: &str) -> String {
        let now = now();
        self.key
            .sign(&json!({ "iss": IDP, "aud": APP, "sub": sub, "iat": now, "exp": now + 300 }))
    }

    /// Its `[[authorization_server.subject_issuer]]` table; the JWKS path is
    /// relative to the configuration file.
    fn table() -> String {
        format!(
            "[[authorization_server.subject_issuer]]\nissuer = {IDP:?}\njwks = \"idp.jwks.json\"\naudience = [{APP:?}]\n"
        )
    }
}

/// A public client table (`auth = "none"`, DPoP only) with `lines` added.
pub fn public_client(id: &str, lines: &[&str]) -> String {
    let mut table = format!(
        "[[authorization_server.client]]\nclient_id = {id:?}\nauth = \"none\"\n\
         grant_types = [{TOKEN_EXCHANGE:?}, \"refresh_token\"]\nbinding = [\"dpop\"]\n\
         scope = {SCOPE:?}\naudience = [{API:?}]\n"
    );
    for line in lines {
        table.push_str(line);
        table.push('\n');
    }
    table
}

/// A confidential client authenticated by client A's certificate, with the
/// token exchange and refresh grants and `lines` added.
pub fn certificate_client(id: &str, lines: &[&str]) -> String {
    let mut table = format!(
        "[[authorization_server.client]]\nclient_id = {id:?}\nauth = \"tls_client_auth\"\n\
         tls_client_auth_subject_dn = {CLIENT_A_DN:?}\n\
         grant_types = [{TOKEN_EXCHANGE:?}, \"refresh_token\"]\n\
         scope = {SCOPE:?}\naudience = [{API:?}]\n"
    );
    for line in lines {
        table.push_str(line);
        table.push('\n');
    }
    table
}

/// What a test changes in the standard world.
pub struct Options {
    /// `refresh_grace`.
    pub grace: &'static str,
    /// More lines of `[authorization_server]`.
    pub authorization_server: Vec<String>,
    /// More lines of the [`APP`] client table.
    pub app: Vec<&'static str>,
    /// Client tables after the standard ones.
    pub clients: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            grace: "60s",
            authorization_server: Vec::new(),
            app: Vec::new(),
            clients: Vec::new(),
        }
    }
}

/// A gateway with the embedded authorization server, its clients and the
/// identity provider.
pub struct FamilyWorld {
    pub s: Setup,
    pub gw: GatewayProcess,
    pub idp: Idp,
    spec: ConfigSpec,
    starts: usize,
}

/// Starts the world: [`APP`], [`OTHER_APP`] and [`INTROSPECTOR`], then
/// `options.clients`; the gateway trusts the embedded issuer for [`API`].
pub async fn family_world(options: Options) -> FamilyWorld {
    let s = Setup::new().await;
    let dir = s.path();
    let signer = SigningKeyFile::ed25519(dir, "as-signer");
    let idp = Idp::new(dir);
    let mut lines = vec![
        "access_token_ttl = \"2m\"".to_string(),
        "store = \"sqlite:as.db\"".to_string(),
        "refresh_absolute_lifetime = \"30d\"".to_string(),
        "refresh_idle_timeout = \"14d\"".to_string(),
        format!("refresh_grace = {:?}", options.grace),
    ];
    lines.extend(options.authorization_server);
    let mut clients = vec![
        public_client(APP, &options.app),
        public_client(OTHER_APP, &[]),
        format!(
            "[[authorization_server.client]]\nclient_id = {INTROSPECTOR:?}\nauth = \"tls_client_auth\"\n\
             tls_client_auth_subject_dn = {CLIENT_A_DN:?}\ngrant_types = [\"client_credentials\"]\n\
             scope = {SCOPE:?}\naudience = [{API:?}]\n"
        ),
    ];
    clients.extend(options.clients);
    let authorization_server = format!(
        "[authorization_server]\nissuer = {AS_ISSUER:?}\nlisten = \"127.0.0.1:0\"\nsigning_keys = [{:?}]\n{}\n\n{}\n{}",
        signer.path.display().to_string(),
        lines.join("\n"),
        clients.join("\n"),
        Idp::table(),
    );
    let spec = ConfigSpec {
        token_head: Some(vec![format!("issuer = {AS_ISSUER:?}"), format!("audience = [{API:?}]")]),
        tail: vec![
            authorization_server,
            "[dpop]\n".to_string(),
            "[[route]]\nprefix = \"/\"\nbinding = [\"dpop\"]\n".to_string(),
        ],
        ..ConfigSpec::default()
    };
    let gw = GatewayProcess::start(&s.write_config("gateway", &spec)).await;
    FamilyWorld {
        s,
        gw,
        idp,
        spec,
        starts: 1,
    }
}

impl FamilyWorld {
    /// The SQLite file of the family store.
    pub fn store_path(&self) -> PathBuf {
        self.s.path().join("as.db")
    }

    /// A client of the authorization server, presenting `cert` if given.
    pub fn as_client(&self, cert: Option<&CertFiles>) -> TlsClient {
        self.s.client(cert, Alpn::Http1)
    }

    pub fn as_addr(&self) -> SocketAddr {
        self.gw.authorization_server.expect("an authorization server listener")
    }

    /// `POST path` with `body` as a form and `proofs` as DPoP headers, on a new connection.
    pub async fn post(&self, cert: Option<&CertFiles>, path: &str, body: String, proofs: &[&str]) -> Reply {
        send_to_as(&self.as_client(cert), &self.gw, post_request(path, body, proofs)).await
    }

    /// A token exchange of an id_token for `sub` by `client_id`, with a proof of `key` if given.
    pub async fn exchange_as(
        &self,
        client_id: &str,
        cert: Option<&CertFiles>,
        sub: &str,
        key: Option<&DpopKey>,
    ) -> Reply {
        let proof = key.map(|k| token_proof(k, None));
        let proofs: Vec<&str> = proof.iter().map(String::as_str).collect();
        self.post(
            cert,
            TOKEN_PATH,
            exchange_form(client_id, &self.idp.id_token(sub)),
            &proofs,
        )
        .await
    }

    /// [`APP`] exchanges an id_token for `sub` with a proof of `key`: a new
    /// family, and everything RFC 8693 and design.md say its first response holds.
    pub async fn exchange(&self, sub: &str, key: &DpopKey) -> Tokens {
        let reply = self.exchange_as(APP, None, sub, Some(key)).await;
        let tokens = tokens(&reply);
        assert_eq!(tokens.issued.token_type, "DPoP", "{:?}", tokens.json);
        assert_eq!(tokens.json["issued_token_type"], ACCESS_TOKEN_TYPE);
        assert_eq!(tokens.issued.header["typ"], "at+jwt");
        assert_eq!(tokens.issued.claims["sub"], sub);
        assert_eq!(tokens.issued.claims["client_id"], APP);
        assert_eq!(tokens.jkt(), Some(key.jkt().as_str()));
        assert!(!tokens.sid().is_empty());
        assert!(tokens.refresh_token.is_some(), "{:?}", tokens.json);
        tokens
    }

    /// A refresh by `client_id` from a connection with `cert`, with a proof
    /// of `key` if given and `extra` form parameters.
    pub async fn refresh_as(
        &self,
        client_id: &str,
        cert: Option<&CertFiles>,
        token: &str,
        key: Option<&DpopKey>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let proof = key.map(|k| token_proof(k, None));
        let proofs: Vec<&str> = proof.iter().map(String::as_str).collect();
        self.post(cert, TOKEN_PATH, refresh_form(client_id, token, extra), &proofs)
            .await
    }

    /// [`APP`] refreshes `token` with a proof of `key`.
    pub async fn refresh(&self, token: &str, key: &DpopKey) -> Reply {
        self.refresh_as(APP, None, token, Some(key), &[]).await
    }

    /// [`APP`] refreshes `token` with a proof of `key`, which must succeed
    /// and rotate: a new refresh token, the same family and subject.
    pub async fn refreshed(&self, token: &str, key: &DpopKey) -> Tokens {
        let tokens = tokens(&self.refresh(token, key).await);
        assert_eq!(tokens.issued.token_type, "DPoP", "{:?}", tokens.json);
        assert_eq!(tokens.jkt(), Some(key.jkt().as_str()));
        let next = tokens.refresh();
        assert_ne!(next, token, "a public client's refresh token rotates");
        tokens
    }

    /// RFC 7009 revocation of `token` by `client_id` from a connection with `cert`.
    pub async fn revoke_as(&self, client_id: &str, cert: Option<&CertFiles>, token: &str) -> Reply {
        let body = form(&[("token", token), ("client_id", client_id)]);
        self.post(cert, "/revoke", body, &[]).await
    }

    /// [`APP`] revokes `token`.
    pub async fn revoke(&self, token: &str) -> Reply {
        self.revoke_as(APP, None, token).await
    }

    /// [`INTROSPECTOR`]'s introspection of `token`: the answer, which must be a 200.
    pub async fn introspect(&self, token: &str) -> Value {
        let body = form(&[("client_id", INTROSPECTOR), ("token", token)]);
        let reply = self.post(Some(&self.s.pki.client_a), "/introspect", body, &[]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        reply.json()
    }

    /// Whether introspection says `token` is active.
    pub async fn active(&self, token: &str) -> bool {
        let answer = self.introspect(token).await;
        match answer["active"].as_bool() {
            Some(true) => true,
            Some(false) => {
                assert_eq!(
                    answer,
                    json!({ "active": false }),
                    "an inactive token says nothing more"
                );
                false
            }
            None => panic!("no active member: {answer}"),
        }
    }

    /// `GET /orders/1` at the gateway with `access_token` and a proof of `key`, from client A.
    pub async fn call(&self, access_token: &str, key: &DpopKey) -> Reply {
        let proof = key.proof("GET", ORDERS, access_token);
        let req = dpop_request(Alpn::Http1, "GET", ORDERS, access_token, &[&proof]);
        self.s
            .client_a(Alpn::Http1)
            .send(self.gw.addr, req)
            .await
            .unwrap_or_else(|e| panic!("GET {ORDERS}: {e}\n{}", self.gw.stderr()))
    }

    /// Calls the gateway and asserts it forwarded the request, with the
    /// subject in `x-auth-subject`.
    pub async fn assert_passes(&self, access_token: &str, key: &DpopKey, sub: &str) {
        let before = self.s.upstream.count();
        let reply = self.call(access_token, key).await;
        assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, self.gw.stderr());
        let seen = self.s.upstream.requests();
        assert_eq!(seen.len(), before + 1, "forwarded once");
        assert_eq!(seen[before].target, ORDERS);
        assert_eq!(seen[before].one("x-auth-subject").as_deref(), Some(sub));
    }

    /// Calls the gateway and asserts a 401 `invalid_token` with `reason`,
    /// and that the upstream received nothing.
    pub async fn assert_refused(&self, access_token: &str, key: &DpopKey, reason: &str) {
        let before = self.s.upstream.count();
        let reply = self.call(access_token, key).await;
        assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
        assert_eq!(reply.reason(), reason, "{:?}", reply.body);
        let challenge = reply.challenge().unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert_eq!(
            self.s.upstream.count(),
            before,
            "a refused request reached the upstream"
        );
    }

    pub async fn metrics(&self) -> String {
        metrics_text(&self.gw).await
    }

    /// The value of `name` (full name with labels), 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        sample(&self.metrics().await, name)
    }

    /// How many /token access lines say `reason`.
    pub fn token_reasons(&self, reason: &str) -> usize {
        token_access_lines(&self.gw)
            .iter()
            .filter(|line| field(line, "reason").as_deref() == Some(reason))
            .count()
    }

    /// Waits (bounded) until exactly `count` /token access lines say
    /// `reason` (lines are written once a response is sent), and asserts it.
    pub async fn assert_token_reasons(&self, reason: &str, count: usize) {
        eventually(LINE_TIMEOUT, async || self.token_reasons(reason) >= count).await;
        assert_eq!(
            self.token_reasons(reason),
            count,
            "reason={reason}\n{}",
            self.gw.stderr()
        );
    }

    /// Stops the process with `signal` (`TERM` or `KILL`), waits for it to
    /// exit, and starts a new one with the same configuration in the same
    /// directory, so on the same store.
    pub async fn restart(&mut self, signal: &str) {
        self.stop(signal).await;
        self.start_again().await;
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub async fn stop(&mut self, signal: &str) {
        self.gw.signal(signal);
        let exited = self.gw.wait_exit(EXIT_TIMEOUT).await;
        assert!(exited.is_some(), "bindgate did not exit on SIG{signal}");
    }

    /// Starts a new process on the same configuration and store.
    pub async fn start_again(&mut self) {
        self.starts += 1;
        // Another name, so the first process's log is kept beside the new one's.
        let config = self.s.write_config(&format!("gateway-{}", self.starts), &self.spec);
        self.gw = GatewayProcess::start(&config).await;
    }
}
