//! `[[trusted_proxy]]` entries: front proxies (load balancers, a front nginx
//! or HAProxy) that terminate the client's TLS and pass its certificate on
//! in a header. None by default: RFC 9440 section 4 makes believing such a
//! header an opt-in, and a header nobody strips "does not fail safe".

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use serde::Deserialize;

use super::{ClientAuth, ConfigError, Validator};

/// The header dialect a front proxy forwards the certificate in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ForwardedFormat {
    /// RFC 9440: `Client-Cert` (and `Client-Cert-Chain`) as sf-binary items.
    #[serde(rename = "rfc9440")]
    Rfc9440,
    /// Envoy's `x-forwarded-client-cert`, its `Cert=` (and `Chain=`); the last element is the hop's.
    #[serde(rename = "xfcc")]
    Xfcc,
    /// nginx's `$ssl_client_escaped_cert`: URL-encoded PEM.
    #[serde(rename = "url-pem")]
    UrlPem,
    /// AWS ALB's `X-Amzn-Mtls-Clientcert`: URL-encoded PEM, leaf and chain.
    #[serde(rename = "url-pem-aws")]
    UrlPemAws,
    /// HAProxy's `%[ssl_c_der,base64]`: base64 of the DER.
    #[serde(rename = "base64-der")]
    Base64Der,
}

impl ForwardedFormat {
    /// The word `gateway.toml` uses for it.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedFormat::Rfc9440 => "rfc9440",
            ForwardedFormat::Xfcc => "xfcc",
            ForwardedFormat::UrlPem => "url-pem",
            ForwardedFormat::UrlPemAws => "url-pem-aws",
            ForwardedFormat::Base64Der => "base64-der",
        }
    }

    /// The header a proxy of this kind uses unless told otherwise. nginx and
    /// HAProxy have no convention: the operator names the header they set.
    fn default_header(self) -> Option<&'static str> {
        match self {
            ForwardedFormat::Rfc9440 => Some("client-cert"),
            ForwardedFormat::Xfcc => Some("x-forwarded-client-cert"),
            ForwardedFormat::UrlPemAws => Some("x-amzn-mtls-clientcert"),
            ForwardedFormat::UrlPem | ForwardedFormat::Base64Der => None,
        }
    }
}

/// How a connection is recognised as coming from the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopMatch {
    /// SHA-256 of the SubjectPublicKeyInfo of the proxy's client certificate:
    /// only the holder of that key can complete the handshake.
    PeerSpki([u8; 32]),
    /// A URI or DNS SAN of the proxy's client certificate, which the
    /// handshake chained to `client_ca`.
    PeerSan(String),
    /// Source addresses: anyone who can send from them is believed.
    Cidr(Vec<Cidr>),
}

/// One `[[trusted_proxy]]`.
#[derive(Debug, Clone)]
pub struct TrustedProxy {
    pub name: String,
    /// `proxy:<name>`: the access log's `cert_source` and the metrics label.
    pub source: Arc<str>,
    pub hop: HopMatch,
    pub format: ForwardedFormat,
    /// The header the certificate is read from.
    pub header: HeaderName,
}

/// The header RFC 9440 carries the chain in; read with an `rfc9440` entry's header.
pub const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");
/// RFC 9440's certificate header.
pub const CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");

