//! The JWS compact serialization: three base64url parts, parsed strictly.
//!
//! The header is read into our own struct rather than jsonwebtoken's `Header`,
//! which has no `crit` field and would silently drop a critical extension.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Algorithm;
use super::sign::{SignError, SigningKey};

/// A compact JWS split into its parts, header decoded into `H`, nothing
/// verified yet. Access tokens read a [`JoseHeader`]; DPoP proofs read their
/// own, which also takes the `jwk` a token's header is never trusted for.
#[derive(Debug)]
pub struct CompactJws<'a, H = JoseHeader> {
    pub header: H,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub payload_b64: &'a str,
    pub signature_b64: &'a str,
}

/// The protected header parameters the gateway acts on. Keys named by
/// `jku`, `x5u`, `jwk` or `x5c` are never used, so they are not even read.
#[derive(Debug, Deserialize)]
pub struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub crit: Option<Vec<String>>,
}

/// Why a string is not a well-formed compact JWS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS: expected three dot-separated parts")]
    NotThreeParts,
    #[error("the {0} part is not unpadded base64url")]
    NotBase64Url(&'static str),
    #[error("the header is not a valid JOSE header: {0}")]
    HeaderNotJson(String),
}

/// Whether [`parse_with`] refuses an empty part before decoding anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyParts {
    /// As [`NotThreeParts`](JwsError::NotThreeParts): a JWT has no empty part.
    Refuse,
    /// Decoded like any other, so an empty part fails at the check that
    /// reads it (the header, the signature or the claims), under that check's name.
    Decode,
}

/// Splits `token` and decodes its header, refusing empty parts, without verifying anything.
pub fn parse<H: DeserializeOwned>(token: &str) -> Result<CompactJws<'_, H>, JwsError> {
    parse_with(token, EmptyParts::Refuse)
}

/// Splits `token` and decodes its header as `H`, without verifying anything.
pub fn parse_with<H: DeserializeOwned>(token: &str, empty: EmptyParts) -> Result<CompactJws<'_, H>, JwsError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::NotThreeParts);
    };
    if empty == EmptyParts::Refuse && (header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty()) {
        return Err(JwsError::NotThreeParts);
    }
    let header_json = decode_part(header_b64, "header")?;
    let header: H = serde_json::from_slice(&header_json).map_err(|e| JwsError::HeaderNotJson(e.to_string()))?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(CompactJws {
        header,
        signing_input,
        payload_b64,
        signature_b64,
    })
}

/// Decodes one part; padding, the standard alphabet and non-canonical trailing bits are refused.
pub fn decode_part(part: &str, which: &'static str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwsError::NotBase64Url(which))
}

/// Signs exactly `header` and `claims` as a compact JWS with the EC P-256
/// key `pkcs8_der`: what `bindgate mint` and `dpop-proof` do, and what
/// tests use to craft tokens and proofs byte for byte. The signature is made
/// as every other is, by [`SigningKey`].
pub fn sign_es256(
    pkcs8_der: &[u8],
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, SignError> {
    let key = SigningKey::from_pkcs8_der(pkcs8_der).map_err(|_| SignError::NotP256Key)?;
    if key.alg() != Algorithm::ES256 {
        return Err(SignError::NotP256Key);
    }
    key.sign_with_header(header, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// The access-token header, which most of these tests read.
    fn parse(token: &str) -> Result<CompactJws<'_>, JwsError> {
        super::parse(token)
    }

    #[test]
    fn splits_header_payload_and_signature() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"ES256","kid":"k1","crit":["x"]}"#),
            b64("{}")
        );
        let jws = parse(&token).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.crit, Some(vec!["x".to_string()]));
        assert_eq!(jws.signature_b64, "c2ln");
        assert_eq!(jws.signing_input, &token[..token.len() - 5]);
    }

    #[test]
    fn rejects_wrong_shapes() {
        let h = b64(r#"{"alg":"ES256"}"#);
        assert_eq!(parse("abc").unwrap_err(), JwsError::NotThreeParts);
        assert_eq!(
            parse(&format!("{h}.e30.sig.extra")).unwrap_err(),
            JwsError::NotThreeParts
        );
        assert_eq!(parse(&format!("{h}.e30.")).unwrap_err(), JwsError::NotThreeParts);
        assert_eq!(parse("eyJ=.e30.c2ln").unwrap_err(), JwsError::NotBase64Url("header"));
        assert!(matches!(parse("e30.e30.c2ln").unwrap_err(), JwsError::HeaderNotJson(_)));
    }

    #[test]
    fn duplicate_header_parameters_are_refused() {
        let token = format!("{}.e30.c2ln", b64(r#"{"alg":"ES256","alg":"none"}"#));
        assert!(matches!(parse(&token).unwrap_err(), JwsError::HeaderNotJson(_)));
    }

    #[test]
    fn the_header_is_read_into_the_callers_type() {
        #[derive(Debug, Deserialize)]
        struct WithJwk {
            alg: String,
            jwk: serde_json::Value,
        }
        let token = format!("{}.e30.c2ln", b64(r#"{"alg":"ES256","jwk":{"kty":"EC"}}"#));
        let jws = super::parse::<WithJwk>(&token).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.jwk["kty"], "EC");
        let missing = format!("{}.e30.c2ln", b64(r#"{"alg":"ES256"}"#));
        assert!(matches!(
            super::parse::<WithJwk>(&missing).unwrap_err(),
            JwsError::HeaderNotJson(_)
        ));
    }

    #[test]
    fn empty_parts_are_decoded_when_asked() {
        let h = b64(r#"{"alg":"ES256"}"#);
        let token = format!("{h}..");
        assert_eq!(parse(&token).unwrap_err(), JwsError::NotThreeParts);
        let jws = parse_with::<JoseHeader>(&token, EmptyParts::Decode).unwrap();
        assert_eq!(jws.signing_input, format!("{h}."));
        assert_eq!((jws.payload_b64, jws.signature_b64), ("", ""));
        // An empty header decodes to no JSON at all.
        assert!(matches!(
            parse_with::<JoseHeader>(".e30.c2ln", EmptyParts::Decode).unwrap_err(),
            JwsError::HeaderNotJson(_)
        ));
        assert_eq!(
            parse_with::<JoseHeader>("a.b", EmptyParts::Decode).unwrap_err(),
            JwsError::NotThreeParts
        );
    }
}
