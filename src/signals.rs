//! The signals `bindgate run` acts on: SIGHUP reloads, SIGTERM and SIGINT
//! drain. They are registered before the listeners are bound and announced:
//! a signal sent as soon as "listening on" is printed must find its handler,
//! not the default action, which kills the process.

use std::future::Future;
use std::sync::Arc;

use bindgate::app::live::{Live, ReloadTrigger};

pub struct Signals {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    stop: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Registers the handlers; must run inside the runtime.
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hangup = match signal(SignalKind::hangup()) {
                Ok(hup) => Some(hup),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot handle SIGHUP; reload by file change only");
                    None
                }
            };
            let stop = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Signals { hangup, stop }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// From now on SIGHUP re-reads the configuration and every file it
    /// names (a broken new configuration is logged and the current one stays
    /// in service). Returns what completes on SIGTERM or SIGINT.
    pub fn serve(self, live: Arc<Live>) -> impl Future<Output = ()> {
        #[cfg(unix)]
        {
            if let Some(mut hup) = self.hangup {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading");
                        let _ = live.reload(ReloadTrigger::Signal).await;
                    }
                });
            }
            let stop = self.stop;
            async move {
                let Some((mut term, mut int)) = stop else {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                };
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: draining"),
                    _ = int.recv() => tracing::info!("SIGINT: draining"),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = live;
            async {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
