//! Client authentication at the token and introspection endpoints: which
//! registered client is asking, proven by the one method it is registered
//! for (RFC 6749 section 2.3: never more than one per request).
//!
//! - `tls_client_auth` (RFC 8705 section 2.1): the connection's certificate
//!   chains to `client_ca` under the gateway's own handshake rules (the same
//!   WebPKI verifier builder, CRLs included), and names the client.
//! - `self_signed_tls_client_auth` (RFC 8705 section 2.2): the certificate's
//!   public key is one of the client's JWKS keys; the handshake proved possession.
//! - `private_key_jwt` (RFC 7523 section 3, with the audience rule of
//!   draft-ietf-oauth-rfc7523bis): see `assertion.rs`.
//! - `none`: a public client, named by `client_id` alone.
//!
//! Decisions:
//! - Clock leeway is [`LEEWAY`] (30 s, the gateway's default `[token] leeway`),
//!   applied to `exp`, `nbf` and `iat`; an assertion may expire at most
//!   [`MAX_ASSERTION_LIFETIME`] (5 min) ahead, plus the leeway.
//! - A replay store outage fails closed, whatever `dpop.replay_store_failure`
//!   says: a replayed DPoP proof is still useless without the token it was
//!   made for, but a replayed client assertion *is* the client, and would get
//!   its bearer a token bound to a key of its own choosing.
//! - A client's JWKS file is read when the authenticator is built, so each
//!   reload reads it afresh. A `jwks` URL is fetched by the gateway's own
//!   key store (cache, `max-age` refresh, last good set kept on failure),
//!   carried across reloads that leave it alone; `app/prepare` starts its
//!   first fetch and its refresher ([`ClientAuthenticator::new_key_stores`]).
//!   A `kid` it does not know, or a self-signed certificate whose key it
//!   does not hold, makes it refetch once (within its cooldown) and check again.
//! - Nothing here logs, and no error carries the assertion or any part of its signature.

mod assertion;
mod certificate;
mod error;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;

use crate::auth::dpop::store::ReplayStore;
use crate::auth::token::KeyStore;
use crate::config::{
    AuthorizationServerSettings, CertificateSubject, ClientAuthMethod, Config, ConfigError, JwksSource,
    RegisteredClient,
};
use crate::conn::ChainVerdict;
use crate::conn::tls::{self, CertificateRequirement, ClientTrust};
use crate::jose::jwk::KeySet;
use crate::metrics::Metrics;

pub use self::error::{ClientAuthError, Fault};

/// Clock skew allowed on an assertion's `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// The furthest ahead an assertion's `exp` may be (plus [`LEEWAY`]): an
/// assertion is made for one request, and its `jti` is remembered until it expires.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The `client_assertion_type` of RFC 7523 section 2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a token or introspection request offers to authenticate its client.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCredentials<'a> {
    /// The form's `client_id`.
    pub client_id: Option<&'a str>,
    pub client_assertion_type: Option<&'a str>,
    /// The form's `client_assertion`: a credential, never to be logged.
    pub client_assertion: Option<&'a str>,
    /// The connection's certificates as presented, leaf first.
    pub peer_chain: Option<&'a [CertificateDer<'a>]>,
    /// The connection's memory of a chain verification, if it has one.
    pub chain_verdict: Option<&'a ChainVerdict>,
}

/// A client that proved who it is.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient<'a> {
    pub client: &'a RegisteredClient,
    pub method: AuthMethod,
    /// `x5t#S256` of the certificate that authenticated the client, for the
    /// certificate methods; `None` for the others.
    pub certificate_thumbprint: Option<String>,
}

/// A client authentication method, without what it is checked against: the
/// `method` label of `bindgate_as_client_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    TlsClientAuth,
    SelfSignedTlsClientAuth,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    /// The RFC 8414 `token_endpoint_auth_methods_supported` value.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    fn of(auth: &ClientAuthMethod) -> AuthMethod {
        match auth {
            ClientAuthMethod::TlsClientAuth { .. } => AuthMethod::TlsClientAuth,
            ClientAuthMethod::SelfSignedTlsClientAuth { .. } => AuthMethod::SelfSignedTlsClientAuth,
            ClientAuthMethod::PrivateKeyJwt { .. } => AuthMethod::PrivateKeyJwt,
            ClientAuthMethod::None => AuthMethod::None,
        }
    }
}

