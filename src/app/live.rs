//! The live generation of everything loaded from configuration, and its
//! replacement on reload. New connections pick up the current generation's
//! TLS configuration; every request, also on a connection opened before the
//! reload, is judged by the generation current when it arrives.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::app::fingerprint::Fingerprint;
use crate::app::prepare::{KeysPolicy, Prepared, prepare};
use crate::config::{Config, ConfigError};
use crate::gateway::Gateway;
use crate::issuer::Issuer;
use crate::metrics::Metrics;

/// Why a reload was attempted, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    Signal,
    FileChange,
}

impl ReloadTrigger {
    pub fn label(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "signal",
            ReloadTrigger::FileChange => "file_change",
        }
    }
}

/// The gateway's current configuration, certificates and keys.
pub struct Live {
    current: ArcSwap<Prepared>,
    config_path: PathBuf,
    pub metrics: Arc<Metrics>,
    /// Serialises reloads from the signal handler and the file watcher.
    reloading: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(config_path: PathBuf, prepared: Prepared, metrics: Arc<Metrics>) -> Live {
        Live {
            current: ArcSwap::from_pointee(prepared),
            config_path,
            metrics,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The generation new connections should use.
    pub fn current(&self) -> Arc<Prepared> {
        self.current.load_full()
    }

    /// The request path of the current generation, for one request. Cheaper
    /// than [`Live::current`]: one reference count, no copy of the generation.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.current.load().gateway.clone()
    }

    /// The authorization server of the current generation, for one request
    /// on its listener; as cheap as [`Live::gateway`]. `None` only when no
    /// `[authorization_server]` is configured, and then its listener is not bound.
    pub fn issuer(&self) -> Option<Arc<Issuer>> {
        self.current.load().issuer.clone()
    }

    /// Re-reads the configuration and every file it names. On any error the
    /// current generation stays in service and the error is returned.
    pub async fn reload(&self, trigger: ReloadTrigger) -> Result<(), ConfigError> {
        let one_at_a_time = self.reloading.lock().await;
        self.reload_locked(trigger, one_at_a_time).await
    }

    /// A file-change reload, unless the files as `seen` are what the current
    /// generation was loaded from by then (a SIGHUP reload got there
    /// first); `None` when nothing was done.
    pub async fn reload_unless_loaded(&self, seen: &Fingerprint) -> Option<Result<(), ConfigError>> {
        let one_at_a_time = self.reloading.lock().await;
        if self.current.load().fingerprint == *seen {
            return None;
        }
        Some(self.reload_locked(ReloadTrigger::FileChange, one_at_a_time).await)
    }

    async fn reload_locked(
        &self,
        trigger: ReloadTrigger,
        _one_at_a_time: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<(), ConfigError> {
        let previous = self.current();
        let result = match Config::load(&self.config_path) {
            Ok(config) => prepare(config, self.metrics.clone(), Some(&previous), KeysPolicy::Require).await,
            Err(e) => Err(e),
        };
        let result = result.and_then(|next| same_listeners(&previous, next));
        match result {
            Ok(next) => {
                warn_about_restart_only_changes(&previous.config, &next.config);
                self.current.store(Arc::new(next));
                self.metrics.record_reload(trigger.label(), true);
                tracing::info!(trigger = trigger.label(), "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.record_reload(trigger.label(), false);
                tracing::error!(trigger = trigger.label(), error = %e, "reload failed; the previous configuration stays in service");
                Err(e)
            }
        }
    }
}

/// Whether the authorization server's listener is bound follows from the
/// configuration the process started with. A reload that adds or removes
/// `[authorization_server]` is refused, so that a generation always has an
/// authorization server exactly when its listener is served, and the
/// operator hears at once that this change takes a restart.
fn same_listeners(previous: &Prepared, next: Prepared) -> Result<Prepared, ConfigError> {
    let reason = match (&previous.issuer, &next.issuer) {
        (Some(_), Some(_)) | (None, None) => return Ok(next),
        (None, Some(_)) => "added by a reload: its listener is bound at start; restart bindgate to serve it",
        (Some(_), None) => {
            "removed by a reload: its listener stays bound until a restart; restart bindgate to remove it"
        }
    };
    Err(ConfigError::InvalidValue {
        file: next.config.source.clone(),
        key: "authorization_server".into(),
        reason: reason.to_string(),
    })
}

/// Sockets are bound once; a changed address needs a restart.
fn warn_about_restart_only_changes(previous: &Config, next: &Config) {
    if previous.server.listen != next.server.listen {
        tracing::warn!(old = %previous.server.listen, new = %next.server.listen, "server.listen changed: takes effect on restart");
    }
    let admin = |c: &Config| c.admin.as_ref().map(|a| a.listen);
    if admin(previous) != admin(next) {
        tracing::warn!("admin.listen changed: takes effect on restart");
    }
    let as_listen = |c: &Config| c.authorization_server.as_ref().map(|a| a.listen);
    if as_listen(previous) != as_listen(next) {
        tracing::warn!("authorization_server.listen changed: takes effect on restart");
    }
    if previous.limits.max_connections != next.limits.max_connections {
        tracing::warn!("limits.max_connections changed: takes effect on restart");
    }
}
