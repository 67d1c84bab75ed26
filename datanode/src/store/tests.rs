use super::*;
use proptest::prelude::*;
use rand::{rngs::SmallRng, SeedableRng};
use std::collections::{HashMap, HashSet};

const T0: u64 = 1_700_000_000_000;

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

/// Recomputes every counter from the tables and checks the incremental ones agree, and that
/// each volatile list points exactly at the entries that have a TTL.
fn check_invariants(db: &Db) {
    let (mut keys, mut vol, mut mem, mut tables) = (0u64, 0u64, 0u64, 0u64);
    for s in 0..SLOT_COUNT {
        let t = db.slots[s].0.lock();
        keys += t.map.len() as u64;
        vol += t.volatile.len() as u64;
        assert!(
            db.evict.admission() || t.sketch.words() == 0,
            "sketch without LFU eviction in slot {s}"
        );
        let arrays = mem::table_size(
            t.map.buckets(),
            t.map.positions_capacity(),
            t.volatile.capacity(),
            t.sketch.words(),
        );
        assert_eq!(t.table_mem(), arrays, "table memory of slot {s}");
        mem += arrays as u64;
        tables += arrays as u64;
        for (pos, &(idx, at)) in t.volatile.iter().enumerate() {
            let kv = t
                .map
                .get_at(idx as usize)
                .expect("volatile position in range");
            assert_eq!(kv.meta().vol_pos as usize, pos);
            assert_ne!(at, NO_EXPIRY);
        }
        assert_eq!(t.map.entries().count(), t.map.len());
        for (i, kv) in t.map.iter().enumerate() {
            assert_eq!(kv.pos(), i, "position of an entry of slot {s}");
            mem += t.kv_mem(kv);
            let m = kv.meta();
            if m.vol_pos != NOT_VOLATILE {
                assert_eq!(t.volatile[m.vol_pos as usize].0 as usize, i);
            }
            assert_eq!(key_slot(kv.key()) as usize, s);
        }
        assert_eq!(
            db.nonempty.next(s) == Some(s),
            !t.map.is_empty(),
            "nonempty bit {s}"
        );
        assert_eq!(
            db.has_volatile.next(s) == Some(s),
            !t.volatile.is_empty(),
            "volatile bit {s}"
        );
    }
    assert_eq!(db.len(), keys);
    assert_eq!(db.volatile_len(), vol);
    assert_eq!(db.used_memory(), mem);
    assert_eq!(db.stats.table_memory.get(), tables);
}

#[test]
fn set_get_remove() {
    let db = Db::new();
    let mut g = db.lock_key(b"a");
    assert!(g.get(b"a", T0).is_none());
    assert!(!g.set(b"a", Value::str(b"1"), NO_EXPIRY, T0));
    assert_eq!(g.get(b"a", T0).map(|e| e.value()), Some(Value::str(b"1")));
    assert!(g.set(b"a", Value::str(b"2"), NO_EXPIRY, T0));
    assert_eq!(g.get(b"a", T0).map(|e| e.value()), Some(Value::str(b"2")));
    assert!(g.remove(b"a", T0).is_some());
    assert!(g.remove(b"a", T0).is_none());
    drop(g);
    check_invariants(&db);
    assert_eq!(db.used_memory(), 0);
}

#[test]
fn ttl_survives_value_replacement_and_index_moves() {
    let db = Db::new();
    let keys: Vec<String> = (0..50).map(|i| format!("{{t}}k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let exp = if i % 2 == 0 {
            T0 + 1000 + i as u64
        } else {
            NO_EXPIRY
        };
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), exp, T0);
    }
    // Removing from the front moves the last entries into the holes.
    for k in keys.iter().take(10) {
        db.lock_key(k.as_bytes()).remove(k.as_bytes(), T0);
    }
    for (i, k) in keys.iter().enumerate().skip(10) {
        let mut g = db.lock_key(k.as_bytes());
        g.replace_value(k.as_bytes(), Value::str(b"w"), T0);
        let want = (i % 2 == 0).then_some(T0 + 1000 + i as u64);
        assert_eq!(
            g.peek(k.as_bytes(), T0).and_then(|e| e.expire_at()),
            want,
            "{k}"
        );
    }
    check_invariants(&db);
}

