//! Keyspace commands through the `redis` crate.

use crate::util::*;
use redis::AsyncCommands;
use std::collections::HashSet;

#[tokio::test]
async fn del_unlink_exists_touch_type() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["MSET", "a", "1", "b", "2", "c", "3"]).await, OK);
        // Repeated keys count every time.
        assert_eq!(val(c, &["EXISTS", "a", "a", "b", "nope"]).await, int(3));
        assert_eq!(val(c, &["TOUCH", "a", "c", "nope"]).await, int(2));
        assert_eq!(
            val(c, &["TYPE", "a"]).await,
            redis::Value::SimpleString("string".into())
        );
        assert_eq!(
            val(c, &["TYPE", "nope"]).await,
            redis::Value::SimpleString("none".into())
        );
        assert_eq!(val(c, &["DEL", "a", "b", "nope"]).await, int(2));
        assert_eq!(val(c, &["DEL", "a"]).await, int(0));
        assert_eq!(val(c, &["UNLINK", "c", "c"]).await, int(1));
        assert_eq!(val(c, &["DBSIZE"]).await, int(0));
        for name in ["del", "unlink", "exists", "touch"] {
            assert_eq!(
                q_err(c, &[name]).await,
                format!("ERR wrong number of arguments for '{name}' command")
            );
        }
        assert_eq!(
            q_err(c, &["TYPE", "a", "b"]).await,
            "ERR wrong number of arguments for 'type' command"
        );
    })
    .await
}

#[tokio::test]
async fn expire_pexpire_ttl_pttl() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
        assert_eq!(val(c, &["PTTL", "k"]).await, int(-1));
        assert_eq!(val(c, &["TTL", "nope"]).await, int(-2));
        assert_eq!(val(c, &["PTTL", "nope"]).await, int(-2));
        assert_eq!(val(c, &["EXPIRE", "k", "100"]).await, int(1));
        assert_eq!(val(c, &["TTL", "k"]).await, int(100));
        assert_eq!(val(c, &["PEXPIRE", "k", "1500"]).await, int(1));
        let pttl: i64 = q(c, &["PTTL", "k"]).await;
        assert!((1000..=1500).contains(&pttl), "PTTL {pttl}");
        assert_eq!(val(c, &["EXPIRE", "nope", "10"]).await, int(0));
        assert_eq!(val(c, &["PEXPIRE", "nope", "10"]).await, int(0));

        // A TTL that is not positive deletes the key.
        assert_eq!(val(c, &["EXPIRE", "k", "0"]).await, int(1));
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["PEXPIRE", "k", "-1"]).await, int(1));
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));

        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        for (args, name) in [
            (&["EXPIRE", "k", "9223372036854775807"][..], "expire"),
            (&["EXPIRE", "k", "-9223372036854775808"], "expire"),
            (&["PEXPIRE", "k", "9223372036854775807"], "pexpire"),
            (&["EXPIREAT", "k", "9223372036854775807"], "expireat"),
        ] {
            assert_eq!(
                q_err(c, args).await,
                format!("ERR invalid expire time in '{name}' command"),
                "{args:?}"
            );
        }
        for bad in [
            &["EXPIRE", "k", "x"][..],
            &["EXPIRE", "k", "1.5"],
            &["PEXPIRE", "k", ""],
        ] {
            assert_eq!(
                q_err(c, bad).await,
                "ERR value is not an integer or out of range",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["EXPIRE", "k"]).await,
            "ERR wrong number of arguments for 'expire' command"
        );
        assert_eq!(
            q_err(c, &["TTL"]).await,
            "ERR wrong number of arguments for 'ttl' command"
        );
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
    })
    .await
}

