//! A fetched CRL is believed only once its signature verifies with the key
//! of a configured CA: the fetch is often plain http, and a forged list
//! that leaves a revoked serial out would otherwise bring it back to life.

use std::collections::HashSet;

use rustls::crypto::WebPkiSupportedAlgorithms;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Why a fetched CRL is not used. The last good list stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlRefusal {
    #[error("the body is not an X.509 CRL")]
    NotACrl,
    #[error("its issuer is none of the configured client_ca certificates")]
    UnknownIssuer,
    #[error("its signature does not verify with its issuer's key")]
    BadSignature,
    #[error("it is older than the list already held (thisUpdate went back)")]
    Older,
    #[error("its thisUpdate is in the future")]
    NotYetValid,
}

/// A CA of `client_ca`, as CRL checks need it.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    /// The CA's subject, DER: a CRL it signed names it as issuer.
    pub subject: Box<[u8]>,
    /// Its issuer and serial: a CRL of *its* issuer may revoke it.
    pub issuer: Box<[u8]>,
    pub serial: Box<[u8]>,
    /// The SubjectPublicKeyInfo's algorithm (the SEQUENCE's content) and key bits.
    key_algorithm: Box<[u8]>,
    public_key: Box<[u8]>,
    /// Its own CRL Distribution Points: where its issuer's CRL lives.
    pub crl_urls: Box<[Box<str>]>,
}

impl TrustedCa {
    pub fn from_der(der: &[u8]) -> Option<TrustedCa> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let (key_algorithm, public_key) = spki_parts(cert.public_key().raw)?;
        Some(TrustedCa {
            subject: cert.subject().as_raw().into(),
            issuer: cert.issuer().as_raw().into(),
            serial: cert.raw_serial().into(),
            key_algorithm: key_algorithm.into(),
            public_key: public_key.into(),
            crl_urls: crate::conn::identity::crl_urls(&cert),
        })
    }
}

/// What a verified CRL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCrl {
    pub issuer: Box<[u8]>,
    pub revoked: HashSet<Box<[u8]>>,
    /// Seconds since the epoch.
    pub this_update: i64,
    pub next_update: Option<i64>,
}

/// Parses `der` and verifies its signature with the key of the CA in `cas`
/// whose subject is its issuer.
pub fn verify(
    der: &[u8],
    cas: &[TrustedCa],
    algorithms: &WebPkiSupportedAlgorithms,
    now: i64,
) -> Result<VerifiedCrl, CrlRefusal> {
    let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|_| CrlRefusal::NotACrl)?;
    if !rest.is_empty() {
        return Err(CrlRefusal::NotACrl);
    }
    let issuer: Box<[u8]> = crl.issuer().as_raw().into();
    let (tbs, signature_algorithm, signature) = signed_parts(der).ok_or(CrlRefusal::NotACrl)?;
    let ca = cas
        .iter()
        .find(|ca| ca.subject == issuer)
        .ok_or(CrlRefusal::UnknownIssuer)?;
    let verified = algorithms.all.iter().any(|algorithm| {
        algorithm.public_key_alg_id().as_ref() == &*ca.key_algorithm
            && algorithm.signature_alg_id().as_ref() == signature_algorithm
            && algorithm.verify_signature(&ca.public_key, tbs, signature).is_ok()
    });
    if !verified {
        return Err(CrlRefusal::BadSignature);
    }
    let this_update = crl.last_update().timestamp();
    // A little slack for clocks: CAs often stamp a list the second they sign it.
    if this_update > now + 300 {
        return Err(CrlRefusal::NotYetValid);
    }
    Ok(VerifiedCrl {
        issuer,
        revoked: crl
            .iter_revoked_certificates()
            .map(|entry| Box::<[u8]>::from(entry.raw_serial()))
            .collect(),
        this_update,
        next_update: crl.next_update().map(|t| t.timestamp()),
    })
}

