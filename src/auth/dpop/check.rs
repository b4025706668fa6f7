//! The DPoP check of one request: the proof header, the stateless checklist
//! of RFC 9449 section 4.3 against the URI the client addressed, then the
//! server nonce and the replay store.

use std::sync::Arc;

use http::HeaderMap;

use super::nonce::{NonceIssuer, NonceStatus};
use super::proof::{self, ProofContext, ProofError, ProofRules, VerifiedProof};
use super::replay::{ReplayError, replay_key};
use super::store::ReplayStore;
use super::{DPOP, htu};
use crate::config::{DpopSettings, StoreFailure};
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// How often an ongoing replay store outage is logged; every request is counted.
pub(crate) const OUTAGE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the DPoP proof of a request is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    #[error("the DPoP scheme needs a DPoP proof header")]
    ProofMissing,
    #[error("more than one DPoP header")]
    MultipleProofs,
    #[error("DPoP proof is larger than {limit} bytes")]
    ProofTooLarge { limit: usize },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("a DPoP proof with the current server nonce is required")]
    NonceRequired { nonce: String },
    #[error("DPoP proof was already used")]
    Replayed,
    #[error("the DPoP replay store is unavailable")]
    ReplayStoreUnavailable,
    #[error("the DPoP replay cache is full")]
    ReplayCacheFull,
}

impl DpopError {
    /// The stable reason label of logs and metrics, the same at the gateway
    /// and at the token endpoint.
    pub fn label(&self) -> &'static str {
        match self {
            DpopError::ProofMissing => "dpop_proof_missing",
            DpopError::MultipleProofs => "dpop_proof_duplicate",
            DpopError::ProofTooLarge { .. } => "dpop_proof_too_large",
            DpopError::Proof(e) => e.label(),
            DpopError::NonceRequired { .. } => "use_dpop_nonce",
            DpopError::Replayed => "dpop_replayed",
            DpopError::ReplayStoreUnavailable => "replay_store_unavailable",
            DpopError::ReplayCacheFull => "replay_cache_full",
        }
    }
}

/// What a request must match: where the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    pub method: &'a str,
    /// Host (or :authority) as received.
    pub authority: &'a str,
    /// The path as the client sent it, before any normalisation.
    pub path: &'a str,
}

pub struct DpopVerifier {
    rules: ProofRules,
    public_url: Option<String>,
    max_proof_size: usize,
    nonces: Option<Arc<NonceIssuer>>,
    replay: Arc<ReplayStore>,
    on_store_failure: StoreFailure,
    /// The `algs` attribute of DPoP challenges.
    algs: String,
    metrics: Arc<Metrics>,
    /// Fail-open acceptances last as long as the outage: logged once in a while, counted always.
    fail_open_log: Throttle,
}

impl DpopVerifier {
    pub fn new(
        settings: &DpopSettings,
        nonces: Option<Arc<NonceIssuer>>,
        replay: Arc<ReplayStore>,
        metrics: Arc<Metrics>,
    ) -> DpopVerifier {
        DpopVerifier {
            rules: ProofRules {
                algorithms: settings.algorithms.clone(),
                iat_window: settings.iat_window.as_secs_f64(),
                leeway: settings.leeway.as_secs_f64(),
            },
            public_url: settings.public_url.clone(),
            max_proof_size: settings.max_proof_size,
            nonces,
            replay,
            on_store_failure: settings.replay.on_store_failure,
            algs: settings
                .algorithms
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(" "),
            metrics,
            fail_open_log: Throttle::new(OUTAGE_LOG_INTERVAL),
        }
    }

    pub fn algs(&self) -> &str {
        &self.algs
    }

    pub fn replay_store(&self) -> &Arc<ReplayStore> {
        &self.replay
    }

    pub fn nonce_issuer(&self) -> Option<&Arc<NonceIssuer>> {
        self.nonces.as_ref()
    }

    /// The request's one `DPoP` header, if it has one.
    pub fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, DpopError> {
        let mut values = headers.get_all(DPOP).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(DpopError::MultipleProofs);
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| ProofError::Malformed("DPoP header is not visible ASCII".to_string()).into())
    }

    /// Every check of the proof that needs no shared state.
    pub fn verify(
        &self,
        proof: &str,
        target: &RequestTarget<'_>,
        access_token: Option<&str>,
        now: f64,
    ) -> Result<VerifiedProof, DpopError> {
        if proof.len() > self.max_proof_size {
            return Err(DpopError::ProofTooLarge {
                limit: self.max_proof_size,
            });
        }
        let htu = self.htu(target)?;
        let ctx = ProofContext {
            method: target.method,
            htu: &htu,
            access_token,
            now,
        };
        Ok(proof::verify(proof, &self.rules, &ctx)?)
    }

    /// The server nonce, then the replay store: last, so that only proofs
    /// that passed everything else take a place in the store. Returns a
    /// newer nonce to hand the client (`DPoP-Nonce` on the response), if any.
    pub async fn check_fresh(&self, proof: &VerifiedProof, now: f64) -> Result<Option<String>, DpopError> {
        let mut next_nonce = None;
        if let Some(nonces) = &self.nonces {
            let now_secs = now as u64;
            // The current nonce costs an HMAC: made only when the client needs it.
            match proof.nonce.as_deref().map(|nonce| nonces.check(nonce, now_secs)) {
                Some(NonceStatus::Current) => {}
                Some(NonceStatus::Stale) => next_nonce = Some(nonces.current(now_secs)),
                Some(NonceStatus::Invalid) | None => {
                    return Err(DpopError::NonceRequired {
                        nonce: nonces.current(now_secs),
                    });
                }
            }
        }
        let key = replay_key(&proof.jkt, &proof.jti);
        let expires_at = proof.iat + self.rules.iat_window + self.rules.leeway;
        match self.replay.check_and_record(key, expires_at, now).await {
            Ok(()) => {}
            Err(ReplayError::Replayed) => return Err(DpopError::Replayed),
            Err(ReplayError::Full) => return Err(DpopError::ReplayCacheFull),
            Err(ReplayError::Unavailable) => match self.on_store_failure {
                StoreFailure::Closed => {
                    self.metrics.record_replay_store_failure(self.replay.kind(), "rejected");
                    return Err(DpopError::ReplayStoreUnavailable);
                }
                StoreFailure::Open => {
                    self.metrics.record_replay_store_failure(self.replay.kind(), "accepted");
                    if let Some(held_back) = self.fail_open_log.admit() {
                        tracing::warn!(
                            since_last_warning = held_back,
                            "DPoP replay store unavailable; accepting proofs unrecorded (replay_store_failure = \"open\")"
                        );
                    }
                }
            },
        }
        Ok(next_nonce)
    }

    /// The URI the client addressed, without query: the configured public
    /// URL when there is one, since behind a load balancer the Host seen here
    /// may not be what the client used.
    fn htu(&self, target: &RequestTarget<'_>) -> Result<htu::NormalizedUri, ProofError> {
        // `target.path` is a path only: no query or fragment to strip.
        let path = target.path;
        let uri = match &self.public_url {
            Some(base) => format!("{base}{path}"),
            None => format!("https://{}{path}", target.authority),
        };
        htu::normalize(&uri).map_err(|_| ProofError::UriMismatch)
    }
}
