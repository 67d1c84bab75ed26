//! Lossless handoff under live traffic: writers and readers hammer random keys through the
//! DataNodes' forwarding while a node joins, another drains with `k` on its admin port, and a
//! third joins. Then every invariant of the design is checked: acknowledged writes present
//! with their last value (counters exact), no stale read, no failed request, TTLs kept,
//! expired keys not resurrected, no key held twice.

use chkv_datanode::config::Config;
use chkv_datanode::server::{self, ServerHandle};
use chkv_namenode::NameNodeHandle;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Heartbeat of the test clusters.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// Heartbeats a node may miss before it is suspected, and so the lease (`tolerance`
/// heartbeats): 5 s. Nothing here kills a node, so detection speed buys nothing, while a
/// short tolerance let a test process whose threads wait seconds for a core (the workspace's
/// tests on 2 busy cores, load 26) see its healthy nodes declared dead, which drops their
/// slots by design (acknowledged writes gone) or lets their leases lapse (`-TRYAGAIN`).
const TOLERANCE: u32 = 50;
/// Upper bound for one step (converge, drain): liveness, so generous.
const STEP_LIMIT: Duration = Duration::from_secs(180);
/// Lifetime of the keys written with a TTL: far beyond the test's longest run, so a key
/// that is gone at the end was lost, not expired.
const TTL_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn start_namenode() -> NameNodeHandle {
    let mut config = chkv_namenode::Config::ephemeral();
    config.timing =
        chkv_namenode::Timing::new(HEARTBEAT, NonZeroU32::new(TOLERANCE).expect("nonzero"));
    chkv_namenode::start(config).await.expect("namenode starts")
}

async fn start_datanode(namenode: SocketAddr) -> ServerHandle {
    server::start(Config {
        port: 0,
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        namenode: Some(namenode.into()),
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        ..Config::default()
    })
    .await
    .expect("datanode starts")
}

