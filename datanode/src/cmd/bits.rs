//! Bitmaps and LCS on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO and LCS, with Redis 7.0's semantics, limits and error texts.
//!
//! Bit `n` of a string is bit `7 - n % 8` of byte `n / 8` (the most significant bit first), and
//! a missing key reads as an endless run of zero bits. Writes zero-extend the string up to the
//! byte they touch; offsets are limited by `proto-max-bulk-len` as in Redis. The arithmetic is
//! plain functions over byte slices ([`popcount`], [`first_bit`], [`get_field`], [`set_field`],
//! [`field_add`], [`lcs_table`]), tested without a store; the handlers parse, lock and call
//! them. Writes change the stored bytes in place ([`crate::store::SlotGuard::str_mut`]), so a
//! SETBIT costs the same on a 1 MB string as on a 1-byte one.

use super::flags::*;
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::store::{SlotGuard, NO_EXPIRY};

const G: &str = "bitmap";

pub static COMMANDS: &[CommandSpec] = &[
    spec("setbit", 4, WRITE | DENYOOM, (1, 1, 1), G, "2.2.0",
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        "key offset value", setbit),
    spec("getbit", 3, READONLY | FAST, (1, 1, 1), G, "2.2.0",
        "Returns a bit value by offset.", "key offset", getbit),
    spec("bitcount", -2, READONLY, (1, 1, 1), G, "2.6.0",
        "Counts the number of set bits (population counting) in a string.",
        "key [start end [BYTE | BIT]]", bitcount),
    spec("bitpos", -3, READONLY, (1, 1, 1), G, "2.8.7",
        "Finds the first set (1) or clear (0) bit in a string.",
        "key bit [start [end [BYTE | BIT]]]", bitpos),
    spec("bitop", -4, WRITE | DENYOOM, (2, -1, 1), G, "2.6.0",
        "Performs bitwise operations on multiple strings, and stores the result.",
        "<AND | OR | XOR | NOT> destkey key [key ...]", bitop),
    spec("bitfield", -2, WRITE | DENYOOM, (1, 1, 1), G, "3.2.0",
        "Performs arbitrary bitfield integer operations on strings.",
        "key [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> ...]]",
        bitfield),
    spec("bitfield_ro", -2, READONLY | FAST, (1, 1, 1), G, "6.0.0",
        "Performs arbitrary read-only bitfield integer operations on strings.",
        "key [GET encoding offset [GET encoding offset ...]]", bitfield_ro),
    spec("lcs", -3, READONLY, (1, 2, 1), "string", "7.0.0",
        "Finds the longest common substring.",
        "key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]", lcs),
];

const ERR_BIT_OFFSET: Frame = Frame::err("ERR bit offset is not an integer or out of range");
const ERR_BIT_VALUE: Frame = Frame::err("ERR bit is not an integer or out of range");
const ERR_BITFIELD_TYPE: Frame = Frame::err(
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
);

// ---- pure bit arithmetic -----------------------------------------------------------------

/// Set bits in `b`.
pub fn popcount(b: &[u8]) -> u64 {
    // Four independent sums over 32-byte blocks keep the adds from chaining; the compiler
    // vectorises the words' counts.
    let mut blocks = b.chunks_exact(32);
    let mut sums = [0u64; 4];
    for block in &mut blocks {
        for (i, w) in block.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            sums[i] += u64::from_ne_bytes(a).count_ones() as u64;
        }
    }
    let tail: u64 = blocks
        .remainder()
        .iter()
        .map(|x| x.count_ones() as u64)
        .sum();
    sums.iter().sum::<u64>() + tail
}

/// Mask of the bits of byte `k` that lie in the bit range `start..=end`.
fn byte_mask(k: u64, start: u64, end: u64) -> u8 {
    let mut m = 0xffu8;
    if k == start / 8 {
        m &= 0xff >> (start % 8);
    }
    if k == end / 8 {
        m &= 0xff << (7 - end % 8);
    }
    m
}

