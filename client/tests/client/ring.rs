//! Ring changes under load: 20 tasks run mixed commands through the library while a node
//! joins, another drains (`k` on its admin port) and a third is SIGKILLed; and while the
//! NameNode restarts. Each task owns its keys, so it knows exactly what every read must
//! return: no request may fail, no read may be stale, and the only misses allowed are keys
//! the killed node held.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chkv_client::{Bytes, Client, RetryBudget, SetOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::util::{
    bounded, converge, drain, namenode_config, start_datanode, start_namenode, step, ChildDataNode,
};

const TASKS: usize = 20;
const KEYS_PER_TASK: usize = 40;

/// What the load saw.
#[derive(Default)]
struct Outcome {
    ops: u64,
    errors: Vec<String>,
    /// Reads that found a killed node's key gone.
    misses: u64,
    model: HashMap<String, Expect>,
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Value(String),
    Counter(i64),
    Gone,
}

/// When the test started, to date errors against the phases it prints.
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn at() -> String {
    format!("{:?}", START.get_or_init(Instant::now).elapsed())
}

/// Keys the killed node held, published just before the kill.
type Lost = Arc<Mutex<Option<Arc<HashSet<String>>>>>;

fn lost_key(lost: &Lost, key: &str) -> bool {
    lost.lock()
        .expect("lost lock")
        .as_ref()
        .is_some_and(|l| l.contains(key))
}

fn key_names(task: usize) -> Vec<String> {
    (0..KEYS_PER_TASK)
        .map(|j| format!("t{task}:k{j}"))
        .collect()
}

/// One task of the load: SET, GET, INCR, DEL, MGET, SET PX, and checks every answer.
async fn load(
    task: usize,
    client: Client,
    stop: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
    lost: Lost,
) -> Outcome {
    let mut rng = SmallRng::seed_from_u64(task as u64 + 1);
    let keys = key_names(task);
    let mut out = Outcome::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        out.ops += 1;
        total.fetch_add(1, Ordering::Relaxed);
        let j = rng.random_range(0..KEYS_PER_TASK);
        let key = &keys[j];
        // Even keys hold values, odd keys counters, so each key has one kind.
        let roll = rng.random_range(0..100);
        if j % 2 == 1 {
            if roll < 70 {
                let before = match out.model.get(key) {
                    Some(Expect::Counter(n)) => *n,
                    _ => 0,
                };
                match client.incr(key).await {
                    Ok(n) if n == before + 1 => {
                        out.model.insert(key.clone(), Expect::Counter(n));
                    }
                    Ok(n) if lost_key(&lost, key) => {
                        out.misses += 1;
                        out.model.insert(key.clone(), Expect::Counter(n));
                    }
                    Ok(n) => out
                        .errors
                        .push(format!("INCR {key}: {n}, expected {}", before + 1)),
                    Err(e) => out.errors.push(at() + " " + &format!("INCR {key}: {e}")),
                }
            } else {
                check_get(&client, key, &mut out, &lost).await;
            }
            continue;
        }
        match roll {
            0..=34 => {
                let v = format!("v{seq}");
                match client.set(key, &v).await {
                    Ok(()) => {
                        out.model.insert(key.clone(), Expect::Value(v));
                    }
                    Err(e) => out.errors.push(at() + " " + &format!("SET {key}: {e}")),
                }
            }
            35..=44 => {
                let v = format!("x{seq}");
                let opts = SetOptions::new().px(600_000);
                match client.set_with(key, &v, opts).await {
                    Ok(_) => {
                        out.model.insert(key.clone(), Expect::Value(v));
                    }
                    Err(e) => out.errors.push(at() + " " + &format!("SET PX {key}: {e}")),
                }
            }
            45..=54 => {
                let existed = matches!(out.model.get(key), Some(Expect::Value(_)));
                match client.del([key]).await {
                    Ok(n) if (n == 1) == existed || (n == 0 && lost_key(&lost, key)) => {
                        out.model.insert(key.clone(), Expect::Gone);
                    }
                    Ok(n) => out
                        .errors
                        .push(format!("DEL {key}: {n}, existed {existed}")),
                    Err(e) => out.errors.push(at() + " " + &format!("DEL {key}: {e}")),
                }
            }
            55..=69 => {
                // MGET of a few of this task's keys, usually on several nodes.
                let picked: Vec<&String> = (0..4)
                    .map(|_| &keys[rng.random_range(0..KEYS_PER_TASK / 2) * 2])
                    .collect();
                match client.mget(&picked).await {
                    Ok(values) => {
                        for (k, v) in picked.iter().zip(values) {
                            compare(k, v, &mut out, &lost);
                        }
                    }
                    Err(e) => out.errors.push(at() + " " + &format!("MGET: {e}")),
                }
            }
            _ => check_get(&client, key, &mut out, &lost).await,
        }
    }
    out
}

