//! Shared state that every request touches, split so that threads do not write the same
//! cache line.
//!
//! A counter bumped by every command (commands processed, bytes in and out, keys, used
//! memory) or a lock taken by every command (the handoff gate) is one cache line that each
//! worker thread writes in turn. Each write takes the line away from the other cores, and on
//! a busy node that transfer costs more than the command itself. Here each thread writes its
//! own stripe (one cache line each), and the rare reader (INFO, CONFIG RESETSTAT, a handoff
//! freeze) visits them all.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes per lock. Threads beyond this many share stripes, which costs speed, never
/// correctness.
const STRIPES: usize = 16;

/// Counter stripes owned by one thread each: the first `OWNED` threads to touch a counter
/// change theirs with a plain load and store. An atomic read-modify-write (`lock add` on
/// x86) would be correct too, but it is a full memory barrier: on a worker that does one
/// per command it stalls the command behind the cache misses of its table lookup.
const OWNED: usize = 16;
/// Counter stripes that later threads share, changed with atomic read-modify-writes.
const SHARED: usize = 4;

/// This thread's number: threads are numbered in the order they first ask.
#[inline]
pub(crate) fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // A const initializer: no lazy-init state to test on every read.
        static NUMBER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    NUMBER.with(|n| match n.get() {
        usize::MAX => {
            let assigned = NEXT.fetch_add(1, Relaxed) % (usize::MAX - 1);
            n.set(assigned);
            assigned
        }
        assigned => assigned,
    })
}

/// This thread's lock stripe.
fn stripe() -> usize {
    thread_number() % STRIPES
}

/// One value per cache line (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// A counter that many threads change and few read: [`Counter::get`] sums the stripes.
///
/// The sum is not a snapshot: read while other threads add and subtract, it can be off by
/// the changes in flight (a key counted in by one thread and out by another may be seen
/// leaving first). It never goes below zero, and once the writers are done it is exact.
#[derive(Default)]
pub struct Counter {
    cells: [Padded<AtomicU64>; OWNED + SHARED],
    /// The stripes' sum at the last [`Counter::reset`]: owners write their stripes without
    /// read-modify-writes, so a reset cannot zero them.
    base: AtomicU64,
}

impl Counter {
    pub fn add(&self, n: u64) {
        let t = thread_number();
        if t < OWNED {
            // Only this thread writes this stripe; readers load it atomically.
            let c = &self.cells[t].0;
            c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            self.cells[OWNED + t % SHARED].0.fetch_add(n, Relaxed);
        }
    }

    /// Subtracts `n`; the stripe may wrap (another stripe holds the matching add).
    pub fn sub(&self, n: u64) {
        self.add(n.wrapping_neg());
    }

    /// Moves the counter from `old` to `new` (a size that changed), up or down.
    pub fn change(&self, old: u64, new: u64) {
        // Stripes wrap, so a decrease is the wrapped difference added.
        self.add(new.wrapping_sub(old));
    }

    fn raw_sum(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(c.0.load(Relaxed)))
    }

    pub fn get(&self) -> u64 {
        let sum = self.raw_sum().wrapping_sub(self.base.load(Relaxed));
        // A sum that wrapped below zero (a subtraction seen before its addition) reads 0.
        if sum > i64::MAX as u64 {
            0
        } else {
            sum
        }
    }

    /// Sets the counter to zero (CONFIG RESETSTAT); changes racing with it may survive.
    pub fn reset(&self) {
        self.base.store(self.raw_sum(), Relaxed);
    }
}

/// Rows of counters, one row per thread stripe (as [`Counter`]'s cells): `add(i, n)` changes
/// counter `i` of this thread's row without a locked instruction, `get(i)` sums a column.
/// For many counters bumped together on a hot path (per-command statistics), where a
/// [`Counter`] each would cost 2.5 KiB apiece.
pub struct CounterTable {
    width: usize,
    rows: Box<[Padded<Box<[AtomicU64]>>]>,
}

impl CounterTable {
    /// `width` counters, all zero.
    pub fn new(width: usize) -> CounterTable {
        let row = || (0..width).map(|_| AtomicU64::new(0)).collect();
        CounterTable {
            width,
            rows: (0..OWNED + SHARED).map(|_| Padded(row())).collect(),
        }
    }

