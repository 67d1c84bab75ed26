//! Subscriptions survive ring changes: a channel, a pattern and a shard channel keep
//! receiving after the node holding the shard channel's slot (and maybe the subscription's
//! connection) is drained and stopped; channel and pattern subscriptions whose connection is
//! on the node that drains reconnect elsewhere; shard subscriptions whose slot a joining node
//! takes resubscribe at the joiner.
//!
//! A test binary of its own: run in the same process as the `client` tests' ring tests, its
//! drain made `ring::join_drain_and_kill_under_load` see lost writes (see the report of the
//! `pubsub` branch); separate binaries run one after the other. `util` is the `client`
//! tests' `util.rs` (clusters, drains, convergence), shared by path.

#[allow(dead_code)]
#[path = "../client/util.rs"]
mod util;

use chkv_client::{Client, Subscription, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use util::{bounded, converge, drain, settle, start_datanode, Cluster};

/// Publishes (`command` + a counter) until `sub` receives one of them; returns its payload.
async fn publish_until_received(client: &Client, sub: &mut Subscription, command: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0u64.. {
        assert!(
            Instant::now() < deadline,
            "{command:?} never reached the subscriber"
        );
        let payload = format!("m{i}");
        let mut args: Vec<&str> = command.to_vec();
        args.push(&payload);
        // Errors (a node leaving) are retried by the next round.
        let _ = client.cmd(args).await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            assert!(m.payload.starts_with(b"m"), "{m:?}");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_keep_receiving_across_a_drain() {
    bounded(Duration::from_secs(120), async {
        let mut cluster = Cluster::start(3).await;
        let client = cluster.client.clone();
        let leaving = cluster.nodes[1].addr();
        let shard = (0..)
            .map(|i| format!("shard:{i}"))
            .find(|k| client.node_for_key(k) == Some(leaving))
            .expect("a channel owned by the node that leaves");
        let mut channel = client.subscribe(["news"]);
        let mut pattern = client.psubscribe(["ne*"]);
        let mut sharded = client.ssubscribe(&shard);
        publish_until_received(&client, &mut channel, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut pattern, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut sharded, &["SPUBLISH", &shard]).await;

        let node = cluster.nodes.remove(1);
        let summary = drain(node.admin_addr()).await;
        eprintln!("{summary:?}");
        node.shutdown().await;
        converge(&client, 2).await;
        assert_ne!(client.node_for_key(&shard), Some(leaving));

        publish_until_received(&client, &mut channel, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut pattern, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut sharded, &["SPUBLISH", &shard]).await;
        drop((channel, pattern, sharded));
        cluster.shutdown().await;
    })
    .await
}

/// `PUBSUB <what> [name]` at `node`: how many subscriptions that node holds (node-local, as
/// in Redis Cluster).
async fn held(client: &Client, node: SocketAddr, what: &[&str]) -> i64 {
    let mut args = vec!["PUBSUB"];
    args.extend_from_slice(what);
    match client.cmd_on(node, args).await.expect("PUBSUB") {
        Value::Int(n) => n,
        Value::Array(v) if v.len() == 2 => v[1].as_int().expect("a count"),
        other => panic!("PUBSUB {what:?}: {other:?}"),
    }
}

/// The one node whose `PUBSUB <what>` counts a subscription, once exactly one node counts
/// one and the others none (a connection being replaced may be counted for a moment).
async fn holder(client: &Client, what: &[&str]) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut counts = Vec::new();
        for node in client.nodes() {
            counts.push((node, held(client, node, what).await));
        }
        let at: Vec<SocketAddr> = counts.iter().filter(|c| c.1 > 0).map(|c| c.0).collect();
        if at.len() == 1 && counts.iter().all(|c| c.1 <= 1) {
            return at[0];
        }
        assert!(Instant::now() < deadline, "{what:?} counted {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_of_the_node_holding_subscriptions_and_a_join_taking_shard_slots() {
    bounded(Duration::from_secs(300), async {
        let mut cluster = Cluster::start(3).await;
        let client = cluster.client.clone();
        let mut channel = client.subscribe(["news"]);
        let mut pattern = client.psubscribe(["ne*"]);
        publish_until_received(&client, &mut channel, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut pattern, &["PUBLISH", "news"]).await;

        // The node holding the channel subscription's connection drains; the pattern's
        // connection goes with it when it is there too, else its own node drains next.
        let first = holder(&client, &["NUMSUB", "news"]).await;
        let second = holder(&client, &["NUMPAT"]).await;
        let mut leaving = vec![first];
        if second != first {
            leaving.push(second);
        }
        // Shard subscriptions spread over the slot space (one connection each).
        let shards: Vec<String> = (0..64u32)
            .map(|b| {
                (0u64..)
                    .map(|i| format!("s:{i}"))
                    .find(|c| u32::from(chkv_common::key_slot(c.as_bytes())) / 256 == b)
                    .expect("a name in every range")
            })
            .collect();
        let mut sharded: Vec<Subscription> = shards.iter().map(|c| client.ssubscribe(c)).collect();
        for (c, s) in shards.iter().zip(&mut sharded) {
            publish_until_received(&client, s, &["SPUBLISH", c]).await;
        }

        let n = cluster.nodes.len() + 1;
        let joined = start_datanode(Some(cluster.namenode.datanode_addr())).await;
        let joined_addr = joined.addr();
        cluster.nodes.push(joined);
        settle(&client, cluster.namenode.http_addr(), n).await;
        let taken: Vec<usize> = (0..shards.len())
            .filter(|&i| client.node_for_key(&shards[i]) == Some(joined_addr))
            .collect();
        // A joiner owning none of 64 slots spread evenly would own under 1/64 of them.
        assert!(!taken.is_empty(), "the join took no shard channel's slot");
        for &i in &taken {
            publish_until_received(&client, &mut sharded[i], &["SPUBLISH", &shards[i]]).await;
        }
        assert_eq!(
            held(&client, joined_addr, &["SHARDNUMSUB", &shards[taken[0]]]).await,
            1
        );

        let mut left = n;
        for addr in leaving {
            let at = cluster
                .nodes
                .iter()
                .position(|h| h.addr() == addr)
                .expect("the holder is a node of the cluster");
            let node = cluster.nodes.remove(at);
            let summary = drain(node.admin_addr()).await;
            eprintln!("{summary:?}");
            node.shutdown().await;
            left -= 1;
            converge(&client, left).await;
        }
        publish_until_received(&client, &mut channel, &["PUBLISH", "news"]).await;
        publish_until_received(&client, &mut pattern, &["PUBLISH", "news"]).await;
        for (c, s) in shards.iter().zip(&mut sharded) {
            publish_until_received(&client, s, &["SPUBLISH", c]).await;
        }
        // Now held elsewhere, once each.
        assert_ne!(holder(&client, &["NUMSUB", "news"]).await, first);
        drop((channel, pattern, sharded));
        cluster.shutdown().await;
    })
    .await
}
