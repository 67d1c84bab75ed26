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
//! `list-compress-depth` is accepted (CONFIG) but nodes are never compressed: every node is
//! kept raw.
//!
//! The list knows its length and the bytes it holds in O(1), for LLEN and the store's
//! memory accounting.

use super::mem::alloc_size;
use super::value::{Limits, Member};
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

/// One node: entries in `buf[start..end]`, free space around them.
#[derive(Clone, Debug, Default)]
struct Node {
    buf: Box<[u8]>,
    start: u32,
    end: u32,
    count: u32,
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
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }

    fn used(&self) -> usize {
        (self.end - self.start) as usize
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

    /// The offset in `data()` of the `i`-th entry, walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        let d = self.data();
        let n = self.count as usize;
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

    fn iter(&self) -> NodeIter<'_> {
        NodeIter {
            d: self.data(),
            off: 0,
        }
    }
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
}

impl PartialEq for List {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.iter().zip(o.iter()).all(|(a, b)| a == b)
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
    let bytes = a.used() + b.used();
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

    /// Runs `f` on node `i`, keeping the heap count in step.
    fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> R) -> R {
        let n = &mut self.nodes[i];
        let before = n.heap();
        let r = f(n);
        self.node_heap = self.node_heap - before + n.heap();
        r
    }

    fn remove_node(&mut self, i: usize) {
        if let Some(n) = self.nodes.remove(i) {
            self.node_heap -= n.heap();
        }
        if self.nodes.capacity() > 16 && self.nodes.len() * 4 < self.nodes.capacity() {
            self.nodes.shrink_to(self.nodes.len() * 2);
        }
    }

    fn insert_node(&mut self, i: usize, n: Node) {
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
                End::Left => self.insert_node(0, n),
                End::Right => self.insert_node(self.nodes.len(), n),
            }
        }
        let i = self.edge_index(end);
        self.with_node(i, |n| n.push(e, p, end, limit));
        self.len += 1;
    }

    /// Pops the element at `end`, handing it to `f` first.
    pub fn pop_with<R>(&mut self, end: End, f: impl FnOnce(Member<'_>) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let i = self.edge_index(end);
        let (r, size) = {
            let (m, size) = self.nodes[i].edge(end);
            (f(m), size)
        };
        self.nodes[i].drop_edge(end, size);
        self.len -= 1;
        if self.nodes[i].count == 0 {
            self.remove_node(i);
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

    /// Element `i` (from 0).
    pub fn get(&self, i: usize) -> Option<Member<'_>> {
        if i >= self.len {
            return None;
        }
        let (ni, local) = self.locate(i);
        let n = &self.nodes[ni];
        Some(decode(&n.data()[n.offset_of(local)..]).0)
    }

    /// Elements front to back.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Elements from the `i`-th on, front to back.
    pub fn iter_from(&self, i: usize) -> Iter<'_> {
        if i >= self.len {
            return Iter {
                list: self,
                node: self.nodes.len(),
                off: 0,
            };
        }
        let (ni, local) = self.locate(i);
        Iter {
            list: self,
            node: ni,
            off: self.nodes[ni].offset_of(local),
        }
    }

    /// Elements from the `i`-th down to the first, back to front.
    pub fn iter_rev_from(&self, i: usize) -> RevIter<'_> {
        if self.len == 0 {
            return RevIter {
                list: self,
                node: 0,
                end: 0,
                done: true,
            };
        }
        let i = i.min(self.len - 1);
        let (ni, local) = self.locate(i);
        let n = &self.nodes[ni];
        let off = n.offset_of(local);
        let end = off + decode(&n.data()[off..]).1;
        RevIter {
            list: self,
            node: ni,
            end,
            done: false,
        }
    }

    /// Elements back to front.
    pub fn iter_rev(&self) -> RevIter<'_> {
        self.iter_rev_from(usize::MAX)
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
        self.insert_node(i + 1, tail);
        self.split_if_large(i + 1, l);
        self.split_if_large(i, l);
    }

    /// Appends node `i + 1`'s entries to node `i`.
    fn merge_next(&mut self, i: usize) {
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
        true
    }

    /// LINSERT: puts `e` before or after the first element equal to `pivot`. Returns the new
    /// length, or `None` when there is no such element.
    pub fn insert(&mut self, pivot: &[u8], e: &[u8], after: bool, l: &Limits) -> Option<usize> {
        let pivot_int = int_elem(pivot);
        let mut found = None;
        'nodes: for (ni, n) in self.nodes.iter().enumerate() {
            for (off, size, m) in n.iter() {
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
        for ni in order {
            if quota == 0 {
                break;
            }
            let mut hits: Vec<(usize, usize)> = self.nodes[ni]
                .iter()
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
            if (a.used() < half || b.used() < half) && fit_together(a, b, l) {
                self.merge_next(i);
            } else {
                i += 1;
            }
        }
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
        if backwards {
            for (k, m) in self.iter_rev().enumerate().take(maxlen) {
                if same(m, e, e_int) && !f(self.len - 1 - k) {
                    return;
                }
            }
        } else {
            for (k, m) in self.iter().enumerate().take(maxlen) {
                if same(m, e, e_int) && !f(k) {
                    return;
                }
            }
        }
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        let len: usize = self.nodes.iter().map(|n| n.count as usize).sum();
        assert_eq!(len, self.len, "length");
        let heap: usize = self.nodes.iter().map(Node::heap).sum();
        assert_eq!(heap, self.node_heap, "heap");
        for n in &self.nodes {
            assert!(n.count > 0, "empty node");
            assert_eq!(n.iter().count(), n.count as usize, "node count");
            let mut end = n.used();
            for _ in 0..n.count {
                end = entry_start(n.data(), end);
            }
            assert_eq!(end, 0, "backward walk");
        }
    }
}

