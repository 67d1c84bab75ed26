//! Failure detection: silent nodes are probed and removed, closed sockets are removed fast,
//! nodes that answer probes stay.
//!
//! Times are printed, not asserted against tight bounds: a test process on a loaded 2-core
//! machine waits seconds for a core. What is asserted holds however slow the machine is
//! (a hung node is not removed before its silence is suspect; a killed one is removed long
//! before its silence would be), with timings patient enough that healthy nodes are never
//! suspected ([`crate::util::config`]).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::Result;
use chkv_common::{NodeId, SlotTable};
use chkv_namenode::{Config, NameNodeHandle, Timing};

use crate::util::{
    assert_every_slot_owned_once, bounded, config, start, FakeDataNode, Received, Watcher,
    PATIENT_PROBE,
};

/// Liveness bound of every wait: generous.
const WAIT: Duration = Duration::from_secs(60);

/// A NameNode with dn-a, dn-b and dn-c heartbeating every `interval`, and a watcher that has
/// seen the three-node table.
async fn cluster(
    config: Config,
) -> Result<(NameNodeHandle, Vec<FakeDataNode>, Watcher, SlotTable)> {
    let interval = config.timing.heartbeat_interval;
    let nn = start(config).await?;
    let mut nodes = Vec::new();
    let mut table = SlotTable::default();
    for (i, id) in ["dn-a", "dn-b", "dn-c"].into_iter().enumerate() {
        let (node, welcome) =
            FakeDataNode::join(nn.datanode_addr(), id, 7400 + i as u16, interval).await?;
        nodes.push(node);
        table = welcome;
    }
    let mut watcher = Watcher::connect(nn.client_addr()).await?;
    assert_eq!(watcher.table(WAIT).await?, table);
    Ok((nn, nodes, watcher, table))
}

/// Waits for the table without `gone`, checks it, and returns how long that took from `since`.
async fn removal_time(
    watcher: &mut Watcher,
    before: &SlotTable,
    gone: &str,
    since: Instant,
    bound: Duration,
) -> Result<Duration> {
    let after = watcher.table(bound).await?;
    let took = since.elapsed();
    assert!(after.epoch() > before.epoch());
    let rest: Vec<&str> = ["dn-a", "dn-b", "dn-c"]
        .into_iter()
        .filter(|id| *id != gone)
        .collect();
    assert_every_slot_owned_once(&after, &rest);
    // Consistent hashing: the survivors keep what they had.
    for m in before.diff(&after) {
        assert_eq!(m.from, Some(NodeId::from(gone)), "{m:?}");
    }
    Ok(took)
}

