use super::*;
use proptest::prelude::*;

fn vnodes(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("test vnode counts are positive")
}

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn slot(n: u16) -> Slot {
    Slot::new(n).expect("test slots are in range")
}

fn ring_of(v: u32, ids: &[&str]) -> Ring {
    let mut ring = Ring::new(vnodes(v));
    for &n in ids {
        ring.add(id(n));
    }
    ring
}

/// The clockwise rule computed the slow, obvious way.
fn brute_owner(ring: &Ring, slot: Slot) -> Option<NodeId> {
    let mut claims: Vec<(u64, NodeId)> = ring
        .nodes()
        .flat_map(|n| ring.points_of(n).into_iter().map(move |p| (p, n.clone())))
        .collect();
    // Smallest point first; on a tie the smallest id holds the point.
    claims.sort();
    let at = slot_point(slot);
    claims
        .iter()
        .find(|(p, _)| *p >= at)
        .or(claims.first())
        .map(|(_, n)| n.clone())
}

#[test]
fn assign_each_matches_repeated_assign() {
    let mut ring = Ring::default();
    for id in ["a", "b", "c"] {
        ring.add(NodeId::new(id));
    }
    let base = ring.slot_table();
    let (b, d) = (NodeId::new("b"), NodeId::new("d"));
    let moves: Vec<(Slot, Option<&NodeId>)> = Slot::all()
        .filter(|s| s.get() % 7 == 0)
        .map(|s| (s, if s.get() % 2 == 0 { Some(&d) } else { Some(&b) }))
        .chain([(Slot::new(5).expect("slot"), None)])
        .collect();
    let mut one = base.clone();
    for (s, o) in &moves {
        one.assign(*s..=*s, *o);
    }
    let mut many = base;
    many.assign_each(moves);
    assert!(one == many);
}

#[test]
fn hash_primitives_match_published_vectors() {
    // FNV-1a 64 of "" and "a", and splitmix64's first output from seed 0.
    assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
}

#[test]
fn slot_points_split_the_ring_evenly() {
    assert_eq!(SLOT_SHIFT, 50);
    assert_eq!(slot_point(slot(0)), 0);
    assert_eq!(slot_point(slot(1)), 1 << 50);
    assert_eq!(slot_point(slot(8192)), 1 << 63);
    assert_eq!(slot_point(slot(16383)), u64::MAX - (1 << 50) + 1);
}

#[test]
fn hashring_lookup_is_clockwise_and_wraps() {
    let mut ring: HashRing<VNode, PointHash> = HashRing::with_hasher(PointHash);
    for (point, node) in [(300, "c"), (100, "a"), (200, "b")] {
        ring.add(VNode {
            point,
            node: id(node),
        });
    }
    fn at(ring: &HashRing<VNode, PointHash>, p: u64) -> Option<&str> {
        ring.get(&Point(p)).map(|v| v.node.as_str())
    }
    assert_eq!(at(&ring, 0), Some("a"));
    assert_eq!(
        at(&ring, 100),
        Some("a"),
        "a point on a vnode belongs to that vnode"
    );
    assert_eq!(at(&ring, 101), Some("b"));
    assert_eq!(at(&ring, 200), Some("b"));
    assert_eq!(at(&ring, 250), Some("c"));
    assert_eq!(
        at(&ring, 301),
        Some("a"),
        "past the last vnode wraps to the first"
    );
    assert_eq!(at(&ring, u64::MAX), Some("a"));
    // Removal finds the entry by point alone.
    let removed = ring.remove(&VNode {
        point: 200,
        node: id("anything"),
    });
    assert_eq!(removed.map(|v| v.node), Some(id("b")));
    assert_eq!(at(&ring, 150), Some("c"));
}

#[test]
fn point_hasher_is_the_identity() {
    for p in [0, 1, 1 << 50, u64::MAX] {
        assert_eq!(PointHash.hash_one(Point(p)), p);
        assert_eq!(
            PointHash.hash_one(VNode {
                point: p,
                node: id("x")
            }),
            p
        );
    }
}

