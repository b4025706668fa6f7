//! The ordered set of signing keys: the first signs, all are published, so
//! a key can be introduced before it signs and kept after it stops, while
//! tokens it signed are still live.

use std::fmt;
use std::path::PathBuf;

use super::{SigningKey, SigningKeyError};
use crate::jose::jwk::{JwksError, KeySet};

/// The authorization server's signing keys, never empty: the first signs
/// every token, all of them are in the published JWKS.
pub struct KeyRing {
    signer: SigningKey,
    others: Vec<SigningKey>,
    jwks_json: String,
    /// Built once from `jwks_json`, exactly as a resource server fetching it would.
    verification: KeySet,
}

/// Why the configured signing keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("no signing keys: at least one is needed")]
    NoKeys,
    #[error("key #{index}: {source}")]
    Key {
        index: usize,
        #[source]
        source: SigningKeyError,
    },
    /// Two entries naming one key would publish it twice under one `kid`.
    #[error(
        "key #{index} ({}) is the same key as key #{first_index} ({}), kid {kid}",
        path.display(),
        first_path.display()
    )]
    Duplicate {
        index: usize,
        path: PathBuf,
        first_index: usize,
        first_path: PathBuf,
        kid: String,
    },
    #[error("the published key set does not load as one: {0}")]
    Unpublishable(#[source] JwksError),
}

impl KeyRing {
    /// Reads one signing key from each of `paths`, in order.
    pub fn load(paths: &[PathBuf]) -> Result<KeyRing, KeyRingError> {
        let mut keys: Vec<SigningKey> = Vec::with_capacity(paths.len());
        for (index, path) in paths.iter().enumerate() {
            let key = SigningKey::from_pem_file(path).map_err(|source| KeyRingError::Key { index, source })?;
            if let Some(first_index) = keys.iter().position(|k| k.kid() == key.kid()) {
                return Err(KeyRingError::Duplicate {
                    index,
                    path: path.clone(),
                    first_index,
                    first_path: paths[first_index].clone(),
                    kid: key.kid().to_string(),
                });
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let signer = keys.next().ok_or(KeyRingError::NoKeys)?;
        let others: Vec<SigningKey> = keys.collect();
        let published: Vec<serde_json::Value> = std::iter::once(&signer)
            .chain(&others)
            .map(SigningKey::public_jwk)
            .collect();
        let jwks_json = serde_json::json!({ "keys": published }).to_string();
        let verification = KeySet::from_json(jwks_json.as_bytes()).map_err(KeyRingError::Unpublishable)?;
        Ok(KeyRing {
            signer,
            others,
            jwks_json,
            verification,
        })
    }

    /// The key that signs: the first one configured.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Every key, the signer first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.signer).chain(&self.others)
    }

    /// The JWKS document (`{"keys": [...]}`) of every key, as `/jwks` serves it.
    pub fn jwks_json(&self) -> String {
        self.jwks_json.clone()
    }

    /// The published keys as a verifier's key set, so the gateway checks the
    /// embedded issuer's tokens in-process, with no fetch and no delay on rotation.
    pub fn verification_keys(&self) -> KeySet {
        self.verification.clone()
    }

    /// The published keys, borrowed: what the issuer's own introspection verifies against.
    pub fn verification(&self) -> &KeySet {
        &self.verification
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}
