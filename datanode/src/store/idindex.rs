//! [`StepTable`]: a hash table resized a few entries at a time instead of all at once. It
//! holds the index of a large collection's members ([`IdIndex`]: a set's or hash's
//! positions, a sorted set's slab ids) and a slot's keys (`store::table::KeyTable`).
//!
//! The members live elsewhere (a [`super::name::ChunkVec`], a slab, a key's own block); the
//! table holds their ids or handles, so every method that may move entries takes `rehash`,
//! the hash of the member an entry stands for.
//!
//! hashbrown resizes a table in one call that rehashes every entry: at a million members
//! that is tens of milliseconds in which the worker serves nobody (measured: SADD and ZADD
//! growing one key to 2M members, one command took 79 and 83 ms; Valkey 4.6 and 9.1). Like
//! Redis's dict, this table resizes in steps: a resize allocates the new table and leaves
//! the entries in the old one; until the old table is empty, lookups try both (the new one
//! first), and every insert and removal first moves up to [`STEP`] entries across, looking
//! at [`SCAN`] buckets at most. Growth starts when the table is full and asks for twice the
//! entries; at [`STEP`] entries an operation the move is over after a sixteenth of the
//! entries' worth of operations, long before the new table fills, so a resize never waits
//! for another. Small tables (below [`INCREMENTAL`] entries) resize at once, as before:
//! that is faster than any step and too short to notice.

use hashbrown::HashTable;

/// Entries moved to the new table per insert or removal while a resize is under way.
const STEP: usize = 16;
/// Buckets of the old table looked at per operation, at most (empty ones included).
const SCAN: usize = 64;
/// Tables of fewer entries than this resize at once.
const INCREMENTAL: usize = 4096;
/// A [`Bucket`]'s top bit: the entry is in the table being emptied.
const IN_OLD: usize = 1 << (usize::BITS - 1);

/// Where an entry of a [`StepTable`] sits, until the table's next insert or removal.
pub type Bucket = usize;

/// A hash table of `T` that resizes incrementally (see the module docs). Every method that
/// may move entries takes `rehash`, the hash of an entry (the entries are ids or handles of
/// members stored elsewhere, which the table cannot hash by itself).
#[derive(Clone)]
pub struct StepTable<T> {
    /// Where entries go (and are looked for first).
    cur: HashTable<T>,
    /// The table being emptied into `cur` during a resize, boxed: 8 bytes when none is under
    /// way, so that a lookup's first cache line holds all it reads (see `store::table`).
    old: Option<Box<Old<T>>>,
}

#[derive(Clone)]
struct Old<T> {
    table: HashTable<T>,
    /// The next bucket to move.
    cursor: usize,
}

/// The index of a large collection's members: `u32` positions or slab ids.
pub type IdIndex = StepTable<u32>;

impl<T> Default for StepTable<T> {
    fn default() -> Self {
        StepTable {
            cur: HashTable::new(),
            old: None,
        }
    }
}

impl<T> StepTable<T> {
    pub fn with_capacity(n: usize) -> StepTable<T> {
        StepTable {
            cur: HashTable::with_capacity(n),
            old: None,
        }
    }

