//! `maxmemory` and eviction: what makes the store a cache.
//!
//! Like Redis, eviction is approximate and sampled: each eviction looks at
//! `maxmemory-samples` random keys (a random slot through the nonempty-slot bitmap, then a
//! random entry: O(1) each), merges them into a pool of the 16 best candidates seen so far,
//! and evicts the best one that is still valid. It runs on the write path, before a command
//! that may grow memory (`DENYOOM`), with a time budget per command, and in the background
//! cron until memory is back under the limit.
//!
//! Policies (Redis's names and meaning):
//! - `noeviction`: writes that need memory get `-OOM`; reads and DEL keep working.
//! - `allkeys-lru` / `volatile-lru`: evict the key idle the longest (a per-key clock in
//!   seconds, touched on access).
//! - `allkeys-lfu` / `volatile-lfu`: evict the least frequently used key. Each key keeps
//!   Redis's 8-bit logarithmic counter with decay (OBJECT FREQ, `lfu-log-factor`,
//!   `lfu-decay-time`), packed with a 16-bit minute stamp into the same 32-bit field the LRU
//!   clock uses, as Redis does. On top of it, each slot keeps a small count-min sketch of the
//!   accesses to its keys *including keys that are not stored* (TinyLFU): it remembers the
//!   popularity of keys after they are evicted, and ranks candidates before the coarse counter
//!   does. A key created while memory is full enters the candidate pool at once, so if it is
//!   colder than the keys already sampled it is the next one to go, unless it is read first
//!   (TinyLFU's admission, without ever refusing the write). Measured with
//!   `helper/bench-hit-ratio.sh`, see the README.
//! - `allkeys-random` / `volatile-random`: evict a random key (with a TTL, for volatile-*).
//! - `volatile-ttl`: evict the key with the nearest expiry among the sampled keys with a TTL.
//!
//! `volatile-*` policies only evict keys with a TTL; when none is left the write gets `-OOM`,
//! like Redis.

use super::{Bucket, Db, Kv, SlotGuard, SlotTable, NOT_VOLATILE, NO_EXPIRY};
use chkv_common::SLOT_COUNT;
use parking_lot::Mutex;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Eviction policy (`maxmemory-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    /// Every policy, in the order Redis lists them in its CONFIG SET error.
    pub const ALL: [Policy; 8] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllkeysLru,
        Policy::AllkeysLfu,
        Policy::AllkeysRandom,
        Policy::NoEviction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllkeysLru => "allkeys-lru",
            Policy::AllkeysLfu => "allkeys-lfu",
            Policy::AllkeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Parses a policy name, case-insensitively.
    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Redis's text for a name that is not a policy.
    pub fn choices_error() -> String {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        format!(
            "argument(s) must be one of the following: {}",
            names.join(", ")
        )
    }

    /// Whether the policy tracks access frequency (the access field holds LFU data).
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// Whether only keys with a TTL may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn is_random(self) -> bool {
        matches!(self, Policy::AllkeysRandom | Policy::VolatileRandom)
    }

    fn to_u8(self) -> u8 {
        Policy::ALL.iter().position(|p| *p == self).unwrap_or(7) as u8
    }

    fn from_u8(v: u8) -> Policy {
        Policy::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(Policy::NoEviction)
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The eviction settings (the `maxmemory*` and `lfu-*` configuration parameters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictionConfig {
    /// Bytes of `used_memory` above which keys are evicted; 0 = no limit.
    pub maxmemory: u64,
    pub policy: Policy,
    /// Keys sampled per eviction (`maxmemory-samples`; the store uses at most [`MAX_SAMPLES`]).
    pub samples: u32,
    /// `lfu-log-factor`: how many hits it takes to grow the LFU counter.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`: minutes per one-step decay of the LFU counter (0 = never).
    pub lfu_decay_time: u32,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        EvictionConfig {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

/// Most keys sampled per eviction (Redis's bound for `maxmemory-samples`).
pub const MAX_SAMPLES: u32 = 64;
/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;
/// Time one command may spend evicting before it goes ahead anyway (Redis's default
/// `maxmemory-eviction-tenacity` of 10 gives 500 µs); the cron finishes the job.
const COMMAND_BUDGET: Duration = Duration::from_micros(500);
/// Sampling rounds before falling back to a random eligible key, so that eviction always
/// makes progress even when every candidate goes stale under heavy churn.
const MAX_ROUNDS: usize = 16;
/// Redis's initial LFU counter for a new key.
pub const LFU_INIT_VAL: u8 = 5;

/// The eviction state shared by the store: settings as atomics (read on every access, so
/// no lock), and the candidate pool.
pub struct Evictor {
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    lfu_log_factor: AtomicU32,
    lfu_decay_time: AtomicU32,
    /// Never held while a slot is being locked, so a slot holder may take it (lock order:
    /// slot, then pool).
    pool: Mutex<Pool>,
}

impl Default for Evictor {
    fn default() -> Self {
        let c = EvictionConfig::default();
        Evictor {
            maxmemory: AtomicU64::new(c.maxmemory),
            policy: AtomicU8::new(c.policy.to_u8()),
            samples: AtomicU32::new(c.samples),
            lfu_log_factor: AtomicU32::new(c.lfu_log_factor),
            lfu_decay_time: AtomicU32::new(c.lfu_decay_time),
            pool: Mutex::new(Pool::default()),
        }
    }
}

impl Evictor {
    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Relaxed))
    }

    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Relaxed)
    }

    /// Whether the access field holds LFU data.
    fn lfu(&self) -> bool {
        self.policy().is_lfu()
    }

    /// Whether the frequency sketches are kept: an LFU policy with a memory limit.
    pub(super) fn admission(&self) -> bool {
        self.lfu() && self.maxmemory() > 0
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// A possible victim, remembered between evictions.
#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    /// Higher is a better victim.
    score: u64,
    slot: u16,
    idx: u32,
    /// Address of the entry's `Kv` block: tells whether `idx` still holds the same entry.
    ptr: usize,
}

