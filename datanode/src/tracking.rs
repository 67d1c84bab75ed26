//! Client-side caching: CLIENT TRACKING's table of who read what, and the invalidation
//! messages it sends, with Redis 7.0's semantics.
//!
//! # Modes
//! - Default: every key of a read-only command a tracking client runs is remembered with the
//!   client's id; the next change to that key sends the client one invalidation and forgets
//!   the pair (the client reads the key again to hear of the next change). OPTIN and OPTOUT
//!   with CLIENT CACHING choose which reads count. The table keeps at most
//!   `tracking-table-max-keys` keys: past it, keys are invalidated (and forgotten) to make
//!   room, as Redis does.
//! - BCAST: no table; every change to a key that starts with one of the client's prefixes is
//!   announced, the keys one command changed in one message per prefix.
//!
//! Messages go to the client itself (RESP3 push `invalidate`) or to the connection named by
//! REDIRECT (a RESP3 push, or for a RESP2 subscriber a message on `__redis__:invalidate`).
//! FLUSHALL and FLUSHDB send a null invalidation: "drop everything".
//!
//! # No stale cache across threads
//! Redis remembers the keys after the read, which is safe on one thread. Here a write on
//! another thread could slip between the read and a later registration, and its
//! invalidation would be lost. So the keys are remembered *before* the read command runs
//! (the store's [`TrackedSlots`] bit is set before the read takes the slot's lock, so any
//! write after the read sees it) and checked after it: a key whose registration a change
//! consumed meanwhile (that invalidation may have reached the client before the reply) gets
//! one more invalidation, after the reply.
//!
//! # In a cluster
//! The table covers the keys this node owns. A read that a tracking connection sends through
//! this node to another node's key is followed by an invalidation of that key: writes to it
//! happen elsewhere, so the value is never kept. When slots leave this node (a handoff, a new
//! table) every tracked key in them is invalidated and prefix trackers get the keys of those
//! slots that match; when the node's ownership lease lapses, every tracking client is told to
//! drop everything, before another node may be given its slots.
//!
//! # Order on the tracking client's own connection
//! Invalidations its own command causes (a write to a key it read, a lazy expiry) go out
//! after that command's reply, as in Redis 7.0: they are collected in a per-thread
//! [`Batch`] while the command runs; so are the prefix announcements of one command.
//! Invalidations for evictions made before a command runs go before its reply.
//!
//! Lock order: a slot's lock, then a shard of the table, then the tracker registry, then the
//! client registry, then a subscriber's state.

use crate::client::{ClientInfo, Tracker};
use crate::pubsub::{PubSub, Subscriber};
use crate::resp::Frame;
use crate::store::{TrackSink, TrackedSlots};
use bytes::Bytes;
use chkv_common::key_slot;
use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// The table is split by slot into this many locks.
const SHARDS: usize = 64;

/// Keys invalidated per round to get under `tracking-table-max-keys`, times the rounds that
/// have not managed so far plus one (Redis's effort).
const EVICT_EFFORT: usize = 100;

/// CLIENT TRACKING's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub redirect: u64,
    pub prefixes: Vec<Bytes>,
}

