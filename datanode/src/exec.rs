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

use crate::cluster::{route, Owner, Route, Routing};
use crate::cmd::{dispatch, lookup, multi, Ctx, Redirects, Session};
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
/// publishing moves, and a dead node's removal (about a second by default). Time spent
/// waiting for an owner's answer does not count (see [`retry_allowed`]).
const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// Longest a forwarded request is retried in all, answers included.
const RETRY_LIMIT: Duration = Duration::from_secs(30);

/// Whether a forwarded request may be tried again, `elapsed` after it started, of which
/// `answered` went waiting for owners that answered (with `-MOVED`, or a refusal for want of
/// a lease). An owner that answers is working, however slowly: on a loaded machine one
/// answer can take seconds (the slot was frozen for a move meanwhile), and a request must
/// not be refused for following the redirect that answer names. Only the time spent
/// retrying (pauses, re-planning, lost connections) counts against [`RETRY_BUDGET`]; the
/// whole is bounded by [`RETRY_LIMIT`].
fn retry_allowed(elapsed: Duration, answered: Duration) -> bool {
    elapsed < RETRY_LIMIT && elapsed.saturating_sub(answered) < RETRY_BUDGET
}

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
}

/// How a request is answered.
pub enum Planned {
    Now(Frame),
    Later(Pending),
}

// ---- transactions (MULTI/EXEC) in a cluster ----
//
// A connection inside MULTI queues locally: nothing is forwarded while queuing. A
// cluster-aware connection gets Redis Cluster's checks per queued command (`-MOVED`,
// `-CROSSSLOT`, which abort the transaction). At EXEC the node looks at the owners of every
// key of every queued command, with the table current under the handoff gate:
// - all here (or no keys): the transaction runs here, atomically (`multi::run_tx`), under the
//   gate, after waiting for any of its slots that is frozen, so a handoff never splits it;
// - all on one other node (plain connections): the whole transaction goes there as one
//   internal `MULTIEXEC` request and runs there atomically; the reply is relayed;
// - on several nodes: `-CROSSSLOT`, nothing applied. For cluster-aware connections every key
//   must be in one slot (else `-CROSSSLOT`) that this node owns (else `-MOVED`).
// Watched keys are watched here; if one's slot has left this node since, the watch fired
// (the store signals a slot that moves away) and EXEC returns a null array: the client's
// optimistic-locking loop retries, now against the new owner.

