//! Sorted sets: members ordered by (score, member bytes), each member once.
//!
//! - [`ZipList`]: the compact encoding (OBJECT ENCODING `listpack`), one contiguous block of
//!   `[member length, LEB128][member][score]` entries kept in order. A score that is an
//!   integer takes one byte up to 239 and a few more beyond (Redis's listpack stores such
//!   scores as integers too), others the 8 bytes of the double. Every operation is a linear
//!   scan of the block, cheaper than anything else for the few dozen members it holds.
//! - [`ZTree`]: the large encoding (OBJECT ENCODING `skiplist`, Redis's name), three parts:
//!   - a slab of `(member, score)` slots addressed by a 32-bit id, in fixed chunks, with
//!     members of up to 22 bytes inline in the slot (most members are short: no allocation);
//!   - a hash table of ids (4 bytes a member) that finds a member's id: ZSCORE is one probe
//!     and one slot;
//!   - a B+ tree of `(score, id)` with each child's element count in its parent, so rank,
//!     select and range queries are O(log n) and range scans read leaves of 85 sorted
//!     entries (12 bytes each) rather than chasing one node per element as a skip list does.
//!
//!   Chosen by measurement (see the README's memory table): a member costs about 60 bytes
//!   against Valkey 8's 94 and redis-server's 110 for a skip list plus dict, and the scans
//!   that ZRANGE and ZRANK do touch a few cache lines per leaf instead of one per element.
//!
//! Both keep their heap size in O(1) (`heap_size`), so the store's accounting follows every
//! change. A [`Zset`] converts from listpack to tree when it outgrows
//! `zset-max-listpack-entries`/`-value` ([`Limits`]) and never back, like Redis, except that
//! results built whole (ZUNIONSTORE, ZRANGESTORE, GEOSEARCHSTORE, handoff) pick the encoding
//! their size calls for.
//!
//! Here the [`Zset`] value; by concern: `listpack` ([`ZipList`]), `slab` (the tree's members),
//! `btree` (its order-statistics B+ tree), `ztree` ([`ZTree`], the three together).

use super::idindex::IdIndex;
use super::mem::alloc_size;
use super::name::Name;
use super::value::{get_leb, put_leb, Limits, LpBuf};
use std::cmp::Ordering;
use std::hash::BuildHasher;

type Hasher = foldhash::fast::RandomState;

mod btree;
mod listpack;
mod slab;
mod ztree;

use btree::*;
pub use listpack::ZipList;
use listpack::*;
use slab::*;
pub use ztree::ZTree;

/// Orders two elements: by score, then by member bytes (Redis's order; -0 and 0 are equal
/// scores, NaN never reaches a sorted set).
#[inline]
pub fn cmp_elem(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

// ---- the sorted set value ----

/// A sorted set in one of its two encodings.
#[derive(Clone, Debug, PartialEq)]
pub enum Zset {
    Listpack(ZipList),
    /// Boxed, so that a small sorted set's value stays small.
    Tree(Box<ZTree>),
}

impl Default for Zset {
    fn default() -> Self {
        Zset::Listpack(ZipList::default())
    }
}

/// A member borrowed from a sorted set, with its score.
pub type Elem<'a> = (&'a [u8], f64);

impl Zset {
    pub fn len(&self) -> usize {
        match self {
            Zset::Listpack(z) => z.len(),
            Zset::Tree(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Zset::Listpack(z) => z.heap_size(),
            Zset::Tree(t) => t.heap_size(),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Zset::Listpack(_) => "listpack",
            Zset::Tree(_) => "skiplist",
        }
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Zset::Listpack(z) => z.score(m),
            Zset::Tree(t) => t.score(m),
        }
    }

    /// Sets `m`'s score (a new member or an update); the previous score when it was there.
    /// Converts to the tree when the set outgrows `limits`.
    pub fn insert(&mut self, m: &[u8], s: f64, limits: &Limits) -> Option<f64> {
        if let Zset::Listpack(z) = self {
            if m.len() <= limits.zset_max_listpack_value
                && (z.len() < limits.zset_max_listpack_entries || z.score(m).is_some())
            {
                return z.insert(m, s);
            }
            self.convert_to_tree();
        }
        match self {
            Zset::Tree(t) => t.insert(m, s),
            Zset::Listpack(_) => None,
        }
    }

    fn convert_to_tree(&mut self) {
        if let Zset::Listpack(z) = self {
            *self = Zset::Tree(Box::new(ZTree::from_sorted(z.iter())));
        }
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        match self {
            Zset::Listpack(z) => z.remove(m),
            Zset::Tree(t) => t.remove(m),
        }
    }

    /// 0-based rank (ascending) and score of `m`.
    pub fn rank(&self, m: &[u8]) -> Option<(usize, f64)> {
        match self {
            Zset::Listpack(z) => z
                .iter()
                .enumerate()
                .find(|(_, (e, _))| *e == m)
                .map(|(i, (_, s))| (i, s)),
            Zset::Tree(t) => t.rank(m),
        }
    }

