use super::*;
use proptest::prelude::*;

fn limits(fill: i64) -> Limits {
    Limits {
        list_max_listpack_size: fill,
        ..Limits::default()
    }
}

fn items(l: &List) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut c = l.cursor();
    while let Some(m) = c.next() {
        out.push(m.to_vec());
    }
    out
}

fn rev_items(l: &List) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut c = l.rev_cursor();
    while let Some(m) = c.next() {
        out.push(m.to_vec());
    }
    out
}

fn depth(fill: i64, depth: usize) -> Limits {
    Limits {
        list_compress_depth: depth,
        ..limits(fill)
    }
}

#[test]
fn canonical_integers() {
    for (s, v) in [
        ("0", Some(0)),
        ("-1", Some(-1)),
        ("127", Some(127)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9223372036854775808", None),
        ("-0", None),
        ("01", None),
        ("+1", None),
        ("", None),
        ("-", None),
        ("1a", None),
        (" 1", None),
    ] {
        assert_eq!(int_elem(s.as_bytes()), v, "{s}");
    }
}

#[test]
fn entries_round_trip_both_ways() {
    let samples: Vec<Vec<u8>> = [
        "0",
        "127",
        "128",
        "-1",
        "-4096",
        "4095",
        "4096",
        "-32768",
        "32767",
        "40000",
        "-8388608",
        "8388607",
        "8388608",
        "2147483647",
        "-2147483648",
        "2147483648",
        "9223372036854775807",
        "-9223372036854775808",
        "",
        "a",
        "012",
        "-0",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        vec![b'x'; 63],
        vec![b'y'; 64],
        vec![b'z'; 4095],
        vec![b'w'; 4096],
        vec![7; 20000],
    ])
    .collect();
    let mut buf = Vec::new();
    for s in &samples {
        encode_into(&mut buf, s);
    }
    let mut off = 0;
    for s in &samples {
        let (m, size) = decode(&buf[off..]);
        assert_eq!(m.to_vec(), *s);
        off += size;
    }
    assert_eq!(off, buf.len());
    for s in samples.iter().rev() {
        off = entry_start(&buf, off);
        assert_eq!(decode(&buf[off..]).0.to_vec(), *s);
    }
    assert_eq!(off, 0);
    // Small integers take one byte and a backlen.
    assert_eq!(plan(b"12").size, 2);
    assert_eq!(plan(b"xxx").size, 5);
}

#[test]
fn pushes_and_pops_across_nodes() {
    let l = limits(4);
    let mut list = List::default();
    for i in 0..10 {
        list.push(End::Right, i.to_string().as_bytes(), &l);
        list.push(End::Left, format!("l{i}").as_bytes(), &l);
    }
    list.check();
    assert_eq!(list.len(), 20);
    assert_eq!(list.encoding(), "quicklist");
    assert_eq!(list.get(0), Some(b"l9".to_vec()));
    assert_eq!(list.get(19), Some(b"9".to_vec()));
    assert_eq!(list.get(10), Some(b"0".to_vec()));
    assert_eq!(list.pop(End::Left), Some(b"l9".to_vec()));
    assert_eq!(list.pop(End::Right), Some(b"9".to_vec()));
    let rev = rev_items(&list);
    let mut fwd = items(&list);
    fwd.reverse();
    assert_eq!(rev, fwd);
    while list.pop(End::Right).is_some() {}
    list.check();
    assert_eq!((list.len(), list.nodes.len()), (0, 0));
}

#[test]
fn a_long_list_costs_its_entries() {
    let l = Limits::default();
    let mut list = List::default();
    for _ in 0..100_000 {
        list.push(End::Right, b"xxx", &l);
    }
    list.check();
    // 5 bytes an entry, and a little for the nodes.
    let per = list.heap_size() as f64 / 100_000.0;
    assert!(per < 5.3, "{per} bytes per element");
    let mut list = List::default();
    for _ in 0..100_000 {
        list.push(End::Left, b"xxx", &l);
    }
    let per = list.heap_size() as f64 / 100_000.0;
    assert!(per < 5.3, "{per} bytes per element (left pushes)");
}

#[test]
fn big_elements_get_their_own_nodes() {
    let l = Limits::default();
    let mut list = List::default();
    list.push(End::Right, b"a", &l);
    list.push(End::Right, &vec![b'x'; 10_000], &l);
    list.push(End::Right, b"b", &l);
    list.check();
    assert_eq!(list.nodes.len(), 3);
    assert_eq!(list.get(1).map(|v| v.len()), Some(10_000));
    assert!(list.set(1, b"small", &l));
    assert!(list.set(0, &vec![b'y'; 9000], &l));
    list.check();
    assert_eq!(items(&list)[1], b"small".to_vec());
}