/// Set bits among bits `start..=end` of `s` (`end` within `s`).
pub fn popcount_bits(s: &[u8], start: u64, end: u64) -> u64 {
    if start > end {
        return 0;
    }
    let (sb, eb) = (start / 8, end / 8);
    let mut n = popcount(&s[sb as usize..=eb as usize]);
    n -= (s[sb as usize] & !byte_mask(sb, start, end)).count_ones() as u64;
    if eb != sb {
        n -= (s[eb as usize] & !byte_mask(eb, start, end)).count_ones() as u64;
    }
    n
}

/// The first bit equal to `bit` among bits `start..=end` of `s` (`end` within `s`).
pub fn first_bit(s: &[u8], bit: bool, start: u64, end: u64) -> Option<u64> {
    if start > end {
        return None;
    }
    let (sb, eb) = (start / 8, end / 8);
    // Bits that have the wanted value, as ones.
    let wanted = |k: u64| {
        let b = s[k as usize];
        (if bit { b } else { !b }) & byte_mask(k, start, end)
    };
    let hit = |k: u64, v: u8| k * 8 + v.leading_zeros() as u64;
    let v = wanted(sb);
    if v != 0 {
        return Some(hit(sb, v));
    }
    if sb == eb {
        return None;
    }
    // Whole bytes in between: skip those with no wanted bit a word at a time.
    let skip = if bit { 0u8 } else { 0xff };
    let mid = &s[sb as usize + 1..eb as usize];
    let words = mid.chunks_exact(8).take_while(|w| *w == [skip; 8]).count();
    if let Some(i) = mid[words * 8..].iter().position(|&b| b != skip) {
        let k = sb + 1 + (words * 8 + i) as u64;
        return Some(hit(k, wanted(k)));
    }
    let v = wanted(eb);
    (v != 0).then(|| hit(eb, v))
}

/// The unsigned value of the `bits` bits at bit `offset` (bits past the end of `s` read as
/// zero).
pub fn get_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let pos = offset + i;
        let byte = s.get((pos / 8) as usize).copied().unwrap_or(0);
        v = (v << 1) | ((byte >> (7 - pos % 8)) & 1) as u64;
    }
    v
}

/// Writes the low `bits` bits of `value` at bit `offset` (the caller has made `s` long enough).
pub fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let pos = offset + i;
        let on = (value >> (bits as u64 - 1 - i)) & 1 == 1;
        if let Some(b) = s.get_mut((pos / 8) as usize) {
            let mask = 1u8 << (7 - pos % 8);
            if on {
                *b |= mask;
            } else {
                *b &= !mask;
            }
        }
    }
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

impl FieldType {
    pub fn parse(a: &[u8]) -> Option<FieldType> {
        let signed = match a.first()? {
            b'i' => true,
            b'u' => false,
            _ => return None,
        };
        let bits = parse_i64(&a[1..])?;
        let max = if signed { 64 } else { 63 };
        (1..=max).contains(&bits).then_some(FieldType {
            signed,
            bits: bits as u32,
        })
    }

    /// The field's bits read as this type.
    pub fn decode(self, raw: u64) -> i64 {
        if self.signed && self.bits < 64 && raw & (1 << (self.bits - 1)) != 0 {
            (raw | (u64::MAX << self.bits)) as i64
        } else {
            raw as i64
        }
    }

    fn range(self) -> (i128, i128) {
        if self.signed {
            let max = (1i128 << (self.bits - 1)) - 1;
            (-max - 1, max)
        } else {
            (0, (1i128 << self.bits) - 1)
        }
    }
}

