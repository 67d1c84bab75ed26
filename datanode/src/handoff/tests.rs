//! Tests: routing overrides and adoption, transfer sizing, the import encoding.

use super::*;

/// A node on loopback: client port `port`, admin port `port + 1`.
fn info(id: &str, port: u16) -> NodeInfo {
    NodeInfo {
        id: NodeId::new(id),
        client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
        tls_port: None,
    }
}

#[test]
fn overrides_apply_and_settle() {
    use chkv_common::ring::{Ring, SlotTable};
    let mut ring = Ring::default();
    ring.add(NodeId::new("a"));
    let table: SlotTable = ring.slot_table();
    let infos = vec![info("a", 7000), info("b", 7100)];
    // Node b joined: the table still gives a every slot.
    let base = Routing::from_table(&table, &infos, "b");
    assert_eq!(base.owner(5), Owner::Remote(0));
    assert_eq!(base.my_slot_count(), 0);
    // a handed slot 5 to b: b's override makes it local.
    let mut ov = HashMap::new();
    ov.insert(
        5u16,
        Override {
            from: "a".into(),
            to: None,
            epoch: 1,
        },
    );
    let r = base.with_overrides(&ov, &info("b", 7100));
    assert_eq!(r.owner(5), Owner::Local);
    assert_eq!(r.owner(6), Owner::Remote(0));
    // The table still says a (not caught up): the override stays.
    assert!(!ov[&5].settled_by(Some("a"), "b"));
    // The table says b now: settled. A third owner also settles it (the table wins).
    assert!(ov[&5].settled_by(Some("b"), "b"));
    assert!(ov[&5].settled_by(Some("c"), "b"));
    // On a: the slot was handed to b.
    let on_a = Routing::from_table(&table, &infos, "a");
    let mut ov = HashMap::new();
    ov.insert(
        5u16,
        Override {
            from: "a".into(),
            to: Some(info("b", 7100)),
            epoch: 1,
        },
    );
    let r = on_a.with_overrides(&ov, &info("a", 7000));
    assert_eq!(r.owner(5), Owner::Remote(1));
    assert_eq!(r.addr(1), Some(SocketAddr::from(([127, 0, 0, 1], 7100))));
}

/// A table from the NameNode (the agent task) and a handoff flip (a peer connection)
/// refresh the routing at the same time: whatever the interleaving, the routing installed
/// last must include every override. (A stress test: the window it guards, between
/// computing a routing and installing it, is too narrow to hit on every run.)
#[test]
fn concurrent_refreshes_keep_every_override() {
    use chkv_common::ring::Ring;
    let mut ring = Ring::default();
    ring.add(NodeId::new("a"));
    let node = Arc::new(Node::new(crate::config::Config {
        node_id: Some("b".into()),
        port: 7100,
        ..crate::config::Config::default()
    }));
    let infos = vec![info("a", 7000), info("b", 7100)];
    let table_at = |epoch: u64| {
        let mut t = ring.slot_table();
        t.set_epoch(epoch);
        Routing::from_table(&t, &infos, "b")
    };
    set_base(&node, table_at(1));
    // Each round races tables from more threads than cores (so some are preempted between
    // computing and installing) against one flip.
    let mut epoch = 1;
    for slot in 0..100u16 {
        let start = Arc::new(std::sync::Barrier::new(5));
        let mut threads = Vec::new();
        for _ in 0..4 {
            epoch += 1;
            let base = table_at(epoch);
            let (node, start) = (node.clone(), start.clone());
            threads.push(std::thread::spawn(move || {
                start.wait();
                set_base(&node, base);
            }));
        }
        let (n, st) = (node.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            st.wait();
            adopt(&n, "a", &[slot]);
        }));
        for t in threads {
            t.join().expect("thread");
        }
        let r = node.routing();
        assert_eq!(
            r.owner(slot),
            Owner::Local,
            "adopted slot {slot} routed away"
        );
        assert_eq!(r.epoch, epoch, "an older table installed last");
    }
}

/// A joining node can be handed slots before the NameNode's welcome reaches it (the
/// migrate order and the welcome travel on different connections). Those adoptions must
/// survive until the first table: dropped, the node sent clients back to the source, which
/// sent them back here, until the NameNode published the move.
#[test]
fn slots_adopted_before_the_first_table_are_kept() {
    use chkv_common::ring::Ring;
    let node = Node::new(crate::config::Config {
        node_id: Some("b".into()),
        port: 7100,
        ..crate::config::Config::default()
    });
    assert!(node.routing().standalone, "no table yet");
    adopt(&node, "a", &[5, 6, 7]);
    let mut ring = Ring::default();
    ring.add(NodeId::new("a"));
    let mut table = ring.slot_table();
    table.set_epoch(2);
    // The welcome: every slot still a's, as the NameNode has not heard of the move.
    let infos = vec![info("a", 7000), info("b", 7100)];
    assert!(set_base(&node, Routing::from_table(&table, &infos, "b")));
    let r = node.routing();
    for s in [5, 6, 7] {
        assert_eq!(r.owner(s), Owner::Local, "slot {s}");
    }
    assert_eq!(r.owner(8), Owner::Remote(0));
    assert_eq!(r.my_slot_count(), 3);
}

