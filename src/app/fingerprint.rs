//! What a generation was loaded from: the content hashes of the watched
//! files, taken before they were read, so a reload can tell whether anything
//! changed since.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What the watched files held at one poll; `None` for a file that could not be read.
pub type Fingerprint = Vec<(PathBuf, Option<[u8; 32]>)>;

/// Content hashes of `files`.
pub fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files.iter().map(|path| (path.clone(), digest(path))).collect()
}

fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into())
}
