//! Running requests across the cluster: here, on the owner, or split over several owners.
//!
//! [`plan`] decides synchronously for each request. Local requests are answered at once;
//! forwarded ones leave a [`Pending`] reply whose bytes arrive later. The connection keeps
//! replies in request order by queueing encoded local replies and pendings in one list
//! ([`Replies`]) and resolving it in order ([`Replies::resolve_into`]) before writing. A
//! pipeline of forwarded requests is therefore sent to each owner in one go and answered in
//! order.
//!
//! When a forwarded request comes back `-MOVED` (the owner's table is newer or older than
//! ours) or its connection fails, the request is planned again with the current table and
//! retried a bounded number of times.
//!
//! By concern, beside planning and resolving here:
//! - `route`: where a request's keys say it runs, from the routing alone;
//! - `decide`: where a keyed request goes (here, forwarded, split, waiting, or a redirect),
//!   from the routing and a few facts alone, without I/O; `plan` carries the decision out;
//! - `tx`: transactions (MULTI/EXEC, WATCH) and scripts in a cluster;
//! - `as_user`: requests that run as a client's user on another node;
//! - `retry`: forwarded requests run to completion, with retries;
//! - `blocked`: blocking commands that follow their keys' slot;
//! - `replies`: a connection's replies in request order ([`Replies`]).

use crate::cluster::{Owner, Routing};
use crate::cmd::{dispatch, lookup, multi, Ctx, Redirects, Session};
use crate::node::Node;
use crate::peer::PeerReply;
use crate::resp::reply::parse_reply;
use crate::resp::{Frame, Protocol, Request};
use crate::store::now_ms;
use bytes::{Bytes, BytesMut};
use chkv_common::key_slot;
use chkv_common::split::{self, Merged, Share, Split};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

mod as_user;
mod blocked;
mod decide;
mod replies;
mod retry;
mod route;
mod tx;

use as_user::*;
use blocked::*;
use decide::*;
pub use replies::{Replies, FORWARDED_BUDGET, MAX_FORWARDED};
use retry::*;
pub use route::{route, splittable, Route};
pub use tx::plan_tx;
use tx::*;

/// A reply that is not known yet.
pub enum Pending {
    /// The whole request went to one owner as `wire` ([`Request::to_wire`]); its raw reply
    /// is relayed.
    Remote {
        wire: Bytes,
        rx: oneshot::Receiver<PeerReply>,
    },
    /// A multi-key request split over owners.
    Split { req: Request, parts: Vec<Part> },
    /// A request for slots being handed over: it waits for the flip, then is planned again.
    Frozen { req: Request },
    /// A transaction (EXEC) whose slots are being handed over: it waits for the flip, then
    /// is planned again as a whole.
    Tx { cmds: Vec<Request> },
    /// A request sent over the connection's own connection to the node holding its WATCH.
    Relay {
        req: Request,
        rx: oneshot::Receiver<PeerReply>,
        kind: RelayKind,
        dirty: Arc<std::sync::atomic::AtomicBool>,
    },
    /// A command that finishes asynchronously ([`crate::cmd::Deferred`]).
    Task(crate::cmd::Deferred),
    /// FCALL of a function this node does not know, in a cluster: it may be one this node has
    /// not heard of yet (it has just joined). The libraries are exchanged with the other
    /// nodes (bounded), then the request is planned again. This waits as a pending reply,
    /// never inside the command: a command runs under the handoff gate, and a worker blocked
    /// there on the network while a new table waited for the gate's write side stopped the
    /// whole node (the table's installer blocked the only other worker thread, and with it
    /// the peer connections the exchange needed).
    Pull { req: Request },
    /// A request for this node's slots while it holds no ownership lease: it waits (bounded)
    /// for a renewal or for a table that sends it elsewhere, then is planned again.
    Fenced { req: Request },
    /// The same for a transaction that would run here.
    FencedTx { cmds: Vec<Request> },
    /// A command that ran here while the lease ran out: its reply is sent if a renewal
    /// comes with no drop since `resets`, else [`crate::lease::ERR_LEASE_LOST`].
    LeaseLost { reply: Frame, resets: u64 },
    /// A blocking command waiting here for a key ([`crate::blocking`]).
    Blocked(crate::blocking::Blocked),
    /// A request a peer sent as a client's user (`CLUSTER ASUSER`): resolved (and planned
    /// again, if it comes to that) as that user.
    AsUser { user: Bytes, inner: Box<Pending> },
    /// A blocking command forwarded to its owner over a connection of its own (a shared one
    /// would hold every later request behind it); `id` is the connection's client id there,
    /// which CLIENT UNBLOCK here uses to unblock it there.
    RemoteBlocked {
        req: Request,
        addr: SocketAddr,
        conn: crate::peer::PeerConn,
        id: oneshot::Receiver<PeerReply>,
        rx: oneshot::Receiver<PeerReply>,
    },
}

