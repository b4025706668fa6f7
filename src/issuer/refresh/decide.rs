//! What a presented refresh token is, decided from its stored family alone:
//! the rules of design.md ("Rules of the trade for refresh tokens") as one
//! pure function, so each rule has a unit test and the store only applies
//! the answer.

use super::RefreshError;
use crate::config::RefreshRotation;
use crate::issuer::grant::Evidence;
use crate::issuer::store::{FamilyBinding, MAX_GRACE_RETRIES, Presented};

/// What to do with a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The live token: rotate it (compare-and-set on its generation).
    Rotate,
    /// The live token of a family that does not rotate: slide its idle timeout.
    Keep,
    /// The predecessor, within the grace: replace the unused live token.
    GraceRetry,
    /// A rotated-away token presented again: revoke the family.
    Reuse,
}

/// The request's side of a decision.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The authenticated client's id (a public client's too: it is in the form).
    pub client_id: &'a str,
    pub rotation: RefreshRotation,
    pub evidence: Evidence<'a>,
    pub now: i64,
    /// `refresh_grace` in seconds; zero turns grace off.
    pub grace_seconds: i64,
}

/// Decides a presented token, in the order design.md implies: the family's
/// own state first (alive at all), then the token's standing in it. A stale
/// token is reuse whoever presents it, under whatever client_id and with
/// whatever key: it proves a copy exists. The live token under another
/// client is only refused. The binding is checked only for the tokens that
/// would be honoured.
pub fn decide(presented: &Presented, request: &Request<'_>) -> Result<Decision, RefreshError> {
    let family = &presented.family;
    let own = family.client_id == request.client_id;
    if family.revoked_at.is_some() {
        return Err(RefreshError::FamilyRevoked);
    }
    if request.now >= family.expires_at {
        return Err(RefreshError::FamilyExpired);
    }
    if request.now >= family.idle_deadline() {
        return Err(RefreshError::FamilyIdle);
    }
    if presented.replaced {
        return Err(if own {
            RefreshError::Replaced
        } else {
            RefreshError::OtherClient
        });
    }
    if presented.generation == family.generation {
        if !own {
            return Err(RefreshError::OtherClient);
        }
        binding_holds(&family.binding, request.evidence)?;
        return Ok(match request.rotation {
            RefreshRotation::Always => Decision::Rotate,
            RefreshRotation::Never => Decision::Keep,
        });
    }
    if own && Some(presented.generation) == family.parent_generation && grace_applies(presented, request) {
        return Ok(Decision::GraceRetry);
    }
    // A public client's client_id proves nothing: a rotated-away token under
    // another client's name is as much a copy as under its own.
    Ok(Decision::Reuse)
}

/// The predecessor may be retried: grace on, not yet spent, not too late,
/// and with the family's binding (a retry with another key is a thief's).
fn grace_applies(presented: &Presented, request: &Request<'_>) -> bool {
    let family = &presented.family;
    request.grace_seconds > 0
        && request.now <= family.rotated_at.saturating_add(request.grace_seconds)
        && family.grace_retries < MAX_GRACE_RETRIES
        && binding_holds(&family.binding, request.evidence).is_ok()
}