/// BITFIELD's OVERFLOW behaviours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Which way `value + incr` leaves the range of `t`: 1 above, -1 below, 0 not at all.
///
/// Redis's test, kept as it is: for a signed field it compares with `max - value` computed
/// with wrap-around, so a SET of a number far below the minimum (below `max - i64::MAX`)
/// counts as overflowing upwards (SAT stores the maximum).
fn overflow_dir(t: FieldType, value: i64, incr: i64) -> i32 {
    if t.signed {
        let max = if t.bits == 64 {
            i64::MAX
        } else {
            (1i64 << (t.bits - 1)) - 1
        };
        let min = -max - 1;
        let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
        let min_incr = min.wrapping_sub(value);
        let small = t.bits != 64;
        if value > max || (small && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
        {
            1
        } else if value < min
            || (small && incr < min_incr)
            || (value < 0 && incr < 0 && incr < min_incr)
        {
            -1
        } else {
            0
        }
    } else {
        let value = value as u64;
        let max = (1u64 << t.bits) - 1;
        let max_incr = max.wrapping_sub(value) as i64;
        let min_incr = (value as i64).wrapping_neg();
        if value > max || (incr > 0 && incr > max_incr) {
            1
        } else if incr < 0 && incr < min_incr {
            -1
        } else {
            0
        }
    }
}

/// `value + incr` stored in a field of type `t` under `ow`: the value to store, or `None` when
/// it overflows under FAIL. `value` is what Redis holds in its 64-bit variable: the field's
/// value for INCRBY, the given number for SET (for an unsigned type, a negative number is its
/// two's complement, so it saturates to the maximum, as in Redis).
pub fn field_add(t: FieldType, value: i64, incr: i64, ow: Overflow) -> Option<i64> {
    let dir = overflow_dir(t, value, incr);
    if dir == 0 {
        return Some(value.wrapping_add(incr));
    }
    let (min, max) = t.range();
    match ow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if dir > 0 { max as i64 } else { min as i64 }),
        Overflow::Wrap => {
            let raw = (value as u64).wrapping_add(incr as u64);
            let raw = if t.bits == 64 {
                raw
            } else {
                raw & !(u64::MAX << t.bits)
            };
            Some(t.decode(raw))
        }
    }
}

/// The LCS length table of `a` and `b`: entry `i * (b.len() + 1) + j` is the length of the
/// longest common subsequence of `a[..i]` and `b[..j]`.
pub fn lcs_table(a: &[u8], b: &[u8]) -> Vec<u32> {
    let w = b.len() + 1;
    let mut t = vec![0u32; (a.len() + 1) * w];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    t
}

