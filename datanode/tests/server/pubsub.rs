//! Pub/Sub over real connections: exact RESP2 arrays and RESP3 pushes, the order of a
//! connection's own messages and replies, and the pubsub output limit disconnecting a
//! subscriber that does not read while its publisher goes on at full speed.

use crate::util::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn resp2_and_resp3_subscribers_get_their_shapes() {
    bounded(async {
        let server = start().await;
        let mut r2 = Raw::connect(server.addr()).await;
        let mut r3 = Raw::connect(server.addr()).await;
        r3.cmd(&["HELLO", "3"]).await;
        assert_eq!(
            r2.cmd(&["SUBSCRIBE", "a", "b"]).await,
            "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(r2.reply().await, "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
        assert_eq!(
            r3.cmd(&["PSUBSCRIBE", "a*"]).await,
            ">3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:1\r\n"
        );
        let mut p = Raw::connect(server.addr()).await;
        assert_eq!(p.cmd(&["PUBLISH", "a", "x"]).await, ":2\r\n");
        assert_eq!(
            r2.reply().await,
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            r3.reply().await,
            ">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$1\r\nx\r\n"
        );
        // Subscribed RESP2: Redis's refusal and PING's array; RESP3 runs anything.
        assert_eq!(
            r2.cmd(&["GET", "k"]).await,
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
        );
        assert_eq!(r2.cmd(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        assert_eq!(r3.cmd(&["GET", "k"]).await, "_\r\n");
        // A RESP3 connection publishing to itself reads the message before the reply, as
        // Redis writes it.
        assert_eq!(
            r3.cmd(&["PUBLISH", "ab", "self"]).await,
            ">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$4\r\nself\r\n"
        );
        assert_eq!(r3.reply().await, ":1\r\n");
        assert_eq!(
            p.cmd(&["PUBSUB", "NUMSUB", "a", "b", "c"]).await,
            "*6\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:1\r\n$1\r\nc\r\n:0\r\n"
        );
        assert_eq!(r2.cmd(&["RESET"]).await, "+RESET\r\n");
        assert_eq!(r2.cmd(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(p.cmd(&["PUBLISH", "a", "x"]).await, ":1\r\n");
        // A closed subscriber is forgotten.
        drop(r3);
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.cmd(&["PUBSUB", "NUMPAT"]).await != ":0\r\n" {
            assert!(Instant::now() < deadline, "the closed subscriber is remembered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn client_reply_off_and_skip_withhold_replies_but_not_messages() {
    bounded(async {
        let server = start().await;
        let mut c = Raw::connect(server.addr()).await;
        let mut p = Raw::connect(server.addr()).await;
        c.send(&resp(&["CLIENT", "REPLY", "OFF"])).await;
        c.send(&resp(&["SET", "k", "1"])).await;
        c.send(&resp(&["SUBSCRIBE", "ch"])).await;
        // The subscription's confirmation is a pushed message: it still arrives.
        assert_eq!(
            c.reply().await,
            "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        );
        assert_eq!(p.cmd(&["PUBLISH", "ch", "m"]).await, ":1\r\n");
        assert_eq!(
            c.reply().await,
            "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n"
        );
        assert_eq!(c.cmd(&["RESET"]).await, "+RESET\r\n");
        c.send(&resp(&["CLIENT", "REPLY", "SKIP"])).await;
        c.send(&resp(&["GET", "k"])).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
        assert_eq!(p.cmd(&["GET", "k"]).await, "$1\r\n1\r\n");
        server.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_disconnected_and_never_slows_the_publisher() {
    bounded(async {
        let server = start().await;
        let mut p = Raw::connect(server.addr()).await;
        assert_eq!(
            p.cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 0 0"
            ])
            .await,
            "+OK\r\n"
        );
        let mut stuck = Raw::connect(server.addr()).await;
        stuck.cmd(&["SUBSCRIBE", "firehose"]).await;
        let mut fine = Raw::connect(server.addr()).await;
        fine.cmd(&["SUBSCRIBE", "other"]).await;
        let payload = "x".repeat(64 * 1024);
        let publish = resp(&["PUBLISH", "firehose", payload.as_str()]);
        // Far more than the limit plus every socket buffer on the way.
        let started = Instant::now();
        let mut gone = false;
        for _ in 0..4000 {
            let n = p.call(&publish).await;
            if n == ":0\r\n" {
                gone = true;
                break;
            }
            assert_eq!(n, ":1\r\n");
        }
        assert!(gone, "the stuck subscriber was never disconnected");
        eprintln!("disconnected after {:?}", started.elapsed());
        // Its connection was closed by the server.
        let rest = stuck.read_to_eof().await;
        assert!(rest.len() < 64 << 20, "read {} bytes", rest.len());
        // Others are unaffected.
        assert_eq!(p.cmd(&["PUBLISH", "other", "hi"]).await, ":1\r\n");
        assert_eq!(
            fine.reply().await,
            "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$2\r\nhi\r\n"
        );
        server.shutdown().await;
    })
    .await
}

/// (channel, payload) of a RESP2 `pmessage`.
fn pmessage_of(reply: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(reply);
    let parts: Vec<&str> = text.split("\r\n").collect();
    assert!(
        parts.len() >= 9 && parts[0] == "*4" && parts[2] == "pmessage",
        "{text:?}"
    );
    (parts[6].to_string(), parts[8].to_string())
}

/// The `x` and `e` classes: a key the active expiry cycle removes (nobody reads it) and keys
/// `maxmemory` evicts are announced, one event per key, each for a key that is gone, as many
/// as INFO counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_evicted_keys_are_announced_to_keyspace_subscribers() {
    bounded(async {
        let server = start().await;
        let mut c = Raw::connect(server.addr()).await;
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Exe"])
                .await,
            "+OK\r\n"
        );
        let mut sub = Raw::connect(server.addr()).await;
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]).await;
        assert_eq!(c.cmd(&["SET", "gone", "v", "PX", "20"]).await, "+OK\r\n");
        assert_eq!(
            pmessage_of(&sub.reply().await),
            ("__keyevent@0__:expired".to_string(), "gone".to_string())
        );

        let info = String::from_utf8(c.cmd(&["INFO", "memory"]).await.to_vec()).expect("utf-8");
        let used: u64 = info_field(&info, "used_memory");
        let limit = (used + (2 << 20)).to_string();
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"])
                .await,
            "+OK\r\n"
        );
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxmemory", &limit]).await,
            "+OK\r\n"
        );
        // 8 MB of values into a 2 MB allowance.
        let value = "v".repeat(1024);
        for i in 0..8192 {
            assert_eq!(c.cmd(&["SET", &format!("k{i}"), &value]).await, "+OK\r\n");
        }
        let mut evicted = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = String::from_utf8(c.cmd(&["INFO", "stats"]).await.to_vec()).expect("utf-8");
            let counted: usize = info_field(&info, "evicted_keys");
            assert!(counted > 0, "nothing was evicted");
            assert!(
                evicted.len() <= counted,
                "{} events, {counted} evicted",
                evicted.len()
            );
            if evicted.len() == counted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {counted} events",
                evicted.len()
            );
            let (channel, key) = pmessage_of(&sub.reply().await);
            assert_eq!(channel, "__keyevent@0__:evicted");
            assert!(evicted.insert(key.clone()), "{key} evicted twice");
        }
        for key in &evicted {
            assert_eq!(c.cmd(&["EXISTS", key]).await, ":0\r\n", "{key}");
        }
        server.shutdown().await;
    })
    .await
}
