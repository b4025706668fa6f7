//! HTTP/1 framing guard.
//!
//! hyper resolves ambiguous framing on its own before the gateway sees a
//! request: a `Content-Length` next to `Transfer-Encoding` is dropped, and
//! repeated identical `Content-Length` headers are folded into one. Both are
//! classic request-smuggling shapes, and the gateway answers them with 400
//! instead (as Envoy does). To see them, this module watches the raw bytes
//! of an HTTP/1 connection as hyper reads them, tracks message boundaries,
//! and records one verdict per request head, in order. The service takes
//! the verdicts in the same order, since HTTP/1 requests on a connection are
//! served one at a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How one request head framed its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Unambiguous,
    /// `Content-Length` with `Transfer-Encoding`, or several `Content-Length`.
    Ambiguous,
}

/// Verdicts of one connection, oldest first.
#[derive(Debug, Default)]
pub struct FramingLog {
    verdicts: Mutex<VecDeque<Framing>>,
}

impl FramingLog {
    /// The verdict for the next request served on this connection. `None`
    /// means the scanner gave up on this connection, which only happens on
    /// input hyper rejects as well (oversized or unparsable heads). A log
    /// that cannot be read (poisoned) says `Ambiguous`: verdicts pair with
    /// requests by order, and without them no request may pass.
    pub fn next(&self) -> Option<Framing> {
        match crate::lock::lock(&self.verdicts) {
            Some(mut verdicts) => verdicts.pop_front(),
            None => Some(Framing::Ambiguous),
        }
    }

    fn push(&self, framing: Framing) {
        if let Some(mut verdicts) = crate::lock::lock(&self.verdicts) {
            verdicts.push_back(framing);
        }
    }
}

/// Most header lines a head may have; hyper's own default limit is 100.
const MAX_HEADERS: usize = 128;

#[derive(Debug)]
enum State {
    Head,
    FixedBody(u64),
    ChunkSize(ChunkSizeLine),
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkDataEnd(EmptyLine),
    Trailers(EmptyLine),
    /// Stopped following the byte stream; hyper rejects what caused it too.
    GaveUp,
}

/// A chunk-size line read byte by byte, the way hyper reads it: it has no
/// length limit (leading zeros and whitespace are unbounded, extensions
/// only have a total budget per body), so neither may this, or a long line
/// would stop the scan while hyper goes on serving the connection.
#[derive(Debug, Default)]
struct ChunkSizeLine {
    size: u64,
    digits: bool,
    /// Past the size: whitespace, or an extension (skipped up to the line feed).
    after_size: bool,
    in_extension: bool,
}

/// Where a line that must be empty (or a trailer line, which may not be)
/// stands: only a bare CR is allowed before the line feed of an empty line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmptyLine {
    Start,
    AfterCr,
    NotEmpty,
}

impl EmptyLine {
    fn after(self, byte: u8) -> EmptyLine {
        match (self, byte) {
            (EmptyLine::Start, b'\r') => EmptyLine::AfterCr,
            _ => EmptyLine::NotEmpty,
        }
    }
}

/// Follows HTTP/1 request framing over a byte stream, fed as it arrives.
#[derive(Debug)]
pub struct FramingScanner {
    state: State,
    /// The head (or chunk-size / trailer line) being accumulated.
    pending: Vec<u8>,
    max_head_bytes: usize,
    log: Arc<FramingLog>,
}

impl FramingScanner {
    pub fn new(max_head_bytes: usize, log: Arc<FramingLog>) -> FramingScanner {
        FramingScanner {
            state: State::Head,
            pending: Vec::new(),
            max_head_bytes,
            log,
        }
    }

    /// A scanner that ignores everything: for connections that are not HTTP/1.
    pub fn disabled(mut self) -> FramingScanner {
        self.state = State::GaveUp;
        self
    }

    /// Whether every byte fed so far belongs to complete request messages:
    /// the connection is between requests. Never true once the scanner gave up.
    pub fn between_messages(&self) -> bool {
        matches!(self.state, State::Head) && self.pending.is_empty()
    }

