//! SET/GET throughput of chkv-client against the `redis` crate's multiplexed connection,
//! same process, same runtime, same load, alternating.
//!
//! ```text
//! cargo run --release -p chkv-client --example bench -- --standalone 127.0.0.1:10100
//! cargo run --release -p chkv-client --example bench -- --namenode 127.0.0.1:10102 --via 127.0.0.1:10100
//! ```
//!
//! `--standalone ADDR`: both clients talk to one DataNode. `--namenode ADDR --via ADDR`: the
//! library routes every key to its owner; the `redis` crate sends everything to the DataNode
//! at `--via`, which forwards what it does not own. Each round runs both clients for
//! `--seconds` per operation (the order alternates between rounds); the table shows the
//! median of the rounds. `helper/bench-client.sh` starts the servers and runs both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chkv_client::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Library,
    Redis,
}

struct Args {
    standalone: Option<SocketAddr>,
    namenode: Option<String>,
    via: Option<SocketAddr>,
    tasks: usize,
    seconds: f64,
    rounds: usize,
    keyspace: usize,
    size: usize,
    pool: usize,
    /// Run one client only (for profiling).
    only: Option<Side>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench (--standalone ADDR | --namenode ADDR --via ADDR) [--tasks 50] \
         [--seconds 3] [--rounds 3] [--keyspace 100000] [--size 32] [--pool 1] \
         [--only library|redis]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        standalone: None,
        namenode: None,
        via: None,
        tasks: 50,
        seconds: 3.0,
        rounds: 3,
        keyspace: 100_000,
        size: 32,
        pool: 1,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--standalone" => a.standalone = Some(value.parse().unwrap_or_else(|_| usage())),
            "--namenode" => a.namenode = Some(value.clone()),
            "--via" => a.via = Some(value.parse().unwrap_or_else(|_| usage())),
            "--tasks" => a.tasks = number(),
            "--seconds" => a.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--rounds" => a.rounds = number(),
            "--keyspace" => a.keyspace = number(),
            "--size" => a.size = number(),
            "--pool" => a.pool = number(),
            "--only" => {
                a.only = Some(match value.as_str() {
                    "library" => Side::Library,
                    "redis" => Side::Redis,
                    _ => usage(),
                })
            }
            _ => usage(),
        }
    }
    let ok = matches!(
        (&a.standalone, &a.namenode, &a.via),
        (Some(_), None, None) | (None, Some(_), Some(_))
    );
    if !ok || a.tasks == 0 || a.rounds == 0 || a.keyspace == 0 {
        usage();
    }
    a
}

/// Runs `tasks` loops of `op` for `seconds`; operations per second.
async fn run(
    side: Side,
    op: Op,
    args: &Args,
    client: &Client,
    redis: &redis::aio::MultiplexedConnection,
    keys: &Arc<Vec<String>>,
    value: &Arc<Vec<u8>>,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..args.tasks {
        let (stop, done, errors) = (stop.clone(), done.clone(), errors.clone());
        let (keys, value) = (keys.clone(), value.clone());
        let client = client.clone();
        let mut con = redis.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(t as u64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[rng.random_range(0..keys.len())];
                let ok = match (side, op) {
                    (Side::Library, Op::Set) => client.set(key, &value[..]).await.is_ok(),
                    (Side::Library, Op::Get) => client.get(key).await.is_ok(),
                    (Side::Redis, Op::Set) => redis::cmd("SET")
                        .arg(key)
                        .arg(&value[..])
                        .query_async::<()>(&mut con)
                        .await
                        .is_ok(),
                    (Side::Redis, Op::Get) => redis::cmd("GET")
                        .arg(key)
                        .query_async::<Option<Vec<u8>>>(&mut con)
                        .await
                        .is_ok(),
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        eprintln!("{side:?} {op:?}: {errors} requests failed");
        std::process::exit(1);
    }
    done.load(Ordering::Relaxed) as f64 / elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let builder = Client::builder().pool_size(args.pool);
    let (client, redis_addr, target) = match (&args.standalone, &args.namenode, &args.via) {
        (Some(addr), _, _) => (
            builder.connect_standalone(*addr).await,
            *addr,
            "standalone DataNode",
        ),
        (None, Some(nn), Some(via)) => (builder.connect(nn.as_str()).await, *via, "3-node cluster"),
        _ => usage(),
    };
    let client = client.unwrap_or_else(|e| {
        eprintln!("chkv-client cannot connect: {e}");
        std::process::exit(1)
    });
    let redis = redis::Client::open(format!("redis://{redis_addr}/")).expect("redis URL");
    let redis = redis
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            eprintln!("redis crate cannot connect: {e}");
            std::process::exit(1)
        });

    let keys: Arc<Vec<String>> = Arc::new(
        (0..args.keyspace)
            .map(|i| format!("bench:{i:08}"))
            .collect(),
    );
    let value: Arc<Vec<u8>> = Arc::new(vec![b'x'; args.size]);
    // Every key exists, so GETs return values.
    for chunk in keys.chunks(1000) {
        client
            .mset(chunk.iter().map(|k| (k.as_str(), &value[..])))
            .await
            .expect("prefill");
    }
    eprintln!(
        "{target}: {} tasks, {} s per run, {} rounds, {} keys, {}-byte values, {} connection(s) per node",
        args.tasks, args.seconds, args.rounds, args.keyspace, args.size, args.pool
    );

    let mut results: Vec<(Op, Side, Vec<f64>)> = Vec::new();
    for op in [Op::Set, Op::Get] {
        for side in [Side::Library, Side::Redis] {
            results.push((op, side, Vec::new()));
        }
    }
    for round in 0..args.rounds {
        for op in [Op::Set, Op::Get] {
            let order = if round % 2 == 0 {
                [Side::Library, Side::Redis]
            } else {
                [Side::Redis, Side::Library]
            };
            for side in order {
                if args.only.is_some_and(|only| only != side) {
                    continue;
                }
                let rate = run(side, op, &args, &client, &redis, &keys, &value).await;
                eprintln!("round {} {op:?} {side:?}: {rate:.0} ops/s", round + 1);
                if let Some(r) = results.iter_mut().find(|r| r.0 == op && r.1 == side) {
                    r.2.push(rate);
                }
            }
        }
    }

    let via = if args.standalone.is_some() {
        "redis-rs, same node".to_string()
    } else {
        format!("redis-rs via {redis_addr} (forwarding)")
    };
    println!("| target | op | chkv-client ops/s | {via} ops/s | ratio |");
    println!("|---|---|---:|---:|---:|");
    for op in [Op::Set, Op::Get] {
        let get = |side| {
            results
                .iter()
                .find(|r| r.0 == op && r.1 == side)
                .map_or(0.0, |r| median(r.2.clone()))
        };
        let (lib, red) = (get(Side::Library), get(Side::Redis));
        println!(
            "| {target} | {} | {lib:.0} | {red:.0} | {:.2}x |",
            if op == Op::Set { "SET" } else { "GET" },
            lib / red
        );
    }
}
