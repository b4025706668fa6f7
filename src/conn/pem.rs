//! Reading certificates and keys from PEM files, with errors that say what
//! was wrong with the file and never echo key material.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("holds no PEM certificate")]
    NoCertificates,
    #[error("holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey,
    #[error("holds no certificate revocation list (PEM \"X509 CRL\" or DER)")]
    NoCrl,
    #[error("holds a certificate that is not a usable trust anchor: {0}")]
    NotTrustAnchor(String),
    #[error("is not valid PEM: {0}")]
    Malformed(String),
}

fn classify(e: pem::Error, missing: PemError) -> PemError {
    match e {
        pem::Error::Io(io) => PemError::Unreadable(io),
        pem::Error::NoItemsFound => missing,
        pem::Error::Base64Decode(_) => PemError::Malformed("a section is not valid base64".to_string()),
        pem::Error::MissingSectionEnd { .. } => PemError::Malformed("a section has no END line".to_string()),
        pem::Error::IllegalSectionStart { .. } => PemError::Malformed("a BEGIN line is malformed".to_string()),
        other => PemError::Malformed(other.to_string()),
    }
}

/// Every certificate in `path`, in file order (leaf first for a chain).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = std::fs::read(path).map_err(PemError::Unreadable)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| classify(e, PemError::NoCertificates))?;
    if certs.is_empty() {
        return Err(PemError::NoCertificates);
    }
    Ok(certs)
}

/// The first private key in `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = std::fs::read(path).map_err(PemError::Unreadable)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| classify(e, PemError::NoPrivateKey))
}

/// Every CRL in `path`: PEM `X509 CRL` sections, or one DER-encoded CRL.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    let bytes = std::fs::read(path).map_err(PemError::Unreadable)?;
    // DER starts with a SEQUENCE tag; PEM with text.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| classify(e, PemError::NoCrl))?;
    if crls.is_empty() {
        return Err(PemError::NoCrl);
    }
    Ok(crls)
}

/// The certificates of `path` as trust anchors, or, without a path, the
/// system's trust store (as curl would use).
pub fn trust_store(path: Option<&Path>) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    match path {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| PemError::NotTrustAnchor(e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A broken system certificate is skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}
