//! Node-wide state kept the same on every DataNode of a cluster: FUNCTION libraries and ACL
//! users (one mechanism for both, each a [`Set`]).
//!
//! Each node keeps its own copy of a set, where every entry (a library, a user) and every
//! deleted name (a tombstone) carries a [`Version`]: a counter, then the node that made the
//! change. Two nodes *exchange* a set with the internal `CLUSTER FUNCTIONS STATE` or
//! `CLUSTER USERS STATE` (sent over the authenticated peer connection): the caller sends its
//! entries, the callee keeps those newer than its own and answers with all of its entries,
//! which the caller merges the same way. Merging is per name and keeps the newer version, so
//! any set of nodes that exchanges in any order ends up with the same entries.
//!
//! When they exchange:
//! - **after a change**: FUNCTION LOAD/DELETE/FLUSH/RESTORE, ACL SETUSER/DELUSER/LOAD and
//!   `CONFIG SET requirepass` on any node exchange with every other DataNode of the table
//!   before the client gets its reply, so a function loaded (a user created) through one
//!   node is callable (can log in) through any node as soon as the command returns (a node
//!   that cannot be reached catches up as below);
//! - **continuously**: each node asks every other node for a digest of each set every
//!   [`PERIOD`] and exchanges the sets that differ. A node that joins later, restarts or was
//!   unreachable gets every library and user within a period of appearing in the table;
//! - **on a miss**: FCALL of a function this node does not know, in a cluster, first
//!   exchanges with the other nodes (a pending reply of its connection, see
//!   [`crate::exec::Pending::Pull`]), so a node that has just joined never answers
//!   "Function not found" for a function the cluster has.
//!
//! What a node had from its own configuration at start (`requirepass`, `--aclfile`) has
//! version 0: any change made in the cluster since supersedes it, and between two nodes
//! that both have version 0 for one name each keeps its own (configure them alike).

use crate::cmd::{Ctx, Reply};
use crate::node::Node;
use crate::resp::reply::parse_reply;
use crate::resp::{Frame, Protocol, Request};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a node compares its sets with every other node's.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How long one exchange may take before it is given up (the next period retries).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long FCALL of an unknown function waits for the other nodes' libraries.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(1);

/// When a change was made, and where: ordered by counter, then by node id, so every node
/// picks the same winner between two changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub counter: u64,
    pub origin: String,
}

/// One entry of a set as it travels between nodes: a name, its version, and its payload
/// (a library's code, a user's rules), none for a deleted name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub version: Version,
    pub payload: Option<Bytes>,
}

/// The sets kept the same on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// FUNCTION libraries (see [`crate::lua`]).
    Functions,
    /// ACL users (see [`crate::acl`]).
    Users,
}

impl Set {
    pub const ALL: [Set; 2] = [Set::Functions, Set::Users];

    /// The CLUSTER subcommand that exchanges this set.
    fn word(self) -> &'static str {
        match self {
            Set::Functions => "FUNCTIONS",
            Set::Users => "USERS",
        }
    }

    fn by_word(word: &[u8]) -> Option<Set> {
        Set::ALL
            .into_iter()
            .find(|s| s.word().as_bytes().eq_ignore_ascii_case(word))
    }

    /// This node's entries, sorted by name.
    pub fn state(self, node: &Node) -> Vec<Entry> {
        match self {
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

    /// A short digest of [`Set::state`], to compare two nodes' sets cheaply.
    pub fn digest(self, node: &Node) -> String {
        digest(&self.state(node))
    }

    /// Keeps what of `theirs` is newer than ours; whether anything changed.
    pub fn apply(self, node: &Node, theirs: &[Entry]) -> Result<bool, Frame> {
        match self {
            Set::Functions => {
                let theirs: Vec<crate::lua::library::StateEntry> = theirs
                    .iter()
                    .map(|e| crate::lua::library::StateEntry {
                        name: String::from_utf8_lossy(&e.name).into_owned(),
                        version: e.version.clone(),
                        code: e.payload.clone(),
                    })
                    .collect();
                node.scripting.apply_state(&theirs)
            }
            Set::Users => Ok(node.acl.apply_state(theirs)),
        }
    }
}

/// The digest of a state: its names, versions and which are deleted (a version names one
/// content, so the payloads need not be hashed).
pub fn digest(entries: &[Entry]) -> String {
    let mut h = sha1_smol::Sha1::new();
    for e in entries {
        h.update(&e.name);
        h.update(&e.version.counter.to_le_bytes());
        h.update(e.version.origin.as_bytes());
        h.update(&[e.payload.is_some() as u8]);
    }
    h.digest().to_string()
}

/// Entries as the arguments of `CLUSTER FUNCTIONS|USERS STATE`: name, counter, origin,
/// payload (empty for a deleted name) per entry.
pub fn encode_state(entries: &[Entry]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        out.push(Bytes::from(e.name.clone()));
        out.push(Bytes::from(e.version.counter.to_string().into_bytes()));
        out.push(Bytes::from(e.version.origin.clone().into_bytes()));
        out.push(e.payload.clone().unwrap_or_default());
    }
    out
}

