//! HyperLogLog in Redis's own representation, so the bytes travel to and from Redis (GET/SET,
//! DUMP/RESTORE) unchanged. Plain functions over byte strings; the commands are in
//! [`crate::cmd::hll`].
//!
//! The format (Redis's `hyperloglog.c` documents it; these are its facts):
//! - a 16-byte header: `HYLL`, the encoding (0 dense, 1 sparse), three unused bytes, then the
//!   cached cardinality as 8 little-endian bytes whose top bit (bit 7 of byte 15) set means
//!   "stale";
//! - 2^14 registers of 6 bits. Dense: packed least significant bit first, 12,288 bytes.
//!   Sparse: run-length opcodes, `00xxxxxx` (1..64 zero registers), `01xxxxxx yyyyyyyy`
//!   (1..16384 zero registers), `1vvvvvxx` (1..4 registers of value 1..32). A sparse HLL
//!   becomes dense when a register needs a value above 32, or when its length would pass
//!   `hll-sparse-max-bytes`;
//! - an element's register is the low 14 bits of MurmurHash64A(element, seed `0xadc83b19`),
//!   its value one more than the count of trailing zeros of the remaining 50 bits (at most
//!   51);
//! - the estimate is Otmar Ertl's improved estimator (arXiv:1702.01284, "New cardinality
//!   estimation algorithms for HyperLogLog sketches") from the registers' histogram, as
//!   Redis computes it since 5.0 (standard error 0.81%).
//!
//! Sparse edits follow Redis step by step (split the opcode covering the register, then merge
//! equal neighbouring value opcodes), because the resulting bytes, not only the count, must
//! be the ones Redis produces.

/// Bits of the hash that pick a register.
pub const P: u32 = 14;
/// Bits left for the run of zeros.
pub const Q: u32 = 64 - P;
pub const REGISTERS: usize = 1 << P;
/// The header before the registers.
pub const HDR: usize = 16;
/// Length of a dense HyperLogLog.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
/// `hll-sparse-max-bytes`' default.
pub const SPARSE_MAX_BYTES_DEFAULT: usize = 3000;

const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const MAGIC: &[u8; 4] = b"HYLL";
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// 1 / (2 ln 2): the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The registers do not decode to exactly 2^14 of them: Redis's `INVALIDOBJ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupted HyperLogLog")]
pub struct Corrupt;

/// MurmurHash64A (Austin Appleby's 64-bit MurmurHash2), reading blocks little-endian as
/// Redis does on every platform.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for b in &mut blocks {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element updates and the value it offers (1..=51).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Whether `s` is a HyperLogLog: the magic, a known encoding, and a dense one's exact length.
/// (Redis answers `WRONGTYPE Key is not a valid HyperLogLog string value.` otherwise.)
pub fn is_valid(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == MAGIC
        && match s[4] {
            DENSE => s.len() == DENSE_SIZE,
            SPARSE => true,
            _ => false,
        }
}

pub fn is_dense(s: &[u8]) -> bool {
    s.get(4) == Some(&DENSE)
}

/// A new, empty HyperLogLog: sparse, one opcode of 16384 zero registers, cached count 0.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(MAGIC);
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, n);
        left -= n;
    }
    v
}

/// The cached cardinality, when it is not stale.
pub fn cached(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(b))
}

pub fn set_cached(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

// ---- dense -----------------------------------------------------------------------------------

/// Register `i` of a dense register area.
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let lo = regs[b] as u16 >> fb;
    let hi = regs.get(b + 1).map_or(0, |&x| (x as u16) << (8 - fb));
    ((lo | hi) & 63) as u8
}