/// What one command run by a tracking client left for after its reply, collected on the
/// thread that runs it (see the module doc).
#[derive(Default)]
pub struct Batch {
    client: u64,
    /// Inside the command's handler (invalidations for the client wait for its reply).
    executing: bool,
    /// Invalidations for the client, after its reply (`None`: drop everything).
    pending: Vec<Option<Bytes>>,
    /// Keys whose registration for the client changes during the command consumed, and
    /// whether that change went unannounced (NOLOOP).
    consumed: Vec<(Bytes, bool)>,
    /// Keys changed during the command, for prefix trackers, with who changed them.
    bcast: Vec<(Bytes, u64)>,
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Starts collecting for a command of tracking client `client` on this thread.
pub fn begin(client: u64) {
    BATCH.with(|b| {
        *b.borrow_mut() = Some(Batch {
            client,
            ..Batch::default()
        })
    });
}

/// Ends the collection [`begin`] started; hand the batch to [`Tracking::flush`] after the
/// command's reply.
pub fn end() -> Option<Batch> {
    BATCH.with(|b| b.borrow_mut().take())
}

fn with_batch<R>(f: impl FnOnce(&mut Batch) -> R) -> Option<R> {
    BATCH.with(|b| b.borrow_mut().as_mut().map(f))
}

/// Marks the handler as running (or not); returns the previous mark.
pub fn set_executing(on: bool) -> bool {
    with_batch(|b| std::mem::replace(&mut b.executing, on)).unwrap_or(false)
}

/// The key -> client ids table of one shard, by slot.
type Shard = HashMap<u16, HashMap<Bytes, Vec<u64>>>;

/// A node's client tracking state.
pub struct Tracking {
    shards: Box<[Mutex<Shard>]>,
    slots: Arc<TrackedSlots>,
    trackers: RwLock<HashMap<u64, Arc<Tracker>>>,
    /// BCAST prefix -> the clients tracking it.
    prefixes: RwLock<BTreeMap<Bytes, Vec<u64>>>,
    /// Every connection by id (the node's registry), for redirect targets.
    clients: Arc<Mutex<BTreeMap<u64, Arc<ClientInfo>>>>,
    pubsub: Arc<PubSub>,
    keys: AtomicUsize,
    items: AtomicUsize,
    max_keys: AtomicU64,
    /// Rounds of eviction that did not get under the limit (Redis's timeout counter).
    effort: AtomicU32,
    /// Everyone was told to drop everything for the lease's lapse.
    lapsed: AtomicBool,
}

impl Tracking {
    pub fn new(
        slots: Arc<TrackedSlots>,
        clients: Arc<Mutex<BTreeMap<u64, Arc<ClientInfo>>>>,
        pubsub: Arc<PubSub>,
    ) -> Tracking {
        Tracking {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            slots,
            trackers: Default::default(),
            prefixes: Default::default(),
            clients,
            pubsub,
            keys: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            max_keys: AtomicU64::new(crate::config::DEFAULT_TRACKING_MAX_KEYS),
            effort: AtomicU32::new(0),
            lapsed: AtomicBool::new(false),
        }
    }

    pub fn set_max_keys(&self, n: u64) {
        self.max_keys.store(n, Relaxed);
    }

    /// Whether a command's changes must be collected for prefix (BCAST) trackers: its
    /// changes are announced together, after it (see [`begin`]).
    #[inline]
    pub fn batching(&self) -> bool {
        self.slots.bcast()
    }

    /// INFO's `tracking_clients`.
    pub fn clients(&self) -> usize {
        self.trackers.read().len()
    }

    /// INFO's `tracking_total_keys`.
    pub fn total_keys(&self) -> usize {
        self.keys.load(Relaxed)
    }

    /// INFO's `tracking_total_items`.
    pub fn total_items(&self) -> usize {
        self.items.load(Relaxed)
    }

    /// INFO's `tracking_total_prefixes`.
    pub fn total_prefixes(&self) -> usize {
        self.prefixes.read().len()
    }

