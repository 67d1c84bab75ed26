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
//!
//! A value too large to travel in one transfer travels in [`Piece`]s, each encoded like a
//! whole value: a string's bytes `offset..`, or a collection's elements from index `offset`
//! on (in the order above). The piece at offset 0 creates the key, replacing what was there;
//! each later one adds to it ([`Db::import_piece`]). Neither side holds more than a piece
//! beyond the value itself: the sender reads each piece from its store when it sends it
//! ([`Db::export_more`]), the receiver writes it into the value it is building. While the
//! pieces travel the slot is frozen on the sender, so the value does not change in between;
//! it may only disappear (evicted, expired), and then the receiver is told to drop what it
//! has of it ([`TOMBSTONE`]). On the receiver the half-built value is invisible: the slot
//! is not its own before the flip, and a slot it gains without one is emptied first.

use super::list::End;
use super::value::{Hash, Kind, Limits, Set, Value};
use super::zset::Zset;
use super::{Db, EntryRef, MAX_STRING_LEN, NO_EXPIRY};
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

/// What a slot's export sends: a whole entry, or a piece of a value too large for one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Whole(Exported),
    Piece(Piece),
}

/// A piece of one value (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub key: Bytes,
    /// Absolute expiry in Unix ms, or [`NO_EXPIRY`]; the same in every piece of a value.
    pub expire_at: u64,
    /// The whole value's length: bytes of a string, elements of a collection.
    pub total: usize,
    /// Where this piece starts, in the same unit.
    pub offset: usize,
    /// The piece, encoded like a whole value ([`encode_value`]).
    pub value: Bytes,
}

/// The expiry of an entry that tells the receiver to drop the key: a value whose pieces
/// stopped half-way (the key was evicted or expired on the sender meanwhile). Any time in
/// the past would do; an import of an entry already expired removes the key.
pub const TOMBSTONE: u64 = 1;

/// A slot's export in progress: the keys still to copy, in order, and how far into the
/// first of them ([`Db::export_start`], [`Db::export_more`]).
#[derive(Debug, Default)]
pub struct SlotExport {
    keys: Vec<Bytes>,
    next: usize,
    offset: usize,
}

impl SlotExport {
    /// Whether everything has been exported.
    pub fn is_done(&self) -> bool {
        self.next >= self.keys.len()
    }
}

/// What a value weighs when choosing whole or in pieces: a string's length, a collection's
/// heap size (about its encoding's length or more).
fn weight(e: &EntryRef<'_>) -> usize {
    match e.obj() {
        None => e.as_str().map_or(0, <[u8]>::len),
        Some(v) => v.heap_size(),
    }
}

/// Encodes the piece of `e`'s value that starts at `offset` and holds about `max` bytes (at
/// least one byte or element). Returns the value's total length and the piece's encoding
/// and end, or `None` when `offset` is past the end.
fn encode_piece(e: &EntryRef<'_>, offset: usize, max: usize) -> Option<(usize, Vec<u8>, usize)> {
    let v = match e.obj() {
        None => return string_piece(e.as_str().unwrap_or_default(), offset, max),
        Some(v) => v,
    };
    let total = v.len();
    if offset >= total {
        return None;
    }
    let mut body = Vec::new();
    let mut n = 0;
    let full = |body: &Vec<u8>| body.len() >= max;
    let kind = match &*v {
        // Not stored this way (strings live in the entry), but readable all the same.
        Value::Str(s) => return string_piece(s, offset, max),
        Value::Hash(h) => {
            for (f, val) in h.iter().skip(offset) {
                put_bytes(&mut body, f);
                put_bytes(&mut body, val);
                n += 1;
                if full(&body) {
                    break;
                }
            }
            1
        }
        Value::Set(s) => {
            for m in s.iter().skip(offset) {
                m.with_bytes(|b| put_bytes(&mut body, b));
                n += 1;
                if full(&body) {
                    break;
                }
            }
            2
        }
        Value::List(l) => {
            let mut c = l.cursor_from(offset);
            while let Some(m) = c.next() {
                m.with_bytes(|b| put_bytes(&mut body, b));
                n += 1;
                if full(&body) {
                    break;
                }
            }
            3
        }
        Value::Zset(z) => {
            // By rank, 8 at a time: a sorted set's range walks O(log n) to its start.
            let mut at = offset;
            while at < total && !full(&body) {
                let hi = (at + 8).min(total);
                z.range(at, hi, false, |m, s| {
                    put_bytes(&mut body, m);
                    body.extend_from_slice(&s.to_le_bytes());
                });
                at = hi;
            }
            n = at - offset;
            4
        }
    };
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(&[ENCODING_VERSION, kind]);
    put_len(&mut out, n);
    out.extend_from_slice(&body);
    Some((total, out, offset + n))
}