/// Pins the hash and the clockwise rule to concrete numbers: if this fails, nodes built
/// from different versions of CHKV would disagree about who owns what.
#[test]
fn test_vectors() {
    // Cross-checked against an independent implementation (Python, same definition).
    assert_eq!(vnode_point(&id("dn-a"), 0), 0xba6c_78ba_48be_dce6);
    assert_eq!(vnode_point(&id("dn-a"), 1), 0x7ce7_879c_25dd_4b5c);
    assert_eq!(vnode_point(&id("dn-a"), 255), 0xf438_1b4c_6f94_e31e);
    assert_eq!(vnode_point(&id("10.0.0.7:10100"), 0), 0x654c_c197_6db7_f1a5);
    assert_eq!(vnode_point(&id(""), 0), 0xaca6_d6b5_4be3_ed05);

    let ring = ring_of(256, &["dn-c", "dn-a", "dn-b"]);
    let owners: Vec<&str> = [0, 1, 5061, 8192, 12182, 16383]
        .into_iter()
        .map(|s| ring.owner_of(slot(s)).map_or("", NodeId::as_str))
        .collect();
    assert_eq!(owners, ["dn-a", "dn-a", "dn-b", "dn-b", "dn-c", "dn-a"]);
    let table = ring.slot_table();
    assert_eq!(table.nodes(), [id("dn-a"), id("dn-b"), id("dn-c")]);
    let counts: Vec<usize> = table.nodes().iter().map(|n| table.slots_of(n)).collect();
    assert_eq!(counts, [5587, 5492, 5305]);
    let ranges = table.ranges();
    assert_eq!(ranges.len(), 510);
    assert_eq!(ranges.first(), Some(&(0, 8, 0)));
    assert_eq!(ranges.last(), Some(&(16365, 16383, 0)));
}

#[test]
fn empty_ring_owns_nothing() {
    let ring = Ring::default();
    assert!(ring.is_empty());
    assert_eq!(ring.owner_of(slot(0)), None);
    let table = ring.slot_table();
    assert_eq!(table, SlotTable::empty(0));
    assert!(table.nodes().is_empty());
    assert!(table.ranges().is_empty());
    assert_eq!(table.assigned_slots(), 0);
    assert!(Slot::all().all(|s| table.owner(s).is_none()));
}

#[test]
fn single_node_owns_everything() {
    let ring = ring_of(4, &["solo"]);
    let table = ring.slot_table();
    assert_eq!(table.nodes(), [id("solo")]);
    assert_eq!(table.ranges(), [(0, 16383, 0)]);
    assert_eq!(table.slots_of(&id("solo")), SLOT_COUNT);
    assert_eq!(table.ranges_of(&id("solo")), [(0, 16383)]);
    assert_eq!(table.ranges_of(&id("other")), []);
}

#[test]
fn epoch_moves_only_on_changes() {
    let mut ring = Ring::new(vnodes(8));
    assert_eq!(ring.epoch(), 0);
    assert!(ring.add(id("a")));
    assert!(!ring.add(id("a")));
    assert_eq!(ring.epoch(), 1);
    assert!(!ring.remove(&id("b")));
    assert_eq!(ring.epoch(), 1);
    assert!(ring.remove(&id("a")));
    assert_eq!(ring.epoch(), 2);
    ring.set_epoch(40);
    ring.add(id("b"));
    assert_eq!(ring.slot_table().epoch(), 41);
}

/// Every node's virtual nodes on the same 16 points: each point is a tie.
fn all_tied(_: &NodeId, i: u32) -> u64 {
    u64::from(i % 16) << 60
}

