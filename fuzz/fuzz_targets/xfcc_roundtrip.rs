//! The XFCC rendering of arbitrary certificate subjects, as a round trip: a
//! certificate with a subject made from the input, its identity read as the
//! gateway reads a client's, and the `x-forwarded-client-cert` value parsed
//! back as an upstream would. The upstream must get back the RFC 4514
//! subject the gateway computed, and that subject must give back the
//! attribute values the certificate holds.
//!
//! Input: entries of `[type, kind, len, len bytes of value]`; `type` picks the
//! attribute, `kind` its ASN.1 string type (see `attribute`).
#![no_main]

use std::sync::OnceLock;

use bindgate::conn::identity::ClientIdentity;
use libfuzzer_sys::fuzz_target;
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};
use sha2::Digest as _;

fuzz_target!(|data: &[u8]| {
    let mut dn = DistinguishedName::new();
    let mut expected: Vec<(DnType, Expected)> = Vec::new();
    let mut rest = data;
    while let Some((&[ty, kind, len], tail)) = rest.split_first_chunk::<3>() {
        let (value, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let ty = attribute_type(ty);
        let (value, wanted) = attribute(kind, String::from_utf8_lossy(value).into_owned());
        // rcgen keeps one value per type, in the place of its first.
        match expected.iter_mut().find(|(t, _)| *t == ty) {
            Some(entry) => entry.1 = wanted,
            None => expected.push((ty.clone(), wanted)),
        }
        dn.push(ty, value);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    let cert = params.self_signed(key()).expect("rcgen signs any subject");
    let identity = ClientIdentity::from_der(cert.der()).expect("bindgate reads what rcgen wrote");

    // What the upstream sees.
    let header = identity.xfcc.to_str().expect("XFCC is visible ASCII");
    let elements = parse_xfcc(header).unwrap_or_else(|e| panic!("XFCC {header:?} does not parse: {e}"));
    assert_eq!(elements.len(), 1, "{header:?}");
    let element = &elements[0];
    assert_eq!(
        element.first(),
        Some(&("Hash".to_string(), sha256_hex(cert.der()))),
        "{header:?}"
    );
    let subject = element.iter().find(|(k, _)| k == "Subject").map(|(_, v)| v);
    assert_eq!(subject, Some(&identity.subject), "XFCC {header:?} loses the subject");

    // What the subject says: RDNs last to first, one attribute each.
    let mut rdns = parse_rfc4514(&identity.subject)
        .unwrap_or_else(|e| panic!("subject {:?} is not RFC 4514: {e}", identity.subject));
    rdns.reverse();
    assert_eq!(rdns.len(), expected.len(), "{:?}", identity.subject);
    for ((_, wanted), got) in expected.iter().zip(&rdns) {
        match wanted {
            Expected::Text(text) => assert_eq!(got, &Value::Text(text.clone()), "{:?}", identity.subject),
            Expected::Der(der) => assert_eq!(got, &Value::Der(der.clone()), "{:?}", identity.subject),
        }
    }
});

/// A fixed key made once: signing is the cost of each run, not key generation.
fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().expect("a P-256 key"))
}

fn attribute_type(selector: u8) -> DnType {
    match selector % 10 {
        0 => DnType::CommonName,
        1 => DnType::OrganizationName,
        2 => DnType::OrganizationalUnitName,
        3 => DnType::CountryName,
        4 => DnType::StateOrProvinceName,
        5 => DnType::LocalityName,
        6 => DnType::CustomDnType(vec![2, 5, 4, 5]), // serialNumber
        7 => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]), // domainComponent
        8 => DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]), // emailAddress
        _ => DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, u64::from(selector)]),
    }
}

/// What the RFC 4514 form of a value must give back.
#[derive(Debug)]
enum Expected {
    /// The characters of a string type bindgate reads as text.
    Text(String),
    /// `#` and the BER (here DER) encoding of the AttributeValue (RFC 4514 section 2.4).
    Der(Vec<u8>),
}

