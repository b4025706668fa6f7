//! The sender constraint: the token's `cnf` names a key (a certificate's
//! `x5t#S256`, a DPoP key's `jkt`), the caller must prove it holds that key.
//! Every binding the token declares must hold.

use crate::auth::token::Confirmation;
use crate::auth::token::extract::Scheme;
use crate::config::BindingMethods;
use crate::conn::identity::ClientIdentity;

/// What the caller has proven on this request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proofs<'a> {
    /// The certificate of the TLS connection, if one was presented.
    pub client_certificate: Option<&'a ClientIdentity>,
    pub scheme: Scheme,
    /// The key thumbprint of the request's verified DPoP proof.
    pub dpop_jkt: Option<&'a str>,
    /// Whether the request carried a `DPoP` header at all, verified or not.
    pub dpop_header: bool,
}

/// Why the token is not bound to this caller. Every variant is an `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("token is not sender-constrained: no cnf claim")]
    CnfMissing,
    #[error("cnf claim names no supported confirmation method")]
    CnfUnsupported,
    #[error("cnf x5t#S256 is not an unpadded base64url SHA-256 thumbprint")]
    ThumbprintMalformed,
    #[error("token is bound to a client certificate and none was presented")]
    CertificateMissing,
    #[error("token is bound to a different client certificate")]
    CertificateMismatch,
    #[error("cnf jkt is not an unpadded base64url SHA-256 thumbprint")]
    JktMalformed,
    #[error("token is bound to a different DPoP key than the proof's")]
    JktMismatch,
    #[error("token is bound to a DPoP key: send it with the DPoP scheme and a proof")]
    DpopTokenWithBearer,
    #[error("a DPoP proof was sent with a token that is not DPoP-bound")]
    NotDpopBound,
    #[error("token is bound by a method this route does not accept")]
    MethodNotAccepted,
}

/// Checks every binding of `cnf` against what the caller proved, on a route
/// accepting `accepted`. Returns the methods that held, for logs and metrics.
pub fn verify(
    cnf: Option<&Confirmation>,
    proofs: &Proofs<'_>,
    accepted: BindingMethods,
) -> Result<&'static str, BindingError> {
    let cnf = cnf.ok_or(BindingError::CnfMissing)?;
    let (x5t, jkt) = (cnf.x5t_s256.as_deref(), cnf.jkt.as_deref());
    if x5t.is_none() && jkt.is_none() {
        return Err(BindingError::CnfUnsupported);
    }
    // RFC 9449 section 7.2: a DPoP-bound token never passes as a bearer
    // token, and a proof is no use with a token that is not bound to its key.
    if jkt.is_some() && proofs.scheme == Scheme::Bearer {
        return Err(BindingError::DpopTokenWithBearer);
    }
    if jkt.is_none() && (proofs.scheme == Scheme::Dpop || proofs.dpop_header) {
        return Err(BindingError::NotDpopBound);
    }
    if !((x5t.is_some() && accepted.mtls) || (jkt.is_some() && accepted.dpop)) {
        return Err(BindingError::MethodNotAccepted);
    }
    if let Some(expected) = x5t {
        verify_certificate(expected, proofs.client_certificate)?;
    }
    if let Some(expected) = jkt {
        verify_jkt(expected, proofs.dpop_jkt)?;
    }
    let held = BindingMethods {
        mtls: x5t.is_some(),
        dpop: jkt.is_some(),
    };
    Ok(held.label())
}

fn is_sha256_thumbprint(text: &str) -> bool {
    // Every bound request checks this: without branches, so it is vectorised.
    text.len() == 43
        && text.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_lowercase() | b.is_ascii_uppercase() | b.is_ascii_digit() | (b == b'-') | (b == b'_'))
        })
}

/// A plain comparison, not a constant-time one: neither side is a secret.
/// The `cnf` is readable by whoever holds the token, and the thumbprint is
/// of a certificate or key the caller itself presented.
fn same_thumbprint(expected: &str, proven: &str) -> bool {
    expected.as_bytes() == proven.as_bytes()
}

fn verify_jkt(expected: &str, proven: Option<&str>) -> Result<(), BindingError> {
    if !is_sha256_thumbprint(expected) {
        return Err(BindingError::JktMalformed);
    }
    // The DPoP scheme always brings a verified proof before the binding is checked.
    let proven = proven.ok_or(BindingError::DpopTokenWithBearer)?;
    if same_thumbprint(expected, proven) {
        Ok(())
    } else {
        Err(BindingError::JktMismatch)
    }
}

