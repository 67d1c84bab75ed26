//! String commands through the `redis` crate, with Redis 7's replies and error texts.

use crate::util::*;

#[tokio::test]
async fn get_set_and_conditions() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["GET", "k"]).await, NIL);
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        assert_eq!(val(c, &["SET", "k", "v1", "NX"]).await, NIL);
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        assert_eq!(val(c, &["SET", "k", "v2", "XX"]).await, OK);
        assert_eq!(val(c, &["SET", "missing", "v", "XX"]).await, NIL);
        assert_eq!(val(c, &["EXISTS", "missing"]).await, int(0));
        assert_eq!(val(c, &["SET", "k", "v3", "GET"]).await, bulk("v2"));
        assert_eq!(val(c, &["SET", "new", "v", "GET"]).await, NIL);
        assert_eq!(val(c, &["GET", "new"]).await, bulk("v"));
        // NX with GET: not set, but the old value is returned.
        assert_eq!(val(c, &["SET", "k", "x", "NX", "GET"]).await, bulk("v3"));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v3"));
        assert_eq!(val(c, &["SET", "k", "x", "xx", "get"]).await, bulk("v3"));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("x"));

        for bad in [
            &["SET", "k", "v", "NX", "XX"][..],
            &["SET", "k", "v", "XX", "NX"],
            &["SET", "k", "v", "EX", "10", "PX", "10"],
            &["SET", "k", "v", "EX", "10", "KEEPTTL"],
            &["SET", "k", "v", "KEEPTTL", "PXAT", "10"],
            &["SET", "k", "v", "EX"],
            &["SET", "k", "v", "BOGUS"],
        ] {
            assert_eq!(q_err(c, bad).await, "ERR syntax error", "{bad:?}");
        }
        for bad in [
            &["SET", "k", "v", "EX", "0"][..],
            &["SET", "k", "v", "EX", "-1"],
            &["SET", "k", "v", "PX", "0"],
            &["SET", "k", "v", "EXAT", "0"],
            &["SET", "k", "v", "PXAT", "0"],
            &["SET", "k", "v", "EX", "9223372036854775807"],
            &["SET", "k", "v", "PX", "9223372036854775807"],
        ] {
            assert_eq!(
                q_err(c, bad).await,
                "ERR invalid expire time in 'set' command",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["SET", "k", "v", "EX", "ten"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["SET", "k"]).await,
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(
            q_err(c, &["GET"]).await,
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            q_err(c, &["GET", "a", "b"]).await,
            "ERR wrong number of arguments for 'get' command"
        );
        // Failed commands changed nothing.
        assert_eq!(val(c, &["GET", "k"]).await, bulk("x"));
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
    })
    .await
}

#[tokio::test]
async fn set_expiry_options() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["TTL", "k"]).await, int(100));
        assert_eq!(val(c, &["SET", "k", "v", "PX", "5000"]).await, OK);
        let pttl: i64 = q(c, &["PTTL", "k"]).await;
        assert!((4000..=5000).contains(&pttl), "PTTL {pttl}");

        let at = now_ms() / 1000 + 1000;
        let at_s = at.to_string();
        assert_eq!(val(c, &["SET", "k", "v", "EXAT", &at_s]).await, OK);
        assert_eq!(val(c, &["EXPIRETIME", "k"]).await, int(at as i64));
        let pat = now_ms() + 777_000;
        let pat_s = pat.to_string();
        assert_eq!(val(c, &["SET", "k", "v", "PXAT", &pat_s]).await, OK);
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, int(pat as i64));

        // KEEPTTL keeps it, a plain SET clears it.
        assert_eq!(val(c, &["SET", "k", "w", "KEEPTTL"]).await, OK);
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, int(pat as i64));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("w"));
        assert_eq!(val(c, &["SET", "k", "x"]).await, OK);
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
        // KEEPTTL on a new key: no TTL.
        assert_eq!(val(c, &["SET", "fresh", "x", "KEEPTTL"]).await, OK);
        assert_eq!(val(c, &["TTL", "fresh"]).await, int(-1));

        // An absolute time in the past stores nothing.
        assert_eq!(val(c, &["SET", "k", "v", "PXAT", "1"]).await, OK);
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));
        assert_eq!(val(c, &["SET", "k", "v", "EXAT", "1"]).await, OK);
        assert_eq!(val(c, &["GET", "k"]).await, NIL);
    })
    .await
}

