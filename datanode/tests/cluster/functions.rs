//! FUNCTION libraries across a cluster of real DataNode processes: a library loaded through
//! one node is callable through every node as soon as LOAD returns, deletes and flushes
//! reach every node, FCALL follows its keys to their owner, and a node that joins later
//! gets every library (and answers FCALL at once).

use crate::util::*;
use std::time::{Duration, Instant};

const LIB: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}\n\
    redis.register_function('hello', function() return 'hello' end)";

const LIB2: &str = "#!lua name=other\nredis.register_function('twice', function(keys, args) return args[1] * 2 end)";

async fn fcall(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let mut c = Raw::connect(addr).await;
    let mut cmd = vec!["FCALL"];
    cmd.extend_from_slice(args);
    show(&c.cmd(&cmd).await)
}

/// FUNCTION LIST on every node, until they all say the same (a liveness bound).
async fn lists_agree(addrs: &[std::net::SocketAddr]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut lists = Vec::new();
        for &a in addrs {
            let mut c = Raw::connect(a).await;
            lists.push(show(&c.cmd(&["FUNCTION", "LIST", "WITHCODE"]).await));
        }
        if lists.iter().all(|l| *l == lists[0]) {
            return lists.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "libraries never agreed: {lists:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_reach_every_node_including_late_joiners() {
    bounded(async {
        let mut cluster = Spec::new(2).processes().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let on = |i: usize, prefix: &str| map.keys_of(addrs[i], prefix, 1).remove(0);

        let mut a = Raw::connect(addrs[0]).await;
        assert_eq!(
            show(&a.cmd(&["FUNCTION", "LOAD", LIB]).await),
            show(b"$8\r\ncounters\r\n")
        );
        // The exchange between nodes is internal: a client does not see it.
        assert!(show(&a.cmd(&["CLUSTER", "FUNCTIONS", "STATE"]).await)
            .starts_with("-ERR unknown subcommand"));
        // Callable through the other node as soon as LOAD has returned.
        assert_eq!(
            fcall(addrs[1], &["hello", "0"]).await,
            show(b"$5\r\nhello\r\n")
        );
        // FCALL runs where its keys live, whichever node it is sent to.
        let k1 = on(1, "f:");
        let k0 = on(0, "f:");
        assert_eq!(fcall(addrs[0], &["bump", "1", &k1, "5"]).await, ":5\\r\\n");
        assert_eq!(fcall(addrs[1], &["bump", "1", &k0, "7"]).await, ":7\\r\\n");
        assert_eq!(
            fcall(addrs[1], &["peek", "1", &k1]).await,
            show(b"$1\r\n5\r\n")
        );
        let mut b = Raw::connect(addrs[1]).await;
        assert_eq!(show(&b.cmd(&["GET", &k0]).await), show(b"$1\r\n7\r\n"));
        // Keys on two nodes: like any multi-key request.
        assert!(fcall(addrs[0], &["bump", "2", &k0, &k1, "1"])
            .await
            .starts_with("-CROSSSLOT"));

        // A delete through one node is a delete everywhere.
        assert_eq!(
            &b.cmd(&["FUNCTION", "DELETE", "counters"]).await[..],
            b"+OK\r\n"
        );
        assert_eq!(
            fcall(addrs[0], &["hello", "0"]).await,
            "-ERR Function not found\\r\\n"
        );

        // RESTORE too: the dump of node 0 (empty now, so load first on node 1).
        assert_eq!(
            show(&b.cmd(&["FUNCTION", "LOAD", LIB2]).await),
            show(b"$5\r\nother\r\n")
        );
        let dump = a.cmd(&["FUNCTION", "DUMP"]).await;
        let payload =
            &dump[dump.iter().position(|&c| c == b'\n').expect("bulk") + 1..dump.len() - 2];
        assert_eq!(&a.cmd(&["FUNCTION", "FLUSH"]).await[..], b"+OK\r\n");
        assert_eq!(
            fcall(addrs[1], &["twice", "0", "4"]).await,
            "-ERR Function not found\\r\\n"
        );
        let mut restore = b"*3\r\n$8\r\nFUNCTION\r\n$7\r\nRESTORE\r\n".to_vec();
        restore.extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
        restore.extend_from_slice(payload);
        restore.extend_from_slice(b"\r\n");
        assert_eq!(&b.call(&restore).await[..], b"+OK\r\n");
        assert_eq!(fcall(addrs[0], &["twice", "0", "4"]).await, ":8\\r\\n");
        assert_eq!(
            show(&a.cmd(&["FUNCTION", "LOAD", LIB]).await),
            show(b"$8\r\ncounters\r\n")
        );

        // A node that joins later: FCALL through it works at once, and every node ends with
        // the same libraries.
        let nn = cluster.namenode_addr();
        cluster.nodes.push(DataNode::Process(
            Process::spawn(nn, FAST_HEARTBEAT, &[]).await,
        ));
        let addrs = cluster.addrs();
        wait_converged(&addrs, 3).await;
        assert_eq!(
            fcall(addrs[2], &["hello", "0"]).await,
            show(b"$5\r\nhello\r\n")
        );
        assert_eq!(fcall(addrs[2], &["twice", "0", "21"]).await, ":42\\r\\n");
        let list = lists_agree(&addrs).await;
        assert!(
            list.contains("counters") && list.contains("other"),
            "{list}"
        );
        let mut c = Raw::connect(addrs[2]).await;
        assert_eq!(&c.cmd(&["FUNCTION", "FLUSH"]).await[..], b"+OK\r\n");
        assert_eq!(lists_agree(&addrs).await, "*0\\r\\n");
        cluster.shutdown().await;
    })
    .await;
}
