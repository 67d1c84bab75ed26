//! The store's side of a slot handoff: copy a slot out, load entries in, drop a slot.
//!
//! Entries travel with their absolute expiry time, so a TTL keeps counting while the key
//! moves, and an entry that expires before it arrives is simply not stored (never
//! resurrected).
//!
//! A value travels typed, as one self-describing byte string ([`encode_value`],
//! [`decode_value`], the only place that knows the format):
//!
//! ```text
//! [version = 1][kind: 0 string, 1 hash, 2 set, 3 list, 4 sorted set][payload]
//! string: the bytes
//! hash:   count (LEB128), then per field: length, field, length, value
//! set:    count (LEB128), then per member: length, member
//! list:   count (LEB128), then per element, front to back: length, element
//! zset:   count (LEB128), then per member in order: length, member, score (f64, LE)
//! ```
//!
//! The receiver rebuilds each collection under its own encoding thresholds. A new type or
//! a change of layout takes a new kind or version; a node refuses what it cannot read.

use super::list::End;
use super::value::{Hash, Kind, Limits, Set, Value};
use super::zset::Zset;
use super::{Db, EntryRef, NO_EXPIRY};
use bytes::Bytes;

/// One key as it travels between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub key: Bytes,
    /// The value, serialized by [`encode_value`].
    pub value: Bytes,
    /// Absolute expiry in Unix ms, or [`NO_EXPIRY`].
    pub expire_at: u64,
}

/// The serialization's version byte.
pub const ENCODING_VERSION: u8 = 1;

/// Why a received value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown value encoding version {0}")]
    Version(u8),
    #[error("unknown value kind {0}")]
    Kind(u8),
    #[error("value truncated")]
    Truncated,
    #[error("trailing bytes after the value")]
    Trailing,
    #[error("a sorted set member's score is not a number")]
    Score,
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Serializes a live entry's value (see the module docs).
pub fn encode_value(e: &EntryRef<'_>) -> Vec<u8> {
    match e.obj() {
        None => {
            let s = e.as_str().unwrap_or_default();
            let mut out = Vec::with_capacity(2 + s.len());
            out.extend_from_slice(&[ENCODING_VERSION, 0]);
            out.extend_from_slice(s);
            out
        }
        Some(v) => encode_owned(&v),
    }
}

/// Serializes a value.
pub fn encode_owned(v: &Value) -> Vec<u8> {
    let mut out = vec![ENCODING_VERSION];
    match v {
        Value::Str(s) => {
            out.push(0);
            out.extend_from_slice(s);
        }
        Value::Hash(h) => {
            out.push(1);
            put_len(&mut out, h.len());
            for (f, v) in h.iter() {
                put_bytes(&mut out, f);
                put_bytes(&mut out, v);
            }
        }
        Value::Set(s) => {
            out.push(2);
            put_len(&mut out, s.len());
            for m in s.iter() {
                m.with_bytes(|b| put_bytes(&mut out, b));
            }
        }
        Value::List(l) => {
            out.push(3);
            put_len(&mut out, l.len());
            let mut c = l.cursor();
            while let Some(m) = c.next() {
                m.with_bytes(|b| put_bytes(&mut out, b));
            }
        }
        Value::Zset(z) => {
            out.push(4);
            put_len(&mut out, z.len());
            z.for_each(|m, s| {
                put_bytes(&mut out, m);
                out.extend_from_slice(&s.to_le_bytes());
            });
        }
    }
    out
}

