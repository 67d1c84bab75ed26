//! Multi-key commands on a plain connection: split by owner, run on every owner, merged like
//! one node would answer (counts summed, values in key order). MSETNX cannot be split
//! atomically, so across nodes it is refused like Redis Cluster refuses it.

use crate::util::*;
use chkv_common::key_slot;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_split_over_nodes_and_merge() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [a, b, c] = [0, 1, 2].map(|i| map.keys_of(addrs[i], "mk:", 2));
        let mut con = connect(addrs[0]).await;

        // MSET over three owners, then MGET in an order that interleaves them.
        let pairs = [
            (&b[0], "b0"),
            (&a[0], "a0"),
            (&c[0], "c0"),
            (&b[1], "b1"),
            (&c[1], "c1"),
        ];
        let mut mset = vec!["MSET"];
        for (k, v) in &pairs {
            mset.push(k);
            mset.push(v);
        }
        let () = q(&mut con, &mset).await;
        let got: Vec<Option<String>> = q(
            &mut con,
            &["MGET", &c[1], &a[1], &a[0], &b[0], &c[0], &b[1], &a[0]],
        )
        .await;
        let want = [
            Some("c1"),
            None,
            Some("a0"),
            Some("b0"),
            Some("c0"),
            Some("b1"),
            Some("a0"),
        ];
        assert_eq!(got, want.map(|v| v.map(String::from)));
        for (i, &addr) in addrs.iter().enumerate() {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            assert_eq!(n, [1, 2, 2][i], "keys stored on node {i}");
        }

        // Counts are summed; a key named twice counts twice for EXISTS, as in Redis.
        let n: i64 = q(&mut con, &["EXISTS", &a[0], &b[0], &c[0], &a[1], &b[0]]).await;
        assert_eq!(n, 4);
        let n: i64 = q(&mut con, &["TOUCH", &c[0], &b[1], &a[1], &a[0]]).await;
        assert_eq!(n, 3);
        let n: i64 = q(&mut con, &["DEL", &b[0], &a[0], &b[0], &a[1]]).await;
        assert_eq!(n, 2);
        let n: i64 = q(&mut con, &["UNLINK", &c[0], &c[1], &b[1], "mk:nowhere"]).await;
        assert_eq!(n, 3);
        let n: i64 = q(&mut con, &["EXISTS", &a[0], &b[0], &b[1], &c[0], &c[1]]).await;
        assert_eq!(n, 0);
        for &addr in &addrs {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            assert_eq!(n, 0, "everything deleted on {addr}");
        }

        // MSETNX is all-or-nothing, which a split cannot promise.
        assert_eq!(
            q_err(&mut con, &["MSETNX", &a[0], "1", &b[0], "2"]).await,
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
        let n: i64 = q(&mut con, &["EXISTS", &a[0], &b[0]]).await;
        assert_eq!(n, 0, "a refused MSETNX writes nothing");
        // Within one slot of another node it is forwarded whole.
        let tag = map.keys_of(addrs[2], "tag", 1).remove(0);
        let (x, y) = (format!("{{{tag}}}x"), format!("{{{tag}}}y"));
        let n: i64 = q(&mut con, &["MSETNX", &x, "1", &y, "2"]).await;
        assert_eq!(n, 1);
        let n: i64 = q(&mut con, &["MSETNX", &x, "3", &format!("{{{tag}}}z"), "4"]).await;
        assert_eq!(n, 0);
        let n: usize = q(&mut connect(addrs[2]).await, &["DBSIZE"]).await;
        assert_eq!(n, 2, "the tagged keys live on their owner");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_missing_its_last_value_gets_the_arity_error_across_nodes() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let [a, b] = [0, 1].map(|i| map.keys_of(addrs[i], "odd:", 1).remove(0));
        let mut plain = Raw::connect(addrs[0]).await;
        // As a single node answers, whichever nodes own the keys; the connection stays open.
        for cmd in ["MSET", "MSETNX"] {
            for args in [[cmd, &a, "1", &b], [cmd, &b, "1", &a], [cmd, &b, "1", &b]] {
                assert_eq!(
                    plain.cmd(&args).await,
                    format!(
                        "-ERR wrong number of arguments for '{}' command\r\n",
                        cmd.to_lowercase()
                    )
                    .as_str(),
                    "{args:?}"
                );
            }
        }
        assert_eq!(plain.cmd(&["EXISTS", &a, &b]).await, ":0\r\n");
        // A cluster-aware connection gets what Redis Cluster answers: keys first.
        let mut aware = Raw::connect(addrs[0]).await;
        assert_eq!(aware.cmd(&["CLUSTER", "REDIRECTS", "YES"]).await, "+OK\r\n");
        assert_eq!(
            aware.cmd(&["MSET", &a, "1", &b]).await,
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        cluster.shutdown().await;
    })
    .await;
}