#[test]
fn one_slot_of_many_keys_resizes_in_steps_with_ttls_and_accounting_in_step() {
    // One hash tag: every key in one slot, whose table grows (and later shrinks) in steps.
    let db = Db::new();
    let key = |i: u32| format!("{{tag}}k{i}");
    let n = 30_000u32;
    let mut seen_resizing = false;
    for i in 0..n {
        let k = key(i);
        let exp = if i % 3 == 0 { T0 + 10 } else { NO_EXPIRY };
        let mut g = db.lock_key(k.as_bytes());
        g.set(k.as_bytes(), Value::str(b"v"), exp, T0);
        seen_resizing |= g.t.map.resizing();
        if i % 7 == 0 && i > 0 {
            // Overwrite and delete mid-resize: TTL links and positions follow the moves.
            let older = key(i / 2);
            g.replace_value(older.as_bytes(), Value::str(b"w"), T0);
            g.remove(key(i - 1).as_bytes(), T0);
        }
        if i % 5_000 == 0 {
            drop(g);
            check_invariants(&db);
        }
    }
    assert!(seen_resizing, "a slot this large grows in steps");
    check_invariants(&db);
    // Active expiry takes a third of the keys, then removals empty the slot but 100 keys:
    // the table shrinks in steps, the accounting following each step.
    let mut r = rng();
    while db.volatile_len() > 0 {
        db.active_expire(T0 + 20, 1000, &mut r);
    }
    check_invariants(&db);
    let left: Vec<u32> = (0..n)
        .filter(|&i| {
            db.lock_key(key(i).as_bytes())
                .peek(key(i).as_bytes(), T0 + 20)
                .is_some()
        })
        .collect();
    let mut shrink_seen = false;
    for &i in &left[..left.len() - 100] {
        let k = key(i);
        let mut g = db.lock_key(k.as_bytes());
        assert!(g.remove(k.as_bytes(), T0 + 20).is_some());
        shrink_seen |= g.t.map.resizing();
    }
    assert!(shrink_seen, "a large slot shrinks in steps");
    check_invariants(&db);
    assert_eq!(db.len(), 100);
    for &i in &left[left.len() - 100..] {
        let k = key(i);
        assert!(db
            .lock_key(k.as_bytes())
            .peek(k.as_bytes(), T0 + 20)
            .is_some());
    }
}

#[test]
fn lazy_expiry() {
    let db = Db::new();
    let mut g = db.lock_key(b"k");
    g.set(b"k", Value::str(b"v"), T0 + 100, T0);
    assert!(g.get(b"k", T0 + 99).is_some());
    assert!(g.get(b"k", T0 + 100).is_none());
    drop(g);
    assert_eq!(db.len(), 0);
    assert_eq!(db.stats.expired_keys.get(), 1);
    check_invariants(&db);
}

#[test]
fn active_expiry_reclaims_without_access() {
    let db = Db::new();
    for i in 0..5000u32 {
        let k = format!("k{i}");
        let exp = if i % 2 == 0 { T0 + 10 } else { NO_EXPIRY };
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), exp, T0);
    }
    // A few keys with a far TTL must survive.
    db.lock_key(b"far")
        .set(b"far", Value::str(b"v"), T0 + 1_000_000, T0);
    assert_eq!(db.volatile_len(), 2501);
    let mut r = rng();
    let mut rounds = 0;
    while db.volatile_len() > 1 && rounds < 100 {
        db.active_expire(T0 + 20, 1000, &mut r);
        rounds += 1;
    }
    assert_eq!(db.volatile_len(), 1);
    assert_eq!(db.len(), 2501);
    assert_eq!(db.stats.expired_keys.get(), 2500);
    check_invariants(&db);
}

#[test]
fn active_expiry_is_bounded_per_round() {
    let db = Db::new();
    for i in 0..10_000u32 {
        let k = format!("k{i}");
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), T0 + 1, T0);
    }
    let (checked, expired) = db.active_expire(T0 + 5, 500, &mut rng());
    assert!(checked <= 500 + 20, "checked {checked}");
    assert!(expired > 0 && expired <= checked);
}

#[test]
fn scan_returns_everything_once_when_static() {
    let db = Db::new();
    let mut want = HashSet::new();
    for i in 0..3000u32 {
        let k = format!("key:{i}");
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, T0);
        want.insert(k.into_bytes());
    }
    let mut got = Vec::new();
    let mut cursor = 0;
    let mut calls = 0;
    loop {
        let (next, keys) = db.scan(cursor, 10, T0, |_, _| true);
        got.extend(keys.into_iter().map(|b| b.to_vec()));
        calls += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(
        calls > 100,
        "count should bound each call, got {calls} calls"
    );
    let set: HashSet<_> = got.iter().cloned().collect();
    assert_eq!(
        set.len(),
        got.len(),
        "no duplicates without concurrent changes"
    );
    assert_eq!(set, want);
}

