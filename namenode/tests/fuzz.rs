//! Property tests (their own test binary, so their CPU does not slow the timing-sensitive
//! tests) over the NameNode's event handling (issue 12): any sequence of the events
//! a server can feed (after its own checks: authenticated ids, epochs up to `MAX_EPOCH`,
//! valid slot ranges), at any times, leaves the membership without a panic, with epochs that
//! never go backwards and stay bounded, and tables that name only members.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chkv_common::proto::MAX_EPOCH;
use chkv_common::{NodeId, NodeInfo, Slot};
use chkv_namenode::membership::{Action, ConnId, Event, NodeStats, Notice};
use chkv_namenode::{Membership, Timing};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Register {
        conn: u64,
        id: u8,
        epoch: u64,
        slots: Vec<(u16, u16)>,
        leased: bool,
        /// The node says it is draining (it sent `leave` in an earlier session).
        draining: bool,
        /// The life of its table, its members' `since` and its suspects list (ids
        /// possibly not members).
        life: u64,
        since: Vec<(u8, u64)>,
        suspects: Vec<u8>,
    },
    Heartbeat {
        conn: u64,
        id: u8,
        epoch: u64,
        seq: u64,
    },
    Ack {
        conn: u64,
        id: u8,
        version: u64,
    },
    Pong {
        conn: u64,
        id: u8,
        nonce: u64,
    },
    Leave {
        conn: u64,
        id: u8,
    },
    Done {
        conn: u64,
        id: u8,
        slots: Vec<(u16, u16)>,
        /// Where the node says the slots went (a node id, possibly not a member, or none).
        to: Option<u8>,
    },
    Disconnect {
        conn: u64,
    },
    Tick {
        after_ms: u64,
    },
}

fn epoch() -> impl Strategy<Value = u64> {
    prop_oneof![0..10u64, Just(MAX_EPOCH), (MAX_EPOCH - 3)..=MAX_EPOCH]
}

fn ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    prop::collection::vec(
        (0..16384u16, 0..16384u16).prop_map(|(a, b)| (a.min(b), a.max(b))),
        0..4,
    )
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 1..8u64;
    let id = 0..5u8;
    prop_oneof![
        (
            conn.clone(),
            id.clone(),
            epoch(),
            ranges(),
            any::<bool>(),
            any::<bool>(),
            (
                0..3u64,
                prop::collection::vec((0..6u8, epoch()), 0..6),
                prop::collection::vec(0..6u8, 0..3)
            )
        )
            .prop_map(
                |(conn, id, epoch, slots, leased, draining, (life, since, suspects))| {
                    Op::Register {
                        conn,
                        id,
                        epoch,
                        slots,
                        leased,
                        draining,
                        life,
                        since,
                        suspects,
                    }
                }
            ),
        (conn.clone(), id.clone(), epoch(), 0..3u64).prop_map(|(conn, id, epoch, seq)| {
            Op::Heartbeat {
                conn,
                id,
                epoch,
                seq,
            }
        }),
        (
            conn.clone(),
            id.clone(),
            prop_oneof![0..8u64, Just(u64::MAX)]
        )
            .prop_map(|(conn, id, version)| Op::Ack { conn, id, version }),
        (conn.clone(), id.clone(), any::<u64>()).prop_map(|(conn, id, nonce)| Op::Pong {
            conn,
            id,
            nonce
        }),
        (conn.clone(), id.clone()).prop_map(|(conn, id)| Op::Leave { conn, id }),
        (conn.clone(), id, ranges(), proptest::option::of(0..6u8)).prop_map(
            |(conn, id, slots, to)| Op::Done {
                conn,
                id,
                slots,
                to
            }
        ),
        conn.prop_map(|conn| Op::Disconnect { conn }),
        (0..3000u64).prop_map(|after_ms| Op::Tick { after_ms }),
    ]
}

fn slots(r: &[(u16, u16)]) -> Vec<std::ops::RangeInclusive<Slot>> {
    r.iter()
        .filter_map(|&(a, b)| Some(Slot::new(a)?..=Slot::new(b)?))
        .collect()
}

