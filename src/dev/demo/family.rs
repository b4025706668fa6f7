//! The demo's last act: a mobile app's tokens on a device, stolen. The app
//! exchanges its user's id_token (from the dev identity provider) for
//! DPoP-bound tokens, calls the gateway, refreshes twice; a thief who copied
//! the first refresh token replays it, and the whole family dies: the
//! thief's answer, the app's current access token and its current refresh
//! token are all refused.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::StatusCode;

use super::client::{DemoClient, Reply};
use super::issued::{pairs, proof_request};
use super::{Demo, DemoError, expect, setup, show_refusal, show_upstream};
use crate::config::{AuthorizationServerSettings, ClientAuthMethod, GrantType, JwksSource};
use crate::dev::mint::{MintRequest, mint};
use crate::dev::proof::proof_with_key_file;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The public client and the identity provider it signs in with, when the
/// configuration has both and the dev IdP's key is at hand.
struct MobileCast {
    client_id: String,
    idp_issuer: String,
    idp_audience: String,
    idp_key: PathBuf,
}

impl MobileCast {
    fn of(settings: &AuthorizationServerSettings, certs: &std::path::Path) -> Option<MobileCast> {
        let client = settings.clients.iter().find(|c| {
            c.auth == ClientAuthMethod::None
                && c.grant_types.contains(&GrantType::TokenExchange)
                && c.grant_types.contains(&GrantType::RefreshToken)
        })?;
        let idp_jwks = certs.join("idp.jwks.json");
        let idp = settings.subject_issuers.iter().find(|s| match &s.jwks {
            JwksSource::File(path) => path.canonicalize().ok() == idp_jwks.canonicalize().ok(),
            _ => false,
        })?;
        let idp_key = certs.join("idp-key.pem");
        idp_key.exists().then(|| MobileCast {
            client_id: client.client_id.clone(),
            idp_issuer: idp.issuer.clone(),
            idp_audience: idp.audience.first().cloned().unwrap_or_default(),
            idp_key,
        })
    }
}

impl Demo {
    /// Scenes `first`..: exchange, call, refresh twice, the thief, the fallout.
    /// Skipped (with a note) when the configuration has no mobile client.
    pub(super) async fn family_scenes(
        &self,
        first: usize,
        token_endpoint: SocketAddr,
        settings: &AuthorizationServerSettings,
    ) -> Result<(), DemoError> {
        let Some(cast) = MobileCast::of(settings, &self.certs) else {
            println!(
                "(no public client with token exchange and refresh_token, or no dev IdP key: the family scenes are skipped)"
            );
            return Ok(());
        };
        let token_path = format!("{}/token", crate::issuer::metadata::issuer_path(&settings.issuer));
        let token_url = format!("{}/token", settings.issuer.trim_end_matches('/'));
        let device = DemoClient::without_certificate(&self.certs)?;
        let dpop_key = self.certs.join("dpop-key.pem");
        let proof = |method: &str, url: &str, token: Option<&str>| {
            proof_with_key_file(&dpop_key, &proof_request(method, url, token)).map_err(setup)
        };
        let post = |form: Vec<(&'static str, String)>, proof: String| {
            let device = &device;
            let token_path = &token_path;
            async move {
                show_form(&form);
                device
                    .post_form(token_endpoint, token_path, &pairs(&form), Some(&proof))
                    .await
            }
        };

        let id_token = mint(&MintRequest {
            cert: None,
            dpop_key: None,
            issuer_key: &cast.idp_key,
            iss: &cast.idp_issuer,
            aud: &cast.idp_audience,
            sub: "alice",
            ttl: std::time::Duration::from_secs(300),
            scope: None,
            id_token: true,
        })
        .map_err(setup)?;
        println!(
            "{first}. the mobile app signs alice in with its identity provider and exchanges the id_token (RFC 8693), with a DPoP proof"
        );
        let exchange = vec![
            ("grant_type", TOKEN_EXCHANGE.to_string()),
            ("client_id", cast.client_id.clone()),
            ("subject_token", id_token),
            ("subject_token_type", ID_TOKEN.to_string()),
        ];
        let reply = post(exchange, proof("POST", &token_url, None)?).await?;
        let first_tokens = family_tokens(&reply)?;

        println!(
            "{}. the app calls the gateway with its access token and a fresh proof",
            first + 1
        );
        let url = format!("https://localhost:{}/hello", self.gateway_addr.port());
        let call = |token: String| {
            let device = &device;
            let url = &url;
            let proof = &proof;
            async move {
                let proof = proof("GET", url, Some(&token))?;
                device.get_dpop(self.gateway_addr, "/hello", &token, &proof).await
            }
        };
        let reply = call(first_tokens.access.clone()).await?;
        show_upstream(&reply);
        expect(reply.status == StatusCode::OK, "the app's token should get 200")?;

        let mut current = first_tokens.clone();
        for (n, which) in [(first + 2, "once"), (first + 3, "again")] {
            println!("{n}. the access token expires; the app refreshes {which}, proving its DPoP key");
            let refresh = vec![
                ("grant_type", "refresh_token".to_string()),
                ("client_id", cast.client_id.clone()),
                ("refresh_token", current.refresh.clone()),
            ];
            let reply = post(refresh, proof("POST", &token_url, None)?).await?;
            let next = family_tokens(&reply)?;
            expect(
                next.refresh != current.refresh,
                "each refresh should rotate the refresh token",
            )?;
            println!(
                "   the refresh token changed: {} -> {}",
                short(&current.refresh),
                short(&next.refresh)
            );
            current = next;
        }

        println!(
            "{}. a thief who copied the app's first refresh token replays it, with a DPoP key of its own",
            first + 4
        );
        let thief_key = self.certs.join("client-b-key.pem");
        let thief_proof = proof_with_key_file(&thief_key, &proof_request("POST", &token_url, None)).map_err(setup)?;
        let stolen = vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", cast.client_id.clone()),
            ("refresh_token", first_tokens.refresh.clone()),
        ];
        let reply = post(stolen, thief_proof).await?;
        show_answer(&reply);
        expect(
            reply.status == StatusCode::BAD_REQUEST && reply.body.contains("invalid_grant"),
            "a rotated-away refresh token should get invalid_grant",
        )?;
        println!("   reuse: the whole family is revoked");

