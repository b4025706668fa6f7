//! Header rewriting between client and upstream: hop-by-hop headers go
//! ([`crate::http::hop`]),
//! spoofable identity headers are always replaced by what the gateway itself
//! established, never passed through, in any spelling an upstream might read
//! as theirs (`x_auth_subject` is `HTTP_X_AUTH_SUBJECT` in CGI, as is
//! `x-auth-subject`).

use std::cell::Cell;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::dpop::DPOP;
use crate::auth::token::Claims;
use crate::config::{CLIENT_CERT, CLIENT_CERT_CHAIN, Config, ConfigError, ForwardSettings, UnderscoreHeaders};
use crate::conn::identity::ClientIdentity;
use crate::http::hop::{HOP_BY_HOP, same_but_underscores, strip_hop_by_hop_and};
use crate::http::inbound::{Authority, RequestError};

pub const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// Headers the gateway writes itself; configuration may not repurpose them.
fn is_reserved(name: &HeaderName) -> bool {
    FORWARDING.contains(name) || name == HOST || name == AUTHORIZATION || HOP_BY_HOP.contains(name)
}

/// Refuses `forward.claim_headers` entries naming a header the gateway
/// writes itself. Checked here, where the forwarding rules live, and not in
/// `config`, which keeps no list of headers.
pub fn check_claim_headers(config: &Config) -> Result<(), ConfigError> {
    match config.forward.claim_headers.iter().find(|(name, _)| is_reserved(name)) {
        None => Ok(()),
        Some((name, _)) => Err(ConfigError::InvalidValue {
            file: config.source.clone(),
            key: "forward.claim_headers".into(),
            reason: format!(
                "{:?} is set by the gateway itself and cannot carry a claim",
                name.as_str()
            ),
        }),
    }
}

/// Refuses a `trusted_proxy` header naming one the gateway reads or writes
/// for itself: a proxy's certificate must not arrive in `Authorization`,
/// and only an `xfcc` entry may read `x-forwarded-client-cert` (which the
/// gateway then replaces with its own).
pub fn check_proxy_headers(config: &Config) -> Result<(), ConfigError> {
    for (index, proxy) in config.trusted_proxies.iter().enumerate() {
        let xfcc_reads_xfcc =
            proxy.format == crate::config::ForwardedFormat::Xfcc && proxy.header == X_FORWARDED_CLIENT_CERT;
        let claim_header = config
            .forward
            .claim_headers
            .iter()
            .any(|(name, _)| *name == proxy.header);
        if (is_reserved(&proxy.header) && !xfcc_reads_xfcc) || proxy.header == DPOP || claim_header {
            return Err(ConfigError::InvalidValue {
                file: config.source.clone(),
                key: format!("trusted_proxy[{index}].header").into(),
                reason: format!(
                    "{:?} is a header the gateway reads or sets itself; name the one the proxy sets the certificate in",
                    proxy.header.as_str()
                ),
            });
        }
    }
    Ok(())
}

/// The headers about the client the gateway writes itself, from what it established.
const FORWARDING: [HeaderName; 5] = [
    X_FORWARDED_CLIENT_CERT,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    FORWARDED,
];

/// What the gateway knows about the request it is about to forward.
pub struct ForwardContext<'a> {
    pub authority: &'a Authority,
    /// `X-Forwarded-For` as the upstream gets it.
    pub forwarded_for: &'a HeaderValue,
    /// The certificate the request was judged by.
    pub identity: Option<&'a ClientIdentity>,
    pub claims: Option<&'a Claims>,
    /// Headers that can carry a forwarded certificate: never passed on as they came.
    pub screened: &'a [HeaderName],
}

/// `X-Forwarded-For` for the upstream. A trusted proxy's value is kept and
/// its own address appended, as each hop of a chain does; anyone else's is
/// replaced by the peer's address.
pub fn forwarded_for(headers: &HeaderMap, peer: &HeaderValue, trusted_hop: bool) -> Option<HeaderValue> {
    if !trusted_hop {
        return None;
    }
    let mut chain: Vec<&[u8]> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if chain.is_empty() {
        return None;
    }
    chain.push(peer.as_bytes());
    HeaderValue::from_bytes(&chain.join(&b", "[..])).ok()
}

