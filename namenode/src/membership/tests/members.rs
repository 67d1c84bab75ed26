//! Joins, drains, leaves, re-registration, refusals and status.

use super::*;

#[test]
fn a_late_report_credits_the_node_the_slots_went_to() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["a"], t0);
    // b joins: a is ordered to hand b its share, and is slow about it.
    let orders = migrations(&m.handle(register(2, "b", 7001), now));
    assert_eq!(orders.len(), 1);
    let (conn_a, to_b, _) = orders[0].clone();
    // The order times out and c joins meanwhile: some of those slots are now c's in the
    // ring, and a is ordered to hand them to c instead.
    let _ = m.handle(register(3, "c", 7002), now);
    let later = now + MOVE_TIMEOUT + Duration::from_secs(1);
    for (conn, id) in [(1, "a"), (2, "b"), (3, "c")] {
        let _ = m.handle(heartbeat(conn, id, 0), later);
    }
    let reordered = migrations(&m.handle(Event::Tick, later));
    assert!(
        reordered.iter().any(|(_, _, to)| to.as_str() == "c"),
        "re-ordered towards c: {reordered:?}"
    );
    // a reports the first order done: the slots are on b.
    let slots: Vec<RangeInclusive<Slot>> = to_b
        .iter()
        .filter_map(|&(x, y)| Some(Slot::new(x)?..=Slot::new(y)?))
        .collect();
    let _ = m.handle(
        Event::HandoffDone {
            conn: conn_a,
            node: NodeId::from("a"),
            slots: slots.clone(),
            to: Some(NodeId::from("b")),
            epoch: u64::MAX,
        },
        later,
    );
    let table = &m.published().expect("published").table;
    let c = NodeId::from("c");
    for range in &slots {
        for s in range.start().get()..=range.end().get() {
            let owner = table.owner(Slot::new(s).expect("slot"));
            assert_ne!(
                owner,
                Some(&c),
                "slot {s} credited to c, which holds nothing"
            );
            assert_eq!(owner, Some(&NodeId::from("b")), "slot {s}");
        }
    }
}

#[test]
fn an_epoch_at_the_limit_never_wraps() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["a"], t0);
    // A node reports the largest epoch there is (a bug, or a hostile peer): the tables
    // that follow may not go above it, and must never wrap to small numbers, which every
    // DataNode would ignore as older than what it has.
    let a = m.handle(heartbeat(1, "a", u64::MAX), now);
    for (p, _) in broadcasts(&a) {
        assert_eq!(p.epoch(), u64::MAX);
    }
    let a = m.handle(register(2, "b", 7001), now);
    for (p, _) in broadcasts(&a) {
        assert_eq!(p.epoch(), u64::MAX);
    }
    // A restarted NameNode that hears of that epoch first.
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t0);
    let a = m.handle(
        Event::Registered {
            conn: ConnId(1),
            info: info("a", 7000),
            epoch_seen: u64::MAX,
            owned_slots: Vec::new(),
            leased: false,
            draining: false,
            life: 0,
            members_since: Vec::new(),
            suspects: Vec::new(),
        },
        t0,
    );
    assert!(broadcasts(&a).is_empty());
    let a = m.handle(Event::Tick, t0 + timing().startup_grace);
    for (p, _) in broadcasts(&a) {
        assert_eq!(p.epoch(), u64::MAX);
    }
}