/// The length of the longest common subsequence, in `O(b.len())` memory.
pub fn lcs_len(a: &[u8], b: &[u8]) -> u32 {
    let mut prev = vec![0u32; b.len() + 1];
    let mut cur = vec![0u32; b.len() + 1];
    for &x in a {
        for j in 1..=b.len() {
            cur[j] = if x == b[j - 1] {
                prev[j - 1] + 1
            } else {
                prev[j].max(cur[j - 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// One matching range LCS IDX reports: positions in `a` and `b` (inclusive) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LcsMatch {
    pub a: (u32, u32),
    pub b: (u32, u32),
    pub len: u32,
}

/// The LCS string and its matching ranges, from the end of the strings backwards (the order
/// Redis reports them in), walking the table as Redis does so ties resolve the same way.
pub fn lcs_walk(a: &[u8], b: &[u8], t: &[u32]) -> (Vec<u8>, Vec<LcsMatch>) {
    let w = b.len() + 1;
    let total = t[a.len() * w + b.len()] as usize;
    let mut out = vec![0u8; total];
    let mut idx = total;
    let mut ranges = Vec::new();
    let mut cur: Option<LcsMatch> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            idx -= 1;
            out[idx] = a[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            cur = Some(match cur {
                Some(m) if m.a.0 == ai + 1 && m.b.0 == bj + 1 => LcsMatch {
                    a: (ai, m.a.1),
                    b: (bj, m.b.1),
                    len: m.len + 1,
                },
                Some(m) => {
                    // Not contiguous: cannot happen (a gap always passes a mismatch first),
                    // but close the range rather than merge it.
                    ranges.push(m);
                    LcsMatch {
                        a: (ai, ai),
                        b: (bj, bj),
                        len: 1,
                    }
                }
                None => LcsMatch {
                    a: (ai, ai),
                    b: (bj, bj),
                    len: 1,
                },
            });
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            ranges.extend(cur.take());
        }
    }
    ranges.extend(cur);
    (out, ranges)
}

// ---- argument parsing ----------------------------------------------------------------------

/// A bit offset argument: a non-negative integer whose byte is below `proto-max-bulk-len`;
/// with `hash_bits`, BITFIELD's `#N` form (the N-th field of that width).
fn bit_offset(ctx: &Ctx<'_>, a: &[u8], hash_bits: Option<u32>) -> Result<u64, Frame> {
    let (digits, mul) = match (a.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&a[1..], bits as i64),
        _ => (a, 1),
    };
    let n = parse_i64(digits)
        .and_then(|n| n.checked_mul(mul))
        .ok_or(ERR_BIT_OFFSET)?;
    let max = ctx.node.config().proto_max_bulk_len as u64;
    if n < 0 || (n as u64 >> 3) >= max {
        return Err(ERR_BIT_OFFSET);
    }
    Ok(n as u64)
}

/// The string at `key` for a write that reaches byte `min_len - 1`: created zero-filled when
/// missing, zero-extended when shorter. WRONGTYPE for other types.
fn open_for_write<'g>(
    g: &'g mut SlotGuard<'_>,
    key: &[u8],
    min_len: usize,
    now: u64,
) -> Result<&'g mut [u8], Frame> {
    match g.peek(key, now) {
        Some(e) => {
            e.as_str().ok_or(ERR_WRONGTYPE)?;
        }
        None => {
            g.set_str(key, &vec![0u8; min_len], NO_EXPIRY, now);
        }
    }
    g.str_mut(key, min_len, now)
        .ok_or(Frame::err("ERR no such key"))
}

// ---- handlers ------------------------------------------------------------------------------

fn setbit(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let offset = bit_offset(ctx, req.arg(2), None)?;
    let on = match parse_i64(req.arg(3)) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(ERR_BIT_VALUE),
    };
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let need = (offset / 8) as usize + 1;
    let (created, grown) = written_len(&mut g, key, need, ctx.now);
    let s = open_for_write(&mut g, key, need, ctx.now)?;
    let byte = &mut s[(offset / 8) as usize];
    let mask = 1u8 << (7 - offset % 8);
    let old = *byte & mask != 0;
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    drop(g);
    // Like Redis 7.0: an event only when the key was created or grown or the bit changed.
    if grown || old != on {
        notify_written(ctx, "setbit", key, created);
    }
    Ok(Frame::Integer(old as i64))
}

/// Before a write that needs `need` bytes of the string at `key`: whether it will create the
/// key, and whether it will create or grow the string (a wrong type is answered later).
fn written_len(g: &mut SlotGuard<'_>, key: &[u8], need: usize, now: u64) -> (bool, bool) {
    match g.peek(key, now) {
        None => (true, true),
        Some(e) => (false, e.as_str().is_some_and(|s| s.len() < need)),
    }
}

/// Keyspace events of a write to the string at `key`: `new` first when the write created
/// it, then `event` (Redis's `setbit` for SETBIT and BITFIELD).
fn notify_written(ctx: &Ctx<'_>, event: &str, key: &[u8], created: bool) {
    if created {
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::STRING, event, key);
}

fn getbit(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let offset = bit_offset(ctx, req.arg(2), None)?;
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let Some(e) = g.get(key, ctx.now) else {
        return Ok(Frame::Integer(0));
    };
    let s = e.as_str().ok_or(ERR_WRONGTYPE)?;
    let bit = s
        .get((offset / 8) as usize)
        .is_some_and(|b| b & (1 << (7 - offset % 8)) != 0);
    Ok(Frame::Integer(bit as i64))
}

/// BITCOUNT/BITPOS's range unit.
fn bit_unit(a: &[u8]) -> Result<bool, Frame> {
    if is(a, "BIT") {
        Ok(true)
    } else if is(a, "BYTE") {
        Ok(false)
    } else {
        Err(ERR_SYNTAX)
    }
}

