//! A DataNode killed with SIGKILL leaves the ring: the survivors take all its slots within
//! the target, and its keys are served as misses (a cache loses them), without errors.

use crate::util::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Longest acceptable time from the kill until every survivor has the new table, with the
/// default 1 s heartbeat. A liveness bound, generous so a loaded machine never fails it; the
/// time measured is printed (about 4 s on a quiet machine).
const TARGET: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_datanode_leaves_the_ring_and_its_keys_become_misses() {
    bounded(async {
        // Real processes, so the kill is a real kill -9; the default heartbeat timing.
        let mut cluster = Spec::new(3)
            .processes()
            .heartbeat(Duration::from_secs(1))
            .tolerance(FAST_TOLERANCE)
            .start()
            .await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let victim = addrs[2];
        let victim_id = my_id(victim).await;
        let survivors = [addrs[0], addrs[1]];
        let mut survivor_ids = BTreeSet::new();
        for &addr in &survivors {
            survivor_ids.insert(my_id(addr).await);
        }

        let doomed = map.keys_of(victim, "dead:", 100);
        let kept: Vec<String> = (0..200)
            .map(|i| format!("live:{i}"))
            .filter(|k| map.owner(k) != victim)
            .collect();
        let mut con = connect(survivors[0]).await;
        for k in doomed.iter().chain(&kept) {
            let () = q(&mut con, &["SET", k, k]).await;
        }
        let n: usize = q(&mut connect(victim).await, &["DBSIZE"]).await;
        assert_eq!(n, doomed.len(), "the victim holds its keys before the kill");

        let DataNode::Process(mut process) = cluster.nodes.remove(2) else {
            panic!("node 2 is a process");
        };
        let pid = process.pid();
        let killed = Instant::now();
        process.kill();
        let took = wait_converged(&survivors, 2).await;
        let since_kill = killed.elapsed();
        eprintln!(
            "kill -9 of DataNode {victim} (pid {pid}): both survivors had the new table after \
             {since_kill:?} (heartbeat 1 s, tolerance 3)"
        );
        assert!(
            took <= since_kill && since_kill < TARGET,
            "took {since_kill:?}"
        );

        for &addr in &survivors {
            let seen = SlotMap::of(addr).await;
            assert_eq!(
                seen.covered(),
                SLOTS,
                "every slot assigned once, seen from {addr}"
            );
            assert_eq!(
                seen.ids(),
                survivor_ids,
                "only survivors own slots, seen from {addr}"
            );
            assert!(!seen.ids().contains(&victim_id));
        }

        // Through either survivor, the dead node's keys are misses and can be written again.
        for (i, &addr) in survivors.iter().enumerate() {
            let mut con = connect(addr).await;
            for k in &doomed[i * 50..(i + 1) * 50] {
                let got: Option<String> = q(&mut con, &["GET", k]).await;
                assert_eq!(got, None, "{k} through {addr}");
                let () = q(&mut con, &["SET", k, "again"]).await;
            }
            for k in &kept {
                let got: Option<String> = q(&mut con, &["GET", k]).await;
                assert_eq!(
                    got.as_deref(),
                    Some(k.as_str()),
                    "{k} survives on its owner"
                );
            }
        }
        let mut con = connect(survivors[1]).await;
        let mut args = vec!["MGET".to_string()];
        args.extend(doomed.iter().cloned());
        let got: Vec<Option<String>> = q(&mut con, &args).await;
        assert!(got.iter().all(|v| v.as_deref() == Some("again")), "{got:?}");
        let total: usize = {
            let mut total = 0;
            for &addr in &survivors {
                let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
                total += n;
            }
            total
        };
        assert_eq!(total, doomed.len() + kept.len());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_datanode_that_comes_back_gets_its_slots_back_empty() {
    bounded(async {
        let mut cluster = Spec::new(3)
            .processes()
            .tolerance(FAST_TOLERANCE)
            .start()
            .await;
        let addrs = cluster.addrs();
        let before = SlotMap::of(addrs[0]).await;
        let victim_id = my_id(addrs[2]).await;
        let theirs = before.keys_of(addrs[2], "back:", 20);
        let mut con = connect(addrs[0]).await;
        for k in &theirs {
            let () = q(&mut con, &["SET", k, "old"]).await;
        }

        cluster.nodes.remove(2);
        wait_converged(&addrs[..2], 2).await;
        // The same node id again (a restart elsewhere: the port may be gone).
        let nn = cluster.namenode_addr();
        let back = Process::spawn(nn, FAST_HEARTBEAT, &["--node-id", &victim_id]).await;
        let back_addr = back.addr;
        cluster.nodes.push(DataNode::Process(back));
        let addrs = cluster.addrs();
        wait_converged(&addrs, 3).await;

        // The ring is a function of the member ids: the same owners as before the kill, once
        // the survivors have handed the slots back. Equal epochs on every node do not mean
        // that is done: the slots come back batch by batch, each flip a new epoch.
        let owners = |m: &SlotMap| {
            m.runs
                .iter()
                .map(|r| (r.start, r.end, r.id.clone()))
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + CONVERGE_LIMIT;
        let after = loop {
            let after = SlotMap::of(addrs[1]).await;
            if owners(&after) == owners(&before) || Instant::now() > deadline {
                break after;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(owners(&after), owners(&before));
        assert_eq!(after.owner(&theirs[0]), back_addr);
        // It came back empty (a cache); its slots are served by it, through every node.
        let n: usize = q(&mut connect(back_addr).await, &["DBSIZE"]).await;
        assert_eq!(n, 0);
        for &addr in &addrs {
            let mut con = connect(addr).await;
            for k in &theirs {
                let got: Option<String> = q(&mut con, &["GET", k]).await;
                assert_eq!(got, None, "{k} through {addr}");
            }
        }
        let mut args = vec!["MSET".to_string()];
        for k in &theirs {
            args.extend([k.clone(), format!("new-{k}")]);
        }
        let () = q(&mut con, &args).await;
        let n: usize = q(&mut connect(back_addr).await, &["DBSIZE"]).await;
        assert_eq!(n, theirs.len());
        cluster.shutdown().await;
    })
    .await;
}
