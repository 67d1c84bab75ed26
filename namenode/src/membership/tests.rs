use super::*;
use chkv_common::DEFAULT_VNODES;

const INTERVAL: Duration = Duration::from_millis(100);

fn timing() -> Timing {
    Timing::new(INTERVAL, crate::config::DEFAULT_TOLERANCE)
}

fn info(id: &str, port: u16) -> NodeInfo {
    NodeInfo {
        id: NodeId::from(id),
        client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 10000)),
        tls_port: None,
    }
}

fn register(conn: u64, id: &str, port: u16) -> Event {
    Event::Registered {
        conn: ConnId(conn),
        info: info(id, port),
        epoch_seen: 0,
        owned_slots: Vec::new(),
        leased: false,
        draining: false,
    }
}

fn heartbeat(conn: u64, id: &str, epoch: u64) -> Event {
    Event::Heartbeat {
        conn: ConnId(conn),
        node: NodeId::from(id),
        epoch,
        stats: NodeStats {
            keys: 7,
            used_memory: 1024,
            ops: 3,
        },
        seq: 0,
    }
}

fn broadcasts(actions: &[Action]) -> Vec<(Arc<Publication>, Vec<ConnId>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast { publication, to } => Some((publication.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

fn welcomes(actions: &[Action]) -> Vec<(ConnId, SlotTable)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Welcome { table, .. },
            } => Some((*conn, table.clone())),
            _ => None,
        })
        .collect()
}

fn probes(actions: &[Action]) -> Vec<(NodeId, Option<ConnId>, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe {
                node,
                conn,
                attempt,
                ..
            } => Some((node.clone(), *conn, *attempt)),
            _ => None,
        })
        .collect()
}

fn dead(actions: &[Action]) -> Vec<NodeId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DeclaredDead { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

/// A migrate order: the connection it went to, its slot runs and its target.
type Order = (ConnId, Vec<(u16, u16)>, NodeId);

/// The migrate orders in `actions`.
fn migrations(actions: &[Action]) -> Vec<Order> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Migrate { slots, to, .. },
            } => Some((*conn, slots.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

/// Plays DataNodes that carry out every migrate order at once, until none is left;
/// returns every action seen.
fn settle(m: &mut Membership, mut actions: Vec<Action>, now: Instant) -> Vec<Action> {
    let mut all = Vec::new();
    loop {
        let orders = migrations(&actions);
        all.extend(actions);
        if orders.is_empty() {
            return all;
        }
        actions = Vec::new();
        for (conn, slots, to) in orders {
            let node = m.conns.get(&conn).cloned().expect("order to a member");
            let slots = slots
                .into_iter()
                .filter_map(|(a, b)| Some(Slot::new(a)?..=Slot::new(b)?))
                .collect();
            let to = Some(to);
            actions.extend(m.handle(
                Event::HandoffDone {
                    conn,
                    node,
                    slots,
                    to,
                },
                now,
            ));
        }
    }
}

/// Past the startup grace with an empty membership, then `ids` joined one by one, each
/// join's slot moves completed.
fn running_with(ids: &[&str], t0: Instant) -> (Membership, Instant) {
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t0);
    let now = t0 + timing().startup_grace;
    let actions = m.handle(Event::Tick, now);
    assert_eq!(broadcasts(&actions).len(), 1, "empty first table");
    for (i, id) in ids.iter().enumerate() {
        let a = m.handle(register(i as u64 + 1, id, 7000 + i as u16), now);
        settle(&mut m, a, now);
    }
    assert_eq!(m.moving(), 0);
    (m, now)
}

fn assert_every_slot_owned_once(table: &SlotTable, members: &[&str]) {
    assert_eq!(table.assigned_slots(), SLOT_COUNT);
    let owners: Vec<&str> = table.nodes().iter().map(NodeId::as_str).collect();
    assert_eq!(owners, members);
    let total: usize = table.nodes().iter().map(|n| table.slots_of(n)).sum();
    assert_eq!(total, SLOT_COUNT);
}

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

#[test]
fn a_drain_moves_everything_then_lets_the_node_go() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();
    let a = m.handle(
        Event::Left {
            conn: ConnId(2),
            node: NodeId::from("dn-b"),
        },
        now,
    );
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
    let a1 = m.handle(
        Event::Left {
            conn: ConnId(2),
            node: NodeId::from("dn-b"),
        },
        now,
    );
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
fn startup_grace_collects_then_publishes_once() {
    let t0 = Instant::now();
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t0);
    assert_eq!(m.next_deadline(), Some(t0 + timing().startup_grace));
    for (i, id) in ["dn-a", "dn-b", "dn-c"].iter().enumerate() {
        let a = m.handle(register(i as u64, id, 7000 + i as u16), t0);
        assert!(
            broadcasts(&a).is_empty() && welcomes(&a).is_empty(),
            "{a:?}"
        );
    }
    assert!(m.handle(Event::Tick, t0 + INTERVAL).is_empty());
    assert!(m.published().is_none());

    let a = m.handle(Event::Tick, t0 + timing().startup_grace);
    assert_eq!(welcomes(&a).len(), 3);
    let b = broadcasts(&a);
    assert_eq!(b.len(), 1);
    assert!(
        b[0].1.is_empty(),
        "datanodes get welcomes; only watchers get the push"
    );
    assert_eq!(b[0].0.epoch(), 1);
    assert_every_slot_owned_once(&b[0].0.table, &["dn-a", "dn-b", "dn-c"]);
    assert!(m.is_running());
}