async fn check_get(client: &Client, key: &str, out: &mut Outcome, lost: &Lost) {
    let owner = client.node_for_key(key);
    let epoch = client.ring().epoch;
    match client.get(key).await {
        Ok(v) => {
            let errors = out.errors.len();
            compare(key, v, out, lost);
            if out.errors.len() > errors {
                // Where is the key? Ask every node directly.
                let mut seen = Vec::new();
                for node in client.ring().nodes.iter().map(|n| n.client_addr) {
                    let r = client.cmd_on(node, ["GET", key]).await;
                    seen.push(format!("{node}: {r:?}"));
                }
                let after = client.node_for_key(key);
                if let Some(e) = out.errors.last_mut() {
                    e.push_str(&format!(
                        " [routed to {owner:?} at epoch {epoch}, now {after:?} at epoch {}; nodes: {}]",
                        client.ring().epoch,
                        seen.join(", ")
                    ));
                }
            }
        }
        Err(e) => out.errors.push(at() + " " + &format!("GET {key}: {e}")),
    }
}

/// Checks a read against what this task was last acknowledged.
fn compare(key: &str, got: Option<Bytes>, out: &mut Outcome, lost: &Lost) {
    let want = match out.model.get(key) {
        Some(Expect::Value(v)) => Some(v.clone()),
        Some(Expect::Counter(n)) => Some(n.to_string()),
        Some(Expect::Gone) | None => None,
    };
    let got = got.map(|b| String::from_utf8_lossy(&b).into_owned());
    if got == want {
        return;
    }
    if got.is_none() && lost_key(lost, key) {
        out.misses += 1;
        out.model.insert(key.to_string(), Expect::Gone);
        return;
    }
    out.errors
        .push(at() + " " + &format!("read {key}: {got:?}, acknowledged {want:?}"));
}

fn start_load(
    client: &Client,
    stop: &Arc<AtomicBool>,
    total: &Arc<AtomicU64>,
    lost: &Lost,
) -> Vec<tokio::task::JoinHandle<Outcome>> {
    (0..TASKS)
        .map(|i| {
            tokio::spawn(load(
                i,
                client.clone(),
                stop.clone(),
                total.clone(),
                lost.clone(),
            ))
        })
        .collect()
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(step("a load task ends", t).await.expect("load task"));
    }
    outcomes
}

fn assert_no_errors(outcomes: &[Outcome]) {
    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    assert!(
        errors.is_empty(),
        "{} errors reached the caller: {:?}",
        errors.len(),
        &errors[..errors.len().min(20)]
    );
}

/// Every acknowledged value is there (a killed node's keys may be gone).
async fn check_final(client: &Client, outcomes: &[Outcome], lost: &Lost) {
    for (task, o) in outcomes.iter().enumerate() {
        let keys = key_names(task);
        let values = client.mget(&keys).await.expect("final MGET");
        for (k, got) in keys.iter().zip(values) {
            let want = match o.model.get(k) {
                Some(Expect::Value(v)) => Some(v.clone()),
                Some(Expect::Counter(n)) => Some(n.to_string()),
                _ => None,
            };
            let got = got.map(|b| String::from_utf8_lossy(&b).into_owned());
            assert!(
                got == want || (got.is_none() && lost_key(lost, k)),
                "{k}: {got:?}, acknowledged {want:?}"
            );
        }
    }
}

