//! `bindgate mint`: a dev access token signed with the dev issuer key and
//! bound to a client certificate, a DPoP key, or both; or, with
//! `--id-token`, the dev identity provider's id_token that a public client
//! exchanges for bound tokens (RFC 8693).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::keys::{KeyFileError, read_p256_key};
use crate::conn::identity::x5t_s256;
use crate::conn::pem;
use crate::jose::sign::{SignError, SigningKey, SigningKeyError};

/// What goes into a minted token.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    /// The client certificate the token is bound to (`cnf."x5t#S256"`).
    pub cert: Option<&'a Path>,
    /// The client's DPoP key (EC P-256, PKCS#8 PEM) the token is bound to (`cnf.jkt`).
    pub dpop_key: Option<&'a Path>,
    pub issuer_key: &'a Path,
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub ttl: Duration,
    pub scope: Option<&'a str>,
    /// An identity provider's id_token: `typ` `JWT` and no `cnf`, since the
    /// exchange, not the IdP, binds what the client gets.
    pub id_token: bool,
}

/// Why no token could be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{path}: {source}")]
    Pem {
        path: String,
        #[source]
        source: pem::PemError,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("issuer key {0}")]
    IssuerKey(#[from] SigningKeyError),
    /// A token bound to nothing would be a bearer token: exactly what the gateway refuses.
    #[error("nothing to bind the token to: give a client certificate, a DPoP key, or both")]
    NoBinding,
    #[error("cannot sign: {0}")]
    Sign(#[from] SignError),
}

/// Mints a token signed with the issuer key (ES256 for EC P-256, EdDSA for
/// Ed25519) whose `cnf` binds it to the thumbprint of `cert` (`x5t#S256`),
/// of the public key of `dpop_key` (`jkt`), or both.
pub fn mint(req: &MintRequest<'_>) -> Result<String, MintError> {
    Minter::new(req)?.mint(0)
}

/// Mints many tokens for one request with the files read once: what load
/// tests need when every request must carry a token never seen before.
pub struct Minter<'a> {
    req: &'a MintRequest<'a>,
    cnf: serde_json::Map<String, serde_json::Value>,
    /// Signs as the authorization server does, so its `kid` is the same thumbprint.
    issuer: SigningKey,
}

