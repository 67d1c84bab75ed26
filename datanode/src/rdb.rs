//! Redis's serialized value format, as DUMP writes it and RESTORE and MIGRATE read it.
//!
//! A payload is one RDB object (a type byte and the value's encoding), then the RDB version
//! as two little-endian bytes, then a CRC64 (Jones polynomial, reflected, as Redis's
//! `crc64.c`) of everything before it, little-endian. CHKV writes RDB version 10 (Redis 7.0)
//! so the payloads it dumps restore in Redis 7.0 and later; it reads versions up to 12, whose
//! encodings of the types it decodes are unchanged.
//!
//! Reading is split in two so that types plug in at one place: [`decode`] turns a payload
//! into a [`Decoded`] value in plain Rust types (strings, including Redis's integer and LZF
//! encodings; sets from a hash table, an intset or a listpack; hashes from a hash table or a
//! listpack; lists plain, as a ziplist, or as quicklists of ziplists or listpacks), and [`into_value`] maps that onto the store's [`Value`]. A store type that
//! gains a variant (hashes, sets) only changes [`into_value`] and [`dump`].
//!
//! Payloads come from the network: every length is checked against the bytes present, and
//! a decompressed length is bounded by what LZF can expand the input to.

use crate::store::{Value, MAX_STRING_LEN};
use thiserror::Error;

/// The RDB version CHKV writes (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;
/// The newest RDB version CHKV reads (Redis 7.4's).
pub const RDB_VERSION_MAX_READ: u16 = 12;

// Object types (Redis's `RDB_TYPE_*`).
const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_ZSET_2: u8 = 5;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_SET_LISTPACK: u8 = 20;

/// A quicklist-2 node's container: one element as it is, or a listpack of elements.
const QUICKLIST_NODE_PLAIN: usize = 1;
const QUICKLIST_NODE_PACKED: usize = 2;

// Special string encodings after a length byte of `11xxxxxx`.
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Why a payload was refused; the `Display` texts are Redis's replies.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RdbError {
    /// Too short, an unknown RDB version, or a CRC that does not match.
    #[error("ERR DUMP payload version or checksum are wrong")]
    Checksum,
    /// The object inside is malformed or of a type Redis does not have.
    #[error("ERR Bad data format")]
    BadFormat,
    /// A well-formed value of a type CHKV does not serve yet.
    #[error("ERR Bad data format: CHKV does not serve {0} values yet")]
    Unsupported(&'static str),
}

/// A decoded value, independent of how the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Str(Vec<u8>),
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    List(Vec<Vec<u8>>),
    /// Members and scores (never NaN).
    Zset(Vec<(Vec<u8>, f64)>),
}

impl Decoded {
    pub fn type_name(&self) -> &'static str {
        match self {
            Decoded::Str(_) => "string",
            Decoded::Set(_) => "set",
            Decoded::Hash(_) => "hash",
            Decoded::List(_) => "list",
            Decoded::Zset(_) => "zset",
        }
    }
}

// ---- CRC64 ----

/// Redis's CRC64: Jones polynomial 0xad93d23594c935a9, reflected in and out, initial value 0,
/// no final xor. `crc64(0, b"123456789") == 0xe9c6d914c4b8d9ca`.
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let t = crc_table();
    for &b in data {
        crc = t[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn crc_table() -> &'static [u64; 256] {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        // The polynomial with its bits reversed, for the reflected (LSB-first) algorithm.
        const POLY: u64 = 0xad93d23594c935a9u64.reverse_bits();
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    })
}

// ---- writing ----

