//! The HTTP/1 framing scanner that watches a connection's raw bytes for
//! ambiguous framing (Content-Length with Transfer-Encoding, repeated
//! Content-Length), fed in chunks cut where the input says.
//!
//! Input: two bytes of head limit, one byte `n`, then `n` two-byte cut
//! offsets, then the byte stream (a seed is a real request stream behind a
//! three-byte prefix; see fuzz/make-seeds.sh). The property: the verdicts do
//! not depend on how the stream was cut into reads.
#![no_main]

use std::sync::Arc;

use bindgate::conn::framing::{Framing, FramingLog, FramingScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[hi, lo, cuts], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max_head_bytes = 1 + usize::from(u16::from_be_bytes([hi, lo]));
    let Some((offsets, stream)) = rest.split_at_checked(2 * usize::from(cuts % 32)) else {
        return;
    };
    let mut points: Vec<usize> = offsets
        .chunks_exact(2)
        .map(|o| usize::from(u16::from_be_bytes([o[0], o[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();

    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        pieces.push(&stream[start..point]);
        start = point;
    }
    pieces.push(&stream[start..]);

    let whole = scan(max_head_bytes, &[stream]);
    let cut = scan(max_head_bytes, &pieces);
    assert_eq!(whole, cut, "verdicts depend on the read boundaries {pieces:?}");
    if stream.len() <= 2048 {
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(
            whole,
            scan(max_head_bytes, &bytewise),
            "verdicts change when fed a byte at a time"
        );
    }
});

/// The verdicts, and whether the scanner ends between messages.
fn scan(max_head_bytes: usize, reads: &[&[u8]]) -> (Vec<Framing>, bool) {
    let log = Arc::new(FramingLog::default());
    let mut scanner = FramingScanner::new(max_head_bytes, log.clone());
    for read in reads {
        scanner.feed(read);
    }
    (std::iter::from_fn(|| log.next()).collect(), scanner.between_messages())
}