/// What each node of `table` would report after a NameNode restart.
fn reregister(conn: u64, id: &str, port: u16, table: &SlotTable) -> Event {
    let owned = table
        .ranges_of(&NodeId::from(id))
        .into_iter()
        .filter_map(|(s, e)| Some(Slot::new(s)?..=Slot::new(e)?))
        .collect();
    Event::Registered {
        conn: ConnId(conn),
        info: info(id, port),
        epoch_seen: table.epoch(),
        owned_slots: owned,
        leased: false,
        draining: false,
    }
}

#[test]
fn restart_with_everyone_back_keeps_owners_and_epoch_without_waiting() {
    let t0 = Instant::now();
    let (m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();

    let mut m = Membership::new(DEFAULT_VNODES, timing(), now);
    let a = m.handle(reregister(10, "dn-c", 7002, &before), now);
    assert!(welcomes(&a).is_empty());
    m.handle(reregister(11, "dn-a", 7000, &before), now);
    // The last owner is back: no need to wait out the grace.
    let a = m.handle(reregister(12, "dn-b", 7001, &before), now);
    assert_eq!(welcomes(&a).len(), 3);
    let after = &broadcasts(&a)[0].0.table;
    assert_eq!(after, &before, "same owners, same epoch");
    assert!(migrations(&a).is_empty(), "nothing to move");
    assert!(a.contains(&Action::Notice(Notice::StartupDone {
        epoch: before.epoch(),
        members: 3,
        reused_epoch: true,
    })));
}

#[test]
fn restart_with_a_node_missing_waits_then_moves_the_epoch() {
    let t0 = Instant::now();
    let (m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();

    let mut m = Membership::new(DEFAULT_VNODES, timing(), now);
    m.handle(reregister(10, "dn-a", 7000, &before), now);
    let a = m.handle(reregister(11, "dn-b", 7001, &before), now);
    assert!(
        welcomes(&a).is_empty(),
        "dn-c's slots are uncovered: keep waiting"
    );
    let a = m.handle(Event::Tick, now + timing().startup_grace);
    let after = &broadcasts(&a)[0].0.table;
    assert_eq!(after.epoch(), before.epoch() + 1);
    assert_every_slot_owned_once(after, &["dn-a", "dn-b"]);
    // Consistent hashing: only dn-c's slots moved.
    for slot in Slot::all() {
        if before.owner(slot) != Some(&NodeId::from("dn-c")) {
            assert_eq!(before.owner(slot), after.owner(slot), "slot {slot}");
        }
    }
}

#[test]
fn a_straggler_with_a_newer_epoch_moves_ours_above_it() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a"], t0);
    assert_eq!(m.published().map(|p| p.epoch()), Some(2));
    let a = m.handle(
        Event::Registered {
            conn: ConnId(9),
            info: info("dn-b", 7009),
            epoch_seen: 40,
            owned_slots: Vec::new(),
            leased: false,
            draining: false,
        },
        now,
    );
    assert_eq!(broadcasts(&a)[0].0.epoch(), 41);
    assert_eq!(welcomes(&a)[0].1.epoch(), 41);

    // A heartbeat from a newer past, too.
    let a = m.handle(heartbeat(1, "dn-a", 50), now);
    assert_eq!(broadcasts(&a)[0].0.epoch(), 51);
    assert_eq!(broadcasts(&a)[0].0.nodes.len(), 2);
}

#[test]
fn silence_is_probed_three_times_then_declared_dead() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let epoch = m.published().map(|p| p.epoch()).unwrap_or_default();
    let limit = now + timing().suspect_after();
    // Heartbeats from a and b keep them alive; c goes silent after registering.
    let mut t = now;
    while t < limit {
        t += INTERVAL / 2;
        m.handle(heartbeat(1, "dn-a", epoch), t);
        m.handle(heartbeat(2, "dn-b", epoch), t);
    }
    assert_eq!(m.next_deadline(), Some(limit));
    let a = m.handle(Event::Tick, limit);
    assert_eq!(probes(&a), vec![(NodeId::from("dn-c"), Some(ConnId(3)), 1)]);
    let p = timing().probe_interval;
    assert_eq!(m.next_deadline(), Some(limit + p));
    assert!(m.handle(Event::Tick, limit + p / 2).is_empty());
    assert_eq!(probes(&m.handle(Event::Tick, limit + p)).len(), 1);
    assert_eq!(probes(&m.handle(Event::Tick, limit + p * 2))[0].2, 3);
    assert_eq!(m.next_deadline(), Some(limit + p * 3));
    let a = m.handle(Event::Tick, limit + p * 3);
    assert_eq!(dead(&a), vec![NodeId::from("dn-c")]);
    assert!(a.contains(&Action::Close {
        conn: ConnId(3),
        reason: CloseReason::DeclaredDead
    }));
    let b = broadcasts(&a);
    assert_eq!(b[0].0.epoch(), epoch + 1);
    assert_eq!(b[0].1, vec![ConnId(1), ConnId(2)]);
    assert_every_slot_owned_once(&b[0].0.table, &["dn-a", "dn-b"]);
    assert_eq!(m.status(limit + p * 3).declared_dead_total, 1);

    // Its late heartbeat is refused, so it reconnects and registers again.
    let a = m.handle(heartbeat(3, "dn-c", epoch), limit + p * 4);
    assert!(matches!(
        a.as_slice(),
        [
            Action::SendTo {
                msg: NameNodeToDataNode::Error { .. },
                ..
            },
            Action::Close {
                reason: CloseReason::ProtocolError,
                ..
            }
        ]
    ));
}

