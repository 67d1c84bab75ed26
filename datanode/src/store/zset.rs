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

use super::mem::alloc_size;
use super::name::Name;
use super::value::{get_leb, put_leb, Limits, LpBuf};
use hashbrown::HashTable;
use std::cmp::Ordering;
use std::hash::BuildHasher;

type Hasher = foldhash::fast::RandomState;

/// Orders two elements: by score, then by member bytes (Redis's order; -0 and 0 are equal
/// scores, NaN never reaches a sorted set).
#[inline]
pub fn cmp_elem(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

// ---- compact encoding ----

/// Largest integer stored exactly as an integer score (every integer up to 2^53 is a double).
const INT_SCORE_MAX: f64 = 9007199254740992.0;
/// Score tag bytes: below `TAG_INT`, the byte is the score; `TAG_INT + k` is an integer in
/// `k + 1` zigzag bytes; `TAG_F64` the double's 8 bytes.
const TAG_INT: u8 = 0xF0;
const TAG_F64: u8 = 0xF8;

fn put_score(buf: &mut Vec<u8>, s: f64) {
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

fn score_len(s: f64) -> usize {
    let mut b = Vec::with_capacity(9);
    put_score(&mut b, s);
    b.len()
}

/// Reads a score at `at`: (score, offset after it). Truncated bytes read as 0.
fn get_score(buf: &[u8], at: usize) -> (f64, usize) {
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
    buf: LpBuf,
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
    pub(super) unsafe fn view(bytes: &[u8]) -> ZipList {
        ZipList {
            // SAFETY: the caller's promise.
            buf: unsafe { LpBuf::view(bytes) },
        }
    }

    /// An owned copy of `bytes` (a `ZipList`'s [`ZipList::bytes`]).
    pub(super) fn from_bytes(bytes: &[u8]) -> ZipList {
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
    fn max_member_len(&self) -> usize {
        self.iter().map(|(m, _)| m.len()).max().unwrap_or(0)
    }
}

// ---- large encoding: members ----

struct Slot {
    name: Name,
    score: f64,
}

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Member slots by id, in chunks of [`CHUNK`] (only the last one grows, so a large set
/// wastes at most part of one chunk), with a free list of ids.
#[derive(Default)]
struct Slab {
    chunks: Vec<Vec<Slot>>,
    free: Vec<u32>,
    live: usize,
    /// Heap bytes of the members stored out of line.
    name_heap: usize,
}

impl Slab {
    #[inline]
    fn slot(&self, id: u32) -> &Slot {
        &self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    fn slot_mut(&mut self, id: u32) -> &mut Slot {
        &mut self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    fn name(&self, id: u32) -> &[u8] {
        self.slot(id).name.bytes()
    }

    #[inline]
    fn score(&self, id: u32) -> f64 {
        self.slot(id).score
    }

    /// Ids handed out so far (live or free).
    fn high(&self) -> usize {
        match self.chunks.last() {
            None => 0,
            Some(last) => (self.chunks.len() - 1) * CHUNK + last.len(),
        }
    }

    fn alloc(&mut self, name: Name, score: f64) -> u32 {
        self.live += 1;
        self.name_heap += name.heap();
        if let Some(id) = self.free.pop() {
            *self.slot_mut(id) = Slot { name, score };
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(8));
        }
        let n = self.chunks.len();
        let last = &mut self.chunks[n - 1];
        if last.len() == last.capacity() {
            // Grow by half, exactly (a doubling Vec would leave a quarter unused on average).
            let more = (last.capacity() / 2).max(8).min(CHUNK - last.capacity());
            last.reserve_exact(more);
        }
        last.push(Slot { name, score });
        ((n - 1) * CHUNK + last.len() - 1) as u32
    }

    fn release(&mut self, id: u32) -> Name {
        let slot = self.slot_mut(id);
        // A NaN score marks a free slot (no member has one).
        slot.score = f64::NAN;
        let name = std::mem::replace(&mut slot.name, Name::empty());
        self.name_heap -= name.heap();
        self.live -= 1;
        self.free.push(id);
        name
    }

    fn heap_size(&self) -> usize {
        let slot = std::mem::size_of::<Slot>();
        let full = self.chunks.len().saturating_sub(1) * alloc_size(CHUNK * slot);
        let last = self
            .chunks
            .last()
            .map_or(0, |c| alloc_size(c.capacity() * slot));
        full + last
            + alloc_size(self.chunks.capacity() * std::mem::size_of::<Vec<Slot>>())
            + alloc_size(self.free.capacity() * 4)
            + self.name_heap
    }
}

// ---- large encoding: the order-statistics B+ tree ----

/// Entries per leaf: 85 scores and ids make a leaf of 1024 bytes, one allocator class.
const LEAF_CAP: usize = 85;
/// A leaf below this many entries borrows from or merges with a neighbour.
const LEAF_MIN: usize = LEAF_CAP / 4;
const INNER_CAP: usize = 64;
const INNER_MIN: usize = INNER_CAP / 4;

struct Leaf {
    len: u16,
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

/// A separator: a lower bound of the keys of the child to its right (a copy: the member it
/// came from may be gone since).
struct Key {
    score: f64,
    name: Name,
}

struct Inner {
    children: Vec<Node>,
    /// Elements under each child.
    counts: Vec<u32>,
    /// `seps[i]` is greater than every key under `children[..=i]` and at most every key
    /// under `children[i + 1..]`.
    seps: Vec<Key>,
}

enum Node {
    Leaf(Box<Leaf>),
    Inner(Box<Inner>),
}

fn new_leaf() -> Box<Leaf> {
    Box::new(Leaf {
        len: 0,
        scores: [0.0; LEAF_CAP],
        ids: [0; LEAF_CAP],
    })
}

fn new_inner() -> Box<Inner> {
    // Fixed capacities (one more than a node holds, for the insert before a split), so an
    // inner node's size is a constant of the accounting.
    Box::new(Inner {
        children: Vec::with_capacity(INNER_CAP + 1),
        counts: Vec::with_capacity(INNER_CAP + 1),
        seps: Vec::with_capacity(INNER_CAP),
    })
}

fn inner_size() -> usize {
    alloc_size(std::mem::size_of::<Inner>())
        + alloc_size((INNER_CAP + 1) * std::mem::size_of::<Node>())
        + alloc_size((INNER_CAP + 1) * 4)
        + alloc_size(INNER_CAP * std::mem::size_of::<Key>())
}

impl Leaf {
    #[inline]
    fn n(&self) -> usize {
        self.len as usize
    }

    /// First position whose key is not below `(s, m)`.
    fn lower_bound(&self, slab: &Slab, s: f64, m: &[u8]) -> usize {
        let scores = &self.scores[..self.n()];
        let lo = scores.partition_point(|&x| x < s);
        let eq = scores[lo..].partition_point(|&x| x <= s);
        lo + self.ids[lo..lo + eq].partition_point(|&id| slab.name(id) < m)
    }

    fn insert_at(&mut self, pos: usize, s: f64, id: u32) {
        let n = self.n();
        self.scores.copy_within(pos..n, pos + 1);
        self.ids.copy_within(pos..n, pos + 1);
        self.scores[pos] = s;
        self.ids[pos] = id;
        self.len += 1;
    }

    fn remove_at(&mut self, pos: usize) {
        let n = self.n();
        self.scores.copy_within(pos + 1..n, pos);
        self.ids.copy_within(pos + 1..n, pos);
        self.len -= 1;
    }

    fn push(&mut self, s: f64, id: u32) {
        let n = self.n();
        self.scores[n] = s;
        self.ids[n] = id;
        self.len += 1;
    }
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(l) => l.n(),
            Node::Inner(i) => i.counts.iter().map(|&c| c as usize).sum(),
        }
    }

    fn underfull(&self) -> bool {
        match self {
            Node::Leaf(l) => l.n() < LEAF_MIN,
            Node::Inner(i) => i.children.len() < INNER_MIN,
        }
    }
}

/// The tree and what its nodes cost.
struct Tree {
    root: Node,
    leaves: usize,
    inners: usize,
    /// Heap bytes of separators' members stored out of line.
    sep_heap: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Node::Leaf(new_leaf()),
            leaves: 1,
            inners: 0,
            sep_heap: 0,
        }
    }
}

/// Counters a tree operation updates while it holds the root mutably.
struct Stats<'a> {
    leaves: &'a mut usize,
    inners: &'a mut usize,
    sep_heap: &'a mut usize,
}

impl Stats<'_> {
    fn key(&mut self, slab: &Slab, s: f64, id: u32) -> Key {
        let name = slab.slot(id).name.clone();
        *self.sep_heap += name.heap();
        Key { score: s, name }
    }

    fn drop_key(&mut self, k: Key) {
        *self.sep_heap -= k.name.heap();
    }
}

