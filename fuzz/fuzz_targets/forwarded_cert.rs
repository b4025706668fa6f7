//! The readers of forwarded-certificate headers (RFC 9440, XFCC, URL-encoded
//! PEM, base64 DER) on arbitrary header lines: the first byte picks the
//! reader, the rest splits at `\n` into lines (those a header could not carry
//! are dropped). None may panic; the size limit must be exact; and whatever
//! RFC 9440 reads must read back the same from bindgate's own rendering.
#![no_main]

use bindgate::http::forwarded_cert::{self, ForwardedCertError};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let lines: Vec<HeaderValue> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    let (cert, chain) = lines.split_at(lines.len().min(usize::from(pick >> 4) % 3));
    let cert: Vec<&HeaderValue> = cert.iter().collect();
    let chain: Vec<&HeaderValue> = chain.iter().collect();
    let total: usize = cert.iter().chain(&chain).map(|v| v.len()).sum();
    let all: Vec<&HeaderValue> = lines.iter().collect();
    let result = match pick % 5 {
        0 => forwarded_cert::rfc9440(&cert, &chain, MAX),
        1 => forwarded_cert::xfcc(&all, MAX),
        2 => forwarded_cert::url_pem(&all, MAX),
        3 => forwarded_cert::url_pem_aws(&all, MAX),
        _ => forwarded_cert::base64_der(&all, MAX),
    };
    let judged = if pick % 5 == 0 { total } else { all.iter().map(|v| v.len()).sum() };
    assert_eq!(
        matches!(result, Err(ForwardedCertError::TooLarge { .. })),
        judged > MAX,
        "size limit misjudged at {judged} bytes"
    );
    if let Ok(Some(read)) = result {
        assert!(!read.leaf.as_ref().is_empty(), "an empty certificate was read");
        let rendered = forwarded_cert::rfc9440_value(read.leaf.as_ref());
        let again = forwarded_cert::rfc9440(&[&rendered], &[], usize::MAX)
            .expect("bindgate reads its own Client-Cert")
            .expect("and finds a certificate in it");
        assert_eq!(again.leaf, read.leaf);
    }
});