fn verify_certificate(expected: &str, presented: Option<&ClientIdentity>) -> Result<(), BindingError> {
    // 32 bytes in unpadded base64url is exactly 43 characters of the URL alphabet.
    if !is_sha256_thumbprint(expected) {
        return Err(BindingError::ThumbprintMalformed);
    }
    let presented = presented.ok_or(BindingError::CertificateMissing)?;
    if same_thumbprint(expected, &presented.x5t_s256) {
        Ok(())
    } else {
        Err(BindingError::CertificateMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTLS: BindingMethods = BindingMethods::MTLS;

    fn identity(x5t: &str) -> ClientIdentity {
        ClientIdentity {
            x5t_s256: x5t.to_string(),
            subject: String::new(),
            uris: vec![],
            dns: vec![],
            xfcc: http::HeaderValue::from_static(""),
            not_after: 0,
            issuer_serial: Default::default(),
            spki_sha256: [0; 32],
            rfc9440: None,
            rfc9440_chain: None,
            crl_urls: Box::default(),
        }
    }

    fn cnf(x5t: Option<&str>, jkt: Option<&str>) -> Confirmation {
        Confirmation {
            x5t_s256: x5t.map(str::to_string),
            jkt: jkt.map(str::to_string),
        }
    }

    const THUMB: &str = "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0";

    #[test]
    fn matching_thumbprint_is_accepted() {
        let id = identity(THUMB);
        let proofs = Proofs {
            client_certificate: Some(&id),
            ..Proofs::default()
        };
        assert_eq!(verify(Some(&cnf(Some(THUMB), None)), &proofs, MTLS), Ok("mtls"));
    }

    #[test]
    fn mismatch_missing_and_malformed_are_told_apart() {
        let other = identity("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let proofs = Proofs {
            client_certificate: Some(&other),
            ..Proofs::default()
        };
        let bound = cnf(Some(THUMB), None);
        assert_eq!(
            verify(Some(&bound), &proofs, MTLS),
            Err(BindingError::CertificateMismatch)
        );
        assert_eq!(
            verify(Some(&bound), &Proofs::default(), MTLS),
            Err(BindingError::CertificateMissing)
        );
        assert_eq!(verify(None, &proofs, MTLS), Err(BindingError::CnfMissing));
        assert_eq!(
            verify(Some(&cnf(None, None)), &proofs, MTLS),
            Err(BindingError::CnfUnsupported)
        );
        let padded = format!("{THUMB}=");
        let standard = THUMB.replace('-', "+").replace('_', "/");
        for malformed in [padded.as_str(), standard.as_str(), ""] {
            let id = identity(malformed);
            let proofs = Proofs {
                client_certificate: Some(&id),
                ..Proofs::default()
            };
            assert_eq!(
                verify(Some(&cnf(Some(malformed), None)), &proofs, MTLS),
                Err(BindingError::ThumbprintMalformed),
                "{malformed}"
            );
        }
    }

    const BOTH: BindingMethods = BindingMethods { mtls: true, dpop: true };
    const DPOP_ONLY: BindingMethods = BindingMethods {
        mtls: false,
        dpop: true,
    };
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    fn dpop<'a>(id: Option<&'a ClientIdentity>, jkt: &'a str) -> Proofs<'a> {
        Proofs {
            client_certificate: id,
            scheme: Scheme::Dpop,
            dpop_jkt: Some(jkt),
            dpop_header: true,
        }
    }

    #[test]
    fn every_declared_binding_must_hold() {
        let id = identity(THUMB);
        let both = cnf(Some(THUMB), Some(JKT));
        assert_eq!(verify(Some(&both), &dpop(Some(&id), JKT), BOTH), Ok("mtls+dpop"));
        // Even on a route that only asks for one of them.
        assert_eq!(verify(Some(&both), &dpop(Some(&id), JKT), DPOP_ONLY), Ok("mtls+dpop"));
        assert_eq!(
            verify(Some(&both), &dpop(None, JKT), BOTH),
            Err(BindingError::CertificateMissing)
        );
        let other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            verify(Some(&both), &dpop(Some(&id), other_key), BOTH),
            Err(BindingError::JktMismatch)
        );
    }

    #[test]
    fn dpop_tokens_and_proofs_go_together() {
        let id = identity(THUMB);
        let jkt_only = cnf(None, Some(JKT));
        assert_eq!(verify(Some(&jkt_only), &dpop(None, JKT), DPOP_ONLY), Ok("dpop"));
        let bearer = Proofs {
            client_certificate: Some(&id),
            ..Proofs::default()
        };
        assert_eq!(
            verify(Some(&jkt_only), &bearer, BOTH),
            Err(BindingError::DpopTokenWithBearer)
        );
        let x5t_only = cnf(Some(THUMB), None);
        assert_eq!(
            verify(Some(&x5t_only), &dpop(Some(&id), JKT), BOTH),
            Err(BindingError::NotDpopBound)
        );
        let stray_header = Proofs {
            dpop_header: true,
            ..bearer
        };
        assert_eq!(
            verify(Some(&x5t_only), &stray_header, BOTH),
            Err(BindingError::NotDpopBound)
        );
        assert_eq!(
            verify(Some(&x5t_only), &bearer, DPOP_ONLY),
            Err(BindingError::MethodNotAccepted)
        );
        assert_eq!(
            verify(Some(&jkt_only), &dpop(None, JKT), MTLS),
            Err(BindingError::MethodNotAccepted)
        );
        assert_eq!(
            verify(Some(&cnf(None, Some("short"))), &dpop(None, "short"), BOTH),
            Err(BindingError::JktMalformed)
        );
    }
}
