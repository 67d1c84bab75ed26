//! Running requests across the cluster: here, on the owner, or split over several owners.
//!
//! [`plan`] decides synchronously for each request. Local requests are answered at once;
//! forwarded ones leave a [`Pending`] reply whose bytes arrive later. The connection keeps
//! replies in request order by queueing encoded local replies and pendings in one list and
//! resolving it in order ([`resolve`]) before writing. A pipeline of forwarded requests is
//! therefore sent to each owner in one go and answered in order.
//!
//! When a forwarded request comes back `-MOVED` (the owner's table is newer or older than
//! ours) or its connection fails, the request is planned again with the current table and
//! retried a bounded number of times.

use crate::cluster::{route, Owner, Route, Routing};
use crate::cmd::{dispatch, lookup, Ctx, Redirects, Session};
use crate::node::Node;
use crate::peer::PeerReply;
use crate::resp::reply::parse_reply;
use crate::resp::{Frame, Protocol, Request};
use crate::store::now_ms;
use bytes::{Bytes, BytesMut};
use chkv_common::key_slot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a forwarded request may keep retrying (redirects during a move, a lost peer)
/// before the client gets `-TRYAGAIN`. Long enough to ride out a NameNode that is behind on
/// publishing moves, and a dead node's removal (about a second by default).
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// A reply that is not known yet.
pub enum Pending {
    /// The whole request went to one owner; its raw reply is relayed.
    Remote {
        req: Request,
        rx: oneshot::Receiver<PeerReply>,
    },
    /// A multi-key request split over owners.
    Split { req: Request, parts: Vec<Part> },
    /// A request for slots being handed over: it waits for the flip, then is planned again.
    Frozen { req: Request },
    /// A command that finishes asynchronously ([`crate::cmd::Deferred`]).
    Task(crate::cmd::Deferred),
}

/// One owner's share of a split request.
pub enum Part {
    Done {
        positions: Vec<usize>,
        reply: Frame,
    },
    Remote {
        positions: Vec<usize>,
        sub: Request,
        rx: oneshot::Receiver<PeerReply>,
    },
}

/// How a request is answered.
pub enum Planned {
    Now(Frame),
    Later(Pending),
}

fn run_local(node: &Node, session: &mut Session, req: &Request) -> Frame {
    let mut ctx = Ctx {
        node,
        session,
        now: now_ms(),
    };
    dispatch(&mut ctx, req)
}

/// Runs `req` here; a command that left work to finish asynchronously becomes a pending reply.
fn run_here(node: &Node, session: &mut Session, req: &Request) -> Planned {
    let reply = run_local(node, session, req);
    match session.deferred.take() {
        None => Planned::Now(reply),
        Some(task) => Planned::Later(Pending::Task(task)),
    }
}

fn moved(slot: u16, addr: SocketAddr) -> Frame {
    Frame::error(format!("MOVED {slot} {addr}"))
}

const CROSSSLOT: Frame = Frame::err("CROSSSLOT Keys in request don't hash to the same slot");
const CLUSTERDOWN: Frame = Frame::err("CLUSTERDOWN Hash slot not served");

