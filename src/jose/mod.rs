//! JOSE, shared by whatever verifies and whatever signs: the algorithms
//! ([`Algorithm`]), the JWS compact form ([`jws`]: parsing), JWKs ([`jwk`]:
//! key sets, parsed keys, thumbprints) and the keys that sign ([`sign`]). A
//! leaf: it knows no request, token policy or configuration.

pub mod jwk;
pub mod jws;
pub mod sign;

use std::fmt;

/// A JWS algorithm the gateway can verify. Symmetric algorithms and `none`
/// are deliberately absent: a resource server holding an issuer's public key
/// must never treat it as an HMAC secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    ES256,
    ES384,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}

impl Algorithm {
    /// The allow-list used when `token.algorithms` is not set.
    pub const DEFAULT_ALLOWED: [Algorithm; 4] =
        [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA];

    /// Every algorithm bindgate can verify.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::EdDSA,
    ];

    /// The JOSE name, as in a token's `alg` header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE algorithm name, explaining why symmetric ones are refused.
    /// `Ed25519`, RFC 9864's fully-specified name, is `EdDSA` with the only
    /// curve bindgate verifies: clients following RFC 9864 (openid-client
    /// and jose v6, for one) sign with it.
    pub fn from_name(name: &str) -> Result<Algorithm, String> {
        if let Some(alg) = Algorithm::ALL.iter().find(|a| a.name() == name) {
            return Ok(*alg);
        }
        if name == "Ed25519" {
            return Ok(Algorithm::EdDSA);
        }
        if name.eq_ignore_ascii_case("none") {
            return Err("\"none\" (unsigned tokens) is never allowed".to_string());
        }
        if name.starts_with("HS") {
            return Err(format!(
                "{name:?}: HMAC algorithms are never allowed; a resource server must verify with the issuer's public key"
            ));
        }
        let supported: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        Err(format!(
            "{name:?} is not supported (supported: {})",
            supported.join(", ")
        ))
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_itself_and_ed25519_is_eddsa() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Ok(alg));
        }
        assert_eq!(Algorithm::from_name("Ed25519"), Ok(Algorithm::EdDSA));
        for refused in ["none", "HS256", "Ed448", "ed25519", "eddsa", ""] {
            assert!(Algorithm::from_name(refused).is_err(), "{refused}");
        }
    }
}