/// Authenticates the registered clients of one configuration generation.
pub struct ClientAuthenticator {
    clients: HashMap<String, Client>,
    /// Remote key sets made for this generation (not carried over), each
    /// with its configuration key: their first fetch and refresher are for
    /// the caller to start.
    new_key_stores: Vec<(String, Arc<KeyStore>)>,
    assertions: assertion::Rules,
    replay: Arc<ReplayStore>,
}

/// A registered client with what its method checks against, loaded.
struct Client {
    registered: RegisteredClient,
    check: Check,
}

enum Check {
    Tls {
        subject: CertificateSubject,
        verifier: Arc<dyn ClientCertVerifier>,
        /// Unique to `verifier` in this process: what a connection's
        /// [`ChainVerdict`] remembers.
        verifier_id: u64,
    },
    SelfSigned {
        keys: ClientKeys,
    },
    PrivateKeyJwt {
        keys: ClientKeys,
    },
    Public,
}

/// A client's registered keys: read from its JWKS file, or fetched from its URL.
#[derive(Clone)]
enum ClientKeys {
    File(Arc<KeySet>),
    Fetched(Arc<KeyStore>),
}

impl ClientKeys {
    fn current(&self) -> Arc<KeySet> {
        match self {
            ClientKeys::File(keys) => keys.clone(),
            ClientKeys::Fetched(store) => store.current(),
        }
    }

    /// After a miss: refetches a fetched set (once per cooldown); whether
    /// it changed and is worth checking again.
    async fn refetched(&self) -> bool {
        match self {
            ClientKeys::File(_) => false,
            ClientKeys::Fetched(store) => store.refetch_for_unknown_kid().await,
        }
    }
}

impl ClientAuthenticator {
    /// Loads what `settings`' clients are checked against: the `client_ca`
    /// verifier (only when a client uses `tls_client_auth`) and each
    /// client's JWKS file; a JWKS URL's store is taken from `previous` when
    /// it fetches the same way, or made empty. `replay` is the store DPoP
    /// proofs use; assertions take a key space of their own in it.
    pub fn new(
        config: &Config,
        settings: &AuthorizationServerSettings,
        replay: Arc<ReplayStore>,
        previous: Option<&ClientAuthenticator>,
        metrics: &Arc<Metrics>,
    ) -> Result<ClientAuthenticator, ConfigError> {
        // Built for the first tls_client_auth client, so a CA no client relies on is not read.
        let mut verifier: Option<(Arc<dyn ClientCertVerifier>, u64)> = None;
        let mut clients = HashMap::with_capacity(settings.clients.len());
        let mut new_key_stores = Vec::new();
        let mut keys_of = |index: usize, registered: &RegisteredClient, jwks: &JwksSource| {
            let carried = previous.and_then(|p| p.fetched_keys(registered, jwks));
            let keys = client_keys(config, index, registered, jwks, carried, metrics)?;
            if let (ClientKeys::Fetched(store), None) = (&keys, carried) {
                new_key_stores.push((format!("authorization_server.client[{index}].jwks"), store.clone()));
            }
            Ok::<_, ConfigError>(keys)
        };
        for (index, registered) in settings.clients.iter().enumerate() {
            let check = match &registered.auth {
                ClientAuthMethod::TlsClientAuth { subject } => {
                    let (verifier, verifier_id) = match &verifier {
                        Some(built) => built.clone(),
                        None => verifier
                            .insert((client_ca_verifier(config, settings)?, next_verifier_id()))
                            .clone(),
                    };
                    Check::Tls {
                        subject: subject.clone(),
                        verifier,
                        verifier_id,
                    }
                }
                ClientAuthMethod::SelfSignedTlsClientAuth { jwks } => Check::SelfSigned {
                    keys: keys_of(index, registered, jwks)?,
                },
                ClientAuthMethod::PrivateKeyJwt { jwks } => Check::PrivateKeyJwt {
                    keys: keys_of(index, registered, jwks)?,
                },
                ClientAuthMethod::None => Check::Public,
            };
            let client = Client {
                registered: registered.clone(),
                check,
            };
            clients.insert(registered.client_id.clone(), client);
        }
        Ok(ClientAuthenticator {
            clients,
            new_key_stores,
            assertions: assertion::Rules {
                issuer: settings.issuer.clone(),
                algorithms: settings.assertion_algorithms.clone(),
                leeway: LEEWAY.as_secs_f64(),
                max_lifetime: MAX_ASSERTION_LIFETIME.as_secs_f64(),
            },
            replay,
        })
    }

