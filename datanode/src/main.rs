//! `chkv-datanode`: flags, logging, signals; everything else is in the library.

use anyhow::Context;
use chkv_datanode::config::Config;
use chkv_datanode::store::evict::{EvictionConfig, Policy};
use clap::Parser;
use std::net::IpAddr;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A CHKV DataNode: an in-memory cache that speaks the Redis protocol.
#[derive(Parser, Debug)]
#[command(name = "chkv-datanode", version, about)]
struct Args {
    /// Address to listen on for RESP clients.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// RESP port (0 picks a free one).
    #[arg(long, default_value_t = 10100)]
    port: u16,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "CHKV_REQUIREPASS")]
    requirepass: Option<String>,
    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 10000)]
    maxclients: usize,
    /// Active expiry cycles per second.
    #[arg(long, default_value_t = 10)]
    hz: u32,
    /// NameNode address (its DataNode port) to join a cluster; standalone without it.
    #[arg(long)]
    namenode: Option<std::net::SocketAddr>,
    /// Stable node id (40 hex characters); derived from the advertised address by default.
    #[arg(long)]
    node_id: Option<String>,
    /// Address other nodes and clients should use to reach this node.
    #[arg(long)]
    advertise: Option<std::net::SocketAddr>,
    /// Answer -MOVED to every client like Redis Cluster, instead of forwarding.
    #[arg(long)]
    cluster_redirects: bool,
    /// Heartbeat period towards the NameNode, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Address of the admin port (plain text; `k` drains the node).
    #[arg(long, default_value = "127.0.0.1")]
    admin_bind: IpAddr,
    /// Admin port.
    #[arg(long, default_value_t = 20000)]
    admin_port: u16,
    /// HTTP port for Prometheus `/metrics` and `/healthz` (off unless given; 0 picks a free
    /// one).
    #[arg(long)]
    http_port: Option<u16>,
    /// Address of the HTTP port.
    #[arg(long, default_value = "127.0.0.1")]
    http_bind: IpAddr,
    /// Memory limit for the data (`100mb`, `2gb`, bytes without a unit; 0 = none). Above it,
    /// keys are evicted by --maxmemory-policy.
    #[arg(long, default_value = "0", value_parser = parse_maxmemory)]
    maxmemory: u64,
    /// What to do at the memory limit: noeviction, allkeys-lru, allkeys-lfu, allkeys-random,
    /// volatile-lru, volatile-lfu, volatile-random, volatile-ttl.
    #[arg(long, default_value = "noeviction", value_parser = parse_policy)]
    maxmemory_policy: Policy,
    /// Keys sampled per eviction (more: closer to exact LRU/LFU, slower; at most 64 are used).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    maxmemory_samples: u32,
    /// LFU: hits it takes to grow the frequency counter (higher: slower).
    #[arg(long, default_value_t = 10)]
    lfu_log_factor: u32,
    /// LFU: minutes for the frequency counter to decay by one (0: never).
    #[arg(long, default_value_t = 1)]
    lfu_decay_time: u32,
    /// Worker threads (default: one per core less one, at least one).
    #[arg(long)]
    threads: Option<usize>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("invalid --log-level {:?}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config {
        bind: args.bind,
        port: args.port,
        requirepass: args.requirepass.map(String::into_bytes),
        maxclients: args.maxclients,
        hz: args.hz.clamp(1, 500),
        node_id: args.node_id,
        namenode: args.namenode,
        advertise: args.advertise,
        cluster_redirects: args.cluster_redirects,
        heartbeat_ms: args.heartbeat_ms,
        admin_addr: std::net::SocketAddr::new(args.admin_bind, args.admin_port),
        http_addr: args
            .http_port
            .map(|port| std::net::SocketAddr::new(args.http_bind, port)),
        eviction: EvictionConfig {
            maxmemory: args.maxmemory,
            policy: args.maxmemory_policy,
            samples: args.maxmemory_samples,
            lfu_log_factor: args.lfu_log_factor,
            lfu_decay_time: args.lfu_decay_time,
        },
        ..Config::default()
    };
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    rt.block_on(chkv_datanode::server::run(config, shutdown_signal()))
        .context("serving")?;
    Ok(())
}