#[test]
fn ties_go_to_the_smallest_id_in_any_order() {
    let mut ring = Ring::with_point_fn(vnodes(32), all_tied);
    for n in ["c", "a", "b"] {
        ring.add(id(n));
    }
    let table = ring.slot_table();
    assert_eq!(table.nodes(), [id("a")]);
    assert_eq!(table.assigned_slots(), SLOT_COUNT);

    ring.remove(&id("b"));
    assert_eq!(ring.slot_table().nodes(), [id("a")]);
    ring.remove(&id("a"));
    assert_eq!(ring.slot_table().nodes(), [id("c")]);
    ring.add(id("a"));
    assert_eq!(ring.slot_table().nodes(), [id("a")]);
    ring.remove(&id("a"));
    ring.remove(&id("c"));
    assert!(ring.shadowed.is_empty());
    assert_eq!(ring.ring.len(), 0);
    assert_eq!(ring.slot_table().assigned_slots(), 0);
}

#[test]
fn assign_moves_slots_and_keeps_tables_canonical() {
    let ring = ring_of(16, &["a", "b"]);
    let before = ring.slot_table();
    let mut table = before.clone();
    table.assign(slot(10)..=slot(20), Some(&id("z")));
    assert_eq!(table.slots_of(&id("z")), 11);
    assert_eq!(table.ranges_of(&id("z")), [(10, 20)]);
    assert_eq!(table.nodes().last(), Some(&id("z")));
    let moves = before.diff(&table);
    assert_eq!(moves.iter().map(SlotMove::slot_count).sum::<usize>(), 11);
    assert!(moves.iter().all(|m| m.to == Some(id("z"))));

    table.assign(slot(0)..=slot(16383), None);
    assert_eq!(table, SlotTable::empty(before.epoch()));
    for (start, end, index) in before.ranges() {
        let owner = before.nodes()[index as usize].clone();
        table.assign(slot(start)..=slot(end), Some(&owner));
    }
    assert_eq!(table, before);
}

#[test]
fn diff_merges_runs() {
    let mut a = SlotTable::empty(1);
    a.assign(slot(0)..=slot(16383), Some(&id("x")));
    let mut b = a.clone();
    b.assign(slot(5)..=slot(9), Some(&id("y")));
    b.assign(slot(10)..=slot(12), None);
    assert_eq!(
        a.diff(&b),
        [
            SlotMove {
                start: slot(5),
                end: slot(9),
                from: Some(id("x")),
                to: Some(id("y")),
            },
            SlotMove {
                start: slot(10),
                end: slot(12),
                from: Some(id("x")),
                to: None,
            },
        ]
    );
    assert!(a.diff(&a).is_empty());
}

#[test]
fn wire_form_is_ranges() {
    let mut table = SlotTable::empty(7);
    table.assign(slot(0)..=slot(8191), Some(&id("dn-a")));
    table.assign(slot(8192)..=slot(16383), Some(&id("dn-b")));
    let json = serde_json::to_string(&table).expect("tables serialize");
    assert_eq!(
        json,
        r#"{"epoch":7,"nodes":["dn-a","dn-b"],"ranges":[[0,8191,0],[8192,16383,1]]}"#
    );
    let back: SlotTable = serde_json::from_str(&json).expect("own output parses");
    assert_eq!(back, table);

    let big = ring_of(256, &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]).slot_table();
    let json = serde_json::to_string(&big).expect("tables serialize");
    assert!(json.len() < 64 * 1024, "{} bytes", json.len());
}

#[test]
fn wire_form_accepts_any_node_order() {
    let json = r#"{"epoch":1,"nodes":["b","unused","a"],"ranges":[[100,199,2],[0,99,0]]}"#;
    let table: SlotTable = serde_json::from_str(json).expect("valid table");
    assert_eq!(table.nodes(), [id("a"), id("b")]);
    assert_eq!(table.ranges(), [(0, 99, 1), (100, 199, 0)]);
    assert_eq!(table.assigned_slots(), 200);
}

