//! Lists: a quicklist, a double-ended queue of packed nodes.
//!
//! A node is one block of entries in listpack's entry format: an integer element (the
//! canonical decimal form of an i64) takes 1 to 9 bytes, a string a 1, 2 or 5-byte header
//! and its bytes, and each entry ends with its own length ("backlen", 1 to 5 bytes) so the
//! node is walked from either end:
//!
//! ```text
//! 0xxxxxxx               integer 0..=127             110xxxxx yyyyyyyy  13-bit integer
//! 10LLLLLL <bytes>       string, length < 64         1110LLLL LLLLLLLL <bytes>  < 4096
//! 11110000 <u32 LE> <bytes>  longer string           11110001..11110100  i16 i24 i32 i64 LE
//! ```
//!
//! A node's block keeps its free space at the end its elements arrive from, so a push at
//! either end of the list writes in place (no memmove of the node, unlike a listpack's
//! insert at its head). Nodes are filled up to `list-max-listpack-size` (negative: a byte
//! size, -2 is 8 KiB; positive: an element count, within 8 KiB), like Redis's quicklist;
//! an element larger than a node's limit gets a node of its own. A full node is trimmed to
//! its contents when the next node starts, so a long list costs its entries plus about 1%.
//!
//! `list-compress-depth` works as in Redis: with a depth D > 0, the D nodes at each end are
//! kept raw (pushes and pops work there) and every node between them is compressed with LZF
//! ([`crate::lzf`]) when it holds at least 48 bytes and the compressed form saves more than 8
//! (else it stays raw until it changes). A list takes the depth in force when it grows
//! past one node, as Redis's quicklist takes it when it is created, and keeps it. A read of
//! an interior node decompresses it into a scratch buffer; a write decompresses it in place
//! and compresses it again afterwards. The memory accounting counts the compressed blocks.
//!
//! The list knows its length and the bytes it holds in O(1), for LLEN and the store's
//! memory accounting.
//!
//! Here the [`List`] itself; by concern: `entry` (the entry format), `node` (one node, raw
//! or compressed), `cursor` ([`Cursor`], [`RevCursor`]).

use super::mem::alloc_size;
use super::value::{Limits, Member};
use crate::lzf;
use std::collections::VecDeque;

mod cursor;
mod entry;
mod node;

pub use cursor::{Cursor, RevCursor};
pub use entry::int_elem;
use entry::*;
use node::*;

/// An end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    pub fn other(self) -> End {
        match self {
            End::Left => End::Right,
            End::Right => End::Left,
        }
    }
}

/// Node sizes for `list-max-listpack-size` -1 to -5.
const SIZE_LIMITS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// The largest node under a count limit (Redis's safety limit).
const SAFETY_LIMIT: usize = 8192;
/// The smallest block a node is given.
const MIN_CAP: usize = 32;
/// Nodes smaller than this are never compressed (Redis's `MIN_COMPRESS_BYTES`).
const MIN_COMPRESS_BYTES: usize = 48;
/// A compressed node must be more than this much smaller (Redis's `MIN_COMPRESS_IMPROVE`).
const MIN_COMPRESS_IMPROVE: usize = 8;
/// `Node::packed` of a raw node that compression would not shrink enough (until it changes).
const NOT_WORTH: u32 = u32::MAX;

// ---- the list ----

/// A list (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
    /// The nodes' blocks, by size class.
    node_heap: usize,
    /// `list-compress-depth` of this list (taken when it grew past one node).
    depth: u16,
}

impl PartialEq for List {
    fn eq(&self, o: &Self) -> bool {
        if self.len != o.len {
            return false;
        }
        let (mut a, mut b) = (self.cursor(), o.cursor());
        while let (Some(x), Some(y)) = (a.next(), b.next()) {
            if x != y {
                return false;
            }
        }
        true
    }
}

/// A node's byte limit.
fn byte_limit(l: &Limits) -> usize {
    match l.list_max_listpack_size {
        f if f < 0 => SIZE_LIMITS[((-(f + 1)) as usize).min(SIZE_LIMITS.len() - 1)],
        _ => SAFETY_LIMIT,
    }
}

