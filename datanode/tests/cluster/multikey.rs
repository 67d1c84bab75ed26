//! Multi-key commands on a plain connection: split by owner, run on every owner, merged like
//! one node would answer (counts summed, values in key order). MSETNX cannot be split
//! atomically, so across nodes it is refused like Redis Cluster refuses it.

use crate::util::*;

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
