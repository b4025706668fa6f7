//! The header dialects front proxies forward a client certificate in, read
//! into DER. Only the shape is judged here; whether the certificate is any
//! good is the handshake verifier's question (`gateway::client_cert`).
//!
//! Every reader checks the size first, so that a 16 KiB header costs one
//! addition, and refuses anything ambiguous rather than guess: a header
//! given twice, a list where one certificate belongs, an escape that is
//! not one.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderValue;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A forwarded client certificate and the intermediates sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedChain {
    pub leaf: CertificateDer<'static>,
    pub intermediates: Vec<CertificateDer<'static>>,
}

impl ForwardedChain {
    fn leaf(leaf: Vec<u8>) -> ForwardedChain {
        ForwardedChain {
            leaf: CertificateDer::from(leaf),
            intermediates: Vec::new(),
        }
    }
}

/// Why a forwarded-certificate header cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedCertError {
    #[error("the header was sent more than once")]
    Repeated,
    #[error("the header holds a list where one certificate belongs")]
    List,
    #[error("the headers are larger than {limit} bytes (limits.max_forwarded_cert_bytes)")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Undecodable(&'static str),
}

/// RFC 8941 byte sequences are standard base64; parsers should not insist
/// on the padding, and RFC 9440 senders such as HAProxy's `base64`
/// converter do pad, so either is read.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RFC 9440: `Client-Cert` is one structured-field byte sequence (its
/// parameters ignored, `::` meaning none), `Client-Cert-Chain` a list of
/// them across any number of lines.
pub fn rfc9440(
    cert: &[&HeaderValue],
    chain: &[&HeaderValue],
    max: usize,
) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    check_size(cert.iter().chain(chain), max)?;
    let line = match cert {
        [] => return Ok(None),
        [line] => line.as_bytes(),
        _ => return Err(ForwardedCertError::Repeated),
    };
    let mut members = sf_byte_sequences(line, "Client-Cert is not a structured-field byte sequence")?;
    let leaf = match members.len() {
        0 => return Ok(None),
        1 => members.remove(0),
        _ => return Err(ForwardedCertError::List),
    };
    if leaf.is_empty() {
        return Ok(None);
    }
    let mut intermediates = Vec::new();
    for line in chain {
        for der in sf_byte_sequences(line.as_bytes(), "Client-Cert-Chain is not a list of byte sequences")? {
            if der.is_empty() {
                return Err(ForwardedCertError::Undecodable(
                    "Client-Cert-Chain holds an empty certificate",
                ));
            }
            intermediates.push(CertificateDer::from(der));
        }
    }
    Ok(Some(ForwardedChain {
        leaf: CertificateDer::from(leaf),
        intermediates,
    }))
}

/// The `Client-Cert` value for `der`: what RFC 9440 sends upstream.
pub fn rfc9440_value(der: &[u8]) -> HeaderValue {
    let mut value = String::with_capacity(der.len().div_ceil(3) * 4 + 2);
    value.push(':');
    base64::engine::general_purpose::STANDARD.encode_string(der, &mut value);
    value.push(':');
    // Base64 and colons are always a valid header value; the fallback only
    // keeps this infallible in the type system.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("::"))
}

/// The `Client-Cert-Chain` value for `intermediates`, leaf excluded; `None`
/// when there are none, since RFC 9440 leaves the header out then.
pub fn rfc9440_chain_value<C: AsRef<[u8]>>(intermediates: &[C]) -> Option<HeaderValue> {
    if intermediates.is_empty() {
        return None;
    }
    let mut value = String::new();
    for (index, der) in intermediates.iter().enumerate() {
        if index > 0 {
            value.push_str(", ");
        }
        value.push(':');
        base64::engine::general_purpose::STANDARD.encode_string(der.as_ref(), &mut value);
        value.push(':');
    }
    HeaderValue::from_str(&value).ok()
}

