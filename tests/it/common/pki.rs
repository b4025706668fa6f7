//! A throwaway PKI in a temp dir: a CA, a server certificate for localhost,
//! and client certificates of every kind the tests need.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// A certificate (chain) and key on disk.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// DER of the leaf, exactly as the client will present it.
    pub leaf_der: Vec<u8>,
}

impl CertFiles {
    /// RFC 8705 x5t#S256, computed here independently of the gateway.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.leaf_der))
    }

    /// base64url (no padding) SHA-256 of the leaf's DER SubjectPublicKeyInfo:
    /// what `trusted_proxy.peer_spki_sha256` pins, computed here independently.
    pub fn spki_sha256(&self) -> String {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&self.leaf_der).unwrap();
        URL_SAFE_NO_PAD.encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
    }

    /// The leaf alone as PEM, as a front proxy would forward it.
    pub fn leaf_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.leaf_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// Lowercase hex SHA-256 of the leaf, as Envoy's XFCC `Hash`.
    pub fn sha256_hex(&self) -> String {
        Sha256::digest(&self.leaf_der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A certificate authority able to sign more certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
    pub cert_path: PathBuf,
}

impl Ca {
    /// A self-signed root CA.
    pub fn new(dir: &Path, name: &str) -> Ca {
        Ca::create(dir, name, None)
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, dir: &Path, name: &str) -> Ca {
        Ca::create(dir, name, Some(self))
    }

    fn create(dir: &Path, name: &str, parent: Option<&Ca>) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = params(name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = match parent {
            None => params.self_signed(&key).unwrap(),
            Some(parent) => params.signed_by(&key, &parent.issuer()).unwrap(),
        };
        let cert_path = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        Ca {
            params,
            key,
            cert_pem: cert.pem(),
            cert_path,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// A client certificate (EKU clientAuth) with a URI SAN; `chain` appends this CA's certificate.
    pub fn client(&self, dir: &Path, name: &str, chain: bool) -> CertFiles {
        self.client_with(dir, name, chain, |_| {})
    }

    /// A client certificate valid only between `not_before` and `not_after`
    /// (an expired one, say).
    pub fn client_valid(
        &self,
        dir: &Path,
        name: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> CertFiles {
        self.client_with(dir, name, false, |p| {
            p.not_before = not_before;
            p.not_after = not_after;
        })
    }

    fn client_with(
        &self,
        dir: &Path,
        name: &str,
        chain: bool,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut p = params(name, &[]);
        adjust(&mut p);
        p.subject_alt_names = vec![SanType::URI(format!("spiffe://test/{name}").try_into().unwrap())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer()).unwrap();
        let mut pem = cert.pem();
        if chain {
            pem.push_str(&self.cert_pem);
        }
        write_pair(dir, name, &pem, &key, cert.der().to_vec())
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self, dir: &Path, name: &str) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut p = params("localhost", &["localhost", "127.0.0.1"]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer()).unwrap();
        write_pair(dir, name, &cert.pem(), &key, cert.der().to_vec())
    }

    /// A PEM CRL revoking the certificates with these serial numbers (from [`serial_of`]).
    pub fn crl(&self, dir: &Path, name: &str, revoked_serials: &[Vec<u8>]) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(5),
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(serial),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()).unwrap();
        let path = dir.join(format!("{name}.crl.pem"));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    /// A client certificate whose CRL Distribution Point is `crl_url`.
    pub fn client_with_crl_url(&self, dir: &Path, name: &str, crl_url: &str) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut p = params(name, &[]);
        p.subject_alt_names = vec![SanType::URI(format!("spiffe://test/{name}").try_into().unwrap())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![crl_url.to_string()],
        }];
        let cert = p.signed_by(&key, &self.issuer()).unwrap();
        write_pair(dir, name, &cert.pem(), &key, cert.der().to_vec())
    }

    /// A DER CRL (as distribution points serve them) issued `age` ago and
    /// valid for `validity` from then: a negative remainder is an expired list.
    pub fn crl_der(&self, revoked_serials: &[Vec<u8>], age: time::Duration, validity: time::Duration) -> Vec<u8> {
        let this_update = time::OffsetDateTime::now_utc() - age;
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update: this_update + validity,
            crl_number: rcgen::SerialNumber::from(this_update.unix_timestamp() as u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).unwrap().der().to_vec()
    }
}

/// A self-signed client certificate (RFC 8705 section 2.2).
pub fn self_signed_client(dir: &Path, name: &str) -> CertFiles {
    let key = KeyPair::generate().unwrap();
    let mut p = params(name, &[]);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.self_signed(&key).unwrap();
    write_pair(dir, name, &cert.pem(), &key, cert.der().to_vec())
}

/// The serial number of a DER certificate.
pub fn serial_of(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.raw_serial().to_vec()
}

fn params(common_name: &str, sans: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "bindgate tests");
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(30);
    p
}

fn write_pair(dir: &Path, name: &str, cert_pem: &str, key: &KeyPair, leaf_der: Vec<u8>) -> CertFiles {
    let cert = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    CertFiles {
        cert,
        key: key_path,
        leaf_der,
    }
}

/// The standard set: a trusted CA, a server certificate, clients A and B.
pub struct Pki {
    pub ca: Ca,
    pub server: CertFiles,
    pub client_a: CertFiles,
    pub client_b: CertFiles,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca = Ca::new(dir, "ca");
        let server = ca.server(dir, "server");
        let client_a = ca.client(dir, "client-a", false);
        let client_b = ca.client(dir, "client-b", false);
        Pki {
            ca,
            server,
            client_a,
            client_b,
        }
    }
}
