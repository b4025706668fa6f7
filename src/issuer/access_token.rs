//! The access tokens the authorization server issues: RFC 9068 JWTs
//! (`typ` `at+jwt`), always sender-constrained. A [`Binding`] is required to
//! build one, so an unbound token cannot be expressed, let alone signed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::jose::sign::{SignError, SigningKey};

/// The key an access token is bound to (its `cnf`), and so its `token_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// RFC 8705: the SHA-256 thumbprint of the client certificate; `Bearer`.
    Certificate { x5t_s256: String },
    /// RFC 9449: the JWK thumbprint of the DPoP key; `DPoP`.
    Dpop { jkt: String },
}

impl Binding {
    /// The `token_type` of the token response.
    pub fn token_type(&self) -> &'static str {
        match self {
            Binding::Certificate { .. } => "Bearer",
            Binding::Dpop { .. } => "DPoP",
        }
    }

    /// The label of logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Binding::Certificate { .. } => "mtls",
            Binding::Dpop { .. } => "dpop",
        }
    }
}

/// What a grant decided the token says.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    /// Never empty: a token for no audience would be accepted by none, or,
    /// worse, by a resource server that does not check.
    pub audience: &'a [String],
    /// The granted scope tokens, in the order the client was registered with.
    pub scope: &'a [String],
    pub binding: &'a Binding,
    /// The refresh-token family, for tokens issued from one (`sid`).
    pub family: Option<&'a str>,
}

/// An access token, signed, with what the token response and the access
/// line say about it.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("the system random number generator failed")]
    Random,
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// A single audience is written as a string, as most resource servers expect.
    aud: Audience<'a>,
    client_id: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    cnf: Cnf<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Several(&'a [String]),
}

#[derive(Serialize)]
struct Cnf<'a> {
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<&'a str>,
}

/// Signs the token `grant` describes, valid for `ttl_seconds` from `now`.
pub fn mint(key: &SigningKey, grant: &Grant<'_>, now: u64, ttl_seconds: u64) -> Result<Issued, MintError> {
    let jti = random_id()?;
    let cnf = match grant.binding {
        Binding::Certificate { x5t_s256 } => Cnf {
            x5t_s256: Some(x5t_s256),
            jkt: None,
        },
        Binding::Dpop { jkt } => Cnf {
            x5t_s256: None,
            jkt: Some(jkt),
        },
    };
    let claims = Claims {
        iss: grant.issuer,
        sub: grant.subject,
        aud: match grant.audience {
            [one] => Audience::One(one),
            several => Audience::Several(several),
        },
        client_id: grant.client_id,
        iat: now,
        exp: now + ttl_seconds,
        jti: &jti,
        scope: (!grant.scope.is_empty()).then(|| grant.scope.join(" ")),
        cnf,
        sid: grant.family,
    };
    let token = key.sign("at+jwt", &claims)?;
    Ok(Issued {
        token,
        expires_in: ttl_seconds,
    })
}

/// 128 random bits, base64url: a `jti` no one can guess or make collide.
pub fn random_id() -> Result<String, MintError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| MintError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;
    use crate::jose::jwk::KeySet;
    use crate::jose::jws;

    fn ed25519_key() -> SigningKey {
        let pkcs8 =
            aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn claims_of(key: &SigningKey, token: &str) -> serde_json::Value {
        let jws = jws::parse::<jws::JoseHeader>(token).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        let keys = KeySet::from_json(format!("{{\"keys\":[{}]}}", key.public_jwk()).as_bytes()).unwrap();
        let verifier = keys.choose(jws.header.kid.as_deref(), Algorithm::EdDSA).unwrap();
        assert!(verifier.verify(Algorithm::EdDSA, jws.signing_input.as_bytes(), jws.signature_b64));
        serde_json::from_slice(&jws::decode_part(jws.payload_b64, "payload").unwrap()).unwrap()
    }

    #[test]
    fn a_certificate_bound_token_carries_every_rfc_9068_claim() {
        let key = ed25519_key();
        let binding = Binding::Certificate {
            x5t_s256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".into(),
        };
        let grant = Grant {
            issuer: "https://as.example",
            subject: "svc-a",
            client_id: "svc-a",
            audience: &["https://api.example".into()],
            scope: &["orders:read".into(), "orders:write".into()],
            binding: &binding,
            family: None,
        };
        let issued = mint(&key, &grant, 1_700_000_000, 300).unwrap();
        let claims = claims_of(&key, &issued.token);
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "https://as.example",
                "sub": "svc-a",
                "aud": "https://api.example",
                "client_id": "svc-a",
                "iat": 1_700_000_000u64,
                "exp": 1_700_000_300u64,
                "jti": claims["jti"],
                "scope": "orders:read orders:write",
                "cnf": { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" },
            })
        );
        assert_eq!(issued.expires_in, 300);
        assert_eq!((binding.token_type(), binding.label()), ("Bearer", "mtls"));
    }

    #[test]
    fn a_dpop_bound_token_of_a_family_names_its_key_and_family() {
        let key = ed25519_key();
        let binding = Binding::Dpop {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        };
        let audience = ["https://a.example".to_string(), "https://b.example".to_string()];
        let grant = Grant {
            issuer: "https://as.example",
            subject: "user-1",
            client_id: "app",
            audience: &audience,
            scope: &[],
            binding: &binding,
            family: Some("fam-1"),
        };
        let claims = claims_of(&key, &mint(&key, &grant, 10, 60).unwrap().token);
        assert_eq!(
            claims["cnf"],
            serde_json::json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" })
        );
        assert_eq!(claims["aud"], serde_json::json!(audience));
        assert_eq!(claims["sid"], "fam-1");
        assert!(claims.get("scope").is_none(), "no scope granted, no scope claim");
        assert_eq!((binding.token_type(), binding.label()), ("DPoP", "dpop"));
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let key = ed25519_key();
        let binding = Binding::Dpop { jkt: "k".into() };
        let grant = Grant {
            issuer: "i",
            subject: "s",
            client_id: "c",
            audience: &["a".into()],
            scope: &[],
            binding: &binding,
            family: None,
        };
        let a = claims_of(&key, &mint(&key, &grant, 0, 1).unwrap().token)["jti"].clone();
        let b = claims_of(&key, &mint(&key, &grant, 0, 1).unwrap().token)["jti"].clone();
        assert_ne!(a, b);
        assert_eq!(a.as_str().map(str::len), Some(22));
    }
}
