//! The handshake's verifier, with the fetched CRLs' revocations added: a
//! full handshake with a certificate a fetched list revokes fails like one
//! a CRL file revokes. Resumed sessions and open connections are caught per
//! request ([`super::CrlFetcher::check`]); a list not fetched yet, or
//! expired, is also judged there, where the answer can say so.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CrlFetcher;
use crate::conn::identity::IssuerSerial;

pub struct WithFetchedRevocations {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub crls: Arc<CrlFetcher>,
}

impl std::fmt::Debug for WithFetchedRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithFetchedRevocations")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ClientCertVerifier for WithFetchedRevocations {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        // The inner verifier has parsed this DER already; it parses here too.
        if let Ok((_, cert)) = X509Certificate::from_der(end_entity.as_ref()) {
            let named = IssuerSerial {
                issuer: cert.issuer().as_raw().into(),
                serial: cert.raw_serial().into(),
            };
            if self.crls.is_revoked(&named) {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