/// A slot handed to a node that then left the cluster (declared dead, or drained)
/// before the NameNode heard of the handoff: the table still names this node, the
/// override pointed at a node that is gone, and every request for the slot failed for
/// good. A newer table without that node drops the override. A table no newer than the
/// order (which may not name a node that is only joining) keeps it.
#[test]
fn overrides_towards_a_node_that_left_are_dropped() {
    use chkv_common::ring::Ring;
    let node = Node::new(crate::config::Config {
        node_id: Some("a".into()),
        port: 7000,
        ..crate::config::Config::default()
    });
    let mut ring = Ring::default();
    ring.add(NodeId::new("a"));
    let table_at = |epoch: u64, infos: &[NodeInfo]| {
        let mut t = ring.slot_table();
        t.set_epoch(epoch);
        Routing::from_table(&t, infos, "a")
    };
    let (a, b) = (info("a", 7000), info("b", 7100));
    // Ordered at epoch 5, towards b, which no table names yet (it is joining).
    assert!(set_base(&node, table_at(5, std::slice::from_ref(&a))));
    release(&node, b.clone(), 5, &[7]);
    assert_eq!(node.routing().owner(7), Owner::Remote(1));
    assert!(set_base(&node, table_at(5, std::slice::from_ref(&a))));
    assert_eq!(
        node.routing().owner(7),
        Owner::Remote(1),
        "same epoch: kept"
    );
    // b in the table, the NameNode not yet caught up: kept.
    assert!(set_base(&node, table_at(6, &[a.clone(), b.clone()])));
    assert_eq!(node.routing().owner(7), Owner::Remote(1));
    // b gone from a newer table: the slot is a's again.
    assert!(set_base(&node, table_at(7, std::slice::from_ref(&a))));
    assert_eq!(node.routing().owner(7), Owner::Local);
    assert!(node.handoff.overrides.lock().is_empty());
    // Adoptions are untouched by the rule.
    adopt(&node, "b", &[9]);
    assert!(set_base(&node, table_at(8, std::slice::from_ref(&a))));
    assert_eq!(
        node.handoff.overrides.lock().len(),
        0,
        "settled: the table says a"
    );
}

/// A slot given to this node without a handoff (its owner declared dead) held a stale
/// copy here when an earlier attempt at handing it over imported its entries and never
/// flipped (the owner's lease lapsed mid-batch, the flip was refused past the retry
/// budget): served, it answered with values older than writes the old owner
/// acknowledged, and brought back keys it had deleted. The table that gives the slot
/// empties it first; slots this node served already, and slots it adopted by a handoff
/// the table has not caught up with, keep their data.
#[test]
fn slots_given_without_a_handoff_are_emptied() {
    use crate::store::{Value, NO_EXPIRY};
    use chkv_common::key_slot;
    use chkv_common::ring::Ring;
    let node = Node::new(crate::config::Config {
        node_id: Some("b".into()),
        port: 7100,
        ..crate::config::Config::default()
    });
    let infos = vec![info("a", 7000), info("b", 7100)];
    let mut ring = Ring::default();
    ring.add(NodeId::new("a"));
    ring.add(NodeId::new("b"));
    let mut table = ring.slot_table();
    table.set_epoch(1);
    assert!(set_base(&node, Routing::from_table(&table, &infos, "b")));
    let r = node.routing();
    let keys: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
    let slot_of = |k: &String| key_slot(k.as_bytes());
    let mine = keys
        .iter()
        .find(|k| r.owner(slot_of(k)) == Owner::Local)
        .expect("a key of b");
    let stale = keys
        .iter()
        .find(|k| r.owner(slot_of(k)) == Owner::Remote(0))
        .expect("a key of a");
    let adopted = keys
        .iter()
        .find(|k| r.owner(slot_of(k)) == Owner::Remote(0) && slot_of(k) != slot_of(stale))
        .expect("a key of a in another slot");
    for k in [mine, stale, adopted] {
        node.db
            .lock_key(k.as_bytes())
            .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, 1);
    }
    // a handed `adopted`'s slot over; the NameNode has not published it yet.
    adopt(&node, "a", &[slot_of(adopted)]);
    assert_eq!(node.routing().owner(slot_of(adopted)), Owner::Local);
    // a is declared dead: every slot is b's.
    let mut ring = Ring::default();
    ring.add(NodeId::new("b"));
    let mut table = ring.slot_table();
    table.set_epoch(2);
    assert!(set_base(
        &node,
        Routing::from_table(&table, &infos[1..], "b")
    ));
    let r = node.routing();
    assert_eq!(r.my_slot_count(), SLOT_COUNT);
    assert_eq!(node.db.slot_len(slot_of(stale)), 0, "stale copy served");
    assert_eq!(node.db.slot_len(slot_of(mine)), 1);
    assert_eq!(node.db.slot_len(slot_of(adopted)), 1);
    assert_eq!(node.db.len(), 2);
    // A table that changes nothing for b drops nothing.
    table.set_epoch(3);
    assert!(set_base(
        &node,
        Routing::from_table(&table, &infos[1..], "b")
    ));
    assert_eq!(node.db.len(), 2);
}