fn plan_in_multi(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Planned {
    if req.arg(0).eq_ignore_ascii_case(b"exec") && req.len() == 1 {
        let Some(q) = session.tx.queue.take() else {
            return Planned::Now(run_local(node, session, req));
        };
        if q.aborted {
            multi::unwatch_all(node, &mut session.tx);
            return Planned::Now(multi::ERR_EXECABORT);
        }
        return plan_tx(node, session, q.cmds, Some(q.specs));
    }
    if session.redirects == Redirects::Redirect && session.authenticated {
        if let Some((_, spec)) = lookup(req.arg(0)) {
            if spec.first_key > 0 && spec.arity_ok(req.len()) && spec.name != "watch" {
                let err = match route(routing, spec, req, true) {
                    Route::Moved { slot, addr } => Some(moved(routing, session, slot, addr)),
                    Route::CrossSlot => Some(CROSSSLOT),
                    Route::Down => Some(CLUSTERDOWN),
                    _ => None,
                };
                if let Some(e) = err {
                    session.tx.flag();
                    return Planned::Now(e);
                }
            }
        }
    }
    Planned::Now(run_local(node, session, req))
}

/// WATCH on a plain connection of keys that all live on another node: the watch is set
/// there, over a connection of this session's own (a watch lives in the session that set
/// it; the shared forwarding connection belongs to no client). While it is active, this
/// session's other requests for that node take the same connection, so they reach it in
/// order after the WATCH; EXEC sends the whole transaction over it, where the node checks
/// the watch and runs it atomically. Watching keys on two nodes is `-CROSSSLOT`.
fn plan_remote_watch(
    node: &Node,
    session: &mut Session,
    addr: SocketAddr,
    req: &Request,
) -> Planned {
    let watching_elsewhere = session.tx.watch.is_some()
        || session
            .tx
            .remote
            .as_ref()
            .is_some_and(|r| r.active && r.conn.addr != addr);
    if watching_elsewhere {
        return Planned::Now(CROSSSLOT);
    }
    let reusable = session.tx.remote.as_ref().is_some_and(|r| {
        r.conn.addr == addr && r.conn.proto == session.proto && !r.conn.is_closed()
    });
    if !reusable {
        session.tx.remote = Some(multi::RemoteWatch {
            conn: node.peers.dedicated(addr, session.proto),
            active: false,
            keys: Vec::new(),
            dirty: Default::default(),
        });
    }
    if let Some(r) = session.tx.remote.as_mut() {
        if !r.active {
            r.dirty.store(false, std::sync::atomic::Ordering::Relaxed);
            r.active = true;
            r.keys.clear();
        }
        if r.keys.len() < 1 << 20 {
            r.keys
                .extend(req.iter().skip(1).map(Bytes::copy_from_slice));
        }
    }
    match relay(session, addr, req, RelayKind::Watch) {
        Some(p) => Planned::Later(p),
        None => Planned::Now(Frame::ok()),
    }
}

/// Sends `req` over the session's connection to `addr` if it holds an intact watch there.
fn relay(
    session: &mut Session,
    addr: SocketAddr,
    req: &Request,
    kind: RelayKind,
) -> Option<Pending> {
    let r = session.tx.remote.as_ref()?;
    let usable = r.active
        && r.conn.addr == addr
        && r.conn.proto == session.proto
        && !r.dirty.load(std::sync::atomic::Ordering::Relaxed);
    usable.then(|| Pending::Relay {
        req: req.clone(),
        rx: r.conn.send_request(req),
        kind,
        dirty: r.dirty.clone(),
    })
}

/// The slots of a request's keys, scripts' declared keys included.
fn request_slots(req: &Request) -> Vec<u16> {
    let Some((_, spec)) = lookup(req.arg(0)) else {
        return Vec::new();
    };
    if crate::lua::is_script_command(spec.name) && spec.arity_ok(req.len()) {
        return crate::lua::declared_keys(req)
            .map(|i| key_slot(req.arg(i)))
            .collect();
    }
    // A subcommand's own key positions (OBJECT ENCODING key).
    let spec = crate::cmd::resolve_checked(req).map_or(spec, |(sub, _)| sub);
    spec.keys_in(req).map(|i| key_slot(req.arg(i))).collect()
}

/// EVAL, FCALL and friends in a cluster: the declared keys decide, like a command's keys. A plain
/// connection's script runs on the node that owns all its keys (forwarded whole; EVALSHA
/// there answers `-NOSCRIPT` if that node does not have the script, and clients then send
/// EVAL); keys on several nodes are `-CROSSSLOT`; cluster-aware connections get Redis
/// Cluster's `-MOVED`/`-CROSSSLOT`. A script without keys runs where it is sent.
fn plan_eval(node: &Node, session: &mut Session, req: &Request) -> Planned {
    let slots = request_slots(req);
    let _gate = node.handoff.gate.read();
    let routing = node.routing();
    let mut owners: Vec<(Owner, u16)> = Vec::new();
    for &s in &slots {
        let o = routing.owner(s);
        if !owners.iter().any(|(x, _)| *x == o) {
            owners.push((o, s));
        }
    }
    if session.redirects == Redirects::Redirect && slots.iter().any(|s| Some(s) != slots.first()) {
        return Planned::Now(CROSSSLOT);
    }
    if owners.iter().any(|(o, _)| *o == Owner::Unassigned) {
        return Planned::Now(CLUSTERDOWN);
    }
    if owners.len() > 1 {
        return Planned::Now(CROSSSLOT);
    }
    if let Some(&(Owner::Remote(o), slot)) = owners.first() {
        let Some(addr) = routing.addr(o) else {
            return Planned::Now(CLUSTERDOWN);
        };
        if session.redirects != Redirects::Forward {
            return Planned::Now(moved(&routing, session, slot, addr));
        }
        let req = for_owner(session, req);
        return Planned::Later(Pending::Remote {
            rx: node.peers.send_request(addr, session.proto, &req),
            req,
        });
    }
    if slots.iter().any(|&s| node.handoff.is_frozen(s)) {
        return Planned::Later(Pending::Frozen { req: req.clone() });
    }
    run_here(node, session, req)
}

/// Decides where a transaction runs (see above) and runs it here or forwards it.
/// `specs`: the commands' specs when the MULTI queue found them already.
pub fn plan_tx(
    node: &Node,
    session: &mut Session,
    cmds: Vec<Request>,
    specs: Option<Vec<multi::Resolved>>,
) -> Planned {
    let abort = |session: &mut Session, f: Frame| {
        multi::unwatch_all(node, &mut session.tx);
        Planned::Now(f)
    };
    if session
        .tx
        .watch
        .as_ref()
        .is_some_and(|w| w.watcher.is_dirty())
    {
        return abort(session, Frame::NullArray);
    }
    let remote = session.tx.remote.as_ref().filter(|r| r.active);
    if let Some(r) = remote {
        if session.tx.watch.is_some() {
            return abort(session, CROSSSLOT);
        }
        if r.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return abort(session, Frame::NullArray);
        }
        // Every key must be on the watching node; it checks its own ownership again. A
        // watched key that lives elsewhere now moved since WATCH: the watch is void.
        let routing = node.routing();
        let on_watch_node = |k: &[u8]| match routing.owner(key_slot(k)) {
            Owner::Remote(o) => routing.addr(o) == Some(r.conn.addr),
            _ => false,
        };
        if !r.keys.iter().all(|k| on_watch_node(k)) {
            return abort(session, Frame::NullArray);
        }
        let elsewhere = cmds.iter().any(|c| {
            crate::cmd::resolve_checked(c).is_ok_and(|(spec, _)| {
                spec.key_positions(c.len()).any(|i| {
                    let owner = routing.owner(key_slot(c.arg(i)));
                    let addr = match owner {
                        Owner::Remote(o) => routing.addr(o),
                        _ => None,
                    };
                    addr != Some(r.conn.addr)
                })
            })
        });
        if elsewhere {
            return abort(session, CROSSSLOT);
        }
        let addr = r.conn.addr;
        if let Some(denied) = tx_acl_denied(node, session, &cmds) {
            return abort(session, denied);
        }
        let req = for_owner(session, &multi::encode_multiexec(&cmds));
        let pending = relay(session, addr, &req, RelayKind::Exec);
        // The node forgets the watch with EXEC.
        if let Some(r) = session.tx.remote.as_mut() {
            r.active = false;
            r.keys.clear();
        }
        return match pending {
            Some(p) => Planned::Later(p),
            None => Planned::Now(Frame::NullArray),
        };
    }
    let _gate = node.handoff.gate.read();
    let routing = node.routing();
    if !routing.standalone {
        // Scripts' declared keys count too.
        let key_slots: Vec<u16> = cmds.iter().flat_map(request_slots).collect();
        let watched_elsewhere = session.tx.watch.as_ref().is_some_and(|w| {
            w.keys
                .iter()
                .any(|k| routing.owner(key_slot(k)) != Owner::Local)
        });
        if watched_elsewhere {
            return abort(session, Frame::NullArray);
        }
        let mut owners: Vec<(Owner, u16)> = Vec::new();
        for &s in &key_slots {
            let o = routing.owner(s);
            if !owners.iter().any(|(x, _)| *x == o) {
                owners.push((o, s));
            }
        }
        if session.redirects == Redirects::Redirect
            && key_slots.iter().any(|&s| Some(&s) != key_slots.first())
        {
            return abort(session, CROSSSLOT);
        }
        if owners.iter().any(|(o, _)| *o == Owner::Unassigned) {
            return abort(session, CLUSTERDOWN);
        }
        if owners.len() > 1 {
            return abort(session, CROSSSLOT);
        }
        if let Some(&(Owner::Remote(o), slot)) = owners.first() {
            let Some(addr) = routing.addr(o) else {
                return abort(session, CLUSTERDOWN);
            };
            if session.redirects != Redirects::Forward {
                let m = moved(&routing, session, slot, addr);
                return abort(session, m);
            }
            if session.tx.watch.is_some() {
                // Keys watched here, the transaction there: it could not be atomic.
                return abort(session, CROSSSLOT);
            }
            if let Some(denied) = tx_acl_denied(node, session, &cmds) {
                return abort(session, denied);
            }
            let req = for_owner(session, &multi::encode_multiexec(&cmds));
            return Planned::Later(Pending::Remote {
                rx: node.peers.send_request(addr, session.proto, &req),
                req,
            });
        }
        let frozen = match multi::tx_slots(&cmds, session.tx.watch.as_ref()) {
            Some(slots) => slots.iter().any(|&s| node.handoff.is_frozen(s)),
            None => node.handoff.any_frozen(),
        };
        if frozen {
            return Planned::Later(Pending::Tx { cmds });
        }
    }
    // The transaction's own lease check, before and after (its commands skip theirs).
    let leased = node.lease.enforced();
    if leased && !node.lease.check() {
        return Planned::Later(Pending::FencedTx { cmds });
    }
    let mut ctx = Ctx {
        node,
        session,
        now: now_ms(),
    };
    let reply = multi::run_tx(&mut ctx, &cmds, specs.as_deref());
    if leased && !node.lease.serving() {
        return Planned::Now(crate::lease::ERR_LEASE_LOST);
    }
    Planned::Now(reply)
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

// ---- requests that run as a client's user on another node ----
//
// A node checks a request against its client's user before forwarding it, and the owner runs
// what a peer sends without checking it again. That covers a request whose effects its
// arguments show; a script's (and a transaction's scripts') calls are known only when it
// runs. So a restricted user's EVAL/FCALL/transaction travels wrapped in the internal
// `CLUSTER ASUSER user cmd args...`, and the owner runs it as that user (users are the same
// on every node, see [`crate::sync`]): what the script calls is checked there as it would
// be here.

/// `req` as the client's user, when it must run as that user on the node it goes to.
fn for_owner(session: &Session, req: &Request) -> Request {
    if session.perms.is_none() {
        return req.clone();
    }
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"ASUSER", &session.user];
    args.extend(req.iter());
    Request::from_args(args)
}

