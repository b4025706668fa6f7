//! bindgate: a reverse proxy that forwards a request only when its access
//! token is bound to the client certificate of the connection (RFC 8705).
//!
//! `main.rs` parses the command line; [`prepare()`] loads and checks everything
//! a configuration names; [`run`] serves on listeners the caller bound, so
//! tests can bind port 0 the same way.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub(crate) mod body;
pub mod config;
pub mod conn;
#[cfg(feature = "dev")]
pub mod dev;
pub(crate) mod error;
pub mod gateway;
pub mod http;
pub mod issuer;
pub mod jose;
pub(crate) mod lock;
pub mod metrics;
pub(crate) mod server;
pub(crate) mod throttle;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::app::prepare::{KeysPolicy, Prepared, prepare};

/// The sockets the gateway serves on, bound by the caller (port 0 works).
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: Option<TcpListener>,
    /// `[authorization_server] listen`: given exactly when the configuration
    /// has an authorization server (a reload can neither add nor remove one).
    pub authorization_server: Option<TcpListener>,
}

/// Serves until `shutdown` completes, then stops accepting and drains the
/// proxy and authorization server listeners together. Watches the
/// configured files for changes meanwhile; the admin listener answers until
/// both have drained.
pub async fn run(live: Arc<app::live::Live>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let admin = listeners
        .admin
        .map(|listener| tokio::spawn(app::admin::serve(listener, live.clone(), stopped(stop_rx.clone()))));
    let watcher = tokio::spawn(app::reload::watch_files(live.clone(), stopped(stop_rx.clone())));
    let proxy_shutdown = async move {
        shutdown.await;
        let _ = drain_tx.send(true);
    };
    let authorization_server = async {
        if let Some(listener) = listeners.authorization_server {
            let site = server::Site::AuthorizationServer;
            server::serve(listener, live.clone(), site, stopped(drain_rx)).await;
        }
    };
    tokio::join!(
        server::serve(listeners.proxy, live.clone(), server::Site::Gateway, proxy_shutdown),
        authorization_server,
    );
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
}
