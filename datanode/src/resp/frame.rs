//! Replies and their encoding.
//!
//! Commands return a [`Frame`]; the connection encodes it for the protocol the client chose
//! with `HELLO` (RESP2 by default). RESP3-only types degrade the way Redis degrades them for
//! RESP2 clients: maps and sets become flat arrays, doubles become bulk strings, booleans
//! become integers, and both nulls keep their RESP2 shapes (`$-1`, `*-1`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(Cow<'static, str>),
    /// An error; the text starts with its code (`ERR ...`, `WRONGTYPE ...`).
    Error(Cow<'static, str>),
    Integer(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2.
    Null,
    /// A missing aggregate: `*-1` in RESP2.
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    /// Verbatim text (`=` in RESP3), e.g. INFO and CLIENT LIST; the format is `txt`.
    Verbatim(Bytes),
    Push(Vec<Frame>),
    /// An aggregate of the given [`Shape`] whose `count` elements are already encoded in
    /// `body` as bulk strings, which read the same in RESP2 and RESP3: what a command that
    /// reads many elements writes straight from the store (LRANGE, SMEMBERS, HGETALL) with an
    /// [`Elements`], no frame, allocation or copy per element. Whoever looks inside a reply (a
    /// script, a test) sees it [`decoded`](Frame::decoded).
    Encoded {
        shape: Shape,
        count: usize,
        /// Room for the header (`HEADROOM` bytes, ignored), then the elements.
        body: Bytes,
    },
}

/// What a [`Frame::Encoded`] is in RESP3; in RESP2 each is a flat array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Array,
    Set,
    /// Field-value pairs, elements taken two by two (`count` is twice the pairs).
    Map,
}

/// Bytes an [`Elements`] keeps free in front of the elements, for the aggregate's header
/// (`*`, up to 20 digits, CRLF): a reply that is all a connection writes becomes the
/// connection's output buffer without a copy (see [`Frame::encode_alone`]).
const HEADROOM: usize = 24;

/// Builds a [`Frame::Encoded`]: bulk strings appended one by one.
pub struct Elements {
    /// [`HEADROOM`] bytes, then the elements.
    body: BytesMut,
    count: usize,
}

impl Elements {
    /// Room for about `n` elements of `each` bytes.
    pub fn with_capacity(n: usize, each: usize) -> Elements {
        let room = n.saturating_mul(each.saturating_add(8));
        let mut body = BytesMut::with_capacity(room.saturating_add(HEADROOM));
        body.put_bytes(0, HEADROOM);
        Elements { body, count: 0 }
    }

    pub fn bulk(&mut self, data: &[u8]) {
        bulk(&mut self.body, b'$', data);
        self.count += 1;
    }

    /// An integer element, as a bulk string of its digits (an intset's or listpack's member).
    pub fn int(&mut self, i: i64) {
        self.bulk(itoa::Buffer::new().format(i).as_bytes());
    }

    /// The reply, of this shape in RESP3 (a [`Shape::Map`] must have had an even number of
    /// elements appended: field, value, field, value...).
    pub fn finish(self, shape: Shape) -> Frame {
        debug_assert!(shape != Shape::Map || self.count.is_multiple_of(2));
        Frame::Encoded {
            shape,
            count: self.count,
            body: self.body.freeze(),
        }
    }
}

impl Frame {
    pub const fn ok() -> Frame {
        Frame::Simple(Cow::Borrowed("OK"))
    }

    pub const fn simple(s: &'static str) -> Frame {
        Frame::Simple(Cow::Borrowed(s))
    }

    pub fn simple_owned(s: &str) -> Frame {
        Frame::Simple(Cow::Owned(s.to_string()))
    }

    pub const fn err(s: &'static str) -> Frame {
        Frame::Error(Cow::Borrowed(s))
    }

    pub fn error(s: String) -> Frame {
        Frame::Error(Cow::Owned(s))
    }

    pub fn bulk(b: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    pub fn bulk_static(b: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(b.as_bytes()))
    }

