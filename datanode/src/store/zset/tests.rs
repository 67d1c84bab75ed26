use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn limits(entries: usize) -> Limits {
    Limits {
        zset_max_listpack_entries: entries,
        ..Limits::default()
    }
}

#[test]
fn sizes() {
    assert_eq!(std::mem::size_of::<Name>(), 24);
    assert_eq!(std::mem::size_of::<Slot>(), 32);
    assert!(std::mem::size_of::<Leaf>() <= 1024);
    assert!(std::mem::size_of::<Zset>() <= 32);
}

#[test]
fn scores_round_trip_compactly() {
    for s in [
        0.0,
        1.0,
        239.0,
        240.0,
        -1.0,
        1e15,
        -1e15,
        INT_SCORE_MAX,
        -INT_SCORE_MAX,
        1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        0.1,
        f64::MIN_POSITIVE,
    ] {
        let mut b = Vec::new();
        put_score(&mut b, s);
        assert_eq!(get_score(&b, 0), (s, b.len()), "{s}");
    }
    assert_eq!(score_len(5.0), 1);
    assert_eq!(score_len(-5.0), 2);
    assert_eq!(score_len(1000.0), 3);
    assert_eq!(score_len(0.5), 9);
    // -0 reads back as 0, like Redis's listpack.
    let mut b = Vec::new();
    put_score(&mut b, -0.0);
    assert!(get_score(&b, 0).0.is_sign_positive());
}

#[test]
fn listpack_orders_and_converts() {
    let l = limits(4);
    let mut z = Zset::default();
    assert_eq!(z.insert(b"b", 2.0, &l), None);
    assert_eq!(z.insert(b"a", 2.0, &l), None);
    assert_eq!(z.insert(b"c", 1.0, &l), None);
    assert_eq!(z.insert(b"c", 3.0, &l), Some(1.0));
    let all: Vec<_> = z.collect_range(0, 10, false);
    assert_eq!(
        all,
        vec![
            (b"a".to_vec(), 2.0),
            (b"b".to_vec(), 2.0),
            (b"c".to_vec(), 3.0)
        ]
    );
    assert_eq!(z.rank(b"c"), Some((2, 3.0)));
    assert_eq!(z.encoding(), "listpack");
    z.insert(b"d", 0.5, &l);
    assert_eq!(z.encoding(), "listpack");
    z.insert(b"e", 0.5, &l);
    assert_eq!(z.encoding(), "skiplist");
    assert_eq!(z.len(), 5);
    assert_eq!(z.get(0), Some((&b"d"[..], 0.5)));
    let mut long = Zset::default();
    long.insert(&[b'x'; 65], 1.0, &Limits::default());
    assert_eq!(long.encoding(), "skiplist");
}

/// The model: member -> score, and the order.
fn sorted(m: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut v: Vec<(Vec<u8>, f64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| cmp_elem(a.1, &a.0, b.1, &b.0));
    v
}

fn check(z: &Zset, model: &BTreeMap<Vec<u8>, f64>) {
    let want = sorted(model);
    assert_eq!(z.len(), want.len());
    assert_eq!(z.collect_range(0, want.len(), false), want);
    let mut rev = want.clone();
    rev.reverse();
    assert_eq!(z.collect_range(0, want.len(), true), rev);
    for (i, (m, s)) in want.iter().enumerate() {
        assert_eq!(z.rank(m), Some((i, *s)));
        assert_eq!(z.get(i), Some((&m[..], *s)));
        assert_eq!(z.score(m), Some(*s));
    }
    for probe in [-1.0, 0.0, 3.0, 7.5, 100.0] {
        for inc in [false, true] {
            let n = want
                .iter()
                .filter(|(_, s)| if inc { *s <= probe } else { *s < probe })
                .count();
            assert_eq!(z.count_below_score(probe, inc), n);
        }
    }
    if let Zset::Tree(t) = z {
        assert!(t.heap_size() > 0);
        let mut seen = 0;
        let mut cursor = 0;
        loop {
            cursor = t.scan(cursor, 7, |_, _| seen += 1);
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, want.len());
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u16, i8),
    Remove(u16),
    RemoveRange(u16, u16),
    Pop(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..600, -4i8..12).prop_map(|(m, s)| Op::Insert(m, s)),
        2 => (0u16..600).prop_map(Op::Remove),
        1 => (0u16..300, 0u16..300).prop_map(|(a, b)| Op::RemoveRange(a, b)),
        1 => (0u8..40, any::<bool>()).prop_map(|(n, m)| Op::Pop(n, m)),
    ]
}

