//! Malformed input and resource limits: the offending connection gets Redis's error and is
//! closed, memory does not follow declared lengths, and other clients never notice.

use crate::util::*;
use chkv_datanode::config::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Writes `data`, ignoring errors: the server may close before it has read everything.
async fn send_lossy(c: &mut Raw, data: &[u8]) {
    let _ = step("send", c.sock.write_all(data)).await;
}

/// Sends `input` on a fresh connection and asserts the exact reply followed by EOF.
async fn rejected(addr: SocketAddr, input: &[u8], reply: &str) {
    let mut c = Raw::connect(addr).await;
    send_lossy(&mut c, input).await;
    assert_eq!(
        c.read_to_eof().await,
        reply,
        "input {:?}",
        show(&input[..input.len().min(80)])
    );
}

/// Resident memory of this process as the server reports it.
async fn rss(c: &mut Raw) -> u64 {
    let info = c.cmd(&["INFO", "memory"]).await;
    let text = String::from_utf8_lossy(&info).into_owned();
    info_field(&text, "used_memory_rss")
}

const RSS_SLACK: u64 = 50 << 20;

/// A client that PINGs in a loop until stopped and counts its PONGs; any other outcome fails.
struct Pinger {
    stop: Arc<AtomicBool>,
    pongs: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Pinger {
    async fn start(addr: SocketAddr) -> Pinger {
        let mut c = Raw::connect(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let pongs = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), pongs.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
                p.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Pinger { stop, pongs, task }
    }

    /// Stops the loop and returns how many PONGs it got.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        step("pinger", self.task).await.expect("pinger failed");
        self.pongs.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn protocol_errors_reply_then_close() {
    bounded(async {
        let s = start().await;
        let addr = s.addr();
        let pinger = Pinger::start(addr).await;
        let mut watcher = Raw::connect(addr).await;
        assert_eq!(watcher.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
        let cases: &[(&[u8], &str)] = &[
            (
                b"*abc\r\n",
                "-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*3000000000\r\n",
                "-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*1\r\n+x\r\n",
                "-ERR Protocol error: expected '$', got '+'\r\n",
            ),
            (
                b"*1\r\n:1\r\n",
                "-ERR Protocol error: expected '$', got ':'\r\n",
            ),
            (
                b"*1\r\n$abc\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n$-1\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n$9223372036854775808\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"ECHO 'a'b\r\n",
                "-ERR Protocol error: unbalanced quotes in request\r\n",
            ),
            // Replies to complete requests before the error still arrive.
            (
                b"*1\r\n$4\r\nPING\r\n*x\r\n",
                "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
            ),
        ];
        for (input, reply) in cases {
            rejected(addr, input, reply).await;
            assert_eq!(watcher.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        }
        // Empty requests are skipped, like Redis.
        let mut c = Raw::connect(addr).await;
        assert_eq!(c.call(b"*0\r\n*-1\r\n\r\nPING\r\n").await, "+PONG\r\n");
        let pongs = pinger.finish().await;
        assert!(pongs > 0);
        assert_alive(addr).await;
    })
    .await
}

#[tokio::test]
async fn four_gigabyte_bulk_is_refused_without_allocating() {
    bounded(async {
        let s = start().await;
        let mut watcher = Raw::connect(s.addr()).await;
        let before = rss(&mut watcher).await;
        rejected(
            s.addr(),
            b"*1\r\n$4294967296\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        )
        .await;
        // Also as the value of a SET, after a valid start.
        rejected(
            s.addr(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\nabc",
            "-ERR Protocol error: invalid bulk length\r\n",
        )
        .await;
        let after = rss(&mut watcher).await;
        assert!(
            after < before + RSS_SLACK,
            "RSS grew from {before} to {after}"
        );
        assert_eq!(watcher.cmd(&["DBSIZE"]).await, ":0\r\n");
    })
    .await
}

#[tokio::test]
async fn truncated_100mb_bulk_then_disconnect() {
    bounded(async {
        let s = start().await;
        let mut watcher = Raw::connect(s.addr()).await;
        let before = rss(&mut watcher).await;
        let mut c = Raw::connect(s.addr()).await;
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$104857600\r\n0123456789")
            .await;
        // The server waits for the rest without answering, and serves others meanwhile.
        assert!(c.read_for(Duration::from_millis(100)).await.is_empty());
        assert_eq!(watcher.cmd(&["PING"]).await, "+PONG\r\n");
        let during = rss(&mut watcher).await;
        assert!(
            during < before + RSS_SLACK,
            "RSS grew from {before} to {during} for a 10-byte start of a 100 MB value"
        );
        drop(c);
        assert_alive(s.addr()).await;
        assert_eq!(watcher.cmd(&["EXISTS", "k"]).await, ":0\r\n");
        // The half-sent client is gone from the client list.
        let gone = eventually(STEP_LIMIT, || {
            let node = s.node.clone();
            async move { node.connected_clients() == 1 }
        })
        .await;
        assert!(
            gone,
            "{} clients still registered",
            s.node.connected_clients()
        );
    })
    .await
}

#[tokio::test]
async fn inline_request_over_64k_without_newline() {
    bounded(async {
        let s = start().await;
        let mut watcher = Raw::connect(s.addr()).await;
        rejected(
            s.addr(),
            &vec![b'a'; 64 * 1024 + 100],
            "-ERR Protocol error: too big inline request\r\n",
        )
        .await;
        // Just under the limit, with its newline, is a (long, unknown) command.
        let mut long = vec![b'a'; 60 * 1024];
        long.extend_from_slice(b"\r\n");
        let mut c = Raw::connect(s.addr()).await;
        let reply = c.call(&long).await;
        assert!(
            reply.starts_with(b"-ERR unknown command 'aaaa"),
            "{:?}",
            show(&reply[..40])
        );
        assert_eq!(watcher.cmd(&["PING"]).await, "+PONG\r\n");
    })
    .await
}

#[tokio::test]
async fn unauthenticated_clients_get_tight_limits() {
    bounded(async {
        let s = start_with(Config {
            requirepass: Some(b"pw".to_vec()),
            ..config()
        })
        .await;
        let mut pinger = Raw::connect(s.addr()).await;
        assert_eq!(pinger.cmd(&["AUTH", "pw"]).await, "+OK\r\n");
        rejected(
            s.addr(),
            b"*20\r\n",
            "-ERR Protocol error: unauthenticated multibulk length\r\n",
        )
        .await;
        assert_eq!(pinger.cmd(&["PING"]).await, "+PONG\r\n");
        rejected(
            s.addr(),
            b"*2\r\n$4\r\nECHO\r\n$16385\r\n",
            "-ERR Protocol error: unauthenticated bulk length\r\n",
        )
        .await;
        assert_eq!(pinger.cmd(&["PING"]).await, "+PONG\r\n");
        // Up to the limits is fine before AUTH (and gets NOAUTH), and after AUTH more is fine.
        let mut c = Raw::connect(s.addr()).await;
        let ten: Vec<&str> = std::iter::once("DEL").chain(["k"; 9]).collect();
        assert_eq!(c.cmd(&ten).await, "-NOAUTH Authentication required.\r\n");
        let big = "x".repeat(16 * 1024);
        assert_eq!(
            c.cmd(&["ECHO", &big]).await,
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(c.cmd(&["AUTH", "pw"]).await, "+OK\r\n");
        let twenty: Vec<&str> = std::iter::once("DEL").chain(["k"; 19]).collect();
        assert_eq!(c.cmd(&twenty).await, ":0\r\n");
        let huge = "y".repeat(100_000);
        let reply = c.cmd(&["ECHO", &huge]).await;
        assert_eq!(reply.len(), "$100000\r\n".len() + 100_000 + 2);
        assert_eq!(pinger.cmd(&["PING"]).await, "+PONG\r\n");
    })
    .await
}

#[tokio::test]
async fn maxclients_rejects_the_extra_connection() {
    bounded(async {
        let s = start_with(Config {
            maxclients: 2,
            ..config()
        })
        .await;
        let mut a = Raw::connect(s.addr()).await;
        let mut b = Raw::connect(s.addr()).await;
        assert_eq!(a.cmd(&["PING"]).await, "+PONG\r\n");
        assert_eq!(b.cmd(&["PING"]).await, "+PONG\r\n");
        let mut third = Raw::connect(s.addr()).await;
        assert_eq!(
            third.read_to_eof().await,
            "-ERR max number of clients reached\r\n"
        );
        let stats = a.cmd(&["INFO", "stats"]).await;
        let stats = String::from_utf8_lossy(&stats).into_owned();
        assert_eq!(info_field::<u64>(&stats, "rejected_connections"), 1);
        let clients = a.cmd(&["INFO", "clients"]).await;
        let clients = String::from_utf8_lossy(&clients).into_owned();
        assert_eq!(info_field::<u64>(&clients, "connected_clients"), 2);
        assert_eq!(b.cmd(&["PING"]).await, "+PONG\r\n");

        // Once one leaves, a newcomer gets in.
        drop(b);
        let admitted = eventually(STEP_LIMIT, || {
            let addr = s.addr();
            async move {
                let mut c = Raw::connect(addr).await;
                c.cmd(&["PING"]).await == "+PONG\r\n"
            }
        })
        .await;
        assert!(admitted, "no slot freed after a client left");
        // Raising the limit at run time admits more at once.
        assert_eq!(
            a.cmd(&["CONFIG", "SET", "maxclients", "10"]).await,
            "+OK\r\n"
        );
        let mut more = Vec::new();
        for _ in 0..5 {
            let mut c = Raw::connect(s.addr()).await;
            assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
            more.push(c);
        }
    })
    .await
}

#[tokio::test]
async fn query_buffer_limit_closes_the_connection() {
    bounded(async {
        let s = start().await;
        let mut admin = Raw::connect(s.addr()).await;
        assert_eq!(admin.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
        assert_eq!(
            admin
                .cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"])
                .await,
            "+OK\r\n"
        );
        let pinger = Pinger::start(s.addr()).await;

        // A 2 MB partial request: one argument declared at 3 MB, 2 MB of it sent.
        let mut c = Raw::connect(s.addr()).await;
        let mut req = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$3000000\r\n".to_vec();
        req.resize(req.len() + 2_000_000, b'x');
        send_lossy(&mut c, &req).await;
        let got = c.read_to_eof().await;
        // Redis closes without a word; an error line before closing is fine too.
        assert!(
            got.is_empty() || (got.starts_with(b"-ERR ") && got.ends_with(b"\r\n")),
            "{:?}",
            show(&got)
        );
        assert!(pinger.finish().await > 0);
        assert_alive(s.addr()).await;
        assert_eq!(admin.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        assert_eq!(admin.cmd(&["EXISTS", "big"]).await, ":0\r\n");
        // Under the limit, a 512 KB value still goes through.
        let value = "z".repeat(512 * 1024);
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["SET", "big", &value]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["STRLEN", "big"]).await, ":524288\r\n");
    })
    .await
}

#[tokio::test]
async fn a_limit_lowered_by_config_set_applies_to_connections_already_open() {
    bounded(async {
        let s = start().await;
        // Opened, and used, before the limit changes: connections keep a copy of their
        // limits and must notice the change.
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
        let mut admin = Raw::connect(s.addr()).await;
        assert_eq!(
            admin
                .cmd(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"])
                .await,
            "+OK\r\n"
        );
        let value = "v".repeat(2 << 20);
        let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n".to_vec();
        req.extend_from_slice(format!("${}\r\n{value}\r\n", value.len()).as_bytes());
        send_lossy(&mut c, &req).await;
        let got = c.read_to_eof().await;
        assert_eq!(show(&got), "-ERR Protocol error: invalid bulk length\\r\\n");
        assert_eq!(admin.cmd(&["EXISTS", "k"]).await, ":0\r\n");
    })
    .await
}