    /// Consumes the next bytes read from the client.
    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            input = match self.state {
                State::GaveUp => return,
                State::Head => self.feed_head(input),
                State::FixedBody(remaining) => {
                    let take = remaining.min(input.len() as u64);
                    let left = remaining - take;
                    self.state = if left == 0 { State::Head } else { State::FixedBody(left) };
                    &input[take as usize..]
                }
                State::ChunkSize(ref mut line) => {
                    let (consumed, next) = line.feed(input);
                    if let Some(next) = next {
                        self.state = next;
                    }
                    &input[consumed..]
                }
                State::ChunkData(remaining) => {
                    let take = remaining.min(input.len() as u64);
                    let left = remaining - take;
                    self.state = if left == 0 {
                        State::ChunkDataEnd(EmptyLine::Start)
                    } else {
                        State::ChunkData(left)
                    };
                    &input[take as usize..]
                }
                State::ChunkDataEnd(line) => {
                    let byte = input[0];
                    self.state = match (line, byte) {
                        (EmptyLine::Start | EmptyLine::AfterCr, b'\n') => State::ChunkSize(ChunkSizeLine::default()),
                        (EmptyLine::Start, b'\r') => State::ChunkDataEnd(EmptyLine::AfterCr),
                        _ => State::GaveUp,
                    };
                    &input[1..]
                }
                State::Trailers(line) => match input.iter().position(|&byte| byte == b'\n') {
                    None => {
                        self.state = State::Trailers(input.iter().fold(line, |line, &byte| line.after(byte)));
                        &[]
                    }
                    Some(newline) => {
                        let line = input[..newline].iter().fold(line, |line, &byte| line.after(byte));
                        self.state = match line {
                            EmptyLine::NotEmpty => State::Trailers(EmptyLine::Start),
                            EmptyLine::Start | EmptyLine::AfterCr => State::Head,
                        };
                        &input[newline + 1..]
                    }
                },
            };
        }
    }

    fn feed_head<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        if self.pending.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112 section 2.2).
            let skip = input.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            input = &input[skip..];
            if input.is_empty() {
                return input;
            }
            // The usual case: the whole head arrived in this read. Parse it in
            // place; nothing is copied, and no buffer stays with an idle connection.
            if input.contains(&b'\n') {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(input) {
                    Ok(httparse::Status::Complete(head_len)) if head_len <= self.max_head_bytes => {
                        let (framing, next) = classify(request.headers);
                        self.log.push(framing);
                        self.state = next;
                        return &input[head_len..];
                    }
                    Ok(httparse::Status::Partial) => {}
                    _ => {
                        self.give_up();
                        return &[];
                    }
                }
            }
        }
        let before = self.pending.len();
        let take = input
            .len()
            .min(self.max_head_bytes + 1 - before.min(self.max_head_bytes));
        self.pending.extend_from_slice(&input[..take]);
        // Only a new line feed can complete a head, which keeps slow clients
        // from making every byte a full re-parse.
        if !input[..take].contains(&b'\n') {
            if self.pending.len() > self.max_head_bytes {
                self.give_up();
            }
            return &input[take..];
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&self.pending) {
            // `pending` may hold one byte more than a head may have.
            Ok(httparse::Status::Complete(head_len)) if head_len <= self.max_head_bytes => {
                let (framing, next) = classify(request.headers);
                self.log.push(framing);
                self.state = next;
                // Bytes of this read past the head belong to the body or the next request.
                let consumed_here = head_len.saturating_sub(before);
                // Released, not cleared: an idle connection should not keep a head's worth of memory.
                self.pending = Vec::new();
                &input[consumed_here.min(input.len())..]
            }
            Ok(httparse::Status::Partial) if self.pending.len() <= self.max_head_bytes => &input[take..],
            _ => {
                self.give_up();
                &[]
            }
        }
    }

    fn give_up(&mut self) {
        self.state = State::GaveUp;
        self.pending = Vec::new();
    }
}

impl ChunkSizeLine {
    /// Reads up to the line's end: the bytes consumed, and the next state
    /// once the line is over (or cannot be a chunk-size line).
    fn feed(&mut self, input: &[u8]) -> (usize, Option<State>) {
        for (at, &byte) in input.iter().enumerate() {
            if byte == b'\n' {
                let next = match (self.digits, self.size) {
                    (false, _) => State::GaveUp,
                    (true, 0) => State::Trailers(EmptyLine::Start),
                    (true, size) => State::ChunkData(size),
                };
                return (at + 1, Some(next));
            }
            if self.in_extension {
                continue;
            }
            let digit = (byte as char).to_digit(16);
            match (digit, byte) {
                (Some(digit), _) if !self.after_size => {
                    let Some(size) = self
                        .size
                        .checked_mul(16)
                        .and_then(|size| size.checked_add(u64::from(digit)))
                    else {
                        return (at + 1, Some(State::GaveUp));
                    };
                    self.size = size;
                    self.digits = true;
                }
                (_, b' ' | b'\t' | b'\r') if self.digits => self.after_size = true,
                (_, b';') if self.digits => self.in_extension = true,
                _ => return (at + 1, Some(State::GaveUp)),
            }
        }
        (input.len(), None)
    }
}

