//! TLS configurations. The server side: certificate chain and key, how
//! client certificates are verified, ALPN, and session resumption. The client
//! side, one builder for the upstream pool and the JWKS fetcher: which roots
//! to trust and, for upstream mTLS, which certificate to present.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{AuthorizationServerSettings, ClientAuth, Config, ConfigError, CrlExpired};
use crate::conn::pem;
use crate::conn::revocation::RevocationSet;

/// Session cache entries per `ServerConfig`; about 1 KiB each.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// The gateway listener's TLS: its configuration, the set of client
/// certificates its CRLs revoke (for connections opened before they were
/// loaded), and its client certificate verifier, which also judges
/// certificates forwarded by trusted proxies.
pub struct GatewayTls {
    pub config: Arc<ServerConfig>,
    pub revoked: RevocationSet,
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// Builds the gateway's TLS from the files `config` names.
///
/// Every call makes a fresh session cache and ticket key: a session from an
/// older configuration (perhaps trusting a CA since removed) must never
/// resume on this one.
///
/// `extend` may wrap the client certificate verifier in further checks
/// (`server.crl_fetch`'s lists); the wrapped one is also the one returned.
pub fn server_config(
    config: &Config,
    extend: impl FnOnce(Arc<dyn ClientCertVerifier>) -> Arc<dyn ClientCertVerifier>,
) -> Result<GatewayTls, ConfigError> {
    let server = &config.server;
    let provider = provider();
    let (verifier, revoked) = client_verifier(config, provider.clone())?;
    let verifier = extend(verifier);
    let files = ServerFiles {
        cert: ("server.cert", &server.cert),
        key: ("server.key", &server.key),
    };
    Ok(GatewayTls {
        config: listener_config(config, provider, verifier.clone(), files)?,
        revoked,
        verifier,
    })
}

/// The TLS server configuration of the authorization server's listener.
/// The handshake asks for a client certificate and does not require one
/// (public clients have none), and accepts any certificate whose handshake
/// signature proves the client holds its key, self-signed ones included:
/// which certificate authenticates which client is decided per client at
/// the token endpoint, against `client_ca` or the client's keys. So no CA
/// names are hinted either; some clients would then hide a self-signed one.
///
/// Like [`server_config`], a fresh session cache and ticket key every call.
pub fn authorization_server_config(
    config: &Config,
    settings: &AuthorizationServerSettings,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificateIfPresented(AnyCertificate {
        schemes: provider.signature_verification_algorithms,
    }));
    let files = ServerFiles {
        cert: ("authorization_server.cert", &settings.cert),
        key: ("authorization_server.key", &settings.key),
    };
    listener_config(config, provider, verifier, files)
}

/// A listener's certificate chain and key files, each with the key naming it.
struct ServerFiles<'a> {
    cert: (&'static str, &'a Path),
    key: (&'static str, &'a Path),
}

