//! DPoP (RFC 9449) through the real binary: valid proofs, every item of the
//! section 4.3 checklist violated in turn, the scheme rules of section 7,
//! both challenges, nonces and report-only routes.

use jsonwebtoken::EncodingKey;
use serde_json::json;

use crate::common::dpop::{BASE, DpopKey, ath, dpop_request, dpop_spec, dpop_token, send_dpop};
use crate::common::*;

/// A route accepting both bindings; extra lines go into `[dpop]`.
fn both(dpop: &[&str]) -> ConfigSpec {
    let lines: Vec<String> = dpop.iter().map(|l| l.to_string()).collect();
    dpop_spec(r#"["mtls", "dpop"]"#, &lines)
}

struct World {
    s: Setup,
    gw: GatewayProcess,
    key: DpopKey,
    token: String,
}

async fn world(spec: ConfigSpec) -> World {
    let s = Setup::new().await;
    let gw = s.start(&spec).await;
    let key = DpopKey::new();
    let token = dpop_token(&s, &key.jkt(), None);
    World { s, gw, key, token }
}

impl World {
    async fn send(&self, alpn: Alpn, method: &str, path: &str, token: &str, proofs: &[&str]) -> Reply {
        send_dpop(&self.s, &self.gw, alpn, (method, path), token, proofs).await
    }

    /// Sends `proof` for GET /r with the world's token; expects a refusal with `reason`.
    async fn refused(&self, proof: &str, reason: &str) -> Reply {
        let reply = self.send(Alpn::Http1, "GET", "/r", &self.token, &[proof]).await;
        assert_eq!(reply.status, 401, "{reason}: {:?} {}", reply.headers, self.gw.stderr());
        assert_eq!(reply.reason(), reason);
        reply
    }
}

fn proof_challenge(reply: &Reply) -> String {
    let challenge = reply.challenge().unwrap_or_default();
    assert!(
        challenge.starts_with("DPoP realm=\"bindgate\", error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("algs=\"ES256 ES384 EdDSA PS256 RS256\""),
        "{challenge}"
    );
    challenge
}

#[tokio::test]
async fn a_valid_proof_is_accepted_over_http1_and_h2() {
    let w = world(both(&[])).await;
    for alpn in [Alpn::Http1, Alpn::H2] {
        let proof = w.key.proof("POST", "/orders/7", &w.token);
        let reply = w.send(alpn, "POST", "/orders/7", &w.token, &[&proof]).await;
        assert_eq!(reply.status, 200, "{alpn:?}: {:?} {}", reply.body, w.gw.stderr());
    }
    let seen = w.s.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["authorization"], format!("DPoP {}", w.token).as_str());
    assert_eq!(seen[0].headers["x-auth-subject"], "alice");
    let (_, metrics) = admin_get(w.gw.admin.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "bindgate_sender_checks_passed_total{route=\"/\",binding=\"dpop\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_public_client_without_a_certificate_uses_dpop() {
    let spec = ConfigSpec {
        server: vec!["client_auth = \"optional\"".into()],
        tail: vec!["[[route]]\nprefix = \"/\"\nbinding = [\"dpop\"]\n".into()],
        ..ConfigSpec::default()
    };
    let w = world(spec).await;
    let client = w.s.client(None, Alpn::Http1);
    let proof = w.key.proof("GET", "/r", &w.token);
    let reply = client
        .send(w.gw.addr, dpop_request(Alpn::Http1, "GET", "/r", &w.token, &[&proof]))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", w.gw.stderr());
    // An mTLS-bound token is not what this route accepts.
    let reply =
        w.s.client_a(Alpn::Http1)
            .send(w.gw.addr, get(Alpn::Http1, "/r", Some(&w.s.token_a())))
            .await
            .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "binding_method_not_accepted".into())
    );
    // Without any credential, only the DPoP challenge is offered.
    let reply = client.send(w.gw.addr, get(Alpn::Http1, "/r", None)).await.unwrap();
    let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(
        challenges[0]
            .to_str()
            .unwrap()
            .starts_with("DPoP realm=\"bindgate\", algs=")
    );
    assert_eq!(w.s.upstream.count(), 1);
}