/// The request proves the key the family is bound to.
pub fn binding_holds(binding: &FamilyBinding, evidence: Evidence<'_>) -> Result<(), RefreshError> {
    let (expected, presented) = match binding {
        FamilyBinding::Dpop { jkt } => (jkt, evidence.dpop_jkt),
        FamilyBinding::Certificate { x5t_s256 } => (x5t_s256, evidence.certificate_x5t),
        // Authenticated as the family's client already.
        FamilyBinding::Client => return Ok(()),
    };
    match presented {
        None => Err(RefreshError::BindingMissing),
        Some(presented) if presented == expected => Ok(()),
        Some(_) => Err(RefreshError::BindingMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::store::Family;

    const NOW: i64 = 10_000;

    fn family() -> Family {
        Family {
            id: "fam".into(),
            client_id: "app".into(),
            subject: "alice".into(),
            scope: vec![],
            audience: vec!["https://api.example".into()],
            binding: FamilyBinding::Dpop { jkt: "key-1".into() },
            generation: 4,
            parent_generation: Some(3),
            rotated_at: NOW - 10,
            grace_retries: 0,
            created_at: NOW - 1000,
            expires_at: NOW + 1000,
            last_used_at: NOW - 10,
            idle_timeout: 600,
            revoked_at: None,
            revoked_reason: None,
        }
    }

    fn presented(generation: i64) -> Presented {
        Presented {
            family: family(),
            generation,
            replaced: false,
        }
    }

    fn request(jkt: Option<&'static str>) -> Request<'static> {
        Request {
            client_id: "app",
            rotation: RefreshRotation::Always,
            evidence: Evidence {
                dpop_jkt: jkt,
                certificate_x5t: None,
            },
            now: NOW,
            grace_seconds: 60,
        }
    }

    #[test]
    fn the_live_token_with_the_familys_key_rotates() {
        assert_eq!(decide(&presented(4), &request(Some("key-1"))), Ok(Decision::Rotate));
        let keep = Request {
            rotation: RefreshRotation::Never,
            ..request(Some("key-1"))
        };
        assert_eq!(decide(&presented(4), &keep), Ok(Decision::Keep));
    }

    #[test]
    fn the_live_token_needs_the_familys_key() {
        assert_eq!(decide(&presented(4), &request(None)), Err(RefreshError::BindingMissing));
        assert_eq!(
            decide(&presented(4), &request(Some("key-2"))),
            Err(RefreshError::BindingMismatch)
        );
        // A certificate is no DPoP key.
        let with_cert = Request {
            evidence: Evidence {
                dpop_jkt: None,
                certificate_x5t: Some("key-1"),
            },
            ..request(None)
        };
        assert_eq!(decide(&presented(4), &with_cert), Err(RefreshError::BindingMissing));
    }

    #[test]
    fn a_certificate_bound_family_needs_that_certificate() {
        let mut p = presented(4);
        p.family.binding = FamilyBinding::Certificate { x5t_s256: "x5t".into() };
        let with = |x5t| Request {
            evidence: Evidence {
                dpop_jkt: Some("key-1"),
                certificate_x5t: x5t,
            },
            ..request(None)
        };
        assert_eq!(decide(&p, &with(Some("x5t"))), Ok(Decision::Rotate));
        assert_eq!(decide(&p, &with(Some("other"))), Err(RefreshError::BindingMismatch));
        assert_eq!(decide(&p, &with(None)), Err(RefreshError::BindingMissing));
    }

    #[test]
    fn a_confidential_family_is_bound_by_client_authentication() {
        let mut p = presented(4);
        p.family.binding = FamilyBinding::Client;
        assert_eq!(decide(&p, &request(None)), Ok(Decision::Rotate));
        let other = Request {
            client_id: "svc",
            ..request(None)
        };
        assert_eq!(decide(&p, &other), Err(RefreshError::OtherClient));
    }

    #[test]
    fn the_predecessor_gets_grace_within_every_limit() {
        let ok = request(Some("key-1"));
        assert_eq!(decide(&presented(3), &ok), Ok(Decision::GraceRetry));
        // Exactly at the end of the grace still counts; a second later is reuse.
        let at_end = Request {
            now: NOW - 10 + 60,
            ..ok
        };
        assert_eq!(decide(&presented(3), &at_end), Ok(Decision::GraceRetry));
        let late = Request {
            now: NOW - 10 + 61,
            ..ok
        };
        assert_eq!(decide(&presented(3), &late), Ok(Decision::Reuse));
        let off = Request { grace_seconds: 0, ..ok };
        assert_eq!(decide(&presented(3), &off), Ok(Decision::Reuse));
        let mut spent = presented(3);
        spent.family.grace_retries = MAX_GRACE_RETRIES;
        assert_eq!(decide(&spent, &ok), Ok(Decision::Reuse));
        spent.family.grace_retries = MAX_GRACE_RETRIES - 1;
        assert_eq!(decide(&spent, &ok), Ok(Decision::GraceRetry));
    }

    #[test]
    fn a_predecessor_with_another_key_or_none_is_reuse() {
        assert_eq!(decide(&presented(3), &request(Some("key-2"))), Ok(Decision::Reuse));
        assert_eq!(decide(&presented(3), &request(None)), Ok(Decision::Reuse));
    }

    #[test]
    fn older_tokens_are_reuse_whatever_the_key() {
        assert_eq!(decide(&presented(2), &request(Some("key-1"))), Ok(Decision::Reuse));
        assert_eq!(decide(&presented(0), &request(None)), Ok(Decision::Reuse));
    }

    #[test]
    fn a_replaced_successor_is_refused_without_reuse() {
        let mut p = presented(4);
        p.replaced = true;
        assert_eq!(decide(&p, &request(Some("key-1"))), Err(RefreshError::Replaced));
    }

    #[test]
    fn a_dead_family_refuses_every_token() {
        let mut revoked = presented(4);
        revoked.family.revoked_at = Some(NOW - 1);
        assert_eq!(
            decide(&revoked, &request(Some("key-1"))),
            Err(RefreshError::FamilyRevoked)
        );
        let mut revoked_old = presented(1);
        revoked_old.family.revoked_at = Some(NOW - 1);
        assert_eq!(
            decide(&revoked_old, &request(Some("key-1"))),
            Err(RefreshError::FamilyRevoked),
            "a revoked family is not revoked twice"
        );
        let expired = Request {
            now: NOW + 1000,
            ..request(Some("key-1"))
        };
        assert_eq!(decide(&presented(4), &expired), Err(RefreshError::FamilyExpired));
        let idle = Request {
            now: NOW - 10 + 600,
            ..request(Some("key-1"))
        };
        assert_eq!(decide(&presented(4), &idle), Err(RefreshError::FamilyIdle));
        let other = Request {
            client_id: "other",
            ..request(Some("key-1"))
        };
        assert_eq!(decide(&presented(4), &other), Err(RefreshError::OtherClient));
    }

    #[test]
    fn a_stale_token_under_another_client_is_reuse_and_gets_no_grace() {
        let other = Request {
            client_id: "other",
            ..request(Some("key-1"))
        };
        assert_eq!(decide(&presented(3), &other), Ok(Decision::Reuse), "the predecessor");
        assert_eq!(decide(&presented(1), &other), Ok(Decision::Reuse));
        let mut replaced = presented(4);
        replaced.replaced = true;
        assert_eq!(decide(&replaced, &other), Err(RefreshError::OtherClient));
    }
}
