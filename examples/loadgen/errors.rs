//! What a failed request is called in `error_kinds`, and the first
//! occurrence of each printed with its causes.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::Kind;
use crate::stats::lock;

pub fn io_kind(stage: Kind, e: &std::io::Error) -> Kind {
    // Linux errno values: the ones a benchmark script can act on.
    match e.raw_os_error() {
        Some(24) => "emfile",
        Some(23) => "enfile",
        Some(99) => "eaddrnotavail",
        Some(111) => "refused",
        _ => stage,
    }
}

pub fn hyper_kind(e: &hyper::Error) -> Kind {
    // A TLS 1.3 server rejects a client certificate after the client's handshake
    // is done: the alert arrives with the response.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let io_inner = cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if cause.is::<rustls::Error>() || io_inner.is_some_and(|inner| inner.is::<rustls::Error>()) {
            return "tls";
        }
        source = cause.source();
    }
    if e.is_incomplete_message() {
        "incomplete_response"
    } else if e.is_closed() || e.is_canceled() {
        "closed"
    } else if e.is_parse() {
        "parse"
    } else {
        "http"
    }
}

/// Returns `kind`, printing the details of its first occurrence to stderr.
pub fn first(kind: Kind, error: &(dyn std::error::Error + 'static)) -> Kind {
    static SEEN: Mutex<BTreeSet<Kind>> = Mutex::new(BTreeSet::new());
    if lock(&SEEN).insert(kind) {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        eprintln!("loadgen: first {kind} error: {detail}");
        if matches!(kind, "emfile" | "enfile") {
            eprintln!("loadgen: out of file descriptors: raise `ulimit -n` (and fs.file-max)");
        }
    }
    kind
}