#[test]
fn wire_form_rejects_bad_tables() {
    let bad = [
        (
            r#"{"epoch":1,"nodes":["a"],"ranges":[[5,4,0]]}"#,
            "reversed",
        ),
        (
            r#"{"epoch":1,"nodes":["a"],"ranges":[[0,16384,0]]}"#,
            "past slot",
        ),
        (
            r#"{"epoch":1,"nodes":["a"],"ranges":[[0,10,0],[10,12,0]]}"#,
            "slot 10 is assigned twice",
        ),
        (
            r#"{"epoch":1,"nodes":["a"],"ranges":[[0,10,1]]}"#,
            "names node 1",
        ),
        (
            r#"{"epoch":1,"nodes":["a","a"],"ranges":[]}"#,
            "listed twice",
        ),
        (r#"{"epoch":1,"nodes":["a"]}"#, "missing field"),
        (
            r#"{"epoch":1,"nodes":["a"],"ranges":[[0,-1,0]]}"#,
            "invalid value",
        ),
    ];
    for (json, why) in bad {
        let err = serde_json::from_str::<SlotTable>(json).expect_err(json);
        assert!(err.to_string().contains(why), "{json}: {err}");
    }
}

/// A small deterministic generator, so the measurement below is reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

/// How far the busiest node is above its fair share, over many random memberships.
#[test]
fn load_balance_at_default_vnodes() {
    const TRIALS: usize = 200;
    let mut rng = SplitMix(0x0c4b_5eed);
    let mut all = Vec::new();
    println!("max-load / fair-share at V = {DEFAULT_VNODES}, {TRIALS} random memberships per N");
    println!(" N  median    p90    p99    max");
    for n in 3..=10usize {
        let mut ratios: Vec<f64> = (0..TRIALS)
            .map(|_| {
                let mut ring = Ring::default();
                while ring.len() < n {
                    // Mix id shapes: opaque hex ids and host:port ids.
                    let r = rng.next();
                    let name = if r & 1 == 0 {
                        format!("dn-{r:016x}")
                    } else {
                        format!(
                            "10.{}.{}.{}:{}",
                            r >> 56,
                            (r >> 48) as u8,
                            (r >> 40) as u8,
                            10100 + (r >> 20) % 100
                        )
                    };
                    ring.add(NodeId::new(name));
                }
                let table = ring.slot_table();
                assert_eq!(table.assigned_slots(), SLOT_COUNT);
                let max = ring.nodes().map(|id| table.slots_of(id)).max().unwrap_or(0);
                max as f64 / (SLOT_COUNT as f64 / n as f64)
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (median, p90, p99, max) = (
            percentile(&ratios, 0.5),
            percentile(&ratios, 0.9),
            percentile(&ratios, 0.99),
            ratios[TRIALS - 1],
        );
        println!("{n:2}  {median:.3}  {p90:.3}  {p99:.3}  {max:.3}");
        assert!(p99 <= 1.2, "N = {n}: p99 max-load ratio {p99:.3} > 1.2");
        all.extend(ratios);
    }
    all.sort_by(f64::total_cmp);
    println!(
        "all median {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        all[all.len() - 1]
    );
    assert!(percentile(&all, 0.99) <= 1.2);
}

fn membership() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z0-9]{1,6}", 1..7)
        .prop_map(|ids| ids.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

/// Real hashes, or a coarse one that makes ties common.
fn point_fn() -> impl Strategy<Value = fn(&NodeId, u32) -> u64> {
    prop_oneof![
        Just(vnode_point as fn(&NodeId, u32) -> u64),
        Just((|n: &NodeId, i: u32| vnode_point(n, i) & (0xf << 60)) as fn(&NodeId, u32) -> u64),
    ]
}

fn build(v: u32, point_of: fn(&NodeId, u32) -> u64, ids: &[String]) -> Ring {
    let mut ring = Ring::with_point_fn(vnodes(v), point_of);
    for n in ids {
        ring.add(NodeId::new(n.as_str()));
    }
    ring
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_slot_has_its_clockwise_owner(
        ids in membership(), v in 1u32..48, point_of in point_fn(),
    ) {
        let ring = build(v, point_of, &ids);
        let table = ring.slot_table();
        prop_assert_eq!(table.assigned_slots(), SLOT_COUNT);
        for s in Slot::all() {
            let owner = table.owner(s).cloned();
            prop_assert!(owner.as_ref().is_some_and(|o| ring.contains(o)));
            prop_assert_eq!(ring.owner_of(s), owner.as_ref());
            if s.get() % 61 == 0 {
                prop_assert_eq!(owner, brute_owner(&ring, s));
            }
        }
        let total: usize = table.nodes().iter().map(|n| table.slots_of(n)).sum();
        prop_assert_eq!(total, SLOT_COUNT);
    }

    #[test]
    fn adding_moves_slots_only_to_the_newcomer(
        ids in membership(), new in "[A-Z]{1,4}", v in 1u32..48, point_of in point_fn(),
    ) {
        let mut ring = build(v, point_of, &ids);
        let before = ring.slot_table();
        let new = NodeId::new(new);
        ring.add(new.clone());
        for m in before.diff(&ring.slot_table()) {
            prop_assert_eq!(m.to.as_ref(), Some(&new));
            prop_assert!(m.from.is_some());
        }
    }

    #[test]
    fn removing_moves_only_the_leavers_slots(
        ids in membership(), pick in any::<prop::sample::Index>(),
        v in 1u32..48, point_of in point_fn(),
    ) {
        let mut ring = build(v, point_of, &ids);
        let before = ring.slot_table();
        let gone = NodeId::new(pick.get(&ids).as_str());
        ring.remove(&gone);
        let after = ring.slot_table();
        prop_assert_eq!(after.slots_of(&gone), 0);
        for m in before.diff(&after) {
            prop_assert_eq!(m.from.as_ref(), Some(&gone));
            prop_assert_eq!(m.to.is_none(), ring.is_empty());
        }
    }

    #[test]
    fn membership_alone_decides_the_table(
        ids in membership(), extra in prop::collection::btree_set("[A-Z]{1,4}", 0..4),
        v in 1u32..48, point_of in point_fn(),
    ) {
        let mut sorted = ids.clone();
        sorted.sort();
        let mut expected = build(v, point_of, &sorted).slot_table();

        // Same members reached another way: other order, with detours through extra nodes.
        let mut ring = Ring::with_point_fn(vnodes(v), point_of);
        for (i, n) in ids.iter().enumerate() {
            if i == 1 {
                for e in &extra {
                    ring.add(NodeId::new(e.as_str()));
                }
            }
            ring.add(NodeId::new(n.as_str()));
        }
        for e in &extra {
            ring.remove(&NodeId::new(e.as_str()));
        }
        let table = ring.slot_table();
        expected.set_epoch(table.epoch());
        prop_assert_eq!(&table, &expected);
        prop_assert_eq!(table.ranges(), expected.ranges());
    }

    #[test]
    fn tables_round_trip_through_json(
        ids in membership(), v in 1u32..48, epoch in any::<u64>(),
        holes in prop::collection::vec((0u16..16384, 0u16..300), 0..4),
    ) {
        let mut ring = build(v, vnode_point, &ids);
        ring.set_epoch(epoch);
        let mut table = ring.slot_table();
        for (start, len) in holes {
            let end = start.saturating_add(len).min(16383);
            table.assign(slot(start)..=slot(end), None);
        }
        let json = serde_json::to_vec(&table).expect("tables serialize");
        let back: SlotTable = serde_json::from_slice(&json).expect("own output parses");
        prop_assert_eq!(&back, &table);
        prop_assert_eq!(back.ranges(), table.ranges());
    }
}
