//! Joins, leaves and watchers: every change reaches every DataNode and every watcher.

use std::time::Duration;

use anyhow::{bail, Result};
use chkv_common::{decode_line, encode_line, NameNodeToDataNode, NodeId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::util::{
    assert_every_slot_owned_once, bounded, config, start, FakeDataNode, Received, Watcher,
};

const INTERVAL: Duration = Duration::from_millis(100);
/// Liveness bound of a wait: generous.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn watchers_get_the_table_at_once_and_every_change() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, INTERVAL)).await?;
        let mut watcher = Watcher::connect(nn.client_addr()).await?;
        // After the startup grace: the (empty) first table.
        let first = watcher.table(WAIT).await?;
        assert_eq!(first.assigned_slots(), 0);

        let (mut a, welcome_a) =
            FakeDataNode::join(nn.datanode_addr(), "dn-a", 7001, INTERVAL).await?;
        assert_every_slot_owned_once(&welcome_a, &["dn-a"]);
        assert_eq!(welcome_a.epoch(), first.epoch() + 1);
        assert_eq!(watcher.settled(WAIT).await?.0, welcome_a);

        // A join publishes the newcomer, then a table per completed handoff to it.
        let (mut b, welcome_b) =
            FakeDataNode::join(nn.datanode_addr(), "dn-b", 7002, INTERVAL).await?;
        assert_every_slot_owned_once(&welcome_b, &["dn-a", "dn-b"]);
        assert!(welcome_b.epoch() > welcome_a.epoch());
        assert_eq!(
            a.settled(WAIT).await?,
            welcome_b,
            "members are told about the join"
        );
        assert_eq!(watcher.settled(WAIT).await?.0, welcome_b);

        let (mut c, welcome_c) =
            FakeDataNode::join(nn.datanode_addr(), "dn-c", 7003, INTERVAL).await?;
        assert_every_slot_owned_once(&welcome_c, &["dn-a", "dn-b", "dn-c"]);
        assert_eq!(a.settled(WAIT).await?, welcome_c);
        assert_eq!(b.settled(WAIT).await?, welcome_c);
        let (table, nodes) = watcher.settled(WAIT).await?;
        assert_eq!(table, welcome_c);
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["dn-a", "dn-b", "dn-c"]);
        assert_eq!(nodes[2].client_addr.port(), 7003);
        assert_eq!(nodes[2].admin_addr.port(), 17003);
        // Fair shares, roughly: 256 virtual nodes each.
        for id in ["dn-a", "dn-b", "dn-c"] {
            let share = table.slots_of(&NodeId::from(id));
            assert!((3000..8000).contains(&share), "{id} owns {share} slots");
        }

        // A watcher arriving now gets the current table at once.
        let mut late = Watcher::connect(nn.client_addr()).await?;
        assert_eq!(late.table(WAIT).await?, welcome_c);

        // Heartbeats at the current epoch change nothing.
        watcher.assert_quiet(INTERVAL * 5).await?;

        // A leave (drain): the leaver hands its slots over, then the table without it is
        // published, and the leaver gets it too.
        c.leave()?;
        let after = watcher.settled(WAIT).await?.0;
        assert!(after.epoch() > welcome_c.epoch());
        assert_every_slot_owned_once(&after, &["dn-a", "dn-b"]);
        assert_eq!(late.settled(WAIT).await?.0, after);
        assert_eq!(a.settled(WAIT).await?, after);
        assert_eq!(b.settled(WAIT).await?, after);
        assert_eq!(c.settled(WAIT).await?, after);
        // Only the leaver's slots moved.
        for (old, new) in welcome_c.diff(&after).iter().map(|m| (&m.from, &m.to)) {
            assert_eq!(old.as_ref().map(NodeId::as_str), Some("dn-c"));
            assert!(new.is_some());
        }

        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn registrations_during_the_startup_grace_share_one_first_table() -> Result<()> {
    bounded(180, async {
        // Long enough for all three to register within it on a loaded machine.
        let grace = Duration::from_secs(5);
        let nn = start(config(INTERVAL, grace)).await?;
        let mut watcher = Watcher::connect(nn.client_addr()).await?;
        let mut nodes = Vec::new();
        for (i, id) in ["dn-a", "dn-b", "dn-c"].into_iter().enumerate() {
            nodes.push(
                FakeDataNode::register(nn.datanode_addr(), id, 7100 + i as u16, INTERVAL, None)
                    .await?,
            );
        }
        let first = watcher.table(WAIT).await?;
        assert_every_slot_owned_once(&first, &["dn-a", "dn-b", "dn-c"]);
        assert_eq!(first.epoch(), 1);
        for node in &mut nodes {
            assert_eq!(node.welcome(WAIT).await?, first);
        }
        watcher.assert_quiet(INTERVAL * 3).await?;
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// Lines the NameNode refuses get an `error` line, then the connection is closed.
#[tokio::test]
async fn bad_lines_are_answered_with_an_error_and_a_close() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let cases: [&[u8]; 4] = [
            b"hello\n",
            br#"{"type":"register","version":2,"node_id":"x","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":0}"#,
            br#"{"type":"heartbeat","node_id":"x","epoch":0,"keys":0,"used_memory":0,"ops":0}"#,
            br#"{"type":"register","version":1,"node_id":"x","client_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2","epoch_seen":0,"owned_slots":[[5,70000]]}"#,
        ];
        for case in cases {
            let (rd, mut wr) = crate::util::dial(nn.datanode_addr(), "x").await?;
            wr.write_all(case).await?;
            wr.write_all(b"\n").await?;
            let mut lines = rd.lines();
            let line = tokio::time::timeout(WAIT, lines.next_line()).await??;
            let Some(line) = line else {
                bail!("closed without an error for {}", String::from_utf8_lossy(case));
            };
            match decode_line::<NameNodeToDataNode>(line.as_bytes())? {
                NameNodeToDataNode::Error { message } => assert!(!message.is_empty()),
                other => bail!("expected an error, got {other:?}"),
            }
            let eof = tokio::time::timeout(WAIT, lines.next_line()).await?;
            assert!(matches!(eof, Ok(None) | Err(_)), "then the close: {eof:?}");
        }

        // Blank lines (telnet) are ignored, and a node still registers on that connection.
        let (rd, mut wr) = crate::util::dial(nn.datanode_addr(), "dn-telnet").await?;
        wr.write_all(b"\r\n\n").await?;
        let register = chkv_common::DataNodeToNameNode::Register {
            version: 1,
            node_id: NodeId::from("dn-telnet"),
            client_addr: "127.0.0.1:7200".parse()?,
            admin_addr: "127.0.0.1:17200".parse()?,
            tls_port: None,
            epoch_seen: 0,
            owned_slots: None,
            leased: false,
        draining: false,
        life: 0,
        since: Vec::new(),
        suspects: Vec::new(),
        };
        wr.write_all(&encode_line(&register)?).await?;
        let line = tokio::time::timeout(WAIT, rd.lines().next_line())
            .await??
            .unwrap_or_default();
        assert!(line.starts_with(r#"{"type":"welcome""#), "{line}");

        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// A node that registers again (a DataNode reconnecting) is welcomed on the new connection
/// and its old one is closed; the table does not change.
#[tokio::test]
async fn a_reconnecting_node_keeps_its_slots() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let (mut a, table) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7301, INTERVAL).await?;
        let mut watcher = Watcher::connect(nn.client_addr()).await?;
        assert_eq!(watcher.table(WAIT).await?, table);

        let mut again =
            FakeDataNode::register(nn.datanode_addr(), "dn-a", 7301, INTERVAL, Some(&table))
                .await?;
        assert_eq!(again.welcome(WAIT).await?, table);
        assert!(matches!(a.next(WAIT).await?, Received::Closed));
        watcher.assert_quiet(INTERVAL * 5).await?;
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// A connection speaks for the node it registered as, and no other.
#[tokio::test]
async fn speaking_for_another_node_is_refused() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let (mut a, _) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7351, INTERVAL).await?;
        a.send(chkv_common::DataNodeToNameNode::Pong {
            node_id: NodeId::from("dn-b"),
            nonce: 1,
        })?;
        match a.next(WAIT).await? {
            Received::Error(message) => {
                assert!(message.contains("authenticated as dn-a"), "{message}")
            }
            other => bail!("expected an error, got {other:?}"),
        }
        assert!(matches!(a.next(WAIT).await?, Received::Closed));
        nn.shutdown().await;
        Ok(())
    })
    .await
}