#[test]
fn a_pong_clears_suspicion() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a"], t0);
    let limit = now + timing().suspect_after();
    let a = m.handle(Event::Tick, limit);
    let Some(Action::Probe { nonce, .. }) = a
        .iter()
        .find(|x| matches!(x, Action::Probe { .. }))
        .cloned()
    else {
        panic!("no probe in {a:?}");
    };
    let a = m.handle(
        Event::ProbeAnswered {
            conn: ConnId(1),
            node: NodeId::from("dn-a"),
            nonce,
        },
        limit + Duration::from_millis(1),
    );
    assert_eq!(
        a,
        vec![Action::Notice(Notice::Recovered {
            node: NodeId::from("dn-a")
        })]
    );
    assert_eq!(
        m.next_deadline(),
        Some(limit + Duration::from_millis(1) + timing().suspect_after())
    );
    assert!(dead(&m.handle(Event::Tick, limit + INTERVAL * 2)).is_empty());
}

#[test]
fn a_closed_connection_is_probed_at_once_and_dies_fast() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let a = m.handle(Event::Disconnected { conn: ConnId(2) }, now);
    assert_eq!(probes(&a), vec![(NodeId::from("dn-b"), None, 1)]);
    let p = timing().probe_interval;
    m.handle(Event::Tick, now + p);
    m.handle(Event::Tick, now + p * 2);
    let a = m.handle(Event::Tick, now + p * 3);
    assert_eq!(dead(&a), vec![NodeId::from("dn-b")]);
    assert!(
        !a.iter().any(|x| matches!(x, Action::Close { .. })),
        "nothing left to close"
    );
    assert_eq!(broadcasts(&a)[0].1, vec![ConnId(1)]);
    // Far sooner than the missed-heartbeat path.
    assert!(p * 3 < timing().suspect_after());
}