/// Worker threads when `--threads` is not given: one per core, less one core, and at least
/// one.
///
/// The spare core is for the work a node causes outside its workers: the kernel's network
/// stack (softirqs, the copies of every read and write), and on most machines the clients
/// or other services sharing it. Redis gives the same advice for its I/O threads ("if you
/// have a 4 cores boxes, try to use 2 or 3 I/O threads"). It matters most on small
/// machines. On this project's 2-core test machines, with `redis-benchmark` on the same
/// machine:
/// - at pipeline 1, two workers and the client want three cores: the workers' wake-ups
///   preempt the client, and SET and GET ran at 0.79-1.02 times redis-server's throughput
///   (`helper/bench-vs-redis.sh`, medians of 5 rounds), p99 up to 1.46 times;
/// - one worker ran them at 1.02-1.11 times redis-server's, p99 at most 1.0 times.
///
/// Pipelined loads that leave a core idle run faster with a worker per core (`--threads`):
/// at pipeline 16 two workers ran SET and GET at 1.36-1.64 times redis-server's, one at
/// 1.18-1.42.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

/// Turns transparent huge pages off for this process and keeps mimalloc from reclaiming a
/// page on a free from another thread (its `page_reclaim_on_free` option, set to -1).
///
/// THP, like Redis's `disable-thp yes`: mimalloc asks for huge pages (`MADV_HUGEPAGE`), and
/// where the kernel honours that (`enabled` or `defrag` set to `madvise`, the Debian default)
/// the first write to each 2 MiB of fresh memory stalls while the kernel zeroes (and may
/// compact for) a whole huge page. While the keyspace grows, those stalls landed in the
/// replies: 200,000 `SET`s of 1 KiB values on a fresh node had p99 1.31-1.38 ms with THP and
/// 0.24 ms without (redis-server 7.0: 0.25-0.51 ms), at the same throughput and with 3% less
/// RSS. The flag (`PR_SET_THP_DISABLE`) is checked at every fault, so it also covers the
/// memory mimalloc mapped before `main`.
///
/// A cache at `maxmemory` frees a key on whichever worker runs the write that evicts it, not
/// on the one that allocated it. With the default, 2,000,000 SETs of 1 KiB values under
/// `--maxmemory 100mb` left RSS (empty process excluded) at 1.15 to 1.44 times
/// `used_memory` over eight runs, often above the 1.25 the node is meant to stay under;
/// with the option, 1.12 to 1.15 over seven, at the same throughput
/// (`helper/bench-maxmemory.sh`).
fn tune_allocator() {
    use std::ffi::{c_int, c_long};
    extern "C" {
        fn mi_version() -> c_int;
        fn mi_option_set(option: c_int, value: c_long);
    }
    /// `mi_option_page_reclaim_on_free` in mimalloc 3.3's `mi_option_t`; the enum is only
    /// trusted for that version.
    const PAGE_RECLAIM_ON_FREE: c_int = 35;
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with an integer option and integer arguments touches no memory of ours.
    unsafe {
        if libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
            // Only an old kernel (before 3.15) says no; the node works either way.
            eprintln!("chkv-datanode: could not disable transparent huge pages; continuing");
        }
    }
    // SAFETY: plain calls into the linked allocator (the global allocator above), made before
    // any other thread exists (mi_option_set is not thread-safe).
    unsafe {
        if mi_version() / 100 == 303 {
            mi_option_set(PAGE_RECLAIM_ON_FREE, -1);
        }
    }
}

fn parse_maxmemory(s: &str) -> Result<u64, String> {
    chkv_datanode::config::parse_memory(s)
        .ok_or_else(|| format!("'{s}' is not a memory size (e.g. 100mb, 2gb, 1048576)"))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(Policy::choices_error)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
