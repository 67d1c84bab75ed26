//! A locked slot's reads and writes ([`SlotGuard`]), and the signals every change sends.

use super::*;

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
    pub(super) fn live(&mut self, key: &[u8], now: u64) -> Option<Bucket> {
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
    pub(super) fn remove_at(
        &mut self,
        pos: usize,
        expired: bool,
    ) -> Option<(Kv, Option<Value>, u64)> {
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
    /// that grow. The volatile list shrinks at a third, to 1.5 times its length. A key
    /// table of 4,096 entries or more shrinks in steps, keeping room for half its entries
    /// again (so in effect at about a third; see `StepTable::shrink_to`).
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
        if shrunk && t.sketch.words() > 0 {
            let cap = t.map.capacity();
            t.sketch.fit(cap);
        }
        // Also after a removal that ended a resize in steps (its old table freed).
        self.sync_table_mem();
    }

    /// Re-charges the table's arrays after a capacity may have changed.
    pub(super) fn sync_table_mem(&mut self) {
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
