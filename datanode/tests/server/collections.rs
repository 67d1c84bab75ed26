//! Hashes and sets through the `redis` crate and raw RESP: typed replies, WRONGTYPE, the
//! keyspace commands on every type, and memory accounting.

use crate::util::*;
use redis::AsyncCommands;
use std::collections::{HashMap, HashSet};

#[tokio::test]
async fn hashes_through_the_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let () = c
            .hset_multiple("user:1", &[("name", "ada"), ("lang", "rust")])
            .await
            .expect("HMSET");
        let name: String = c.hget("user:1", "name").await.expect("HGET");
        assert_eq!(name, "ada");
        let all: HashMap<String, String> = c.hgetall("user:1").await.expect("HGETALL");
        assert_eq!(all.len(), 2);
        assert_eq!(all["lang"], "rust");
        let n: i64 = c.hincr("user:1", "visits", 3).await.expect("HINCRBY");
        assert_eq!(n, 3);
        let keys: Vec<String> = c.hkeys("user:1").await.expect("HKEYS");
        assert_eq!(keys, ["name", "lang", "visits"]);
        assert_eq!(
            q_err(c, &["GET", "user:1"]).await,
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        // RESP3: HGETALL is a map.
        let mut raw = Raw::connect(s.addr()).await;
        raw.cmd(&["HELLO", "3"]).await;
        assert_eq!(
            &raw.cmd(&["HGETALL", "user:1"]).await[..],
            &b"%3\r\n$4\r\nname\r\n$3\r\nada\r\n$4\r\nlang\r\n$4\r\nrust\r\n$6\r\nvisits\r\n$1\r\n3\r\n"[..]
        );
        assert_eq!(
            &raw.cmd(&["HRANDFIELD", "user:1", "1", "WITHVALUES"]).await[..3],
            &b"*1\r"[..]
        );
    })
    .await
}

#[tokio::test]
async fn sets_through_the_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let n: i64 = c.sadd("{g}a", &["x", "y", "z"]).await.expect("SADD");
        assert_eq!(n, 3);
        let _: i64 = c.sadd("{g}b", &["y", "z", "w"]).await.expect("SADD");
        let inter: HashSet<String> = c.sinter(&["{g}a", "{g}b"]).await.expect("SINTER");
        assert_eq!(inter, HashSet::from(["y".into(), "z".into()]));
        let n: i64 = c
            .sunionstore("{g}u", &["{g}a", "{g}b"])
            .await
            .expect("SUNIONSTORE");
        assert_eq!(n, 4);
        let is: bool = c.sismember("{g}u", "w").await.expect("SISMEMBER");
        assert!(is);
        let moved: bool = c.smove("{g}a", "{g}b", "x").await.expect("SMOVE");
        assert!(moved);
        let n: i64 = c.scard("{g}b").await.expect("SCARD");
        assert_eq!(n, 4);
        // RESP3: SMEMBERS is a set.
        let mut raw = Raw::connect(s.addr()).await;
        raw.cmd(&["HELLO", "3"]).await;
        raw.cmd(&["SADD", "one", "m"]).await;
        assert_eq!(
            &raw.cmd(&["SMEMBERS", "one"]).await[..],
            &b"~1\r\n$1\r\nm\r\n"[..]
        );
    })
    .await
}

#[tokio::test]
async fn keyspace_commands_work_on_every_type() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let _: i64 = c.hset("h", "f", "v").await.expect("HSET");
        let _: i64 = c.sadd("s", 1).await.expect("SADD");
        let () = c.set("str", "v").await.expect("SET");
        for (k, t) in [("h", "hash"), ("s", "set"), ("str", "string")] {
            assert_eq!(
                val(c, &["TYPE", k]).await,
                redis::Value::SimpleString(t.into())
            );
        }
        let scan: (String, Vec<String>) =
            q(c, &["SCAN", "0", "COUNT", "1000", "TYPE", "set"]).await;
        assert_eq!(scan.1, ["s"]);
        // RENAME and COPY keep the type and the TTL; DEL and UNLINK free them.
        let _: i64 = q(c, &["EXPIRE", "h", "100"]).await;
        let () = q(c, &["RENAME", "h", "h2"]).await;
        let ttl: i64 = q(c, &["TTL", "h2"]).await;
        assert!(ttl > 90);
        let n: i64 = q(c, &["COPY", "h2", "h3"]).await;
        assert_eq!(n, 1);
        let v: String = c.hget("h3", "f").await.expect("HGET");
        assert_eq!(v, "v");
        let _: i64 = c.hset("h3", "g", "w").await.expect("HSET");
        let n: i64 = c.hlen("h2").await.expect("HLEN");
        assert_eq!(n, 1, "a copy is independent of its source");
        let enc: String = q(c, &["OBJECT", "ENCODING", "s"]).await;
        assert_eq!(enc, "intset");
        let freq_err = q_err(c, &["OBJECT", "FREQ", "s"]).await;
        assert!(freq_err.contains("LFU"), "{freq_err}");
        let idle: i64 = q(c, &["OBJECT", "IDLETIME", "h3"]).await;
        assert!(idle >= 0);
        // A big set: memory is charged, and given back when UNLINK frees it in the background.
        let base: i64 = info_field(&q::<String, _>(c, &["INFO", "memory"]).await, "used_memory");
        let members: Vec<String> = (0..20_000).map(|i| format!("member:{i}")).collect();
        let _: i64 = c.sadd("big", &members).await.expect("SADD");
        let usage: i64 = q(c, &["MEMORY", "USAGE", "big"]).await;
        assert!(usage > 20_000 * 20, "{usage}");
        let grown: i64 = info_field(&q::<String, _>(c, &["INFO", "memory"]).await, "used_memory");
        assert!(grown - base >= usage - 1024, "{grown} - {base} vs {usage}");
        let n: i64 = q(c, &["UNLINK", "big", "s", "str"]).await;
        assert_eq!(n, 3);
        let after: i64 = info_field(&q::<String, _>(c, &["INFO", "memory"]).await, "used_memory");
        assert!(after < base, "{after} < {base}");
        let n: i64 = q(c, &["DEL", "h2", "h3"]).await;
        assert_eq!(n, 2);
        let n: i64 = q(c, &["DBSIZE"]).await;
        assert_eq!(n, 0);
    })
    .await
}

#[tokio::test]
async fn collections_expire() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let _: i64 = c.sadd("tmp", &["a", "b"]).await.expect("SADD");
        let _: i64 = q(c, &["PEXPIRE", "tmp", "50"]).await;
        let gone = eventually(std::time::Duration::from_secs(20), || {
            let mut c = c.clone();
            async move { q::<i64, _>(&mut c, &["EXISTS", "tmp"]).await == 0 }
        })
        .await;
        assert!(gone);
    })
    .await
}
