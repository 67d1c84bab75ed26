//! GET throughput and latency with and without the near-cache, on a Zipf-distributed key
//! choice, against a running cluster (both clients in the same run, rounds alternated).
//!
//! ```text
//! helper/cluster.sh --free-ports                       # note the NameNode client port
//! cargo run --release -p chkv-client --example nearcache_bench -- 127.0.0.1:10102
//! ```
//!
//! Arguments (all optional, in order): NameNode address, keys (10000), Zipf exponent
//! (0.99), concurrent tasks (32), seconds per round (3), rounds (3), value bytes (100).
//! Prints each round and the medians: GETs/s, mean latency per GET as the tasks see it,
//! the near-cache's hit ratio, and the ratio of the two throughputs. A write-free workload:
//! it measures the read path only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chkv_client::{Client, NearCacheOptions};
use rand::{Rng, SeedableRng};

/// The cumulative distribution of Zipf(`s`) over `n` ranks.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    for p in &mut cdf {
        *p /= total;
    }
    cdf
}

fn key(i: usize) -> String {
    format!("zipf:{i}")
}

/// One round: `tasks` tasks GET for `secs`; returns (GETs/s, mean latency).
async fn round(client: &Client, cdf: &Arc<Vec<f64>>, tasks: usize, secs: u64) -> (f64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let busy_ns = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (client, cdf, stop, ops, busy_ns) = (
            client.clone(),
            cdf.clone(),
            stop.clone(),
            ops.clone(),
            busy_ns.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(t as u64);
            let (mut n, mut ns) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let u: f64 = rng.random();
                let i = cdf.partition_point(|&p| p < u).min(cdf.len() - 1);
                let started = Instant::now();
                let v = client.get(key(i)).await.expect("GET");
                ns += started.elapsed().as_nanos() as u64;
                assert!(v.is_some(), "key {i} was loaded");
                n += 1;
            }
            ops.fetch_add(n, Ordering::Relaxed);
            busy_ns.fetch_add(ns, Ordering::Relaxed);
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = ops.load(Ordering::Relaxed);
    let mean = Duration::from_nanos(busy_ns.load(Ordering::Relaxed) / n.max(1));
    (n as f64 / elapsed, mean)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), chkv_client::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let namenode = arg(0, "127.0.0.1:10102");
    let keys: usize = arg(1, "10000").parse().expect("keys");
    let s: f64 = arg(2, "0.99").parse().expect("Zipf exponent");
    let tasks: usize = arg(3, "32").parse().expect("tasks");
    let secs: u64 = arg(4, "3").parse().expect("seconds");
    let rounds: usize = arg(5, "3").parse().expect("rounds");
    let value_len: usize = arg(6, "100").parse().expect("value bytes");

    let plain = Client::connect(namenode.as_str()).await?;
    let near = Client::builder()
        .near_cache(NearCacheOptions::default().max_entries(keys.max(1)))
        .connect(namenode.as_str())
        .await?;
    let value = "v".repeat(value_len);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        plain
            .mset(chunk.iter().map(|&i| (key(i), value.as_str())))
            .await?;
    }
    let cdf = Arc::new(zipf_cdf(keys, s));
    println!(
        "{keys} keys of {value_len} bytes, Zipf({s}), {tasks} tasks, {rounds} rounds of {secs} s, {} DataNodes",
        plain.ring().node_count()
    );
    let (mut p_ops, mut n_ops, mut p_lat, mut n_lat, mut hit) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in 1..=rounds {
        let (ops, lat) = round(&plain, &cdf, tasks, secs).await;
        println!("round {r} plain: {ops:.0} GET/s, mean {lat:?}");
        p_ops.push(ops);
        p_lat.push(lat.as_secs_f64());
        let before = near.near_cache_stats().unwrap_or_default();
        let (ops, lat) = round(&near, &cdf, tasks, secs).await;
        let after = near.near_cache_stats().unwrap_or_default();
        let (h, m) = (after.hits - before.hits, after.misses - before.misses);
        let ratio = h as f64 / (h + m).max(1) as f64;
        println!(
            "round {r} near-cache: {ops:.0} GET/s, mean {lat:?}, hit ratio {:.3}",
            ratio
        );
        n_ops.push(ops);
        n_lat.push(lat.as_secs_f64());
        hit.push(ratio);
    }
    let (po, no) = (median(p_ops), median(n_ops));
    println!(
        "median plain: {po:.0} GET/s, mean latency {:?}",
        Duration::from_secs_f64(median(p_lat))
    );
    println!(
        "median near-cache: {no:.0} GET/s, mean latency {:?}, hit ratio {:.3}",
        Duration::from_secs_f64(median(n_lat)),
        median(hit)
    );
    println!(
        "throughput ratio near-cache / plain: {:.2}x",
        no / po.max(1.0)
    );
    println!("{:?}", near.near_cache_stats());
    Ok(())
}