/// The best candidates seen so far, in ascending score order.
#[derive(Default)]
pub(super) struct Pool {
    c: Vec<Candidate>,
}

impl Pool {
    fn offer(&mut self, cand: Candidate) {
        if let Some(i) = self
            .c
            .iter()
            .position(|e| e.slot == cand.slot && e.ptr == cand.ptr)
        {
            // Same entry sampled again: keep its newer score.
            self.c.remove(i);
        } else if self.c.len() >= POOL_SIZE {
            if self.c[0].score >= cand.score {
                return;
            }
            self.c.remove(0);
        }
        let at = self.c.partition_point(|e| e.score <= cand.score);
        self.c.insert(at, cand);
    }

    fn pop_best(&mut self) -> Option<Candidate> {
        self.c.pop()
    }
}

// ---- LFU counter (Redis's `LFULogIncr` / `LFUDecrAndReturn`) ----

/// Minutes on Redis's 16-bit LFU clock.
fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xFFFF) as u32
}

/// The LFU counter of an access field, decayed by one per `decay_time` minutes since it was
/// last updated.
pub fn lfu_decayed(access: u32, now_ms: u64, decay_time: u32) -> u8 {
    let counter = (access & 0xFF) as u8;
    if decay_time == 0 {
        return counter;
    }
    let stamp = (access >> 8) & 0xFFFF;
    let elapsed = lfu_minutes(now_ms).wrapping_sub(stamp) & 0xFFFF;
    let periods = elapsed / decay_time;
    counter.saturating_sub(periods.min(255) as u8)
}

/// Grows a counter with probability 1 / ((counter - LFU_INIT_VAL) * factor + 1): the more
/// hits a key has, the more it takes to add one.
fn lfu_log_incr(counter: u8, factor: u32) -> u8 {
    if counter == 255 {
        return counter;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * factor as f64 + 1.0);
    // 53 random bits as a uniform float in [0, 1).
    let r = (rand_u64() >> 11) as f64 / (1u64 << 53) as f64;
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// An LFU access field: the minute stamp and the counter.
fn lfu_pack(now_ms: u64, counter: u8) -> u32 {
    (lfu_minutes(now_ms) << 8) | counter as u32
}

// ---- a fast per-thread random source for sampling and the LFU coin ----

thread_local! {
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>());
}

