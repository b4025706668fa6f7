//! DPoP proof validation, the checklist of RFC 9449 section 4.3, except the
//! replay and nonce checks, which need shared state and live in the caller.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::ThumbprintHash;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::htu::{self, NormalizedUri};
use crate::auth::token::claims::NumericDate;
use crate::jose::Algorithm;
use crate::jose::jwk::{KeyChoiceError, VerificationKey};
use crate::jose::jws::{self, EmptyParts, JwsError};

/// Why a DPoP proof is invalid. Every variant answers `invalid_dpop_proof`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("DPoP proof is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    #[error("DPoP proof algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("DPoP proof header carries no public jwk")]
    MissingJwk,
    #[error("DPoP proof jwk contains private key material")]
    PrivateKey,
    #[error("DPoP proof jwk is not a usable public key for its alg: {0}")]
    UnusableJwk(String),
    #[error("DPoP proof signature does not verify with its jwk")]
    BadSignature,
    #[error("DPoP proof claims are malformed: {0}")]
    ClaimsMalformed(String),
    #[error("DPoP proof htm does not match the request method")]
    MethodMismatch,
    #[error("DPoP proof htu does not match the request URI")]
    UriMismatch,
    #[error("DPoP proof iat is outside the accepted window")]
    IatOutOfWindow,
    #[error("DPoP proof has no ath for the access token")]
    AthMissing,
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
}

impl ProofError {
    /// The stable reason label of logs and metrics, the same at the gateway
    /// and at the token endpoint.
    pub fn label(&self) -> &'static str {
        match self {
            ProofError::Malformed(_) => "dpop_malformed",
            ProofError::WrongType => "dpop_typ",
            ProofError::AlgorithmNotAllowed => "dpop_alg_not_allowed",
            ProofError::MissingJwk => "dpop_jwk_missing",
            ProofError::PrivateKey => "dpop_jwk_private",
            ProofError::UnusableJwk(_) => "dpop_jwk_unusable",
            ProofError::BadSignature => "dpop_bad_signature",
            ProofError::ClaimsMalformed(_) => "dpop_claims_malformed",
            ProofError::MethodMismatch => "dpop_htm_mismatch",
            ProofError::UriMismatch => "dpop_htu_mismatch",
            ProofError::IatOutOfWindow => "dpop_iat_out_of_window",
            ProofError::AthMissing => "dpop_ath_missing",
            ProofError::AthMismatch => "dpop_ath_mismatch",
        }
    }
}

/// Static rules for proofs.
#[derive(Debug, Clone)]
pub struct ProofRules {
    pub algorithms: Vec<Algorithm>,
    /// How far `iat` may lie from now, either way, in seconds.
    pub iat_window: f64,
    pub leeway: f64,
}

/// What the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    pub method: &'a str,
    /// The request URI as the client addressed it, normalised.
    pub htu: &'a NormalizedUri,
    /// The access token presented with the proof, which `ath` must hash;
    /// `None` at the token endpoint, where the proof comes before any token
    /// (RFC 9449 section 5) and `ath` is not checked.
    pub access_token: Option<&'a str>,
    pub now: f64,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key: the token's `cnf.jkt` must equal it.
    pub jkt: String,
    pub jti: String,
    pub iat: f64,
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: String,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: NumericDate,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks `proof` against `rules` and the request in `ctx`.
pub fn verify(proof: &str, rules: &ProofRules, ctx: &ProofContext<'_>) -> Result<VerifiedProof, ProofError> {
    // Empty parts are decoded, not refused up front: an empty signature is a
    // bad signature and empty claims are malformed claims, each with its own reason.
    let jws = jws::parse_with::<ProofHeader>(proof, EmptyParts::Decode).map_err(malformed)?;
    let header = jws.header;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError::WrongType);
    }
    let alg = Algorithm::from_name(&header.alg)
        .ok()
        .filter(|a| rules.algorithms.contains(a))
        .ok_or(ProofError::AlgorithmNotAllowed)?;
    if header.crit.is_some() {
        return Err(ProofError::Malformed(
            "critical header extensions are not supported".to_string(),
        ));
    }
    let jwk = header.jwk.ok_or(ProofError::MissingJwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let jkt = verify_signature(jwk, alg, jws.signing_input, jws.signature_b64)?;

    let payload = jws::decode_part(jws.payload_b64, "payload").map_err(malformed)?;
    let claims: ProofClaims =
        serde_json::from_slice(&payload).map_err(|e| ProofError::ClaimsMalformed(e.to_string()))?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ProofError::ClaimsMalformed(
            "jti must be 1 to 256 characters".to_string(),
        ));
    }
    // Methods are case-sensitive (RFC 9110 section 9.1).
    if claims.htm != ctx.method {
        return Err(ProofError::MethodMismatch);
    }
    let claimed = htu::normalize(&claims.htu).map_err(|_| ProofError::UriMismatch)?;
    if claims.htu.contains(['?', '#']) || &claimed != ctx.htu {
        return Err(ProofError::UriMismatch);
    }
    let iat = claims.iat.0;
    // Symmetric: clients' clocks drift both ways, and a proof is only ever
    // accepted once whatever its iat, the replay store sees to that.
    if (iat - ctx.now).abs() > rules.iat_window + rules.leeway {
        return Err(ProofError::IatOutOfWindow);
    }
    if let Some(access_token) = ctx.access_token {
        let presented = claims.ath.as_deref().ok_or(ProofError::AthMissing)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            presented.as_bytes(),
            ath(access_token).as_bytes(),
        )) {
            return Err(ProofError::AthMismatch);
        }
    }
    Ok(VerifiedProof {
        jkt,
        jti: claims.jti,
        iat,
        nonce: claims.nonce,
    })
}

