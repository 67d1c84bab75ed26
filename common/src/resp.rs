//! RESP on the wire, shared by everything in CHKV that talks to a DataNode as a client: the
//! client library and a DataNode forwarding to its peers. Commands out (always arrays of bulk
//! strings), replies in (RESP2 and RESP3).
//!
//! Replies come from the network, so the decoder treats them as untrusted: it never panics,
//! never allocates from a length the peer declared before the bytes are there, bounds nesting,
//! checks its arithmetic, and rejects anything malformed with a [`ProtocolError`] (after which
//! the connection is closed, because framing is lost).
//!
//! Decoding is two passes: a [`Scanner`] finds where the next complete reply ends without
//! allocating, and [`decode`] walks that complete slice, handing each element to a [`Build`]
//! that makes the caller's own value (the client library's `Value`, the DataNode's `Frame`).
//! The scanner is resumable: when a large reply arrives in many reads it continues where it
//! stopped instead of rescanning from the start, so a reply of n bytes costs O(n). A relay
//! that passes replies through as bytes only ever scans.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Deepest nesting of aggregates accepted (CHKV's deepest reply, CLUSTER SHARDS, has 4).
pub const MAX_DEPTH: usize = 32;
/// Largest bulk string accepted, as Redis's default `proto-max-bulk-len`.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Longest header or simple line (`+`, `-`, `:` ...) accepted.
pub const MAX_LINE_LEN: usize = 1024 * 1024;

/// The peer sent bytes that are not RESP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protocol error: {0}")]
pub struct ProtocolError(pub String);

fn bad(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Error replies
// ---------------------------------------------------------------------------------------------

/// What an error reply means to whoever routes and retries requests: the client library's
/// retry loop and a DataNode relaying a forwarded request classify errors here, and each
/// decides what to do with one `match` on the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `MOVED slot addr`: the slot lives at `addr` now.
    Moved { slot: u16, addr: SocketAddr },
    /// `ASK slot addr`: ask `addr` for this one request (prefixed with `ASKING`).
    Ask { slot: u16, addr: SocketAddr },
    /// `TRYAGAIN`: the slot is moving, or the node cannot serve it this moment.
    TryAgain,
    /// `CLUSTERDOWN`: no node serves the slot right now.
    ClusterDown,
    /// `LOADING` or `MASTERDOWN`: the node is not ready.
    Loading,
    /// `CROSSSLOT`: keys of one command in different slots; the caller's to fix.
    CrossSlot,
    /// `NOSCRIPT`: the node does not have the script an EVALSHA names.
    NoScript,
    /// Anything else (`ERR`, `WRONGTYPE`, ...), and a redirect whose slot or address does
    /// not parse (or whose slot is out of range): an answer, not an instruction.
    Other,
}

impl ErrorKind {
    /// The kind of an error from its code (the first word) and the text after it.
    pub fn of(code: &[u8], message: &[u8]) -> ErrorKind {
        let redirect = || -> Option<(u16, SocketAddr)> {
            let mut words = std::str::from_utf8(message).ok()?.split_ascii_whitespace();
            let slot: u16 = words.next()?.parse().ok()?;
            let addr = words.next()?.parse().ok()?;
            (usize::from(slot) < crate::slot::SLOT_COUNT).then_some((slot, addr))
        };
        match code {
            b"MOVED" => redirect().map_or(ErrorKind::Other, |(slot, addr)| ErrorKind::Moved {
                slot,
                addr,
            }),
            b"ASK" => redirect().map_or(ErrorKind::Other, |(slot, addr)| ErrorKind::Ask {
                slot,
                addr,
            }),
            b"TRYAGAIN" => ErrorKind::TryAgain,
            b"CLUSTERDOWN" => ErrorKind::ClusterDown,
            b"LOADING" | b"MASTERDOWN" => ErrorKind::Loading,
            b"CROSSSLOT" => ErrorKind::CrossSlot,
            b"NOSCRIPT" => ErrorKind::NoScript,
            _ => ErrorKind::Other,
        }
    }

    /// The kind of an error line: its text without the leading `-` and the CRLF.
    pub fn of_line(line: &[u8]) -> ErrorKind {
        let line = line.trim_ascii_end();
        match line.iter().position(|&b| b == b' ') {
            Some(i) => ErrorKind::of(&line[..i], &line[i + 1..]),
            None => ErrorKind::of(line, b""),
        }
    }

