//! A load generator for what redis-benchmark cannot send: a *unit* of several commands (a
//! transaction, `MULTI;SET key:__rand_int__ v;INCR counter:__rand_int__;EXEC`) written at
//! once and counted as one request, as a client's transactional pipeline sends it.
//!
//! ```text
//! cargo run --release -p chkv-datanode --example loadgen -- -p 6379 -c 50 -n 200000 -P 16 \
//!     -r 1000000 --unit 'MULTI;SET key:__rand_int__ xxx;INCR counter:__rand_int__;EXEC'
//! ```
//!
//! `-c` connections (the `redis` crate's multiplexed connection, one task each, on one
//! thread like redis-benchmark), `-n` units in all, `-P` units per round trip, `-r`: each
//! `__rand_int__` becomes a random 12-digit number below that. Every reply is checked: a
//! server error anywhere (EXECABORT, an error inside EXEC's array, a null EXEC) stops the run
//! with a non-zero exit. Prints redis-benchmark's `--csv` format (header, one row), the
//! latency being that of the unit's round trip, so `helper/bench-vs-redis.sh` reads both the
//! same way.

use redis::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Args {
    host: String,
    port: u16,
    clients: usize,
    requests: u64,
    pipeline: u64,
    keyspace: u64,
    unit: Vec<Vec<String>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen [-h HOST] -p PORT [-c 50] [-n 100000] [-P 1] [-r 1000000] \
         --unit 'CMD ARGS;CMD ARGS;...'"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 0,
        clients: 50,
        requests: 100_000,
        pipeline: 1,
        keyspace: 1_000_000,
        unit: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        fn num<T: std::str::FromStr>(s: String) -> T {
            s.parse().unwrap_or_else(|_| usage())
        }
        match flag.as_str() {
            "-h" => a.host = value(),
            "-p" => a.port = num(value()),
            "-c" => a.clients = num(value()),
            "-n" => a.requests = num(value()),
            "-P" => a.pipeline = num(value()),
            "-r" => a.keyspace = num(value()),
            "--unit" => {
                a.unit = value()
                    .split(';')
                    .map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
                    .filter(|c| !c.is_empty())
                    .collect()
            }
            _ => usage(),
        }
    }
    if a.port == 0
        || a.unit.is_empty()
        || a.clients == 0
        || a.requests == 0
        || a.pipeline == 0
        || a.keyspace == 0
    {
        usage();
    }
    a
}

/// xorshift64*: cheap and good enough to spread keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The first server error in a reply, looking inside arrays (EXEC's per-command replies).
fn error_in(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(format!("{e:?}")),
        Value::Array(items) => items.iter().find_map(error_in),
        _ => None,
    }
}

/// The pipeline of `units` units, `__rand_int__` replaced.
fn batch(unit: &[Vec<String>], units: u64, keyspace: u64, rng: &mut Rng) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for _ in 0..units {
        for cmd in unit {
            let c = pipe.cmd(&cmd[0]);
            for arg in &cmd[1..] {
                if arg.contains("__rand_int__") {
                    let r = format!("{:012}", rng.below(keyspace));
                    c.arg(arg.replace("__rand_int__", &r));
                } else {
                    c.arg(arg);
                }
            }
        }
    }
    pipe
}

async fn worker(
    id: usize,
    mut con: redis::aio::MultiplexedConnection,
    args: Arc<Args>,
    left: Arc<AtomicU64>,
) -> Result<Vec<u32>, String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let mut latencies = Vec::new();
    loop {
        // Claim up to -P units; stop when none are left.
        let mut units = 0;
        let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            units = n.min(args.pipeline);
            Some(n - units)
        });
        if units == 0 {
            return Ok(latencies);
        }
        let pipe = batch(&args.unit, units, args.keyspace, &mut rng);
        let t = Instant::now();
        let replies: Vec<Value> = pipe
            .query_async(&mut con)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        let expected = units as usize * args.unit.len();
        if replies.len() != expected {
            return Err(format!("{} replies, expected {expected}", replies.len()));
        }
        if let Some(e) = replies.iter().find_map(error_in) {
            return Err(format!("server error: {e}"));
        }
        // A transaction that did not run (EXEC answered null) is not a request served.
        if let Some(i) = args
            .unit
            .iter()
            .position(|c| c[0].eq_ignore_ascii_case("exec"))
        {
            for u in 0..units as usize {
                if !matches!(replies[u * args.unit.len() + i], Value::Array(_)) {
                    return Err(format!(
                        "EXEC replied {:?}",
                        replies[u * args.unit.len() + i]
                    ));
                }
            }
        }
        latencies.extend(std::iter::repeat_n(us, units as usize));
    }
}

fn main() {
    let args = Arc::new(parse_args());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let client = redis::Client::open(format!("redis://{}:{}/", args.host, args.port))
            .map_err(|e| e.to_string())?;
        // No response timeout (the redis crate's default is 500 ms): on a loaded machine a
        // slow reply is a slow request to measure, not a failure.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut cons = Vec::with_capacity(args.clients);
        for _ in 0..args.clients {
            cons.push(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            );
        }
        let left = Arc::new(AtomicU64::new(args.requests));
        let started = Instant::now();
        let tasks: Vec<_> = cons
            .into_iter()
            .enumerate()
            .map(|(i, con)| tokio::spawn(worker(i, con, args.clone(), left.clone())))
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>((started.elapsed(), latencies))
    });
    let (elapsed, mut lat) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    lat.sort_unstable();
    let ms = |us: u32| f64::from(us) / 1000.0;
    let pct = |p: f64| ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    let avg = lat.iter().map(|&u| f64::from(u)).sum::<f64>() / lat.len() as f64 / 1000.0;
    let title: Vec<String> = args.unit.iter().map(|c| c[0].to_uppercase()).collect();
    println!(
        "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\""
    );
    println!(
        "\"{}\",\"{:.2}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\"",
        title.join("/"),
        lat.len() as f64 / elapsed.as_secs_f64(),
        avg,
        ms(lat[0]),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        ms(lat[lat.len() - 1]),
    );
}
