//! Distinguished names as `tls_client_auth_subject_dn` writes them (an
//! RFC 4514 string), held in the form RFC 4517's `distinguishedNameMatch`
//! compares, and matched against a certificate's subject.
//!
//! The parser and the matcher live together because both sides must go
//! through the same string preparation (RFC 4518): `CN=svc-a, O=Example`
//! names the same subject as `cn=SVC-A,o=example`, and a byte comparison with
//! whatever string form a certificate library prints would say otherwise.
//! This module is below `conn/` (config is), so it reads `x509-parser`'s
//! name type directly rather than anything of the connection layer.

use std::fmt;

use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag, ToDer};
use x509_parser::prelude::{AttributeTypeAndValue, RelativeDistinguishedName, X509Name};

/// A distinguished name, ready to compare with a certificate's subject.
/// Two names are equal when `distinguishedNameMatch` says so, not when
/// they were written alike.
#[derive(Debug, Clone)]
pub struct DistinguishedName {
    /// As written, for messages and `bindgate check`.
    text: String,
    /// In the certificate's (ASN.1) order, the most general RDN first: the
    /// reverse of the string form.
    rdns: Vec<Rdn>,
}

/// Why a string is not a distinguished name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("is empty; a subject DN names at least one attribute, e.g. \"CN=svc-a,O=example\"")]
    Empty,
    #[error("expected `type=value` at byte {at}")]
    MissingEquals { at: usize },
    #[error(
        "unknown attribute type {0:?}; use a known name (CN, O, OU, C, L, ST, STREET, DC, UID, serialNumber, emailAddress) or a numeric OID such as 2.5.4.3"
    )]
    UnknownAttribute(String),
    #[error("{0:?} is not a numeric OID like 2.5.4.3")]
    BadOid(String),
    #[error("`{0}` at byte {1} must be escaped with a backslash")]
    Unescaped(char, usize),
    #[error("backslash at byte {0} is followed by neither a special character nor two hex digits")]
    BadEscape(usize),
    #[error("the value of {0} is not valid UTF-8 once its escapes are decoded")]
    NotUtf8(String),
    #[error("the `#` value of {0} is not hex-encoded DER (RFC 4514 section 2.4)")]
    BadHexValue(String),
    #[error("{0} appears twice in one RDN")]
    RepeatedAttribute(String),
}

/// One RDN: a set of attribute values, kept sorted so two sets compare as vectors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rdn(Vec<Ava>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ava {
    /// Dotted form, as `x509-parser` renders a certificate's attribute type.
    oid: String,
    value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A string value after RFC 4518 preparation.
    Prepared(String),
    /// A `#hex` value: the attribute's DER encoding, compared byte for byte
    /// (RFC 4514 section 2.4 leaves its matching rule to the attribute).
    Der(Vec<u8>),
}

