//! Sorted sets and GEO through the `redis` crate and raw RESP: typed replies, exact RESP2
//! and RESP3 shapes, keyspace notifications, memory accounting, DUMP/RESTORE, and GEO values
//! that match redis-server's.

use crate::util::*;
use redis::AsyncCommands;

#[tokio::test]
async fn sorted_sets_through_the_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let n: i64 = c
            .zadd_multiple("board", &[(10, "ada"), (30, "bob"), (20, "cy")])
            .await
            .expect("ZADD");
        assert_eq!(n, 3);
        let top: Vec<(String, f64)> = c
            .zrevrange_withscores("board", 0, 1)
            .await
            .expect("ZREVRANGE");
        assert_eq!(top, [("bob".to_string(), 30.0), ("cy".to_string(), 20.0)]);
        let s2: f64 = c.zincr("board", "ada", 25.5).await.expect("ZINCRBY");
        assert_eq!(s2, 35.5);
        let rank: Option<i64> = c.zrank("board", "ada").await.expect("ZRANK");
        assert_eq!(rank, Some(2));
        let mid: Vec<String> = c
            .zrangebyscore("board", 15, "(35.5")
            .await
            .expect("ZRANGEBYSCORE");
        assert_eq!(mid, ["cy", "bob"]);
        let n: i64 = c.zcount("board", "-inf", "+inf").await.expect("ZCOUNT");
        assert_eq!(n, 3);
        let popped: Vec<(String, f64)> = c.zpopmin("board", 1).await.expect("ZPOPMIN");
        assert_eq!(popped, [("cy".to_string(), 20.0)]);
        let _: i64 = c.zadd("{g}b", "x", 1).await.expect("ZADD");
        let _: i64 = c.zadd("{g}a", "x", 2).await.expect("ZADD");
        let n: i64 = c
            .zunionstore_weights("{g}u", &[("{g}a", 1), ("{g}b", 10)])
            .await
            .expect("ZUNIONSTORE");
        assert_eq!(n, 1);
        let x: f64 = c.zscore("{g}u", "x").await.expect("ZSCORE");
        assert_eq!(x, 12.0);
        assert_eq!(
            q_err(c, &["ZADD", "board", "NX", "XX", "1", "a"]).await,
            "ERR XX and NX options at the same time are not compatible"
        );
        assert_eq!(
            q_err(c, &["GET", "board"]).await,
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(
            val(c, &["TYPE", "board"]).await,
            redis::Value::SimpleString("zset".into())
        );
    })
    .await
}

#[tokio::test]
async fn reply_shapes_in_both_protocols() {
    bounded(async {
        let s = start().await;
        let mut r = Raw::connect(s.addr()).await;
        r.cmd(&["ZADD", "z", "1", "a", "0.1", "b"]).await;
        // Scores print as redis-server 7.0 prints them (%.17g).
        assert_eq!(
            r.cmd(&["ZSCORE", "z", "b"]).await,
            "$19\r\n0.10000000000000001\r\n"
        );
        assert_eq!(
            r.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
            "*4\r\n$1\r\nb\r\n$19\r\n0.10000000000000001\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(r.cmd(&["ZPOPMIN", "none"]).await, "*0\r\n");
        assert_eq!(r.cmd(&["ZMPOP", "1", "none", "MIN"]).await, "*-1\r\n");
        r.cmd(&["HELLO", "3"]).await;
        assert_eq!(r.cmd(&["ZSCORE", "z", "a"]).await, ",1\r\n");
        assert_eq!(
            r.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
            "*2\r\n*2\r\n$1\r\nb\r\n,0.10000000000000001\r\n*2\r\n$1\r\na\r\n,1\r\n"
        );
        // ZPOPMIN without a count is flat, with one nested.
        assert_eq!(
            r.cmd(&["ZPOPMIN", "z"]).await,
            "*2\r\n$1\r\nb\r\n,0.10000000000000001\r\n"
        );
        assert_eq!(
            r.cmd(&["ZPOPMAX", "z", "5"]).await,
            "*1\r\n*2\r\n$1\r\na\r\n,1\r\n"
        );
        assert_eq!(r.cmd(&["ZSCORE", "z", "a"]).await, "_\r\n");
    })
    .await
}

#[tokio::test]
async fn keyspace_events_of_sorted_sets() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        // A: every class; n: key creation ("new" is not part of A).
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"])
            .await;
        let mut sub = Raw::connect(s.addr()).await;
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]).await;
        let mut events = Vec::new();
        for cmd in [
            &["ZADD", "{k}z", "1", "a", "2", "b", "3", "c"][..],
            &["ZINCRBY", "{k}z", "1", "a"],
            &["ZREM", "{k}z", "a"],
            &["ZPOPMIN", "{k}z"],
            &["ZUNIONSTORE", "{k}u", "1", "{k}z"],
            &["ZREMRANGEBYSCORE", "{k}z", "-inf", "+inf"],
            &["GEOADD", "{k}g", "13.361389", "38.115556", "Palermo"],
        ] {
            c.cmd(cmd).await;
        }
        let want = [
            "new",
            "zadd",
            "zincr",
            "zrem",
            "zpopmin",
            "new",
            "zunionstore",
            "zremrangebyscore",
            "del",
            "new",
            "zadd",
        ];
        for _ in want {
            let msg = sub.reply().await;
            let text = String::from_utf8_lossy(&msg).into_owned();
            let event = text
                .split("__keyevent@0__:")
                .nth(2)
                .and_then(|t| t.split('\r').next())
                .unwrap_or_default()
                .to_string();
            events.push(event);
        }
        assert_eq!(events, want);
    })
    .await
}