/// The DUMP payload of `value`.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            write_string(&mut out, s);
        }
        // Collections are written in RDB's plain forms (every Redis reads them and picks its
        // own encoding on load).
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            write_len(&mut out, h.len() as u64);
            for (f, v) in h.iter() {
                write_string(&mut out, f);
                write_string(&mut out, v);
            }
        }
        Value::Set(set) => {
            out.push(TYPE_SET);
            write_len(&mut out, set.len() as u64);
            for m in set.iter() {
                m.with_bytes(|b| write_string(&mut out, b));
            }
        }
        Value::List(list) => {
            out.push(TYPE_LIST);
            write_len(&mut out, list.len() as u64);
            let mut c = list.cursor();
            while let Some(m) = c.next() {
                m.with_bytes(|b| write_string(&mut out, b));
            }
        }
        Value::Zset(z) => {
            out.push(TYPE_ZSET_2);
            write_len(&mut out, z.len() as u64);
            // Highest first, as Redis saves a skip list (loading then inserts at the head).
            z.range(0, z.len(), true, |m, s| {
                write_string(&mut out, m);
                out.extend_from_slice(&s.to_le_bytes());
            });
        }
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A string the way Redis saves one: short canonical integers that fit in 32 bits as an
/// integer encoding, everything else raw (CHKV does not compress; Redis reads both).
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(n) = canonical_int(s) {
        if let Ok(v) = i8::try_from(n) {
            out.push(0xC0 | ENC_INT8);
            out.push(v as u8);
            return;
        }
        if let Ok(v) = i16::try_from(n) {
            out.push(0xC0 | ENC_INT16);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(n) {
            out.push(0xC0 | ENC_INT32);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The integer `s` spells when it is exactly how that integer prints (no sign on zero, no
/// leading zeros or spaces), at most 11 bytes: the strings Redis saves as integers.
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 11 {
        return None;
    }
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    let mut buf = itoa::Buffer::new();
    (buf.format(n).as_bytes() == s).then_some(n)
}

/// RDB's opcode for one function library (Redis 7.0 GA onwards: the library's code).
const OPCODE_FUNCTION2: u8 = 245;
/// The opcode of Redis 7.0's release candidates, whose format Redis itself no longer loads.
const OPCODE_FUNCTION_PRE_GA: u8 = 246;

/// FUNCTION DUMP's payload: each library's code after the function opcode, then the RDB
/// version and the CRC64, like a DUMP payload. redis-server restores it, and CHKV restores
/// redis-server's (compressed or not).
pub fn dump_functions<'a>(codes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION2);
        write_len(&mut out, code.len() as u64);
        out.extend_from_slice(code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a FUNCTION RESTORE payload was refused (Redis's texts, without the error code).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FunctionsPayloadError {
    #[error("payload version or checksum are wrong")]
    Checksum,
    #[error("given type is not a function")]
    NotAFunction,
    #[error("Pre-GA function format not supported")]
    PreGa,
    #[error("failed loading the given functions payload")]
    Malformed,
}

/// The libraries' code in a FUNCTION DUMP payload.
pub fn read_functions(payload: &[u8]) -> Result<Vec<Vec<u8>>, FunctionsPayloadError> {
    let body = verify(payload).map_err(|_| FunctionsPayloadError::Checksum)?;
    let mut r = Reader { buf: body, pos: 0 };
    let mut out = Vec::new();
    while r.pos < body.len() {
        match r.byte().map_err(|_| FunctionsPayloadError::Malformed)? {
            OPCODE_FUNCTION2 => out.push(r.string().map_err(|_| FunctionsPayloadError::Malformed)?),
            OPCODE_FUNCTION_PRE_GA => return Err(FunctionsPayloadError::PreGa),
            _ => return Err(FunctionsPayloadError::NotAFunction),
        }
    }
    Ok(out)
}

// ---- reading ----

/// Checks the footer and returns the object bytes (type byte and encoding).
pub fn verify(payload: &[u8]) -> Result<&[u8], RdbError> {
    let body_len = payload.len().checked_sub(10).ok_or(RdbError::Checksum)?;
    let (body, footer) = payload.split_at(body_len);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION_MAX_READ {
        return Err(RdbError::Checksum);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if crc64(0, &payload[..body_len + 2]) != u64::from_le_bytes(crc) {
        return Err(RdbError::Checksum);
    }
    Ok(body)
}

/// Verifies and decodes a DUMP payload.
pub fn decode(payload: &[u8]) -> Result<Decoded, RdbError> {
    let body = verify(payload)?;
    let mut r = Reader { buf: body, pos: 0 };
    let v = match r.byte()? {
        TYPE_STRING => Decoded::Str(r.string()?),
        TYPE_SET => {
            let n = r.count(1)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.string()?);
            }
            Decoded::Set(v)
        }
        TYPE_HASH => {
            let n = r.count(2)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let f = r.string()?;
                v.push((f, r.string()?));
            }
            Decoded::Hash(v)
        }
        TYPE_LIST => {
            let n = r.count(1)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.string()?);
            }
            Decoded::List(v)
        }
        TYPE_LIST_ZIPLIST => Decoded::List(ziplist(&r.string()?)?),
        TYPE_LIST_QUICKLIST => {
            let n = r.count(1)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.extend(ziplist(&r.string()?)?);
            }
            Decoded::List(v)
        }
        TYPE_LIST_QUICKLIST_2 => {
            let n = r.count(2)?;
            let mut v = Vec::new();
            for _ in 0..n {
                match r.len()? {
                    QUICKLIST_NODE_PLAIN => v.push(r.string()?),
                    QUICKLIST_NODE_PACKED => {
                        let items = listpack(&r.string()?)?;
                        if items.is_empty() {
                            return Err(RdbError::BadFormat);
                        }
                        v.extend(items);
                    }
                    _ => return Err(RdbError::BadFormat),
                }
            }
            Decoded::List(v)
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let binary = body[0] == TYPE_ZSET_2;
            let n = r.count(2)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.string()?;
                let s = if binary {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(r.take(8)?);
                    f64::from_le_bytes(a)
                } else {
                    // RDB's text double: a length byte, or 253/254/255 for nan/inf/-inf.
                    match r.byte()? {
                        253 => f64::NAN,
                        254 => f64::INFINITY,
                        255 => f64::NEG_INFINITY,
                        len => text_score(r.take(len as usize)?)?,
                    }
                };
                if s.is_nan() {
                    return Err(RdbError::BadFormat);
                }
                v.push((m, s));
            }
            Decoded::Zset(v)
        }
        TYPE_ZSET_LISTPACK => {
            let items = listpack(&r.string()?)?;
            if items.len() % 2 != 0 {
                return Err(RdbError::BadFormat);
            }
            let mut it = items.into_iter();
            let mut v = Vec::new();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                v.push((m, text_score(&s)?));
            }
            Decoded::Zset(v)
        }
        TYPE_SET_INTSET => Decoded::Set(intset(&r.string()?)?),
        TYPE_SET_LISTPACK => Decoded::Set(listpack(&r.string()?)?),
        TYPE_HASH_LISTPACK => {
            let items = listpack(&r.string()?)?;
            if items.len() % 2 != 0 {
                return Err(RdbError::BadFormat);
            }
            let mut it = items.into_iter();
            let mut v = Vec::new();
            while let (Some(f), Some(x)) = (it.next(), it.next()) {
                v.push((f, x));
            }
            Decoded::Hash(v)
        }
        _ => return Err(RdbError::BadFormat),
    };
    if r.pos != body.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(v)
}