    /// The kind of a raw reply as it came off the wire; `None` when it is not a simple error
    /// (redirects and every error CHKV classifies are simple errors).
    pub fn of_reply(reply: &[u8]) -> Option<ErrorKind> {
        reply.strip_prefix(b"-").map(ErrorKind::of_line)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Appends `n` in decimal.
fn put_decimal(out: &mut BytesMut, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// Bytes [`encode_command`] will write for `args`.
pub fn encoded_len<A: AsRef<[u8]>>(args: &[A]) -> usize {
    // "*N\r\n" plus "$len\r\n...\r\n" per argument, with room for the decimal lengths.
    16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>()
}

/// Appends one command, an array of bulk strings (the only request form servers must accept).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.reserve(encoded_len(args));
    encode_args(args.iter().map(AsRef::as_ref), out);
}

/// Appends the command made of `args` (the DataNode's requests, whose arguments are slices
/// of one buffer, use it directly); room is the caller's to reserve.
pub fn encode_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>, out: &mut BytesMut) {
    out.put_u8(b'*');
    put_decimal(out, args.len());
    out.put_slice(b"\r\n");
    for arg in args {
        out.put_u8(b'$');
        put_decimal(out, arg.len());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

/// One command, encoded.
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_len(args));
    encode_command(args, &mut out);
    out.freeze()
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// Finds where complete replies end in a growing buffer, resuming across calls.
///
/// Between calls the buffer may only grow at the end; after a complete reply is reported, the
/// caller removes exactly that many bytes from the front and the scanner starts afresh.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Offset of the next element header to read.
    pos: usize,
    /// Elements still expected by each open aggregate, innermost last.
    stack: [u64; MAX_DEPTH],
    depth: usize,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The length of the first complete reply in `buf`, `None` while more bytes are needed.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let Some(line_end) = find_crlf(buf, self.pos)? else {
                return Ok(None);
            };
            let kind = buf[self.pos];
            let line = &buf[self.pos + 1..line_end];
            let next = line_end + 2;
            match kind {
                // Simple elements: the line is the whole element.
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                    if kind == b':' {
                        parse_int(line)?;
                    }
                    self.pos = next;
                }
                // Blobs: a length line, then that many bytes and CRLF.
                b'$' | b'!' | b'=' => {
                    let len = parse_int(line)?;
                    if len == -1 && kind == b'$' {
                        self.pos = next;
                    } else {
                        let len = blob_len(len)?;
                        let end = next + len + 2;
                        if buf.len() < end {
                            // Leave `pos` on the header: rereading one line is cheap.
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(bad("bulk string not terminated by CRLF"));
                        }
                        self.pos = end;
                    }
                }
                // Aggregates: a count line, then that many elements (maps and attributes
                // count keys and values; an attribute also precedes the value it annotates).
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_int(line)?;
                    self.pos = next;
                    if n == -1 && kind == b'*' {
                        // RESP2 null array: a complete element.
                    } else if n < 0 {
                        return Err(bad(format!("invalid aggregate length {n}")));
                    } else {
                        let n = n as u64;
                        let count = match kind {
                            b'%' => n.saturating_mul(2),
                            b'|' => n.saturating_mul(2).saturating_add(1),
                            _ => n,
                        };
                        if count > 0 {
                            if self.depth == MAX_DEPTH {
                                return Err(bad("reply nested too deeply"));
                            }
                            self.stack[self.depth] = count;
                            self.depth += 1;
                            continue;
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unexpected reply type byte {:?}",
                        char::from(other)
                    )))
                }
            }
            // One element is complete: close every aggregate it completes.
            loop {
                if self.depth == 0 {
                    let len = self.pos;
                    *self = Scanner::default();
                    return Ok(Some(len));
                }
                let left = &mut self.stack[self.depth - 1];
                *left -= 1;
                if *left > 0 {
                    break;
                }
                self.depth -= 1;
            }
        }
    }
}

/// The index of the `\r` ending the line that starts at `start`, or `None` when the line is
/// not complete yet.
pub fn find_crlf(buf: &[u8], start: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(rest) = buf.get(start..) else {
        return Ok(None);
    };
    match rest.iter().position(|&b| b == b'\n') {
        // At least the type byte before the CRLF, so the line is never empty.
        Some(nl) if nl >= 2 && rest[nl - 1] == b'\r' => {
            if nl - 1 > MAX_LINE_LEN {
                return Err(bad("reply line too long"));
            }
            Ok(Some(start + nl - 1))
        }
        Some(_) => Err(bad("empty line or line not terminated by CRLF")),
        None if rest.len() > MAX_LINE_LEN + 2 => Err(bad("reply line too long")),
        None => Ok(None),
    }
}