/// The child of `inner` whose keys `(s, m)` falls among.
#[inline]
fn child_index(inner: &Inner, s: f64, m: &[u8]) -> usize {
    inner
        .seps
        .partition_point(|k| cmp_elem(k.score, k.name.bytes(), s, m) != Ordering::Greater)
}

fn insert_rec(
    node: &mut Node,
    slab: &Slab,
    st: &mut Stats<'_>,
    s: f64,
    id: u32,
) -> Option<(Key, Node)> {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(slab, s, slab.name(id));
            if leaf.n() < LEAF_CAP {
                leaf.insert_at(pos, s, id);
                return None;
            }
            // Split. Appends (rising scores, the common case of timestamps) and prepends
            // leave the old leaf full instead of half empty.
            let mid = if pos == LEAF_CAP {
                LEAF_CAP - 1
            } else if pos == 0 {
                1
            } else {
                LEAF_CAP / 2
            };
            let mut right = new_leaf();
            for i in mid..LEAF_CAP {
                right.push(leaf.scores[i], leaf.ids[i]);
            }
            leaf.len = mid as u16;
            if pos <= mid {
                leaf.insert_at(pos, s, id);
            } else {
                right.insert_at(pos - mid, s, id);
            }
            *st.leaves += 1;
            let sep = st.key(slab, right.scores[0], right.ids[0]);
            Some((sep, Node::Leaf(right)))
        }
        Node::Inner(inner) => {
            let c = child_index(inner, s, slab.name(id));
            let split = insert_rec(&mut inner.children[c], slab, st, s, id);
            inner.counts[c] += 1;
            let (sep, right) = split?;
            let rl = right.len() as u32;
            inner.counts[c] -= rl;
            inner.children.insert(c + 1, right);
            inner.counts.insert(c + 1, rl);
            inner.seps.insert(c, sep);
            if inner.children.len() <= INNER_CAP {
                return None;
            }
            let (up, right) = split_inner(inner, inner.children.len() / 2);
            *st.inners += 1;
            Some((up, Node::Inner(right)))
        }
    }
}

