//! Keeping every DataNode's libraries the same (FUNCTION in a cluster).
//!
//! Each node keeps its own registry of libraries, where every library and every deleted
//! library name carries a [`Version`](super::library::Version) (a counter, then the node
//! that made the change). Two nodes *exchange* their states with the internal
//! `CLUSTER FUNCTIONS STATE` (sent over the authenticated peer connection): the caller sends
//! its entries, the callee keeps those newer than its own and answers with all of its
//! entries, which the caller merges the same way. Merging is per library name and keeps the
//! newer version, so any set of nodes that exchanges in any order ends up with the same
//! libraries ([`Registry::merge`](super::library::Registry::merge)).
//!
//! When they exchange:
//! - **after a change**: FUNCTION LOAD/DELETE/FLUSH/RESTORE on any node exchanges with every
//!   other DataNode of the table before the client gets its reply, so a function loaded
//!   through one node is callable through any node as soon as LOAD returns (a node that
//!   cannot be reached catches up as below);
//! - **continuously**: each node asks every other node for a digest of its state every
//!   [`PERIOD`] and exchanges when they differ. A node that joins later, restarts or was
//!   unreachable gets every library within a period of appearing in the table;
//! - **on a miss**: FCALL of a function this node does not know, in a cluster, first
//!   exchanges with the other nodes, so a node that has just joined never answers
//!   "Function not found" for a function the cluster has.

use super::library::{StateEntry, Version};
use crate::cmd::{Ctx, Reply};
use crate::node::Node;
use crate::resp::reply::parse_reply;
use crate::resp::{Frame, Protocol, Request};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a node compares its libraries with every other node's.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How long one exchange may take before it is given up (the next period retries).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long FCALL of an unknown function waits for the other nodes' libraries.
const PULL_TIMEOUT: Duration = Duration::from_secs(1);

/// Entries as the arguments of `CLUSTER FUNCTIONS STATE`: name, counter, origin, code (empty
/// for a deleted library) per entry.
pub fn encode_state(entries: &[StateEntry]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        out.push(Bytes::from(e.name.clone().into_bytes()));
        out.push(Bytes::from(e.version.counter.to_string().into_bytes()));
        out.push(Bytes::from(e.version.origin.clone().into_bytes()));
        out.push(e.code.clone().unwrap_or_default());
    }
    out
}

/// The entries in arguments made by [`encode_state`].
pub fn decode_state(args: &[&[u8]]) -> Result<Vec<StateEntry>, Frame> {
    if !args.len().is_multiple_of(4) {
        return Err(crate::cmd::ERR_SYNTAX);
    }
    args.chunks(4)
        .map(|c| {
            let counter = crate::cmd::parse_i64(c[1])
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(crate::cmd::ERR_SYNTAX)?;
            Ok(StateEntry {
                name: String::from_utf8_lossy(c[0]).into_owned(),
                version: Version {
                    counter,
                    origin: String::from_utf8_lossy(c[2]).into_owned(),
                },
                code: (!c[3].is_empty()).then(|| Bytes::copy_from_slice(c[3])),
            })
        })
        .collect()
}

/// `CLUSTER FUNCTIONS STATE` with this node's entries.
fn state_request(node: &Node) -> Request {
    let mut args: Vec<Bytes> = vec![
        Bytes::from_static(b"CLUSTER"),
        Bytes::from_static(b"FUNCTIONS"),
        Bytes::from_static(b"STATE"),
    ];
    args.extend(encode_state(&node.scripting.registry().state()));
    Request::from_args(args.iter().map(|a| &a[..]))
}

/// The other DataNodes of the table.
fn peers(node: &Node) -> Vec<SocketAddr> {
    let routing = node.routing();
    if routing.standalone {
        return Vec::new();
    }
    (0..routing.nodes.len() as u16)
        .filter(|&i| Some(i) != routing.me)
        .filter_map(|i| routing.addr(i))
        .collect()
}

/// Sends `req` to `addr` and returns its reply.
async fn ask(node: &Node, addr: SocketAddr, req: &Request) -> Result<Frame, String> {
    let rx = node.peers.send_request(addr, Protocol::Resp2, req);
    let bytes = match tokio::time::timeout(EXCHANGE_TIMEOUT, rx).await {
        Ok(Ok(Ok(b))) => b,
        Ok(Ok(Err(e))) => return Err(e.to_string()),
        Ok(Err(_)) => return Err("connection dropped".into()),
        Err(_) => return Err("timed out".into()),
    };
    match parse_reply(&bytes) {
        Ok(Some((Frame::Error(e), _))) => Err(e.into_owned()),
        Ok(Some((f, _))) => Ok(f),
        _ => Err("malformed reply".into()),
    }
}

