//! The demo's scenes on tokens from bindgate's own authorization server:
//! the whole loop, from the token request to the gateway's verdict.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use super::client::{DemoClient, Reply};
use super::{Demo, DemoError, expect, proof_replay_scene, replay_scenes, setup, show_upstream};
use crate::config::{AuthorizationServerSettings, ClientAuthMethod};
use crate::dev::assertion::{AssertionRequest, assertion_with_key_file};
use crate::dev::proof::{ProofRequest, proof_with_key_file};
use crate::issuer::client_auth::JWT_BEARER;

/// The shipped clients the scenes play, found in the configuration by how
/// they authenticate.
struct Cast<'a> {
    /// A `tls_client_auth` client: certs/client-a.pem.
    service: Option<&'a str>,
    /// A `private_key_jwt` client whose key is certs/app-key.pem.
    app: Option<&'a str>,
}

impl<'a> Cast<'a> {
    fn of(settings: &'a AuthorizationServerSettings) -> Cast<'a> {
        let find = |wanted: fn(&ClientAuthMethod) -> bool| {
            settings
                .clients
                .iter()
                .find(|c| wanted(&c.auth))
                .map(|c| c.client_id.as_str())
        };
        Cast {
            service: find(|auth| matches!(auth, ClientAuthMethod::TlsClientAuth { .. })),
            app: find(|auth| matches!(auth, ClientAuthMethod::PrivateKeyJwt { .. })),
        }
    }
}

impl Demo {
    /// Scenes 1-4 for the service, 5-8 for the app and 9-15 for the mobile
    /// app's token family (when the route takes DPoP).
    pub(super) async fn issued_scenes(&self, token_endpoint: SocketAddr, accepts_dpop: bool) -> Result<(), DemoError> {
        let current = self.live.current();
        let settings = current
            .config
            .authorization_server
            .as_ref()
            .ok_or_else(|| setup("the configuration has no [authorization_server]"))?;
        let cast = Cast::of(settings);
        let token_path = format!("{}/token", crate::issuer::metadata::issuer_path(&settings.issuer));
        let client_a = DemoClient::new(&self.certs, "client-a")?;
        let client_b = DemoClient::new(&self.certs, "client-b")?;

        if let Some(service) = cast.service {
            println!("1. client-a asks the token endpoint for a token, authenticating with its certificate");
            let form = [("grant_type", "client_credentials"), ("client_id", service)];
            let reply = client_a.post_form(token_endpoint, &token_path, &form, None).await?;
            let token = issued_token(&reply, "Bearer")?;
            println!("2. client-a calls the gateway with it");
            let reply = client_a.get(self.gateway_addr, "/hello", Some(&token)).await?;
            show_upstream(&reply);
            expect(
                reply.status == StatusCode::OK,
                "client-a with its own token should get 200",
            )?;
            replay_scenes(3, &client_a, &client_b, self.gateway_addr, &token).await?;
        }
        if let (Some(app), true) = (cast.app, accepts_dpop) {
            self.app_scenes(token_endpoint, &token_path, &settings.issuer, app)
                .await?;
        }
        if accepts_dpop {
            self.family_scenes(9, token_endpoint, settings).await?;
        }
        Ok(())
    }

    /// The app holds no certificate: only its assertion key and a DPoP key.
    async fn app_scenes(
        &self,
        token_endpoint: SocketAddr,
        token_path: &str,
        issuer: &str,
        app: &str,
    ) -> Result<(), DemoError> {
        let device = DemoClient::without_certificate(&self.certs)?;
        let dpop_key = self.certs.join("dpop-key.pem");
        let assertion = || {
            assertion_with_key_file(
                &self.certs.join("app-key.pem"),
                &AssertionRequest {
                    client_id: app,
                    audience: issuer,
                    lifetime: std::time::Duration::from_secs(60),
                },
            )
            .map_err(setup)
        };
        let form = |assertion: String| -> Vec<(&'static str, String)> {
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", app.to_string()),
                ("client_assertion_type", JWT_BEARER.to_string()),
                ("client_assertion", assertion),
            ]
        };