pub fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let v = v as u16 & 63;
    regs[b] = (regs[b] as u16 & !(63 << fb) | (v << fb)) as u8;
    if let Some(x) = regs.get_mut(b + 1) {
        *x = ((*x as u16 & !(63 >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Every register of a dense register area in order, four from each three bytes.
pub fn dense_all(regs: &[u8]) -> impl Iterator<Item = u8> + '_ {
    regs.chunks_exact(3).flat_map(|c| {
        [
            c[0] & 63,
            (c[0] >> 6) | ((c[1] & 15) << 2),
            (c[1] >> 4) | ((c[2] & 3) << 4),
            c[2] >> 2,
        ]
    })
}

/// Offers `count` to register `index` of a dense HyperLogLog `s`; whether it changed.
pub fn dense_add(s: &mut [u8], index: usize, count: u8) -> bool {
    let regs = &mut s[HDR..];
    if dense_get(regs, index) < count {
        dense_set(regs, index, count);
        true
    } else {
        false
    }
}

// ---- sparse ----------------------------------------------------------------------------------

/// One sparse opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Zero registers, with the opcode's size in bytes (1 for ZERO, 2 for XZERO).
    Zero {
        len: usize,
        size: usize,
    },
    Val {
        value: u8,
        len: usize,
    },
}

impl Op {
    /// The opcode at `s[p]` (a two-byte opcode cut short reads its second byte as 0, as
    /// Redis reads its string's terminator).
    fn at(s: &[u8], p: usize) -> Op {
        let b = s[p];
        if b & 0x80 != 0 {
            Op::Val {
                value: ((b >> 2) & 0x1f) + 1,
                len: (b & 3) as usize + 1,
            }
        } else if b & 0x40 == 0 {
            Op::Zero {
                len: (b & 0x3f) as usize + 1,
                size: 1,
            }
        } else {
            let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
            Op::Zero {
                len: (((b & 0x3f) as usize) << 8 | lo) + 1,
                size: 2,
            }
        }
    }

    fn len(self) -> usize {
        match self {
            Op::Zero { len, .. } | Op::Val { len, .. } => len,
        }
    }

    fn size(self) -> usize {
        match self {
            Op::Zero { size, .. } => size,
            Op::Val { .. } => 1,
        }
    }
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.push((l >> 8) as u8 | 0x40);
    v.push(l as u8);
}

/// ZERO for up to 64 registers, XZERO beyond.
fn push_zeros(v: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        push_xzero(v, len);
    } else {
        v.push((len - 1) as u8);
    }
}

fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len - 1) as u8
}

