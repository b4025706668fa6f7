//! `bindgate demo`: the gateway's main job, shown end to end on loopback.
//! Starts an echo upstream and the gateway from the shipped configuration.
//! With an authorization server configured, clients get their tokens from
//! it (`issued.rs`): a service's certificate-bound token works for it and
//! not for another client, and an app's DPoP-bound token works with a fresh
//! proof and not with a replayed one. Without one, the same scenes run on
//! tokens minted from the dev issuer key.

mod client;
mod family;
mod issued;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use self::client::{DemoClient, Reply};
use super::mint::{MintRequest, mint};
use crate::config::Config;

/// Why the demo could not run or did not show what it should.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Setup(String),
    #[error("demo step failed: {0}")]
    Unexpected(String),
}

fn setup(e: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(e.to_string())
}

/// Runs the demo. With `keep_running`, serves until Ctrl-C afterwards.
pub async fn run(config_path: &Path, certs: &Path, keep_running: bool) -> Result<(), DemoError> {
    let demo = Demo::start(config_path, certs).await?;
    println!("bindgate demo");
    println!("  echo upstream   http://{}", demo.upstream_addr);
    println!(
        "  gateway         https://{}  (keys from {})",
        demo.gateway_addr, demo.keys_from
    );
    if let Some(as_addr) = demo.authorization_server {
        println!("  token endpoint  https://{as_addr}/token");
    }
    println!();

    let accepts_dpop = demo.live.current().gateway.routes.find("/hello").methods.dpop;
    match demo.authorization_server {
        Some(as_addr) => {
            demo.issued_scenes(as_addr, accepts_dpop).await?;
            demo.print_try_it_issued(as_addr, keep_running);
        }
        None => {
            demo.certificate_bound_scenes().await?;
            if accepts_dpop && demo.certs.join("dpop-key.pem").exists() {
                demo.dpop_scenes().await?;
            }
            demo.print_try_it(keep_running, accepts_dpop);
        }
    }

    if keep_running {
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = demo.stop.send(());
    let _ = demo.gateway.await;
    Ok(())
}

/// A gateway serving the shipped configuration in front of an echo upstream.
struct Demo {
    certs: std::path::PathBuf,
    upstream_addr: std::net::SocketAddr,
    gateway_addr: std::net::SocketAddr,
    /// The authorization server's listener, when the configuration has one.
    authorization_server: Option<std::net::SocketAddr>,
    keys_from: String,
    iss: String,
    aud: String,
    live: Arc<crate::app::live::Live>,
    stop: tokio::sync::oneshot::Sender<()>,
    gateway: tokio::task::JoinHandle<()>,
}

impl Demo {
    async fn start(config_path: &Path, certs: &Path) -> Result<Demo, DemoError> {
        let mut config = Config::load(config_path).map_err(setup)?;
        let upstream_listener = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
        let upstream_addr = upstream_listener.local_addr().map_err(setup)?;
        tokio::spawn(echo_upstream(upstream_listener));
        config.upstream.url = format!("http://{upstream_addr}")
            .parse()
            .map_err(|e| setup(format!("upstream url: {e}")))?;

        // The tokens the gateway must accept: the embedded issuer's when
        // there is one, for the scenes run on its tokens.
        let embedded = config.authorization_server.as_ref().map(|a| a.issuer.clone());
        let issuer = config
            .issuers
            .iter()
            .find(|i| Some(&i.issuer) == embedded.as_ref())
            .or(config.issuers.first())
            .ok_or_else(|| setup("the configuration trusts no issuer"))?;
        let keys_from = issuer.keys.to_string();
        let (iss, aud) = (issuer.issuer.clone(), issuer.audience[0].clone());
        // The upstream address above exists only in memory; a reload from the file would lose it.
        config.reload.watch_files = false;
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let prepared =
            crate::app::prepare::prepare(config, metrics.clone(), None, crate::app::prepare::KeysPolicy::Require)
                .await
                .map_err(setup)?;
        let listen = prepared.config.server.listen;
        let gateway_listener = TcpListener::bind(listen).await.map_err(|e| {
            setup(format!(
                "cannot listen on {listen}: {e} (is `bindgate run` already running?)"
            ))
        })?;
        let gateway_addr = gateway_listener.local_addr().map_err(setup)?;
        let as_listener = match &prepared.config.authorization_server {
            Some(settings) => Some(TcpListener::bind(settings.listen).await.map_err(|e| {
                setup(format!(
                    "cannot listen on {}: {e} (is `bindgate run` already running?)",
                    settings.listen
                ))
            })?),
            None => None,
        };
        let authorization_server = match &as_listener {
            Some(listener) => Some(listener.local_addr().map_err(setup)?),
            None => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listeners = crate::Listeners {
            proxy: gateway_listener,
            admin: None,
            authorization_server: as_listener,
        };
        let live = Arc::new(crate::app::live::Live::new(
            config_path.to_path_buf(),
            prepared,
            metrics,
        ));
        let gateway = tokio::spawn(crate::run(live.clone(), listeners, async {
            let _ = stop_rx.await;
        }));

        Ok(Demo {
            certs: certs.to_path_buf(),
            upstream_addr,
            gateway_addr,
            authorization_server,
            keys_from,
            iss,
            aud,
            live,
            stop: stop_tx,
            gateway,
        })
    }

    fn mint(&self, cert: Option<&Path>, dpop_key: Option<&Path>, sub: &str) -> Result<String, DemoError> {
        mint(&MintRequest {
            cert,
            dpop_key,
            issuer_key: &self.certs.join("issuer-key.pem"),
            iss: &self.iss,
            aud: &self.aud,
            sub,
            ttl: Duration::from_secs(3600),
            scope: None,
            id_token: false,
        })
        .map_err(setup)
    }

    /// Scenes 1-3: a certificate-bound token works for its own client only.
    async fn certificate_bound_scenes(&self) -> Result<(), DemoError> {
        let (certs, gateway_addr) = (self.certs.as_path(), self.gateway_addr);
        let token = self.mint(Some(&certs.join("client-a.pem")), None, "demo-user")?;
        let client_a = DemoClient::new(certs, "client-a")?;
        let client_b = DemoClient::new(certs, "client-b")?;

        println!("1. client-a calls with a token bound to its own certificate");
        let reply = client_a.get(gateway_addr, "/hello", Some(&token)).await?;
        show_upstream(&reply);
        expect(
            reply.status == StatusCode::OK,
            "client-a with its own token should get 200",
        )?;
        replay_scenes(2, &client_a, &client_b, gateway_addr, &token).await
    }

    /// Scenes 4-5: a DPoP-bound token with a fresh proof, then that proof replayed.
    async fn dpop_scenes(&self) -> Result<(), DemoError> {
        let gateway_addr = self.gateway_addr;
        let dpop_key = self.certs.join("dpop-key.pem");
        let client_a = DemoClient::new(&self.certs, "client-a")?;
        let token = self.mint(None, Some(&dpop_key), "demo-app")?;
        let url = format!("https://localhost:{}/hello", gateway_addr.port());
        let proof = crate::dev::proof::proof_with_key_file(
            &dpop_key,
            &crate::dev::proof::ProofRequest {
                method: "GET",
                url: &url,
                token: Some(&token),
                nonce: None,
                jti: None,
                iat: None,
            },
        )
        .map_err(setup)?;
        println!("4. an app calls with a DPoP-bound token and a fresh proof signed by its own key");
        let reply = client_a.get_dpop(gateway_addr, "/hello", &token, &proof).await?;
        show_upstream(&reply);
        expect(
            reply.status == StatusCode::OK,
            "a DPoP token with a valid proof should get 200",
        )?;
        proof_replay_scene(5, &client_a, gateway_addr, &token, &proof).await
    }

    fn print_try_it(&self, keep_running: bool, accepts_dpop: bool) {
        let gateway_addr = self.gateway_addr;
        let c = self.certs.display();
        println!();
        println!(
            "Try it by hand{}:",
            if keep_running {
                " (the gateway keeps running; Ctrl-C stops it)"
            } else {
                ""
            }
        );
        println!("  TOKEN=$(cargo run -q -- mint --cert {c}/client-a.pem)");
        println!(
            "  curl --cacert {c}/ca.pem --cert {c}/client-a.pem --key {c}/client-a-key.pem -H \"Authorization: Bearer $TOKEN\" https://localhost:{}/hello",
            gateway_addr.port()
        );
        println!(
            "  curl --cacert {c}/ca.pem --cert {c}/client-b.pem --key {c}/client-b-key.pem -H \"Authorization: Bearer $TOKEN\" https://localhost:{}/hello",
            gateway_addr.port()
        );
        if accepts_dpop {
            println!("  DPOP_TOKEN=$(cargo run -q -- mint --dpop-key {c}/dpop-key.pem)");
            println!(
                "  curl --cacert {c}/ca.pem --cert {c}/client-a.pem --key {c}/client-a-key.pem -H \"Authorization: DPoP $DPOP_TOKEN\" \\\n       -H \"DPoP: $(cargo run -q -- dpop-proof --key {c}/dpop-key.pem --url https://localhost:{port}/hello --token $DPOP_TOKEN)\" https://localhost:{port}/hello",
                port = gateway_addr.port()
            );
        }
    }
}

/// A reply the upstream answered: what it saw of the client.
fn show_upstream(reply: &Reply) {
    println!("   -> {}", reply.status);
    println!("   upstream saw: {}", reply.body);
}

/// A refused reply: its challenge and the JSON body.
fn show_refusal(reply: &Reply) {
    println!("   -> {}", reply.status);
    println!("   WWW-Authenticate: {}", reply.challenge);
    println!("   {}", reply.body);
}

/// Scenes `first` and `first + 1`: the certificate-bound `token` replayed
/// from client-b's certificate, and no token at all.
async fn replay_scenes(
    first: usize,
    client_a: &DemoClient,
    client_b: &DemoClient,
    gateway: SocketAddr,
    token: &str,
) -> Result<(), DemoError> {
    println!("{first}. client-b replays client-a's token with its own certificate");
    let reply = client_b.get(gateway, "/hello", Some(token)).await?;
    show_refusal(&reply);
    expect(
        reply.status == StatusCode::UNAUTHORIZED && reply.body.contains("cnf_mismatch"),
        "replay should get 401 cnf_mismatch",
    )?;
    println!("{}. client-a calls without a token", first + 1);
    let reply = client_a.get(gateway, "/hello", None).await?;
    println!("   -> {}   WWW-Authenticate: {}", reply.status, reply.challenge);
    expect(reply.status == StatusCode::UNAUTHORIZED, "no token should get 401")
}

/// Scene `number`: a DPoP request replayed, proof and all.
async fn proof_replay_scene(
    number: usize,
    client: &DemoClient,
    gateway: SocketAddr,
    token: &str,
    proof: &str,
) -> Result<(), DemoError> {
    println!("{number}. someone replays that request, proof and all");
    let reply = client.get_dpop(gateway, "/hello", token, proof).await?;
    show_refusal(&reply);
    expect(
        reply.status == StatusCode::UNAUTHORIZED && reply.body.contains("dpop_replayed"),
        "a replayed proof should get 401 dpop_replayed",
    )
}

fn expect(ok: bool, what: &str) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Unexpected(what.to_string()))
    }
}

/// An upstream that answers every request with the identity headers it received.
async fn echo_upstream(listener: TcpListener) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let seen = serde_json::json!({
                    "path": req.uri().path(),
                    "x-forwarded-client-cert": header("x-forwarded-client-cert"),
                    "x-auth-subject": header("x-auth-subject"),
                });
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(seen.to_string()))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
