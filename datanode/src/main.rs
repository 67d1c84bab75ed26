//! `chkv-datanode`: flags, logging, signals; everything else is in the library.

use anyhow::Context;
use chkv_datanode::config::Config;
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
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
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
        ..Config::default()
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    rt.block_on(chkv_datanode::server::run(config, shutdown_signal()))
        .context("serving")?;
    Ok(())
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
