//! Transactions in a cluster: a plain connection's transaction runs whole on the node that
//! owns its keys (forwarded if that is another node), keys on several nodes give
//! `-CROSSSLOT` with nothing applied, cluster-aware connections get Redis Cluster's rules,
//! and a slot that moves between MULTI and EXEC (a drain) neither splits a transaction nor
//! lets a WATCH miss the move.

use crate::util::*;
use chkv_common::key_slot;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_whole_on_the_owner() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [a, b, c] = [0, 1, 2].map(|i| map.keys_of(addrs[i], "tx:", 2));
        let con = &mut connect(addrs[0]).await;

        // Every key on node 1, asked through node 0: forwarded whole, applied there.
        let (n, v): (i64, String) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&b[0])
            .arg("5")
            .ignore()
            .cmd("INCRBY")
            .arg(&b[0])
            .arg(2)
            .cmd("SET")
            .arg(&b[1])
            .arg("x")
            .ignore()
            .cmd("GET")
            .arg(&b[1])
            .query_async(con)
            .await
            .expect("forwarded transaction");
        assert_eq!((n, v.as_str()), (7, "x"));
        let on_b = &mut connect(addrs[1]).await;
        let got: Vec<Option<String>> = q(on_b, &["MGET", &b[0], &b[1]]).await;
        assert_eq!(got, vec![Some("7".into()), Some("x".into())]);

        // Local keys run here.
        let (x,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&a[0])
            .query_async(con)
            .await
            .expect("local transaction");
        assert_eq!(x, 1);

        // Keys on two nodes: -CROSSSLOT for EXEC, and nothing applied.
        let mut raw = Raw::connect(addrs[0]).await;
        assert_eq!(&raw.cmd(&["MULTI"]).await[..], b"+OK\r\n");
        assert_eq!(&raw.cmd(&["SET", &b[0], "no"]).await[..], b"+QUEUED\r\n");
        assert_eq!(&raw.cmd(&["SET", &c[0], "no"]).await[..], b"+QUEUED\r\n");
        assert_eq!(
            &raw.cmd(&["EXEC"]).await[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        let got: Vec<Option<String>> = q(con, &["MGET", &b[0], &c[0]]).await;
        assert_eq!(got, vec![Some("7".into()), None]);
        // The connection left MULTI.
        assert_eq!(&raw.cmd(&["PING"]).await[..], b"+PONG\r\n");

        // WATCH through the owner sees a write forwarded from another node.
        let mut owner = Raw::connect(addrs[2]).await;
        owner.cmd(&["WATCH", &c[1]]).await;
        let () = q(con, &["SET", &c[1], "changed"]).await;
        owner.cmd(&["MULTI"]).await;
        owner.cmd(&["SET", &c[1], "mine"]).await;
        assert_eq!(&owner.cmd(&["EXEC"]).await[..], b"*-1\r\n");
        // WATCH through another node: held on the owner, over the session's own connection.
        assert_eq!(&raw.cmd(&["WATCH", &c[1]]).await[..], b"+OK\r\n");
        assert_eq!(&raw.cmd(&["GET", &c[1]]).await[..], b"$7\r\nchanged\r\n");
        let () = q(con, &["SET", &c[1], "again"]).await;
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["SET", &c[1], "mine"]).await;
        assert_eq!(&raw.cmd(&["EXEC"]).await[..], b"*-1\r\n");
        raw.cmd(&["WATCH", &c[1]]).await;
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["SET", &c[1], "mine"]).await;
        assert_eq!(&raw.cmd(&["EXEC"]).await[..], b"*1\r\n+OK\r\n");
        let v: String = q(con, &["GET", &c[1]]).await;
        assert_eq!(v, "mine");
        // Watching keys on two nodes, or here and there, cannot be one transaction.
        raw.cmd(&["WATCH", &c[1]]).await;
        assert_eq!(
            &raw.cmd(&["WATCH", &b[1]]).await[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["SET", &b[1], "x"]).await;
        assert_eq!(
            &raw.cmd(&["EXEC"]).await[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        assert_eq!(&raw.cmd(&["UNWATCH"]).await[..], b"+OK\r\n");

        // Cluster-aware connection: -MOVED while queuing aborts the transaction.
        assert_eq!(
            &raw.cmd(&["CLUSTER", "REDIRECTS", "YES"]).await[..],
            b"+OK\r\n"
        );
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["SET", &a[0], "1"]).await;
        let moved = raw.cmd(&["SET", &b[0], "1"]).await;
        assert!(moved.starts_with(b"-MOVED "), "{moved:?}");
        assert_eq!(
            &raw.cmd(&["EXEC"]).await[..],
            b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        // Two local keys in different slots: -CROSSSLOT at EXEC.
        if key_slot(a[0].as_bytes()) != key_slot(a[1].as_bytes()) {
            raw.cmd(&["MULTI"]).await;
            raw.cmd(&["SET", &a[0], "1"]).await;
            raw.cmd(&["SET", &a[1], "1"]).await;
            assert_eq!(
                &raw.cmd(&["EXEC"]).await[..],
                b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
            );
        }
        raw.cmd(&["MULTI"]).await;
        raw.cmd(&["INCR", &a[0]]).await;
        assert_eq!(&raw.cmd(&["EXEC"]).await[..], b"*1\r\n:2\r\n");
        cluster.shutdown().await;
    })
    .await;
}