        println!("5. an app, with no certificate, asks for a token without a DPoP proof");
        let unbound = form(assertion()?);
        let reply = device
            .post_form(token_endpoint, token_path, &pairs(&unbound), None)
            .await?;
        println!("   -> {}  {}", reply.status, reply.body);
        expect(
            reply.status == StatusCode::BAD_REQUEST,
            "a token request with no key to bind to should get 400",
        )?;

        println!("6. the app asks again with a client assertion and a DPoP proof of its key");
        let token_url = format!("{issuer}/token");
        let proof = proof_with_key_file(&dpop_key, &proof_request("POST", &token_url, None)).map_err(setup)?;
        let bound = form(assertion()?);
        let reply = device
            .post_form(token_endpoint, token_path, &pairs(&bound), Some(&proof))
            .await?;
        let token = issued_token(&reply, "DPoP")?;

        println!("7. the app calls the gateway with it and a fresh proof");
        let url = format!("https://localhost:{}/hello", self.gateway_addr.port());
        let proof = proof_with_key_file(&dpop_key, &proof_request("GET", &url, Some(&token))).map_err(setup)?;
        let reply = device.get_dpop(self.gateway_addr, "/hello", &token, &proof).await?;
        show_upstream(&reply);
        expect(
            reply.status == StatusCode::OK,
            "a DPoP token with a valid proof should get 200",
        )?;
        proof_replay_scene(8, &device, self.gateway_addr, &token, &proof).await
    }

    pub(super) fn print_try_it_issued(&self, token_endpoint: SocketAddr, keep_running: bool) {
        let c = self.certs.display();
        let (gw, port) = (self.gateway_addr.port(), token_endpoint.port());
        println!();
        println!(
            "Try it by hand{}:",
            if keep_running {
                " (bindgate keeps running; Ctrl-C stops it)"
            } else {
                ""
            }
        );
        println!(
            "  TOKEN=$(curl -s --cacert {c}/ca.pem --cert {c}/client-a.pem --key {c}/client-a-key.pem \\\n      \
             https://localhost:{port}/token -d grant_type=client_credentials -d client_id=client-a | jq -r .access_token)"
        );
        println!(
            "  curl --cacert {c}/ca.pem --cert {c}/client-a.pem --key {c}/client-a-key.pem -H \"Authorization: Bearer $TOKEN\" https://localhost:{gw}/hello"
        );
        println!("  (the README's \"Issuing tokens\" has the DPoP app's commands)");
    }
}

/// The access token of a successful token response of `token_type`, after
/// saying what it is bound to.
fn issued_token(reply: &Reply, token_type: &str) -> Result<String, DemoError> {
    println!("   -> {}", reply.status);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let token = json["access_token"].as_str().unwrap_or_default().to_string();
    if reply.status != StatusCode::OK || token.is_empty() || json["token_type"] != token_type {
        return Err(DemoError::Unexpected(format!(
            "the token endpoint should issue a {token_type} token; it answered {} {}",
            reply.status, reply.body
        )));
    }
    println!(
        "   token_type {}, expires_in {}, scope {:?}",
        json["token_type"],
        json["expires_in"],
        json["scope"].as_str().unwrap_or("")
    );
    println!("   cnf: {}", cnf_of(&token));
    Ok(token)
}

/// The `cnf` claim of a token: what it is bound to.
fn cnf_of(token: &str) -> String {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .unwrap_or_default();
    claims["cnf"].to_string()
}

pub(super) fn proof_request<'a>(method: &'a str, url: &'a str, token: Option<&'a str>) -> ProofRequest<'a> {
    ProofRequest {
        method,
        url,
        token,
        nonce: None,
        jti: None,
        iat: None,
    }
}

pub(super) fn pairs<'f>(form: &'f [(&'static str, String)]) -> Vec<(&'static str, &'f str)> {
    form.iter().map(|(name, value)| (*name, value.as_str())).collect()
}
