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
//! - [`value`]: typed values: strings, hashes and sets in their compact and table encodings.
//! - [`list`]: lists as a quicklist of listpack-format nodes.
//! - [`zset`]: sorted sets: a compact listpack-like block, or a slab, hash and counted B+ tree.
//! - `name`: members of large collections, inline up to 22 bytes, in chunked arrays.
//! - [`mem`]: memory accounting: what an allocation really costs the process.
//! - [`evict`]: `maxmemory` and its sampled eviction policies.
//! - [`glob`]: Redis's glob matching (KEYS, SCAN MATCH, CONFIG GET).
//! - [`watch`]: the "key modified" signal for WATCH.
//! - [`handoff`]: a slot copied out, entries loaded in, a slot dropped (join and drain).

pub mod evict;
pub mod glob;
pub mod handoff;
pub mod list;
pub mod mem;
mod name;
mod table;
pub mod value;
pub mod watch;
pub mod zset;

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

    /// Locks the slot `slot`.
    ///
    /// While a transaction on this thread holds the slot ([`Db::lock_tx`]), this returns a
    /// guard on the already held lock instead of waiting for it: the commands that EXEC
    /// runs lock their keys as they always do and get the transaction's locks.
    pub fn lock(&self, slot: u16) -> SlotGuard<'_> {
        let held = HELD.with(|h| h.get());
        if !held.is_null() {
            if let Some(g) = self.reuse_held(held, slot) {
                return g;
            }
        }
        SlotGuard {
            db: self,
            slot: slot as usize,
            t: ManuallyDrop::new(self.lock_cell(slot as usize)),
            borrowed: false,
        }
    }

    /// Locks one slot's mutex. Uncontended, this is the mutex's own fast path; when another
    /// thread holds it, see [`Db::lock_contended`].
    #[inline]
    fn lock_cell(&self, slot: usize) -> MutexGuard<'_, SlotTable> {
        match self.slots[slot].0.try_lock() {
            Some(g) => g,
            None => self.lock_contended(slot),
        }
    }

    /// Waits for a slot another thread holds. While a long holder (a script that has run
    /// past its first milliseconds, see [`Db::begin_long`]) may be the one holding it, the
    /// wait happens off the async runtime's worker (`block_in_place`): a worker blocked
    /// here for the whole of a script would otherwise stop serving every other connection it
    /// carries, SCRIPT KILL included.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self, slot: usize) -> MutexGuard<'_, SlotTable> {
        let mutex = &self.slots[slot].0;
        if self.long_holders.load(Relaxed) > 0 && blocking_allowed() {
            tokio::task::block_in_place(|| mutex.lock())
        } else {
            mutex.lock()
        }
    }

    /// Marks the start of a lock holder that may keep its slots for long (a script past its
    /// first milliseconds): until the matching [`Db::end_long`], threads that wait for a
    /// slot do it off the runtime's workers.
    pub fn begin_long(&self) {
        self.long_holders.fetch_add(1, Relaxed);
    }

    /// The end of what [`Db::begin_long`] began.
    pub fn end_long(&self) {
        self.long_holders.fetch_sub(1, Relaxed);
    }

    #[cold]
    fn reuse_held(&self, held: *const Held, slot: u16) -> Option<SlotGuard<'_>> {
        // SAFETY: `HELD` points at the `Held` of a `TxLock` alive on this thread's stack; the
        // lock clears it before that value goes away.
        let held = unsafe { &*held };
        if !std::ptr::eq(held.db, self) || !held.holds(slot) {
            return None;
        }
        // SAFETY: this thread locked the slot's mutex in `lock_tx` and keeps it until the
        // `TxLock` drops; the guard made here is never unlocked (`borrowed`). A handler never
        // holds two guards of one slot at once (it would deadlock without a transaction too),
        // so the table is borrowed mutably by one guard at a time.
        let t = unsafe { self.slots[slot as usize].0.make_guard_unchecked() };
        Some(SlotGuard {
            db: self,
            slot: slot as usize,
            t: ManuallyDrop::new(t),
            borrowed: true,
        })
    }

    /// Locks the slots a transaction (EXEC, a script) touches, for as long as the returned
    /// value lives: `Some(slots)` in any order, or `None` for every slot (a transaction
    /// with FLUSHALL, KEYS, CONFIG...). Slots are taken in ascending order, the one global
    /// order, so this never deadlocks with multi-key commands or other transactions.
    ///
    /// While it lives, [`Db::lock`] on this thread hands out the held slots (see there), so
    /// commands run inside the transaction exactly as outside it. A handler must only lock
    /// slots of keys at its command's key positions (the same rule cluster routing relies
    /// on): another slot would be locked out of order. Called while a transaction is already
    /// running on this thread (a script inside EXEC), it locks nothing more.
    pub fn lock_tx(&self, slots: Option<Vec<u16>>) -> TxLock<'_> {
        if !HELD.with(|h| h.get()).is_null() {
            return TxLock {
                db: self,
                held: None,
            };
        }
        let held = Box::new(match slots {
            None => {
                for s in 0..SLOT_COUNT {
                    std::mem::forget(self.lock_cell(s));
                }
                Held {
                    db: self,
                    all: Cell::new(true),
                    slots: RefCell::new(Vec::new()),
                }
            }
            Some(mut slots) => {
                slots.sort_unstable();
                slots.dedup();
                slots.retain(|&s| (s as usize) < SLOT_COUNT);
                for &s in &slots {
                    std::mem::forget(self.lock_cell(s as usize));
                }
                Held {
                    db: self,
                    all: Cell::new(false),
                    slots: RefCell::new(slots),
                }
            }
        });
        HELD.with(|h| h.set(&*held));
        TxLock {
            db: self,
            held: Some(held),
        }
    }

    /// Adds slots to the transaction this thread holds ([`Db::lock_tx`]): `Some(slots)`, or
    /// `None` for every slot. For a script that reaches keys it did not declare: it holds
    /// its declared slots and takes the others as it goes, keeping them to its end.
    ///
    /// Taking locks out of the global ascending order could deadlock, so this waits only for
    /// a slot above every slot the thread holds (that is the ascending order); a lower slot
    /// is only tried, and retried for at most `patience` while its holder finishes. If the
    /// holder does not let go (it may be waiting for one of ours), this gives up with
    /// [`SlotBusy`] and the caller fails the command: the transaction never deadlocks.
    /// Slots taken before giving up stay held until the transaction ends. Without a
    /// transaction on this thread there is nothing to add to, and this returns at once.
    pub fn lock_more(&self, slots: Option<&[u16]>, patience: Duration) -> Result<(), SlotBusy> {
        let held = HELD.with(|h| h.get());
        if held.is_null() {
            return Ok(());
        }
        // SAFETY: `HELD` points at the `Held` of a `TxLock` alive on this thread's stack.
        let held = unsafe { &*held };
        if !std::ptr::eq(held.db, self) || held.all.get() {
            return Ok(());
        }
        // The common case, a script's command on its declared keys: nothing to add.
        if slots.is_some_and(|s| s.iter().all(|&s| held.holds(s))) {
            return Ok(());
        }
        let mut wanted: Vec<u16> = match slots {
            Some(s) => s
                .iter()
                .copied()
                .filter(|&s| (s as usize) < SLOT_COUNT)
                .collect(),
            None => (0..SLOT_COUNT as u16).collect(),
        };
        wanted.sort_unstable();
        wanted.dedup();
        let deadline = Instant::now() + patience;
        for s in wanted {
            if held.holds(s) {
                continue;
            }
            let above_all = held.slots.borrow().last().is_none_or(|&max| s > max);
            let guard = if above_all {
                self.lock_cell(s as usize)
            } else {
                self.try_lock_until(s as usize, deadline)
                    .ok_or(SlotBusy(s))?
            };
            std::mem::forget(guard);
            let mut v = held.slots.borrow_mut();
            let at = v.partition_point(|&x| x < s);
            v.insert(at, s);
        }
        if slots.is_none() {
            held.slots.borrow_mut().clear();
            held.all.set(true);
        }
        Ok(())
    }

    /// Tries to lock `slot` until `deadline`, waiting in short steps (off the runtime's
    /// worker when a long holder is about).
    fn try_lock_until(&self, slot: usize, deadline: Instant) -> Option<MutexGuard<'_, SlotTable>> {
        let mutex = &self.slots[slot].0;
        if let Some(g) = mutex.try_lock() {
            return Some(g);
        }
        let wait = || loop {
            if let Some(g) = mutex.try_lock_for(Duration::from_millis(1)) {
                return Some(g);
            }
            if Instant::now() >= deadline {
                return None;
            }
        };
        if self.long_holders.load(Relaxed) > 0 && blocking_allowed() {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        }
    }

    /// Keys with at least one watcher (WATCH), over all slots.
    pub fn watched_keys(&self) -> usize {
        self.watches.lock().values().map(|w| w.len()).sum()
    }

    /// Whether a transaction holds slots on this thread.
    pub fn in_tx() -> bool {
        !HELD.with(|h| h.get()).is_null()
    }

    /// Locks the slot of `key`.
    pub fn lock_key(&self, key: &[u8]) -> SlotGuard<'_> {
        self.lock(key_slot(key))
    }

    /// Locks the slots of all `keys` at once, in ascending slot order (the one global lock
    /// order, so multi-key commands never deadlock), for commands that must be atomic across
    /// keys (MSET, RENAME, ...).
    pub fn lock_keys<'a, I>(&self, keys: I) -> MultiGuard<'_>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut slots: Vec<u16> = keys.into_iter().map(key_slot).collect();
        slots.sort_unstable();
        slots.dedup();
        MultiGuard {
            guards: slots.into_iter().map(|s| self.lock(s)).collect(),
        }
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

    /// One SCAN step from `cursor`: examines about `count` entries and returns the next cursor
    /// (0 when done) and the keys that `filter` (given key and type name) accepts. Expired
    /// keys are reclaimed, not returned.
    ///
    /// Cursor layout: slot in bits 32.., and in the low 32 bits `u32::MAX - c`, where `c` is the
    /// number of the slot's entries still to visit (positions `0..c`); 0 means "slot start".
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: u64,
        mut filter: impl FnMut(&[u8], &'static str) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let mut slot = (cursor >> 32) as usize;
        let mut lo = cursor as u32;
        let mut out = Vec::new();
        let mut examined = 0;
        let count = count.max(1);
        loop {
            if slot >= SLOT_COUNT {
                return (0, out);
            }
            if lo == 0 {
                match self.nonempty.next(slot) {
                    Some(s) => slot = s,
                    None => return (0, out),
                }
            }
            let mut g = self.lock(slot as u16);
            let mut c = if lo == 0 {
                g.len()
            } else {
                ((u32::MAX - lo) as usize).min(g.len())
            };
            while c > 0 && examined < count {
                c -= 1;
                examined += 1;
                if g.t.expired_at(c, now) {
                    g.remove_at(c, true);
                    continue;
                }
                if let Some(e) = g.t.entry_at(c) {
                    let key = e.kv.key();
                    if filter(key, e.type_name()) {
                        out.push(Bytes::copy_from_slice(key));
                    }
                }
            }
            drop(g);
            if c > 0 {
                return (((slot as u64) << 32) | (u32::MAX - c as u32) as u64, out);
            }
            slot += 1;
            lo = 0;
            if slot >= SLOT_COUNT {
                return (0, out);
            }
            if examined >= count {
                return ((slot as u64) << 32, out);
            }
        }
    }

    /// Every live key that `filter` accepts (KEYS).
    pub fn keys(&self, now: u64, mut filter: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut slot = 0;
        while let Some(s) = self.nonempty.next(slot) {
            let g = self.lock(s as u16);
            for kv in g.t.map.iter() {
                if !g.t.kv_expired(kv, now) && filter(kv.key()) {
                    out.push(Bytes::copy_from_slice(kv.key()));
                }
            }
            slot = s + 1;
        }
        out
    }

    /// A random live key (RANDOMKEY), reclaiming expired keys it meets.
    pub fn random_key(&self, now: u64, rng: &mut impl Rng) -> Option<Bytes> {
        for _ in 0..100 {
            let s = self
                .nonempty
                .next_wrapping(rng.random_range(0..SLOT_COUNT))?;
            let mut g = self.lock(s as u16);
            if g.is_empty() {
                continue;
            }
            let idx = rng.random_range(0..g.len());
            if g.t.expired_at(idx, now) {
                g.remove_at(idx, true);
                continue;
            }
            return g
                .t
                .map
                .get_at(idx)
                .map(|kv| Bytes::copy_from_slice(kv.key()));
        }
        None
    }

    /// One round of active expiry: visits slots holding keys with a TTL, from where the last
    /// round stopped, and checks up to `max_checks` of those keys, sampling at random in slots
    /// with many of them. Returns (checked, expired).
    pub fn active_expire(&self, now: u64, max_checks: usize, rng: &mut impl Rng) -> (usize, usize) {
        const SAMPLE: usize = 20;
        let (mut checked, mut expired) = (0, 0);
        let start = self.expire_cursor.load(Relaxed) % SLOT_COUNT;
        let mut slot = start;
        let mut wrapped = false;
        while checked < max_checks {
            let Some(s) = self.has_volatile.next(slot) else {
                if wrapped {
                    break;
                }
                wrapped = true;
                slot = 0;
                continue;
            };
            if wrapped && s >= start {
                break;
            }
            let mut g = self.lock(s as u16);
            if g.t.volatile.len() <= SAMPLE {
                // Few keys: check them all (backwards, so removals do not skip any).
                let mut i = g.t.volatile.len();
                while i > 0 {
                    i -= 1;
                    checked += 1;
                    let (idx, at) = g.t.volatile[i];
                    if at <= now {
                        g.remove_at(idx as usize, true);
                        expired += 1;
                    }
                    i = i.min(g.t.volatile.len());
                }
            } else {
                // Many keys: sample, and keep sampling while a quarter or more were expired.
                loop {
                    let mut found = 0;
                    for _ in 0..SAMPLE {
                        if g.t.volatile.is_empty() {
                            break;
                        }
                        checked += 1;
                        let pos = rng.random_range(0..g.t.volatile.len());
                        let (idx, at) = g.t.volatile[pos];
                        if at <= now {
                            g.remove_at(idx as usize, true);
                            found += 1;
                        }
                    }
                    expired += found;
                    if found * 4 < SAMPLE || checked >= max_checks {
                        break;
                    }
                }
            }
            drop(g);
            slot = s + 1;
            if slot >= SLOT_COUNT {
                if wrapped {
                    break;
                }
                wrapped = true;
                slot = 0;
            }
        }
        self.expire_cursor.store(slot, Relaxed);
        (checked, expired)
    }
}

