//! Lists and blocking commands over real TCP: typed replies, blocked clients served by
//! pushes from other connections, transactions and scripts, timeouts, CLIENT UNBLOCK,
//! disconnects, and what INFO and CLIENT LIST show meanwhile.

use crate::util::*;
use redis::AsyncCommands;
use std::time::Duration;

#[tokio::test]
async fn lists_through_the_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let n: i64 = c.rpush("l", &["a", "b", "c"]).await.expect("RPUSH");
        assert_eq!(n, 3);
        let n: i64 = c.lpush("l", "z").await.expect("LPUSH");
        assert_eq!(n, 4);
        let all: Vec<String> = c.lrange("l", 0, -1).await.expect("LRANGE");
        assert_eq!(all, ["z", "a", "b", "c"]);
        let e: String = c.lindex("l", -1).await.expect("LINDEX");
        assert_eq!(e, "c");
        let popped: Vec<String> = q(c, &["RPOP", "l", "2"]).await;
        assert_eq!(popped, ["c", "b"]);
        assert_eq!(
            q_err(c, &["GET", "l"]).await,
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        let t: String = q(c, &["TYPE", "l"]).await;
        assert_eq!(t, "list");
        // A long list: every element back in order, and its memory returned when deleted.
        let before: String = q(c, &["INFO", "memory"]).await;
        let before: u64 = info_field(&before, "used_memory");
        let items: Vec<String> = (0..20_000).map(|i| format!("item:{i}")).collect();
        for chunk in items.chunks(1000) {
            let _: i64 = c.rpush("big", chunk).await.expect("RPUSH");
        }
        let enc: String = q(c, &["OBJECT", "ENCODING", "big"]).await;
        assert_eq!(enc, "quicklist");
        let back: Vec<String> = c.lrange("big", 0, -1).await.expect("LRANGE");
        assert_eq!(back, items);
        let usage: u64 = q(c, &["MEMORY", "USAGE", "big"]).await;
        assert!(
            usage > 20_000 * 10 && usage < 20_000 * 16,
            "{usage} bytes for 20000 elements of 10 bytes"
        );
        let _: i64 = c.del("big").await.expect("DEL");
        let after: String = q(c, &["INFO", "memory"]).await;
        assert_eq!(info_field::<u64>(&after, "used_memory"), before);
    })
    .await
}

