use super::super::testutil::*;
use super::*;

fn arr(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

fn dbl(d: f64) -> Frame {
    Frame::Double(d)
}

/// Every test runs on both encodings.
fn harnesses() -> Vec<Harness> {
    let mut small = Harness::new();
    small.run(&["CONFIG", "SET", "zset-max-listpack-entries", "128"]);
    let mut big = Harness::new();
    big.run(&["CONFIG", "SET", "zset-max-listpack-entries", "0"]);
    vec![small, big]
}

#[test]
fn add_score_and_flags() {
    for mut h in harnesses() {
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "2", "b"]), int(2));
        assert_eq!(h.run(&["ZADD", "z", "3", "a", "4", "c"]), int(1));
        assert_eq!(
            h.run(&["ZADD", "z", "CH", "5", "a", "4", "c", "1", "d"]),
            int(2)
        );
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), dbl(5.0));
        assert_eq!(h.run(&["ZSCORE", "z", "none"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "NX", "9", "a", "9", "e"]), int(1));
        assert_eq!(h.run(&["ZADD", "z", "XX", "8", "a", "9", "f"]), int(0));
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), dbl(8.0));
        assert_eq!(
            h.run(&["ZADD", "z", "GT", "CH", "7", "a", "9", "b"]),
            int(1)
        );
        assert_eq!(
            h.run(&["ZADD", "z", "LT", "CH", "7", "a", "1", "b"]),
            int(2)
        );
        assert_eq!(h.run(&["ZADD", "z", "INCR", "2.5", "a"]), dbl(9.5));
        assert_eq!(h.run(&["ZADD", "z", "INCR", "NX", "2.5", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "INCR", "GT", "-1", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZINCRBY", "z", "-0.5", "a"]), dbl(9.0));
        assert_eq!(h.run(&["ZINCRBY", "z", "3", "new"]), dbl(3.0));
        assert_eq!(h.run(&["ZCARD", "z"]), int(6));
        assert_eq!(h.run(&["ZCARD", "nope"]), int(0));
        assert_eq!(
            h.run(&["ZMSCORE", "z", "a", "x", "b"]),
            Frame::Array(vec![dbl(9.0), Frame::Null, dbl(1.0)])
        );
        assert_eq!(
            h.run(&["ZMSCORE", "nope", "a"]),
            Frame::Array(vec![Frame::Null])
        );
        // XX on a missing key creates nothing.
        assert_eq!(h.run(&["ZADD", "x", "XX", "1", "a"]), int(0));
        assert_eq!(h.run(&["EXISTS", "x"]), int(0));
        assert_eq!(h.run(&["TYPE", "z"]), Frame::simple("zset"));
    }
}

#[test]
fn add_errors() {
    let mut h = Harness::new();
    let e = |s: &str| err(s);
    assert_eq!(
        h.run(&["ZADD", "z", "1"]),
        e("ERR wrong number of arguments for 'zadd' command")
    );
    assert_eq!(h.run(&["ZADD", "z", "NX", "1"]), e("ERR syntax error"));
    assert_eq!(
        h.run(&["ZADD", "z", "NX", "1", "a", "2"]),
        e("ERR syntax error")
    );
    assert_eq!(
        h.run(&["ZADD", "z", "NX", "XX", "1", "a"]),
        e("ERR XX and NX options at the same time are not compatible")
    );
    for f in [["GT", "LT"], ["GT", "NX"], ["NX", "LT"]] {
        assert_eq!(
            h.run(&["ZADD", "z", f[0], f[1], "1", "a"]),
            e("ERR GT, LT, and/or NX options at the same time are not compatible")
        );
    }
    assert_eq!(
        h.run(&["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        e("ERR INCR option supports a single increment-element pair")
    );
    for bad in ["nan", "x", "", " 1", "1e400"] {
        assert_eq!(
            h.run(&["ZADD", "z", bad, "a"]),
            e("ERR value is not a valid float")
        );
    }
    assert_eq!(h.run(&["EXISTS", "z"]), int(0));
    h.run(&["ZADD", "z", "inf", "a"]);
    assert_eq!(
        h.run(&["ZINCRBY", "z", "-inf", "a"]),
        e("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(h.run(&["ZSCORE", "z", "a"]), dbl(f64::INFINITY));
    h.run(&["SET", "s", "x"]);
    let wt = e("WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!(h.run(&["ZADD", "s", "1", "a"]), wt);
    assert_eq!(h.run(&["ZADD", "s", "XX", "1", "a"]), wt);
    assert_eq!(h.run(&["ZSCORE", "s", "a"]), wt);
    assert_eq!(h.run(&["ZRANGE", "s", "0", "-1"]), wt);
    // Scores as C's strtod reads them.
    assert_eq!(h.run(&["ZADD", "h", "0x10", "a", "-Infinity", "b"]), int(2));
    assert_eq!(h.run(&["ZSCORE", "h", "a"]), dbl(16.0));
}

#[test]
fn rem_rank_count() {
    for mut h in harnesses() {
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "3", "d"]);
        assert_eq!(h.run(&["ZRANK", "z", "c"]), int(2));
        assert_eq!(h.run(&["ZREVRANK", "z", "c"]), int(1));
        assert_eq!(
            h.run(&["ZRANK", "z", "d", "WITHSCORE"]),
            Frame::Array(vec![int(3), dbl(3.0)])
        );
        assert_eq!(h.run(&["ZRANK", "z", "x"]), Frame::Null);
        assert_eq!(h.run(&["ZRANK", "z", "x", "withscore"]), Frame::NullArray);
        assert_eq!(h.run(&["ZRANK", "z", "a", "bad"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["ZRANK", "z", "a", "withscore", "x"]),
            err("ERR wrong number of arguments for 'zrank' command")
        );
        assert_eq!(h.run(&["ZCOUNT", "z", "2", "3"]), int(3));
        assert_eq!(h.run(&["ZCOUNT", "z", "(2", "3"]), int(2));
        assert_eq!(h.run(&["ZCOUNT", "z", "-inf", "(3"]), int(2));
        assert_eq!(h.run(&["ZCOUNT", "z", "3", "2"]), int(0));
        assert_eq!(h.run(&["ZCOUNT", "z", "(3", "3"]), int(0));
        assert_eq!(
            h.run(&["ZCOUNT", "z", "x", "3"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(h.run(&["ZREM", "z", "a", "x", "b"]), int(2));
        assert_eq!(h.run(&["ZREM", "z", "c", "d"]), int(2));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
    }
}

#[test]
fn ranges() {
    for mut h in harnesses() {
        h.run(&[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ]);
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1"]),
            arr(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(h.run(&["ZRANGE", "z", "1", "2"]), arr(&["b", "c"]));
        assert_eq!(h.run(&["ZRANGE", "z", "-2", "100"]), arr(&["d", "e"]));
        assert_eq!(h.run(&["ZRANGE", "z", "3", "1"]), arr(&[]));
        assert_eq!(h.run(&["ZRANGE", "z", "0", "1", "REV"]), arr(&["e", "d"]));
        assert_eq!(h.run(&["ZREVRANGE", "z", "0", "1"]), arr(&["e", "d"]));
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "0", "WITHSCORES"]),
            Frame::Array(vec![bulk("a"), dbl(1.0)])
        );
        assert_eq!(h.run(&["ZRANGEBYSCORE", "z", "(1", "3"]), arr(&["b", "c"]));
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            h.run(&["ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "1", "2"]),
            arr(&["d", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "4", "2", "BYSCORE", "REV"]),
            arr(&["d", "c", "b"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "0", "10", "LIMIT", "-1", "2"]),
            arr(&[])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "0", "10", "LIMIT", "3", "-1"]),
            arr(&["d", "e"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "0", "1", "REV"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZREVRANGE", "z", "0", "1", "BYSCORE"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["ZRANGE", "none", "0", "-1"]), arr(&[]));
        h.run(&["ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"]);
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "[b", "(d"]), arr(&["b", "c"]));
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "-", "+"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["ZREVRANGEBYLEX", "l", "(c", "-"]), arr(&["b", "a"]));
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "-", "+", "LIMIT", "1", "1"]),
            arr(&["b"])
        );
        assert_eq!(h.run(&["ZLEXCOUNT", "l", "(a", "[c"]), int(2));
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "b", "+"]),
            err("ERR min or max not valid string range item")
        );
    }
}