/// Clamps a `start..=end` range given with negative indexes from the end of `len` units, as
/// Redis does; `None` when it is empty.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(u64, u64)> {
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    (start <= end).then_some((start as u64, end as u64))
}

fn bitcount(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    // Like Redis 7.0: a missing key counts 0 before the arguments are looked at.
    let Some(e) = g.get(key, ctx.now) else {
        return Ok(Frame::Integer(0));
    };
    let s = e.as_str().ok_or(ERR_WRONGTYPE)?;
    let n = match req.len() {
        2 => popcount(s),
        4 | 5 => {
            let start = int_arg(req.arg(2))?;
            let end = int_arg(req.arg(3))?;
            // Before the unit is looked at, as in Redis 7.0.
            if start < 0 && end < 0 && start > end {
                return Ok(Frame::Integer(0));
            }
            let in_bits = req.len() == 5 && bit_unit(req.arg(4))?;
            let len = s.len() as i64 * if in_bits { 8 } else { 1 };
            match clamp_range(start, end, len) {
                None => 0,
                Some((a, b)) if in_bits => popcount_bits(s, a, b),
                Some((a, b)) => popcount(&s[a as usize..=b as usize]),
            }
        }
        _ => return Err(ERR_SYNTAX),
    };
    Ok(Frame::Integer(n as i64))
}

