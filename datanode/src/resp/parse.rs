//! Request parsing.
//!
//! A client sends either a RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an inline
//! command (`GET k\r\n`, what `telnet` users type). [`Parser::next`] takes the connection's
//! read buffer and returns the next complete [`Request`], `None` when more bytes are needed, or
//! a [`ParseError`] carrying Redis's own text, after which the connection must be closed.
//!
//! The parser remembers how far it got in a partial multibulk so a large command arriving in
//! many reads is scanned once, not once per read. Declared lengths are checked against the
//! limits before anything is reserved, and buffer growth follows the bytes that really arrive.

use bytes::{Buf as _, Bytes, BytesMut};
use std::ops::Range;

/// Longest inline command or length line without a newline (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Redis's limits for connections that still have to authenticate.
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// Protocol limits, as Redis configures them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest single argument (512 MB by default).
    pub max_bulk_len: usize,
    /// `client-query-buffer-limit`: the most one client may have buffered (1 GB by default).
    pub max_query_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_query_buffer: 1024 * 1024 * 1024,
        }
    }
}

/// A malformed request. The text is what Redis sends after `-ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ParseError(pub String);

impl ParseError {
    /// The client's buffered input passed `client-query-buffer-limit`. Redis closes such a
    /// connection without a reply.
    pub const QUERY_BUFFER_LIMIT: ParseError = ParseError(String::new());

    /// Whether the connection should be closed without replying.
    pub fn is_silent(&self) -> bool {
        self.0.is_empty()
    }
}

fn perr(s: impl Into<String>) -> ParseError {
    ParseError(s.into())
}

/// Requests up to this size are copied out of the read buffer into a buffer the parser
/// reuses; larger ones are split off it, without a copy. A split costs two atomic
/// reference-count changes (`Bytes`), which on a pipelined GET cost more than copying its
/// few dozen bytes. A 1 KiB SET is cheaper split: 5030 cycles per request against
/// 5170-5620 copied (pipeline 16, one worker, `perf stat`).
const COPY_MAX: usize = 512;

/// A handled request's argument list is kept for the next one when it has room for at most
/// this many arguments.
const ARGS_KEPT: usize = 64;

/// One command: its arguments, as ranges of one buffer.
#[derive(Debug)]
pub struct Request {
    buf: ReqBuf,
    args: Vec<Range<usize>>,
    /// `buf` is the multibulk the client sent, whole: forwarding sends it as it is.
    wire: bool,
}

/// A request's bytes: its own (small requests, inline commands) or a part of the read
/// buffer (large ones).
#[derive(Debug)]
enum ReqBuf {
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl Clone for ReqBuf {
    fn clone(&self) -> Self {
        match self {
            ReqBuf::Owned(v) => ReqBuf::Owned(v.clone()),
            ReqBuf::Shared(b) => ReqBuf::Shared(b.clone()),
        }
    }

    /// Copies into this buffer's own allocation when both are owned.
    fn clone_from(&mut self, source: &Self) {
        match (self, source) {
            (ReqBuf::Owned(mine), ReqBuf::Owned(theirs)) => mine.clone_from(theirs),
            (me, source) => *me = source.clone(),
        }
    }
}

impl Clone for Request {
    fn clone(&self) -> Self {
        Request {
            buf: self.buf.clone(),
            args: self.args.clone(),
            wire: self.wire,
        }
    }

    /// Copies `source` into this request's allocations (a transaction's queue copies each
    /// command into a request a finished transaction left, see `cmd::multi`).
    fn clone_from(&mut self, source: &Self) {
        self.buf.clone_from(&source.buf);
        self.args.clone_from(&source.args);
        self.wire = source.wire;
    }
}

impl std::ops::Deref for ReqBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ReqBuf::Owned(v) => v,
            ReqBuf::Shared(b) => b,
        }
    }
}