/// 600-byte elements, compressible (a repeated byte with a counter).
fn big(i: usize) -> Vec<u8> {
    let mut e = vec![b'a' + (i % 26) as u8; 600];
    e[..8].copy_from_slice(&(i as u64).to_le_bytes());
    e
}

/// Which nodes are compressed, as 'c' (compressed), 'n' (not worth it) or 'r' (raw).
fn shape(l: &List) -> String {
    l.nodes
        .iter()
        .map(|n| match n.packed {
            0 => 'r',
            NOT_WORTH => 'n',
            _ => 'c',
        })
        .collect()
}

#[test]
fn depth_keeps_the_ends_raw_and_compresses_between() {
    // One element a node: each node is one 600-byte entry.
    for (d, want) in [
        (0, "rrrrrrrr"),
        (1, "rccccccr"),
        (2, "rrccccrr"),
        (3, "rrrccrrr"),
        (4, "rrrrrrrr"),
        (9, "rrrrrrrr"),
    ] {
        let l = depth(1, d);
        let mut list = List::default();
        for i in 0..8 {
            list.push(End::Right, &big(i), &l);
        }
        list.check();
        assert_eq!(shape(&list), want, "depth {d}");
        let items = items(&list);
        assert_eq!(items, (0..8).map(big).collect::<Vec<_>>(), "depth {d}");
    }
    let l = depth(1, 1);
    let mut list = List::default();
    for i in 0..8 {
        list.push(End::Left, &big(i), &l);
    }
    // Pops and pushes at the ends decompress and compress the nodes that cross.
    assert_eq!(shape(&list), "rccccccr");
    assert_eq!(list.pop(End::Left), Some(big(7)));
    assert_eq!(list.pop(End::Right), Some(big(0)));
    assert_eq!(shape(&list), "rccccr");
    list.remove_front(3);
    assert_eq!(shape(&list), "rcr");
    list.push(End::Left, &big(100), &l);
    assert_eq!(shape(&list), "rccr");
    // Inside: LSET, LINSERT and LREM on a compressed node.
    assert!(list.set(1, &big(200), &l));
    assert_eq!(list.get(1), Some(big(200)));
    assert_eq!(list.insert(&big(200), b"x", false, &l), Some(5));
    assert_eq!(shape(&list), "rnccr");
    assert_eq!(list.remove(b"x", 0, &l), 1);
    list.check();
    assert_eq!(shape(&list), "rccr");
    assert_eq!(items(&list), [big(100), big(200), big(2), big(1)]);
    assert_eq!(list.positions_vec(&big(2)), [2]);
}

#[test]
fn compression_only_when_it_pays() {
    // Entries under 48 bytes, and noise, stay raw between the ends.
    let l = depth(1, 1);
    let mut small = List::default();
    for i in 0..5 {
        small.push(End::Right, format!("tiny{i}").as_bytes(), &l);
    }
    small.check();
    assert_eq!(shape(&small), "rnnnr");
    let mut noise = List::default();
    let mut x: u64 = 88172645463325252;
    for _ in 0..5 {
        let e: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        noise.push(End::Right, &e, &l);
    }
    noise.check();
    assert_eq!(shape(&noise), "rnnnr");
    // A node that changes is tried again.
    assert!(noise.set(2, &big(1), &l));
    assert_eq!(shape(&noise), "rncnr");
}

#[test]
fn compressed_memory_is_counted() {
    let (raw, packed) = (depth(-2, 0), depth(-2, 1));
    let mut a = List::default();
    let mut b = List::default();
    for i in 0..2000 {
        let e = format!("order:{i}:status=pending;retries=0;queue=default");
        a.push(End::Right, e.as_bytes(), &raw);
        b.push(End::Right, e.as_bytes(), &packed);
    }
    a.check();
    b.check();
    assert_eq!(a, b);
    assert!(shape(&b).contains('c'));
    // The accounting is the blocks' sizes (`check` verified the running count).
    assert!(
        b.heap_size() * 2 < a.heap_size(),
        "{} vs {}",
        b.heap_size(),
        a.heap_size()
    );
    // Emptied, nothing is left.
    while b.pop(End::Left).is_some() {}
    b.check();
    assert_eq!(b.node_heap, 0);
}