/// Moves `inner`'s children from `mid` on into a new node; returns the separator between
/// them and the new node.
fn split_inner(inner: &mut Inner, mid: usize) -> (Key, Box<Inner>) {
    let mut right = new_inner();
    right.children.extend(inner.children.drain(mid..));
    right.counts.extend(inner.counts.drain(mid..));
    right.seps.extend(inner.seps.drain(mid..));
    let up = inner
        .seps
        .pop()
        .expect("an inner node has a separator per extra child");
    (up, right)
}

/// Removes `(s, id)`; false when it is not in the tree.
fn remove_rec(node: &mut Node, slab: &Slab, st: &mut Stats<'_>, s: f64, id: u32) -> bool {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(slab, s, slab.name(id));
            if pos < leaf.n() && leaf.ids[pos] == id {
                leaf.remove_at(pos);
                true
            } else {
                false
            }
        }
        Node::Inner(inner) => {
            let c = child_index(inner, s, slab.name(id));
            if !remove_rec(&mut inner.children[c], slab, st, s, id) {
                return false;
            }
            inner.counts[c] -= 1;
            if inner.children[c].underfull() && inner.children.len() > 1 {
                rebalance(inner, c, slab, st);
            }
            true
        }
    }
}

/// Fixes the underfull child `c` of `inner` by merging it with a neighbour or moving
/// entries over from one.
fn rebalance(inner: &mut Inner, c: usize, slab: &Slab, st: &mut Stats<'_>) {
    let a = if c > 0 { c - 1 } else { c };
    let b = a + 1;
    let (left, right) = inner.children.split_at_mut(b);
    match (&mut left[a], &mut right[0]) {
        (Node::Leaf(l), Node::Leaf(r)) => {
            let total = l.n() + r.n();
            if total <= LEAF_CAP {
                for i in 0..r.n() {
                    l.push(r.scores[i], r.ids[i]);
                }
                inner.children.remove(b);
                inner.counts.remove(b);
                inner.counts[a] = total as u32;
                let k = inner.seps.remove(a);
                st.drop_key(k);
                *st.leaves -= 1;
                return;
            }
            let mut scores = Vec::with_capacity(total);
            let mut ids = Vec::with_capacity(total);
            scores.extend_from_slice(&l.scores[..l.n()]);
            scores.extend_from_slice(&r.scores[..r.n()]);
            ids.extend_from_slice(&l.ids[..l.n()]);
            ids.extend_from_slice(&r.ids[..r.n()]);
            let half = total / 2;
            l.len = 0;
            r.len = 0;
            for i in 0..total {
                if i < half {
                    l.push(scores[i], ids[i]);
                } else {
                    r.push(scores[i], ids[i]);
                }
            }
            inner.counts[a] = half as u32;
            inner.counts[b] = (total - half) as u32;
            let k = st.key(slab, r.scores[0], r.ids[0]);
            let old = std::mem::replace(&mut inner.seps[a], k);
            st.drop_key(old);
        }
        (Node::Inner(l), Node::Inner(r)) => {
            let total = l.children.len() + r.children.len();
            let sep = inner.seps.remove(a);
            if total <= INNER_CAP {
                // Within the fixed capacities: nothing reallocates.
                l.seps.push(sep);
                l.seps.append(&mut r.seps);
                l.children.append(&mut r.children);
                l.counts.append(&mut r.counts);
                inner.counts[a] += inner.counts[b];
                inner.children.remove(b);
                inner.counts.remove(b);
                *st.inners -= 1;
                return;
            }
            // Share the children evenly, through temporaries (the nodes keep their vectors).
            let mut children: Vec<Node> =
                l.children.drain(..).chain(r.children.drain(..)).collect();
            let mut counts: Vec<u32> = l.counts.drain(..).chain(r.counts.drain(..)).collect();
            let mut seps: Vec<Key> = l
                .seps
                .drain(..)
                .chain(std::iter::once(sep))
                .chain(r.seps.drain(..))
                .collect();
            let mid = total / 2;
            let right_children = children.split_off(mid);
            let right_counts = counts.split_off(mid);
            let right_seps = seps.split_off(mid);
            let up = seps.pop().expect("separator between the halves");
            l.children.extend(children);
            l.counts.extend(counts);
            l.seps.extend(seps);
            r.children.extend(right_children);
            r.counts.extend(right_counts);
            r.seps.extend(right_seps);
            inner.counts[a] = l.counts.iter().sum();
            inner.counts[b] = r.counts.iter().sum();
            inner.seps.insert(a, up);
        }
        _ => unreachable!("siblings are at the same height"),
    }
}