/// Start of the store's access clock: 2020-01-01 UTC. A fixed point rather than the
/// process start, so that time given as a parameter (tests) works the same; u32 seconds from
/// it last until 2156.
const CLOCK_EPOCH_MS: u64 = 1_577_836_800_000;

/// The slots a [`TxLock`] holds. Only its own thread reads or changes it (through `HELD`);
/// [`Db::lock_more`] adds slots while the transaction runs.
struct Held {
    db: *const Db,
    all: Cell<bool>,
    /// Sorted, when not `all`.
    slots: RefCell<Vec<u16>>,
}

impl Held {
    fn holds(&self, slot: u16) -> bool {
        self.all.get() || self.slots.borrow().binary_search(&slot).is_ok()
    }
}

/// [`Db::lock_more`] gave up on a slot another thread kept holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("slot {0} is held by another transaction")]
pub struct SlotBusy(pub u16);

/// Whether this thread may hand its async runtime worker over and block
/// (`tokio::task::block_in_place`): on a worker of a multi-threaded runtime, or on any
/// thread of one (where it simply runs). Not on a current-thread runtime, where it would
/// panic; there the wait blocks as it always did.
pub fn blocking_allowed() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

thread_local! {
    /// The transaction holding slots on this thread, or null. Read by every [`Db::lock`]:
    /// a constant-initialised `Cell` is one thread-local load.
    static HELD: Cell<*const Held> = const { Cell::new(std::ptr::null()) };
}

