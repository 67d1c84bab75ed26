//! Walks over the whole keyspace: SCAN, KEYS, RANDOMKEY and active expiry.

use super::*;

impl Db {
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
