//! NameNode restarts: the state comes back from what DataNodes report.

use std::time::{Duration, Instant};

use anyhow::Result;
use chkv_common::{NodeId, SlotTable};
use chkv_namenode::Config;

use crate::util::{
    assert_every_slot_owned_once, bounded, config, same_owners, start, FakeDataNode, Received,
    Watcher,
};

const INTERVAL: Duration = Duration::from_millis(100);
/// Liveness bound of a wait: generous.
const WAIT: Duration = Duration::from_secs(60);
const IDS: [&str; 3] = ["dn-a", "dn-b", "dn-c"];

/// Starts a NameNode, joins the three nodes, stops it; returns the last table, the config the
/// NameNode ran with (ports resolved) and the orphaned DataNodes.
async fn run_then_stop(config: Config) -> Result<(SlotTable, Config, Vec<FakeDataNode>)> {
    let nn = start(config.clone()).await?;
    let mut nodes = Vec::new();
    let mut table = SlotTable::default();
    for (i, id) in IDS.into_iter().enumerate() {
        let (node, welcome) =
            FakeDataNode::join(nn.datanode_addr(), id, 7500 + i as u16, INTERVAL).await?;
        nodes.push(node);
        table = welcome;
    }
    let same_ports = Config {
        datanode_port: nn.datanode_addr().port(),
        client_port: nn.client_addr().port(),
        http_port: nn.http_addr().port(),
        ..config
    };
    nn.shutdown().await;
    // The DataNodes notice.
    for node in &mut nodes {
        loop {
            if let Received::Closed = node.next(WAIT).await? {
                break;
            }
        }
    }
    Ok((table, same_ports, nodes))
}

#[tokio::test]
async fn a_restarted_namenode_keeps_owners_and_epoch() -> Result<()> {
    bounded(180, async {
        // A long grace, to show it is cut short once every owner is back.
        let grace = Duration::from_secs(60);
        let (before, mut same_ports, old) = run_then_stop(config(INTERVAL, Duration::ZERO)).await?;
        same_ports.timing.startup_grace = grace;
        drop(old);

        let restarted = Instant::now();
        let nn = start(same_ports.clone()).await?;
        assert_eq!(
            nn.datanode_addr().port(),
            same_ports.datanode_port,
            "same ports"
        );
        let mut watcher = Watcher::connect(nn.client_addr()).await?;
        let mut nodes = Vec::new();
        for (i, id) in IDS.into_iter().enumerate() {
            nodes.push(
                FakeDataNode::register(
                    nn.datanode_addr(),
                    id,
                    7500 + i as u16,
                    INTERVAL,
                    Some(&before),
                )
                .await?,
            );
        }
        let after = watcher.table(WAIT).await?;
        let took = restarted.elapsed();
        println!("restart: first table after {took:?} (grace {grace:?})");
        assert!(took < grace, "everyone back: no need to wait the grace out");
        assert!(after.epoch() >= before.epoch());
        assert_eq!(
            after.epoch(),
            before.epoch(),
            "nothing changed, so nothing to renumber"
        );
        assert!(same_owners(&before, &after));
        assert_every_slot_owned_once(&after, &IDS);
        for node in &mut nodes {
            assert_eq!(node.welcome(WAIT).await?, after);
        }
        watcher.assert_quiet(INTERVAL * 5).await?;
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_node_lost_while_the_namenode_was_down_moves_the_epoch() -> Result<()> {
    bounded(180, async {
        // Long enough for both survivors to register within it on a loaded machine.
        let grace = Duration::from_secs(5);
        let (before, _, old) = run_then_stop(config(INTERVAL, Duration::ZERO)).await?;
        drop(old);

        // New ports this time: DataNodes are told where the NameNode is.
        let started = Instant::now();
        let nn = start(config(INTERVAL, grace)).await?;
        let mut watcher = Watcher::connect(nn.client_addr()).await?;
        let mut nodes = Vec::new();
        for (i, id) in IDS.into_iter().enumerate().take(2) {
            nodes.push(
                FakeDataNode::register(
                    nn.datanode_addr(),
                    id,
                    7500 + i as u16,
                    INTERVAL,
                    Some(&before),
                )
                .await?,
            );
        }
        let after = watcher.table(WAIT).await?;
        assert!(
            started.elapsed() >= grace,
            "dn-c's slots are uncovered: the grace runs out"
        );
        assert_eq!(after.epoch(), before.epoch() + 1);
        assert_every_slot_owned_once(&after, &["dn-a", "dn-b"]);
        for m in before.diff(&after) {
            assert_eq!(m.from, Some(NodeId::from("dn-c")), "only dn-c's slots move");
        }
        for node in &mut nodes {
            assert_eq!(node.welcome(WAIT).await?, after);
        }

        // dn-c comes back late: an ordinary join, numbered above everything seen.
        let late =
            FakeDataNode::register(nn.datanode_addr(), "dn-c", 7502, INTERVAL, Some(&before))
                .await?;
        // It is announced, then the slots it owns in the ring are handed back to it.
        let rejoined = watcher.settled(WAIT).await?.0;
        assert!(rejoined.epoch() > after.epoch());
        assert!(
            same_owners(&before, &rejoined),
            "the same members own the same slots"
        );
        drop(late);
        nn.shutdown().await;
        Ok(())
    })
    .await
}
