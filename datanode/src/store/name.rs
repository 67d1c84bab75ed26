//! Members of large collections: [`Name`], a member's bytes inline up to 22 bytes and on the
//! heap beyond, and [`ChunkVec`], a dense array of them in fixed chunks.
//!
//! Most members are short (ids, tags, words), so a 24-byte slot that holds them inline
//! saves the heap block and pointer a `Box<[u8]>` per member costs; a chunked array grows
//! without the doubling (and the freed old arrays) of one large `Vec`.

use super::mem::alloc_size;

/// Longest member stored inline.
pub const INLINE: usize = 22;

/// A member's bytes: inline up to [`INLINE`] bytes (the slot stays 24 bytes), else on the
/// heap.
#[derive(Clone, PartialEq, Eq)]
pub enum Name {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Name {
    pub fn new(b: &[u8]) -> Name {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Name::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Name::Heap(b.into())
        }
    }

    pub fn empty() -> Name {
        Name::Inline {
            len: 0,
            buf: [0; INLINE],
        }
    }

    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, buf } => &buf[..*len as usize],
            Name::Heap(b) => b,
        }
    }

    /// Heap bytes held beyond the name itself.
    pub fn heap(&self) -> usize {
        match self {
            Name::Inline { .. } => 0,
            Name::Heap(b) => alloc_size(b.len()),
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.bytes()))
    }
}

const CHUNK_BITS: u32 = 10;
/// Elements per chunk.
pub const CHUNK: usize = 1 << CHUNK_BITS;

/// A dense array in chunks of [`CHUNK`] elements: only the last chunk grows (by half,
/// exactly), so a large array wastes at most part of one chunk and never copies itself
/// whole; positions are `0..len`, and removal is a swap with the last element.
#[derive(Debug)]
pub struct ChunkVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

/// A copy with the same capacities, so it holds (and is charged) the same memory.
impl<T: Clone> Clone for ChunkVec<T> {
    fn clone(&self) -> Self {
        let mut chunks = Vec::with_capacity(self.chunks.capacity());
        for c in &self.chunks {
            let mut copy = Vec::with_capacity(c.capacity());
            copy.extend_from_slice(c);
            chunks.push(copy);
        }
        ChunkVec {
            chunks,
            len: self.len,
        }
    }
}

impl<T> Default for ChunkVec<T> {
    fn default() -> Self {
        ChunkVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ChunkVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    pub fn push(&mut self, v: T) {
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
        last.push(v);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        let last = self.chunks.last_mut()?;
        let v = last.pop();
        if last.is_empty() {
            self.chunks.pop();
            if self.chunks.capacity() > 2 * self.chunks.len() + 4 || self.chunks.is_empty() {
                self.chunks.shrink_to_fit();
            }
        }
        self.len -= usize::from(v.is_some());
        v
    }

    /// Removes element `i`, moving the last element into its place.
    pub fn swap_remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let last = self.pop()?;
        if i == self.len {
            return Some(last);
        }
        self.get_mut(i).map(|slot| std::mem::replace(slot, last))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// Bytes of the chunks and the chunk array, by allocator size class (not counting what
    /// the elements hold on the heap).
    pub fn heap_size(&self) -> usize {
        let elem = std::mem::size_of::<T>();
        let full = self.chunks.len().saturating_sub(1) * alloc_size(CHUNK * elem);
        let last = self
            .chunks
            .last()
            .map_or(0, |c| alloc_size(c.capacity() * elem));
        full + last + alloc_size(self.chunks.capacity() * std::mem::size_of::<Vec<T>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_inline_and_on_the_heap() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        let short = Name::new(b"member:1");
        assert_eq!((short.bytes(), short.heap()), (&b"member:1"[..], 0));
        let long = Name::new(&[b'x'; 23]);
        // 23 bytes on the heap: mimalloc's 32-byte class (16-byte steps from 16 to 64).
        assert_eq!((long.bytes().len(), long.heap()), (23, 32));
        assert_eq!(Name::empty().bytes(), b"");
    }

    #[test]
    fn chunk_vec_is_dense() {
        let mut v = ChunkVec::default();
        for i in 0..(CHUNK * 2 + 5) {
            v.push(i);
        }
        assert_eq!(v.len(), CHUNK * 2 + 5);
        assert_eq!(v.get(CHUNK + 3), Some(&(CHUNK + 3)));
        assert_eq!(v.swap_remove(1), Some(1));
        assert_eq!(v.get(1), Some(&(CHUNK * 2 + 4)));
        assert_eq!(v.swap_remove(v.len() - 1), Some(CHUNK * 2 + 3));
        assert_eq!(v.swap_remove(v.len()), None);
        while v.pop().is_some() {}
        assert_eq!((v.len(), v.heap_size()), (0, 0));
        assert_eq!(v.iter().count(), 0);
    }
}
