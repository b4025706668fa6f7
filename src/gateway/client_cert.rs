//! Whose client certificate a request is judged by. Normally the one of
//! the connection's own handshake. From a `[[trusted_proxy]]` hop, the one
//! the hop forwarded in its header, run through the very verifier the
//! handshake uses (chain to `client_ca`, validity, EKU, CRLs), and never the
//! hop's own. From anyone else, a forwarded-certificate header is a forgery
//! until proven otherwise: [`super::forward`] removes it unread, or it is
//! refused with `reject_forwarded_cert_headers`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};

use crate::config::{
    CLIENT_CERT, CLIENT_CERT_CHAIN, ClientCertHeader, Config, ForwardedFormat, HopMatch, TrustedProxy,
};
use crate::conn::Connection;
use crate::conn::identity::{ClientIdentity, IdentityError, RequestCert};
use crate::http::forwarded_cert::{self, ForwardedCertError, ForwardedChain};

/// A forwarded certificate accepted within this long is not verified again.
/// Revocation is checked on every request regardless; this bounds how late
/// an intermediate's expiry is noticed.
const VERIFIED_FOR_SECONDS: i64 = 300;
/// Distinct forwarded chains remembered; past this the memory starts over.
const VERIFIED_ENTRIES: usize = 8192;

/// Why a request's forwarded certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    /// `reject_forwarded_cert_headers = true`, and a peer that is no trusted proxy sent one.
    #[error("a forwarded client certificate header came from a peer that is not a trusted proxy")]
    FromUntrustedPeer,
    #[error("the forwarded client certificate header cannot be used: {0}")]
    Header(#[from] ForwardedCertError),
    #[error("the forwarded client certificate is not X.509: {0}")]
    NotX509(#[from] IdentityError),
    #[error("the client certificate was refused: {0}")]
    Refused(#[from] CertificateRefusal),
}

/// Why a certificate failed verification: the reasons a handshake would fail it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("it does not chain to a trusted CA")]
    Untrusted,
    #[error("it has been revoked")]
    Revoked,
    #[error("it is not for client authentication (extended key usage)")]
    WrongPurpose,
    #[error("no current revocation list covers its issuer")]
    RevocationUnknown,
    #[error("its issuer's revocation list has expired")]
    RevocationListExpired,
    #[error("it is malformed or unsupported")]
    Invalid,
}

impl CertificateRefusal {
    fn of(error: &rustls::Error) -> CertificateRefusal {
        use rustls::CertificateError as E;
        let rustls::Error::InvalidCertificate(error) = error else {
            return CertificateRefusal::Invalid;
        };
        match error {
            E::Expired | E::ExpiredContext { .. } => CertificateRefusal::Expired,
            E::NotValidYet | E::NotValidYetContext { .. } => CertificateRefusal::NotYetValid,
            E::UnknownIssuer | E::BadSignature | E::UnsupportedSignatureAlgorithmContext { .. } => {
                CertificateRefusal::Untrusted
            }
            E::Revoked => CertificateRefusal::Revoked,
            E::InvalidPurpose | E::InvalidPurposeContext { .. } => CertificateRefusal::WrongPurpose,
            E::UnknownRevocationStatus => CertificateRefusal::RevocationUnknown,
            E::ExpiredRevocationList | E::ExpiredRevocationListContext { .. } => {
                CertificateRefusal::RevocationListExpired
            }
            _ => CertificateRefusal::Invalid,
        }
    }
}

/// This generation's trusted proxies and how their certificates are judged.
pub struct ForwardedCerts {
    proxies: Vec<TrustedProxy>,
    /// Every header that can carry a forwarded certificate: RFC 9440's two
    /// and each entry's own. Removed from every request before forwarding.
    screened: Vec<HeaderName>,
    reject_untrusted: bool,
    max_bytes: usize,
    rfc9440_out: ClientCertHeader,
    verifier: Arc<dyn ClientCertVerifier>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

struct Verified {
    identity: Arc<ClientIdentity>,
    until: i64,
}

impl ForwardedCerts {
    pub fn new(config: &Config, verifier: Arc<dyn ClientCertVerifier>) -> ForwardedCerts {
        let mut screened = vec![CLIENT_CERT, CLIENT_CERT_CHAIN];
        for proxy in &config.trusted_proxies {
            if !screened.contains(&proxy.header) {
                screened.push(proxy.header.clone());
            }
        }
        ForwardedCerts {
            proxies: config.trusted_proxies.clone(),
            screened,
            reject_untrusted: config.server.reject_forwarded_cert_headers,
            max_bytes: config.limits.max_forwarded_cert_bytes,
            rfc9440_out: config.forward.client_cert_header,
            verifier,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The headers no request may pass upstream as it came.
    pub fn screened(&self) -> &[HeaderName] {
        &self.screened
    }

    /// The trusted proxy `conn` comes from, if any: the first entry that matches.
    pub fn hop(&self, conn: &Connection) -> Option<&TrustedProxy> {
        if self.proxies.is_empty() {
            return None;
        }
        let identity = conn.identity.as_ref();
        self.proxies.iter().find(|proxy| match &proxy.hop {
            HopMatch::PeerSpki(pin) => identity.is_some_and(|id| id.spki_sha256 == *pin),
            HopMatch::PeerSan(name) => identity.is_some_and(|id| id.uris.iter().chain(&id.dns).any(|san| san == name)),
            HopMatch::Cidr(ranges) => ranges.iter().any(|range| range.contains(conn.peer.ip())),
        })
    }

    /// Whose certificate this request is judged by; `hop` is [`Self::hop`]'s answer.
    pub fn resolve(&self, hop: Option<&TrustedProxy>, headers: &HeaderMap) -> Result<RequestCert, ClientCertError> {
        let Some(proxy) = hop else {
            if self.reject_untrusted && headers.keys().any(|name| self.is_screened(name)) {
                return Err(ClientCertError::FromUntrustedPeer);
            }
            return Ok(RequestCert::Handshake);
        };
        let values: Vec<&HeaderValue> = headers.get_all(&proxy.header).iter().collect();
        let max = self.max_bytes;
        let decoded = match proxy.format {
            ForwardedFormat::Rfc9440 => {
                let chain: Vec<&HeaderValue> = headers.get_all(CLIENT_CERT_CHAIN).iter().collect();
                forwarded_cert::rfc9440(&values, &chain, max)
            }
            ForwardedFormat::Xfcc => forwarded_cert::xfcc(&values, max),
            ForwardedFormat::UrlPem => forwarded_cert::url_pem(&values, max),
            ForwardedFormat::UrlPemAws => forwarded_cert::url_pem_aws(&values, max),
            ForwardedFormat::Base64Der => forwarded_cert::base64_der(&values, max),
        }?;
        let identity = match decoded {
            None => None,
            Some(chain) => Some(self.verify(&chain)?),
        };
        Ok(RequestCert::Forwarded {
            source: proxy.source.clone(),
            identity,
        })
    }

    /// Whether `name` is, or with `_` read as `-` spells, a screened header.
    pub fn is_screened(&self, name: &HeaderName) -> bool {
        self.screened.contains(name)
            || (name.as_str().contains('_')
                && self
                    .screened
                    .iter()
                    .any(|screened| crate::http::hop::same_but_underscores(name.as_str(), screened.as_str())))
    }

    /// The handshake's verdict on `chain`, remembered for a while: a proxy
    /// multiplexes many clients, each sending the same chain again and again.
    fn verify(&self, chain: &ForwardedChain) -> Result<Arc<ClientIdentity>, ClientCertError> {
        let key = chain_digest(&chain.leaf, &chain.intermediates);
        let now = crate::auth::token::now_seconds() as i64;
        if let Some(verified) = crate::lock::lock(&self.verified)
            && let Some(hit) = verified.get(&key)
            && now <= hit.until
        {
            return Ok(hit.identity.clone());
        }
        self.verifier
            .verify_client_cert(&chain.leaf, &chain.intermediates, UnixTime::now())
            .map_err(|e| CertificateRefusal::of(&e))?;
        let mut identity = ClientIdentity::from_der(chain.leaf.as_ref())?;
        if self.rfc9440_out.sends_cert() {
            identity.rfc9440 = Some(forwarded_cert::rfc9440_value(chain.leaf.as_ref()));
        }
        if self.rfc9440_out.sends_chain() {
            identity.rfc9440_chain = forwarded_cert::rfc9440_chain_value(&chain.intermediates);
        }
        let identity = Arc::new(identity);
        let until = identity.not_after.min(now + VERIFIED_FOR_SECONDS);
        if let Some(mut verified) = crate::lock::lock(&self.verified) {
            if verified.len() >= VERIFIED_ENTRIES {
                verified.clear();
            }
            verified.insert(
                key,
                Verified {
                    identity: identity.clone(),
                    until,
                },
            );
        }
        Ok(identity)
    }
}

/// One digest for a leaf and its intermediates, each length-prefixed so
/// that no two different chains run together into the same bytes.
fn chain_digest(leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for der in std::iter::once(leaf).chain(intermediates) {
        hash.update((der.len() as u64).to_be_bytes());
        hash.update(der.as_ref());
    }
    hash.finalize().into()
}