    pub fn len(&self) -> usize {
        self.cur.len() + self.old.as_ref().map_or(0, |o| o.table.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a resize is under way (the old table is freed as its last entry goes).
    pub fn resizing(&self) -> bool {
        self.old.is_some()
    }

    /// Bytes of the tables' allocations.
    pub fn allocation_size(&self) -> usize {
        let size = |t: &HashTable<T>| match t.allocation_size() {
            0 => 0,
            n => super::mem::alloc_size(n),
        };
        size(&self.cur)
            + self.old.as_ref().map_or(0, |o| {
                size(&o.table) + super::mem::alloc_size(std::mem::size_of::<Old<T>>())
            })
    }

    /// Buckets allocated, in both tables during a resize.
    pub fn buckets(&self) -> usize {
        allocated_buckets(&self.cur) + self.old.as_ref().map_or(0, |o| allocated_buckets(&o.table))
    }

    /// Buckets of the table that entries go to.
    pub fn current_buckets(&self) -> usize {
        allocated_buckets(&self.cur)
    }

    /// The entry `eq` accepts among those stored under `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<&T> {
        if let Some(v) = self.cur.find(hash, &mut eq) {
            return Some(v);
        }
        self.old.as_ref()?.table.find(hash, eq)
    }

    /// The bucket of the entry `eq` accepts among those stored under `hash`.
    #[inline]
    pub fn find_bucket(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<Bucket> {
        if let Some(b) = self.cur.find_bucket_index(hash, &mut eq) {
            return Some(b);
        }
        let old = self.old.as_ref()?;
        old.table.find_bucket_index(hash, eq).map(|b| b | IN_OLD)
    }

    /// The entry `eq` accepts under `hash`, to change in place (its hash must stay).
    pub fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        let b = self.find_bucket(hash, eq)?;
        self.get_mut(b)
    }

    pub fn get(&self, b: Bucket) -> Option<&T> {
        if b & IN_OLD == 0 {
            self.cur.get_bucket(b)
        } else {
            self.old.as_ref()?.table.get_bucket(b & !IN_OLD)
        }
    }

    pub fn get_mut(&mut self, b: Bucket) -> Option<&mut T> {
        if b & IN_OLD == 0 {
            self.cur.get_bucket_mut(b)
        } else {
            self.old.as_mut()?.table.get_bucket_mut(b & !IN_OLD)
        }
    }

    /// Adds `value` (not present: the caller checked) under `hash`; returns its bucket.
    pub fn insert_unique(&mut self, hash: u64, value: T, rehash: impl Fn(&T) -> u64) -> Bucket {
        self.step(&rehash);
        if !self.resizing()
            && self.cur.len() >= INCREMENTAL
            && self.cur.len() == self.cur.capacity()
        {
            self.start(self.cur.len().saturating_mul(2));
        }
        self.cur
            .insert_unique(hash, value, |x| rehash(x))
            .bucket_index()
    }

    /// Removes and returns the entry `eq` accepts under `hash`; the table shrinks by itself
    /// when an eighth full.
    pub fn remove(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(&T) -> bool,
        rehash: impl Fn(&T) -> u64,
    ) -> Option<T> {
        let value = match self.cur.find_entry(hash, &mut eq) {
            Ok(e) => e.remove().0,
            Err(_) => {
                self.old
                    .as_mut()?
                    .table
                    .find_entry(hash, eq)
                    .ok()?
                    .remove()
                    .0
            }
        };
        self.step(&rehash);
        self.maybe_shrink(&rehash);
        Some(value)
    }

    /// Removes and returns the entry in bucket `b` (no shrinking: see [`Self::shrink_to`]).
    pub fn remove_bucket(&mut self, b: Bucket, rehash: impl Fn(&T) -> u64) -> Option<T> {
        let value = if b & IN_OLD == 0 {
            self.cur.get_bucket_entry(b).ok()?.remove().0
        } else {
            let old = self.old.as_mut()?;
            old.table.get_bucket_entry(b & !IN_OLD).ok()?.remove().0
        };
        self.step(&rehash);
        Some(value)
    }

    /// Makes room for `n` more entries at once (a collection being built: its own work is
    /// of that order anyway).
    pub fn reserve(&mut self, n: usize, rehash: impl Fn(&T) -> u64) {
        self.finish(&rehash);
        self.cur.reserve(n, |x| rehash(x));
    }

    /// Shrinks to a table for `n` entries (at least the entries there are): at once when
    /// small; when large, in steps to a table with room for half as many again, and only
    /// if that frees buckets. Not while a resize is under way. (A large table shrunk to
    /// its entries would fill again at the next inserts, while its old table may still
    /// hold entries to move: the new one would then grow in one call, the stall the steps
    /// are for; and a table wandering around one size would shrink and grow in turn.)
    pub fn shrink_to(&mut self, n: usize, rehash: impl Fn(&T) -> u64) {
        if self.resizing() {
            return;
        }
        let n = n.max(self.cur.len());
        if self.cur.len() < INCREMENTAL {
            self.cur.shrink_to(n, |x| rehash(x));
            return;
        }
        let target = n.saturating_add(n / 2);
        if buckets_for(target) < self.current_buckets() {
            self.start(target);
        }
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.cur
            .iter()
            .chain(self.old.iter().flat_map(|o| o.table.iter()))
    }

    /// Every entry, in no order, to change in place (their hashes must stay).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.cur
            .iter_mut()
            .chain(self.old.iter_mut().flat_map(|o| o.table.iter_mut()))
    }