#[test]
fn joins_publish_and_welcome() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&[], t0);
    assert_eq!(m.published().map(|p| p.epoch()), Some(1));

    // The first node takes every slot at once: there is no data anywhere to move.
    let a = m.handle(register(1, "dn-a", 7001), now);
    let w = welcomes(&a);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, ConnId(1));
    assert_eq!(w[0].1.epoch(), 2);
    assert_every_slot_owned_once(&w[0].1, &["dn-a"]);
    let b = broadcasts(&a);
    assert_eq!(b.len(), 1);
    assert!(
        b[0].1.is_empty(),
        "the newcomer gets a welcome, not a second copy"
    );
    assert!(migrations(&a).is_empty());

    // A second node: it is announced at once, and dn-a is ordered to hand it its share;
    // ownership changes only when dn-a confirms.
    let a = m.handle(register(2, "dn-b", 7002), now);
    let b = broadcasts(&a);
    assert_eq!(b[0].1, vec![ConnId(1)]);
    assert_eq!(b[0].0.epoch(), 3);
    assert_eq!(b[0].0.nodes.len(), 2);
    assert_every_slot_owned_once(&b[0].0.table, &["dn-a"]);
    let orders = migrations(&a);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].0, ConnId(1));
    assert_eq!(orders[0].2, NodeId::from("dn-b"));
    let moved: usize = orders[0].1.iter().map(|(s, e)| (e - s + 1) as usize).sum();
    assert_eq!(m.moving(), moved);
    assert!(moved > 5000 && moved < 11000, "{moved}");

    let a = settle(&mut m, a, now);
    let last = broadcasts(&a).pop().expect("a table after the move");
    assert_every_slot_owned_once(&last.0.table, &["dn-a", "dn-b"]);
    assert_eq!(m.moving(), 0);

    let a = m.handle(register(3, "dn-c", 7003), now);
    let a = settle(&mut m, a, now);
    let last = broadcasts(&a).pop().expect("table");
    assert_every_slot_owned_once(&last.0.table, &["dn-a", "dn-b", "dn-c"]);
    assert_eq!(last.0.nodes.len(), 3);
    assert_eq!(m.len(), 3);
}

/// A joining node is handed data by one node at a time: every source at once made each
/// source's batches wait behind the others' on the new node, frozen all along (a join's
/// p99.9 request latency was 3-4x the steady state's in `helper/bench-handoff.sh`).
#[test]
fn a_joining_node_receives_from_one_source_at_a_time() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let a = m.handle(register(4, "dn-d", 7004), now);
    let orders = migrations(&a);
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].2, NodeId::from("dn-d"));
    // Nothing else is ordered while that source is busy, whatever happens meanwhile.
    assert!(migrations(&m.handle(Event::Tick, now)).is_empty());
    assert!(migrations(&m.handle(heartbeat(2, "dn-b", 5), now)).is_empty());
    // As each source confirms, the next is ordered: one after the other, each once.
    let all = settle(&mut m, a, now);
    let sources: Vec<ConnId> = migrations(&all).iter().map(|o| o.0).collect();
    let mut distinct = sources.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((sources.len(), distinct.len()), (3, 3), "{sources:?}");
    assert_eq!(m.moving(), 0);
    let t = m.published().expect("p").table.clone();
    assert_every_slot_owned_once(&t, &["dn-a", "dn-b", "dn-c", "dn-d"]);
}

#[test]
fn a_drain_moves_everything_then_lets_the_node_go() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();
    let a = m.handle(leave(2, "dn-b"), now);
    let orders = migrations(&a);
    assert!(orders.iter().all(|(c, _, _)| *c == ConnId(2)));
    assert_eq!(
        m.len(),
        3,
        "a draining node stays until its slots have moved"
    );
    // Until confirmed, dn-b still owns its slots.
    assert_eq!(
        m.published()
            .expect("p")
            .table
            .slots_of(&NodeId::from("dn-b")),
        before.slots_of(&NodeId::from("dn-b"))
    );
    let a = settle(&mut m, a, now);
    assert_eq!(m.len(), 2);
    // dn-b gets the final table, without itself, as its acknowledgement.
    let farewell = a.iter().any(|x| {
        matches!(x, Action::SendTo { conn: ConnId(2), msg: NameNodeToDataNode::Table { table, .. } }
            if table.slots_of(&NodeId::from("dn-b")) == 0 && table.assigned_slots() == SLOT_COUNT)
    });
    assert!(farewell, "{a:?}");
    let after = m.published().expect("p").table.clone();
    assert_every_slot_owned_once(&after, &["dn-a", "dn-c"]);
    // Only dn-b's slots moved.
    for slot in Slot::all() {
        if before.owner(slot) != Some(&NodeId::from("dn-b")) {
            assert_eq!(before.owner(slot), after.owner(slot));
        }
    }
}

