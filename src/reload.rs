//! Reload triggers: a poll of the configuration and every file it names.
//! Polling content hashes catches what operators and agents actually do:
//! rewrite a file in place (cert-manager), swap a symlink (Kubernetes
//! projected volumes, SPIFFE helpers) or replace a file by rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::runtime::{Live, ReloadTrigger};

/// What the watched files held at one poll; `None` for a file that could not be read.
pub type Fingerprint = Vec<(PathBuf, Option<[u8; 32]>)>;

/// Polls until `stop` resolves, reloading when a watched file changes.
pub async fn watch_files(live: Arc<Live>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    // What the running generation was loaded from, taken before its files
    // were read: a change made right after startup is still seen.
    let mut last = live.current().fingerprint.clone();
    loop {
        let settings = live.current().config.reload.clone();
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
        if !settings.watch_files {
            continue;
        }
        let files = live.current().config.watched_files();
        let now = fingerprint(&files);
        if now == last {
            continue;
        }
        let changed: Vec<String> = now
            .iter()
            .filter(|entry| !last.contains(entry))
            .map(|(path, _)| path.display().to_string())
            .collect();
        tracing::info!(files = ?changed, "watched files changed; reloading");
        // A failed reload is logged by `reload` and not retried until the
        // files change again. `last` is what was seen *before* reloading, so
        // a key written just after its certificate still triggers a reload.
        let _ = live.reload(ReloadTrigger::FileChange).await;
        last = now;
    }
}

/// Content hashes of `files`.
pub fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files.iter().map(|path| (path.clone(), digest(path))).collect()
}

fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into())
}
