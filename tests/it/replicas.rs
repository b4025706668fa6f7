//! Two bindgate replicas sharing families on one real PostgreSQL server (a
//! private cluster of this test, on a free loopback port, stopped by PID):
//! a token rotated on one and replayed on the other is reuse; a race split
//! across both has one winner; a family revoked on one is refused by the
//! other's gateway within a second.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::dpop::{DpopKey, dpop_request};
use crate::common::postgres::postgres_server;
use crate::common::token_request::*;
use crate::common::*;

const IDP: &str = "https://idp.replicas.test";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// How late a replica's gateway may learn of another's revocation (the issue's bound).
const CROSS_REPLICA_BOUND: Duration = Duration::from_secs(1);

struct Replicas {
    s: Setup,
    a: GatewayProcess,
    b: GatewayProcess,
    idp: SigningKeyFile,
    /// Dropping it stops the server.
    postgres: Option<crate::common::postgres::PostgresServer>,
}

async fn replicas(grace: &str) -> Replicas {
    let postgres = postgres_server();
    let url = postgres.database("families");
    let s = Setup::new().await;
    let dir = s.path();
    let signer = SigningKeyFile::ed25519(dir, "as-signer");
    let idp = SigningKeyFile::ed25519(dir, "idp");
    let idp_jwks = write_jwks(dir, "idp.jwks.json", &[signing_jwk(&idp)]);
    let mobile = Client::public("mobile").grant_types(&format!("[{TOKEN_EXCHANGE:?}, \"refresh_token\"]"));
    let as_lines = [format!("store = {url:?}"), format!("refresh_grace = {grace:?}")];
    let spec = ConfigSpec {
        server: vec!["client_auth = \"optional\"".into()],
        tail: vec![
            as_table_at(AS_ISSUER, "127.0.0.1:0", &[&signer], &as_lines, &[mobile]),
            format!(
                "[[authorization_server.subject_issuer]]\nissuer = {IDP:?}\njwks = {:?}\naudience = [\"mobile\"]\n",
                idp_jwks.display().to_string()
            ),
            "[dpop]\n".to_string(),
            trust_the_issuer(dir, AS_ISSUER, &signer),
            "[[route]]\nprefix = \"/\"\nbinding = [\"dpop\"]\n".to_string(),
        ],
        ..ConfigSpec::default()
    };
    let a = GatewayProcess::start(&s.write_config("replica-a", &spec)).await;
    let b = GatewayProcess::start(&s.write_config("replica-b", &spec)).await;
    Replicas {
        s,
        a,
        b,
        idp,
        postgres: Some(postgres),
    }
}

/// A token response's access and refresh tokens.
struct Tokens {
    access: String,
    refresh: String,
}

impl Replicas {
    fn device(&self) -> TlsClient {
        self.s.client(None, Alpn::H2)
    }

    async fn post(&self, on: &GatewayProcess, body: String, key: &DpopKey) -> Reply {
        let proof = token_proof(key, None);
        send_to_as(&self.device(), on, token_request(Alpn::H2, body, &[&proof])).await
    }

    async fn exchange(&self, on: &GatewayProcess, sub: &str, key: &DpopKey) -> Tokens {
        let id_token = self.idp.sign(&json!({
            "iss": IDP, "aud": "mobile", "sub": sub, "iat": now(), "exp": now() + 300,
        }));
        let body = form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", "mobile"),
            ("subject_token", &id_token),
            ("subject_token_type", ID_TOKEN),
        ]);
        tokens(&self.post(on, body, key).await)
    }

    async fn refresh(&self, on: &GatewayProcess, refresh_token: &str, key: &DpopKey) -> Reply {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "mobile"),
            ("refresh_token", refresh_token),
        ]);
        self.post(on, body, key).await
    }

    async fn call(&self, on: &GatewayProcess, access: &str, key: &DpopKey) -> Reply {
        let proof = key.proof("GET", "/orders/7", access);
        self.device()
            .send(on.addr, dpop_request(Alpn::H2, "GET", "/orders/7", access, &[&proof]))
            .await
            .unwrap()
    }
}