/// Whether a node can take `add` more bytes under `l`.
fn fits(node: &Node, add: usize, l: &Limits) -> bool {
    if node.count == 0 {
        return true;
    }
    let new = node.used() + add;
    match l.list_max_listpack_size {
        f if f < 0 => new <= byte_limit(l),
        f => new <= SAFETY_LIMIT && (node.count as i64) < f,
    }
}

/// Whether two nodes' entries fit in one node under `l`.
fn fit_together(a: &Node, b: &Node, l: &Limits) -> bool {
    let bytes = a.raw_len() + b.raw_len();
    match l.list_max_listpack_size {
        f if f < 0 => bytes <= byte_limit(l),
        f => bytes <= SAFETY_LIMIT && (a.count + b.count) as i64 <= f,
    }
}

impl List {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// About how many bytes an element takes in the nodes' blocks (with their slack; less
    /// in compressed nodes): what a reply of elements should expect per element.
    pub fn bytes_per_element(&self) -> usize {
        self.node_heap.checked_div(self.len).unwrap_or(0)
    }

    /// Bytes the list holds on the heap (its box, node array and node blocks).
    pub fn heap_size(&self) -> usize {
        alloc_size(std::mem::size_of::<List>())
            + alloc_size(self.nodes.capacity() * std::mem::size_of::<Node>())
            + self.node_heap
    }

