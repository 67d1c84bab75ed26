//! MULTI/EXEC/DISCARD/WATCH/UNWATCH over TCP: exact replies in RESP2 and RESP3, the `redis`
//! crate's atomic pipeline, optimistic locking under contention with exact counts, and
//! atomicity against connections on other worker threads.

use crate::util::*;

#[tokio::test]
async fn exact_replies_resp2_and_resp3() {
    bounded(async {
        let s = start().await;
        let mut r = Raw::connect(s.addr()).await;
        assert_eq!(&r.cmd(&["MULTI"]).await[..], b"+OK\r\n");
        assert_eq!(&r.cmd(&["SET", "a", "1"]).await[..], b"+QUEUED\r\n");
        assert_eq!(&r.cmd(&["INCR", "a"]).await[..], b"+QUEUED\r\n");
        assert_eq!(&r.cmd(&["GET", "nokey"]).await[..], b"+QUEUED\r\n");
        assert_eq!(&r.cmd(&["EXEC"]).await[..], b"*3\r\n+OK\r\n:2\r\n$-1\r\n");
        // Queue-time error: EXECABORT, nothing applied.
        r.cmd(&["MULTI"]).await;
        r.cmd(&["SET", "b", "1"]).await;
        assert_eq!(
            &r.cmd(&["NOSUCH", "x"]).await[..],
            b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
        );
        assert_eq!(
            &r.cmd(&["EXEC"]).await[..],
            b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        assert_eq!(&r.cmd(&["EXISTS", "b"]).await[..], b":0\r\n");
        // A watched key changed: a null array, `*-1` in RESP2.
        r.cmd(&["WATCH", "a"]).await;
        let mut other = Raw::connect(s.addr()).await;
        other.cmd(&["SET", "a", "9"]).await;
        r.cmd(&["MULTI"]).await;
        r.cmd(&["INCR", "a"]).await;
        assert_eq!(&r.cmd(&["EXEC"]).await[..], b"*-1\r\n");
        // RESP3: the same replies in RESP3 types; the aborted EXEC is `_`.
        r.cmd(&["HELLO", "3"]).await;
        r.cmd(&["MULTI"]).await;
        r.cmd(&["GET", "nokey"]).await;
        r.cmd(&["INCR", "a"]).await;
        assert_eq!(&r.cmd(&["EXEC"]).await[..], b"*2\r\n_\r\n:10\r\n");
        r.cmd(&["WATCH", "a"]).await;
        other.cmd(&["DEL", "a"]).await;
        r.cmd(&["MULTI"]).await;
        assert_eq!(&r.cmd(&["EXEC"]).await[..], b"_\r\n");
        // A pipelined transaction in one write.
        let mut batch = Vec::new();
        for c in [
            &["MULTI"][..],
            &["SET", "p", "1"],
            &["INCR", "p"],
            &["EXEC"],
        ] {
            batch.extend(resp(c));
        }
        r.send(&batch).await;
        for want in [&b"+OK\r\n"[..], b"+QUEUED\r\n", b"+QUEUED\r\n"] {
            assert_eq!(&r.reply().await[..], want);
        }
        assert_eq!(&r.reply().await[..], b"*2\r\n+OK\r\n:2\r\n");
    })
    .await;
}

#[tokio::test]
async fn atomic_pipeline_of_the_redis_crate() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let (a, b): (i64, String) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("k")
            .arg("5")
            .ignore()
            .cmd("INCRBY")
            .arg("k")
            .arg(3)
            .cmd("GET")
            .arg("k")
            .query_async(c)
            .await
            .expect("transaction");
        assert_eq!((a, b.as_str()), (8, "8"));
    })
    .await;
}

/// Optimistic locking: every client increments one counter with WATCH/GET/MULTI/SET/EXEC
/// and retries on a null EXEC. Not one increment may be lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_loop_under_contention_counts_exactly() {
    bounded(async {
        let s = start().await;
        const CLIENTS: i64 = 8;
        const EACH: i64 = 40;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let addr = s.addr();
            tasks.push(tokio::spawn(async move {
                let c = &mut connect(addr).await;
                let mut retries = 0u64;
                for _ in 0..EACH {
                    loop {
                        let _: () = q(c, &["WATCH", "counter"]).await;
                        let v: Option<i64> = q(c, &["GET", "counter"]).await;
                        let next = v.unwrap_or(0) + 1;
                        let r: Option<(String,)> = redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg("counter")
                            .arg(next)
                            .query_async(c)
                            .await
                            .expect("exec");
                        if r.is_some() {
                            break;
                        }
                        retries += 1;
                    }
                }
                retries
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let c = &mut connect(s.addr()).await;
        let total: i64 = q(c, &["GET", "counter"]).await;
        assert_eq!(total, CLIENTS * EACH);
    })
    .await;
}

/// Transactions move two counters in different slots together; readers on other threads
/// read both with one MGET (which locks both slots at once) and must never see them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_is_atomic_against_other_threads() {
    bounded(async {
        let s = start().await;
        // Different slots: "a" and "b" do not share a hash tag.
        let mut writers = Vec::new();
        for _ in 0..3 {
            let addr = s.addr();
            writers.push(tokio::spawn(async move {
                let c = &mut connect(addr).await;
                for _ in 0..300 {
                    let _: (i64, i64) = redis::pipe()
                        .atomic()
                        .cmd("INCR")
                        .arg("a")
                        .cmd("INCR")
                        .arg("b")
                        .query_async(c)
                        .await
                        .expect("exec");
                }
            }));
        }
        let mut readers = Vec::new();
        for _ in 0..2 {
            let addr = s.addr();
            readers.push(tokio::spawn(async move {
                let c = &mut connect(addr).await;
                let mut seen = 0;
                for _ in 0..300 {
                    let (a, b): (Option<i64>, Option<i64>) = q(c, &["MGET", "a", "b"]).await;
                    assert_eq!(a, b, "a transaction was seen half applied");
                    seen += 1;
                }
                seen
            }));
        }
        for w in writers {
            w.await.expect("writer");
        }
        for r in readers {
            r.await.expect("reader");
        }
        let c = &mut connect(s.addr()).await;
        let (a, b): (i64, i64) = q(c, &["MGET", "a", "b"]).await;
        assert_eq!((a, b), (900, 900));
    })
    .await;
}

#[tokio::test]
async fn a_closed_connection_forgets_its_watch() {
    bounded(async {
        let s = start().await;
        {
            let mut r = Raw::connect(s.addr()).await;
            r.cmd(&["WATCH", "w1", "w2"]).await;
            assert_eq!(s.node.db.watched_keys(), 2);
        }
        let c = &mut connect(s.addr()).await;
        // The server notices the close and takes the watcher out of the store.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if s.node.db.watched_keys() == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "connection not closed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _: () = q(c, &["SET", "w1", "x"]).await;
        assert_eq!(val(c, &["GET", "w1"]).await, bulk("x"));
    })
    .await;
}
