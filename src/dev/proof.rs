//! `bindgate dpop-proof`: a DPoP proof (RFC 9449 section 4.2) made with a
//! client's dev key, for trying DPoP-bound tokens by hand.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::KeyPair;

#[cfg(test)]
use super::keys::jkt;
use super::keys::{KeyFileError, read_p256_key};
use crate::auth::dpop::htu;
use crate::jose::jws::sign_es256;
use crate::jose::sign::SignError;

/// What goes into a proof, besides the key.
#[derive(Debug, Clone, Default)]
pub struct ProofRequest<'a> {
    /// The HTTP method, exactly as sent (methods are case-sensitive).
    pub method: &'a str,
    /// The request URL; its query and fragment are left out of `htu`.
    pub url: &'a str,
    /// The access token sent with the proof; its hash becomes `ath`.
    pub token: Option<&'a str>,
    /// A nonce the server handed out in a `DPoP-Nonce` header.
    pub nonce: Option<&'a str>,
    /// A fixed `jti`; random otherwise.
    pub jti: Option<&'a str>,
    /// A fixed `iat` in seconds since the epoch; now otherwise.
    pub iat: Option<u64>,
}

/// Why no proof could be made.
#[derive(Debug, thiserror::Error)]
pub enum MakeProofError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("{url}: {source}")]
    Url {
        url: String,
        #[source]
        source: htu::NotHttpUri,
    },
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot sign: {0}")]
    Sign(#[from] SignError),
}

/// Reads the client key at `key_path` and makes a proof for `req`.
pub fn proof_with_key_file(key_path: &Path, req: &ProofRequest<'_>) -> Result<String, MakeProofError> {
    let key = read_p256_key(key_path)?;
    proof(&key, req)
}

/// Makes an ES256 DPoP proof for `req`, signed with `key`.
pub fn proof(key: &KeyPair, req: &ProofRequest<'_>) -> Result<String, MakeProofError> {
    htu::normalize(req.url).map_err(|source| MakeProofError::Url {
        url: req.url.to_string(),
        source,
    })?;
    let jti = match req.jti {
        Some(jti) => jti.to_string(),
        None => random_jti()?,
    };
    let iat = req.iat.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    });
    let mut claims = serde_json::json!({
        "jti": jti,
        "htm": req.method,
        "htu": htu_of(req.url),
        "iat": iat,
    });
    if let Some(token) = req.token {
        claims["ath"] = crate::auth::dpop::proof::ath(token).into();
    }
    if let Some(nonce) = req.nonce {
        claims["nonce"] = nonce.into();
    }
    let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key) });
    Ok(sign_es256(&key.serialize_der(), &header, &claims)?)
}

/// The public JWK of a P-256 key with only the members RFC 7638 hashes
/// (`crv`, `kty`, `x`, `y`): what a proof header carries.
pub fn public_jwk(key: &KeyPair) -> serde_json::Value {
    let (jwk, _) = super::certs::ec_p256_jwk(key);
    let member = |name: &str| jwk.get(name).cloned().unwrap_or_default();
    serde_json::json!({ "kty": member("kty"), "crv": member("crv"), "x": member("x"), "y": member("y") })
}

