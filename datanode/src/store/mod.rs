//! The in-memory store.
//!
//! Keys are grouped by their Redis Cluster slot: the store is 16384 small tables, each behind
//! its own lock. That one choice serves every later need of a cluster node:
//! - concurrency: two commands contend only when their keys share a slot;
//! - handoff: a slot's keys are found, counted and streamed without touching the others
//!   (CLUSTER COUNTKEYSINSLOT is O(1));
//! - SCAN: the cursor is (slot, position), so a key present for the whole scan is returned;
//! - sampling: active expiry and eviction pick random keys in O(1) without a full scan.
//!
//! Each slot table (`table`) is a hash table whose entries also have dense positions, with
//! a side list of the entries that carry a TTL, so expiry samples only keys that can expire,
//! like Redis's `expires` dict. Removal is `swap_remove` on positions, which keeps both O(1);
//! SCAN walks each table's positions from its end towards its start, the direction in which
//! `swap_remove` never moves an unvisited entry into the visited part.
//!
//! An entry's value is typed ([`Value`], see [`value`]): a string lives in the entry's own
//! block, as small as an untyped entry; a collection's own struct (a listpack's buffer
//! pointer and count, or a pointer to a large table) lives in the entry's block too, after
//! the key, so a small collection costs its key's block and its encoding's block, nothing
//! more. Commands read strings through [`EntryRef`] (`as_str`, and `as_hash`, `as_set` for
//! read-only collection access) and change collections through [`SlotGuard::modify`], which
//! keeps the memory accounting exact and answers [`WrongType`] for a key of another type.
//! A new type is a [`Kind`] and a [`Value`] variant in [`value`] (its structure in a file of
//! its own, like [`list`] and [`zset`]), its size in [`Value::heap_size`], and its encoding in
//! [`handoff`], the one serialization of an entry's value, versioned, for join and drain.
//!
//! Time is a parameter (`now`, milliseconds since the Unix epoch) everywhere, so tests drive
//! expiry without sleeping.
//!
//! Transactions: [`Db::lock_tx`] holds the slots of a whole EXEC, and [`Db::lock`] on that
//! thread hands the held slots out, so commands run inside EXEC unchanged. Every change to a
//! key ends in one "key modified" call, which tells whoever the slot's bitmaps say listens:
//! WATCHers ([`watch`]), blocked clients ([`BlockedSlots`], the ready hook: BLPOP and
//! friends) and client tracking ([`TrackedSlots`], the [`TrackSink`]).
//!
//! # Modules
//! - `table`: one slot's hash table with dense positions and its TTL list.
//! - `idindex`: a hash table resized in steps (`StepTable`): each slot's key table and the
//!   member index of large sets, hashes and sorted sets.
//! - [`value`]: typed values: strings, hashes and sets in their compact and table encodings.
//! - [`list`]: lists as a quicklist of listpack-format nodes.
//! - [`zset`]: sorted sets: a compact listpack-like block, or a slab, hash and counted B+ tree.
//! - `name`: members of large collections, inline up to 22 bytes, in chunked arrays.
//! - [`mem`]: memory accounting: what an allocation really costs the process.
//! - [`evict`]: `maxmemory` and its sampled eviction policies.
//! - [`glob`]: Redis's glob matching (KEYS, SCAN MATCH, CONFIG GET).
//! - [`watch`]: the "key modified" signal for WATCH.
//! - [`handoff`]: a slot copied out, entries loaded in, a slot dropped (join and drain).
//!
//! By concern, beside the types here (entries, slot tables, [`Db`], [`SlotGuard`]):
//! - `tx`: slot locking, for one command and for a whole transaction ([`Db::lock_tx`]);
//! - `keyspace`: walks over every slot: SCAN, KEYS, RANDOMKEY, active expiry;
//! - `guard`: a locked slot's reads and writes, and the signals each change sends.

pub mod evict;
pub mod glob;
mod guard;
pub mod handoff;
mod idindex;
mod keyspace;
pub mod list;
pub mod mem;
mod name;
mod table;
mod tx;
pub mod value;
pub mod watch;
pub mod zset;

