//! `chkv-namenode`: flags, logging, then the library's `run` until SIGINT or SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use chkv_namenode::{Args, Config};
use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv = chkv_common::cli::layered_args(
        &Args::command(),
        std::env::args_os().collect(),
        "CHKV_NAMENODE_",
        |k| std::env::var(k).ok(),
        |p| std::fs::read_to_string(p),
    )?;
    let args = Args::parse_from(argv);
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("bad --log-level {:?}", args.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = Config::try_from(&args)?;
    chkv_namenode::run(config, shutdown_signal()).await?;
    Ok(())
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); stopping on Ctrl-C only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