    /// The element of rank `r` (ascending).
    pub fn get(&self, r: usize) -> Option<Elem<'_>> {
        match self {
            Zset::Listpack(z) => z.iter().nth(r),
            Zset::Tree(t) => t.get(r),
        }
    }

    /// Elements whose score is below `s` (or at most `s`, when `inclusive`).
    pub fn count_below_score(&self, s: f64, inclusive: bool) -> usize {
        let pred = |x: f64| if inclusive { x <= s } else { x < s };
        match self {
            Zset::Listpack(z) => z.iter().take_while(|&(_, x)| pred(x)).count(),
            Zset::Tree(t) => t.partition_score(pred),
        }
    }

    /// Elements whose member sorts below `m` (or at most `m`, when `inclusive`): what a lex
    /// range counts, meaningful when every score is the same (Redis's condition for them).
    pub fn count_below_member(&self, m: &[u8], inclusive: bool) -> usize {
        let pred = |e: &[u8]| if inclusive { e <= m } else { e < m };
        match self {
            Zset::Listpack(z) => z.iter().take_while(|&(e, _)| pred(e)).count(),
            Zset::Tree(t) => t.partition_elem(|_, e| pred(e)),
        }
    }

    /// Calls `f` on the elements of ranks `lo..hi`, ascending or (`rev`) descending.
    pub fn range(&self, lo: usize, hi: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let hi = hi.min(self.len());
        if lo >= hi {
            return;
        }
        match self {
            Zset::Listpack(z) => {
                if rev {
                    let v: Vec<Elem<'_>> = z.iter().skip(lo).take(hi - lo).collect();
                    v.into_iter().rev().for_each(|(m, s)| f(m, s));
                } else {
                    z.iter().skip(lo).take(hi - lo).for_each(|(m, s)| f(m, s));
                }
            }
            Zset::Tree(t) => t.for_each(lo, hi, rev, f),
        }
    }

    /// Every element in order.
    pub fn for_each(&self, f: impl FnMut(&[u8], f64)) {
        self.range(0, self.len(), false, f)
    }

    /// Owned copies of the elements of ranks `lo..hi`.
    pub fn collect_range(&self, lo: usize, hi: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::with_capacity(hi.saturating_sub(lo).min(self.len()));
        self.range(lo, hi, rev, |m, s| out.push((m.to_vec(), s)));
        out
    }

    /// Removes the elements of ranks `lo..hi`; how many went.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> usize {
        match self {
            Zset::Listpack(z) => z.remove_range(lo, hi),
            Zset::Tree(t) => t.remove_range(lo, hi),
        }
    }

    /// Removes and returns up to `count` elements from the low end (or the high end, `max`),
    /// in the order they are popped.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Vec<u8>, f64)> {
        if let Zset::Tree(t) = self {
            return t.pop(count, max);
        }
        let n = self.len();
        let k = count.min(n);
        let (lo, hi) = if max { (n - k, n) } else { (0, k) };
        let out = self.collect_range(lo, hi, max);
        self.remove_range(lo, hi);
        out
    }

    /// A sorted set of `items` (in order, each member once), in the encoding `limits` asks
    /// for its size.
    pub fn from_sorted(items: &[(&[u8], f64)], limits: &Limits) -> Zset {
        let fits = items.len() <= limits.zset_max_listpack_entries
            && items
                .iter()
                .all(|(m, _)| m.len() <= limits.zset_max_listpack_value);
        if fits {
            let mut z = ZipList::default();
            let bytes: usize = items
                .iter()
                .map(|(m, s)| super::mem::leb_len(m.len()) + m.len() + score_len(*s))
                .sum();
            let buf = z.buf.own();
            buf.reserve_exact(bytes);
            for (m, s) in items {
                put_leb(buf, m.len());
                buf.extend_from_slice(m);
                put_score(buf, *s);
            }
            Zset::Listpack(z)
        } else {
            Zset::Tree(Box::new(ZTree::from_sorted(items.iter().copied())))
        }
    }

    /// Converts a tree that `limits` would keep compact back to a listpack (for a result
    /// stored whole, as Redis's `zsetConvertToListpackIfNeeded`).
    pub fn fit(&mut self, limits: &Limits) {
        if let Zset::Tree(t) = self {
            if t.len() <= limits.zset_max_listpack_entries {
                let mut longest = 0;
                t.for_each(0, t.len(), false, |m, _| longest = longest.max(m.len()));
                if longest <= limits.zset_max_listpack_value {
                    let items = self.collect_range(0, self.len(), false);
                    let refs: Vec<Elem<'_>> = items.iter().map(|(m, s)| (&m[..], *s)).collect();
                    *self = Zset::from_sorted(&refs, limits);
                }
            }
        } else if let Zset::Listpack(z) = self {
            if z.len() > limits.zset_max_listpack_entries
                || z.max_member_len() > limits.zset_max_listpack_value
            {
                self.convert_to_tree();
            }
        }
    }
}

#[cfg(test)]
mod tests;
