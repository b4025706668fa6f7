//! Who is on the other end of a connection: the client certificate's
//! RFC 8705 thumbprint and the names forwarded upstream. Computed once per
//! connection, right after the handshake.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// The identity of a TLS client, taken from its leaf certificate.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// `x5t#S256`: base64url (no padding) of SHA-256 over the DER as presented.
    pub x5t_s256: String,
    /// RFC 4514 string form of the subject.
    pub subject: String,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    /// The `x-forwarded-client-cert` value, rendered once.
    pub xfcc: HeaderValue,
    /// `notAfter`, in seconds since the epoch.
    pub not_after: i64,
    /// What a CRL names the certificate by, so a reload can revoke it on open connections.
    pub issuer_serial: IssuerSerial,
    /// SHA-256 of the SubjectPublicKeyInfo: what a `trusted_proxy` pins.
    pub spki_sha256: [u8; 32],
    /// RFC 9440's `Client-Cert` value, rendered once when
    /// `forward.client_cert_header = "rfc9440"` asks for it.
    pub rfc9440: Option<HeaderValue>,
    /// RFC 9440's `Client-Cert-Chain` value, with `"rfc9440-chain"` and intermediates to send.
    pub rfc9440_chain: Option<HeaderValue>,
    /// The http(s) URLs of its CRL Distribution Points, for `server.crl_fetch`.
    pub crl_urls: Box<[Box<str>]>,
}

/// A certificate as a CRL names it: its issuer's name (DER, exactly as
/// encoded in the certificate) and its serial number (the INTEGER's bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IssuerSerial {
    pub issuer: Box<[u8]>,
    pub serial: Box<[u8]>,
}

/// Why a presented certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate is not valid X.509 DER: {0}")]
    NotX509(String),
}

/// Whose certificate a request is judged by: the one of the connection's
/// handshake, or, from a trusted proxy, the one it forwarded (or none: a
/// trusted hop's request without the header has no client certificate,
/// and is never judged by the proxy's own).
#[derive(Debug, Clone, Default)]
pub enum RequestCert {
    #[default]
    Handshake,
    Forwarded {
        /// `proxy:<name>`.
        source: std::sync::Arc<str>,
        identity: Option<std::sync::Arc<ClientIdentity>>,
    },
}

/// `cert_source` of requests judged by their own handshake's certificate.
pub const CERT_SOURCE_TLS: &str = "tls";

impl RequestCert {
    /// The certificate the request is judged by; `handshake` is the connection's.
    pub fn identity<'a>(&'a self, handshake: Option<&'a ClientIdentity>) -> Option<&'a ClientIdentity> {
        match self {
            RequestCert::Handshake => handshake,
            RequestCert::Forwarded { identity, .. } => identity.as_deref(),
        }
    }

    /// `tls` or `proxy:<name>`, for the access log and the metrics.
    pub fn source(&self) -> &str {
        match self {
            RequestCert::Handshake => CERT_SOURCE_TLS,
            RequestCert::Forwarded { source, .. } => source,
        }
    }

    /// [`Self::source`] as a shared metrics label: counting allocates nothing.
    pub fn source_label(&self) -> std::sync::Arc<str> {
        static TLS: std::sync::LazyLock<std::sync::Arc<str>> =
            std::sync::LazyLock::new(|| std::sync::Arc::from(CERT_SOURCE_TLS));
        match self {
            RequestCert::Handshake => TLS.clone(),
            RequestCert::Forwarded { source, .. } => source.clone(),
        }
    }
}

/// A `peer_spki_sha256` as `gateway.toml` writes it: base64url, no padding.
pub fn spki_pin(digest: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}

/// The RFC 8705 `x5t#S256` of a DER certificate.
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

impl ClientIdentity {
    /// Reads the identity of the leaf certificate `der`, exactly as presented.
    pub fn from_der(der: &[u8]) -> Result<ClientIdentity, IdentityError> {
        let digest = Sha256::digest(der);
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::NotX509(e.to_string()))?;
        let subject = rfc4514(cert.subject());
        let not_after = cert.validity().not_after.timestamp();
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push((*uri).to_string()),
                    GeneralName::DNSName(name) => dns.push((*name).to_string()),
                    _ => {}
                }
            }
        }
        let sha256_hex = digest.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let xfcc = render_xfcc(&sha256_hex, &subject, &uris, &dns);
        let issuer_serial = IssuerSerial {
            issuer: cert.issuer().as_raw().into(),
            serial: cert.raw_serial().into(),
        };
        let spki_sha256 = Sha256::digest(cert.public_key().raw).into();
        let crl_urls = crl_urls(&cert);
        Ok(ClientIdentity {
            x5t_s256: URL_SAFE_NO_PAD.encode(digest),
            subject,
            uris,
            dns,
            xfcc,
            not_after,
            issuer_serial,
            spki_sha256,
            rfc9440: None,
            rfc9440_chain: None,
            crl_urls,
        })
    }
}

