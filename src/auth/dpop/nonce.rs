//! Server-provided DPoP nonces (RFC 9449 sections 8 and 9), stateless so
//! that replicas sharing the secret agree without sharing memory: a nonce is
//! a time window number and a MAC over it. The current and the previous
//! window are accepted, so a nonce lives between one and two windows.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Issues and checks nonces. Several secrets allow rotation: the first signs,
/// all verify.
pub struct NonceIssuer {
    keys: Vec<hmac::Key>,
    window_secs: u64,
}

const MAC_LEN: usize = 16;

/// What a nonce a client sent is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// The nonce `current` hands out now.
    Current,
    /// Accepted, but from the previous window or a secret being rotated out:
    /// the client should get the current one.
    Stale,
    Invalid,
}

impl NonceIssuer {
    pub fn new(secrets: &[Vec<u8>], window_secs: u64) -> NonceIssuer {
        NonceIssuer {
            keys: secrets.iter().map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)).collect(),
            window_secs: window_secs.max(1),
        }
    }

    /// The nonce to hand out at `now` (seconds since the epoch).
    pub fn current(&self, now: u64) -> String {
        self.nonce_for(now / self.window_secs)
    }

    /// What `nonce` is worth at `now`: only nonces issued in the current or
    /// the previous window are accepted.
    pub fn check(&self, nonce: &str, now: u64) -> NonceStatus {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceStatus::Invalid;
        };
        let Some((window, mac)) = bytes.split_first_chunk::<8>() else {
            return NonceStatus::Invalid;
        };
        let window = u64::from_be_bytes(*window);
        let current = now / self.window_secs;
        if window != current && window.checked_add(1) != Some(current) {
            return NonceStatus::Invalid;
        }
        let signed_by = self.keys.iter().position(|key| {
            let tag = hmac::sign(key, &window.to_be_bytes());
            tag.as_ref()
                .get(..MAC_LEN)
                .is_some_and(|expected| constant_time::verify_slices_are_equal(expected, mac).is_ok())
        });
        match signed_by {
            // Exactly what `current` would hand out now.
            Some(0) if window == current => NonceStatus::Current,
            Some(_) => NonceStatus::Stale,
            None => NonceStatus::Invalid,
        }
    }

    fn nonce_for(&self, window: u64) -> String {
        let mut bytes = window.to_be_bytes().to_vec();
        if let Some(key) = self.keys.first() {
            bytes.extend_from_slice(
                hmac::sign(key, &window.to_be_bytes())
                    .as_ref()
                    .get(..MAC_LEN)
                    .unwrap_or_default(),
            );
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_live_for_the_current_and_previous_window() {
        let issuer = NonceIssuer::new(&[b"secret".to_vec()], 60);
        let nonce = issuer.current(1000);
        assert_eq!(issuer.check(&nonce, 1000), NonceStatus::Current);
        assert_eq!(issuer.check(&nonce, 1079), NonceStatus::Stale);
        assert_eq!(issuer.check(&nonce, 1080 + 60), NonceStatus::Invalid);
        assert_eq!(issuer.check("garbage", 1000), NonceStatus::Invalid);
        assert_eq!(issuer.check("", 1000), NonceStatus::Invalid);
    }

    #[test]
    fn replicas_with_the_same_secret_agree_and_others_do_not() {
        let a = NonceIssuer::new(&[b"shared".to_vec()], 60);
        let b = NonceIssuer::new(&[b"shared".to_vec()], 60);
        let other = NonceIssuer::new(&[b"different".to_vec()], 60);
        let nonce = a.current(5000);
        assert_eq!(b.check(&nonce, 5001), NonceStatus::Current);
        assert_eq!(other.check(&nonce, 5001), NonceStatus::Invalid);
    }

    #[test]
    fn rotated_secrets_still_verify() {
        let old = NonceIssuer::new(&[b"old".to_vec()], 60);
        let rotated = NonceIssuer::new(&[b"new".to_vec(), b"old".to_vec()], 60);
        assert_eq!(rotated.check(&old.current(100), 100), NonceStatus::Stale);
        assert_eq!(rotated.check(&rotated.current(100), 100), NonceStatus::Current);
    }
}