impl Pending {
    /// Whether the reply may take arbitrarily long (a blocking command): the connection
    /// then watches its socket meanwhile and runs nothing after it until it is answered.
    pub fn blocks(&self) -> bool {
        matches!(self, Pending::Blocked(_) | Pending::RemoteBlocked { .. })
    }
}

/// What a [`Pending::Relay`] request is, for when its node answers `-MOVED` or is lost: the
/// watch is then void (`dirty`), and the reply becomes what is safe for the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    /// WATCH: `+OK`, and the next EXEC aborts.
    Watch,
    /// The transaction (MULTIEXEC): nothing ran there; a null array, like a fired watch.
    Exec,
    /// Any other command: run again the ordinary way.
    Command,
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
    /// A share to plan here again: the keys a redirected request has here.
    Plan {
        positions: Vec<usize>,
        sub: Request,
    },
}

/// How a request is answered.
pub enum Planned {
    Now(Frame),
    Later(Pending),
}

/// While a script is busy (past `busy-reply-threshold`), Redis's `-BUSY` for anything but
/// the commands allowed then. Refused inside MULTI, the command aborts the transaction; an
/// EXEC refused ends it with `-EXECABORT`.
#[cold]
fn busy_reply(node: &Node, session: &mut Session, req: &Request) -> Option<Frame> {
    if crate::lua::allowed_while_busy(req) {
        return None;
    }
    let busy = node.scripting.busy_error()?;
    if session.tx.in_multi() {
        if req.arg(0).eq_ignore_ascii_case(b"exec") {
            session.tx.queue = None;
            multi::unwatch_all(node, &mut session.tx);
            let Frame::Error(text) = &busy else {
                return Some(busy);
            };
            return Some(Frame::error(format!(
                "EXECABORT Transaction discarded because of: {text}"
            )));
        }
        session.tx.flag();
    }
    Some(busy)
}

fn run_local(node: &Node, session: &mut Session, req: &Request) -> Frame {
    let mut ctx = Ctx {
        node,
        session,
        now: now_ms(),
    };
    dispatch(&mut ctx, req)
}

/// Runs `req` here; a command that left work to finish asynchronously (or that blocked)
/// becomes a pending reply.
fn run_here(node: &Node, session: &mut Session, req: &Request) -> Planned {
    let reply = run_local(node, session, req);
    if std::mem::take(&mut session.fenced) {
        return Planned::Later(Pending::Fenced { req: req.clone() });
    }
    if let Some((reply, resets)) = session.lease_lost.take() {
        return Planned::Later(Pending::LeaseLost { reply, resets });
    }
    if let Some(b) = session.blocked.take() {
        return Planned::Later(Pending::Blocked(b));
    }
    match session.deferred.take() {
        None => Planned::Now(reply),
        Some(task) => Planned::Later(Pending::Task(task)),
    }
}

/// Forwards a blocking command to `addr` over a connection of its own, asking first for
/// that connection's client id (for CLIENT UNBLOCK).
fn forward_blocking(node: &Node, proto: Protocol, addr: SocketAddr, req: &Request) -> Pending {
    let conn = node.peers.dedicated(addr, proto);
    let id = conn.send_request(&Request::from_args(["CLIENT", "ID"]));
    let rx = conn.send_request(req);
    Pending::RemoteBlocked {
        req: req.clone(),
        addr,
        conn,
        id,
        rx,
    }
}

/// A client (not a peer) on a TLS connection: its `-MOVED` names TLS ports.
fn tls_client(session: &Session) -> bool {
    session.tls && session.peer.is_none()
}

const CROSSSLOT: Frame = Frame::err("CROSSSLOT Keys in request don't hash to the same slot");
const CLUSTERDOWN: Frame = Frame::err("CLUSTERDOWN Hash slot not served");