/// What both listeners share: protocol versions, ALPN, session resumption, no 0-RTT.
fn listener_config(
    config: &Config,
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
    files: ServerFiles<'_>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let ((cert_key, cert), (key_key, key)) = (files.cert, files.key);
    let chain = pem::certificates(cert).map_err(|e| config.unusable(cert_key, cert, e))?;
    let private_key = pem::private_key(key).map_err(|e| config.unusable(key_key, key, e))?;
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| config.unusable(cert_key, cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key)
        .map_err(|e| config.unusable(key_key, key, format!("does not fit {cert_key}: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    tls.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| config.unusable(cert_key, cert, format!("cannot create a ticket key: {e}")))?;
    // 0-RTT data could be replayed; never accept it.
    tls.max_early_data_size = 0;
    Ok(Arc::new(tls))
}

/// The crypto provider of every TLS configuration, server and client.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates a TLS client trusts.
#[derive(Debug, Clone, Copy)]
pub enum ClientRoots<'a> {
    /// The CA certificates of a PEM file.
    File(&'a Path),
    /// The system's trust store.
    System,
    /// None: a plain-http upstream's pool never verifies a certificate.
    Empty,
}

/// Why a TLS client configuration could not be built, with the file at
/// fault, so that each caller can name the setting that names it.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The CA file, or without one (`path` is `None`) the system's trust store.
    #[error("{source}")]
    Roots {
        path: Option<PathBuf>,
        source: pem::PemError,
    },
    #[error("{source}")]
    Certificate { path: PathBuf, source: pem::PemError },
    #[error("{source}")]
    Key { path: PathBuf, source: pem::PemError },
    /// rustls cannot use the key, or it does not fit the certificate.
    #[error("{source}")]
    KeyRefused { path: PathBuf, source: rustls::Error },
    /// The crypto provider supports no safe protocol version.
    #[error(transparent)]
    Protocol(rustls::Error),
}

/// A TLS client configuration trusting `roots` and, given `client_cert`
/// (certificate chain file, private key file), presenting that certificate.
///
/// ALPN is left empty: hyper-rustls sets it from the protocols its connector
/// enables, and panics on a configuration that already has some.
pub fn client_config(
    roots: ClientRoots<'_>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, ClientTlsError> {
    let roots = match roots {
        ClientRoots::File(path) => pem::trust_store(Some(path)).map_err(|source| ClientTlsError::Roots {
            path: Some(path.to_path_buf()),
            source,
        })?,
        ClientRoots::System => pem::trust_store(None).map_err(|source| ClientTlsError::Roots { path: None, source })?,
        ClientRoots::Empty => RootCertStore::empty(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientTlsError::Protocol)?
        .with_root_certificates(roots);
    let Some((cert_path, key_path)) = client_cert else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = pem::certificates(cert_path).map_err(|source| ClientTlsError::Certificate {
        path: cert_path.to_path_buf(),
        source,
    })?;
    let key = pem::private_key(key_path).map_err(|source| ClientTlsError::Key {
        path: key_path.to_path_buf(),
        source,
    })?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|source| ClientTlsError::KeyRefused {
            path: key_path.to_path_buf(),
            source,
        })
}

/// Subject and validity of a configured certificate, for readiness and metrics.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// `server` or `client_ca`.
    pub kind: &'static str,
    pub subject: String,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Summaries of every certificate in `path`.
pub fn summaries(kind: &'static str, path: &std::path::Path) -> Result<Vec<CertificateSummary>, pem::PemError> {
    let mut out = Vec::new();
    for der in pem::certificates(path)? {
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| pem::PemError::Malformed(format!("certificate is not X.509: {e}")))?;
        let validity = cert.validity();
        out.push(CertificateSummary {
            kind,
            subject: crate::conn::identity::rfc4514(cert.subject()),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        });
    }
    Ok(out)
}

fn client_verifier(
    config: &Config,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<dyn ClientCertVerifier>, RevocationSet), ConfigError> {
    let server = &config.server;
    let trust = server.client_ca.as_deref().map(|ca| ClientTrust {
        ca: ("server.client_ca", ca),
        crls: ("server.crl", &server.crls),
    });
    match (server.client_auth, trust) {
        (ClientAuth::Required, Some(trust)) => client_cert_verifier(config, &trust, CertificateRequirement::Required),
        (ClientAuth::Optional, Some(trust)) => client_cert_verifier(config, &trust, CertificateRequirement::Optional),
        // The handshake checks no chain and no CRL here; neither do requests.
        (ClientAuth::Any, _) => Ok((
            Arc::new(AnyCertificate {
                schemes: provider.signature_verification_algorithms,
            }),
            RevocationSet::default(),
        )),
        (ClientAuth::Required | ClientAuth::Optional, None) => Err(config.unusable(
            "server.client_ca",
            &config.source,
            "is required unless client_auth = \"any\"",
        )),
    }
}

/// Where trust in client certificates comes from: a CA file and the CRLs
/// that revoke some of its leaves, each with the config key that names it,
/// so that an unusable file is blamed on the setting that named it.
pub(crate) struct ClientTrust<'a> {
    pub ca: (&'static str, &'a Path),
    pub crls: (&'static str, &'a [PathBuf]),
}

/// Whether a verifier lets a handshake without a client certificate through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateRequirement {
    Required,
    Optional,
}

