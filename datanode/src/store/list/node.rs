//! One quicklist node: its block of entries, raw or LZF-compressed.

use super::*;

// ---- nodes ----

/// One node: entries in `buf[start..end]`, free space around them; or, compressed, the LZF
/// form of its entries in `buf[start..end]`.
#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    pub(super) buf: Box<[u8]>,
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) count: u32,
    /// 0: raw. [`NOT_WORTH`]: raw, and compression would not pay. Else compressed, and the
    /// entries take this many bytes.
    pub(super) packed: u32,
}

impl Node {
    pub(super) fn from_entries(data: &[u8], count: u32) -> Node {
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
    pub(super) fn data(&self) -> &[u8] {
        debug_assert!(!self.is_packed(), "a compressed node read raw");
        &self.buf[self.start as usize..self.end as usize]
    }

    /// Bytes of the block in use (compressed bytes for a compressed node).
    pub(super) fn used(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub(super) fn is_packed(&self) -> bool {
        self.packed != 0 && self.packed != NOT_WORTH
    }

    /// Bytes of the entries, compressed or not.
    pub(super) fn raw_len(&self) -> usize {
        if self.is_packed() {
            self.packed as usize
        } else {
            self.used()
        }
    }

    /// The entries: the node's own bytes, or for a compressed node `scratch`, where they
    /// are decompressed.
    pub(super) fn entries<'b>(&'b self, scratch: &'b mut Vec<u8>) -> &'b [u8] {
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
    pub(super) fn pack(&mut self) {
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
    pub(super) fn unpack(&mut self) {
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

    pub(super) fn heap(&self) -> usize {
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
    pub(super) fn fit(&mut self) {
        let used = self.used();
        if alloc_size(used.max(1)) < self.buf.len() {
            let mut buf = vec![0u8; alloc_size(used.max(1))].into_boxed_slice();
            buf[..used].copy_from_slice(self.data());
            self.buf = buf;
            self.start = 0;
            self.end = used as u32;
        }
    }

    pub(super) fn push(&mut self, e: &[u8], p: Plan, end: End, limit: usize) {
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
    pub(super) fn edge(&self, end: End) -> (Member<'_>, usize) {
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
    pub(super) fn drop_edge(&mut self, end: End, size: usize) {
        match end {
            End::Left => self.start += size as u32,
            End::Right => self.end -= size as u32,
        }
        self.count -= 1;
    }

    /// The offset in `data()` of the `i`-th entry of a raw node.
    pub(super) fn offset_of(&self, i: usize) -> usize {
        offset_in(self.data(), self.count as usize, i)
    }

    /// Replaces `data()[from..to]` (`removed` entries) with the encoded entries `with`
    /// (`added` of them).
    pub(super) fn splice(&mut self, from: usize, to: usize, removed: u32, with: &[u8], added: u32) {
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
    pub(super) fn split_off(&mut self, i: usize) -> Node {
        let off = self.offset_of(i);
        let tail = Node::from_entries(&self.data()[off..], self.count - i as u32);
        self.end = self.start + off as u32;
        self.count = i as u32;
        self.fit();
        tail
    }
}

/// The offset of the `i`-th of the `n` entries in `d`, walking from the nearer end.
pub(super) fn offset_in(d: &[u8], n: usize, i: usize) -> usize {
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
pub(super) fn entries_of(d: &[u8]) -> NodeIter<'_> {
    NodeIter { d, off: 0 }
}

/// A node's entries with their offsets and sizes, front to back.
pub(super) struct NodeIter<'a> {
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
