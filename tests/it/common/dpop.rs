//! A DPoP client for tests: a key pair, proofs with exactly the header and
//! claims a test wants, and requests carrying `Authorization: DPoP`.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Alpn, ConfigSpec, GatewayProcess, Reply, Setup, TestIssuer, now, request, with};

/// The URI base the test clients address: `Host: localhost` over HTTPS.
pub const BASE: &str = "https://localhost";

pub struct DpopKey {
    signer: TestIssuer,
}

impl DpopKey {
    pub fn new() -> DpopKey {
        DpopKey {
            signer: TestIssuer::new("unused"),
        }
    }

    /// The public JWK as a proof carries it: required members only.
    pub fn jwk(&self) -> Value {
        let full = self.signer.jwk();
        json!({"kty": full["kty"], "crv": full["crv"], "x": full["x"], "y": full["y"]})
    }

    /// RFC 7638 thumbprint: what a token's `cnf.jkt` names.
    pub fn jkt(&self) -> String {
        jkt_of(&self.jwk())
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }

    /// Claims of a valid proof for `method` on `path` (under [`BASE`]) with `token`.
    pub fn claims(&self, method: &str, path: &str, token: &str) -> Value {
        json!({
            "jti": fresh_jti(),
            "htm": method,
            "htu": format!("{BASE}{path}"),
            "iat": now(),
            "ath": ath(token),
        })
    }

    /// Signs exactly `header` and `claims`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.signer.sign(header, claims)
    }

    /// A valid proof.
    pub fn proof(&self, method: &str, path: &str, token: &str) -> String {
        self.sign(&self.header(), &self.claims(method, path, token))
    }
}

/// RFC 7638 SHA-256 thumbprint of an EC or OKP public JWK.
pub fn jkt_of(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => json!({"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}),
        Some("OKP") => json!({"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}),
        other => panic!("no thumbprint for kty {other:?}"),
    };
    // serde_json writes object members sorted (no preserve_order) and compact: RFC 7638's form.
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn fresh_jti() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)) + &now().to_string()
}

/// A token bound to the DPoP key `jkt`, and also to a certificate when `x5t` is given.
pub fn dpop_token(s: &Setup, jkt: &str, x5t: Option<&str>) -> String {
    let cnf = match x5t {
        Some(x5t) => json!({"jkt": jkt, "x5t#S256": x5t}),
        None => json!({"jkt": jkt}),
    };
    let claims = with(s.issuer.claims(""), "cnf", cnf);
    s.issuer.sign(&s.issuer.header(), &claims)
}

/// `method path` with `Authorization: DPoP token` and one `DPoP` header per proof.
pub fn dpop_request(alpn: Alpn, method: &str, path: &str, token: &str, proofs: &[&str]) -> Request<Full<Bytes>> {
    let mut req = request(alpn, method, path, None, Bytes::new());
    let headers = req.headers_mut();
    headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
    for proof in proofs {
        headers.append("dpop", proof.parse().unwrap());
    }
    req
}

/// Sends a DPoP request from client A's certificate and returns the reply.
pub async fn send_dpop(
    s: &Setup,
    gw: &GatewayProcess,
    alpn: Alpn,
    (method, path): (&str, &str),
    token: &str,
    proofs: &[&str],
) -> Reply {
    s.client_a(alpn)
        .send(gw.addr, dpop_request(alpn, method, path, token, proofs))
        .await
        .unwrap()
}

/// A configuration with `[dpop]` (extra `lines`) and one route `/` binding by `methods`.
pub fn dpop_spec(methods: &str, lines: &[String]) -> ConfigSpec {
    ConfigSpec {
        tail: vec![format!(
            "[dpop]\n{}\n\n[[route]]\nprefix = \"/\"\nbinding = {methods}\n",
            lines.join("\n")
        )],
        ..ConfigSpec::default()
    }
}
