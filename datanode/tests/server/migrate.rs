//! DUMP, RESTORE and MIGRATE against a real redis-server, both ways: a value DUMPed by one
//! RESTOREs in the other, and MIGRATE run by each towards the other. Skipped, with a note,
//! when `redis-server` is not on PATH.

use crate::util::*;
use chkv_datanode::config::Config;
use chkv_testkit::redis_server::RedisServer;
use redis::aio::MultiplexedConnection;

async fn redis_or_skip(extra: &[&str]) -> Option<RedisServer> {
    let r = RedisServer::start(extra).await;
    if r.is_none() {
        eprintln!("note: redis-server is not on PATH; skipping the migration test");
    }
    r
}

/// Values that exercise Redis's string encodings: raw, integer (8, 16, 32 bit and too wide),
/// LZF-compressed (long and repetitive), binary and empty.
fn samples() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        "hello",
        "0",
        "-7",
        "300",
        "-40000",
        "2147483647",
        "9999999999",
        "007",
        "",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| (format!("s:{i}"), s.as_bytes().to_vec()))
    .collect();
    v.push(("s:lzf".into(), b"abcabcabc".repeat(200)));
    v.push(("s:bin".into(), (0..=255u8).collect()));
    v.push((
        "s:big".into(),
        (0..100_000u32).map(|i| (i % 7) as u8).collect(),
    ));
    v
}

/// A reply's elements (or map entries) as sorted strings, for order-free comparison.
fn sorted(v: redis::Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        redis::Value::Array(items) | redis::Value::Set(items) => items
            .into_iter()
            .map(|i| redis::from_redis_value::<String>(i).expect("string"))
            .collect(),
        redis::Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    redis::from_redis_value::<String>(k).expect("field"),
                    redis::from_redis_value::<String>(v).expect("value")
                )
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    out.sort();
    out
}

async fn dump_of(con: &mut MultiplexedConnection, key: &str) -> Vec<u8> {
    q(con, &[b"DUMP".as_slice(), key.as_bytes()]).await
}

