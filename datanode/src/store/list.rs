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

use super::mem::alloc_size;
use super::value::{Limits, Member};
use crate::lzf;
use std::collections::VecDeque;

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

// ---- entries ----

/// The integer `e` spells when it is exactly how that integer prints (`12`, `-3`; not
/// `012`, `+1`, `-0`): only such elements are stored as integers, so they read back
/// unchanged.
pub fn int_elem(e: &[u8]) -> Option<i64> {
    let (neg, digits) = match e.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, e),
    };
    let (&first, _) = digits.split_first()?;
    if digits.len() > 19 || !first.is_ascii_digit() || (first == b'0' && (digits.len() > 1 || neg))
    {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        // Accumulate negatively, so that i64::MIN parses too.
        v = v.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Bytes of an entry's backlen for a body of `body` bytes.
fn backlen_size(body: usize) -> usize {
    match body {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    }
}

/// How an element is stored.
#[derive(Clone, Copy, Debug)]
enum Enc {
    Int(i64),
    Str,
}

/// An element ready to be written: its encoding, body size (header and data) and entry size.
#[derive(Clone, Copy, Debug)]
struct Plan {
    enc: Enc,
    body: usize,
    size: usize,
}

fn plan(e: &[u8]) -> Plan {
    let (enc, body) = match int_elem(e) {
        Some(n) => {
            let body = match n {
                0..=127 => 1,
                -4096..=4095 => 2,
                -32_768..=32_767 => 3,
                -8_388_608..=8_388_607 => 4,
                -2_147_483_648..=2_147_483_647 => 5,
                _ => 9,
            };
            (Enc::Int(n), body)
        }
        None => {
            let l = e.len();
            let header = if l < 64 {
                1
            } else if l < 4096 {
                2
            } else {
                5
            };
            (Enc::Str, header + l)
        }
    };
    Plan {
        enc,
        body,
        size: body + backlen_size(body),
    }
}

/// Writes the entry of `e` (planned as `p`) into `dst`, exactly `p.size` bytes.
fn write_entry(dst: &mut [u8], e: &[u8], p: Plan) {
    match p.enc {
        Enc::Int(n) => match p.body {
            1 => dst[0] = n as u8,
            2 => {
                let u = (n as u16) & 0x1fff;
                dst[0] = 0xC0 | (u >> 8) as u8;
                dst[1] = u as u8;
            }
            3 => {
                dst[0] = 0xF1;
                dst[1..3].copy_from_slice(&(n as i16).to_le_bytes());
            }
            4 => {
                dst[0] = 0xF2;
                dst[1..4].copy_from_slice(&(n as i32).to_le_bytes()[..3]);
            }
            5 => {
                dst[0] = 0xF3;
                dst[1..5].copy_from_slice(&(n as i32).to_le_bytes());
            }
            _ => {
                dst[0] = 0xF4;
                dst[1..9].copy_from_slice(&n.to_le_bytes());
            }
        },
        Enc::Str => {
            let l = e.len();
            let header = p.body - l;
            match header {
                1 => dst[0] = 0x80 | l as u8,
                2 => {
                    dst[0] = 0xE0 | (l >> 8) as u8;
                    dst[1] = l as u8;
                }
                _ => {
                    dst[0] = 0xF0;
                    dst[1..5].copy_from_slice(&(l as u32).to_le_bytes());
                }
            }
            dst[header..p.body].copy_from_slice(e);
        }
    }
    // The body's length, 7 bits a byte, lowest bits last; every byte but the first says
    // that more follow to its left.
    let n = p.size - p.body;
    let mut v = p.body;
    for i in (0..n).rev() {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if i > 0 {
            b |= 0x80;
        }
        dst[p.body + i] = b;
    }
}

/// Appends the entry of `e` to `out`.
fn encode_into(out: &mut Vec<u8>, e: &[u8]) {
    let p = plan(e);
    let at = out.len();
    out.resize(at + p.size, 0);
    write_entry(&mut out[at..], e, p);
}

/// The element whose entry starts `d` and the entry's size.
fn decode(d: &[u8]) -> (Member<'_>, usize) {
    let h = d[0];
    let (m, body) = if h < 0x80 {
        (Member::Int(h as i64), 1)
    } else if h & 0xC0 == 0x80 {
        let l = (h & 0x3f) as usize;
        (Member::Bytes(&d[1..1 + l]), 1 + l)
    } else if h & 0xE0 == 0xC0 {
        let u = (((h & 0x1f) as u16) << 8) | d[1] as u16;
        // Sign-extend the 13 bits.
        (Member::Int((((u << 3) as i16) >> 3) as i64), 2)
    } else if h & 0xF0 == 0xE0 {
        let l = (((h & 0x0f) as usize) << 8) | d[1] as usize;
        (Member::Bytes(&d[2..2 + l]), 2 + l)
    } else {
        match h {
            0xF0 => {
                let l = u32::from_le_bytes([d[1], d[2], d[3], d[4]]) as usize;
                (Member::Bytes(&d[5..5 + l]), 5 + l)
            }
            0xF1 => (Member::Int(i16::from_le_bytes([d[1], d[2]]) as i64), 3),
            0xF2 => {
                let v = i32::from_le_bytes([0, d[1], d[2], d[3]]) >> 8;
                (Member::Int(v as i64), 4)
            }
            0xF3 => (
                Member::Int(i32::from_le_bytes([d[1], d[2], d[3], d[4]]) as i64),
                5,
            ),
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&d[1..9]);
                (Member::Int(i64::from_le_bytes(a)), 9)
            }
        }
    };
    (m, body + backlen_size(body))
}