/// The entries in arguments made by [`encode_state`].
pub fn decode_state(args: &[&[u8]]) -> Result<Vec<Entry>, Frame> {
    if !args.len().is_multiple_of(4) {
        return Err(crate::cmd::ERR_SYNTAX);
    }
    args.chunks(4)
        .map(|c| {
            let counter = crate::cmd::parse_i64(c[1])
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(crate::cmd::ERR_SYNTAX)?;
            Ok(Entry {
                name: c[0].to_vec(),
                version: Version {
                    counter,
                    origin: String::from_utf8_lossy(c[2]).into_owned(),
                },
                payload: (!c[3].is_empty()).then(|| Bytes::copy_from_slice(c[3])),
            })
        })
        .collect()
}

/// `CLUSTER <set> STATE` with this node's entries.
fn state_request(node: &Node, set: Set) -> Request {
    let mut args: Vec<Bytes> = vec![
        Bytes::from_static(b"CLUSTER"),
        Bytes::from_static(set.word().as_bytes()),
        Bytes::from_static(b"STATE"),
    ];
    args.extend(encode_state(&set.state(node)));
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
    set.apply(node, &theirs).map_err(|e| format!("{e:?}"))?;
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
        let r = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(bytes))) => match parse_reply(&bytes) {
                Ok(Some((Frame::Error(e), _))) => Err(e.into_owned()),
                Ok(Some((f, _))) => merge_reply(node, set, f),
                _ => Err("malformed reply".into()),
            },
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(_)) => Err("connection dropped".into()),
            Err(_) => Err("timed out".into()),
        };
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
                let ours = set.digest(&node);
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
    let set = Set::by_word(req.arg(1)).ok_or(crate::cmd::ERR_SYNTAX)?;
    let sub = req.arg(2);
    if sub.eq_ignore_ascii_case(b"DIGEST") && req.len() == 3 {
        return Ok(Frame::bulk(set.digest(ctx.node)));
    }
    if !sub.eq_ignore_ascii_case(b"STATE") {
        return Err(crate::cmd::ERR_SYNTAX);
    }
    let args: Vec<&[u8]> = req.iter().skip(3).collect();
    let theirs = decode_state(&args)?;
    set.apply(ctx.node, &theirs)?;
    let ours = encode_state(&set.state(ctx.node));
    Ok(Frame::Array(ours.into_iter().map(Frame::Bulk).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip() {
        let entries = vec![
            Entry {
                name: b"lib".to_vec(),
                version: Version {
                    counter: 3,
                    origin: "node-a".into(),
                },
                payload: Some(Bytes::from_static(b"#!lua name=lib\n")),
            },
            Entry {
                name: b"gone".to_vec(),
                version: Version {
                    counter: 4,
                    origin: "node-b".into(),
                },
                payload: None,
            },
        ];
        let args = encode_state(&entries);
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        assert_eq!(decode_state(&refs), Ok(entries));
        assert!(decode_state(&refs[..3]).is_err());
        assert!(decode_state(&[b"a", b"-1", b"x", b""]).is_err());
    }

    #[test]
    fn sets_by_word() {
        assert_eq!(Set::by_word(b"functions"), Some(Set::Functions));
        assert_eq!(Set::by_word(b"USERS"), Some(Set::Users));
        assert_eq!(Set::by_word(b"other"), None);
    }
}
