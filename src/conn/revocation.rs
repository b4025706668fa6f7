//! Client certificates revoked by the configured CRLs, as a set a request
//! can be checked against. The handshake already refuses a revoked
//! certificate; this set reaches connections opened before a CRL reload.

use std::collections::HashSet;

use rustls_pki_types::CertificateRevocationListDer;
use x509_parser::der_parser::error::BerError;
use x509_parser::error::X509Error;
use x509_parser::nom::error::ErrorKind;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::conn::identity::IssuerSerial;

/// Why a CRL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("CRL number {position} in the file is not a valid X.509 CRL: {reason}")]
    NotACrl { position: usize, reason: String },
    #[error("CRL number {position} in the file is followed by {extra} bytes that are not part of it")]
    TrailingBytes { position: usize, extra: usize },
}

/// Every (issuer, serial) the configured CRLs revoke.
#[derive(Debug, Default)]
pub struct RevocationSet {
    revoked: HashSet<IssuerSerial>,
}

impl RevocationSet {
    /// Adds what the CRLs of one file revoke; `position` in errors counts from 1.
    pub fn add_file(&mut self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), CrlError> {
        for (index, der) in crls.iter().enumerate() {
            let position = index + 1;
            let (rest, crl) = CertificateRevocationList::from_der(der.as_ref()).map_err(|e| CrlError::NotACrl {
                position,
                reason: parse_failure(e),
            })?;
            if !rest.is_empty() {
                return Err(CrlError::TrailingBytes {
                    position,
                    extra: rest.len(),
                });
            }
            let issuer: Box<[u8]> = crl.issuer().as_raw().into();
            for entry in crl.iter_revoked_certificates() {
                self.revoked.insert(IssuerSerial {
                    issuer: issuer.clone(),
                    serial: entry.raw_serial().into(),
                });
            }
        }
        Ok(())
    }

    /// Whether a CRL revokes the certificate named so. Without revocations
    /// (the usual case) this costs one comparison.
    pub fn is_revoked(&self, certificate: &IssuerSerial) -> bool {
        !self.revoked.is_empty() && self.revoked.contains(certificate)
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

fn parse_failure(e: x509_parser::nom::Err<X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Incomplete(_) => "it ends early (truncated DER)".to_string(),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => match e {
            // nom's own words ("Eof") tell an operator nothing.
            X509Error::NomError(ErrorKind::Eof) => "it ends early (truncated DER)".to_string(),
            X509Error::NomError(kind) => format!("malformed DER ({kind:?})"),
            X509Error::Der(BerError::UnexpectedTag { .. }) => format!("the DER is not a CRL structure ({e})"),
            other => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crl_of(revoked: &[u64]) -> (Vec<u8>, Box<[u8]>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::KeyCertSign];
        let ca = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::prelude::X509Certificate::from_der(ca.der()).unwrap();
        let subject: Box<[u8]> = parsed.subject().as_raw().into();
        let now = time::OffsetDateTime::now_utc();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&params, &key);
        (crl.signed_by(&issuer).unwrap().der().to_vec(), subject)
    }

    #[test]
    fn revoked_serials_of_the_crl_issuer_are_revoked_and_nothing_else() {
        let (der, issuer) = crl_of(&[7]);
        let mut set = RevocationSet::default();
        set.add_file(&[CertificateRevocationListDer::from(der)]).unwrap();
        let named = |issuer: &[u8], serial: &[u8]| IssuerSerial {
            issuer: issuer.into(),
            serial: serial.into(),
        };
        assert!(set.is_revoked(&named(&issuer, &[7])));
        assert!(!set.is_revoked(&named(&issuer, &[8])));
        assert!(!set.is_revoked(&named(b"another issuer", &[7])));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused_with_their_position() {
        let (good, _) = crl_of(&[]);
        let mut set = RevocationSet::default();
        let garbage = CertificateRevocationListDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = set
            .add_file(&[CertificateRevocationListDer::from(good.clone()), garbage])
            .unwrap_err();
        assert!(matches!(err, CrlError::NotACrl { position: 2, .. }), "{err}");
        let mut trailing = good;
        trailing.extend_from_slice(b"xx");
        let err = set
            .add_file(&[CertificateRevocationListDer::from(trailing)])
            .unwrap_err();
        assert!(
            matches!(err, CrlError::TrailingBytes { position: 1, extra: 2 }),
            "{err}"
        );
    }
}
