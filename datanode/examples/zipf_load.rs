//! A Zipf-distributed read-through cache workload, for comparing eviction policies by hit
//! ratio (`helper/bench-hit-ratio.sh` runs it against redis-server and a DataNode).
//!
//! Each request picks a key rank from a Zipf distribution (exponent `--zipf`, default 0.99)
//! over `--keys` keys and GETs it; on a miss it SETs the key, as an application that reads
//! through its cache would. A warm-up phase fills the cache; the measured phase reports:
//!
//! ```text
//! hit_ratio=0.8123 ops_per_sec=61234 gets=2000000 hits=1624600 sets=375400 errors=0 elapsed_s=38.8
//! ```
//!
//! Deterministic: client task `i` draws its ranks from a generator seeded with `--seed` and
//! `i`, so every run sends each task the same sequence (the interleaving of tasks may vary).
//! Only loopback servers are accepted.
//!
//! ```sh
//! cargo run --release -p chkv-datanode --example zipf_load -- --port 6379
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Zipf read-through load: GET, and SET on a miss; prints the hit ratio")]
struct Args {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u32,
    /// Zipf exponent s: rank r is requested with probability proportional to 1 / r^s.
    #[arg(long, default_value_t = 0.99)]
    zipf: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Requests (GETs) before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    warmup: u64,
    /// Requests (GETs) measured.
    #[arg(long, default_value_t = 2_000_000)]
    requests: u64,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: u64,
    /// Seed of the request sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give SETs this TTL in seconds (0: none), so volatile-* policies can evict them.
    #[arg(long, default_value_t = 0)]
    ttl: u64,
}

/// Zipf sampling by inverse transform: the CDF over ranks, and a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for r in 1..=n {
            acc += (r as f64).powf(-s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// A rank in 0..n (0 is the most popular).
    fn sample(&self, rng: &mut SmallRng) -> u32 {
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c < u);
        i.min(self.cdf.len() - 1) as u32
    }
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    hits: AtomicU64,
    sets: AtomicU64,
    errors: AtomicU64,
}

/// The value stored for a key: `size` bytes derived from the rank, so a hit can be checked.
fn value_for(rank: u32, size: usize) -> Vec<u8> {
    let tag = format!("{rank:010}:");
    tag.bytes().cycle().take(size).collect()
}

/// Runs `n` read-through requests on `con`; counts into `c` when given.
async fn run(
    con: &mut MultiplexedConnection,
    zipf: &Zipf,
    rng: &mut SmallRng,
    n: u64,
    args: &Args,
    c: Option<&Counters>,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let rank = zipf.sample(rng);
        let key = format!("key:{rank}");
        let got: redis::RedisResult<Option<Vec<u8>>> =
            redis::cmd("GET").arg(&key).query_async(con).await;
        let hit = match got {
            Ok(Some(v)) => {
                if v.len() != args.value_size {
                    bail!("GET {key}: {} bytes, expected {}", v.len(), args.value_size);
                }
                true
            }
            Ok(None) => false,
            Err(e) if e.kind() == redis::ErrorKind::Io => return Err(e).context("GET"),
            Err(_) => {
                if let Some(c) = c {
                    c.errors.fetch_add(1, Relaxed);
                }
                false
            }
        };
        if let Some(c) = c {
            c.gets.fetch_add(1, Relaxed);
            if hit {
                c.hits.fetch_add(1, Relaxed);
            }
        }
        if hit {
            continue;
        }
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(value_for(rank, args.value_size));
        if args.ttl > 0 {
            set.arg("EX").arg(args.ttl);
        }
        match set.query_async::<()>(con).await {
            Ok(()) => {}
            Err(e) if e.kind() == redis::ErrorKind::Io => return Err(e).context("SET"),
            // -OOM under noeviction or a volatile policy: the cache refused the write.
            Err(_) => {
                if let Some(c) = c {
                    c.errors.fetch_add(1, Relaxed);
                }
            }
        }
        if let Some(c) = c {
            c.sets.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if !args.host.is_loopback() {
        bail!("--host must be a loopback address, got {}", args.host);
    }
    if args.keys == 0 || args.clients == 0 {
        bail!("--keys and --clients must be positive");
    }
    eprintln!(
        "zipf_load: keys={} s={} value={}B clients={} warmup={} requests={} seed={} ttl={}",
        args.keys,
        args.zipf,
        args.value_size,
        args.clients,
        args.warmup,
        args.requests,
        args.seed,
        args.ttl
    );
    let zipf = Arc::new(Zipf::new(args.keys, args.zipf));
    let url = format!("redis://{}:{}/", args.host, args.port);
    let client = redis::Client::open(url.as_str())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let counters = Arc::new(Counters::default());
    let start_measuring = Arc::new(tokio::sync::Barrier::new(args.clients as usize + 1));
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (args, zipf, counters, barrier) = (
            args.clone(),
            zipf.clone(),
            counters.clone(),
            start_measuring.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(args.seed.wrapping_mul(1_000_003) ^ i);
            // Spread the remainder over the first tasks so the totals are exact.
            let share = |total: u64| total / args.clients + u64::from(i < total % args.clients);
            let warm = run(&mut con, &zipf, &mut rng, share(args.warmup), &args, None).await;
            barrier.wait().await;
            warm?;
            run(
                &mut con,
                &zipf,
                &mut rng,
                share(args.requests),
                &args,
                Some(&counters),
            )
            .await
        }));
    }
    start_measuring.wait().await;
    let t0 = Instant::now();
    for t in tasks {
        t.await.context("client task panicked")??;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let c = &counters;
    let (gets, hits, sets, errors) = (
        c.gets.load(Relaxed),
        c.hits.load(Relaxed),
        c.sets.load(Relaxed),
        c.errors.load(Relaxed),
    );
    println!(
        "hit_ratio={:.4} ops_per_sec={:.0} gets={gets} hits={hits} sets={sets} errors={errors} elapsed_s={elapsed:.1}",
        hits as f64 / gets.max(1) as f64,
        (gets + sets) as f64 / elapsed.max(1e-9),
    );
    Ok(())
}
