//! `chkv-datanode`: flags, logging, signals; everything else is in the library.

use anyhow::Context;
use chkv_common::HostPort;
use chkv_datanode::config::Config;
use chkv_datanode::store::evict::{EvictionConfig, Policy};
use clap::{CommandFactory, Parser};
use std::net::IpAddr;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A CHKV DataNode: an in-memory cache that speaks the Redis protocol.
#[derive(Parser, Debug)]
#[command(
    name = "chkv-datanode",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CHKV_GIT_COMMIT"), ")"),
    about,
    after_help = "Every flag can also be set in the environment (CHKV_ and the flag in capitals with _, e.g. CHKV_MAXMEMORY_POLICY) or as a key of the --config file (maxmemory-policy = \"allkeys-lru\"); flags override the environment, which overrides the file."
)]
struct Args {
    /// TOML file whose keys are these flags' long names (`port = 10100`).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
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
    /// NameNode address (its DataNode port, HOST:PORT; a host name is looked up again at
    /// every reconnect) to join a cluster; standalone without it.
    #[arg(long)]
    namenode: Option<HostPort>,
    /// Stable node id (40 hex characters); derived from the advertised address by default.
    #[arg(long)]
    node_id: Option<String>,
    /// Address other nodes and clients should use to reach this node (HOST:PORT; a host name
    /// is looked up at start and again at every registration).
    #[arg(long)]
    advertise: Option<HostPort>,
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
    /// TLS port for clients (0: no TLS). Needs --tls-cert-file and --tls-key-file, and
    /// --tls-ca-cert-file unless --tls-auth-clients no.
    #[arg(long, default_value_t = 0)]
    tls_port: u16,
    /// PEM certificate chain the TLS port presents.
    #[arg(long)]
    tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long)]
    tls_key_file: Option<std::path::PathBuf>,
    /// PEM CA bundle that client certificates must chain to.
    #[arg(long)]
    tls_ca_cert_file: Option<std::path::PathBuf>,
    /// Client certificates on the TLS port: yes (required), no, or optional.
    #[arg(long, default_value = "yes", value_parser = parse_auth_clients)]
    tls_auth_clients: chkv_datanode::tls::AuthClients,
    /// yes: links to other DataNodes (forwarding, handoff) and to the NameNode over TLS,
    /// with this node's certificate, peers' checked against --tls-ca-cert-file; peers are
    /// then accepted only on the TLS port. Needs --tls-port.
    // `Set`: a bool field would otherwise be a bare switch, and `--tls-cluster yes` an error.
    #[arg(long, default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    tls_cluster: bool,
    /// ACL file: users loaded at start, written by ACL SAVE, read again by ACL LOAD.
    #[arg(long)]
    aclfile: Option<std::path::PathBuf>,
    /// Worker threads (default: one per core less one, at least one).
    #[arg(long)]
    threads: Option<usize>,
    /// Microseconds a worker with nothing to do polls its sockets before it sleeps, at
    /// most (adapted to the load; 0: never poll). A request that arrives meanwhile costs
    /// its client no wake-up of a sleeping worker, which at pipeline 1 limits throughput.
    #[arg(long, default_value_t = chkv_datanode::busypoll::DEFAULT_MAX_US)]
    busy_poll_us: u32,
    /// Seconds of silence before a client connection is probed with TCP keepalives (a
    /// third of it between probes; three unanswered close it); 0: never (Redis's
    /// tcp-keepalive).
    #[arg(long, default_value_t = chkv_datanode::config::DEFAULT_TCP_KEEPALIVE_SECS)]
    tcp_keepalive: u32,
    /// Most bytes of replies a client connection keeps in the kernel unsent, queued behind
    /// the client's full receive buffer; the rest waits in the node's own buffer, counted
    /// by client-output-buffer-limit (0: the kernel's default, no limit).
    #[arg(long, default_value_t = chkv_datanode::config::DEFAULT_TCP_NOTSENT_LOWAT)]
    tcp_notsent_lowat: u32,
    /// Password the admin port's `auth` asks for before `k` and `status` [default: the
    /// requirepass].
    #[arg(long, env = "CHKV_ADMIN_PASSWORD")]
    admin_password: Option<String>,
    /// File holding the cluster secret (the same on the NameNode and every DataNode). Without
    /// it (or CHKV_CLUSTER_SECRET), a node in a cluster listens on loopback addresses only.
    #[arg(long)]
    cluster_secret_file: Option<std::path::PathBuf>,
    /// Name of the cluster this node joins: a NameNode or peer of another cluster (another
    /// `--cluster-name`) is refused even when it holds the same secret.
    #[arg(long, default_value = chkv_common::auth::DEFAULT_CLUSTER)]
    cluster_name: String,
    /// Seconds a node in a cluster may take, on SIGTERM or SIGINT, to hand its slots over
    /// before it exits anyway (a second signal exits at once).
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
    /// Once listening, write the bound addresses here, one `name=address` line each (`resp`,
    /// `admin`, `tls`, `http`): for supervisors and tests that start the node on port 0.
    #[arg(long)]
    ports_file: Option<std::path::PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    let argv = chkv_common::cli::layered_args(
        &Args::command(),
        std::env::args_os().collect(),
        "CHKV_",
        |k| std::env::var(k).ok(),
        |p| std::fs::read_to_string(p),
    )?;
    let args = Args::parse_from(argv);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("invalid --log-level {:?}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Command timings read the CPU's tick counter when it is invariant (20 ms, once).
    match chkv_datanode::clock::calibrate(std::time::Duration::from_millis(20)) {
        Some(rate) => tracing::debug!("command timings in CPU ticks, {rate:.1} per µs"),
        None => tracing::debug!("command timings with clock_gettime(CLOCK_MONOTONIC)"),
    }
    let env_secret = std::env::var(chkv_common::auth::SECRET_ENV).ok();
    let cluster_secret = chkv_common::auth::ClusterSecret::load(
        args.cluster_secret_file.as_deref(),
        env_secret.as_deref(),
    )?
    .named(&args.cluster_name)?;
    let config = Config {
        cluster_secret,
        admin_password: args.admin_password.map(String::into_bytes),
        bind: args.bind,
        port: args.port,
        requirepass: args.requirepass.map(String::into_bytes),
        maxclients: args.maxclients,
        tcp_keepalive_secs: args.tcp_keepalive,
        tcp_notsent_lowat: args.tcp_notsent_lowat,
        hz: args.hz.clamp(1, 500),
        node_id: args.node_id,
        namenode: args.namenode,
        advertise: match &args.advertise {
            Some(a) => Some(
                a.resolve_blocking()
                    .with_context(|| format!("--advertise {a}: cannot resolve the host"))?,
            ),
            None => None,
        },
        advertise_host: args.advertise,
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
        tls: chkv_datanode::tls::TlsSettings {
            port: (args.tls_port != 0).then_some(args.tls_port),
            cert_file: args.tls_cert_file,
            key_file: args.tls_key_file,
            ca_cert_file: args.tls_ca_cert_file,
            auth_clients: args.tls_auth_clients,
            cluster: args.tls_cluster,
        },
        aclfile: args.aclfile,
        ports_file: args.ports_file,
        ..Config::default()
    };
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    if let Err(e) = chkv_datanode::busypoll::install(args.busy_poll_us) {
        tracing::warn!(error = %e, "busy polling is off");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(threads)
        .on_thread_park(chkv_datanode::busypoll::before_park)
        .on_thread_unpark(chkv_datanode::busypoll::after_unpark)
        .enable_all();
    // Requests from two connections that one poll finds ready run in the order they
    // arrived, as Redis runs them: tokio would put each task the I/O driver wakes into the
    // worker's LIFO slot, bumping the one before it, so the last woken ran first (a client
    // that sent UNSUBSCRIBE on one connection and then PUBLISH on another saw its message
    // delivered). `.cargo/config.toml` turns the cfg on.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    #[cfg(not(tokio_unstable))]
    tracing::warn!(
        "built without --cfg tokio_unstable (RUSTFLAGS in the build's environment replace \
         .cargo/config.toml's): requests from two connections that one poll finds ready may \
         run in the reverse order"
    );
    let rt = builder.build().context("building the tokio runtime")?;
    let shutdown_timeout = std::time::Duration::from_secs(args.shutdown_timeout);
    let exit = rt
        .block_on(async {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(forward_signals(tx));
            chkv_datanode::server::run(config, rx, shutdown_timeout).await
        })
        .context("serving")?;
    // Tasks still blocked on a client that does not read are dropped, not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match exit {
        chkv_datanode::server::Exit::Clean => Ok(()),
        chkv_datanode::server::Exit::DrainIncomplete | chkv_datanode::server::Exit::Forced => {
            std::process::exit(1)
        }
    }
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
    chkv_datanode::args::parse_memory(s)
        .ok_or_else(|| format!("'{s}' is not a memory size (e.g. 100mb, 2gb, 1048576)"))
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        // true/false too: a TOML config file may write the setting as a boolean.
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("'{s}' is not yes or no")),
    }
}

fn parse_auth_clients(s: &str) -> Result<chkv_datanode::tls::AuthClients, String> {
    chkv_datanode::tls::AuthClients::parse(s)
        .ok_or_else(|| format!("'{s}' is not one of yes, no, optional"))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(Policy::choices_error)
}

/// Sends one message on `tx` per SIGINT or SIGTERM.
async fn forward_signals(tx: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("chkv-datanode: cannot listen for SIGTERM/SIGINT");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if tx.send(()).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() || tx.send(()).await.is_err() {
            return;
        }
    }
}
