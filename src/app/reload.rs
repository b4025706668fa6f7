//! Reload triggers: a poll of the configuration and every file it names.
//! Polling content hashes catches what operators and agents actually do:
//! rewrite a file in place (cert-manager), swap a symlink (Kubernetes
//! projected volumes, SPIFFE helpers) or replace a file by rename.

use std::sync::Arc;

use crate::app::fingerprint::{Fingerprint, fingerprint};
use crate::app::live::Live;

/// Polls until `stop` resolves, reloading when a watched file changes.
///
/// A change is judged against the running generation's own fingerprint,
/// whoever loaded it: after a SIGHUP reload, or one whose configuration
/// watches more files than before, there is nothing left to reload.
pub async fn watch_files(live: Arc<Live>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    // What a failed reload saw: not retried until the files change again.
    let mut failed: Option<Fingerprint> = None;
    loop {
        let settings = live.current().config.reload.clone();
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
        if !settings.watch_files {
            continue;
        }
        let running = live.current();
        let now = fingerprint(&running.config.watched_files());
        if now == running.fingerprint || failed.as_ref() == Some(&now) {
            continue;
        }
        let changed: Vec<String> = now
            .iter()
            .filter(|entry| !running.fingerprint.contains(entry))
            .map(|(path, _)| path.display().to_string())
            .collect();
        drop(running);
        tracing::info!(files = ?changed, "watched files changed; reloading");
        // A failure is logged by `reload`. The generation's fingerprint is
        // taken before its files are read, so a key written just after its
        // certificate still differs at the next poll and reloads again.
        failed = match live.reload_unless_loaded(&now).await {
            Some(Err(_)) => Some(now),
            Some(Ok(())) | None => None,
        };
    }
}