#[test]
fn reconnecting_in_time_keeps_the_slots() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b"], t0);
    let table = m.published().expect("running").table.clone();
    m.handle(Event::Disconnected { conn: ConnId(2) }, now);
    let a = m.handle(register(20, "dn-b", 7001), now + timing().probe_interval);
    assert!(broadcasts(&a).is_empty(), "same members, same addresses");
    assert_eq!(welcomes(&a), vec![(ConnId(20), table.clone())]);
    let later = now + timing().probe_interval * 5;
    assert!(dead(&m.handle(Event::Tick, later)).is_empty());
    // The old connection's late close changes nothing.
    assert!(m
        .handle(Event::Disconnected { conn: ConnId(2) }, later)
        .is_empty());
    assert_eq!(m.published().map(|p| &p.table), Some(&table));
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
    let a = m.handle(
        Event::Left {
            conn: ConnId(2),
            node: NodeId::from("dn-b"),
        },
        now,
    );
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
    let a = m.handle(
        Event::Left {
            conn: ConnId(2),
            node: NodeId::from("dn-b"),
        },
        now,
    );
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

// ---- leases and fencing ----

fn leased(conn: u64, id: &str, port: u16, table: Option<&SlotTable>) -> Event {
    let (epoch_seen, owned_slots) = match table {
        Some(t) => (
            t.epoch(),
            t.ranges_of(&NodeId::from(id))
                .into_iter()
                .filter_map(|(s, e)| Some(Slot::new(s)?..=Slot::new(e)?))
                .collect(),
        ),
        None => (0, Vec::new()),
    };
    Event::Registered {
        conn: ConnId(conn),
        info: info(id, port),
        epoch_seen,
        owned_slots,
        leased: true,
        draining: false,
    }
}

fn beat(conn: u64, id: &str, epoch: u64, seq: u64) -> Event {
    Event::Heartbeat {
        conn: ConnId(conn),
        node: NodeId::from(id),
        epoch,
        stats: NodeStats::default(),
        seq,
    }
}

fn ack(conn: u64, id: &str, version: u64) -> Event {
    Event::SuspectsAcked {
        conn: ConnId(conn),
        node: NodeId::from(id),
        version,
    }
}

fn grants(actions: &[Action]) -> Vec<(ConnId, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Lease { seq },
            } => Some((*conn, *seq)),
            _ => None,
        })
        .collect()
}

/// The suspects lists sent, by connection.
fn lists(actions: &[Action]) -> Vec<(ConnId, Suspects)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Suspects(list),
            } => Some((*conn, list.clone())),
            _ => None,
        })
        .collect()
}

fn epoch_of(m: &Membership) -> u64 {
    m.published().map(|p| p.epoch()).expect("running")
}

fn lease() -> Duration {
    timing().lease + timing().lease_margin
}

/// Leased members `ids` (connection i + 1, port 7000 + i), joined one by one with their
/// moves done, each then heartbeating (and granted) at the final epoch at `now`.
fn leased_cluster(ids: &[&str], t0: Instant) -> (Membership, Instant) {
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t0);
    let now = t0 + timing().startup_grace;
    m.handle(Event::Tick, now);
    for (i, id) in ids.iter().enumerate() {
        let a = m.handle(leased(i as u64 + 1, id, 7000 + i as u16, None), now);
        settle(&mut m, a, now);
    }
    let epoch = epoch_of(&m);
    for (i, id) in ids.iter().enumerate() {
        let a = m.handle(beat(i as u64 + 1, id, epoch, 1), now);
        assert_eq!(grants(&a), vec![(ConnId(i as u64 + 1), 1)], "{id}");
    }
    (m, now)
}

/// Keeps `alive` heartbeating every half interval from `from` to `to`; returns the
/// actions of the last round.
fn keep_alive(m: &mut Membership, alive: &[(u64, &str)], from: Instant, to: Instant) {
    let epoch = epoch_of(m);
    let mut t = from;
    while t < to {
        t += INTERVAL / 2;
        for &(conn, id) in alive {
            m.handle(beat(conn, id, epoch, 2), t);
        }
        m.handle(Event::Tick, t);
    }
}

