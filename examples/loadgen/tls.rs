//! The client's TLS configuration: roots, client certificate, ALPN, and the
//! session cache of --resume.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::{ClientConfig, NamedGroup, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::Args;
use crate::stats::lock;

pub fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let ca = args.ca.as_ref().ok_or("--ca is required for an https:// URL")?;
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: no private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("{}: {e}", key.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    let alpn: &[u8] = if args.http2 { b"h2" } else { b"http/1.1" };
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = if args.resume {
        let capacity = 8 + 2 * args.connections.max(args.idle_connections.unwrap_or(0));
        Resumption::store(Arc::new(TicketStore::new(capacity)))
    } else {
        Resumption::disabled()
    };
    Ok(config)
}

/// The client session cache for --resume, shared by all connections. The one
/// rustls provides keeps 8 TLS 1.3 tickets per server: with more connections
/// handshaking at once, some would be full for want of a ticket, not by the
/// server's choice. Tickets are kept in one queue, as there is one server.
#[derive(Debug)]
struct TicketStore {
    others: ClientSessionMemoryCache,
    tickets: Mutex<VecDeque<Tls13ClientSessionValue>>,
    capacity: usize,
}

impl TicketStore {
    fn new(capacity: usize) -> Self {
        let (others, tickets) = (ClientSessionMemoryCache::new(4), Mutex::new(VecDeque::new()));
        Self {
            others,
            tickets,
            capacity,
        }
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.others.set_kx_hint(name, group);
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.others.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.others.set_tls12_session(name, value);
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.others.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.others.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut tickets = lock(&self.tickets);
        if tickets.len() >= self.capacity {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        lock(&self.tickets).pop_back()
    }
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}