#[test]
fn scan_on_empty_store() {
    let db = Db::new();
    assert_eq!(db.scan(0, 10, T0, |_, _| true), (0, vec![]));
    // A cursor past the last slot ends the scan.
    assert_eq!(db.scan(u64::MAX, 10, T0, |_, _| true).0, 0);
}

#[test]
fn keys_and_random_key_skip_expired() {
    let db = Db::new();
    db.lock_key(b"live")
        .set(b"live", Value::str(b"v"), NO_EXPIRY, T0);
    db.lock_key(b"dead")
        .set(b"dead", Value::str(b"v"), T0 + 1, T0);
    let keys = db.keys(T0 + 2, |_| true);
    assert_eq!(keys, vec![Bytes::from_static(b"live")]);
    let mut r = rng();
    for _ in 0..20 {
        assert_eq!(
            db.random_key(T0 + 2, &mut r),
            Some(Bytes::from_static(b"live"))
        );
    }
    db.flush();
    assert_eq!(db.random_key(T0, &mut r), None);
    check_invariants(&db);
}

#[test]
fn flush_resets_accounting() {
    let db = Db::new();
    for i in 0..1000u32 {
        let k = format!("k{i}");
        let exp = if i % 3 == 0 { T0 + 1000 } else { NO_EXPIRY };
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(&[1; 50]), exp, T0);
    }
    assert!(db.used_memory() > 1000 * 50);
    db.flush();
    assert_eq!((db.len(), db.volatile_len(), db.used_memory()), (0, 0, 0));
    check_invariants(&db);
}

#[test]
fn lock_keys_orders_and_dedups() {
    let db = Db::new();
    let keys: Vec<&[u8]> = vec![b"foo", b"bar", b"{foo}x", b"baz"];
    let mut g = db.lock_keys(keys.iter().copied());
    for k in &keys {
        g.slot_of(k).set(k, Value::str(b"v"), NO_EXPIRY, T0);
    }
    drop(g);
    assert_eq!(db.len(), 4);
    check_invariants(&db);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, Option<u16>),
    Expire(u8, Option<u16>),
    Del(u8),
    Get(u8),
    Tick(u16),
    ActiveExpire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), proptest::option::of(1u16..500)).prop_map(|(k, t)| Op::Set(k, t)),
        (any::<u8>(), proptest::option::of(1u16..500)).prop_map(|(k, t)| Op::Expire(k, t)),
        any::<u8>().prop_map(Op::Del),
        any::<u8>().prop_map(Op::Get),
        (1u16..200).prop_map(Op::Tick),
        Just(Op::ActiveExpire),
    ]
}