/// Envoy's `x-forwarded-client-cert`. Each proxy appends its element, so
/// only the last one is the trusted hop's own; elements before it came from
/// further away, perhaps from the client itself, and are never read. Lines
/// are one list (RFC 9110 section 5.3), so the last line's last element
/// wins. That element must carry `Cert=`; its `Chain=`, if any, starts
/// with the leaf again.
pub fn xfcc(values: &[&HeaderValue], max: usize) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    check_size(values.iter(), max)?;
    let Some(line) = values.iter().rev().find(|line| !trim(line.as_bytes()).is_empty()) else {
        return Ok(None);
    };
    let element = xfcc_split(line.as_bytes(), b',')?.pop().unwrap_or_default();
    let mut cert = None;
    let mut chain = None;
    for pair in xfcc_split(element, b';')? {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return Err(ForwardedCertError::Undecodable(
                "an XFCC element has a pair without '='",
            ));
        };
        let (key, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        let target = if key.eq_ignore_ascii_case(b"Cert") {
            &mut cert
        } else if key.eq_ignore_ascii_case(b"Chain") {
            &mut chain
        } else {
            continue;
        };
        if target.is_some() {
            return Err(ForwardedCertError::Repeated);
        }
        *target = Some(xfcc_unquote(value)?);
    }
    let Some(cert) = cert else {
        return Err(ForwardedCertError::Undecodable(
            "the trusted hop's XFCC element has no Cert=",
        ));
    };
    let leaf = match pem_certificates(&percent_decode(&cert)?)?.as_slice() {
        [leaf] => leaf.clone(),
        _ => return Err(ForwardedCertError::List),
    };
    let intermediates = match chain {
        None => Vec::new(),
        Some(chain) => pem_certificates(&percent_decode(&chain)?)?
            .into_iter()
            .filter(|der| *der != leaf)
            .collect(),
    };
    Ok(Some(ForwardedChain { leaf, intermediates }))
}

/// nginx's `$ssl_client_escaped_cert`: URL-encoded PEM, the leaf first and
/// any intermediates after it.
pub fn url_pem(values: &[&HeaderValue], max: usize) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    url_encoded_pem(values, max)
}

/// AWS ALB's `X-Amzn-Mtls-Clientcert`: URL-encoded PEM that leaves `+`, `=`
/// and `/` unescaped. Strict decoding reads both dialects alike, because a
/// `+` is never a space here; the name keeps the configuration honest
/// about where the header comes from.
pub fn url_pem_aws(values: &[&HeaderValue], max: usize) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    url_encoded_pem(values, max)
}

/// HAProxy's `%[ssl_c_der,base64]`, Azure's: the leaf's DER in base64.
pub fn base64_der(values: &[&HeaderValue], max: usize) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    let Some(value) = single_line(values, max)? else {
        return Ok(None);
    };
    let der = BASE64
        .decode(value)
        .map_err(|_| ForwardedCertError::Undecodable("the header is not base64"))?;
    if der.is_empty() {
        return Err(ForwardedCertError::Undecodable("the header's certificate is empty"));
    }
    Ok(Some(ForwardedChain::leaf(der)))
}

fn url_encoded_pem(values: &[&HeaderValue], max: usize) -> Result<Option<ForwardedChain>, ForwardedCertError> {
    let Some(value) = single_line(values, max)? else {
        return Ok(None);
    };
    let mut certificates = pem_certificates(&percent_decode(value)?)?.into_iter();
    let Some(leaf) = certificates.next() else {
        return Err(ForwardedCertError::Undecodable("the header holds no PEM certificate"));
    };
    Ok(Some(ForwardedChain {
        leaf,
        intermediates: certificates.collect(),
    }))
}

/// The one line of a single-certificate header, trimmed; `None` when absent
/// or empty (the proxy's way of saying the client sent no certificate).
fn single_line<'a>(values: &[&'a HeaderValue], max: usize) -> Result<Option<&'a [u8]>, ForwardedCertError> {
    check_size(values.iter(), max)?;
    let line = match values {
        [] => return Ok(None),
        [line] => trim(line.as_bytes()),
        _ => return Err(ForwardedCertError::Repeated),
    };
    if line.contains(&b',') {
        // Neither base64 nor URL-encoded PEM has a comma: this is a list.
        return Err(ForwardedCertError::List);
    }
    Ok((!line.is_empty()).then_some(line))
}

fn check_size<'a>(values: impl Iterator<Item = &'a &'a HeaderValue>, max: usize) -> Result<(), ForwardedCertError> {
    let total: usize = values.map(|value| value.len()).sum();
    if total > max {
        return Err(ForwardedCertError::TooLarge { limit: max });
    }
    Ok(())
}

/// `%XX` escapes decoded, everything else as it is. A `%` that does not
/// begin an escape is an error, not a literal: a lenient decoder is where
/// two readers of one header start to disagree.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, ForwardedCertError> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'%' {
            out.push(byte);
            rest = tail;
            continue;
        }
        let (Some(high), Some(low)) = (tail.first().and_then(hex), tail.get(1).and_then(hex)) else {
            return Err(ForwardedCertError::Undecodable(
                "the header has a '%' that is no escape",
            ));
        };
        out.push(high << 4 | low);
        rest = &tail[2..];
    }
    Ok(out)
}

fn hex(digit: &u8) -> Option<u8> {
    (*digit as char).to_digit(16).map(|value| value as u8)
}

fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ForwardedCertError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ForwardedCertError::Undecodable("the header's PEM is malformed"))?;
    if certificates.is_empty() {
        return Err(ForwardedCertError::Undecodable("the header holds no PEM certificate"));
    }
    // An empty PEM block is well-formed PEM but no certificate; passing it on
    // would leave the verifier to find out, with a vaguer error.
    if certificates.iter().any(|der| der.is_empty()) {
        return Err(ForwardedCertError::Undecodable(
            "the header holds an empty PEM certificate",
        ));
    }
    Ok(certificates)
}

/// The members of an RFC 8941 list that must all be byte sequences,
/// parameters skipped.
fn sf_byte_sequences(line: &[u8], not_bytes: &'static str) -> Result<Vec<Vec<u8>>, ForwardedCertError> {
    let mut members = Vec::new();
    let mut rest = trim(line);
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix(b":") else {
            return Err(ForwardedCertError::Undecodable(not_bytes));
        };
        let Some(end) = body.iter().position(|&b| b == b':') else {
            return Err(ForwardedCertError::Undecodable(not_bytes));
        };
        let der = BASE64
            .decode(&body[..end])
            .map_err(|_| ForwardedCertError::Undecodable("a byte sequence is not base64"))?;
        members.push(der);
        rest = skip_parameters(&body[end + 1..])?;
        rest = trim_start(rest);
        if rest.is_empty() {
            break;
        }
        let Some(after_comma) = rest.strip_prefix(b",") else {
            return Err(ForwardedCertError::Undecodable(not_bytes));
        };
        rest = trim_start(after_comma);
        if rest.is_empty() {
            return Err(ForwardedCertError::Undecodable(
                "a structured-field list ends in a comma",
            ));
        }
    }
    Ok(members)
}

/// Skips `;key` and `;key=value` parameters (RFC 8941 section 3.1.2),
/// returning what follows them. Quoted strings are skipped whole, so that
/// a comma inside one does not start a member.
fn skip_parameters(mut rest: &[u8]) -> Result<&[u8], ForwardedCertError> {
    const MALFORMED: ForwardedCertError = ForwardedCertError::Undecodable("a structured-field parameter is malformed");
    while let Some(after) = rest.strip_prefix(b";") {
        rest = trim_start(after);
        let key_len = rest
            .iter()
            .position(|&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b)))
            .unwrap_or(rest.len());
        if key_len == 0 || !(rest[0].is_ascii_lowercase() || rest[0] == b'*') {
            return Err(MALFORMED);
        }
        rest = &rest[key_len..];
        let Some(value) = rest.strip_prefix(b"=") else {
            continue;
        };
        rest = match value.first() {
            Some(b'"') => {
                let mut index = 1;
                loop {
                    match value.get(index) {
                        None => return Err(MALFORMED),
                        Some(b'\\') => index += 2,
                        Some(b'"') => break &value[index + 1..],
                        Some(_) => index += 1,
                    }
                }
            }
            Some(b':') => match value[1..].iter().position(|&b| b == b':') {
                Some(end) => &value[end + 2..],
                None => return Err(MALFORMED),
            },
            Some(_) => {
                let len = value
                    .iter()
                    .position(|&b| matches!(b, b';' | b',' | b' ' | b'\t'))
                    .unwrap_or(value.len());
                if len == 0 {
                    return Err(MALFORMED);
                }
                &value[len..]
            }
            None => return Err(MALFORMED),
        };
    }
    Ok(rest)
}

/// Splits at `separator` outside double quotes (Envoy quotes any value
/// holding `,`, `;` or `=`, and escapes `"` and `\` inside with `\`).
fn xfcc_split(input: &[u8], separator: u8) -> Result<Vec<&[u8]>, ForwardedCertError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (index, &byte) in input.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && byte == separator {
            parts.push(&input[start..index]);
            start = index + 1;
        }
    }
    if quoted {
        return Err(ForwardedCertError::Undecodable("an XFCC value's quote is never closed"));
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn xfcc_unquote(value: &[u8]) -> Result<Vec<u8>, ForwardedCertError> {
    let Some(inner) = value.strip_prefix(b"\"") else {
        return Ok(value.to_vec());
    };
    let Some(inner) = inner.strip_suffix(b"\"") else {
        return Err(ForwardedCertError::Undecodable("an XFCC value's quote is never closed"));
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&byte) = bytes.next() {
        if byte == b'\\' {
            match bytes.next() {
                Some(&escaped) => out.push(escaped),
                None => return Err(ForwardedCertError::Undecodable("an XFCC value ends in a backslash")),
            }
        } else {
            out.push(byte);
        }
    }
    Ok(out)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
#[path = "forwarded_cert_tests.rs"]
mod tests;
