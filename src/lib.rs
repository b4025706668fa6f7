//! bindgate: a reverse proxy that forwards a request only when its access
//! token is bound to the client certificate of the connection (RFC 8705).
//!
//! `main.rs` parses the command line; [`prepare`] loads and checks everything
//! a configuration names; [`run`] serves on listeners the caller bound, so
//! tests can bind port 0 the same way.
#![forbid(unsafe_code)]

pub mod admin;
pub mod binding;
pub mod body;
pub mod config;
pub mod dev;
pub mod framing;
pub mod headers;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod pem;
pub mod policy;
pub mod proxy;
pub mod reject;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod token;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, JwksSource};
use crate::proxy::Gateway;
use crate::token::{KeySet, TokenValidator};

/// A configuration with every file it names loaded and checked: ready to serve.
pub struct Prepared {
    pub config: Config,
    pub tls: Arc<ServerConfig>,
    pub keys: Arc<KeySet>,
    pub gateway: Arc<Gateway>,
}

/// Loads certificates, keys and the JWKS named by `config`, failing with the
/// file and key at fault before any port is bound.
pub fn prepare(config: Config, metrics: Arc<metrics::Metrics>) -> Result<Prepared, ConfigError> {
    let tls = tls::server_config(&config)?;
    let keys = Arc::new(match &config.token.jwks {
        JwksSource::File(path) => KeySet::from_file(path).map_err(|e| config.unusable("token.jwks", path, e))?,
    });
    let routes = policy::RouteTable::build(&config)?;
    let gateway = Arc::new(Gateway {
        realm: config.server.realm.clone(),
        validator: TokenValidator::new(config.token.clone(), keys.clone()),
        routes,
        forward: config.forward.clone(),
        limits: config.limits.clone(),
        metrics,
    });
    Ok(Prepared {
        config,
        tls,
        keys,
        gateway,
    })
}

/// The sockets the gateway serves on, bound by the caller (port 0 works).
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: Option<TcpListener>,
}

/// Serves until `shutdown` completes, then stops accepting and drains.
/// Watches the configured files for changes meanwhile.
pub async fn run(live: Arc<runtime::Live>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let admin = listeners
        .admin
        .map(|listener| tokio::spawn(admin::serve(listener, live.clone(), stopped(stop_rx.clone()))));
    let watcher = tokio::spawn(reload::watch_files(live.clone(), stopped(stop_rx.clone())));
    server::serve(listeners.proxy, live, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
}
