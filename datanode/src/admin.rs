//! The admin port: plain text lines (CRLF or LF), for `telnet` and `nc`.
//!
//! - `k`: drain. The node asks the NameNode to leave the ring, hands every slot it owns to
//!   the new owners, reports progress on this connection, deregisters, prints a summary with
//!   its pid, and the process exits 0. A second `k` while draining only reports progress.
//! - `status`: node id, epoch, slots, keys, memory and state.
//! - `auth <password>`: with `--admin-password`, or else `requirepass`, set, `k` and
//!   `status` need it first (the password is read at each `auth`, so `CONFIG SET
//!   requirepass` applies to the next one).
//! - `help`, and `quit` to close the connection.
//!
//! It listens on loopback unless told otherwise. Every connection is bounded: at most
//! [`MAX_CONNS`] open (not counted in `maxclients`), lines of at most [`MAX_LINE`] bytes (a
//! longer one closes the connection), closed after [`IDLE_TIMEOUT`] without a line, and
//! nothing a client sent is echoed back unescaped.

use crate::migration::{progress_line, start_drain};
use crate::node::Node;
use chkv_common::auth::escape;
use chkv_common::lines::LineReader;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

/// Longest accepted line.
pub const MAX_LINE: usize = 1024;
/// Admin connections open at once at most.
pub const MAX_CONNS: usize = 16;
/// An admin connection that sends no line for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the admin port until `stop` fires.
pub async fn serve(listener: TcpListener, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((mut sock, peer)) => {
                    if open.load(Relaxed) >= MAX_CONNS {
                        debug!(%peer, "admin connection refused: too many open");
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                sock.write_all(b"ERR too many admin connections\r\n"),
                            )
                            .await;
                        });
                        continue;
                    }
                    debug!(%peer, "admin connection");
                    open.fetch_add(1, Relaxed);
                    let (node, open) = (node.clone(), open.clone());
                    tokio::spawn(async move {
                        connection(sock, node).await;
                        open.fetch_sub(1, Relaxed);
                    });
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
    /// `auth <password>`: the password's bytes as sent.
    Auth(Vec<u8>),
    /// Escaped for display.
    Unknown(String),
}

/// Parses one admin line.
pub fn parse(line: &[u8]) -> AdminCommand {
    let line = line.trim_ascii();
    let (word, rest) = match line.iter().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&line[..i], line[i..].trim_ascii()),
        None => (line, &b""[..]),
    };
    let word = word.to_ascii_lowercase();
    match (word.as_slice(), rest.is_empty()) {
        (b"", _) => AdminCommand::Empty,
        (b"auth", false) => AdminCommand::Auth(rest.to_vec()),
        (b"k" | b"kill" | b"drain", true) => AdminCommand::Drain,
        (b"status" | b"s", true) => AdminCommand::Status,
        (b"help" | b"h" | b"?", true) => AdminCommand::Help,
        (b"quit" | b"exit" | b"q", true) => AdminCommand::Quit,
        _ => AdminCommand::Unknown(escape(&line[..line.len().min(64)])),
    }
}

/// The password `auth` must give: `--admin-password`, else `requirepass`, else none.
fn admin_password(node: &Node) -> Option<Vec<u8>> {
    let c = node.config();
    c.admin_password.clone().or_else(|| c.requirepass.clone())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        escape(node.node_id.as_bytes()),
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

const HELP: &str = "commands:\r\n  auth P  give the admin password (--admin-password, else requirepass)\r\n  k       drain: hand every slot to its new owner, deregister, exit\r\n  status  node id, epoch, slots, keys, memory, state\r\n  help    this text\r\n  quit    close this connection\r\n";

async fn connection(sock: TcpStream, node: Arc<Node>) {
    let (rd, mut wr) = sock.into_split();
    let mut lines = LineReader::new(BufReader::with_capacity(MAX_LINE, rd), MAX_LINE);
    let _ = wr
        .write_all(
            format!(
                "chkv-datanode {} admin; type help\r\n",
                escape(node.node_id.as_bytes())
            )
            .as_bytes(),
        )
        .await;
    let mut authenticated = false;
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(l))) => parse(l),
            Ok(Err(_)) => {
                let _ = wr.write_all(b"ERR line too long\r\n").await;
                return;
            }
            _ => return,
        };
        let needs_auth = matches!(line, AdminCommand::Drain | AdminCommand::Status);
        let reply = if needs_auth && !authenticated && admin_password(&node).is_some() {
            "ERR authentication required: auth <password>\r\n".to_string()
        } else {
            match line {
                AdminCommand::Empty => continue,
                AdminCommand::Quit => {
                    let _ = wr.write_all(b"bye\r\n").await;
                    return;
                }
                AdminCommand::Auth(given) => match admin_password(&node) {
                    None => "ERR no admin password is set\r\n".to_string(),
                    Some(p) if constant_time_eq(&p, &given) => {
                        authenticated = true;
                        "OK\r\n".to_string()
                    }
                    Some(_) => {
                        authenticated = false;
                        "ERR invalid password\r\n".to_string()
                    }
                },
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
    let lost = crate::migration::drain_lost(node);
    let verdict = if lost == 0 {
        "drained:".to_string()
    } else {
        format!(
            "drain incomplete: {lost} keys were dropped without being handed over (this node was declared dead mid-drain);"
        )
    };
    let summary = format!(
        "{verdict} moved {} slots and {} keys in {:.2} s ({:.0} keys/s, {:.1} MB/s); deregistered; pid {} exiting\r\n",
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
        assert_eq!(parse(b"k\r\n"), AdminCommand::Drain);
        assert_eq!(parse(b"  K  "), AdminCommand::Drain);
        assert_eq!(parse(b"status"), AdminCommand::Status);
        assert_eq!(parse(b"help"), AdminCommand::Help);
        assert_eq!(parse(b""), AdminCommand::Empty);
        assert_eq!(parse(b"quit"), AdminCommand::Quit);
        assert_eq!(
            parse(b"AUTH Pass Word\r\n"),
            AdminCommand::Auth(b"Pass Word".to_vec())
        );
        assert_eq!(parse(b"auth"), AdminCommand::Unknown("auth".into()));
        assert_eq!(parse(b"k now"), AdminCommand::Unknown("k now".into()));
        assert_eq!(parse(b"rm -rf"), AdminCommand::Unknown("rm -rf".into()));
        // Control characters are never echoed as they are.
        assert_eq!(
            parse(b"\x1b[2Jx\x07"),
            AdminCommand::Unknown("\\x1b[2Jx\\x07".into())
        );
    }
}
