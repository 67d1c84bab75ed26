//! Bitmaps, LCS and HyperLogLog on a cluster of DataNode processes: single-key commands reach
//! their key's owner through any node; BITOP, LCS and PFMERGE run whole on the node owning
//! all their keys and are refused with `-CROSSSLOT` across nodes; PFCOUNT of keys on several
//! nodes is gathered on a plain connection, `-CROSSSLOT` on a cluster-aware one.

use crate::util::*;
use chkv_common::key_slot;

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_and_hll_commands_route_by_their_keys() {
    bounded(async {
        let cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let keys: Vec<Vec<String>> = (0..3).map(|i| map.keys_of(addrs[i], "bk:", 2)).collect();
        let mut con = connect(addrs[0]).await;

        // Single-key commands, through node 0, land on each key's owner.
        for (i, owned) in keys.iter().enumerate() {
            let k = &owned[0];
            let old: i64 = q(&mut con, &["SETBIT", k, "9", "1"]).await;
            assert_eq!(old, 0);
            let bit: i64 = q(&mut con, &["GETBIT", k, "9"]).await;
            assert_eq!(bit, 1);
            let got: Vec<i64> = q(&mut con, &["BITFIELD_RO", k, "GET", "u8", "8"]).await;
            assert_eq!(got, vec![64]);
            let h = &owned[1];
            let added: i64 = q(&mut con, &["PFADD", h, "a", "b"]).await;
            assert_eq!(added, 1);
            let mut owner = connect(addrs[i]).await;
            let n: i64 = q(&mut owner, &["EXISTS", k, h]).await;
            assert_eq!(n, 2, "{k} and {h} stored on their owner {}", addrs[i]);
        }

        // Multi-key commands across nodes: refused, and nothing written.
        let (a, b) = (&keys[1][0], &keys[2][0]);
        assert_eq!(
            q_err(&mut con, &["BITOP", "OR", "bk:dest", a, b]).await,
            CROSSSLOT
        );
        assert_eq!(q_err(&mut con, &["LCS", a, b]).await, CROSSSLOT);
        let (h1, h2) = (&keys[1][1], &keys[2][1]);
        // PFCOUNT reads only: the HyperLogLogs are gathered from their owners and counted
        // together (h1 and h2 each hold a and b).
        let n: i64 = q(&mut con, &["PFCOUNT", h1, h2, &keys[0][1], "bk:none"]).await;
        assert_eq!(n, 2);
        let _: i64 = q(&mut con, &["PFADD", h2, "c"]).await;
        let n: i64 = q(&mut con, &["PFCOUNT", h1, h2]).await;
        assert_eq!(n, 3);
        assert_eq!(
            q_err(&mut con, &["PFCOUNT", h1, a]).await,
            "WRONGTYPE Key is not a valid HyperLogLog string value."
        );
        assert_eq!(
            q_err(&mut con, &["PFMERGE", "bk:m", h1, h2]).await,
            CROSSSLOT
        );
        let n: i64 = q(&mut con, &["EXISTS", "bk:dest", "bk:m"]).await;
        assert_eq!(n, 0);

        // All keys on one other node (a hash tag it owns): forwarded whole. BITOP's first key
        // is its destination, the third argument.
        let tag = map.keys_of(addrs[2], "tag", 1).remove(0);
        let k = |s: &str| format!("{{{tag}}}{s}");
        let () = q(
            &mut con,
            &["MSET", &k("x"), "ohmytext", &k("y"), "mynewtext"],
        )
        .await;
        let n: i64 = q(&mut con, &["BITOP", "AND", &k("d"), &k("x"), &k("y")]).await;
        assert_eq!(n, 9);
        let lcs: String = q(&mut con, &["LCS", &k("x"), &k("y")]).await;
        assert_eq!(lcs, "mytext");
        let _: i64 = q(&mut con, &["PFADD", &k("h1"), "a", "b", "c"]).await;
        let _: i64 = q(&mut con, &["PFADD", &k("h2"), "c", "d"]).await;
        let n: i64 = q(&mut con, &["PFCOUNT", &k("h1"), &k("h2")]).await;
        assert_eq!(n, 4);
        let () = q(&mut con, &["PFMERGE", &k("m"), &k("h1"), &k("h2")]).await;
        let mut owner = connect(addrs[2]).await;
        let n: i64 = q(&mut owner, &["EXISTS", &k("d"), &k("m")]).await;
        assert_eq!(n, 2, "the results are on the tag's owner");

        // A cluster-aware connection: MOVED to the owner, CROSSSLOT across slots.
        let mut aware = Raw::connect(addrs[0]).await;
        assert_eq!(aware.cmd(&["CLUSTER", "REDIRECTS", "YES"]).await, "+OK\r\n");
        let moved = aware.cmd(&["BITOP", "AND", &k("d"), &k("x")]).await;
        let want = format!("-MOVED {} {}\r\n", key_slot(k("d").as_bytes()), addrs[2]);
        assert_eq!(show(&moved), show(want.as_bytes()));
        let cross = aware.cmd(&["PFCOUNT", &keys[0][1], &k("h1")]).await;
        assert_eq!(show(&cross), show(format!("-{CROSSSLOT}\r\n").as_bytes()));
        cluster.shutdown().await;
    })
    .await
}
