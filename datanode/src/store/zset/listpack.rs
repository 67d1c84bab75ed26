//! The compact encoding ([`ZipList`]) and its score bytes.

use super::*;

// ---- compact encoding ----

/// Largest integer stored exactly as an integer score (every integer up to 2^53 is a double).
pub(super) const INT_SCORE_MAX: f64 = 9007199254740992.0;
/// Score tag bytes: below `TAG_INT`, the byte is the score; `TAG_INT + k` is an integer in
/// `k + 1` zigzag bytes; `TAG_F64` the double's 8 bytes.
const TAG_INT: u8 = 0xF0;
const TAG_F64: u8 = 0xF8;

pub(super) fn put_score(buf: &mut Vec<u8>, s: f64) {
    if s == s.trunc() && s.abs() <= INT_SCORE_MAX {
        // -0.0 is stored as 0, as Redis's listpack stores it.
        let n = s as i64;
        if (0..TAG_INT as i64).contains(&n) {
            buf.push(n as u8);
            return;
        }
        let z = ((n << 1) ^ (n >> 63)) as u64;
        let bytes = (8 - z.leading_zeros() as usize / 8).max(1);
        buf.push(TAG_INT + (bytes - 1) as u8);
        buf.extend_from_slice(&z.to_le_bytes()[..bytes]);
    } else {
        buf.push(TAG_F64);
        buf.extend_from_slice(&s.to_le_bytes());
    }
}

pub(super) fn score_len(s: f64) -> usize {
    let mut b = Vec::with_capacity(9);
    put_score(&mut b, s);
    b.len()
}

/// Reads a score at `at`: (score, offset after it). Truncated bytes read as 0.
pub(super) fn get_score(buf: &[u8], at: usize) -> (f64, usize) {
    let Some(&t) = buf.get(at) else {
        return (0.0, at);
    };
    if t < TAG_INT {
        return (t as f64, at + 1);
    }
    let n = if t == TAG_F64 {
        8
    } else {
        (t - TAG_INT) as usize + 1
    };
    let mut b = [0u8; 8];
    let end = (at + 1 + n).min(buf.len());
    b[..end - at - 1].copy_from_slice(&buf[at + 1..end]);
    let v = u64::from_le_bytes(b);
    if t == TAG_F64 {
        (f64::from_bits(v), end)
    } else {
        let i = ((v >> 1) as i64) ^ -((v & 1) as i64);
        (i as f64, end)
    }
}

/// The compact encoding: sorted entries in one block (see the module docs).
///
/// No count is kept (see `Listpack`): the struct stays one `Vec`. Like a `Listpack`, it owns
/// its bytes or is a view of the bytes its key's entry block holds inline.
#[derive(Clone, Default)]
pub struct ZipList {
    pub(super) buf: LpBuf,
}

impl PartialEq for ZipList {
    fn eq(&self, o: &Self) -> bool {
        self.buf.bytes() == o.buf.bytes()
    }
}

impl std::fmt::Debug for ZipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One entry of a [`ZipList`]: where it starts and ends, its member and score.
struct Span<'a> {
    start: usize,
    end: usize,
    member: &'a [u8],
    score: f64,
}

impl ZipList {
    /// A view of `bytes` (a `ZipList`'s [`ZipList::bytes`]) in place.
    ///
    /// # Safety
    /// As `Listpack::view`.
    pub(in crate::store) unsafe fn view(bytes: &[u8]) -> ZipList {
        ZipList {
            // SAFETY: the caller's promise.
            buf: unsafe { LpBuf::view(bytes) },
        }
    }

    /// An owned copy of `bytes` (a `ZipList`'s [`ZipList::bytes`]).
    pub(in crate::store) fn from_bytes(bytes: &[u8]) -> ZipList {
        ZipList {
            buf: LpBuf::Own(bytes.to_vec()),
        }
    }

    /// The encoded entries.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.buf.bytes()
    }

    pub fn len(&self) -> usize {
        self.spans().count()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.buf.heap_size()
    }

    fn spans(&self) -> impl Iterator<Item = Span<'_>> + '_ {
        let buf = self.bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= buf.len() {
                return None;
            }
            let start = at;
            let (n, data) = get_leb(buf, at);
            let mend = (data + n).min(buf.len());
            let (score, end) = get_score(buf, mend);
            at = end.max(mend + 1);
            Some(Span {
                start,
                end,
                member: &buf[data..mend],
                score,
            })
        })
    }

    /// (member, score) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.spans().map(|s| (s.member, s.score))
    }

    fn find(&self, m: &[u8]) -> Option<Span<'_>> {
        self.spans().find(|s| s.member == m)
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|s| s.score)
    }

    /// Inserts a member that is not there, in order.
    fn insert_new(&mut self, m: &[u8], s: f64) {
        let at = self
            .spans()
            .find(|e| cmp_elem(e.score, e.member, s, m) == Ordering::Greater)
            .map_or(self.bytes().len(), |e| e.start);
        let mut enc = Vec::with_capacity(m.len() + 12);
        put_leb(&mut enc, m.len());
        enc.extend_from_slice(m);
        put_score(&mut enc, s);
        let buf = self.buf.own();
        // Exactly sized, like a listpack's realloc.
        buf.reserve_exact(enc.len());
        buf.splice(at..at, enc);
    }

    fn remove_bytes(&mut self, start: usize, end: usize) {
        let buf = self.buf.own();
        buf.drain(start..end);
        if buf.capacity() > buf.len() + buf.len() / 4 + 16 {
            buf.shrink_to_fit();
        }
    }

    /// Sets `m`'s score; the previous score when it was there.
    pub fn insert(&mut self, m: &[u8], s: f64) -> Option<f64> {
        let old = self.find(m).map(|e| (e.start, e.end, e.score));
        if let Some((start, end, old)) = old {
            if old == s {
                return Some(old);
            }
            self.remove_bytes(start, end);
            self.insert_new(m, s);
            return Some(old);
        }
        self.insert_new(m, s);
        None
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let (start, end, s) = self.find(m).map(|e| (e.start, e.end, e.score))?;
        self.remove_bytes(start, end);
        Some(s)
    }

    /// Removes the elements of ranks `lo..hi`.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> usize {
        let n = self.len();
        if lo >= hi || lo >= n {
            return 0;
        }
        let hi = hi.min(n);
        let mut start = self.bytes().len();
        let mut end = start;
        for (i, e) in self.spans().enumerate() {
            if i == lo {
                start = e.start;
            }
            if i + 1 == hi {
                end = e.end;
                break;
            }
        }
        self.remove_bytes(start, end);
        hi - lo
    }

    /// The longest member (for the conversion check of results built whole).
    pub(super) fn max_member_len(&self) -> usize {
        self.iter().map(|(m, _)| m.len()).max().unwrap_or(0)
    }
}
