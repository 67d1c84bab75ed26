//! The large encoding's members: a slab of `(member, score)` slots addressed by id.

use super::*;

// ---- large encoding: members ----

pub(super) struct Slot {
    pub(super) name: Name,
    pub(super) score: f64,
}

const CHUNK_BITS: u32 = 10;
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;

/// Member slots by id, in chunks of [`CHUNK`] (only the last one grows, so a large set
/// wastes at most part of one chunk), with a free list of ids.
///
/// The top slot is always live: free slots at the end are cut off as they appear
/// ([`Slab::truncate`]), so their ids can linger in the free list past the end; such ids
/// are dropped when they come up.
#[derive(Default)]
pub(super) struct Slab {
    pub(super) chunks: Vec<Vec<Slot>>,
    free: Vec<u32>,
    pub(super) live: usize,
    /// Heap bytes of the members stored out of line.
    name_heap: usize,
}

impl Slab {
    #[inline]
    pub(super) fn slot(&self, id: u32) -> &Slot {
        &self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    pub(super) fn slot_mut(&mut self, id: u32) -> &mut Slot {
        &mut self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    pub(super) fn name(&self, id: u32) -> &[u8] {
        self.slot(id).name.bytes()
    }

    #[inline]
    pub(super) fn score(&self, id: u32) -> f64 {
        self.slot(id).score
    }

    /// Ids handed out so far (live or free).
    pub(super) fn high(&self) -> usize {
        match self.chunks.last() {
            None => 0,
            Some(last) => (self.chunks.len() - 1) * CHUNK + last.len(),
        }
    }

    pub(super) fn alloc(&mut self, name: Name, score: f64) -> u32 {
        self.live += 1;
        self.name_heap += name.heap();
        if let Some(id) = self.take_free() {
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

    pub(super) fn release(&mut self, id: u32) -> Name {
        let slot = self.slot_mut(id);
        // A NaN score marks a free slot (no member has one).
        slot.score = f64::NAN;
        let name = std::mem::replace(&mut slot.name, Name::empty());
        self.name_heap -= name.heap();
        self.live -= 1;
        self.free.push(id);
        self.truncate();
        name
    }

    /// A free id (every one is below [`Slab::high`]); ids past the end met on the way are
    /// dropped.
    pub(super) fn take_free(&mut self) -> Option<u32> {
        let high = self.high();
        while let Some(id) = self.free.pop() {
            if (id as usize) < high {
                return Some(id);
            }
        }
        None
    }

    /// Moves the member in slot `from` to the free slot `to` (taken from the free list);
    /// `from` becomes free.
    pub(super) fn move_slot(&mut self, from: u32, to: u32) {
        let vacated = Slot {
            name: Name::empty(),
            score: f64::NAN,
        };
        let slot = std::mem::replace(self.slot_mut(from), vacated);
        *self.slot_mut(to) = slot;
        self.free.push(from);
        self.truncate();
    }

    /// Cuts the free slots off the end (a chunk left empty goes), and drops the free
    /// list's ids past the end once they are most of it.
    fn truncate(&mut self) {
        while let Some(last) = self.chunks.last_mut() {
            while last.last().is_some_and(|s| s.score.is_nan()) {
                last.pop();
            }
            if !last.is_empty() {
                break;
            }
            self.chunks.pop();
        }
        let high = self.high();
        let free = high - self.live;
        if self.free.len() > 2 * free + 64 {
            self.free.retain(|&id| (id as usize) < high);
            if self.free.capacity() > 2 * self.free.len() + 64 {
                self.free.shrink_to_fit();
            }
        }
    }

    pub(super) fn heap_size(&self) -> usize {
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
