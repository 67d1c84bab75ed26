//! Blocking sorted-set pops on a cluster of real DataNode processes: BZPOPMIN, BZPOPMAX and
//! BZMPOP sent to a node that does not own their key wait on the owner and are served by a
//! ZADD through any node; CLIENT UNBLOCK reaches the owner; keys on two nodes are
//! `-CROSSSLOT`; and a client blocked on a key whose slot moves in a drain is served by the
//! new owner, exactly once.

use crate::util::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_zset_pops_follow_their_key_across_nodes_and_a_drain() {
    // A drain on a loaded machine, with the other cluster tests running, can take long: a
    // generous limit of its own.
    let limit = Duration::from_secs(240);
    let body = async {
        let mut cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let on1 = map.keys_of(addrs[1], "board:", 2);
        let on2 = map.keys_of(addrs[2], "delayed:", 2);

        // Blocked through node 0 on node 1's key: served by a ZADD through node 2.
        let mut w = Raw::connect(addrs[0]).await;
        w.send(&resp(&["BZPOPMIN", &on1[0], "0"])).await;
        blocked_on(addrs[0], 1).await;
        blocked_on(addrs[1], 1).await;
        let mut other = connect(addrs[2]).await;
        let n: i64 = q(&mut other, &["ZADD", &on1[0], "2", "b", "1", "a"]).await;
        assert_eq!(n, 2);
        assert_eq!(show(&w.reply().await), show(&resp(&[&on1[0], "a", "1"])));
        blocked_on(addrs[0], 0).await;
        blocked_on(addrs[1], 0).await;
        let left: Vec<String> = q(&mut other, &["ZRANGE", &on1[0], "0", "-1"]).await;
        assert_eq!(left, ["b"]);

        // CLIENT UNBLOCK on the node the client is connected to ends it on the owner.
        let id = {
            let r = w.cmd(&["CLIENT", "ID"]).await;
            String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
        };
        w.send(&resp(&["BZMPOP", "0", "1", &on1[1], "MAX", "COUNT", "3"]))
            .await;
        blocked_on(addrs[1], 1).await;
        blocked_on(addrs[0], 1).await;
        let n: i64 = q(&mut connect(addrs[0]).await, &["CLIENT", "UNBLOCK", &id]).await;
        assert_eq!(n, 1);
        assert_eq!(&w.reply().await[..], b"*-1\r\n");
        blocked_on(addrs[1], 0).await;

        // Keys on two nodes cannot be waited on together; a timeout through a forwarding
        // node answers nil.
        let r = w.cmd(&["BZPOPMAX", &on1[0], &on2[0], "0"]).await;
        assert!(r.starts_with(b"-CROSSSLOT"), "{}", show(&r));
        assert_eq!(&w.cmd(&["BZPOPMAX", &on2[1], "0.2"]).await[..], b"*-1\r\n");

        // Clients blocked on node 2's keys through the other nodes; node 2 holds other keys,
        // so its drain has data to move.
        let mut fill = connect(addrs[0]).await;
        for i in 0..2000 {
            let key = format!("fill:{i}");
            let _: () = q(&mut fill, &["SET", &key, "v"]).await;
        }
        let mut w0 = Raw::connect(addrs[0]).await;
        w0.send(&resp(&["BZPOPMIN", &on2[0], "0"])).await;
        let mut w1 = Raw::connect(addrs[1]).await;
        w1.send(&resp(&["BZMPOP", "600", "1", &on2[1], "MIN", "COUNT", "2"]))
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
        let (o0, o1) = (map.owner(&on2[0]), map.owner(&on2[1]));
        blocked_on(addrs[0], 1 + usize::from(o1 == addrs[0])).await;
        blocked_on(addrs[1], 1 + usize::from(o0 == addrs[1])).await;

        let mut c = connect(addrs[1]).await;
        let _: i64 = q(&mut c, &["ZADD", &on2[0], "5", "after-the-drain"]).await;
        assert_eq!(
            show(&w0.reply().await),
            show(&resp(&[&on2[0], "after-the-drain", "5"]))
        );
        let _: i64 = q(&mut c, &["ZADD", &on2[1], "1", "x", "2", "y", "3", "z"]).await;
        let want = format!(
            "*2\r\n${}\r\n{}\r\n*2\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$1\r\ny\r\n$1\r\n2\r\n",
            on2[1].len(),
            on2[1]
        );
        assert_eq!(show(&w1.reply().await), show(want.as_bytes()));
        let n: i64 = q(&mut c, &["EXISTS", &on2[0]]).await;
        assert_eq!(n, 0, "popped exactly once");
        let left: Vec<String> = q(&mut c, &["ZRANGE", &on2[1], "0", "-1"]).await;
        assert_eq!(left, ["z"]);
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("test did not finish within its time limit");
}