#[test]
fn pops_and_random() {
    for mut h in harnesses() {
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            h.run(&["ZPOPMIN", "z"]),
            Frame::Array(vec![bulk("a"), dbl(1.0)])
        );
        assert_eq!(
            h.run(&["ZPOPMAX", "z", "5"]),
            Frame::Array(vec![bulk("c"), dbl(3.0), bulk("b"), dbl(2.0)])
        );
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        assert_eq!(h.run(&["ZPOPMIN", "z"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["ZPOPMIN", "z", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        h.run(&["ZADD", "r", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(h.run(&["ZPOPMIN", "r", "0"]), Frame::Array(vec![]));
        let Frame::Array(v) = h.run(&["ZRANDMEMBER", "r", "-10", "WITHSCORES"]) else {
            panic!("array")
        };
        assert_eq!(v.len(), 20);
        let Frame::Array(v) = h.run(&["ZRANDMEMBER", "r", "10"]) else {
            panic!("array")
        };
        assert_eq!(v.len(), 3);
        assert!(matches!(h.run(&["ZRANDMEMBER", "r"]), Frame::Bulk(_)));
        assert_eq!(h.run(&["ZRANDMEMBER", "none"]), Frame::Null);
    }
}

#[test]
fn scan_every_member() {
    for mut h in harnesses() {
        let mut args = vec!["ZADD".to_string(), "z".into()];
        for i in 0..300 {
            args.push(i.to_string());
            args.push(format!("m{i}"));
        }
        h.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Frame::Array(r) = h.run(&["ZSCAN", "z", &cursor, "COUNT", "20"]) else {
                panic!("array")
            };
            let (Frame::Bulk(c), Frame::Array(items)) = (&r[0], &r[1]) else {
                panic!("cursor and items")
            };
            for pair in items.chunks(2) {
                seen.insert(format!("{:?}", pair[0]));
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 300);
    }
}

#[test]
fn stores_and_removals() {
    for mut h in harnesses() {
        h.run(&["ZADD", "{t}z", "1", "a", "2", "b", "3", "c", "4", "d"]);
        assert_eq!(h.run(&["ZRANGESTORE", "{t}d", "{t}z", "1", "2"]), int(2));
        assert_eq!(h.run(&["ZRANGE", "{t}d", "0", "-1"]), arr(&["b", "c"]));
        assert_eq!(
            h.run(&[
                "ZRANGESTORE",
                "{t}d",
                "{t}z",
                "+inf",
                "(2",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "1"
            ]),
            int(1)
        );
        assert_eq!(h.run(&["ZRANGE", "{t}d", "0", "-1"]), arr(&["d"]));
        assert_eq!(
            h.run(&["ZRANGESTORE", "{t}d", "{t}z", "0", "-1", "WITHSCORES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANGESTORE", "{t}d", "{t}none", "0", "-1"]),
            int(0)
        );
        assert_eq!(h.run(&["EXISTS", "{t}d"]), int(0));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "{t}z", "0", "0"]), int(1));
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "{t}z", "(2", "3"]), int(1));
        assert_eq!(h.run(&["ZRANGE", "{t}z", "0", "-1"]), arr(&["b", "d"]));
        h.run(&["ZADD", "{t}l", "0", "a", "0", "b", "0", "c"]);
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "{t}l", "[b", "+"]), int(2));
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "{t}l", "-", "+"]), int(1));
        assert_eq!(h.run(&["EXISTS", "{t}l"]), int(0));
    }
}

