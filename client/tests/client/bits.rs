//! Bitmaps, LCS and HyperLogLog through the typed API, on a 3-node cluster and standalone
//! over RESP3.

use std::time::Duration;

use chkv_client::{
    BitFieldOp, BitFieldType, BitOffset, BitOp, BitOverflow, BitUnit, Bytes, Error, LcsMatch,
};

use crate::util::{bounded, start_datanode, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitmaps_lcs_and_hyperloglog_across_nodes() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;

        // Keys spread over the nodes: each goes to its owner.
        for i in 0..30u64 {
            let key = format!("bits:{i}");
            assert!(!c.setbit(&key, i * 8 + 7, true).await.expect("setbit"));
            assert!(c.getbit(&key, i * 8 + 7).await.expect("getbit"));
            assert_eq!(c.bitcount(&key).await.expect("bitcount"), 1);
            assert_eq!(
                c.bitpos(&key, true).await.expect("bitpos"),
                (i * 8 + 7) as i64
            );
            let hll = format!("hll:{i}");
            assert!(c.pfadd(&hll, ["a", "b", "c"]).await.expect("pfadd"));
            assert_eq!(c.pfcount([&hll]).await.expect("pfcount"), 3);
        }
        assert!(c.setbit("bits:0", 7, false).await.expect("setbit"));
        c.set("s", "foobar").await.expect("set");
        assert_eq!(
            c.bitcount_range("s", 1, 1, BitUnit::Byte)
                .await
                .expect("range"),
            6
        );
        assert_eq!(
            c.bitcount_range("s", 5, 30, BitUnit::Bit)
                .await
                .expect("range"),
            17
        );
        assert_eq!(
            c.bitpos_range("s", false, 0, Some(-1), BitUnit::Bit)
                .await
                .expect("pos"),
            0
        );

        let u8t = BitFieldType::unsigned(8);
        let got = c
            .bitfield(
                "bf",
                &[
                    BitFieldOp::Set(u8t, BitOffset::Index(1), 250),
                    BitFieldOp::Overflow(BitOverflow::Fail),
                    BitFieldOp::IncrBy(u8t, BitOffset::Bit(8), 10),
                    BitFieldOp::Overflow(BitOverflow::Sat),
                    BitFieldOp::IncrBy(u8t, BitOffset::Bit(8), 10),
                    BitFieldOp::Get(BitFieldType::signed(8), BitOffset::Bit(8)),
                ],
            )
            .await
            .expect("bitfield");
        assert_eq!(got, vec![Some(0), None, Some(255), Some(-1)]);
        assert_eq!(
            c.bitfield_ro("bf", &[(u8t, BitOffset::Index(1))])
                .await
                .expect("ro"),
            vec![255]
        );

        // Multi-key commands: one slot by hash tag, CROSSSLOT otherwise (as in Redis Cluster).
        c.set("{t}a", "\x0f").await.expect("set");
        c.set("{t}b", "\x3c").await.expect("set");
        assert_eq!(
            c.bitop(BitOp::And, "{t}d", ["{t}a", "{t}b"])
                .await
                .expect("bitop"),
            1
        );
        assert_eq!(
            c.get("{t}d").await.expect("get").as_deref(),
            Some(&b"\x0c"[..])
        );
        assert_eq!(c.bitop(BitOp::Not, "{t}d", ["{t}a"]).await.expect("not"), 1);
        let cross = c.bitop(BitOp::Or, "x{1}", ["y{2}", "z{3}"]).await;
        assert!(
            matches!(&cross, Err(Error::Server(e)) if e.code() == "CROSSSLOT"),
            "{cross:?}"
        );

        c.set("{l}1", "ohmytext").await.expect("set");
        c.set("{l}2", "mynewtext").await.expect("set");
        assert_eq!(
            c.lcs("{l}1", "{l}2").await.expect("lcs"),
            Bytes::from_static(b"mytext")
        );
        assert_eq!(c.lcs_len("{l}1", "{l}2").await.expect("lcs len"), 6);
        let idx = c.lcs_idx("{l}1", "{l}2", 4, true).await.expect("lcs idx");
        assert_eq!(idx.len, 6);
        assert_eq!(
            idx.matches,
            vec![LcsMatch {
                first: (4, 7),
                second: (5, 8),
                len: Some(4)
            }]
        );

        for (k, from) in [("{h}1", 0), ("{h}2", 500)] {
            let elems: Vec<String> = (from..from + 1000).map(|i| format!("e{i}")).collect();
            c.pfadd(k, &elems).await.expect("pfadd");
        }
        let union = c.pfcount(["{h}1", "{h}2"]).await.expect("pfcount");
        assert!((1470..=1530).contains(&union), "{union}");
        c.pfmerge("{h}m", ["{h}1", "{h}2"]).await.expect("pfmerge");
        assert_eq!(c.pfcount(["{h}m"]).await.expect("pfcount"), union);
        let cross = c.pfcount(["hll:1", "hll:2", "hll:3"]).await;
        assert!(
            matches!(&cross, Err(Error::Server(e)) if e.code() == "CROSSSLOT"),
            "{cross:?}"
        );
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lcs_idx_over_resp3() {
    bounded(Duration::from_secs(180), async {
        let node = start_datanode(None).await;
        let c = crate::util::builder()
            .resp3(true)
            .connect_standalone(node.addr())
            .await
            .expect("standalone connect");
        c.set("a", "ohmytext").await.expect("set");
        c.set("b", "mynewtext").await.expect("set");
        let idx = c.lcs_idx("a", "b", 0, false).await.expect("lcs idx");
        assert_eq!(idx.len, 6);
        assert_eq!(idx.matches.len(), 2);
        assert_eq!(idx.matches[1].first, (2, 3));
        drop(c);
        node.shutdown().await;
    })
    .await
}