/// The start of the entry that ends at `end` in `d`.
fn entry_start(d: &[u8], end: usize) -> usize {
    let mut k = end - 1;
    let mut b = d[k];
    let mut v = (b & 0x7f) as usize;
    let mut shift = 7;
    while b & 0x80 != 0 {
        k -= 1;
        b = d[k];
        v |= ((b & 0x7f) as usize) << shift;
        shift += 7;
    }
    k - v
}

/// Whether element `m` equals the bytes `e` (`e_int`: `int_elem(e)`, computed once).
fn same(m: Member<'_>, e: &[u8], e_int: Option<i64>) -> bool {
    match m {
        Member::Bytes(b) => b == e,
        Member::Int(n) => e_int == Some(n),
    }
}

// ---- nodes ----

/// One node: entries in `buf[start..end]`, free space around them; or, compressed, the LZF
/// form of its entries in `buf[start..end]`.
#[derive(Clone, Debug, Default)]
struct Node {
    buf: Box<[u8]>,
    start: u32,
    end: u32,
    count: u32,
    /// 0: raw. [`NOT_WORTH`]: raw, and compression would not pay. Else compressed, and the
    /// entries take this many bytes.
    packed: u32,
}

impl Node {
    fn from_entries(data: &[u8], count: u32) -> Node {
        let mut buf = vec![0u8; alloc_size(data.len().max(1))].into_boxed_slice();
        buf[..data.len()].copy_from_slice(data);
        Node {
            buf,
            start: 0,
            end: data.len() as u32,
            count,
            packed: 0,
        }
    }

    /// The entries of a raw node.
    fn data(&self) -> &[u8] {
        debug_assert!(!self.is_packed(), "a compressed node read raw");
        &self.buf[self.start as usize..self.end as usize]
    }

    /// Bytes of the block in use (compressed bytes for a compressed node).
    fn used(&self) -> usize {
        (self.end - self.start) as usize
    }

    fn is_packed(&self) -> bool {
        self.packed != 0 && self.packed != NOT_WORTH
    }

    /// Bytes of the entries, compressed or not.
    fn raw_len(&self) -> usize {
        if self.is_packed() {
            self.packed as usize
        } else {
            self.used()
        }
    }

    /// The entries: the node's own bytes, or for a compressed node `scratch`, where they
    /// are decompressed.
    fn entries<'b>(&'b self, scratch: &'b mut Vec<u8>) -> &'b [u8] {
        if !self.is_packed() {
            return self.data();
        }
        scratch.clear();
        let ok = lzf::decompress_into(
            &self.buf[self.start as usize..self.end as usize],
            self.packed as usize,
            scratch,
        );
        assert!(ok, "a node decompresses: it was compressed here");
        scratch
    }

    /// Compresses a raw node when that pays (Redis's rule: at least 48 bytes, and more than 8
    /// saved); marks it [`NOT_WORTH`] otherwise.
    fn pack(&mut self) {
        if self.packed != 0 {
            return;
        }
        let used = self.used();
        if used < MIN_COMPRESS_BYTES {
            self.packed = NOT_WORTH;
            return;
        }
        let budget = used - MIN_COMPRESS_IMPROVE - 1;
        let mut out = Vec::with_capacity(budget + 40);
        if !lzf::compress(self.data(), &mut out, budget) {
            self.packed = NOT_WORTH;
            return;
        }
        self.buf = out.into_boxed_slice();
        self.start = 0;
        self.end = self.buf.len() as u32;
        self.packed = used as u32;
    }