#[tokio::test]
async fn every_checklist_item_is_enforced() {
    let w = world(both(&[])).await;
    let k = &w.key;
    let h = k.header();
    let c = || k.claims("GET", "/r", &w.token);
    let another = DpopKey::new();
    let hs256 = {
        let header = with(h.clone(), "alg", json!("HS256"));
        let input = format!("{}.{}", base64_url(&header.to_string()), base64_url(&c().to_string()));
        let key = EncodingKey::from_secret(b"public bytes as a secret");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
        format!("{input}.{sig}")
    };
    let unsigned = format!(
        "{}.{}.",
        base64_url(&with(h.clone(), "alg", json!("none")).to_string()),
        base64_url(&c().to_string())
    );
    let mut private_jwk = k.jwk();
    private_jwk["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let cases: Vec<(&str, String)> = vec![
        ("dpop_typ", k.sign(&with(h.clone(), "typ", json!("JWT")), &c())),
        ("dpop_typ", k.sign(&without(h.clone(), "typ"), &c())),
        ("dpop_alg_not_allowed", unsigned),
        ("dpop_alg_not_allowed", hs256),
        ("dpop_jwk_private", k.sign(&with(h.clone(), "jwk", private_jwk), &c())),
        ("dpop_jwk_missing", k.sign(&without(h.clone(), "jwk"), &c())),
        ("dpop_htm_mismatch", k.sign(&h, &with(c(), "htm", json!("POST")))),
        (
            "dpop_htu_mismatch",
            k.sign(&h, &with(c(), "htu", json!(format!("{BASE}/other")))),
        ),
        (
            "dpop_htu_mismatch",
            k.sign(&h, &with(c(), "htu", json!("https://evil.example/r"))),
        ),
        (
            "dpop_htu_mismatch",
            k.sign(&h, &with(c(), "htu", json!(format!("{BASE}/r?x=1")))),
        ),
        (
            "dpop_iat_out_of_window",
            k.sign(&h, &with(c(), "iat", json!(now() - 120))),
        ),
        (
            "dpop_iat_out_of_window",
            k.sign(&h, &with(c(), "iat", json!(now() + 120))),
        ),
        ("dpop_ath_missing", k.sign(&h, &without(c(), "ath"))),
        (
            "dpop_ath_mismatch",
            k.sign(&h, &with(c(), "ath", json!(ath("another token")))),
        ),
        (
            "dpop_claims_malformed",
            k.sign(&h, &with(c(), "iat", json!("1700000000"))),
        ),
        ("dpop_bad_signature", another.sign(&h, &c())),
        ("dpop_malformed", "not-a-jwt".to_string()),
    ];
    for (reason, proof) in &cases {
        let reply = w.refused(proof, reason).await;
        proof_challenge(&reply);
    }
    // The proof's own key is fine, but the token is bound to another one.
    let proof = another.proof("GET", "/r", &w.token);
    let reply = w.refused(&proof, "jkt_mismatch").await;
    let challenge = reply.challenge().unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"bindgate\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(w.s.upstream.count(), 0, "a refused request reached the upstream");
}

#[tokio::test]
async fn proofs_are_single_use_and_single_header() {
    let w = world(both(&[])).await;
    let proof = w.key.proof("GET", "/r", &w.token);
    let ok = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&proof]).await;
    assert_eq!(ok.status, 200);
    // The same proof again, even over h2 on a new connection.
    let again = w.send(Alpn::H2, "GET", "/r", &w.token, &[&proof]).await;
    assert_eq!((again.status.as_u16(), again.reason()), (401, "dpop_replayed".into()));
    proof_challenge(&again);

    let one = w.key.proof("GET", "/r", &w.token);
    let two = w.key.proof("GET", "/r", &w.token);
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&one, &two]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "dpop_proof_duplicate".into())
    );
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "dpop_proof_missing".into())
    );
    assert_eq!(w.s.upstream.count(), 1);
}

#[tokio::test]
async fn scheme_rules_of_section_7() {
    let w = world(both(&[])).await;
    let client = w.s.client_a(Alpn::Http1);
    // A DPoP-bound token sent as a bearer token.
    let reply = client
        .send(w.gw.addr, get(Alpn::Http1, "/r", Some(&w.token)))
        .await
        .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "dpop_token_with_bearer".into())
    );
    assert!(reply.challenge().unwrap().starts_with("DPoP realm="));
    // A proof with a certificate-bound token, under either scheme.
    let bearer_token = w.s.token_a();
    let proof = w.key.proof("GET", "/r", &bearer_token);
    let reply = w.send(Alpn::Http1, "GET", "/r", &bearer_token, &[&proof]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "token_not_dpop_bound".into())
    );
    let mut req = get(Alpn::Http1, "/r", Some(&bearer_token));
    req.headers_mut().insert("dpop", proof.parse().unwrap());
    let reply = client.send(w.gw.addr, req).await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "token_not_dpop_bound".into())
    );
    // No credential: both challenges.
    let reply = client.send(w.gw.addr, get(Alpn::Http1, "/r", None)).await.unwrap();
    let challenges: Vec<String> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        challenges,
        vec![
            "Bearer realm=\"bindgate\"".to_string(),
            "DPoP realm=\"bindgate\", algs=\"ES256 ES384 EdDSA PS256 RS256\"".to_string()
        ]
    );
    // The certificate-bound token alone still works on this route.
    let reply = client
        .send(w.gw.addr, get(Alpn::Http1, "/r", Some(&bearer_token)))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(w.s.upstream.count(), 1);
}