    /// Gives memory back when the table is an eighth full: a resize to a quarter, in steps.
    /// (Redis's dict shrinks at a tenth; at a quarter, the shrinks' rehashing showed in
    /// ZPOPMIN's and SPOP's profiles as a set was popped empty.)
    fn maybe_shrink(&mut self, rehash: &impl Fn(&T) -> u64) {
        if self.resizing() {
            return;
        }
        let (n, cap) = (self.cur.len(), self.cur.capacity());
        if cap <= 64 || n * 8 >= cap {
            return;
        }
        if n < INCREMENTAL {
            self.cur.shrink_to(n * 2, |x| rehash(x));
        } else {
            self.start(n * 2);
        }
    }

    /// Starts a resize to a table for `capacity` entries.
    fn start(&mut self, capacity: usize) {
        debug_assert!(!self.resizing());
        let old = std::mem::replace(&mut self.cur, HashTable::with_capacity(capacity));
        if !old.is_empty() {
            self.old = Some(Box::new(Old {
                table: old,
                cursor: 0,
            }));
        }
    }

    /// One step of a resize under way: up to [`STEP`] entries moved, [`SCAN`] buckets seen.
    fn step(&mut self, rehash: &impl Fn(&T) -> u64) {
        let Some(old) = self.old.as_deref_mut() else {
            return;
        };
        let end = old.cursor.saturating_add(SCAN).min(old.table.num_buckets());
        let mut moved = 0;
        while old.cursor < end && moved < STEP {
            if let Ok(e) = old.table.get_bucket_entry(old.cursor) {
                let (value, _) = e.remove();
                self.cur.insert_unique(rehash(&value), value, |x| rehash(x));
                moved += 1;
            }
            old.cursor += 1;
        }
        // Emptied by the moves or by removals: the resize is over.
        if old.table.is_empty() {
            self.old = None;
        }
    }

    /// Ends a resize under way at once.
    fn finish(&mut self, rehash: &impl Fn(&T) -> u64) {
        while self.resizing() {
            self.step(rehash);
        }
    }
}

impl StepTable<u32> {
    /// Changes the stored id `from`, whose member hashes to `hash`, to `to` (the member moved
    /// to another position or slot); false when `from` is not there.
    pub fn rename(&mut self, hash: u64, from: u32, to: u32) -> bool {
        match self.find_mut(hash, |&x| x == from) {
            Some(e) => {
                *e = to;
                true
            }
            None => false,
        }
    }

    /// For an index of dense positions `0..len` (a collection whose removal moves its last
    /// element into the hole): removes the position `eq` accepts under `hash` and renames
    /// position `len - 1` to it, as the caller's `swap_remove` is about to move that
    /// element. `rehash` must still see every element in place. Returns the position.
    pub fn swap_remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(&u32) -> bool,
        len: usize,
        rehash: impl Fn(&u32) -> u64,
    ) -> Option<u32> {
        let pos = self.remove(hash, eq, &rehash)?;
        let last = u32::try_from(len.checked_sub(1)?).ok()?;
        if pos != last {
            self.rename(rehash(&last), last, pos);
        }
        Some(pos)
    }
}