/// Decides how to answer `req` under `routing`, starting any forwarding it needs.
pub fn plan(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Planned {
    if routing.standalone {
        return run_here(node, session, req);
    }
    let spec = match lookup(req.arg(0)) {
        Some((_, spec))
            if session.authenticated && spec.first_key > 0 && spec.arity_ok(req.len()) =>
        {
            spec
        }
        // Errors, keyless and node-local commands run here.
        _ => return run_here(node, session, req),
    };
    if session.perms.is_some() || session.acl_generation != node.acl.generation() {
        // Permissions are checked here, before the request may leave for its owner.
        if let Some((id, resolved)) = crate::cmd::resolve(req) {
            if let Err(denied) = crate::cmd::acl_gate(node, session, id, resolved, req, now_ms()) {
                return Planned::Now(denied);
            }
        }
    }
    let mode = session.redirects;
    if mode != Redirects::Redirect && spec.step == 2 && req.len().is_multiple_of(2) {
        // MSET/MSETNX missing its last value: the command's own arity error, as a single
        // node answers. Routed, it would be split with its last key paired with nothing.
        return Planned::Now(run_local(node, session, req));
    }
    let r = route(routing, spec, req, mode == Redirects::Redirect);
    // Local work runs under the handoff gate, so a slot cannot be frozen half-way through a
    // command; a request touching a frozen slot of ours waits for the flip instead.
    let _gate = node.handoff.gate.read();
    // `routing` is the connection's snapshot from when the request's bytes arrived. A flip
    // installs the new routing before it unfreezes (under the gate), so if the snapshot is
    // no longer current, work it calls local may belong to a slot handed over since, whose
    // data is gone: decide again with the routing of now.
    let current;
    let (routing, r) = if matches!(r, Route::Local | Route::Split)
        && routing.generation != node.routing_generation()
    {
        current = node.routing();
        let r = route(&current, spec, req, mode == Redirects::Redirect);
        (&*current, r)
    } else {
        (routing, r)
    };
    if node.handoff.any_frozen()
        && matches!(r, Route::Local | Route::Split)
        && spec.key_positions(req.len()).any(|i| {
            let s = key_slot(req.arg(i));
            routing.owner(s) == Owner::Local && node.handoff.is_frozen(s)
        })
    {
        return Planned::Later(Pending::Frozen { req: req.clone() });
    }
    match (r, mode) {
        (Route::Local, _) => run_here(node, session, req),
        (Route::Moved { slot, addr }, _) => Planned::Now(moved(slot, addr)),
        (Route::Down, _) => Planned::Now(CLUSTERDOWN),
        (_, Redirects::Internal) => {
            // Send the forwarder to the owner of the first key that is not ours.
            let target = spec
                .key_positions(req.len())
                .map(|i| key_slot(req.arg(i)))
                .find_map(|s| match routing.owner(s) {
                    Owner::Remote(o) => routing.addr(o).map(|a| (s, a)),
                    _ => None,
                });
            Planned::Now(target.map_or(CLUSTERDOWN, |(s, a)| moved(s, a)))
        }
        (Route::CrossSlot, _) => Planned::Now(CROSSSLOT),
        (Route::Remote(o), _) => match routing.addr(o) {
            Some(addr) => Planned::Later(Pending::Remote {
                req: req.clone(),
                rx: node.peers.send_request(addr, session.proto, req),
            }),
            None => Planned::Now(CLUSTERDOWN),
        },
        (Route::Split, _) => Planned::Later(split(node, session, routing, req)),
    }
}

/// Splits a multi-key request by owner: the local share runs now, the others are forwarded.
fn split(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Pending {
    let name = req.arg(0);
    let pairs = name.eq_ignore_ascii_case(b"mset");
    let step = if pairs { 2 } else { 1 };
    // Group key positions by owner, keeping their order.
    let mut groups: Vec<(Owner, Vec<usize>)> = Vec::new();
    for i in (1..req.len()).step_by(step) {
        let owner = routing.owner(key_slot(req.arg(i)));
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, v)) => v.push(i),
            None => groups.push((owner, vec![i])),
        }
    }
    let parts = groups
        .into_iter()
        .map(|(owner, positions)| {
            let mut args: Vec<&[u8]> = vec![name];
            for &i in &positions {
                args.push(req.arg(i));
                if pairs {
                    args.push(req.arg(i + 1));
                }
            }
            let sub = Request::from_args(args);
            match owner {
                Owner::Local => Part::Done {
                    reply: run_local(node, session, &sub),
                    positions,
                },
                Owner::Remote(o) => match routing.addr(o) {
                    Some(addr) => Part::Remote {
                        rx: node.peers.send_request(addr, session.proto, &sub),
                        sub,
                        positions,
                    },
                    None => Part::Done {
                        reply: CLUSTERDOWN,
                        positions,
                    },
                },
                Owner::Unassigned => Part::Done {
                    reply: CLUSTERDOWN,
                    positions,
                },
            }
        })
        .collect();
    Pending::Split {
        req: req.clone(),
        parts,
    }
}

/// The address in a `-MOVED slot addr` reply.
fn moved_target(reply: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(reply.strip_prefix(b"-MOVED ")?).ok()?;
    text.trim_end().split(' ').nth(1)?.parse().ok()
}

fn encoded(frame: &Frame, proto: Protocol) -> Bytes {
    let mut b = BytesMut::new();
    frame.encode(proto, &mut b);
    b.freeze()
}