/// An address range, `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is in the range. An IPv4-mapped IPv6 address is
    /// compared as the IPv4 address it is.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }

    fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not an address range like \"10.0.0.0/8\""))?;
        let network: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?;
        let cidr = Cidr { network, prefix };
        // `10.1.2.3/8` usually means a typo; say what was meant instead of guessing.
        let host_bits_set = match network {
            IpAddr::V4(v4) => masked(u32::from(v4).into(), 32, prefix) != u128::from(u32::from(v4)),
            IpAddr::V6(v6) => masked(u128::from(v6), 128, prefix) != u128::from(v6),
        };
        if host_bits_set {
            return Err(format!("{text:?} has bits set past its prefix length"));
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn masked(value: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u32::from(bits - prefix);
    (value >> keep) << keep
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrustedProxy {
    name: String,
    peer_spki_sha256: Option<String>,
    peer_san: Option<String>,
    cidr: Option<Vec<String>>,
    format: ForwardedFormat,
    header: Option<String>,
}

impl Validator<'_> {
    pub(super) fn trusted_proxies(
        &self,
        raw: Vec<RawTrustedProxy>,
        client_auth: ClientAuth,
    ) -> Result<Vec<TrustedProxy>, ConfigError> {
        let mut proxies: Vec<TrustedProxy> = Vec::with_capacity(raw.len());
        for (index, entry) in raw.into_iter().enumerate() {
            let key = |field: &str| format!("trusted_proxy[{index}].{field}");
            if entry.name.is_empty()
                || !entry
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(self.invalid(key("name"), "must be non-empty: letters, digits, '-', '_' or '.'"));
            }
            if proxies.iter().any(|p| p.name == entry.name) {
                return Err(self.invalid(key("name"), format!("{:?} names two entries", entry.name)));
            }
            let hop = self.hop(&entry, index, client_auth)?;
            if let Some(twin) = proxies.iter().find(|p| same_peer(&p.hop, &hop)) {
                return Err(self.invalid(
                    key(hop_key(&hop)),
                    format!("trusted_proxy {:?} already names the same peer", twin.name),
                ));
            }
            let header = self.proxy_header(&entry, index)?;
            proxies.push(TrustedProxy {
                source: Arc::from(format!("proxy:{}", entry.name)),
                name: entry.name,
                hop,
                format: entry.format,
                header,
            });
        }
        Ok(proxies)
    }

    fn hop(&self, entry: &RawTrustedProxy, index: usize, client_auth: ClientAuth) -> Result<HopMatch, ConfigError> {
        let key = |field: &str| format!("trusted_proxy[{index}].{field}");
        let hop = match (&entry.peer_spki_sha256, &entry.peer_san, &entry.cidr) {
            (Some(pin), None, None) => {
                let digest = URL_SAFE_NO_PAD
                    .decode(pin.trim_end_matches('='))
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        self.invalid(
                            key("peer_spki_sha256"),
                            "must be the base64url SHA-256 of the proxy's SubjectPublicKeyInfo (43 characters; `bindgate thumbprint --spki proxy.pem` prints it)",
                        )
                    })?;
                HopMatch::PeerSpki(digest)
            }
            (None, Some(san), None) => {
                if san.is_empty() || san.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(self.invalid(key("peer_san"), "must be one URI or DNS name, without spaces"));
                }
                // Anyone can make a self-signed certificate with any SAN: a
                // name proves something only in a certificate a CA chained.
                if client_auth == ClientAuth::Any {
                    return Err(self.invalid(
                        key("peer_san"),
                        "a name proves nothing without a chain to client_ca, and client_auth = \"any\" checks none; pin the proxy's key with peer_spki_sha256",
                    ));
                }
                HopMatch::PeerSan(san.clone())
            }
            (None, None, Some(ranges)) => {
                if ranges.is_empty() {
                    return Err(self.invalid(key("cidr"), "needs at least one address range"));
                }
                // A forwarded certificate proves no possession of its key; with
                // self-signed binding only an authenticated hop did that proof.
                if client_auth == ClientAuth::Any {
                    return Err(self.invalid(
                        key("cidr"),
                        "refused with client_auth = \"any\": a source address does not authenticate the hop, and self-signed certificates are believed only from a hop that proved its key; use peer_spki_sha256",
                    ));
                }
                let parsed = ranges
                    .iter()
                    .map(|r| Cidr::parse(r).map_err(|reason| self.invalid(key("cidr"), reason)))
                    .collect::<Result<Vec<_>, _>>()?;
                HopMatch::Cidr(parsed)
            }
            _ => {
                return Err(self.invalid(
                    format!("trusted_proxy[{index}]"),
                    "needs exactly one of peer_spki_sha256 (recommended), peer_san or cidr",
                ));
            }
        };
        Ok(hop)
    }

    fn proxy_header(&self, entry: &RawTrustedProxy, index: usize) -> Result<HeaderName, ConfigError> {
        let key = format!("trusted_proxy[{index}].header");
        let text = match (&entry.header, entry.format.default_header()) {
            (Some(text), _) => text.to_ascii_lowercase(),
            (None, Some(default)) => default.to_string(),
            (None, None) => {
                return Err(self.invalid(
                    key,
                    format!(
                        "required with format = {:?}: name the header the proxy sets",
                        entry.format.name()
                    ),
                ));
            }
        };
        let header = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| self.invalid(key.clone(), format!("{text:?} is not a valid header name")))?;
        // CGI-style servers read `x_client_cert` as `x-client-cert`; a name
        // with `_` would be ambiguous from the start.
        if text.contains('_') {
            return Err(self.invalid(key, "must not contain '_'"));
        }
        if header == CLIENT_CERT_CHAIN {
            return Err(self.invalid(
                key,
                "client-cert-chain carries only the chain; name the certificate's header",
            ));
        }
        Ok(header)
    }
}

fn same_peer(a: &HopMatch, b: &HopMatch) -> bool {
    match (a, b) {
        (HopMatch::PeerSpki(x), HopMatch::PeerSpki(y)) => x == y,
        (HopMatch::PeerSan(x), HopMatch::PeerSan(y)) => x == y,
        // Ranges may overlap on purpose (two proxies in one subnet); the first entry wins.
        _ => false,
    }
}

fn hop_key(hop: &HopMatch) -> &'static str {
    match hop {
        HopMatch::PeerSpki(_) => "peer_spki_sha256",
        HopMatch::PeerSan(_) => "peer_san",
        HopMatch::Cidr(_) => "cidr",
    }
}

#[cfg(test)]
#[path = "trusted_proxy_tests.rs"]
mod tests;
