//! The store's side of a slot handoff: copy a slot out, load entries in, drop a slot.
//!
//! Entries travel with their absolute expiry time, so a TTL keeps counting while the key
//! moves, and an entry that expires before it arrives is simply not stored (never
//! resurrected).

use super::{Db, Kv, NO_EXPIRY};
use bytes::Bytes;

/// One key as it travels between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub key: Bytes,
    pub value: Bytes,
    /// Absolute expiry in Unix ms, or [`NO_EXPIRY`].
    pub expire_at: u64,
}

impl Db {
    /// Copies every live entry of `slot`.
    pub fn export_slot(&self, slot: u16, now: u64) -> Vec<Exported> {
        let g = self.lock(slot);
        let t = &g.t;
        t.map
            .iter()
            .filter(|kv| !t.kv_expired(kv, now))
            .map(|kv| export_one(kv, t.expire_of(kv.meta())))
            .collect()
    }

    /// Stores entries received from another node, replacing what is there. Entries already
    /// expired at `now` are skipped. Returns how many were stored.
    pub fn import(&self, entries: &[Exported], now: u64) -> usize {
        let mut stored = 0;
        for e in entries {
            let mut g = self.lock_key(&e.key);
            if e.expire_at != NO_EXPIRY && e.expire_at <= now {
                g.remove(&e.key, now);
                continue;
            }
            g.set(&e.key, super::Value::str(&e.value), e.expire_at, now);
            stored += 1;
        }
        stored
    }

    /// Removes every key of `slot` (after it has been handed off), returning how many.
    pub fn drop_slot(&self, slot: u16) -> usize {
        let mut g = self.lock(slot);
        let n = g.len();
        g.modified_all();
        g.clear();
        n
    }
}

fn export_one(kv: &Kv, expire_at: u64) -> Exported {
    Exported {
        key: Bytes::copy_from_slice(kv.key()),
        value: Bytes::copy_from_slice(kv.value()),
        expire_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Value;
    use chkv_common::key_slot;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn export_import_drop() {
        let src = Db::new();
        let keys = ["{s}a", "{s}b", "{s}c"];
        src.lock_key(b"{s}a")
            .set(b"{s}a", Value::str(b"1"), NO_EXPIRY, T0);
        src.lock_key(b"{s}b")
            .set(b"{s}b", Value::str(b"2"), T0 + 5000, T0);
        src.lock_key(b"{s}c")
            .set(b"{s}c", Value::str(b"3"), T0 + 10, T0);
        let slot = key_slot(keys[0].as_bytes());
        // At T0+20 the third key has expired: it is not exported.
        let out = src.export_slot(slot, T0 + 20);
        assert_eq!(out.len(), 2);
        let dst = Db::new();
        // The copy arrives after the second key's TTL ran out: it is not resurrected.
        assert_eq!(dst.import(&out, T0 + 6000), 1);
        assert_eq!(dst.len(), 1);
        let dst2 = Db::new();
        assert_eq!(dst2.import(&out, T0 + 100), 2);
        let mut g = dst2.lock_key(b"{s}b");
        assert_eq!(
            g.peek(b"{s}b", T0 + 100).and_then(|e| e.expire_at()),
            Some(T0 + 5000)
        );
        drop(g);
        assert_eq!(src.drop_slot(slot), 3);
        assert_eq!((src.len(), src.used_memory()), (0, 0));
    }
}