#[test]
fn transfers_are_bounded_by_entries_and_bytes() {
    // Entries and bytes within both bounds: one transfer.
    assert_eq!(transfers(&[10, 10, 10], 500, 100), vec![0..3]);
    assert!(transfers(&[], 500, 100).is_empty());
    // Bytes: cut before the entry that would go over.
    assert_eq!(transfers(&[40, 40, 40, 40], 500, 100), vec![0..2, 2..4]);
    assert_eq!(transfers(&[50, 50, 1], 500, 100), vec![0..2, 2..3]);
    // Entries.
    assert_eq!(transfers(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
    // A value larger than a transfer travels alone, whatever surrounds it.
    assert_eq!(
        transfers(&[10, 400, 10, 10, 300], 500, 100),
        vec![0..1, 1..2, 2..4, 4..5]
    );
    // Three 400 MB values under one hash tag (the slot that could never move): three
    // transfers, none above one value, where there used to be one of 1.2 GB.
    let mb = 1 << 20;
    let big = transfers(&[400 * mb; 3], IMPORT_CHUNK, IMPORT_BYTES);
    assert_eq!(big, vec![0..1, 1..2, 2..3]);
    // Many small entries: every transfer within both bounds, every entry once, in order.
    let sizes: Vec<usize> = (0..10_000).map(|i| 100 + (i * 7919) % 50_000).collect();
    let t = transfers(&sizes, IMPORT_CHUNK, IMPORT_BYTES);
    let mut next = 0;
    for r in &t {
        assert_eq!(r.start, next);
        assert!(r.len() <= IMPORT_CHUNK);
        assert!(sizes[r.clone()].iter().sum::<usize>() <= IMPORT_BYTES);
        next = r.end;
    }
    assert_eq!(next, sizes.len());
    // Degenerate bounds still make progress.
    assert_eq!(transfers(&[5, 5], 0, 0), vec![0..1, 1..2]);
}

#[test]
fn import_roundtrip() {
    let entries = vec![
        Exported {
            key: bytes::Bytes::from_static(b"k1"),
            value: bytes::Bytes::from_static(b"v\r\n1"),
            expire_at: 0,
        },
        Exported {
            key: bytes::Bytes::from_static(b""),
            value: bytes::Bytes::from_static(b""),
            expire_at: 1_700_000_000_123,
        },
    ];
    let mut buf = bytes::BytesMut::from(&encode_import(&entries)[..]);
    // A large value: one buffer, sized before the copy (never grown).
    let long = vec![Exported {
        key: bytes::Bytes::from(vec![b'k'; 1000]),
        value: bytes::Bytes::from(vec![b'v'; 123_456]),
        expire_at: 7,
    }];
    let one = encode_import(&long);
    assert!(one.len() > 124_456);
    let mut p = crate::resp::Parser::new();
    let req = p
        .next(&mut buf, &crate::resp::Limits::default(), true)
        .expect("parses")
        .expect("complete");
    assert_eq!(decode_import(&req).expect("decodes"), entries);
    // A piece goes out as the command it decodes from.
    let piece = Piece {
        key: bytes::Bytes::from_static(b"big"),
        expire_at: 9,
        total: 10_000,
        offset: 4096,
        value: bytes::Bytes::from_static(b"\x01\x00abc"),
    };
    let mut buf = bytes::BytesMut::from(&encode_piece(&piece)[..]);
    let req = p
        .next(&mut buf, &crate::resp::Limits::default(), true)
        .expect("parses")
        .expect("complete");
    assert_eq!(decode_piece(&req).expect("decodes"), piece);
}

/// "Any slot frozen?" follows the bits exactly: freezing a frozen slot or unfreezing a free
/// one changes nothing, and it is false again once the last frozen slot is unfrozen.
#[test]
fn any_frozen_counts_frozen_slots() {
    let h = Handoff::default();
    assert!(!h.any_frozen());
    h.set_frozen(&[1, 64, 16383], true);
    h.set_frozen(&[1, 2], true);
    assert!(h.any_frozen());
    assert!(h.is_frozen(2) && h.is_frozen(16383) && !h.is_frozen(3));
    h.set_frozen(&[1, 64, 3], false);
    assert!(h.any_frozen(), "2 and 16383 are still frozen");
    h.set_frozen(&[2, 16383], false);
    assert!(!h.any_frozen());
    h.set_frozen(&[2], false);
    assert!(!h.any_frozen());
    h.set_frozen(&[5], true);
    assert!(h.any_frozen());
}