    /// Decompresses a compressed node in place (a block of its entries' exact size).
    fn unpack(&mut self) {
        if !self.is_packed() {
            return;
        }
        let mut out = Vec::with_capacity(self.packed as usize);
        let ok = lzf::decompress_into(
            &self.buf[self.start as usize..self.end as usize],
            self.packed as usize,
            &mut out,
        );
        assert!(ok, "a node decompresses: it was compressed here");
        self.buf = out.into_boxed_slice();
        self.start = 0;
        self.end = self.buf.len() as u32;
        self.packed = 0;
    }

    fn heap(&self) -> usize {
        alloc_size(self.buf.len())
    }

    /// Makes room for `need` bytes at one end, growing towards `limit` (the node's size
    /// limit) in the allocator's size classes, or moving the entries within the block when
    /// it has the space on the other side.
    fn room(&mut self, need: usize, end: End, limit: usize) {
        let (s, e, cap) = (self.start as usize, self.end as usize, self.buf.len());
        let free = match end {
            End::Left => s,
            End::Right => cap - e,
        };
        if free >= need {
            return;
        }
        let used = e - s;
        let want = used + need;
        if cap >= want + want / 8 {
            // Enough space in the block: move the entries to the far side.
            let to = match end {
                End::Left => cap - used,
                End::Right => 0,
            };
            self.buf.copy_within(s..e, to);
            self.start = to as u32;
            self.end = (to + used) as u32;
            return;
        }
        // Grow by half (a node that is filling up), never past the limit unless one entry
        // needs it.
        let target = want.max((used + used / 2).min(limit)).max(MIN_CAP);
        let cap = alloc_size(target);
        let mut buf = vec![0u8; cap].into_boxed_slice();
        let to = match end {
            End::Left => cap - used,
            End::Right => 0,
        };
        buf[to..to + used].copy_from_slice(&self.buf[s..e]);
        self.buf = buf;
        self.start = to as u32;
        self.end = (to + used) as u32;
    }

    /// Gives back the block's free space when it is large (a full node, or one trimmed).
    fn fit(&mut self) {
        let used = self.used();
        if alloc_size(used.max(1)) < self.buf.len() {
            let mut buf = vec![0u8; alloc_size(used.max(1))].into_boxed_slice();
            buf[..used].copy_from_slice(self.data());
            self.buf = buf;
            self.start = 0;
            self.end = used as u32;
        }
    }

    fn push(&mut self, e: &[u8], p: Plan, end: End, limit: usize) {
        self.room(p.size, end, limit);
        let at = match end {
            End::Left => {
                self.start -= p.size as u32;
                self.start as usize
            }
            End::Right => {
                self.end += p.size as u32;
                self.end as usize - p.size
            }
        };
        write_entry(&mut self.buf[at..at + p.size], e, p);
        self.count += 1;
    }

    /// The element at `end` and its entry size.
    fn edge(&self, end: End) -> (Member<'_>, usize) {
        let d = self.data();
        match end {
            End::Left => decode(d),
            End::Right => {
                let s = entry_start(d, d.len());
                (decode(&d[s..]).0, d.len() - s)
            }
        }
    }

    /// Removes the entry of `size` bytes at `end`.
    fn drop_edge(&mut self, end: End, size: usize) {
        match end {
            End::Left => self.start += size as u32,
            End::Right => self.end -= size as u32,
        }
        self.count -= 1;
    }

    /// The offset in `data()` of the `i`-th entry of a raw node.
    fn offset_of(&self, i: usize) -> usize {
        offset_in(self.data(), self.count as usize, i)
    }

    /// Replaces `data()[from..to]` (`removed` entries) with the encoded entries `with`
    /// (`added` of them).
    fn splice(&mut self, from: usize, to: usize, removed: u32, with: &[u8], added: u32) {
        let used = self.used();
        let new_used = used - (to - from) + with.len();
        let s = self.start as usize;
        if new_used <= used || s + new_used <= self.buf.len() {
            // In place: move the tail.
            self.buf
                .copy_within(s + to..s + used, s + from + with.len());
            self.buf[s + from..s + from + with.len()].copy_from_slice(with);
            self.end = (s + new_used) as u32;
        } else {
            let mut buf = vec![0u8; alloc_size(new_used + new_used / 8)].into_boxed_slice();
            let d = self.data();
            buf[..from].copy_from_slice(&d[..from]);
            buf[from..from + with.len()].copy_from_slice(with);
            buf[from + with.len()..new_used].copy_from_slice(&d[to..]);
            self.buf = buf;
            self.start = 0;
            self.end = new_used as u32;
        }
        self.count = self.count - removed + added;
    }