/// Buckets `t` has allocated (an empty table's bucket count is 1, a shared static one:
/// nothing allocated).
fn allocated_buckets<T>(t: &HashTable<T>) -> usize {
    if t.allocation_size() == 0 {
        0
    } else {
        t.num_buckets()
    }
}

/// Buckets hashbrown gives a table for `n` entries (n ≥ 8): the next power of two at or
/// above 8/7 of it.
fn buckets_for(n: usize) -> usize {
    (n.saturating_mul(8) / 7).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ids stand for themselves; a poor hash (few distinct values) makes collisions common.
    fn h(id: u32) -> u64 {
        u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7
    }

    /// [`h`] as the table's `rehash`.
    fn hr(id: &u32) -> u64 {
        h(*id)
    }

    /// An index of the ids `0..n`, no resize under way.
    fn filled(n: u32) -> IdIndex {
        let mut ix = IdIndex::default();
        for id in 0..n {
            insert(&mut ix, id);
        }
        ix.finish(&hr);
        ix
    }

    /// Every id, in no order.
    fn ids(ix: &IdIndex) -> Vec<u32> {
        ix.iter().copied().collect()
    }

    fn insert(ix: &mut IdIndex, id: u32) {
        assert!(ix.find(h(id), |&x| x == id).is_none());
        ix.insert_unique(h(id), id, hr);
    }

    #[test]
    fn growth_past_the_threshold_moves_in_steps_and_keeps_every_entry() {
        let mut ix = IdIndex::default();
        let mut seen_resizing = 0;
        let mut longest = 0;
        let mut run = 0;
        for id in 0..100_000u32 {
            insert(&mut ix, id);
            if ix.resizing() {
                seen_resizing += 1;
                run += 1;
                longest = longest.max(run);
                // Mid-resize, entries in both tables are found.
                assert!(ix.find(h(id / 2), |&x| x == id / 2).is_some());
            } else {
                run = 0;
            }
        }
        assert_eq!(ix.len(), 100_000);
        assert!(seen_resizing > 0, "a table this large resizes in steps");
        // A resize of n entries ends within n / STEP inserts or so (buckets of the old table
        // run at least half full), never more than n / 4.
        assert!(longest <= 65_536 / 4, "a resize lasted {longest} inserts");
        let mut ids = ids(&ix);
        ids.sort_unstable();
        assert_eq!(ids, (0..100_000).collect::<Vec<_>>());
    }

    #[test]
    fn removal_down_to_an_eighth_shrinks_in_steps() {
        let mut ix = filled(60_000);
        let before = ix.allocation_size();
        let mut shrank = false;
        for id in 0..50_000u32 {
            assert_eq!(ix.remove(h(id), |&x| x == id, hr), Some(id));
            shrank |= ix.resizing();
            assert_eq!(ix.remove(h(id), |&x| x == id, hr), None);
        }
        assert!(shrank);
        ix.finish(&hr);
        assert!(ix.allocation_size() < before / 2);
        for id in 50_000..60_000u32 {
            assert_eq!(ix.find(h(id), |&x| x == id), Some(&id));
        }
        assert_eq!(ix.len(), 10_000);
    }

    #[test]
    fn a_stepped_shrink_leaves_room_for_the_inserts_that_follow() {
        let mut ix = filled(20_000);
        // Down to 7,166 without the index's own shrink, then the caller's (the key table's):
        // a table for exactly 7,167 entries (8,192 buckets) would have room for one more.
        for id in 0..12_834u32 {
            let b = ix.find_bucket(h(id), |&x| x == id).expect("present");
            assert_eq!(ix.remove_bucket(b, hr), Some(id));
        }
        ix.finish(&hr);
        let before = ix.current_buckets();
        ix.shrink_to(ix.len() + 1, hr);
        assert!(ix.resizing(), "a large table shrinks in steps");
        let target = ix.current_buckets();
        assert!(target < before);
        // Inserts while the shrink is under way go to the new table without growing it.
        let mut id = 20_000u32;
        while ix.resizing() {
            insert(&mut ix, id);
            id += 1;
            assert_eq!(
                ix.current_buckets(),
                target,
                "the new table grew in one call"
            );
        }
        for x in (12_834..id).step_by(7) {
            assert_eq!(ix.find(h(x), |&y| y == x), Some(&x));
        }
        // Asked again at the same size: nothing to free, no resize.
        ix.shrink_to(ix.len() + 1, hr);
        assert!(!ix.resizing());
    }

    #[test]
    fn find_mut_changes_an_entry_in_either_table() {
        let mut ix = IdIndex::default();
        for id in 0..(INCREMENTAL as u32 * 2) {
            insert(&mut ix, id);
        }
        // Grow again and stop mid-resize.
        let mut id = INCREMENTAL as u32 * 2;
        while !ix.resizing() {
            insert(&mut ix, id);
            id += 1;
        }
        // Every id, moved or not, can be changed in place (same hash: the test's hash is
        // of the id, so change it to itself plus a marker bit the lookups ignore).
        for x in 0..id {
            let e = ix
                .find_mut(h(x), |&y| y & 0x7fff_ffff == x)
                .expect("present");
            *e |= 0x8000_0000;
        }
        for x in 0..id {
            assert_eq!(
                ix.find(h(x), |&y| y & 0x7fff_ffff == x),
                Some(&(x | 0x8000_0000))
            );
        }
    }

    /// The slowest single insert while an index grows to 2M entries of 16-byte members, in
    /// steps and (for comparison) as hashbrown resizes a table itself. A measurement, not a
    /// check: `cargo test --release -p chkv-datanode --lib -- --ignored --nocapture
    /// slowest_insert`.
    #[test]
    #[ignore]
    fn slowest_insert() {
        use std::hash::BuildHasher;
        use std::time::{Duration, Instant};
        let n = 2_000_000u32;
        let names: Vec<[u8; 16]> = (0..n)
            .map(|i| {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
                b
            })
            .collect();
        let hasher = foldhash::fast::RandomState::default();
        let rh = |id: u32| hasher.hash_one(names[id as usize]);
        for round in 0..2 {
            let t0 = Instant::now();
            let mut ix = IdIndex::default();
            let mut worst = Duration::ZERO;
            for id in 0..n {
                let t = Instant::now();
                ix.insert_unique(rh(id), id, |&x| rh(x));
                worst = worst.max(t.elapsed());
            }
            let stepped = (t0.elapsed(), worst);
            let t0 = Instant::now();
            let mut table = HashTable::new();
            let mut worst = Duration::ZERO;
            for id in 0..n {
                let t = Instant::now();
                table.insert_unique(rh(id), id, |&x| rh(x));
                worst = worst.max(t.elapsed());
            }
            let whole = (t0.elapsed(), worst);
            println!(
                "round {round}: in steps {:?} in all, slowest insert {:?}; hashbrown {:?}, slowest {:?}",
                stepped.0, stepped.1, whole.0, whole.1
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    proptest! {
        /// Against a model, across growths and shrinks (small ids make both common; the
        /// threshold is crossed by starting from a large table).
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(
            prop_oneof![
                (0u32..12_000).prop_map(Op::Insert),
                (0u32..12_000).prop_map(Op::Remove),
            ],
            0..4000,
        )) {
            let mut ix = IdIndex::default();
            let mut model = std::collections::BTreeSet::new();
            for id in 0..5_000u32 {
                insert(&mut ix, id);
                model.insert(id);
            }
            for op in ops {
                match op {
                    Op::Insert(id) => {
                        if model.insert(id) {
                            ix.insert_unique(h(id), id, hr);
                        }
                    }
                    Op::Remove(id) => {
                        let got = ix.remove(h(id), |&x| x == id, hr);
                        prop_assert_eq!(got.is_some(), model.remove(&id));
                    }
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for id in 0..12_000u32 {
                prop_assert_eq!(ix.find(h(id), |&x| x == id).is_some(), model.contains(&id));
            }
        }
    }
}