    /// Counters per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Adds `n` to counter `i` (ignored when out of range).
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        let t = thread_number();
        if t < OWNED {
            if let Some(c) = self.rows[t].0.get(i) {
                // Only this thread writes this row; readers load it atomically.
                c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
            }
        } else if let Some(c) = self.rows[OWNED + t % SHARED].0.get(i) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Adds each `(i, n)` of `adds`, finding this thread's row once.
    #[inline]
    pub fn add_all(&self, adds: &[(usize, u64)]) {
        let t = thread_number();
        if t < OWNED {
            let row = &self.rows[t].0;
            for &(i, n) in adds {
                if let Some(c) = row.get(i) {
                    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
                }
            }
        } else {
            let row = &self.rows[OWNED + t % SHARED].0;
            for &(i, n) in adds {
                if let Some(c) = row.get(i) {
                    c.fetch_add(n, Relaxed);
                }
            }
        }
    }

    /// The sum of counter `i` over every row.
    pub fn get(&self, i: usize) -> u64 {
        self.rows.iter().fold(0u64, |acc, r| {
            acc.wrapping_add(r.0.get(i).map_or(0, |c| c.load(Relaxed)))
        })
    }
}

/// A reader-writer lock for many frequent readers and a rare writer: a reader locks only its
/// thread's stripe, a writer locks every stripe (always in the same order).
pub struct StripedRwLock {
    stripes: [Padded<RwLock<()>>; STRIPES],
}

impl Default for StripedRwLock {
    fn default() -> Self {
        StripedRwLock {
            stripes: std::array::from_fn(|_| Padded(RwLock::new(()))),
        }
    }
}

/// Holds every stripe of a [`StripedRwLock`] for writing.
pub struct StripedWriteGuard<'a> {
    _guards: [RwLockWriteGuard<'a, ()>; STRIPES],
}

impl StripedRwLock {
    /// Shared access; excludes writers only.
    pub fn read(&self) -> RwLockReadGuard<'_, ()> {
        self.stripes[stripe()].0.read()
    }

    /// Exclusive access: waits for every reader of every stripe.
    pub fn write(&self) -> StripedWriteGuard<'_> {
        StripedWriteGuard {
            _guards: std::array::from_fn(|i| self.stripes[i].0.write()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn counter_sums_every_threads_changes() {
        let c = Arc::new(Counter::default());
        let threads: Vec<_> = (0..2 * (OWNED + SHARED) as u64)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(t + 2);
                        c.sub(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("counter thread");
        }
        let want: u64 = (0..2 * (OWNED + SHARED) as u64)
            .map(|t| (t + 1) * 1000)
            .sum();
        assert_eq!(c.get(), want);
        c.reset();
        assert_eq!(c.get(), 0);
        c.change(0, 10);
        c.change(10, 4);
        assert_eq!(c.get(), 4);
    }

    #[test]
    fn counter_table_sums_columns_over_threads() {
        let t = Arc::new(CounterTable::new(3));
        let threads: Vec<_> = (0..2 * (OWNED + SHARED))
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.add(0, 1);
                        t.add(2, 3);
                        t.add(99, 1);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().expect("table thread");
        }
        let n = 2 * (OWNED + SHARED) as u64 * 1000;
        assert_eq!((t.get(0), t.get(1), t.get(2), t.get(99)), (n, 0, 3 * n, 0));
    }

    #[test]
    fn counter_never_reads_below_zero() {
        let c = Counter::default();
        // A subtraction on this thread's stripe whose addition landed on another stripe
        // that has not been counted: the sum wraps, and reads as zero.
        c.sub(5);
        assert_eq!(c.get(), 0);
        c.add(7);
        assert_eq!(c.get(), 2);
    }

    #[test]
    fn writer_excludes_readers_on_every_thread() {
        let lock = Arc::new(StripedRwLock::default());
        let inside = Arc::new(AtomicU64::new(0));
        let writing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // Readers that have read at least once: on a loaded machine a thread may not run
        // at all during the writer's rounds, so the writer goes on until every one has.
        let ran = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (lock, inside, writing, stop, ran) = (
                    lock.clone(),
                    inside.clone(),
                    writing.clone(),
                    stop.clone(),
                    ran.clone(),
                );
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Relaxed) {
                        let _r = lock.read();
                        inside.fetch_add(1, Relaxed);
                        assert!(!writing.load(Relaxed), "a reader ran during a write");
                        inside.fetch_sub(1, Relaxed);
                        if seen == 0 {
                            ran.fetch_add(1, Relaxed);
                        }
                        seen += 1;
                    }
                    seen
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut rounds = 0;
        while rounds < 200 || ran.load(Relaxed) < 4 {
            assert!(std::time::Instant::now() < deadline, "a reader never ran");
            rounds += 1;
            let _w = lock.write();
            writing.store(true, Relaxed);
            assert_eq!(
                inside.load(Relaxed),
                0,
                "a reader was inside during a write"
            );
            std::thread::yield_now();
            writing.store(false, Relaxed);
        }
        stop.store(true, Relaxed);
        for r in readers {
            assert!(r.join().expect("reader thread") > 0);
        }
    }
}
