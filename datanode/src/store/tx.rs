//! Slot locking: one slot, several, and the slots of a whole transaction ([`TxLock`]).

use super::*;

impl Db {
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
}

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