/// A strict decimal `i64`: optional `-`, at least one digit, nothing else, no overflow.
pub fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    let (neg, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(bad(format!(
            "invalid integer {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad(format!(
                "invalid integer {:?}",
                String::from_utf8_lossy(line)
            )));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_sub(i64::from(d - b'0')))
            .ok_or_else(|| bad("integer out of range"))?;
    }
    // Accumulated as a negative number so i64::MIN parses; flip for positives.
    if neg {
        Ok(n)
    } else {
        n.checked_neg().ok_or_else(|| bad("integer out of range"))
    }
}

pub fn blob_len(len: i64) -> Result<usize, ProtocolError> {
    match usize::try_from(len) {
        Ok(len) if len <= MAX_BULK_LEN => Ok(len),
        _ => Err(bad(format!("invalid bulk length {len}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// The kinds of aggregate a reply can be, besides maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// `*`
    Array,
    /// `~` (RESP3)
    Set,
    /// `>` (RESP3)
    Push,
}

/// Makes the caller's value out of one reply's elements, as [`decode`] meets them. Strings
/// are given as ranges of the frame, so a builder may copy them or share the frame's memory.
pub trait Build {
    type Value;
    /// `+line`
    fn simple(&mut self, frame: &[u8], line: Range<usize>) -> Self::Value;
    /// `-line` or a `!` blob error: the text, starting with its code.
    fn error(&mut self, frame: &[u8], text: Range<usize>) -> Self::Value;
    /// `:n`
    fn int(&mut self, n: i64) -> Self::Value;
    /// `$-1` (RESP2's null bulk) or `_` (RESP3's null).
    fn null(&mut self) -> Self::Value;
    /// `*-1`: RESP2's null array.
    fn null_array(&mut self) -> Self::Value;
    /// `#t` or `#f`
    fn boolean(&mut self, b: bool) -> Self::Value;
    /// `,d`
    fn double(&mut self, d: f64) -> Self::Value;
    /// `(digits`: checked to be an optional `-` and decimal digits.
    fn big_number(&mut self, frame: &[u8], digits: Range<usize>) -> Self::Value;
    /// `$n` with its bytes.
    fn bulk(&mut self, frame: &[u8], data: Range<usize>) -> Self::Value;
    /// `=n` with its bytes: a 3-byte format, then the text.
    fn verbatim(&mut self, frame: &[u8], format: Range<usize>, text: Range<usize>) -> Self::Value;
    /// An aggregate of already built elements.
    fn aggregate(&mut self, kind: Aggregate, items: Vec<Self::Value>) -> Self::Value;
    /// `%n`: key-value pairs.
    fn map(&mut self, pairs: Vec<(Self::Value, Self::Value)>) -> Self::Value;
}

/// Decodes one complete reply, as delimited by [`Scanner::scan`] (the whole of `frame`).
pub fn decode<B: Build>(frame: &[u8], b: &mut B) -> Result<B::Value, ProtocolError> {
    let mut pos = 0;
    let value = decode_at(frame, &mut pos, 0, b)?;
    if pos != frame.len() {
        return Err(bad("trailing bytes after reply"));
    }
    Ok(value)
}

/// Scans and decodes the first reply in `buf`: `Ok(None)` when it is incomplete. For one-off
/// decoding; connections keep a [`Scanner`] instead.
pub fn decode_first<B: Build>(
    buf: &[u8],
    b: &mut B,
) -> Result<Option<(B::Value, usize)>, ProtocolError> {
    match Scanner::new().scan(buf)? {
        None => Ok(None),
        Some(len) => Ok(Some((decode(&buf[..len], b)?, len))),
    }
}

fn decode_at<B: Build>(
    frame: &[u8],
    pos: &mut usize,
    depth: usize,
    b: &mut B,
) -> Result<B::Value, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(bad("reply nested too deeply"));
    }
    let start = *pos;
    let line_end = find_crlf(frame, start)?.ok_or_else(|| bad("truncated reply"))?;
    let kind = frame[start];
    let line = start + 1..line_end;
    *pos = line_end + 2;
    Ok(match kind {
        b'+' => b.simple(frame, line),
        b'-' => b.error(frame, line),
        b':' => b.int(parse_int(&frame[line])?),
        b'_' => b.null(),
        b'#' => match &frame[line] {
            b"t" => b.boolean(true),
            b"f" => b.boolean(false),
            _ => return Err(bad("invalid boolean")),
        },
        b',' => b.double(parse_double(&frame[line])?),
        b'(' => {
            let s = &frame[line.clone()];
            let digits = s.strip_prefix(b"-").unwrap_or(s);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad("invalid big number"));
            }
            b.big_number(frame, line)
        }
        b'$' | b'!' | b'=' => {
            let len = parse_int(&frame[line])?;
            if len == -1 && kind == b'$' {
                return Ok(b.null());
            }
            let len = blob_len(len)?;
            let body_start = *pos;
            let body_end = body_start
                .checked_add(len)
                .ok_or_else(|| bad("truncated bulk string"))?;
            if frame.get(body_end..body_end.saturating_add(2)) != Some(b"\r\n") {
                return Err(bad("truncated bulk string"));
            }
            *pos = body_end + 2;
            match kind {
                b'$' => b.bulk(frame, body_start..body_end),
                b'!' => b.error(frame, body_start..body_end),
                _ => {
                    // Verbatim: three bytes of format, ':', the text.
                    if len < 4 || frame[body_start + 3] != b':' {
                        return Err(bad("invalid verbatim string"));
                    }
                    b.verbatim(frame, body_start..body_start + 3, body_start + 4..body_end)
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(&frame[line])?;
            if n == -1 && kind == b'*' {
                return Ok(b.null_array());
            }
            let n = usize::try_from(n).map_err(|_| bad("invalid aggregate length"))?;
            // Every element takes at least 3 bytes, so a count larger than what is left is a
            // lie: refuse it rather than reserve for it.
            let left = frame.len().saturating_sub(*pos);
            let per = if matches!(kind, b'%' | b'|') { 6 } else { 3 };
            if n > left / per {
                return Err(bad("aggregate longer than the reply"));
            }
            match kind {
                b'%' | b'|' => {
                    let mut pairs = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = decode_at(frame, pos, depth + 1, b)?;
                        let v = decode_at(frame, pos, depth + 1, b)?;
                        pairs.push((k, v));
                    }
                    if kind == b'|' {
                        // Attributes annotate the next value; CHKV sends none, and callers
                        // only want the value.
                        return decode_at(frame, pos, depth + 1, b);
                    }
                    b.map(pairs)
                }
                _ => {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(decode_at(frame, pos, depth + 1, b)?);
                    }
                    let kind = match kind {
                        b'~' => Aggregate::Set,
                        b'>' => Aggregate::Push,
                        _ => Aggregate::Array,
                    };
                    b.aggregate(kind, items)
                }
            }
        }
        other => {
            return Err(bad(format!(
                "unexpected reply type byte {:?}",
                char::from(other)
            )))
        }
    })
}