#[tokio::test]
async fn setnx_setex_psetex_getset_getdel() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SETNX", "k", "1"]).await, int(1));
        assert_eq!(val(c, &["SETNX", "k", "2"]).await, int(0));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("1"));
        assert_eq!(
            q_err(c, &["SETNX", "k"]).await,
            "ERR wrong number of arguments for 'setnx' command"
        );

        assert_eq!(val(c, &["SETEX", "k", "10", "v"]).await, OK);
        assert_eq!(val(c, &["TTL", "k"]).await, int(10));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        for (args, name) in [
            (&["SETEX", "k", "0", "v"][..], "setex"),
            (&["SETEX", "k", "-5", "v"], "setex"),
            (&["SETEX", "k", "9223372036854775807", "v"], "setex"),
            (&["PSETEX", "k", "0", "v"], "psetex"),
            (&["PSETEX", "k", "-1", "v"], "psetex"),
        ] {
            assert_eq!(
                q_err(c, args).await,
                format!("ERR invalid expire time in '{name}' command"),
                "{args:?}"
            );
        }
        assert_eq!(
            q_err(c, &["SETEX", "k", "x", "v"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(val(c, &["PSETEX", "k", "60000", "w"]).await, OK);
        let pttl: i64 = q(c, &["PTTL", "k"]).await;
        assert!((59_000..=60_000).contains(&pttl), "PTTL {pttl}");

        // GETSET returns the old value and drops the TTL.
        assert_eq!(val(c, &["GETSET", "k", "new"]).await, bulk("w"));
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
        assert_eq!(val(c, &["GETSET", "nope", "x"]).await, NIL);
        assert_eq!(val(c, &["GET", "nope"]).await, bulk("x"));

        assert_eq!(val(c, &["GETDEL", "k"]).await, bulk("new"));
        assert_eq!(val(c, &["GETDEL", "k"]).await, NIL);
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));
        assert_eq!(
            q_err(c, &["GETDEL", "a", "b"]).await,
            "ERR wrong number of arguments for 'getdel' command"
        );
    })
    .await
}

#[tokio::test]
async fn getex_each_option() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "g", "v"]).await, OK);
        assert_eq!(val(c, &["GETEX", "g"]).await, bulk("v"));
        assert_eq!(val(c, &["TTL", "g"]).await, int(-1));
        assert_eq!(val(c, &["GETEX", "g", "EX", "100"]).await, bulk("v"));
        assert_eq!(val(c, &["TTL", "g"]).await, int(100));
        // No option leaves the TTL alone.
        assert_eq!(val(c, &["GETEX", "g"]).await, bulk("v"));
        assert_eq!(val(c, &["TTL", "g"]).await, int(100));
        assert_eq!(val(c, &["GETEX", "g", "PX", "50000"]).await, bulk("v"));
        let pttl: i64 = q(c, &["PTTL", "g"]).await;
        assert!((49_000..=50_000).contains(&pttl), "PTTL {pttl}");
        let at = now_ms() / 1000 + 5000;
        assert_eq!(
            val(c, &["GETEX", "g", "EXAT", &at.to_string()]).await,
            bulk("v")
        );
        assert_eq!(val(c, &["EXPIRETIME", "g"]).await, int(at as i64));
        let pat = now_ms() + 6_000_000;
        assert_eq!(
            val(c, &["GETEX", "g", "PXAT", &pat.to_string()]).await,
            bulk("v")
        );
        assert_eq!(val(c, &["PEXPIRETIME", "g"]).await, int(pat as i64));
        assert_eq!(val(c, &["GETEX", "g", "PERSIST"]).await, bulk("v"));
        assert_eq!(val(c, &["TTL", "g"]).await, int(-1));

        assert_eq!(val(c, &["GETEX", "missing", "EX", "10"]).await, NIL);
        assert_eq!(val(c, &["EXISTS", "missing"]).await, int(0));

        for bad in [
            &["GETEX", "g", "EX", "1", "PX", "1"][..],
            &["GETEX", "g", "EX", "1", "PERSIST"],
            &["GETEX", "g", "PERSIST", "EX", "1"],
            &["GETEX", "g", "EX"],
            &["GETEX", "g", "BOGUS"],
            &["GETEX", "missing", "BOGUS"],
        ] {
            assert_eq!(q_err(c, bad).await, "ERR syntax error", "{bad:?}");
        }
        for bad in [
            &["GETEX", "g", "EX", "0"][..],
            &["GETEX", "g", "EX", "-1"],
            &["GETEX", "g", "PX", "0"],
            &["GETEX", "g", "EX", "9223372036854775807"],
        ] {
            assert_eq!(
                q_err(c, bad).await,
                "ERR invalid expire time in 'getex' command",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["GETEX", "g", "EX", "x"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(val(c, &["TTL", "g"]).await, int(-1));
        // A time in the past returns the value and deletes the key.
        assert_eq!(val(c, &["GETEX", "g", "PXAT", "1"]).await, bulk("v"));
        assert_eq!(val(c, &["EXISTS", "g"]).await, int(0));
    })
    .await
}