fn event(op: &Op) -> Event {
    let node = |id: u8| NodeId::new(format!("dn-{id}"));
    match op.clone() {
        Op::Register {
            conn,
            id,
            epoch,
            slots: s,
            leased,
            draining,
            life,
            since,
            suspects,
        } => Event::Registered {
            conn: ConnId(conn),
            info: NodeInfo {
                id: node(id),
                client_addr: SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(id))),
                admin_addr: SocketAddr::from(([127, 0, 0, 1], 8000 + u16::from(id))),
                tls_port: None,
                since: 0,
            },
            epoch_seen: epoch,
            owned_slots: slots(&s),
            leased,
            draining,
            life,
            members_since: since.into_iter().map(|(id, e)| (node(id), e)).collect(),
            suspects: suspects.into_iter().map(node).collect(),
        },
        Op::Ack { conn, id, version } => Event::SuspectsAcked {
            conn: ConnId(conn),
            node: node(id),
            version,
        },
        Op::Heartbeat {
            conn,
            id,
            epoch,
            seq,
        } => Event::Heartbeat {
            conn: ConnId(conn),
            node: node(id),
            epoch,
            stats: NodeStats {
                keys: u64::MAX,
                used_memory: u64::MAX,
                ops: u64::MAX,
            },
            seq,
        },
        Op::Pong { conn, id, nonce } => Event::ProbeAnswered {
            conn: ConnId(conn),
            node: node(id),
            nonce,
        },
        Op::Leave { conn, id } => Event::Left {
            conn: ConnId(conn),
            node: node(id),
        },
        Op::Done {
            conn,
            id,
            slots: s,
            to,
        } => Event::HandoffDone {
            conn: ConnId(conn),
            node: node(id),
            slots: slots(&s),
            to: to.map(node),
            epoch: u64::MAX,
        },
        Op::Disconnect { conn } => Event::Disconnected { conn: ConnId(conn) },
        Op::Tick { .. } => Event::Tick,
    }
}