/// `htu` is the URL without query and fragment (RFC 9449 section 4.2).
fn htu_of(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// 128 random bits: RFC 9449 asks for enough entropy that a `jti` is never reused.
fn random_jti() -> Result<String, MakeProofError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| MakeProofError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::auth::dpop::proof::{ProofContext, ProofError, ProofRules, VerifiedProof, verify};
    use crate::jose::Algorithm;

    const NOW: u64 = 1_800_000_000;

    fn rules() -> ProofRules {
        ProofRules {
            algorithms: vec![Algorithm::ES256],
            iat_window: 60.0,
            leeway: 5.0,
        }
    }

    fn check(proof: &str, method: &str, url: &str, token: &str) -> Result<VerifiedProof, ProofError> {
        let htu = htu::normalize(url).unwrap();
        let ctx = ProofContext {
            method,
            htu: &htu,
            access_token: Some(token),
            now: NOW as f64,
        };
        verify(proof, &rules(), &ctx)
    }

    fn part(jws: &str, index: usize) -> serde_json::Value {
        let b64 = jws.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_verifies_and_names_its_key_thumbprint() {
        let key = KeyPair::generate().unwrap();
        let req = ProofRequest {
            method: "GET",
            url: "https://127.0.0.1:8443/hello",
            token: Some("the-token"),
            iat: Some(NOW),
            ..ProofRequest::default()
        };
        let proof = proof(&key, &req).unwrap();
        let verified = check(&proof, "GET", "https://127.0.0.1:8443/hello", "the-token").unwrap();
        assert_eq!(verified.jkt, jkt(&key));
        assert_eq!(verified.iat, NOW as f64);
        assert_eq!(verified.nonce, None);
        // 16 random bytes, base64url without padding.
        assert_eq!(verified.jti.len(), 22);
        assert_eq!(
            check(&proof, "GET", "https://127.0.0.1:8443/hello", "other-token").map(|_| ()),
            Err(ProofError::AthMismatch)
        );
        assert_eq!(
            check(&proof, "POST", "https://127.0.0.1:8443/hello", "the-token").map(|_| ()),
            Err(ProofError::MethodMismatch)
        );
    }

    #[test]
    fn header_carries_only_the_public_members_of_the_key() {
        let key = KeyPair::generate().unwrap();
        let req = ProofRequest {
            method: "GET",
            url: "https://api.example/",
            ..ProofRequest::default()
        };
        let header = part(&proof(&key, &req).unwrap(), 0);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let mut members: Vec<&str> = header["jwk"].as_object().unwrap().keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["crv", "kty", "x", "y"]);
    }

    #[test]
    fn htu_drops_query_and_fragment_and_ath_nonce_jti_come_out_as_given() {
        let key = KeyPair::generate().unwrap();
        let req = ProofRequest {
            method: "POST",
            url: "https://api.example:8443/a/b?x=1&y=2#frag",
            token: Some("tok"),
            nonce: Some("server-nonce"),
            jti: Some("fixed-jti"),
            iat: Some(NOW),
        };
        let proof = proof(&key, &req).unwrap();
        let claims = part(&proof, 1);
        assert_eq!(claims["htu"], "https://api.example:8443/a/b");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["iat"], NOW);
        // RFC 9449 section 4.2: base64url(SHA-256(ASCII(token))).
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok")));
        let verified = check(&proof, "POST", "https://api.example:8443/a/b?other=query", "tok").unwrap();
        assert_eq!(verified.jti, "fixed-jti");
        assert_eq!(verified.nonce.as_deref(), Some("server-nonce"));
    }

    #[test]
    fn without_a_token_there_is_no_ath_and_without_a_nonce_no_nonce() {
        let key = KeyPair::generate().unwrap();
        let req = ProofRequest {
            method: "GET",
            url: "https://api.example/x",
            iat: Some(NOW),
            ..ProofRequest::default()
        };
        let claims = part(&proof(&key, &req).unwrap(), 1);
        let mut members: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["htm", "htu", "iat", "jti"]);
    }

    #[test]
    fn each_proof_gets_a_fresh_jti() {
        let key = KeyPair::generate().unwrap();
        let req = ProofRequest {
            method: "GET",
            url: "https://api.example/x",
            ..ProofRequest::default()
        };
        let jti = |p: String| part(&p, 1)["jti"].as_str().unwrap().to_string();
        assert_ne!(jti(proof(&key, &req).unwrap()), jti(proof(&key, &req).unwrap()));
    }

    #[test]
    fn a_url_that_is_not_absolute_http_is_refused() {
        let key = KeyPair::generate().unwrap();
        for url in ["/relative", "ftp://host/x", "https://user@host/x"] {
            let req = ProofRequest {
                method: "GET",
                url,
                ..ProofRequest::default()
            };
            assert!(matches!(proof(&key, &req), Err(MakeProofError::Url { .. })), "{url}");
        }
    }

    #[test]
    fn jkt_is_the_rfc7638_thumbprint_of_the_public_jwk() {
        let key = KeyPair::generate().unwrap();
        let jwk: Jwk = serde_json::from_value(public_jwk(&key)).unwrap();
        assert_eq!(jkt(&key), jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
    }

    #[test]
    fn a_key_file_that_is_not_p256_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ed25519.pem");
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        std::fs::write(&path, ed.serialize_pem()).unwrap();
        let req = ProofRequest {
            method: "GET",
            url: "https://api.example/",
            ..ProofRequest::default()
        };
        let err = proof_with_key_file(&path, &req).unwrap_err();
        assert!(
            matches!(err, MakeProofError::Key(KeyFileError::NotP256 { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("ed25519.pem"), "{err}");
    }
}
