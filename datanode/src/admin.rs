//! The admin port: plain text lines (CRLF or LF), for `telnet` and `nc`.
//!
//! - `k`: drain. The node asks the NameNode to leave the ring, hands every slot it owns to
//!   the new owners, reports progress on this connection, deregisters, prints a summary with
//!   its pid, and the process exits 0. A second `k` while draining only reports progress.
//! - `status`: node id, epoch, slots, keys, memory and state.
//! - `help`, and `quit` to close the connection.
//!
//! It listens on loopback unless told otherwise: anyone who can reach it can drain the node.

use crate::handoff::{progress_line, start_drain};
use crate::node::Node;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

/// Longest accepted line.
const MAX_LINE: usize = 1024;

/// Serves the admin port until `stop` fires.
pub async fn serve(listener: TcpListener, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    debug!(%peer, "admin connection");
                    tokio::spawn(connection(sock, node.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = stop.changed() => return,
        }
    }
}

/// What a command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminCommand {
    Drain,
    Status,
    Help,
    Quit,
    Empty,
    Unknown(String),
}

/// Parses one admin line.
pub fn parse(line: &str) -> AdminCommand {
    match line.trim().to_ascii_lowercase().as_str() {
        "" => AdminCommand::Empty,
        "k" | "kill" | "drain" => AdminCommand::Drain,
        "status" | "s" => AdminCommand::Status,
        "help" | "h" | "?" => AdminCommand::Help,
        "quit" | "exit" | "q" => AdminCommand::Quit,
        other => AdminCommand::Unknown(other.chars().take(64).collect()),
    }
}

/// The `status` line.
pub fn status_line(node: &Node) -> String {
    let r = node.routing();
    let state = if node.handoff.draining.load(Relaxed) {
        "draining"
    } else {
        "serving"
    };
    let p = &node.handoff.progress;
    format!(
        "node {} addr {} epoch {} slots {} keys {} used_memory {} state {}{} handed_over_keys {} handed_over_bytes {}",
        node.node_id,
        node.advertised_addr(),
        r.epoch,
        r.my_slot_count(),
        node.db.len(),
        node.db.used_memory(),
        state,
        if r.standalone { " (standalone)" } else { "" },
        p.keys_moved.load(Relaxed),
        p.bytes_moved.load(Relaxed),
    )
}

const HELP: &str = "commands:\r\n  k       drain: hand every slot to its new owner, deregister, exit\r\n  status  node id, epoch, slots, keys, memory, state\r\n  help    this text\r\n  quit    close this connection\r\n";

async fn connection(sock: TcpStream, node: Arc<Node>) {
    let (rd, mut wr) = sock.into_split();
    // A session reads at most 16 MB in all, so a client that never sends a newline cannot
    // grow a line without bound.
    let mut lines = BufReader::new(rd.take(16 << 20)).lines();
    let _ = wr
        .write_all(format!("chkv-datanode {} admin; type help\r\n", node.node_id).as_bytes())
        .await;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            _ => return,
        };
        let reply = if line.len() > MAX_LINE {
            "ERR line too long\r\n".to_string()
        } else {
            match parse(&line) {
                AdminCommand::Empty => continue,
                AdminCommand::Quit => {
                    let _ = wr.write_all(b"bye\r\n").await;
                    return;
                }
                AdminCommand::Help => HELP.to_string(),
                AdminCommand::Status => format!("{}\r\n", status_line(&node)),
                AdminCommand::Unknown(c) => format!("ERR unknown command '{c}'; try help\r\n"),
                AdminCommand::Drain => {
                    if node.handoff.draining.load(Relaxed) {
                        format!("already draining: {}\r\n", progress_line(&node))
                    } else if node.routing().standalone {
                        "ERR standalone node: there is no cluster to hand the data to\r\n"
                            .to_string()
                    } else if !start_drain(&node) {
                        "ERR the NameNode is not reachable; try again\r\n".to_string()
                    } else {
                        drain_report(&node, &mut wr).await;
                        return;
                    }
                }
            }
        };
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reports progress until the drain completes, then the summary.
async fn drain_report(node: &Arc<Node>, wr: &mut tokio::net::tcp::OwnedWriteHalf) {
    let started = std::time::Instant::now();
    let _ = wr
        .write_all(
            format!(
                "draining: leaving the ring; {} slots to hand over\r\n",
                node.routing().my_slot_count()
            )
            .as_bytes(),
        )
        .await;
    let mut drained = node.handoff.drained.subscribe();
    while !*drained.borrow_and_update() {
        tokio::select! {
            r = drained.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                // If the operator went away the write fails; the drain goes on regardless.
                let _ = wr.write_all(format!("draining: {}\r\n", progress_line(node)).as_bytes()).await;
            }
        }
    }
    let p = &node.handoff.progress;
    let secs = started.elapsed().as_secs_f64();
    let keys = p.keys_moved.load(Relaxed);
    let summary = format!(
        "drained: moved {} slots and {} keys in {:.2} s ({:.0} keys/s, {:.1} MB/s); deregistered; pid {} exiting\r\n",
        p.slots_done.load(Relaxed),
        keys,
        secs,
        keys as f64 / secs.max(1e-3),
        p.bytes_moved.load(Relaxed) as f64 / (1024.0 * 1024.0) / secs.max(1e-3),
        std::process::id()
    );
    let _ = wr.write_all(summary.as_bytes()).await;
    let _ = wr.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        assert_eq!(parse("k\r"), AdminCommand::Drain);
        assert_eq!(parse("  K  "), AdminCommand::Drain);
        assert_eq!(parse("status"), AdminCommand::Status);
        assert_eq!(parse("help"), AdminCommand::Help);
        assert_eq!(parse(""), AdminCommand::Empty);
        assert_eq!(parse("quit"), AdminCommand::Quit);
        assert_eq!(parse("rm -rf"), AdminCommand::Unknown("rm -rf".into()));
    }
}