/// The value in the string type `kind` selects, or UTF8String when the text
/// does not fit that type.
fn attribute(kind: u8, text: String) -> (DnValue, Expected) {
    let der = |tag: u8, content: &[u8]| {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    };
    match kind % 6 {
        // yasna 0.5 (under rcgen 0.14.7) panics writing the '?' that rcgen's
        // PrintableString allows: leave it to the UTF8String case.
        1 if !text.contains('?') => {
            if let Ok(s) = PrintableString::try_from(text.as_str()) {
                return (DnValue::PrintableString(s), Expected::Text(text));
            }
        }
        2 => {
            if let Ok(s) = Ia5String::try_from(text.as_str()) {
                return (DnValue::Ia5String(s), Expected::Text(text));
            }
        }
        3 => {
            if let Ok(s) = BmpString::try_from(text.as_str()) {
                let wanted = Expected::Der(der(0x1e, s.as_bytes()));
                return (DnValue::BmpString(s), wanted);
            }
        }
        4 => {
            if let Ok(s) = UniversalString::try_from(text.as_str()) {
                let wanted = Expected::Der(der(0x1c, s.as_bytes()));
                return (DnValue::UniversalString(s), wanted);
            }
        }
        5 => {
            if let Ok(s) = TeletexString::try_from(text.as_str()) {
                let wanted = Expected::Der(der(0x14, s.as_bytes()));
                return (DnValue::TeletexString(s), wanted);
            }
        }
        _ => {}
    }
    (DnValue::Utf8String(text.clone()), Expected::Text(text))
}

/// Envoy's `x-forwarded-client-cert`: elements separated by `,`, each
/// `key=value` pairs separated by `;`; a value is bare, or double-quoted with
/// a backslash taking the next character literally (`\"`, `\\`), as the
/// common XFCC parsers read it.
fn parse_xfcc(header: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c @ (',' | ';' | '"' | '\\')) => return Err(format!("{c:?} in a key")),
                Some(c) => key.push(c),
                None => return Err(format!("key {key:?} without a value")),
            }
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or("a backslash ends the header")?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted value".to_string()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ';' | ',' => break,
                    '"' | '=' | '\\' => return Err(format!("{c:?} in a bare value")),
                    c => value.push(c),
                }
                chars.next();
            }
        }
        pairs.push((key, value));
        match chars.next() {
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut pairs)),
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(c) => return Err(format!("{c:?} after a value")),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Value {
    Text(String),
    Der(Vec<u8>),
}

/// RFC 4514 section 3: `type=value` joined by `,` (or `+` within an RDN),
/// values with `\` escapes of one special character or of a byte as two hex
/// digits, or `#` and hex digits. Returns the values in order.
fn parse_rfc4514(name: &str) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    if name.is_empty() {
        return Ok(values);
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    loop {
        let eq = bytes[i..]
            .iter()
            .position(|&b| b == b'=')
            .ok_or("an attribute without =")?
            + i;
        let label = &name[i..eq];
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(format!("bad attribute type {label:?}"));
        }
        i = eq + 1;
        if bytes.get(i) == Some(&b'#') {
            let end = bytes[i + 1..]
                .iter()
                .position(|&b| b == b',' || b == b'+')
                .map_or(bytes.len(), |p| p + i + 1);
            let hex = &name[i + 1..end];
            if hex.is_empty() || !hex.len().is_multiple_of(2) {
                return Err(format!("odd or empty hexstring {hex:?}"));
            }
            let der = (0..hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).map_err(|e| e.to_string()))
                .collect::<Result<Vec<u8>, String>>()?;
            values.push(Value::Der(der));
            i = end;
        } else {
            let mut raw = Vec::new();
            while let Some(&b) = bytes.get(i) {
                match b {
                    b',' | b'+' => break,
                    b'\\' => {
                        let next = *bytes.get(i + 1).ok_or("a backslash ends the name")?;
                        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(byte) if next.is_ascii_hexdigit() => {
                                raw.push(byte);
                                i += 3;
                            }
                            _ if b" \"#+,;<=>\\".contains(&next) => {
                                raw.push(next);
                                i += 2;
                            }
                            _ => return Err(format!("bad escape at {i}")),
                        }
                    }
                    b'"' | b';' | b'<' | b'>' => return Err(format!("unescaped {:?}", b as char)),
                    _ => {
                        raw.push(b);
                        i += 1;
                    }
                }
            }
            values.push(Value::Text(String::from_utf8(raw).map_err(|e| e.to_string())?));
        }
        match bytes.get(i) {
            None => return Ok(values),
            Some(_) => i += 1,
        }
    }
}

fn sha256_hex(der: &[u8]) -> String {
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}
