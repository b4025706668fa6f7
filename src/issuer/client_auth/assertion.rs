//! `private_key_jwt`: a JWT the client signed with one of its registered
//! keys (RFC 7523 section 3). Its `aud` must be exactly this authorization
//! server's issuer identifier, alone (draft-ietf-oauth-rfc7523bis): an
//! assertion made out to a token endpoint URL, or to several audiences,
//! could have been made for, and replayed from, another server.

use serde::Deserialize;

use super::ClientAuthError;
use crate::auth::dpop::replay::{ReplayError, replay_key};
use crate::auth::dpop::store::ReplayStore;
use crate::auth::token::claims::{Audience, NumericDate};
use crate::jose::Algorithm;
use crate::jose::jwk::{KeyChoiceError, KeySet};
use crate::jose::jws::{self, CompactJws, JoseHeader};

/// Replay-store keys of assertions: a prefix DPoP's key thumbprints (bare
/// base64url) never start with, so the two key spaces cannot meet.
const REPLAY_PREFIX: &str = "assertion:";

/// The longest `jti` accepted, as for DPoP proofs: it is kept until the assertion expires.
const MAX_JTI_LEN: usize = 256;

/// What every assertion is checked against.
pub(super) struct Rules {
    /// The only acceptable `aud`.
    pub issuer: String,
    pub algorithms: Vec<Algorithm>,
    /// Seconds.
    pub leeway: f64,
    /// How far ahead `exp` may be, in seconds (plus the leeway).
    pub max_lifetime: f64,
}

/// An assertion split and its claims read; nothing verified yet.
pub(super) struct Parsed<'a> {
    jws: CompactJws<'a, JoseHeader>,
    pub claims: Claims,
}

/// The claims RFC 7523 section 3 asks for. `exp` and `jti` are optional
/// here so that their absence has a reason of its own.
#[derive(Deserialize)]
pub(super) struct Claims {
    pub iss: String,
    sub: String,
    aud: Audience,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    jti: Option<String>,
}

/// An assertion that passed every check but the replay store.
pub(super) struct Verified {
    jti: String,
    /// When the assertion can no longer be accepted (`exp` plus leeway),
    /// and so until when its `jti` must be remembered.
    remember_until: f64,
}

/// Splits `text` and reads its claims, so that its `iss` can name the client whose keys must verify it.
pub(super) fn parse(text: &str) -> Result<Parsed<'_>, ClientAuthError> {
    let jws = jws::parse::<JoseHeader>(text).map_err(ClientAuthError::AssertionMalformed)?;
    let payload = jws::decode_part(jws.payload_b64, "payload").map_err(ClientAuthError::AssertionMalformed)?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| ClientAuthError::AssertionClaimsMalformed(e.to_string()))?;
    Ok(Parsed { jws, claims })
}

impl Rules {
    /// Checks `parsed` as client `client_id`'s assertion, signed by one of `keys`.
    pub(super) fn verify(
        &self,
        parsed: Parsed<'_>,
        keys: &KeySet,
        client_id: &str,
        now: f64,
    ) -> Result<Verified, ClientAuthError> {
        let Parsed { jws, claims } = parsed;
        let header = &jws.header;
        let alg = Algorithm::from_name(&header.alg)
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or_else(|| ClientAuthError::AssertionAlgorithmNotAllowed(header.alg.chars().take(32).collect()))?;
        if let Some(crit) = &header.crit {
            // No extension is understood, so any critical one fails.
            return Err(ClientAuthError::AssertionCritical(crit.clone()));
        }
        check_typ(header.typ.as_deref())?;
        if claims.iss != client_id {
            return Err(ClientAuthError::ClientIdMismatch);
        }
        verify_signature(keys, header.kid.as_deref(), alg, jws.signing_input, jws.signature_b64)?;
        self.check_claims(claims, client_id, now)
    }

