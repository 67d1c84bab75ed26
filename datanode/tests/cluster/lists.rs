//! Lists and blocking commands on a cluster: a blocking command sent to a node that does not
//! own its key waits on the owner (over a connection of its own) and is served by a push
//! through any node; CLIENT UNBLOCK and disconnects reach the owner; and a client blocked on
//! a key whose slot moves in a drain is served by the new owner.

use crate::util::*;
use std::time::{Duration, Instant};

fn pair(k: &str, v: &str) -> String {
    format!("*2\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_commands_wait_on_the_owner_through_any_node() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let k = map.keys_of(addrs[1], "jobs:", 2);

        // Blocked through node 0 on node 1's key: both count it; a push through node 2
        // serves it.
        let mut w = Raw::connect(addrs[0]).await;
        w.send(&resp(&["BLPOP", &k[0], "0"])).await;
        blocked_on(addrs[0], 1).await;
        blocked_on(addrs[1], 1).await;
        let mut other = connect(addrs[2]).await;
        let n: i64 = q(&mut other, &["RPUSH", &k[0], "job-1", "job-2"]).await;
        assert_eq!(n, 2);
        assert_eq!(
            show(&w.reply().await),
            show(pair(&k[0], "job-1").as_bytes())
        );
        blocked_on(addrs[0], 0).await;
        blocked_on(addrs[1], 0).await;
        let left: Vec<String> = q(&mut other, &["LRANGE", &k[0], "0", "-1"]).await;
        assert_eq!(left, ["job-2"]);

        // CLIENT UNBLOCK on the node the client is connected to.
        let id = {
            let r = w.cmd(&["CLIENT", "ID"]).await;
            String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
        };
        w.send(&resp(&["BLMOVE", &k[1], &k[0], "LEFT", "RIGHT", "0"]))
            .await;
        blocked_on(addrs[1], 1).await;
        blocked_on(addrs[0], 1).await;
        let n: i64 = q(&mut connect(addrs[0]).await, &["CLIENT", "UNBLOCK", &id]).await;
        assert_eq!(n, 1);
        assert_eq!(&w.reply().await[..], b"$-1\r\n");
        blocked_on(addrs[1], 0).await;

        // A forwarded waiter whose client goes away is gone on the owner too: the next push
        // stays in the list.
        w.send(&resp(&["BRPOP", &k[1], "0"])).await;
        blocked_on(addrs[1], 1).await;
        drop(w);
        blocked_on(addrs[1], 0).await;
        blocked_on(addrs[0], 0).await;
        let _: i64 = q(&mut other, &["RPUSH", &k[1], "stays"]).await;
        let n: i64 = q(&mut other, &["LLEN", &k[1]]).await;
        assert_eq!(n, 1);

        // A timeout through a forwarding node.
        let mut w = Raw::connect(addrs[2]).await;
        let t = Instant::now();
        assert_eq!(&w.cmd(&["BLPOP", "none:{x}", "0.2"]).await[..], b"*-1\r\n");
        assert!(t.elapsed() >= Duration::from_millis(200));
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_blocked_on_a_draining_slot_is_served_by_the_new_owner() {
    // A drain on a loaded machine, with the other cluster tests running, can take long: a
    // generous limit of its own.
    let limit = Duration::from_secs(240);
    let body = async {
        let mut cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        // Node 2 will drain; its keys get clients blocked through the other two nodes, and
        // it holds other keys, so the drain has data to move.
        let k = map.keys_of(addrs[2], "queue:", 2);
        // BLMOVE's two keys share a slot, so they stay on one node wherever it goes.
        let k = [
            k[0].clone(),
            format!("{{{}}}src", k[1]),
            format!("{{{}}}dst", k[1]),
        ];
        let mut fill = connect(addrs[0]).await;
        for i in 0..2000 {
            let key = format!("fill:{i}");
            let _: () = q(&mut fill, &["SET", &key, "v"]).await;
        }
        let mut w0 = Raw::connect(addrs[0]).await;
        w0.send(&resp(&["BLPOP", &k[0], "0"])).await;
        let mut w1 = Raw::connect(addrs[1]).await;
        w1.send(&resp(&["BLMOVE", &k[1], &k[2], "LEFT", "RIGHT", "600"]))
            .await;
        blocked_on(addrs[2], 2).await;
        blocked_on(addrs[0], 1).await;
        blocked_on(addrs[1], 1).await;

        let DataNode::Process(mut victim) = cluster.nodes.remove(2) else {
            panic!("node 2 is a process");
        };
        victim.signal(libc::SIGTERM);
        let status = victim
            .wait_exit(Duration::from_secs(120))
            .await
            .unwrap_or_else(|| panic!("no exit after SIGTERM: {:?}", victim.log()));
        assert!(status.success(), "{status}: {:?}", victim.log());
        let survivors = &addrs[..2];
        wait_converged(survivors, 2).await;
        // Still blocked, now on the new owners: each client counts on the node it is
        // connected to, and again on its key's owner when that is the other node.
        let map = SlotMap::of(addrs[0]).await;
        let (o0, o1) = (map.owner(&k[0]), map.owner(&k[1]));
        blocked_on(addrs[0], 1 + usize::from(o1 == addrs[0])).await;
        blocked_on(addrs[1], 1 + usize::from(o0 == addrs[1])).await;

        let mut c = connect(addrs[1]).await;
        let _: i64 = q(&mut c, &["RPUSH", &k[0], "after-the-drain"]).await;
        assert_eq!(
            show(&w0.reply().await),
            show(pair(&k[0], "after-the-drain").as_bytes())
        );
        let _: i64 = q(&mut c, &["RPUSH", &k[1], "moved"]).await;
        assert_eq!(&w1.reply().await[..], b"$5\r\nmoved\r\n");
        let dst: Vec<String> = q(&mut c, &["LRANGE", &k[2], "0", "-1"]).await;
        assert_eq!(dst, ["moved"]);
        for key in &k[..2] {
            let n: i64 = q(&mut c, &["EXISTS", key]).await;
            assert_eq!(n, 0, "{key}: popped exactly once");
        }
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("test did not finish within its time limit");
}
