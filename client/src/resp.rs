//! RESP on the client side: commands out and replies in, with the codec CHKV shares
//! ([`chkv_common::resp`]: bounded, resumable [`Scanner`], [`encode_command`]); this module
//! turns decoded replies into the library's [`Value`].

use std::ops::Range;

use bytes::Bytes;
pub use chkv_common::resp::{command, encode_command, ProtocolError, Scanner};
use chkv_common::resp::{decode, Aggregate, Build};

use crate::value::{ServerError, Value};

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
    decode(frame.bytes(), &mut ValueBuilder(frame))
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

/// Builds [`Value`]s, taking strings out of the frame as its [`Source`] says.
struct ValueBuilder<'s, 'a>(&'s Source<'a>);

impl Build for ValueBuilder<'_, '_> {
    type Value = Value;
    fn simple(&mut self, frame: &[u8], line: Range<usize>) -> Value {
        match &frame[line] {
            b"OK" => Value::Okay,
            s => Value::Simple(text(s)),
        }
    }
    fn error(&mut self, frame: &[u8], text: Range<usize>) -> Value {
        Value::Error(ServerError::parse(&frame[text]))
    }
    fn int(&mut self, n: i64) -> Value {
        Value::Int(n)
    }
    fn null(&mut self) -> Value {
        Value::Nil
    }
    fn null_array(&mut self) -> Value {
        Value::Nil
    }
    fn boolean(&mut self, b: bool) -> Value {
        Value::Boolean(b)
    }
    fn double(&mut self, d: f64) -> Value {
        Value::Double(d)
    }
    fn big_number(&mut self, frame: &[u8], digits: Range<usize>) -> Value {
        Value::BigNumber(text(&frame[digits]))
    }
    fn bulk(&mut self, _frame: &[u8], data: Range<usize>) -> Value {
        Value::Bulk(self.0.take(data))
    }
    fn verbatim(&mut self, frame: &[u8], format: Range<usize>, body: Range<usize>) -> Value {
        Value::Verbatim {
            format: text(&frame[format]),
            text: self.0.take(body),
        }
    }
    fn aggregate(&mut self, kind: Aggregate, items: Vec<Value>) -> Value {
        match kind {
            Aggregate::Array => Value::Array(items),
            Aggregate::Set => Value::Set(items),
            Aggregate::Push => Value::Push(items),
        }
    }
    fn map(&mut self, pairs: Vec<(Value, Value)>) -> Value {
        Value::Map(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chkv_common::resp::{encoded_len, MAX_DEPTH, MAX_LINE_LEN};
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
