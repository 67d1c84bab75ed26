//! A NameNode restart: the startup grace, members reporting back, epochs, leases since the start.

use super::*;

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
        honoured_behind: 0,
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
            life: 0,
            members_since: Vec::new(),
            suspects: Vec::new(),
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

/// Found by the simulation (`datanode/tests/sim.rs`, seed 814): a node declared dead came
/// back claiming its slots at the epoch before it was declared dead. Their new owner had
/// taken writes since, then was killed and restarted empty, so nobody claimed them at a
/// newer epoch and the stale claim won: the node served values older than acknowledged
/// writes. A claim from before the newest epoch any node reports is not honoured (that
/// node may have been declared dead since, its slots given away); its slots wait like
/// unclaimed ones, and it drops them.
#[test]
fn after_a_restart_a_claim_older_than_the_newest_epoch_is_dropped_even_unopposed() {
    let t0 = Instant::now();
    let (m, _) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let old = m.published().expect("running").table.clone();
    let (a, c) = (NodeId::from("dn-a"), NodeId::from("dn-c"));
    // a was declared dead: its slots went to c in a newer table.
    let mut newer = old.clone();
    for (s, e) in old.ranges_of(&a) {
        newer.assign(Slot::new(s).unwrap()..=Slot::new(e).unwrap(), Some(&c));
    }
    newer.set_epoch(old.epoch() + 1);
    // The NameNode restarts; a claims at the old epoch, b at the newer one, and c comes
    // back as a new process (killed meanwhile) claiming nothing.
    let t1 = Instant::now() + Duration::from_secs(9);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1);
    m.handle(leased(1, "dn-a", 7000, Some(&old)), t1);
    m.handle(leased(2, "dn-b", 7001, Some(&newer)), t1);
    m.handle(leased(3, "dn-c", 7002, None), t1);
    let actions = m.handle(Event::Tick, t1 + timing().startup_grace);
    let (flush, table) = actions
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(1),
                msg: NameNodeToDataNode::Welcome { flush, table, .. },
            } => Some((flush.clone(), table.clone())),
            _ => None,
        })
        .expect("a welcomed");
    assert_eq!(table.slots_of(&a), 0, "the stale claim is not honoured");
    assert_eq!(flush, old.ranges_of(&a), "and dropped");
    // b's claim, at the newest epoch, stands.
    let b = NodeId::from("dn-b");
    assert_eq!(table.ranges_of(&b), newer.ranges_of(&b));
}

/// Found by five copies of the cluster tests at once (`restart::a_drain_outlives_its_
/// namenode_killed_mid_drain` lost keys in 5 of 10 runs): the NameNode was killed while
/// a DataNode had not yet applied its last table. The restarted NameNode counted only
/// claims at the newest reported epoch, so that node's slots waited with the unclaimed
/// ones and it dropped them, though nothing had been declared dead. The newest table
/// lists it as a member since before its own table: it was a member without a break, so
/// its claims count, after the newest ones.
#[test]
fn after_a_restart_a_member_one_table_behind_keeps_its_claims() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let behind = m.published().expect("running").clone();
    // d registers: a newer table (d a member, owning nothing yet) that a never applies.
    m.handle(leased(4, "dn-d", 7003, None), now);
    let newest = m.published().expect("running").clone();
    assert!(newest.epoch() > behind.epoch());
    assert!(since_in(&newest, "dn-a") <= behind.epoch());
    assert_eq!(
        since_in(&newest, "dn-d"),
        behind.epoch(),
        "d joined at a's table"
    );
    let a = NodeId::from("dn-a");
    let restart = |a_life: u64| {
        let t1 = now + Duration::from_secs(9);
        let mut m = Membership::new(DEFAULT_VNODES, timing(), t1).with_life(FIRST_LIFE + 1);
        m.handle(report(1, "dn-a", 7000, &behind, a_life), t1);
        for (conn, id) in [(2, "dn-b"), (3, "dn-c"), (4, "dn-d")] {
            m.handle(
                report(conn, id, 7000 + conn as u16 - 1, &newest, FIRST_LIFE),
                t1,
            );
        }
        (m.handle(Event::Tick, t1 + timing().startup_grace), m)
    };
    let (actions, m) = restart(FIRST_LIFE);
    let (flush, table) = welcome_on(&actions, 1);
    assert!(flush.is_empty(), "a drops nothing");
    assert_eq!(
        table.ranges_of(&a),
        behind.table.ranges_of(&a),
        "and keeps its slots"
    );
    let table = &m.published().expect("running").table;
    assert_every_slot_owned_once(table, &["dn-a", "dn-b", "dn-c"]);
    assert!(actions.iter().any(|x| matches!(
        x,
        Action::Notice(Notice::StartupDone { honoured_behind, .. })
            if *honoured_behind == behind.table.slots_of(&a)
    )));
    // The same report from a table another life numbered alike proves nothing.
    let (actions, _) = restart(FIRST_LIFE + 7);
    let (flush, table) = welcome_on(&actions, 1);
    assert_eq!(flush, behind.table.ranges_of(&a), "dropped");
    assert_eq!(table.slots_of(&a), 0);
}