/// Silence from `dn-c` (conn 3) until it is fencing; a and b keep heartbeating.
/// Returns when c started fencing and the suspects list version sent.
fn fence_c(m: &mut Membership, now: Instant) -> (Instant, u64) {
    let alive = [(1, "dn-a"), (2, "dn-b")];
    let epoch = epoch_of(m);
    let mut t = now;
    loop {
        t += INTERVAL / 2;
        for &(conn, id) in &alive {
            m.handle(beat(conn, id, epoch, 2), t);
        }
        let a = m.handle(Event::Tick, t);
        assert!(
            dead(&a).is_empty(),
            "a leased node is fenced, not declared dead"
        );
        if let Some((_, list)) = lists(&a).first() {
            assert_eq!(list.nodes, vec![NodeId::from("dn-c")]);
            // Every member is told, c included (it may be alive and listening).
            let to: Vec<ConnId> = lists(&a).iter().map(|(c, _)| *c).collect();
            assert_eq!(to, vec![ConnId(1), ConnId(2), ConnId(3)]);
            assert_eq!(m.status(t).nodes[2].state, "fencing");
            return (t, list.version);
        }
        assert!(t < now + Duration::from_secs(5), "c was never fenced");
    }
}

#[test]
fn leases_are_granted_only_for_heartbeats_with_the_welcomed_table() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a"], t0);
    let epoch = epoch_of(&m);
    // A heartbeat without a sequence number asks for no lease.
    assert!(grants(&m.handle(beat(1, "dn-a", epoch, 0), now)).is_empty());
    // A second node joins; the welcome carries the lease and the suspects list.
    let a = m.handle(leased(2, "dn-b", 7001, None), now);
    let welcome = a.iter().find_map(|x| match x {
        Action::SendTo {
            conn: ConnId(2),
            msg:
                NameNodeToDataNode::Welcome {
                    epoch,
                    lease_ms,
                    suspects,
                    flush,
                    ..
                },
        } => Some((*epoch, *lease_ms, suspects.clone(), flush.clone())),
        _ => None,
    });
    let (welcomed, lease_ms, suspects, flush) = welcome.expect("welcomed");
    assert_eq!(lease_ms, 2000, "the floor under tolerance x interval");
    assert_eq!(suspects.map(|s| s.nodes), Some(Vec::new()));
    assert!(flush.is_empty(), "a new process drops nothing");
    // A heartbeat sent before the welcome was installed (older epoch): no lease.
    assert!(grants(&m.handle(beat(2, "dn-b", welcomed - 1, 7), now)).is_empty());
    assert_eq!(
        grants(&m.handle(beat(2, "dn-b", welcomed, 8), now)),
        vec![(ConnId(2), 8)]
    );
}

#[test]
fn a_silent_leased_node_is_fenced_and_its_slots_move_a_lease_after_the_first_ack() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").clone();
    let (fenced, version) = fence_c(&mut m, now);
    // Nobody acknowledged: nothing is ever reassigned, however long it takes.
    assert!(m.next_deadline().is_some());
    let far = fenced + Duration::from_secs(60);
    keep_alive(&mut m, &[(1, "dn-a"), (2, "dn-b")], fenced, far);
    assert_eq!(m.published().map(|p| p.epoch()), Some(before.epoch()));
    // b acknowledges; a lease (plus margin) later, c's slots move.
    let acked = far + Duration::from_millis(7);
    assert!(m.handle(ack(2, "dn-b", version), acked).is_empty());
    let ready = acked + lease();
    assert_eq!(
        m.fence_ready(&NodeId::from("dn-c"), &m.members["dn-c"]),
        Some(ready)
    );
    keep_alive(&mut m, &[(1, "dn-a"), (2, "dn-b")], acked, ready - INTERVAL);
    assert_eq!(m.published().map(|p| p.epoch()), Some(before.epoch()));
    let a = m.handle(Event::Tick, ready);
    assert_eq!(dead(&a), vec![NodeId::from("dn-c")]);
    let b = broadcasts(&a);
    assert_every_slot_owned_once(&b[0].0.table, &["dn-a", "dn-b"]);
    // Then, and only then, the list without it.
    let table_at = a.iter().position(|x| matches!(x, Action::Broadcast { .. }));
    let list_at = a.iter().position(|x| {
        matches!(x, Action::SendTo { msg: NameNodeToDataNode::Suspects(l), .. } if l.nodes.is_empty())
    });
    assert!(table_at < list_at && list_at.is_some(), "{a:?}");
}

#[test]
fn the_wait_counts_from_the_last_grant_when_it_is_later() {
    // A heartbeat granted just before the probes ran out: the lease it gave runs from
    // its arrival, later than the ack.
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    let c = &m.members["dn-c"];
    let last = c.last_grant.expect("granted once");
    assert!(last < fenced);
    assert_eq!(
        m.fence_ready(&NodeId::from("dn-c"), c),
        Some(fenced.max(last) + lease())
    );
}

