//! Stopping a DataNode with a signal, as systemd, Docker and Kubernetes do: SIGTERM on a node
//! in a cluster hands its slots over first (like `k`), bounded by `--shutdown-timeout`, and
//! loses no key; a second signal exits at once; a node whose clients do not read still exits.

use crate::util::*;
use std::time::{Duration, Instant};

/// Generous bound for a process to exit when it is expected to (liveness).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_cluster_node_and_loses_nothing() {
    bounded(async {
        let mut cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        const N: usize = 20_000;
        fill(addrs[0], "term:", N).await;
        let DataNode::Process(mut victim) = cluster.nodes.remove(2) else {
            panic!("node 2 is a process");
        };
        let held: usize = q(&mut connect(victim.addr).await, &["DBSIZE"]).await;
        assert!(held > 0, "the victim holds keys");

        let t = Instant::now();
        victim.signal(libc::SIGTERM);
        let status = victim
            .wait_exit(EXIT_LIMIT)
            .await
            .unwrap_or_else(|| panic!("no exit after SIGTERM: {:?}", victim.log()));
        eprintln!(
            "SIGTERM: the node holding {held} of {N} keys exited with {status} after {:?}",
            t.elapsed()
        );
        assert!(status.success(), "{status}: {:?}", victim.log());
        let log = victim.log().join("\n");
        assert!(log.contains("drained; exiting"), "{log}");

        let survivors = &addrs[..2];
        wait_converged(survivors, 2).await;
        check_all(survivors, "term:", N).await;
        cluster.shutdown().await;
    })
    .await;
}

/// A drain that cannot finish: the only other node is paused (SIGSTOP), so the copy stalls.
async fn stalled_drain(extra: &[&str]) -> (Cluster, Process, Process) {
    let mut cluster = Spec::new(1).processes().start().await;
    let nn = cluster.namenode_addr();
    let mut extra_args = vec!["--shutdown-timeout"];
    extra_args.extend_from_slice(extra);
    let victim = Process::spawn(nn, FAST_HEARTBEAT, &extra_args).await;
    wait_converged(&[cluster.addrs()[0], victim.addr], 2).await;
    fill(victim.addr, "stall:", 2_000).await;
    let DataNode::Process(target) = cluster.nodes.remove(0) else {
        panic!("node 0 is a process");
    };
    target.signal(libc::SIGSTOP);
    (cluster, victim, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_on_sigterm_is_bounded_by_the_shutdown_timeout() {
    bounded(async {
        let (cluster, mut victim, target) = stalled_drain(&["2"]).await;
        let t = Instant::now();
        victim.signal(libc::SIGTERM);
        let status = victim.wait_exit(EXIT_LIMIT).await;
        let took = t.elapsed();
        target.signal(libc::SIGCONT);
        let status = status.unwrap_or_else(|| panic!("no exit: {:?}", victim.log()));
        eprintln!("stalled drain, --shutdown-timeout 2: exited with {status} after {took:?}");
        assert!(took >= Duration::from_secs(2), "left before the timeout");
        assert!(!status.success(), "an unfinished drain is not a clean exit");
        drop(target);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    bounded(async {
        let (cluster, mut victim, target) = stalled_drain(&["600"]).await;
        victim.signal(libc::SIGTERM);
        // The drain has started (it cannot finish); a second signal ends it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            victim.wait_exit(Duration::ZERO).await.is_none(),
            "still draining"
        );
        victim.signal(libc::SIGINT);
        let status = victim.wait_exit(EXIT_LIMIT).await;
        target.signal(libc::SIGCONT);
        let status = status.unwrap_or_else(|| panic!("no exit: {:?}", victim.log()));
        assert!(!status.success(), "{status}");
        let log = victim.log().join("\n");
        assert!(log.contains("second stop signal"), "{log}");
        drop(target);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_with_a_client_that_does_not_read() {
    bounded(async {
        let mut node = Process::spawn_standalone(&[]).await;
        let big = "x".repeat(1 << 20);
        let () = q(&mut connect(node.addr).await, &["SET", "big", &big]).await;
        // 200 GETs of 1 MiB, never read: the node's writes block on a full socket.
        let mut stuck = Raw::connect(node.addr).await;
        let mut pipeline = Vec::new();
        for _ in 0..200 {
            pipeline.extend(resp(&["GET", "big"]));
        }
        stuck.send(&pipeline).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        node.signal(libc::SIGTERM);
        let status = node
            .wait_exit(EXIT_LIMIT)
            .await
            .unwrap_or_else(|| panic!("hangs on a client that does not read: {:?}", node.log()));
        eprintln!(
            "standalone SIGTERM with a stuck client: {status} after {:?}",
            t.elapsed()
        );
        assert!(status.success(), "{status}");
        drop(stuck);
    })
    .await;
}