#[test]
fn a_join_during_a_drain_is_merged_and_a_dead_target_is_reordered() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    // dn-b drains; before it confirms anything, dn-c joins and dn-a... keeps serving.
    let a1 = m.handle(leave(2, "dn-b"), now);
    assert!(!migrations(&a1).is_empty());
    let a2 = m.handle(register(3, "dn-c", 7003), now);
    // dn-c's share of dn-a's slots moves; dn-b's slots stay ordered to dn-a (in flight).
    let mut all = a1;
    all.extend(a2);
    settle(&mut m, all, now);
    // After the first round, what went to dn-a but belongs to dn-c moves on.
    let a = m.handle(Event::Tick, now);
    settle(&mut m, a, now);
    let t = m.published().expect("p").table.clone();
    assert_every_slot_owned_once(&t, &["dn-a", "dn-c"]);
    assert_eq!(m.len(), 2);
    assert_eq!(m.moving(), 0);
}

#[test]
fn reregistering_on_a_new_connection_closes_the_old_one() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a"], t0);
    let a = m.handle(register(5, "dn-a", 7000), now);
    assert_eq!(
        a[0],
        Action::Close {
            conn: ConnId(1),
            reason: CloseReason::Superseded
        }
    );
    assert_eq!(welcomes(&a).len(), 1);
    // Messages still queued on the old connection are refused.
    let a = m.handle(heartbeat(1, "dn-a", 2), now);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Close {
            reason: CloseReason::ProtocolError,
            ..
        }
    )));
    assert!(probes(&a).is_empty(), "dn-a is fine on its new connection");
}

#[test]
fn a_new_address_is_published_under_a_new_epoch() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let before = m.published().expect("running").clone();
    let a = m.handle(register(9, "dn-b", 8001), now);
    let b = broadcasts(&a);
    assert_eq!(b[0].0.epoch(), before.epoch() + 1);
    assert_eq!(
        b[0].0.table.diff(&before.table),
        vec![],
        "owners are unchanged"
    );
    assert_eq!(b[0].0.nodes[1].client_addr.port(), 8001);
    assert_eq!(b[0].1, vec![ConnId(1)]);
}

#[test]
fn leave_publishes_and_acknowledges() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let a = m.handle(leave(2, "dn-b"), now);
    // dn-b hands its slots to dn-a first; then the table without it is published and
    // sent to it as the acknowledgement.
    assert!(!migrations(&a).is_empty());
    let a = settle(&mut m, a, now);
    let b = broadcasts(&a);
    let last = b.last().expect("table");
    assert_eq!(last.1, vec![ConnId(1)]);
    assert_every_slot_owned_once(&last.0.table, &["dn-a"]);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::SendTo {
            conn: ConnId(2),
            msg: NameNodeToDataNode::Table { .. }
        }
    )));
    // Its connection closing afterwards is nobody's business.
    assert!(m
        .handle(Event::Disconnected { conn: ConnId(2) }, now)
        .is_empty());
    assert_eq!(m.len(), 1);
}

#[test]
fn operator_drains_are_told_on_the_nodes_connection() {
    let t0 = Instant::now();
    let mut fresh = Membership::new(DEFAULT_VNODES, timing(), t0);
    let _ = fresh.handle(register(1, "dn-a", 7001), t0);
    assert_eq!(
        fresh.drain_target(&NodeId::from("dn-a")),
        Err(DrainRefused::Starting)
    );

    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    assert_eq!(m.drain_target(&NodeId::from("dn-b")), Ok(ConnId(2)));
    assert_eq!(
        m.drain_target(&NodeId::from("dn-x")),
        Err(DrainRefused::Unknown(NodeId::from("dn-x")))
    );
    assert!(m.status(now).moving.is_empty());
    let a = m.handle(leave(2, "dn-b"), now);
    assert_eq!(
        m.drain_target(&NodeId::from("dn-b")),
        Err(DrainRefused::AlreadyDraining(NodeId::from("dn-b")))
    );
    // The moves show as runs from dn-b to dn-a covering exactly the slots in flight.
    let status = m.status(now);
    assert!(!status.moving.is_empty());
    let in_runs: usize = status
        .moving
        .iter()
        .map(|(first, last, from, to)| {
            assert_eq!((from.as_str(), to.as_str()), ("dn-b", "dn-a"));
            usize::from(last - first) + 1
        })
        .sum();
    assert_eq!(in_runs, m.moving());
    settle(&mut m, a, now);
    assert!(m.status(now).moving.is_empty());

    let _ = m.handle(Event::Disconnected { conn: ConnId(1) }, now);
    assert_eq!(
        m.drain_target(&NodeId::from("dn-a")),
        Err(DrainRefused::NotConnected(NodeId::from("dn-a")))
    );
}