#[tokio::test]
async fn memory_is_charged_and_given_back() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let used = |info: String| info_field::<i64>(&info, "used_memory");
        let base = used(q(c, &["INFO", "memory"]).await);
        for chunk in 0..20 {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg("big");
            for i in 0..1000 {
                let n = chunk * 1000 + i;
                zadd.arg((n * 7919) % 20_000).arg(format!("member:{n}"));
            }
            let _: i64 = zadd.query_async(c).await.expect("ZADD");
        }
        let enc: String = q(c, &["OBJECT", "ENCODING", "big"]).await;
        assert_eq!(enc, "skiplist");
        let usage: i64 = q(c, &["MEMORY", "USAGE", "big"]).await;
        // About 60 bytes a member: well under Valkey's 94.
        assert!((20_000 * 30..20_000 * 100).contains(&usage), "{usage}");
        let grown = used(q(c, &["INFO", "memory"]).await);
        assert!(grown - base >= usage - 1024, "{grown} - {base} vs {usage}");
        // Popping most of it gives memory back.
        let _: Vec<String> = q(c, &["ZPOPMIN", "big", "19000"]).await;
        let shrunk: i64 = q(c, &["MEMORY", "USAGE", "big"]).await;
        assert!(shrunk * 5 < usage, "{shrunk} vs {usage}");
        let n: i64 = q(c, &["UNLINK", "big"]).await;
        assert_eq!(n, 1);
        let after = used(q(c, &["INFO", "memory"]).await);
        assert!(after <= base, "{after} <= {base}");
    })
    .await
}

#[tokio::test]
async fn dump_restore_and_copy() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let _: i64 = q(c, &["ZADD", "z", "1", "a", "2.5", "b", "inf", "c"]).await;
        let dump: Vec<u8> = q(c, &["DUMP", "z"]).await;
        // Byte for byte what redis-server dumps for the same skip list.
        assert_eq!(dump[0], 5);
        let () = redis::cmd("RESTORE")
            .arg("z2")
            .arg(0)
            .arg(&dump)
            .query_async(c)
            .await
            .expect("RESTORE");
        let all: Vec<(String, f64)> = c.zrange_withscores("z2", 0, -1).await.expect("ZRANGE");
        assert_eq!(
            all,
            [
                ("a".into(), 1.0),
                ("b".into(), 2.5),
                ("c".into(), f64::INFINITY)
            ]
        );
        let n: i64 = q(c, &["COPY", "z", "z3"]).await;
        assert_eq!(n, 1);
        let _: i64 = q(c, &["ZREM", "z3", "a"]).await;
        let n: i64 = q(c, &["ZCARD", "z"]).await;
        assert_eq!(n, 3, "a copy is independent of its source");
    })
    .await
}

#[tokio::test]
async fn geo_through_the_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let n: i64 = q(
            c,
            &[
                "GEOADD",
                "Sicily",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
        )
        .await;
        assert_eq!(n, 2);
        // The score redis-server gives the same point.
        let score: i64 = q(c, &["ZSCORE", "Sicily", "Palermo"]).await;
        assert_eq!(score, 3479099956230698);
        let d: String = q(c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]).await;
        assert_eq!(d, "166.2742");
        let near: Vec<Vec<String>> = q(
            c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "ASC",
                "WITHDIST",
            ],
        )
        .await;
        assert_eq!(near, [["Catania", "56.4413"], ["Palermo", "190.4424"]]);
        let pos: Vec<Vec<String>> = q(c, &["GEOPOS", "Sicily", "Palermo"]).await;
        assert_eq!(pos, [["13.36138933897018433", "38.11555639549629859"]]);
    })
    .await
}

/// A BZPOPMIN reply: key, member, score.
type Popped = Option<(String, String, f64)>;