    /// The remote key sets this generation made, with the configuration key
    /// each comes from: the caller fetches each first and starts its refresher.
    pub fn new_key_stores(&self) -> &[(String, Arc<KeyStore>)] {
        &self.new_key_stores
    }

    /// The fetched key store of `registered` in this generation, if it
    /// fetches `jwks` with the same settings: a reload keeps its keys and cache.
    fn fetched_keys(&self, registered: &RegisteredClient, jwks: &JwksSource) -> Option<&Arc<KeyStore>> {
        let client = self.clients.get(&registered.client_id)?;
        match &client.check {
            Check::SelfSigned {
                keys: ClientKeys::Fetched(store),
            }
            | Check::PrivateKeyJwt {
                keys: ClientKeys::Fetched(store),
            } if store.same_remote(jwks, &registered.jwks_remote) => Some(store),
            _ => None,
        }
    }

    /// Which client `credentials` authenticate as of `now` (seconds since
    /// the epoch), by the method it is registered for.
    pub async fn authenticate<'s>(
        &'s self,
        credentials: &ClientCredentials<'_>,
        now: f64,
    ) -> Result<AuthenticatedClient<'s>, ClientAuthError> {
        let offers_assertion = credentials.client_assertion.is_some() || credentials.client_assertion_type.is_some();
        // Without a client_id the assertion names its client, so it is read
        // first; its issuer only picks the keys that must then verify it.
        let mut parsed = None;
        let client_id = match (credentials.client_id, credentials.client_assertion) {
            (Some(id), _) => id,
            (None, Some(text)) => parsed.insert(assertion::parse(text)?).claims.iss.as_str(),
            (None, None) => return Err(ClientAuthError::ClientIdMissing),
        };
        let client = self.clients.get(client_id).ok_or(ClientAuthError::UnknownClient)?;
        let method = AuthMethod::of(&client.registered.auth);
        if offers_assertion && method != AuthMethod::PrivateKeyJwt {
            return Err(ClientAuthError::MultipleMethods { registered: method });
        }
        let authenticated = |certificate_thumbprint| AuthenticatedClient {
            client: &client.registered,
            method,
            certificate_thumbprint,
        };
        match &client.check {
            Check::Tls {
                subject,
                verifier,
                verifier_id,
            } => {
                let chain = peer_chain(credentials, method)?;
                let verified = match credentials.chain_verdict {
                    Some(verdict) if verdict.accepted(*verifier_id, now) => certificate::Chain::Verified,
                    verdict => certificate::Chain::Unverified {
                        verifier: verifier.as_ref(),
                        remember: verdict.map(|v| (v, *verifier_id)),
                    },
                };
                let thumbprint = certificate::tls_client_auth(verified, subject, chain, now)?;
                Ok(authenticated(Some(thumbprint)))
            }
            Check::SelfSigned { keys } => {
                let chain = peer_chain(credentials, method)?;
                let thumbprint = match certificate::self_signed(&keys.current(), chain, now) {
                    Err(ClientAuthError::CertificateKeyNotRegistered) if keys.refetched().await => {
                        certificate::self_signed(&keys.current(), chain, now)?
                    }
                    checked => checked?,
                };
                Ok(authenticated(Some(thumbprint)))
            }
            Check::PrivateKeyJwt { keys } => {
                self.private_key_jwt(&client.registered, keys, credentials, parsed, now)
                    .await?;
                Ok(authenticated(None))
            }
            Check::Public => Ok(authenticated(None)),
        }
    }

    /// RFC 7523 section 2.2's parameters, then the assertion itself (`parsed`
    /// already, when it named the client), then its `jti` in the replay store.
    async fn private_key_jwt(
        &self,
        client: &RegisteredClient,
        keys: &ClientKeys,
        credentials: &ClientCredentials<'_>,
        parsed: Option<assertion::Parsed<'_>>,
        now: f64,
    ) -> Result<(), ClientAuthError> {
        let text = match (credentials.client_assertion_type, credentials.client_assertion) {
            (_, None) => return Err(ClientAuthError::AssertionMissing),
            (Some(JWT_BEARER), Some(text)) => text,
            (Some(_) | None, Some(_)) => return Err(ClientAuthError::AssertionTypeUnsupported),
        };
        let parsed = match parsed {
            Some(parsed) => parsed,
            None => assertion::parse(text)?,
        };
        let verified = match self.assertions.verify(parsed, &keys.current(), &client.client_id, now) {
            Err(ClientAuthError::AssertionUnknownKid | ClientAuthError::AssertionNoKeyForAlgorithm(_))
                if keys.refetched().await =>
            {
                self.assertions
                    .verify(assertion::parse(text)?, &keys.current(), &client.client_id, now)?
            }
            checked => checked?,
        };
        assertion::record(&self.replay, &client.client_id, &verified, now).await
    }
}

