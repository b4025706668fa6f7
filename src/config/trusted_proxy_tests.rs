use std::net::IpAddr;
use std::path::Path;

use super::super::{Config, ConfigError, MINIMAL_FOR_TESTS};
use super::*;

const PIN: &str = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{MINIMAL_FOR_TESTS}\n{extra}"), Path::new("gateway.toml"))
}

fn parse_any(extra: &str) -> Result<Config, ConfigError> {
    let text = MINIMAL_FOR_TESTS.replace("client_ca = \"certs/ca.pem\"", "client_auth = \"any\"");
    Config::parse(&format!("{text}\n{extra}"), Path::new("gateway.toml"))
}

fn refused_key(result: Result<Config, ConfigError>) -> String {
    match result {
        Err(ConfigError::InvalidValue { key, .. }) => key.into_owned(),
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

#[test]
fn none_by_default_and_every_hop_form_parses() {
    assert!(parse("").unwrap().trusted_proxies.is_empty());
    let config = parse(&format!(
        "[[trusted_proxy]]\nname = \"edge\"\npeer_spki_sha256 = \"{PIN}\"\nformat = \"rfc9440\"\n\n\
         [[trusted_proxy]]\nname = \"mesh\"\npeer_san = \"spiffe://example/edge\"\nformat = \"xfcc\"\n\n\
         [[trusted_proxy]]\nname = \"alb\"\ncidr = [\"10.0.0.0/8\", \"fd00::/8\"]\nformat = \"url-pem-aws\"\n\n\
         [[trusted_proxy]]\nname = \"nginx\"\npeer_san = \"edge.internal\"\nformat = \"url-pem\"\nheader = \"X-SSL-Cert\"\n"
    ))
    .unwrap();
    let p = &config.trusted_proxies;
    assert_eq!(p.len(), 4);
    assert_eq!(&*p[0].source, "proxy:edge");
    assert!(matches!(p[0].hop, HopMatch::PeerSpki(_)));
    assert_eq!(p[0].header, CLIENT_CERT);
    assert_eq!(p[1].header.as_str(), "x-forwarded-client-cert");
    assert_eq!(p[2].header.as_str(), "x-amzn-mtls-clientcert");
    assert_eq!(p[3].header.as_str(), "x-ssl-cert");
    assert_eq!(p[1].hop, HopMatch::PeerSan("spiffe://example/edge".into()));
}

#[test]
fn each_mistake_names_its_key() {
    let entry = |body: &str| format!("[[trusted_proxy]]\nname = \"edge\"\n{body}\n");
    assert_eq!(
        refused_key(parse(&entry("format = \"rfc9440\""))),
        "trusted_proxy[0]",
        "no hop form"
    );
    assert_eq!(
        refused_key(parse(&entry(&format!(
            "peer_spki_sha256 = \"{PIN}\"\ncidr = [\"10.0.0.0/8\"]\nformat = \"rfc9440\""
        )))),
        "trusted_proxy[0]",
        "two hop forms"
    );
    assert_eq!(
        refused_key(parse(&entry("peer_spki_sha256 = \"abc\"\nformat = \"rfc9440\""))),
        "trusted_proxy[0].peer_spki_sha256"
    );
    assert_eq!(
        refused_key(parse(&entry("cidr = [\"10.1.2.3/8\"]\nformat = \"rfc9440\""))),
        "trusted_proxy[0].cidr"
    );
    assert_eq!(
        refused_key(parse(&entry("cidr = [\"10.0.0.0/33\"]\nformat = \"rfc9440\""))),
        "trusted_proxy[0].cidr"
    );
    assert_eq!(
        refused_key(parse(&entry(&format!(
            "peer_spki_sha256 = \"{PIN}\"\nformat = \"base64-der\""
        )))),
        "trusted_proxy[0].header",
        "base64-der has no default header"
    );
    assert_eq!(
        refused_key(parse(&entry(&format!(
            "peer_spki_sha256 = \"{PIN}\"\nformat = \"url-pem\"\nheader = \"x_ssl_cert\""
        )))),
        "trusted_proxy[0].header"
    );
    let twice = format!(
        "[[trusted_proxy]]\nname = \"a\"\npeer_spki_sha256 = \"{PIN}\"\nformat = \"rfc9440\"\n\n\
         [[trusted_proxy]]\nname = \"b\"\npeer_spki_sha256 = \"{PIN}\"\nformat = \"xfcc\"\n"
    );
    assert_eq!(refused_key(parse(&twice)), "trusted_proxy[1].peer_spki_sha256");
    let same_name = twice.replace("name = \"b\"", "name = \"a\"");
    assert_eq!(refused_key(parse(&same_name)), "trusted_proxy[1].name");
    let err = parse(&entry("peer_san = \"x\"\nformat = \"jwt\"")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
}

#[test]
fn self_signed_binding_believes_only_a_pinned_hop() {
    let entry = |hop: &str| format!("[[trusted_proxy]]\nname = \"edge\"\n{hop}\nformat = \"rfc9440\"\n");
    assert_eq!(
        refused_key(parse_any(&entry("cidr = [\"127.0.0.1/32\"]"))),
        "trusted_proxy[0].cidr"
    );
    assert_eq!(
        refused_key(parse_any(&entry("peer_san = \"spiffe://example/edge\""))),
        "trusted_proxy[0].peer_san"
    );
    assert!(parse_any(&entry(&format!("peer_spki_sha256 = \"{PIN}\""))).is_ok());
}

#[test]
fn ranges_contain_their_addresses_and_mapped_v4() {
    let v4 = Cidr::parse("10.0.0.0/8").unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(v4.contains(ip("10.255.0.1")));
    assert!(!v4.contains(ip("11.0.0.1")));
    assert!(v4.contains(ip("::ffff:10.1.1.1")));
    assert!(!v4.contains(ip("fd00::1")));
    let v6 = Cidr::parse("fd00::/8").unwrap();
    assert!(v6.contains(ip("fd12::1")));
    assert!(!v6.contains(ip("fe80::1")));
    let all = Cidr::parse("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("192.0.2.1")));
    let one = Cidr::parse("127.0.0.1/32").unwrap();
    assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
}

#[test]
fn forwarding_and_limit_keys_have_safe_defaults() {
    let config = parse("").unwrap();
    assert!(!config.server.reject_forwarded_cert_headers);
    assert_eq!(config.forward.client_cert_header, crate::config::ClientCertHeader::None);
    assert_eq!(config.limits.max_forwarded_cert_bytes, 10 * 1024);
    assert_eq!(
        refused_key(parse("[limits]\nmax_forwarded_cert_bytes = 100\n")),
        "limits.max_forwarded_cert_bytes"
    );
    let on = parse("[forward]\nclient_cert_header = \"rfc9440\"\n").unwrap();
    assert_eq!(on.forward.client_cert_header, crate::config::ClientCertHeader::Rfc9440);
    assert!(!on.forward.client_cert_header.sends_chain());
    let chain = parse("[forward]\nclient_cert_header = \"rfc9440-chain\"\n").unwrap();
    assert!(chain.forward.client_cert_header.sends_cert() && chain.forward.client_cert_header.sends_chain());
}