#[test]
fn a_fenced_node_that_speaks_again_keeps_everything() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let table = m.published().expect("running").table.clone();
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    m.handle(ack(2, "dn-b", version), fenced);
    // It resumes before the lease wait is over: a heartbeat on its connection.
    let back = fenced + lease() / 2;
    let a = m.handle(beat(3, "dn-c", table.epoch(), 9), back);
    assert_eq!(grants(&a), vec![(ConnId(3), 9)]);
    let l = lists(&a);
    assert_eq!(l.len(), 3, "everyone hears it is off the list");
    assert!(l[0].1.nodes.is_empty() && l[0].1.version > version);
    // An ack of the old list arriving late changes nothing.
    m.handle(ack(2, "dn-b", version), back);
    keep_alive(
        &mut m,
        &[(1, "dn-a"), (2, "dn-b"), (3, "dn-c")],
        back,
        back + lease() * 4,
    );
    assert_eq!(m.published().map(|p| &p.table), Some(&table));
    assert_eq!(m.status(back).declared_dead_total, 0);
}

#[test]
fn a_fenced_node_that_registers_again_in_time_keeps_its_slots() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let table = m.published().expect("running").table.clone();
    let (fenced, _) = fence_c(&mut m, now);
    let a = m.handle(leased(30, "dn-c", 7002, Some(&table)), fenced);
    assert_eq!(welcomes(&a), vec![(ConnId(30), table.clone())]);
    assert!(lists(&a).iter().all(|(_, l)| l.nodes.is_empty()));
    // Its welcome names no slot to drop.
    assert!(a.iter().all(|x| !matches!(
        x,
        Action::SendTo { msg: NameNodeToDataNode::Welcome { flush, .. }, .. } if !flush.is_empty()
    )));
    assert_eq!(
        grants(&m.handle(beat(30, "dn-c", table.epoch(), 1), fenced)),
        vec![(ConnId(30), 1)]
    );
}

#[test]
fn a_join_during_fencing_counts_only_acks_from_the_tables_the_suspect_may_hold() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let (fenced, version) = fence_c(&mut m, now);
    // d joins while c is fencing: c may hold the table without d, so d's ack alone
    // proves nothing (c never asks d for a lease with that table).
    let a = m.handle(leased(4, "dn-d", 7003, None), fenced);
    let joined_list = a
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(4),
                msg: NameNodeToDataNode::Welcome { suspects, .. },
            } => suspects.clone(),
            _ => None,
        })
        .expect("welcome with the list");
    assert_eq!(joined_list.nodes, vec![NodeId::from("dn-c")]);
    m.handle(ack(4, "dn-d", joined_list.version), fenced);
    let c = NodeId::from("dn-c");
    assert_eq!(m.fence_ready(&c, &m.members["dn-c"]), None);
    keep_alive(
        &mut m,
        &[(1, "dn-a"), (2, "dn-b")],
        fenced,
        fenced + lease() * 3,
    );
    assert!(m.members.contains_key("dn-c"));
    // a was in every table c may hold.
    let acked = fenced + lease() * 3;
    m.handle(ack(1, "dn-a", version), acked);
    assert_eq!(m.fence_ready(&c, &m.members["dn-c"]), Some(acked + lease()));
}

#[test]
fn a_node_alone_in_its_table_waits_only_for_its_last_grant() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a"], t0);
    let granted = m.members["dn-a"].last_grant.expect("granted");
    let a = m.handle(Event::Disconnected { conn: ConnId(1) }, now);
    assert_eq!(probes(&a).len(), 1);
    let p = timing().probe_interval;
    m.handle(Event::Tick, now + p);
    m.handle(Event::Tick, now + p * 2);
    let a = m.handle(Event::Tick, now + p * 3);
    assert!(dead(&a).is_empty());
    assert_eq!(
        m.fence_ready(&NodeId::from("dn-a"), &m.members["dn-a"]),
        Some(granted + lease())
    );
    let a = m.handle(Event::Tick, granted + lease());
    assert_eq!(dead(&a), vec![NodeId::from("dn-a")]);
}