/// A claim behind the newest epoch whose claimant the newest table does not keep as a
/// member since: c was declared dead (its slots went to a and b without a handoff) and
/// registered again, and the NameNode restarted before c applied the welcome that told it
/// to drop its slots. c comes back claiming them at its old epoch; the newest table lists
/// c only since its new registration, so the claim is not honoured: c drops its slots.
#[test]
fn after_a_restart_a_claim_from_before_its_claimant_was_declared_dead_is_dropped() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let behind = m.published().expect("running").clone();
    let c = NodeId::from("dn-c");
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    keep_alive(
        &mut m,
        &[(1, "dn-a"), (2, "dn-b")],
        fenced,
        fenced + lease() + INTERVAL,
    );
    assert_eq!(
        m.published().expect("running").table.slots_of(&c),
        0,
        "c is dead"
    );
    // c registers again; its welcome (drop everything) never gets applied.
    let a = m.handle(
        leased(5, "dn-c", 7002, Some(&behind.table)),
        fenced + lease() + INTERVAL,
    );
    assert_eq!(welcome_on(&a, 5).0, vec![(0, 16383)]);
    let newest = m.published().expect("running").clone();
    assert!(since_in(&newest, "dn-c") > behind.epoch());
    let t1 = fenced + Duration::from_secs(30);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1).with_life(FIRST_LIFE + 1);
    // c first (a and b alone would end the grace early: they cover every slot).
    m.handle(report(3, "dn-c", 7002, &behind, FIRST_LIFE), t1);
    m.handle(report(1, "dn-a", 7000, &newest, FIRST_LIFE), t1);
    m.handle(report(2, "dn-b", 7001, &newest, FIRST_LIFE), t1);
    assert!(
        !m.is_running(),
        "a claim behind the newest epoch waits out the grace"
    );
    let actions = m.handle(Event::Tick, t1 + timing().startup_grace);
    let (flush, table) = welcome_on(&actions, 3);
    assert_eq!(flush, behind.table.ranges_of(&c), "c drops what it claimed");
    assert_eq!(table.slots_of(&c), 0);
    for id in ["dn-a", "dn-b"] {
        let id = NodeId::from(id);
        assert_eq!(table.ranges_of(&id), newest.table.ranges_of(&id));
    }
}