#[test]
fn algebra() {
    for mut h in harnesses() {
        h.run(&["ZADD", "{t}a", "1", "x", "2", "y", "3", "z"]);
        h.run(&["ZADD", "{t}b", "10", "y", "20", "z", "30", "w"]);
        h.run(&["SADD", "{t}s", "z", "q"]);
        assert_eq!(
            h.run(&["ZUNION", "2", "{t}a", "{t}b", "WITHSCORES"]),
            Frame::Array(vec![
                bulk("x"),
                dbl(1.0),
                bulk("y"),
                dbl(12.0),
                bulk("z"),
                dbl(23.0),
                bulk("w"),
                dbl(30.0)
            ])
        );
        assert_eq!(
            h.run(&[
                "ZINTER",
                "3",
                "{t}a",
                "{t}b",
                "{t}s",
                "WEIGHTS",
                "1",
                "0",
                "2",
                "AGGREGATE",
                "MAX"
            ]),
            arr(&["z"])
        );
        assert_eq!(
            h.run(&[
                "ZINTER",
                "2",
                "{t}a",
                "{t}b",
                "AGGREGATE",
                "min",
                "WITHSCORES"
            ]),
            Frame::Array(vec![bulk("y"), dbl(2.0), bulk("z"), dbl(3.0)])
        );
        assert_eq!(h.run(&["ZDIFF", "2", "{t}a", "{t}b"]), arr(&["x"]));
        assert_eq!(
            h.run(&["ZDIFF", "2", "{t}s", "{t}a", "WITHSCORES"]),
            Frame::Array(vec![bulk("q"), dbl(1.0)])
        );
        assert_eq!(h.run(&["ZUNIONSTORE", "{t}d", "2", "{t}a", "{t}s"]), int(4));
        assert_eq!(h.run(&["ZSCORE", "{t}d", "z"]), dbl(4.0));
        assert_eq!(
            h.run(&["ZINTERSTORE", "{t}d", "2", "{t}a", "{t}none"]),
            int(0)
        );
        assert_eq!(h.run(&["EXISTS", "{t}d"]), int(0));
        assert_eq!(h.run(&["ZDIFFSTORE", "{t}d", "1", "{t}b"]), int(3));
        assert_eq!(h.run(&["ZINTERCARD", "2", "{t}a", "{t}b"]), int(2));
        assert_eq!(
            h.run(&["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "1"]),
            int(1)
        );
        assert_eq!(
            h.run(&["ZINTERCARD", "1", "{t}a", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.run(&["ZUNION", "0", "{t}a"]),
            err("ERR at least 1 input key is needed for 'zunion' command")
        );
        assert_eq!(
            h.run(&["ZUNIONSTORE", "{t}d", "0", "{t}a"]),
            err("ERR at least 1 input key is needed for 'zunionstore' command")
        );
        assert_eq!(
            h.run(&["ZUNION", "3", "{t}a", "{t}b"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZUNION", "2", "{t}a", "{t}b", "WEIGHTS", "1", "x"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(
            h.run(&["ZUNIONSTORE", "{t}d", "2", "{t}a", "{t}b", "WITHSCORES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZDIFF", "2", "{t}a", "{t}b", "WEIGHTS", "1", "1"]),
            err("ERR syntax error")
        );
        // +inf and -inf add up to 0.
        h.run(&["ZADD", "{t}i", "inf", "m"]);
        h.run(&["ZADD", "{t}j", "-inf", "m"]);
        assert_eq!(
            h.run(&["ZUNION", "2", "{t}i", "{t}j", "WITHSCORES"]),
            Frame::Array(vec![bulk("m"), dbl(0.0)])
        );
        h.run(&["SET", "{t}str", "x"]);
        assert_eq!(
            h.run(&["ZUNION", "2", "{t}a", "{t}str", "BADOPT"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
    }
}

#[test]
fn mpop() {
    for mut h in harnesses() {
        h.run(&["ZADD", "{t}b", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(h.run(&["ZMPOP", "1", "{t}a", "MIN"]), Frame::NullArray);
        assert_eq!(
            h.run(&["ZMPOP", "2", "{t}a", "{t}b", "MAX", "COUNT", "2"]),
            Frame::Array(vec![
                bulk("{t}b"),
                Frame::Array(vec![
                    Frame::Array(vec![bulk("c"), dbl(3.0)]),
                    Frame::Array(vec![bulk("b"), dbl(2.0)]),
                ])
            ])
        );
        for (args, e) in [
            (
                vec!["0", "{t}a", "MIN"],
                "ERR numkeys should be greater than 0",
            ),
            (
                vec!["1", "{t}a", "MIN", "COUNT", "0"],
                "ERR count should be greater than 0",
            ),
            (vec!["1", "{t}a", "bad"], "ERR syntax error"),
            (
                vec!["1", "{t}a", "MIN", "COUNT", "1", "COUNT", "2"],
                "ERR syntax error",
            ),
            (vec!["2", "{t}a", "MIN"], "ERR syntax error"),
        ] {
            let mut full = vec!["ZMPOP"];
            full.extend(args);
            assert_eq!(h.run(&full), err(e));
        }
    }
}

#[test]
fn encodings_follow_the_limits() {
    let mut h = Harness::new();
    h.run(&["ZADD", "z", "1", "a"]);
    assert_eq!(h.run(&["OBJECT", "ENCODING", "z"]), bulk("listpack"));
    h.run(&["CONFIG", "SET", "zset-max-ziplist-entries", "1"]);
    h.run(&["ZADD", "z", "2", "b"]);
    assert_eq!(h.run(&["OBJECT", "ENCODING", "z"]), bulk("skiplist"));
    assert_eq!(
        h.run(&["CONFIG", "GET", "zset-max-listpack-entries"]),
        Frame::Map(vec![(bulk("zset-max-listpack-entries"), bulk("1"))])
    );
    h.run(&["CONFIG", "SET", "zset-max-listpack-entries", "128"]);
    h.run(&["CONFIG", "SET", "zset-max-listpack-value", "3"]);
    h.run(&["ZADD", "y", "1", "abcd"]);
    assert_eq!(h.run(&["OBJECT", "ENCODING", "y"]), bulk("skiplist"));
}

fn popped(k: &str, m: &str, s: f64) -> Frame {
    Frame::Array(vec![bulk(k), bulk(m), dbl(s)])
}

fn mpopped(k: &str, items: &[(&str, f64)]) -> Frame {
    let items = items
        .iter()
        .map(|&(m, s)| Frame::Array(vec![bulk(m), dbl(s)]))
        .collect();
    Frame::Array(vec![bulk(k), Frame::Array(items)])
}

#[tokio::test]
async fn blocking_pops_serve_at_once_or_oldest_first() {
    for mut h in harnesses() {
        // Data already there: the first non-empty key, no blocking.
        h.run(&["ZADD", "{t}2", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            h.run(&["BZPOPMIN", "{t}1", "{t}2", "0"]),
            popped("{t}2", "a", 1.0)
        );
        assert_eq!(h.run(&["BZPOPMAX", "{t}2", "1"]), popped("{t}2", "c", 3.0));
        assert_eq!(
            h.run(&["BZMPOP", "1", "2", "{t}1", "{t}2", "MAX", "COUNT", "9"]),
            mpopped("{t}2", &[("b", 2.0)])
        );
        assert_eq!(h.run(&["EXISTS", "{t}2"]), int(0));
        assert!(h.session.blocked.is_none());

        // Blocked clients are served oldest first, after the whole variadic ZADD.
        let (mut a, mut b, mut c) = (h.other_session(), h.other_session(), h.other_session());
        let wa = block_on(&mut h, &mut a, &["BZPOPMIN", "z", "0"]);
        let wb = block_on(&mut h, &mut b, &["BZPOPMAX", "other", "z", "0"]);
        let wc = block_on(
            &mut h,
            &mut c,
            &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"],
        );
        assert_eq!(h.node.blocking.blocked_clients(), 3);
        assert_eq!(
            h.run(&["ZADD", "z", "-1", "foo", "1", "bar", "2", "baz", "3", "qux"]),
            int(4)
        );
        assert_eq!(reply(wa).await, popped("z", "foo", -1.0));
        assert_eq!(reply(wb).await, popped("z", "qux", 3.0));
        assert_eq!(reply(wc).await, mpopped("z", &[("bar", 1.0), ("baz", 2.0)]));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        assert_eq!(h.node.blocking.blocked_clients(), 0);

        // The same key named twice, and a second key written first.
        let wa = block_on(
            &mut h,
            &mut a,
            &["BZPOPMIN", "{t}1", "{t}2", "{t}2", "{t}1", "0"],
        );
        h.run(&["ZADD", "{t}2", "1", "b"]);
        assert_eq!(reply(wa).await, popped("{t}2", "b", 1.0));
        assert_eq!(h.node.blocking.blocked_clients(), 0);

        // Redis's "BZMPOP with multiple blocked clients": one transaction fills both
        // keys, each waiter takes from the first key that serves it.
        let mut d = h.other_session();
        let keys = ["{m}1", "{m}2"];
        let w1 = block_on(
            &mut h,
            &mut a,
            &["BZMPOP", "0", "2", keys[0], keys[1], "MIN", "COUNT", "1"],
        );
        let w2 = block_on(
            &mut h,
            &mut b,
            &["BZMPOP", "0", "2", keys[0], keys[1], "MAX", "COUNT", "10"],
        );
        let w3 = block_on(
            &mut h,
            &mut c,
            &["BZMPOP", "0", "2", keys[0], keys[1], "MIN", "COUNT", "10"],
        );
        let w4 = block_on(
            &mut h,
            &mut d,
            &["BZMPOP", "0", "2", keys[0], keys[1], "MAX", "COUNT", "1"],
        );
        h.run(&["MULTI"]);
        for k in keys {
            h.run(&["ZADD", k, "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"]);
        }
        h.run(&["EXEC"]);
        assert_eq!(reply(w1).await, mpopped(keys[0], &[("a", 1.0)]));
        assert_eq!(
            reply(w2).await,
            mpopped(keys[0], &[("e", 5.0), ("d", 4.0), ("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(
            reply(w3).await,
            mpopped(
                keys[1],
                &[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 5.0)]
            )
        );
        assert_eq!(h.node.blocking.blocked_clients(), 1);
        h.run(&["ZADD", keys[1], "1", "a", "2", "b", "3", "c"]);
        assert_eq!(reply(w4).await, mpopped(keys[1], &[("c", 3.0)]));
    }
}

#[tokio::test]
async fn blocking_pops_in_transactions_and_other_types() {
    let mut h = Harness::new();
    let mut a = h.other_session();
    let wa = block_on(&mut h, &mut a, &["BZPOPMIN", "z", "0"]);
    // ZADD then DEL in one transaction, then a string: nothing to serve.
    for c in [
        &["MULTI"][..],
        &["ZADD", "z", "0", "foo"],
        &["DEL", "z"],
        &["EXEC"],
    ] {
        h.run(c);
    }
    for c in [
        &["MULTI"][..],
        &["ZADD", "z", "0", "foo"],
        &["DEL", "z"],
        &["SET", "z", "s"],
        &["EXEC"],
    ] {
        h.run(c);
    }
    assert_eq!(h.node.blocking.blocked_clients(), 1);
    // A list at the key does not serve a sorted-set pop either.
    h.run(&["DEL", "z"]);
    h.run(&["RPUSH", "z", "x"]);
    assert_eq!(h.node.blocking.blocked_clients(), 1);
    h.run(&["DEL", "z"]);
    h.run(&["ZADD", "z", "1", "bar"]);
    assert_eq!(reply(wa).await, popped("z", "bar", 1.0));

    // Inside MULTI they answer at once, like their non-blocking forms.
    h.run(&["ZADD", "z", "1", "only"]);
    h.run(&["MULTI"]);
    h.run(&["BZPOPMIN", "z", "0"]);
    h.run(&["BZPOPMAX", "z", "0"]);
    h.run(&["BZMPOP", "0", "1", "z", "MIN"]);
    assert_eq!(
        h.run(&["EXEC"]),
        Frame::Array(vec![
            popped("z", "only", 1.0),
            Frame::NullArray,
            Frame::NullArray
        ])
    );
    assert!(h.session.blocked.is_none());
    assert_eq!(h.node.blocking.blocked_clients(), 0);
}

#[tokio::test]
async fn blocking_pop_errors_timeouts_and_unblock() {
    let mut h = Harness::new();
    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    h.run(&["SET", "{t}s", "x"]);
    assert_eq!(h.run(&["BZPOPMIN", "{t}s", "1"]), err(WT));
    assert_eq!(h.run(&["BZPOPMAX", "{t}none", "{t}s", "1"]), err(WT));
    assert_eq!(
        h.run(&["BZMPOP", "1", "2", "{t}none", "{t}s", "MIN"]),
        err(WT)
    );
    assert_eq!(
        h.run(&["BZPOPMIN", "z", "-1"]),
        err("ERR timeout is negative")
    );
    assert_eq!(
        h.run(&["BZPOPMIN", "z", "soon"]),
        err("ERR timeout is not a float or out of range")
    );
    for (args, e) in [
        (
            &["BZMPOP", "1", "0", "z", "MIN"][..],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["BZMPOP", "1", "a", "z", "MIN"],
            "ERR numkeys should be greater than 0",
        ),
        (&["BZMPOP", "1", "1", "z", "bad_where"], "ERR syntax error"),
        (&["BZMPOP", "1", "1", "z", "MAX", "MIN"], "ERR syntax error"),
        (
            &["BZMPOP", "1", "1", "z", "MIN", "COUNT", "1", "COUNT", "2"],
            "ERR syntax error",
        ),
        (
            &["BZMPOP", "1", "1", "z", "MIN", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        // The arguments before the timeout, as in Redis.
        (&["BZMPOP", "-1", "1", "z", "bad"], "ERR syntax error"),
        (
            &["BZMPOP", "-1", "1", "z", "MIN"],
            "ERR timeout is negative",
        ),
        (
            &["BZMPOP", "0", "1"],
            "ERR wrong number of arguments for 'bzmpop' command",
        ),
        (
            &["BZPOPMIN", "z"],
            "ERR wrong number of arguments for 'bzpopmin' command",
        ),
    ] {
        assert_eq!(h.run(args), err(e), "{args:?}");
    }
    assert!(h.session.blocked.is_none());

    // A fractional timeout ends the wait with a null array.
    let mut a = h.other_session();
    let wa = block_on(&mut h, &mut a, &["BZPOPMAX", "z", "0.01"]);
    assert_eq!(reply(wa).await, Frame::NullArray);
    let wa = block_on(&mut h, &mut a, &["BZMPOP", "0.01", "1", "z", "MIN"]);
    assert_eq!(reply(wa).await, Frame::NullArray);
    assert_eq!(h.node.blocking.blocked_clients(), 0);

    // CLIENT UNBLOCK, with the timeout reply or an error.
    let id = a.client.id.to_string();
    let wa = block_on(&mut h, &mut a, &["BZPOPMIN", "z", "0"]);
    assert_eq!(h.run(&["CLIENT", "UNBLOCK", &id]), int(1));
    assert_eq!(reply(wa).await, Frame::NullArray);
    let wa = block_on(&mut h, &mut a, &["BZMPOP", "0", "1", "z", "MAX"]);
    assert_eq!(h.run(&["CLIENT", "UNBLOCK", &id, "ERROR"]), int(1));
    assert_eq!(
        reply(wa).await,
        err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    // A client that went away takes nothing.
    let wa = block_on(&mut h, &mut a, &["BZPOPMIN", "z", "0"]);
    drop(wa);
    h.run(&["ZADD", "z", "1", "kept"]);
    assert_eq!(h.run(&["ZCARD", "z"]), int(1));
}

#[tokio::test]
async fn blocking_pops_reply_in_resp3() {
    let mut h = Harness::new();
    let mut a = h.other_session();
    a.proto = Protocol::Resp3;
    let wa = block_on(&mut h, &mut a, &["BZPOPMIN", "z", "0"]);
    h.run(&["ZADD", "z", "1", "a", "2", "b"]);
    let got = reply(wa).await;
    assert_eq!(got, popped("z", "a", 1.0));
    let enc = |f: &Frame, p: Protocol| {
        let mut out = bytes::BytesMut::new();
        f.encode(p, &mut out);
        String::from_utf8(out.to_vec()).expect("utf-8")
    };
    assert_eq!(
        enc(&got, Protocol::Resp3),
        "*3\r\n$1\r\nz\r\n$1\r\na\r\n,1\r\n"
    );
    assert_eq!(
        enc(&got, Protocol::Resp2),
        "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
}
