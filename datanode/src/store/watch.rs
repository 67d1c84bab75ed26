//! The "key modified" signal: who is told when a key changes.
//!
//! Every change to a key goes through a [`SlotGuard`](super::SlotGuard) method, and each of
//! those ends in one call, `SlotGuard::modified(key)` (or `modified_all` for a whole slot:
//! FLUSHALL, a slot handed to another node). That call is the single place where the store
//! signals a change, whatever caused it: a write from any connection on any thread, a
//! lazy or active expiry, an eviction, a flush, a slot moving away. A slot nobody watches
//! pays one load from a bitmap of watched slots (`Db::watched`), which stays in cache.
//!
//! Today the listeners are WATCH's: each client that WATCHes has one [`Watcher`], registered
//! under every key it watches, and any change to one of them marks it dirty, so its EXEC
//! aborts. Registration happens under the slot's lock, like the changes, so no change can
//! slip between a WATCH and the registration.
//!
//! The same `modified` call also tells blocked clients (the ready hook, for slots in
//! [`BlockedSlots`](super::BlockedSlots)) and client tracking (the
//! [`TrackSink`](super::TrackSink), for slots in [`TrackedSlots`](super::TrackedSlots)),
//! each behind its own bitmap of slots. A listener per key registers with
//! [`SlotGuard::watch`](super::SlotGuard::watch) /
//! [`SlotGuard::unwatch`](super::SlotGuard::unwatch) and reacts in [`Watcher::fire`]; a new
//! mutation path in the store must call `modified`/`modified_all` after changing a key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One client's watch: set dirty by any change to any key it watches.
#[derive(Debug, Default)]
pub struct Watcher {
    dirty: AtomicBool,
}

impl Watcher {
    pub fn new() -> Arc<Watcher> {
        Arc::new(Watcher::default())
    }

    /// Whether a watched key changed since the watch began.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Marks the watch dirty (a watched key changed, or its slot left this node).
    pub fn fire(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// One registration of a watcher on a key.
#[derive(Debug)]
struct Entry {
    watcher: Arc<Watcher>,
    /// The key existed but had logically expired when it was watched (Redis's "stale" watched
    /// key): its deletion is no change. Cleared once the key is gone.
    stale: bool,
}

/// The watched keys of one slot.
#[derive(Debug, Default)]
pub struct SlotWatches {
    keys: HashMap<Box<[u8]>, Vec<Entry>>,
}

impl SlotWatches {
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(super) fn add(&mut self, key: &[u8], watcher: &Arc<Watcher>, stale: bool) {
        let list = self.keys.entry(key.into()).or_default();
        if !list.iter().any(|e| Arc::ptr_eq(&e.watcher, watcher)) {
            list.push(Entry {
                watcher: watcher.clone(),
                stale,
            });
        }
    }

    pub(super) fn remove(&mut self, key: &[u8], watcher: &Arc<Watcher>) {
        if let Some(list) = self.keys.get_mut(key) {
            list.retain(|e| !Arc::ptr_eq(&e.watcher, watcher));
            if list.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Whether `watcher` watches `key` as a key that was live when watched.
    pub(super) fn watches_live(&self, key: &[u8], watcher: &Arc<Watcher>) -> bool {
        self.keys.get(key).is_some_and(|l| {
            l.iter()
                .any(|e| Arc::ptr_eq(&e.watcher, watcher) && !e.stale)
        })
    }

    /// `key` changed; `exists` tells whether it is still in the table. Deleting a key that
    /// was already stale when watched is no logical change (Redis 7).
    pub(super) fn key_modified(&mut self, key: &[u8], exists: bool) {
        if let Some(list) = self.keys.get_mut(key) {
            for e in list.iter_mut() {
                if e.stale && !exists {
                    e.stale = false;
                } else {
                    e.watcher.fire();
                }
            }
        }
    }

    /// The slot is being emptied (FLUSHALL, FLUSHDB): watchers of keys that `existed` fire,
    /// except for keys that were stale when watched.
    pub(super) fn slot_flushed(&mut self, existed: impl Fn(&[u8]) -> bool) {
        for (key, list) in self.keys.iter_mut() {
            if !existed(key) {
                continue;
            }
            for e in list.iter_mut() {
                if e.stale {
                    e.stale = false;
                } else {
                    e.watcher.fire();
                }
            }
        }
    }

    /// Every watcher of the slot fires (the slot left this node: nothing here can be trusted
    /// to stay unchanged).
    pub(super) fn fire_all(&self) {
        self.keys.values().flatten().for_each(|e| e.watcher.fire());
    }
}