/// Keys of one request on two nodes while a move is half done and the forwarding node's table
/// does not know it yet: X has handed slot `a` to Y (one batch of a handoff) and still owns
/// slot `b`, and the NameNode has not published that (here it is stopped, so it never does).
/// The forwarding node sends `a`'s and `b`'s keys to X together; X redirects them to Y for
/// `a`, and Y back to X for `b`. Before, the forwarding node followed those redirects with the
/// whole request, back and forth, until its retry budget ran out (`-TRYAGAIN` after 1,400
/// hops, seen under load in `a_drain_outlives_its_namenode_killed_mid_drain` when MSETs ran
/// during a join's handoffs). Now a splittable request goes to each node in shares where the
/// redirects say its keys are; one that cannot be split (MSETNX) is not applied anywhere and
/// gets `-TRYAGAIN` once the budget for the move to end is spent, and is served once the move
/// has put both slots on one node, the forwarding node's table lagging still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_keys_a_move_has_put_on_two_nodes_is_split_by_the_redirects() {
    bounded(async {
        let mut cluster = Cluster::start(3).await;
        cluster.settle(3).await;
        let addrs = cluster.addrs();
        let (f, x, y) = (addrs[0], addrs[1], addrs[2]);
        let map = SlotMap::of(f).await;
        let mut of_x = map.keys_of(x, "pp:", 64).into_iter();
        let ka = of_x.next().expect("a key of X");
        let a = key_slot(ka.as_bytes());
        let kb = of_x
            .find(|k| key_slot(k.as_bytes()) != a)
            .expect("a key of X in another slot");
        let kf = map.keys_of(f, "pp:", 1).remove(0);
        let epoch = cluster_info(&mut connect(f).await).await.epoch;
        cluster.stop_namenode().await;
        let DataNode::InProcess(xh) = &cluster.nodes[1] else {
            panic!("in-process nodes")
        };
        hand_over(&xh.node, epoch, a, &my_id(y).await, y).await;
        let mut con = connect(f).await;
        let () = q(&mut con, &["MSET", &ka, "va", &kb, "vb", &kf, "vf"]).await;
        let got: Vec<Option<String>> = q(&mut con, &["MGET", &kb, &kf, &ka]).await;
        assert_eq!(
            got,
            [Some("vb"), Some("vf"), Some("va")].map(|v| v.map(str::to_string))
        );
        let held: Option<String> = q(&mut connect(y).await, &["GET", &ka]).await;
        assert_eq!(held.as_deref(), Some("va"), "Y holds slot {a}");
        let held: Option<String> = q(&mut connect(x).await, &["GET", &kb]).await;
        assert_eq!(
            held.as_deref(),
            Some("vb"),
            "X holds slot {}",
            key_slot(kb.as_bytes())
        );
        let n: usize = q(&mut con, &["DEL", &ka, &kb]).await;
        assert_eq!(n, 2);
        let e = q_err(&mut con, &["MSETNX", &ka, "1", &kb, "2"]).await;
        assert!(e.starts_with("TRYAGAIN"), "{e}");
        let n: usize = q(&mut con, &["EXISTS", &ka, &kb]).await;
        assert_eq!(n, 0, "MSETNX applied nothing");
        // The move's next batch puts slot `b` on Y too. The forwarding node's table still
        // gives both slots to X, and X names only `a` in its redirect: the redirects lead
        // the request to Y, which now holds both.
        let b = key_slot(kb.as_bytes());
        let y_id = my_id(y).await;
        hand_over(&xh.node, epoch, b, &y_id, y).await;
        let n: usize = q(&mut con, &["MSETNX", &ka, "1", &kb, "2"]).await;
        assert_eq!(n, 1);
        let got: Vec<Option<String>> = q(&mut connect(y).await, &["MGET", &ka, &kb]).await;
        assert_eq!(got, [Some("1"), Some("2")].map(|v| v.map(str::to_string)));
        cluster.shutdown().await;
    })
    .await;
}

/// Has `node` hand `slot` to the node `to` at `to_addr` (as one batch of a handoff the
/// NameNode ordered in `epoch`), and waits until it has.
async fn hand_over(
    node: &std::sync::Arc<chkv_datanode::node::Node>,
    epoch: u64,
    slot: u16,
    to: &str,
    to_addr: std::net::SocketAddr,
) {
    chkv_datanode::migration::enqueue(
        node,
        chkv_datanode::handoff::MigrateOrder {
            epoch,
            slots: vec![(slot, slot)],
            to: chkv_common::ring::NodeId::new(to),
            to_addr,
            to_tls_port: None,
        },
    );
    let deadline = Instant::now() + CONVERGE_LIMIT;
    while node.released_to(slot).is_none() {
        assert!(Instant::now() < deadline, "slot {slot} was not handed over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