#[tokio::test]
async fn a_push_from_another_connection_serves_the_blocked_client() {
    bounded(async {
        let s = start().await;
        let mut waiter = Raw::connect(s.addr()).await;
        waiter.send(&resp(&["BLPOP", "jobs", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        let c = &mut connect(s.addr()).await;
        let list: String = q(c, &["CLIENT", "LIST"]).await;
        assert!(
            list.lines()
                .any(|l| l.contains("flags=b") && l.contains("cmd=blpop")),
            "{list}"
        );
        let n: i64 = c.rpush("jobs", "job-1").await.expect("RPUSH");
        assert_eq!(n, 1);
        assert_eq!(
            &waiter.reply().await[..],
            b"*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n"
        );
        blocked_clients(s.addr(), 0).await;
        assert_eq!(c.exists::<_, i64>("jobs").await.expect("EXISTS"), 0);
    })
    .await
}

#[tokio::test]
async fn blocked_clients_are_served_in_the_order_they_blocked() {
    bounded(async {
        let s = start().await;
        let mut waiters = Vec::new();
        for i in 0..5 {
            let mut w = Raw::connect(s.addr()).await;
            w.send(&resp(&["BRPOP", "q", "0"])).await;
            blocked_clients(s.addr(), i + 1).await;
            waiters.push(w);
        }
        let c = &mut connect(s.addr()).await;
        // One push of five: the first blocked gets the rightmost, and so on.
        let _: i64 = c
            .lpush("q", &["e", "d", "c", "b", "a"])
            .await
            .expect("LPUSH");
        for (w, want) in waiters.iter_mut().zip(["e", "d", "c", "b", "a"]) {
            let got = w.reply().await;
            assert_eq!(
                got,
                format!("*2\r\n$1\r\nq\r\n$1\r\n{want}\r\n").into_bytes()
            );
        }
    })
    .await
}

#[tokio::test]
async fn pushes_in_transactions_and_scripts_serve_after_they_end() {
    bounded(async {
        let s = start().await;
        let mut waiter = Raw::connect(s.addr()).await;
        waiter.send(&resp(&["BLPOP", "q", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        let c = &mut connect(s.addr()).await;
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .lpush("q", "first")
            .lpush("q", "second")
            .query_async(c)
            .await
            .expect("MULTI/EXEC");
        assert_eq!((a, b), (1, 2));
        assert_eq!(
            &waiter.reply().await[..],
            b"*2\r\n$1\r\nq\r\n$6\r\nsecond\r\n"
        );
        waiter
            .send(&resp(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]))
            .await;
        blocked_clients(s.addr(), 1).await;
        let n: i64 = q(
            c,
            &[
                "EVAL",
                "redis.call('RPUSH', KEYS[1], 'x'); return redis.call('LLEN', KEYS[1])",
                "1",
                "src",
            ],
        )
        .await;
        // The script saw its own push; the waiter was served after it.
        assert_eq!(n, 1);
        assert_eq!(&waiter.reply().await[..], b"$1\r\nx\r\n");
        let dst: Vec<String> = c.lrange("dst", 0, -1).await.expect("LRANGE");
        assert_eq!(dst, ["x"]);
    })
    .await
}

#[tokio::test]
async fn timeouts_unblock_and_disconnects() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        // A fractional timeout: nil array after it.
        let mut w = Raw::connect(s.addr()).await;
        assert_eq!(&w.cmd(&["BLPOP", "none", "0.05"]).await[..], b"*-1\r\n");
        assert_eq!(
            &w.cmd(&["BRPOPLPUSH", "none", "d", "0.05"]).await[..],
            b"$-1\r\n"
        );
        assert_eq!(&w.cmd(&["HELLO", "3"]).await[..2], b"%7");
        assert_eq!(
            &w.cmd(&["BLMPOP", "0.05", "1", "none", "LEFT"]).await[..],
            b"_\r\n"
        );
        // CLIENT UNBLOCK, both ways.
        let id: i64 = {
            let r = w.cmd(&["CLIENT", "ID"]).await;
            std::str::from_utf8(&r[1..r.len() - 2])
                .expect("utf8")
                .parse()
                .expect("id")
        };
        w.send(&resp(&["BLPOP", "none", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        let n: i64 = q(c, &["CLIENT", "UNBLOCK", &id.to_string(), "ERROR"]).await;
        assert_eq!(n, 1);
        assert_eq!(
            &w.reply().await[..],
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
        );
        // A pipeline behind a blocking command waits for it: the RPUSH after BLPOP must not
        // serve it.
        w.send(&[resp(&["BLPOP", "p", "0"]), resp(&["RPUSH", "p", "mine"])].concat())
            .await;
        blocked_clients(s.addr(), 1).await;
        let _: i64 = c.rpush("p", "theirs").await.expect("RPUSH");
        assert_eq!(&w.reply().await[..], b"*2\r\n$1\r\np\r\n$6\r\ntheirs\r\n");
        assert_eq!(&w.reply().await[..], b":1\r\n");
        // A blocked client that goes away is forgotten: the next push stays in the list.
        let mut gone = Raw::connect(s.addr()).await;
        gone.send(&resp(&["BLPOP", "kept", "0"])).await;
        blocked_clients(s.addr(), 1).await;
        drop(gone);
        blocked_clients(s.addr(), 0).await;
        let _: i64 = c.rpush("kept", "x").await.expect("RPUSH");
        let n: i64 = c.llen("kept").await.expect("LLEN");
        assert_eq!(n, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    })
    .await
}

#[tokio::test]
async fn list_keyspace_events() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        // A is every class but "new" and "keymiss": n adds the creations.
        let _: () = q(c, &["CONFIG", "SET", "notify-keyspace-events", "KEAn"]).await;
        let mut sub = Raw::connect(s.addr()).await;
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]).await;
        let _: i64 = c.rpush("{k}l", "a").await.expect("RPUSH");
        let _: Option<String> = q(c, &["LMOVE", "{k}l", "{k}m", "LEFT", "RIGHT"]).await;
        let mut events = Vec::new();
        for _ in 0..6 {
            let msg = sub.reply().await;
            let text = String::from_utf8_lossy(&msg).into_owned();
            let event = text
                .split("__keyevent@0__:")
                // The pattern, then the channel.
                .nth(2)
                .and_then(|r| r.split("\r\n").next())
                .unwrap_or_default()
                .to_string();
            events.push(event);
        }
        assert_eq!(events, ["new", "rpush", "new", "rpush", "lpop", "del"]);
    })
    .await
}