impl Tree {
    fn stats(&mut self) -> (&mut Node, Stats<'_>) {
        (
            &mut self.root,
            Stats {
                leaves: &mut self.leaves,
                inners: &mut self.inners,
                sep_heap: &mut self.sep_heap,
            },
        )
    }

    fn heap_size(&self) -> usize {
        self.leaves * alloc_size(std::mem::size_of::<Leaf>())
            + self.inners * inner_size()
            + self.sep_heap
    }

    fn insert(&mut self, slab: &Slab, s: f64, id: u32) {
        let (root, mut st) = self.stats();
        if let Some((sep, right)) = insert_rec(root, slab, &mut st, s, id) {
            let left = std::mem::replace(root, Node::Leaf(new_leaf()));
            let mut top = new_inner();
            top.counts.push(left.len() as u32);
            top.counts.push(right.len() as u32);
            top.children.push(left);
            top.children.push(right);
            top.seps.push(sep);
            *root = Node::Inner(top);
            self.inners += 1;
        }
    }

    fn remove(&mut self, slab: &Slab, s: f64, id: u32) -> bool {
        let (root, mut st) = self.stats();
        let found = remove_rec(root, slab, &mut st, s, id);
        // A root with one child gives way to it.
        if let Node::Inner(inner) = root {
            if inner.children.len() == 1 {
                let child = inner.children.pop().expect("one child");
                *root = child;
                self.inners -= 1;
            }
        }
        found
    }