    /// Turns tracking on for `info` (checked with [`crate::cmd::tracking::check_enable`]); `sub` is its outbox.
    /// Prefixes add to those it tracks already, as in Redis.
    pub fn enable(
        &self,
        info: &ClientInfo,
        sub: Arc<Subscriber>,
        current: Option<&Tracker>,
        o: Options,
    ) -> Arc<Tracker> {
        let mut prefixes = current.map(|c| c.prefixes.clone()).unwrap_or_default();
        if o.bcast {
            if o.prefixes.is_empty() && prefixes.is_empty() {
                prefixes.push(Bytes::new());
            }
            for p in o.prefixes {
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
        }
        let t = Arc::new(Tracker {
            id: info.id,
            bcast: o.bcast,
            optin: o.optin,
            optout: o.optout,
            noloop: o.noloop,
            redirect: o.redirect,
            prefixes,
            broken: AtomicBool::new(false),
            sub,
        });
        if t.bcast {
            let mut all = self.prefixes.write();
            for p in &t.prefixes {
                let ids = all.entry(p.clone()).or_default();
                if !ids.contains(&t.id) {
                    ids.push(t.id);
                }
            }
            self.slots.set_bcast(true);
        }
        self.trackers.write().insert(t.id, t.clone());
        *info.tracking.lock() = Some(t.clone());
        t
    }

    /// Turns tracking off for client `id`. What it read stays in the table (Redis does not
    /// clean up either): those entries are skipped and forgotten when their key changes.
    pub fn disable(&self, info: &ClientInfo) {
        let Some(t) = self.trackers.write().remove(&info.id) else {
            return;
        };
        *info.tracking.lock() = None;
        if t.bcast {
            let mut all = self.prefixes.write();
            for p in &t.prefixes {
                if let Some(ids) = all.get_mut(p) {
                    ids.retain(|&i| i != t.id);
                    if ids.is_empty() {
                        all.remove(p);
                    }
                }
            }
            self.slots.set_bcast(!all.is_empty());
        }
    }

    fn shard(&self, slot: u16) -> parking_lot::MutexGuard<'_, Shard> {
        self.shards[slot as usize % SHARDS].lock()
    }

    /// Remembers that `client` read `key`; returns whether it was not remembered yet.
    pub fn remember(&self, client: u64, key: &[u8]) -> bool {
        let slot = key_slot(key);
        let mut shard = self.shard(slot);
        let keys = shard.entry(slot).or_default();
        let inserted = match keys.get_mut(key) {
            Some(ids) if ids.contains(&client) => false,
            Some(ids) => {
                ids.push(client);
                true
            }
            None => {
                keys.insert(Bytes::copy_from_slice(key), vec![client]);
                self.keys.fetch_add(1, Relaxed);
                true
            }
        };
        if inserted {
            self.items.fetch_add(1, Relaxed);
        }
        // Under the shard's lock, like its clearing: the bit is set whenever keys are there.
        self.slots.set(slot, true);
        inserted
    }

    /// Whether `client`'s read of `key` is still remembered.
    pub fn remembered(&self, client: u64, key: &[u8]) -> bool {
        let slot = key_slot(key);
        self.shard(slot)
            .get(&slot)
            .and_then(|k| k.get(key))
            .is_some_and(|ids| ids.contains(&client))
    }

    /// A script run by `client` read nothing after all: the keys [`Tracking::remember`]
    /// newly remembered for it before it ran (`new` set) are forgotten again.
    pub fn forget_new(&self, client: u64, keys: &[(Bytes, bool)]) {
        for (k, new) in keys {
            if *new {
                self.forget(client, k);
            }
        }
    }

    /// After `client`'s read of `keys` (remembered before it ran): a key whose registration a
    /// change consumed meanwhile gets one more invalidation, after the reply (see the module
    /// doc), unless the change was the client's own unannounced one (NOLOOP), which leaves
    /// the value it read tracked.
    pub fn recheck(&self, client: u64, keys: Vec<(Bytes, bool)>) {
        for (k, _) in keys {
            if self.remembered(client, &k) {
                continue;
            }
            let consumed = with_batch(|b| b.consumed.iter().find(|(c, _)| *c == k).map(|c| c.1));
            match consumed.flatten() {
                // Its own change, not announced (NOLOOP): the value it read stays tracked.
                Some(true) => {
                    self.remember(client, &k);
                }
                // An invalidation goes out after the reply already.
                Some(false) => {}
                None => {
                    let queued = with_batch(|b| b.pending.push(Some(k.clone())));
                    if queued.is_none() {
                        if let Some(t) = self.trackers.read().get(&client) {
                            self.deliver(t, &Frame::Array(vec![Frame::Bulk(k)]));
                        }
                    }
                }
            }
        }
    }

