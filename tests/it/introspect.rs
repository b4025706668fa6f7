//! `POST /introspect` (RFC 7662) through the real binary: an authenticated
//! confidential client learns what a live token of this issuer says;
//! anything else is `active: false`; a caller that does not authenticate,
//! or a public client, gets `invalid_client`.

use serde_json::{Value, json};

use crate::common::token_request::*;
use crate::common::*;

const INTROSPECT_PATH: &str = "/introspect";

struct World {
    s: Setup,
    gw: GatewayProcess,
    jwt_key: AssertionKey,
    /// The authorization server's signing key, for forging near-misses.
    signer: SigningKeyFile,
}

async fn world() -> World {
    let s = Setup::new().await;
    let dir = s.path().to_path_buf();
    let signer = SigningKeyFile::ed25519(&dir, "as-signer");
    let jwt_key = AssertionKey::es256(&dir, "es-1");
    let jwks = write_jwks(&dir, "svc-jwt.jwks.json", &[jwt_key.jwk()]);
    let clients = [
        Client::tls_subject_dn("svc-tls", "CN=client-a,O=bindgate tests"),
        Client::private_key_jwt("svc-jwt", &jwks),
    ];
    // The token exchange grant needs an identity provider to exchange from.
    let idp_jwks = write_jwks(&dir, "idp.jwks.json", &[jwt_key.jwk()]);
    let public = format!(
        "[[authorization_server.client]]\nclient_id = \"mobile\"\nauth = \"none\"\n\
         grant_types = [\"urn:ietf:params:oauth:grant-type:token-exchange\"]\naudience = [{API:?}]\n\
         [[authorization_server.subject_issuer]]\nissuer = \"https://login.example\"\n\
         jwks = {:?}\naudience = [\"mobile\"]\n",
        idp_jwks.display().to_string()
    );
    let spec = ConfigSpec {
        tail: vec![as_table_at(AS_ISSUER, "127.0.0.1:0", &[&signer], &[], &clients), public],
        ..ConfigSpec::default()
    };
    let gw = s.start(&spec).await;
    World { s, gw, jwt_key, signer }
}

impl World {
    /// A certificate-bound token for `svc-tls`, from the token endpoint.
    async fn token(&self) -> Issued {
        let client = self.s.client(Some(&self.s.pki.client_a), Alpn::Http1);
        let req = token_request(
            Alpn::Http1,
            certificate_form("svc-tls", &[("scope", "orders:read")]),
            &[],
        );
        assert_issued(&send_to_as(&client, &self.gw, req).await)
    }

    /// Introspects `form` from a connection with `cert`.
    async fn introspect(&self, cert: Option<&CertFiles>, alpn: Alpn, form: String) -> Reply {
        let mut req = request(alpn, "POST", INTROSPECT_PATH, None, form);
        req.headers_mut()
            .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        send_to_as(&self.s.client(cert, alpn), &self.gw, req).await
    }

    /// Introspects `token` as `svc-tls`, expecting an answer; returns it.
    async fn answer(&self, token: &str) -> Value {
        let reply = self
            .introspect(
                Some(&self.s.pki.client_a),
                Alpn::Http1,
                certificate_form("svc-tls", &[("token", token)]),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(reply.header("content-type").as_deref(), Some("application/json"));
        reply.json()
    }
}

#[tokio::test]
async fn a_live_token_is_active_with_what_it_says_to_each_confidential_client() {
    let w = world().await;
    let issued = w.token().await;
    let expected = json!({
        "active": true,
        "iss": AS_ISSUER,
        "sub": "svc-tls",
        "aud": issued.claims["aud"],
        "client_id": "svc-tls",
        "iat": issued.claims["iat"],
        "exp": issued.claims["exp"],
        "jti": issued.claims["jti"],
        "scope": "orders:read",
        "token_type": "Bearer",
        "cnf": { "x5t#S256": w.s.pki.client_a.x5t() },
    });
    assert_eq!(w.answer(&issued.access_token).await, expected);

    // Another client, another method, over h2: the same answer.
    let form = assertion_form(
        Some("svc-jwt"),
        &w.jwt_key.assertion("svc-jwt"),
        &[("token", &issued.access_token), ("token_type_hint", "access_token")],
    );
    let reply = w.introspect(None, Alpn::H2, form).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json(), expected);

    let lines = w.gw.stderr();
    let line = lines
        .lines()
        .rfind(|l| l.contains("path=/introspect"))
        .unwrap_or_else(|| panic!("no access line: {lines}"));
    assert_eq!(field(line, "client_id").as_deref(), Some("svc-jwt"), "{line}");
    assert!(!lines.contains(&issued.access_token), "a token in the log");
}

#[tokio::test]
async fn anything_but_a_live_token_of_this_issuer_is_inactive_without_a_reason() {
    let w = world().await;
    let issued = w.token().await;
    let (header, claims) = decode_jwt(&issued.access_token);
    let resign = |key: &SigningKeyFile, changes: Value| {
        let mut claims = claims.clone();
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        key.sign(&claims)
    };
    let stranger = SigningKeyFile::ed25519(w.s.path(), "stranger");
    let mut tampered = issued.access_token.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let now = now();
    for (what, token) in [
        (
            "expired",
            resign(&w.signer, json!({ "iat": now - 600, "exp": now - 1 })),
        ),
        (
            "another issuer",
            resign(&w.signer, json!({ "iss": "https://other.example" })),
        ),
        ("another key", resign(&stranger, json!({}))),
        ("tampered signature", tampered),
        ("not a token", "not-a-token".to_string()),
        (
            "a token of the gateway's other issuer",
            w.s.issuer.sign(&w.s.issuer.header(), &claims),
        ),
    ] {
        assert_eq!(w.answer(&token).await, json!({ "active": false }), "{what}");
    }
    assert_eq!(header["typ"], "at+jwt");
    // Still active after all that: the answers were about the others.
    assert_eq!(w.answer(&issued.access_token).await["active"], true);
}

#[tokio::test]
async fn introspection_needs_an_authenticated_confidential_client_and_a_token() {
    let w = world().await;
    let issued = w.token().await;
    let token = issued.access_token.as_str();
    // No certificate for a tls_client_auth client, or client B's.
    for cert in [None, Some(&w.s.pki.client_b)] {
        let reply = w
            .introspect(cert, Alpn::Http1, certificate_form("svc-tls", &[("token", token)]))
            .await;
        assert_token_error(&reply, 401, "invalid_client");
    }
    // A public client names itself; it cannot prove anything.
    let reply = w
        .introspect(None, Alpn::Http1, form(&[("client_id", "mobile"), ("token", token)]))
        .await;
    assert_token_error(&reply, 401, "invalid_client");
    assert!(w.gw.stderr().contains("reason=\"public_client\""), "{}", w.gw.stderr());
    // Authenticated, but nothing to introspect.
    let reply = w
        .introspect(Some(&w.s.pki.client_a), Alpn::Http1, certificate_form("svc-tls", &[]))
        .await;
    assert_token_error(&reply, 400, "invalid_request");
    // Only POST.
    let reply = send_to_as(
        &w.s.client(Some(&w.s.pki.client_a), Alpn::Http1),
        &w.gw,
        get(Alpn::Http1, INTROSPECT_PATH, None),
    )
    .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
    let metrics = metrics_text(&w.gw).await;
    assert_eq!(
        sample(&metrics, "bindgate_as_client_auth_failures_total{method=\"none\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "bindgate_as_requests_total{endpoint=\"/introspect\",status=\"401\"}"
        ),
        3.0,
        "{metrics}"
    );
}