/// One exchange with `addr`: ours there, theirs here.
pub async fn exchange(node: &Node, addr: SocketAddr) -> Result<(), String> {
    let reply = ask(node, addr, &state_request(node)).await?;
    merge_reply(node, reply)
}

/// Merges a peer's answer to `CLUSTER FUNCTIONS STATE`.
fn merge_reply(node: &Node, reply: Frame) -> Result<(), String> {
    let Frame::Array(items) = reply else {
        return Err("unexpected reply".into());
    };
    let args: Vec<Bytes> = items
        .into_iter()
        .map(|f| match f {
            Frame::Bulk(b) => Ok(b),
            _ => Err("unexpected reply".to_string()),
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    let theirs = decode_state(&refs).map_err(|_| "malformed state".to_string())?;
    node.scripting
        .apply_state(&theirs)
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}

/// Exchanges with every other DataNode: the state goes to all of them at once, then their
/// answers are merged as they come. Failures are logged (the periodic check retries).
pub async fn exchange_all(node: &Node, limit: Duration) {
    let req = state_request(node);
    let sent: Vec<_> = peers(node)
        .into_iter()
        .map(|addr| (addr, node.peers.send_request(addr, Protocol::Resp2, &req)))
        .collect();
    for (addr, rx) in sent {
        let r = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(bytes))) => match parse_reply(&bytes) {
                Ok(Some((Frame::Error(e), _))) => Err(e.into_owned()),
                Ok(Some((f, _))) => merge_reply(node, f),
                _ => Err("malformed reply".into()),
            },
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(_)) => Err("connection dropped".into()),
            Err(_) => Err("timed out".into()),
        };
        if let Err(e) = r {
            tracing::debug!(%addr, error = %e, "function libraries: exchange failed");
        }
    }
}

/// After a change to this node's libraries: in a cluster the other DataNodes get it before
/// the client gets `reply` (inside EXEC the change travels with the next exchange).
pub fn after_change(ctx: &mut Ctx<'_>, reply: Frame) -> Reply {
    if ctx.node.routing().standalone || ctx.session.tx.running {
        return Ok(reply);
    }
    ctx.session.deferred = Some(Box::new(move |node| {
        Box::pin(async move {
            exchange_all(&node, EXCHANGE_TIMEOUT).await;
            reply
        })
    }));
    Ok(Frame::Null)
}

/// For FCALL of a function this node does not know, in a cluster: exchanges with the other
/// nodes first (blocking this connection only: the wait happens off the runtime's
/// worker). Returns whether it asked.
pub fn pull_now(node: &Node) -> bool {
    if node.routing().standalone || !crate::store::blocking_allowed() {
        return false;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    tokio::task::block_in_place(|| handle.block_on(exchange_all(node, PULL_TIMEOUT)));
    true
}

/// Compares libraries with every other node every [`PERIOD`], exchanging with those that
/// differ, until `stop`.
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let digest_req = Request::from_args(["CLUSTER", "FUNCTIONS", "DIGEST"]);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
        for addr in peers(&node) {
            let ours = node.scripting.registry().digest();
            let same = matches!(
                ask(&node, addr, &digest_req).await,
                Ok(Frame::Bulk(b)) if b == ours.as_bytes()
            );
            if !same {
                if let Err(e) = exchange(&node, addr).await {
                    tracing::debug!(%addr, error = %e, "function libraries: exchange failed");
                }
            }
        }
    }
}

/// `CLUSTER FUNCTIONS DIGEST | STATE [entry ...]` (between DataNodes).
pub fn cluster_functions(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let sub = req.arg(2);
    if sub.eq_ignore_ascii_case(b"DIGEST") && req.len() == 3 {
        return Ok(Frame::bulk(ctx.node.scripting.registry().digest()));
    }
    if !sub.eq_ignore_ascii_case(b"STATE") {
        return Err(crate::cmd::ERR_SYNTAX);
    }
    let args: Vec<&[u8]> = req.iter().skip(3).collect();
    let theirs = decode_state(&args)?;
    ctx.node.scripting.apply_state(&theirs)?;
    let ours = encode_state(&ctx.node.scripting.registry().state());
    Ok(Frame::Array(ours.into_iter().map(Frame::Bulk).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip() {
        let entries = vec![
            StateEntry {
                name: "lib".into(),
                version: Version {
                    counter: 3,
                    origin: "node-a".into(),
                },
                code: Some(Bytes::from_static(b"#!lua name=lib\n")),
            },
            StateEntry {
                name: "gone".into(),
                version: Version {
                    counter: 4,
                    origin: "node-b".into(),
                },
                code: None,
            },
        ];
        let args = encode_state(&entries);
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        assert_eq!(decode_state(&refs), Ok(entries));
        assert!(decode_state(&refs[..3]).is_err());
        assert!(decode_state(&[b"a", b"-1", b"x", b""]).is_err());
    }
}
