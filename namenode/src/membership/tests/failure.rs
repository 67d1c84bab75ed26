//! Failure detection: probes, pongs, closed connections, reconnects in time.

use super::*;

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