/// Rewrites inbound request headers into the ones the upstream receives.
/// Fails only when `headers_with_underscores = "reject"` and a name holds `_`.
pub fn rewrite_request(
    headers: &mut HeaderMap,
    ctx: &ForwardContext<'_>,
    settings: &ForwardSettings,
) -> Result<(), RequestError> {
    let underscored = Cell::new(false);
    strip_hop_by_hop_and(headers, |name| {
        FORWARDING.contains(name)
            || ctx.screened.contains(name)
            || settings.claim_headers.iter().any(|(claim_header, _)| claim_header == name)
            // The DPoP proof is part of the same credential, and means nothing without it.
            || (settings.strip_authorization && (name == AUTHORIZATION || name == DPOP))
            // One byte scan per name: the common request has no `_` at all.
            || (name.as_str().as_bytes().contains(&b'_') && {
                underscored.set(true);
                underscore_name_goes(name.as_str(), settings, ctx.screened)
            })
    });
    if underscored.get() && settings.headers_with_underscores == UnderscoreHeaders::Reject {
        return Err(RequestError::UnderscoreInHeaderName);
    }

    let host = ctx.authority.header();
    // h2 clients send :authority, not Host; HTTP/1.1 upstreams need Host.
    if !headers.contains_key(HOST) {
        headers.insert(HOST, host.clone());
    }
    headers.insert(X_FORWARDED_HOST, host.clone());
    headers.insert(X_FORWARDED_FOR, ctx.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Some(identity) = ctx.identity {
        headers.insert(X_FORWARDED_CLIENT_CERT, identity.xfcc.clone());
        if settings.client_cert_header.sends_cert()
            && let Some(value) = &identity.rfc9440
        {
            headers.insert(CLIENT_CERT, value.clone());
        }
        if settings.client_cert_header.sends_chain()
            && let Some(value) = &identity.rfc9440_chain
        {
            headers.insert(CLIENT_CERT_CHAIN, value.clone());
        }
    }
    if let Some(claims) = ctx.claims {
        for (name, claim) in &settings.claim_headers {
            // The rendered text becomes the value's bytes, not a copy of
            // them; what `HeaderValue::from_str` would refuse is still left out.
            let value = claims
                .render(claim)
                .filter(|text| text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
                .and_then(|text| HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok());
            if let Some(value) = value {
                headers.insert(name.clone(), value);
            }
        }
    }
    Ok(())
}

/// RFC 9440 section 2.4: a response that varies on `Client-Cert` would be
/// cached by the client under a header the client never sends; `Vary: *`
/// keeps it from being reused at all.
pub fn uncache_client_cert_variants(headers: &mut HeaderMap) {
    let varies_on_cert = headers.get_all(http::header::VARY).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|token| {
            let token = token.trim_ascii();
            token.eq_ignore_ascii_case(b"client-cert") || token.eq_ignore_ascii_case(b"client-cert-chain")
        })
    });
    if varies_on_cert {
        headers.insert(http::header::VARY, HeaderValue::from_static("*"));
    }
}