#[tokio::test]
async fn expire_conditions_nx_xx_gt_lt() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        // No TTL counts as an infinite TTL.
        assert_eq!(val(c, &["EXPIRE", "k", "100", "XX"]).await, int(0));
        assert_eq!(val(c, &["EXPIRE", "k", "100", "GT"]).await, int(0));
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
        assert_eq!(val(c, &["EXPIRE", "k", "100", "LT"]).await, int(1));
        assert_eq!(val(c, &["EXPIRE", "k", "200", "NX"]).await, int(0));
        assert_eq!(val(c, &["EXPIRE", "k", "200", "XX"]).await, int(1));
        assert_eq!(val(c, &["EXPIRE", "k", "100", "GT"]).await, int(0));
        assert_eq!(val(c, &["EXPIRE", "k", "300", "gt"]).await, int(1));
        assert_eq!(val(c, &["EXPIRE", "k", "400", "LT"]).await, int(0));
        assert_eq!(val(c, &["EXPIRE", "k", "50", "lt"]).await, int(1));
        assert_eq!(val(c, &["TTL", "k"]).await, int(50));
        assert_eq!(val(c, &["EXPIRE", "k", "60", "XX", "GT"]).await, int(1));
        assert_eq!(val(c, &["EXPIRE", "k", "70", "XX", "LT"]).await, int(0));
        assert_eq!(val(c, &["TTL", "k"]).await, int(60));
        assert_eq!(val(c, &["PERSIST", "k"]).await, int(1));
        assert_eq!(val(c, &["PEXPIRE", "k", "10000", "NX"]).await, int(1));
        let later = (now_ms() / 1000 + 1000).to_string();
        assert_eq!(val(c, &["EXPIREAT", "k", &later, "GT"]).await, int(1));
        let later_ms = (now_ms() + 2_000_000).to_string();
        assert_eq!(val(c, &["PEXPIREAT", "k", &later_ms, "LT"]).await, int(0));
        assert_eq!(val(c, &["PEXPIREAT", "k", &later_ms, "GT"]).await, int(1));
        assert_eq!(val(c, &["EXPIRE", "nope", "10", "NX"]).await, int(0));

        for bad in [
            &["EXPIRE", "k", "10", "NX", "XX"][..],
            &["EXPIRE", "k", "10", "XX", "NX"],
            &["EXPIRE", "k", "10", "NX", "GT"],
            &["PEXPIRE", "k", "10", "LT", "NX"],
        ] {
            assert_eq!(
                q_err(c, bad).await,
                "ERR NX and XX, GT or LT options at the same time are not compatible",
                "{bad:?}"
            );
        }
        assert_eq!(
            q_err(c, &["EXPIRE", "k", "10", "GT", "LT"]).await,
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            q_err(c, &["EXPIRE", "k", "10", "FOO"]).await,
            "ERR Unsupported option FOO"
        );
        // Failed commands changed nothing.
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, bulk_int(&later_ms));
    })
    .await
}

fn bulk_int(s: &str) -> redis::Value {
    int(s.parse().expect("number"))
}

#[tokio::test]
async fn expireat_expiretime_persist() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["EXPIRETIME", "k"]).await, int(-1));
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, int(-1));
        assert_eq!(val(c, &["EXPIRETIME", "nope"]).await, int(-2));
        assert_eq!(val(c, &["PEXPIRETIME", "nope"]).await, int(-2));

        let at = now_ms() / 1000 + 500;
        assert_eq!(val(c, &["EXPIREAT", "k", &at.to_string()]).await, int(1));
        assert_eq!(val(c, &["EXPIRETIME", "k"]).await, int(at as i64));
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, int(at as i64 * 1000));
        let ttl: i64 = q(c, &["TTL", "k"]).await;
        assert!((498..=500).contains(&ttl), "TTL {ttl}");
        let pat = now_ms() + 123_456;
        assert_eq!(val(c, &["PEXPIREAT", "k", &pat.to_string()]).await, int(1));
        assert_eq!(val(c, &["PEXPIRETIME", "k"]).await, int(pat as i64));
        assert_eq!(val(c, &["EXPIRETIME", "k"]).await, int(pat as i64 / 1000));

        assert_eq!(val(c, &["PERSIST", "k"]).await, int(1));
        assert_eq!(val(c, &["PERSIST", "k"]).await, int(0));
        assert_eq!(val(c, &["PERSIST", "nope"]).await, int(0));
        assert_eq!(val(c, &["TTL", "k"]).await, int(-1));
        assert_eq!(val(c, &["EXPIRETIME", "k"]).await, int(-1));

        // A time in the past deletes the key, whatever the condition says about "greater".
        assert_eq!(val(c, &["EXPIREAT", "k", "1"]).await, int(1));
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["PEXPIREAT", "k", "1", "LT"]).await, int(1));
        assert_eq!(val(c, &["EXISTS", "k"]).await, int(0));
        assert_eq!(val(c, &["EXPIREAT", "nope", "1"]).await, int(0));
        assert_eq!(
            q_err(c, &["PERSIST"]).await,
            "ERR wrong number of arguments for 'persist' command"
        );
    })
    .await
}

