//! Bitmaps, LCS and HyperLogLog: typed methods for SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD, BITFIELD_RO, LCS, PFADD, PFCOUNT and PFMERGE. They all work on string values.
//!
//! BITOP, LCS, PFCOUNT (of several keys) and PFMERGE read or write several keys atomically,
//! so their keys must share a slot (hash tags: `{stats}.mon`, `{stats}.tue`), else they fail
//! with `CROSSSLOT`, as in Redis Cluster.

use bytes::Bytes;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::value::Value;

/// Whether BITCOUNT/BITPOS ranges count bytes or bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BitUnit {
    #[default]
    Byte,
    Bit,
}

impl BitUnit {
    fn arg(self) -> &'static [u8] {
        match self {
            BitUnit::Byte => b"BYTE",
            BitUnit::Bit => b"BIT",
        }
    }
}

/// BITOP's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    /// Takes exactly one source key.
    Not,
}

/// A BITFIELD integer type: `i1`..`i64` (signed) or `u1`..`u63` (unsigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitFieldType {
    pub signed: bool,
    pub bits: u8,
}

impl BitFieldType {
    /// A signed type of `bits` bits (1 to 64).
    pub fn signed(bits: u8) -> BitFieldType {
        BitFieldType { signed: true, bits }
    }

    /// An unsigned type of `bits` bits (1 to 63).
    pub fn unsigned(bits: u8) -> BitFieldType {
        BitFieldType {
            signed: false,
            bits,
        }
    }

    fn arg(self) -> String {
        format!("{}{}", if self.signed { 'i' } else { 'u' }, self.bits)
    }
}

/// Where a BITFIELD field starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOffset {
    /// At this bit.
    Bit(u64),
    /// The n-th field of the type's width (`#n`: bit `n * bits`).
    Index(u64),
}

impl BitOffset {
    fn arg(self) -> String {
        match self {
            BitOffset::Bit(n) => n.to_string(),
            BitOffset::Index(n) => format!("#{n}"),
        }
    }
}

/// What BITFIELD writes do when a value does not fit the field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BitOverflow {
    /// Wrap around (the default).
    #[default]
    Wrap,
    /// Saturate at the type's minimum or maximum.
    Sat,
    /// Do not write; the operation's result is `None`.
    Fail,
}

/// One BITFIELD operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitFieldOp {
    Get(BitFieldType, BitOffset),
    /// Writes a value; the result is the field's previous value.
    Set(BitFieldType, BitOffset, i64),
    /// Adds to a field; the result is its new value.
    IncrBy(BitFieldType, BitOffset, i64),
    /// The overflow behaviour of the following SET and INCRBY operations.
    Overflow(BitOverflow),
}

impl BitFieldOp {
    fn push_args(&self, out: &mut Vec<Vec<u8>>) {
        let mut push = |parts: &[&[u8]]| out.extend(parts.iter().map(|p| p.to_vec()));
        match *self {
            BitFieldOp::Get(t, o) => push(&[b"GET", t.arg().as_bytes(), o.arg().as_bytes()]),
            BitFieldOp::Set(t, o, v) => push(&[
                b"SET",
                t.arg().as_bytes(),
                o.arg().as_bytes(),
                v.to_string().as_bytes(),
            ]),
            BitFieldOp::IncrBy(t, o, v) => push(&[
                b"INCRBY",
                t.arg().as_bytes(),
                o.arg().as_bytes(),
                v.to_string().as_bytes(),
            ]),
            BitFieldOp::Overflow(ow) => push(&[
                b"OVERFLOW",
                match ow {
                    BitOverflow::Wrap => b"WRAP",
                    BitOverflow::Sat => b"SAT",
                    BitOverflow::Fail => b"FAIL",
                },
            ]),
        }
    }
}

/// One common substring LCS IDX reports: its ranges in the first and the second string
/// (inclusive), and its length when asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LcsMatch {
    pub first: (i64, i64),
    pub second: (i64, i64),
    pub len: Option<i64>,
}

/// LCS IDX's answer: the matches, from the end of the strings, and the LCS length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LcsIdx {
    pub matches: Vec<LcsMatch>,
    pub len: i64,
}

fn range_of(v: Value) -> Result<(i64, i64)> {
    let r: Vec<i64> = v.convert()?;
    match r[..] {
        [a, b] => Ok((a, b)),
        _ => Err(Error::Invalid(format!("LCS range of {} numbers", r.len()))),
    }
}

