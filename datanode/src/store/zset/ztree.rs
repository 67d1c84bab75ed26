//! The large encoding ([`ZTree`]): slab, member index and B+ tree together.

use super::*;

/// Members moved down the slab per member removed while it compacts (see [`ZTree::compact`]).
const COMPACT_STEP: usize = 2;
/// Slab slots in use per member above which the slab compacts.
const COMPACT_AT: usize = 8;
/// Members removed at once (ZPOPMIN with a count, ZREMRANGEBYSCORE...) from which the slab
/// compacts down to 2 slots a member.
const COMPACT_BATCH: usize = 64;

/// The large encoding (see the module docs).
#[derive(Default)]
pub struct ZTree {
    pub(super) slab: Slab,
    index: IdIndex,
    hasher: Hasher,
    pub(super) tree: Tree,
}

impl std::fmt::Debug for ZTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        self.tree.visit(0, self.len(), false, &mut |s, id| {
            l.entry(&(self.slab.slot(id).name.clone(), s));
        });
        l.finish()
    }
}

impl Clone for ZTree {
    fn clone(&self) -> Self {
        let mut items = Vec::with_capacity(self.len());
        self.for_each(0, self.len(), false, |m, s| items.push((m.to_vec(), s)));
        ZTree::from_sorted(items.iter().map(|(m, s)| (&m[..], *s)))
    }
}

impl PartialEq for ZTree {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && {
            let mut same = true;
            self.tree.visit(0, self.len(), false, &mut |s, id| {
                same &= o.score(self.slab.name(id)) == Some(s);
            });
            same
        }
    }
}

impl ZTree {
    pub fn len(&self) -> usize {
        self.slab.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        alloc_size(std::mem::size_of::<ZTree>())
            + self.slab.heap_size()
            + self.index.allocation_size()
            + self.tree.heap_size()
    }

    #[inline]
    fn hash(&self, m: &[u8]) -> u64 {
        self.hasher.hash_one(m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(self.hash(m), |&id| slab.name(id) == m)
            .copied()
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|id| self.slab.score(id))
    }

    /// Sets `m`'s score; the previous score when it was there.
    pub fn insert(&mut self, m: &[u8], s: f64) -> Option<f64> {
        if let Some(id) = self.find(m) {
            let old = self.slab.score(id);
            if old != s {
                self.tree.remove(&self.slab, old, id);
                self.slab.slot_mut(id).score = s;
                self.tree.insert(&self.slab, s, id);
            }
            return Some(old);
        }
        let h = self.hash(m);
        let id = self.slab.alloc(Name::new(m), s);
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index
            .insert_unique(h, id, |&i| hasher.hash_one(slab.name(i)));
        self.tree.insert(&self.slab, s, id);
        None
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let h = self.hash(m);
        let (slab, hasher) = (&self.slab, &self.hasher);
        let id = self.index.remove(
            h,
            |&id| slab.name(id) == m,
            |&i| hasher.hash_one(slab.name(i)),
        )?;
        let s = self.slab.score(id);
        self.tree.remove(&self.slab, s, id);
        self.slab.release(id);
        self.compact(COMPACT_STEP, COMPACT_AT);
        Some(s)
    }

    /// Gives the slab's memory back after removals, a few members at a time, instead of
    /// rebuilding the set (which stalled a ZPOPMIN on a set of 2M members for 120 ms).
    ///
    /// Once more than `at` slab slots a member are in use, each removal moves up to
    /// [`COMPACT_STEP`] members (`budget` in all) from the top of the slab into free slots
    /// below (their index entry and tree entry follow), and the emptied top is cut off. A
    /// move fills a free slot and frees the top one, which goes: so the free slots fall by
    /// one a move, and at two a removal the slab stays within `at` slots (32 bytes each) a
    /// member. Free slots are reused by inserts first; the index resizes itself, in steps.
    ///
    /// `at` is [`COMPACT_AT`] for single removals: a move costs a tree descent and an index
    /// probe, so a later start means fewer moves (a set emptied by pops moves about an
    /// eighth of its members; compacting at half free moved half of them and cost ZPOPMIN
    /// at pipeline 16 a quarter of its throughput). A removal of at least [`COMPACT_BATCH`]
    /// members at once, whose own work is of the order of the moves, compacts to 2.
    ///
    /// Members only ever move to lower ids, which ZSCAN relies on (see [`ZTree::scan`]).
    fn compact(&mut self, budget: usize, at: usize) {
        for _ in 0..budget {
            let high = self.slab.high();
            if high <= CHUNK || self.len() * at >= high {
                return;
            }
            // The top slot is live (the slab cuts free slots off its end).
            let top = (high - 1) as u32;
            let Some(to) = self.slab.take_free() else {
                return;
            };
            let s = self.slab.score(top);
            let h = self.hasher.hash_one(self.slab.name(top));
            self.index.rename(h, top, to);
            self.tree.set_id(&self.slab, s, top, to);
            self.slab.move_slot(top, to);
        }
    }