    /// Rank of `(s, id)`, if present.
    fn rank(&self, slab: &Slab, s: f64, id: u32) -> Option<usize> {
        let m = slab.name(id);
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = child_index(inner, s, m);
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let pos = leaf.lower_bound(slab, s, m);
                    return (pos < leaf.n() && leaf.ids[pos] == id).then_some(acc + pos);
                }
            }
        }
    }

    /// The element of rank `r`.
    fn select(&self, mut r: usize) -> Option<(f64, u32)> {
        let mut node = &self.root;
        loop {
            match node {
                Node::Inner(inner) => {
                    let mut next = None;
                    for (i, &c) in inner.counts.iter().enumerate() {
                        if r < c as usize {
                            next = Some(i);
                            break;
                        }
                        r -= c as usize;
                    }
                    node = &inner.children[next?];
                }
                Node::Leaf(leaf) => {
                    return (r < leaf.n()).then(|| (leaf.scores[r], leaf.ids[r]));
                }
            }
        }
    }

    /// How many elements come before the first whose score fails `pred` (which holds for a
    /// prefix of the order).
    fn partition_score(&self, pred: impl Fn(f64) -> bool) -> usize {
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = inner.seps.partition_point(|k| pred(k.score));
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    return acc + leaf.scores[..leaf.n()].partition_point(|&x| pred(x));
                }
            }
        }
    }

    /// Like [`Tree::partition_score`], for a predicate on whole elements.
    fn partition_elem(&self, slab: &Slab, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = inner
                        .seps
                        .partition_point(|k| pred(k.score, k.name.bytes()));
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let (mut lo, mut hi) = (0, leaf.n());
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if pred(leaf.scores[mid], slab.name(leaf.ids[mid])) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    return acc + lo;
                }
            }
        }
    }

    /// Calls `f` on the elements of ranks `lo..hi`, ascending or (`rev`) descending.
    fn visit(&self, lo: usize, hi: usize, rev: bool, f: &mut dyn FnMut(f64, u32)) {
        visit_rec(&self.root, lo, hi, rev, f);
    }
}

fn visit_rec(node: &Node, lo: usize, hi: usize, rev: bool, f: &mut dyn FnMut(f64, u32)) {
    if lo >= hi {
        return;
    }
    match node {
        Node::Leaf(leaf) => {
            let hi = hi.min(leaf.n());
            if rev {
                for i in (lo..hi).rev() {
                    f(leaf.scores[i], leaf.ids[i]);
                }
            } else {
                for i in lo..hi {
                    f(leaf.scores[i], leaf.ids[i]);
                }
            }
        }
        Node::Inner(inner) => {
            let total: usize = inner.counts.iter().map(|&c| c as usize).sum();
            let n = inner.children.len();
            // Child `i` holds ranks `start..start + counts[i]` of this node.
            let mut start = if rev { total } else { 0 };
            for k in 0..n {
                let i = if rev { n - 1 - k } else { k };
                let c = inner.counts[i] as usize;
                let s = if rev { start - c } else { start };
                let e = s + c;
                if e > lo && s < hi {
                    visit_rec(
                        &inner.children[i],
                        lo.saturating_sub(s),
                        hi.min(e) - s,
                        rev,
                        f,
                    );
                }
                start = if rev { s } else { e };
                if (rev && s <= lo) || (!rev && e >= hi) {
                    break;
                }
            }
        }
    }
}

