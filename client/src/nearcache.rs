//! The near-cache: GET results kept in the client and dropped when the server says the key
//! changed (CLIENT TRACKING, RESP3 invalidation pushes).
//!
//! This module is the cache as a data structure driven by events; the connections feed it
//! (`conn`), the client asks it (`client`). Nothing here touches a socket.
//!
//! # Events
//! - [`NearCache::lookup`]: a GET that may be answered here. A hit needs the entry's node to
//!   be the slot's owner in the routes of the moment.
//! - [`NearCache::begin`] before a GET is sent, [`Fill::complete`] with its reply: the reply
//!   is kept only when no invalidation of its key (nor a drop of everything) was received
//!   between the two. An invalidation can reach the client before the reply to a read that
//!   came before the write (the server sends it again after the reply, but the second one
//!   may be lost with the connection), so a fill that raced one is not kept: the next GET
//!   reads again.
//! - [`NearCache::on_push`]: an invalidation push (keys, or null for "everything").
//! - [`NearCache::invalidate`]: this client writes a key (before the write is sent and when
//!   its reply is in), so a caller reads its own writes.
//! - [`NearCache::conn_lost`]: a connection ended; its invalidations may have been lost, so
//!   everything read through it goes.
//! - [`NearCache::slots_moved`]: the ring moved slots; their entries go.
//!
//! # Bounds
//! Entries and bytes (key + value + a fixed overhead per entry), split evenly over shards
//! (by slot); the least recently used entry of a shard goes first. Optionally an age limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::value::Value;

/// Shards of the cache (a slot's entries live in shard `slot % SHARDS`).
const SHARDS: usize = 16;
/// Bytes counted per entry on top of its key and value (the map entry, the list links).
const ENTRY_OVERHEAD: usize = 96;
/// No entry in the LRU list.
const NIL: u32 = u32::MAX;

/// Options of the near-cache ([`Builder::near_cache`](crate::Builder::near_cache)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearCacheOptions {
    /// Most entries kept (default 100 000).
    pub max_entries: usize,
    /// Most bytes kept, keys and values plus about 96 bytes per entry (default 64 MiB).
    pub max_bytes: usize,
    /// Values bigger than this are not kept (default 1 MiB).
    pub max_value: usize,
    /// An entry older than this is read again (default none): a bound on staleness even when
    /// a node's connection hangs without closing.
    pub max_age: Option<Duration>,
}

impl Default for NearCacheOptions {
    fn default() -> NearCacheOptions {
        NearCacheOptions {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            max_value: 1 << 20,
            max_age: None,
        }
    }
}

impl NearCacheOptions {
    pub fn max_entries(mut self, entries: usize) -> NearCacheOptions {
        self.max_entries = entries;
        self
    }

    pub fn max_bytes(mut self, bytes: usize) -> NearCacheOptions {
        self.max_bytes = bytes;
        self
    }

    pub fn max_value(mut self, bytes: usize) -> NearCacheOptions {
        self.max_value = bytes;
        self
    }

    pub fn max_age(mut self, age: Duration) -> NearCacheOptions {
        self.max_age = Some(age);
        self
    }
}

/// The near-cache's counters ([`Client::near_cache_stats`](crate::Client::near_cache_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NearCacheStats {
    /// GETs answered from the cache.
    pub hits: u64,
    /// GETs sent to the server while the cache was on.
    pub misses: u64,
    /// Entries dropped by the server's invalidations (keys, or everything).
    pub invalidations: u64,
    /// Entries dropped to stay within the bounds or for their age.
    pub evictions: u64,
    /// Entries dropped because their connection ended or their slot moved.
    pub dropped: u64,
    /// GET replies not kept because an invalidation raced them.
    pub raced: u64,
    /// Entries now.
    pub entries: u64,
    /// Bytes now (as counted for `max_bytes`).
    pub bytes: u64,
}

/// Which connection a value was read through: its id (unique in the process) and node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnTag {
    pub id: u64,
    pub addr: SocketAddr,
}

struct Entry {
    key: Bytes,
    value: Option<Bytes>,
    conn: ConnTag,
    slot: u16,
    filled: Instant,
    prev: u32,
    next: u32,
}