/// Found by the simulation with the NameNode killed at a table (seed 20): c was silent,
/// fenced and declared dead, its slots given to b by a table only b received before the
/// NameNode died; then b was killed. After the restart nobody reports that table, so c's
/// claim was at the newest epoch reported and counted: c served values older than writes
/// b had acknowledged. a holds the suspects list naming c (it acknowledged it before c
/// was declared dead, and the list that drops c comes only after the table that does):
/// reported, it keeps c's claim from counting, even at the newest epoch.
#[test]
fn after_a_restart_a_claimant_on_a_reported_suspects_list_is_not_believed() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let table = m.published().expect("running").clone();
    let (fenced, version) = fence_c(&mut m, now);
    m.handle(ack(1, "dn-a", version), fenced);
    let c = NodeId::from("dn-c");
    let restart = |a_suspects: Vec<NodeId>| {
        let t1 = fenced + Duration::from_secs(30);
        let mut m = Membership::new(DEFAULT_VNODES, timing(), t1).with_life(FIRST_LIFE + 1);
        let mut a = report(1, "dn-a", 7000, &table, FIRST_LIFE);
        if let Event::Registered { suspects, .. } = &mut a {
            *suspects = a_suspects;
        }
        m.handle(a, t1);
        m.handle(report(3, "dn-c", 7002, &table, FIRST_LIFE), t1);
        let actions = m.handle(Event::Tick, t1 + timing().startup_grace);
        (welcome_on(&actions, 1), welcome_on(&actions, 3))
    };
    let ((a_flush, first), (c_flush, _)) = restart(vec![c.clone()]);
    assert_eq!(first.slots_of(&c), 0, "c's claim is not believed");
    assert_eq!(c_flush, table.table.ranges_of(&c), "and c drops it");
    let a = NodeId::from("dn-a");
    assert!(a_flush.is_empty());
    assert_eq!(first.ranges_of(&a), table.table.ranges_of(&a));
    // Without the list, c's claim at the newest epoch reported counts, as before.
    let ((_, first), (c_flush, _)) = restart(Vec::new());
    assert_eq!(first.ranges_of(&c), table.table.ranges_of(&c));
    assert!(c_flush.is_empty());
}

/// Found by the simulation with the NameNode killed at a table (seed 68): d registered, its
/// welcome was lost with the NameNode, and a carried out the order to hand d slots during
/// the restart's grace. d reports no table, so its claims do not count, and the slots went
/// to nobody: d dropped what it had been handed. The order came after d became a member
/// (the newest tables keep it a member since the order's epoch): the slots are d's.
#[test]
fn after_a_restart_slots_handed_to_a_node_without_a_table_are_its() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b", "dn-c"], t0);
    let joined = m.handle(leased(4, "dn-d", 7003, None), now);
    let newest = m.published().expect("running").clone();
    let d = NodeId::from("dn-d");
    let (conn, slots, to) = migrations(&joined).into_iter().next().expect("an order");
    assert_eq!(to, d);
    let order_epoch = joined
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: c,
                msg: NameNodeToDataNode::Migrate { epoch, .. },
            } if *c == conn => Some(*epoch),
            _ => None,
        })
        .expect("the order's epoch");
    let ids = ["dn-a", "dn-b", "dn-c"];
    let source = ids[conn.0 as usize - 1];
    let t1 = now + Duration::from_secs(9);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1).with_life(FIRST_LIFE + 1);
    // d first (no table), then the source, which reports the handoff it made meanwhile.
    m.handle(leased(4, "dn-d", 7003, None), t1);
    m.handle(
        report(conn.0, source, 6999 + conn.0 as u16, &newest, FIRST_LIFE),
        t1,
    );
    m.handle(
        Event::HandoffDone {
            conn,
            node: NodeId::from(source),
            slots: slots
                .iter()
                .map(|&(a, b)| Slot::new(a).unwrap()..=Slot::new(b).unwrap())
                .collect(),
            to: Some(d.clone()),
            epoch: order_epoch,
        },
        t1,
    );
    for (i, id) in ids.iter().enumerate().filter(|(_, id)| **id != source) {
        m.handle(
            report(i as u64 + 1, id, 7000 + i as u16, &newest, FIRST_LIFE),
            t1,
        );
    }
    assert!(!m.is_running());
    let actions = m.handle(Event::Tick, t1 + timing().startup_grace);
    let (flush, table) = welcome_on(&actions, 4);
    assert!(flush.is_empty());
    for (a, b) in slots {
        for s in a..=b {
            assert_eq!(table.owner(Slot::new(s).unwrap()), Some(&d), "slot {s}");
        }
    }
}