/// The request a session plans itself: without the CLUSTER ASUSER wrapper when the session
/// already runs as the user it names (a client's, or a peer's inside [`Pending::AsUser`]).
fn unwrapped(session: &Session, req: &Request) -> Request {
    if session.checked() && is_as_user(req) {
        return Request::from_args(req.iter().skip(3));
    }
    req.clone()
}

fn is_as_user(req: &Request) -> bool {
    req.len() >= 4
        && req.arg(0).eq_ignore_ascii_case(b"cluster")
        && req.arg(1).eq_ignore_ascii_case(b"asuser")
}

/// Plans a peer's `CLUSTER ASUSER user cmd args...`: `cmd args...` as `user`. An unknown
/// user (deleted since) runs nothing.
fn plan_as_user(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Planned {
    let name = Bytes::copy_from_slice(req.arg(2));
    let Some(user) = node.acl.get(&name) else {
        return Planned::Now(Frame::err("ERR the user of this connection was deleted"));
    };
    let inner = Request::from_args(req.iter().skip(3));
    let saved = session.enter_user(name.clone(), user, node.acl.generation());
    let planned = plan_request(node, session, routing, &inner);
    session.leave_user(saved);
    match planned {
        Planned::Now(f) => Planned::Now(f),
        Planned::Later(p) => Planned::Later(Pending::AsUser {
            user: name,
            inner: Box::new(p),
        }),
    }
}

/// The client's permissions for `req`, checked before it may leave for another node (which
/// runs what a peer sends without checking it again): the denial, if any. Peer sessions
/// pass (the node they came from checked them).
fn acl_denied(node: &Node, session: &mut Session, req: &Request) -> Option<Frame> {
    if !session.checked()
        || (session.perms.is_none() && session.acl_generation == node.acl.generation())
    {
        return None;
    }
    let (id, resolved) = crate::cmd::resolve(req)?;
    crate::cmd::acl_gate(node, session, id, resolved, req, now_ms()).err()
}

/// A transaction's commands checked before it is forwarded whole (a user changed since
/// they were queued, or MULTIEXEC sent by a client): the first denial aborts it.
fn tx_acl_denied(node: &Node, session: &mut Session, cmds: &[Request]) -> Option<Frame> {
    let denied = cmds.iter().find_map(|c| acl_denied(node, session, c))?;
    let Frame::Error(e) = denied else {
        return Some(denied);
    };
    Some(Frame::error(format!(
        "EXECABORT Transaction discarded because of: {e}"
    )))
}

/// `-MOVED slot addr`, naming the owner's TLS port to a client on a TLS connection (never
/// to a peer: nodes route by client addresses).
fn moved(routing: &Routing, session: &Session, slot: u16, addr: SocketAddr) -> Frame {
    let addr = routing.client_facing(addr, session.tls && session.peer.is_none());
    Frame::error(format!("MOVED {slot} {addr}"))
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
    crate::blocking::serve_ready(node);
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
    let keys = positions
        .into_iter()
        .map(|i| bytes::Bytes::copy_from_slice(req.arg(i)));
    crate::tracking::forwarded(session, keys);
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
    if node.handoff.any_frozen()
        && matches!(r, Route::Local | Route::Split)
        && spec.keys_in(req).any(|i| {
            let s = key_slot(req.arg(i));
            routing.owner(s) == Owner::Local && node.handoff.is_frozen(s)
        })
    {
        return Planned::Later(Pending::Frozen { req: req.clone() });
    }
    if spec.name == "ssubscribe" {
        // A subscription lives on the connection: it cannot be forwarded, so every client is
        // sent to the slot's owner.
        match r {
            Route::Remote(o) => {
                let slot = key_slot(req.arg(1));
                return Planned::Now(
                    routing
                        .addr(o)
                        .map_or(CLUSTERDOWN, |a| moved(routing, session, slot, a)),
                );
            }
            Route::Split => return Planned::Now(CROSSSLOT),
            _ => {}
        }
    }
    match (r, mode) {
        (Route::Local, _) => run_here(node, session, req),
        (Route::Moved { slot, addr }, _) => Planned::Now(moved(routing, session, slot, addr)),
        (Route::Down, _) => Planned::Now(CLUSTERDOWN),
        (_, Redirects::Internal) => {
            // Send the forwarder to the owner of the first key that is not ours.
            let target =
                spec.keys_in(req)
                    .map(|i| key_slot(req.arg(i)))
                    .find_map(|s| match routing.owner(s) {
                        Owner::Remote(o) => routing.addr(o).map(|a| (s, a)),
                        _ => None,
                    });
            Planned::Now(target.map_or(CLUSTERDOWN, |(s, a)| moved(routing, session, s, a)))
        }
        (Route::CrossSlot, _) => Planned::Now(CROSSSLOT),
        // A watch lives in the session that set it: never over the shared connection.
        (Route::Remote(o), Redirects::Forward) if spec.name == "watch" => match routing.addr(o) {
            Some(addr) => plan_remote_watch(node, session, addr, req),
            None => Planned::Now(CLUSTERDOWN),
        },
        (Route::Remote(o), _) if session.tx.remote.is_some() => match routing.addr(o) {
            Some(addr) => match relay(session, addr, req, RelayKind::Command) {
                Some(p) => Planned::Later(p),
                None => Planned::Later(Pending::Remote {
                    req: req.clone(),
                    rx: node.peers.send_request(addr, session.proto, req),
                }),
            },
            None => Planned::Now(CLUSTERDOWN),
        },
        (Route::Remote(o), _) => match routing.addr(o) {
            Some(addr) if spec.has(crate::cmd::flags::BLOCKING) => {
                node.stats.forwarded_requests.add(1);
                Planned::Later(forward_blocking(node, session.proto, addr, req))
            }
            Some(addr) => {
                node.stats.forwarded_requests.add(1);
                Planned::Later(Pending::Remote {
                    req: req.clone(),
                    rx: node.peers.send_request(addr, session.proto, req),
                })
            }
            None => Planned::Now(CLUSTERDOWN),
        },
        // Its local share needs the lease; so the whole request waits for one.
        (Route::Split, _) if !node.lease.check() => {
            Planned::Later(Pending::Fenced { req: req.clone() })
        }
        (Route::Split, _) => Planned::Later(split(node, session, routing, req)),
    }
}

/// Splits a multi-key request by owner: the local share runs now, the others are forwarded.
fn split(node: &Node, session: &mut Session, routing: &Routing, req: &Request) -> Pending {
    let name = req.arg(0);
    let pairs = name.eq_ignore_ascii_case(b"mset");
    let step = if pairs { 2 } else { 1 };
    // PFCOUNT's share on each owner is the HyperLogLogs themselves, counted together in merge.
    let sub_name: &[u8] = if name.eq_ignore_ascii_case(b"pfcount") {
        b"MGET"
    } else {
        name
    };
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
            let mut args: Vec<&[u8]> = vec![sub_name];
            for &i in &positions {
                args.push(req.arg(i));
                if pairs {
                    args.push(req.arg(i + 1));
                }
            }
            let sub = Request::from_args(args);
            match owner {
                Owner::Local => {
                    let reply = run_local(node, session, &sub);
                    // Lost since the check above: its refusal is this share's answer.
                    session.fenced = false;
                    Part::Done { reply, positions }
                }
                Owner::Remote(o) => match routing.addr(o) {
                    Some(addr) => {
                        node.stats.forwarded_requests.add(1);
                        Part::Remote {
                            rx: node.peers.send_request(addr, session.proto, &sub),
                            sub,
                            positions,
                        }
                    }
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
    mut req: Request,
    first: Option<oneshot::Receiver<PeerReply>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send + 'a>> {
    Box::pin(async move {
        let proto = session.proto;
        let started = tokio::time::Instant::now();
        let mut answered = Duration::ZERO;
        let mut rx = first;
        let mut redirect: Option<SocketAddr> = None;
        let mut last_err = String::new();
        let mut hops = 0u32;
        let mut failures = 0u32;
        while retry_allowed(started.elapsed(), answered) {
            let waiting = match rx.take() {
                Some(rx) => rx,
                None => {
                    if let Some(addr) = redirect.take() {
                        node.peers.send_request(addr, proto, &req)
                    } else {
                        let routing = node.routing();
                        // `req` is what goes to other nodes: a restricted user's script
                        // wrapped in CLUSTER ASUSER. Here it is planned as the client's
                        // request, under the session's own identity.
                        let here = unwrapped(session, &req);
                        match plan(node, session, &routing, &here) {
                            // A subscription's confirmation went to the outbox.
                            Planned::Now(_) if std::mem::take(&mut session.no_reply) => {
                                return Bytes::new()
                            }
                            Planned::Now(f) => return encoded(&f, proto),
                            Planned::Later(Pending::Remote { rx, req: sent }) => {
                                req = sent;
                                rx
                            }
                            Planned::Later(
                                p @ (Pending::Split { .. }
                                | Pending::Frozen { .. }
                                | Pending::Tx { .. }
                                | Pending::Relay { .. }
                                | Pending::Task(_)
                                | Pending::Fenced { .. }
                                | Pending::FencedTx { .. }
                                | Pending::LeaseLost { .. }
                                | Pending::Blocked(_)
                                | Pending::AsUser { .. }
                                | Pending::RemoteBlocked { .. }),
                            ) => {
                                return Box::pin(resolve_one(node, session, p)).await;
                            }
                        }
                    }
                }
            };
            let asked = tokio::time::Instant::now();
            let reply = waiting.await;
            if matches!(reply, Ok(Ok(_))) {
                answered += asked.elapsed();
            }
            match reply {
                Ok(Ok(bytes)) if no_lease(&bytes) => {
                    // The owner refused without doing anything (it holds no lease): perhaps
                    // its slots have moved by now. Plan again after a pause.
                    last_err = String::from_utf8_lossy(&bytes).trim().to_string();
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Ok(bytes)) => match moved_target(&bytes) {
                    None => {
                        // EVALSHA reached an owner without the script, but the client
                        // loaded it here (redis-py's Script: EVALSHA, then SCRIPT LOAD and
                        // EVALSHA again through the same node): send the body, which the
                        // owner then caches.
                        if bytes.starts_with(b"-NOSCRIPT") {
                            if let Some(eval) = evalsha_as_eval(node, &req) {
                                req = eval;
                                continue;
                            }
                        }
                        return bytes;
                    }
                    Some(addr) => {
                        last_err = String::from_utf8_lossy(&bytes).trim().to_string();
                        hops += 1;
                        tracing::trace!(me = %node.advertised_addr(), to = %addr, hops, "forwarded request redirected");
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
        let routing = node.routing();
        tracing::debug!(
            me = %node.advertised_addr(),
            epoch = routing.epoch,
            hops,
            failures,
            owners = ?req.iter().skip(1).take(1).map(|k| {
                let s = key_slot(k);
                (s, routing.owner(s), routing.owner_id(s).map(str::to_string))
            }).collect::<Vec<_>>(),
            last = %last_err,
            "forwarded request gave up"
        );
        encoded(
            &Frame::error(format!(
                "TRYAGAIN could not reach the slot owner: {last_err}"
            )),
            proto,
        )
    })
}

/// EVALSHA (`_RO`) as EVAL (`_RO`) with the body this node has cached for its sha.
fn evalsha_as_eval(node: &Node, req: &Request) -> Option<Request> {
    let name = match req.arg(0) {
        n if n.eq_ignore_ascii_case(b"evalsha") => &b"EVAL"[..],
        n if n.eq_ignore_ascii_case(b"evalsha_ro") => &b"EVAL_RO"[..],
        _ => return None,
    };
    if req.len() < 3 {
        return None;
    }
    let body = node.scripting.script_body(req.arg(1))?;
    let mut args: Vec<&[u8]> = Vec::with_capacity(req.len());
    args.push(name);
    args.push(&body);
    args.extend(req.iter().skip(2));
    Some(Request::from_args(args))
}

/// Whether an owner's reply is [`crate::lease::ERR_NO_LEASE`].
fn no_lease(reply: &[u8]) -> bool {
    let Frame::Error(text) = &crate::lease::ERR_NO_LEASE else {
        return false;
    };
    reply.first() == Some(&b'-') && reply[1..].starts_with(text.as_bytes())
}

/// Waits (at most [`crate::lease::WAIT_BUDGET`]) until this node holds its lease again, or
/// none of `slots` is its own any more (a new table sent them elsewhere). False when the
/// wait ran out.
async fn wait_for_lease(node: &Arc<Node>, slots: &[u16]) -> bool {
    let mut renewals = node.lease.watch_renewals();
    let deadline = tokio::time::Instant::now() + crate::lease::WAIT_BUDGET;
    loop {
        if node.lease.check() {
            return true;
        }
        if !slots.is_empty() {
            let routing = node.routing();
            if slots.iter().all(|&s| routing.owner(s) != Owner::Local) {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Renewals wake it; a new table is noticed at the next poll.
        let _ = tokio::time::timeout(Duration::from_millis(20), renewals.changed()).await;
    }
}

/// Waits (at most [`crate::lease::LOST_WAIT`]) for this node to hold its lease again with no
/// drop of its slots since `resets`: then a command that ran while the lease ran out stands.
async fn renewed_since(node: &Arc<Node>, resets: u64) -> bool {
    let mut renewals = node.lease.watch_renewals();
    let deadline = tokio::time::Instant::now() + crate::lease::LOST_WAIT;
    loop {
        if node.lease.resets() != resets {
            return false;
        }
        if node.lease.check() {
            return node.lease.resets() == resets;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), renewals.changed()).await;
    }
}

/// Quick re-routes of a blocking command in a row (redirects, lost connections) before the
/// client gets `-TRYAGAIN`; a wait that lasted starts the count again.
const BLOCKING_HOPS: u32 = 50;

/// Waits for a blocking command, here or on its owner, and runs it again where its keys
/// are whenever their slot moves (see [`crate::blocking`]): with the time left of its
/// timeout, forwarded to the new owner, or answered `-MOVED` on a cluster-aware
/// connection. Returns the encoded reply.
async fn resolve_blocking(node: &Arc<Node>, session: &mut Session, first: Pending) -> Bytes {
    let proto = session.proto;
    let mut p = first;
    let mut hops = 0u32;
    loop {
        let started = std::time::Instant::now();
        let again = match p {
            Pending::Blocked(mut b) => match b.wait().await {
                crate::blocking::Wake::Reply(f) => return encoded(&f, proto),
                crate::blocking::Wake::Moved => b.request_again(),
            },
            Pending::RemoteBlocked {
                req,
                addr,
                conn,
                id,
                rx,
            } => {
                // Counted as blocked here while it waits there; CLIENT UNBLOCK here
                // unblocks it there by its id on that connection.
                let guard = match id.await {
                    Ok(Ok(b)) => match parse_reply(&b) {
                        Ok(Some((Frame::Integer(peer_client_id), _))) => {
                            Some(node.blocking.remote_blocked(
                                &session.client,
                                crate::blocking::RemoteBlocked {
                                    addr,
                                    peer_client_id,
                                },
                            ))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let reply = rx.await;
                drop(guard);
                drop(conn);
                let again = crate::blocking::with_remaining_timeout(&req, started.elapsed());
                match reply {
                    Ok(Ok(bytes)) => match moved_target(&bytes) {
                        None => return bytes,
                        Some(to) if to != node.advertised_addr() => {
                            // Follow the redirect: the node that had the slot knows where
                            // it went, even while our own table lags.
                            hops = if started.elapsed() > Duration::from_secs(1) {
                                0
                            } else {
                                hops + 1
                            };
                            if hops > BLOCKING_HOPS {
                                return encoded(&blocking_tryagain(), proto);
                            }
                            if hops.is_multiple_of(4) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            p = forward_blocking(node, proto, to, &again);
                            continue;
                        }
                        Some(_) => again,
                    },
                    _ => {
                        tokio::time::sleep(Duration::from_millis(10u64 << hops.min(5))).await;
                        again
                    }
                }
            }
            other => return resolve_one(node, session, other).await,
        };
        hops = if started.elapsed() > Duration::from_secs(1) {
            0
        } else {
            hops + 1
        };
        if hops > BLOCKING_HOPS {
            return encoded(&blocking_tryagain(), proto);
        }
        let routing = node.routing();
        p = match plan(node, session, &routing, &again) {
            Planned::Now(f) => return encoded(&f, proto),
            Planned::Later(p) if p.blocks() => p,
            Planned::Later(p) => return Box::pin(resolve_one(node, session, p)).await,
        };
    }
}

fn blocking_tryagain() -> Frame {
    Frame::err("TRYAGAIN the keys' slot kept moving while the command was blocked")
}

/// Waits until none of `req`'s slots is frozen (bounded; the request is planned again
/// afterwards either way).
async fn wait_unfrozen(node: &Arc<Node>, req: &Request) {
    let slots = request_slots(req);
    let frozen = || slots.iter().any(|&s| node.handoff.is_frozen(s));
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
    let pfcount = name.eq_ignore_ascii_case(b"pfcount");
    if name.eq_ignore_ascii_case(b"mget") || pfcount {
        let mut out = vec![Frame::Null; req.len() - 1];
        for (positions, f) in parts {
            if let Frame::Array(items) = f {
                for (p, item) in positions.into_iter().zip(items) {
                    out[p - 1] = item;
                }
            }
        }
        if pfcount {
            return crate::cmd::hll::count_union(&out);
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
            crate::blocking::serve_ready(node);
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
            if renewed_since(node, resets).await {
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

/// Bytes of replies a connection may hold while forwarded ones are on their way: the local
/// replies queued behind them plus the forwarded ones (estimated from the largest forwarded
/// reply it has had). Past it the connection stops parsing, waits for them, writes what it
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
    /// A blocking command is among them.
    blocks: bool,
    /// Replies still on their way.
    waiting: usize,
    /// Bytes of the ready replies queued between them.
    ready: usize,
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
            self.ready = self.ready.saturating_add(out.len());
            self.items.push(Item::Ready(out.split().freeze()));
        }
        self.blocks |= p.blocks();
        self.items.push(Item::Waiting(p));
        self.waiting += 1;
    }

    /// Whether the replies on their way must be resolved and written before more requests
    /// are planned (see [`FORWARDED_BUDGET`]); `tail` is what was encoded after the last of
    /// them. Never while none is on its way.
    pub fn over_budget(&self, tail: usize) -> bool {
        // A blocking command's wait is handled by the connection on its own (it stops
        // planning after it anyway).
        if self.waiting == 0 || self.blocks {
            return false;
        }
        let each = self.largest.unwrap_or(FIRST_REPLY_GUESS).max(64);
        let held = self
            .waiting
            .saturating_mul(each)
            .saturating_add(self.ready)
            .saturating_add(tail);
        self.waiting >= MAX_FORWARDED || held >= FORWARDED_BUDGET
    }

    /// Whether a blocking command is waiting among these replies.
    pub fn blocks(&self) -> bool {
        self.blocks
    }

    /// Takes the last reply out when it is a blocking command's (so that the replies
    /// before it can be sent first).
    pub fn take_blocking(&mut self) -> Option<Pending> {
        match self.items.last() {
            Some(Item::Waiting(p)) if p.blocks() => {}
            _ => return None,
        }
        self.blocks = false;
        match self.items.pop() {
            Some(Item::Waiting(p)) => {
                self.waiting -= 1;
                Some(p)
            }
            _ => None,
        }
    }

    /// Resolves everything in order into `out`.
    pub async fn resolve_into(
        &mut self,
        node: &Arc<Node>,
        session: &mut Session,
        out: &mut BytesMut,
    ) {
        let tail = out.split();
        self.blocks = false;
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
        self.ready = 0;
        self.largest = largest;
        out.extend_from_slice(&tail);
    }
}

#[cfg(test)]
mod tests;
