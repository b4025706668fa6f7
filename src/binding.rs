//! The sender constraint: the token's `cnf` names a key, the caller must
//! prove it holds that key. Every binding the token declares must hold.

use subtle::ConstantTimeEq;

use crate::identity::ClientIdentity;
use crate::token::Confirmation;

/// One key a token is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// RFC 8705: the client certificate's `x5t#S256`.
    X5tS256(&'a str),
    /// RFC 9449: a DPoP key's JWK thumbprint.
    Jkt(&'a str),
}

/// What the caller has proven on this request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proofs<'a> {
    /// The certificate of the TLS connection, if one was presented.
    pub client_certificate: Option<&'a ClientIdentity>,
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
    #[error("token is bound to a DPoP key; DPoP proofs are not supported yet")]
    DpopUnsupported,
}

/// The bindings a `cnf` claim declares, in a fixed order.
pub fn declared(cnf: Option<&Confirmation>) -> Result<Vec<Binding<'_>>, BindingError> {
    let cnf = cnf.ok_or(BindingError::CnfMissing)?;
    let mut bindings = Vec::with_capacity(2);
    if let Some(x5t) = &cnf.x5t_s256 {
        bindings.push(Binding::X5tS256(x5t));
    }
    if let Some(jkt) = &cnf.jkt {
        bindings.push(Binding::Jkt(jkt));
    }
    if bindings.is_empty() {
        return Err(BindingError::CnfUnsupported);
    }
    Ok(bindings)
}

/// Checks every binding of `cnf` against what the caller proved.
pub fn verify(cnf: Option<&Confirmation>, proofs: &Proofs<'_>) -> Result<(), BindingError> {
    for binding in declared(cnf)? {
        match binding {
            Binding::X5tS256(expected) => verify_certificate(expected, proofs.client_certificate)?,
            Binding::Jkt(_) => return Err(BindingError::DpopUnsupported),
        }
    }
    Ok(())
}

fn verify_certificate(expected: &str, presented: Option<&ClientIdentity>) -> Result<(), BindingError> {
    // 32 bytes in unpadded base64url is exactly 43 characters of the URL alphabet.
    let well_formed = expected.len() == 43
        && expected
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(BindingError::ThumbprintMalformed);
    }
    let presented = presented.ok_or(BindingError::CertificateMissing)?;
    if bool::from(expected.as_bytes().ct_eq(presented.x5t_s256.as_bytes())) {
        Ok(())
    } else {
        Err(BindingError::CertificateMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(x5t: &str) -> ClientIdentity {
        ClientIdentity {
            x5t_s256: x5t.to_string(),
            sha256_hex: String::new(),
            subject: String::new(),
            uris: vec![],
            dns: vec![],
            xfcc: http::HeaderValue::from_static(""),
            not_after: 0,
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
        };
        assert_eq!(verify(Some(&cnf(Some(THUMB), None)), &proofs), Ok(()));
    }

    #[test]
    fn mismatch_missing_and_malformed_are_told_apart() {
        let other = identity("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let proofs = Proofs {
            client_certificate: Some(&other),
        };
        let bound = cnf(Some(THUMB), None);
        assert_eq!(verify(Some(&bound), &proofs), Err(BindingError::CertificateMismatch));
        assert_eq!(
            verify(Some(&bound), &Proofs::default()),
            Err(BindingError::CertificateMissing)
        );
        assert_eq!(verify(None, &proofs), Err(BindingError::CnfMissing));
        assert_eq!(
            verify(Some(&cnf(None, None)), &proofs),
            Err(BindingError::CnfUnsupported)
        );
        let padded = format!("{THUMB}=");
        let standard = THUMB.replace('-', "+").replace('_', "/");
        for malformed in [padded.as_str(), standard.as_str(), ""] {
            let id = identity(malformed);
            let proofs = Proofs {
                client_certificate: Some(&id),
            };
            assert_eq!(
                verify(Some(&cnf(Some(malformed), None)), &proofs),
                Err(BindingError::ThumbprintMalformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn every_declared_binding_must_hold() {
        let id = identity(THUMB);
        let proofs = Proofs {
            client_certificate: Some(&id),
        };
        assert_eq!(
            verify(Some(&cnf(Some(THUMB), Some("jkt"))), &proofs),
            Err(BindingError::DpopUnsupported)
        );
    }
}
