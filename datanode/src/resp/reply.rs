//! Parsing replies (RESP2 and RESP3), for relaying another node's answers.
//!
//! A forwarding node usually only needs to know where a reply ends so it can pass the bytes
//! through untouched ([`reply_len`]); when it must merge several nodes' answers (a split
//! MGET), it decodes them into [`Frame`]s ([`parse_reply`]).

use super::frame::Frame;
use bytes::Bytes;
use std::borrow::Cow;

/// A malformed reply from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from peer: {0}")]
pub struct ReplyError(pub &'static str);

/// Deepest nesting accepted from a peer.
const MAX_DEPTH: usize = 64;

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rel = memchr::memchr(b'\n', buf.get(at..)?)?;
    let end = at + rel;
    if end == at || buf[end - 1] != b'\r' {
        return None;
    }
    Some((&buf[at..end - 1], end + 1))
}

fn int(s: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ReplyError("bad integer"))
}

/// Length of the complete reply at the start of `buf`, `Ok(None)` if more bytes are needed.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    Ok(parse_at(buf, 0, 0, false)?.map(|(_, end)| end))
}

/// Decodes the complete reply at the start of `buf`: the frame and its length.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Frame, usize)>, ReplyError> {
    Ok(parse_at(buf, 0, 0, true)?.map(|(f, end)| (f.unwrap_or(Frame::Null), end)))
}

/// Parses one reply at `at`. With `build`, returns the frame; else only its end.
fn parse_at(
    buf: &[u8],
    at: usize,
    depth: usize,
    build: bool,
) -> Result<Option<(Option<Frame>, usize)>, ReplyError> {
    if depth > MAX_DEPTH {
        return Err(ReplyError("nesting too deep"));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((body, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    let text = |b: &[u8]| Cow::Owned(String::from_utf8_lossy(b).into_owned());
    let frame = match kind {
        b'+' => (build.then(|| Frame::Simple(text(body))), next),
        b'-' => (build.then(|| Frame::Error(text(body))), next),
        b':' => (
            build.then(|| int(body)).transpose()?.map(Frame::Integer),
            next,
        ),
        b'_' => (build.then_some(Frame::Null), next),
        b'#' => (build.then(|| Frame::Boolean(body == b"t")), next),
        b',' => (
            build
                .then(|| {
                    let s = std::str::from_utf8(body).map_err(|_| ReplyError("bad double"))?;
                    let v = match s {
                        "inf" => f64::INFINITY,
                        "-inf" => f64::NEG_INFINITY,
                        _ => s.parse().map_err(|_| ReplyError("bad double"))?,
                    };
                    Ok(Frame::Double(v))
                })
                .transpose()?,
            next,
        ),
        b'(' => (
            build.then(|| Frame::Bulk(Bytes::copy_from_slice(body))),
            next,
        ),
        b'$' | b'=' | b'!' => {
            let n = int(body)?;
            if n < 0 {
                return Ok(Some((build.then_some(Frame::Null), next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            let data = &buf[next..end];
            let f = build.then(|| match kind {
                b'=' => Frame::Verbatim(Bytes::copy_from_slice(data.get(4..).unwrap_or(&[]))),
                b'!' => Frame::Error(text(data)),
                _ => Frame::Bulk(Bytes::copy_from_slice(data)),
            });
            (f, end + 2)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(body)?;
            if n < 0 {
                return Ok(Some((build.then_some(Frame::NullArray), next)));
            }
            let items = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            } as usize;
            let mut pos = next;
            let mut out = Vec::with_capacity(if build { items.min(1024) } else { 0 });
            for _ in 0..items {
                let Some((f, end)) = parse_at(buf, pos, depth + 1, build)? else {
                    return Ok(None);
                };
                if let Some(f) = f {
                    out.push(f);
                }
                pos = end;
            }
            if kind == b'|' {
                // Attributes precede the real reply: skip them.
                return parse_at(buf, pos, depth + 1, build);
            }
            let f = build.then(|| match kind {
                b'~' => Frame::Set(out),
                b'>' => Frame::Push(out),
                b'%' => {
                    let mut it = out.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
                _ => Frame::Array(out),
            });
            (f, pos)
        }
        _ => return Err(ReplyError("unknown reply type")),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Protocol;
    use bytes::BytesMut;

    fn roundtrip(f: Frame, p: Protocol) {
        let mut out = BytesMut::new();
        f.encode(p, &mut out);
        let (g, n) = parse_reply(&out).unwrap().expect("complete");
        assert_eq!(n, out.len());
        assert_eq!(reply_len(&out).unwrap(), Some(out.len()));
        for cut in 0..out.len() {
            assert_eq!(reply_len(&out[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut again = BytesMut::new();
        g.encode(p, &mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn roundtrips() {
        let nested = Frame::Array(vec![
            Frame::bulk("a"),
            Frame::Integer(-5),
            Frame::Null,
            Frame::Array(vec![Frame::simple("OK"), Frame::err("ERR x")]),
        ]);
        for p in [Protocol::Resp2, Protocol::Resp3] {
            roundtrip(nested.clone(), p);
            roundtrip(Frame::bulk(""), p);
            roundtrip(Frame::bulk("x\r\ny"), p);
        }
        roundtrip(
            Frame::Map(vec![(Frame::bulk("k"), Frame::Integer(1))]),
            Protocol::Resp3,
        );
        roundtrip(Frame::Set(vec![Frame::Integer(1)]), Protocol::Resp3);
        roundtrip(Frame::Double(1.5), Protocol::Resp3);
        roundtrip(Frame::Boolean(true), Protocol::Resp3);
        roundtrip(
            Frame::Verbatim(Bytes::from_static(b"hello")),
            Protocol::Resp3,
        );
    }

    #[test]
    fn bad_replies_are_errors() {
        assert!(reply_len(b"?x\r\n").is_err());
        assert!(parse_reply(b":abc\r\n").is_err());
        assert_eq!(
            parse_reply(b"*-1\r\n").unwrap(),
            Some((Frame::NullArray, 5))
        );
        assert_eq!(parse_reply(b"$-1\r\n").unwrap(), Some((Frame::Null, 5)));
    }
}
