//! The near-cache against a real cluster: hits, invalidation by writes through other
//! clients and other nodes, and no old value after a drain or a join moves a key's slot.

use std::time::{Duration, Instant};

use chkv_client::{Bytes, Client, NearCacheOptions};

use crate::util::{bounded, converge, drain, settle, start_datanode, step, Cluster, STEP_LIMIT};

async fn near_client(cluster: &Cluster) -> Client {
    step(
        "near-cache client connects",
        patient()
            .near_cache(NearCacheOptions::default().max_entries(10_000))
            .connect(cluster.namenode.client_addr()),
    )
    .await
    .expect("client connects")
}

/// Options for clients that ride out joins and drains on a loaded machine (liveness bounds).
fn patient() -> chkv_client::Builder {
    crate::util::builder()
        .response_timeout(STEP_LIMIT / 2)
        .retry_budget(chkv_client::RetryBudget {
            attempts: 100_000,
            time: STEP_LIMIT / 2,
        })
}

fn b(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

/// Reads `key` through `near` until it returns `want`; fails on any value other than `old`
/// or `want`, and on `old` after `want` was seen once. Returns how long the change took to
/// show (the invalidation delay plus a read).
async fn until_new(
    near: &Client,
    key: &str,
    old: &Option<Bytes>,
    want: &Option<Bytes>,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = near.get(key).await.expect("get");
        if &got == want {
            // From now on only the new value.
            for _ in 0..20 {
                assert_eq!(&near.get(key).await.expect("get"), want, "{key} went back");
            }
            return started.elapsed();
        }
        assert_eq!(&got, old, "{key}: neither the old nor the new value");
        assert!(
            started.elapsed() < STEP_LIMIT,
            "{key}: the invalidation never came"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_elsewhere_invalidate_the_near_cache() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let writer = &cluster.client;
        let near = near_client(&cluster).await;

        writer.set("nc:a", "1").await.expect("set");
        assert_eq!(near.get("nc:a").await.expect("get"), b("1"));
        assert_eq!(near.get("nc:missing").await.expect("get"), None);
        for _ in 0..10 {
            assert_eq!(near.get("nc:a").await.expect("get"), b("1"));
            assert_eq!(near.get("nc:missing").await.expect("get"), None);
        }
        let s = near.near_cache_stats().expect("on");
        assert_eq!((s.misses, s.hits, s.entries), (2, 20, 2), "{s:?}");

        // A write by another client: the node's invalidation drops the entry.
        writer.set("nc:a", "2").await.expect("set");
        let delay = until_new(&near, "nc:a", &b("1"), &b("2")).await;
        println!("invalidation seen {delay:?} after the writer's acknowledgement");
        writer.set("nc:missing", "now").await.expect("set");
        until_new(&near, "nc:missing", &None, &b("now")).await;
        assert!(near.near_cache_stats().expect("on").invalidations >= 2);

        // A write sent to a node that does not own the key (it forwards it to the owner).
        let owner = near.node_for_key("nc:a").expect("owner");
        let other = cluster
            .nodes
            .iter()
            .map(|n| n.addr())
            .find(|a| *a != owner)
            .expect("another node");
        let mut raw = redis::Client::open(format!("redis://{other}"))
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        assert_eq!(near.get("nc:a").await.expect("get"), b("2"));
        let _: () = redis::cmd("SET")
            .arg("nc:a")
            .arg("3")
            .query_async(&mut raw)
            .await
            .expect("forwarded set");
        until_new(&near, "nc:a", &b("2"), &b("3")).await;

        // Its own writes are read at once (no wait for the invalidation).
        near.set("nc:a", "4").await.expect("set");
        assert_eq!(near.get("nc:a").await.expect("get"), b("4"));
        near.incr("nc:n").await.expect("incr");
        assert_eq!(near.get("nc:n").await.expect("get"), b("1"));
        near.incr("nc:n").await.expect("incr");
        assert_eq!(near.get("nc:n").await.expect("get"), b("2"));
        near.del(["nc:n"]).await.expect("del");
        assert_eq!(near.get("nc:n").await.expect("get"), None);

        // FLUSHALL by another client: a null invalidation empties it.
        writer.flushall().await.expect("flushall");
        until_new(&near, "nc:a", &b("4"), &None).await;

        drop(near);
        cluster.shutdown().await;
    })
    .await
}