fn member(m: u16) -> Vec<u8> {
    // Some members long enough to live on the heap.
    if m.is_multiple_of(7) {
        format!("a-long-member-name-that-is-not-inline-{m:05}").into_bytes()
    } else {
        format!("m{m}").into_bytes()
    }
}

fn run(ops: &[Op], l: &Limits) {
    let mut z = Zset::default();
    let mut model = BTreeMap::new();
    for o in ops {
        match *o {
            Op::Insert(m, s) => {
                let s = s as f64 / 2.0;
                assert_eq!(z.insert(&member(m), s, l), model.insert(member(m), s));
            }
            Op::Remove(m) => {
                assert_eq!(z.remove(&member(m)), model.remove(&member(m)));
            }
            Op::RemoveRange(a, b) => {
                let want = sorted(&model);
                let (lo, hi) = (a as usize, b as usize);
                let gone = z.remove_range(lo, hi);
                let hi = hi.min(want.len());
                let expect = hi.saturating_sub(lo);
                assert_eq!(gone, expect);
                for (m, _) in want.iter().take(hi).skip(lo) {
                    model.remove(m);
                }
            }
            Op::Pop(n, max) => {
                let mut want = sorted(&model);
                if max {
                    want.reverse();
                }
                want.truncate(n as usize);
                assert_eq!(z.pop(n as usize, max), want);
                for (m, _) in &want {
                    model.remove(m);
                }
            }
        }
    }
    check(&z, &model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn tree_matches_model(ops in proptest::collection::vec(op(), 1..1500)) {
        run(&ops, &limits(0));
    }

    #[test]
    fn listpack_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        run(&ops, &limits(100_000));
    }
}

#[test]
fn big_tree_inserts_removes_and_shrinks() {
    let l = limits(0);
    let mut z = Zset::default();
    let n = 50_000u64;
    for i in 0..n {
        // A scattered order, and runs of equal scores.
        let k = (i * 7919) % n;
        z.insert(format!("member:{k}").as_bytes(), (k / 3) as f64, &l);
    }
    assert_eq!(z.len(), n as usize);
    let Zset::Tree(t) = &z else { panic!("tree") };
    let per = t.heap_size() / n as usize;
    assert!((40..90).contains(&per), "{per} bytes per member");
    let mut prev: Option<(Vec<u8>, f64)> = None;
    z.for_each(|m, s| {
        if let Some((pm, ps)) = &prev {
            assert_eq!(cmp_elem(*ps, pm, s, m), Ordering::Less);
        }
        prev = Some((m.to_vec(), s));
    });
    assert_eq!(z.rank(b"member:3"), Some((3, 1.0)));
    assert_eq!(z.count_below_score(10.0, false), 30);
    // Appends in order fill leaves.
    let mut a = Zset::default();
    for i in 0..10_000 {
        a.insert(format!("{i:08}").as_bytes(), i as f64, &l);
    }
    let Zset::Tree(t) = &a else { panic!("tree") };
    assert!(t.tree.leaves <= 10_000 / (LEAF_CAP - 1) + 1);
    // Pop most of it: the slab compacts (to at most eight slots a member) and memory
    // follows.
    let before = z.heap_size();
    let popped = z.pop(48_000, false);
    assert_eq!(popped.len(), 48_000);
    assert_eq!(z.len(), 2_000);
    assert!(z.heap_size() * 4 < before, "{} vs {before}", z.heap_size());
    assert_eq!(z.get(0).map(|(_, s)| s), Some(16_000.0));
    let rest = z.collect_range(0, 2_000, false);
    for (i, (m, s)) in rest.iter().enumerate() {
        assert_eq!(z.rank(m), Some((i, *s)));
    }
}

#[test]
fn fit_and_from_sorted() {
    let l = limits(3);
    let items: Vec<(&[u8], f64)> = vec![(b"a", 1.0), (b"b", 2.0)];
    let mut z = Zset::from_sorted(&items, &l);
    assert_eq!(z.encoding(), "listpack");
    let big: Vec<(Vec<u8>, f64)> = (0..10).map(|i| (vec![b'a' + i], i as f64)).collect();
    let refs: Vec<(&[u8], f64)> = big.iter().map(|(m, s)| (&m[..], *s)).collect();
    let t = Zset::from_sorted(&refs, &l);
    assert_eq!(t.encoding(), "skiplist");
    assert_eq!(t.collect_range(0, 10, false), big);
    z.fit(&l);
    assert_eq!(z.encoding(), "listpack");
    let mut t2 = t.clone();
    t2.remove_range(3, 10);
    t2.fit(&l);
    assert_eq!(t2.encoding(), "listpack");
    assert_eq!(t2.len(), 3);
}

