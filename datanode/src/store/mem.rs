//! Memory accounting: what the store's allocations really cost.
//!
//! `used_memory` is kept incrementally by the store and is meant to track the resident
//! memory the data adds to the process, so that `maxmemory` bounds what the operator sees
//! in `ps`. Two things make the naive `key + value` count wrong by a wide margin:
//!
//! - the allocator rounds each request up to a size class: a key and a 1 KiB value
//!   (1041 bytes) take a 1280-byte block under mimalloc;
//! - the slot tables' arrays (the hash table, the positions array, the volatile list)
//!   grow by doubling and are shared by a slot's keys, so their cost per key depends on how
//!   full each table is.
//!
//! So an entry is charged the size class of its one `Kv` allocation, and each slot table is
//! charged the size class of each of its arrays at their current capacity (recomputed
//! whenever a capacity changes). Both use mimalloc's classes (the binary's allocator).
//!
//! What the classes do not explain is charged as a per-entry constant, calibrated against
//! RSS: see [`ENTRY_SLACK`].

use std::mem::size_of;

/// Bytes per entry that the size classes do not explain: mimalloc's page metadata and the
/// unused tail of each page, and the arrays the slot tables dropped as they grew (free in the
/// allocator, but still resident until reused).
///
/// Calibrated against RSS growth (release build, `helper/mem-per-key.sh`: RSS of the loaded
/// process minus the empty one, loaded with `redis-cli --pipe`). The size classes themselves
/// are mimalloc's exactly (checked against `mi_usable_size` in the tests below). With the
/// former 16 bytes `used_memory` overstated RSS; with 8 it is within 3% of it for:
///
/// | load                                           | RSS B/elem | used_memory B/elem (8) |
/// |------------------------------------------------|------------|------------------------|
/// | 1,000,000 strings, 16-byte keys, 32-byte values | 94.6       | 95.5                   |
/// | 100,000 sets of 10 8-byte members (listpack)    | 16.3       | 15.9                   |
/// | 100,000 hashes of 10 fields (listpack)          | 25.8       | 25.5                   |
///
/// (per element; the collections' keys are 11 and 12 bytes). Under eviction churn (writes
/// to a full node, `helper/bench-maxmemory.sh`) RSS grows past `used_memory`: freed blocks
/// scattered over the allocator's pages, which no per-entry constant models.
pub const ENTRY_SLACK: usize = 8;

/// Bytes mimalloc (v3, the binary's global allocator) hands out for a request of `size`
/// bytes (its `mi_good_size`, checked in the tests below): 8, then multiples of 16 up to 64
/// bytes, then four classes per power of two (at most 12.5% rounding) up to 512 KiB, then
/// whole 4 KiB pages.
pub fn alloc_size(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    if size <= 8 {
        return 8;
    }
    let words = size.div_ceil(8);
    if words <= 8 {
        return size.next_multiple_of(16);
    }
    if size > 512 * 1024 {
        return size.next_multiple_of(4096);
    }
    // mimalloc's bin: the top three bits of (words - 1) pick one of four classes.
    let w = words - 1;
    let b = (usize::BITS - 1 - w.leading_zeros()) as usize;
    let quarter = (w >> (b - 2)) & 3;
    ((5 + quarter) << (b - 2)) * 8
}

/// Length of the LEB128 header that stores a key's or a value's length in a `Kv`.
pub fn leb_len(n: usize) -> usize {
    (usize::BITS as usize - n.leading_zeros() as usize)
        .max(1)
        .div_ceil(7)
}

/// Bytes one entry is charged for its key and string value: its `Kv` block and slack.
pub fn entry_size(key_len: usize, value_len: usize) -> usize {
    alloc_size(
        super::table::KV_HEADER + leb_len(key_len) + leb_len(value_len) + key_len + value_len,
    ) + ENTRY_SLACK
}

/// Bytes one entry is charged for a block of `len` bytes, and slack.
pub fn block_size(len: usize) -> usize {
    alloc_size(len) + ENTRY_SLACK
}

/// Size of one hash-table bucket: the entry's handle (`Kv`, a thin pointer).
pub const TABLE_BUCKET: usize = 8;

/// Size of one element of the positions array: a key's 32-bit hash.
pub const POSITION: usize = 4;

/// Size of one volatile-list element, `(u32, u64)`.
pub const VOL_ELEM: usize = size_of::<(u32, u64)>();