#[test]
fn unregistered_and_mismatched_connections_are_refused() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a"], t0);
    let a = m.handle(heartbeat(42, "dn-x", 0), now);
    assert_eq!(a.len(), 2, "{a:?}");
    // A connection registered as dn-a cannot speak for dn-b...
    let a = m.handle(
        Event::ProbeAnswered {
            conn: ConnId(1),
            node: NodeId::from("dn-b"),
            nonce: 1,
        },
        now,
    );
    assert!(a.iter().any(|x| matches!(x, Action::Close { .. })));
    // ...which counts as dn-a losing its connection.
    assert_eq!(probes(&a), vec![(NodeId::from("dn-a"), None, 1)]);
    // Nor register a second id.
    let mut m = running_with(&["dn-a"], t0).0;
    let a = m.handle(register(1, "dn-b", 7100), now);
    assert!(broadcasts(&a).is_empty());
    assert_eq!(m.len(), 1);
}

#[test]
fn a_lagging_node_gets_the_table_again() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let epoch = m.published().map(|p| p.epoch()).unwrap_or_default();
    // Right after a push a stale heartbeat is expected: the push is in flight.
    assert!(m.handle(heartbeat(1, "dn-a", epoch - 1), now).is_empty());
    let a = m.handle(heartbeat(1, "dn-a", epoch - 1), now + INTERVAL);
    assert!(matches!(
        a.as_slice(),
        [Action::SendTo {
            conn: ConnId(1),
            msg: NameNodeToDataNode::Table { .. }
        }]
    ));
    assert!(m
        .handle(heartbeat(1, "dn-a", epoch), now + INTERVAL)
        .is_empty());
}

#[test]
fn status_reports_members_and_slots() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let epoch = m.published().map(|p| p.epoch()).unwrap_or_default();
    m.handle(heartbeat(1, "dn-a", epoch), now + INTERVAL);
    let s = m.status(now + INTERVAL * 2);
    assert_eq!(s.state, "running");
    assert_eq!(s.epoch, epoch);
    assert_eq!(s.slots_assigned, SLOT_COUNT);
    assert_eq!(s.nodes.len(), 2);
    assert_eq!(s.nodes[0].stats.keys, 7);
    assert_eq!(s.nodes[0].last_heartbeat_ms_ago, Some(100));
    assert_eq!(s.nodes[1].last_heartbeat_ms_ago, None);
    assert_eq!(s.nodes.iter().map(|n| n.slots).sum::<usize>(), SLOT_COUNT);
    let covered: usize = s
        .ranges
        .iter()
        .map(|(a, b, _)| usize::from(b - a) + 1)
        .sum();
    assert_eq!(covered, SLOT_COUNT);
    let json = serde_json::to_value(&s).expect("serializes");
    assert_eq!(json["nodes"][0]["used_memory"], 1024);
}

#[test]
fn merge_runs_normalises() {
    let s = |n| Slot::new(n).expect("in range");
    assert_eq!(
        merge_runs(&[s(10)..=s(20), s(0)..=s(4), s(5)..=s(9), s(15)..=s(30)]),
        vec![(0, 30)]
    );
    assert_eq!(
        merge_runs(&[s(0)..=s(0), s(16383)..=s(16383)]),
        vec![(0, 0), (16383, 16383)]
    );
    assert!(merge_runs(&[]).is_empty());
}