#[tokio::test]
async fn rename_renamenx_copy() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(q_err(c, &["RENAME", "a", "b"]).await, "ERR no such key");
        assert_eq!(q_err(c, &["RENAMENX", "a", "b"]).await, "ERR no such key");
        assert_eq!(val(c, &["SET", "a", "1", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["RENAME", "a", "b"]).await, OK);
        assert_eq!(val(c, &["GET", "b"]).await, bulk("1"));
        assert_eq!(val(c, &["TTL", "b"]).await, int(100));
        assert_eq!(val(c, &["EXISTS", "a"]).await, int(0));
        assert_eq!(val(c, &["RENAME", "b", "b"]).await, OK);
        assert_eq!(val(c, &["RENAMENX", "b", "b"]).await, int(0));
        assert_eq!(val(c, &["SET", "c", "3"]).await, OK);
        assert_eq!(val(c, &["RENAMENX", "b", "c"]).await, int(0));
        assert_eq!(val(c, &["GET", "c"]).await, bulk("3"));
        assert_eq!(val(c, &["RENAMENX", "b", "d"]).await, int(1));
        // RENAME overwrites the destination, TTL included.
        assert_eq!(val(c, &["RENAME", "d", "c"]).await, OK);
        assert_eq!(val(c, &["GET", "c"]).await, bulk("1"));
        assert_eq!(val(c, &["TTL", "c"]).await, int(100));
        assert_eq!(val(c, &["DBSIZE"]).await, int(1));
        assert_eq!(
            q_err(c, &["RENAME", "c"]).await,
            "ERR wrong number of arguments for 'rename' command"
        );

        assert_eq!(val(c, &["COPY", "c", "e"]).await, int(1));
        assert_eq!(val(c, &["GET", "e"]).await, bulk("1"));
        assert_eq!(val(c, &["TTL", "e"]).await, int(100));
        assert_eq!(val(c, &["SET", "c", "2"]).await, OK);
        assert_eq!(val(c, &["COPY", "c", "e"]).await, int(0));
        assert_eq!(val(c, &["GET", "e"]).await, bulk("1"));
        assert_eq!(val(c, &["COPY", "c", "e", "REPLACE"]).await, int(1));
        assert_eq!(val(c, &["GET", "e"]).await, bulk("2"));
        assert_eq!(val(c, &["TTL", "e"]).await, int(-1));
        assert_eq!(val(c, &["COPY", "nope", "e"]).await, int(0));
        assert_eq!(val(c, &["COPY", "c", "f", "DB", "0"]).await, int(1));
        // The copy is independent of its source.
        assert_eq!(val(c, &["APPEND", "f", "x"]).await, int(2));
        assert_eq!(val(c, &["GET", "c"]).await, bulk("2"));
        assert_eq!(
            q_err(c, &["COPY", "c", "c"]).await,
            "ERR source and destination objects are the same"
        );
        assert_eq!(
            q_err(c, &["COPY", "c", "g", "BOGUS"]).await,
            "ERR syntax error"
        );
        assert_eq!(
            q_err(c, &["COPY", "c", "g", "DB"]).await,
            "ERR syntax error"
        );
        assert_eq!(
            q_err(c, &["COPY", "c", "g", "DB", "x"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(val(c, &["EXISTS", "g"]).await, int(0));
    })
    .await
}

#[tokio::test]
async fn keys_and_randomkey() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["RANDOMKEY"]).await, NIL);
        let keys: Vec<String> = q(c, &["KEYS", "*"]).await;
        assert!(keys.is_empty());
        for i in 0..50 {
            assert_eq!(val(c, &["SET", &format!("user:{i}"), "v"]).await, OK);
            assert_eq!(val(c, &["SET", &format!("item:{i}"), "v"]).await, OK);
        }
        let mut all: Vec<String> = q(c, &["KEYS", "*"]).await;
        all.sort();
        let mut want: Vec<String> = (0..50)
            .flat_map(|i| [format!("user:{i}"), format!("item:{i}")])
            .collect();
        want.sort();
        assert_eq!(all, want);
        let mut ones: Vec<String> = q(c, &["KEYS", "user:1*"]).await;
        ones.sort();
        let mut want: Vec<String> = std::iter::once("user:1".to_string())
            .chain((10..20).map(|i| format!("user:{i}")))
            .collect();
        want.sort();
        assert_eq!(ones, want);
        let some: Vec<String> = q(c, &["KEYS", "item:[1-2]?"]).await;
        assert_eq!(some.len(), 20, "{some:?}");
        let none: Vec<String> = q(c, &["KEYS", "nothing*"]).await;
        assert!(none.is_empty());
        assert_eq!(
            q_err(c, &["KEYS"]).await,
            "ERR wrong number of arguments for 'keys' command"
        );

        for _ in 0..20 {
            let k: String = q(c, &["RANDOMKEY"]).await;
            assert!(k.starts_with("user:") || k.starts_with("item:"), "{k}");
        }
        assert_eq!(
            q_err(c, &["RANDOMKEY", "x"]).await,
            "ERR wrong number of arguments for 'randomkey' command"
        );
    })
    .await
}

