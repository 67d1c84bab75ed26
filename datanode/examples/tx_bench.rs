//! MULTI/SET/INCR/EXEC throughput, for comparing CHKV with redis-server and Valkey
//! (redis-benchmark sends single commands; a transaction is four).
//!
//! `--clients` connections each send `--pipeline` transactions per round trip (MULTI, SET
//! k:N value, INCR c:N, EXEC with N random below `--keyspace`) and check every reply: `+OK`,
//! `+QUEUED` twice and EXEC's two-element array. Prints:
//!
//! ```text
//! tx_per_sec=41234 transactions=400000 errors=0 elapsed_s=9.7
//! ```
//!
//! Only loopback servers are accepted.
//!
//! ```sh
//! cargo run --release -p chkv-datanode --example tx_bench -- --port 6379 --pipeline 16
//! ```

use anyhow::{bail, Context};
use bytes::BytesMut;
use chkv_datanode::resp::reply::reply_len;
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "MULTI/SET/INCR/EXEC throughput against one server")]
struct Args {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    clients: u64,
    /// Transactions sent per round trip on each connection.
    #[arg(long, default_value_t = 1)]
    pipeline: u64,
    /// Transactions in all.
    #[arg(long, default_value_t = 200_000)]
    transactions: u64,
    /// Random key space.
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
}

fn push(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

async fn client(
    addr: SocketAddr,
    args: Arc<Args>,
    seed: u64,
    left: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) -> anyhow::Result<u64> {
    let mut sock = TcpStream::connect(addr).await.context("connect")?;
    sock.set_nodelay(true)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut done = 0;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = Vec::new();
    loop {
        let want = args.pipeline;
        let got = left
            .fetch_update(Relaxed, Relaxed, |l| {
                l.checked_sub(want.min(l)).filter(|_| l > 0)
            })
            .ok();
        let Some(before) = got else {
            return Ok(done);
        };
        let n = want.min(before);
        out.clear();
        for _ in 0..n {
            let r = rng.random_range(0..args.keyspace);
            let k = format!("k:{r}");
            let c = format!("c:{r}");
            push(&mut out, &[b"MULTI"]);
            push(
                &mut out,
                &[b"SET", k.as_bytes(), b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
            );
            push(&mut out, &[b"INCR", c.as_bytes()]);
            push(&mut out, &[b"EXEC"]);
        }
        sock.write_all(&out).await?;
        let mut replies = 0;
        while replies < n * 4 {
            match reply_len(&buf) {
                Ok(Some(len)) => {
                    let r = buf.split_to(len);
                    let ok = match replies % 4 {
                        0 => &r[..] == b"+OK\r\n",
                        1 | 2 => &r[..] == b"+QUEUED\r\n",
                        _ => r.starts_with(b"*2\r\n"),
                    };
                    if !ok {
                        errors.fetch_add(1, Relaxed);
                    }
                    replies += 1;
                }
                Ok(None) => {
                    if sock.read_buf(&mut buf).await? == 0 {
                        bail!("server closed the connection");
                    }
                }
                Err(e) => bail!("bad reply: {e}"),
            }
        }
        done += n;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if !args.host.is_loopback() {
        bail!("only loopback servers are accepted");
    }
    let addr = SocketAddr::new(args.host, args.port);
    let left = Arc::new(AtomicU64::new(args.transactions));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        tasks.push(tokio::spawn(client(
            addr,
            args.clone(),
            i,
            left.clone(),
            errors.clone(),
        )));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "tx_per_sec={:.0} transactions={total} errors={} elapsed_s={secs:.1}",
        total as f64 / secs,
        errors.load(Relaxed)
    );
    if errors.load(Relaxed) > 0 {
        bail!("some replies were wrong");
    }
    Ok(())
}