    /// Forgets `client`'s read of `key`.
    fn forget(&self, client: u64, key: &[u8]) {
        let slot = key_slot(key);
        let mut shard = self.shard(slot);
        let Some(keys) = shard.get_mut(&slot) else {
            return;
        };
        let Some(ids) = keys.get_mut(key) else {
            return;
        };
        let before = ids.len();
        ids.retain(|&i| i != client);
        self.items.fetch_sub(before - ids.len(), Relaxed);
        if ids.is_empty() {
            keys.remove(key);
            self.keys.fetch_sub(1, Relaxed);
            if keys.is_empty() {
                shard.remove(&slot);
                self.slots.set(slot, false);
            }
        }
    }

    /// Takes `key`'s readers out of the table.
    fn take_key(&self, slot: u16, key: &[u8]) -> Option<Vec<u64>> {
        let mut shard = self.shard(slot);
        let keys = shard.get_mut(&slot)?;
        let ids = keys.remove(key)?;
        self.keys.fetch_sub(1, Relaxed);
        self.items.fetch_sub(ids.len(), Relaxed);
        if keys.is_empty() {
            shard.remove(&slot);
            self.slots.set(slot, false);
        }
        Some(ids)
    }

    /// Takes every key of `slot` out of the table.
    fn take_slot(&self, slot: u16) -> HashMap<Bytes, Vec<u64>> {
        let mut shard = self.shard(slot);
        let keys = shard.remove(&slot).unwrap_or_default();
        self.slots.set(slot, false);
        self.keys.fetch_sub(keys.len(), Relaxed);
        self.items
            .fetch_sub(keys.values().map(Vec::len).sum(), Relaxed);
        keys
    }

    /// Some key of the table, taken out with its readers (for the size limit).
    fn take_any(&self, start: usize) -> Option<(Bytes, Vec<u64>)> {
        for i in 0..SHARDS {
            let mut shard = self.shards[(start + i) % SHARDS].lock();
            let Some((&slot, keys)) = shard.iter_mut().next() else {
                continue;
            };
            let key = keys.keys().next().cloned()?;
            let ids = keys.remove(&key).unwrap_or_default();
            self.keys.fetch_sub(1, Relaxed);
            self.items.fetch_sub(ids.len(), Relaxed);
            if keys.is_empty() {
                shard.remove(&slot);
                self.slots.set(slot, false);
            }
            return Some((key, ids));
        }
        None
    }

    /// Sends `keys` (an array of keys, or null) to tracker `t`'s destination.
    fn deliver(&self, t: &Tracker, keys: &Frame) {
        let (limit, now) = (self.pubsub.limit(), Instant::now());
        if t.redirect == 0 {
            t.sub.push_invalidation(keys, false, limit, now);
            return;
        }
        let target = self.clients.lock().get(&t.redirect).cloned();
        match target {
            Some(info) => {
                if let Some(s) = info.subscriber.get() {
                    s.push_invalidation(keys, true, limit, now);
                }
            }
            None => {
                // Redis tells a RESP3 client that its messages have nowhere to go.
                t.broken.store(true, Relaxed);
                t.sub.push_resp3(
                    Frame::Push(vec![
                        Frame::bulk_static("tracking-redir-broken"),
                        Frame::Integer(i64::try_from(t.redirect).unwrap_or(-1)),
                    ]),
                    limit,
                    now,
                );
            }
        }
    }

