//! Expiry with real time: lazy (on access) and active (the background cycle).

use crate::util::*;
use std::time::Duration;

#[tokio::test]
async fn expired_keys_are_gone_on_access() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        for k in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(val(c, &["SET", k, "v", "PX", "50"]).await, OK);
        }
        assert_eq!(val(c, &["SET", "keep", "v"]).await, OK);
        // Readable while its time lasts (a TTL no loaded machine outlasts: reading "a" here
        // failed once with five test binaries at once, 50 ms having passed since its SET).
        assert_eq!(val(c, &["SET", "later", "v", "PX", "600000"]).await, OK);
        assert_eq!(val(c, &["GET", "later"]).await, bulk("v"));
        tokio::time::sleep(Duration::from_millis(100)).await;

        assert_eq!(val(c, &["GET", "a"]).await, NIL);
        assert_eq!(val(c, &["EXISTS", "b"]).await, int(0));
        assert_eq!(val(c, &["TTL", "c"]).await, int(-2));
        assert_eq!(val(c, &["PTTL", "c"]).await, int(-2));
        // Writes treat an expired key as missing: a fresh key without a TTL.
        assert_eq!(val(c, &["INCR", "d"]).await, int(1));
        assert_eq!(val(c, &["TTL", "d"]).await, int(-1));
        assert_eq!(val(c, &["APPEND", "e", "x"]).await, int(1));
        assert_eq!(val(c, &["GET", "e"]).await, bulk("x"));
        assert_eq!(val(c, &["SETNX", "f", "new"]).await, int(1));
        assert_eq!(val(c, &["GET", "f"]).await, bulk("new"));
        let keys: std::collections::HashSet<String> = q(c, &["KEYS", "*"]).await;
        assert_eq!(
            keys,
            ["d", "e", "f", "keep", "later"].map(String::from).into()
        );
    })
    .await
}

#[tokio::test]
async fn expired_key_cannot_be_renamed() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "g", "v", "PX", "30"]).await, OK);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(q_err(c, &["RENAME", "g", "h"]).await, "ERR no such key");
        assert_eq!(val(c, &["COPY", "g", "h"]).await, int(0));
        assert_eq!(val(c, &["EXISTS", "h"]).await, int(0));
    })
    .await
}

#[tokio::test]
async fn lazy_expiry_counts_and_reclaims() {
    bounded(async {
        // hz 1: the first active cycle is a second away, so the access below does the work.
        let s = start_with(chkv_datanode::config::Config { hz: 1, ..config() }).await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v", "PX", "50"]).await, OK);
        assert_eq!(val(c, &["SET", "keep", "v"]).await, OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before: i64 = q(c, &["DBSIZE"]).await;
        assert!(before == 2 || before == 1, "DBSIZE {before}");
        assert_eq!(val(c, &["GET", "k"]).await, NIL);
        assert_eq!(val(c, &["DBSIZE"]).await, int(1));
        let stats: String = q(c, &["INFO", "stats"]).await;
        assert_eq!(info_field::<u64>(&stats, "expired_keys"), 1);
        assert_eq!(info_field::<u64>(&stats, "keyspace_misses"), 1);
    })
    .await
}

#[tokio::test]
async fn active_expiry_reclaims_untouched_keys() {
    bounded(async {
        let s = start().await;
        let mut raw = Raw::connect(s.addr()).await;
        let mut batch = Vec::new();
        for i in 0..2000 {
            batch.extend(resp(&["SET", &format!("volatile:{i}"), "v", "PX", "50"]));
        }
        for i in 0..10 {
            batch.extend(resp(&["SET", &format!("persistent:{i}"), "v"]));
        }
        raw.send(&batch).await;
        for i in 0..2010 {
            assert_eq!(raw.reply().await, "+OK\r\n", "reply {i}");
        }
        // Only DBSIZE and INFO from here on: no command touches a volatile key.
        let c = &mut connect(s.addr()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let size: i64 = q(c, &["DBSIZE"]).await;
            if size == 10 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "DBSIZE still {size} after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats: String = q(c, &["INFO", "stats"]).await;
        let expired: u64 = info_field(&stats, "expired_keys");
        assert!(expired >= 2000, "expired_keys {expired}");
        assert_eq!(info_field::<u64>(&stats, "keyspace_misses"), 0);
        let ks: String = q(c, &["INFO", "keyspace"]).await;
        assert!(ks.contains("db0:keys=10,expires=0,"), "{ks}");
    })
    .await
}