/// Calls `f(first_register, op)` for each opcode of a sparse HyperLogLog; checks that the
/// opcodes cover exactly 2^14 registers.
fn sparse_walk(s: &[u8], mut f: impl FnMut(usize, Op)) -> Result<(), Corrupt> {
    let mut p = HDR;
    let mut idx = 0usize;
    while p < s.len() {
        let op = Op::at(s, p);
        f(idx, op);
        idx += op.len();
        p += op.size();
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// The dense form of a sparse HyperLogLog (header kept, cached count included).
pub fn sparse_to_dense(s: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = DENSE;
    let mut p = HDR;
    let mut idx = 0usize;
    while p < s.len() {
        let op = Op::at(s, p);
        if let Op::Val { value, len } = op {
            if idx + len > REGISTERS {
                return Err(Corrupt);
            }
            for i in idx..idx + len {
                dense_set(&mut d[HDR..], i, value);
            }
        }
        idx += op.len();
        p += op.size();
    }
    if idx == REGISTERS {
        Ok(d)
    } else {
        Err(Corrupt)
    }
}

/// Offers `count` to register `index` of the sparse HyperLogLog in `v`, promoting it to
/// dense when the value does not fit a sparse opcode or the string would pass `max_bytes`.
/// Whether a register changed.
pub fn sparse_add(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote_and_set(v, index, count);
    }
    // Step 1: the opcode covering `index`, with the previous opcode's position.
    let mut p = HDR;
    let mut prev: Option<usize> = None;
    let mut first = 0usize;
    let mut found = None;
    while p < v.len() {
        let op = Op::at(v, p);
        if index < first + op.len() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.size();
        first += op.len();
    }
    let Some(op) = found else {
        return Err(Corrupt);
    };
    let end = v.len();
    // Step 2: the trivial in-place updates, or the replacement sequence.
    match op {
        Op::Val { value, .. } if value >= count => return Ok(false),
        Op::Val { len: 1, .. } | Op::Zero { len: 1, size: 1 } => {
            v[p] = val_op(count, 1);
        }
        _ => {
            let last = first + op.len() - 1;
            let mut seq = Vec::with_capacity(5);
            match op {
                Op::Zero { .. } => {
                    if index != first {
                        push_zeros(&mut seq, index - first);
                    }
                    seq.push(val_op(count, 1));
                    if index != last {
                        push_zeros(&mut seq, last - index);
                    }
                }
                Op::Val { value, .. } => {
                    if index != first {
                        seq.push(val_op(value, index - first));
                    }
                    seq.push(val_op(count, 1));
                    if index != last {
                        seq.push(val_op(value, last - index));
                    }
                }
            }
            // Step 3: put the sequence in place of the opcode, unless that makes the
            // string too long.
            let old = op.size();
            if seq.len() > old && v.len() + (seq.len() - old) > max_bytes {
                return promote_and_set(v, index, count);
            }
            v.splice(p..(p + old).min(end), seq);
        }
    }
    // Step 4: merge neighbouring value opcodes of equal value, scanning up to five opcodes
    // from the one before the change.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let op = Op::at(v, p);
        let Op::Val { value, len } = op else {
            p += op.size();
            continue;
        };
        if p + 1 < v.len() {
            if let Op::Val {
                value: v2,
                len: len2,
            } = Op::at(v, p + 1)
            {
                if v2 == value && len + len2 <= SPARSE_VAL_MAX_LEN {
                    v[p + 1] = val_op(value, len + len2);
                    v.remove(p);
                    // Look again at the merged opcode: it may merge with the next one.
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate(v);
    Ok(true)
}

fn promote_and_set(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    *v = sparse_to_dense(v)?;
    // A register that forced the promotion is always raised.
    dense_add(v, index, count);
    Ok(true)
}

/// Adds `ele` to the HyperLogLog in `v` (checked with [`is_valid`]); whether a register
/// changed. A sparse one may become dense.
pub fn add(v: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    if is_dense(v) {
        Ok(dense_add(v, index, count))
    } else {
        sparse_add(v, index, count, max_bytes)
    }
}

// ---- counting and merging ----------------------------------------------------------------

/// How many registers hold each value (values above 63 do not occur).
pub type Histogram = [u32; 64];

pub fn histogram(s: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0u32; 64];
    if is_dense(s) {
        for r in dense_all(&s[HDR..]) {
            h[r as usize] += 1;
        }
    } else {
        sparse_walk(s, |_, op| match op {
            Op::Zero { len, .. } => h[0] = h[0].saturating_add(len as u32),
            Op::Val { value, len } => h[value as usize] += len as u32,
        })?;
    }
    Ok(h)
}

/// The histogram of registers given one byte each (a merge's result).
pub fn raw_histogram(regs: &[u8; REGISTERS]) -> Histogram {
    let mut h = [0u32; 64];
    for &r in regs {
        h[(r & 63) as usize] += 1;
    }
    h
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// The cardinality estimate from a register histogram.
pub fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let q = Q as usize;
    let mut z = m * tau((m - h[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The estimate for a HyperLogLog, ignoring its cache.
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    Ok(estimate(&histogram(s)?))
}

/// Raises each of `max`'s registers to the HyperLogLog's `s`.
pub fn merge_into(max: &mut [u8; REGISTERS], s: &[u8]) -> Result<(), Corrupt> {
    if is_dense(s) {
        for (m, r) in max.iter_mut().zip(dense_all(&s[HDR..])) {
            *m = (*m).max(r);
        }
        return Ok(());
    }
    let mut p = HDR;
    let mut idx = 0usize;
    while p < s.len() {
        let op = Op::at(s, p);
        if let Op::Val { value, len } = op {
            if idx + len > REGISTERS {
                return Err(Corrupt);
            }
            for m in &mut max[idx..idx + len] {
                *m = (*m).max(value);
            }
        }
        idx += op.len();
        p += op.size();
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Registers of a HyperLogLog, one byte each (PFDEBUG GETREG).
pub fn registers(s: &[u8]) -> Result<Box<[u8; REGISTERS]>, Corrupt> {
    let mut r = Box::new([0u8; REGISTERS]);
    merge_into(&mut r, s)?;
    Ok(r)
}

/// PFDEBUG DECODE's text for a sparse HyperLogLog (`z:LEN`, `Z:LEN`, `v:VALUE,LEN`
/// separated by spaces); `None` for a dense one.
pub fn decode_sparse(s: &[u8]) -> Option<String> {
    if is_dense(s) {
        return None;
    }
    let mut out = Vec::new();
    let mut p = HDR;
    while p < s.len() {
        let op = Op::at(s, p);
        out.push(match op {
            Op::Zero { len, size: 1 } => format!("z:{len}"),
            Op::Zero { len, .. } => format!("Z:{len}"),
            Op::Val { value, len } => format!("v:{value},{len}"),
        });
        p += op.size();
    }
    Some(out.join(" "))
}

/// PFSELFTEST: the dense register packing holds every value at every register, and a sparse
/// and a dense HyperLogLog fed the same random elements agree and stay within six standard
/// errors of the true count.
pub fn self_test(rng: &mut impl rand::Rng, elements: u64) -> Result<(), String> {
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut want = vec![0u8; REGISTERS];
    for _ in 0..10 {
        for (i, w) in want.iter_mut().enumerate() {
            *w = rng.random_range(0..64);
            dense_set(&mut regs, i, *w);
        }
        if let Some(i) = (0..REGISTERS).find(|&i| dense_get(&regs, i) != want[i]) {
            return Err(format!(
                "register {i} reads {} instead of {}",
                dense_get(&regs, i),
                want[i]
            ));
        }
    }
    let mut sparse = new_sparse();
    let mut dense = sparse_to_dense(&sparse).map_err(|e| e.to_string())?;
    let rel = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint = 1u64;
    for n in 1..=elements {
        let ele = rng.random::<u64>().to_le_bytes();
        add(&mut sparse, &ele, SPARSE_MAX_BYTES_DEFAULT).map_err(|e| e.to_string())?;
        add(&mut dense, &ele, SPARSE_MAX_BYTES_DEFAULT).map_err(|e| e.to_string())?;
        if n != checkpoint {
            continue;
        }
        checkpoint *= 10;
        let (a, b) = (
            count(&sparse).map_err(|e| e.to_string())?,
            count(&dense).map_err(|e| e.to_string())?,
        );
        if a != b {
            return Err(format!("sparse and dense differ at {n}: {a} vs {b}"));
        }
        let max_err = ((rel * 6.0 * n as f64).ceil() as u64).max(1);
        if a.abs_diff(n) > max_err {
            return Err(format!(
                "estimate {a} for {n} elements, off by more than {max_err}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur64a_reference_values() {
        // The empty input hashes to 0 with seed 0 (all mixing multiplies a zero state).
        assert_eq!(murmur64a(b"", 0), 0);
        // Through `pattern`, every input length (all tail cases) is checked against Redis's
        // bytes in `cmd::hll::tests::bytes_and_counts_match_redis`.
        let (i, c) = pattern(b"a");
        assert!(i < REGISTERS && (1..=51).contains(&c));
    }

    #[test]
    fn empty_hll_layout() {
        let v = new_sparse();
        assert_eq!(&v[..5], b"HYLL\x01");
        assert_eq!(&v[HDR..], [0x7f, 0xff]);
        assert!(is_valid(&v) && !is_dense(&v));
        assert_eq!(cached(&v), Some(0));
        assert_eq!(count(&v), Ok(0));
        let d = sparse_to_dense(&v).expect("dense");
        assert_eq!(d.len(), DENSE_SIZE);
        assert!(is_valid(&d) && is_dense(&d));
        assert_eq!(count(&d), Ok(0));
        assert_eq!(decode_sparse(&v).as_deref(), Some("Z:16384"));
    }

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_set(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), (i % 64) as u8);
        }
        let all: Vec<u8> = dense_all(&regs).collect();
        assert_eq!(all.len(), REGISTERS);
        assert!(all.iter().enumerate().all(|(i, &r)| r == (i % 64) as u8));
    }

    #[test]
    fn sparse_edits_stay_equal_to_dense() {
        let mut sparse = new_sparse();
        let mut dense = sparse_to_dense(&sparse).expect("dense");
        for i in 0..2000u32 {
            let ele = i.to_le_bytes();
            let a = add(&mut sparse, &ele, 1 << 20).expect("sparse");
            let b = add(&mut dense, &ele, 1 << 20).expect("dense");
            assert_eq!(a, b, "element {i}");
        }
        assert!(!is_dense(&sparse));
        assert_eq!(registers(&sparse), registers(&dense));
        assert_eq!(count(&sparse), count(&dense));
    }

    #[test]
    fn corrupt_sparse_is_detected_not_panicking() {
        let mut v = new_sparse();
        for i in 0..50u32 {
            add(&mut v, &i.to_le_bytes(), 3000).expect("add");
        }
        let mut rng = rand::rng();
        for _ in 0..2000 {
            let mut c = v.clone();
            for _ in 0..3 {
                let pos = rand::Rng::random_range(&mut rng, HDR..c.len());
                c[pos] = rand::Rng::random(&mut rng);
            }
            let _ = count(&c);
            let _ = sparse_to_dense(&c);
            let mut m = [0u8; REGISTERS];
            let _ = merge_into(&mut m, &c);
            let _ = add(&mut c, b"x", 3000);
        }
        v.truncate(v.len() - 1);
        assert_eq!(count(&v), Err(Corrupt));
    }

    #[test]
    fn self_test_passes() {
        assert_eq!(self_test(&mut rand::rng(), 10_000), Ok(()));
    }
}