proptest! {
    /// The store behaves like a plain map with expiry, and its counters and volatile lists stay
    /// exact, under any sequence of operations. Few distinct slots are used (keys share tags)
    /// so swap_remove paths are exercised in busy tables.
    #[test]
    fn behaves_like_a_model(ops in proptest::collection::vec(op(), 1..300)) {
        let db = Db::new();
        let mut model: HashMap<Vec<u8>, (u8, u64)> = HashMap::new();
        let mut now = T0;
        let mut r = rng();
        let key = |k: u8| format!("{{t{}}}k{}", k % 3, k).into_bytes();
        for (i, o) in ops.iter().enumerate() {
            model.retain(|_, (_, exp)| *exp == NO_EXPIRY || *exp > now);
            match o {
                Op::Set(k, ttl) => {
                    let exp = ttl.map_or(NO_EXPIRY, |t| now + t as u64);
                    let kb = key(*k);
                    db.lock_key(&kb).set(&kb, Value::str(&[i as u8]), exp, now);
                    model.insert(kb, (i as u8, exp));
                }
                Op::Expire(k, ttl) => {
                    let exp = ttl.map_or(NO_EXPIRY, |t| now + t as u64);
                    let kb = key(*k);
                    let ok = db.lock_key(&kb).set_expire(&kb, exp, now);
                    let m = model.get_mut(&kb);
                    prop_assert_eq!(ok, m.is_some());
                    if let Some(m) = m { m.1 = exp; }
                }
                Op::Del(k) => {
                    let kb = key(*k);
                    let got = db.lock_key(&kb).remove(&kb, now).is_some();
                    prop_assert_eq!(got, model.remove(&kb).is_some());
                }
                Op::Get(k) => {
                    let kb = key(*k);
                    let got = db.lock_key(&kb).get(&kb, now).map(|e| e.value());
                    let want = model.get(&kb).map(|(v, _)| Value::str(&[*v]));
                    prop_assert_eq!(got, want);
                }
                Op::Tick(ms) => now += *ms as u64,
                Op::ActiveExpire => { db.active_expire(now, 50, &mut r); }
            }
        }
        check_invariants(&db);
        model.retain(|_, (_, exp)| *exp == NO_EXPIRY || *exp > now);
        let live: HashSet<Vec<u8>> = db.keys(now, |_| true).into_iter().map(|b| b.to_vec()).collect();
        let want: HashSet<Vec<u8>> = model.keys().cloned().collect();
        prop_assert_eq!(live, want);
    }

    /// Redis's SCAN guarantee: a key present from the start to the end of a full scan is
    /// returned at least once, whatever is added and removed between the calls.
    #[test]
    fn scan_guarantee_under_churn(
        churn in proptest::collection::vec((any::<bool>(), 0u16..600), 0..400),
        count in 1usize..20,
    ) {
        let db = Db::new();
        // Stable keys live throughout; churn keys come and go. Tags force shared slots.
        let stable: Vec<Vec<u8>> = (0..150).map(|i| format!("{{s{}}}stable{}", i % 5, i).into_bytes()).collect();
        for k in &stable {
            db.lock_key(k).set(k, Value::str(b"v"), NO_EXPIRY, T0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut churn = churn.into_iter();
        loop {
            let (next, keys) = db.scan(cursor, count, T0, |_, _| true);
            seen.extend(keys.into_iter().map(|b| b.to_vec()));
            for _ in 0..3 {
                if let Some((add, n)) = churn.next() {
                    let k = format!("{{s{}}}churn{}", n % 5, n).into_bytes();
                    let mut g = db.lock_key(&k);
                    if add { g.set(&k, Value::str(b"v"), NO_EXPIRY, T0); } else { g.remove(&k, T0); }
                }
            }
            if next == 0 { break; }
            cursor = next;
        }
        for k in &stable {
            prop_assert!(seen.contains(k), "missed {:?}", String::from_utf8_lossy(k));
        }
    }
}

/// Eviction under every policy keeps the counters and lists exact, keeps `used_memory` near
/// the limit whenever something can be evicted, and a flush returns accounting to zero.
#[test]
fn eviction_keeps_invariants_under_every_policy() {
    use evict::{EvictionConfig, Policy};
    const LIMIT: u64 = 60_000;
    for policy in Policy::ALL {
        let db = Db::new();
        db.configure_eviction(&EvictionConfig {
            maxmemory: LIMIT,
            policy,
            ..EvictionConfig::default()
        });
        let mut now = T0;
        let mut refused = 0;
        for i in 0..4000u32 {
            // Half the keys share a few slots (busy tables), half spread out.
            let k = if i % 2 == 0 {
                format!("{{t{}}}k{i}", i % 5)
            } else {
                format!("k{i}")
            };
            let exp = if i % 3 == 0 { now + 60_000 } else { NO_EXPIRY };
            if db.make_room(now).is_err() {
                refused += 1;
                continue;
            }
            // Strings, hashes, sets, sorted sets and lists: eviction frees and uncharges every
            // type.
            let mut g = db.lock_key(k.as_bytes());
            match i % 4 {
                0 => {
                    g.set(k.as_bytes(), Value::str(&[7; 40]), exp, now);
                }
                kind => {
                    let l = Limits::default();
                    let kind = match (kind, i % 8) {
                        (3, 7) => Kind::List,
                        _ => [Kind::Hash, Kind::Set, Kind::Zset][kind as usize - 1],
                    };
                    g.modify(k.as_bytes(), now, kind, true, |v| match v {
                        Value::Hash(h) => (0..i % 9 + 1).for_each(|f| {
                            h.insert(format!("f{f}").as_bytes(), b"value", &l);
                        }),
                        Value::Set(s) => (0..i % 9 + 1).for_each(|m| {
                            s.insert(format!("m{m}").as_bytes(), &l);
                        }),
                        Value::List(list) => (0..i % 9 + 1).for_each(|m| {
                            list.push(crate::store::End::Left, format!("m{m}").as_bytes(), &l);
                        }),
                        // Past the listpack limit now and then: both encodings.
                        Value::Zset(z) => (0..i % 150 + 1).for_each(|m| {
                            z.insert(format!("m{m}").as_bytes(), m as f64, &l);
                        }),
                        Value::Str(_) => {}
                    })
                    .expect("a new key");
                    if exp != NO_EXPIRY {
                        g.set_expire(k.as_bytes(), exp, now);
                    }
                }
            }
            drop(g);
            if i % 4 == 0 {
                let back = format!("k{}", (i / 2) | 1);
                db.lock_key(back.as_bytes()).get(back.as_bytes(), now);
            }
            now += 7;
        }
        check_invariants(&db);
        match policy {
            Policy::NoEviction => assert!(refused > 0),
            p if p.volatile_only() => assert!(refused > 0, "{p}: volatile keys run out"),
            p => {
                assert_eq!(refused, 0, "{p}");
                assert!(
                    db.used_memory() <= LIMIT + 1000,
                    "{p}: {}",
                    db.used_memory()
                );
                assert!(db.stats.evicted_keys.get() > 1000, "{p}");
            }
        }
        db.flush();
        check_invariants(&db);
        assert_eq!(db.used_memory(), 0, "{policy}");
    }
}

#[test]
fn lfu_sketches_are_charged_and_released_with_the_policy() {
    use evict::{EvictionConfig, Policy};
    let db = Db::new();
    let lfu = EvictionConfig {
        maxmemory: 1 << 30,
        policy: Policy::AllkeysLfu,
        ..EvictionConfig::default()
    };
    db.configure_eviction(&lfu);
    for i in 0..2000u32 {
        let k = format!("k{i}");
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, T0);
    }
    check_invariants(&db);
    let with_sketches = db.used_memory();
    db.configure_eviction(&EvictionConfig {
        policy: Policy::AllkeysLru,
        ..lfu.clone()
    });
    check_invariants(&db);
    assert!(db.used_memory() < with_sketches);
    // Empty slots keep no sketch; a slot's sketch goes when its last key does.
    db.configure_eviction(&lfu);
    let before = db.used_memory();
    db.lock_key(b"{x}absent").get(b"{x}absent", T0);
    assert_eq!(db.used_memory(), before);
    db.lock_key(b"{x}k")
        .set(b"{x}k", Value::str(b"v"), NO_EXPIRY, T0);
    db.lock_key(b"{x}k").get(b"{x}k", T0);
    assert!(db.lock(key_slot(b"x")).t.sketch.words() > 0);
    db.lock_key(b"{x}k").remove(b"{x}k", T0);
    check_invariants(&db);
    assert_eq!(db.used_memory(), before);
}

#[test]
fn sparse_tables_give_memory_back() {
    let db = Db::new();
    let keys: Vec<String> = (0..200).map(|i| format!("{{s}}k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let exp = if i % 2 == 0 { T0 + 60_000 } else { NO_EXPIRY };
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), exp, T0);
    }
    let tables = db.stats.table_memory.get();
    for k in &keys[..190] {
        db.lock_key(k.as_bytes()).remove(k.as_bytes(), T0);
    }
    check_invariants(&db);
    let after = db.stats.table_memory.get();
    assert!(after * 8 < tables, "tables: {tables} -> {after}");
    // Growing back works from the shrunk table.
    for k in &keys[..190] {
        db.lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, T0);
    }
    check_invariants(&db);
    assert_eq!(db.len(), 200);
}