/// Decides how to answer `req` under `routing`, starting any forwarding it needs; then
/// serves the clients blocked on keys the request made ready (outside the handoff gate,
/// before the request's reply is sent).
pub fn plan(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Planned {
    let p = plan_request(node, session, routing, req);
    if session.tracking.is_some() && matches!(p, Planned::Later(_)) {
        forwarded_read(session, req);
    }
    crate::cmd::blocking::serve_ready(node);
    p
}

/// A tracking client's read that did not run here now (forwarded to its owner, or waiting
/// for a flip or a lease): its keys are invalidated after the reply, since this node's table
/// does not see their writes (see [`crate::tracking`]).
#[cold]
fn forwarded_read(session: &Session, req: &Request) {
    let Some((spec, _)) = crate::cmd::resolve_checked(req).ok() else {
        return;
    };
    let positions: Vec<usize> = if crate::lua::is_script_command(spec.name) {
        crate::lua::declared_keys(req).collect()
    } else if spec.has(crate::cmd::flags::READONLY) {
        spec.keys_in(req).collect()
    } else {
        return;
    };
    let Some(t) = &session.tracking else {
        return;
    };
    let keys = positions
        .into_iter()
        .map(|i| bytes::Bytes::copy_from_slice(req.arg(i)));
    crate::tracking::forwarded(t, session.track_caching, keys);
}

fn plan_request(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Planned {
    if session.peer.is_some() && !session.as_user && is_as_user(req) {
        return plan_as_user(node, session, routing, req);
    }
    if node.scripting.maybe_busy() {
        if let Some(busy) = busy_reply(node, session, req) {
            return Planned::Now(busy);
        }
    }
    if routing.standalone {
        return run_here(node, session, req);
    }
    if session.tx.in_multi() {
        return plan_in_multi(node, session, routing, req);
    }
    let spec = match lookup(req.arg(0)) {
        Some((_, spec))
            if session.authenticated && spec.first_key > 0 && spec.arity_ok(req.len()) =>
        {
            spec
        }
        Some((_, spec))
            if crate::lua::is_script_command(spec.name)
                && session.authenticated
                && spec.arity_ok(req.len()) =>
        {
            if let Some(denied) = acl_denied(node, session, req) {
                return Planned::Now(denied);
            }
            return plan_eval(node, session, req);
        }
        Some((_, spec)) if spec.name == "multiexec" && session.authenticated => {
            // A client's MULTIEXEC needs the permission; one a peer sends as a client's user
            // is that client's EXEC (its commands are checked as they run).
            if let Some(denied) = acl_denied(node, session, req).filter(|_| !session.as_user) {
                return Planned::Now(denied);
            }
            return match multi::decode_multiexec(req) {
                Ok(cmds) => plan_tx(node, session, cmds, None),
                Err(e) => Planned::Now(e),
            };
        }
        // Errors, keyless and node-local commands run here.
        _ => return run_here(node, session, req),
    };
    if session.subscribed_resp2() && spec.name != "ssubscribe" {
        // Refused here by the subscribed-mode rule, wherever its keys live.
        return Planned::Now(run_local(node, session, req));
    }
    // Permissions are checked here, before the request may leave for its owner.
    if let Some(denied) = acl_denied(node, session, req) {
        return Planned::Now(denied);
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
    let frozen = |s| node.handoff.is_frozen(s);
    let leased = || node.lease.check();
    let facts = Facts {
        mode,
        tls_client: tls_client(session),
        tx_remote: session.tx.remote.is_some(),
        frozen: node
            .handoff
            .any_frozen()
            .then_some(&frozen as &dyn Fn(u16) -> bool),
        leased: &leased,
    };
    match decide(routing, spec, req, r, &facts) {
        Decision::Reply(f) => Planned::Now(f),
        Decision::Here => run_here(node, session, req),
        Decision::WaitFrozen => Planned::Later(Pending::Frozen { req: req.clone() }),
        Decision::WaitLease => Planned::Later(Pending::Fenced { req: req.clone() }),
        Decision::Forward(addr) => {
            node.stats.forwarded_requests.add(1);
            Planned::Later(forward(node, session, addr, req))
        }
        Decision::ForwardBlocking(addr) => {
            node.stats.forwarded_requests.add(1);
            Planned::Later(forward_blocking(node, session.proto, addr, req))
        }
        Decision::RemoteWatch(addr) => plan_remote_watch(node, session, addr, req),
        Decision::Relay(addr) => match relay(session, addr, req, RelayKind::Command) {
            Some(p) => Planned::Later(p),
            None => Planned::Later(forward(node, session, addr, req)),
        },
        Decision::Split => Planned::Later(split(node, session, routing, req)),
    }
}

/// Sends `req` to the node at `addr` (the bytes the client sent, when they can go as they are).
fn forward(node: &Node, session: &Session, addr: SocketAddr, req: &Request) -> Pending {
    let wire = req.to_wire();
    Pending::Remote {
        rx: node.peers.send(addr, session.proto, wire.clone()),
        wire,
    }
}

/// Splits a multi-key request by owner: the local share runs now, the others are forwarded.
fn split(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Pending {
    let parts = shares(req, |slot| routing.owner(slot))
        .into_iter()
        .map(|(owner, positions, sub)| match owner {
            Owner::Local => {
                let reply = run_local(node, session, &sub);
                // Lost since the check above: its refusal is this share's answer.
                session.fenced = false;
                Part::Done { reply, positions }
            }
            Owner::Remote(o) => sent_part(node, session.proto, routing.addr(o), positions, sub),
            Owner::Unassigned => sent_part(node, session.proto, None, positions, sub),
        })
        .collect();
    Pending::Split {
        req: req.clone(),
        parts,
    }
}

/// Splits a splittable `req` whose keys redirects have shown to live on several nodes into
/// one share per slot, each sent to the address `at` gives its slot. Per slot, not per
/// address: a share of one slot follows its redirects whole and is never split again, so
/// however many of the request's slots turn out to have moved, this happens once (split by
/// address, each further redirect would split a share again, one nesting deeper). The
/// shares `at` places on this node (where its routing says they are, no redirect having
/// said otherwise) are planned again like new requests, so frozen slots and the lease are
/// checked as ever.
fn split_apart(
    node: &Node,
    proto: Protocol,
    req: &Request,
    at: impl Fn(u16) -> Option<SocketAddr>,
) -> Pending {
    let me = node.advertised_addr();
    let parts = slot_shares(req)
        .into_iter()
        .map(|(slot, positions, sub)| match at(slot) {
            Some(addr) if addr == me => Part::Plan { positions, sub },
            elsewhere => sent_part(node, proto, elsewhere, positions, sub),
        })
        .collect();
    Pending::Split {
        req: req.clone(),
        parts,
    }
}

/// A share sent to the node at `addr`, or `-CLUSTERDOWN` when its slot has no address.
fn sent_part(
    node: &Node,
    proto: Protocol,
    addr: Option<SocketAddr>,
    positions: Vec<usize>,
    sub: Request,
) -> Part {
    match addr {
        Some(addr) => {
            node.stats.forwarded_requests.add(1);
            Part::Remote {
                rx: node.peers.send_request(addr, proto, &sub),
                sub,
                positions,
            }
        }
        None => Part::Done {
            reply: CLUSTERDOWN,
            positions,
        },
    }
}

/// The address in a `-MOVED slot addr` reply.
fn moved_target(reply: &[u8]) -> Option<SocketAddr> {
    match chkv_common::resp::ErrorKind::of_reply(reply)? {
        chkv_common::resp::ErrorKind::Moved { addr, .. } => Some(addr),
        _ => None,
    }
}

fn encoded(frame: &Frame, proto: Protocol) -> Bytes {
    let mut b = BytesMut::new();
    frame.encode(proto, &mut b);
    b.freeze()
}

/// How `req` (a splittable command) is split: each share's command name, and the merge.
/// PFCOUNT's share on each owner is the HyperLogLogs themselves (an MGET), counted together
/// after the merge.
fn split_of(req: &Request) -> (&[u8], Split) {
    let name = req.arg(0);
    if name.eq_ignore_ascii_case(b"pfcount") {
        (b"MGET", Split::Mget)
    } else {
        (name, Split::of(name))
    }
}

/// A share's encoded reply as a frame, to merge.
fn share_reply(bytes: &[u8]) -> Frame {
    match parse_reply(bytes) {
        Ok(Some((f, _))) => f,
        _ => Frame::err("ERR malformed reply from the slot owner"),
    }
}

/// The shares of a splittable `req`, grouped by `owner` of each key's slot: the owner, the
/// key positions (in the request's order) and the share as a request of its own.
fn shares<O: Eq + std::hash::Hash + Clone>(
    req: &Request,
    mut owner: impl FnMut(u16) -> O,
) -> Vec<(O, Vec<usize>, Request)> {
    let (_, how) = split_of(req);
    split::group((1..req.len()).step_by(how.step()), |i| {
        owner(key_slot(req.arg(i)))
    })
    .into_iter()
    .map(|(o, positions)| {
        let sub = share_request(req, &positions);
        (o, positions, sub)
    })
    .collect()
}

/// The shares of a splittable `req`, one per slot (in slot order), as [`shares`] gives them.
fn slot_shares(req: &Request) -> Vec<(u16, Vec<usize>, Request)> {
    let (_, how) = split_of(req);
    let mut keys: Vec<(u16, usize)> = (1..req.len())
        .step_by(how.step())
        .map(|i| (key_slot(req.arg(i)), i))
        .collect();
    // By slot, and within a slot by position: the request's order.
    keys.sort_unstable();
    keys.chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            let positions: Vec<usize> = run.iter().map(|&(_, i)| i).collect();
            let sub = share_request(req, &positions);
            (run[0].0, positions, sub)
        })
        .collect()
}

/// The share of a splittable `req` holding the keys (with their values) at `positions`.
fn share_request(req: &Request, positions: &[usize]) -> Request {
    let (sub_name, how) = split_of(req);
    Request::from_args(split::share(sub_name, positions, how.step(), |i| {
        req.arg(i)
    }))
}

/// Merges the parts of a split request into one reply, in the order of the request's keys
/// ([`chkv_common::split::merge`]); the first error a part answered is the reply.
fn merge(req: &Request, parts: Vec<(Vec<usize>, Frame)>) -> Frame {
    if let Some((_, err)) = parts.iter().find(|(_, f)| f.is_error()) {
        return err.clone();
    }
    let (_, how) = split_of(req);
    let positions: Vec<usize> = (1..req.len()).step_by(how.step()).collect();
    let (groups, replies): (Vec<_>, Vec<_>) = parts
        .into_iter()
        .map(|(p, f)| {
            let share = match f {
                Frame::Array(items) => Share::Array(items),
                Frame::Integer(n) => Share::Integer(n),
                Frame::Null => Share::Other("nil"),
                _ => Share::Other("another type"),
            };
            (((), p), share)
        })
        .unzip();
    match split::merge(how, &positions, &groups, replies) {
        Ok(Merged::Values(values)) => {
            let values: Vec<Frame> = values
                .into_iter()
                .map(|v| v.unwrap_or(Frame::Null))
                .collect();
            if req.arg(0).eq_ignore_ascii_case(b"pfcount") {
                crate::cmd::hll::count_union(&values)
            } else {
                Frame::Array(values)
            }
        }
        Ok(Merged::Ok) => Frame::ok(),
        Ok(Merged::Integer(n)) => Frame::Integer(n),
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

/// Waits for one pending reply and returns its encoded bytes.
pub async fn resolve_one(node: &Arc<Node>, session: &mut Session, p: Pending) -> Bytes {
    let proto = session.proto;
    match p {
        Pending::Remote { wire, rx } => {
            // An answer the retry policy relays (a result, or an error that is the client's
            // answer) goes back at once; a redirect, a refusal or a lost link goes through
            // the retries.
            let reply = rx.await;
            if let Ok(Ok(bytes)) = &reply {
                if on_reply(bytes) == OnReply::Relay {
                    return bytes.clone();
                }
            }
            let Some(req) = Request::from_wire(&wire) else {
                return encoded(&Frame::err("ERR request could not be forwarded"), proto);
            };
            // The reply that arrived, handed to the retries as if still on its way.
            let (tx, rx) = oneshot::channel();
            if let Ok(reply) = reply {
                let _ = tx.send(reply);
            }
            run_with_retries(node, session, req, Some(rx)).await
        }
        Pending::Frozen { req } => {
            wait_unfrozen(node, &req).await;
            run_with_retries(node, session, req, None).await
        }
        Pending::Relay {
            req,
            rx,
            kind,
            dirty,
        } => {
            let reply = rx.await;
            if let Ok(Ok(bytes)) = &reply {
                if moved_target(bytes).is_none() {
                    return bytes.clone();
                }
            }
            // Moved away or lost: the watch there can no longer be trusted.
            dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            match kind {
                RelayKind::Watch => encoded(&Frame::ok(), proto),
                RelayKind::Exec => match reply {
                    Ok(Ok(_)) => encoded(&Frame::NullArray, proto),
                    _ => encoded(
                        &Frame::err(
                            "TRYAGAIN the connection to the keys' node was lost during EXEC; \
                             the transaction may or may not have run",
                        ),
                        proto,
                    ),
                },
                RelayKind::Command => run_with_retries(node, session, req, None).await,
            }
        }
        Pending::Tx { cmds } => {
            let slots = multi::tx_slots(&cmds, session.tx.watch.as_ref());
            let frozen = || match &slots {
                Some(slots) => slots.iter().any(|&s| node.handoff.is_frozen(s)),
                None => node.handoff.any_frozen(),
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
            let planned = plan_tx(node, session, cmds, None);
            crate::cmd::blocking::serve_ready(node);
            match planned {
                Planned::Now(f) => encoded(&f, proto),
                Planned::Later(p) => Box::pin(resolve_one(node, session, p)).await,
            }
        }
        Pending::Task(task) => encoded(&task(node.clone()).await, proto),
        Pending::AsUser { user: name, inner } => {
            let Some(user) = node.acl.get(&name) else {
                return encoded(
                    &Frame::err("ERR the user of this connection was deleted"),
                    proto,
                );
            };
            let saved = session.enter_user(name, user, node.acl.generation());
            let reply = Box::pin(resolve_one(node, session, *inner)).await;
            session.leave_user(saved);
            reply
        }
        Pending::Pull { req } => {
            crate::cmd::sync::exchange_all(
                node,
                crate::sync::Set::Functions,
                crate::sync::PULL_TIMEOUT,
            )
            .await;
            session.functions_pulled = true;
            let routing = node.routing();
            let planned = plan(node, session, &routing, &req);
            session.functions_pulled = false;
            match planned {
                Planned::Now(_) if std::mem::take(&mut session.no_reply) => Bytes::new(),
                Planned::Now(f) => encoded(&f, proto),
                Planned::Later(p) => Box::pin(resolve_one(node, session, p)).await,
            }
        }
        Pending::Fenced { req } => {
            if !wait_for_lease(node, &request_slots(&req)).await {
                return encoded(&crate::lease::ERR_NO_LEASE, proto);
            }
            let routing = node.routing();
            match plan(node, session, &routing, &req) {
                Planned::Now(_) if std::mem::take(&mut session.no_reply) => Bytes::new(),
                Planned::Now(f) => encoded(&f, proto),
                // Lapsed again already: once is enough waiting.
                Planned::Later(Pending::Fenced { .. }) => {
                    encoded(&crate::lease::ERR_NO_LEASE, proto)
                }
                Planned::Later(p) => Box::pin(resolve_one(node, session, p)).await,
            }
        }
        Pending::LeaseLost { reply, resets } => {
            if node
                .lease
                .renewed_since(resets, crate::lease::LOST_WAIT)
                .await
            {
                encoded(&reply, proto)
            } else {
                encoded(&crate::lease::ERR_LEASE_LOST, proto)
            }
        }
        Pending::FencedTx { cmds } => {
            let slots: Vec<u16> = cmds.iter().flat_map(request_slots).collect();
            if !wait_for_lease(node, &slots).await {
                multi::unwatch_all(node, &mut session.tx);
                return encoded(&crate::lease::ERR_NO_LEASE, proto);
            }
            match plan_tx(node, session, cmds, None) {
                Planned::Now(f) => encoded(&f, proto),
                Planned::Later(Pending::FencedTx { .. }) => {
                    multi::unwatch_all(node, &mut session.tx);
                    encoded(&crate::lease::ERR_NO_LEASE, proto)
                }
                Planned::Later(p) => Box::pin(resolve_one(node, session, p)).await,
            }
        }
        p @ (Pending::Blocked(_) | Pending::RemoteBlocked { .. }) => {
            Box::pin(resolve_blocking(node, session, p)).await
        }
        Pending::Split { req, parts } => {
            let mut done = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Done { positions, reply } => done.push((positions, reply)),
                    Part::Remote { positions, sub, rx } => {
                        let bytes = run_with_retries(node, session, sub, Some(rx)).await;
                        done.push((positions, share_reply(&bytes)));
                    }
                    Part::Plan { positions, sub } => {
                        let bytes = run_with_retries(node, session, sub, None).await;
                        done.push((positions, share_reply(&bytes)));
                    }
                }
            }
            encoded(&merge(&req, done), proto)
        }
    }
}

#[cfg(test)]
mod tests;
