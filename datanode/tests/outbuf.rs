//! Output bounds on forwarded replies (issue 12), alone in its own test binary so the
//! process's resident memory is this test's.
//!
//! Before: a client that pipelined GETs of a 1 MB key owned by another node and never read
//! its replies grew the forwarding node by hundreds of megabytes (every GET was forwarded and
//! every reply kept). Now a connection keeps only a bounded amount of forwarded replies in
//! flight, and stops reading its client until those are written, as with local replies.

use chkv_datanode::config::Config;
use chkv_datanode::server::{self, ServerHandle};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn datanode(nn: SocketAddr) -> ServerHandle {
    server::start(Config {
        port: 0,
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        namenode: Some(nn.into()),
        heartbeat_ms: 100,
        ..Config::default()
    })
    .await
    .expect("datanode starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_costs_the_forwarding_node_a_bounded_amount() {
    let test = async {
        let nn = chkv_namenode::start(chkv_namenode::Config {
            timing: chkv_namenode::Timing::new(
                Duration::from_millis(100),
                std::num::NonZeroU32::new(5).expect("nonzero"),
            ),
            ..chkv_namenode::Config::ephemeral()
        })
        .await
        .expect("namenode");
        let a = datanode(nn.datanode_addr()).await;
        let b = datanode(nn.datanode_addr()).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.node.routing().my_slot_count() + b.node.routing().my_slot_count() != 16384
            || a.node.routing().my_slot_count() == 0
            || b.node.routing().my_slot_count() == 0
            || a.node.routing().epoch != b.node.routing().epoch
        {
            assert!(Instant::now() < deadline, "no convergence");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A key b owns, 1 MB.
        let key = (0..)
            .map(|i| format!("big:{i}"))
            .find(|k| {
                b.node.routing().owner(chkv_common::key_slot(k.as_bytes()))
                    == chkv_datanode::cluster::Owner::Local
            })
            .expect("some key is b's");
        let client = redis::Client::open(format!("redis://{}/", b.addr())).expect("url");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let value = vec![b'v'; 1 << 20];
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query_async(&mut con)
            .await
            .expect("SET");

        let before = rss_bytes();
        // 600 GETs through a, never read: 600 MB of replies if they were all kept.
        let mut sock = tokio::net::TcpStream::connect(a.addr())
            .await
            .expect("connect");
        let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        let requests = get.repeat(600);
        sock.write_all(requests.as_bytes()).await.expect("send");
        // Wait until b stops being asked (a stopped forwarding), then measure.
        let served = || b.node.stats.total_commands.get();
        let mut last = (served(), Instant::now());
        let mut peak = 0;
        let limit = Instant::now() + Duration::from_secs(20);
        while Instant::now() < limit && last.1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(rss_bytes());
            if served() != last.0 {
                last = (served(), Instant::now());
            }
        }
        let grew = peak.saturating_sub(before);
        println!(
            "forwarded GETs served by the owner: {}; RSS grew by {} MB",
            served(),
            grew >> 20
        );
        assert!(
            grew < 96 << 20,
            "the forwarding node kept {} MB for a client that does not read",
            grew >> 20
        );
        drop(sock);
        a.shutdown().await;
        b.shutdown().await;
        nn.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("test finishes");
}