    /// OBJECT ENCODING's name: one node is a listpack (as Redis 7.2 and Valkey name a
    /// small list), more a quicklist.
    pub fn encoding(&self) -> &'static str {
        if self.nodes.len() <= 1 {
            "listpack"
        } else {
            "quicklist"
        }
    }

    /// A list of `items`, in order.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>, l: &Limits) -> List {
        let mut list = List::default();
        for e in items {
            list.push(End::Right, e, l);
        }
        list
    }

    /// Runs `f` on node `i`, raw (decompressed first), keeping the heap count in step. The
    /// node may change, so a verdict that compression would not pay is forgotten.
    fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> R) -> R {
        let n = &mut self.nodes[i];
        let before = n.heap();
        n.unpack();
        let r = f(n);
        if n.packed == NOT_WORTH {
            n.packed = 0;
        }
        self.node_heap = self.node_heap - before + n.heap();
        r
    }

    /// Whether node `i` is between the `depth` nodes kept raw at each end.
    fn interior(&self, i: usize) -> bool {
        let d = self.depth as usize;
        d > 0 && i >= d && i + d < self.nodes.len()
    }

    /// Compresses node `i` if it is interior, decompresses it if not.
    fn settle(&mut self, i: usize) {
        let interior = self.interior(i);
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        if interior == (n.packed != 0) {
            return;
        }
        let before = n.heap();
        if interior {
            n.pack();
        } else if n.packed == NOT_WORTH {
            n.packed = 0;
        } else {
            n.unpack();
        }
        self.node_heap = self.node_heap - before + n.heap();
    }

    /// Settles the nodes near the ends, after nodes came or went there (a push, a pop, a
    /// trim): only they can have crossed the depth.
    fn settle_ends(&mut self) {
        if self.depth == 0 {
            return;
        }
        let (d, n) = (self.depth as usize, self.nodes.len());
        for i in 0..=d.min(n) {
            self.settle(i);
        }
        for i in n.saturating_sub(d + 1).max(d + 1)..n {
            self.settle(i);
        }
    }

    /// Settles every node, after changes inside the list.
    fn settle_all(&mut self) {
        if self.depth == 0 {
            return;
        }
        for i in 0..self.nodes.len() {
            self.settle(i);
        }
    }

    fn remove_node(&mut self, i: usize) {
        if let Some(n) = self.nodes.remove(i) {
            self.node_heap -= n.heap();
        }
        if self.nodes.capacity() > 16 && self.nodes.len() * 4 < self.nodes.capacity() {
            self.nodes.shrink_to(self.nodes.len() * 2);
        }
    }

    /// Inserts node `n` at `i`. A list growing past one node takes the compression depth
    /// in force (as Redis creates its quicklist then).
    fn insert_node(&mut self, i: usize, n: Node, l: &Limits) {
        if self.nodes.len() == 1 {
            self.depth = l.list_compress_depth.min(u16::MAX as usize) as u16;
        }
        self.node_heap += n.heap();
        self.nodes.insert(i, n);
    }

    /// The index of the node at `end`.
    fn edge_index(&self, end: End) -> usize {
        match end {
            End::Left => 0,
            End::Right => self.nodes.len() - 1,
        }
    }

    /// LPUSH/RPUSH of one element.
    pub fn push(&mut self, end: End, e: &[u8], l: &Limits) {
        let p = plan(e);
        let limit = byte_limit(l);
        let full = match end {
            End::Left => self.nodes.front(),
            End::Right => self.nodes.back(),
        }
        .is_none_or(|n| !fits(n, p.size, l));
        if full {
            if !self.nodes.is_empty() {
                // The edge node is complete: give back its unused block.
                let i = self.edge_index(end);
                self.with_node(i, Node::fit);
            }
            let n = Node::default();
            match end {
                End::Left => self.insert_node(0, n, l),
                End::Right => self.insert_node(self.nodes.len(), n, l),
            }
        }
        let i = self.edge_index(end);
        self.with_node(i, |n| n.push(e, p, end, limit));
        self.len += 1;
        if full {
            self.settle_ends();
        }
    }

    /// Pops the element at `end`, handing it to `f` first.
    pub fn pop_with<R>(&mut self, end: End, f: impl FnOnce(Member<'_>) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let i = self.edge_index(end);
        if self.nodes[i].is_packed() {
            // Only an end node is popped from, and ends are raw; but be sure.
            self.with_node(i, |_| ());
        }
        let (r, size) = {
            let (m, size) = self.nodes[i].edge(end);
            (f(m), size)
        };
        self.nodes[i].drop_edge(end, size);
        self.len -= 1;
        if self.nodes[i].count == 0 {
            self.remove_node(i);
            self.settle_ends();
        } else if self.nodes[i].used() * 4 < self.nodes[i].buf.len()
            && self.nodes[i].buf.len() > 256
        {
            self.with_node(i, Node::fit);
        }
        Some(r)
    }

    /// Pops the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        self.pop_with(end, |m| m.to_vec())
    }

    /// (node, index in the node) of element `i` (`i < len`), walking from the nearer end.
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut i = i;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count as usize {
                    return (ni, i);
                }
                i -= n.count as usize;
            }
        } else {
            let mut r = self.len - 1 - i;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if r < n.count as usize {
                    return (ni, n.count as usize - 1 - r);
                }
                r -= n.count as usize;
            }
        }
        (self.nodes.len(), 0)
    }

    /// Calls `f` with element `i` (from 0), if there is one.
    pub fn get_with<R>(&self, i: usize, f: impl FnOnce(Member<'_>) -> R) -> Option<R> {
        if i >= self.len {
            return None;
        }
        self.cursor_from(i).next().map(f)
    }

    /// Element `i` (from 0), as bytes.
    pub fn get(&self, i: usize) -> Option<Vec<u8>> {
        self.get_with(i, |m| m.to_vec())
    }

    /// Elements front to back.
    pub fn cursor(&self) -> Cursor<'_> {
        self.cursor_from(0)
    }

    /// Elements from the `i`-th on, front to back.
    pub fn cursor_from(&self, i: usize) -> Cursor<'_> {
        let mut c = Cursor {
            list: self,
            node: self.nodes.len(),
            off: 0,
            end: 0,
            scratch: Vec::new(),
        };
        if i < self.len {
            let (ni, local) = self.locate(i);
            c.enter(ni);
            let n = &self.nodes[ni];
            c.off = offset_in(c.current(), n.count as usize, local);
        }
        c
    }

    /// Elements from the `i`-th (the last when past the end) down to the first, back to
    /// front.
    pub fn rev_cursor_from(&self, i: usize) -> RevCursor<'_> {
        let mut c = RevCursor {
            list: self,
            node: 0,
            end: 0,
            scratch: Vec::new(),
        };
        if self.len == 0 {
            return c;
        }
        let i = i.min(self.len - 1);
        let (ni, local) = self.locate(i);
        c.enter(ni);
        let d = c.current();
        let off = offset_in(d, self.nodes[ni].count as usize, local);
        c.end = off + decode(&d[off..]).1;
        c
    }

    /// Elements back to front.
    pub fn rev_cursor(&self) -> RevCursor<'_> {
        self.rev_cursor_from(usize::MAX)
    }

    /// Splits node `i` in two while it is over the byte limit with more than one entry.
    fn split_if_large(&mut self, i: usize, l: &Limits) {
        let limit = byte_limit(l);
        let n = &self.nodes[i];
        let over = match l.list_max_listpack_size {
            f if f > 0 => n.used() > limit || n.count as i64 > f,
            _ => n.used() > limit,
        };
        if !over || n.count < 2 {
            return;
        }
        let half = n.count as usize / 2;
        let tail = self.with_node(i, |n| n.split_off(half));
        self.insert_node(i + 1, tail, l);
        self.split_if_large(i + 1, l);
        self.split_if_large(i, l);
    }

    /// Appends node `i + 1`'s entries to node `i`.
    fn merge_next(&mut self, i: usize) {
        if i + 1 >= self.nodes.len() {
            return;
        }
        self.with_node(i + 1, |_| ());
        let Some(next) = self.nodes.get(i + 1).cloned() else {
            return;
        };
        self.remove_node(i + 1);
        let (data, count) = (next.data(), next.count);
        self.with_node(i, |n| {
            let at = n.used();
            n.splice(at, at, 0, data, count);
            n.fit();
        });
    }

    /// LSET: replaces element `i`; false when out of range.
    pub fn set(&mut self, i: usize, e: &[u8], l: &Limits) -> bool {
        if i >= self.len {
            return false;
        }
        let (ni, local) = self.locate(i);
        let mut enc = Vec::new();
        encode_into(&mut enc, e);
        self.with_node(ni, |n| {
            let off = n.offset_of(local);
            let size = decode(&n.data()[off..]).1;
            n.splice(off, off + size, 1, &enc, 1);
        });
        self.split_if_large(ni, l);
        self.settle_all();
        true
    }

    /// LINSERT: puts `e` before or after the first element equal to `pivot`. Returns the new
    /// length, or `None` when there is no such element.
    pub fn insert(&mut self, pivot: &[u8], e: &[u8], after: bool, l: &Limits) -> Option<usize> {
        let pivot_int = int_elem(pivot);
        let mut found = None;
        let mut scratch = Vec::new();
        'nodes: for (ni, n) in self.nodes.iter().enumerate() {
            for (off, size, m) in entries_of(n.entries(&mut scratch)) {
                if same(m, pivot, pivot_int) {
                    found = Some((ni, if after { off + size } else { off }));
                    break 'nodes;
                }
            }
        }
        let (ni, at) = found?;
        let mut enc = Vec::new();
        encode_into(&mut enc, e);
        self.with_node(ni, |n| n.splice(at, at, 0, &enc, 1));
        self.len += 1;
        self.split_if_large(ni, l);
        self.settle_all();
        Some(self.len)
    }

    /// LREM: removes up to `count` elements equal to `e` (all when 0), from the front for a
    /// positive count, from the back for a negative one. Returns how many went.
    pub fn remove(&mut self, e: &[u8], count: i64, l: &Limits) -> usize {
        let e_int = int_elem(e);
        let mut quota = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let from_back = count < 0;
        let mut removed = 0;
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        if from_back {
            order.reverse();
        }
        let mut touched = Vec::new();
        let mut scratch = Vec::new();
        for ni in order {
            if quota == 0 {
                break;
            }
            let mut hits: Vec<(usize, usize)> = entries_of(self.nodes[ni].entries(&mut scratch))
                .filter(|&(_, _, m)| same(m, e, e_int))
                .map(|(off, size, _)| (off, size))
                .collect();
            if hits.is_empty() {
                continue;
            }
            if hits.len() > quota {
                if from_back {
                    hits.drain(..hits.len() - quota);
                } else {
                    hits.truncate(quota);
                }
            }
            quota -= hits.len();
            removed += hits.len();
            self.with_node(ni, |n| {
                let d = n.data();
                let mut kept = Vec::with_capacity(d.len());
                let mut at = 0;
                for &(off, size) in &hits {
                    kept.extend_from_slice(&d[at..off]);
                    at = off + size;
                }
                kept.extend_from_slice(&d[at..]);
                let count = n.count - hits.len() as u32;
                *n = Node::from_entries(&kept, count);
            });
            touched.push(ni);
        }
        self.len -= removed;
        self.tidy(touched, l);
        removed
    }

    /// After changes to the nodes `touched`: drops the emptied ones, then merges neighbours
    /// that fit in one node when one of them is less than half full.
    fn tidy(&mut self, mut touched: Vec<usize>, l: &Limits) {
        touched.sort_unstable();
        for &ni in touched.iter().rev() {
            if ni < self.nodes.len() && self.nodes[ni].count == 0 {
                self.remove_node(ni);
            }
        }
        let half = byte_limit(l) / 2;
        let mut i = 0;
        while i + 1 < self.nodes.len() {
            let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
            if (a.raw_len() < half || b.raw_len() < half) && fit_together(a, b, l) {
                self.merge_next(i);
            } else {
                i += 1;
            }
        }
        self.settle_all();
    }

    /// Removes the first `n` elements.
    pub fn remove_front(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let c = self.nodes[0].count as usize;
            if c <= n {
                self.remove_node(0);
                n -= c;
            } else {
                self.with_node(0, |node| {
                    let off = node.offset_of(n);
                    node.start += off as u32;
                    node.count -= n as u32;
                    if node.used() * 4 < node.buf.len() && node.buf.len() > 256 {
                        node.fit();
                    }
                });
                n = 0;
            }
        }
        self.settle_ends();
    }

    /// Removes the last `n` elements.
    pub fn remove_back(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let last = self.nodes.len() - 1;
            let c = self.nodes[last].count as usize;
            if c <= n {
                self.remove_node(last);
                n -= c;
            } else {
                self.with_node(last, |node| {
                    let keep = node.count as usize - n;
                    let off = node.offset_of(keep);
                    node.end = node.start + off as u32;
                    node.count = keep as u32;
                    if node.used() * 4 < node.buf.len() && node.buf.len() > 256 {
                        node.fit();
                    }
                });
                n = 0;
            }
        }
        self.settle_ends();
    }

    /// LPOS's scan: calls `f` with the index of each element equal to `e` among the first
    /// `maxlen` elements from the front (or from the back), until `f` returns false.
    pub fn positions(
        &self,
        e: &[u8],
        backwards: bool,
        mut f: impl FnMut(usize) -> bool,
        maxlen: usize,
    ) {
        let e_int = int_elem(e);
        let mut k = 0;
        if backwards {
            let mut c = self.rev_cursor();
            while let Some(m) = c.next() {
                if k >= maxlen {
                    return;
                }
                if same(m, e, e_int) && !f(self.len - 1 - k) {
                    return;
                }
                k += 1;
            }
        } else {
            let mut c = self.cursor();
            while let Some(m) = c.next() {
                if k >= maxlen {
                    return;
                }
                if same(m, e, e_int) && !f(k) {
                    return;
                }
                k += 1;
            }
        }
    }

    /// Every index of `e` (tests).
    #[cfg(test)]
    fn positions_vec(&self, e: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        self.positions(
            e,
            false,
            |i| {
                out.push(i);
                true
            },
            usize::MAX,
        );
        out
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        let len: usize = self.nodes.iter().map(|n| n.count as usize).sum();
        assert_eq!(len, self.len, "length");
        let heap: usize = self.nodes.iter().map(Node::heap).sum();
        assert_eq!(heap, self.node_heap, "heap");
        let mut scratch = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            assert!(n.count > 0, "empty node");
            // Ends raw; interior nodes compressed, unless that would not pay.
            if self.interior(i) {
                assert!(
                    n.packed != 0,
                    "interior node {i} of {} raw",
                    self.nodes.len()
                );
            } else {
                assert_eq!(n.packed, 0, "end node {i} of {} not raw", self.nodes.len());
            }
            let d = n.entries(&mut scratch);
            assert_eq!(d.len(), n.raw_len(), "raw length");
            assert_eq!(entries_of(d).count(), n.count as usize, "node count");
            let mut end = d.len();
            for _ in 0..n.count {
                end = entry_start(d, end);
            }
            assert_eq!(end, 0, "backward walk");
        }
    }
}

#[cfg(test)]
mod tests;