#[tokio::test]
async fn blocking_pops_are_served_by_a_zadd_from_another_connection() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        // Data already there: the typed crate call answers at once.
        let _: i64 = c.zadd("ready", "m", 7).await.expect("ZADD");
        let got: Popped = c.bzpopmin("ready", 0.0).await.expect("BZPOPMIN");
        assert_eq!(got, Some(("ready".into(), "m".into(), 7.0)));
        let got: Popped = c.bzpopmax("ready", 0.05).await.expect("BZPOPMAX");
        assert_eq!(got, None, "a fractional timeout ends with nil");

        // Blocked in order on one key: served oldest first by one variadic ZADD.
        let mut waiters = Vec::new();
        for (i, cmd) in [
            &["BZPOPMIN", "q", "0"][..],
            &["BZPOPMAX", "none", "q", "0"],
            &["BZMPOP", "0", "1", "q", "MIN", "COUNT", "2"],
        ]
        .into_iter()
        .enumerate()
        {
            let mut w = Raw::connect(s.addr()).await;
            w.send(&resp(cmd)).await;
            blocked_clients(s.addr(), i + 1).await;
            waiters.push(w);
        }
        let list: String = q(c, &["CLIENT", "LIST"]).await;
        assert!(
            list.lines()
                .any(|l| l.contains("flags=b") && l.contains("cmd=bzpopmax")),
            "{list}"
        );
        let n: i64 = q(
            c,
            &[
                "ZADD", "q", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
            ],
        )
        .await;
        assert_eq!(n, 5);
        assert_eq!(
            show(&waiters[0].reply().await),
            show(&resp(&["q", "a", "1"]))
        );
        assert_eq!(
            show(&waiters[1].reply().await),
            show(&resp(&["q", "e", "5"]))
        );
        assert_eq!(
            show(&waiters[2].reply().await),
            show(
                b"*2\r\n$1\r\nq\r\n*2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n"
            )
        );
        blocked_clients(s.addr(), 0).await;
        let left: Vec<String> = c.zrange("q", 0, -1).await.expect("ZRANGE");
        assert_eq!(left, ["d"]);

        // RESP3: the score is a double, a timeout a null.
        let mut w = Raw::connect(s.addr()).await;
        assert_eq!(&w.cmd(&["HELLO", "3"]).await[..2], b"%7");
        assert_eq!(&w.cmd(&["BZPOPMIN", "none", "0.01"]).await[..], b"_\r\n");
        assert_eq!(
            &w.cmd(&["BZMPOP", "0.01", "1", "none", "MAX"]).await[..],
            b"_\r\n"
        );
        w.send(&resp(&["BZPOPMIN", "r3", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        let _: i64 = c.zadd("r3", "x", 1.5).await.expect("ZADD");
        assert_eq!(
            &w.reply().await[..],
            b"*3\r\n$2\r\nr3\r\n$1\r\nx\r\n,1.5\r\n"
        );
        let mut w2 = Raw::connect(s.addr()).await;
        assert_eq!(&w2.cmd(&["BZPOPMAX", "none", "0.01"]).await[..], b"*-1\r\n");

        // CLIENT UNBLOCK, and a client that goes away takes nothing.
        let id = {
            let r = w2.cmd(&["CLIENT", "ID"]).await;
            String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
        };
        w2.send(&resp(&["BZMPOP", "0", "1", "u", "MIN"])).await;
        blocked_clients(s.addr(), 1).await;
        let n: i64 = q(c, &["CLIENT", "UNBLOCK", &id]).await;
        assert_eq!(n, 1);
        assert_eq!(&w2.reply().await[..], b"*-1\r\n");
        w2.send(&resp(&["BZPOPMIN", "u", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        drop(w2);
        blocked_clients(s.addr(), 0).await;
        let _: i64 = c.zadd("u", "kept", 1).await.expect("ZADD");
        let n: i64 = c.zcard("u").await.expect("ZCARD");
        assert_eq!(n, 1);

        // Inside MULTI they answer at once; in a script they are refused.
        let (a, b): (Popped, Popped) = redis::pipe()
            .atomic()
            .cmd("BZPOPMIN")
            .arg("u")
            .arg(0)
            .cmd("BZPOPMIN")
            .arg("u")
            .arg(0)
            .query_async(c)
            .await
            .expect("MULTI/EXEC");
        assert_eq!(a, Some(("u".into(), "kept".into(), 1.0)));
        assert_eq!(b, None);
        let script = "return redis.call('BZPOPMIN', KEYS[1], 0)";
        let e = q_err(c, &["EVAL", script, "1", "u"]).await;
        assert!(
            e.starts_with("ERR This Redis command is not allowed from script"),
            "{e}"
        );
    })
    .await
}

#[tokio::test]
async fn blocking_pops_emit_keyspace_events_when_served() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let _: () = q(c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]).await;
        let mut sub = Raw::connect(s.addr()).await;
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]).await;
        let mut w = Raw::connect(s.addr()).await;
        w.send(&resp(&["BZPOPMAX", "z", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        let _: i64 = c.zadd("z", "a", 1).await.expect("ZADD");
        assert_eq!(show(&w.reply().await), show(&resp(&["z", "a", "1"])));
        let mut events = Vec::new();
        for _ in 0..3 {
            let msg = sub.reply().await;
            let text = String::from_utf8_lossy(&msg).into_owned();
            events.push(
                text.split("__keyevent@0__:")
                    .nth(2)
                    .and_then(|t| t.split('\r').next())
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        assert_eq!(events, ["zadd", "zpopmax", "del"]);
    })
    .await
}