pub fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
    let s = std::str::from_utf8(line).map_err(|_| bad("invalid double"))?;
    match s {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => Ok(f64::NAN),
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            Err(bad("invalid double"))
        }
        _ => s.parse().map_err(|_| bad("invalid double")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        let addr: SocketAddr = "127.0.0.1:6381".parse().unwrap();
        assert_eq!(
            ErrorKind::of_reply(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(ErrorKind::Moved { slot: 3999, addr })
        );
        assert_eq!(
            ErrorKind::of_line(b"ASK 16383 127.0.0.1:6381"),
            ErrorKind::Ask { slot: 16383, addr }
        );
        assert_eq!(ErrorKind::of_line(b"TRYAGAIN x y"), ErrorKind::TryAgain);
        assert_eq!(ErrorKind::of_line(b"CLUSTERDOWN"), ErrorKind::ClusterDown);
        assert_eq!(ErrorKind::of_line(b"MASTERDOWN x"), ErrorKind::Loading);
        assert_eq!(ErrorKind::of_line(b"CROSSSLOT x"), ErrorKind::CrossSlot);
        assert_eq!(
            ErrorKind::of_reply(b"-NOSCRIPT No matching script.\r\n"),
            Some(ErrorKind::NoScript)
        );
        assert_eq!(ErrorKind::of_line(b"ERR moved"), ErrorKind::Other);
        assert_eq!(ErrorKind::of_reply(b"+MOVED 1 127.0.0.1:1\r\n"), None);
        assert_eq!(ErrorKind::of_reply(b"$5\r\nMOVED\r\n"), None);
    }

    /// A redirect from the network that does not parse, or names a slot out of range, is an
    /// answer, never an instruction (a slot of 16384 or more would index past the map).
    #[test]
    fn malformed_redirects_are_other() {
        for line in [
            &b"MOVED 16384 127.0.0.1:6381"[..],
            b"MOVED 65535 127.0.0.1:6381",
            b"MOVED 99999999 127.0.0.1:6381",
            b"MOVED -1 127.0.0.1:6381",
            b"MOVED nonsense",
            b"MOVED 12",
            b"MOVED 12 nowhere",
            b"ASK 1 \xff\xfe",
            b"MOVED",
        ] {
            assert_eq!(ErrorKind::of_line(line), ErrorKind::Other, "{line:?}");
        }
    }
}