/// Iterates SCAN with `extra` arguments until the cursor is 0, returning every key seen.
async fn scan_all(c: &mut redis::aio::MultiplexedConnection, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let mut args = vec!["SCAN", &cursor];
        args.extend_from_slice(extra);
        let (next, keys): (String, Vec<String>) = q(c, &args).await;
        out.extend(keys);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN never returned cursor 0");
}

#[tokio::test]
async fn scan_visits_every_key() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let (next, keys): (String, Vec<String>) = q(c, &["SCAN", "0"]).await;
        assert_eq!((next.as_str(), keys.len()), ("0", 0));

        let all: HashSet<String> = (0..5000).map(|i| format!("key:{i}")).collect();
        let mut mset = vec!["MSET".to_string()];
        for k in &all {
            mset.push(k.clone());
            mset.push("v".into());
        }
        assert_eq!(val(c, &mset).await, OK);
        assert_eq!(val(c, &["DBSIZE"]).await, int(5000));

        for extra in [
            &[][..],
            &["COUNT", "100"],
            &["COUNT", "1"],
            &["COUNT", "100000"],
        ] {
            let seen = scan_all(c, extra).await;
            let unique: HashSet<String> = seen.iter().cloned().collect();
            assert_eq!(unique, all, "SCAN {extra:?} missed keys");
        }

        let want: HashSet<String> = all
            .iter()
            .filter(|k| k.starts_with("key:42"))
            .cloned()
            .collect();
        // key:42, key:420..=429 and key:4200..=4299.
        assert_eq!(want.len(), 111);
        let seen: HashSet<String> = scan_all(c, &["MATCH", "key:42*", "COUNT", "50"])
            .await
            .into_iter()
            .collect();
        assert_eq!(seen, want);
        let seen: HashSet<String> = scan_all(c, &["TYPE", "string", "COUNT", "500"])
            .await
            .into_iter()
            .collect();
        assert_eq!(seen, all);
        assert!(scan_all(c, &["TYPE", "hash", "COUNT", "500"])
            .await
            .is_empty());
        assert!(scan_all(c, &["MATCH", "nothing*"]).await.is_empty());

        // The client library's own iterator.
        let mut iter: redis::AsyncIter<String> = c.scan_match("key:1??").await.expect("scan");
        let mut seen = HashSet::new();
        while let Some(k) = step("scan_match", iter.next_item()).await {
            seen.insert(k.expect("key"));
        }
        drop(iter);
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|k| k.len() == 7 && k.starts_with("key:1")));

        assert_eq!(q_err(c, &["SCAN", "x"]).await, "ERR invalid cursor");
        for bad in [
            &["SCAN", "0", "COUNT", "0"][..],
            &["SCAN", "0", "COUNT"],
            &["SCAN", "0", "MATCH"],
            &["SCAN", "0", "FOO", "1"],
        ] {
            assert_eq!(q_err(c, bad).await, "ERR syntax error", "{bad:?}");
        }
        assert_eq!(
            q_err(c, &["SCAN", "0", "COUNT", "x"]).await,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["SCAN"]).await,
            "ERR wrong number of arguments for 'scan' command"
        );
    })
    .await
}