impl LcsIdx {
    /// From the reply: a map (RESP3) or a flat array of name/value pairs (RESP2).
    fn from_reply(v: Value) -> Result<LcsIdx> {
        let pairs: Vec<(Value, Value)> = match v {
            Value::Map(pairs) => pairs,
            Value::Array(items) => {
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            Value::Error(e) => return Err(Error::Server(e)),
            other => return Err(Error::Invalid(format!("LCS IDX reply {other:?}"))),
        };
        let mut out = LcsIdx {
            matches: Vec::new(),
            len: 0,
        };
        for (k, v) in pairs {
            match k.as_bytes() {
                Some(b"len") => out.len = v.convert()?,
                Some(b"matches") => {
                    let items: Vec<Value> = v.convert()?;
                    for m in items {
                        let mut parts: Vec<Value> = m.convert()?;
                        if parts.len() < 2 {
                            return Err(Error::Invalid("LCS match too short".into()));
                        }
                        let len = if parts.len() > 2 {
                            Some(parts.remove(2).convert()?)
                        } else {
                            None
                        };
                        let second = range_of(parts.remove(1))?;
                        let first = range_of(parts.remove(0))?;
                        out.matches.push(LcsMatch { first, second, len });
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl Client {
    /// SETBIT: sets or clears bit `offset` (zero-extending the string); the bit's old value.
    pub async fn setbit(&self, key: impl AsRef<[u8]>, offset: u64, on: bool) -> Result<bool> {
        let key = key.as_ref();
        let o = offset.to_string();
        let v: &[u8] = if on { b"1" } else { b"0" };
        self.keyed(key, &[b"SETBIT", key, o.as_bytes(), v]).await
    }

    /// GETBIT: bit `offset` (0 past the end or for a missing key).
    pub async fn getbit(&self, key: impl AsRef<[u8]>, offset: u64) -> Result<bool> {
        let key = key.as_ref();
        let o = offset.to_string();
        self.keyed(key, &[b"GETBIT", key, o.as_bytes()]).await
    }

    /// BITCOUNT: the number of set bits in the whole string.
    pub async fn bitcount(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"BITCOUNT", key]).await
    }

    /// BITCOUNT over `start..=end` (negative from the end), in bytes or bits.
    pub async fn bitcount_range(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        end: i64,
        unit: BitUnit,
    ) -> Result<i64> {
        let key = key.as_ref();
        let (s, e) = (start.to_string(), end.to_string());
        self.keyed(
            key,
            &[b"BITCOUNT", key, s.as_bytes(), e.as_bytes(), unit.arg()],
        )
        .await
    }

    /// BITPOS: the first bit set to `bit`, or -1 (for a clear bit, the first one past the
    /// string when it has none).
    pub async fn bitpos(&self, key: impl AsRef<[u8]>, bit: bool) -> Result<i64> {
        let key = key.as_ref();
        let b: &[u8] = if bit { b"1" } else { b"0" };
        self.keyed(key, &[b"BITPOS", key, b]).await
    }

    /// BITPOS within `start..=end` (to the end when `end` is `None`), in bytes or bits. With
    /// an end given, a clear bit not found in the range is -1.
    pub async fn bitpos_range(
        &self,
        key: impl AsRef<[u8]>,
        bit: bool,
        start: i64,
        end: Option<i64>,
        unit: BitUnit,
    ) -> Result<i64> {
        let key = key.as_ref();
        let b: &[u8] = if bit { b"1" } else { b"0" };
        let s = start.to_string();
        match end {
            Some(e) => {
                let e = e.to_string();
                self.keyed(
                    key,
                    &[b"BITPOS", key, b, s.as_bytes(), e.as_bytes(), unit.arg()],
                )
                .await
            }
            None if unit == BitUnit::Byte => {
                self.keyed(key, &[b"BITPOS", key, b, s.as_bytes()]).await
            }
            None => Err(Error::Invalid(
                "BITPOS in bits needs an end (use -1 for the end of the string)".into(),
            )),
        }
    }

    /// BITOP: stores `op` of `sources` at `dest` (all in one slot); the result's length.
    pub async fn bitop<K: AsRef<[u8]>>(
        &self,
        op: BitOp,
        dest: impl AsRef<[u8]>,
        sources: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        let name: &[u8] = match op {
            BitOp::And => b"AND",
            BitOp::Or => b"OR",
            BitOp::Xor => b"XOR",
            BitOp::Not => b"NOT",
        };
        let sources: Vec<K> = sources.into_iter().collect();
        let mut args: Vec<&[u8]> = vec![b"BITOP", name, dest.as_ref()];
        args.extend(sources.iter().map(AsRef::as_ref));
        self.same_slot(&args).await
    }

    /// BITFIELD: runs `ops` in order; one result per GET, SET and INCRBY (`None` for a write
    /// that overflowed under [`BitOverflow::Fail`]).
    pub async fn bitfield(
        &self,
        key: impl AsRef<[u8]>,
        ops: &[BitFieldOp],
    ) -> Result<Vec<Option<i64>>> {
        self.bitfield_generic(b"BITFIELD", key.as_ref(), ops).await
    }

    /// BITFIELD_RO: GETs only (served by replicas in Redis); one value per GET.
    pub async fn bitfield_ro(
        &self,
        key: impl AsRef<[u8]>,
        gets: &[(BitFieldType, BitOffset)],
    ) -> Result<Vec<i64>> {
        let ops: Vec<BitFieldOp> = gets.iter().map(|&(t, o)| BitFieldOp::Get(t, o)).collect();
        let out = self
            .bitfield_generic(b"BITFIELD_RO", key.as_ref(), &ops)
            .await?;
        Ok(out.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    async fn bitfield_generic(
        &self,
        name: &[u8],
        key: &[u8],
        ops: &[BitFieldOp],
    ) -> Result<Vec<Option<i64>>> {
        let mut owned: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            op.push_args(&mut owned);
        }
        let mut args: Vec<&[u8]> = vec![name, key];
        args.extend(owned.iter().map(Vec::as_slice));
        self.keyed(key, &args).await
    }

    /// LCS: the longest common subsequence of the strings at `a` and `b` (one slot).
    pub async fn lcs(&self, a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> Result<Bytes> {
        self.same_slot(&[b"LCS", a.as_ref(), b.as_ref()]).await
    }

    /// LCS LEN: the length of the longest common subsequence.
    pub async fn lcs_len(&self, a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> Result<i64> {
        self.same_slot(&[b"LCS", a.as_ref(), b.as_ref(), b"LEN"])
            .await
    }

    /// LCS IDX: where the common substrings are, those shorter than `min_match_len` left
    /// out, with their lengths when `with_match_len`.
    pub async fn lcs_idx(
        &self,
        a: impl AsRef<[u8]>,
        b: impl AsRef<[u8]>,
        min_match_len: u64,
        with_match_len: bool,
    ) -> Result<LcsIdx> {
        let min = min_match_len.to_string();
        let mut args: Vec<&[u8]> = vec![
            b"LCS",
            a.as_ref(),
            b.as_ref(),
            b"IDX",
            b"MINMATCHLEN",
            min.as_bytes(),
        ];
        if with_match_len {
            args.push(b"WITHMATCHLEN");
        }
        let v: Value = self.same_slot(&args).await?;
        LcsIdx::from_reply(v)
    }

    /// PFADD: adds `elements` to the HyperLogLog at `key` (created when missing); whether
    /// its estimate may have changed.
    pub async fn pfadd<E: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = E>,
    ) -> Result<bool> {
        let key = key.as_ref();
        let elements: Vec<E> = elements.into_iter().collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", key];
        args.extend(elements.iter().map(AsRef::as_ref));
        self.keyed(key, &args).await
    }

    /// PFCOUNT: the estimated number of distinct elements added to `keys` (their union; the
    /// keys must share a slot).
    pub async fn pfcount<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("PFCOUNT needs a key".into()));
        }
        let mut args: Vec<&[u8]> = vec![b"PFCOUNT"];
        args.extend(keys.iter().map(AsRef::as_ref));
        self.same_slot(&args).await
    }

    /// PFMERGE: stores the union of `dest` and `sources` at `dest` (all in one slot).
    pub async fn pfmerge<K: AsRef<[u8]>>(
        &self,
        dest: impl AsRef<[u8]>,
        sources: impl IntoIterator<Item = K>,
    ) -> Result<()> {
        let sources: Vec<K> = sources.into_iter().collect();
        let mut args: Vec<&[u8]> = vec![b"PFMERGE", dest.as_ref()];
        args.extend(sources.iter().map(AsRef::as_ref));
        self.same_slot(&args).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfield_arguments() {
        let mut out = Vec::new();
        BitFieldOp::Set(BitFieldType::signed(8), BitOffset::Index(2), -3).push_args(&mut out);
        BitFieldOp::Overflow(BitOverflow::Sat).push_args(&mut out);
        BitFieldOp::IncrBy(BitFieldType::unsigned(4), BitOffset::Bit(7), 1).push_args(&mut out);
        let text: Vec<String> = out
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(
            text,
            ["SET", "i8", "#2", "-3", "OVERFLOW", "SAT", "INCRBY", "u4", "7", "1"]
        );
    }

    #[test]
    fn lcs_idx_from_resp2_and_resp3() {
        let range = |a, b| Value::Array(vec![Value::Int(a), Value::Int(b)]);
        let matches = Value::Array(vec![Value::Array(vec![
            range(4, 7),
            range(5, 8),
            Value::Int(4),
        ])]);
        let want = LcsIdx {
            matches: vec![LcsMatch {
                first: (4, 7),
                second: (5, 8),
                len: Some(4),
            }],
            len: 6,
        };
        let resp2 = Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"matches")),
            matches.clone(),
            Value::Bulk(Bytes::from_static(b"len")),
            Value::Int(6),
        ]);
        assert_eq!(LcsIdx::from_reply(resp2).expect("resp2"), want);
        let resp3 = Value::Map(vec![
            (Value::Bulk(Bytes::from_static(b"matches")), matches),
            (Value::Bulk(Bytes::from_static(b"len")), Value::Int(6)),
        ]);
        assert_eq!(LcsIdx::from_reply(resp3).expect("resp3"), want);
    }
}