#[test]
fn a_list_keeps_the_depth_it_grew_with() {
    let mut list = List::default();
    for i in 0..6 {
        list.push(End::Right, &big(i), &depth(1, 0));
    }
    // A later depth does not apply to it (Redis: the quicklist's own setting).
    for i in 6..10 {
        list.push(End::Right, &big(i), &depth(1, 2));
    }
    assert_eq!(shape(&list), "rrrrrrrrrr");
    let mut list = List::default();
    list.push(End::Right, &big(0), &depth(1, 1));
    list.push(End::Right, &big(1), &depth(1, 1));
    for i in 2..5 {
        list.push(End::Right, &big(i), &depth(1, 0));
    }
    assert_eq!(shape(&list), "rcccr");
}

#[derive(Debug, Clone)]
enum Op {
    Push(bool, Vec<u8>),
    Pop(bool),
    Set(usize, Vec<u8>),
    Insert(usize, bool, Vec<u8>),
    Remove(usize, i64),
    Trim(usize, usize),
}

fn elem() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0i64..300).prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(b'a'..b'e', 0..4),
        proptest::collection::vec(any::<u8>(), 60..70),
        proptest::collection::vec(any::<u8>(), 4000..4200),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), elem()).prop_map(|(l, e)| Op::Push(l, e)),
        2 => any::<bool>().prop_map(Op::Pop),
        1 => (any::<usize>(), elem()).prop_map(|(i, e)| Op::Set(i, e)),
        1 => (any::<usize>(), any::<bool>(), elem()).prop_map(|(i, a, e)| Op::Insert(i, a, e)),
        1 => (any::<usize>(), -3i64..3).prop_map(|(i, c)| Op::Remove(i, c)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn behaves_like_a_deque(fill in prop_oneof![Just(-1i64), Just(-2), Just(1), Just(3), Just(16)],
                            compress in 0usize..3,
                            ops in proptest::collection::vec(op(), 1..200)) {
        let l = depth(fill, compress);
        let mut list = List::default();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(left, e) => {
                    if left { list.push(End::Left, &e, &l); model.push_front(e) }
                    else { list.push(End::Right, &e, &l); model.push_back(e) }
                }
                Op::Pop(left) => {
                    let (a, b) = if left { (list.pop(End::Left), model.pop_front()) }
                        else { (list.pop(End::Right), model.pop_back()) };
                    prop_assert_eq!(a, b);
                }
                Op::Set(i, e) => {
                    let i = if model.is_empty() { 0 } else { i % (model.len() + 1) };
                    let ok = list.set(i, &e, &l);
                    prop_assert_eq!(ok, i < model.len());
                    if ok { model[i] = e; }
                }
                Op::Insert(i, after, e) => {
                    let pivot = if model.is_empty() { b"none".to_vec() } else { model[i % model.len()].clone() };
                    let r = list.insert(&pivot, &e, after, &l);
                    match model.iter().position(|x| *x == pivot) {
                        Some(p) => {
                            model.insert(if after { p + 1 } else { p }, e);
                            prop_assert_eq!(r, Some(model.len()));
                        }
                        None => prop_assert_eq!(r, None),
                    }
                }
                Op::Remove(i, count) => {
                    let e = if model.is_empty() { b"x".to_vec() } else { model[i % model.len()].clone() };
                    let n = list.remove(&e, count, &l);
                    let mut quota = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                    let mut removed = 0;
                    if count < 0 {
                        let mut k = model.len();
                        while k > 0 && quota > 0 {
                            k -= 1;
                            if model[k] == e { model.remove(k); quota -= 1; removed += 1; }
                        }
                    } else {
                        let mut k = 0;
                        while k < model.len() && quota > 0 {
                            if model[k] == e { model.remove(k); quota -= 1; removed += 1; } else { k += 1; }
                        }
                    }
                    prop_assert_eq!(n, removed);
                }
                Op::Trim(a, b) => {
                    let len = model.len();
                    let front = if len == 0 { 0 } else { a % (len + 1) };
                    let back = if len - front == 0 { 0 } else { b % (len - front + 1) };
                    list.remove_front(front);
                    list.remove_back(back);
                    model.drain(..front);
                    model.truncate(model.len() - back);
                }
            }
            list.check();
            prop_assert_eq!(list.len(), model.len());
        }
        let got = items(&list);
        let want: Vec<Vec<u8>> = model.iter().cloned().collect();
        prop_assert_eq!(&got, &want);
        let mut rev = rev_items(&list);
        rev.reverse();
        prop_assert_eq!(&rev, &want);
        prop_assert_eq!(&list.clone(), &list);
        for (i, w) in want.iter().enumerate() {
            let got = [
                list.get(i),
                list.cursor_from(i).next().map(|m| m.to_vec()),
                list.rev_cursor_from(i).next().map(|m| m.to_vec()),
            ];
            for g in got {
                prop_assert_eq!(g.as_ref(), Some(w));
            }
        }
    }
}