    /// Splits off the entries from the `i`-th on into a new node.
    fn split_off(&mut self, i: usize) -> Node {
        let off = self.offset_of(i);
        let tail = Node::from_entries(&self.data()[off..], self.count - i as u32);
        self.end = self.start + off as u32;
        self.count = i as u32;
        self.fit();
        tail
    }
}

/// The offset of the `i`-th of the `n` entries in `d`, walking from the nearer end.
fn offset_in(d: &[u8], n: usize, i: usize) -> usize {
    if i <= n / 2 {
        let mut off = 0;
        for _ in 0..i {
            off += decode(&d[off..]).1;
        }
        off
    } else {
        let mut off = d.len();
        for _ in i..n {
            off = entry_start(d, off);
        }
        off
    }
}

/// The entries in `d` with their offsets and sizes, front to back.
fn entries_of(d: &[u8]) -> NodeIter<'_> {
    NodeIter { d, off: 0 }
}

/// A node's entries with their offsets and sizes, front to back.
struct NodeIter<'a> {
    d: &'a [u8],
    off: usize,
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = (usize, usize, Member<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.d.len() {
            return None;
        }
        let at = self.off;
        let (m, size) = decode(&self.d[at..]);
        self.off += size;
        Some((at, size, m))
    }
}

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

/// Elements front to back (see [`List::cursor_from`]): `while let Some(m) = c.next()`.
/// Each element borrows the cursor, which decompresses a compressed node into its own
/// buffer.
pub struct Cursor<'a> {
    list: &'a List,
    node: usize,
    off: usize,
    /// Bytes of the current node's entries.
    end: usize,
    scratch: Vec<u8>,
}

impl Cursor<'_> {
    /// Starts node `ni` (decompressing it when compressed).
    fn enter(&mut self, ni: usize) {
        self.node = ni;
        self.off = 0;
        self.end = 0;
        if let Some(n) = self.list.nodes.get(ni) {
            if n.is_packed() {
                n.entries(&mut self.scratch);
            }
            self.end = n.raw_len();
        }
    }

    /// The current node's entries.
    fn current(&self) -> &[u8] {
        match self.list.nodes.get(self.node) {
            Some(n) if n.is_packed() => &self.scratch,
            Some(n) => n.data(),
            None => &[],
        }
    }

    /// The next element.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Member<'_>> {
        while self.off >= self.end {
            if self.node + 1 >= self.list.nodes.len() {
                self.node = self.list.nodes.len();
                return None;
            }
            self.enter(self.node + 1);
        }
        let n = &self.list.nodes[self.node];
        let d = if n.is_packed() {
            &self.scratch[..]
        } else {
            n.data()
        };
        let (m, size) = decode(&d[self.off..]);
        self.off += size;
        Some(m)
    }
}

/// Elements back to front (see [`List::rev_cursor_from`]).
pub struct RevCursor<'a> {
    list: &'a List,
    node: usize,
    /// Where the entries not yet returned end in the current node.
    end: usize,
    scratch: Vec<u8>,
}

impl RevCursor<'_> {
    fn enter(&mut self, ni: usize) {
        self.node = ni;
        let n = &self.list.nodes[ni];
        if n.is_packed() {
            n.entries(&mut self.scratch);
        }
        self.end = n.raw_len();
    }

    fn current(&self) -> &[u8] {
        let n = &self.list.nodes[self.node];
        if n.is_packed() {
            &self.scratch
        } else {
            n.data()
        }
    }

    /// The previous element.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Member<'_>> {
        if self.list.nodes.is_empty() {
            return None;
        }
        while self.end == 0 {
            if self.node == 0 {
                return None;
            }
            self.enter(self.node - 1);
        }
        let n = &self.list.nodes[self.node];
        let d = if n.is_packed() {
            &self.scratch[..]
        } else {
            n.data()
        };
        let s = entry_start(d, self.end);
        self.end = s;
        Some(decode(&d[s..]).0)
    }
}

#[cfg(test)]
mod tests;