#[tokio::test]
async fn mget_mset_msetnx() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["MSET", "a", "1", "b", "2", "{a}c", "3"]).await, OK);
        let got: Vec<Option<String>> = q(c, &["MGET", "a", "b", "nope", "{a}c"]).await;
        assert_eq!(
            got,
            vec![Some("1".into()), Some("2".into()), None, Some("3".into())]
        );
        assert_eq!(
            q_err(c, &["MSET", "a", "1", "b"]).await,
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            q_err(c, &["MSET", "a"]).await,
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            q_err(c, &["MGET"]).await,
            "ERR wrong number of arguments for 'mget' command"
        );
        // MSETNX is all or nothing.
        assert_eq!(val(c, &["MSETNX", "x", "1", "a", "2"]).await, int(0));
        assert_eq!(val(c, &["EXISTS", "x"]).await, int(0));
        assert_eq!(val(c, &["GET", "a"]).await, bulk("1"));
        assert_eq!(val(c, &["MSETNX", "x", "1", "y", "2"]).await, int(1));
        let got: Vec<String> = q(c, &["MGET", "x", "y"]).await;
        assert_eq!(got, ["1", "2"]);
        assert_eq!(
            q_err(c, &["MSETNX", "x", "1", "y"]).await,
            "ERR wrong number of arguments for 'msetnx' command"
        );
        // MSET drops TTLs and the last of a repeated key wins.
        assert_eq!(val(c, &["SET", "t", "v", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["MSET", "t", "w", "t", "z"]).await, OK);
        assert_eq!(val(c, &["GET", "t"]).await, bulk("z"));
        assert_eq!(val(c, &["TTL", "t"]).await, int(-1));
    })
    .await
}

#[tokio::test]
async fn append_strlen_getrange_substr_setrange() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["APPEND", "k", "Hello"]).await, int(5));
        assert_eq!(val(c, &["APPEND", "k", " World"]).await, int(11));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("Hello World"));
        assert_eq!(val(c, &["STRLEN", "k"]).await, int(11));
        assert_eq!(val(c, &["STRLEN", "nope"]).await, int(0));
        // APPEND keeps the TTL.
        assert_eq!(val(c, &["EXPIRE", "k", "100"]).await, int(1));
        assert_eq!(val(c, &["APPEND", "k", "!"]).await, int(12));
        assert_eq!(val(c, &["TTL", "k"]).await, int(100));
        assert_eq!(val(c, &["SET", "k", "Hello World"]).await, OK);

        for (start_, end, want) in [
            ("0", "4", "Hello"),
            ("-5", "-1", "World"),
            ("0", "-1", "Hello World"),
            ("10", "100", "d"),
            ("5", "3", ""),
            ("-1", "-5", ""),
            ("100", "200", ""),
            ("-100", "2", "Hel"),
            ("-100", "-50", "H"),
            ("0", "9223372036854775807", "Hello World"),
        ] {
            assert_eq!(
                val(c, &["GETRANGE", "k", start_, end]).await,
                bulk(want),
                "GETRANGE {start_} {end}"
            );
        }
        assert_eq!(val(c, &["GETRANGE", "nope", "0", "-1"]).await, bulk(""));
        assert_eq!(val(c, &["SUBSTR", "k", "0", "0"]).await, bulk("H"));
        assert_eq!(val(c, &["SUBSTR", "k", "-3", "-1"]).await, bulk("rld"));
        assert_eq!(
            q_err(c, &["GETRANGE", "k", "x", "1"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["GETRANGE", "k", "0"]).await,
            "ERR wrong number of arguments for 'getrange' command"
        );

        assert_eq!(val(c, &["SETRANGE", "k", "6", "Redis"]).await, int(11));
        assert_eq!(val(c, &["GET", "k"]).await, bulk("Hello Redis"));
        assert_eq!(val(c, &["SETRANGE", "z", "3", "ab"]).await, int(5));
        assert_eq!(val(c, &["GET", "z"]).await, bulk(b"\0\0\0ab"));
        assert_eq!(val(c, &["SETRANGE", "z", "1", "X"]).await, int(5));
        assert_eq!(val(c, &["GET", "z"]).await, bulk(b"\0X\0ab"));
        // An empty value creates nothing and reports the current length.
        assert_eq!(val(c, &["SETRANGE", "empty", "3", ""]).await, int(0));
        assert_eq!(val(c, &["EXISTS", "empty"]).await, int(0));
        assert_eq!(val(c, &["SETRANGE", "k", "100", ""]).await, int(11));
        assert_eq!(
            q_err(c, &["SETRANGE", "k", "-1", "x"]).await,
            "ERR offset is out of range"
        );
        assert_eq!(
            q_err(c, &["SETRANGE", "k", "x", "x"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["SETRANGE", "k", "536870911", "xx"]).await,
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
        );
        assert_eq!(val(c, &["GET", "k"]).await, bulk("Hello Redis"));
    })
    .await
}