impl Request {
    /// Builds a request from owned arguments (tests, inline commands, internal use).
    pub fn from_args<I, A>(args: I) -> Request
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for a in args {
            let a = a.as_ref();
            ranges.push(buf.len()..buf.len() + a.len());
            buf.extend_from_slice(a);
        }
        Request {
            buf: ReqBuf::Owned(buf),
            args: ranges,
            wire: false,
        }
    }

    /// An empty request with room for `args` arguments, filled by [`Request::push_arg`]
    /// (a script's `redis.call` builds its request this way, with no copy per argument).
    pub fn with_capacity(args: usize) -> Request {
        Request {
            // Room for short arguments: most requests a script makes never grow it.
            buf: ReqBuf::Owned(Vec::with_capacity(args.saturating_mul(24).min(4096))),
            args: Vec::with_capacity(args),
            wire: false,
        }
    }

    /// Appends an argument.
    pub fn push_arg(&mut self, a: &[u8]) {
        self.wire = false;
        if let ReqBuf::Shared(b) = &self.buf {
            self.buf = ReqBuf::Owned(b.to_vec());
        }
        if let ReqBuf::Owned(v) = &mut self.buf {
            self.args.push(v.len()..v.len() + a.len());
            v.extend_from_slice(a);
        }
    }

    /// Whether keeping this request to copy others into ([`Clone::clone_from`]) holds
    /// little memory, by the rule the parser keeps its buffers by: its bytes are its own
    /// (not a part of a read buffer), room for at most [`COPY_MAX`] of them and for at most
    /// [`ARGS_KEPT`] arguments.
    pub fn reusable(&self) -> bool {
        matches!(&self.buf, ReqBuf::Owned(v) if v.capacity() <= COPY_MAX)
            && self.args.capacity() <= ARGS_KEPT
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether the request has no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` (0 is the command name). Panics when out of range: callers check arity.
    pub fn arg(&self, i: usize) -> &[u8] {
        &self.buf[self.args[i].clone()]
    }

    /// Argument `i` as a shared handle (a copy when the request owns its bytes).
    pub fn arg_bytes(&self, i: usize) -> Bytes {
        let r = self.args[i].clone();
        match &self.buf {
            ReqBuf::Owned(v) => Bytes::copy_from_slice(&v[r]),
            ReqBuf::Shared(b) => b.slice(r),
        }
    }

    /// Iterates over all arguments.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.args.iter().map(|r| &self.buf[r.clone()])
    }

    /// The request as a RESP multibulk, for sending it to another node: the bytes the client
    /// sent when it sent a multibulk (shared with the request, or one copy), else encoded.
    pub fn to_wire(&self) -> Bytes {
        match (&self.buf, self.wire) {
            (ReqBuf::Shared(b), true) => b.clone(),
            (ReqBuf::Owned(v), true) => Bytes::copy_from_slice(v),
            _ => {
                let mut out = BytesMut::with_capacity(self.encoded_len());
                self.encode_into(&mut out);
                out.freeze()
            }
        }
    }

    /// The request [`Request::to_wire`] gave, parsed back (a copy; for the rare retry of a
    /// forwarded request). `None` if the bytes are not one whole request.
    pub fn from_wire(wire: &[u8]) -> Option<Request> {
        let mut buf = BytesMut::from(wire);
        let limits = Limits {
            max_bulk_len: usize::MAX,
            max_query_buffer: usize::MAX,
        };
        let req = Parser::new().next(&mut buf, &limits, true).ok()??;
        buf.is_empty().then_some(req)
    }

    /// The length of [`Request::encode_into`]'s encoding.
    fn encoded_len(&self) -> usize {
        let digits = |n: usize| n.checked_ilog10().unwrap_or(0) as usize + 1;
        let header = 3 + digits(self.args.len());
        self.args
            .iter()
            .map(|r| 5 + digits(r.len()) + r.len())
            .fold(header, usize::saturating_add)
    }

    /// The request encoded as a RESP multibulk.
    pub fn encode_into(&self, out: &mut BytesMut) {
        chkv_common::resp::encode_args(self.iter(), out);
    }
}

/// Progress through a multibulk that has not fully arrived yet.
#[derive(Debug, Default)]
struct Partial {
    /// Arguments the multibulk declared.
    count: usize,
    /// Offset of the next unparsed byte.
    pos: usize,
    args: Vec<Range<usize>>,
}

/// A per-connection resumable parser.
#[derive(Debug, Default)]
pub struct Parser {
    partial: Option<Partial>,
    /// Bytes the current partial request needs before it can complete (a hint for reads).
    wanted: usize,
    /// Buffers of a finished request, for the next one (see [`Parser::recycle`]).
    spare_buf: Vec<u8>,
    spare_args: Vec<Range<usize>>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Takes back a handled request's buffers, so the next request allocates nothing.
    pub fn recycle(&mut self, req: Request) {
        let Request { buf, mut args, .. } = req;
        if let ReqBuf::Owned(mut v) = buf {
            if v.capacity() <= COPY_MAX {
                v.clear();
                self.spare_buf = v;
            }
        }
        if args.capacity() <= ARGS_KEPT {
            args.clear();
            self.spare_args = args;
        }
    }

    /// How many bytes the buffer should hold before parsing can make progress.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// Parses the next request from the front of `buf`, consuming its bytes.
    ///
    /// `authenticated` selects Redis's tighter limits for connections that must still AUTH.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Request>, ParseError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let parsed = if buf[0] == b'*' || self.partial.is_some() {
                self.multibulk(buf, limits, authenticated)?
            } else {
                inline(buf)?
            };
            match parsed {
                Step::Done(req) => return Ok(Some(req)),
                Step::Empty => continue,
                Step::More => {
                    if buf.len() > limits.max_query_buffer {
                        return Err(ParseError::QUERY_BUFFER_LIMIT);
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Step, ParseError> {
        let mut st = match self.partial.take() {
            Some(p) => p,
            None => {
                let Some(cr) = memchr::memchr(b'\r', buf) else {
                    if buf.len() > INLINE_MAX {
                        return Err(perr("too big mbulk count string"));
                    }
                    return Ok(Step::More);
                };
                if cr + 1 >= buf.len() {
                    return Ok(Step::More);
                }
                let n = parse_int(&buf[1..cr]);
                let n = match n {
                    Some(n) if n <= i32::MAX as i64 => n,
                    _ => return Err(perr("invalid multibulk length")),
                };
                if n > UNAUTH_MAX_MULTIBULK && !authenticated {
                    return Err(perr("unauthenticated multibulk length"));
                }
                if n <= 0 {
                    let _ = buf.split_to(cr + 2);
                    return Ok(Step::Empty);
                }
                let mut args = std::mem::take(&mut self.spare_args);
                // Capacity follows what arrives, not what is declared.
                args.reserve((n as usize).min(64));
                Partial {
                    count: n as usize,
                    pos: cr + 2,
                    args,
                }
            }
        };
        while st.args.len() < st.count {
            let rest = &buf[st.pos..];
            let Some(cr) = memchr::memchr(b'\r', rest) else {
                if rest.len() > INLINE_MAX {
                    return Err(perr("too big bulk count string"));
                }
                self.wanted = buf.len() + 1;
                self.partial = Some(st);
                return Ok(Step::More);
            };
            if cr + 1 >= rest.len() {
                self.wanted = buf.len() + 1;
                self.partial = Some(st);
                return Ok(Step::More);
            }
            if rest[0] != b'$' {
                return Err(perr(format!(
                    "expected '$', got '{}'",
                    char::from(rest[0]).escape_default()
                )));
            }
            let len = match parse_int(&rest[1..cr]) {
                Some(l) if l >= 0 && l as u64 <= limits.max_bulk_len as u64 => l,
                _ => return Err(perr("invalid bulk length")),
            };
            if len > UNAUTH_MAX_BULK && !authenticated {
                return Err(perr("unauthenticated bulk length"));
            }
            let start = st.pos + cr + 2;
            let end = start + len as usize;
            if end + 2 > buf.len() {
                self.wanted = end + 2;
                self.partial = Some(st);
                return Ok(Step::More);
            }
            st.args.push(start..end);
            st.pos = end + 2;
        }
        self.wanted = 0;
        let buf = if st.pos <= COPY_MAX {
            let mut v = std::mem::take(&mut self.spare_buf);
            v.extend_from_slice(&buf[..st.pos]);
            buf.advance(st.pos);
            ReqBuf::Owned(v)
        } else {
            ReqBuf::Shared(buf.split_to(st.pos).freeze())
        };
        Ok(Step::Done(Request {
            buf,
            args: st.args,
            wire: true,
        }))
    }
}

enum Step {
    Done(Request),
    /// A request with no arguments (an empty line, `*0`): skipped, as Redis does.
    Empty,
    More,
}

/// Parses a base-10 integer the way Redis's `string2ll` does: no spaces, no `+`, no leading
/// zeros except `0` itself.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    if neg {
        if v == 0 {
            return None;
        }
        Some(-v)
    } else {
        Some(v)
    }
}

fn inline(buf: &mut BytesMut) -> Result<Step, ParseError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(perr("too big inline request"));
        }
        return Ok(Step::More);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    // Redis splits inline commands as C strings: a NUL ends the command.
    if let Some(nul) = memchr::memchr(0, line) {
        line = &line[..nul];
    }
    let args = split_args(line).ok_or_else(|| perr("unbalanced quotes in request"))?;
    if args.is_empty() {
        return Ok(Step::Empty);
    }
    Ok(Step::Done(Request::from_args(args)))
}

/// C's `isspace`, which Redis's splitter uses (Rust's ASCII whitespace lacks `\v`).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line into arguments with Redis's quoting rules: `"..."` with
/// C-like escapes (`\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`), `'...'` with only `\'`, and a
/// closing quote that must be followed by a space or the end of the line.
/// Returns `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_argument_by_argument() {
        let mut r = Request::with_capacity(2);
        r.push_arg(b"SET");
        r.push_arg(b"");
        r.push_arg(&[b'v'; 100]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.arg(0), b"SET");
        assert_eq!(r.arg(1), b"");
        assert_eq!(r.arg(2), &[b'v'; 100][..]);
        // A request sharing a read buffer is copied before it grows.
        let shared = Bytes::from_static(b"GETk");
        let mut r = Request {
            buf: ReqBuf::Shared(shared),
            args: vec![0..3, 3..4],
            wire: false,
        };
        r.push_arg(b"x");
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![&b"GET"[..], b"k", b"x"]);
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = p.next(&mut buf, &Limits::default(), true)? {
            out.push(r.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn small_requests_are_copied_into_recycled_buffers_large_ones_shared() {
        let big = vec![b'v'; COPY_MAX];
        let mut input = BytesMut::new();
        input.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n");
        input.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", big.len()).as_bytes(),
        );
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$2\r\nk2\r\n");
        let mut p = Parser::new();
        let lim = Limits::default();
        let first = p.next(&mut input, &lim, true).ok().flatten().expect("GET");
        assert!(matches!(first.buf, ReqBuf::Owned(_)));
        assert_eq!(first.arg_bytes(1), Bytes::from_static(b"k1"));
        let addr = first.buf.as_ptr();
        p.recycle(first);
        let set = p.next(&mut input, &lim, true).ok().flatten().expect("SET");
        assert!(matches!(set.buf, ReqBuf::Shared(_)), "too big to copy");
        assert_eq!((set.arg(0), set.arg(2)), (&b"SET"[..], &big[..]));
        assert_eq!(set.arg_bytes(2).len(), COPY_MAX);
        p.recycle(set);
        let last = p
            .next(&mut input, &lim, true)
            .ok()
            .flatten()
            .expect("GET k2");
        assert_eq!(
            last.buf.as_ptr(),
            addr,
            "the first request's buffer is reused"
        );
        assert_eq!(last.iter().collect::<Vec<_>>(), [&b"GET"[..], b"k2"]);
        assert!(input.is_empty());
        let copy = last.clone();
        p.recycle(last);
        assert_eq!(copy.arg(1), b"k2", "a clone keeps its own bytes");
    }

    /// A clone made into another request's allocations is the same request; an owned
    /// buffer is reused, a shared one (part of a read buffer) is not kept.
    #[test]
    fn cloned_into_a_kept_request() {
        let mut kept = Request::from_args(["SET", "some-longer-key", "value"]);
        assert!(kept.reusable());
        let addr = kept.buf.as_ptr();
        let small = Request::from_args(["INCR", "n"]);
        kept.clone_from(&small);
        assert_eq!(kept.iter().collect::<Vec<_>>(), [&b"INCR"[..], b"n"]);
        assert_eq!(kept.buf.as_ptr(), addr, "copied into the kept buffer");
        let mut input = BytesMut::new();
        let big = vec![b'v'; COPY_MAX];
        input.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n", big.len()).as_bytes());
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n");
        let shared = Parser::new()
            .next(&mut input, &Limits::default(), true)
            .ok()
            .flatten()
            .expect("GET");
        assert!(!shared.reusable(), "a part of a read buffer is not kept");
        kept.clone_from(&shared);
        assert_eq!((kept.arg(0), kept.arg(1)), (&b"GET"[..], &big[..]));
        assert!(!kept.reusable());
        let wide = Request::from_args((0..ARGS_KEPT + 1).map(|i| i.to_string()));
        assert!(!wide.reusable(), "too many arguments to keep");
    }

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelining() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![args(&["GET", "k"]), args(&["PING"])]);
    }

    #[test]
    fn binary_and_empty_args() {
        let got = parse_all(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\n\r\n\x00\xff\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"SET".to_vec(), vec![], b"\r\n\x00\xff".to_vec()]]
        );
    }

    #[test]
    fn inline_commands() {
        let got = parse_all(b"PING\r\nset a \"b c\\x41\\n\"\n\r\n  \r\nget 'it\\'s'\n").unwrap();
        assert_eq!(
            got,
            vec![
                args(&["PING"]),
                args(&["set", "a", "b cA\n"]),
                args(&["get", "it's"])
            ]
        );
    }

    #[test]
    fn nul_ends_inline_and_vertical_tab_separates() {
        // Redis splits inline commands as C strings: a NUL ends the command.
        let got = parse_all(b"a\x00b c\nc\x0bd\n\x00\x01\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![args(&["a"]), args(&["c", "d"]), args(&["PING"])]);
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        let got = parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![args(&["PING"])]);
    }

    #[test]
    fn redis_error_texts() {
        let e = |b: &[u8]| parse_all(b).unwrap_err().to_string();
        assert_eq!(e(b"*abc\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            e(b"*3000000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(e(b"*1\r\n+OK\r\n"), "Protocol error: expected '$', got '+'");
        assert_eq!(e(b"*1\r\n$-3\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(e(b"*1\r\n$x\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$4294967296\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"set a \"b\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            e(b"set a \"b\"c\n"),
            "Protocol error: unbalanced quotes in request"
        );
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(e(&long), "Protocol error: too big inline request");
        let mut mb = b"*".to_vec();
        mb.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(e(&mb), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        let err = p.next(&mut buf, &Limits::default(), false).unwrap_err();
        assert_eq!(err.0, "unauthenticated multibulk length");
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$20000\r\n"[..]);
        let err = p.next(&mut buf, &Limits::default(), false).unwrap_err();
        assert_eq!(err.0, "unauthenticated bulk length");
    }

    #[test]
    fn huge_declared_bulk_does_not_allocate() {
        // 500 MB declared (within the limit) but only a few bytes sent: nothing is reserved and
        // the parser asks for more.
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$524288000\r\nabc"[..]);
        let cap = buf.capacity();
        assert!(p
            .next(&mut buf, &Limits::default(), true)
            .unwrap()
            .is_none());
        assert_eq!(buf.capacity(), cap);
        let header = b"*2\r\n$3\r\nGET\r\n$524288000\r\n".len();
        assert_eq!(p.wanted(), header + 524288000 + 2);
    }

    #[test]
    fn resumes_across_reads() {
        let full = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let r = p.next(&mut buf, &Limits::default(), true).unwrap();
            if i + 1 < full.len() {
                assert!(r.is_none(), "complete too early at byte {i}");
            } else {
                let r = r.expect("complete");
                assert_eq!(r.arg(2), b"value");
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn parse_int_matches_string2ll() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-5"), Some(-5));
        assert_eq!(parse_int(b"007"), None);
        assert_eq!(parse_int(b"+5"), None);
        assert_eq!(parse_int(b"-0"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
    }

    fn encode(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for c in cmds {
            Request::from_args(c).encode_into(&mut out);
        }
        out.to_vec()
    }

    /// What forwarding sends parses back to the same arguments: the client's own multibulk
    /// (copied small, shared large), an inline command and a built request (encoded, to
    /// exactly the computed length), and a parsed request that grew an argument.
    #[test]
    fn wire_bytes_parse_back_to_the_request() {
        let big = vec![b'v'; COPY_MAX + 10];
        let mut input = BytesMut::new();
        input.extend_from_slice(&encode(&[vec![b"GET".to_vec(), b"k".to_vec()]]));
        input.extend_from_slice(&encode(&[vec![
            b"SET".to_vec(),
            b"k".to_vec(),
            big.clone(),
        ]]));
        input.extend_from_slice(b"GET inline\r\n");
        let mut p = Parser::new();
        let mut reqs = Vec::new();
        while let Some(r) = p.next(&mut input, &Limits::default(), true).unwrap() {
            reqs.push(r);
        }
        assert_eq!(reqs.len(), 3);
        assert!(reqs[0].wire && matches!(reqs[0].buf, ReqBuf::Owned(_)));
        assert!(reqs[1].wire && matches!(reqs[1].buf, ReqBuf::Shared(_)));
        assert!(!reqs[2].wire, "an inline command is not a multibulk");
        let mut grown = reqs[0].clone();
        grown.push_arg(b"extra");
        reqs.push(grown);
        reqs.push(Request::from_args([&b"MSET"[..], b"", &[b'x'; 1234]]));
        for r in &reqs {
            let wire = r.to_wire();
            let mut buf = BytesMut::from(&wire[..]);
            let back = Parser::new()
                .next(&mut buf, &Limits::default(), true)
                .unwrap()
                .expect("a whole request");
            assert!(buf.is_empty(), "exactly one request");
            assert_eq!(
                back.iter().collect::<Vec<_>>(),
                r.iter().collect::<Vec<_>>()
            );
            if !r.wire {
                assert_eq!(wire.len(), r.encoded_len());
            }
        }
    }

    proptest! {
        /// Any sequence of commands, encoded and split into arbitrary chunks, parses back to
        /// the same commands.
        #[test]
        fn roundtrip_any_chunking(
            cmds in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
                1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let bytes = encode(&cmds);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.push(bytes.len());
            points.sort_unstable();
            let mut p = Parser::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut last = 0;
            for pt in points {
                buf.extend_from_slice(&bytes[last..pt]);
                last = pt;
                while let Some(r) = p.next(&mut buf, &Limits::default(), true).unwrap() {
                    got.push(r.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                }
            }
            prop_assert_eq!(got, cmds);
        }

        /// Arbitrary bytes never panic: they parse, ask for more, or give a protocol error.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut p = Parser::new();
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..400 {
                match p.next(&mut buf, &Limits::default(), true) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Garbage that starts like a multibulk never makes the parser reserve memory.
        #[test]
        fn mbulk_garbage_bounded(n in any::<u32>(), len in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut data = format!("*{n}\r\n${len}\r\n").into_bytes();
            data.extend(tail);
            let mut p = Parser::new();
            let mut buf = BytesMut::from(&data[..]);
            let cap = buf.capacity();
            let _ = p.next(&mut buf, &Limits::default(), true);
            prop_assert!(buf.capacity() <= cap);
        }
    }
}