pub use tx::{blocking_allowed, SlotBusy, TxLock};

use crate::striped::Counter;
use bytes::Bytes;
use chkv_common::{key_slot, SLOT_COUNT};
use parking_lot::{Mutex, MutexGuard};
use rand::Rng;
use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use table::{Bucket, KeyTable, Kv, Meta, Tag};
pub use watch::Watcher;

/// Longest string value (Redis's `proto-max-bulk-len` default).
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

pub use list::{End, List};
pub use value::{Collection, Hash, Kind, Limits, Member, Ref, Set, Value, ValueRef};
pub use zset::Zset;

/// A command met a key holding another type (the caller replies WRONGTYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongType;

/// Elements above which a deleted collection is freed in the background (Redis's
/// `LAZYFREE_THRESHOLD`).
pub const LAZYFREE_THRESHOLD: usize = 64;

/// No TTL.
pub const NO_EXPIRY: u64 = 0;
const NOT_VOLATILE: u32 = u32::MAX;

/// A read-only view of a live entry.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    kv: &'a Kv,
    expire_at: u64,
    access: u32,
}

impl<'a> EntryRef<'a> {
    /// The string value, or `None` when the value is of another type.
    #[inline]
    pub fn as_str(&self) -> Option<&'a [u8]> {
        (self.kv.tag() == Tag::Str).then(|| self.kv.value())
    }

    /// The collection, or `None` for a string.
    pub fn obj(&self) -> Option<ValueRef<'a>> {
        self.kv.obj()
    }

    /// The collection of type `T`, or `WrongType`.
    pub fn collection<T: Collection>(&self) -> Result<Ref<'a, T>, WrongType> {
        self.kv
            .obj()
            .and_then(ValueRef::collection::<T>)
            .ok_or(WrongType)
    }

    /// The hash, or WRONGTYPE.
    pub fn as_hash(&self) -> Result<Ref<'a, Hash>, WrongType> {
        self.collection::<Hash>()
    }

    /// The set, or WRONGTYPE.
    pub fn as_set(&self) -> Result<Ref<'a, Set>, WrongType> {
        self.collection::<Set>()
    }

    /// The value, copied.
    pub fn value(&self) -> Value {
        match self.kv.obj() {
            None => Value::str(self.kv.value()),
            Some(v) => (*v).clone(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.kv.tag() {
            Tag::Str => Kind::String,
            Tag::SetLp => Kind::Set,
            Tag::HashLp => Kind::Hash,
            Tag::ZsetLp => Kind::Zset,
            Tag::Obj => self.kv.obj().map_or(Kind::String, |v| v.kind()),
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// Absolute expiry in ms, if the key has a TTL.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != NO_EXPIRY).then_some(self.expire_at)
    }

    /// Last access on the store's clock, in seconds.
    pub fn access(&self) -> u32 {
        self.access
    }
}

/// Bytes charged to `used_memory` for an entry's key and string value (see [`mem`]); the
/// slot tables' arrays are charged separately, by capacity.
fn entry_mem(key: &[u8], value_len: usize) -> u64 {
    mem::entry_size(key.len(), value_len) as u64
}

/// Bytes charged for an entry: its block (for a collection, with the collection's own
/// struct in it) and everything a collection holds on the heap.
fn kv_mem(kv: &Kv) -> u64 {
    let own = mem::block_size(kv.block_len());
    (own + kv.obj().map_or(0, |v| v.heap_size())) as u64
}

/// Whether a collection is kept inline in its entry's block (see `table::inline_of`).
fn inline_kind(v: &Value) -> bool {
    matches!(
        v,
        Value::Set(Set::Listpack(_))
            | Value::Hash(Hash::Listpack(_))
            | Value::Zset(Zset::Listpack(_))
    )
}

/// The keys of one slot.
///
/// `repr(C)` with the key table first: a GET reads the slot's lock, the table and its hasher,
/// all in the slot's first cache line (the slots are 128-byte aligned, see [`Db`]); the
/// volatile list, the sketch and the accounting sit in the second.
#[derive(Default)]
#[repr(C)]
pub struct SlotTable {
    map: KeyTable,
    /// (position, expiry) of the entries that have a TTL.
    volatile: Vec<(u32, u64)>,
    /// Access frequencies, kept only under LFU eviction (see [`evict`]).
    sketch: evict::Sketch,
    /// The sketch's increments since it was last halved.
    sketch_ops: u32,
    /// Bytes charged to `used_memory` for this table's arrays (`mem::table_size`), in
    /// 8-byte words (every size class is a multiple of 8): a u32 keeps the slot in two cache
    /// lines and still counts up to 32 GiB of arrays, some 2 billion keys in one slot.
    table_mem_words: u32,
}

impl SlotTable {
    /// Bytes charged for this table's arrays.
    fn table_mem(&self) -> usize {
        self.table_mem_words as usize * 8
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    fn expire_of(&self, meta: Meta) -> u64 {
        if meta.vol_pos == NOT_VOLATILE {
            NO_EXPIRY
        } else {
            self.volatile[meta.vol_pos as usize].1
        }
    }

    fn kv_expired(&self, kv: &Kv, now: u64) -> bool {
        let at = self.expire_of(kv.meta());
        at != NO_EXPIRY && at <= now
    }

    /// Whether the entry at position `pos` has expired.
    fn expired_at(&self, pos: usize, now: u64) -> bool {
        self.map
            .get_at(pos)
            .is_some_and(|kv| self.kv_expired(kv, now))
    }

    fn entry(&self, b: Bucket) -> Option<EntryRef<'_>> {
        let kv = self.map.get(b)?;
        let m = kv.meta();
        Some(EntryRef {
            kv,
            expire_at: self.expire_of(m),
            access: m.access,
        })
    }

    /// Bytes charged for an entry: its block (with the collection's own struct, for a
    /// collection) and everything the collection holds.
    fn kv_mem(&self, kv: &Kv) -> u64 {
        kv_mem(kv)
    }

    /// The entry at position `pos`.
    fn entry_at(&self, pos: usize) -> Option<EntryRef<'_>> {
        self.entry(self.map.at(pos)?)
    }

    fn vol_remove(&mut self, vol_pos: u32) {
        let vp = vol_pos as usize;
        self.volatile.swap_remove(vp);
        if let Some(&(moved, _)) = self.volatile.get(vp) {
            if let Some(kv) = self.map.get_at_mut(moved as usize) {
                kv.set_vol_pos(vol_pos);
            }
        }
    }

    /// Removes the entry in bucket `b`, keeping the volatile list consistent.
    fn remove_bucket(&mut self, b: Bucket) -> Option<(Kv, u64)> {
        let meta = self.map.get(b)?.meta();
        let at = self.expire_of(meta);
        if meta.vol_pos != NOT_VOLATILE {
            self.vol_remove(meta.vol_pos);
        }
        let (kv, moved_vol) = self.map.remove(b)?;
        // The former last entry now sits at the removed entry's position.
        if let Some(vp) = moved_vol {
            self.volatile[vp as usize].0 = kv.pos() as u32;
        }
        Some((kv, at))
    }

    /// Sets the expiry of the entry in bucket `b` and keeps the volatile list in step.
    fn set_expire_bucket(&mut self, b: Bucket, at: u64) -> VolChange {
        let Some(kv) = self.map.get_mut(b) else {
            return VolChange::None;
        };
        let vp = kv.meta().vol_pos;
        match (vp != NOT_VOLATILE, at != NO_EXPIRY) {
            (false, true) => {
                kv.set_vol_pos(self.volatile.len() as u32);
                let pos = kv.pos() as u32;
                self.volatile.push((pos, at));
                VolChange::Added
            }
            (true, false) => {
                kv.set_vol_pos(NOT_VOLATILE);
                self.vol_remove(vp);
                VolChange::Removed
            }
            (true, true) => {
                self.volatile[vp as usize].1 = at;
                VolChange::None
            }
            (false, false) => VolChange::None,
        }
    }
}

/// How a TTL change moved an entry in or out of the volatile list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum VolChange {
    None,
    Added,
    Removed,
}