#[tokio::test]
async fn integer_counters() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["INCR", "n"]).await, int(1));
        assert_eq!(val(c, &["INCRBY", "n", "10"]).await, int(11));
        assert_eq!(val(c, &["DECR", "n"]).await, int(10));
        assert_eq!(val(c, &["DECRBY", "n", "20"]).await, int(-10));
        assert_eq!(val(c, &["INCRBY", "n", "-5"]).await, int(-15));
        assert_eq!(val(c, &["GET", "n"]).await, bulk("-15"));
        assert_eq!(val(c, &["DECR", "fresh"]).await, int(-1));

        assert_eq!(val(c, &["SET", "n", "9223372036854775807"]).await, OK);
        assert_eq!(
            q_err(c, &["INCR", "n"]).await,
            "ERR increment or decrement would overflow"
        );
        assert_eq!(val(c, &["SET", "n", "-9223372036854775808"]).await, OK);
        assert_eq!(
            q_err(c, &["DECR", "n"]).await,
            "ERR increment or decrement would overflow"
        );
        assert_eq!(val(c, &["SET", "n", "0"]).await, OK);
        assert_eq!(
            q_err(c, &["DECRBY", "n", "-9223372036854775808"]).await,
            "ERR decrement would overflow"
        );
        assert_eq!(
            val(c, &["INCRBY", "n", "-9223372036854775808"]).await,
            int(i64::MIN)
        );

        for (stored, cmd) in [
            ("abc", "INCR"),
            (" 1", "INCR"),
            ("01", "INCR"),
            ("1.0", "INCR"),
            ("", "DECR"),
            ("99999999999999999999", "INCR"),
        ] {
            assert_eq!(val(c, &["SET", "s", stored]).await, OK);
            assert_eq!(
                q_err(c, &[cmd, "s"]).await,
                "ERR value is not an integer or out of range",
                "{cmd} on {stored:?}"
            );
        }
        for bad in [
            &["INCRBY", "n", "x"][..],
            &["INCRBY", "n", "1.5"],
            &["DECRBY", "n", "x"],
            &["INCRBY", "n", "9223372036854775808"],
        ] {
            assert_eq!(
                q_err(c, bad).await,
                "ERR value is not an integer or out of range",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["INCR"]).await,
            "ERR wrong number of arguments for 'incr' command"
        );
        // Counters keep the TTL.
        assert_eq!(val(c, &["SET", "t", "1", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["INCR", "t"]).await, int(2));
        assert_eq!(val(c, &["TTL", "t"]).await, int(100));
    })
    .await
}

#[tokio::test]
async fn incrbyfloat() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "f", "10.50"]).await, OK);
        assert_eq!(val(c, &["INCRBYFLOAT", "f", "0.1"]).await, bulk("10.6"));
        assert_eq!(val(c, &["INCRBYFLOAT", "f", "-5"]).await, bulk("5.6"));
        assert_eq!(val(c, &["GET", "f"]).await, bulk("5.6"));
        assert_eq!(val(c, &["SET", "f", "5.0e3"]).await, OK);
        assert_eq!(val(c, &["INCRBYFLOAT", "f", "2.0e2"]).await, bulk("5200"));
        assert_eq!(val(c, &["INCRBYFLOAT", "new", "3"]).await, bulk("3"));
        assert_eq!(val(c, &["SET", "f", "3"]).await, OK);
        assert_eq!(val(c, &["INCRBYFLOAT", "f", "-3"]).await, bulk("0"));
        assert_eq!(val(c, &["INCRBYFLOAT", "f", "-0.5"]).await, bulk("-0.5"));
        assert_eq!(val(c, &["SET", "f", "1"]).await, OK);
        assert_eq!(
            val(c, &["INCRBYFLOAT", "f", "0.0000001"]).await,
            bulk("1.0000001")
        );

        for bad in ["x", " 1", "nan", ""] {
            assert_eq!(
                q_err(c, &["INCRBYFLOAT", "f", bad]).await,
                "ERR value is not a valid float",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["INCRBYFLOAT", "f", "inf"]).await,
            "ERR increment would produce NaN or Infinity"
        );
        assert_eq!(val(c, &["SET", "s", "abc"]).await, OK);
        assert_eq!(
            q_err(c, &["INCRBYFLOAT", "s", "1"]).await,
            "ERR value is not a valid float"
        );
        // TTL is kept.
        assert_eq!(val(c, &["SET", "t", "1.5", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["INCRBYFLOAT", "t", "1"]).await, bulk("2.5"));
        assert_eq!(val(c, &["TTL", "t"]).await, int(100));
    })
    .await
}