impl Entry {
    fn size(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
    }
}

/// GETs in flight for a key, and when the key was last invalidated while they were.
struct InFlight {
    count: u32,
    invalidated: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Bytes, u32>,
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    bytes: usize,
    in_flight: HashMap<Bytes, InFlight>,
    /// When everything in this shard was last dropped (fills begun before are not kept).
    flushed: u64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            head: NIL,
            tail: NIL,
            ..Shard::default()
        }
    }

    fn entry(&self, i: u32) -> &Entry {
        self.slab[i as usize].as_ref().expect("linked entry")
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        self.slab[i as usize].as_mut().expect("linked entry")
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = self.entry(i);
            (e.prev, e.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.entry_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entry_mut(next).prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let head = self.head;
        {
            let e = self.entry_mut(i);
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entry_mut(head).prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Removes entry `i` from the list, the map and the slab.
    fn remove_at(&mut self, i: u32) {
        self.unlink(i);
        if let Some(e) = self.slab[i as usize].take() {
            self.bytes -= e.size();
            self.map.remove(&e.key);
        }
        self.free.push(i);
    }

    fn remove_key(&mut self, key: &[u8]) -> bool {
        match self.map.get(key) {
            Some(&i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Removes every entry `drop` picks; how many.
    fn remove_where(&mut self, drop: impl Fn(&Entry) -> bool) -> u64 {
        let doomed: Vec<u32> = self
            .slab
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(&drop))
            .map(|(i, _)| i as u32)
            .collect();
        for &i in &doomed {
            self.remove_at(i);
        }
        doomed.len() as u64
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        let key = entry.key.clone();
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(entry);
                i
            }
            None => {
                self.slab.push(Some(entry));
                (self.slab.len() - 1) as u32
            }
        };
        self.bytes += size;
        self.map.insert(key, i);
        self.push_front(i);
    }
}

/// The near-cache. Shared by the client and its connections.
pub(crate) struct NearCache {
    options: NearCacheOptions,
    /// Bounds of one shard.
    shard_entries: usize,
    shard_bytes: usize,
    shards: Box<[Mutex<Shard>]>,
    /// Orders fills and invalidations.
    seq: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
    dropped: AtomicU64,
    raced: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A GET on its way: kept by [`Fill::complete`] unless its key was invalidated meanwhile.
/// Dropped without completing (the request failed), it is forgotten.
pub(crate) struct Fill {
    cache: Arc<NearCache>,
    key: Bytes,
    slot: u16,
    seq: u64,
    done: bool,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("slot", &self.slot)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Fill {
    /// The GET's reply came through `conn`: keep it (a bulk string or nil) unless an
    /// invalidation raced it.
    pub fn complete(mut self, conn: ConnTag, reply: &Value, now: Instant) {
        self.done = true;
        let value = match reply {
            Value::Bulk(b) => Some(b.clone()),
            Value::Nil => None,
            _ => {
                self.cache.end_fill(&self.key, self.slot);
                return;
            }
        };
        self.cache
            .finish_fill(&self.key, self.slot, self.seq, value, conn, now);
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.done {
            self.cache.end_fill(&self.key, self.slot);
        }
    }
}

impl NearCache {
    pub fn new(options: NearCacheOptions) -> NearCache {
        NearCache {
            shard_entries: options.max_entries.div_ceil(SHARDS).max(1),
            shard_bytes: options.max_bytes.div_ceil(SHARDS).max(1),
            options,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            seq: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            raced: AtomicU64::new(0),
        }
    }

    fn shard(&self, slot: u16) -> MutexGuard<'_, Shard> {
        self.shards[slot as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Relaxed)
    }

    /// The cached value of `key` (`Some(None)`: cached as missing) when it was read through
    /// the node that owns `slot` now (`owner`); counts a hit or a miss.
    pub fn lookup(
        &self,
        key: &[u8],
        slot: u16,
        owner: Option<SocketAddr>,
        now: Instant,
    ) -> Option<Option<Bytes>> {
        let mut shard = self.shard(slot);
        let found = match shard.map.get(key) {
            None => None,
            Some(&i) => {
                let e = shard.entry(i);
                let fresh = self
                    .options
                    .max_age
                    .is_none_or(|age| now.saturating_duration_since(e.filled) < age);
                if Some(e.conn.addr) == owner && e.slot == slot && fresh {
                    let value = e.value.clone();
                    shard.unlink(i);
                    shard.push_front(i);
                    Some(value)
                } else {
                    // Read from a node that no longer owns the slot, or too old.
                    shard.remove_at(i);
                    let counter = if fresh {
                        &self.dropped
                    } else {
                        &self.evictions
                    };
                    counter.fetch_add(1, Relaxed);
                    None
                }
            }
        };
        drop(shard);
        match found {
            Some(_) => self.hits.fetch_add(1, Relaxed),
            None => self.misses.fetch_add(1, Relaxed),
        };
        found
    }

    /// A GET of `key` is about to be sent.
    pub fn begin(self: &Arc<Self>, key: &[u8], slot: u16) -> Fill {
        let key = Bytes::copy_from_slice(key);
        let mut shard = self.shard(slot);
        // Taken under the shard's lock, so every invalidation of this key is either
        // before it (and recorded below it) or after it.
        let seq = self.next_seq();
        shard
            .in_flight
            .entry(key.clone())
            .or_insert(InFlight {
                count: 0,
                invalidated: 0,
            })
            .count += 1;
        drop(shard);
        Fill {
            cache: self.clone(),
            key,
            slot,
            seq,
            done: false,
        }
    }

    /// A fill ended without a value to keep.
    fn end_fill(&self, key: &[u8], slot: u16) {
        let mut shard = self.shard(slot);
        Self::release(&mut shard, key);
    }

    /// Counts a fill of `key` out; returns when the key was last invalidated during fills.
    fn release(shard: &mut Shard, key: &[u8]) -> u64 {
        let Some(f) = shard.in_flight.get_mut(key) else {
            return 0;
        };
        let invalidated = f.invalidated;
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            shard.in_flight.remove(key);
        }
        invalidated
    }

    fn finish_fill(
        &self,
        key: &Bytes,
        slot: u16,
        seq: u64,
        value: Option<Bytes>,
        conn: ConnTag,
        now: Instant,
    ) {
        let mut shard = self.shard(slot);
        let invalidated = Self::release(&mut shard, key);
        if invalidated > seq || shard.flushed > seq {
            drop(shard);
            self.raced.fetch_add(1, Relaxed);
            return;
        }
        let entry = Entry {
            key: key.clone(),
            value,
            conn,
            slot,
            filled: now,
            prev: NIL,
            next: NIL,
        };
        let size = entry.size();
        let value_len = entry.value.as_ref().map_or(0, Bytes::len);
        if value_len > self.options.max_value || size > self.shard_bytes {
            shard.remove_key(key);
            return;
        }
        shard.remove_key(key);
        let mut evicted = 0;
        while shard.tail != NIL
            && (shard.map.len() + 1 > self.shard_entries || shard.bytes + size > self.shard_bytes)
        {
            let tail = shard.tail;
            shard.remove_at(tail);
            evicted += 1;
        }
        shard.insert(entry);
        drop(shard);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Relaxed);
        }
    }

    /// `key` changed: its entry goes, and GETs of it in flight are not kept. `by_server`:
    /// an invalidation push (counted), else one of this client's writes.
    pub fn invalidate(&self, key: &[u8], slot: u16, by_server: bool) {
        let mut shard = self.shard(slot);
        let removed = shard.remove_key(key);
        if !shard.in_flight.is_empty() {
            let seq = self.next_seq();
            if let Some(f) = shard.in_flight.get_mut(key) {
                f.invalidated = seq;
            }
        }
        drop(shard);
        if removed && by_server {
            self.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// Everything goes (a null invalidation: the node was flushed, or lost its lease), and
    /// no GET in flight is kept. `by_server`: counted as invalidations, else as drops.
    pub fn clear(&self, by_server: bool) {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.flushed = self.next_seq();
            removed += shard.map.len() as u64;
            let in_flight = std::mem::take(&mut shard.in_flight);
            *shard = Shard::new();
            shard.flushed = self.next_seq();
            shard.in_flight = in_flight;
        }
        let counter = if by_server {
            &self.invalidations
        } else {
            &self.dropped
        };
        counter.fetch_add(removed, Relaxed);
    }

    /// An out-of-band message from `conn`: `invalidate` with its keys (or null) is applied.
    pub fn on_push(&self, _conn: ConnTag, push: &[Value]) {
        let [kind, keys] = push else {
            return;
        };
        if kind.as_bytes() != Some(&b"invalidate"[..]) {
            return;
        }
        match keys {
            Value::Nil => self.clear(true),
            Value::Array(keys) | Value::Set(keys) => {
                for key in keys.iter().filter_map(Value::as_bytes) {
                    self.invalidate(key, crate::routing::slot_of(key), true);
                }
            }
            _ => {}
        }
    }

    /// The connection `id` ended: its invalidations may be lost, so what was read through
    /// it goes, as do the fills in flight (they fail anyway).
    pub fn conn_lost(&self, id: u64) {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            removed += shard.remove_where(|e| e.conn.id == id);
        }
        self.dropped.fetch_add(removed, Relaxed);
    }

    /// The slots `moved` have a new owner: their entries go, and their fills in flight are
    /// not kept.
    pub fn slots_moved(&self, moved: &[u16]) {
        if moved.is_empty() {
            return;
        }
        let mut by_shard = vec![Vec::new(); SHARDS];
        for &s in moved {
            by_shard[s as usize % SHARDS].push(s);
        }
        let mut removed = 0;
        for (shard, slots) in self.shards.iter().zip(by_shard) {
            if slots.is_empty() {
                continue;
            }
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.flushed = self.next_seq();
            removed += shard.remove_where(|e| slots.contains(&e.slot));
        }
        self.dropped.fetch_add(removed, Relaxed);
    }

    pub fn stats(&self) -> NearCacheStats {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            entries += shard.map.len() as u64;
            bytes += shard.bytes as u64;
        }
        NearCacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            raced: self.raced.load(Relaxed),
            entries,
            bytes,
        }
    }
}