impl<'a> Minter<'a> {
    pub fn new(req: &'a MintRequest<'a>) -> Result<Minter<'a>, MintError> {
        let mut cnf = serde_json::Map::new();
        if let Some(cert) = req.cert {
            let chain = pem::certificates(cert).map_err(|source| MintError::Pem {
                path: cert.display().to_string(),
                source,
            })?;
            let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
            cnf.insert("x5t#S256".to_string(), x5t_s256(leaf).into());
        }
        if let Some(dpop_key) = req.dpop_key {
            let client_key = read_p256_key(dpop_key)?;
            cnf.insert("jkt".to_string(), super::keys::jkt(&client_key).into());
        }
        if cnf.is_empty() && !req.id_token {
            return Err(MintError::NoBinding);
        }
        let issuer = SigningKey::from_pem_file(req.issuer_key)?;
        Ok(Minter { req, cnf, issuer })
    }

    /// The `serial`-th token: its `jti` differs from every other serial's.
    pub fn mint(&self, serial: u64) -> Result<String, MintError> {
        let req = self.req;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut claims = serde_json::json!({
            "iss": req.iss,
            "sub": req.sub,
            "aud": req.aud,
            "iat": now.as_secs(),
            "nbf": now.as_secs(),
            "exp": (now + req.ttl).as_secs(),
            "jti": format!("{:x}-{serial}", now.as_nanos()),
        });
        if !self.cnf.is_empty() {
            claims["cnf"] = serde_json::Value::Object(self.cnf.clone());
        }
        if let Some(scope) = req.scope {
            claims["scope"] = serde_json::Value::String(scope.to_string());
        }
        let typ = if req.id_token { "JWT" } else { "at+jwt" };
        Ok(self.issuer.sign(typ, &claims)?)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            super::super::certs::write(dir.path(), false).unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        fn cnf(&self, cert: Option<&str>, dpop_key: Option<&str>) -> Result<serde_json::Value, MintError> {
            self.cnf_with_issuer(cert, dpop_key, "issuer-key.pem")
        }

        fn cnf_with_issuer(
            &self,
            cert: Option<&str>,
            dpop_key: Option<&str>,
            issuer_key: &str,
        ) -> Result<serde_json::Value, MintError> {
            let cert = cert.map(|c| self.path(c));
            let dpop_key = dpop_key.map(|k| self.path(k));
            let issuer_key = self.path(issuer_key);
            let token = mint(&MintRequest {
                cert: cert.as_deref(),
                dpop_key: dpop_key.as_deref(),
                issuer_key: &issuer_key,
                iss: "https://issuer.example",
                aud: "https://api.example",
                sub: "dev-user",
                ttl: Duration::from_secs(60),
                scope: None,
                id_token: false,
            })?;
            let claims = token.split('.').nth(1).unwrap();
            let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
            Ok(claims["cnf"].clone())
        }

        fn jkt(&self) -> String {
            let key = read_p256_key(&self.path("dpop-key.pem")).unwrap();
            crate::dev::keys::jkt(&key)
        }

        fn x5t(&self) -> String {
            let chain = pem::certificates(&self.path("client-a.pem")).unwrap();
            x5t_s256(chain[0].as_ref())
        }
    }

    #[test]
    fn an_id_token_of_the_dev_idp_is_typ_jwt_and_bound_to_nothing() {
        let f = Files::new();
        let idp_key = f.path("idp-key.pem");
        let token = mint(&MintRequest {
            cert: None,
            dpop_key: None,
            issuer_key: &idp_key,
            iss: "https://idp.bindgate.dev",
            aud: "app",
            sub: "alice",
            ttl: Duration::from_secs(60),
            scope: None,
            id_token: true,
        })
        .unwrap();
        let jws = crate::jose::jws::parse::<crate::jose::jws::JoseHeader>(&token).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        let payload = crate::jose::jws::decode_part(jws.payload_b64, "payload").unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(claims.get("cnf").is_none(), "{claims}");
        assert_eq!(
            (claims["sub"].as_str(), claims["aud"].as_str()),
            (Some("alice"), Some("app"))
        );
        let keys = crate::jose::jwk::KeySet::from_file(&f.path("idp.jwks.json")).unwrap();
        let alg = crate::jose::Algorithm::from_name(&jws.header.alg).unwrap();
        let key = keys.choose(jws.header.kid.as_deref(), alg).unwrap();
        assert!(key.verify(alg, jws.signing_input.as_bytes(), jws.signature_b64));
    }

    #[test]
    fn cnf_holds_what_the_token_is_bound_to() {
        let f = Files::new();
        assert_eq!(
            f.cnf(Some("client-a.pem"), None).unwrap(),
            serde_json::json!({ "x5t#S256": f.x5t() })
        );
        assert_eq!(
            f.cnf(None, Some("dpop-key.pem")).unwrap(),
            serde_json::json!({ "jkt": f.jkt() })
        );
        assert_eq!(
            f.cnf(Some("client-a.pem"), Some("dpop-key.pem")).unwrap(),
            serde_json::json!({ "x5t#S256": f.x5t(), "jkt": f.jkt() })
        );
    }

    #[test]
    fn the_token_names_the_key_the_dev_jwks_publishes_and_verifies_with_it() {
        let f = Files::new();
        let issuer_key = f.path("issuer-key.pem");
        let cert = f.path("client-a.pem");
        let token = mint(&MintRequest {
            cert: Some(&cert),
            dpop_key: None,
            issuer_key: &issuer_key,
            iss: "https://issuer.example",
            aud: "https://api.example",
            sub: "dev-user",
            ttl: Duration::from_secs(60),
            scope: None,
            id_token: false,
        })
        .unwrap();
        let jws = crate::jose::jws::parse::<crate::jose::jws::JoseHeader>(&token).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
        let keys = crate::jose::jwk::KeySet::from_file(&f.path("jwks.json")).unwrap();
        let key = keys
            .choose(jws.header.kid.as_deref(), crate::jose::Algorithm::ES256)
            .unwrap();
        assert!(key.verify(
            crate::jose::Algorithm::ES256,
            jws.signing_input.as_bytes(),
            jws.signature_b64
        ));
    }

    #[test]
    fn an_issuer_key_of_another_type_is_refused_with_its_path() {
        let f = Files::new();
        let err = f
            .cnf_with_issuer(Some("client-a.pem"), None, "client-a.pem")
            .unwrap_err();
        assert!(matches!(err, MintError::IssuerKey(_)), "{err}");
        assert!(err.to_string().contains("client-a.pem"), "{err}");
    }

    #[test]
    fn a_token_bound_to_nothing_is_refused() {
        let f = Files::new();
        assert!(matches!(f.cnf(None, None), Err(MintError::NoBinding)));
    }

    #[test]
    fn a_dpop_key_that_is_not_a_private_key_is_refused_with_its_path() {
        let f = Files::new();
        let err = f.cnf(None, Some("client-a.pem")).unwrap_err();
        assert!(matches!(err, MintError::Key(KeyFileError::NotP256 { .. })), "{err}");
        assert!(err.to_string().contains("client-a.pem"), "{err}");
    }
}
