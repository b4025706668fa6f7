use base64::Engine as _;
use http::HeaderValue;

use super::*;

const MAX: usize = 10 * 1024;

fn certificate(name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// nginx's escaping: everything but unreserved characters.
fn nginx_escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// ALB's escaping: as nginx's, but `+`, `=` and `/` stay as they are.
fn aws_escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap()
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[test]
fn rfc9440_reads_what_it_writes_with_or_without_padding_and_parameters() {
    let leaf = certificate("leaf.test");
    let written = rfc9440_value(&leaf);
    let got = rfc9440(&[&written], &[], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), leaf.as_slice());
    assert!(got.intermediates.is_empty());

    let unpadded = format!(":{}:", b64(&leaf).trim_end_matches('='));
    let got = rfc9440(&[&value(&unpadded)], &[], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), leaf.as_slice());

    let with_parameters = format!(" :{}:;a=1;b=\"x, y\";c;d=:AA==: ", b64(&leaf));
    let got = rfc9440(&[&value(&with_parameters)], &[], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), leaf.as_slice());
}

#[test]
fn rfc9440_chain_is_one_list_across_lines() {
    let (leaf, first, second) = (certificate("leaf"), certificate("first"), certificate("second"));
    let cert = rfc9440_value(&leaf);
    let line_one = value(&format!(":{}:", b64(&first)));
    let line_two = value(&format!(":{}:;x=1", b64(&second)));
    let got = rfc9440(&[&cert], &[&line_one, &line_two], MAX).unwrap().unwrap();
    assert_eq!(got.intermediates.len(), 2);
    assert_eq!(got.intermediates[0].as_ref(), first.as_slice());
    assert_eq!(got.intermediates[1].as_ref(), second.as_slice());

    let both = value(&format!(":{}:, :{}:", b64(&first), b64(&second)));
    assert_eq!(
        rfc9440(&[&cert], &[&both], MAX).unwrap().unwrap().intermediates.len(),
        2
    );
}

#[test]
fn rfc9440_empty_means_no_certificate() {
    assert_eq!(rfc9440(&[], &[], MAX), Ok(None));
    assert_eq!(rfc9440(&[&value("::")], &[], MAX), Ok(None));
    assert_eq!(rfc9440(&[&value("")], &[], MAX), Ok(None));
}