/// Waits until `nodes` agree on one epoch in which they own every slot between them.
async fn converge(nodes: &[&ServerHandle]) {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let routings: Vec<_> = nodes.iter().map(|n| n.node.routing()).collect();
        let total: usize = routings.iter().map(|r| r.my_slot_count()).sum();
        let same_epoch = routings.windows(2).all(|w| w[0].epoch == w[1].epoch);
        let all_own = routings.iter().all(|r| r.my_slot_count() > 0);
        let members_match = routings.iter().all(|r| r.nodes.len() == nodes.len());
        if total == 16384 && same_epoch && all_own && members_match {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: {total} slots owned, epochs {:?}",
            routings.iter().map(|r| r.epoch).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Longest a single request may take before the test counts it as failed. A liveness bound,
/// so generous: the `redis` crate's default (500 ms) is shorter than a request can take on a
/// loaded 2-core machine during a handoff, and a timed-out request may still have applied.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("url");
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REQUEST_LIMIT))
        .set_response_timeout(Some(REQUEST_LIMIT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// A writer stops after this many failed requests.
const MAX_ERRORS: usize = 100;

/// Sets the flag when dropped, so the writers stop when the test body ends, panics included.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a writer knows it was acknowledged.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Value(String, Option<u64>),
    /// A counter's value lies in `lo..=hi`: an INCR that failed may or may not have applied.
    Counter {
        lo: i64,
        hi: i64,
    },
    Gone,
}

struct Writer {
    model: HashMap<String, Expect>,
    /// Keys written with a short TTL that must be gone at the end.
    short_lived: Vec<String>,
    errors: Vec<String>,
    ops: u64,
}

/// One writer: the only one writing its keys, so what it was last acknowledged is what must
/// be there; it reads its keys back through another node.
async fn writer(
    id: usize,
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    total_ops: Arc<AtomicU64>,
) -> Writer {
    let mut rng = SmallRng::seed_from_u64(id as u64);
    let mut cons = Vec::new();
    for a in &addrs {
        cons.push(connect(*a).await);
    }
    let mut w = Writer {
        model: HashMap::new(),
        short_lived: Vec::new(),
        errors: Vec::new(),
        ops: 0,
    };
    for j in 0..20 {
        let k = format!("w{id}:e{j}");
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&k)
            .arg("short")
            .arg("PX")
            .arg(150)
            .query_async(&mut cons[0])
            .await;
        match r {
            Ok(()) => w.short_lived.push(k),
            Err(e) => w.errors.push(format!("SET {k} PX: {e}")),
        }
    }
    let mut seq = 0u64;
    // Bounded: after a failed test the servers are gone and every request fails at once; a
    // writer that kept going would spin and grow its error list without end.
    while !stop.load(Ordering::Relaxed) && w.errors.len() < MAX_ERRORS {
        tokio::task::yield_now().await;
        seq += 1;
        w.ops += 1;
        total_ops.fetch_add(1, Ordering::Relaxed);
        let c = rng.random_range(0..cons.len());
        let other = (c + 1) % cons.len();
        let j = rng.random_range(0..150);
        let roll = rng.random_range(0..100);
        if roll < 40 {
            let k = format!("w{id}:s{j}");
            let v = format!("v{seq}");
            let r: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&k)
                .arg(&v)
                .query_async(&mut cons[c])
                .await;
            match r {
                Ok(()) => {
                    w.model.insert(k, Expect::Value(v, None));
                }
                Err(e) => w.errors.push(format!("SET {k}: {e}")),
            }
        } else if roll < 50 {
            let k = format!("w{id}:t{j}");
            let v = format!("v{seq}");
            let at = now_ms() + TTL_MS;
            let r: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&k)
                .arg(&v)
                .arg("PXAT")
                .arg(at)
                .query_async(&mut cons[c])
                .await;
            match r {
                Ok(()) => {
                    w.model.insert(k, Expect::Value(v, Some(at)));
                }
                Err(e) => w.errors.push(format!("SET {k} PXAT: {e}")),
            }
        } else if roll < 75 {
            let k = format!("w{id}:c{}", j % 40);
            let r: redis::RedisResult<i64> =
                redis::cmd("INCR").arg(&k).query_async(&mut cons[c]).await;
            let (lo, hi) = match w.model.get(&k) {
                Some(Expect::Counter { lo, hi }) => (*lo, *hi),
                _ => (0, 0),
            };
            match r {
                Ok(n) if (lo + 1..=hi + 1).contains(&n) => {
                    w.model.insert(k, Expect::Counter { lo: n, hi: n });
                }
                Ok(n) => w
                    .errors
                    .push(format!("INCR {k}: {n}, expected {}..={}", lo + 1, hi + 1)),
                Err(e) => {
                    // Counted as a failure, and the counter may have moved: later replies
                    // are checked against both outcomes, so one failure is reported once.
                    w.errors.push(format!("INCR {k}: {e}"));
                    w.model.insert(k, Expect::Counter { lo, hi: hi + 1 });
                }
            }
        } else if roll < 85 {
            let k = format!("w{id}:s{j}");
            let existed = matches!(w.model.get(&k), Some(Expect::Value(..)));
            let r: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(&k).query_async(&mut cons[c]).await;
            match r {
                Ok(n) if (n == 1) == existed => {
                    w.model.insert(k, Expect::Gone);
                }
                Ok(n) => w.errors.push(format!("DEL {k}: {n}, existed {existed}")),
                Err(e) => w.errors.push(format!("DEL {k}: {e}")),
            }
        } else {
            // Read back through another node: never older than what was acknowledged.
            let k = format!("w{id}:s{j}");
            let r: redis::RedisResult<Option<String>> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut cons[other])
                .await;
            let want = match w.model.get(&k) {
                Some(Expect::Value(v, _)) => Some(v.clone()),
                _ => None,
            };
            match r {
                Ok(got) if got == want => {}
                Ok(got) => w
                    .errors
                    .push(format!("GET {k}: {got:?}, acknowledged {want:?}")),
                Err(e) => w.errors.push(format!("GET {k}: {e}")),
            }
        }
    }
    w
}

/// A plain HTTP/1.1 GET; the body.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("http connect");
    sock.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("http send");
    let mut body = String::new();
    sock.read_to_string(&mut body).await.expect("http read");
    body
}