/// Attribute names RFC 4514 section 3 requires, and the ones certificates
/// commonly carry, with their OIDs. Looked up case-insensitively.
const ATTRIBUTE_TYPES: [(&str, &str); 26] = [
    ("CN", "2.5.4.3"),
    ("commonName", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("countryName", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("localityName", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("stateOrProvinceName", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("streetAddress", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("organizationName", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("organizationalUnitName", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("givenName", "2.5.4.42"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("domainComponent", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("userId", "0.9.2342.19200300.100.1.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    // What Windows and .NET print for emailAddress.
    ("E", "1.2.840.113549.1.9.1"),
];

impl DistinguishedName {
    /// Parses an RFC 4514 string. Spaces around `,`, `+` and `=` are
    /// accepted (as RFC 1779 wrote them), since RFC 4518 makes leading and
    /// trailing spaces of a value insignificant anyway.
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        if text.trim().is_empty() {
            return Err(DnError::Empty);
        }
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let mut rdns = Vec::new();
        let mut avas = Vec::new();
        loop {
            avas.push(scanner.attribute()?);
            match scanner.separator() {
                Some(b'+') => {}
                Some(_) => rdns.push(Rdn::new(std::mem::take(&mut avas))?),
                None => {
                    rdns.push(Rdn::new(avas)?);
                    break;
                }
            }
        }
        rdns.reverse();
        Ok(DistinguishedName {
            text: text.to_string(),
            rdns,
        })
    }

    /// The name as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// RFC 4517 `distinguishedNameMatch`: the same RDNs in the same order,
    /// each the same set of attribute values, strings compared after
    /// RFC 4518 preparation (case and insignificant spaces ignored).
    pub fn matches(&self, name: &X509Name<'_>) -> bool {
        let theirs: Vec<&RelativeDistinguishedName<'_>> = name.iter_rdn().collect();
        theirs.len() == self.rdns.len() && self.rdns.iter().zip(theirs).all(|(ours, theirs)| ours.matches(theirs))
    }
}

impl PartialEq for DistinguishedName {
    fn eq(&self, other: &DistinguishedName) -> bool {
        self.rdns == other.rdns
    }
}

impl Eq for DistinguishedName {}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Rdn {
    fn new(mut avas: Vec<Ava>) -> Result<Rdn, DnError> {
        avas.sort();
        if let Some(pair) = avas.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(DnError::RepeatedAttribute(pair[0].oid.clone()));
        }
        Ok(Rdn(avas))
    }

    fn matches(&self, theirs: &RelativeDistinguishedName<'_>) -> bool {
        let theirs: Vec<&AttributeTypeAndValue<'_>> = theirs.iter().collect();
        if theirs.len() != self.0.len() {
            return false;
        }
        // RDNs hold one to three values in practice: pairing each of ours
        // with an unused one of theirs is as exact as a set comparison.
        let mut used = vec![false; theirs.len()];
        self.0.iter().all(|ours| {
            let found = theirs
                .iter()
                .enumerate()
                .find(|(i, attr)| !used[*i] && ours.matches(attr));
            match found {
                Some((i, _)) => {
                    used[i] = true;
                    true
                }
                None => false,
            }
        })
    }
}

impl Ava {
    fn matches(&self, attr: &AttributeTypeAndValue<'_>) -> bool {
        if attr.attr_type().to_id_string() != self.oid {
            return false;
        }
        match &self.value {
            Value::Prepared(ours) => decode_string(attr.attr_value()).is_some_and(|theirs| prepare(&theirs) == *ours),
            Value::Der(ours) => attr.attr_value().to_der_vec().is_ok_and(|theirs| theirs == *ours),
        }
    }
}

/// RFC 4518 string preparation, minus NFKC normalisation (no Unicode tables
/// in the build): characters mapped to nothing are dropped, every kind of
/// space becomes one space, leading and trailing spaces go, and case is
/// folded (`to_uppercase` then `to_lowercase`, so `ß` meets `SS`).
fn prepare(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut space_pending = false;
    for c in value.chars() {
        if c.is_whitespace() {
            space_pending = !out.is_empty();
            continue;
        }
        if maps_to_nothing(c) {
            continue;
        }
        if space_pending {
            out.push(' ');
            space_pending = false;
        }
        out.extend(c.to_uppercase().flat_map(char::to_lowercase));
    }
    out
}

/// RFC 4518 section 2.2: soft hyphens, joiners, variation selectors, the
/// object replacement character, and control and format characters.
fn maps_to_nothing(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{1806}'
                | '\u{180B}'..='\u{180D}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFFC}'
        )
}

/// A certificate attribute's string value, whichever ASN.1 string type
/// holds it. `None` for a type that is not a string, which then matches
/// only a `#hex` value.
fn decode_string(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_string)
        }
        // What OpenSSL and browsers read a T61String as.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => {
            char::decode_utf16(data.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])))
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString if data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    }
}

fn attribute_oid(name: &str) -> Result<String, DnError> {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        let canonical = name.split('.').count() >= 2
            && name.split('.').all(|arc| {
                !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()) && (arc == "0" || !arc.starts_with('0'))
            });
        return if canonical {
            Ok(name.to_string())
        } else {
            Err(DnError::BadOid(name.to_string()))
        };
    }
    ATTRIBUTE_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, oid)| (*oid).to_string())
        .ok_or_else(|| DnError::UnknownAttribute(name.to_string()))
}