/// An honoured claim behind the newest epoch never wins over a claim at it: where both
/// claim a slot, the newer claimant keeps it and the other drops it.
#[test]
fn after_a_restart_a_claim_behind_yields_to_a_newer_one() {
    let t0 = Instant::now();
    let (mut m, now) = leased_cluster(&["dn-a", "dn-b"], t0);
    let behind = m.published().expect("running").clone();
    m.handle(leased(3, "dn-c", 7002, None), now);
    let newest = m.published().expect("running").clone();
    let (a, b) = (NodeId::from("dn-a"), NodeId::from("dn-b"));
    // b claims, at the newest epoch, a's first run as well as its own slots.
    let (first, last) = behind.table.ranges_of(&a)[0];
    let mut claims = (*newest).clone();
    claims.table.assign(
        Slot::new(first).unwrap()..=Slot::new(last).unwrap(),
        Some(&b),
    );
    let t1 = now + Duration::from_secs(9);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1).with_life(FIRST_LIFE + 1);
    m.handle(report(1, "dn-a", 7000, &behind, FIRST_LIFE), t1);
    m.handle(report(2, "dn-b", 7001, &claims, FIRST_LIFE), t1);
    m.handle(report(3, "dn-c", 7002, &newest, FIRST_LIFE), t1);
    let actions = m.handle(Event::Tick, t1 + timing().startup_grace);
    let (flush, table) = welcome_on(&actions, 1);
    assert_eq!(flush, vec![(first, last)], "a drops only what b claims");
    assert_eq!(table.ranges_of(&b), claims.table.ranges_of(&b));
    assert_eq!(
        table.slots_of(&a),
        behind.table.slots_of(&a) - usize::from(last - first + 1)
    );
    assert_every_slot_owned_once(&table, &["dn-a", "dn-b"]);
}

/// Found by the simulation (seed 1267): a NameNode restarted, and no DataNode registered
/// within its startup grace (slow reconnects), so its first table looked like a new
/// cluster's and carried no fence. The first node to register then got every slot at once,
/// while the others, not yet registered, still served theirs under leases their peers had
/// renewed: two owners. A node that registers with a table of an earlier life reveals that
/// life: the slots nobody owns wait, as after any restart, until every member has
/// installed a table that names only members and a lease has passed.
#[test]
fn a_table_of_an_earlier_life_after_an_empty_grace_still_fences_the_slots() {
    let t0 = Instant::now();
    let (m, _) = leased_cluster(&["dn-a", "dn-b"], t0);
    let old = m.published().expect("running").table.clone();
    let t1 = t0 + Duration::from_secs(9);
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t1);
    let grace_end = t1 + timing().startup_grace;
    m.handle(Event::Tick, grace_end);
    assert!(m.is_running());
    // b registers late, with the old life's table: it is told to drop it, and is given
    // nothing yet.
    let a = m.handle(leased(2, "dn-b", 7001, Some(&old)), grace_end);
    let table = a
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: ConnId(2),
                msg: NameNodeToDataNode::Welcome { table, .. },
            } => Some(table.clone()),
            _ => None,
        })
        .expect("welcomed");
    let b = NodeId::from("dn-b");
    assert_eq!(table.slots_of(&b), 0, "a may still serve its slots");
    // Once b has installed it and a lease has passed, b owns every slot.
    let epoch = table.epoch();
    m.handle(beat(2, "dn-b", epoch, 1), grace_end);
    let ready = grace_end + lease();
    keep_alive(&mut m, &[(2, "dn-b")], grace_end, ready - INTERVAL);
    assert_eq!(m.published().unwrap().table.slots_of(&b), 0);
    keep_alive(&mut m, &[(2, "dn-b")], ready - INTERVAL, ready + INTERVAL);
    assert_eq!(m.published().unwrap().table.slots_of(&b), SLOT_COUNT);
}