/// [`encode_piece`] of a string: its bytes `offset..` up to `max` of them.
fn string_piece(s: &[u8], offset: usize, max: usize) -> Option<(usize, Vec<u8>, usize)> {
    let end = offset.checked_add(max.max(1))?.min(s.len());
    let part = s.get(offset..end).filter(|p| !p.is_empty())?;
    let mut out = Vec::with_capacity(2 + part.len());
    out.extend_from_slice(&[ENCODING_VERSION, 0]);
    out.extend_from_slice(part);
    Some((s.len(), out, end))
}

impl Exported {
    /// `e` under `key`, whole.
    fn whole(key: Bytes, e: &EntryRef<'_>) -> Exported {
        Exported {
            key,
            value: encode_value(e).into(),
            expire_at: e.expire_at,
        }
    }

    /// An entry that makes the receiver drop `key` (see [`TOMBSTONE`]).
    pub fn tombstone(key: Bytes) -> Exported {
        Exported {
            key,
            value: Bytes::from_static(&[ENCODING_VERSION, 0]),
            expire_at: TOMBSTONE,
        }
    }
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
    #[error("a piece does not fit the value it belongs to")]
    Piece,
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
    let (kind, rest) = split_header(b)?;
    decode_body(kind, rest, limits)
}

/// The version and kind bytes that start every encoded value (or piece), checked; and what
/// follows them.
fn split_header(b: &[u8]) -> Result<(Kind, &[u8]), DecodeError> {
    let (&version, rest) = b.split_first().ok_or(DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (&kind, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
    let kind = match kind {
        0 => Kind::String,
        1 => Kind::Hash,
        2 => Kind::Set,
        3 => Kind::List,
        4 => Kind::Zset,
        k => return Err(DecodeError::Kind(k)),
    };
    Ok((kind, rest))
}

/// A value of `kind` from what follows its header.
fn decode_body(kind: Kind, rest: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    match kind {
        Kind::String => Ok(Value::str(rest)),
        Kind::Zset => decode_zset(rest, limits),
        _ => {
            let mut v = Value::empty(kind);
            decode_into(&mut v, rest, limits)?;
            Ok(v)
        }
    }
}

/// Adds the elements of a collection's payload (count, then elements) to `v`, of the same
/// kind: a later [`Piece`] of a value. What was added before an error stays; the import
/// that failed makes its batch's flip refused, and the next attempt starts the slot over.
fn decode_into(v: &mut Value, mut rest: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    let n = get_len(&mut rest)?;
    for _ in 0..n {
        match v {
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
            Value::Zset(z) => {
                let (m, s) = get_scored(&mut rest)?;
                z.insert(m, s, limits);
            }
            Value::Str(_) => return Err(DecodeError::Piece),
        }
    }
    if !rest.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(())
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
        items.push(get_scored(&mut rest)?);
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

/// A sorted set's member and its score (not NaN).
fn get_scored<'a>(b: &mut &'a [u8]) -> Result<(&'a [u8], f64), DecodeError> {
    let m = get_bytes(b)?;
    let (raw, rest) = b.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
    *b = rest;
    let s = f64::from_le_bytes(*raw);
    if s.is_nan() {
        return Err(DecodeError::Score);
    }
    Ok((m, s))
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
    /// Copies every live entry of `slot` whole, at once: [`Db::export_start`] without its
    /// bounds, for tests.
    #[cfg(test)]
    pub fn export_slot(&self, slot: u16, now: u64) -> Vec<Exported> {
        let (items, rest) = self.export_start(slot, now, usize::MAX, usize::MAX);
        assert!(rest.is_done(), "an unbounded export leaves nothing");
        items
            .into_iter()
            .map(|item| match item {
                Item::Whole(e) => e,
                Item::Piece(_) => unreachable!("no piece without a bound"),
            })
            .collect()
    }

    /// Starts exporting `slot`: entries whose values weigh at most `piece` bytes are copied
    /// until about `budget` bytes are; the keys of the rest (larger values, and everything
    /// after the budget) are left for [`Db::export_more`], so a slot of any size is never
    /// copied whole. Entries expired at `now` are skipped.
    pub fn export_start(
        &self,
        slot: u16,
        now: u64,
        budget: usize,
        piece: usize,
    ) -> (Vec<Item>, SlotExport) {
        let g = self.lock(slot);
        let t = &g.t;
        let (mut out, mut rest, mut bytes) = (Vec::new(), SlotExport::default(), 0usize);
        for e in (0..t.map.len()).filter_map(|p| t.entry_at(p)) {
            if e.expire_at().is_some_and(|at| at <= now) {
                continue;
            }
            if bytes >= budget || weight(&e) > piece {
                rest.keys.push(Bytes::copy_from_slice(e.kv.key()));
                continue;
            }
            let whole = Exported::whole(Bytes::copy_from_slice(e.kv.key()), &e);
            bytes += whole.key.len() + whole.value.len();
            out.push(Item::Whole(whole));
        }
        (out, rest)
    }

    /// Continues an export of `slot` ([`Db::export_start`]): whole entries, and pieces of
    /// about `piece` bytes of larger values, until about `max` bytes (at least one item) or
    /// the end. A key gone since (evicted, expired) is skipped, or, if some of its pieces
    /// went already, sent as a [`TOMBSTONE`].
    pub fn export_more(
        &self,
        x: &mut SlotExport,
        slot: u16,
        now: u64,
        max: usize,
        piece: usize,
    ) -> Vec<Item> {
        let mut g = self.lock(slot);
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while x.next < x.keys.len() && (out.is_empty() || bytes < max) {
            let key = x.keys[x.next].clone();
            let (offset, mut done) = (x.offset, true);
            match g.peek(&key, now) {
                Some(e) if offset == 0 && weight(&e) <= piece => {
                    let whole = Exported::whole(key, &e);
                    bytes += whole.key.len() + whole.value.len();
                    out.push(Item::Whole(whole));
                }
                Some(e) => match encode_piece(&e, offset, piece) {
                    Some((total, value, end)) => {
                        bytes += key.len() + value.len();
                        out.push(Item::Piece(Piece {
                            key,
                            expire_at: e.expire_at,
                            total,
                            offset,
                            value: value.into(),
                        }));
                        if end < total {
                            (x.offset, done) = (end, false);
                        }
                    }
                    // Shorter than the pieces sent (it cannot change while its slot is
                    // frozen; should it anyway, the receiver must not keep a mix).
                    None => out.push(Item::Whole(Exported::tombstone(key))),
                },
                None if offset > 0 => out.push(Item::Whole(Exported::tombstone(key))),
                None => {}
            }
            if done {
                (x.next, x.offset) = (x.next + 1, 0);
            }
        }
        out
    }

    /// Stores a piece of a value received from another node (see the module docs): the
    /// piece at offset 0 creates the key, replacing what is there; a later one adds to the
    /// value its earlier pieces built. Returns whether it was stored: not when it has
    /// expired at `now` (the key is removed), nor when the key is gone (evicted here
    /// meanwhile: the value is a miss, never a part of itself).
    pub fn import_piece(&self, p: &Piece, now: u64) -> Result<bool, DecodeError> {
        let limits = self.limits();
        let (kind, payload) = split_header(&p.value)?;
        let mut g = self.lock_key(&p.key);
        if p.expire_at != NO_EXPIRY && p.expire_at <= now {
            g.remove(&p.key, now);
            return Ok(false);
        }
        if kind == Kind::String {
            let end = p
                .offset
                .checked_add(payload.len())
                .ok_or(DecodeError::Piece)?;
            if p.total > MAX_STRING_LEN || end > p.total {
                return Err(DecodeError::Piece);
            }
            if p.offset == 0 {
                g.set_str(&p.key, payload, p.expire_at, now);
            } else {
                match g.peek(&p.key, now).map(|e| e.as_str().map(<[u8]>::len)) {
                    None => return Ok(false),
                    Some(Some(len)) if len == p.total => {}
                    Some(_) => return Err(DecodeError::Piece),
                }
            }
            // Sized for the whole value once, at the first piece: no copy per piece.
            let Some(buf) = g.str_mut(&p.key, p.total, now) else {
                return Ok(false);
            };
            buf[p.offset..end].copy_from_slice(payload);
            return Ok(true);
        }
        if p.offset == 0 {
            let v = decode_body(kind, payload, &limits)?;
            g.set(&p.key, v, p.expire_at, now);
            return Ok(true);
        }
        match g.modify(&p.key, now, kind, false, |v| {
            decode_into(v, payload, &limits)
        }) {
            Ok(None) => Ok(false),
            Ok(Some(r)) => r.map(|()| true),
            Err(_) => Err(DecodeError::Piece),
        }
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

    /// Exports `slot` of `src` the way a handoff does (a first pass, then the rest), with
    /// small budgets so that pieces happen, and applies every item to `dst`. Returns how
    /// many pieces went.
    fn move_slot(src: &Db, dst: &Db, slot: u16, now: u64, remove_after_first_piece: bool) -> usize {
        let (mut items, mut rest) = src.export_start(slot, now, 600, 512);
        let mut pieces = 0;
        loop {
            for item in items.drain(..) {
                match item {
                    Item::Whole(e) => {
                        dst.import(&[e], now).expect("a whole entry imports");
                    }
                    Item::Piece(p) => {
                        // A piece holds about 512 bytes: a few elements more at most.
                        assert!(p.value.len() <= 512 + 8 * 32, "{} bytes", p.value.len());
                        pieces += 1;
                        assert!(dst.import_piece(&p, now).expect("a piece imports"));
                        if remove_after_first_piece && p.offset == 0 {
                            src.lock_key(&p.key).remove(&p.key, now);
                        }
                    }
                }
            }
            if rest.is_done() {
                return pieces;
            }
            items = src.export_more(&mut rest, slot, now, 2048, 512);
            assert!(
                !items.is_empty(),
                "an export that is not done makes progress"
            );
        }
    }

    #[test]
    fn large_values_travel_in_pieces() {
        let l = Limits::default();
        let src = Db::new();
        let s: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        src.lock_key(b"{p}s")
            .set(b"{p}s", Value::str(&s), T0 + 9000, T0);
        let mut g = src.lock_key(b"{p}h");
        for (key, kind) in [
            (&b"{p}h"[..], Kind::Hash),
            (b"{p}m", Kind::Set),
            (b"{p}l", Kind::List),
            (b"{p}z", Kind::Zset),
        ] {
            g.modify(key, T0, kind, true, |v| {
                for i in 0..2000 {
                    let m = format!("member-{i}");
                    match v {
                        Value::Hash(h) => {
                            h.insert(m.as_bytes(), format!("v{i}").as_bytes(), &l);
                        }
                        Value::Set(st) => {
                            st.insert(m.as_bytes(), &l);
                        }
                        Value::List(li) => li.push(End::Right, m.as_bytes(), &l),
                        Value::Zset(z) => {
                            z.insert(m.as_bytes(), (i % 13) as f64 - 6.5, &l);
                        }
                        Value::Str(_) => {}
                    }
                }
            })
            .expect("a new collection");
        }
        for i in 0..50 {
            let k = format!("{{p}}small{i}");
            g.set(k.as_bytes(), Value::str(b"x"), NO_EXPIRY, T0);
        }
        drop(g);
        let slot = key_slot(b"{p}s");
        let dst = Db::new();
        // What an earlier attempt left there is replaced by the first piece.
        dst.lock_key(b"{p}h")
            .set(b"{p}h", Value::str(b"stale"), NO_EXPIRY, T0);
        let pieces = move_slot(&src, &dst, slot, T0 + 1, false);
        assert!(
            pieces >= 5 * 2,
            "every large value went in pieces ({pieces})"
        );
        assert_eq!(dst.len(), src.len());
        let (mut a, mut b) = (src.lock(slot), dst.lock(slot));
        for key in a.keys(usize::MAX, T0 + 1) {
            let x = a.peek(&key, T0 + 1).expect("in the source");
            let y = b.peek(&key, T0 + 1).expect("arrived");
            assert_eq!(x.value(), y.value(), "{key:?}");
            assert_eq!(x.expire_at(), y.expire_at(), "{key:?}");
        }
    }

    #[test]
    fn a_value_gone_half_way_is_dropped_on_the_receiver() {
        let src = Db::new();
        let s = vec![7u8; 5000];
        src.lock_key(b"{g}s")
            .set(b"{g}s", Value::str(&s), NO_EXPIRY, T0);
        let dst = Db::new();
        // Evicted on the sender after its first piece: the receiver ends without it, not
        // with a zero-padded half.
        move_slot(&src, &dst, key_slot(b"{g}s"), T0, true);
        assert_eq!(dst.len(), 0);
        // A later piece for a key the receiver does not have (evicted there) is not stored.
        let later = Piece {
            key: Bytes::from_static(b"{g}s"),
            expire_at: NO_EXPIRY,
            total: 5000,
            offset: 512,
            value: Bytes::from_static(&[ENCODING_VERSION, 0, 7, 7]),
        };
        assert_eq!(dst.import_piece(&later, T0), Ok(false));
        let set = Piece {
            value: Bytes::from_static(&[ENCODING_VERSION, 2, 1, 1, b'a']),
            ..later.clone()
        };
        assert_eq!(dst.import_piece(&set, T0), Ok(false));
        assert_eq!(dst.len(), 0);
        // Pieces that arrive expired remove the key.
        let first = Piece {
            offset: 0,
            ..later.clone()
        };
        assert_eq!(dst.import_piece(&first, T0), Ok(true));
        let late = Piece {
            expire_at: T0 + 5,
            ..later.clone()
        };
        assert_eq!(dst.import_piece(&late, T0 + 10), Ok(false));
        assert_eq!(dst.len(), 0);
    }

    #[test]
    fn hostile_pieces_are_refused() {
        let dst = Db::new();
        let p = |total: usize, offset: usize, value: &'static [u8]| Piece {
            key: Bytes::from_static(b"k"),
            expire_at: NO_EXPIRY,
            total,
            offset,
            value: Bytes::from_static(value),
        };
        // Past the declared length, a length beyond any string, an offset that overflows.
        assert_eq!(
            dst.import_piece(&p(1, 0, b"\x01\x00ab"), T0),
            Err(DecodeError::Piece)
        );
        assert_eq!(
            dst.import_piece(&p(MAX_STRING_LEN + 1, 0, b"\x01\x00a"), T0),
            Err(DecodeError::Piece)
        );
        assert_eq!(
            dst.import_piece(&p(10, usize::MAX, b"\x01\x00a"), T0),
            Err(DecodeError::Piece)
        );
        assert_eq!(dst.len(), 0);
        // A later piece of another length or type than what the first built.
        assert_eq!(dst.import_piece(&p(4, 0, b"\x01\x00ab"), T0), Ok(true));
        assert_eq!(
            dst.import_piece(&p(5, 2, b"\x01\x00cd"), T0),
            Err(DecodeError::Piece)
        );
        assert_eq!(
            dst.import_piece(&p(4, 2, b"\x01\x02\x01\x01c"), T0),
            Err(DecodeError::Piece)
        );
        assert_eq!(dst.import_piece(&p(4, 2, b"\x01\x00cd"), T0), Ok(true));
        assert_eq!(
            dst.lock_key(b"k")
                .peek(b"k", T0)
                .and_then(|e| e.as_str().map(<[u8]>::to_vec)),
            Some(b"abcd".to_vec())
        );
        // Unknown versions and kinds, a truncated collection piece.
        assert_eq!(
            dst.import_piece(&p(4, 0, b"\x09\x00a"), T0),
            Err(DecodeError::Version(9))
        );
        assert_eq!(
            dst.import_piece(&p(4, 1, b"\x01\x07a"), T0),
            Err(DecodeError::Kind(7))
        );
        assert_eq!(dst.import_piece(&p(4, 0, b""), T0), Err(DecodeError::Empty));
    }
}
