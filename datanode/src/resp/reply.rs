//! Parsing replies (RESP2 and RESP3), for relaying another node's answers, with the codec
//! CHKV shares with its client library ([`chkv_common::resp`]).
//!
//! A forwarding node usually only needs to know where a reply ends so it can pass the bytes
//! through untouched ([`reply_len`]); when it must merge several nodes' answers (a split
//! MGET), it decodes them into [`Frame`]s ([`parse_reply`]).

use super::frame::Frame;
use bytes::Bytes;
use chkv_common::resp::{decode_first, Aggregate, Build, Scanner};
use std::borrow::Cow;
use std::ops::Range;

/// A malformed reply from a peer.
pub type ReplyError = chkv_common::resp::ProtocolError;

/// Length of the complete reply at the start of `buf`, `Ok(None)` if more bytes are needed.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    Scanner::new().scan(buf)
}

/// Decodes the complete reply at the start of `buf`: the frame and its length.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Frame, usize)>, ReplyError> {
    decode_first(buf, &mut FrameBuilder)
}

/// Builds [`Frame`]s, copying strings out of the peer's reply.
struct FrameBuilder;

fn text(b: &[u8]) -> Cow<'static, str> {
    Cow::Owned(String::from_utf8_lossy(b).into_owned())
}

impl Build for FrameBuilder {
    type Value = Frame;
    fn simple(&mut self, frame: &[u8], line: Range<usize>) -> Frame {
        Frame::Simple(text(&frame[line]))
    }
    fn error(&mut self, frame: &[u8], t: Range<usize>) -> Frame {
        Frame::Error(text(&frame[t]))
    }
    fn int(&mut self, n: i64) -> Frame {
        Frame::Integer(n)
    }
    fn null(&mut self) -> Frame {
        Frame::Null
    }
    fn null_array(&mut self) -> Frame {
        Frame::NullArray
    }
    fn boolean(&mut self, b: bool) -> Frame {
        Frame::Boolean(b)
    }
    fn double(&mut self, d: f64) -> Frame {
        Frame::Double(d)
    }
    /// A big number is relayed as its digits (DataNodes send none).
    fn big_number(&mut self, frame: &[u8], digits: Range<usize>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(&frame[digits]))
    }
    fn bulk(&mut self, frame: &[u8], data: Range<usize>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(&frame[data]))
    }
    /// Verbatim text is always `txt` in [`Frame`]; the format is dropped.
    fn verbatim(&mut self, frame: &[u8], _format: Range<usize>, t: Range<usize>) -> Frame {
        Frame::Verbatim(Bytes::copy_from_slice(&frame[t]))
    }
    fn aggregate(&mut self, kind: Aggregate, items: Vec<Frame>) -> Frame {
        match kind {
            Aggregate::Array => Frame::Array(items),
            Aggregate::Set => Frame::Set(items),
            Aggregate::Push => Frame::Push(items),
        }
    }
    fn map(&mut self, pairs: Vec<(Frame, Frame)>) -> Frame {
        Frame::Map(pairs)
    }
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
        // A declared length near i64::MAX is refused, not added to an offset (it overflowed
        // and panicked before the shared codec).
        assert!(reply_len(b"$9223372036854775807\r\nab\r\n").is_err());
        assert!(parse_reply(b"$9223372036854775807\r\nab\r\n").is_err());
        assert!(parse_reply(b"*2\r\n$9223372036854775000\r\n").is_err());
    }
}