const KEYS: usize = 300;

fn key(i: usize) -> String {
    format!("ncr:{i}")
}

/// Caches every key's value `v{round}` in `near` (read twice: the second a hit).
async fn cache_round(near: &Client, writer: &Client, round: usize) {
    for i in 0..KEYS {
        writer.set(key(i), format!("v{round}")).await.expect("set");
    }
    for i in 0..KEYS {
        let want = b(&format!("v{round}"));
        // The previous round's invalidations may still be on their way.
        let started = Instant::now();
        while near.get(key(i)).await.expect("get") != want {
            assert!(started.elapsed() < STEP_LIMIT, "{} not read", key(i));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(near.get(key(i)).await.expect("get"), want);
    }
}

/// After the ring moved: every key gets `v{round}` by `writer`; then `near` must show each
/// new value, and never the cached old one once the new one was seen.
async fn check_round(near: &Client, writer: &Client, round: usize, moved: &[usize]) -> Duration {
    for i in 0..KEYS {
        writer.set(key(i), format!("v{round}")).await.expect("set");
    }
    let old = b(&format!("v{}", round - 1));
    let new = b(&format!("v{round}"));
    // Keys whose slot moved are never served from the old owner's entries: the first read
    // returns the new value exactly.
    for &i in moved {
        assert_eq!(
            near.get(key(i)).await.expect("get"),
            new,
            "{} moved and was written after the move",
            key(i)
        );
    }
    let mut worst = Duration::ZERO;
    for i in 0..KEYS {
        worst = worst.max(until_new(near, &key(i), &old, &new).await);
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_old_value_after_a_drain_or_a_join() {
    bounded(Duration::from_secs(400), async {
        let mut cluster = Cluster::start(3).await;
        let writer = &step(
            "writer connects",
            patient().connect(cluster.namenode.client_addr()),
        )
        .await
        .expect("writer connects");
        let near = near_client(&cluster).await;
        converge(&near, 3).await;

        // A drain: the drained node's slots go to the others.
        cache_round(&near, writer, 1).await;
        let victim = cluster.nodes.remove(1);
        let before: Vec<_> = (0..KEYS).map(|i| near.node_for_key(key(i))).collect();
        let lines = drain(victim.admin_addr()).await;
        assert!(
            lines.last().is_some_and(|l| l.starts_with("drained:")),
            "{lines:?}"
        );
        step("drained", victim.drained()).await;
        victim.shutdown().await;
        converge(writer, 2).await;
        converge(&near, 2).await;
        let moved: Vec<usize> = (0..KEYS)
            .filter(|&i| near.node_for_key(key(i)) != before[i])
            .collect();
        assert!(!moved.is_empty(), "the drain moved some keys");
        let worst = check_round(&near, writer, 2, &moved).await;
        println!(
            "drain: {} of {KEYS} keys moved; slowest invalidation {worst:?}; {:?}",
            moved.len(),
            near.near_cache_stats()
        );

        // A join: a new node takes slots from the others.
        cache_round(&near, writer, 3).await;
        let before: Vec<_> = (0..KEYS).map(|i| near.node_for_key(key(i))).collect();
        let joined = start_datanode(Some(cluster.namenode.datanode_addr())).await;
        settle(writer, cluster.namenode.http_addr(), 3).await;
        converge(&near, 3).await;
        let moved: Vec<usize> = (0..KEYS)
            .filter(|&i| near.node_for_key(key(i)) != before[i])
            .collect();
        assert!(!moved.is_empty(), "the join moved some keys");
        let worst = check_round(&near, writer, 4, &moved).await;
        let s = near.near_cache_stats().expect("on");
        println!(
            "join: {} of {KEYS} keys moved; slowest invalidation {worst:?}; {s:?}",
            moved.len()
        );
        assert!(s.hits >= 4 * KEYS as u64, "{s:?}");

        drop(near);
        joined.shutdown().await;
        cluster.shutdown().await;
    })
    .await
}

/// Versions written per key by the writers, and when each was acknowledged.
struct Acked {
    version: Vec<std::sync::atomic::AtomicU64>,
    at: std::sync::Mutex<Vec<Vec<Instant>>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_while_nodes_join_and_drain() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const KEYS: usize = 64;
    const WRITERS: usize = 4;
    const READERS: usize = 4;
    bounded(Duration::from_secs(400), async {
        let mut cluster = Cluster::start(3).await;
        let writer = step(
            "writer connects",
            patient().connect(cluster.namenode.client_addr()),
        )
        .await
        .expect("writer connects");
        let near = near_client(&cluster).await;
        let key = |i: usize| format!("ncw:{i}");
        for i in 0..KEYS {
            writer.set(key(i), "0").await.expect("set");
        }
        let acked = Arc::new(Acked {
            version: (0..KEYS).map(|_| 0.into()).collect(),
            at: std::sync::Mutex::new(vec![vec![Instant::now()]; KEYS]),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (writer, acked, stop) = (writer.clone(), acked.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                // Writer w owns keys w, w + WRITERS, ...
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in (w..KEYS).step_by(WRITERS) {
                        n += 1;
                        let v = acked.version[i].load(Ordering::Relaxed) + 1;
                        writer.set(key(i), v.to_string()).await.expect("set");
                        // The time first, so a reader that sees the version finds it.
                        acked.at.lock().expect("at")[i].push(Instant::now());
                        acked.version[i].store(v, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                n
            }));
        }
        let mut readers = Vec::new();
        for r in 0..READERS {
            let (near, acked, stop) = (near.clone(), acked.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut seen = vec![0u64; KEYS];
                let (mut reads, mut behind, mut worst) = (0u64, 0u64, Duration::ZERO);
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    i = (i * 7 + 3) % KEYS;
                    let floor = acked.version[i].load(Ordering::SeqCst);
                    let v: u64 = near
                        .get(key(i))
                        .await
                        .expect("get")
                        .map(|b| String::from_utf8_lossy(&b).parse().expect("number"))
                        .expect("the key exists");
                    reads += 1;
                    // Safety, exact: a reader's reads never go back.
                    assert!(
                        v >= seen[i],
                        "reader {r}: {} went back from {} to {v}",
                        key(i),
                        seen[i]
                    );
                    seen[i] = v;
                    if v < floor {
                        // Older than a write acknowledged before this read began: how long
                        // ago was the first newer version acknowledged?
                        behind += 1;
                        let at = acked.at.lock().expect("at")[i][(v + 1) as usize];
                        worst = worst.max(at.elapsed());
                    }
                    if reads % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (reads, behind, worst)
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let joined = start_datanode(Some(cluster.namenode.datanode_addr())).await;
        settle(&writer, cluster.namenode.http_addr(), 4).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let victim = cluster.nodes.remove(0);
        let lines = drain(victim.admin_addr()).await;
        assert!(
            lines.last().is_some_and(|l| l.starts_with("drained:")),
            "{lines:?}"
        );
        step("drained", victim.drained()).await;
        victim.shutdown().await;
        converge(&writer, 3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let mut writes = 0;
        for w in writers {
            writes += w.await.expect("writer");
        }
        let (mut reads, mut behind, mut worst) = (0, 0, Duration::ZERO);
        for r in readers {
            let (n, b, w) = r.await.expect("reader");
            reads += n;
            behind += b;
            worst = worst.max(w);
        }
        let s = near.near_cache_stats().expect("on");
        println!(
            "{writes} writes, {reads} near-cache reads through a join and a drain; {behind} \
             reads returned a version older than one acknowledged before the read began, at \
             most {worst:?} after that acknowledgement (the invalidation delay); {s:?}"
        );
        // Settled: every key reads its last acknowledged version.
        for i in 0..KEYS {
            let want = acked.version[i].load(Ordering::SeqCst);
            let started = Instant::now();
            loop {
                let got: u64 = near
                    .get(key(i))
                    .await
                    .expect("get")
                    .map(|b| String::from_utf8_lossy(&b).parse().expect("number"))
                    .expect("exists");
                assert!(got <= want, "{} reads {got}, written {want}", key(i));
                if got == want {
                    break;
                }
                assert!(started.elapsed() < STEP_LIMIT, "{} stays at {got}", key(i));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        drop(near);
        joined.shutdown().await;
        cluster.shutdown().await;
    })
    .await
}