#[test]
fn a_lookup_reads_one_cache_line_of_its_slot() {
    // The lock, the hash table and its hasher: what a GET reads before the entry itself.
    let cell = SlotCell::default();
    let base = &cell as *const SlotCell as usize;
    assert_eq!(base % 128, 0);
    assert_eq!(std::mem::size_of::<SlotCell>(), 128);
    let table = &*cell.0.lock() as *const SlotTable as usize - base;
    let hot = std::mem::offset_of!(SlotTable, map) + table::KeyTable::HOT_BYTES;
    let lock_first = table > 0;
    assert!(lock_first, "the lock sits before the table");
    assert!(
        table + hot <= 64,
        "lock and table header span {} bytes",
        table + hot
    );
}

/// Adds `fields` fields to the hash at `key` (creating it).
fn hset(db: &Db, key: &[u8], fields: usize, now: u64) {
    let l = db.limits();
    db.lock_key(key)
        .modify(key, now, Kind::Hash, true, |v| {
            if let Value::Hash(h) = v {
                for i in 0..fields {
                    h.insert(format!("field:{i}").as_bytes(), b"value", &l);
                }
            }
        })
        .expect("a hash");
}

#[test]
fn collections_are_typed_charged_and_freed() {
    let db = Db::new();
    hset(&db, b"h", 3, T0);
    hset(&db, b"big", 1000, T0);
    check_invariants(&db);
    {
        let mut g = db.lock_key(b"h");
        let e = g.peek(b"h", T0).expect("h");
        assert_eq!((e.type_name(), e.as_str()), ("hash", None));
        assert_eq!(e.obj().map(|v| v.encoding()), Some("listpack"));
        assert_eq!(e.as_hash().map(|h| h.len()), Ok(3));
        assert_eq!(e.as_set().err(), Some(WrongType));
        // A hash command on a string, and a set command on a hash: WRONGTYPE.
        g.set(b"{h}s", Value::str(b"x"), NO_EXPIRY, T0);
        assert_eq!(
            g.modify(b"{h}s", T0, Kind::Hash, true, |_| ()),
            Err(WrongType)
        );
        assert_eq!(g.modify(b"h", T0, Kind::Set, true, |_| ()), Err(WrongType));
        // A missing key is not created unless asked, nor when left empty.
        assert_eq!(g.modify(b"{h}none", T0, Kind::Set, false, |_| 1), Ok(None));
        assert_eq!(
            g.modify(b"{h}none", T0, Kind::Set, true, |_| 2),
            Ok(Some(2))
        );
        assert!(!g.contains(b"{h}none", T0));
    }
    let big_mem = db.lock_key(b"big").memory_usage(b"big", T0).expect("big");
    assert!(big_mem > 1000 * 20, "{big_mem}");
    assert_eq!(
        db.lock_key(b"big")
            .peek(b"big", T0)
            .and_then(|e| e.obj().map(|v| v.encoding())),
        Some("hashtable")
    );
    check_invariants(&db);
    // A string over a hash, and a hash over a string, keep the accounting exact.
    db.lock_key(b"h")
        .set(b"h", Value::str(b"now a string"), NO_EXPIRY, T0);
    let hv = db.lock_key(b"big").peek(b"big", T0).map(|e| e.value());
    db.lock_key(b"{h}s")
        .set(b"{h}s", hv.clone().expect("value"), NO_EXPIRY, T0);
    check_invariants(&db);
    assert_eq!(
        db.lock_key(b"{h}s").peek(b"{h}s", T0).map(|e| e.value()),
        hv
    );
    // Emptying a collection removes its key.
    db.lock_key(b"{h}s")
        .modify(b"{h}s", T0, Kind::Hash, false, |v| {
            if let Value::Hash(h) = v {
                for i in 0..1000 {
                    h.remove(format!("field:{i}").as_bytes());
                }
            }
        })
        .expect("a hash");
    assert!(!db.lock_key(b"{h}s").contains(b"{h}s", T0));
    check_invariants(&db);
    // Expiry and removal free collections and their charge.
    hset(&db, b"ttl", 200, T0);
    db.lock_key(b"ttl").set_expire(b"ttl", T0 + 10, T0);
    check_invariants(&db);
    assert!(db.lock_key(b"ttl").get(b"ttl", T0 + 20).is_none());
    let removed = db.lock_key(b"big").remove(b"big", T0).map(|(v, _)| v.len());
    assert_eq!(removed, Some(1000));
    check_invariants(&db);
    db.flush();
    check_invariants(&db);
    assert_eq!(db.used_memory(), 0);
}

#[test]
fn lock_more_takes_only_what_the_transaction_lacks() {
    let owned = Db::new();
    let db = &owned;
    let other = std::thread::scope(|s| {
        let _tx = db.lock_tx(Some(vec![10, 3]));
        // Held already (the fast path): nothing changes, and any patience will do.
        assert_eq!(db.lock_more(Some(&[3, 10, 3]), Duration::ZERO), Ok(()));
        // A slot above every held one is waited for; one below is only tried.
        assert_eq!(db.lock_more(Some(&[20]), Duration::ZERO), Ok(()));
        assert_eq!(db.lock_more(Some(&[5, 3]), Duration::ZERO), Ok(()));
        // Whether another thread finds each slot locked.
        [3u16, 5, 10, 20, 4].map(|slot| {
            s.spawn(move || db.slots[slot as usize].0.try_lock().is_none())
                .join()
                .expect("probe")
        })
    });
    assert_eq!(other, [true, true, true, true, false]);
    // All released with the transaction.
    assert!(db.slots[20].0.try_lock().is_some());
}