fn bitpos(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let bit = match int_arg(req.arg(2))? {
        0 => false,
        1 => true,
        _ => return Err(Frame::err("ERR The bit argument must be 1 or 0.")),
    };
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    // A missing key is an endless run of zeros: its first 0 is bit 0, and it has no 1.
    let Some(e) = g.get(key, ctx.now) else {
        return Ok(Frame::Integer(if bit { -1 } else { 0 }));
    };
    let s = e.as_str().ok_or(ERR_WRONGTYPE)?;
    let (range, end_given) =
        match req.len() {
            3 => ((!s.is_empty()).then(|| (0, s.len() as u64 * 8 - 1)), false),
            4..=6 => {
                let start = int_arg(req.arg(3))?;
                let in_bits = req.len() == 6 && bit_unit(req.arg(5))?;
                let len = s.len() as i64 * if in_bits { 8 } else { 1 };
                let end = if req.len() >= 5 {
                    int_arg(req.arg(4))?
                } else {
                    len - 1
                };
                let range = clamp_range(start, end, len).map(|(a, b)| {
                    if in_bits {
                        (a, b)
                    } else {
                        (a * 8, b * 8 + 7)
                    }
                });
                (range, req.len() >= 5)
            }
            _ => return Err(ERR_SYNTAX),
        };
    let Some((start, end)) = range else {
        return Ok(Frame::Integer(-1));
    };
    Ok(Frame::Integer(match first_bit(s, bit, start, end) {
        Some(p) => p as i64,
        // Looking for a 0 with no end given: the string continues with zeros to the right.
        None if !bit && !end_given => end as i64 + 1,
        None => -1,
    }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let op = match req.arg(1) {
        a if is(a, "AND") => BitOp::And,
        a if is(a, "OR") => BitOp::Or,
        a if is(a, "XOR") => BitOp::Xor,
        a if is(a, "NOT") => BitOp::Not,
        _ => return Err(ERR_SYNTAX),
    };
    if op == BitOp::Not && req.len() != 4 {
        return Err(Frame::err(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = req.arg(2);
    let sources = || req.iter().skip(3);
    let mut g = ctx
        .node
        .db
        .lock_keys(std::iter::once(dest).chain(sources()));
    // Types and lengths first (a missing key is an empty string), so nothing is copied
    // before an error.
    let mut maxlen = 0;
    for k in sources() {
        if let Some(e) = g.slot_of(k).get(k, ctx.now) {
            maxlen = maxlen.max(e.as_str().ok_or(ERR_WRONGTYPE)?.len());
        }
    }
    let mut out = vec![0u8; maxlen];
    for (n, k) in sources().enumerate() {
        let gk = g.slot_of(k);
        let src = gk.peek(k, ctx.now).and_then(|e| e.as_str()).unwrap_or(&[]);
        if n == 0 {
            out[..src.len()].copy_from_slice(src);
            if op == BitOp::Not {
                out.iter_mut().for_each(|b| *b = !*b);
            }
            continue;
        }
        match op {
            BitOp::And => {
                out.iter_mut()
                    .zip(src.iter().chain(std::iter::repeat(&0)))
                    .for_each(|(o, s)| *o &= s);
            }
            BitOp::Or => out.iter_mut().zip(src).for_each(|(o, s)| *o |= s),
            BitOp::Xor => out.iter_mut().zip(src).for_each(|(o, s)| *o ^= s),
            BitOp::Not => {}
        }
    }
    let gd = g.slot_of(dest);
    if maxlen > 0 {
        let created = gd.peek(dest, ctx.now).is_none();
        gd.set_str(dest, &out, NO_EXPIRY, ctx.now);
        drop(g);
        notify_written(ctx, "set", dest, created);
    } else if gd.remove(dest, ctx.now).is_some() {
        drop(g);
        notify(ctx, events::GENERIC, "del", dest);
    }
    Ok(Frame::Integer(maxlen as i64))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One parsed BITFIELD operation.
#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    t: FieldType,
    offset: u64,
    overflow: Overflow,
}

fn parse_fields(ctx: &Ctx<'_>, req: &Request) -> Result<Vec<Field>, Frame> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < req.len() {
        let rem = req.len() - j - 1;
        let a = req.arg(j);
        let get = is(a, "GET") && rem >= 2;
        let set = is(a, "SET") && rem >= 3;
        let incr = is(a, "INCRBY") && rem >= 3;
        if is(a, "OVERFLOW") && rem >= 1 {
            let o = req.arg(j + 1);
            overflow = if is(o, "WRAP") {
                Overflow::Wrap
            } else if is(o, "SAT") {
                Overflow::Sat
            } else if is(o, "FAIL") {
                Overflow::Fail
            } else {
                return Err(Frame::err("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        }
        if !(get || set || incr) {
            return Err(ERR_SYNTAX);
        }
        let t = FieldType::parse(req.arg(j + 1)).ok_or(ERR_BITFIELD_TYPE)?;
        let offset = bit_offset(ctx, req.arg(j + 2), Some(t.bits))?;
        let op = if get {
            FieldOp::Get
        } else {
            let n = int_arg(req.arg(j + 3))?;
            if set {
                FieldOp::Set(n)
            } else {
                FieldOp::IncrBy(n)
            }
        };
        fields.push(Field {
            op,
            t,
            offset,
            overflow,
        });
        j += if get { 3 } else { 4 };
    }
    Ok(fields)
}

/// Runs one write (SET or INCRBY) on `s`; its reply.
/// Runs one operation on `s`: its reply, and whether it counts as a change (Redis 7.0: a
/// SET that changed the value, any INCRBY that did not FAIL).
fn apply_field(s: &mut [u8], f: &Field) -> (Frame, bool) {
    let old = f.t.decode(get_field(s, f.offset, f.t.bits));
    let (value, incr, reply_old) = match f.op {
        FieldOp::Set(v) => (v, 0, true),
        FieldOp::IncrBy(d) => (old, d, false),
        FieldOp::Get => return (Frame::Integer(old), false),
    };
    match field_add(f.t, value, incr, f.overflow) {
        None => (Frame::Null, false),
        Some(new) => {
            set_field(s, f.offset, f.t.bits, new as u64);
            (
                Frame::Integer(if reply_old { old } else { new }),
                !reply_old || new != old,
            )
        }
    }
}

fn bitfield_generic(ctx: &mut Ctx<'_>, req: &Request, read_only: bool) -> Reply {
    let fields = parse_fields(ctx, req)?;
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let highest = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.t.bits as u64 - 1)
        .max();
    let Some(highest) = highest else {
        // Only GETs: a missing key reads as zeros.
        let s = match g.get(key, ctx.now) {
            Some(e) => e.as_str().ok_or(ERR_WRONGTYPE)?,
            None => &[],
        };
        let out = fields
            .iter()
            .map(|f| Frame::Integer(f.t.decode(get_field(s, f.offset, f.t.bits))))
            .collect();
        return Ok(Frame::Array(out));
    };
    if read_only {
        return Err(Frame::err(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let need = (highest / 8) as usize + 1;
    let (created, grown) = written_len(&mut g, key, need, ctx.now);
    let s = open_for_write(&mut g, key, need, ctx.now)?;
    let mut changed = false;
    let mut out = Vec::with_capacity(fields.len());
    for f in &fields {
        let (reply, c) = apply_field(s, f);
        // Like Redis 7.0: a SET changes the key when it changed the value or the string had
        // to be created or grown for it; an INCRBY always, unless its overflow FAILed (nil).
        changed |= c || (grown && f.op != FieldOp::Get && reply != Frame::Null);
        out.push(reply);
    }
    drop(g);
    if changed {
        notify_written(ctx, "setbit", key, created);
    } else if created {
        notify(ctx, events::NEW, "new", key);
    }
    Ok(Frame::Array(out))
}

fn bitfield(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bitfield_generic(ctx, req, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bitfield_generic(ctx, req, true)
}

fn lcs(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (ka, kb) = (req.arg(1), req.arg(2));
    // Copied out, so the quadratic work runs without the slots locked.
    let (a, b) = {
        let mut g = ctx.node.db.lock_keys([ka, kb]);
        let mut read = |k: &[u8]| -> Result<Vec<u8>, Frame> {
            match g.slot_of(k).get(k, ctx.now) {
                None => Ok(Vec::new()),
                Some(e) => e.as_str().map(<[u8]>::to_vec).ok_or(Frame::err(
                    "ERR The specified keys must contain string values",
                )),
            }
        };
        let a = read(ka);
        let b = read(kb);
        (a?, b?)
    };
    let (mut idx, mut len, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < req.len() {
        let o = req.arg(j);
        if is(o, "IDX") {
            idx = true;
        } else if is(o, "LEN") {
            len = true;
        } else if is(o, "WITHMATCHLEN") {
            with_len = true;
        } else if is(o, "MINMATCHLEN") && j + 1 < req.len() {
            min_len = int_arg(req.arg(j + 1))?.max(0);
            j += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
        j += 1;
    }
    if idx && len {
        return Err(Frame::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    // Redis's bound on the table it builds, kept so the same requests fail.
    let cells = (a.len() as u128 + 1) * (b.len() as u128 + 1);
    if cells * 4 > ctx.node.config().proto_max_bulk_len as u128 {
        return Err(Frame::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    if len {
        return Ok(Frame::Integer(lcs_len(&a, &b) as i64));
    }
    let t = lcs_table(&a, &b);
    let (s, ranges) = lcs_walk(&a, &b, &t);
    if !idx {
        return Ok(Frame::bulk(s));
    }
    let pair =
        |r: (u32, u32)| Frame::Array(vec![Frame::Integer(r.0 as i64), Frame::Integer(r.1 as i64)]);
    let matches = ranges
        .iter()
        .filter(|m| m.len as i64 >= min_len)
        .map(|m| {
            let mut v = vec![pair(m.a), pair(m.b)];
            if with_len {
                v.push(Frame::Integer(m.len as i64));
            }
            Frame::Array(v)
        })
        .collect();
    Ok(Frame::Map(vec![
        (Frame::bulk_static("matches"), Frame::Array(matches)),
        (Frame::bulk_static("len"), Frame::Integer(s.len() as i64)),
    ]))
}

#[cfg(test)]
mod tests;