/// A fixed-size bitmap over slots, updated without locks.
struct SlotBits([AtomicU64; SLOT_COUNT / 64]);

impl SlotBits {
    fn new() -> SlotBits {
        SlotBits(std::array::from_fn(|_| AtomicU64::new(0)))
    }
    fn get(&self, slot: usize) -> bool {
        self.0[slot / 64].load(Relaxed) & (1u64 << (slot % 64)) != 0
    }
    fn set(&self, slot: usize, on: bool) {
        let bit = 1u64 << (slot % 64);
        if on {
            self.0[slot / 64].fetch_or(bit, Relaxed);
        } else {
            self.0[slot / 64].fetch_and(!bit, Relaxed);
        }
    }
    /// The first set slot at or after `from`.
    fn next(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        if word >= self.0.len() {
            return None;
        }
        let mut bits = self.0[word].load(Relaxed) & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word >= self.0.len() {
                return None;
            }
            bits = self.0[word].load(Relaxed);
        }
    }
    /// The first set slot at or after `from`, wrapping around.
    fn next_wrapping(&self, from: usize) -> Option<usize> {
        self.next(from).or_else(|| self.next(0))
    }
}

/// Store-wide counters, kept incrementally.
#[derive(Default)]
pub struct StoreStats {
    pub keys: Counter,
    pub volatile: Counter,
    pub used_memory: Counter,
    /// The part of `used_memory` taken by the slot tables' arrays (INFO's
    /// `used_memory_overhead`); the rest is the entries.
    pub table_memory: Counter,
    pub expired_keys: Counter,
    pub keyspace_hits: Counter,
    pub keyspace_misses: Counter,
    pub evicted_keys: Counter,
}