/// Runs `req` to completion with retries: planned again under the current table after a
/// `-MOVED` or a lost connection. Returns the encoded reply.
fn run_with_retries<'a>(
    node: &'a Arc<Node>,
    session: &'a mut Session,
    req: Request,
    first: Option<oneshot::Receiver<PeerReply>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send + 'a>> {
    Box::pin(async move {
        let proto = session.proto;
        let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
        let mut rx = first;
        let mut redirect: Option<SocketAddr> = None;
        let mut last_err = String::new();
        let mut hops = 0u32;
        let mut failures = 0u32;
        while tokio::time::Instant::now() < deadline {
            let waiting = match rx.take() {
                Some(rx) => rx,
                None => {
                    if let Some(addr) = redirect.take() {
                        node.peers.send_request(addr, proto, &req)
                    } else {
                        let routing = node.routing();
                        match plan(node, session, &routing, &req) {
                            Planned::Now(f) => return encoded(&f, proto),
                            Planned::Later(Pending::Remote { rx, .. }) => rx,
                            Planned::Later(
                                p @ (Pending::Split { .. }
                                | Pending::Frozen { .. }
                                | Pending::Task(_)),
                            ) => {
                                return Box::pin(resolve_one(node, session, p)).await;
                            }
                        }
                    }
                }
            };
            match waiting.await {
                Ok(Ok(bytes)) => match moved_target(&bytes) {
                    None => return bytes,
                    Some(addr) => {
                        last_err = String::from_utf8_lossy(&bytes).trim().to_string();
                        hops += 1;
                        if addr == node.advertised_addr() {
                            // Pointed back at us: our own view has moved on; plan again.
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        } else {
                            // Follow it: a node that handed a slot over points at the node
                            // it handed it to, so redirects lead forward even while our own
                            // table from the NameNode lags behind. Pause now and then so
                            // two nodes that disagree cannot spin.
                            redirect = Some(addr);
                            if hops.is_multiple_of(4) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                },
                Ok(Err(e)) => {
                    last_err = e.to_string();
                    failures += 1;
                    let backoff = 10u64 << failures.min(5);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(_) => {
                    last_err = "forwarding connection dropped".into();
                    failures += 1;
                }
            }
        }
        encoded(
            &Frame::error(format!(
                "TRYAGAIN could not reach the slot owner: {last_err}"
            )),
            proto,
        )
    })
}

/// Waits until none of `req`'s slots is frozen (bounded; the request is planned again
/// afterwards either way).
async fn wait_unfrozen(node: &Arc<Node>, req: &Request) {
    let frozen = || {
        lookup(req.arg(0)).is_some_and(|(_, spec)| {
            spec.key_positions(req.len())
                .any(|i| node.handoff.is_frozen(key_slot(req.arg(i))))
        })
    };
    let mut changes = node.handoff.watch_unfrozen();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while frozen() {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Merges the parts of a split request into one reply, in the order of the request's keys.
fn merge(req: &Request, parts: Vec<(Vec<usize>, Frame)>) -> Frame {
    let name = req.arg(0);
    if let Some((_, err)) = parts.iter().find(|(_, f)| f.is_error()) {
        return err.clone();
    }
    if name.eq_ignore_ascii_case(b"mget") {
        let mut out = vec![Frame::Null; req.len() - 1];
        for (positions, f) in parts {
            if let Frame::Array(items) = f {
                for (p, item) in positions.into_iter().zip(items) {
                    out[p - 1] = item;
                }
            }
        }
        Frame::Array(out)
    } else if name.eq_ignore_ascii_case(b"mset") {
        Frame::ok()
    } else {
        Frame::Integer(
            parts
                .iter()
                .map(|(_, f)| match f {
                    Frame::Integer(n) => *n,
                    _ => 0,
                })
                .sum(),
        )
    }
}

/// Waits for one pending reply and returns its encoded bytes.
pub async fn resolve_one(node: &Arc<Node>, session: &mut Session, p: Pending) -> Bytes {
    let proto = session.proto;
    match p {
        Pending::Remote { req, rx } => run_with_retries(node, session, req, Some(rx)).await,
        Pending::Frozen { req } => {
            wait_unfrozen(node, &req).await;
            run_with_retries(node, session, req, None).await
        }
        Pending::Task(task) => encoded(&task(node.clone()).await, proto),
        Pending::Split { req, parts } => {
            let mut done = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Done { positions, reply } => done.push((positions, reply)),
                    Part::Remote { positions, sub, rx } => {
                        let bytes = run_with_retries(node, session, sub, Some(rx)).await;
                        let frame = match parse_reply(&bytes) {
                            Ok(Some((f, _))) => f,
                            _ => Frame::err("ERR malformed reply from the slot owner"),
                        };
                        done.push((positions, frame));
                    }
                }
            }
            encoded(&merge(&req, done), proto)
        }
    }
}

/// Bytes of forwarded replies a connection may have on their way at once (estimated from the
/// largest forwarded reply it has had). Past it the connection stops parsing, writes what it
/// has to its client and only then goes on, so a client that does not read its replies holds
/// back its own requests instead of making this node buffer the answers: the bound local
/// replies have by being written before more input is read.
pub const FORWARDED_BUDGET: usize = 4 << 20;
/// Forwarded requests on their way per connection at most, however small their replies.
pub const MAX_FORWARDED: usize = 1024;

/// Replies of a batch, in request order: encoded bytes and replies still on their way.
#[derive(Default)]
pub struct Replies {
    items: Vec<Item>,
    /// Replies still on their way.
    waiting: usize,
    /// Largest forwarded reply seen on this connection (halved at each batch, so one huge
    /// value does not slow the connection for ever); `None` before the first.
    largest: Option<usize>,
}

/// What a forwarded reply is assumed to weigh before the connection has seen one.
const FIRST_REPLY_GUESS: usize = 256 << 10;

enum Item {
    Ready(Bytes),
    Waiting(Pending),
}

impl Replies {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues what has been encoded so far (taking it out of `out`) and then a pending reply.
    pub fn push_pending(&mut self, out: &mut BytesMut, p: Pending) {
        if !out.is_empty() {
            self.items.push(Item::Ready(out.split().freeze()));
        }
        self.items.push(Item::Waiting(p));
        self.waiting += 1;
    }

    /// Whether the replies on their way must be resolved and written before more requests
    /// are planned (see [`FORWARDED_BUDGET`]).
    pub fn over_budget(&self) -> bool {
        let each = self.largest.unwrap_or(FIRST_REPLY_GUESS).max(64);
        self.waiting >= MAX_FORWARDED || self.waiting.saturating_mul(each) >= FORWARDED_BUDGET
    }

    /// Resolves everything in order into `out`.
    pub async fn resolve_into(
        &mut self,
        node: &Arc<Node>,
        session: &mut Session,
        out: &mut BytesMut,
    ) {
        let tail = out.split();
        let mut largest = self.largest.map(|l| l / 2);
        for item in self.items.drain(..) {
            match item {
                Item::Ready(b) => out.extend_from_slice(&b),
                Item::Waiting(p) => {
                    let b = resolve_one(node, session, p).await;
                    largest = Some(largest.unwrap_or(0).max(b.len()));
                    out.extend_from_slice(&b);
                }
            }
        }
        self.waiting = 0;
        self.largest = largest;
        out.extend_from_slice(&tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection plans a whole read's worth of requests with the routing it took when the
    /// bytes arrived. If the node hands a slot over meanwhile (flip, unfreeze, drop the data),
    /// a later request of that batch must not run locally on the dropped slot: it would read
    /// nothing and its writes would be lost. It gets the new owner instead.
    #[test]
    fn a_stale_routing_snapshot_never_runs_a_request_locally() {
        use crate::cmd::testutil::Harness;
        use chkv_common::proto::NodeInfo;
        use chkv_common::ring::{NodeId, Ring};
        let info = |id: &str, port: u16| NodeInfo {
            id: NodeId::new(id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
        };
        let mut h = Harness::with_config(crate::config::Config {
            node_id: Some("b".into()),
            port: 7100,
            ..crate::config::Config::default()
        });
        h.session.redirects = Redirects::Redirect;
        let infos = vec![info("a", 7000), info("b", 7100)];
        let table = |owner: &str, epoch: u64| {
            let mut ring = Ring::default();
            ring.add(NodeId::new(owner));
            let mut t = ring.slot_table();
            t.set_epoch(epoch);
            crate::cluster::Routing::from_table(&t, &infos, "b")
        };
        assert!(h.node.set_routing(table("b", 1)));
        let snapshot = h.node.routing();
        let get = Request::from_args(["GET", "k"]);
        assert!(matches!(
            plan(&h.node, &mut h.session, &snapshot, &get),
            Planned::Now(Frame::Null)
        ));
        // The slot of "k" now belongs to a (a flip, or a new table); the batch goes on with
        // its old snapshot.
        assert!(h.node.set_routing(table("a", 2)));
        match plan(&h.node, &mut h.session, &snapshot, &get) {
            Planned::Now(f) => assert_eq!(
                f,
                Frame::error(format!("MOVED {} 127.0.0.1:7000", key_slot(b"k")))
            ),
            Planned::Later(_) => panic!("expected an immediate MOVED"),
        }
    }

    #[test]
    fn moved_parsing() {
        assert_eq!(
            moved_target(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some("127.0.0.1:6381".parse().expect("addr"))
        );
        assert_eq!(moved_target(b"-ERR x\r\n"), None);
        assert_eq!(moved_target(b"+OK\r\n"), None);
    }

    #[test]
    fn merges_in_key_order() {
        let req = Request::from_args(["MGET", "a", "b", "c"]);
        let m = merge(
            &req,
            vec![
                (vec![2], Frame::Array(vec![Frame::bulk("B")])),
                (
                    vec![1, 3],
                    Frame::Array(vec![Frame::bulk("A"), Frame::Null]),
                ),
            ],
        );
        assert_eq!(
            m,
            Frame::Array(vec![Frame::bulk("A"), Frame::bulk("B"), Frame::Null])
        );
        let del = Request::from_args(["DEL", "a", "b"]);
        assert_eq!(
            merge(
                &del,
                vec![(vec![1], Frame::Integer(1)), (vec![2], Frame::Integer(1))]
            ),
            Frame::Integer(2)
        );
        let mset = Request::from_args(["MSET", "a", "1", "b", "2"]);
        assert_eq!(
            merge(
                &mset,
                vec![(vec![1], Frame::ok()), (vec![3], Frame::err("ERR x"))]
            ),
            Frame::err("ERR x")
        );
    }
}