/// A client whose timeouts are liveness bounds: a request slower than the defaults (2 s per
/// reply, retries within 5 s) on a loaded machine is slow, not failed, and a timed-out write
/// may still have applied, which would make the model wrong.
async fn patient_client(namenode: SocketAddr) -> Client {
    crate::util::builder()
        .response_timeout(Duration::from_secs(30))
        .retry_budget(RetryBudget {
            attempts: 100_000,
            time: Duration::from_secs(30),
        })
        .connect(namenode)
        .await
        .expect("client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_drain_and_kill_under_load() {
    bounded(Duration::from_secs(300), async {
        at();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let namenode = start_namenode(namenode_config()).await;
        let nn = namenode.datanode_addr();
        let a = start_datanode(Some(nn)).await;
        let b = start_datanode(Some(nn)).await;
        let mut c = ChildDataNode::spawn(nn).await;
        let client = patient_client(namenode.client_addr()).await;
        converge(&client, 3).await;
        println!(
            "nodes: a {} b {} c (process) {}",
            a.addr(),
            b.addr(),
            c.addr
        );
        let mut ring = client.watch_ring();
        let epochs = Arc::new(Mutex::new(vec![(
            ring.borrow().epoch,
            ring.borrow().node_count(),
        )]));
        let seen = epochs.clone();
        let ring_task = tokio::spawn(async move {
            while ring.changed().await.is_ok() {
                let r = ring.borrow_and_update().clone();
                seen.lock().expect("epochs").push((r.epoch, r.node_count()));
            }
        });

        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let lost: Lost = Arc::new(Mutex::new(None));
        let tasks = start_load(&client, &stop, &total, &lost);
        tokio::time::sleep(Duration::from_millis(500)).await;

        println!("{} --- a fourth DataNode joins", at());
        let t = Instant::now();
        let d = start_datanode(Some(nn)).await;
        println!("node d {}", d.addr());
        converge(&client, 4).await;
        println!(
            "joined in {:?}, {} ops so far",
            t.elapsed(),
            total.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;

        println!(
            "{} --- draining the second DataNode with `k` on its admin port",
            at()
        );
        let t = Instant::now();
        let lines = drain(b.admin_addr()).await;
        assert!(
            lines.last().is_some_and(|l| l.starts_with("drained:")),
            "{lines:?}"
        );
        step("drained", b.drained()).await;
        b.shutdown().await;
        converge(&client, 3).await;
        println!(
            "drained in {:?}, {} ops so far",
            t.elapsed(),
            total.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;

        println!("{} --- SIGKILL to the DataNode process", at());
        let victim: SocketAddr = c.addr;
        let held: HashSet<String> = (0..TASKS)
            .flat_map(key_names)
            .filter(|k| client.node_for_key(k) == Some(victim))
            .collect();
        assert!(!held.is_empty(), "the victim holds some keys");
        let held_count = held.len();
        *lost.lock().expect("lost lock") = Some(Arc::new(held));
        let t = Instant::now();
        c.kill();
        converge(&client, 2).await;
        println!(
            "ring without the killed node after {:?}; it held {held_count} of the tasks' keys",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(700)).await;

        stop.store(true, Ordering::Relaxed);
        let outcomes = finish(tasks).await;
        let ops: u64 = outcomes.iter().map(|o| o.ops).sum();
        let misses: u64 = outcomes.iter().map(|o| o.misses).sum();
        println!("{ops} operations by {TASKS} tasks, {misses} misses on the killed node's keys");
        assert_no_errors(&outcomes);
        check_final(&client, &outcomes, &lost).await;

        ring_task.abort();
        let epochs = epochs.lock().expect("epochs").clone();
        let counts: Vec<usize> = epochs.iter().map(|e| e.1).collect();
        println!("ring changes seen (epoch, nodes): {epochs:?}");
        assert!(
            epochs.windows(2).all(|w| w[0].0 <= w[1].0),
            "epochs only grow"
        );
        for want in [3, 4, 2] {
            assert!(
                counts.contains(&want),
                "the watch saw {want} nodes: {counts:?}"
            );
        }

        drop(client);
        a.shutdown().await;
        d.shutdown().await;
        namenode.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namenode_restart_under_load() {
    bounded(Duration::from_secs(300), async {
        let mut config = namenode_config();
        let namenode = start_namenode(config.clone()).await;
        // The restarted NameNode comes back on the same ports.
        config.datanode_port = namenode.datanode_addr().port();
        config.client_port = namenode.client_addr().port();
        let nn = namenode.datanode_addr();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(start_datanode(Some(nn)).await);
        }
        let client = patient_client(namenode.client_addr()).await;
        converge(&client, 3).await;
        let epoch = client.ring().epoch;

        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let lost: Lost = Arc::new(Mutex::new(None));
        let tasks = start_load(&client, &stop, &total, &lost);
        tokio::time::sleep(Duration::from_millis(300)).await;

        println!("{} --- NameNode down", at());
        let mut ring = client.watch_ring();
        ring.borrow_and_update();
        namenode.shutdown().await;
        let before = total.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let during = total.load(Ordering::Relaxed) - before;
        println!("{during} operations while the NameNode was down");
        assert!(during > 100, "the data plane kept serving");

        println!("{} --- NameNode back", at());
        let namenode = start_namenode(config).await;
        step("the client watches the new NameNode", ring.changed())
            .await
            .expect("a table from the new NameNode");
        println!(
            "table from the restarted NameNode: {:?}",
            client.ring().epoch
        );
        assert!(client.ring().epoch >= epoch);
        converge(&client, 3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        stop.store(true, Ordering::Relaxed);
        let outcomes = finish(tasks).await;
        let ops: u64 = outcomes.iter().map(|o| o.ops).sum();
        println!("{ops} operations by {TASKS} tasks");
        assert_no_errors(&outcomes);
        check_final(&client, &outcomes, &lost).await;

        drop(client);
        for n in nodes {
            n.shutdown().await;
        }
        namenode.shutdown().await;
    })
    .await
}