/// Elements front to back (see [`List::iter_from`]).
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    off: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            let n = self.list.nodes.get(self.node)?;
            let d = n.data();
            if self.off < d.len() {
                let (m, size) = decode(&d[self.off..]);
                self.off += size;
                return Some(m);
            }
            self.node += 1;
            self.off = 0;
        }
    }
}

/// Elements back to front (see [`List::iter_rev_from`]).
pub struct RevIter<'a> {
    list: &'a List,
    node: usize,
    end: usize,
    done: bool,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            if self.done {
                return None;
            }
            let d = self.list.nodes.get(self.node)?.data();
            if self.end > 0 {
                let s = entry_start(d, self.end);
                self.end = s;
                return Some(decode(&d[s..]).0);
            }
            if self.node == 0 {
                self.done = true;
                return None;
            }
            self.node -= 1;
            self.end = self.list.nodes[self.node].used();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(fill: i64) -> Limits {
        Limits {
            list_max_listpack_size: fill,
            ..Limits::default()
        }
    }

    fn items(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(Member::to_vec).collect()
    }

    #[test]
    fn canonical_integers() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("127", Some(127)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            ("", None),
            ("-", None),
            ("1a", None),
            (" 1", None),
        ] {
            assert_eq!(int_elem(s.as_bytes()), v, "{s}");
        }
    }

    #[test]
    fn entries_round_trip_both_ways() {
        let samples: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-32768",
            "32767",
            "40000",
            "-8388608",
            "8388607",
            "8388608",
            "2147483647",
            "-2147483648",
            "2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "",
            "a",
            "012",
            "-0",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            vec![b'x'; 63],
            vec![b'y'; 64],
            vec![b'z'; 4095],
            vec![b'w'; 4096],
            vec![7; 20000],
        ])
        .collect();
        let mut buf = Vec::new();
        for s in &samples {
            encode_into(&mut buf, s);
        }
        let mut off = 0;
        for s in &samples {
            let (m, size) = decode(&buf[off..]);
            assert_eq!(m.to_vec(), *s);
            off += size;
        }
        assert_eq!(off, buf.len());
        for s in samples.iter().rev() {
            off = entry_start(&buf, off);
            assert_eq!(decode(&buf[off..]).0.to_vec(), *s);
        }
        assert_eq!(off, 0);
        // Small integers take one byte and a backlen.
        assert_eq!(plan(b"12").size, 2);
        assert_eq!(plan(b"xxx").size, 5);
    }

    #[test]
    fn pushes_and_pops_across_nodes() {
        let l = limits(4);
        let mut list = List::default();
        for i in 0..10 {
            list.push(End::Right, i.to_string().as_bytes(), &l);
            list.push(End::Left, format!("l{i}").as_bytes(), &l);
        }
        list.check();
        assert_eq!(list.len(), 20);
        assert_eq!(list.encoding(), "quicklist");
        assert_eq!(list.get(0).map(Member::to_vec), Some(b"l9".to_vec()));
        assert_eq!(list.get(19).map(Member::to_vec), Some(b"9".to_vec()));
        assert_eq!(list.get(10).map(Member::to_vec), Some(b"0".to_vec()));
        assert_eq!(list.pop(End::Left), Some(b"l9".to_vec()));
        assert_eq!(list.pop(End::Right), Some(b"9".to_vec()));
        let rev: Vec<Vec<u8>> = list.iter_rev().map(Member::to_vec).collect();
        let mut fwd = items(&list);
        fwd.reverse();
        assert_eq!(rev, fwd);
        while list.pop(End::Right).is_some() {}
        list.check();
        assert_eq!((list.len(), list.nodes.len()), (0, 0));
    }

    #[test]
    fn a_long_list_costs_its_entries() {
        let l = Limits::default();
        let mut list = List::default();
        for _ in 0..100_000 {
            list.push(End::Right, b"xxx", &l);
        }
        list.check();
        // 5 bytes an entry, and a little for the nodes.
        let per = list.heap_size() as f64 / 100_000.0;
        assert!(per < 5.3, "{per} bytes per element");
        let mut list = List::default();
        for _ in 0..100_000 {
            list.push(End::Left, b"xxx", &l);
        }
        let per = list.heap_size() as f64 / 100_000.0;
        assert!(per < 5.3, "{per} bytes per element (left pushes)");
    }

    #[test]
    fn big_elements_get_their_own_nodes() {
        let l = Limits::default();
        let mut list = List::default();
        list.push(End::Right, b"a", &l);
        list.push(End::Right, &vec![b'x'; 10_000], &l);
        list.push(End::Right, b"b", &l);
        list.check();
        assert_eq!(list.nodes.len(), 3);
        assert_eq!(list.get(1).map(|m| m.to_vec().len()), Some(10_000));
        assert!(list.set(1, b"small", &l));
        assert!(list.set(0, &vec![b'y'; 9000], &l));
        list.check();
        assert_eq!(items(&list)[1], b"small".to_vec());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, bool, Vec<u8>),
        Remove(usize, i64),
        Trim(usize, usize),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0i64..300).prop_map(|n| n.to_string().into_bytes()),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(b'a'..b'e', 0..4),
            proptest::collection::vec(any::<u8>(), 60..70),
            proptest::collection::vec(any::<u8>(), 4000..4200),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), elem()).prop_map(|(l, e)| Op::Push(l, e)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (any::<usize>(), elem()).prop_map(|(i, e)| Op::Set(i, e)),
            1 => (any::<usize>(), any::<bool>(), elem()).prop_map(|(i, a, e)| Op::Insert(i, a, e)),
            1 => (any::<usize>(), -3i64..3).prop_map(|(i, c)| Op::Remove(i, c)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_like_a_deque(fill in prop_oneof![Just(-1i64), Just(-2), Just(1), Just(3), Just(16)],
                                ops in proptest::collection::vec(op(), 1..200)) {
            let l = limits(fill);
            let mut list = List::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(left, e) => {
                        if left { list.push(End::Left, &e, &l); model.push_front(e) }
                        else { list.push(End::Right, &e, &l); model.push_back(e) }
                    }
                    Op::Pop(left) => {
                        let (a, b) = if left { (list.pop(End::Left), model.pop_front()) }
                            else { (list.pop(End::Right), model.pop_back()) };
                        prop_assert_eq!(a, b);
                    }
                    Op::Set(i, e) => {
                        let i = if model.is_empty() { 0 } else { i % (model.len() + 1) };
                        let ok = list.set(i, &e, &l);
                        prop_assert_eq!(ok, i < model.len());
                        if ok { model[i] = e; }
                    }
                    Op::Insert(i, after, e) => {
                        let pivot = if model.is_empty() { b"none".to_vec() } else { model[i % model.len()].clone() };
                        let r = list.insert(&pivot, &e, after, &l);
                        match model.iter().position(|x| *x == pivot) {
                            Some(p) => {
                                model.insert(if after { p + 1 } else { p }, e);
                                prop_assert_eq!(r, Some(model.len()));
                            }
                            None => prop_assert_eq!(r, None),
                        }
                    }
                    Op::Remove(i, count) => {
                        let e = if model.is_empty() { b"x".to_vec() } else { model[i % model.len()].clone() };
                        let n = list.remove(&e, count, &l);
                        let mut quota = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                        let mut removed = 0;
                        if count < 0 {
                            let mut k = model.len();
                            while k > 0 && quota > 0 {
                                k -= 1;
                                if model[k] == e { model.remove(k); quota -= 1; removed += 1; }
                            }
                        } else {
                            let mut k = 0;
                            while k < model.len() && quota > 0 {
                                if model[k] == e { model.remove(k); quota -= 1; removed += 1; } else { k += 1; }
                            }
                        }
                        prop_assert_eq!(n, removed);
                    }
                    Op::Trim(a, b) => {
                        let len = model.len();
                        let front = if len == 0 { 0 } else { a % (len + 1) };
                        let back = if len - front == 0 { 0 } else { b % (len - front + 1) };
                        list.remove_front(front);
                        list.remove_back(back);
                        model.drain(..front);
                        model.truncate(model.len() - back);
                    }
                }
                list.check();
                prop_assert_eq!(list.len(), model.len());
            }
            let got = items(&list);
            let want: Vec<Vec<u8>> = model.iter().cloned().collect();
            prop_assert_eq!(&got, &want);
            let mut rev: Vec<Vec<u8>> = list.iter_rev().map(Member::to_vec).collect();
            rev.reverse();
            prop_assert_eq!(&rev, &want);
            for (i, w) in want.iter().enumerate() {
                let got = [
                    list.get(i).map(|m| m.to_vec()),
                    list.iter_from(i).next().map(|m| m.to_vec()),
                    list.iter_rev_from(i).next().map(|m| m.to_vec()),
                ];
                for g in got {
                    prop_assert_eq!(g.as_ref(), Some(w));
                }
            }
        }
    }
}