/// Distribution points a certificate names for its issuer's CRL: only full
/// names that are http or https URLs (LDAP is not fetched), and only the
/// first few, since the CA decides how many there are.
pub fn crl_urls(cert: &X509Certificate<'_>) -> Box<[Box<str>]> {
    use x509_parser::extensions::{DistributionPointName, ParsedExtension};
    const MAX_URLS: usize = 4;
    let mut urls = Vec::new();
    for extension in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = extension.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            for name in names {
                if let GeneralName::URI(uri) = name
                    && (uri.starts_with("http://") || uri.starts_with("https://"))
                    && urls.len() < MAX_URLS
                {
                    urls.push(Box::<str>::from(*uri));
                }
            }
        }
    }
    urls.into_boxed_slice()
}

/// Envoy's XFCC element: `Hash=..;Subject="..";URI=..;DNS=..`.
fn render_xfcc(hash: &str, subject: &str, uris: &[String], dns: &[String]) -> HeaderValue {
    let mut out = format!("Hash={hash};Subject={}", xfcc_quoted(subject));
    for uri in uris {
        let _ = write!(out, ";URI={}", xfcc_value(uri));
    }
    for name in dns {
        let _ = write!(out, ";DNS={}", xfcc_value(name));
    }
    // Names come from a certificate a CA signed, but a byte outside visible
    // ASCII would still make an invalid header: fall back to the hash alone.
    HeaderValue::from_str(&out)
        .unwrap_or_else(|_| HeaderValue::from_str(&format!("Hash={hash}")).unwrap_or(HeaderValue::from_static("")))
}

fn xfcc_value(value: &str) -> String {
    if value.contains([',', ';', '=', '"']) {
        xfcc_quoted(value)
    } else {
        value.to_string()
    }
}

fn xfcc_quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// RFC 4514: RDNs last-to-first, joined by `,`; multi-valued RDNs by `+`.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type();
                let label = x509_parser::objects::oid2abbrev(oid, registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| oid.to_id_string());
                // Other types are `#` and the hex of the value's whole
                // encoding, tag and length included (RFC 4514 section 2.4).
                let value = match (attr.as_str(), attr.attr_value().to_der_vec()) {
                    (Ok(s), _) => escape_rfc4514(s),
                    (Err(_), Ok(der)) => der.iter().fold("#".to_string(), |mut s, b| {
                        let _ = write!(s, "{b:02x}");
                        s
                    }),
                    (Err(_), Err(_)) => "#".to_string(),
                };
                format!("{label}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// Escapes as RFC 4514 section 2.4 asks, and, as OpenSSL's RFC 2253 form
/// that Envoy and nginx forward does, control and non-ASCII characters as
/// `\XX` per UTF-8 byte: the result is visible ASCII, so it fits a header.
fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if c.is_ascii_control() || !c.is_ascii() {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
            continue;
        }
        let needs_escape = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if needs_escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(der: &[u8]) -> String {
        sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn thumbprint_is_unpadded_base64url_of_sha256() {
        // SHA-256("abc"), a published test vector.
        assert_eq!(x5t_s256(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }

    #[test]
    fn identity_reads_subject_and_sans() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["svc.example".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "client-a");
        params
            .subject_alt_names
            .push(rcgen::SanType::URI("spiffe://example.org/ns/a".try_into().unwrap()));
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.x5t_s256, x5t_s256(cert.der()));
        assert_eq!(id.subject, "CN=client-a,O=Acme\\, Inc");
        assert_eq!(id.dns, vec!["svc.example"]);
        assert_eq!(id.uris, vec!["spiffe://example.org/ns/a"]);
        let spki: [u8; 32] = Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
        assert_eq!(id.spki_sha256, spki);
        assert_eq!(
            id.xfcc.to_str().unwrap(),
            format!(
                "Hash={};Subject=\"CN=client-a,O=Acme\\\\, Inc\";URI=spiffe://example.org/ns/a;DNS=svc.example",
                sha256_hex(cert.der())
            )
        );
    }

    /// Found by fuzz/fuzz_targets/xfcc_roundtrip.rs: the `#` form carried
    /// the value's content without its tag and length, not its BER encoding.
    #[test]
    fn subject_values_without_a_string_form_are_hex_of_their_encoding() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let bmp = rcgen::string::BmpString::try_from("Ab").unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, rcgen::DnValue::BmpString(bmp));
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        // BMPString (tag 0x1e), 4 bytes: UCS-2 "Ab".
        assert_eq!(id.subject, "O=#1e0400410062");
    }

    /// Found by fuzz/fuzz_targets/xfcc_roundtrip.rs: a subject with a
    /// control character made XFCC fall back to the hash alone, and a
    /// non-ASCII one went upstream as raw UTF-8 bytes.
    #[test]
    fn control_and_non_ascii_subject_characters_are_hex_escaped_and_reach_xfcc() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::LocalityName, "Z\u{fc}rich");
        params.distinguished_name.push(rcgen::DnType::CommonName, "a\nb\u{0}");
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.subject, "CN=a\\0Ab\\00,L=Z\\C3\\BCrich");
        assert_eq!(
            id.xfcc.to_str().unwrap(),
            format!(
                "Hash={};Subject=\"CN=a\\\\0Ab\\\\00,L=Z\\\\C3\\\\BCrich\"",
                sha256_hex(cert.der())
            )
        );
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert!(ClientIdentity::from_der(b"not a certificate").is_err());
    }
}