/// Why the store removed a key on its own (for keyspace notifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Expired,
    Evicted,
}

/// Told about every key the store removes on its own, with the key's slot locked: it must
/// not touch the store.
pub type RemovalHook = Box<dyn Fn(Removal, &[u8]) + Send + Sync>;

/// Told about every write to a key in a slot marked in [`BlockedSlots`] (clients blocked on
/// keys there), with the key's slot locked: it must not touch the store.
pub type ReadyHook = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The slots holding keys that clients are blocked on (BLPOP and friends): a write to a key
/// in a marked slot calls the store's [`ReadyHook`]. A write elsewhere pays one load. Set
/// under the slot's lock (by whoever registers a blocked client, holding the key's slot),
/// so no write to that slot can miss it.
pub struct BlockedSlots(SlotBits);

impl BlockedSlots {
    pub fn get(&self, slot: u16) -> bool {
        self.0.get(slot as usize)
    }

    pub fn set(&self, slot: u16, on: bool) {
        self.0.set(slot as usize, on)
    }
}

/// The slots with keys that CLIENT TRACKING clients read, and whether any client tracks
/// prefixes (BCAST): a write to a key calls the store's [`TrackSink`] when either is set; a
/// write elsewhere pays two loads. A slot's bit is set before the reader's read takes the
/// slot's lock, so a write that follows the read sees it.
pub struct TrackedSlots {
    bits: SlotBits,
    bcast: std::sync::atomic::AtomicBool,
}

impl TrackedSlots {
    #[inline]
    pub fn get(&self, slot: u16) -> bool {
        self.bits.get(slot as usize) || self.bcast.load(Relaxed)
    }

    /// Whether `slot` has tracked keys (whatever the prefixes).
    pub fn keyed(&self, slot: u16) -> bool {
        self.bits.get(slot as usize)
    }

    pub fn set(&self, slot: u16, on: bool) {
        self.bits.set(slot as usize, on)
    }

    /// Whether any client tracks prefixes (BCAST).
    #[inline]
    pub fn bcast(&self) -> bool {
        self.bcast.load(Relaxed)
    }

