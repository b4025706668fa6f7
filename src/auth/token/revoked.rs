//! The refresh-token families the gateway must refuse the access tokens of.
//!
//! An access token is a JWT: once signed, it verifies until `exp`. A family
//! revoked for reuse or by RFC 7009 must take its access tokens down with
//! it, so the gateway refuses any token of the embedded issuer whose `sid`
//! is in this set. The authorization server adds to it the moment a
//! revocation commits (same process: immediately); a poller adds what other
//! replicas revoked in the shared store (within its interval).
//!
//! An entry is kept until every access token minted before the revocation
//! has expired, then forgotten, so the set holds only the revocations of
//! the last access-token lifetime.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::lock::{read, write};

#[derive(Debug, Default)]
pub struct RevokedFamilies {
    /// Family id -> the Unix second after which no token of it can still verify.
    families: RwLock<HashMap<String, i64>>,
}

impl RevokedFamilies {
    pub fn new() -> RevokedFamilies {
        RevokedFamilies::default()
    }

    /// Records a revocation; `forget_after` is the latest `exp` any access
    /// token of the family can have.
    pub fn insert(&self, family_id: &str, forget_after: i64) {
        let Some(mut families) = write(&self.families) else {
            return;
        };
        let entry = families.entry(family_id.to_string()).or_insert(forget_after);
        *entry = (*entry).max(forget_after);
    }

    /// Fails closed: a set a panic left half-updated revokes everything.
    pub fn contains(&self, family_id: &str) -> bool {
        read(&self.families).is_none_or(|families| families.contains_key(family_id))
    }

    /// Forgets the revocations whose tokens have all expired by `now`.
    pub fn prune(&self, now: i64) {
        if let Some(mut families) = write(&self.families) {
            families.retain(|_, forget_after| *forget_after >= now);
        }
    }

    pub fn len(&self) -> usize {
        read(&self.families).map_or(0, |families| families.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_is_kept_until_its_last_token_expired() {
        let revoked = RevokedFamilies::new();
        revoked.insert("fam-1", 100);
        revoked.insert("fam-2", 50);
        revoked.insert("fam-1", 80);
        assert!(revoked.contains("fam-1") && revoked.contains("fam-2"));
        assert!(!revoked.contains("fam-3"));
        revoked.prune(60);
        assert!(!revoked.contains("fam-2"));
        assert!(revoked.contains("fam-1"), "the later bound of two inserts holds");
        revoked.prune(101);
        assert!(revoked.is_empty());
    }
}
