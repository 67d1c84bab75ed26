//! Walking a list's elements: [`Cursor`] front to back, [`RevCursor`] back to front.

use super::*;

/// Elements front to back (see [`List::cursor_from`]): `while let Some(m) = c.next()`.
/// Each element borrows the cursor, which decompresses a compressed node into its own
/// buffer.
pub struct Cursor<'a> {
    pub(super) list: &'a List,
    pub(super) node: usize,
    pub(super) off: usize,
    /// Bytes of the current node's entries.
    pub(super) end: usize,
    pub(super) scratch: Vec<u8>,
}

impl Cursor<'_> {
    /// Starts node `ni` (decompressing it when compressed).
    pub(super) fn enter(&mut self, ni: usize) {
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
    pub(super) fn current(&self) -> &[u8] {
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
    pub(super) list: &'a List,
    pub(super) node: usize,
    /// Where the entries not yet returned end in the current node.
    pub(super) end: usize,
    pub(super) scratch: Vec<u8>,
}

impl RevCursor<'_> {
    pub(super) fn enter(&mut self, ni: usize) {
        self.node = ni;
        let n = &self.list.nodes[ni];
        if n.is_packed() {
            n.entries(&mut self.scratch);
        }
        self.end = n.raw_len();
    }

    pub(super) fn current(&self) -> &[u8] {
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