    fn check_claims(&self, claims: Claims, client_id: &str, now: f64) -> Result<Verified, ClientAuthError> {
        if claims.sub != client_id {
            return Err(ClientAuthError::AssertionSubjectMismatch);
        }
        let audience_is_issuer = match &claims.aud {
            Audience::One(aud) => *aud == self.issuer,
            Audience::Many(list) => matches!(list.as_slice(), [only] if *only == self.issuer),
        };
        if !audience_is_issuer {
            return Err(ClientAuthError::AssertionAudienceMismatch);
        }
        let exp = claims.exp.ok_or(ClientAuthError::AssertionExpirationMissing)?.0;
        // RFC 7519 section 4.1.4: the current time must be before exp.
        if now >= exp + self.leeway {
            return Err(ClientAuthError::AssertionExpired);
        }
        if exp - now > self.max_lifetime + self.leeway {
            return Err(ClientAuthError::AssertionLifetimeExceeded);
        }
        if let Some(nbf) = claims.nbf
            && now + self.leeway < nbf.0
        {
            return Err(ClientAuthError::AssertionNotYetValid);
        }
        if let Some(iat) = claims.iat
            && iat.0 > now + self.leeway
        {
            return Err(ClientAuthError::AssertionIssuedInFuture);
        }
        let jti = claims
            .jti
            .filter(|jti| !jti.is_empty())
            .ok_or(ClientAuthError::AssertionJtiMissing)?;
        if jti.len() > MAX_JTI_LEN {
            return Err(ClientAuthError::AssertionClaimsMalformed(format!(
                "jti is longer than {MAX_JTI_LEN} bytes"
            )));
        }
        Ok(Verified {
            jti,
            remember_until: exp + self.leeway,
        })
    }
}

/// Records the assertion's `jti` for client `client_id` until it expires;
/// refused if it was recorded before. Fails closed when the store cannot be
/// asked (see the module's parent for why DPoP's `open` policy does not apply).
pub(super) async fn record(
    store: &ReplayStore,
    client_id: &str,
    verified: &Verified,
    now: f64,
) -> Result<(), ClientAuthError> {
    let key = replay_key(&format!("{REPLAY_PREFIX}{client_id}"), &verified.jti);
    match store.check_and_record(key, verified.remember_until, now).await {
        Ok(()) => Ok(()),
        Err(ReplayError::Replayed) => Err(ClientAuthError::AssertionReplayed),
        Err(ReplayError::Full) => Err(ClientAuthError::ReplayCacheFull),
        Err(ReplayError::Unavailable) => Err(ClientAuthError::ReplayStoreUnavailable),
    }
}

/// RFC 8725 section 3.11 explicit typing: absent or `JWT` as clients have
/// always sent, or the `client-authentication+jwt` of
/// draft-ietf-oauth-rfc7523bis. Any other type (an `at+jwt` access token, a
/// `dpop+jwt` proof) is a JWT made for something else.
fn check_typ(typ: Option<&str>) -> Result<(), ClientAuthError> {
    let Some(typ) = typ else {
        return Ok(());
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    if bare.eq_ignore_ascii_case("JWT") || bare.eq_ignore_ascii_case("client-authentication+jwt") {
        Ok(())
    } else {
        Err(ClientAuthError::AssertionTypRejected(typ.chars().take(64).collect()))
    }
}

/// The key named by `kid`, or without one every key that takes `alg`, must
/// verify the signature.
fn verify_signature(
    keys: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
    signing_input: &str,
    signature_b64: &str,
) -> Result<(), ClientAuthError> {
    let verified = match kid {
        Some(kid) => {
            let key = keys.choose(Some(kid), alg).map_err(|e| match e {
                KeyChoiceError::AlgorithmMismatch => ClientAuthError::AssertionNoKeyForAlgorithm(alg),
                KeyChoiceError::UnknownKid | KeyChoiceError::NoKeys | KeyChoiceError::AmbiguousWithoutKid => {
                    ClientAuthError::AssertionUnknownKid
                }
            })?;
            key.verify(alg, signing_input.as_bytes(), signature_b64)
        }
        None => {
            let mut fitting = keys.keys().filter(|key| key.accepts(alg)).peekable();
            if fitting.peek().is_none() {
                return Err(ClientAuthError::AssertionNoKeyForAlgorithm(alg));
            }
            fitting.any(|key| key.verify(alg, signing_input.as_bytes(), signature_b64))
        }
    };
    if verified {
        Ok(())
    } else {
        Err(ClientAuthError::AssertionBadSignature)
    }
}