        println!("{}. the app's current access token, at the gateway", first + 5);
        let reply = call(current.access.clone()).await?;
        show_refusal(&reply);
        expect(
            reply.status == StatusCode::UNAUTHORIZED && reply.body.contains("token_revoked"),
            "an access token of a revoked family should get 401 token_revoked",
        )?;

        println!("{}. the app's current refresh token", first + 6);
        let refresh = vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", cast.client_id.clone()),
            ("refresh_token", current.refresh.clone()),
        ];
        let reply = post(refresh, proof("POST", &token_url, None)?).await?;
        show_answer(&reply);
        expect(
            reply.status == StatusCode::BAD_REQUEST && reply.body.contains("invalid_grant"),
            "a revoked family's refresh token should get invalid_grant",
        )?;
        println!("   alice signs in again to get a new family; the thief's copy is worthless");
        Ok(())
    }
}

/// What the app holds after a token response.
#[derive(Clone)]
struct FamilyTokens {
    access: String,
    refresh: String,
}

fn family_tokens(reply: &Reply) -> Result<FamilyTokens, DemoError> {
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let text = |name: &str| json[name].as_str().unwrap_or_default().to_string();
    let (access, refresh) = (text("access_token"), text("refresh_token"));
    println!("   -> {}", reply.status);
    if reply.status != StatusCode::OK || access.is_empty() || refresh.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the token endpoint should issue an access and a refresh token; it answered {} {}",
            reply.status, reply.body
        )));
    }
    println!(
        "   token_type {}, expires_in {}, refresh_token {}, refresh_token_expires_in {}",
        json["token_type"],
        json["expires_in"],
        short(&refresh),
        json["refresh_token_expires_in"]
    );
    Ok(FamilyTokens { access, refresh })
}

/// The request, credentials shortened: enough to follow, nothing to copy.
fn show_form(form: &[(&'static str, String)]) {
    let shown: Vec<String> = form
        .iter()
        .map(|(name, value)| match *name {
            "subject_token" | "refresh_token" => format!("{name}={}", short(value)),
            _ => format!("{name}={value}"),
        })
        .collect();
    println!("   POST /token  DPoP: <proof>  {}", shown.join("&"));
}

fn show_answer(reply: &Reply) {
    println!("   -> {}  {}", reply.status, reply.body);
}

/// The first characters of a credential, for telling two apart.
fn short(credential: &str) -> String {
    let head: String = credential.chars().take(8).collect();
    format!("{head}...")
}