#[tokio::test]
async fn a_hung_node_is_probed_then_removed() -> Result<()> {
    bounded(180, async {
        let interval = Duration::from_millis(100);
        let config = config(interval, Duration::ZERO);
        let suspect_after = config.timing.suspect_after();
        let (nn, mut nodes, mut watcher, table) = cluster(config).await?;
        let hung = Instant::now();
        nodes[2].hang();
        // 20 missed heartbeats (2 s) + 3 probes 1 s apart.
        let took = removal_time(&mut watcher, &table, "dn-c", hung, WAIT).await?;
        println!("hung node (100 ms heartbeats) removed after {took:?}");
        assert!(took >= suspect_after, "not before the tolerance: {took:?}");
        // Its connection was cut, so a live-but-stuck process would reconnect and rejoin.
        let c = &mut nodes[2];
        loop {
            match c.next(WAIT).await? {
                Received::Closed => break,
                Received::Table(_) | Received::Welcome(..) | Received::Error(_) => {}
            }
        }
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_node_that_answers_probes_stays() -> Result<()> {
    bounded(180, async {
        let interval = Duration::from_millis(100);
        // Suspected after 3 silent intervals, so the quiet spell below sees several rounds
        // of probes; each probe has a patient second to be answered.
        let mut config = config(interval, Duration::ZERO);
        config.timing.heartbeat_tolerance = NonZeroU32::new(3).expect("nonzero");
        let (nn, nodes, mut watcher, _) = cluster(config).await?;
        // Heartbeats stop but pings are answered: alive, just quiet.
        nodes[1].stop_heartbeats();
        watcher.assert_quiet(PATIENT_PROBE * 5).await?;
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_killed_node_is_removed_fast() -> Result<()> {
    bounded(180, async {
        let interval = Duration::from_millis(100);
        // Silence is suspect only after 30 s: a removal well before that did not wait for it.
        let mut config = config(interval, Duration::ZERO);
        config.timing.heartbeat_tolerance = NonZeroU32::new(300).expect("nonzero");
        let suspect_after = config.timing.suspect_after();
        let (nn, mut nodes, mut watcher, table) = cluster(config).await?;
        let killed = Instant::now();
        nodes.remove(0).kill();
        // No waiting for missed heartbeats: 3 probes x 1 s that cannot be delivered.
        let took = removal_time(&mut watcher, &table, "dn-a", killed, WAIT).await?;
        println!("killed node (100 ms heartbeats) removed after {took:?}");
        assert!(took < suspect_after, "{took:?}");
        for node in &mut nodes {
            assert!(matches!(node.next(WAIT).await?, Received::Table(_)));
        }
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// The default timing (1 s heartbeats, tolerance 3, probes 300 ms apart): from kill -9, and
/// from a hang, to every watcher holding the new table (about 1 s and 4 s on a quiet
/// machine; printed, the README's figures). The bounds are liveness: on a loaded machine
/// the test process itself waits for a core.
#[tokio::test]
async fn detection_times_with_default_timing() -> Result<()> {
    bounded(180, async {
        // Only the grace is shortened; it plays no part in detection.
        let timing = Timing {
            startup_grace: Duration::ZERO,
            ..Timing::default()
        };
        let config = Config {
            timing,
            ..Config::ephemeral()
        };
        let (nn, mut nodes, mut watcher, table) = cluster(config).await?;
        let mut second = Watcher::connect(nn.client_addr()).await?;
        assert_eq!(second.table(WAIT).await?, table);

        let killed = Instant::now();
        nodes.remove(2).kill();
        let took = removal_time(&mut watcher, &table, "dn-c", killed, WAIT).await?;
        let both = removal_time(&mut second, &table, "dn-c", killed, WAIT).await?;
        println!("default timing: kill -9 -> new table at every watcher in {both:?} (first after {took:?})");

        // A hang (connection open, nothing answered) pays the 3 missed heartbeats first.
        let table = nodes[0].table(WAIT).await?;
        let hung = Instant::now();
        nodes[1].hang();
        let after = watcher.table(WAIT).await?;
        let took = hung.elapsed();
        assert_eq!(second.table(WAIT).await?, after);
        let took_all = hung.elapsed();
        assert_every_slot_owned_once(&after, &["dn-a"]);
        assert!(after.epoch() > table.epoch());
        println!("default timing: hang -> new table at every watcher in {took_all:?} (first after {took:?})");
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// A DataNode that stops sending (its side of the socket shut) is probed at once, and the
/// NameNode closes its side too rather than keeping a half-open connection.
#[tokio::test]
async fn a_half_closed_connection_is_closed_and_the_node_removed() -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    bounded(180, async {
        let interval = Duration::from_millis(100);
        let (nn, _nodes, mut watcher, table) = cluster(config(interval, Duration::ZERO)).await?;
        let (rd, mut wr) = crate::util::dial(nn.datanode_addr(), "dn-d").await?;
        let register = chkv_common::DataNodeToNameNode::Register {
            version: chkv_common::PROTOCOL_VERSION,
            node_id: NodeId::from("dn-d"),
            client_addr: "127.0.0.1:7499".parse()?,
            admin_addr: "127.0.0.1:17499".parse()?,
            tls_port: None,
            epoch_seen: 0,
            owned_slots: None,
            leased: false,
            draining: false,
            life: 0,
            since: Vec::new(),
            suspects: Vec::new(),
        };
        wr.write_all(&chkv_common::encode_line(&register)?).await?;
        let mut lines = rd.lines();
        let welcome = tokio::time::timeout(WAIT, lines.next_line()).await??;
        assert!(welcome.is_some_and(|l| l.starts_with(r#"{"type":"welcome""#)));
        // dn-d is announced (it owns nothing until handoffs to it complete).
        let (_, with_d) = watcher.next(WAIT).await?;
        assert_eq!(with_d.len(), 4);

        wr.shutdown().await?;
        let closed = tokio::time::timeout(WAIT, lines.next_line()).await?;
        assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
        // The fake members confirm handoffs to dn-d at once, so it owned slots; once it is
        // gone they return to their ring owners.
        let (mut without_d, mut members) = watcher.settled(WAIT).await?;
        while members.iter().any(|n| n.id.as_str() == "dn-d") {
            (without_d, members) = watcher.settled(WAIT).await?;
        }
        assert!(crate::util::same_owners(&table, &without_d));
        nn.shutdown().await;
        Ok(())
    })
    .await
}