/// wyrand: statistically fine for sampling, a few instructions per call.
fn rand_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = (x as u128).wrapping_mul((x ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    })
}

fn rand_below(n: usize) -> usize {
    ((rand_u64() as u128 * n as u128) >> 64) as usize
}

// ---- TinyLFU frequency sketch ----

/// A count-min sketch of one slot's accesses: 4-bit counters, four per key, 16 per word.
///
/// Sized with the slot's table (16 counters per entry of capacity), so it needs no lock of
/// its own and its memory is charged to the table. After [`RESET_PER_COUNTER`] increments
/// per counter all counters are halved, so popularity fades and a formerly hot key does not
/// stay forever (TinyLFU's reset). Growing copies the array, which keeps every estimate (a
/// counter's index is the hash masked to the array size); shrinking folds it.
///
/// The sizes were tuned on `helper/bench-hit-ratio.sh` (Zipf 0.99, 100-byte values, about
/// 6 keys per slot; hit ratio, keys held): 4 counters per entry 0.782, 96k; 8: 0.793, 94k;
/// 16: 0.796, 90k; 32: 0.793, 84k (more counters, fewer keys in the same memory). Halving
/// after 2, 4, 8 increments per counter: 0.796, 0.797, 0.798.
#[derive(Default)]
pub(super) struct Sketch {
    words: Box<[u64]>,
}

/// Increments per counter between two halvings of a sketch.
const RESET_PER_COUNTER: usize = 8;

/// Per-nibble maximum of two words of 4-bit counters.
fn nibble_max(a: u64, b: u64) -> u64 {
    (0..16).fold(0, |acc, i| {
        let s = i * 4;
        acc | (((a >> s) & 15).max((b >> s) & 15) << s)
    })
}

/// Largest sketch per slot: 2^16 counters (each index takes 16 hash bits).
const SKETCH_MAX_WORDS: usize = (1 << 16) / 16;

impl Sketch {
    pub(super) fn words(&self) -> usize {
        self.words.len()
    }

    /// Resizes for a table of capacity `cap`. Returns whether the size changed. Growing
    /// copies the array (a key's counters keep their values); shrinking folds it, keeping the
    /// larger of the two counters that merge (never under-counting a key).
    pub(super) fn fit(&mut self, cap: usize) -> bool {
        let want = cap.next_power_of_two().clamp(2, SKETCH_MAX_WORDS);
        let have = self.words.len();
        if have == want {
            return false;
        }
        let mut w = vec![0u64; want];
        if have > 0 {
            if want > have {
                for (i, x) in w.iter_mut().enumerate() {
                    *x = self.words[i % have];
                }
            } else {
                for (i, old) in self.words.iter().enumerate() {
                    w[i % want] = nibble_max(w[i % want], *old);
                }
            }
        }
        self.words = w.into_boxed_slice();
        true
    }

    /// Drops the counters (policy change, or the slot emptied).
    pub(super) fn clear(&mut self) {
        self.words = Box::default();
    }

    /// The four (word, shift) positions of a key hash.
    fn positions(&self, hash: u64) -> [(usize, u32); 4] {
        let mask = self.words.len() * 16 - 1;
        // Remix, so the four 16-bit indexes do not follow the map's bucket bits.
        let mut h = hash ^ (hash >> 29);
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        std::array::from_fn(|k| {
            let c = ((h >> (16 * k)) as usize) & mask;
            (c / 16, (c % 16) as u32 * 4)
        })
    }