/// While this NameNode was down, b handed slot s to a (the nodes renew each other's
/// leases meanwhile). a registered with the restarted NameNode before the flip reached it,
/// b after its flip, so neither claims s; b's `handoff_done` arrives during the startup
/// grace. The claim moves with it: s is a's in the first table, not left unclaimed and then
/// given to a as if without a handoff (which empties it: every write acknowledged for s
/// was lost). Found by the simulation (seed 4945).
#[test]
fn a_handoff_reported_during_the_startup_grace_moves_the_claim() {
    let t0 = Instant::now();
    let (m, now) = running_with(&["dn-a", "dn-b", "dn-c"], t0);
    let before = m.published().expect("running").table.clone();
    let b = NodeId::from("dn-b");
    let s = Slot::all()
        .find(|&s| before.owner(s) == Some(&b))
        .expect("b owns a slot");

    let mut m = Membership::new(DEFAULT_VNODES, timing(), now);
    m.handle(reregister(10, "dn-a", 7000, &before), now);
    let b_claims = before
        .ranges_of(&b)
        .into_iter()
        .flat_map(|(x, y)| x..=y)
        .filter(|&x| x != s.get())
        .filter_map(Slot::new)
        .map(|x| x..=x)
        .collect();
    m.handle(
        Event::Registered {
            conn: ConnId(11),
            info: info("dn-b", 7001),
            epoch_seen: before.epoch(),
            owned_slots: b_claims,
            leased: false,
            draining: false,
            life: 0,
            members_since: Vec::new(),
            suspects: Vec::new(),
        },
        now,
    );
    let a = m.handle(
        Event::HandoffDone {
            conn: ConnId(11),
            node: b.clone(),
            slots: vec![s..=s],
            to: Some(NodeId::from("dn-a")),
            epoch: before.epoch(),
        },
        now,
    );
    assert!(welcomes(&a).is_empty(), "c is not back yet");
    // c comes back: every slot is claimed once, so the startup ends at once.
    let a = m.handle(reregister(12, "dn-c", 7002, &before), now);
    assert_eq!(welcomes(&a).len(), 3, "the old membership is back in full");
    let after = &broadcasts(&a)[0].0.table;
    assert_eq!(after.owner(s), Some(&NodeId::from("dn-a")));
    for slot in Slot::all().filter(|&x| x != s) {
        assert_eq!(after.owner(slot), before.owner(slot), "slot {slot}");
    }
}

/// A chain of moves while the NameNode was down: b handed s to a, a handed it on to c, and
/// the reports arrive in the reverse order. The later order's report counts: s is c's. (d
/// is not back, so the grace runs to its end.)
#[test]
fn of_two_reports_of_a_slot_during_the_grace_the_later_order_counts() {
    let t0 = Instant::now();
    let (m, now) = running_with(&["dn-a", "dn-b", "dn-c", "dn-d"], t0);
    let before = m.published().expect("running").table.clone();
    let (a, b, c) = (
        NodeId::from("dn-a"),
        NodeId::from("dn-b"),
        NodeId::from("dn-c"),
    );
    let s = Slot::all()
        .find(|&s| before.owner(s) == Some(&b))
        .expect("b owns a slot");
    let claims = |id: &NodeId| -> Vec<RangeInclusive<Slot>> {
        before
            .ranges_of(id)
            .into_iter()
            .flat_map(|(x, y)| x..=y)
            .filter(|&x| x != s.get())
            .filter_map(Slot::new)
            .map(|x| x..=x)
            .collect()
    };
    let mut m = Membership::new(DEFAULT_VNODES, timing(), now);
    for (conn, (id, port)) in [(&a, 7000), (&b, 7001), (&c, 7002)].into_iter().enumerate() {
        m.handle(
            Event::Registered {
                conn: ConnId(20 + conn as u64),
                info: info(id.as_str(), port),
                epoch_seen: before.epoch(),
                owned_slots: claims(id),
                leased: false,
                draining: false,
                life: 0,
                members_since: Vec::new(),
                suspects: Vec::new(),
            },
            now,
        );
    }
    assert!(m.published().is_none(), "s is claimed by nobody yet");
    let report = |conn: u64, node: &NodeId, to: &NodeId, epoch: u64| Event::HandoffDone {
        conn: ConnId(conn),
        node: node.clone(),
        slots: vec![s..=s],
        to: Some(to.clone()),
        epoch,
    };
    m.handle(report(20, &a, &c, before.epoch() + 1), now);
    m.handle(report(21, &b, &a, before.epoch()), now);
    assert!(m.published().is_none(), "d is not back: the grace goes on");
    let actions = m.handle(Event::Tick, now + timing().startup_grace);
    let after = &broadcasts(&actions)[0].0.table;
    assert_eq!(after.owner(s), Some(&c));
}