/// Builds a tree over sorted `(score, id)` pairs, leaves and inner nodes filled evenly.
fn build_tree(slab: &Slab, items: &[(f64, u32)]) -> Tree {
    let mut t = Tree {
        root: Node::Leaf(new_leaf()),
        leaves: 0,
        inners: 0,
        sep_heap: 0,
    };
    let mut st = Stats {
        leaves: &mut t.leaves,
        inners: &mut t.inners,
        sep_heap: &mut t.sep_heap,
    };
    if items.is_empty() {
        *st.leaves = 1;
        return t;
    }
    // (node, its first key, its length)
    let mut level: Vec<(Node, (f64, u32), usize)> = Vec::new();
    let nleaves = items.len().div_ceil(LEAF_CAP);
    let mut at = 0;
    for i in 0..nleaves {
        let take = (items.len() - at) / (nleaves - i);
        let mut leaf = new_leaf();
        for &(s, id) in &items[at..at + take] {
            leaf.push(s, id);
        }
        level.push((Node::Leaf(leaf), items[at], take));
        at += take;
    }
    *st.leaves = nleaves;
    while level.len() > 1 {
        let ngroups = level.len().div_ceil(INNER_CAP);
        let mut next = Vec::with_capacity(ngroups);
        let mut it = level.into_iter();
        let total = it.len();
        let mut done = 0;
        for g in 0..ngroups {
            let take = (total - done) / (ngroups - g);
            let mut inner = new_inner();
            let mut first = (0.0, 0);
            let mut len = 0;
            for j in 0..take {
                let Some((node, key, n)) = it.next() else {
                    break;
                };
                if j == 0 {
                    first = key;
                } else {
                    let k = st.key(slab, key.0, key.1);
                    inner.seps.push(k);
                }
                inner.children.push(node);
                inner.counts.push(n as u32);
                len += n;
            }
            *st.inners += 1;
            next.push((Node::Inner(inner), first, len));
            done += take;
        }
        level = next;
    }
    if let Some((root, _, _)) = level.pop() {
        t.root = root;
    }
    t
}

/// The large encoding (see the module docs).
pub struct ZTree {
    slab: Slab,
    index: HashTable<u32>,
    hasher: Hasher,
    tree: Tree,
}

impl Default for ZTree {
    fn default() -> Self {
        ZTree {
            slab: Slab::default(),
            index: HashTable::new(),
            hasher: Hasher::default(),
            tree: Tree::default(),
        }
    }
}

impl std::fmt::Debug for ZTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        self.tree.visit(0, self.len(), false, &mut |s, id| {
            l.entry(&(self.slab.slot(id).name.clone(), s));
        });
        l.finish()
    }
}

impl Clone for ZTree {
    fn clone(&self) -> Self {
        let mut items = Vec::with_capacity(self.len());
        self.for_each(0, self.len(), false, |m, s| items.push((m.to_vec(), s)));
        ZTree::from_sorted(items.iter().map(|(m, s)| (&m[..], *s)))
    }
}

impl PartialEq for ZTree {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && {
            let mut same = true;
            self.tree.visit(0, self.len(), false, &mut |s, id| {
                same &= o.score(self.slab.name(id)) == Some(s);
            });
            same
        }
    }
}

impl ZTree {
    pub fn len(&self) -> usize {
        self.slab.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        alloc_size(std::mem::size_of::<ZTree>())
            + self.slab.heap_size()
            + if self.index.num_buckets() == 0 {
                0
            } else {
                alloc_size(self.index.allocation_size())
            }
            + self.tree.heap_size()
    }

    #[inline]
    fn hash(&self, m: &[u8]) -> u64 {
        self.hasher.hash_one(m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(self.hash(m), |&id| slab.name(id) == m)
            .copied()
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|id| self.slab.score(id))
    }

    /// Sets `m`'s score; the previous score when it was there.
    pub fn insert(&mut self, m: &[u8], s: f64) -> Option<f64> {
        if let Some(id) = self.find(m) {
            let old = self.slab.score(id);
            if old != s {
                self.tree.remove(&self.slab, old, id);
                self.slab.slot_mut(id).score = s;
                self.tree.insert(&self.slab, s, id);
            }
            return Some(old);
        }
        let h = self.hash(m);
        let id = self.slab.alloc(Name::new(m), s);
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index
            .insert_unique(h, id, |&i| hasher.hash_one(slab.name(i)));
        self.tree.insert(&self.slab, s, id);
        None
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let h = self.hash(m);
        let slab = &self.slab;
        let entry = self.index.find_entry(h, |&id| slab.name(id) == m).ok()?;
        let (id, _) = entry.remove();
        let s = self.slab.score(id);
        self.tree.remove(&self.slab, s, id);
        self.slab.release(id);
        self.shrink();
        Some(s)
    }