/// The verdict for a head, and how its body is framed.
fn classify(headers: &[httparse::Header<'_>]) -> (Framing, State) {
    let mut content_lengths = Vec::new();
    let mut transfer_encoding = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_lengths.push(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        }
    }
    let framing = if content_lengths.len() > 1 || (transfer_encoding && !content_lengths.is_empty()) {
        Framing::Ambiguous
    } else {
        Framing::Unambiguous
    };
    // Follow the bytes the way hyper will: Transfer-Encoding wins.
    let next = if transfer_encoding {
        State::ChunkSize(ChunkSizeLine::default())
    } else if let Some(value) = content_lengths.first() {
        match std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(0) => State::Head,
            Some(n) => State::FixedBody(n),
            None => State::GaveUp,
        }
    } else {
        State::Head
    };
    (framing, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], chunk: usize) -> Vec<Framing> {
        let log = Arc::new(FramingLog::default());
        let mut scanner = FramingScanner::new(8192, log.clone());
        for piece in stream.chunks(chunk) {
            scanner.feed(piece);
        }
        std::iter::from_fn(|| log.next()).collect()
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // poisoning it takes a raw lock
    fn a_poisoned_log_fails_closed() {
        let log = FramingLog::default();
        log.push(Framing::Unambiguous);
        let _ = std::panic::catch_unwind(|| {
            let _guard = log.verdicts.lock().unwrap();
            panic!("poison the log");
        });
        assert_eq!(log.next(), Some(Framing::Ambiguous));
    }

    fn all_chunkings(stream: &[u8]) -> Vec<Vec<Framing>> {
        [1, 2, 3, 7, 64, stream.len().max(1)]
            .iter()
            .map(|&n| verdicts(stream, n))
            .collect()
    }

    use Framing::{Ambiguous, Unambiguous};

    #[test]
    fn follows_fixed_and_chunked_bodies_across_pipelined_requests() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz\
GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        for seen in all_chunkings(stream) {
            assert_eq!(seen, vec![Unambiguous, Unambiguous, Ambiguous, Unambiguous]);
        }
    }

    #[test]
    fn content_length_with_transfer_encoding_is_ambiguous_in_either_order() {
        let te_first =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        let cl_first =
            b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        for stream in [&te_first[..], &cl_first[..]] {
            for seen in all_chunkings(stream) {
                assert_eq!(seen, vec![Ambiguous]);
            }
        }
    }

    #[test]
    fn body_bytes_that_look_like_requests_are_not_heads() {
        let smuggled = b"GET /evil HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            smuggled.len()
        )
        .into_bytes();
        stream.extend_from_slice(smuggled);
        stream.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        for seen in all_chunkings(&stream) {
            assert_eq!(seen, vec![Unambiguous, Unambiguous]);
        }
    }

    #[test]
    fn gives_up_on_oversized_heads_and_h2_preface() {
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 10_000));
        assert!(verdicts(&huge, 100).is_empty());
        assert!(verdicts(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 5).is_empty());
    }

    /// Found by fuzz/fuzz_targets/http1_framing.rs: a head one byte over
    /// the limit was refused in one read but accepted across several.
    #[test]
    fn a_head_one_byte_over_the_limit_is_refused_however_it_arrives() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for (limit, expected) in [(head.len(), vec![Unambiguous]), (head.len() - 1, vec![])] {
            for chunk in [1, 5, head.len()] {
                let log = Arc::new(FramingLog::default());
                let mut scanner = FramingScanner::new(limit, log.clone());
                head.chunks(chunk).for_each(|piece| scanner.feed(piece));
                let seen: Vec<Framing> = std::iter::from_fn(|| log.next()).collect();
                assert_eq!(seen, expected, "limit {limit}, reads of {chunk}");
            }
        }
    }

    /// Found by fuzz/fuzz_targets/http1_framing.rs: a chunk-size line longer
    /// than the head limit was followed when it came in one read and given
    /// up on when it came byte by byte. hyper puts no limit on that line
    /// (leading zeros, whitespace), so the scanner follows it whatever its
    /// length, and checks the requests after it.
    #[test]
    fn a_chunk_line_longer_than_the_head_limit_is_followed_however_it_arrives() {
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let limit = 64;
        let long = "e".repeat(limit);
        let body = format!(
            "{zeros}1 \t;name={long}\r\nx\r\n0;{long}\r\nX-Trailer: {long}\r\n\r\n",
            zeros = "0".repeat(limit)
        );
        let next = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz";
        let stream = [&head[..], body.as_bytes(), &next[..]].concat();
        for chunk in [1, 2, 7, 64, stream.len()] {
            let log = Arc::new(FramingLog::default());
            let mut scanner = FramingScanner::new(limit, log.clone());
            stream.chunks(chunk).for_each(|piece| scanner.feed(piece));
            let seen: Vec<Framing> = std::iter::from_fn(|| log.next()).collect();
            assert_eq!(seen, vec![Unambiguous, Ambiguous], "reads of {chunk}");
            assert!(scanner.between_messages(), "reads of {chunk}");
        }
    }

    #[test]
    fn a_malformed_chunk_line_stops_the_scan_however_it_arrives() {
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            &b"\r\n"[..],
            b"5 5\r\n",
            b"x\r\n",
            b"ffffffffffffffffff\r\n",
            b"1\r\nxy\r\n",
        ] {
            let stream = [&head[..], body, b"GET / HTTP/1.1\r\n\r\n"].concat();
            for chunk in [1, 3, stream.len()] {
                assert_eq!(
                    verdicts(&stream, chunk),
                    vec![Unambiguous],
                    "{body:?} in reads of {chunk}"
                );
            }
        }
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        assert_eq!(
            verdicts(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 1),
            vec![Unambiguous]
        );
    }
}