/// A large tree emptied by pops, removals and a ranged removal, with inserts between:
/// the slab gives its memory back in steps (never more than about eight slots a member in
/// use, no renumbering of everything at once), every read agrees with a model, and
/// a scan running through it all returns every member present from its start to its end.
#[test]
fn a_large_tree_compacts_in_steps_and_keeps_scans_whole() {
    let l = limits(0);
    let mut z = Zset::default();
    let mut model = BTreeMap::new();
    let n = 20_000u64;
    for i in 0..n {
        let k = (i * 7919) % n;
        let m = member((k % 60_000) as u16);
        let m = [m, k.to_string().into_bytes()].concat();
        z.insert(&m, (k % 97) as f64, &l);
        model.insert(m, (k % 97) as f64);
    }
    let Zset::Tree(t) = &z else { panic!("tree") };
    let full = t.heap_size();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // A scan from the start; the members present throughout must all come back.
    let mut scanned = std::collections::HashSet::new();
    let mut cursor = 0u64;
    let mut scanning = true;
    let mut removed_during_scan = std::collections::HashSet::new();
    let present_at_start: Vec<Vec<u8>> = model.keys().cloned().collect();
    let mut round = 0;
    while model.len() > 300 {
        round += 1;
        match next() % 10 {
            0..=5 => {
                let got = z.pop(3, next() % 2 == 0);
                for (m, _) in got {
                    model.remove(&m);
                    removed_during_scan.insert(m);
                }
            }
            6..=7 => {
                let k = model
                    .keys()
                    .nth((next() % model.len() as u64) as usize)
                    .cloned();
                let k = k.expect("not empty");
                assert_eq!(z.remove(&k), model.remove(&k));
                removed_during_scan.insert(k);
            }
            8 => {
                let lo = (next() % model.len() as u64) as usize;
                let want = sorted(&model);
                let hi = (lo + 40).min(want.len());
                assert_eq!(z.remove_range(lo, hi), hi - lo);
                for (m, _) in &want[lo..hi] {
                    model.remove(m);
                    removed_during_scan.insert(m.clone());
                }
            }
            _ => {
                let m = format!("new{round}").into_bytes();
                let s = (next() % 50) as f64;
                assert_eq!(z.insert(&m, s, &l), model.insert(m, s));
            }
        }
        if let Zset::Tree(t) = &z {
            // Within about COMPACT_AT slots a member (the slab compacts two members a
            // removal past that).
            assert!(
                t.slab.high() <= (8 * t.len() + 64).max(CHUNK),
                "slab {} for {} members",
                t.slab.high(),
                t.len()
            );
            if scanning {
                cursor = t.scan(cursor, 4, |m, _| {
                    scanned.insert(m.to_vec());
                });
                scanning = cursor != 0;
            }
        }
        if round % 500 == 0 {
            check(&z, &model);
        }
    }
    check(&z, &model);
    let Zset::Tree(t) = &z else { panic!("tree") };
    while scanning {
        cursor = t.scan(cursor, 4, |m, _| {
            scanned.insert(m.to_vec());
        });
        scanning = cursor != 0;
    }
    for m in &present_at_start {
        if !removed_during_scan.contains(m) {
            assert!(
                scanned.contains(m),
                "the scan missed {:?}",
                String::from_utf8_lossy(m)
            );
        }
    }
    assert!(t.heap_size() * 8 < full, "{} of {full}", t.heap_size());
}

/// The slowest single pop while a sorted set of 2M members is popped empty, one member at a
/// time. A measurement, not a check: `cargo test --release -p chkv-datanode --lib --
/// --ignored --nocapture slowest_pop`.
#[test]
#[ignore]
fn slowest_pop() {
    use std::time::{Duration, Instant};
    let l = limits(0);
    let n = 2_000_000u64;
    let mut z = Zset::default();
    for i in 0..n {
        let k = (i * 7919) % n;
        z.insert(format!("element:{k:09}").as_bytes(), 0.0, &l);
    }
    let t0 = Instant::now();
    let mut worst = (Duration::ZERO, 0);
    let mut left = n as usize;
    while left > 0 {
        let t = Instant::now();
        let got = z.pop(1, false);
        let took = t.elapsed();
        if took > worst.0 {
            worst = (took, left);
        }
        left -= got.len();
    }
    println!(
        "popped {n} in {:?}; slowest pop {:?} with {} members left",
        t0.elapsed(),
        worst.0,
        worst.1
    );
}