    fn index_all(&mut self) {
        let (slab, hasher) = (&self.slab, &self.hasher);
        let mut index = IdIndex::with_capacity(slab.live);
        for c in 0..slab.chunks.len() {
            for i in 0..slab.chunks[c].len() {
                let id = (c * CHUNK + i) as u32;
                index.insert_unique(hasher.hash_one(slab.name(id)), id, |&i| {
                    hasher.hash_one(slab.name(i))
                });
            }
        }
        self.index = index;
    }

    /// A tree of members given in order, each once.
    pub fn from_sorted<'a>(items: impl IntoIterator<Item = (&'a [u8], f64)>) -> ZTree {
        let mut out = ZTree::default();
        let mut sorted = Vec::new();
        for (m, s) in items {
            sorted.push((s, out.slab.alloc(Name::new(m), s)));
        }
        out.index_all();
        out.tree = build_tree(&out.slab, &sorted);
        out
    }

    /// 0-based rank and score of `m`.
    pub fn rank(&self, m: &[u8]) -> Option<(usize, f64)> {
        let id = self.find(m)?;
        let s = self.slab.score(id);
        self.tree.rank(&self.slab, s, id).map(|r| (r, s))
    }

    pub fn get(&self, r: usize) -> Option<(&[u8], f64)> {
        let (s, id) = self.tree.select(r)?;
        Some((self.slab.name(id), s))
    }

    pub fn partition_score(&self, pred: impl Fn(f64) -> bool) -> usize {
        self.tree.partition_score(pred)
    }

    pub fn partition_elem(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        self.tree.partition_elem(&self.slab, pred)
    }

    pub fn for_each(&self, lo: usize, hi: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let slab = &self.slab;
        self.tree
            .visit(lo, hi, rev, &mut |s, id| f(slab.name(id), s));
    }

    /// Removes the elements of ranks `lo..hi`.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> usize {
        let victims = self.entries(lo, hi, false);
        self.remove_all(&victims);
        victims.len()
    }

    /// Removes up to `count` elements from the low end (the high end with `max`) and returns
    /// them in the order popped: what ZPOPMIN and ZPOPMAX take, each off the edge of the
    /// tree without a search.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Vec<u8>, f64)> {
        let k = count.min(self.len());
        let mut out = Vec::with_capacity(k);
        for _ in 0..k {
            let Some((s, id)) = self.tree.pop_edge(&self.slab, max) else {
                break;
            };
            out.push((self.forget(id).bytes().to_vec(), s));
        }
        self.compacted(out.len());
        out
    }

    /// The (score, id) entries of ranks `lo..hi` (clamped to the set), in rank order or,
    /// with `rev`, from the highest.
    fn entries(&self, lo: usize, hi: usize, rev: bool) -> Vec<(f64, u32)> {
        let hi = hi.min(self.len());
        let mut out = Vec::with_capacity(hi.saturating_sub(lo));
        if lo < hi {
            self.tree.visit(lo, hi, rev, &mut |s, id| out.push((s, id)));
        }
        out
    }

    /// Removes these (score, id) entries, found by a walk of the tree, from the tree, the
    /// index and the slab (none: nothing changes, not even the capacity).
    fn remove_all(&mut self, victims: &[(f64, u32)]) {
        if victims.is_empty() {
            return;
        }
        for &(s, id) in victims {
            self.tree.remove(&self.slab, s, id);
            self.forget(id);
        }
        self.compacted(victims.len());
    }

    /// Takes member `id`, out of the tree already, out of the index and the slab; its name.
    fn forget(&mut self, id: u32) -> Name {
        let (slab, hasher) = (&self.slab, &self.hasher);
        let h = hasher.hash_one(slab.name(id));
        self.index
            .remove(h, |&x| x == id, |&i| hasher.hash_one(slab.name(i)));
        self.slab.release(id)
    }

    /// Compacts after `removed` members went at once: a removal of many pays for
    /// compacting further.
    fn compacted(&mut self, removed: usize) {
        let at = if removed >= COMPACT_BATCH {
            2
        } else {
            COMPACT_AT
        };
        self.compact(removed.saturating_mul(COMPACT_STEP), at);
    }

    /// One step of a scan over slot ids from `cursor` (0: the start) downwards: the members
    /// of up to `count` slots and the next cursor (0 when done). A member keeps its id or
    /// moves to a lower one (`ZTree::compact`), never to a higher one, so a member present
    /// for the whole scan is returned: it moves only from above the cursor to below it.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let high = self.slab.high();
        let hi = if cursor == 0 {
            high
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(high)
        };
        let lo = hi.saturating_sub(count);
        for id in (lo..hi).rev() {
            let slot = self.slab.slot(id as u32);
            if !slot.score.is_nan() {
                f(slot.name.bytes(), slot.score);
            }
        }
        lo as u64
    }
}