#[test]
fn rfc9440_refuses_what_is_not_exactly_one_certificate() {
    let (a, b) = (rfc9440_value(&certificate("a")), rfc9440_value(&certificate("b")));
    assert_eq!(rfc9440(&[&a, &b], &[], MAX), Err(ForwardedCertError::Repeated));
    let list = value(&format!("{}, {}", a.to_str().unwrap(), b.to_str().unwrap()));
    assert_eq!(rfc9440(&[&list], &[], MAX), Err(ForwardedCertError::List));
    for bad in [
        "abc",
        ":abc",
        ":!!!!:",
        "\"string\"",
        ":AA==: garbage",
        ":AA==:,",
        ":AA==:;A=1",
        ":AA==:;a=\"open",
    ] {
        assert!(
            matches!(
                rfc9440(&[&value(bad)], &[], MAX),
                Err(ForwardedCertError::Undecodable(_))
            ),
            "{bad}"
        );
    }
    let empty_in_chain = value("::");
    assert!(matches!(
        rfc9440(&[&a], &[&empty_in_chain], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
}

#[test]
fn every_reader_refuses_a_header_over_the_limit_before_reading_it() {
    let huge = value(&"A".repeat(16 * 1024));
    let too_large = Err(ForwardedCertError::TooLarge { limit: MAX });
    assert_eq!(rfc9440(&[&huge], &[], MAX), too_large);
    assert_eq!(xfcc(&[&huge], MAX), too_large);
    assert_eq!(url_pem(&[&huge], MAX), too_large);
    assert_eq!(url_pem_aws(&[&huge], MAX), too_large);
    assert_eq!(base64_der(&[&huge], MAX), too_large);
    // The limit is on all lines together, the chain's included.
    let half = value(&"A".repeat(MAX / 2 + 1));
    let cert = rfc9440_value(&certificate("a"));
    assert_eq!(rfc9440(&[&cert], &[&half, &half], MAX), too_large);
    assert_eq!(base64_der(&[&half, &half], MAX), too_large);
}

#[test]
fn base64_der_reads_one_line_of_base64() {
    let leaf = certificate("leaf");
    let got = base64_der(&[&value(&b64(&leaf))], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), leaf.as_slice());
    assert_eq!(base64_der(&[], MAX), Ok(None));
    assert_eq!(base64_der(&[&value("")], MAX), Ok(None));
    let line = value(&b64(&leaf));
    assert_eq!(base64_der(&[&line, &line], MAX), Err(ForwardedCertError::Repeated));
    let list = value(&format!("{0},{0}", b64(&leaf)));
    assert_eq!(base64_der(&[&list], MAX), Err(ForwardedCertError::List));
    assert!(matches!(
        base64_der(&[&value("not*base64")], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
}

#[test]
fn url_pem_reads_nginx_and_alb_escaping_alike() {
    let (leaf, intermediate) = (certificate("leaf"), certificate("intermediate"));
    let text = pem(&leaf);
    let nginx = url_pem(&[&value(&nginx_escaped(&text))], MAX).unwrap().unwrap();
    assert_eq!(nginx.leaf.as_ref(), leaf.as_slice());
    let alb = url_pem_aws(&[&value(&aws_escaped(&text))], MAX).unwrap().unwrap();
    assert_eq!(alb.leaf.as_ref(), leaf.as_slice());

    let chain = format!("{}{}", pem(&leaf), pem(&intermediate));
    let got = url_pem_aws(&[&value(&aws_escaped(&chain))], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), leaf.as_slice());
    assert_eq!(got.intermediates.len(), 1);
    assert_eq!(got.intermediates[0].as_ref(), intermediate.as_slice());
}

#[test]
fn url_pem_decodes_strictly() {
    // A `+` is a `+`, never a space: read as one, the DER would change.
    let der = (0..)
        .map(|n| certificate(&format!("leaf{n}")))
        .find(|der| b64(der).contains('+'))
        .unwrap();
    let aws = aws_escaped(&pem(&der));
    let got = url_pem(&[&value(&aws)], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), der.as_slice());
    let text = pem(&der);
    for bad in ["%", "%G0", "%0", "hello"] {
        assert!(
            matches!(url_pem(&[&value(bad)], MAX), Err(ForwardedCertError::Undecodable(_))),
            "{bad}"
        );
    }
    let line = value(&nginx_escaped(&text));
    assert_eq!(url_pem(&[&line, &line], MAX), Err(ForwardedCertError::Repeated));
    assert_eq!(url_pem(&[], MAX), Ok(None));
}

#[test]
fn an_empty_certificate_is_refused_not_read() {
    // Found by the forwarded_cert fuzz target: an empty PEM block is valid
    // PEM, and was read as a certificate of zero bytes.
    let empty_pem = nginx_escaped("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    for reader in [url_pem, url_pem_aws] {
        assert!(matches!(
            reader(&[&value(&empty_pem)], MAX),
            Err(ForwardedCertError::Undecodable(_))
        ));
    }
    let leaf = certificate("leaf");
    let leaf_then_empty = format!("{}-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", pem(&leaf));
    assert!(matches!(
        url_pem(&[&value(&nginx_escaped(&leaf_then_empty))], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
    let element = format!("By=x;Cert=\"{empty_pem}\"");
    assert!(matches!(
        xfcc(&[&value(&element)], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
    // Padding alone decodes to no bytes.
    assert!(matches!(
        base64_der(&[&value("==")], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
}

fn envoy_element(by: &str, leaf: &[u8], chain: &[&[u8]]) -> String {
    let mut element = format!("By={by};Hash=00;Cert=\"{}\"", nginx_escaped(&pem(leaf)));
    if !chain.is_empty() {
        let chain: String = chain.iter().map(|der| pem(der)).collect();
        element.push_str(&format!(";Chain=\"{}\"", nginx_escaped(&chain)));
    }
    element.push_str(";Subject=\"CN=a,O=b\";URI=spiffe://x");
    element
}

#[test]
fn xfcc_reads_only_the_last_element() {
    let (attacker, client, intermediate) = (certificate("attacker"), certificate("client"), certificate("ca"));
    let header = format!(
        "{},{}",
        envoy_element("spiffe://attacker", &attacker, &[]),
        envoy_element("spiffe://hop", &client, &[&client, &intermediate])
    );
    let got = xfcc(&[&value(&header)], MAX).unwrap().unwrap();
    assert_eq!(got.leaf.as_ref(), client.as_slice());
    assert_eq!(got.intermediates.len(), 1);
    assert_eq!(got.intermediates[0].as_ref(), intermediate.as_slice());

    // Two lines are one list: the last line's element is the hop's.
    let first = value(&envoy_element("a", &attacker, &[]));
    let last = value(&envoy_element("b", &client, &[]));
    assert_eq!(
        xfcc(&[&first, &last], MAX).unwrap().unwrap().leaf.as_ref(),
        client.as_slice()
    );
}

#[test]
fn xfcc_refuses_a_last_element_without_one_certificate() {
    let attacker = certificate("attacker");
    // The attacker's element first, the hop's (configured without Cert) last.
    let header = format!("{},By=hop;Hash=00", envoy_element("x", &attacker, &[]));
    assert!(matches!(
        xfcc(&[&value(&header)], MAX),
        Err(ForwardedCertError::Undecodable(_))
    ));
    let two = format!(
        "Cert=\"{}\"",
        nginx_escaped(&format!("{}{}", pem(&attacker), pem(&attacker)))
    );
    assert_eq!(xfcc(&[&value(&two)], MAX), Err(ForwardedCertError::List));
    let twice = format!("Cert={0};Cert={0}", nginx_escaped(&pem(&attacker)));
    assert_eq!(xfcc(&[&value(&twice)], MAX), Err(ForwardedCertError::Repeated));
    for bad in ["Cert=\"open", "Cert", "Cert=\"a\\"] {
        assert!(
            matches!(xfcc(&[&value(bad)], MAX), Err(ForwardedCertError::Undecodable(_))),
            "{bad}"
        );
    }
    assert_eq!(xfcc(&[], MAX), Ok(None));
    assert_eq!(xfcc(&[&value(" ")], MAX), Ok(None));
}

#[test]
fn xfcc_separators_inside_quotes_do_not_split() {
    let client = certificate("client");
    let header = format!(
        "Subject=\"CN=x,O=\\\"y;z\\\"\";Cert=\"{}\"",
        nginx_escaped(&pem(&client))
    );
    assert_eq!(
        xfcc(&[&value(&header)], MAX).unwrap().unwrap().leaf.as_ref(),
        client.as_slice()
    );
}

#[test]
fn rfc9440_chain_value_reads_back_as_the_chain() {
    let (leaf, first, second) = (certificate("leaf"), certificate("first"), certificate("second"));
    assert_eq!(rfc9440_chain_value::<Vec<u8>>(&[]), None);
    let chain = rfc9440_chain_value(&[first.clone(), second.clone()]).unwrap();
    let got = rfc9440(&[&rfc9440_value(&leaf)], &[&chain], MAX).unwrap().unwrap();
    assert_eq!(got.intermediates.len(), 2);
    assert_eq!(got.intermediates[0].as_ref(), first.as_slice());
    assert_eq!(got.intermediates[1].as_ref(), second.as_slice());
}