/// The store value for a decoded one: where new store types plug in.
/// The store value of a decoded payload, in the encoding `limits` picks for its size (as
/// Redis converts on load). An empty collection is refused, as Redis refuses one.
pub fn into_value(d: Decoded, limits: &crate::store::Limits) -> Result<Value, RdbError> {
    use crate::store::Kind;
    match d {
        Decoded::Str(s) => Ok(Value::Str(s.into_boxed_slice())),
        Decoded::Hash(pairs) => {
            if pairs.is_empty() {
                return Err(RdbError::Unsupported("empty hash"));
            }
            let mut v = Value::empty(Kind::Hash);
            if let Value::Hash(h) = &mut v {
                for (f, val) in &pairs {
                    h.insert(f, val, limits);
                }
            }
            Ok(v)
        }
        Decoded::List(items) => {
            if items.is_empty() {
                return Err(RdbError::Unsupported("empty list"));
            }
            let list = crate::store::List::from_items(items.iter().map(|e| &e[..]), limits);
            Ok(Value::List(Box::new(list)))
        }
        Decoded::Zset(items) => {
            if items.is_empty() {
                return Err(RdbError::Unsupported("empty zset"));
            }
            let mut v = Value::empty(Kind::Zset);
            if let Value::Zset(z) = &mut v {
                for (m, s) in &items {
                    z.insert(m, *s, limits);
                }
            }
            Ok(v)
        }
        Decoded::Set(members) => {
            if members.is_empty() {
                return Err(RdbError::Unsupported("empty set"));
            }
            let mut v = Value::empty(Kind::Set);
            if let Value::Set(set) = &mut v {
                for m in &members {
                    set.insert(m, limits);
                }
            }
            Ok(v)
        }
    }
}