/// Slots locked for a transaction ([`Db::lock_tx`]); unlocked on drop.
pub struct TxLock<'a> {
    db: &'a Db,
    held: Option<Box<Held>>,
}

impl Drop for TxLock<'_> {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        HELD.with(|h| h.set(std::ptr::null()));
        let unlock = |s: usize| {
            // SAFETY: `lock_tx` (or `lock_more`) locked this mutex on this thread and forgot
            // the guard; no guard handed out since is alive (they borrow from `self`).
            unsafe { self.db.slots[s].0.force_unlock() }
        };
        if held.all.get() {
            (0..SLOT_COUNT).for_each(unlock);
        } else {
            held.slots.borrow().iter().for_each(|&s| unlock(s as usize));
        }
    }
}

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

impl SlotGuard<'_> {
    pub fn slot(&self) -> u16 {
        self.slot as u16
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Bucket of the live entry for `key`, reclaiming it first if it has expired.
    fn live(&mut self, key: &[u8], now: u64) -> Option<Bucket> {
        let b = self.t.map.find(key)?;
        if self
            .t
            .map
            .get(b)
            .is_some_and(|kv| self.t.kv_expired(kv, now))
        {
            self.remove_bucket(b, true);
            return None;
        }
        Some(b)
    }

    /// The live entry for `key`, touching its access time. Counts a hit or a miss.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<EntryRef<'_>> {
        // Misses count too: LFU eviction remembers how popular absent keys are.
        self.count_access(key);
        let db = self.db;
        match self.live(key, now) {
            Some(b) => {
                db.stats.keyspace_hits.add(1);
                if let Some(kv) = self.t.map.get_mut(b) {
                    kv.set_access(db.touched_access(kv.meta().access, now));
                }
                self.t.entry(b)
            }
            None => {
                self.db.stats.keyspace_misses.add(1);
                None
            }
        }
    }

    /// The live entry for `key` without counting a hit or miss or touching it (writes,
    /// EXISTS, TTL, TYPE...).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<EntryRef<'_>> {
        let b = self.live(key, now)?;
        self.t.entry(b)
    }

    /// Whether a live `key` exists.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.live(key, now).is_some()
    }

    /// Stores `value` under `key` with expiry `expire_at` ([`NO_EXPIRY`] for none), replacing
    /// any previous entry. Returns whether a live entry was replaced.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64, now: u64) -> bool {
        if let Value::Str(bytes) = &value {
            return self.set_str(key, bytes, expire_at, now);
        }
        let replaced = self.set_obj(key, value, expire_at, now);
        self.modified(key);
        replaced
    }

    /// Sets the expiry of the live entry in bucket `b`, keeping the volatile list and the
    /// table memory (the list may have grown) in step.
    fn reset_expire(&mut self, b: Bucket, expire_at: u64) {
        let change = self.t.set_expire_bucket(b, expire_at);
        self.volatile_changed(change);
        if change == VolChange::Added {
            self.sync_table_mem();
        }
    }

    fn set_obj(&mut self, key: &[u8], value: Value, expire_at: u64, now: u64) -> bool {
        self.count_access(key);
        let db = self.db;
        match self.live(key, now) {
            Some(b) => {
                if !self.put_value(b, value, now) {
                    return false;
                }
                self.reset_expire(b, expire_at);
                true
            }
            None => {
                let meta = Meta {
                    vol_pos: NOT_VOLATILE,
                    access: db.new_access(now),
                };
                let kv = Kv::new_obj(key, value, meta);
                let mem = kv_mem(&kv);
                self.insert_entry(kv, mem, expire_at, now);
                false
            }
        }
    }

    /// Adds a new entry charged `mem` bytes (the key must not be live).
    fn insert_entry(&mut self, kv: Kv, mem: u64, expire_at: u64, now: u64) {
        let b = self.t.map.insert_new(kv);
        let stats = &self.db.stats;
        stats.keys.add(1);
        stats.used_memory.add(mem);
        if self.t.map.len() == 1 {
            self.db.nonempty.set(self.slot, true);
        }
        let change = self.t.set_expire_bucket(b, expire_at);
        self.volatile_changed(change);
        self.sync_table_mem();
        self.offer_new(b, now);
    }

    /// Puts any `value` in place of the value in bucket `b`, keeping the key, its position and
    /// TTL, and counting an access. Returns false when the bucket is empty.
    fn put_value(&mut self, b: Bucket, value: Value, now: u64) -> bool {
        let db = self.db;
        let Some(kv) = self.t.map.get(b) else {
            return false;
        };
        let old_mem = self.t.kv_mem(kv);
        let t = &mut **self.t;
        let Some(kv) = t.map.get_mut(b) else {
            return false;
        };
        let old = match value {
            Value::Str(bytes) => {
                let old = kv.take_obj();
                kv.set_str(&bytes);
                old
            }
            v => kv.set_obj(v),
        };
        kv.set_access(db.touched_access(kv.meta().access, now));
        let Some(kv) = t.map.get(b) else {
            return false;
        };
        let new_mem = t.kv_mem(kv);
        self.adjust_mem(old_mem, new_mem);
        drop(old);
        true
    }

    /// Runs `f` on the collection of kind `kind` at `key`, then re-charges its memory and
    /// removes the key if `f` left the collection empty (Redis never stores an empty one).
    /// A missing key is created empty first when `create` is set (and only stored if `f`
    /// added something), else the result is `Ok(None)`. A key of another type is
    /// [`WrongType`]. Counts as a write access of the key.
    pub fn modify<R>(
        &mut self,
        key: &[u8],
        now: u64,
        kind: Kind,
        create: bool,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<Option<R>, WrongType> {
        let db = self.db;
        let Some(b) = self.live(key, now) else {
            if !create {
                return Ok(None);
            }
            let mut v = Value::empty(kind);
            let r = f(&mut v);
            if !v.is_empty() {
                self.set(key, v, NO_EXPIRY, now);
            }
            return Ok(Some(r));
        };
        // A write is an access, for LFU's sketch as for SET (which counts a created key).
        self.count_access(key);
        let t = &mut **self.t;
        let Some(kv) = t.map.get_mut(b) else {
            return Ok(None);
        };
        let (r, empty) = match kv.tag() {
            Tag::Str => return Err(WrongType),
            Tag::Obj => {
                kv.set_access(db.touched_access(kv.meta().access, now));
                let Some(obj) = kv.obj_mut() else {
                    return Ok(None);
                };
                if obj.kind() != kind {
                    return Err(WrongType);
                }
                let old = obj.heap_size();
                let r = f(obj);
                let (new, empty) = (obj.heap_size(), obj.is_empty());
                if !empty && inline_kind(obj) {
                    // Shrunk back to a listpack (SPOP's rebuild): it goes inline.
                    let old_mem = kv_mem(kv) - new as u64;
                    if let Some(v) = kv.take_obj() {
                        kv.put_obj(v);
                    }
                    db.stats
                        .used_memory
                        .change(old_mem + old as u64, kv_mem(kv));
                } else {
                    db.stats.used_memory.change(old as u64, new as u64);
                }
                (r, empty)
            }
            Tag::SetLp | Tag::HashLp | Tag::ZsetLp => {
                let mut v = match kv.obj() {
                    Some(v) if v.kind() == kind => (*v).clone(),
                    _ => return Err(WrongType),
                };
                kv.set_access(db.touched_access(kv.meta().access, now));
                let old = kv_mem(kv);
                let r = f(&mut v);
                let empty = v.is_empty();
                if !empty {
                    // Back into the entry's block: inline again while it is a listpack,
                    // else as a `Value` (converted to a table).
                    kv.put_obj(v);
                    db.stats.used_memory.change(old, kv_mem(kv));
                }
                (r, empty)
            }
        };
        if empty {
            self.remove_bucket(b, false);
        } else {
            // Whether `f` changed anything is not known here: a watch is told either way.
            self.modified(key);
        }
        Ok(Some(r))
    }

    /// [`SlotGuard::set`] of a string value, straight from the request's bytes (the key and
    /// the value are copied once, into the entry).
    pub fn set_str(&mut self, key: &[u8], bytes: &[u8], expire_at: u64, now: u64) -> bool {
        let replaced = self.set_str_inner(key, bytes, expire_at, now);
        self.modified(key);
        replaced
    }

    fn set_str_inner(&mut self, key: &[u8], bytes: &[u8], expire_at: u64, now: u64) -> bool {
        self.count_access(key);
        let db = self.db;
        let new_mem = entry_mem(key, bytes.len());
        match self.live(key, now) {
            Some(b) => {
                // An overwrite is an access: under LFU the key keeps its counter, like Redis.
                if !self.replace_in(b, bytes, now) {
                    return false;
                }
                self.reset_expire(b, expire_at);
                true
            }
            None => {
                let meta = Meta {
                    vol_pos: NOT_VOLATILE,
                    access: db.new_access(now),
                };
                self.insert_entry(Kv::new(key, bytes, meta), new_mem, expire_at, now);
                false
            }
        }
    }

    /// Puts `bytes` in place of the value in bucket `b`, keeping the key, its position and
    /// TTL, and counting an access. Returns false when the bucket is empty.
    fn replace_in(&mut self, b: Bucket, bytes: &[u8], now: u64) -> bool {
        let db = self.db;
        let Some(kv) = self.t.map.get_mut(b) else {
            return false;
        };
        if kv.tag() != Tag::Str {
            return self.put_value(b, Value::str(bytes), now);
        }
        let old_mem = entry_mem(kv.key(), kv.value().len());
        let new_mem = entry_mem(kv.key(), bytes.len());
        let access = db.touched_access(kv.meta().access, now);
        kv.set_str(bytes);
        kv.set_access(access);
        self.adjust_mem(old_mem, new_mem);
        true
    }

    /// Replaces the value of an existing live key, keeping its TTL. Returns false when the key
    /// does not exist.
    pub fn replace_value(&mut self, key: &[u8], value: Value, now: u64) -> bool {
        let Some(b) = self.live(key, now) else {
            return false;
        };
        let done = match &value {
            Value::Str(bytes) => self.replace_in(b, bytes, now),
            _ => self.put_value(b, value, now),
        };
        self.modified(key);
        done
    }

    /// The string value of a live `key`, writable in place and zero-extended first to at
    /// least `min_len` bytes, with the memory accounting following the growth; `None` when
    /// the key does not exist. Counts a write access like [`SlotGuard::replace_value`]. The
    /// caller has checked the type (SETBIT, BITFIELD and PFADD change a few bytes of a value
    /// that may be megabytes long, which a copy per command would make O(length)).
    pub fn str_mut(&mut self, key: &[u8], min_len: usize, now: u64) -> Option<&mut [u8]> {
        let b = self.live(key, now)?;
        // Signalled before the change, under the same lock: nobody sees it in between.
        self.modified(key);
        let db = self.db;
        let kv = self.t.map.get(b)?;
        let old_len = kv.value().len();
        if min_len > old_len {
            let (old, new) = (entry_mem(kv.key(), old_len), entry_mem(kv.key(), min_len));
            self.adjust_mem(old, new);
        }
        let kv = self.t.map.get_mut(b)?;
        kv.set_access(db.touched_access(kv.meta().access, now));
        Some(kv.value_mut(min_len))
    }

    /// Sets or clears (`NO_EXPIRY`) the TTL of a live key. Returns false when it does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64, now: u64) -> bool {
        let Some(b) = self.live(key, now) else {
            return false;
        };
        self.reset_expire(b, expire_at);
        self.modified(key);
        true
    }

    /// Sets the access field of a live key (RESTORE's IDLETIME and FREQ). Returns false when
    /// it does not exist.
    pub fn set_access(&mut self, key: &[u8], access: u32, now: u64) -> bool {
        let Some(b) = self.live(key, now) else {
            return false;
        };
        match self.t.map.get_mut(b) {
            Some(kv) => {
                kv.set_access(access);
                true
            }
            None => false,
        }
    }

    /// Removes `key`. Returns its value and expiry ([`NO_EXPIRY`] for none) when it was live.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<(Value, u64)> {
        let b = self.live(key, now)?;
        self.remove_bucket(b, false)
            .map(|(kv, obj, at)| (obj.unwrap_or_else(|| Value::str(kv.value())), at))
    }

    /// Removes every key of this slot.
    pub fn clear(&mut self) {
        if self.db.tracked.get(self.slot as u16) {
            if let Some(sink) = self.db.track_sink.get() {
                sink.slot(self.slot as u16, None);
            }
        }
        if self.db.watched.get(self.slot) {
            if let Some(w) = self.db.watches.lock().get_mut(&(self.slot as u16)) {
                let map = &self.t.map;
                w.slot_flushed(|k| map.find(k).is_some());
            }
        }
        let stats = &self.db.stats;
        let mem: u64 = self.t.map.entries().map(|kv| self.t.kv_mem(kv)).sum();
        stats.keys.sub(self.t.map.len() as u64);
        stats.volatile.sub(self.t.volatile.len() as u64);
        let table_mem = self.t.table_mem() as u64;
        stats.used_memory.sub(mem + table_mem);
        stats.table_memory.sub(table_mem);
        let mut map = std::mem::take(&mut self.t.map);
        // Large collections go to the lazyfree thread, as DEL sends them.
        let big: Vec<Value> = map
            .entries_mut()
            .filter(|kv| {
                kv.tag() == Tag::Obj && kv.obj().is_some_and(|v| v.len() > LAZYFREE_THRESHOLD)
            })
            .filter_map(Kv::take_obj)
            .collect();
        drop(map);
        self.db.free_later(big);
        self.t.volatile = Vec::new();
        self.t.sketch.clear();
        self.t.sketch_ops = 0;
        self.t.table_mem_words = 0;
        self.db.nonempty.set(self.slot, false);
        self.db.has_volatile.set(self.slot, false);
    }

    /// The "key modified" signal (see [`watch`]): every change to `key` ends here.
    #[inline]
    fn modified(&mut self, key: &[u8]) {
        if self.db.watched.get(self.slot) {
            self.signal(key);
        }
        if self.db.blocked.get(self.slot as u16) {
            self.ready(key);
        }
        if self.db.tracked.get(self.slot as u16) {
            self.tracked(key);
        }
    }

    /// A write to a key in a slot with tracked keys, or while prefixes are tracked.
    #[cold]
    fn tracked(&mut self, key: &[u8]) {
        if let Some(sink) = self.db.track_sink.get() {
            sink.key(self.slot as u16, key);
        }
    }

    /// A write to a key in a slot with blocked clients: the registry decides whether it
    /// can serve one (after the command, see `crate::blocking`).
    #[cold]
    fn ready(&mut self, key: &[u8]) {
        if self.t.map.find(key).is_some() {
            if let Some(hook) = self.db.ready_hook.get() {
                hook(key);
            }
        }
    }

    #[cold]
    fn signal(&mut self, key: &[u8]) {
        let exists = self.t.map.find(key).is_some();
        if let Some(w) = self.db.watches.lock().get_mut(&(self.slot as u16)) {
            w.key_modified(key, exists);
        }
    }

    /// Every watcher of this slot fires: the slot is leaving this node.
    pub fn modified_all(&mut self) {
        if self.db.watched.get(self.slot) {
            if let Some(w) = self.db.watches.lock().get(&(self.slot as u16)) {
                w.fire_all();
            }
        }
        if self.db.tracked.get(self.slot as u16) {
            if let Some(sink) = self.db.track_sink.get() {
                let mut keys = self.t.map.iter().map(|kv| kv.key());
                sink.slot(self.slot as u16, Some(&mut keys));
            }
        }
    }

    /// Registers `watcher` on `key` (WATCH): any later change to the key fires it. A key that
    /// exists but has expired is watched as stale: its deletion does not fire.
    pub fn watch(&mut self, key: &[u8], watcher: &std::sync::Arc<Watcher>, now: u64) {
        let stale = self
            .t
            .map
            .find(key)
            .and_then(|b| self.t.map.get(b))
            .is_some_and(|kv| self.t.kv_expired(kv, now));
        self.db
            .watches
            .lock()
            .entry(self.slot as u16)
            .or_default()
            .add(key, watcher, stale);
        self.db.watched.set(self.slot, true);
    }

    /// Removes `watcher` from `key`.
    pub fn unwatch(&mut self, key: &[u8], watcher: &std::sync::Arc<Watcher>) {
        if !self.db.watched.get(self.slot) {
            return;
        }
        let mut all = self.db.watches.lock();
        if let Some(w) = all.get_mut(&(self.slot as u16)) {
            w.remove(key, watcher);
            if w.is_empty() {
                all.remove(&(self.slot as u16));
                self.db.watched.set(self.slot, false);
            }
        }
    }

    /// Whether `key`, live when `watcher` watched it, has logically expired since, even if
    /// nothing reclaimed it yet (EXEC then aborts, as in Redis 7).
    pub fn watched_key_expired(
        &self,
        key: &[u8],
        watcher: &std::sync::Arc<Watcher>,
        now: u64,
    ) -> bool {
        let live = self.db.watched.get(self.slot)
            && self
                .db
                .watches
                .lock()
                .get(&(self.slot as u16))
                .is_some_and(|w| w.watches_live(key, watcher));
        live && self
            .t
            .map
            .find(key)
            .and_then(|b| self.t.map.get(b))
            .is_some_and(|kv| self.t.kv_expired(kv, now))
    }

    /// Up to `count` live keys of this slot (CLUSTER GETKEYSINSLOT).
    pub fn keys(&self, count: usize, now: u64) -> Vec<Bytes> {
        self.t
            .map
            .iter()
            .filter(|kv| !self.t.kv_expired(kv, now))
            .take(count)
            .map(|kv| Bytes::copy_from_slice(kv.key()))
            .collect()
    }

    /// Removes the entry at position `pos`.
    fn remove_at(&mut self, pos: usize, expired: bool) -> Option<(Kv, Option<Value>, u64)> {
        let b = self.t.map.at(pos)?;
        self.remove_bucket(b, expired)
    }

    /// Removes the entry in bucket `b`: its block, its collection if it has one, and the
    /// expiry it had.
    fn remove_bucket(&mut self, b: Bucket, expired: bool) -> Option<(Kv, Option<Value>, u64)> {
        let mem = self.t.map.get(b).map(|kv| self.t.kv_mem(kv))?;
        let (mut kv, at) = self.t.remove_bucket(b)?;
        self.modified(kv.key());
        let obj = kv.take_obj();
        let stats = &self.db.stats;
        stats.keys.sub(1);
        stats.used_memory.sub(mem);
        if expired {
            stats.expired_keys.add(1);
            self.db.removed(Removal::Expired, kv.key());
        }
        if at != NO_EXPIRY {
            self.volatile_changed(VolChange::Removed);
        }
        if self.t.map.is_empty() {
            self.db.nonempty.set(self.slot, false);
            // Give back the table's memory once a slot empties.
            self.t.map.shrink_to(0);
            self.t.volatile.shrink_to_fit();
            self.t.sketch.clear();
            self.t.sketch_ops = 0;
            self.sync_table_mem();
        } else {
            self.shrink_if_sparse();
        }
        Some((kv, obj, at))
    }

    /// Gives memory back once a table is down to half its capacity. A cache's tables wander
    /// up and down under eviction; without this each would stay at the largest size it ever
    /// reached, so the keys a given `maxmemory` holds would fall over time (in
    /// `helper/bench-hit-ratio.sh`, 100-byte values at about 6 keys per slot, a node holds
    /// 5% more keys with this than without). The new size keeps one free entry, so a table does
    /// not resize back and forth around a single key; the freed arrays are reused by tables
    /// that grow. The volatile list shrinks at a third, to 1.5 times its length.
    fn shrink_if_sparse(&mut self) {
        let t = &mut self.t;
        let mut shrunk = false;
        let len = t.map.len();
        if t.map.capacity() >= 14 && len * 2 <= t.map.capacity() {
            t.map.shrink_to(len + 1);
            shrunk = true;
        }
        let vol = t.volatile.len();
        if t.volatile.capacity() > 8 && vol * 3 <= t.volatile.capacity() {
            t.volatile.shrink_to(vol + vol / 2);
            shrunk = true;
        }
        if shrunk {
            if t.sketch.words() > 0 {
                let cap = t.map.capacity();
                t.sketch.fit(cap);
            }
            self.sync_table_mem();
        }
    }

    /// Re-charges the table's arrays after a capacity may have changed.
    fn sync_table_mem(&mut self) {
        let t = &mut self.t;
        let now = mem::table_size(
            t.map.buckets(),
            t.map.positions_capacity(),
            t.volatile.capacity(),
            t.sketch.words(),
        );
        let words = u32::try_from(now / 8).unwrap_or(u32::MAX);
        let now = words as usize * 8;
        let old = std::mem::replace(&mut t.table_mem_words, words) as usize * 8;
        if now == old {
            return;
        }
        self.adjust_mem(old as u64, now as u64);
        self.db.stats.table_memory.change(old as u64, now as u64);
    }

    fn adjust_mem(&self, old: u64, new: u64) {
        self.db.stats.used_memory.change(old, new);
    }

    /// Keeps the store's volatile counter and the slot's bit in step with the list.
    fn volatile_changed(&self, change: VolChange) {
        match change {
            VolChange::Added => {
                self.db.stats.volatile.add(1);
                if self.t.volatile.len() == 1 {
                    self.db.has_volatile.set(self.slot, true);
                }
            }
            VolChange::Removed => {
                self.db.stats.volatile.sub(1);
                if self.t.volatile.is_empty() {
                    self.db.has_volatile.set(self.slot, false);
                }
            }
            VolChange::None => {}
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
