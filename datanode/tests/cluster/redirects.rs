//! Cluster-aware connections get Redis Cluster's `-MOVED` and `-CROSSSLOT`; plain ones get
//! their requests forwarded and split. `redis-cli -c` follows the redirects.

use crate::util::*;
use chkv_common::key_slot;
use std::net::SocketAddr;
use std::path::PathBuf;

const CROSSSLOT: &str = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";

fn moved(key: &str, owner: SocketAddr) -> String {
    format!("-MOVED {} {owner}\r\n", key_slot(key.as_bytes()))
}

fn bulk_bytes(v: &str) -> String {
    format!("${}\r\n{v}\r\n", v.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aware_connections_get_moved_and_crossslot_plain_ones_are_served() {
    bounded(async {
        // Node 0 runs with --cluster-redirects; nodes 1 and 2 forward by default.
        let cluster = Spec::new(3).redirect_first().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[1]).await;
        let mine = map.keys_of(addrs[1], "r:", 2);
        let foreign = map.keys_of(addrs[2], "r:", 2);
        let on_zero = map.keys_of(addrs[0], "r:", 1);

        // A plain connection to node 1 reaches every key.
        let mut plain = Raw::connect(addrs[1]).await;
        for k in mine.iter().chain(&foreign).chain(&on_zero) {
            assert_eq!(plain.cmd(&["SET", k, &format!("v-{k}")]).await, "+OK\r\n");
        }
        assert_eq!(
            plain.cmd(&["GET", &foreign[0]]).await,
            bulk_bytes(&format!("v-{}", foreign[0])).as_str()
        );
        let mget = plain
            .cmd(&[
                "MGET",
                &foreign[0],
                &mine[0],
                &on_zero[0],
                "r:missing",
                &foreign[1],
            ])
            .await;
        let want = format!(
            "*5\r\n{}{}{}$-1\r\n{}",
            bulk_bytes(&format!("v-{}", foreign[0])),
            bulk_bytes(&format!("v-{}", mine[0])),
            bulk_bytes(&format!("v-{}", on_zero[0])),
            bulk_bytes(&format!("v-{}", foreign[1])),
        );
        assert_eq!(
            show(&mget),
            show(want.as_bytes()),
            "split MGET on a plain connection"
        );

        // Asking for the topology makes a connection cluster-aware, like Redis Cluster.
        let mut aware = Raw::connect(addrs[1]).await;
        let slots = aware.cmd(&["CLUSTER", "SLOTS"]).await;
        assert!(slots.starts_with(b"*"), "{}", show(&slots));
        assert_eq!(
            aware.cmd(&["GET", &foreign[0]]).await,
            moved(&foreign[0], addrs[2]).as_str()
        );
        assert_eq!(
            aware.cmd(&["SET", &on_zero[0], "x"]).await,
            moved(&on_zero[0], addrs[0]).as_str()
        );
        assert_eq!(
            aware.cmd(&["GET", &mine[0]]).await,
            bulk_bytes(&format!("v-{}", mine[0])).as_str()
        );
        assert_eq!(aware.cmd(&["MGET", &mine[0], &foreign[0]]).await, CROSSSLOT);
        // Different slots are refused even when this node owns both, as in Redis Cluster.
        if key_slot(mine[0].as_bytes()) != key_slot(mine[1].as_bytes()) {
            assert_eq!(aware.cmd(&["MGET", &mine[0], &mine[1]]).await, CROSSSLOT);
        }
        // One slot through a hash tag is fine.
        let tag = map.keys_of(addrs[1], "tag", 1).remove(0);
        let (a, b) = (format!("{{{tag}}}.a"), format!("{{{tag}}}.b"));
        assert_eq!(aware.cmd(&["MSET", &a, "1", &b, "2"]).await, "+OK\r\n");
        assert_eq!(
            aware.cmd(&["MGET", &a, &b]).await,
            "*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
        );
        // The connection can go back to forwarding.
        assert_eq!(aware.cmd(&["CLUSTER", "REDIRECTS", "NO"]).await, "+OK\r\n");
        assert_eq!(
            aware.cmd(&["GET", &foreign[0]]).await,
            bulk_bytes(&format!("v-{}", foreign[0])).as_str()
        );

        // Node 0 redirects every connection, even one that never asked for the topology.
        let mut redirected = Raw::connect(addrs[0]).await;
        assert_eq!(
            redirected.cmd(&["GET", &foreign[0]]).await,
            moved(&foreign[0], addrs[2]).as_str()
        );
        assert_eq!(
            redirected.cmd(&["GET", &on_zero[0]]).await,
            bulk_bytes(&format!("v-{}", on_zero[0])).as_str()
        );
        assert_eq!(
            redirected.cmd(&["DEL", &on_zero[0], &foreign[0]]).await,
            CROSSSLOT
        );
        cluster.shutdown().await;
    })
    .await;
}

async fn keys_in_slot(addr: SocketAddr, slot: &str) -> i64 {
    q(
        &mut connect(addr).await,
        &["CLUSTER", "COUNTKEYSINSLOT", slot],
    )
    .await
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `redis-cli -c -p <port> args...`: its trimmed stdout.
async fn cli(cli: &PathBuf, addr: SocketAddr, args: &[&str]) -> String {
    let out = step(
        &format!("redis-cli -c {args:?}"),
        tokio::process::Command::new(cli)
            .args(["-c", "-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run redis-cli");
    assert!(
        out.status.success(),
        "redis-cli -c {args:?} failed: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_in_cluster_mode_follows_moved() {
    let Some(redis_cli) = find_on_path("redis-cli") else {
        eprintln!("note: redis-cli is not on PATH; skipping the redis-cli -c test");
        return;
    };
    bounded(async {
        let cluster = Spec::new(3).redirect_first().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        for owner in [addrs[1], addrs[2]] {
            for key in map.keys_of(owner, "cli:", 3) {
                let value = format!("via-cli-{key}");
                // Node 0 answers MOVED; redis-cli follows it to the owner.
                assert_eq!(
                    cli(&redis_cli, addrs[0], &["SET", &key, &value]).await,
                    "OK"
                );
                assert_eq!(cli(&redis_cli, addrs[0], &["GET", &key]).await, value);
                // The key is stored on its owner, not on the node redis-cli asked first.
                let slot = key_slot(key.as_bytes()).to_string();
                assert_eq!(
                    keys_in_slot(owner, &slot).await,
                    1,
                    "{key} on its owner {owner}"
                );
                assert_eq!(
                    keys_in_slot(addrs[0], &slot).await,
                    0,
                    "{key} not on node 0"
                );
                // Through a forwarding node too.
                let other = if owner == addrs[1] {
                    addrs[2]
                } else {
                    addrs[1]
                };
                assert_eq!(cli(&redis_cli, other, &["GET", &key]).await, value);
            }
        }
        // A key node 0 owns is served there directly.
        let local = map.keys_of(addrs[0], "cli:", 1).remove(0);
        assert_eq!(
            cli(&redis_cli, addrs[0], &["SET", &local, "here"]).await,
            "OK"
        );
        assert_eq!(cli(&redis_cli, addrs[1], &["GET", &local]).await, "here");
        cluster.shutdown().await;
    })
    .await;
}