/// Whether a header name holding `_` is removed: always when, `_` read as
/// `-`, it names a header the gateway sets, strips or relies on; otherwise
/// as `headers_with_underscores` says.
fn underscore_name_goes(name: &str, settings: &ForwardSettings, screened: &[HeaderName]) -> bool {
    let spells = |protected: &HeaderName| same_but_underscores(name, protected.as_str());
    let protected = FORWARDING.iter().any(spells)
        || screened.iter().any(spells)
        || HOP_BY_HOP.iter().any(spells)
        || [HOST, AUTHORIZATION, DPOP].iter().any(spells)
        || settings
            .claim_headers
            .iter()
            .any(|(claim_header, _)| spells(claim_header));
    protected || settings.headers_with_underscores != UnderscoreHeaders::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ForwardSettings {
        ForwardSettings {
            strip_authorization: false,
            claim_headers: vec![(HeaderName::from_static("x-auth-subject"), "sub".to_string())],
            headers_with_underscores: UnderscoreHeaders::Drop,
            client_cert_header: crate::config::ClientCertHeader::None,
        }
    }

    fn inbound(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    static SCREENED: [HeaderName; 3] = [
        HeaderName::from_static("client-cert"),
        HeaderName::from_static("client-cert-chain"),
        HeaderName::from_static("x-ssl-cert"),
    ];

    fn ctx<'a>(claims: Option<&'a Claims>) -> ForwardContext<'a> {
        static PEER: HeaderValue = HeaderValue::from_static("10.1.2.3");
        static AUTHORITY: Authority = Authority::from_static("api.example");
        ForwardContext {
            authority: &AUTHORITY,
            forwarded_for: &PEER,
            identity: None,
            claims,
            screened: &SCREENED,
        }
    }

    #[test]
    fn claim_header_cannot_shadow_gateway_headers() {
        let parse = |text: &str| Config::parse(text, std::path::Path::new("/etc/bindgate/gateway.toml")).unwrap();
        let minimal = crate::config::MINIMAL_FOR_TESTS;
        let text = format!("{minimal}\n[forward]\nclaim_headers = {{ \"x-forwarded-client-cert\" = \"sub\" }}\n");
        // Parsed fine; refused where the forwarding rules are checked.
        assert!(matches!(
            check_claim_headers(&parse(&text)).unwrap_err(),
            ConfigError::InvalidValue { key, .. } if key == "forward.claim_headers"
        ));
        assert!(check_claim_headers(&parse(minimal)).is_ok());
    }

    #[test]
    fn spoofed_identity_headers_are_replaced() {
        let claims: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1,"sub":"alice"}"#).unwrap();
        let mut h = inbound(&[
            ("host", "api.example"),
            ("x-forwarded-client-cert", "Hash=evil"),
            ("x-auth-subject", "root"),
            ("x-auth-subject", "admin"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "http"),
        ]);
        rewrite_request(&mut h, &ctx(Some(&claims)), &settings()).unwrap();
        assert!(h.get("x-forwarded-client-cert").is_none());
        assert_eq!(h.get_all("x-auth-subject").iter().collect::<Vec<_>>(), vec!["alice"]);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example");
    }

    #[test]
    fn claim_header_is_removed_even_when_claim_is_absent() {
        let claims: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1}"#).unwrap();
        let mut h = inbound(&[("x-auth-subject", "root")]);
        rewrite_request(&mut h, &ctx(Some(&claims)), &settings()).unwrap();
        assert!(h.get("x-auth-subject").is_none());
        assert_eq!(h["host"], "api.example");
    }

    #[test]
    fn a_claim_that_is_no_visible_ascii_is_left_out_and_one_that_is_sent() {
        let claims: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1,"sub":"zoë\u0007"}"#).unwrap();
        let mut h = inbound(&[("x-auth-subject", "root")]);
        rewrite_request(&mut h, &ctx(Some(&claims)), &settings()).unwrap();
        assert!(h.get("x-auth-subject").is_none());
        let claims: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1,"sub":"user\t42"}"#).unwrap();
        rewrite_request(&mut h, &ctx(Some(&claims)), &settings()).unwrap();
        assert_eq!(h["x-auth-subject"], "user\t42");
    }

    #[test]
    fn authorization_is_forwarded_unless_stripping_is_configured() {
        let mut h = inbound(&[("authorization", "Bearer t")]);
        rewrite_request(&mut h, &ctx(None), &settings()).unwrap();
        assert_eq!(h["authorization"], "Bearer t");
        let mut strip = settings();
        strip.strip_authorization = true;
        rewrite_request(&mut h, &ctx(None), &strip).unwrap();
        assert!(h.get("authorization").is_none());
    }

    #[test]
    fn underscore_spellings_of_gateway_headers_go_in_every_mode() {
        let spoofs = [
            ("x_auth_subject", "admin"),
            ("x_forwarded_client_cert", "Hash=evil"),
            ("x-forwarded_for", "1.1.1.1"),
            ("x_forwarded_proto", "http"),
            ("transfer_encoding", "chunked"),
            ("dpop", "x"),
        ];
        for mode in [UnderscoreHeaders::Allow, UnderscoreHeaders::Drop] {
            let mut s = settings();
            s.headers_with_underscores = mode;
            let mut h = inbound(&spoofs);
            h.append("x_custom", HeaderValue::from_static("1"));
            h.append("x_auth_subjects", HeaderValue::from_static("2"));
            rewrite_request(&mut h, &ctx(None), &s).unwrap();
            for (name, _) in spoofs.iter().filter(|(n, _)| n.contains('_')) {
                assert!(h.get(*name).is_none(), "{mode:?}: {name} kept");
            }
            let kept = mode == UnderscoreHeaders::Allow;
            assert_eq!(h.contains_key("x_custom"), kept, "{mode:?}");
            assert_eq!(h.contains_key("x_auth_subjects"), kept, "{mode:?}");
            assert_eq!(h["dpop"], "x");
        }
    }

    #[test]
    fn reject_mode_refuses_any_underscore_name_and_nothing_else() {
        let mut s = settings();
        s.headers_with_underscores = UnderscoreHeaders::Reject;
        let mut plain = inbound(&[("x-custom", "1"), ("x-auth-subject", "root")]);
        assert!(rewrite_request(&mut plain, &ctx(None), &s).is_ok());
        for name in ["x_custom", "x_auth_subject"] {
            let mut h = inbound(&[(name, "1")]);
            assert!(matches!(
                rewrite_request(&mut h, &ctx(None), &s),
                Err(RequestError::UnderscoreInHeaderName)
            ));
        }
    }

    #[test]
    fn forwarded_certificate_headers_never_pass_in_any_spelling() {
        for mode in [UnderscoreHeaders::Allow, UnderscoreHeaders::Drop] {
            let mut s = settings();
            s.headers_with_underscores = mode;
            let mut h = inbound(&[
                ("client-cert", ":AAAA:"),
                ("client-cert-chain", ":AAAA:"),
                ("client_cert", ":AAAA:"),
                ("client_cert-chain", ":AAAA:"),
                ("x-ssl-cert", "pem"),
                ("x_ssl_cert", "pem"),
            ]);
            rewrite_request(&mut h, &ctx(None), &s).unwrap();
            for name in [
                "client-cert",
                "client-cert-chain",
                "client_cert",
                "client_cert-chain",
                "x-ssl-cert",
                "x_ssl_cert",
            ] {
                assert!(h.get(name).is_none(), "{mode:?}: {name} kept");
            }
        }
    }

    #[test]
    fn a_trusted_hops_forwarded_for_is_extended_and_anyone_elses_replaced() {
        let peer = HeaderValue::from_static("10.0.0.5");
        let h = inbound(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            forwarded_for(&h, &peer, true).unwrap(),
            "203.0.113.7, 198.51.100.1, 10.0.0.5"
        );
        assert!(forwarded_for(&h, &peer, false).is_none());
        assert!(forwarded_for(&HeaderMap::new(), &peer, true).is_none());
    }

    #[test]
    fn a_response_varying_on_the_client_certificate_becomes_uncacheable() {
        let mut h = inbound(&[("vary", "Accept-Encoding"), ("vary", "Origin, CLIENT-CERT")]);
        uncache_client_cert_variants(&mut h);
        assert_eq!(h.get_all("vary").iter().collect::<Vec<_>>(), vec!["*"]);
        let mut plain = inbound(&[("vary", "Accept-Encoding, Client-Certs")]);
        uncache_client_cert_variants(&mut plain);
        assert_eq!(plain["vary"], "Accept-Encoding, Client-Certs");
    }
}