#[tokio::test]
async fn dump_and_restore_both_ways_with_redis() {
    bounded(async {
        let Some(redis) = redis_or_skip(&[]).await else {
            return;
        };
        let node = start().await;
        let mut r = connect(redis.addr).await;
        let mut c = connect(node.addr()).await;
        for (k, v) in samples() {
            let _: () = q(&mut r, &[b"SET".as_slice(), k.as_bytes(), &v]).await;
            // Redis -> CHKV.
            let p = dump_of(&mut r, &k).await;
            let ok: String = q(&mut c, &[b"RESTORE".as_slice(), k.as_bytes(), b"60000", &p]).await;
            assert_eq!(ok, "OK");
            let got: Vec<u8> = q(&mut c, &["GET", &k]).await;
            assert_eq!(got, v, "{k} from redis");
            let pttl: i64 = q(&mut c, &["PTTL", &k]).await;
            assert!((59_000..=60_000).contains(&pttl), "{k}: {pttl}");
            // CHKV -> Redis, under another name.
            let p = dump_of(&mut c, &k).await;
            let back = format!("{k}:back");
            let ok: String = q(&mut r, &[b"RESTORE".as_slice(), back.as_bytes(), b"0", &p]).await;
            assert_eq!(ok, "OK");
            let got: Vec<u8> = q(&mut r, &["GET", &back]).await;
            assert_eq!(got, v, "{k} into redis");
        }
        // Hashes and sets, in every encoding redis-server 7.0 writes (listpack, intset,
        // hash table) and CHKV writes (the plain forms), both ways.
        let big_fields: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
        let big_members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        let mut hbig: Vec<&str> = vec!["HSET", "h:big"];
        for f in &big_fields {
            hbig.push(f);
            hbig.push("v");
        }
        let collections: Vec<Vec<&str>> = vec![
            vec!["HSET", "h:small", "a", "1", "b", "two", "n", "-5"],
            hbig,
            vec!["SADD", "set:ints", "1", "2", "300", "-70000", "5000000000"],
            vec!["SADD", "set:strs", "a", "b", "c"],
            big_members
                .iter()
                .fold(vec!["SADD", "set:big"], |mut v, m| {
                    v.push(m.as_str());
                    v
                }),
        ];
        for args in &collections {
            let key = args[1];
            let _: i64 = q(&mut r, args).await;
            let read = |kind: &str| -> [&str; 2] {
                if kind == "h" {
                    ["HGETALL", key]
                } else {
                    ["SMEMBERS", key]
                }
            };
            let kind = if key.starts_with("h:") { "h" } else { "s" };
            let want: redis::Value = q(&mut r, &read(kind)).await;
            let p = dump_of(&mut r, key).await;
            let ok: String = q(&mut c, &[b"RESTORE".as_slice(), key.as_bytes(), b"0", &p]).await;
            assert_eq!(ok, "OK", "{key}");
            let got: redis::Value = q(&mut c, &read(kind)).await;
            assert_eq!(sorted(got), sorted(want.clone()), "{key} from redis");
            let p = dump_of(&mut c, key).await;
            let back = format!("{key}:back");
            let ok: String = q(&mut r, &[b"RESTORE".as_slice(), back.as_bytes(), b"0", &p]).await;
            assert_eq!(ok, "OK", "{key} into redis");
            let read_back = if kind == "h" {
                ["HGETALL", back.as_str()]
            } else {
                ["SMEMBERS", back.as_str()]
            };
            let got: redis::Value = q(&mut r, &read_back).await;
            assert_eq!(sorted(got), sorted(want), "{key} back in redis");
        }
        // The same errors on both sides.
        let p = dump_of(&mut r, "s:0").await;
        for con in [&mut r, &mut c] {
            let e = q_err(con, &[b"RESTORE".as_slice(), b"s:0", b"0", &p]).await;
            assert_eq!(e, "BUSYKEY Target key name already exists.");
            let mut bad = p.clone();
            bad[3] ^= 1;
            let e = q_err(con, &[b"RESTORE".as_slice(), b"x", b"0", &bad]).await;
            assert_eq!(e, "ERR DUMP payload version or checksum are wrong");
        }
        node.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn migrate_from_chkv_to_redis_and_back() {
    bounded(async {
        let Some(redis) = redis_or_skip(&["--requirepass", "sekret"]).await else {
            return;
        };
        let node = start_with(Config {
            requirepass: Some(b"chkvpw".to_vec()),
            ..config()
        })
        .await;
        let mut r = connect_url(&format!("redis://:sekret@{}/", redis.addr)).await;
        let mut c = connect_url(&format!("redis://:chkvpw@{}/", node.addr())).await;
        let (rhost, rport) = ("127.0.0.1", redis.addr.port().to_string());
        let _: () = q(&mut c, &["SET", "a", "1", "PX", "50000"]).await;
        let _: () = q(&mut c, &["SET", "b", "two"]).await;
        let _: () = q(&mut c, &["SET", "c", "three"]).await;

        // Without the target's password: the target's error, and nothing moved.
        let e = q_err(&mut c, &["MIGRATE", rhost, &rport, "a", "0", "5000"]).await;
        assert!(
            e.starts_with("ERR Target instance replied with error: NOAUTH"),
            "{e}"
        );
        assert_eq!(q::<i64, _>(&mut c, &["EXISTS", "a"]).await, 1);

        // KEYS with AUTH: moved, TTL kept, deleted here; a missing key is skipped.
        let ok: String = q(
            &mut c,
            &[
                "MIGRATE", rhost, &rport, "", "0", "5000", "AUTH", "sekret", "KEYS", "a", "b",
                "nope",
            ],
        )
        .await;
        assert_eq!(ok, "OK");
        assert_eq!(q::<i64, _>(&mut c, &["EXISTS", "a", "b"]).await, 0);
        assert_eq!(q::<String, _>(&mut r, &["GET", "a"]).await, "1");
        assert_eq!(q::<String, _>(&mut r, &["GET", "b"]).await, "two");
        let pttl: i64 = q(&mut r, &["PTTL", "a"]).await;
        assert!((40_000..=50_000).contains(&pttl), "{pttl}");
        assert_eq!(q::<i64, _>(&mut r, &["TTL", "b"]).await, -1);

        // COPY keeps the key here; without REPLACE the target refuses an existing key.
        let _: () = q(&mut r, &["SET", "c", "old"]).await;
        let e = q_err(
            &mut c,
            &[
                "MIGRATE", rhost, &rport, "c", "0", "5000", "COPY", "AUTH2", "default", "sekret",
            ],
        )
        .await;
        assert_eq!(
            e,
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
        );
        let ok: String = q(
            &mut c,
            &[
                "MIGRATE", rhost, &rport, "c", "0", "5000", "COPY", "REPLACE", "AUTH", "sekret",
            ],
        )
        .await;
        assert_eq!(ok, "OK");
        assert_eq!(q::<String, _>(&mut r, &["GET", "c"]).await, "three");
        assert_eq!(q::<String, _>(&mut c, &["GET", "c"]).await, "three");
        let nokey: String = q(&mut c, &["MIGRATE", rhost, &rport, "nope", "0", "5000"]).await;
        assert_eq!(nokey, "NOKEY");

        // Redis's own MIGRATE into CHKV (it sends AUTH, SELECT 0 and RESTORE).
        let (chost, cport) = ("127.0.0.1", node.addr().port().to_string());
        let _: () = q(
            &mut r,
            &["SET", "fromredis", "x".repeat(500).as_str(), "EX", "100"],
        )
        .await;
        let ok: String = q(
            &mut r,
            &[
                "MIGRATE",
                chost,
                &cport,
                "fromredis",
                "0",
                "5000",
                "AUTH",
                "chkvpw",
            ],
        )
        .await;
        assert_eq!(ok, "OK");
        assert_eq!(
            q::<String, _>(&mut c, &["GET", "fromredis"]).await,
            "x".repeat(500)
        );
        let ttl: i64 = q(&mut c, &["TTL", "fromredis"]).await;
        assert!((90..=100).contains(&ttl), "{ttl}");
        assert_eq!(q::<i64, _>(&mut r, &["EXISTS", "fromredis"]).await, 0);
        node.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn migrate_to_nothing_is_an_ioerr() {
    bounded(async {
        let node = start().await;
        let mut c = connect(node.addr()).await;
        let _: () = q(&mut c, &["SET", "k", "v"]).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
            .to_string();
        let e = q_err(&mut c, &["MIGRATE", "127.0.0.1", &port, "k", "0", "1000"]).await;
        assert_eq!(e, "IOERR error or timeout connecting to the client");
        assert_eq!(q::<String, _>(&mut c, &["GET", "k"]).await, "v");
        node.shutdown().await;
    })
    .await
}
