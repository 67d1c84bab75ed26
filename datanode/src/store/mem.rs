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
/// Calibrated against RSS growth (release build; keys of 16 bytes loaded with
/// `redis-cli --pipe`, RSS of the empty process subtracted). With no slack, the size
/// classes leave this much RSS per key unexplained:
///
/// | keys      | value  | RSS B/key | classes B/key | unexplained |
/// |-----------|--------|-----------|---------------|-------------|
/// | 300,000   | 32 B   | 127       | 107           | 20          |
/// | 1,000,000 | 32 B   | 122       | 111           | 11          |
/// | 100,000   | 100 B  | 219       | 203           | 16          |
/// | 1,000,000 | 100 B  | 218       | 207           | 11          |
/// | 100,000   | 1 KiB  | 1348      | 1323          | 25          |
/// | 200,000   | 1 KiB  | 1343      | 1322          | 21          |
///
/// With 16 bytes, `used_memory` is within 4% of the RSS growth for all of these, instead of
/// 5% to 13% under with none. Under eviction churn (writes to a full node,
/// `helper/bench-maxmemory.sh`) RSS grows to 1.1 to 1.2 times `used_memory`: freed blocks
/// scattered over the allocator's pages, which no per-entry constant models.
pub const ENTRY_SLACK: usize = 16;

/// Bytes mimalloc (v3, the binary's global allocator) hands out for a request of `size`
/// bytes: multiples of 8 up to 64 bytes, then four classes per power of two (at most 12.5%
/// rounding) up to 512 KiB, then whole 4 KiB pages.
pub fn alloc_size(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let words = size.div_ceil(8);
    if words <= 8 {
        return words * 8;
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

/// Size of one element of the positions array: a key's hash.
pub const POSITION: usize = 8;

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
            8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448,
            512, 640, 768, 896, 1024, 1280,
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
        // 4 buckets: 32 + 4 + 16 = 52 -> 56; 3 positions: 24.
        assert_eq!(table_size(4, 3, 0, 0), 56 + 24);
        // 128 buckets: 1024 + 128 + 16 = 1168 -> 1280; 112 positions: 896.
        assert_eq!(table_size(128, 112, 0, 0), 1280 + 896);
        assert_eq!(table_size(0, 0, 4, 0), 64);
        assert_eq!(table_size(0, 0, 0, 4), 32);
    }
}
