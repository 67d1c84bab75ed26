//! Leases and fencing: grants, the suspects list, when a fenced node's slots move.

use super::*;

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
    m.handle(leave(3, "dn-c"), now);
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
    m.handle(leave(3, "dn-c"), now);
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

/// Found by the simulation (`datanode/tests/sim.rs`, seed 672): a source flipped slots to
/// their new owner, then died before its `handoff_done` left. The NameNode, still naming
/// the source, gave the slots to their ring owner of the moment, a third node (the ring
/// had changed since the order), while the target served them as adopted with its own
/// lease: two owners until the target's table caught up, and the writes it took lost.
/// A dead source's unconfirmed moves go to their target.
#[test]
fn a_dead_sources_unconfirmed_moves_go_to_their_target_not_a_third_node() {
    let (mut m, now, target) = c_drains_unconfirmed();
    // e joins: the ring gives it some of the slots on their way to a and b.
    let a = m.handle(leased(5, "dn-e", 7004, None), now);
    settle(&mut m, a, now);
    let ring = m.ring.slot_table();
    let e = NodeId::from("dn-e");
    let regiven = target
        .iter()
        .filter(|(&s, _)| ring.owner(Slot::new(s).unwrap()) == Some(&e))
        .count();
    assert!(regiven > 0, "the test needs moves whose ring owner changed");
    // c goes silent; a, b and e heartbeat and acknowledge every suspects list.
    let alive = [(1, "dn-a"), (2, "dn-b"), (5, "dn-e")];
    let mut t = now;
    let table = loop {
        t += INTERVAL / 2;
        assert!(
            t < now + Duration::from_secs(60),
            "c is never declared dead"
        );
        let epoch = epoch_of(&m);
        let mut actions = Vec::new();
        for &(conn, id) in &alive {
            actions.extend(m.handle(beat(conn, id, epoch, 2), t));
        }
        actions.extend(m.handle(Event::Tick, t));
        for (conn, list) in lists(&actions) {
            // The silent c does not answer.
            if let Some(&(_, id)) = alive.iter().find(|(c, _)| ConnId(*c) == conn) {
                m.handle(ack(conn.0, id, list.version), t);
            }
        }
        if dead(&actions).contains(&NodeId::from("dn-c")) {
            break broadcasts(&actions)[0].0.table.clone();
        }
    };
    for (&s, to) in &target {
        assert_eq!(
            table.owner(Slot::new(s).unwrap()),
            Some(to),
            "slot {s}, ordered to {to}"
        );
    }
}

/// Found by the simulation (seed 989): a source flipped slots, was killed before its
/// `handoff_done` left, and restarted within the detection time. The NameNode, still
/// naming it, welcomed the new process as their owner while the target served them as
/// adopted. A source that registers again without claiming slots it was moving (it flipped
/// them, or it is a new process that lost everything) has those moves go to their target.
#[test]
fn a_source_that_registers_again_without_its_moving_slots_gives_them_to_the_target() {
    let (mut m, now, target) = c_drains_unconfirmed();
    // c is killed and a new process registers at once, claiming nothing.
    let a = m.handle(leased(6, "dn-c", 7002, None), now);
    let table = a
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(6),
                msg: NameNodeToDataNode::Welcome { table, .. },
            } => Some(table.clone()),
            _ => None,
        })
        .expect("welcomed");
    for (&s, to) in &target {
        assert_eq!(table.owner(Slot::new(s).unwrap()), Some(to), "slot {s}");
    }
}

/// Found by the simulation (seed 1277): a source went on with a move to a node that had
/// been declared dead and restarted at the same address, and the new process, before its
/// welcome, took the slots. The source's table no longer named the target, so it took them
/// back, and the new process, welcomed as a new member, kept its adoption (the table still
/// named the source): two owners. A new member can have been ordered nothing before it
/// registered: slots it reports then came from orders to an earlier process, and it drops
/// them.
#[test]
fn a_new_process_drops_slots_it_took_before_registering() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b"], t0);
    // c, a new process, reports slots it adopted before registering (epoch 0: no table).
    let owned = vec![Slot::new(10).unwrap()..=Slot::new(20).unwrap()];
    let a = m.handle(
        Event::Registered {
            conn: ConnId(9),
            info: info("dn-c", 7002),
            epoch_seen: 0,
            owned_slots: owned,
            leased: true,
            draining: false,
            life: 0,
            members_since: Vec::new(),
            suspects: Vec::new(),
        },
        now,
    );
    let flush = a
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(9),
                msg: NameNodeToDataNode::Welcome { flush, .. },
            } => Some(flush.clone()),
            _ => None,
        })
        .expect("welcomed");
    assert_eq!(flush, vec![(10, 20)]);
    // A new process that took nothing drops nothing.
    let a = m.handle(leased(10, "dn-d", 7003, None), now);
    assert!(a.iter().any(|x| matches!(x, Action::SendTo { conn: ConnId(10), msg: NameNodeToDataNode::Welcome { flush, .. } } if flush.is_empty())));
}

/// Found by the simulation (seed 4366): a node paused mid-handoff was declared dead; on
/// resuming it took the batch (its source flipped, then took the slots back: the target had
/// left its table), registered again as a new member and dropped everything. The source's
/// `handoff_done` for that old order, slow on the way, then credited the slots to the new
/// member, which served them empty beside the source: two owners. A report is credited only
/// to a target that was a member when the order was given.
#[test]
fn a_report_for_an_order_older_than_the_targets_membership_is_not_credited() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b"], t0);
    let old_order_epoch = epoch_of(&m);
    // c joins after that epoch (as a new process, on a new connection).
    let a = m.handle(leased(7, "dn-c", 7002, None), now);
    settle(&mut m, a, now);
    let before = m.published().unwrap().clone();
    let slot = Slot::new(100).unwrap();
    let owner = before.table.owner(slot).cloned().unwrap();
    let conn = if owner.as_str() == "dn-a" {
        1
    } else if owner.as_str() == "dn-b" {
        2
    } else {
        7
    };
    if owner.as_str() == "dn-c" {
        return; // the ring gave slot 100 to c: nothing to report from a or b
    }
    // The owner reports slot 100 handed to c for an order older than c's membership.
    m.handle(
        Event::HandoffDone {
            conn: ConnId(conn),
            node: owner.clone(),
            slots: vec![slot..=slot],
            to: Some(NodeId::from("dn-c")),
            epoch: old_order_epoch - 1,
        },
        now,
    );
    let after = m.published().unwrap();
    assert_eq!(after.table.owner(slot), Some(&owner), "not credited");
}

/// Leased a, b and c; c drains: its slots are ordered to a and b (each slot's target
/// returned), and nothing is confirmed yet.
fn c_drains_unconfirmed() -> (Membership, Instant, BTreeMap<u16, NodeId>) {
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], Instant::now());
    let a = m.handle(leave(3, "dn-c"), now);
    assert!(migrations(&a).iter().all(|(conn, _, _)| *conn == ConnId(3)));
    let target = ordered_targets(&a);
    assert!(!target.is_empty());
    (m, now, target)
}