/// A slot moves between MULTI and EXEC: the queued transaction runs whole on the new owner;
/// a WATCH on the old owner fires, so the optimistic-locking loop retries instead of
/// writing over a change it did not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moving_between_multi_and_exec() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let k = map.keys_of(addrs[1], "mv:", 1).remove(0);
        let via0 = &mut connect(addrs[0]).await;
        let () = q(via0, &["SET", &k, "10"]).await;

        let mut queued = Raw::connect(addrs[0]).await;
        queued.cmd(&["MULTI"]).await;
        queued.cmd(&["INCR", &k]).await;
        queued.cmd(&["INCR", &k]).await;
        let mut watching = Raw::connect(addrs[1]).await;
        assert_eq!(&watching.cmd(&["WATCH", &k]).await[..], b"+OK\r\n");
        // The same, through another node.
        let mut watching_via0 = Raw::connect(addrs[0]).await;
        assert_eq!(&watching_via0.cmd(&["WATCH", &k]).await[..], b"+OK\r\n");

        let DataNode::InProcess(h) = &cluster.nodes[1] else {
            unreachable!("an in-process cluster");
        };
        assert!(chkv_datanode::migration::start_drain(&h.node));
        let deadline = Instant::now() + Duration::from_secs(30);
        while h.node.routing().my_slot_count() > 0 || !h.node.db.is_empty() {
            assert!(Instant::now() < deadline, "drain did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The queued transaction runs whole, wherever the key now lives.
        assert_eq!(&queued.cmd(&["EXEC"]).await[..], b"*2\r\n:11\r\n:12\r\n");
        let v: i64 = q(via0, &["GET", &k]).await;
        assert_eq!(v, 12);
        // The watch on the old owner fired when the slot left: EXEC aborts.
        watching.cmd(&["MULTI"]).await;
        watching.cmd(&["SET", &k, "0"]).await;
        assert_eq!(&watching.cmd(&["EXEC"]).await[..], b"*-1\r\n");
        watching_via0.cmd(&["MULTI"]).await;
        watching_via0.cmd(&["SET", &k, "0"]).await;
        assert_eq!(&watching_via0.cmd(&["EXEC"]).await[..], b"*-1\r\n");
        let v: i64 = q(via0, &["GET", &k]).await;
        assert_eq!(v, 12);
        cluster.shutdown().await;
    })
    .await;
}

/// The optimistic-locking loop of redis-py and friends, against every node of the cluster at
/// once: clients on all three nodes increment one counter with WATCH/GET/MULTI/SET/EXEC.
/// Not one increment is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_loop_through_every_node_counts_exactly() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        const EACH: i64 = 25;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let addr = addrs[i % 3];
            tasks.push(tokio::spawn(async move {
                let c = &mut connect(addr).await;
                for _ in 0..EACH {
                    loop {
                        let () = q(c, &["WATCH", "shared-counter"]).await;
                        let v: Option<i64> = q(c, &["GET", "shared-counter"]).await;
                        let r: Option<(String,)> = redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg("shared-counter")
                            .arg(v.unwrap_or(0) + 1)
                            .query_async(c)
                            .await
                            .expect("exec");
                        if r.is_some() {
                            break;
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let n: i64 = q(&mut connect(addrs[1]).await, &["GET", "shared-counter"]).await;
        assert_eq!(n, 6 * EACH);
        cluster.shutdown().await;
    })
    .await;
}

/// Scripts go where their declared keys live; keys on two nodes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_on_the_owner_of_their_keys() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [b, c] = [1, 2].map(|i| map.keys_of(addrs[i], "lua:", 1).remove(0));
        let con = &mut connect(addrs[0]).await;
        let script = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[1])";
        let n: i64 = q(con, &["EVAL", script, "1", &b, "41"]).await;
        assert_eq!(n, 42);
        // It ran on node 1: the key is there.
        let v: i64 = q(&mut connect(addrs[1]).await, &["GET", &b]).await;
        assert_eq!(v, 42);
        // EVALSHA reaches node 1, which cached the script when it ran it.
        let sha = chkv_datanode::lua::sha1hex(script.as_bytes());
        let n: i64 = q(con, &["EVALSHA", &sha, "1", &b, "1"]).await;
        assert_eq!(n, 2);
        let e = q_err(con, &["EVAL", "return 1", "2", &b, &c]).await;
        assert_eq!(e, "CROSSSLOT Keys in request don't hash to the same slot");

        // redis-py's Script: SCRIPT LOAD through the node it talks to, then EVALSHA there;
        // the owner of the key (node 2) has never seen the script: it gets the body from
        // node 0, runs it and caches it.
        let other = "return redis.call('incrby', KEYS[1], ARGV[1])";
        let sha: String = q(con, &["SCRIPT", "LOAD", other]).await;
        let on_c = &mut connect(addrs[2]).await;
        let known: Vec<i64> = q(on_c, &["SCRIPT", "EXISTS", &sha]).await;
        assert_eq!(known, vec![0]);
        let n: i64 = q(con, &["EVALSHA", &sha, "1", &c, "5"]).await;
        assert_eq!(n, 5);
        let peek: String = q(
            con,
            &["SCRIPT", "LOAD", "return redis.call('get', KEYS[1])"],
        )
        .await;
        let n: i64 = q(con, &["EVALSHA_RO", &peek.to_uppercase(), "1", &c]).await;
        assert_eq!(n, 5);
        let known: Vec<i64> = q(on_c, &["SCRIPT", "EXISTS", &sha]).await;
        assert_eq!(known, vec![1]);
        // Through node 1, which does not have it either: the owner has it now.
        let via1 = &mut connect(addrs[1]).await;
        let n: i64 = q(via1, &["EVALSHA", &sha, "1", &c, "1"]).await;
        assert_eq!(n, 6);
        // Known nowhere: -NOSCRIPT, as from one server.
        let unknown = chkv_datanode::lua::sha1hex(b"return 'nowhere'");
        let e = q_err(con, &["EVALSHA", &unknown, "1", &c]).await;
        assert_eq!(e, "NOSCRIPT No matching script. Please use EVAL.");
        cluster.shutdown().await;
    })
    .await;
}