    /// This reply with a [`Frame::Encoded`] decoded into frames, as a client speaking
    /// `proto` would read it (other frames as they are).
    pub fn decoded(self, proto: Protocol) -> Frame {
        let Frame::Encoded { shape, count, body } = self else {
            return self;
        };
        let mut whole = BytesMut::with_capacity(body.len());
        header(&mut whole, b'*', count);
        whole.extend_from_slice(&body[HEADROOM..]);
        match super::reply::parse_reply(&whole) {
            Ok(Some((Frame::Array(items), n))) if n == whole.len() => match (shape, proto) {
                (Shape::Set, Protocol::Resp3) => Frame::Set(items),
                (Shape::Map, Protocol::Resp3) if items.len().is_multiple_of(2) => {
                    let mut it = items.into_iter();
                    let mut pairs = Vec::with_capacity(count / 2);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
                (Shape::Map, Protocol::Resp3) => {
                    Frame::err("ERR internal error: a malformed pre-encoded reply")
                }
                _ => Frame::Array(items),
            },
            _ => Frame::err("ERR internal error: a malformed pre-encoded reply"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Encodes this reply for `proto` into `out` as [`encode`](Self::encode) does, except
    /// that a pre-encoded aggregate ([`Frame::Encoded`]) given an empty `out` becomes `out`:
    /// its header goes into the room kept in front of its elements, and the elements are
    /// not copied (LRANGE's 600 elements at pipeline 1: 23 KB a reply).
    pub fn encode_alone(self, proto: Protocol, out: &mut BytesMut) {
        let Frame::Encoded { shape, count, body } = self else {
            return self.encode(proto, out);
        };
        if !out.is_empty() {
            return Frame::Encoded { shape, count, body }.encode(proto, out);
        }
        match body.try_into_mut() {
            Ok(mut b) => {
                let (prefix, n) = aggregate_header(shape, count, proto == Protocol::Resp3);
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(n).as_bytes();
                let start = HEADROOM - digits.len() - 3;
                b[start] = prefix;
                b[start + 1..HEADROOM - 2].copy_from_slice(digits);
                b[HEADROOM - 2..HEADROOM].copy_from_slice(b"\r\n");
                b.advance(start);
                *out = b;
            }
            Err(body) => Frame::Encoded { shape, count, body }.encode(proto, out),
        }
    }

    /// Encodes this reply for `proto` at the end of `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            Frame::Error(s) => line(out, b'-', s.as_bytes()),
            Frame::Integer(i) => {
                let mut b = itoa::Buffer::new();
                line(out, b':', b.format(*i).as_bytes());
            }
            Frame::Bulk(b) => bulk(out, b'$', b),
            Frame::Encoded { shape, count, body } => {
                let (prefix, n) = aggregate_header(*shape, *count, resp3);
                header(out, prefix, n);
                out.extend_from_slice(&body[HEADROOM..]);
            }
            Frame::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Push(items) => {
                header(out, if resp3 { b'>' } else { b'*' }, items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                // Integral scores, the common case, are printed without an allocation.
                let mut digits = itoa::Buffer::new();
                let owned;
                let s = match exact_integer(*d) {
                    Some(i) => digits.format(i),
                    None => {
                        owned = format_double(*d);
                        owned.as_str()
                    }
                };
                if resp3 {
                    line(out, b',', s.as_bytes());
                } else {
                    bulk(out, b'$', s.as_bytes());
                }
            }
            Frame::Boolean(b) => {
                if resp3 {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Frame::Verbatim(text) => {
                if resp3 {
                    header(out, b'=', text.len() + 4);
                    out.extend_from_slice(b"txt:");
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, b'$', text);
                }
            }
        }
    }
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(prefix);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// The type byte and element count of a [`Frame::Encoded`]'s header in RESP3 (`resp3`)
/// or RESP2.
fn aggregate_header(shape: Shape, count: usize, resp3: bool) -> (u8, usize) {
    match (shape, resp3) {
        (Shape::Set, true) => (b'~', count),
        (Shape::Map, true) => (b'%', count / 2),
        _ => (b'*', count),
    }
}

fn header(out: &mut BytesMut, prefix: u8, n: usize) {
    let mut b = itoa::Buffer::new();
    line(out, prefix, b.format(n).as_bytes());
}

fn bulk(out: &mut BytesMut, prefix: u8, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, prefix, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double the way redis-server 7.0 replies with one (`addReplyDouble`): C's
/// `%.17g` (17 significant digits, exponent form below 1e-4 and from 1e17 on), `inf` and
/// `-inf` for the infinities.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if let Some(i) = exact_integer(d) {
        return itoa::Buffer::new().format(i).to_owned();
    }
    // %e with 16 decimals gives the 17 digits and the exponent of the rounded value, which
    // is what %g decides its style by.
    let e = format!("{d:.16e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&x) {
        let mant = trim_fraction(mant);
        let sign = if x < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", x.unsigned_abs());
    }
    let fixed = format!("{d:.*}", (16 - x) as usize);
    trim_fraction(&fixed).to_string()
}

/// `d` as an integer when `%.17g` prints it as one: an integer below 2^53 has at most 16
/// digits, printed as they are (the common case of scores, without the float formatting:
/// a quarter of a ZPOPMIN's cost). Not -0, which prints as `-0`.
#[inline]
fn exact_integer(d: f64) -> Option<i64> {
    (d == d.trunc() && d.abs() < 9_007_199_254_740_992.0 && !(d == 0.0 && d.is_sign_negative()))
        .then_some(d as i64)
}

/// `1.2500` -> `1.25`, `3.000` -> `3` (what %g does with trailing zeros).
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> String {
        let mut out = BytesMut::new();
        f.encode(p, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn resp2_shapes() {
        use Protocol::Resp2 as P;
        assert_eq!(enc(&Frame::ok(), P), "+OK\r\n");
        assert_eq!(enc(&Frame::err("ERR x"), P), "-ERR x\r\n");
        assert_eq!(enc(&Frame::Integer(-3), P), ":-3\r\n");
        assert_eq!(enc(&Frame::bulk("ab"), P), "$2\r\nab\r\n");
        assert_eq!(enc(&Frame::bulk(""), P), "$0\r\n\r\n");
        assert_eq!(enc(&Frame::Null, P), "$-1\r\n");
        assert_eq!(enc(&Frame::NullArray, P), "*-1\r\n");
        let m = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&m, P), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Frame::Double(1.5), P), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Frame::Boolean(true), P), ":1\r\n");
        assert_eq!(
            enc(&Frame::Verbatim(Bytes::from_static(b"hi")), P),
            "$2\r\nhi\r\n"
        );
        assert_eq!(enc(&Frame::Set(vec![Frame::Integer(1)]), P), "*1\r\n:1\r\n");
    }

    #[test]
    fn an_encoded_reply_alone_becomes_the_output_buffer() {
        for n in [0usize, 4, 12_344] {
            for shape in [Shape::Array, Shape::Set, Shape::Map] {
                let build = || {
                    let mut e = Elements::with_capacity(n, 3);
                    for i in 0..n {
                        e.int(i as i64);
                    }
                    e.finish(shape)
                };
                let frame = build();
                for p in [Protocol::Resp2, Protocol::Resp3] {
                    let want = enc(&frame, p);
                    // Alone and owned: the elements are not copied.
                    let owned = build();
                    let Frame::Encoded { body, .. } = &owned else {
                        unreachable!()
                    };
                    let elements_at = body.as_ptr() as usize + HEADROOM;
                    let mut out = BytesMut::new();
                    owned.encode_alone(p, &mut out);
                    assert_eq!(String::from_utf8_lossy(&out), want);
                    let header_len = want.find("\r\n").expect("a header") + 2;
                    assert_eq!(out.as_ptr() as usize + header_len, elements_at);
                    // Shared, or after other replies: copied, the same bytes.
                    let mut out = BytesMut::new();
                    frame.clone().encode_alone(p, &mut out);
                    assert_eq!(String::from_utf8_lossy(&out), want);
                    let mut out = BytesMut::from(&b"+OK\r\n"[..]);
                    frame.clone().encode_alone(p, &mut out);
                    assert_eq!(String::from_utf8_lossy(&out), format!("+OK\r\n{want}"));
                }
            }
        }
        let mut out = BytesMut::new();
        Frame::Integer(7).encode_alone(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b":7\r\n");
    }

    #[test]
    fn encoded_replies_read_as_their_frames() {
        for shape in [Shape::Array, Shape::Set, Shape::Map] {
            let mut e = Elements::with_capacity(4, 2);
            e.bulk(b"ab");
            e.bulk(b"");
            e.int(-12);
            e.bulk(b"x");
            let encoded = e.finish(shape);
            let items = vec![
                Frame::bulk("ab"),
                Frame::bulk(""),
                Frame::bulk("-12"),
                Frame::bulk("x"),
            ];
            for p in [Protocol::Resp2, Protocol::Resp3] {
                let frames = match (shape, p) {
                    (Shape::Set, Protocol::Resp3) => Frame::Set(items.clone()),
                    (Shape::Map, Protocol::Resp3) => Frame::Map(vec![
                        (items[0].clone(), items[1].clone()),
                        (items[2].clone(), items[3].clone()),
                    ]),
                    _ => Frame::Array(items.clone()),
                };
                assert_eq!(enc(&encoded, p), enc(&frames, p));
                assert_eq!(encoded.clone().decoded(p), frames);
            }
        }
        let empty = Elements::with_capacity(0, 0).finish(Shape::Array);
        assert_eq!(enc(&empty, Protocol::Resp2), "*0\r\n");
        assert_eq!(
            Frame::Integer(1).decoded(Protocol::Resp3),
            Frame::Integer(1)
        );
    }

    #[test]
    fn resp3_shapes() {
        use Protocol::Resp3 as P;
        assert_eq!(enc(&Frame::Null, P), "_\r\n");
        assert_eq!(enc(&Frame::NullArray, P), "_\r\n");
        let m = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&m, P), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Frame::Double(1.5), P), ",1.5\r\n");
        assert_eq!(enc(&Frame::Double(f64::INFINITY), P), ",inf\r\n");
        assert_eq!(enc(&Frame::Boolean(false), P), "#f\r\n");
        assert_eq!(
            enc(&Frame::Verbatim(Bytes::from_static(b"hi")), P),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(enc(&Frame::Set(vec![Frame::Integer(1)]), P), "~1\r\n:1\r\n");
        assert_eq!(enc(&Frame::Push(vec![]), P), ">0\r\n");
    }

    #[test]
    fn doubles() {
        // What redis-server 7.0.15 prints for each (checked against it).
        for (d, s) in [
            (3.0, "3"),
            (-0.25, "-0.25"),
            (0.1, "0.10000000000000001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.5, "1.5"),
            (1e300, "1.0000000000000001e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1.2345678901234568e29, "1.2345678901234568e+29"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e16, "10000000000000000"),
            (1e-320, "9.9998886718268301e-321"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-0.0, "-0"),
            (3479099956230698.0, "3479099956230698"),
            (-9007199254740991.0, "-9007199254740991"),
            (9007199254740992.0, "9007199254740992"),
            (-42.0, "-42"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(format_double(d), s);
        }
    }
}