/// The proof's own wording of a shape error, as clients have always been told it.
fn malformed(e: JwsError) -> ProofError {
    ProofError::Malformed(match e {
        JwsError::NotThreeParts => "expected three dot-separated parts".to_string(),
        JwsError::HeaderNotJson(reason) => reason,
        e @ JwsError::NotBase64Url(_) => e.to_string(),
    })
}

/// RFC 9449 `ath`: base64url(SHA-256(ASCII(access token))).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// Verifies the signature with the header's own key and returns that key's thumbprint.
fn verify_signature(
    jwk: serde_json::Map<String, serde_json::Value>,
    alg: Algorithm,
    signing_input: &str,
    signature_b64: &str,
) -> Result<String, ProofError> {
    let unusable = |e: &dyn std::fmt::Display| ProofError::UnusableJwk(e.to_string());
    // The key-set rules apply: no symmetric keys, the curve must fit the alg.
    let (key, parsed) = VerificationKey::from_jwk(serde_json::Value::Object(jwk)).map_err(|e| unusable(&e))?;
    if !key.accepts(alg) {
        return Err(unusable(&format!("{:?}", KeyChoiceError::AlgorithmMismatch)));
    }
    if !key.verify(alg, signing_input.as_bytes(), signature_b64) {
        return Err(ProofError::BadSignature);
    }
    parsed.thumbprint(ThumbprintHash::SHA256).map_err(|e| unusable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    struct Client {
        key: rcgen::KeyPair,
        jwk: serde_json::Value,
    }

    fn client() -> Client {
        let key = rcgen::KeyPair::generate().unwrap();
        let (mut jwk, _) = crate::dev::certs::ec_p256_jwk(&key);
        let map = jwk.as_object_mut().unwrap();
        for member in ["kid", "alg", "use"] {
            map.remove(member);
        }
        Client { key, jwk }
    }

    impl Client {
        fn proof(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            crate::jose::jws::sign_es256(&self.key.serialize_der(), &header, &claims).unwrap()
        }

        fn header(&self) -> serde_json::Value {
            serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
        }
    }

    fn claims(token: &str) -> serde_json::Value {
        serde_json::json!({
            "jti": "e1j3V_bKic8-LAEB",
            "htm": "GET",
            "htu": "https://api.example/resource",
            "iat": NOW,
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())),
        })
    }

    fn rules() -> ProofRules {
        ProofRules {
            algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            iat_window: 60.0,
            leeway: 5.0,
        }
    }

    fn check(proof: &str, token: &str) -> Result<VerifiedProof, ProofError> {
        let htu = htu::normalize("https://api.example/resource").unwrap();
        let ctx = ProofContext {
            method: "GET",
            htu: &htu,
            access_token: Some(token),
            now: NOW,
        };
        verify(proof, &rules(), &ctx)
    }

    fn with(mut v: serde_json::Value, k: &str, x: serde_json::Value) -> serde_json::Value {
        v[k] = x;
        v
    }

    #[test]
    fn a_valid_proof_yields_the_key_thumbprint() {
        let c = client();
        let verified = check(&c.proof(c.header(), claims("tok")), "tok").unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(c.jwk.clone()).unwrap();
        assert_eq!(verified.jkt, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert_eq!(verified.jti, "e1j3V_bKic8-LAEB");
    }

    #[test]
    fn each_checklist_item_is_enforced() {
        let c = client();
        let h = c.header();
        let cl = claims("tok");
        let cases: Vec<(String, ProofError)> = vec![
            (
                c.proof(with(h.clone(), "typ", "JWT".into()), cl.clone()),
                ProofError::WrongType,
            ),
            (
                c.proof(with(h.clone(), "alg", "none".into()), cl.clone()),
                ProofError::AlgorithmNotAllowed,
            ),
            (
                c.proof(with(h.clone(), "alg", "HS256".into()), cl.clone()),
                ProofError::AlgorithmNotAllowed,
            ),
            (
                c.proof(
                    with(h.clone(), "jwk", with(c.jwk.clone(), "d", "AAAA".into())),
                    cl.clone(),
                ),
                ProofError::PrivateKey,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "htm", "POST".into())),
                ProofError::MethodMismatch,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "htm", "get".into())),
                ProofError::MethodMismatch,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "htu", "https://api.example/other".into())),
                ProofError::UriMismatch,
            ),
            (
                c.proof(
                    h.clone(),
                    with(cl.clone(), "htu", "https://api.example/resource?x=1".into()),
                ),
                ProofError::UriMismatch,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "iat", (NOW - 70.0).into())),
                ProofError::IatOutOfWindow,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "iat", (NOW + 70.0).into())),
                ProofError::IatOutOfWindow,
            ),
            (
                c.proof(h.clone(), with(cl.clone(), "ath", "wrong".into())),
                ProofError::AthMismatch,
            ),
        ];
        for (i, (proof, expected)) in cases.into_iter().enumerate() {
            assert_eq!(check(&proof, "tok").map(|_| ()), Err(expected), "case {i}");
        }
        let mut no_ath = cl.clone();
        no_ath.as_object_mut().unwrap().remove("ath");
        assert_eq!(
            check(&c.proof(h.clone(), no_ath), "tok").map(|_| ()),
            Err(ProofError::AthMissing)
        );
    }

    #[test]
    fn equivalent_htu_spellings_are_accepted() {
        let c = client();
        let cl = with(claims("tok"), "htu", "HTTPS://API.EXAMPLE:443/resource".into());
        assert!(check(&c.proof(c.header(), cl), "tok").is_ok());
    }

    #[test]
    fn a_proof_signed_by_another_key_than_its_jwk_fails() {
        let c = client();
        let other = client();
        let proof = other.proof(c.header(), claims("tok"));
        assert_eq!(check(&proof, "tok").map(|_| ()), Err(ProofError::BadSignature));
    }

    #[test]
    fn shape_errors_keep_their_wording_and_empty_parts_fail_where_they_are_read() {
        let c = client();
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let header = b64(&c.header().to_string());
        let malformed = |m: &str| Err(ProofError::Malformed(m.to_string()));
        assert_eq!(
            check("a.b", "tok").map(|_| ()),
            malformed("expected three dot-separated parts")
        );
        assert_eq!(
            check("a.b.c.d", "tok").map(|_| ()),
            malformed("expected three dot-separated parts")
        );
        assert_eq!(
            check("eyJ=.e30.c2ln", "tok").map(|_| ()),
            malformed("the header part is not unpadded base64url")
        );
        assert_eq!(
            check(".e30.c2ln", "tok").map(|_| ()),
            malformed("EOF while parsing a value at line 1 column 0")
        );
        assert_eq!(
            check("e30.e30.c2ln", "tok").map(|_| ()),
            malformed("missing field `alg` at line 1 column 2")
        );
        let unsigned = c.proof(c.header(), claims("tok"));
        let unsigned = &unsigned[..unsigned.rfind('.').unwrap() + 1];
        assert_eq!(check(unsigned, "tok").map(|_| ()), Err(ProofError::BadSignature));
        // Signed as given, so the payload is read past a good signature.
        let signed = |payload: &str| {
            let input = format!("{header}.{payload}");
            let key = jsonwebtoken::EncodingKey::from_ec_der(&c.key.serialize_der());
            let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
            format!("{input}.{signature}")
        };
        assert!(matches!(check(&signed(""), "tok"), Err(ProofError::ClaimsMalformed(_))));
        assert_eq!(
            check(&signed("e30="), "tok").map(|_| ()),
            malformed("the payload part is not unpadded base64url")
        );
    }
}