/// The WebPKI verifier of client certificates chained to `trust`'s CA,
/// and the set of certificates its CRLs revoke. The gateway's handshake
/// uses it, and so does the authorization server's `tls_client_auth`, so
/// chain, validity, EKU and revocation rules are the same for both.
pub(crate) fn client_cert_verifier(
    config: &Config,
    trust: &ClientTrust<'_>,
    requirement: CertificateRequirement,
) -> Result<(Arc<dyn ClientCertVerifier>, RevocationSet), ConfigError> {
    let provider = provider();
    let (ca_key, ca_path) = trust.ca;
    let (crl_key, crl_paths) = trust.crls;
    let roots = Arc::new(pem::trust_store(Some(ca_path)).map_err(|e| config.unusable(ca_key, ca_path, e))?);
    let mut crls = Vec::new();
    let mut revoked = RevocationSet::default();
    for path in crl_paths {
        let file = pem::crls(path).map_err(|e| config.unusable(crl_key, path, e))?;
        // Parsed here, file by file, so that a broken CRL is blamed on its file.
        revoked.add_file(&file).map_err(|e| config.unusable(crl_key, path, e))?;
        crls.extend(file);
    }
    // Revocation is checked for the client's own certificate; a CA whose
    // leaves present without a CRL in the list fails closed.
    let webpki = |roots: Arc<RootCertStore>, crls: Vec<CertificateRevocationListDer<'static>>| {
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        if crls.is_empty() {
            builder
        } else if config.server.crl_expired == CrlExpired::Deny {
            // A list past its nextUpdate no longer says a certificate is good.
            builder
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .enforce_revocation_expiration()
        } else {
            builder.with_crls(crls).only_check_end_entity_revocation()
        }
    };
    let builder = webpki(roots.clone(), crls);
    let built = match requirement {
        CertificateRequirement::Optional => builder.allow_unauthenticated().build(),
        CertificateRequirement::Required => builder.build(),
    };
    let verifier = built.map_err(|e| match e {
        rustls::server::VerifierBuilderError::InvalidCrl(_) => {
            // webpki refused what x509-parser read: find the file it refuses alone.
            let culprit = crl_paths
                .iter()
                .find(|path| pem::crls(path).is_ok_and(|file| webpki(roots.clone(), file).build().is_err()));
            let path = culprit.or(crl_paths.first()).cloned().unwrap_or_default();
            config.unusable(crl_key, &path, format!("is not a usable CRL: {e}"))
        }
        _ => config.unusable(ca_key, ca_path, e),
    })?;
    Ok((verifier, revoked))
}

/// RFC 8705 section 2.2 "self-signed certificate mutual TLS": any
/// certificate is accepted as long as the handshake signature proves the
/// client holds its key. The token's `cnf` binding is then the only check.
#[derive(Debug)]
struct AnyCertificate {
    schemes: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain and validity dates are deliberately ignored (the token binding is the check),
        // but the certificate must at least be X.509 so its thumbprint means something.
        X509Certificate::from_der(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

/// The authorization server's handshake: [`AnyCertificate`]'s checks on a
/// certificate that is presented, and none presented is fine too (public
/// clients have none). Which certificate authenticates which client is the
/// token endpoint's decision, per client.
#[derive(Debug)]
struct AnyCertificateIfPresented(AnyCertificate);

impl ClientCertVerifier for AnyCertificateIfPresented {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, and a key of another pair, as PEM files.
    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let issued = rcgen::generate_simple_self_signed(vec!["upstream.example".to_string()]).unwrap();
            let other = rcgen::KeyPair::generate().unwrap();
            std::fs::write(dir.path().join("cert.pem"), issued.cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), issued.signing_key.serialize_pem()).unwrap();
            std::fs::write(dir.path().join("other-key.pem"), other.serialize_pem()).unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn roots_and_a_client_certificate_make_a_config_without_alpn() {
        let f = Files::new();
        let (cert, key) = (f.path("cert.pem"), f.path("key.pem"));
        for roots in [ClientRoots::File(&cert), ClientRoots::System, ClientRoots::Empty] {
            let tls = client_config(roots, None).unwrap();
            assert!(tls.alpn_protocols.is_empty());
            assert!(!tls.client_auth_cert_resolver.has_certs());
        }
        let tls = client_config(ClientRoots::File(&cert), Some((&cert, &key))).unwrap();
        assert!(tls.alpn_protocols.is_empty());
        assert!(tls.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn each_error_names_the_file_at_fault() {
        let f = Files::new();
        let (cert, key, other, missing) = (
            f.path("cert.pem"),
            f.path("key.pem"),
            f.path("other-key.pem"),
            f.path("missing.pem"),
        );
        let err = client_config(ClientRoots::File(&missing), Some((&cert, &key))).unwrap_err();
        assert!(
            matches!(&err, ClientTlsError::Roots { path: Some(p), .. } if *p == missing),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot read: "), "{err}");
        let err = client_config(ClientRoots::Empty, Some((&key, &key))).unwrap_err();
        assert!(
            matches!(&err, ClientTlsError::Certificate { path, .. } if *path == key),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "holds no PEM certificate");
        let err = client_config(ClientRoots::Empty, Some((&cert, &cert))).unwrap_err();
        assert!(
            matches!(&err, ClientTlsError::Key { path, .. } if *path == cert),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)");
        let err = client_config(ClientRoots::Empty, Some((&cert, &other))).unwrap_err();
        assert!(
            matches!(&err, ClientTlsError::KeyRefused { path, .. } if *path == other),
            "{err:?}"
        );
    }
}
