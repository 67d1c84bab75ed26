//! Sorted sets and GEO through the typed API, on a 3-node cluster and standalone over RESP3.

use std::time::Duration;

use chkv_client::{
    Aggregate, Bytes, Error, GeoBy, GeoFrom, GeoSearchOptions, GeoUnit, ZAddOptions,
};

use crate::util::{bounded, start_datanode, Cluster};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_sets_and_geo_across_nodes() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;

        // Leaderboards spread over the nodes: each goes to its owner.
        for i in 0..30 {
            let key = format!("board:{i}");
            let n = c
                .zadd(&key, [(1.0, "ada"), (3.0, "bob"), (2.0, "cy")])
                .await
                .expect("zadd");
            assert_eq!(n, 3);
            assert_eq!(c.zincrby(&key, 2.5, "ada").await.expect("zincrby"), 3.5);
            assert_eq!(
                c.zrank(&key, "ada", true).await.expect("zrank"),
                Some((0, 3.5))
            );
            assert_eq!(c.zcard(&key).await.expect("zcard"), 3);
        }
        let key = "board:0";
        assert_eq!(
            c.zrange(key, 0, -1, false).await.expect("zrange"),
            [b("cy"), b("bob"), b("ada")]
        );
        assert_eq!(
            c.zrangebyscore(key, "(2", "+inf", true, Some((0, 1)))
                .await
                .expect("by score"),
            [(b("ada"), 3.5)]
        );
        assert_eq!(c.zscore(key, "nobody").await.expect("zscore"), None);
        assert_eq!(
            c.zmscore(key, ["ada", "x"]).await.expect("zmscore"),
            [Some(3.5), None]
        );
        assert_eq!(
            c.zadd_with(
                key,
                ZAddOptions::new().xx().ch(),
                [(9.0, "cy"), (1.0, "new")]
            )
            .await
            .expect("zadd xx ch"),
            1
        );
        assert_eq!(c.zcount(key, "-inf", "(9").await.expect("zcount"), 2);
        assert_eq!(
            c.zpop(key, 1, true).await.expect("zpopmax"),
            [(b("cy"), 9.0)]
        );
        let (next, items) = c.zscan(key, 0, None, None).await.expect("zscan");
        assert_eq!((next, items.len()), (0, 2));
        assert_eq!(
            c.zremrangebyscore(key, "-inf", "+inf")
                .await
                .expect("zrem range"),
            2
        );

        // Several keys in one slot: the algebra and the stores.
        c.zadd("{t}a", [(1.0, "x"), (2.0, "y")])
            .await
            .expect("zadd");
        c.zadd("{t}b", [(10.0, "y"), (20.0, "z")])
            .await
            .expect("zadd");
        assert_eq!(
            c.zunion(["{t}a", "{t}b"], &[1.0, 2.0], Aggregate::Sum)
                .await
                .expect("zunion"),
            [(b("x"), 1.0), (b("y"), 22.0), (b("z"), 40.0)]
        );
        assert_eq!(
            c.zinter(["{t}a", "{t}b"], &[], Aggregate::Max)
                .await
                .expect("zinter"),
            [(b("y"), 10.0)]
        );
        assert_eq!(
            c.zdiff(["{t}a", "{t}b"]).await.expect("zdiff"),
            [(b("x"), 1.0)]
        );
        assert_eq!(
            c.zunionstore("{t}u", ["{t}a", "{t}b"], &[], Aggregate::Min)
                .await
                .expect("zunionstore"),
            3
        );
        assert_eq!(
            c.zintercard(["{t}a", "{t}u"], 0).await.expect("zintercard"),
            2
        );
        assert_eq!(
            c.zrangestore("{t}r", "{t}u", 0, 0)
                .await
                .expect("zrangestore"),
            1
        );
        assert_eq!(
            c.zmpop(["{t}none", "{t}r"], false, 5).await.expect("zmpop"),
            Some((b("{t}r"), vec![(b("x"), 1.0)]))
        );
        assert_eq!(c.zmpop(["{t}r"], false, 1).await.expect("zmpop"), None);
        // Keys in different slots: Redis Cluster's refusal, from the server.
        assert!(matches!(
            c.zunion(["{t}a", "{other}b"], &[], Aggregate::Sum).await,
            Err(Error::Server(_))
        ));

        // GEO: the scores and distances redis-server gives.
        let n = c
            .geoadd(
                "Sicily",
                [
                    (13.361389, 38.115556, "Palermo"),
                    (15.087269, 37.502669, "Catania"),
                ],
            )
            .await
            .expect("geoadd");
        assert_eq!(n, 2);
        assert_eq!(
            c.zscore("Sicily", "Palermo").await.expect("zscore"),
            Some(3479099956230698.0)
        );
        let d = c
            .geodist("Sicily", "Palermo", "Catania", GeoUnit::Km)
            .await
            .expect("geodist");
        assert_eq!(d, Some(166.2742));
        assert_eq!(
            c.geohash("Sicily", ["Palermo", "x"])
                .await
                .expect("geohash"),
            [Some("sqc8b49rny0".to_string()), None]
        );
        let opts = GeoSearchOptions {
            ascending: Some(true),
            ..GeoSearchOptions::default()
        };
        let near = c
            .geosearch_with(
                "Sicily",
                GeoFrom::LonLat(15.0, 37.0),
                GeoBy::Radius(200.0, GeoUnit::Km),
                opts,
            )
            .await
            .expect("geosearch");
        assert_eq!(near.len(), 2);
        assert_eq!(
            (&near[0].member[..], near[0].distance),
            (&b"Catania"[..], 56.4413)
        );
        assert_eq!(near[1].hash, 3479099956230698);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_sets_over_resp3() {
    bounded(Duration::from_secs(240), async {
        let node = start_datanode(None).await;
        let c = crate::util::builder()
            .resp3(true)
            .connect_standalone(node.addr())
            .await
            .expect("connect");
        c.zadd("z", [(0.1, "a"), (f64::INFINITY, "b"), (-2.0, "c")])
            .await
            .expect("zadd");
        // Doubles arrive as RESP3 doubles, pairs as nested arrays.
        assert_eq!(
            c.zrange_withscores("z", 0, -1, false)
                .await
                .expect("zrange"),
            [(b("c"), -2.0), (b("a"), 0.1), (b("b"), f64::INFINITY)]
        );
        assert_eq!(c.zrandmember("z", -2).await.expect("zrandmember").len(), 2);
        assert_eq!(
            c.zpop("z", 2, false).await.expect("zpopmin"),
            [(b("c"), -2.0), (b("a"), 0.1)]
        );
        assert_eq!(c.geopos("z", ["b", "x"]).await.expect("geopos").len(), 2);
        drop(c);
        node.shutdown().await;
    })
    .await;
}