    /// `key` changed: its default-mode readers `ids` are told. `by_client`: the change came
    /// from the command running on this thread (NOLOOP applies); not for the table's own
    /// evictions.
    fn invalidate(&self, ids: &[u64], key: &[u8], by_client: bool) {
        let trackers = self.trackers.read();
        for id in ids {
            let Some(t) = trackers.get(id) else {
                continue;
            };
            if t.bcast {
                // Reads from before it switched to BCAST: its prefixes cover it now.
                continue;
            }
            let mine = with_batch(|b| {
                if b.client != *id {
                    return false;
                }
                let skip = by_client && t.noloop;
                b.consumed.push((Bytes::copy_from_slice(key), skip));
                if skip {
                    return true;
                }
                if b.executing {
                    b.pending.push(Some(Bytes::copy_from_slice(key)));
                    return true;
                }
                false
            });
            if mine != Some(true) {
                self.deliver(t, &Frame::Array(vec![Frame::bulk(key)]));
            }
        }
    }

    /// Announces changed keys to the prefix trackers whose prefixes they match, one message
    /// per prefix and client; NOLOOP clients do not hear of their own changes.
    fn announce(&self, changed: &[(Bytes, u64)]) {
        let prefixes = self.prefixes.read();
        if prefixes.is_empty() {
            return;
        }
        let trackers = self.trackers.read();
        for (prefix, ids) in prefixes.iter() {
            let matching: Vec<&(Bytes, u64)> = changed
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .collect();
            if matching.is_empty() {
                continue;
            }
            for id in ids {
                let Some(t) = trackers.get(id) else {
                    continue;
                };
                let mut keys: Vec<&Bytes> = matching
                    .iter()
                    .filter(|(_, by)| !(t.noloop && by == id))
                    .map(|(k, _)| k)
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                keys.sort();
                keys.dedup();
                let frame =
                    Frame::Array(keys.into_iter().map(|k| Frame::Bulk(k.clone())).collect());
                self.deliver(t, &frame);
            }
        }
    }

    /// Sends what a command left for after its reply (see [`begin`]).
    pub fn flush(&self, b: Batch) {
        if !b.pending.is_empty() {
            let t = self.trackers.read().get(&b.client).cloned();
            if let Some(t) = t {
                for p in &b.pending {
                    let frame = match p {
                        Some(k) => Frame::Array(vec![Frame::Bulk(k.clone())]),
                        None => Frame::Null,
                    };
                    self.deliver(&t, &frame);
                }
            }
        }
        if !b.bcast.is_empty() {
            self.announce(&b.bcast);
        }
    }

    /// Tells the tracking clients (`bcast` selects which mode) to drop everything: the
    /// running client after its reply.
    fn everything(&self, bcast: bool) {
        let trackers: Vec<Arc<Tracker>> = self
            .trackers
            .read()
            .values()
            .filter(|t| t.bcast == bcast)
            .cloned()
            .collect();
        for t in trackers {
            let later = with_batch(|b| {
                if b.client == t.id && b.executing {
                    b.pending.push(None);
                    true
                } else {
                    false
                }
            });
            if later != Some(true) {
                self.deliver(&t, &Frame::Null);
            }
        }
    }

    /// Empties the table.
    fn wipe(&self) {
        for (i, shard) in self.shards.iter().enumerate() {
            let mut shard = shard.lock();
            for (&slot, keys) in shard.iter() {
                debug_assert_eq!(slot as usize % SHARDS, i);
                self.slots.set(slot, false);
                self.keys.fetch_sub(keys.len(), Relaxed);
                self.items
                    .fetch_sub(keys.values().map(Vec::len).sum(), Relaxed);
            }
            shard.clear();
        }
    }

    /// Before FLUSHALL/FLUSHDB empties the store: default-mode clients are told to drop
    /// everything and the table is emptied (a read between this and the flush registers
    /// again, and the flush invalidates that key).
    pub fn flush_starting(&self) {
        if self.clients() == 0 && self.total_keys() == 0 {
            return;
        }
        self.everything(false);
        self.wipe();
    }

    /// After FLUSHALL/FLUSHDB: prefix trackers are told to drop everything (after, so a
    /// read of theirs during the flush cannot keep an old value).
    pub fn flush_done(&self) {
        if !self.prefixes.read().is_empty() {
            self.everything(true);
        }
    }