#[test]
fn a_draining_node_declared_dead_comes_back_draining_and_is_handed_nothing() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let old = m.published().expect("running").table.clone();
    // dn-c starts a drain, then falls silent before handing anything over.
    m.handle(
        Event::Left {
            conn: ConnId(3),
            node: NodeId::from("dn-c"),
        },
        now,
    );
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    let a = m.handle(Event::Tick, fenced + lease());
    assert_eq!(dead(&a), vec![NodeId::from("dn-c")]);
    assert!(m.status(fenced + lease()).draining.is_empty());
    // It resumes and registers again, still draining: it drops what it held, is put in
    // no ring, is ordered nothing and handed nothing, and leaves with the final table.
    let back = fenced + lease() * 2;
    let mut again = leased(30, "dn-c", 7002, Some(&old));
    if let Event::Registered { draining, .. } = &mut again {
        *draining = true;
    }
    let a = m.handle(again, back);
    let flush = a.iter().find_map(|x| match x {
        Action::SendTo {
            conn: ConnId(30),
            msg: NameNodeToDataNode::Welcome { flush, .. },
        } => Some(flush.clone()),
        _ => None,
    });
    assert_eq!(flush, Some(vec![(0, 16383)]), "{a:?}");
    assert!(migrations(&a).is_empty(), "{a:?}");
    let a = settle(&mut m, a, back);
    assert!(migrations(&a).is_empty(), "{a:?}");
    assert_eq!(m.len(), 2, "the drained node is let go");
    let table = &m.published().expect("p").table;
    assert_eq!(table.slots_of(&NodeId::from("dn-c")), 0);
    assert_every_slot_owned_once(table, &["dn-a", "dn-b"]);
}

#[test]
fn a_draining_node_that_registers_again_in_time_goes_on_draining() {
    let t0 = Instant::now();
    let (mut m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();
    m.handle(
        Event::Left {
            conn: ConnId(3),
            node: NodeId::from("dn-c"),
        },
        now,
    );
    // Its connection drops (a pause, a restarted NameNode connection) and it registers
    // again on a new one, saying it is draining: it stays a draining member.
    m.handle(Event::Disconnected { conn: ConnId(3) }, now);
    let mut again = reregister(13, "dn-c", 7002, &before);
    if let Event::Registered { draining, .. } = &mut again {
        *draining = true;
    }
    let a = m.handle(again, now);
    assert_eq!(m.status(now).draining, vec![NodeId::from("dn-c")], "{a:?}");
    // Nothing is ordered towards it, and it keeps its slots until they have moved.
    assert!(migrations(&a).iter().all(|o| o.2 != NodeId::from("dn-c")));
    let table = &m.published().expect("p").table;
    assert_eq!(
        table.slots_of(&NodeId::from("dn-c")),
        before.slots_of(&NodeId::from("dn-c"))
    );
}

#[test]
fn a_node_declared_dead_is_told_to_drop_everything_when_it_returns() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let old = m.published().expect("running").table.clone();
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    let a = m.handle(Event::Tick, fenced + lease());
    assert_eq!(dead(&a), vec![NodeId::from("dn-c")]);
    // It comes back claiming its old slots: not adopted, and it drops them.
    let back = fenced + lease() * 2;
    let a = m.handle(leased(30, "dn-c", 7002, Some(&old)), back);
    let (table, flush) = a
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(30),
                msg: NameNodeToDataNode::Welcome { table, flush, .. },
            } => Some((table.clone(), flush.clone())),
            _ => None,
        })
        .expect("welcomed");
    assert_eq!(flush, vec![(0, 16383)]);
    assert_eq!(table.slots_of(&NodeId::from("dn-c")), 0);
    // Its slots come back by handoff only.
    assert!(!migrations(&a).is_empty());
    // Heartbeats it sent with its old table get no lease; with the welcome's, they do.
    assert!(grants(&m.handle(beat(30, "dn-c", old.epoch(), 5), back)).is_empty());
    assert_eq!(
        grants(&m.handle(beat(30, "dn-c", table.epoch(), 6), back)),
        vec![(ConnId(30), 6)]
    );
}