/// Bytes a slot table's arrays take: the hash table (`buckets` buckets of a handle and a
/// control byte, plus one 16-byte control group), the positions array (`pos_cap`
/// elements), the volatile list (`vol_cap` elements) and the frequency sketch
/// (`sketch_words` u64s).
pub fn table_size(buckets: usize, pos_cap: usize, vol_cap: usize, sketch_words: usize) -> usize {
    let index = if buckets == 0 {
        0
    } else {
        buckets * TABLE_BUCKET + buckets + 16
    };
    alloc_size(index)
        + alloc_size(pos_cap * POSITION)
        + alloc_size(vol_cap * VOL_ELEM)
        + alloc_size(sketch_words * 8)
}

impl super::SlotGuard<'_> {
    /// MEMORY USAGE: the bytes charged for `key`: its entry (and collection), plus its share
    /// of the slot table's arrays.
    pub fn memory_usage(&mut self, key: &[u8], now: u64) -> Option<u64> {
        let b = self.live(key, now)?;
        let kv = self.t.map.get(b)?;
        let own = self.t.kv_mem(kv);
        let share = self.t.table_mem().div_ceil(self.t.map.len().max(1));
        Some(own + share as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_size_classes() {
        // The first classes of mimalloc's bin table, in bytes.
        let classes = [
            8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768,
            896, 1024, 1280,
        ];
        let mut prev = 0;
        for c in classes {
            assert_eq!(alloc_size(prev + 1), c, "request {}", prev + 1);
            assert_eq!(alloc_size(c), c, "request {c}");
            prev = c;
        }
        assert_eq!(alloc_size(0), 0);
        assert_eq!(alloc_size(1041), 1280);
        assert_eq!(alloc_size(100 * 1024), 112 * 1024);
        assert_eq!(alloc_size(512 * 1024), 512 * 1024);
        assert_eq!(alloc_size(512 * 1024 + 1), 516 * 1024);
    }

    /// `alloc_size` is mimalloc's own size class (`mi_good_size`) for every request up to
    /// 4 KiB and a spread of requests up to the largest class (512 KiB), and never less
    /// than what an allocation through the global allocator's entry point really gets
    /// (`mi_usable_size`). That can be one class more: a request within a few bytes of the
    /// top of a class, through `mi_malloc_aligned`, sometimes takes the next class (a few
    /// dozen of the first 4096 sizes, and requests of 8 bytes or less a 32-byte block); the
    /// per-entry slack ([`ENTRY_SLACK`]) absorbs that on average.
    #[test]
    fn size_classes_match_mimalloc() {
        use std::alloc::{GlobalAlloc, Layout};
        extern "C" {
            fn mi_usable_size(p: *const std::ffi::c_void) -> usize;
            fn mi_good_size(size: usize) -> usize;
        }
        let a = mimalloc::MiMalloc;
        let mut above = 0;
        for size in (1..=4096).chain((4097..=512 * 1024).step_by(509)) {
            // SAFETY: a pure function of its argument.
            let good = unsafe { mi_good_size(size) };
            assert_eq!(alloc_size(size), good, "request of {size} bytes");
            let layout = Layout::from_size_align(size, 8).expect("layout");
            // SAFETY: a non-zero size; the block is freed with the same layout below.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is a live mimalloc block.
            let usable = unsafe { mi_usable_size(p.cast()) };
            // SAFETY: allocated just above with `layout`.
            unsafe { a.dealloc(p, layout) };
            assert!(usable >= good, "request of {size} bytes: {usable} usable");
            if usable > good && size > 8 {
                above += 1;
                assert_eq!(usable, alloc_size(good + 1), "request of {size} bytes");
            }
        }
        assert!(above < 200, "{above} requests took a larger class");
    }

    #[test]
    fn leb_header() {
        assert_eq!(leb_len(0), 1);
        assert_eq!(leb_len(127), 1);
        assert_eq!(leb_len(128), 2);
        assert_eq!(leb_len(16383), 2);
        assert_eq!(leb_len(16384), 3);
    }

    #[test]
    fn table_sizes() {
        assert_eq!(table_size(0, 0, 0, 0), 0);
        // 4 buckets: 32 + 4 + 16 = 52 -> 64; 3 positions: 12 -> 16.
        assert_eq!(table_size(4, 3, 0, 0), 64 + 16);
        // 128 buckets: 1024 + 128 + 16 = 1168 -> 1280; 112 positions: 448.
        assert_eq!(table_size(128, 112, 0, 0), 1280 + 448);
        assert_eq!(table_size(0, 0, 4, 0), 64);
        assert_eq!(table_size(0, 0, 0, 4), 32);
    }
}