/// Whether a command only reads its keys (so this client's near-cache keeps them). Unknown
/// commands count as writes: forgetting a key costs one more GET, keeping it could serve a
/// value older than the caller's own write.
pub(crate) fn keeps_keys(name: &[u8]) -> bool {
    let mut lower = [0u8; 20];
    if name.len() > lower.len() {
        return false;
    }
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    matches!(
        &lower[..name.len()],
        b"get"
            | b"mget"
            | b"strlen"
            | b"getrange"
            | b"substr"
            | b"exists"
            | b"type"
            | b"ttl"
            | b"pttl"
            | b"expiretime"
            | b"pexpiretime"
            | b"dump"
            | b"getbit"
            | b"bitcount"
            | b"bitpos"
            | b"bitfield_ro"
            | b"lcs"
            | b"hget"
            | b"hmget"
            | b"hgetall"
            | b"hlen"
            | b"hstrlen"
            | b"hexists"
            | b"hkeys"
            | b"hvals"
            | b"hrandfield"
            | b"hscan"
            | b"smembers"
            | b"sismember"
            | b"smismember"
            | b"scard"
            | b"srandmember"
            | b"sscan"
            | b"sinter"
            | b"sunion"
            | b"sdiff"
            | b"sintercard"
            | b"llen"
            | b"lrange"
            | b"lindex"
            | b"lpos"
            | b"zcard"
            | b"zcount"
            | b"zscore"
            | b"zmscore"
            | b"zrank"
            | b"zrevrank"
            | b"zrange"
            | b"zrevrange"
            | b"zrangebyscore"
            | b"zrevrangebyscore"
            | b"zrangebylex"
            | b"zrevrangebylex"
            | b"zlexcount"
            | b"zscan"
            | b"zrandmember"
            | b"geopos"
            | b"geodist"
            | b"geohash"
            | b"geosearch"
            | b"pfcount"
    )
}