/// Reads an RFC 4514 string a byte at a time: every character with a
/// meaning there is ASCII, so the bytes of a multi-byte UTF-8 character
/// (all at or above 0x80) are never mistaken for one.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// After a value: `,` or `+` (consumed), or `None` at the end.
    fn separator(&mut self) -> Option<u8> {
        self.skip_spaces();
        let next = self.peek();
        if next.is_some() {
            self.pos += 1;
        }
        next
    }

    fn attribute(&mut self) -> Result<Ava, DnError> {
        self.skip_spaces();
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b'=' && b != b',' && b != b'+') {
            self.pos += 1;
        }
        if self.peek() != Some(b'=') {
            return Err(DnError::MissingEquals { at: start });
        }
        let name = String::from_utf8_lossy(&self.bytes[start..self.pos]).trim().to_string();
        if name.is_empty() {
            return Err(DnError::MissingEquals { at: start });
        }
        let oid = attribute_oid(&name)?;
        self.pos += 1;
        self.skip_spaces();
        let value = if self.peek() == Some(b'#') {
            self.pos += 1;
            Value::Der(self.hex_value(&name)?)
        } else {
            Value::Prepared(self.string_value(&name)?)
        };
        Ok(Ava { oid, value })
    }

    fn hex_value(&mut self, name: &str) -> Result<Vec<u8>, DnError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = &self.bytes[start..self.pos];
        let bad = || DnError::BadHexValue(name.to_string());
        if hex.is_empty() || !hex.len().is_multiple_of(2) {
            return Err(bad());
        }
        self.skip_spaces();
        if !matches!(self.peek(), None | Some(b',' | b'+')) {
            return Err(bad());
        }
        let bytes: Vec<u8> = hex
            .chunks_exact(2)
            .map(|pair| hex_digit(pair[0]) * 16 + hex_digit(pair[1]))
            .collect();
        // Stored re-encoded as DER, so a BER length form still meets the certificate's DER.
        match Any::from_der(&bytes) {
            Ok(([], any)) => any.to_der_vec().map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    fn string_value(&mut self, name: &str) -> Result<String, DnError> {
        let mut raw = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b',' | b'+' => break,
                b'\\' => {
                    raw.push(self.escape()?);
                    continue;
                }
                b'"' | b';' | b'<' | b'>' | 0 => return Err(DnError::Unescaped(char::from(b), self.pos)),
                _ => raw.push(b),
            }
            self.pos += 1;
        }
        let value = String::from_utf8(raw).map_err(|_| DnError::NotUtf8(name.to_string()))?;
        Ok(prepare(&value))
    }

    /// A `\` pair (RFC 4514 section 3): a special character, or a byte in hex.
    fn escape(&mut self) -> Result<u8, DnError> {
        let at = self.pos;
        let next = self.bytes.get(at + 1).copied();
        match next {
            Some(b @ (b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\')) => {
                self.pos += 2;
                Ok(b)
            }
            Some(high) if high.is_ascii_hexdigit() => match self.bytes.get(at + 2) {
                Some(&low) if low.is_ascii_hexdigit() => {
                    self.pos += 3;
                    Ok(hex_digit(high) * 16 + hex_digit(low))
                }
                _ => Err(DnError::BadEscape(at)),
            },
            _ => Err(DnError::BadEscape(at)),
        }
    }
}

