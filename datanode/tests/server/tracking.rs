//! CLIENT TRACKING over real connections: a `redis` crate RESP3 client receives its
//! invalidation pushes, and the exact bytes and order on one connection (reply first, then
//! the invalidation its own write caused), redirects to a RESP2 subscriber, BCAST.

use crate::util::*;
use std::time::Duration;

#[tokio::test]
async fn a_resp3_redis_client_gets_invalidation_pushes() {
    bounded(async {
        let server = start().await;
        let client =
            redis::Client::open(format!("{}?protocol=resp3", url(server.addr()))).expect("url");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(STEP_LIMIT))
            .set_push_sender(tx);
        let mut reader = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect");
        let mut writer = connect(server.addr()).await;
        let _: () = q(&mut writer, &["SET", "k", "1"]).await;
        let _: () = q(&mut reader, &["CLIENT", "TRACKING", "ON"]).await;
        let v: String = q(&mut reader, &["GET", "k"]).await;
        assert_eq!(v, "1");
        let _: () = q(&mut writer, &["SET", "k", "2"]).await;
        let push = tokio::time::timeout(STEP_LIMIT, rx.recv())
            .await
            .expect("an invalidation in time")
            .expect("push");
        assert_eq!(push.kind, redis::PushKind::Invalidate);
        assert_eq!(
            push.data,
            vec![redis::Value::Array(vec![redis::Value::BulkString(
                b"k".to_vec()
            )])]
        );
        // Forgotten once invalidated: the next write says nothing until k is read again.
        let _: () = q(&mut writer, &["SET", "k", "3"]).await;
        let _: () = q(&mut writer, &["SET", "other", "3"]).await;
        let _: String = q(&mut reader, &["PING"]).await;
        assert!(rx.try_recv().is_err());
        let info: String = q(&mut writer, &["INFO", "clients"]).await;
        assert!(info.contains("tracking_clients:1"), "{info}");
    })
    .await
}

#[tokio::test]
async fn own_writes_are_invalidated_after_the_reply_and_redirects_reach_resp2_subscribers() {
    bounded(async {
        let server = start().await;
        let mut c = Raw::connect(server.addr()).await;
        c.cmd(&["HELLO", "3"]).await;
        assert_eq!(c.cmd(&["CLIENT", "TRACKING", "on"]).await, "+OK\r\n");
        c.cmd(&["HSET", "h", "f", "1"]).await;
        assert_eq!(c.cmd(&["HGET", "h", "f"]).await, "$1\r\n1\r\n");
        assert_eq!(c.cmd(&["HDEL", "h", "f"]).await, ":1\r\n");
        assert_eq!(
            c.reply().await,
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nh\r\n"
        );
        // Inside a transaction: EXEC's reply, then the invalidation.
        c.cmd(&["MSET", "a", "1", "b", "2"]).await;
        c.cmd(&["GET", "a"]).await;
        c.cmd(&["MULTI"]).await;
        c.cmd(&["INCR", "a"]).await;
        c.cmd(&["GET", "b"]).await;
        assert_eq!(c.cmd(&["EXEC"]).await, "*2\r\n:2\r\n$1\r\n2\r\n");
        assert_eq!(
            c.reply().await,
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n"
        );

        let mut sub = Raw::connect(server.addr()).await;
        let id = String::from_utf8_lossy(&sub.cmd(&["CLIENT", "ID"]).await)
            .trim_start_matches(':')
            .trim()
            .to_string();
        sub.cmd(&["SUBSCRIBE", "__redis__:invalidate"]).await;
        let mut t = Raw::connect(server.addr()).await;
        assert_eq!(
            t.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p:", "REDIRECT", &id])
                .await,
            "+OK\r\n"
        );
        assert_eq!(
            t.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p"]).await,
            "-ERR Prefix 'p' overlaps with an existing prefix 'p:'. Prefixes for a single client must not overlap.\r\n"
        );
        let mut w = Raw::connect(server.addr()).await;
        w.cmd(&["MSET", "p:1", "x", "q:1", "x", "p:2", "x"]).await;
        assert_eq!(
            sub.reply().await,
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$3\r\np:1\r\n$3\r\np:2\r\n"
        );
        w.cmd(&["FLUSHALL"]).await;
        assert_eq!(
            sub.reply().await,
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        );
        // Expiry is a change too.
        w.cmd(&["SET", "p:e", "x", "PX", "1"]).await;
        sub.reply().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(w.cmd(&["GET", "p:e"]).await, "$-1\r\n");
        assert_eq!(
            sub.reply().await,
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$3\r\np:e\r\n"
        );
        let list = String::from_utf8_lossy(&w.cmd(&["CLIENT", "LIST"]).await).into_owned();
        assert!(list.contains("flags=tB db=0"), "{list}");
        assert!(list.contains(&format!("redir={id} ")), "{list}");
    })
    .await
}
