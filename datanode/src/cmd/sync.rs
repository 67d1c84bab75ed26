//! The node's side of [`crate::sync`]: a set's entries read from and merged into this node
//! (its Lua registry, its ACL users), the exchanges with the other DataNodes (after a
//! change, every [`PERIOD`], and FCALL's pull), and `CLUSTER FUNCTIONS|USERS`.

use super::{Ctx, Reply, ERR_SYNTAX};
use crate::node::Node;
use crate::peer::PeerReply;
use crate::resp::reply::parse_reply;
use crate::resp::{Frame, Protocol, Request};
use crate::sync::{self, decode_state, encode_state, Entry, Set, PERIOD};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// How long one exchange may take before it is given up (the next period retries).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's entries of `set`, sorted by name.
fn state(node: &Node, set: Set) -> Vec<Entry> {
    match set {
        Set::Functions => node
            .scripting
            .registry()
            .state()
            .into_iter()
            .map(|e| Entry {
                name: e.name.into_bytes(),
                version: e.version,
                payload: e.code,
            })
            .collect(),
        Set::Users => node.acl.state(),
    }
}

/// A short digest of [`state`], to compare two nodes' sets cheaply.
fn digest(node: &Node, set: Set) -> String {
    sync::digest(&state(node, set))
}

/// Keeps what of `theirs` is newer than ours; whether anything changed.
fn apply(node: &Node, set: Set, theirs: &[Entry]) -> Result<bool, Frame> {
    match set {
        Set::Functions => {
            let theirs: Vec<crate::lua::library::StateEntry> = theirs
                .iter()
                .map(|e| crate::lua::library::StateEntry {
                    name: String::from_utf8_lossy(&e.name).into_owned(),
                    version: e.version.clone(),
                    code: e.payload.clone(),
                })
                .collect();
            node.scripting
                .apply_state::<super::scripting::run::CmdHost>(&theirs)
        }
        Set::Users => Ok(node.acl.apply_state(theirs, super::acl::commands())),
    }
}

/// `CLUSTER <set> STATE` with this node's entries.
fn state_request(node: &Node, set: Set) -> Request {
    let mut args: Vec<Bytes> = vec![
        Bytes::from_static(b"CLUSTER"),
        Bytes::from_static(set.word().as_bytes()),
        Bytes::from_static(b"STATE"),
    ];
    args.extend(encode_state(&state(node, set)));
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
    reply_within(
        node.peers.send_request(addr, Protocol::Resp2, req),
        EXCHANGE_TIMEOUT,
    )
    .await
}

/// The reply `rx` brings within `limit`, an error reply as an error.
async fn reply_within(rx: oneshot::Receiver<PeerReply>, limit: Duration) -> Result<Frame, String> {
    let bytes = match tokio::time::timeout(limit, rx).await {
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

/// One exchange of `set` with `addr`: ours there, theirs here.
pub async fn exchange(node: &Node, set: Set, addr: SocketAddr) -> Result<(), String> {
    let reply = ask(node, addr, &state_request(node, set)).await?;
    merge_reply(node, set, reply)
}

/// Merges a peer's answer to `CLUSTER <set> STATE`.
fn merge_reply(node: &Node, set: Set, reply: Frame) -> Result<(), String> {
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
    apply(node, set, &theirs).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

/// Exchanges `set` with every other DataNode: the state goes to all of them at once, then
/// their answers are merged as they come. Failures are logged (the periodic check retries).
pub async fn exchange_all(node: &Node, set: Set, limit: Duration) {
    let req = state_request(node, set);
    let sent: Vec<_> = peers(node)
        .into_iter()
        .map(|addr| (addr, node.peers.send_request(addr, Protocol::Resp2, &req)))
        .collect();
    for (addr, rx) in sent {
        let r = reply_within(rx, limit)
            .await
            .and_then(|f| merge_reply(node, set, f));
        if let Err(e) = r {
            tracing::debug!(%addr, set = set.word(), error = %e, "exchange failed");
        }
    }
}

/// After a change to this node's `set`: in a cluster the other DataNodes get it before the
/// client gets `reply` (inside EXEC the change travels with the next exchange).
pub fn after_change(ctx: &mut Ctx<'_>, set: Set, reply: Frame) -> Reply {
    if ctx.node.routing().standalone || ctx.session.tx.running {
        return Ok(reply);
    }
    ctx.session.deferred = Some(Box::new(move |node| {
        Box::pin(async move {
            exchange_all(&node, set, EXCHANGE_TIMEOUT).await;
            reply
        })
    }));
    Ok(Frame::Null)
}

/// Compares every set with every other node every [`PERIOD`], exchanging those that
/// differ, until `stop`.
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let digest_reqs = Set::ALL.map(|s| (s, Request::from_args(["CLUSTER", s.word(), "DIGEST"])));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
        for addr in peers(&node) {
            for (set, req) in &digest_reqs {
                let ours = digest(&node, *set);
                let same = matches!(
                    ask(&node, addr, req).await,
                    Ok(Frame::Bulk(b)) if b == ours.as_bytes()
                );
                if !same {
                    if let Err(e) = exchange(&node, *set, addr).await {
                        tracing::debug!(%addr, set = set.word(), error = %e, "exchange failed");
                    }
                }
            }
        }
    }
}

/// `CLUSTER FUNCTIONS|USERS DIGEST | STATE [entry ...]` (between DataNodes).
pub fn cluster_sync(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let set = Set::by_word(req.arg(1)).ok_or(ERR_SYNTAX)?;
    let sub = req.arg(2);
    if sub.eq_ignore_ascii_case(b"DIGEST") && req.len() == 3 {
        return Ok(Frame::bulk(digest(ctx.node, set)));
    }
    if !sub.eq_ignore_ascii_case(b"STATE") {
        return Err(ERR_SYNTAX);
    }
    let args: Vec<&[u8]> = req.iter().skip(3).collect();
    let theirs = decode_state(&args)?;
    apply(ctx.node, set, &theirs)?;
    let ours = encode_state(&state(ctx.node, set));
    Ok(Frame::Array(ours.into_iter().map(Frame::Bulk).collect()))
}