/// The value of an ASCII hex digit; callers check `is_ascii_hexdigit` first.
fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};
    use x509_parser::prelude::X509Certificate;

    use super::*;

    /// A certificate whose subject holds `attrs`, in this (ASN.1) order.
    fn subject_der(attrs: &[(DnType, DnValue)]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in attrs {
            params.distinguished_name.push(ty.clone(), value.clone());
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn matches(dn: &str, der: &[u8]) -> bool {
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        DistinguishedName::parse(dn).unwrap().matches(cert.subject())
    }

    fn utf8(s: &str) -> DnValue {
        DnValue::Utf8String(s.to_string())
    }

    #[test]
    fn the_string_form_lists_rdns_leaf_first_and_matches_in_certificate_order() {
        let der = subject_der(&[
            (DnType::OrganizationName, utf8("example")),
            (DnType::CommonName, utf8("svc-a")),
        ]);
        assert!(matches("CN=svc-a,O=example", &der));
        assert!(!matches("O=example,CN=svc-a", &der));
        assert!(!matches("CN=svc-a", &der));
        assert!(!matches("CN=svc-a,O=example,C=DE", &der));
        assert!(!matches("CN=svc-b,O=example", &der));
    }

    #[test]
    fn case_and_insignificant_spaces_are_ignored_in_names_and_values() {
        let der = subject_der(&[
            (DnType::OrganizationName, utf8("Example   Corp")),
            (DnType::CommonName, utf8("svc-a")),
        ]);
        for written in [
            "cn=SVC-A,o=example corp",
            "CN = svc-a , O = Example Corp",
            "commonName=svc-a,organizationName=EXAMPLE\\20\\20CORP",
            "2.5.4.3=svc-a,2.5.4.10=example corp ",
        ] {
            assert!(matches(written, &der), "{written}");
        }
        assert!(!matches("CN=svc-a,O=examplecorp", &der));
    }

    #[test]
    fn every_string_type_of_the_certificate_is_read() {
        for value in [
            DnValue::PrintableString("Svc A".try_into().unwrap()),
            DnValue::Ia5String("svc a".try_into().unwrap()),
            DnValue::BmpString("SVC A".try_into().unwrap()),
            DnValue::UniversalString("svc a".try_into().unwrap()),
            DnValue::TeletexString("svc A".try_into().unwrap()),
        ] {
            let der = subject_der(&[(DnType::CommonName, value.clone())]);
            assert!(matches("CN=svc a", &der), "{value:?}");
        }
        let der = subject_der(&[(DnType::CommonName, utf8("Grüße"))]);
        assert!(matches("CN=GRÜSSE", &der));
        assert!(matches("CN=gr\\C3\\BC\\C3\\9Fe", &der));
    }

    #[test]
    fn a_multi_valued_rdn_is_a_set() {
        let der = subject_der(&[(DnType::OrganizationName, utf8("example"))]);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert!(
            !DistinguishedName::parse("CN=a+O=example")
                .unwrap()
                .matches(cert.subject())
        );
        assert_eq!(
            DistinguishedName::parse("CN=a+OU=b,O=example").unwrap(),
            DistinguishedName::parse("ou=B + cn=A, o=Example").unwrap()
        );
        assert_ne!(
            DistinguishedName::parse("CN=a+OU=b").unwrap(),
            DistinguishedName::parse("CN=a,OU=b").unwrap()
        );
    }

    #[test]
    fn escaped_specials_are_part_of_the_value() {
        let der = subject_der(&[
            (DnType::OrganizationName, utf8("Acme, Inc")),
            (DnType::CommonName, utf8("a+b")),
        ]);
        assert!(matches("CN=a\\+b,O=Acme\\, Inc", &der));
        assert!(matches("CN=a\\2Bb,O=Acme\\2c Inc", &der));
    }

    #[test]
    fn a_hex_value_matches_the_attribute_encoding_byte_for_byte() {
        let der = subject_der(&[(DnType::CommonName, utf8("svc"))]);
        // UTF8String (0x0c), length 3, "svc".
        assert!(matches("CN=#0c03737663", &der));
        // The same characters as a PrintableString are another encoding.
        assert!(!matches("CN=#1303737663", &der));
        // A BER long-form length is re-encoded as DER.
        assert!(matches("CN=#0c8103737663", &der));
    }

    #[test]
    fn malformed_names_are_refused_with_the_reason() {
        for (text, error) in [
            ("", DnError::Empty),
            ("  ", DnError::Empty),
            ("svc-a", DnError::MissingEquals { at: 0 }),
            ("CN=a,", DnError::MissingEquals { at: 5 }),
            ("CN=a,=b", DnError::MissingEquals { at: 5 }),
            ("XX=a", DnError::UnknownAttribute("XX".into())),
            ("2.5.04.3=a", DnError::BadOid("2.5.04.3".into())),
            ("2=a", DnError::BadOid("2".into())),
            ("CN=a;O=b", DnError::Unescaped(';', 4)),
            ("CN=\"a\"", DnError::Unescaped('"', 3)),
            ("CN=a\\", DnError::BadEscape(4)),
            ("CN=a\\x", DnError::BadEscape(4)),
            ("CN=a\\4", DnError::BadEscape(4)),
            ("CN=\\ff", DnError::NotUtf8("CN".into())),
            ("CN=#0c0", DnError::BadHexValue("CN".into())),
            ("CN=#0c05616263", DnError::BadHexValue("CN".into())),
            ("CN=#0c03737663x", DnError::BadHexValue("CN".into())),
            ("CN=a+cn=A", DnError::RepeatedAttribute("2.5.4.3".into())),
        ] {
            assert_eq!(DistinguishedName::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn an_empty_value_and_unescaped_equals_are_allowed() {
        let name = DistinguishedName::parse("CN=,O=a=b").unwrap();
        assert_eq!(name.as_str(), "CN=,O=a=b");
        assert_eq!(name.to_string(), "CN=,O=a=b");
    }
}