    pub fn set_bcast(&self, on: bool) {
        self.bcast.store(on, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Told about writes to keys in slots marked in [`TrackedSlots`] (client-side caching), with
/// the slot locked: it must not touch the store.
pub trait TrackSink: Send + Sync {
    /// `key` of `slot` changed (written, deleted, expired or evicted).
    fn key(&self, slot: u16, key: &[u8]);
    /// Every key of `slot` may have changed: the slot is leaving this node (`keys` lists its
    /// keys, for prefix trackers) or is being flushed (`None`).
    fn slot(&self, slot: u16, keys: Option<&mut dyn Iterator<Item = &[u8]>>);
}

/// One slot's lock and table, aligned to their two cache lines.
#[repr(align(128))]
#[derive(Default)]
struct SlotCell(Mutex<SlotTable>);

/// The whole store: one [`SlotTable`] per slot.
pub struct Db {
    slots: Box<[SlotCell]>,
    nonempty: SlotBits,
    has_volatile: SlotBits,
    /// Slots with watched keys: a write to a slot without its bit pays one load for the "key
    /// modified" signal (see [`watch`]). Set and read under the slot's lock.
    watched: SlotBits,
    /// The watched keys of the slots in `watched`. Taken after a slot's lock, never before.
    watches: Mutex<std::collections::HashMap<u16, watch::SlotWatches>>,
    pub stats: StoreStats,
    /// `maxmemory`, the eviction policy and its candidate pool.
    pub evict: evict::Evictor,
    expire_cursor: AtomicUsize,
    /// Start of the store's coarse clock (for access times).
    epoch_ms: u64,
    removal_hook: std::sync::OnceLock<RemovalHook>,
    /// Slots with blocked clients, shared with the registry of blocked clients.
    blocked: std::sync::Arc<BlockedSlots>,
    ready_hook: std::sync::OnceLock<ReadyHook>,
    /// Slots with tracked keys (client-side caching) and who is told of their writes.
    tracked: std::sync::Arc<TrackedSlots>,
    track_sink: std::sync::OnceLock<std::sync::Arc<dyn TrackSink>>,
    /// Collection encoding thresholds (`hash-max-listpack-entries`...).
    pub limits: value::SharedLimits,
    /// The lazyfree thread's queue, started on first use.
    lazy: std::sync::OnceLock<std::sync::mpsc::Sender<Value>>,
    /// Values sent to the lazyfree thread and not freed yet (INFO's
    /// `lazyfree_pending_objects`).
    lazy_pending: std::sync::Arc<AtomicUsize>,
    /// Lock holders that may keep slots for long (see [`Db::begin_long`]).
    long_holders: AtomicUsize,
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl Db {
    pub fn new() -> Db {
        Db {
            slots: (0..SLOT_COUNT).map(|_| SlotCell::default()).collect(),
            nonempty: SlotBits::new(),
            has_volatile: SlotBits::new(),
            watched: SlotBits::new(),
            watches: Mutex::new(Default::default()),
            stats: StoreStats::default(),
            evict: evict::Evictor::default(),
            expire_cursor: AtomicUsize::new(0),
            epoch_ms: CLOCK_EPOCH_MS,
            removal_hook: std::sync::OnceLock::new(),
            blocked: std::sync::Arc::new(BlockedSlots(SlotBits::new())),
            ready_hook: std::sync::OnceLock::new(),
            tracked: std::sync::Arc::new(TrackedSlots {
                bits: SlotBits::new(),
                bcast: Default::default(),
            }),
            track_sink: std::sync::OnceLock::new(),
            limits: Default::default(),
            lazy: Default::default(),
            lazy_pending: Default::default(),
            long_holders: AtomicUsize::new(0),
        }
    }

    /// Installs the hook told about expired and evicted keys (once; later calls are ignored).
    pub fn set_removal_hook(&self, hook: RemovalHook) {
        let _ = self.removal_hook.set(hook);
    }

    /// The slots with blocked clients (see [`BlockedSlots`]).
    pub fn blocked_slots(&self) -> std::sync::Arc<BlockedSlots> {
        self.blocked.clone()
    }

    /// Installs the hook told about writes to keys in [`BlockedSlots`] (once).
    pub fn set_ready_hook(&self, hook: ReadyHook) {
        let _ = self.ready_hook.set(hook);
    }

    /// The slots with tracked keys (see [`TrackedSlots`]).
    pub fn tracked_slots(&self) -> std::sync::Arc<TrackedSlots> {
        self.tracked.clone()
    }

    /// Installs who is told about writes to tracked keys (once).
    pub fn set_track_sink(&self, sink: std::sync::Arc<dyn TrackSink>) {
        let _ = self.track_sink.set(sink);
    }

    fn removed(&self, why: Removal, key: &[u8]) {
        if let Some(hook) = self.removal_hook.get() {
            hook(why, key);
        }
    }

    /// The collection encoding thresholds now in force.
    pub fn limits(&self) -> Limits {
        self.limits.load()
    }

    /// Drops values off the request path, like Redis's lazyfree: a collection of more than
    /// [`LAZYFREE_THRESHOLD`] elements goes to a background thread (freeing a million
    /// members takes milliseconds), smaller ones are dropped here.
    pub fn free_later(&self, values: impl IntoIterator<Item = Value>) {
        for v in values {
            if v.len() <= LAZYFREE_THRESHOLD {
                continue;
            }
            let tx = self.lazy.get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel::<Value>();
                let pending = self.lazy_pending.clone();
                let spawned = std::thread::Builder::new()
                    .name("chkv-lazyfree".into())
                    .spawn(move || {
                        while let Ok(v) = rx.recv() {
                            drop(v);
                            pending.fetch_sub(1, Relaxed);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("lazyfree thread: {e}; freeing inline");
                }
                tx
            });
            // When the thread could not start, the send fails and the value drops here.
            self.lazy_pending.fetch_add(1, Relaxed);
            if tx.send(v).is_err() {
                self.lazy_pending.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Values handed to the lazyfree thread that it has not freed yet.
    pub fn lazyfree_pending(&self) -> usize {
        self.lazy_pending.load(Relaxed)
    }

    /// Number of keys (including expired keys not yet reclaimed, like Redis's DBSIZE).
    pub fn len(&self) -> u64 {
        self.stats.keys.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys with a TTL.
    pub fn volatile_len(&self) -> u64 {
        self.stats.volatile.get()
    }

    /// Bytes the store accounts for its keys and values.
    pub fn used_memory(&self) -> u64 {
        self.stats.used_memory.get()
    }

    /// Number of keys in `slot`.
    pub fn slot_len(&self, slot: u16) -> usize {
        self.slots[slot as usize].0.lock().len()
    }

    /// Removes every key.
    pub fn flush(&self) {
        for s in 0..SLOT_COUNT {
            let mut g = self.lock(s as u16);
            g.clear();
        }
    }

    /// Seconds on the store's coarse clock at `now` (for access times).
    pub fn clock_secs(&self, now: u64) -> u32 {
        (now.saturating_sub(self.epoch_ms) / 1000) as u32
    }
}

/// Start of the store's access clock: 2020-01-01 UTC. A fixed point rather than the
/// process start, so that time given as a parameter (tests) works the same; u32 seconds from
/// it last until 2156.
const CLOCK_EPOCH_MS: u64 = 1_577_836_800_000;

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> u64 {
    crate::clock::unix_ms()
}

/// A locked slot. Every change goes through it so the store's counters stay exact.
pub struct SlotGuard<'a> {
    db: &'a Db,
    slot: usize,
    t: ManuallyDrop<MutexGuard<'a, SlotTable>>,
    /// A guard on a lock a transaction holds: dropping it must not unlock.
    borrowed: bool,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if !self.borrowed {
            // SAFETY: dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.t) }
        }
    }
}

/// Several slots locked together, in slot order.
pub struct MultiGuard<'a> {
    guards: Vec<SlotGuard<'a>>,
}

impl<'a> MultiGuard<'a> {
    /// The guard of `key`'s slot. Panics if that slot was not locked (a caller bug).
    pub fn slot_of(&mut self, key: &[u8]) -> &mut SlotGuard<'a> {
        let s = key_slot(key) as usize;
        let i = self
            .guards
            .binary_search_by_key(&s, |g| g.slot)
            .unwrap_or_else(|_| panic!("slot {s} not locked"));
        &mut self.guards[i]
    }
}

#[cfg(test)]
mod tests;
