//! A NameNode restart changes no ownership: the DataNodes keep serving with their last table
//! while it is down, reconnect, and the new NameNode rebuilds the same ring from what they
//! report, under the same epoch.

use crate::util::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the NameNode stays down: five heartbeat intervals, long enough for every
/// DataNode to notice and retry a few times.
const OUTAGE: Duration = Duration::from_millis(1000);

/// SETs and GETs through every DataNode, for keys of every node, until `until`; returns how
/// many round trips were made. Every one must succeed.
async fn serve_until(addrs: &[SocketAddr], round: usize, until: Instant) -> usize {
    let mut cons = Vec::new();
    for &addr in addrs {
        cons.push(connect(addr).await);
    }
    let mut ops = 0;
    let mut i = 0;
    while Instant::now() < until {
        for con in &mut cons {
            let key = format!("outage:{round}:{i}");
            let () = q(con, &["SET", &key, &key]).await;
            let got: Option<String> = q(con, &["GET", &format!("before:{}", i % 300)]).await;
            assert_eq!(got, Some(format!("b{}", i % 300)));
            ops += 2;
            i += 1;
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namenode_restart_changes_no_ownership_and_the_data_plane_keeps_serving() {
    bounded(async {
        let mut cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let mut con = connect(addrs[0]).await;
        for i in 0..300 {
            let () = q(&mut con, &["SET", &format!("before:{i}"), &format!("b{i}")]).await;
        }
        let mut before = Vec::new();
        for &addr in &addrs {
            before.push(SlotMap::of(addr).await);
        }
        assert!(before.iter().all(|m| *m == before[0]), "one table before");
        let epoch = cluster_info(&mut con).await.epoch;

        for round in 0..2 {
            cluster.stop_namenode().await;
            let ops = serve_until(&addrs, round, Instant::now() + OUTAGE).await;
            eprintln!("round {round}: {ops} requests served while the NameNode was down");
            cluster.start_namenode().await;

            // Every DataNode re-registers within the startup grace, so the first table is
            // the old one under the old epoch: no table with other owners is ever published.
            let back = eventually(CONVERGE_LIMIT, || async {
                let status = cluster.namenode_status().await;
                let nodes = status["nodes"].as_array().expect("nodes");
                status["state"] == "running"
                    && nodes.len() == addrs.len()
                    && nodes.iter().all(|n| n["connected"] == true)
            })
            .await;
            let status = cluster.namenode_status().await;
            assert!(back, "DataNodes did not re-register: {}", summary(&status));
            assert_eq!(status["slots_assigned"], SLOTS);
            assert_eq!(
                status["epoch"],
                epoch,
                "the restarted NameNode kept the epoch: {}",
                summary(&status)
            );
            wait_converged(&addrs, addrs.len()).await;
            for (addr, want) in addrs.iter().zip(&before) {
                let info = cluster_info(&mut connect(*addr).await).await;
                assert_eq!(info.epoch, epoch, "epoch at {addr} after restart {round}");
                assert_eq!(&SlotMap::of(*addr).await, want, "CLUSTER SLOTS at {addr}");
            }
        }

        // Everything written before and during the outages is still there, from any node.
        let mut con = connect(addrs[2]).await;
        for i in (0..300).step_by(7) {
            let got: Option<String> = q(&mut con, &["GET", &format!("before:{i}")]).await;
            assert_eq!(got, Some(format!("b{i}")));
        }
        for round in 0..2 {
            let got: Option<String> = q(&mut con, &["GET", &format!("outage:{round}:0")]).await;
            assert_eq!(got, Some(format!("outage:{round}:0")));
        }
        cluster.shutdown().await;
    })
    .await;
}

/// The NameNode's state, epoch and members, for failure messages.
fn summary(status: &serde_json::Value) -> String {
    let members: Vec<String> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            format!(
                "{} connected={} epoch_seen={}",
                n["client_addr"], n["connected"], n["epoch_seen"]
            )
        })
        .collect();
    format!(
        "{} at epoch {}: {members:?}",
        status["state"], status["epoch"]
    )
}

/// How long the NameNode stays down in the long outage test: the target.
const LONG_OUTAGE: Duration = Duration::from_secs(30);

/// Ownership leases must not cost availability while the NameNode is away: for 30 s every
/// DataNode (real processes, 200 ms heartbeats and a 5 s lease, renewed through the peers
/// several times meanwhile) keeps serving reads and writes for every slot, its own and
/// forwarded, with no error at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_without_a_namenode_cost_no_request() {
    bounded(async {
        let mut cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let epoch = cluster_info(&mut connect(addrs[0]).await).await.epoch;
        cluster.stop_namenode().await;
        let stopped = Instant::now();
        let until = stopped + LONG_OUTAGE;
        let mut cons = Vec::new();
        for &addr in &addrs {
            cons.push(connect(addr).await);
        }
        let (mut ops, mut errors, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
        let mut i = 0u64;
        while Instant::now() < until {
            for con in &mut cons {
                let key = format!("long:{i}");
                let started = Instant::now();
                let set: redis::RedisResult<()> = try_q(con, &["SET", &key, &key]).await;
                let get: redis::RedisResult<Option<String>> = try_q(con, &["GET", &key]).await;
                slowest = slowest.max(started.elapsed());
                ops += 2;
                match (set, get) {
                    (Ok(()), Ok(Some(v))) if v == key => {}
                    other => errors.push(format!("{key}: {other:?}")),
                }
                i += 1;
            }
            // A steady load, not a flood: the machine also runs the DataNodes.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        eprintln!(
            "NameNode down {:?}: {ops} requests, {} errors, slowest SET+GET {slowest:?}",
            stopped.elapsed(),
            errors.len()
        );
        assert!(
            errors.is_empty(),
            "{} errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(10)]
        );

        cluster.start_namenode().await;
        wait_converged(&addrs, addrs.len()).await;
        let info = cluster_info(&mut connect(addrs[1]).await).await;
        assert_eq!(info.epoch, epoch, "the restarted NameNode kept the table");
        let mut con = connect(addrs[2]).await;
        for k in (0..i).step_by(97) {
            let key = format!("long:{k}");
            let got: Option<String> = q(&mut con, &["GET", &key]).await;
            assert_eq!(got.as_deref(), Some(key.as_str()));
        }
        cluster.shutdown().await;
    })
    .await;
}

/// `k` on a DataNode, then its NameNode killed (SIGKILL: a crash, nothing said to anyone)
/// once the first batches have moved, and a new NameNode process started on the same ports
/// 2 s later. The drain goes on where it stopped once the node has re-registered: the node exits
/// 0 saying "drained", every key answers with its value and the survivors hold exactly the
/// keys written (no miss: nothing was declared dead, so nothing may be lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_outlives_its_namenode_killed_mid_drain() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let nn_args = |dn: &str, client: &str, http: &str| {
            [
                "--datanode-port",
                dn,
                "--client-port",
                client,
                "--http-port",
                http,
                "--heartbeat-interval-ms",
                "200",
                "--heartbeat-tolerance",
                "25",
            ]
            .map(str::to_string)
        };
        let args = nn_args("0", "0", "0");
        let mut namenode =
            Process::spawn_namenode(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let ports = [
            namenode.addr.port().to_string(),
            namenode.port("client").port().to_string(),
            namenode.port("http").port().to_string(),
        ];
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Process::spawn(namenode.addr, FAST_HEARTBEAT, &[]).await);
        }
        let addrs: Vec<_> = nodes.iter().map(|p| p.addr).collect();
        wait_converged(&addrs, 3).await;
        let n = 60_000;
        fill(addrs[0], "nk:", n).await;
        let mut victim = nodes.remove(2);
        let mut admin = tokio::net::TcpStream::connect(victim.port("admin"))
            .await
            .expect("admin connect");
        let mut vcon = connect(victim.addr).await;
        let held: usize = q(&mut vcon, &["DBSIZE"]).await;
        admin.write_all(b"k\r\n").await.expect("send k");
        // Killed once the first batches have moved, while most keys are still here.
        let deadline = Instant::now() + CONVERGE_LIMIT;
        loop {
            let now: usize = q(&mut vcon, &["DBSIZE"]).await;
            if now < held {
                break;
            }
            assert!(Instant::now() < deadline, "the drain never started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        namenode.kill();
        let left: usize = q(&mut vcon, &["DBSIZE"]).await;
        eprintln!("NameNode killed with {left} of {held} keys not yet handed over");
        assert!(
            left > 0,
            "the drain was over before the NameNode was killed"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let args = nn_args(&ports[0], &ports[1], &ports[2]);
        let namenode =
            Process::spawn_namenode(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(namenode.addr.port().to_string(), ports[0]);
        let status = victim.wait_exit(Duration::from_secs(120)).await;
        let log = victim.log().join("\n");
        let status = status.unwrap_or_else(|| panic!("the draining node never exited: {log}"));
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("drained"), "{log}");
        wait_converged(&addrs[..2], 2).await;
        check_all(&addrs[..2], "nk:", n).await;
        drop(admin);
    })
    .await;
}