    /// Gives memory back after removals: the hash table when it is a quarter full, the
    /// slab (and with it everything, renumbered) when most of its slots are free.
    fn shrink(&mut self) {
        let n = self.len();
        if self.index.capacity() > 64 && n * 4 < self.index.capacity() {
            let (slab, hasher) = (&self.slab, &self.hasher);
            self.index
                .shrink_to(n * 2, |&i| hasher.hash_one(slab.name(i)));
        }
        if self.slab.high() > CHUNK && n * 2 < self.slab.high() {
            *self = self.rebuilt();
        }
    }

    /// A copy with dense ids (the names move, nothing is copied twice).
    fn rebuilt(&mut self) -> ZTree {
        let mut ids = Vec::with_capacity(self.len());
        self.tree
            .visit(0, self.len(), false, &mut |s, id| ids.push((s, id)));
        let mut out = ZTree::default();
        let mut sorted = Vec::with_capacity(ids.len());
        for (s, id) in ids {
            let name = std::mem::replace(&mut self.slab.slot_mut(id).name, Name::empty());
            sorted.push((s, out.slab.alloc(name, s)));
        }
        out.index_all();
        out.tree = build_tree(&out.slab, &sorted);
        out
    }

    fn index_all(&mut self) {
        let (slab, hasher) = (&self.slab, &self.hasher);
        let mut index = HashTable::with_capacity(slab.live);
        for c in 0..slab.chunks.len() {
            for i in 0..slab.chunks[c].len() {
                let id = (c * CHUNK + i) as u32;
                index.insert_unique(hasher.hash_one(slab.name(id)), id, |&i| {
                    hasher.hash_one(slab.name(i))
                });
            }
        }
        self.index = index;
    }

    /// A tree of members given in order, each once.
    pub fn from_sorted<'a>(items: impl IntoIterator<Item = (&'a [u8], f64)>) -> ZTree {
        let mut out = ZTree::default();
        let mut sorted = Vec::new();
        for (m, s) in items {
            sorted.push((s, out.slab.alloc(Name::new(m), s)));
        }
        out.index_all();
        out.tree = build_tree(&out.slab, &sorted);
        out
    }

    /// 0-based rank and score of `m`.
    pub fn rank(&self, m: &[u8]) -> Option<(usize, f64)> {
        let id = self.find(m)?;
        let s = self.slab.score(id);
        self.tree.rank(&self.slab, s, id).map(|r| (r, s))
    }

    pub fn get(&self, r: usize) -> Option<(&[u8], f64)> {
        let (s, id) = self.tree.select(r)?;
        Some((self.slab.name(id), s))
    }

    pub fn partition_score(&self, pred: impl Fn(f64) -> bool) -> usize {
        self.tree.partition_score(pred)
    }

    pub fn partition_elem(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        self.tree.partition_elem(&self.slab, pred)
    }

    pub fn for_each(&self, lo: usize, hi: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let slab = &self.slab;
        self.tree
            .visit(lo, hi, rev, &mut |s, id| f(slab.name(id), s));
    }

    /// Removes the elements of ranks `lo..hi`.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> usize {
        let hi = hi.min(self.len());
        if lo >= hi {
            return 0;
        }
        let mut victims = Vec::with_capacity(hi - lo);
        self.tree
            .visit(lo, hi, false, &mut |s, id| victims.push((s, id)));
        for &(s, id) in &victims {
            let slab = &self.slab;
            let h = self.hasher.hash_one(slab.name(id));
            if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
                e.remove();
            }
            self.tree.remove(&self.slab, s, id);
            self.slab.release(id);
        }
        self.shrink();
        victims.len()
    }

    /// One step of a scan over slot ids from `cursor` (0: the start) downwards: the members
    /// of up to `count` slots and the next cursor (0 when done). Ids are stable while the
    /// set changes (short of a shrink that renumbers everything), so a member present for
    /// the whole scan is returned.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let high = self.slab.high();
        let hi = if cursor == 0 {
            high
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(high)
        };
        let lo = hi.saturating_sub(count);
        for id in (lo..hi).rev() {
            let slot = self.slab.slot(id as u32);
            if !slot.score.is_nan() {
                f(slot.name.bytes(), slot.score);
            }
        }
        lo as u64
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