/// A score saved as text (Redis writes `%.17g`, integers as integers).
fn text_score(b: &[u8]) -> Result<f64, RdbError> {
    crate::args::parse_double(b).ok_or(RdbError::BadFormat)
}

/// A cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, RdbError> {
        let b = *self.buf.get(self.pos).ok_or(RdbError::BadFormat)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let end = self.pos.checked_add(n).ok_or(RdbError::BadFormat)?;
        let s = self.buf.get(self.pos..end).ok_or(RdbError::BadFormat)?;
        self.pos = end;
        Ok(s)
    }

    /// A length, or the special encoding that follows a `11xxxxxx` byte (`Err(enc)`).
    fn len_or_enc(&mut self) -> Result<Result<u64, u8>, RdbError> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Ok((b & 0x3f) as u64),
            1 => Ok((((b & 0x3f) as u64) << 8) | self.byte()? as u64),
            2 => match b {
                0x80 => {
                    let s = self.take(4)?;
                    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as u64)
                }
                0x81 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(self.take(8)?);
                    Ok(u64::from_be_bytes(a))
                }
                _ => return Err(RdbError::BadFormat),
            },
            _ => Err(b & 0x3f),
        })
    }

    fn len(&mut self) -> Result<usize, RdbError> {
        match self.len_or_enc()? {
            Ok(n) => usize::try_from(n).map_err(|_| RdbError::BadFormat),
            Err(_) => Err(RdbError::BadFormat),
        }
    }

    /// An element count, bounded by the bytes left (each element takes at least
    /// `min_bytes_each` strings of one byte or more), so a hostile count allocates nothing.
    fn count(&mut self, strings_each: usize) -> Result<usize, RdbError> {
        let n = self.len()?;
        let left = self.buf.len() - self.pos;
        if n.checked_mul(strings_each).is_none_or(|need| need > left) {
            return Err(RdbError::BadFormat);
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_enc()? {
            Ok(n) => {
                let n = usize::try_from(n).map_err(|_| RdbError::BadFormat)?;
                Ok(self.take(n)?.to_vec())
            }
            Err(ENC_INT8) => Ok(int_string(self.byte()? as i8 as i64)),
            Err(ENC_INT16) => {
                let s = self.take(2)?;
                Ok(int_string(i16::from_le_bytes([s[0], s[1]]) as i64))
            }
            Err(ENC_INT32) => {
                let s = self.take(4)?;
                Ok(int_string(
                    i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                ))
            }
            Err(ENC_LZF) => {
                let clen = self.len()?;
                let len = self.len()?;
                let input = self.take(clen)?;
                lzf_decompress(input, len).ok_or(RdbError::BadFormat)
            }
            Err(_) => Err(RdbError::BadFormat),
        }
    }
}

fn int_string(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// LZF decompression (the format of liblzf, which Redis uses): a control byte below 32 is
/// followed by that many plus one literal bytes; otherwise its top three bits are a length
/// (7 means "plus the next byte"), and with the low five bits and the next byte it names a
/// back reference of length + 2 bytes starting offset + 1 bytes back (it may overlap what it
/// produces). Returns `None` unless the input is well formed and yields exactly `len` bytes.
pub fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    // A 3-byte back reference yields at most 264 bytes, so anything longer is a lie; this
    // keeps a hostile length from allocating more than the input can fill.
    if len > MAX_STRING_LEN || len > input.len().saturating_mul(88).saturating_add(32) {
        return None;
    }
    let mut out = Vec::new();
    crate::lzf::decompress_into(input, len, &mut out).then_some(out)
}

/// An intset blob: encoding (2, 4 or 8 bytes per element), count, then sorted
/// little-endian integers.
fn intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut r = Reader { buf: blob, pos: 0 };
    let head = r.take(8)?;
    let width = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let n = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || n.checked_mul(width) != Some(blob.len() - 8) {
        return Err(RdbError::BadFormat);
    }
    Ok(blob[8..]
        .chunks_exact(width)
        .map(|c| {
            let mut a = [0u8; 8];
            a[..width].copy_from_slice(c);
            let v = match width {
                2 => i16::from_le_bytes([a[0], a[1]]) as i64,
                4 => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as i64,
                _ => i64::from_le_bytes(a),
            };
            int_string(v)
        })
        .collect())
}