    fn estimate(&self, hash: u64) -> u8 {
        if self.words.is_empty() {
            return 0;
        }
        self.positions(hash)
            .iter()
            .map(|&(w, s)| ((self.words[w] >> s) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Counts one access (conservative update: only the smallest counters grow). `ops`
    /// counts increments since the last halving (kept by the slot, beside the sketch: see
    /// `SlotTable`).
    fn increment(&mut self, ops: &mut u32, hash: u64) {
        if self.words.is_empty() {
            return;
        }
        let pos = self.positions(hash);
        let est = self.estimate(hash);
        if est < 15 {
            for (w, s) in pos {
                if (self.words[w] >> s) & 15 == est as u64 {
                    self.words[w] += 1 << s;
                }
            }
        }
        *ops += 1;
        if *ops as usize >= self.words.len() * 16 * RESET_PER_COUNTER {
            *ops = 0;
            for w in self.words.iter_mut() {
                *w = (*w >> 1) & 0x7777_7777_7777_7777;
            }
        }
    }
}

// ---- the store side ----

impl Db {
    /// Applies new eviction settings.
    pub fn configure_eviction(&self, c: &EvictionConfig) {
        let e = &self.evict;
        let old = e.policy();
        let was_admission = e.admission();
        e.maxmemory.store(c.maxmemory, Relaxed);
        e.samples.store(c.samples.clamp(1, MAX_SAMPLES), Relaxed);
        e.lfu_log_factor.store(c.lfu_log_factor, Relaxed);
        e.lfu_decay_time.store(c.lfu_decay_time, Relaxed);
        e.policy.store(c.policy.to_u8(), Relaxed);
        if old != c.policy {
            // Scores of different policies do not compare.
            e.pool.lock().c.clear();
        }
        if was_admission && !e.admission() {
            // Give the sketches' memory back.
            for s in 0..SLOT_COUNT {
                let mut g = self.lock(s as u16);
                if g.t.sketch.words() > 0 {
                    g.t.sketch.clear();
                    g.t.sketch_ops = 0;
                    g.sync_table_mem();
                }
            }
        }
    }

    /// The current eviction settings.
    pub fn eviction_config(&self) -> EvictionConfig {
        let e = &self.evict;
        EvictionConfig {
            maxmemory: e.maxmemory(),
            policy: e.policy(),
            samples: e.samples.load(Relaxed),
            lfu_log_factor: e.lfu_log_factor.load(Relaxed),
            lfu_decay_time: e.lfu_decay_time.load(Relaxed),
        }
    }

    /// Whether `used_memory` is above a set `maxmemory`.
    pub fn over_maxmemory(&self) -> bool {
        let max = self.evict.maxmemory();
        max > 0 && self.used_memory() > max
    }

    /// Called before a command that may grow memory: evicts until `used_memory` is under
    /// `maxmemory`, within a time budget (the cron finishes what is left). Fails only when
    /// memory is over the limit and nothing can be evicted (`noeviction`, or no key with a
    /// TTL under a `volatile-*` policy): the command must then be refused with `-OOM`.
    #[inline]
    pub fn make_room(&self, now: u64) -> Result<(), OutOfMemory> {
        if !self.over_maxmemory() {
            return Ok(());
        }
        self.evict_for_command(now)
    }

    #[cold]
    fn evict_for_command(&self, now: u64) -> Result<(), OutOfMemory> {
        let policy = self.evict.policy();
        let start = Instant::now();
        let mut n = 0u32;
        while self.over_maxmemory() {
            if !self.evict_one(policy, now) {
                return Err(OutOfMemory);
            }
            n += 1;
            if n.is_multiple_of(8) && start.elapsed() >= COMMAND_BUDGET {
                break;
            }
        }
        Ok(())
    }

    /// Background eviction (the cron): evicts until under `maxmemory` or `budget` is spent.
    /// Returns the number of keys removed.
    pub fn evict_in_background(&self, now: u64, budget: Duration) -> usize {
        let policy = self.evict.policy();
        let start = Instant::now();
        let mut n = 0usize;
        while self.over_maxmemory() && self.evict_one(policy, now) {
            n += 1;
            if n.is_multiple_of(16) && start.elapsed() >= budget {
                break;
            }
        }
        n
    }

    /// Removes one key under `policy` (or one expired key met while sampling). Returns false
    /// when no key can be evicted.
    fn evict_one(&self, policy: Policy, now: u64) -> bool {
        if policy == Policy::NoEviction {
            return false;
        }
        if policy.is_random() {
            return self.evict_random(policy.volatile_only(), now);
        }
        let samples = self.evict.samples.load(Relaxed).clamp(1, MAX_SAMPLES) as usize;
        let mut buf = [Candidate::default(); MAX_SAMPLES as usize];
        for _ in 0..MAX_ROUNDS {
            let mut n = 0;
            for _ in 0..samples {
                match self.sample(policy, now) {
                    Sample::NoKeys => return false,
                    Sample::Freed => return true,
                    Sample::Missed => {}
                    Sample::Candidate(c) => {
                        buf[n] = c;
                        n += 1;
                    }
                }
            }
            {
                let mut pool = self.evict.pool.lock();
                for c in &buf[..n] {
                    pool.offer(*c);
                }
            }
            loop {
                let best = self.evict.pool.lock().pop_best();
                let Some(c) = best else { break };
                let mut g = self.lock(c.slot);
                let idx = c.idx as usize;
                let same = g.t.map.get_at(idx).map(Kv::addr);
                // Still the same entry, still eligible, and not used since it was scored.
                let valid = same == Some(c.ptr)
                    && self
                        .score(&g.t, idx, policy, now)
                        .is_some_and(|s| s >= c.score);
                if valid {
                    if let Some((kv, _, _)) = g.remove_at(idx, false) {
                        self.removed(super::Removal::Evicted, kv.key());
                    }
                    self.stats.evicted_keys.add(1);
                    return true;
                }
            }
        }
        self.evict_random(policy.volatile_only(), now)
    }

    /// Removes a random key (with a TTL when `volatile`).
    fn evict_random(&self, volatile: bool, now: u64) -> bool {
        let bits = if volatile {
            &self.has_volatile
        } else {
            &self.nonempty
        };
        for _ in 0..100 {
            let Some(s) = bits.next_wrapping(rand_below(SLOT_COUNT)) else {
                return false;
            };
            let mut g = self.lock(s as u16);
            let Some(idx) = random_index(&g.t, volatile) else {
                continue;
            };
            let expired = g.t.expired_at(idx, now);
            let gone = g.remove_at(idx, expired);
            if !expired {
                self.stats.evicted_keys.add(1);
                if let Some((kv, _, _)) = gone {
                    self.removed(super::Removal::Evicted, kv.key());
                }
            }
            return true;
        }
        false
    }

    /// Looks at one random eligible key.
    fn sample(&self, policy: Policy, now: u64) -> Sample {
        let volatile = policy.volatile_only();
        let bits = if volatile {
            &self.has_volatile
        } else {
            &self.nonempty
        };
        let Some(s) = bits.next_wrapping(rand_below(SLOT_COUNT)) else {
            return Sample::NoKeys;
        };
        let mut g = self.lock(s as u16);
        // The slot may have emptied since the bitmap was read.
        let Some(idx) = random_index(&g.t, volatile) else {
            return Sample::Missed;
        };
        if g.t.expired_at(idx, now) {
            g.remove_at(idx, true);
            return Sample::Freed;
        }
        match (self.score(&g.t, idx, policy, now), g.t.map.get_at(idx)) {
            (Some(score), Some(kv)) => Sample::Candidate(Candidate {
                score,
                slot: s as u16,
                idx: idx as u32,
                ptr: kv.addr(),
            }),
            _ => Sample::Missed,
        }
    }

    /// How good a victim the entry at `idx` is under `policy` (higher is better), or `None`
    /// when the policy may not evict it.
    fn score(&self, t: &SlotTable, idx: usize, policy: Policy, now: u64) -> Option<u64> {
        let kv = t.map.get_at(idx)?;
        let m = kv.meta();
        let expire_at = t.expire_of(m);
        if policy.volatile_only() && expire_at == NO_EXPIRY {
            return None;
        }
        Some(match policy {
            Policy::AllkeysLru | Policy::VolatileLru => {
                self.clock_secs(now).saturating_sub(m.access) as u64
            }
            Policy::AllkeysLfu | Policy::VolatileLfu => {
                let counter = lfu_decayed(m.access, now, self.evict.lfu_decay_time.load(Relaxed));
                let freq = t.sketch.estimate(t.map.hash(kv.key()));
                (((15 - freq) as u64) << 8) | (255 - counter) as u64
            }
            Policy::VolatileTtl => u64::MAX - expire_at,
            Policy::NoEviction | Policy::AllkeysRandom | Policy::VolatileRandom => 0,
        })
    }

    /// The access field of a new entry: the LRU clock, or a fresh LFU counter.
    pub(super) fn new_access(&self, now: u64) -> u32 {
        if self.evict.lfu() {
            lfu_pack(now, LFU_INIT_VAL)
        } else {
            self.clock_secs(now)
        }
    }

    /// The access field after an access: the LRU clock, or the decayed and incremented LFU
    /// counter.
    pub(super) fn touched_access(&self, access: u32, now: u64) -> u32 {
        if self.evict.lfu() {
            let e = &self.evict;
            let c = lfu_decayed(access, now, e.lfu_decay_time.load(Relaxed));
            lfu_pack(now, lfu_log_incr(c, e.lfu_log_factor.load(Relaxed)))
        } else {
            self.clock_secs(now)
        }
    }

    /// The access field RESTORE's IDLETIME or FREQ asks for, when the policy tracks that
    /// kind of access (like Redis's `objectSetLRUOrLFU`: FREQ under LFU, IDLETIME otherwise).
    pub fn restored_access(
        &self,
        idle_secs: Option<u64>,
        freq: Option<u8>,
        now: u64,
    ) -> Option<u32> {
        if self.evict.lfu() {
            freq.map(|f| lfu_pack(now, f))
        } else {
            let idle = u32::try_from(idle_secs?).unwrap_or(u32::MAX);
            Some(self.clock_secs(now).saturating_sub(idle))
        }
    }

    /// OBJECT FREQ: the decayed LFU counter, or `None` unless an LFU policy is selected.
    pub fn lfu_freq(&self, access: u32, now: u64) -> Option<u8> {
        let e = &self.evict;
        e.lfu()
            .then(|| lfu_decayed(access, now, e.lfu_decay_time.load(Relaxed)))
    }

    /// OBJECT IDLETIME: seconds since the last access, or `None` under an LFU policy.
    pub fn idle_secs(&self, access: u32, now: u64) -> Option<u64> {
        (!self.evict.lfu()).then(|| self.clock_secs(now).saturating_sub(access) as u64)
    }
}

enum Sample {
    /// No key is eligible at all.
    NoKeys,
    /// An expired key was met and reclaimed: memory was freed.
    Freed,
    /// The slot emptied under us.
    Missed,
    Candidate(Candidate),
}

/// A random entry of `t` (one with a TTL when `volatile`).
fn random_index(t: &SlotTable, volatile: bool) -> Option<usize> {
    if volatile {
        if t.volatile.is_empty() {
            return None;
        }
        Some(t.volatile[rand_below(t.volatile.len())].0 as usize)
    } else if t.map.is_empty() {
        None
    } else {
        Some(rand_below(t.map.len()))
    }
}

impl SlotGuard<'_> {
    /// Counts an access to `key` (stored or not) in the slot's sketch, when LFU eviction
    /// is active.
    pub(super) fn count_access(&mut self, key: &[u8]) {
        // Empty slots keep no sketch: with nothing to evict there, memory could otherwise be
        // over the limit with no key left to free it.
        if !self.db.evict.admission() || self.t.map.is_empty() {
            return;
        }
        let cap = self.t.map.capacity();
        if self.t.sketch.fit(cap) {
            self.sync_table_mem();
        }
        let h = self.t.map.hash(key);
        let t = &mut **self.t;
        t.sketch.increment(&mut t.sketch_ops, h);
    }

    /// A key was just created in bucket `b` while memory is full: under an LFU policy it competes
    /// with the eviction candidates right away (TinyLFU admission). If it is colder than
    /// them it is the next key evicted, unless it is used before; the write itself always
    /// succeeds.
    pub(super) fn offer_new(&mut self, b: Bucket, now: u64) {
        let db = self.db;
        if !db.evict.admission() || !db.over_maxmemory() {
            return;
        }
        let policy = db.evict.policy();
        let Some(kv) = self.t.map.get(b) else {
            return;
        };
        let (idx, ptr, meta) = (kv.pos(), kv.addr(), kv.meta());
        let Some(score) = db.score(&self.t, idx, policy, now) else {
            return;
        };
        debug_assert!(!policy.volatile_only() || meta.vol_pos != NOT_VOLATILE);
        let c = Candidate {
            score,
            slot: self.slot as u16,
            idx: idx as u32,
            ptr,
        };
        db.evict.pool.lock().offer(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_roundtrip() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()), Some(p));
            assert_eq!(Policy::from_u8(p.to_u8()), p);
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllkeysLru));
        assert_eq!(Policy::parse("lru"), None);
        assert_eq!(
            Policy::choices_error(),
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, \
             volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
        );
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        let t0 = 1_700_000_000_000u64;
        let mut c = LFU_INIT_VAL;
        for _ in 0..1000 {
            c = lfu_log_incr(c, 10);
        }
        // About sqrt(2 * 1000 / 10) = 14 steps above the initial value, give or take.
        assert!((12..=30).contains(&c), "counter {c}");
        // First hit from the initial value always counts.
        assert_eq!(lfu_log_incr(LFU_INIT_VAL, 10), LFU_INIT_VAL + 1);
        let a = lfu_pack(t0, 20);
        assert_eq!(lfu_decayed(a, t0, 1), 20);
        assert_eq!(lfu_decayed(a, t0 + 5 * 60_000, 1), 15);
        assert_eq!(lfu_decayed(a, t0 + 10 * 60_000, 2), 15);
        assert_eq!(lfu_decayed(a, t0 + 10 * 60_000, 0), 20);
        assert_eq!(lfu_decayed(a, t0 + 600 * 60_000, 1), 0);
    }

    #[test]
    fn sketch_counts_keeps_on_growth_and_ages() {
        let (mut s, mut ops) = (Sketch::default(), 0u32);
        assert_eq!(s.estimate(42), 0);
        s.fit(7);
        assert_eq!(s.words(), 8);
        for _ in 0..5 {
            s.increment(&mut ops, 42);
        }
        s.increment(&mut ops, 7);
        assert_eq!(s.estimate(42), 5);
        assert_eq!(s.estimate(7), 1);
        assert!(s.fit(100));
        assert_eq!(s.estimate(42), 5, "growth keeps the estimates");
        assert!(!s.fit(120), "same size");
        assert!(s.fit(7));
        assert!(s.estimate(42) >= 5, "folding never under-counts");
        assert!(s.fit(100));
        for _ in 0..40 {
            s.increment(&mut ops, 42);
        }
        assert!(s.estimate(42) <= 15);
        // Many other accesses trigger a reset that halves everything.
        for i in 0..(s.words() * 16 * RESET_PER_COUNTER) as u64 {
            s.increment(&mut ops, 1000 + i);
        }
        assert!(s.estimate(42) <= 8, "aged: {}", s.estimate(42));
    }

    #[test]
    fn pool_keeps_the_best() {
        let mut p = Pool::default();
        for i in 0..40u64 {
            p.offer(Candidate {
                score: i,
                slot: 0,
                idx: i as u32,
                ptr: i as usize,
            });
        }
        assert_eq!(p.c.len(), POOL_SIZE);
        assert_eq!(p.pop_best().map(|c| c.score), Some(39));
        // Re-offering an entry replaces it.
        p.offer(Candidate {
            score: 100,
            slot: 0,
            idx: 30,
            ptr: 30,
        });
        assert_eq!(p.c.len(), POOL_SIZE - 1);
        assert_eq!(p.pop_best().map(|c| c.score), Some(100));
    }
}