/// Sends `k` to the admin port and reads until the summary; returns every line.
async fn drain(admin: SocketAddr) -> Vec<String> {
    let sock = tokio::net::TcpStream::connect(admin)
        .await
        .expect("admin connect");
    let (rd, mut wr) = sock.into_split();
    wr.write_all(b"k\r\n").await.expect("send k");
    let mut lines = BufReader::new(rd).lines();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(STEP_LIMIT, lines.next_line())
            .await
            .expect("drain finishes in time")
            .expect("admin read");
        let Some(line) = line else { break };
        let done = line.starts_with("drained:");
        seen.push(line);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_drain_join_under_traffic_loses_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let test = async {
        let nn = start_namenode().await;
        let nn_addr = nn.datanode_addr();
        let n0 = start_datanode(nn_addr).await;
        let n1 = start_datanode(nn_addr).await;
        let n2 = start_datanode(nn_addr).await;
        converge(&[&n0, &n1, &n2]).await;

        // Clients use nodes 0 and 2 (node 1 will be drained and exit); their requests are
        // forwarded to whichever node owns each key at that moment.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_writers = StopOnDrop(stop.clone());
        let ops = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..4)
            .map(|i| {
                tokio::spawn(writer(
                    i,
                    vec![n0.addr(), n2.addr()],
                    stop.clone(),
                    ops.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400)).await;

        // Join a fourth node.
        let t = Instant::now();
        let n3 = start_datanode(nn_addr).await;
        converge(&[&n0, &n1, &n2, &n3]).await;
        println!(
            "join: converged in {:?} ({} ops so far)",
            t.elapsed(),
            ops.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Drain node 1 with `k` over TCP.
        let t = Instant::now();
        let lines = drain(n1.admin_addr()).await;
        let summary = lines.last().cloned().unwrap_or_default();
        assert!(summary.starts_with("drained:"), "{lines:?}");
        assert!(
            summary.contains(&format!("pid {}", std::process::id())),
            "{summary}"
        );
        tokio::time::timeout(STEP_LIMIT, n1.drained())
            .await
            .expect("drained");
        assert_eq!(n1.node.db.len(), 0, "the source frees what it handed over");
        // A real process lingers a moment before it exits: it must not rejoin meanwhile (it
        // would be handed slots it then takes down with it).
        tokio::time::sleep(HEARTBEAT * 6).await;
        assert_eq!(
            n1.node.db.len(),
            0,
            "a drained node must not be handed data again"
        );
        assert_eq!(n1.node.routing().my_slot_count(), 0);
        let cluster = http_get(nn.http_addr(), "/cluster").await;
        assert!(
            !cluster.contains(&n1.node.node_id),
            "the drained node registered again: {cluster}"
        );
        n1.shutdown().await;
        converge(&[&n0, &n2, &n3]).await;
        println!("drain: {summary} (converged after {:?})", t.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Join a fifth node.
        let t = Instant::now();
        let n4 = start_datanode(nn_addr).await;
        converge(&[&n0, &n2, &n3, &n4]).await;
        println!("second join: converged in {:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;

        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for w in writers {
            results.push(w.await.expect("writer task"));
        }
        let total: u64 = results.iter().map(|w| w.ops).sum();
        println!("{total} operations by 4 writers");
        let errors: Vec<&String> = results.iter().flat_map(|w| &w.errors).collect();
        assert!(
            errors.is_empty(),
            "{} failed or stale requests: {:?}",
            errors.len(),
            &errors[..errors.len().min(20)]
        );

        // Every acknowledged write is there with its last value and TTL.
        let nodes = [&n0, &n2, &n3, &n4];
        let mut check = connect(n3.addr()).await;
        let mut live: HashSet<String> = HashSet::new();
        for w in &results {
            for (k, e) in &w.model {
                let got: Option<String> = redis::cmd("GET")
                    .arg(k)
                    .query_async(&mut check)
                    .await
                    .expect("GET");
                match e {
                    Expect::Value(v, ttl) => {
                        assert_eq!(got.as_deref(), Some(v.as_str()), "{k}");
                        let sent = now_ms() as i64;
                        let pttl: i64 = redis::cmd("PTTL")
                            .arg(k)
                            .query_async(&mut check)
                            .await
                            .expect("PTTL");
                        let answered = now_ms() as i64;
                        match ttl {
                            None => assert_eq!(pttl, -1, "{k} gained a TTL"),
                            Some(at) => {
                                // The node computed PTTL between sending and answering (one
                                // clock): exact bounds, whatever the machine's load.
                                let at = *at as i64;
                                assert!(
                                    at - answered - 1 <= pttl && pttl <= at - sent + 1,
                                    "{k}: PTTL {pttl}, expected {}..={}",
                                    at - answered,
                                    at - sent
                                );
                            }
                        }
                        live.insert(k.clone());
                    }
                    Expect::Counter { lo, hi } => {
                        assert_eq!(lo, hi, "counter {k} had a failed INCR");
                        assert_eq!(got, Some(lo.to_string()), "counter {k}");
                        live.insert(k.clone());
                    }
                    Expect::Gone => assert_eq!(got, None, "{k} was deleted"),
                }
            }
            for k in &w.short_lived {
                let got: Option<String> = redis::cmd("GET")
                    .arg(k)
                    .query_async(&mut check)
                    .await
                    .expect("GET");
                assert_eq!(got, None, "{k} expired and must stay gone");
            }
        }
        // Nothing is held twice, nothing extra: KEYS on every node (expired keys are skipped).
        let mut seen: HashSet<String> = HashSet::new();
        let mut count = 0;
        for n in nodes {
            let mut c = connect(n.addr()).await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut c)
                .await
                .expect("KEYS");
            count += keys.len();
            seen.extend(keys);
        }
        assert_eq!(count, seen.len(), "a key is held by two nodes");
        assert_eq!(
            seen, live,
            "the keys across nodes are exactly the acknowledged ones"
        );
        println!(
            "{} keys checked, {} across {} nodes",
            live.len(),
            count,
            nodes.len()
        );

        for n in [n0, n2, n3, n4] {
            n.shutdown().await;
        }
        nn.shutdown().await;
    };
    // Liveness only: each step has its own deadline; on a loaded machine they add up.
    tokio::time::timeout(Duration::from_secs(1200), test)
        .await
        .expect("test finished in time");
}

/// A connection whose replies may take long on a loaded machine (the test checks contents,
/// not latency).
async fn patient(addr: SocketAddr) -> MultiplexedConnection {
    let mut c = connect(addr).await;
    c.set_response_timeout(Duration::from_secs(30));
    c
}

/// What one typed key should read back as: its type, sorted contents, and whether it has a
/// TTL.
async fn typed_snapshot(
    con: &mut MultiplexedConnection,
    keys: &[String],
) -> Vec<(String, Vec<String>, bool)> {
    let mut out = Vec::new();
    for k in keys {
        let t: String = redis::cmd("TYPE")
            .arg(k)
            .query_async(con)
            .await
            .expect("TYPE");
        let mut items: Vec<String> = match t.as_str() {
            "hash" => {
                let m: Vec<String> = redis::cmd("HGETALL")
                    .arg(k)
                    .query_async(con)
                    .await
                    .expect("HGETALL");
                m.chunks(2).map(|p| p.join("=")).collect()
            }
            "set" => redis::cmd("SMEMBERS")
                .arg(k)
                .query_async(con)
                .await
                .expect("SMEMBERS"),
            "zset" => {
                let m: Vec<String> = redis::cmd("ZRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(con)
                    .await
                    .expect("ZRANGE");
                m.chunks(2).map(|p| p.join("=")).collect()
            }
            other => vec![other.to_string()],
        };
        items.sort();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(con)
            .await
            .expect("PTTL");
        out.push((t, items, ttl > 0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hashes_sets_and_sorted_sets_survive_a_join_and_a_drain() {
    let test = async {
        let nn = start_namenode().await;
        let nn_addr = nn.datanode_addr();
        let n0 = start_datanode(nn_addr).await;
        converge(&[&n0]).await;
        let mut con = patient(n0.addr()).await;
        // Every encoding: listpack and table hashes, intset, listpack and table sets,
        // listpack and skip-list sorted sets; some keys with a TTL.
        let mut keys = Vec::new();
        for i in 0..40 {
            let (h, s, z) = (format!("th:{i}"), format!("ts:{i}"), format!("tz:{i}"));
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&z);
            for m in 0..(if i % 4 == 2 { 500 } else { 7 }) {
                zadd.arg(format!("{}.{m}", i % 5)).arg(format!("m{m}"));
            }
            let _: i64 = zadd.query_async(&mut con).await.expect("ZADD");
            if i % 5 == 0 {
                let _: i64 = redis::cmd("PEXPIRE")
                    .arg(&z)
                    .arg(3_600_000)
                    .query_async(&mut con)
                    .await
                    .expect("PEXPIRE");
            }
            keys.push(z);
            let fields = if i % 4 == 0 { 300 } else { 5 };
            let mut hset = redis::cmd("HSET");
            hset.arg(&h);
            for f in 0..fields {
                hset.arg(format!("f{f}")).arg(format!("v{i}.{f}"));
            }
            let _: i64 = hset.query_async(&mut con).await.expect("HSET");
            let mut sadd = redis::cmd("SADD");
            sadd.arg(&s);
            for m in 0..(if i % 4 == 1 { 700 } else { 6 }) {
                if i % 2 == 0 {
                    sadd.arg(m);
                } else {
                    sadd.arg(format!("m{m}"));
                }
            }
            let _: i64 = sadd.query_async(&mut con).await.expect("SADD");
            if i % 3 == 0 {
                let _: i64 = redis::cmd("EXPIRE")
                    .arg(&h)
                    .arg(3600)
                    .query_async(&mut con)
                    .await
                    .expect("EXPIRE");
            }
            keys.push(h);
            keys.push(s);
        }
        let before = typed_snapshot(&mut con, &keys).await;
        assert!(before.iter().any(|(_, _, ttl)| *ttl));

        // A second node joins and takes about half the slots, with their collections.
        let n1 = start_datanode(nn_addr).await;
        converge(&[&n0, &n1]).await;
        // The routing flips before the source has freed what it handed over: wait until
        // each key is held once.
        let deadline = Instant::now() + STEP_LIMIT;
        while n1.node.db.is_empty() || n0.node.db.len() + n1.node.db.len() != keys.len() as u64 {
            assert!(
                Instant::now() < deadline,
                "keys held: {} + {}",
                n0.node.db.len(),
                n1.node.db.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for addr in [n0.addr(), n1.addr()] {
            let mut c = patient(addr).await;
            assert_eq!(typed_snapshot(&mut c, &keys).await, before, "via {addr}");
        }

        // The first node drains: everything lands on the second.
        let lines = drain(n0.admin_addr()).await;
        assert!(
            lines.last().is_some_and(|l| l.starts_with("drained:")),
            "{lines:?}"
        );
        tokio::time::timeout(STEP_LIMIT, n0.drained())
            .await
            .expect("drained");
        n0.shutdown().await;
        converge(&[&n1]).await;
        assert_eq!(n1.node.db.len(), keys.len() as u64);
        let mut c = patient(n1.addr()).await;
        assert_eq!(typed_snapshot(&mut c, &keys).await, before);
        n1.shutdown().await;
        nn.shutdown().await;
    };
    // Liveness only: each step has its own deadline; on a loaded machine they add up.
    tokio::time::timeout(Duration::from_secs(1200), test)
        .await
        .expect("test finishes");
}

/// Values of tens of megabytes under one hash tag (one slot far above a transfer's 16 MB)
/// move in a join and a drain, intact: each travels in a transfer of its own, where they
/// used to travel as one command of the whole slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_of_big_values_moves_intact() {
    const MB: usize = 1 << 20;
    let test = async {
        let nn = start_namenode().await;
        let nn_addr = nn.datanode_addr();
        let n0 = start_datanode(nn_addr).await;
        converge(&[&n0]).await;
        let mut con = patient(n0.addr()).await;
        // Three values of 24, 20 and 17 MB, each with its own byte pattern, and small keys
        // beside them in the same slot.
        let sizes = [24 * MB, 20 * MB, 17 * MB];
        let value = |i: usize| -> Vec<u8> {
            (0..sizes[i])
                .map(|j| (j.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8)
                .collect()
        };
        for i in 0..sizes.len() {
            let () = redis::cmd("SET")
                .arg(format!("{{big}}:v{i}"))
                .arg(value(i))
                .query_async(&mut con)
                .await
                .expect("SET big");
        }
        for i in 0..100 {
            let () = redis::cmd("SET")
                .arg(format!("{{big}}:s{i}"))
                .arg(i)
                .query_async(&mut con)
                .await
                .expect("SET small");
        }
        // Collections above a piece (4 MB) too: a hash, a list and a sorted set.
        const N: usize = 120_000;
        const PAD: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
        for chunk in (0..N).collect::<Vec<_>>().chunks(2000) {
            let mut p = redis::pipe();
            let h = p.cmd("HSET").arg("{big}:h");
            for i in chunk {
                h.arg(format!("field:{i}"))
                    .arg(format!("value:{i}:{}:{PAD}", i * 7));
            }
            let l = p.cmd("RPUSH").arg("{big}:l");
            for i in chunk {
                l.arg(format!("element:{i}:{PAD}"));
            }
            let z = p.cmd("ZADD").arg("{big}:z");
            for i in chunk {
                z.arg((i % 1000) as f64 / 8.0)
                    .arg(format!("member:{i}:{PAD}"));
            }
            let () = p.query_async(&mut con).await.expect("collections");
        }
        let collections = |c: &mut MultiplexedConnection| {
            let mut c = c.clone();
            async move {
                let h: HashMap<String, String> = redis::cmd("HGETALL")
                    .arg("{big}:h")
                    .query_async(&mut c)
                    .await
                    .expect("HGETALL");
                let l: Vec<String> = redis::cmd("LRANGE")
                    .arg("{big}:l")
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
                    .expect("LRANGE");
                let z: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg("{big}:z")
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
                    .expect("ZRANGE");
                (h, l, z)
            }
        };
        let before = collections(&mut con).await;
        assert_eq!((before.0.len(), before.1.len(), before.2.len()), (N, N, N));
        let keys = (sizes.len() + 100 + 3) as u64;
        let check = |addr: SocketAddr| async move {
            let mut c = patient(addr).await;
            for (i, &size) in sizes.iter().enumerate() {
                let got: Vec<u8> = redis::cmd("GET")
                    .arg(format!("{{big}}:v{i}"))
                    .query_async(&mut c)
                    .await
                    .expect("GET big");
                assert_eq!(got.len(), size, "{{big}}:v{i} via {addr}");
                assert!(got == value(i), "{{big}}:v{i} via {addr}: contents differ");
            }
            for i in 0..100 {
                let got: i64 = redis::cmd("GET")
                    .arg(format!("{{big}}:s{i}"))
                    .query_async(&mut c)
                    .await
                    .expect("GET small");
                assert_eq!(got, i);
            }
            c
        };
        // A join (the slot may or may not go to the new node), then a drain of the first:
        // everything lands on the second.
        let n1 = start_datanode(nn_addr).await;
        converge(&[&n0, &n1]).await;
        let deadline = Instant::now() + STEP_LIMIT;
        while n0.node.db.len() + n1.node.db.len() != keys {
            assert!(Instant::now() < deadline, "keys held twice or lost");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut c = check(n0.addr()).await;
        assert!(
            collections(&mut c).await == before,
            "collections differ after the join"
        );
        let lines = drain(n0.admin_addr()).await;
        let summary = lines.last().cloned().unwrap_or_default();
        assert!(summary.starts_with("drained:"), "{lines:?}");
        println!("big slot: {summary}");
        let pieces = n0
            .node
            .handoff
            .progress
            .pieces_sent_total
            .load(Ordering::Relaxed);
        tokio::time::timeout(STEP_LIMIT, n0.drained())
            .await
            .expect("drained");
        n0.shutdown().await;
        converge(&[&n1]).await;
        assert_eq!(n1.node.db.len(), keys);
        let mut c = check(n1.addr()).await;
        assert!(
            collections(&mut c).await == before,
            "collections differ after the drain"
        );
        // Each large value went in pieces: 24, 20 and 17 MB strings in 4 MB pieces, and
        // each collection in two at least.
        assert!(pieces >= 6 + 5 + 5 + 3 * 2, "{pieces} pieces");
        n1.shutdown().await;
        nn.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(1200), test)
        .await
        .expect("test finishes");
}