    /// Called by the cron with whether the node may serve its slots: the first time it may
    /// not (its lease lapsed; another node may be given its slots), every tracking client
    /// is told to drop everything and the table is emptied.
    pub fn lease_state(&self, serving: bool) {
        if serving {
            self.lapsed.store(false, Relaxed);
        } else if !self.lapsed.swap(true, Relaxed) && self.clients() + self.total_keys() > 0 {
            self.everything(false);
            self.everything(true);
            self.wipe();
        }
    }

    /// Gets the table under `tracking-table-max-keys` by invalidating keys (up to an effort
    /// that grows while it does not manage), like Redis before each command and in its cron.
    pub fn enforce_limit(&self) {
        let max = self.max_keys.load(Relaxed);
        if max == 0 || self.keys.load(Relaxed) as u64 <= max {
            self.effort.store(0, Relaxed);
            return;
        }
        let rounds = self.effort.load(Relaxed) as usize + 1;
        let mut budget = EVICT_EFFORT.saturating_mul(rounds);
        let start = rand::random::<u32>() as usize;
        while budget > 0 && self.keys.load(Relaxed) as u64 > max {
            let Some((key, ids)) = self.take_any(start) else {
                break;
            };
            self.invalidate(&ids, &key, false);
            budget -= 1;
        }
        if self.keys.load(Relaxed) as u64 > max {
            self.effort.fetch_add(1, Relaxed);
        } else {
            self.effort.store(0, Relaxed);
        }
    }

    /// Slots left this node: their tracked keys are invalidated, and prefix trackers told of
    /// their keys that match (see [`TrackSink::slot`]).
    fn slot_gone(&self, slot: u16, keys: Option<&mut dyn Iterator<Item = &[u8]>>) {
        if self.slots.keyed(slot) {
            let mut by_client: HashMap<u64, Vec<Bytes>> = HashMap::new();
            for (k, ids) in self.take_slot(slot) {
                for id in ids {
                    by_client.entry(id).or_default().push(k.clone());
                }
            }
            for (id, keys) in by_client {
                for k in keys {
                    self.invalidate(&[id], &k, false);
                }
            }
        }
        if let Some(keys) = keys {
            let prefixes: Vec<Bytes> = self.prefixes.read().keys().cloned().collect();
            if prefixes.is_empty() {
                return;
            }
            let changed: Vec<(Bytes, u64)> = keys
                .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
                .map(|k| (Bytes::copy_from_slice(k), 0))
                .collect();
            if !changed.is_empty() {
                self.announce(&changed);
            }
        }
    }
}

/// A read that a tracking connection (mode `t`, CLIENT CACHING `caching`) sent to another
/// node: its keys are invalidated after the reply (their writes happen there, so the value
/// must not be kept). `keys` are those of the request that this node does not own.
pub fn forwarded(t: &Tracker, caching: bool, keys: impl Iterator<Item = Bytes>) {
    if !t.bcast && ((t.optin && !caching) || (t.optout && caching)) {
        return;
    }
    with_batch(|b| {
        for k in keys {
            if t.bcast && !t.prefixes.iter().any(|p| k.starts_with(p)) {
                continue;
            }
            b.pending.push(Some(k));
        }
    });
}

impl TrackSink for Tracking {
    fn key(&self, slot: u16, key: &[u8]) {
        if self.slots.keyed(slot) {
            if let Some(ids) = self.take_key(slot, key) {
                self.invalidate(&ids, key, true);
            }
        }
        if !self.prefixes.read().is_empty() {
            let k = Bytes::copy_from_slice(key);
            let batched = with_batch(|b| {
                let by = b.client;
                b.bcast.push((k.clone(), by));
            });
            if batched.is_none() {
                self.announce(&[(k, 0)]);
            }
        }
    }

    fn slot(&self, slot: u16, keys: Option<&mut dyn Iterator<Item = &[u8]>>) {
        self.slot_gone(slot, keys);
    }
}

#[cfg(test)]
mod tests;