#[track_caller]
fn tokens(reply: &Reply) -> Tokens {
    assert_eq!(reply.status, 200, "{:?}", String::from_utf8_lossy(&reply.body));
    let json: Value = reply.json();
    Tokens {
        access: json["access_token"].as_str().unwrap().to_string(),
        refresh: json["refresh_token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn a_token_rotated_on_one_replica_and_replayed_on_the_other_revokes_the_family_on_both() {
    let r = replicas("0s").await;
    let key = DpopKey::new();
    let first = r.exchange(&r.a, "alice", &key).await;
    let other_key = DpopKey::new();
    let other_device = r.exchange(&r.b, "alice", &other_key).await;
    let second = tokens(&r.refresh(&r.a, &first.refresh, &key).await);
    // The new token works on the other replica: one store.
    let third = tokens(&r.refresh(&r.b, &second.refresh, &key).await);
    assert_eq!(r.call(&r.a, &third.access, &key).await.status, 200);
    assert_eq!(r.call(&r.b, &third.access, &key).await.status, 200);

    // The first token, rotated away on A, replayed on B.
    let replay = r.refresh(&r.b, &first.refresh, &key).await;
    assert_token_error(&replay, 400, "invalid_grant");
    assert_token_error(&r.refresh(&r.a, &third.refresh, &key).await, 400, "invalid_grant");
    // B revoked it: its own gateway at once; A's through the store.
    let on_b = r.call(&r.b, &third.access, &key).await;
    assert_eq!(
        (on_b.status.as_u16(), on_b.reason()),
        (401, "token_revoked".to_string())
    );
    let revoked_at = Instant::now();
    let mut on_a = r.call(&r.a, &third.access, &key).await;
    while on_a.status == 200 && revoked_at.elapsed() < CROSS_REPLICA_BOUND * 3 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        on_a = r.call(&r.a, &third.access, &key).await;
    }
    let learned_after = revoked_at.elapsed();
    assert_eq!(
        (on_a.status.as_u16(), on_a.reason()),
        (401, "token_revoked".to_string())
    );
    assert!(
        learned_after <= CROSS_REPLICA_BOUND,
        "replica A refused the revoked family only after {learned_after:?}"
    );
    // The other device's family, on either replica, is untouched.
    for replica in [&r.a, &r.b] {
        assert_eq!(r.call(replica, &other_device.access, &other_key).await.status, 200);
    }
    tokens(&r.refresh(&r.a, &other_device.refresh, &other_key).await);
    let a_metrics = metrics_text(&r.a).await;
    let b_metrics = metrics_text(&r.b).await;
    assert_eq!(
        sample(&b_metrics, "bindgate_as_refresh_reuse_total"),
        1.0,
        "{b_metrics}"
    );
    assert_eq!(
        sample(&a_metrics, "bindgate_as_refresh_reuse_total"),
        0.0,
        "{a_metrics}"
    );
}

#[tokio::test]
async fn another_devices_family_survives_a_reuse_on_either_replica() {
    let r = replicas("0s").await;
    let (key, other_key) = (DpopKey::new(), DpopKey::new());
    let stolen = r.exchange(&r.a, "bob", &key).await;
    let other = r.exchange(&r.b, "bob", &other_key).await;
    let next = tokens(&r.refresh(&r.a, &stolen.refresh, &key).await);
    assert_token_error(&r.refresh(&r.b, &stolen.refresh, &key).await, 400, "invalid_grant");
    assert_token_error(&r.refresh(&r.a, &next.refresh, &key).await, 400, "invalid_grant");
    for replica in [&r.a, &r.b] {
        assert_eq!(r.call(replica, &other.access, &other_key).await.status, 200);
    }
    let refreshed = tokens(&r.refresh(&r.a, &other.refresh, &other_key).await);
    assert_eq!(r.call(&r.b, &refreshed.access, &other_key).await.status, 200);
}

#[tokio::test]
async fn a_race_split_across_two_replicas_has_exactly_one_winner() {
    let r = replicas("0s").await;
    for round in 0..5 {
        let key = DpopKey::new();
        let start = r
            .exchange(if round % 2 == 0 { &r.a } else { &r.b }, "carol", &key)
            .await;
        let racers = (0..20).map(|i| {
            let on = if i % 2 == 0 { &r.a } else { &r.b };
            r.refresh(on, &start.refresh, &key)
        });
        let replies = futures_join_all(racers).await;
        let winners = replies.iter().filter(|reply| reply.status == 200).count();
        assert_eq!(
            winners,
            1,
            "round {round}: {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for reply in replies.iter().filter(|reply| reply.status != 200) {
            assert_token_error(reply, 400, "invalid_grant");
        }
    }
}

/// Polls every future to completion concurrently, in order.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("polled to completion")).collect()
}

#[tokio::test]
async fn a_store_that_is_down_answers_503_and_no_token_or_revocation_is_confirmed() {
    let mut r = replicas("60s").await;
    let key = DpopKey::new();
    let tokens_before = r.exchange(&r.a, "dave", &key).await;
    drop(r.postgres.take());

    let refresh = r.refresh(&r.a, &tokens_before.refresh, &key).await;
    assert_token_error(&refresh, 503, "temporarily_unavailable");
    let id_token = r.idp.sign(&json!({
        "iss": IDP, "aud": "mobile", "sub": "dave", "iat": now(), "exp": now() + 300,
    }));
    let exchange = form(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("client_id", "mobile"),
        ("subject_token", &id_token),
        ("subject_token_type", ID_TOKEN),
    ]);
    assert_token_error(&r.post(&r.b, exchange, &key).await, 503, "temporarily_unavailable");
    let revoke = request(
        Alpn::H2,
        "POST",
        "/revoke",
        None,
        form(&[("token", &tokens_before.refresh), ("client_id", "mobile")]),
    );
    let mut revoke = revoke;
    revoke
        .headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let reply = send_to_as(&r.device(), &r.a, revoke).await;
    assert_token_error(&reply, 503, "temporarily_unavailable");
    let metrics = metrics_text(&r.a).await;
    assert!(
        sample(&metrics, "bindgate_as_store_errors_total{error=\"unavailable\"}") >= 2.0,
        "{metrics}"
    );
    // The access token already issued still works: the gateway needs no store.
    assert_eq!(r.call(&r.a, &tokens_before.access, &key).await.status, 200);
}
