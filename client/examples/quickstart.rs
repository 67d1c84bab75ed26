//! The client library in a few lines: connect through the NameNode, write and read a few
//! keys (they land on different DataNodes), then print the ring as it changes.
//!
//! ```text
//! helper/cluster.sh                                         # in one terminal
//! cargo run -p chkv-client --example quickstart             # in another
//! cargo run -p chkv-client --example quickstart -- 127.0.0.1:10102 30   # address, seconds
//! ```
//!
//! The NameNode address is the first argument, else `CHKV_NAMENODE`, else 127.0.0.1:10102
//! (the NameNode's watch port). While it watches, drain a DataNode (`echo k | nc 127.0.0.1
//! 20001`) or start one, and see the epoch and the node count change.

use std::time::Duration;

use chkv_client::{Client, Ttl};

#[tokio::main]
async fn main() -> Result<(), chkv_client::Error> {
    let mut args = std::env::args().skip(1);
    let namenode = args
        .next()
        .or_else(|| std::env::var("CHKV_NAMENODE").ok())
        .unwrap_or_else(|| "127.0.0.1:10102".to_string());
    let watch_for = Duration::from_secs(args.next().and_then(|s| s.parse().ok()).unwrap_or(10));

    let client = Client::connect(namenode.as_str()).await?;
    let ring = client.ring();
    println!(
        "connected to {namenode}: epoch {}, {} DataNodes",
        ring.epoch,
        ring.node_count()
    );

    client.set("greeting", "hello").await?;
    let greeting = client.get("greeting").await?;
    println!(
        "GET greeting -> {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );

    client.set("session:42", "alice").await?;
    client.expire("session:42", 60).await?;
    if let Ttl::ExpiresIn(left) = client.ttl("session:42").await? {
        println!("session:42 expires in {left:?}");
    }

    // Keys on different DataNodes, fetched in one call (one request per node, in parallel).
    let keys = ["greeting", "session:42", "user:1", "user:2", "no-such-key"];
    client.mset([("user:1", "ann"), ("user:2", "bob")]).await?;
    for (key, value) in keys.iter().zip(client.mget(keys).await?) {
        let node = client
            .node_for_key(key)
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!(
            "  {key:<12} on {node:<16} = {:?}",
            value.as_deref().map(String::from_utf8_lossy)
        );
    }

    let deleted = client.del(keys).await?;
    println!(
        "DEL -> {deleted} keys deleted; {} keys left in the cluster",
        client.dbsize().await?
    );

    println!("watching the ring for {watch_for:?} (drain or add a DataNode to see it change)");
    let mut ring = client.watch_ring();
    let deadline = tokio::time::Instant::now() + watch_for;
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, ring.changed()).await {
        // A join or a drain moves slots in batches, each a new epoch: one line per pause.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = ring.borrow_and_update().clone();
        println!(
            "  epoch {}: {} DataNodes, {} slots assigned",
            now.epoch,
            now.node_count(),
            now.assigned_slots
        );
    }
    Ok(())
}
