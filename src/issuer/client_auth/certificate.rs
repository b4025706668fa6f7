//! The certificate methods of RFC 8705 section 2: `tls_client_auth` (a
//! chain to `client_ca` naming the client) and `self_signed_tls_client_auth`
//! (a public key the client registered). Both read the certificate the TLS
//! handshake already checked possession of.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use subtle::{Choice, ConstantTimeEq};
use x509_parser::prelude::{FromDer, GeneralName, SubjectPublicKeyInfo, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::{AuthMethod, ClientAuthError};
use crate::config::CertificateSubject;
use crate::conn::ChainVerdict;
use crate::conn::identity::x5t_s256;
use crate::jose::jwk::{KeySet, ThumbprintInput, thumbprint};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// Whether a `tls_client_auth` chain still needs its verification.
pub(super) enum Chain<'v> {
    /// This connection's chain was accepted by the same verifier, and has not expired since.
    Verified,
    /// Verify it with `verifier`; on success, `remember` it in the
    /// connection's verdict under the verifier's id.
    Unverified {
        verifier: &'v dyn ClientCertVerifier,
        remember: Option<(&'v ChainVerdict, u64)>,
    },
}

/// RFC 8705 section 2.1: `chain` (leaf first) verifies against `client_ca`
/// as the gateway's handshake would verify it, and the leaf names the
/// client as `subject` says. Returns the leaf's `x5t#S256`.
pub(super) fn tls_client_auth(
    verification: Chain<'_>,
    subject: &CertificateSubject,
    chain: &[CertificateDer<'_>],
    now: f64,
) -> Result<String, ClientAuthError> {
    let method = AuthMethod::TlsClientAuth;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(ClientAuthError::CertificateMissing { method })?;
    if let Chain::Unverified { verifier, remember } = verification {
        verifier
            .verify_client_cert(leaf, intermediates, unix_time(now))
            .map_err(rejected)?;
        if let Some((verdict, verifier_id)) = remember {
            verdict.record(verifier_id, earliest_expiry(chain, method)?);
        }
    }
    let cert = parse(leaf, method)?;
    if !names(&cert, subject) {
        return Err(ClientAuthError::CertificateSubjectMismatch);
    }
    Ok(x5t_s256(leaf))
}

/// RFC 8705 section 2.2: the leaf of `chain` is in its validity period and
/// its public key is one of `keys`. No chain is built: the client vouches
/// for its own certificate by registering its key. Returns the leaf's `x5t#S256`.
pub(super) fn self_signed(keys: &KeySet, chain: &[CertificateDer<'_>], now: f64) -> Result<String, ClientAuthError> {
    let method = AuthMethod::SelfSignedTlsClientAuth;
    let leaf = chain.first().ok_or(ClientAuthError::CertificateMissing { method })?;
    let cert = parse(leaf, method)?;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() as f64 {
        return Err(ClientAuthError::CertificateNotYetValid { method });
    }
    if now > validity.not_after.timestamp() as f64 {
        return Err(ClientAuthError::CertificateExpired { method });
    }
    let presented = spki_thumbprint(cert.public_key()).ok_or(ClientAuthError::CertificateKeyNotRegistered)?;
    // Every key is compared, in constant time, so timing tells nothing of which key (if any) matched.
    let registered = keys.keys().fold(Choice::from(0), |found, key| {
        found | key.thumbprint().as_bytes().ct_eq(presented.as_bytes())
    });
    if !bool::from(registered) {
        return Err(ClientAuthError::CertificateKeyNotRegistered);
    }
    Ok(x5t_s256(leaf))
}

/// The earliest `notAfter` of the presented chain, in seconds since the epoch.
fn earliest_expiry(chain: &[CertificateDer<'_>], method: AuthMethod) -> Result<f64, ClientAuthError> {
    let mut earliest = f64::INFINITY;
    for der in chain {
        let cert = parse(der, method)?;
        earliest = earliest.min(cert.validity().not_after.timestamp() as f64);
    }
    Ok(earliest)
}

/// Seconds since the epoch as rustls takes them; a clock before 1970 is the epoch.
fn unix_time(now: f64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::try_from_secs_f64(now).unwrap_or_default())
}

fn parse<'a>(der: &'a CertificateDer<'_>, method: AuthMethod) -> Result<X509Certificate<'a>, ClientAuthError> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(ClientAuthError::CertificateMalformed { method }),
    }
}

/// The verifier's refusal, as the reason a client is told and counted by.
fn rejected(error: rustls::Error) -> ClientAuthError {
    let method = AuthMethod::TlsClientAuth;
    let rustls::Error::InvalidCertificate(reason) = &error else {
        return ClientAuthError::CertificateUntrusted(error);
    };
    match reason {
        CertificateError::Revoked => ClientAuthError::CertificateRevoked,
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            ClientAuthError::CertificateExpired { method }
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            ClientAuthError::CertificateNotYetValid { method }
        }
        CertificateError::BadEncoding => ClientAuthError::CertificateMalformed { method },
        // Unknown issuer, wrong purpose, unknown revocation status, bad signature...:
        // a chain the gateway's handshake would refuse too.
        _ => ClientAuthError::CertificateUntrusted(error),
    }
}

/// Whether `cert` is the one `subject` describes: the subject DN by RFC 4517
/// `distinguishedNameMatch`, a URI SAN exactly, a DNS SAN ignoring case.
fn names(cert: &X509Certificate<'_>, subject: &CertificateSubject) -> bool {
    match subject {
        CertificateSubject::SubjectDn(dn) => dn.matches(cert.subject()),
        CertificateSubject::SanUri(uri) => sans(cert).any(|name| matches!(name, GeneralName::URI(u) if u == uri)),
        CertificateSubject::SanDns(dns) => {
            sans(cert).any(|name| matches!(name, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(dns)))
        }
    }
}

/// The subject alternative names; none when the extension is absent or
/// unreadable (a duplicated extension, say), which then names no client.
fn sans<'c>(cert: &'c X509Certificate<'_>) -> impl Iterator<Item = &'c GeneralName<'c>> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .into_iter()
        .flat_map(|san| san.value.general_names.iter())
}

/// The RFC 7638 thumbprint of a certificate's public key, as the JWK of the
/// same key would have it; `None` for a key type no JWK here can hold.
fn spki_thumbprint(spki: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let key: &[u8] = &spki.subject_public_key.data;
    match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?.to_id_string();
            let (crv, len) = match curve.as_str() {
                OID_P256 => ("P-256", 32),
                OID_P384 => ("P-384", 48),
                _ => return None,
            };
            // Only the uncompressed form (0x04 || x || y): what certificates carry.
            let point = key.strip_prefix(&[4])?;
            if point.len() != 2 * len {
                return None;
            }
            let (x, y) = point.split_at(len);
            Some(thumbprint(ThumbprintInput::Ec {
                crv,
                x: &b64(x),
                y: &b64(y),
            }))
        }
        OID_ED25519 if key.len() == 32 => Some(thumbprint(ThumbprintInput::Okp {
            crv: "Ed25519",
            x: &b64(key),
        })),
        OID_RSA => match spki.parsed().ok()? {
            // DER integers carry a leading zero when the top bit is set; a JWK's do not (RFC 7518 section 6.3.1).
            PublicKey::RSA(rsa) => Some(thumbprint(ThumbprintInput::Rsa {
                e: &b64(without_leading_zeros(rsa.exponent)),
                n: &b64(without_leading_zeros(rsa.modulus)),
            })),
            _ => None,
        },
        _ => None,
    }
}

fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}
