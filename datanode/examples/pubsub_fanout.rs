//! PUBLISH fan-out: one publisher, `--subscribers` subscribers of one channel; reports the
//! messages delivered per second (published messages times subscribers, over the time from
//! the first PUBLISH until the last subscriber has read every message).
//!
//! ```text
//! delivered_per_sec=812345 published_per_sec=8123 messages=20000 subscribers=100 pipeline=16 elapsed_s=2.46
//! ```
//!
//! Every message has the same size, so a subscriber counts messages by bytes without parsing.
//! The publisher sends `--pipeline` PUBLISHes, then reads their replies. Only loopback
//! servers are accepted. `helper/bench-pubsub.sh` runs it against a DataNode, redis-server and
//! Valkey in the same run.
//!
//! ```sh
//! cargo run --release -p chkv-datanode --example pubsub_fanout -- --port 6379
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "PUBLISH fan-out: 1 publisher, N subscribers; messages delivered per second")]
struct Args {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// PUBLISHes sent before reading their replies.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 32)]
    size: usize,
}

const CHANNEL: &str = "bench:fanout";

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads exactly `n` bytes (discarding them).
async fn read_exactly(sock: &mut TcpStream, mut n: usize, buf: &mut [u8]) -> anyhow::Result<()> {
    while n > 0 {
        let want = n.min(buf.len());
        let got = sock.read(&mut buf[..want]).await?;
        if got == 0 {
            bail!("connection closed with {n} bytes still expected");
        }
        n -= got;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.host.is_loopback() {
        bail!("only loopback servers are benchmarked");
    }
    if args.subscribers == 0 || args.messages == 0 || args.pipeline == 0 {
        bail!("--subscribers, --messages and --pipeline must be positive");
    }
    let addr = SocketAddr::new(args.host, args.port);
    let payload = vec![b'x'; args.size];
    let message = format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{CHANNEL}\r\n${}\r\n",
        CHANNEL.len(),
        args.size
    )
    .len()
        + args.size
        + 2;
    let confirm = format!(
        "*3\r\n$9\r\nsubscribe\r\n${}\r\n{CHANNEL}\r\n:1\r\n",
        CHANNEL.len()
    )
    .len();
    let total = message
        .checked_mul(args.messages)
        .context("too many messages")?;

    let mut subs = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let mut s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
        s.write_all(&command(&[b"SUBSCRIBE", CHANNEL.as_bytes()]))
            .await?;
        let mut buf = vec![0u8; 256];
        read_exactly(&mut s, confirm, &mut buf).await?;
        subs.push(s);
    }
    let mut readers = Vec::with_capacity(subs.len());
    for mut s in subs {
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            read_exactly(&mut s, total, &mut buf).await?;
            anyhow::Ok(Instant::now())
        }));
    }
    let mut publisher = TcpStream::connect(addr).await.context("connect")?;
    publisher.set_nodelay(true)?;
    let one = command(&[b"PUBLISH", CHANNEL.as_bytes(), &payload]);
    let reply = format!(":{}\r\n", args.subscribers).len();
    let started = Instant::now();
    let mut sent = 0;
    let mut batch = Vec::with_capacity(one.len() * args.pipeline);
    let mut rbuf = vec![0u8; 64 * 1024];
    while sent < args.messages {
        let n = args.pipeline.min(args.messages - sent);
        batch.clear();
        for _ in 0..n {
            batch.extend_from_slice(&one);
        }
        publisher.write_all(&batch).await?;
        read_exactly(&mut publisher, reply * n, &mut rbuf).await?;
        sent += n;
    }
    let published = started.elapsed();
    let mut last = started;
    for r in readers {
        let done = tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .context("subscribers did not get every message in time")???;
        last = last.max(done);
    }
    let elapsed = last.duration_since(started).as_secs_f64();
    let delivered = (args.messages * args.subscribers) as f64;
    println!(
        "delivered_per_sec={:.0} published_per_sec={:.0} messages={} subscribers={} pipeline={} elapsed_s={:.2}",
        delivered / elapsed,
        args.messages as f64 / published.as_secs_f64(),
        args.messages,
        args.subscribers,
        args.pipeline,
        elapsed
    );
    Ok(())
}