/// A listpack blob: total bytes (u32), element count (u16, 65535 = unknown), entries, 0xFF.
/// Each entry is an encoding byte with its data, then a back-length of 1 to 5 bytes.
fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut r = Reader { buf: blob, pos: 0 };
    let head = r.take(6)?;
    let total = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if total != blob.len() {
        return Err(RdbError::BadFormat);
    }
    let mut items = Vec::new();
    loop {
        let start = r.pos;
        let b = r.byte()?;
        let item = match b {
            0xFF => break,
            _ if b & 0x80 == 0 => int_string((b & 0x7f) as i64),
            _ if b & 0xC0 == 0x80 => r.take((b & 0x3f) as usize)?.to_vec(),
            _ if b & 0xE0 == 0xC0 => {
                let raw = (((b & 0x1f) as u16) << 8) | r.byte()? as u16;
                // 13-bit two's complement.
                int_string(((raw << 3) as i16 >> 3) as i64)
            }
            _ if b & 0xF0 == 0xE0 => {
                let n = (((b & 0x0f) as usize) << 8) | r.byte()? as usize;
                r.take(n)?.to_vec()
            }
            0xF0 => {
                let s = r.take(4)?;
                let n = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
                r.take(n)?.to_vec()
            }
            0xF1 => {
                let s = r.take(2)?;
                int_string(i16::from_le_bytes([s[0], s[1]]) as i64)
            }
            0xF2 => {
                let s = r.take(3)?;
                int_string((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64)
            }
            0xF3 => {
                let s = r.take(4)?;
                int_string(i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64)
            }
            0xF4 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(r.take(8)?);
                int_string(i64::from_le_bytes(a))
            }
            _ => return Err(RdbError::BadFormat),
        };
        let entry_len = r.pos - start;
        let backlen = match entry_len {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        r.take(backlen)?;
        items.push(item);
    }
    if r.pos != blob.len() {
        return Err(RdbError::BadFormat);
    }
    let count = u16::from_le_bytes([head[4], head[5]]);
    if count != u16::MAX && count as usize != items.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(items)
}

/// A ziplist blob (lists of Redis before 7.0): total bytes (u32), tail offset (u32), count
/// (u16), entries, 0xFF. An entry is the previous entry's length (1 byte, or 0xFE and a u32),
/// an encoding (`00` a 6-bit, `01` a 14-bit, `10` a 32-bit big-endian string length;
/// `11` integers: 0xC0 i16, 0xD0 i32, 0xE0 i64, 0xF0 i24, 0xFE i8, 0xF1..=0xFD the values
/// 0..=12), then its data.
fn ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut r = Reader { buf: blob, pos: 0 };
    let head = r.take(10)?;
    let total = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if total != blob.len() {
        return Err(RdbError::BadFormat);
    }
    let mut items = Vec::new();
    loop {
        if r.byte()? == 0xFF {
            break;
        }
        r.pos -= 1;
        if r.byte()? == 0xFE {
            r.take(4)?;
        }
        let b = r.byte()?;
        let item = match b >> 6 {
            0 => r.take((b & 0x3f) as usize)?.to_vec(),
            1 => {
                let n = (((b & 0x3f) as usize) << 8) | r.byte()? as usize;
                r.take(n)?.to_vec()
            }
            2 => {
                let s = r.take(4)?;
                r.take(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)?
                    .to_vec()
            }
            _ => match b {
                0xC0 => {
                    let s = r.take(2)?;
                    int_string(i16::from_le_bytes([s[0], s[1]]) as i64)
                }
                0xD0 => {
                    let s = r.take(4)?;
                    int_string(i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64)
                }
                0xE0 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(r.take(8)?);
                    int_string(i64::from_le_bytes(a))
                }
                0xF0 => {
                    let s = r.take(3)?;
                    int_string((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64)
                }
                0xFE => int_string(r.byte()? as i8 as i64),
                0xF1..=0xFD => int_string((b & 0x0f) as i64 - 1),
                _ => return Err(RdbError::BadFormat),
            },
        };
        items.push(item);
    }
    if r.pos != blob.len() {
        return Err(RdbError::BadFormat);
    }
    let count = u16::from_le_bytes([head[8], head[9]]);
    if count != u16::MAX && count as usize != items.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(items)
}

#[cfg(test)]
mod tests;
