//! The listpack ([`Listpack`]) and the buffer every compact encoding keeps its bytes in.

use super::*;

// ---- listpack ----

/// Elements in one contiguous block: each is a LEB128 length, then its bytes.
///
/// No count is kept: a listpack is small by construction (`*-max-listpack-entries`), so
/// counting is a short scan, and without it the struct stays 24 bytes, which keeps a
/// [`Value`] at 32.
///
/// A listpack either owns its bytes or is a view of bytes kept elsewhere: the store keeps a
/// small set's or hash's listpack inline in its key's entry block (one allocation per key
/// instead of two) and lends it out as a view for reads (`Listpack::view`). A view is
/// never freed; a clone of it, or a change to it, owns a copy.
#[derive(Default)]
pub struct Listpack {
    buf: LpBuf,
}

/// The bytes of a compact encoding (a [`Listpack`], a sorted set's `ZipList`): owned, or a
/// view of bytes kept in an entry's block (see [`Listpack::view`]).
pub(in crate::store) enum LpBuf {
    Own(Vec<u8>),
    /// Borrowed bytes (see [`Listpack::view`]).
    View(std::ptr::NonNull<u8>, usize),
}

impl LpBuf {
    /// A view of `bytes`.
    ///
    /// # Safety
    /// As [`Listpack::view`].
    pub(in crate::store) unsafe fn view(bytes: &[u8]) -> LpBuf {
        let ptr = std::ptr::NonNull::new(bytes.as_ptr().cast_mut())
            .unwrap_or(std::ptr::NonNull::dangling());
        LpBuf::View(ptr, bytes.len())
    }

    #[inline]
    pub(in crate::store) fn bytes(&self) -> &[u8] {
        match self {
            LpBuf::Own(v) => v,
            // SAFETY: a view's bytes outlive it (see `view`).
            LpBuf::View(p, n) => unsafe { std::slice::from_raw_parts(p.as_ptr(), *n) },
        }
    }

    /// The owned bytes, writable (a view is copied first).
    pub(in crate::store) fn own(&mut self) -> &mut Vec<u8> {
        if let LpBuf::View(..) = self {
            *self = LpBuf::Own(self.bytes().to_vec());
        }
        match self {
            LpBuf::Own(v) => v,
            LpBuf::View(..) => unreachable!("just made owned"),
        }
    }

    /// Heap bytes held (a view holds none of its own).
    pub(in crate::store) fn heap_size(&self) -> usize {
        match self {
            LpBuf::Own(v) => alloc_size(v.capacity()),
            LpBuf::View(..) => 0,
        }
    }
}

impl Clone for LpBuf {
    /// An owned copy (of a view too: the copy may outlive the entry).
    fn clone(&self) -> Self {
        LpBuf::Own(self.bytes().to_vec())
    }
}

// SAFETY: a view is only handed out inside `store::Coll`/`store::ValueRef`, which borrow
// the entry it points into (shared reads only, like `&[u8]`); an owned buffer is a `Vec`.
unsafe impl Send for LpBuf {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for LpBuf {}

impl Default for LpBuf {
    fn default() -> Self {
        LpBuf::Own(Vec::new())
    }
}

impl Clone for Listpack {
    fn clone(&self) -> Self {
        Listpack {
            buf: self.buf.clone(),
        }
    }
}

impl PartialEq for Listpack {
    fn eq(&self, o: &Self) -> bool {
        self.bytes() == o.bytes()
    }
}

impl Eq for Listpack {}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

pub(in crate::store) fn put_leb(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

/// Reads a length at `at`: (length, offset of the bytes).
pub(in crate::store) fn get_leb(buf: &[u8], mut at: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    while let Some(&b) = buf.get(at) {
        at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (n, at)
}

impl Listpack {
    /// A listpack reading `bytes` (a listpack's [`Listpack::bytes`]) in place.
    ///
    /// # Safety
    /// The view must not outlive `bytes`, nor be used while they change: the store keeps it
    /// inside a guard that borrows the entry holding them.
    pub(in crate::store) unsafe fn view(bytes: &[u8]) -> Listpack {
        Listpack {
            // SAFETY: the caller's promise.
            buf: unsafe { LpBuf::view(bytes) },
        }
    }

    /// A listpack owning a copy of `bytes` (a listpack's [`Listpack::bytes`]), exactly sized.
    pub(in crate::store) fn from_bytes(bytes: &[u8]) -> Listpack {
        Listpack {
            buf: LpBuf::Own(bytes.to_vec()),
        }
    }

    /// The encoded elements.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.buf.bytes()
    }

    fn own(&mut self) -> &mut Vec<u8> {
        self.buf.own()
    }

    pub fn len(&self) -> usize {
        self.spans().count()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Heap bytes held by the listpack (a view holds none of its own).
    pub fn heap_size(&self) -> usize {
        self.buf.heap_size()
    }

    /// Elements with their byte ranges `(start, end)` (start of the length header).
    pub(super) fn spans(&self) -> impl Iterator<Item = (usize, usize, &[u8])> + '_ {
        let buf = self.bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= buf.len() {
                return None;
            }
            let start = at;
            let (n, data) = get_leb(buf, at);
            let end = (data + n).min(buf.len());
            at = end;
            Some((start, end, &buf[data..end]))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans().map(|(_, _, e)| e)
    }

    pub fn push(&mut self, e: &[u8]) {
        let buf = self.own();
        // Exactly sized, like a listpack's realloc: doubling would leave up to half of
        // every small collection's block unused.
        buf.reserve_exact(crate::store::mem::leb_len(e.len()) + e.len());
        put_leb(buf, e.len());
        buf.extend_from_slice(e);
    }

    /// Replaces bytes `start..end` with the encoded elements `with`.
    pub(super) fn splice(&mut self, start: usize, end: usize, with: &[&[u8]]) {
        let mut enc = Vec::new();
        for e in with {
            put_leb(&mut enc, e.len());
            enc.extend_from_slice(e);
        }
        let buf = self.own();
        buf.splice(start..end, enc);
        // Keep the block tight, like a listpack realloc: memory follows the contents.
        if buf.capacity() > buf.len() + buf.len() / 4 + 16 {
            buf.shrink_to_fit();
        }
    }

    /// The `i`-th element.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.iter().nth(i)
    }
}
