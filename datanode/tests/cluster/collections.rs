//! Hashes and sets on a 3-node cluster: single-key commands are forwarded to their owner;
//! multi-set commands run whole on the node that holds all their keys, and are refused with
//! `-CROSSSLOT` when their keys live on different nodes (or, on cluster-aware connections,
//! in different slots), like Redis Cluster.

use crate::util::*;
use redis::cluster::ClusterClient;
use redis::AsyncCommands;
use std::collections::HashSet;

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_route_by_key_and_refuse_cross_node_work() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [a, b, c] = [0, 1, 2].map(|i| map.keys_of(addrs[i], "coll:", 2));
        let mut con = connect(addrs[0]).await;

        // A hash owned by node 1, written through node 0 and read through node 2.
        let n: i64 = q(&mut con, &["HSET", &b[0], "f", "v", "g", "w"]).await;
        assert_eq!(n, 2);
        let got: Vec<String> = q(&mut connect(addrs[2]).await, &["HGETALL", &b[0]]).await;
        assert_eq!(got, ["f", "v", "g", "w"]);
        let n: usize = q(&mut connect(addrs[1]).await, &["DBSIZE"]).await;
        assert_eq!(n, 1, "the hash lives on its owner");

        // Sets on three nodes: cross-node reads, stores and moves are refused.
        for (k, m) in [(&a[0], "x"), (&b[1], "x"), (&c[0], "y"), (&c[1], "x")] {
            let _: i64 = q(&mut con, &["SADD", k, m, "z"]).await;
        }
        for cmd in [
            vec!["SINTER", &a[0], &b[1]],
            vec!["SUNION", &a[0], &c[0]],
            vec!["SDIFF", &c[0], &b[1]],
            vec!["SINTERCARD", "2", &a[0], &b[1]],
            vec!["SINTERSTORE", &a[0], &b[1], &c[0]],
            vec!["SUNIONSTORE", &c[0], &a[0]],
            vec!["SDIFFSTORE", &a[1], &b[1]],
            vec!["SMOVE", &a[0], &b[1], "x"],
        ] {
            assert_eq!(q_err(&mut con, &cmd).await, CROSSSLOT, "{cmd:?}");
        }
        let n: i64 = q(&mut con, &["EXISTS", &a[1]]).await;
        assert_eq!(n, 0, "a refused store writes nothing");

        // Keys of different slots on one node: the command is forwarded whole to it.
        let inter: HashSet<String> = q(&mut con, &["SINTER", &c[0], &c[1]]).await;
        assert_eq!(inter, HashSet::from(["z".to_string()]));
        let n: i64 = q(&mut con, &["SUNIONSTORE", &c[1], &c[0], &c[1]]).await;
        assert_eq!(n, 3);
        let n: i64 = q(&mut con, &["SINTERCARD", "2", &c[0], &c[1]]).await;
        assert_eq!(n, 2);
        // Its LIMIT words are not keys: still run whole on the keys' node.
        let n: i64 = q(&mut con, &["SINTERCARD", "2", &c[0], &c[1], "LIMIT", "1"]).await;
        assert_eq!(n, 1);
        let moved: i64 = q(&mut con, &["SMOVE", &c[0], &c[1], "y"]).await;
        assert_eq!(moved, 1);

        // A cluster-aware connection gets Redis Cluster's answer: one slot or nothing.
        let mut aware = connect(addrs[2]).await;
        let () = q(&mut aware, &["CLUSTER", "REDIRECTS", "YES"]).await;
        if chkv_common::key_slot(c[0].as_bytes()) != chkv_common::key_slot(c[1].as_bytes()) {
            assert_eq!(
                q_err(&mut aware, &["SINTER", &c[0], &c[1]]).await,
                CROSSSLOT
            );
        }
        let err = q_err(&mut aware, &["SMEMBERS", &a[0]]).await;
        assert!(err.starts_with("MOVED "), "{err}");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_client_reaches_every_hash_and_set() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let client = ClusterClient::new(vec![url(addrs[0])]).expect("cluster client");
        let mut con = step("cluster connect", client.get_async_connection())
            .await
            .expect("cluster connection");
        for i in 0..200 {
            let _: i64 = con
                .hset(format!("ch:{i}"), "n", i)
                .await
                .unwrap_or_else(|e| panic!("HSET ch:{i}: {e}"));
            let _: i64 = con
                .sadd(format!("{{cs:{i}}}a"), &[i, i + 1])
                .await
                .unwrap_or_else(|e| panic!("SADD: {e}"));
            let _: i64 = con
                .sadd(format!("{{cs:{i}}}b"), &[i + 1, i + 2])
                .await
                .unwrap_or_else(|e| panic!("SADD: {e}"));
        }
        for i in 0..200 {
            let n: i64 = con
                .hget(format!("ch:{i}"), "n")
                .await
                .unwrap_or_else(|e| panic!("HGET ch:{i}: {e}"));
            assert_eq!(n, i);
            let inter: Vec<i64> = con
                .sinter(&[format!("{{cs:{i}}}a"), format!("{{cs:{i}}}b")])
                .await
                .unwrap_or_else(|e| panic!("SINTER: {e}"));
            assert_eq!(inter, [i + 1]);
        }
        let mut total = 0;
        for &addr in &addrs {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            assert!(n > 0, "every node holds some of the keys");
            total += n;
        }
        assert_eq!(total, 600);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_sets_route_by_key_and_refuse_cross_node_work() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [a, b, c] = [0, 1, 2].map(|i| map.keys_of(addrs[i], "zcoll:", 2));
        let mut con = connect(addrs[0]).await;

        // A sorted set owned by node 1, written through node 0 and read through node 2.
        let n: i64 = q(&mut con, &["ZADD", &b[0], "1", "x", "2", "y"]).await;
        assert_eq!(n, 2);
        let got: Vec<String> = q(&mut connect(addrs[2]).await, &["ZRANGE", &b[0], "0", "-1"]).await;
        assert_eq!(got, ["x", "y"]);
        let n: i64 = q(&mut con, &["GEOADD", &a[0], "13.361389", "38.115556", "p"]).await;
        assert_eq!(n, 1);
        for (k, m) in [(&a[1], "x"), (&c[0], "y"), (&c[1], "x")] {
            let _: i64 = q(&mut con, &["ZADD", k, "5", m]).await;
        }
        // Keys on different nodes: refused, wherever the destination is.
        for cmd in [
            vec!["ZUNION", "2", &a[1], &b[0]],
            vec!["ZINTER", "2", &a[1], &c[0]],
            vec!["ZDIFF", "2", &c[0], &b[0]],
            vec!["ZINTERCARD", "2", &a[1], &b[0]],
            vec!["ZUNIONSTORE", &a[1], "2", &c[0], &c[1]],
            vec!["ZINTERSTORE", &c[0], "1", &b[0]],
            vec!["ZDIFFSTORE", &c[0], "2", &c[1], &a[1]],
            vec!["ZRANGESTORE", &a[1], &b[0], "0", "-1"],
            vec!["ZMPOP", "2", &a[1], &b[0], "MIN"],
            vec![
                "GEOSEARCHSTORE",
                &b[1],
                &a[0],
                "FROMLONLAT",
                "13",
                "38",
                "BYRADIUS",
                "100",
                "km",
            ],
            vec!["GEORADIUS", &a[0], "13", "38", "100", "km", "STORE", &b[1]],
        ] {
            assert_eq!(q_err(&mut con, &cmd).await, CROSSSLOT, "{cmd:?}");
        }
        let n: i64 = q(&mut con, &["EXISTS", &a[1], &b[1]]).await;
        assert_eq!(n, 1, "a refused store writes nothing");

        // Keys of different slots on one node: the command runs whole there.
        let n: i64 = q(&mut con, &["ZUNIONSTORE", &c[1], "2", &c[0], &c[1]]).await;
        assert_eq!(n, 2);
        let both: Vec<String> = q(&mut con, &["ZRANGE", &c[1], "0", "-1"]).await;
        assert_eq!(both, ["x", "y"]);
        let n: i64 = q(&mut con, &["ZINTERCARD", "2", &c[0], &c[1], "LIMIT", "5"]).await;
        assert_eq!(n, 1);
        let n: i64 = q(
            &mut con,
            &["GEORADIUS", &a[0], "13", "38", "100", "km", "STORE", &a[1]],
        )
        .await;
        assert_eq!(n, 1);
        cluster.shutdown().await;
    })
    .await;
}