/// Reads what [`encode_value`] wrote. Counts and lengths come from the network: each is
/// checked against the bytes actually left, so nothing is allocated on a claim.
pub fn decode_value(b: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    let (&version, rest) = b.split_first().ok_or(DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (&kind, mut rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
    let kind = match kind {
        0 => return Ok(Value::str(rest)),
        1 => Kind::Hash,
        2 => Kind::Set,
        3 => Kind::List,
        4 => return decode_zset(rest, limits),
        k => return Err(DecodeError::Kind(k)),
    };
    let n = get_len(&mut rest)?;
    let mut v = Value::empty(kind);
    for _ in 0..n {
        match &mut v {
            Value::Hash(h) => {
                let f = get_bytes(&mut rest)?;
                let val = get_bytes(&mut rest)?;
                Hash::insert(h, f, val, limits);
            }
            Value::Set(s) => {
                let m = get_bytes(&mut rest)?;
                Set::insert(s, m, limits);
            }
            Value::List(l) => {
                let e = get_bytes(&mut rest)?;
                l.push(End::Right, e, limits);
            }
            Value::Str(_) | Value::Zset(_) => {}
        }
    }
    if !rest.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(v)
}

/// A sorted set's payload: members arrive in order, so a large one is built whole.
fn decode_zset(mut rest: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    let n = get_len(&mut rest)?;
    // Each member takes at least 9 bytes: a claimed count beyond that is a lie.
    if n > rest.len() / 9 {
        return Err(DecodeError::Truncated);
    }
    let mut items: Vec<(&[u8], f64)> = Vec::with_capacity(n);
    for _ in 0..n {
        let m = get_bytes(&mut rest)?;
        let raw = rest.get(..8).ok_or(DecodeError::Truncated)?;
        rest = &rest[8..];
        let s = f64::from_le_bytes(raw.try_into().map_err(|_| DecodeError::Truncated)?);
        if s.is_nan() {
            return Err(DecodeError::Score);
        }
        items.push((m, s));
    }
    if !rest.is_empty() {
        return Err(DecodeError::Trailing);
    }
    let ordered = items
        .windows(2)
        .all(|w| super::zset::cmp_elem(w[0].1, w[0].0, w[1].1, w[1].0) == std::cmp::Ordering::Less);
    let mut members = std::collections::HashSet::with_capacity(items.len());
    if ordered && items.iter().all(|(m, _)| members.insert(*m)) {
        return Ok(Value::Zset(Zset::from_sorted(&items, limits)));
    }
    // Out of order or repeated (not what a node sends): insert one by one.
    let mut z = Zset::default();
    for (m, s) in items {
        z.insert(m, s, limits);
    }
    Ok(Value::Zset(z))
}

fn get_len(b: &mut &[u8]) -> Result<usize, DecodeError> {
    let (mut n, mut shift) = (0usize, 0u32);
    loop {
        let (&byte, rest) = b.split_first().ok_or(DecodeError::Truncated)?;
        *b = rest;
        if shift >= 63 {
            return Err(DecodeError::Truncated);
        }
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
        shift += 7;
    }
}

fn get_bytes<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let n = get_len(b)?;
    if n > b.len() {
        return Err(DecodeError::Truncated);
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

impl Db {
    /// Copies every live entry of `slot`.
    pub fn export_slot(&self, slot: u16, now: u64) -> Vec<Exported> {
        let g = self.lock(slot);
        let t = &g.t;
        (0..t.map.len())
            .filter_map(|p| t.entry_at(p))
            .filter(|e| e.expire_at().is_none_or(|at| at > now))
            .map(|e| Exported {
                key: Bytes::copy_from_slice(e.kv.key()),
                value: encode_value(&e).into(),
                expire_at: e.expire_at,
            })
            .collect()
    }

    /// Stores entries received from another node, replacing what is there. Entries already
    /// expired at `now` are skipped. Returns how many were stored; when a value cannot be
    /// read, nothing is stored.
    pub fn import(&self, entries: &[Exported], now: u64) -> Result<usize, DecodeError> {
        let limits = self.limits();
        let values = entries
            .iter()
            .map(|e| decode_value(&e.value, &limits))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stored = 0;
        for (e, v) in entries.iter().zip(values) {
            let mut g = self.lock_key(&e.key);
            if e.expire_at != NO_EXPIRY && e.expire_at <= now {
                g.remove(&e.key, now);
                continue;
            }
            g.set(&e.key, v, e.expire_at, now);
            stored += 1;
        }
        Ok(stored)
    }

    /// Removes every key of `slot` (after it has been handed off), returning how many.
    pub fn drop_slot(&self, slot: u16) -> usize {
        let mut g = self.lock(slot);
        let n = g.len();
        g.modified_all();
        g.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Value;
    use chkv_common::key_slot;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn export_import_drop() {
        let src = Db::new();
        let keys = ["{s}a", "{s}b", "{s}c"];
        src.lock_key(b"{s}a")
            .set(b"{s}a", Value::str(b"1"), NO_EXPIRY, T0);
        src.lock_key(b"{s}b")
            .set(b"{s}b", Value::str(b"2"), T0 + 5000, T0);
        src.lock_key(b"{s}c")
            .set(b"{s}c", Value::str(b"3"), T0 + 10, T0);
        let slot = key_slot(keys[0].as_bytes());
        // At T0+20 the third key has expired: it is not exported.
        let out = src.export_slot(slot, T0 + 20);
        assert_eq!(out.len(), 2);
        let dst = Db::new();
        // The copy arrives after the second key's TTL ran out: it is not resurrected.
        assert_eq!(dst.import(&out, T0 + 6000), Ok(1));
        assert_eq!(dst.len(), 1);
        let dst2 = Db::new();
        assert_eq!(dst2.import(&out, T0 + 100), Ok(2));
        let mut g = dst2.lock_key(b"{s}b");
        assert_eq!(
            g.peek(b"{s}b", T0 + 100).and_then(|e| e.expire_at()),
            Some(T0 + 5000)
        );
        drop(g);
        assert_eq!(src.drop_slot(slot), 3);
        assert_eq!((src.len(), src.used_memory()), (0, 0));
    }

    #[test]
    fn typed_values_travel_with_their_ttl() {
        let l = Limits::default();
        let src = Db::new();
        let mut g = src.lock_key(b"{t}h");
        g.modify(b"{t}h", T0, Kind::Hash, true, |v| {
            if let Value::Hash(h) = v {
                h.insert(b"f", b"v", &l);
                h.insert(b"g", b"", &l);
            }
        })
        .expect("a hash");
        g.set_expire(b"{t}h", T0 + 9000, T0);
        drop(g);
        let mut big = Set::default();
        for i in 0..600 {
            big.insert(format!("{i}").as_bytes(), &l);
        }
        src.lock_key(b"{t}s")
            .set(b"{t}s", Value::Set(big.clone()), NO_EXPIRY, T0);
        src.lock_key(b"{t}x")
            .set(b"{t}x", Value::str(b"str"), NO_EXPIRY, T0);
        // A small set of strings: a listpack, kept inline in its entry's block.
        let mut lp = Set::for_member(b"a", &l);
        for m in ["a", "bb", "ccc"] {
            lp.insert(m.as_bytes(), &l);
        }
        src.lock_key(b"{t}p")
            .set(b"{t}p", Value::Set(lp.clone()), T0 + 7000, T0);
        let mut small = Zset::default();
        let mut large = Zset::default();
        for i in 0..300 {
            large.insert(format!("m{i}").as_bytes(), (i % 7) as f64 - 0.5, &l);
        }
        small.insert(b"a", f64::INFINITY, &l);
        small.insert(b"b", -2.25, &l);
        src.lock_key(b"{t}z")
            .set(b"{t}z", Value::Zset(small.clone()), NO_EXPIRY, T0);
        src.lock_key(b"{t}Z")
            .set(b"{t}Z", Value::Zset(large.clone()), NO_EXPIRY, T0);
        let out = src.export_slot(key_slot(b"{t}h"), T0);
        assert_eq!(out.len(), 6);
        let dst = Db::new();
        assert_eq!(dst.import(&out, T0 + 1), Ok(6));
        let mut g = dst.lock_key(b"{t}h");
        let e = g.peek(b"{t}h", T0 + 1).expect("hash arrived");
        assert_eq!(e.expire_at(), Some(T0 + 9000));
        let h = e.as_hash().expect("still a hash");
        assert_eq!(
            (h.get(b"f"), h.get(b"g"), h.len()),
            (Some(&b"v"[..]), Some(&b""[..]), 2)
        );
        let e = g.peek(b"{t}s", T0 + 1).expect("set arrived");
        assert_eq!(*e.as_set().expect("a set"), big);
        assert_eq!(e.obj().map(|v| v.encoding()), Some("hashtable"));
        let e = g.peek(b"{t}p", T0 + 1).expect("small set arrived");
        assert_eq!(*e.as_set().expect("a set"), lp);
        assert_eq!(
            (e.obj().map(|v| v.encoding()), e.expire_at()),
            (Some("listpack"), Some(T0 + 7000))
        );
        assert_eq!(
            g.peek(b"{t}h", T0 + 1)
                .and_then(|e| e.obj().map(|v| v.encoding())),
            Some("listpack")
        );
        assert_eq!(
            g.peek(b"{t}x", T0 + 1).and_then(|e| e.as_str()),
            Some(&b"str"[..])
        );
        for (k, z, enc) in [
            (&b"{t}z"[..], &small, "listpack"),
            (b"{t}Z", &large, "skiplist"),
        ] {
            let e = g.peek(k, T0 + 1).expect("sorted set arrived");
            assert_eq!(e.collection::<Zset>().ok().as_deref(), Some(z));
            assert_eq!(e.obj().map(|v| v.encoding()), Some(enc));
        }
        drop(g);
        assert_eq!(dst.used_memory(), src.used_memory());
    }

    #[test]
    fn lists_travel_in_order() {
        let l = Limits::default();
        let src = Db::new();
        let items: Vec<Vec<u8>> = (0..3000)
            .map(|i| match i % 3 {
                0 => i.to_string().into_bytes(),
                1 => format!("e{i}").into_bytes(),
                _ => vec![b'x'; i % 200],
            })
            .collect();
        let list = crate::store::List::from_items(items.iter().map(|e| &e[..]), &l);
        src.lock_key(b"{l}a")
            .set(b"{l}a", Value::List(Box::new(list.clone())), T0 + 500, T0);
        let out = src.export_slot(key_slot(b"{l}a"), T0);
        let dst = Db::new();
        assert_eq!(dst.import(&out, T0 + 1), Ok(1));
        let mut g = dst.lock_key(b"{l}a");
        let e = g.peek(b"{l}a", T0 + 1).expect("list arrived");
        assert_eq!(e.expire_at(), Some(T0 + 500));
        assert_eq!(e.collection::<crate::store::List>().as_deref(), Ok(&list));
    }

    #[test]
    fn hostile_values_are_refused() {
        let l = Limits::default();
        assert_eq!(decode_value(b"", &l), Err(DecodeError::Empty));
        assert_eq!(decode_value(b"\x09\x00", &l), Err(DecodeError::Version(9)));
        assert_eq!(decode_value(b"\x01", &l), Err(DecodeError::Truncated));
        assert_eq!(decode_value(b"\x01\x07", &l), Err(DecodeError::Kind(7)));
        // A count far beyond the bytes: refused without allocating for it.
        assert_eq!(
            decode_value(b"\x01\x02\xff\xff\xff\xff\x0f\x01a", &l),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_value(b"\x01\x02\x01\x05ab", &l),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_value(b"\x01\x02\x01\x01ab", &l),
            Err(DecodeError::Trailing)
        );
        assert_eq!(
            decode_value(
                &[1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
                &l
            ),
            Err(DecodeError::Truncated)
        );
        // A sorted set with a NaN score, or a count its bytes cannot hold.
        let mut nan = vec![1, 4, 1, 1, b'a'];
        nan.extend_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(decode_value(&nan, &l), Err(DecodeError::Score));
        assert_eq!(
            decode_value(b"\x01\x04\xff\xff\x03\x01a", &l),
            Err(DecodeError::Truncated)
        );
        let dst = Db::new();
        let bad = Exported {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"\x01\x09"),
            expire_at: NO_EXPIRY,
        };
        assert!(dst.import(&[bad], T0).is_err());
        assert_eq!(dst.len(), 0);
    }
}