#[test]
fn a_restarted_namenode_waits_for_every_ack_and_a_lease_since_its_start() {
    let t0 = Instant::now();
    let (m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let table = m.published().expect("running").table.clone();
    // A new NameNode: everyone re-registers within the grace, then c goes silent.
    let t1 = now + Duration::from_secs(1);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1);
    for (i, id) in ["dn-a", "dn-b", "dn-c"].iter().enumerate() {
        m.handle(leased(i as u64 + 1, id, 7000 + i as u16, Some(&table)), t1);
    }
    assert!(m.is_running(), "everyone is back");
    assert_eq!(epoch_of(&m), table.epoch());
    // c's table is from the earlier life: unknown peers. Every member must acknowledge.
    let (fenced, version) = fence_c(&mut m, t1);
    let c = NodeId::from("dn-c");
    m.handle(ack(1, "dn-a", version), fenced);
    assert_eq!(m.fence_ready(&c, &m.members["dn-c"]), None);
    m.handle(ack(2, "dn-b", version), fenced + INTERVAL);
    // Grants of the earlier life count from this NameNode's start at the latest.
    assert_eq!(
        m.fence_ready(&c, &m.members["dn-c"]),
        Some((fenced + INTERVAL).max(t1) + lease())
    );
}

#[test]
fn after_a_restart_slots_nobody_claims_wait_for_their_owners_lease() {
    let t0 = Instant::now();
    let (m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let table = m.published().expect("running").table.clone();
    let c_slots = table.slots_of(&NodeId::from("dn-c"));
    // A new NameNode; c does not come back (paused, and perhaps still serving).
    let t1 = now + Duration::from_secs(1);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1);
    m.handle(leased(1, "dn-a", 7000, Some(&table)), t1);
    m.handle(leased(2, "dn-b", 7001, Some(&table)), t1);
    let end = t1 + timing().startup_grace;
    let a = m.handle(Event::Tick, end);
    let first = broadcasts(&a)[0].0.clone();
    assert!(first.epoch() > table.epoch());
    assert_eq!(first.table.assigned_slots(), SLOT_COUNT - c_slots);
    assert!(first.nodes.iter().all(|n| n.id.as_str() != "dn-c"));
    // Until both survivors have installed it, and a lease after, the slots stay unowned.
    m.handle(beat(1, "dn-a", first.epoch(), 1), end);
    keep_alive(&mut m, &[(1, "dn-a")], end, end + lease() * 3);
    assert_eq!(epoch_of(&m), first.epoch());
    let installed = end + lease() * 3 + INTERVAL;
    m.handle(beat(2, "dn-b", first.epoch(), 1), installed);
    assert_eq!(m.startup_fence_ready(), Some(installed + lease()));
    let mut t = installed;
    let mut assigned = None;
    while assigned.is_none() {
        t += INTERVAL / 2;
        m.handle(beat(1, "dn-a", first.epoch(), 2), t);
        m.handle(beat(2, "dn-b", first.epoch(), 2), t);
        let a = m.handle(Event::Tick, t);
        if let Some((p, _)) = broadcasts(&a).first() {
            assigned = Some((t, p.clone()));
        }
    }
    let (at, p) = assigned.expect("assigned");
    assert!(at >= installed + lease());
    assert_every_slot_owned_once(&p.table, &["dn-a", "dn-b"]);
}

#[test]
fn after_a_restart_a_newer_claim_wins_and_the_stale_one_is_dropped() {
    let t0 = Instant::now();
    let (m, _) = leased_cluster(&["dn-a", "dn-b"], t0);
    let old = m.published().expect("running").table.clone();
    // b took a's slots while a was away (a newer table); then the NameNode restarted
    // and a came back still claiming them at the old epoch.
    let mut newer = old.clone();
    newer.assign(
        Slot::new(0).expect("slot")..=Slot::new(16383).expect("slot"),
        Some(&NodeId::from("dn-b")),
    );
    newer.set_epoch(old.epoch() + 1);
    let t1 = Instant::now() + Duration::from_secs(9);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1);
    // a registers first; id order would have let it win.
    m.handle(leased(1, "dn-a", 7000, Some(&old)), t1);
    m.handle(leased(2, "dn-b", 7001, Some(&newer)), t1);
    let a = m.handle(Event::Tick, t1 + timing().startup_grace);
    type Welcomed = (ConnId, Vec<(u16, u16)>, SlotTable);
    let w: Vec<Welcomed> = a
        .iter()
        .filter_map(|x| match x {
            Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Welcome { flush, table, .. },
            } => Some((*conn, flush.clone(), table.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(w.len(), 2);
    let b = NodeId::from("dn-b");
    assert_eq!(w[0].2.slots_of(&b), SLOT_COUNT, "the newer claim wins");
    assert_eq!(w[0].0, ConnId(1));
    assert_eq!(w[0].1, old.ranges_of(&NodeId::from("dn-a")));
    assert!(w[1].1.is_empty());
}
