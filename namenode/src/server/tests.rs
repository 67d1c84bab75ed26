use super::*;

#[test]
fn datanode_lines_become_events() {
    let conn = ConnId(3);
    let dn_a = NodeId::from("dn-a");
    let a = NodeId::from("a");
    let line = br#"{"type":"register","version":1,"node_id":"dn-a","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":4,"owned_slots":[[0,9]]}"#;
    match datanode_event(conn, &dn_a, line) {
        Ok(Some(Event::Registered {
            epoch_seen,
            owned_slots,
            ..
        })) => {
            assert_eq!(epoch_seen, 4);
            assert_eq!(owned_slots.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let refused = |line: &[u8]| datanode_event(conn, &a, line).expect_err("refused");
    assert!(refused(br#"{"type":"register","version":2,"node_id":"a","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":0}"#)
        .contains("unsupported protocol version 2"));
    assert!(refused(br#"{"type":"register","version":1,"node_id":"a","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":0,"owned_slots":[[9,0]]}"#)
        .contains("bad slot range"));
    assert!(refused(br#"{"type":"register","version":1,"node_id":"","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":0}"#)
        .contains("authenticated as a"));
    // Another node's id than the connection proved, and absurd epochs.
    assert!(refused(br#"{"type":"leave","node_id":"dn-a"}"#).contains("authenticated as a"));
    assert!(refused(br#"{"type":"register","version":1,"node_id":"a","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":18446744073709551615}"#)
        .contains("beyond"));
    assert!(refused(br#"{"type":"heartbeat","node_id":"a","epoch":18446744073709551615,"keys":0,"used_memory":0,"ops":0}"#)
        .contains("beyond"));
    assert!(refused(b"hello\n").contains("malformed"));
    assert!(matches!(
        datanode_event(
            conn,
            &a,
            br#"{"type":"handoff_done","node_id":"a","epoch":1,"slots":[[3,5]]}"#
        ),
        Ok(Some(Event::HandoffDone { slots, .. })) if slots.len() == 1
    ));
}

/// A registration's report of its table's members and its suspects list comes from the
/// network: ids and epochs are checked, and a list longer than any table is refused.
#[test]
fn registration_member_and_suspect_lists_are_checked() {
    let conn = ConnId(3);
    let a = NodeId::from("a");
    let register = |extra: &str| {
        format!(
            r#"{{"type":"register","version":1,"node_id":"a","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":4,"life":9{extra}}}"#
        )
    };
    match datanode_event(
        conn,
        &a,
        register(r#","since":[["a",2],["b",4]],"suspects":["c"]"#).as_bytes(),
    ) {
        Ok(Some(Event::Registered {
            life,
            members_since,
            suspects,
            ..
        })) => {
            assert_eq!(life, 9);
            assert_eq!(
                members_since,
                vec![(NodeId::from("a"), 2), (NodeId::from("b"), 4)]
            );
            assert_eq!(suspects, vec![NodeId::from("c")]);
        }
        other => panic!("{other:?}"),
    }
    let refused =
        |extra: &str| datanode_event(conn, &a, register(extra).as_bytes()).expect_err("refused");
    assert!(refused(r#","since":[["a",18446744073709551615]]"#).contains("beyond"));
    assert!(refused(r#","since":[["",1]]"#).contains("node id"));
    assert!(refused(r#","suspects":["has space"]"#).contains("node id"));
    let many = |item: &str| vec![item; MAX_REPORTED_MEMBERS + 1].join(",");
    assert!(refused(&format!(r#","since":[{}]"#, many(r#"["a",1]"#))).contains("at most"));
    assert!(refused(&format!(r#","suspects":[{}]"#, many(r#""a""#))).contains("at most"));
}