/// Whether a command empties the node (FLUSHALL, FLUSHDB): everything cached goes.
pub(crate) fn drops_everything(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"flushall") || name.eq_ignore_ascii_case(b"flushdb")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::slot_of;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn conn(id: u64, port: u16) -> ConnTag {
        ConnTag {
            id,
            addr: addr(port),
        }
    }

    fn cache(options: NearCacheOptions) -> Arc<NearCache> {
        Arc::new(NearCache::new(options))
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Reads `key` through `c` with reply `v` (begin, then complete).
    fn fill(nc: &Arc<NearCache>, key: &str, c: ConnTag, v: &Value) {
        nc.begin(key.as_bytes(), slot_of(key.as_bytes()))
            .complete(c, v, Instant::now());
    }

    fn get(nc: &NearCache, key: &str, owner: u16) -> Option<Option<Bytes>> {
        nc.lookup(
            key.as_bytes(),
            slot_of(key.as_bytes()),
            Some(addr(owner)),
            Instant::now(),
        )
    }

    fn push_invalidate(keys: &[&str]) -> Vec<Value> {
        vec![
            bulk("invalidate"),
            Value::Array(keys.iter().map(|k| bulk(k)).collect()),
        ]
    }

    #[test]
    fn a_fill_is_served_until_its_invalidation() {
        let nc = cache(NearCacheOptions::default());
        let c = conn(1, 7000);
        assert_eq!(get(&nc, "k", 7000), None);
        fill(&nc, "k", c, &bulk("v1"));
        fill(&nc, "gone", c, &Value::Nil);
        assert_eq!(get(&nc, "k", 7000), Some(Some(Bytes::from_static(b"v1"))));
        assert_eq!(
            get(&nc, "gone", 7000),
            Some(None),
            "a missing key is cached too"
        );
        nc.on_push(c, &push_invalidate(&["k", "other"]));
        assert_eq!(get(&nc, "k", 7000), None);
        assert_eq!(get(&nc, "gone", 7000), Some(None));
        let s = nc.stats();
        assert_eq!((s.hits, s.misses, s.invalidations), (3, 2, 1));
        assert_eq!(s.entries, 1);
        // Errors (a -MOVED) and other replies are not kept.
        nc.begin(b"e", slot_of(b"e")).complete(
            c,
            &Value::Error(crate::value::ServerError::new("MOVED", "1 127.0.0.1:1")),
            Instant::now(),
        );
        assert_eq!(get(&nc, "e", 7000), None);
    }

    #[test]
    fn an_invalidation_that_races_a_fill_wins() {
        let nc = cache(NearCacheOptions::default());
        let c = conn(1, 7000);
        // Invalidation received between the send and the reply: the reply may predate the
        // write, so it is not kept.
        let f = nc.begin(b"k", slot_of(b"k"));
        nc.on_push(c, &push_invalidate(&["k"]));
        f.complete(c, &bulk("old"), Instant::now());
        assert_eq!(get(&nc, "k", 7000), None);
        assert_eq!(nc.stats().raced, 1);
        // Two GETs in flight, an invalidation between their sends: the first is not kept,
        // the second (sent after the invalidation arrived) is.
        let first = nc.begin(b"k", slot_of(b"k"));
        nc.invalidate(b"k", slot_of(b"k"), true);
        let second = nc.begin(b"k", slot_of(b"k"));
        first.complete(c, &bulk("old"), Instant::now());
        assert_eq!(get(&nc, "k", 7000), None);
        second.complete(c, &bulk("new"), Instant::now());
        assert_eq!(get(&nc, "k", 7000), Some(Some(Bytes::from_static(b"new"))));
        // A null invalidation (flush) drops everything and every fill in flight.
        let f = nc.begin(b"x", slot_of(b"x"));
        nc.on_push(c, &[bulk("invalidate"), Value::Nil]);
        assert_eq!(get(&nc, "k", 7000), None);
        f.complete(c, &bulk("old"), Instant::now());
        assert_eq!(get(&nc, "x", 7000), None);
        // A failed request leaves no trace.
        drop(nc.begin(b"y", slot_of(b"y")));
        assert!(nc
            .shards
            .iter()
            .all(|s| s.lock().unwrap().in_flight.is_empty()));
    }

    #[test]
    fn a_lost_connection_or_a_moved_slot_drops_what_came_through_it() {
        let nc = cache(NearCacheOptions::default());
        let (a, b) = (conn(1, 7000), conn(2, 7001));
        fill(&nc, "a1", a, &bulk("1"));
        fill(&nc, "a2", a, &bulk("2"));
        fill(&nc, "b1", b, &bulk("3"));
        nc.conn_lost(1);
        assert_eq!(get(&nc, "a1", 7000), None);
        assert_eq!(get(&nc, "a2", 7000), None);
        assert_eq!(get(&nc, "b1", 7001), Some(Some(Bytes::from_static(b"3"))));
        // The routes say another node owns the slot now: not served, and dropped.
        assert_eq!(get(&nc, "b1", 7002), None);
        assert_eq!(get(&nc, "b1", 7001), None);
        // A ring change drops the moved slots' entries and their fills in flight.
        fill(&nc, "b1", b, &bulk("3"));
        fill(&nc, "b2", b, &bulk("4"));
        let f = nc.begin(b"b3", slot_of(b"b3"));
        nc.slots_moved(&[slot_of(b"b1"), slot_of(b"b3")]);
        f.complete(b, &bulk("5"), Instant::now());
        assert_eq!(get(&nc, "b1", 7001), None);
        assert_eq!(get(&nc, "b3", 7001), None);
        if slot_of(b"b2") % SHARDS as u16 != slot_of(b"b1") % SHARDS as u16
            && slot_of(b"b2") % SHARDS as u16 != slot_of(b"b3") % SHARDS as u16
        {
            assert_eq!(get(&nc, "b2", 7001), Some(Some(Bytes::from_static(b"4"))));
        }
        let s = nc.stats();
        assert!(s.dropped >= 4, "{s:?}");
    }

    #[test]
    fn bounded_by_entries_bytes_and_age_least_recently_used_first() {
        // All keys in one slot (hash tag), so one shard holds them.
        let nc = cache(NearCacheOptions::default().max_entries(3 * SHARDS));
        let c = conn(1, 7000);
        for k in ["{t}a", "{t}b", "{t}c"] {
            fill(&nc, k, c, &bulk("v"));
        }
        assert!(get(&nc, "{t}a", 7000).is_some()); // a is now the most recent
        fill(&nc, "{t}d", c, &bulk("v"));
        assert_eq!(get(&nc, "{t}b", 7000), None, "the least recently used went");
        for k in ["{t}a", "{t}c", "{t}d"] {
            assert!(get(&nc, k, 7000).is_some(), "{k}");
        }
        assert_eq!(nc.stats().evictions, 1);
        assert_eq!(nc.stats().entries, 3);

        // Bytes: each shard gets max_bytes / SHARDS.
        let per_shard = 1000;
        let nc = cache(NearCacheOptions::default().max_bytes(per_shard * SHARDS));
        let big = "x".repeat(400);
        for k in ["{t}a", "{t}b", "{t}c"] {
            fill(&nc, k, c, &bulk(&big));
        }
        let s = nc.stats();
        assert_eq!(s.entries, 2);
        assert!(s.bytes as usize <= per_shard, "{s:?}");
        assert_eq!(get(&nc, "{t}a", 7000), None);
        // Too big for a shard, or above max_value: not kept (and the old value goes).
        fill(&nc, "{t}b", c, &bulk(&"y".repeat(2000)));
        assert_eq!(get(&nc, "{t}b", 7000), None);
        let nc = cache(NearCacheOptions::default().max_value(10));
        fill(&nc, "k", c, &bulk("01234567890"));
        assert_eq!(get(&nc, "k", 7000), None);
        fill(&nc, "k", c, &bulk("0123456789"));
        assert!(get(&nc, "k", 7000).is_some());

        // Age.
        let nc = cache(NearCacheOptions::default().max_age(Duration::from_secs(5)));
        let then = Instant::now();
        nc.begin(b"k", slot_of(b"k")).complete(c, &bulk("v"), then);
        let at = |s| nc.lookup(b"k", slot_of(b"k"), Some(addr(7000)), then + s);
        assert!(at(Duration::from_secs(4)).is_some());
        assert_eq!(at(Duration::from_secs(5)), None);
        assert_eq!(nc.stats().entries, 0);
    }

    #[test]
    fn own_writes_invalidate_without_counting() {
        let nc = cache(NearCacheOptions::default());
        let c = conn(1, 7000);
        fill(&nc, "k", c, &bulk("v"));
        nc.invalidate(b"k", slot_of(b"k"), false);
        assert_eq!(get(&nc, "k", 7000), None);
        assert_eq!(nc.stats().invalidations, 0);
        // Pushes that are not invalidations are ignored.
        fill(&nc, "k", c, &bulk("v"));
        nc.on_push(c, &[bulk("message"), bulk("k")]);
        nc.on_push(c, &[bulk("invalidate")]);
        assert!(get(&nc, "k", 7000).is_some());
    }

    /// A model check: random events; a hit never returns a value older than the newest one
    /// whose invalidation was received before the lookup.
    #[test]
    fn random_events_never_serve_an_invalidated_version() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for round in 0..50 {
            let nc = cache(NearCacheOptions::default().max_entries(64));
            let keys = ["a", "b", "{a}c"];
            // Server state: version of each key; versions whose invalidation the client got.
            let mut version = [0u64; 3];
            let mut invalidated_below = [0u64; 3];
            // GETs in flight: (key, version read, fill); replies come in order.
            let mut in_flight: Vec<(usize, Option<u64>, Fill)> = Vec::new();
            // Invalidations sent but not received yet.
            let mut pushes: Vec<(usize, u64)> = Vec::new();
            let c = conn(round, 7000);
            for _ in 0..500 {
                let k = rng.random_range(0..keys.len());
                let key = keys[k];
                match rng.random_range(0..6) {
                    0 => {
                        let f = nc.begin(key.as_bytes(), slot_of(key.as_bytes()));
                        in_flight.push((k, None, f));
                    }
                    1 => {
                        // The server reads a GET in flight (not yet read), in order.
                        if let Some(g) = in_flight.iter_mut().find(|g| g.1.is_none()) {
                            g.1 = Some(version[g.0]);
                        }
                    }
                    2 => {
                        // A write by someone else: the invalidation is sent.
                        version[k] += 1;
                        pushes.push((k, version[k]));
                    }
                    3 => {
                        // The next reply arrives (only when read).
                        if in_flight.first().is_some_and(|g| g.1.is_some()) {
                            let (k, v, f) = in_flight.remove(0);
                            let v = v.expect("read");
                            f.complete(c, &bulk(&v.to_string()), Instant::now());
                            let _ = k;
                        }
                    }
                    4 => {
                        // An invalidation arrives (in any order with the replies).
                        if !pushes.is_empty() {
                            let (k, v) = pushes.remove(0);
                            nc.on_push(c, &push_invalidate(&[keys[k]]));
                            invalidated_below[k] = invalidated_below[k].max(v);
                        }
                    }
                    _ => {
                        if let Some(Some(v)) = get(&nc, key, 7000) {
                            let v: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                            assert!(
                                v >= invalidated_below[k],
                                "round {round}: served {key}={v} after the invalidation of version {}",
                                invalidated_below[k]
                            );
                        }
                    }
                }
            }
        }
    }

    /// The near-cache keeps a key only across commands the DataNode's own table flags
    /// read-only: a write taken for a read would leave the caller's own write unseen.
    #[test]
    fn kept_across_only_what_the_datanode_calls_read_only() {
        use chkv_datanode::cmd::{flags, table};
        let mut wrong = Vec::new();
        for spec in table() {
            if keeps_keys(spec.name.as_bytes()) && !spec.has(flags::READONLY) {
                wrong.push(spec.name);
            }
        }
        assert!(keeps_keys(b"GET") && !keeps_keys(b"set"));
        assert!(
            wrong.is_empty(),
            "kept across non-read-only commands: {wrong:?}"
        );
    }
}