/// `CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }`:
/// the signed bytes (tbsCertList whole), the algorithm's content, the signature.
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let list = Element::read(der, SEQUENCE)?;
    let tbs = Element::read(list.content, SEQUENCE)?;
    let algorithm = Element::read(tbs.rest, SEQUENCE)?;
    let signature = Element::read(algorithm.rest, BIT_STRING)?;
    Some((tbs.whole, algorithm.content, bit_string(signature.content)?))
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }`.
fn spki_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let spki = Element::read(der, SEQUENCE)?;
    let algorithm = Element::read(spki.content, SEQUENCE)?;
    let key = Element::read(algorithm.rest, BIT_STRING)?;
    Some((algorithm.content, bit_string(key.content)?))
}

/// A BIT STRING's content without its unused-bits byte, which must be zero
/// for keys and signatures.
fn bit_string(content: &[u8]) -> Option<&[u8]> {
    match content.split_first() {
        Some((0, bits)) => Some(bits),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;

/// One DER element at the start of some input.
struct Element<'a> {
    content: &'a [u8],
    /// Tag, length and content: what a signature covers.
    whole: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

impl<'a> Element<'a> {
    /// The element `input` starts with, if it is one with tag `tag`.
    fn read(input: &'a [u8], tag: u8) -> Option<Element<'a>> {
        let (&found, rest) = input.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let length = rest[..count].iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
            (length, &rest[count..])
        };
        if rest.len() < length {
            return None;
        }
        let header = input.len() - rest.len();
        Some(Element {
            content: &rest[..length],
            whole: &input[..header + length],
            rest: &rest[length..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestCa {
        params: rcgen::CertificateParams,
        key: rcgen::KeyPair,
        der: Vec<u8>,
    }

    fn ca(alg: &'static rcgen::SignatureAlgorithm) -> TestCa {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "test ca");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::KeyCertSign];
        let der = params.self_signed(&key).unwrap().der().to_vec();
        TestCa { params, key, der }
    }

    fn crl(ca: &TestCa, revoked: &[u64], this_update: time::OffsetDateTime) -> Vec<u8> {
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update: this_update + time::Duration::hours(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
        params.signed_by(&issuer).unwrap().der().to_vec()
    }

    fn algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_crl_signed_by_a_configured_ca_is_believed() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let ca = ca(alg);
            let trusted = TrustedCa::from_der(&ca.der).unwrap();
            let der = crl(&ca, &[7, 9], time::OffsetDateTime::now_utc());
            let verified = verify(&der, &[trusted], &algorithms(), now()).unwrap();
            assert_eq!(verified.revoked.len(), 2);
            assert!(verified.revoked.contains(&[7u8][..]));
            assert!(verified.next_update.unwrap() > verified.this_update);
        }
    }

    #[test]
    fn a_crl_signed_by_another_key_or_tampered_with_is_refused() {
        let (real, impostor) = (ca(&rcgen::PKCS_ECDSA_P256_SHA256), ca(&rcgen::PKCS_ECDSA_P256_SHA256));
        let trusted = TrustedCa::from_der(&real.der).unwrap();
        // Same subject ("test ca"), other key: exactly what a forger would make.
        let forged = crl(&impostor, &[], time::OffsetDateTime::now_utc());
        assert_eq!(
            verify(&forged, std::slice::from_ref(&trusted), &algorithms(), now()),
            Err(CrlRefusal::BadSignature)
        );
        let mut tampered = crl(&real, &[7], time::OffsetDateTime::now_utc());
        let serial = tampered.iter().rposition(|&b| b == 7).unwrap();
        tampered[serial] = 8;
        assert!(verify(&tampered, std::slice::from_ref(&trusted), &algorithms(), now()).is_err());
        assert_eq!(
            verify(b"not a crl", &[trusted], &algorithms(), now()),
            Err(CrlRefusal::NotACrl)
        );
    }

    #[test]
    fn a_crl_of_an_unconfigured_issuer_or_from_the_future_is_refused() {
        let (configured, other) = (ca(&rcgen::PKCS_ECDSA_P256_SHA256), ca(&rcgen::PKCS_ED25519));
        let mut other_subject = TrustedCa::from_der(&configured.der).unwrap();
        other_subject.subject = Box::from(&b"elsewhere"[..]);
        let der = crl(&other, &[], time::OffsetDateTime::now_utc());
        assert_eq!(
            verify(&der, &[other_subject], &algorithms(), now()),
            Err(CrlRefusal::UnknownIssuer)
        );
        let trusted = TrustedCa::from_der(&configured.der).unwrap();
        let future = crl(
            &configured,
            &[],
            time::OffsetDateTime::now_utc() + time::Duration::hours(2),
        );
        assert_eq!(
            verify(&future, &[trusted], &algorithms(), now()),
            Err(CrlRefusal::NotYetValid)
        );
    }

    #[test]
    fn der_elements_read_long_lengths_and_refuses_short_input() {
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0xab, 256));
        let element = Element::read(&long, 0x04).unwrap();
        assert_eq!(
            (element.content.len(), element.whole.len(), element.rest.len()),
            (256, 260, 0)
        );
        assert!(Element::read(&long, SEQUENCE).is_none());
        assert!(Element::read(&long[..100], 0x04).is_none());
        assert!(Element::read(&[0x30, 0x80], SEQUENCE).is_none());
        assert!(Element::read(&[0x30], SEQUENCE).is_none());
    }
}