proptest! {
    // A fixed seed: the same sequences every run, so CI never fails by chance; set
    // `PROPTEST_RNG_SEED` and `PROPTEST_CASES` to search further (seeds 1 to 13 with 3,000
    // cases each pass). The draining-node findings of earlier random runs were the model's:
    // it kept a connection registered after the NameNode closed it or its node left, and it
    // did not count a handoff its owner reports, or an order given in the same step.
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_event_sequence_is_handled(ops in prop::collection::vec(op(), 1..50)) {
        let start = Instant::now();
        let mut now = start;
        let timing = Timing::new(Duration::from_millis(100), std::num::NonZeroU32::new(3).expect("3"));
        let vnodes = std::num::NonZeroU32::new(16).expect("16");
        let mut m = Membership::new(vnodes, timing, now).with_life(1);
        let mut last_epoch = 0u64;
        // Leases: who registered on each connection, when each node was last granted one,
        // and the table before each broadcast.
        let mut conn_of: std::collections::HashMap<u64, NodeId> = Default::default();
        let mut granted: std::collections::HashMap<NodeId, Instant> = Default::default();
        // Where each slot was last ordered to move, and from where.
        let mut ordered: std::collections::HashMap<u16, NodeId> = Default::default();
        let mut ordered_from: std::collections::HashMap<u16, NodeId> = Default::default();
        // Slots ordered away from a node whose next registration did not claim them (it
        // flipped them, or it is a new process): they may go to the move's target at once.
        let mut disclaimed: std::collections::HashSet<u16> = Default::default();
        let mut previous: Option<chkv_common::SlotTable> = None;
        // Nodes whose latest registration said they are draining.
        let mut draining: std::collections::HashSet<NodeId> = Default::default();
        for op in &ops {
            if let Op::Tick { after_ms } = op {
                now += Duration::from_millis(*after_ms);
            }
            // A registration on a connection registered as another node is refused: it
            // changes nothing of that node's.
            let refused = matches!(op, Op::Register { conn, id, .. }
                if conn_of.get(conn).is_some_and(|n| *n != NodeId::new(format!("dn-{id}"))));
            if let (Op::Register { conn, id, draining: d, slots: claims, .. }, false) = (op, refused) {
                let node = NodeId::new(format!("dn-{id}"));
                for (&slot, from) in &ordered_from {
                    if *from == node && !claims.iter().any(|&(a, b)| a <= slot && slot <= b) {
                        disclaimed.insert(slot);
                    }
                }
                conn_of.insert(*conn, node.clone());
                if *d {
                    draining.insert(node);
                } else {
                    draining.remove(&node);
                }
            }
            // Where slots were ordered before this step: an order given in the step that
            // publishes a table was computed from that table, so it cannot explain it.
            let ordered_before = ordered.clone();
            let actions = m.handle(event(op), now);
            prop_assert!(actions.len() < 10_000, "{} actions", actions.len());
            if let Op::Disconnect { conn } = op {
                conn_of.remove(conn);
            }
            for a in &actions {
                // A closed connection, or one whose node has left, is registered as nobody.
                if let Action::Close { conn, .. } = a {
                    conn_of.remove(&conn.0);
                }
                if let Action::Notice(Notice::Left { node }) = a {
                    conn_of.retain(|_, n| n != node);
                }
                if let Action::SendTo { conn, msg: chkv_common::NameNodeToDataNode::Lease { .. } } = a {
                    if let Some(id) = conn_of.get(&conn.0) {
                        granted.insert(id.clone(), now);
                    }
                }
                if let Action::SendTo { conn, msg: chkv_common::NameNodeToDataNode::Migrate { slots, to, .. } } = a {
                    for &(s, e) in slots {
                        for slot in s..=e {
                            ordered.insert(slot, to.clone());
                            disclaimed.remove(&slot);
                            if let Some(from) = conn_of.get(&conn.0) {
                                ordered_from.insert(slot, from.clone());
                            }
                        }
                    }
                }
            }
            for a in actions {
                if let Action::Broadcast { publication, .. } = a {
                    // A slot leaves a node that was granted a lease only by its own handoff,
                    // or once that lease (and the margin) has surely run out.
                    if let Some(prev) = &previous {
                        for slot in Slot::all() {
                            let (was, now_owner) = (prev.owner(slot), publication.table.owner(slot));
                            // A node that registered as draining is handed nothing, but a move
                            // ordered to it before may have reached it (its source then died
                            // or came back without it), and the slot's owner may report that
                            // it handed the slot to it (an order that timed out before it
                            // began draining): that slot is where the data went.
                            if let Some(new) = now_owner.filter(|n| draining.contains(*n)) {
                                let reported = matches!(op, Op::Done { id, to: Some(to), .. }
                                    if was == Some(&NodeId::new(format!("dn-{id}")))
                                        && *new == NodeId::new(format!("dn-{to}")));
                                prop_assert!(
                                    Some(new) == was
                                        || ordered_before.get(&slot.get()) == Some(new)
                                        || reported,
                                    "slot {slot} handed to {new}, which registered as draining"
                                );
                            }
                            let Some(was) = was else {
                                continue;
                            };
                            if now_owner == Some(was) {
                                continue;
                            }
                            let handed = matches!(op, Op::Done { id, .. } if NodeId::new(format!("dn-{id}")) == *was)
                                || (disclaimed.contains(&slot.get()) && ordered.get(&slot.get()) == now_owner);
                            if let (false, Some(&at)) = (handed, granted.get(was)) {
                                prop_assert!(
                                    now >= at + timing.lease + timing.lease_margin,
                                    "slot {slot} taken from {was} {:?} after its last lease",
                                    now - at
                                );
                            }
                        }
                    }
                    previous = Some(publication.table.clone());
                    let e = publication.epoch();
                    prop_assert!(e >= last_epoch, "epoch went back: {last_epoch} -> {e}");
                    prop_assert!(e <= MAX_EPOCH + ops.len() as u64, "epoch {e}");
                    last_epoch = e;
                    for owner in publication.table.nodes() {
                        prop_assert!(
                            publication.nodes.iter().any(|n| &n.id == owner),
                            "{owner} owns slots but is not listed"
                        );
                    }
                }
            }
            let status = m.status(now);
            prop_assert!(status.nodes.len() <= 5);
        }
    }
}