/// A process-unique id for a new `client_ca` verifier.
fn next_verifier_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The peer's certificates, leaf first; a certificate method needs at least one.
fn peer_chain<'c>(
    credentials: &ClientCredentials<'c>,
    method: AuthMethod,
) -> Result<&'c [CertificateDer<'c>], ClientAuthError> {
    match credentials.peer_chain {
        Some(chain) if !chain.is_empty() => Ok(chain),
        _ => Err(ClientAuthError::CertificateMissing { method }),
    }
}

/// The `client_ca` verifier, blamed on `[server]`'s keys when inherited from there.
fn client_ca_verifier(
    config: &Config,
    settings: &AuthorizationServerSettings,
) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    let Some(ca) = settings.client_ca.as_deref() else {
        return Err(ConfigError::InvalidValue {
            file: config.source.clone(),
            key: "authorization_server.client_ca".into(),
            reason: "required: a client uses tls_client_auth".to_string(),
        });
    };
    let inherited = config.server.client_ca.as_deref() == Some(ca) && config.server.crls == settings.crls;
    let trust = if inherited {
        ClientTrust {
            ca: ("server.client_ca", ca),
            crls: ("server.crl", &settings.crls),
        }
    } else {
        ClientTrust {
            ca: ("authorization_server.client_ca", ca),
            crls: ("authorization_server.crl", &settings.crls),
        }
    };
    // Whether a request without a certificate may go on is decided per
    // client; only the chain check of a presented one is wanted here.
    let (verifier, _revoked) = tls::client_cert_verifier(config, &trust, CertificateRequirement::Required)?;
    Ok(verifier)
}

/// The keys of client `index`: its JWKS file read now, or its URL's store
/// (`carried` from the previous generation, or new and empty).
fn client_keys(
    config: &Config,
    index: usize,
    registered: &RegisteredClient,
    jwks: &JwksSource,
    carried: Option<&Arc<KeyStore>>,
    metrics: &Arc<Metrics>,
) -> Result<ClientKeys, ConfigError> {
    let key = format!("authorization_server.client[{index}].jwks");
    match (jwks, carried) {
        (JwksSource::File(path), _) => Ok(ClientKeys::File(Arc::new(
            KeySet::from_file(path).map_err(|e| config.unusable(key, path, e))?,
        ))),
        (_, Some(store)) => Ok(ClientKeys::Fetched(store.clone())),
        (JwksSource::Url(_) | JwksSource::Discovery(_), None) => {
            // The label of its fetch metric and log lines: no issuer, a client.
            let label = format!("client {}", registered.client_id);
            let store = KeyStore::remote(&label, jwks.clone(), registered.jwks_remote.clone(), metrics.clone())
                .map_err(|e| config.unusable(key, &config.source, e))?;
            Ok(ClientKeys::Fetched(Arc::new(store)))
        }
    }
}
