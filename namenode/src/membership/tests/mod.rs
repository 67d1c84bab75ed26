//! Membership tests: the shared helpers here, the tests by theme in `members`, `restart`,
//! `failure` and `fencing`.

use super::*;
use chkv_common::DEFAULT_VNODES;

mod failure;
mod fencing;
mod members;
mod restart;

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
        since: 0,
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
        life: 0,
        members_since: Vec::new(),
        suspects: Vec::new(),
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

/// Each slot the migrate orders in `actions` move, and its target.
fn ordered_targets(actions: &[Action]) -> BTreeMap<u16, NodeId> {
    let mut target = BTreeMap::new();
    for (_, slots, to) in migrations(actions) {
        for (s, e) in slots {
            for slot in s..=e {
                target.insert(slot, to.clone());
            }
        }
    }
    target
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
            let epoch = m.published().map_or(0, |p| p.epoch());
            actions.extend(m.handle(
                Event::HandoffDone {
                    conn,
                    node,
                    slots,
                    to,
                    epoch,
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
        life: 0,
        members_since: Vec::new(),
        suspects: Vec::new(),
    }
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
        life: 0,
        members_since: Vec::new(),
        suspects: Vec::new(),
    }
}

/// The life number of the NameNode `leased_cluster` starts.
const FIRST_LIFE: u64 = 1;

/// A leased node registering after a NameNode restart with the table of `p`, numbered by
/// the life `life`: its epoch, the slots `p` gives it, and its members' `since`.
fn report(conn: u64, id: &str, port: u16, p: &Publication, life: u64) -> Event {
    let mut event = leased(conn, id, port, Some(&p.table));
    if let Event::Registered {
        life: l,
        members_since,
        ..
    } = &mut event
    {
        *l = life;
        *members_since = p
            .nodes
            .iter()
            .filter(|n| n.since > 0)
            .map(|n| (n.id.clone(), n.since))
            .collect();
    }
    event
}

/// The `since` `p` gives `id`.
fn since_in(p: &Publication, id: &str) -> u64 {
    p.nodes
        .iter()
        .find(|n| n.id.as_str() == id)
        .map(|n| n.since)
        .expect("a member")
}

/// The welcome sent on `conn` in `actions`: what it must drop, and the table.
fn welcome_on(actions: &[Action], conn: u64) -> (Vec<(u16, u16)>, SlotTable) {
    actions
        .iter()
        .find_map(|x| match x {
            Action::SendTo {
                conn: c,
                msg: NameNodeToDataNode::Welcome { flush, table, .. },
            } if *c == ConnId(conn) => Some((flush.clone(), table.clone())),
            _ => None,
        })
        .expect("welcomed")
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

/// `leave` from `id` on `conn`: it asks to drain.
fn leave(conn: u64, id: &str) -> Event {
    Event::Left {
        conn: ConnId(conn),
        node: NodeId::from(id),
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
    let mut m = Membership::new(DEFAULT_VNODES, timing(), t0).with_life(FIRST_LIFE);
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
