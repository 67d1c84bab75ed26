//! RESP on the client side: commands out (always arrays of bulk strings), replies in (RESP2
//! and RESP3).
//!
//! Replies come from the network, so the decoder treats them as untrusted: it never panics,
//! never allocates from a length the peer declared before the bytes are there, bounds nesting,
//! and rejects anything malformed with a [`ProtocolError`] (after which the connection is
//! closed, because framing is lost).
//!
//! Decoding is two passes, as in mini-redis's `check`/`parse`: a [`Scanner`] finds where the
//! next complete reply ends without allocating, and [`parse`] turns that complete slice into a
//! [`Value`]. The scanner is resumable: when a large reply arrives in many reads it continues
//! where it stopped instead of rescanning from the start, so a reply of n bytes costs O(n).

use bytes::{BufMut, Bytes, BytesMut};

use crate::value::{ServerError, Value};

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
    out.put_u8(b'*');
    put_decimal(out, args.len());
    out.put_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
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
fn find_crlf(buf: &[u8], start: usize) -> Result<Option<usize>, ProtocolError> {
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
fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
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

fn blob_len(len: i64) -> Result<usize, ProtocolError> {
    match usize::try_from(len) {
        Ok(len) if len <= MAX_BULK_LEN => Ok(len),
        _ => Err(bad(format!("invalid bulk length {len}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A complete reply, and how its bulk strings are taken out of it.
enum Source<'a> {
    /// Copied: for small replies, cheaper than sharing (no reference count that the reader
    /// and the callers' threads would both write).
    Copy(&'a [u8]),
    /// Shared with the frame: for large replies, no copy.
    Share(&'a Bytes),
}

impl Source<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Copy(b) => b,
            Source::Share(b) => b,
        }
    }

    fn take(&self, range: std::ops::Range<usize>) -> Bytes {
        match self {
            Source::Copy(b) => Bytes::copy_from_slice(&b[range]),
            Source::Share(b) => b.slice(range),
        }
    }
}

/// Parses one complete reply, as delimited by [`Scanner::scan`], copying its strings.
pub fn parse(frame: &[u8]) -> Result<Value, ProtocolError> {
    parse_source(&Source::Copy(frame))
}

/// Parses one complete reply; bulk strings share `frame`'s memory instead of being copied.
pub fn parse_shared(frame: &Bytes) -> Result<Value, ProtocolError> {
    parse_source(&Source::Share(frame))
}

fn parse_source(frame: &Source<'_>) -> Result<Value, ProtocolError> {
    let mut pos = 0;
    let value = parse_at(frame, &mut pos, 0)?;
    if pos != frame.bytes().len() {
        return Err(bad("trailing bytes after reply"));
    }
    Ok(value)
}

/// Scans and parses the first reply in `buf`: `Ok(None)` when it is incomplete. For tests and
/// one-off decoding; connections keep a [`Scanner`] instead.
#[cfg(test)]
pub fn parse_one(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    match Scanner::new().scan(buf)? {
        None => Ok(None),
        Some(len) => {
            // Both ways of taking strings out must agree.
            let copied = parse(&buf[..len])?;
            let shared = parse_shared(&Bytes::copy_from_slice(&buf[..len]))?;
            debug_assert_eq!(format!("{copied:?}"), format!("{shared:?}"));
            Ok(Some((copied, len)))
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_at(source: &Source<'_>, pos: &mut usize, depth: usize) -> Result<Value, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(bad("reply nested too deeply"));
    }
    let frame = source.bytes();
    let start = *pos;
    let line_end = find_crlf(frame, start)?.ok_or_else(|| bad("truncated reply"))?;
    let kind = frame[start];
    let line = &frame[start + 1..line_end];
    *pos = line_end + 2;
    Ok(match kind {
        b'+' if line == b"OK" => Value::Okay,
        b'+' => Value::Simple(text(line)),
        b'-' => Value::Error(ServerError::parse(line)),
        b':' => Value::Int(parse_int(line)?),
        b'_' => Value::Nil,
        b'#' => match line {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => return Err(bad("invalid boolean")),
        },
        b',' => Value::Double(parse_double(line)?),
        b'(' => {
            let s = text(line);
            let digits = s.strip_prefix('-').unwrap_or(&s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("invalid big number"));
            }
            Value::BigNumber(s)
        }
        b'$' | b'!' | b'=' => {
            let len = parse_int(line)?;
            if len == -1 && kind == b'$' {
                return Ok(Value::Nil);
            }
            let len = blob_len(len)?;
            let body_start = *pos;
            let body_end = body_start + len;
            if frame.get(body_end..body_end + 2) != Some(b"\r\n") {
                return Err(bad("truncated bulk string"));
            }
            *pos = body_end + 2;
            let body = &frame[body_start..body_end];
            match kind {
                b'$' => Value::Bulk(source.take(body_start..body_end)),
                b'!' => Value::Error(ServerError::parse(body)),
                _ => {
                    // Verbatim: three bytes of format, ':', the text.
                    if body.len() < 4 || body[3] != b':' {
                        return Err(bad("invalid verbatim string"));
                    }
                    Value::Verbatim {
                        format: text(&body[..3]),
                        text: source.take(body_start + 4..body_end),
                    }
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(line)?;
            if n == -1 && kind == b'*' {
                return Ok(Value::Nil);
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
                        let k = parse_at(source, pos, depth + 1)?;
                        let v = parse_at(source, pos, depth + 1)?;
                        pairs.push((k, v));
                    }
                    if kind == b'|' {
                        // Attributes annotate the next value; CHKV sends none, and callers
                        // only want the value.
                        return parse_at(source, pos, depth + 1);
                    }
                    Value::Map(pairs)
                }
                _ => {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(parse_at(source, pos, depth + 1)?);
                    }
                    match kind {
                        b'~' => Value::Set(items),
                        b'>' => Value::Push(items),
                        _ => Value::Array(items),
                    }
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

fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
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
    use proptest::prelude::*;

    fn one(buf: &[u8]) -> Value {
        let (v, len) = parse_one(buf).expect("valid").expect("complete");
        assert_eq!(len, buf.len(), "whole buffer is one reply");
        v
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(
            &command(&["SET", "k", ""])[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
        let big = vec![b'x'; 1234];
        let enc = command(&[&b"GET"[..], &big]);
        assert!(enc.starts_with(b"*2\r\n$3\r\nGET\r\n$1234\r\n"));
        assert!(enc.len() <= encoded_len(&[&b"GET"[..], &big]));
    }

    #[test]
    fn resp2_replies() {
        assert_eq!(one(b"+OK\r\n"), Value::Okay);
        assert_eq!(one(b"+PONG\r\n"), Value::Simple("PONG".into()));
        assert_eq!(one(b":-42\r\n"), Value::Int(-42));
        assert_eq!(one(b"$-1\r\n"), Value::Nil);
        assert_eq!(one(b"*-1\r\n"), Value::Nil);
        assert_eq!(one(b"$0\r\n\r\n"), bulk(""));
        assert_eq!(one(b"$5\r\na\r\nb!\r\n"), bulk("a\r\nb!"));
        assert_eq!(
            one(b"*3\r\n$1\r\na\r\n$-1\r\n*1\r\n:1\r\n"),
            Value::Array(vec![
                bulk("a"),
                Value::Nil,
                Value::Array(vec![Value::Int(1)])
            ])
        );
        assert_eq!(one(b"*0\r\n"), Value::Array(vec![]));
        match one(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n") {
            Value::Error(e) => {
                assert_eq!(e.code(), "WRONGTYPE");
                assert_eq!(
                    e.to_string(),
                    "WRONGTYPE Operation against a key holding the wrong kind of value"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(one(b":-9223372036854775808\r\n"), Value::Int(i64::MIN));
    }

    #[test]
    fn resp3_replies() {
        assert_eq!(one(b"_\r\n"), Value::Nil);
        assert_eq!(one(b"#t\r\n"), Value::Boolean(true));
        assert_eq!(one(b",1.5\r\n"), Value::Double(1.5));
        assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert_eq!(
            one(b"(123456789012345678901234567890\r\n"),
            Value::BigNumber("123456789012345678901234567890".into())
        );
        assert_eq!(
            one(b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"),
            Value::Map(vec![
                (Value::Simple("a".into()), Value::Int(1)),
                (Value::Simple("b".into()), Value::Nil)
            ])
        );
        assert_eq!(one(b"~1\r\n:7\r\n"), Value::Set(vec![Value::Int(7)]));
        assert_eq!(
            one(b"=8\r\ntxt:hey!\r\n"),
            Value::Verbatim {
                format: "txt".into(),
                text: Bytes::from_static(b"hey!")
            }
        );
        // An attribute is dropped, the value it annotates kept.
        assert_eq!(one(b"|1\r\n+ttl\r\n:3\r\n:10\r\n"), Value::Int(10));
        assert_eq!(
            one(b">2\r\n+message\r\n$1\r\nx\r\n"),
            Value::Push(vec![Value::Simple("message".into()), bulk("x")])
        );
        match one(b"!9\r\nERR nope!\r\n") {
            Value::Error(e) => assert_eq!(e.to_string(), "ERR nope!"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_until_the_last_byte() {
        let full: &[u8] = b"*2\r\n$5\r\nhello\r\n%1\r\n+k\r\n*1\r\n:1\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse_one(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_one(full).expect("valid").is_some());
    }

    #[test]
    fn scanner_resumes_and_splits_pipelined_replies() {
        let stream: &[u8] = b"+OK\r\n*3\r\n:1\r\n$3\r\nabc\r\n*0\r\n$-1\r\n";
        // Feed byte by byte into a growing buffer, removing replies as they complete.
        let mut scanner = Scanner::new();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for &b in stream {
            buf.push(b);
            while let Some(len) = scanner.scan(&buf).expect("valid") {
                got.push(parse(&buf[..len]).expect("parses"));
                buf.drain(..len);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(
            got,
            vec![
                Value::Okay,
                Value::Array(vec![Value::Int(1), bulk("abc"), Value::Array(vec![])]),
                Value::Nil
            ]
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        let bad_inputs: &[&[u8]] = &[
            b"?\r\n",
            b"+OK\n",
            b":12a\r\n",
            b":\r\n",
            b":99999999999999999999\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"$600000000\r\n",
            b"*-2\r\n",
            b"%-1\r\n",
            b"#x\r\n",
            b",1.5x\r\n",
            b"=2\r\nab\r\n",
            b"(12a\r\n",
        ];
        for input in bad_inputs {
            assert!(
                parse_one(input).is_err(),
                "{:?} must be rejected",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn declared_lengths_allocate_nothing() {
        // A huge declared count with no elements behind it: incomplete, nothing reserved.
        assert_eq!(parse_one(b"*4000000000\r\n:1\r\n"), Ok(None));
        assert_eq!(parse_one(b"$536870912\r\nabc"), Ok(None));
        // Deep nesting is refused, not recursed into.
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse_one(deep.as_bytes()).is_err());
        let ok = format!("{}:1\r\n", "*1\r\n".repeat(MAX_DEPTH));
        assert!(parse_one(ok.as_bytes()).expect("valid").is_some());
    }

    #[test]
    fn long_lines_are_refused() {
        let mut line = vec![b'+'];
        line.extend(std::iter::repeat_n(b'a', MAX_LINE_LEN + 10));
        assert!(parse_one(&line).is_err());
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bulk(b.into())),
            "[a-zA-Z0-9 ]{0,20}".prop_map(|s| if s == "OK" {
                Value::Okay
            } else {
                Value::Simple(s)
            }),
            any::<bool>().prop_map(Value::Boolean),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Set),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    /// A RESP3 encoder for the tests' round trips.
    fn encode(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Nil => out.extend_from_slice(b"_\r\n"),
            Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::Okay => out.extend_from_slice(b"+OK\r\n"),
            Value::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Value::Array(items) | Value::Set(items) => {
                let tag = if matches!(v, Value::Set(_)) { '~' } else { '*' };
                out.extend_from_slice(format!("{tag}{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|i| encode(i, out));
            }
            Value::Map(pairs) => {
                out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    encode(k, out);
                    encode(v, out);
                }
            }
            other => panic!("not generated: {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn round_trips(v in arb_value()) {
            let mut buf = Vec::new();
            encode(&v, &mut buf);
            let (back, len) = parse_one(&buf).expect("valid").expect("complete");
            prop_assert_eq!(len, buf.len());
            prop_assert_eq!(back, v);
        }

        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_one(&input);
        }

        #[test]
        fn corrupted_replies_never_panic(v in arb_value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut buf = Vec::new();
            encode(&v, &mut buf);
            let i = at.index(buf.len());
            buf[i] = byte;
            let _ = parse_one(&buf);
            let _ = parse_one(&buf[..i]);
        }
    }
}