#[tokio::test]
async fn a_token_bound_both_ways_needs_both_proofs() {
    let w = world(both(&[])).await;
    let token = dpop_token(&w.s, &w.key.jkt(), Some(&w.s.pki.client_a.x5t()));
    let proof = w.key.proof("GET", "/r", &token);
    let ok = w.send(Alpn::Http1, "GET", "/r", &token, &[&proof]).await;
    assert_eq!(ok.status, 200, "{}", w.gw.stderr());
    let proof = w.key.proof("GET", "/r", &token);
    let reply =
        w.s.client_b(Alpn::Http1)
            .send(w.gw.addr, dpop_request(Alpn::Http1, "GET", "/r", &token, &[&proof]))
            .await
            .unwrap();
    assert_eq!((reply.status.as_u16(), reply.reason()), (401, "cnf_mismatch".into()));
    assert_eq!(w.s.upstream.count(), 1);
}

#[tokio::test]
async fn a_dpop_token_on_an_mtls_only_route_is_refused() {
    let w = world(ConfigSpec::default()).await;
    let proof = w.key.proof("GET", "/r", &w.token);
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&proof]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (401, "scheme_unsupported".into())
    );
    assert_eq!(reply.challenge().unwrap(), "Bearer realm=\"bindgate\"");
    assert_eq!(w.s.upstream.count(), 0);
}

#[tokio::test]
async fn the_public_url_decides_htu_behind_a_load_balancer() {
    let w = world(both(&["public_url = \"https://api.example.com:8443/v1/\""])).await;
    let mut claims = w.key.claims("GET", "/r", &w.token);
    claims["htu"] = json!("https://API.example.com:8443/v1/r");
    let reply = w
        .send(
            Alpn::Http1,
            "GET",
            "/r?page=2",
            &w.token,
            &[&w.key.sign(&w.key.header(), &claims)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", w.gw.stderr());
    // The Host the gateway saw is no longer what counts.
    w.refused(&w.key.proof("GET", "/r", &w.token), "dpop_htu_mismatch")
        .await;
}

#[tokio::test]
async fn server_nonces_are_demanded_then_accepted() {
    let w = world(both(&["require_nonce = true"])).await;
    let proof = w.key.proof("GET", "/r", &w.token);
    let first = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&proof]).await;
    assert_eq!((first.status.as_u16(), first.reason()), (401, "use_dpop_nonce".into()));
    let challenge = first.challenge().unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"bindgate\", error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce header");

    let with_nonce = w.key.sign(
        &w.key.header(),
        &with(w.key.claims("GET", "/r", &w.token), "nonce", json!(nonce)),
    );
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&with_nonce]).await;
    assert_eq!(reply.status, 200, "{}", w.gw.stderr());
    let forged = w.key.sign(
        &w.key.header(),
        &with(
            w.key.claims("GET", "/r", &w.token),
            "nonce",
            json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    );
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&forged]).await;
    assert_eq!((reply.status.as_u16(), reply.reason()), (401, "use_dpop_nonce".into()));
    assert_eq!(w.s.upstream.count(), 1);
}

#[tokio::test]
async fn report_mode_forwards_a_bad_proof_and_counts_it() {
    let spec = ConfigSpec {
        tail: vec!["[[route]]\nprefix = \"/\"\nbinding = { methods = [\"dpop\"], mode = \"report\" }\n".into()],
        ..ConfigSpec::default()
    };
    let w = world(spec).await;
    let stale = w.key.sign(
        &w.key.header(),
        &with(w.key.claims("GET", "/r", &w.token), "iat", json!(now() - 600)),
    );
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&stale]).await;
    assert_eq!(reply.status, 200, "{}", w.gw.stderr());
    assert_eq!(w.s.upstream.count(), 1);
    let (_, metrics) = admin_get(w.gw.admin.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "bindgate_binding_report_only_total{route=\"/\",reason=\"dpop_iat_out_of_window\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_reload_forgets_neither_used_proofs_nor_nonces() {
    let w = world(both(&["require_nonce = true"])).await;
    let first = w
        .send(
            Alpn::Http1,
            "GET",
            "/r",
            &w.token,
            &[&w.key.proof("GET", "/r", &w.token)],
        )
        .await;
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce header");
    let claims = with(w.key.claims("GET", "/r", &w.token), "nonce", json!(nonce));
    let proof = w.key.sign(&w.key.header(), &claims);
    assert_eq!(w.send(Alpn::Http1, "GET", "/r", &w.token, &[&proof]).await.status, 200);

    w.gw.signal("HUP");
    assert!(
        w.gw.wait_for_log("configuration reloaded", std::time::Duration::from_secs(10))
            .await,
        "{}",
        w.gw.stderr()
    );
    let replayed = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&proof]).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.reason()),
        (401, "dpop_replayed".into())
    );
    let claims = with(w.key.claims("GET", "/r", &w.token), "nonce", json!(nonce));
    let fresh = w.key.sign(&w.key.header(), &claims);
    let reply = w.send(Alpn::Http1, "GET", "/r", &w.token, &[&fresh]).await;
    assert_eq!(
        reply.status,
        200,
        "the nonce from before the reload was refused: {}",
        w.gw.stderr()
    );
    assert_eq!(w.s.upstream.count(), 2);
}
