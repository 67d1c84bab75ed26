//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis's semantics.
//!
//! After MULTI a connection queues its commands (`+QUEUED`). Errors found while queuing
//! (unknown command, wrong arity, NOAUTH, OOM, in a cluster `-MOVED`/`-CROSSSLOT` for
//! cluster-aware connections) are replied at once and make EXEC fail with `-EXECABORT`;
//! errors a command meets while running are that command's reply inside EXEC's array.
//!
//! **Atomicity.** EXEC locks the slots of every key of every queued command (from the
//! table's key positions; every slot when a command works on the whole keyspace or the
//! server, like FLUSHALL or CONFIG) in ascending slot order with [`Db::lock_tx`], then runs
//! the commands through the ordinary dispatcher. Handlers lock their keys as usual and get
//! the transaction's guards back (`Db::lock` sees the thread's held slots), so no handler
//! knows about transactions and plain GET/SET pay one thread-local load. No other
//! connection, on any thread, can see or change those slots until EXEC has finished. In a
//! cluster, EXEC runs under the handoff gate and waits while any of its slots is frozen,
//! so a handoff never splits a transaction (see `exec::plan_tx`).
//!
//! **WATCH** registers a [`Watcher`] under each key in the store (under the slot's lock);
//! the store's one "key modified" signal ([`crate::store::watch`]) marks it dirty on any
//! change: a write from any connection, expiry, eviction, FLUSHALL, the slot handed over.
//!
//! `MULTIEXEC` is internal: a whole transaction in one request (`MULTIEXEC n arg1..argn n
//! ...`), which a node sends to the node that owns all of a plain connection's transaction.

use super::{
    flags::*, is, resolve_checked, run_command, spec, CommandSpec, Ctx, Reply, ERR_OOM, NO_KEYS,
};
use crate::node::Node;
use crate::resp::{Frame, Request};
use crate::store::{Db, Watcher};
use bytes::Bytes;
use chkv_common::key_slot;
use std::collections::HashSet;
use std::sync::Arc;

const G: &str = "transactions";

#[rustfmt::skip]
pub static COMMANDS: [CommandSpec; 6] = [
    spec("multi", 1, NOSCRIPT | LOADING | STALE | FAST, NO_KEYS, G, "1.2.0",
        "Starts a transaction.", "", multi),
    spec("exec", 1, NOSCRIPT | LOADING | STALE, NO_KEYS, G, "1.2.0",
        "Executes all commands in a transaction.", "", exec),
    spec("discard", 1, NOSCRIPT | LOADING | STALE | FAST, NO_KEYS, G, "2.0.0",
        "Discards a transaction.", "", discard),
    spec("watch", -2, NOSCRIPT | LOADING | STALE | FAST, (1, -1, 1), G, "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.", "key [key ...]",
        watch),
    spec("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST, NO_KEYS, G, "2.2.0",
        "Forgets about watched keys of a transaction.", "", unwatch),
    spec("multiexec", -2, NOSCRIPT | LOADING | STALE, NO_KEYS, G, "7.2.4",
        "Internal: runs a whole transaction (`n arg..` per command) as EXEC would.",
        "numargs arg [arg ...] [numargs arg [arg ...] ...]", multiexec),
];

pub const ERR_EXECABORT: Frame =
    Frame::err("EXECABORT Transaction discarded because of previous errors.");
const ERR_NOT_IN_TX: Frame = Frame::err("ERR Command not allowed inside a transaction");
/// Queued commands beyond this many bytes make the transaction fail (a bound on a queue
/// that grows with what the client sends).
const MAX_QUEUE_BYTES: usize = 512 * 1024 * 1024;
const MAX_QUEUE_LEN: usize = 1 << 20;
const MAX_WATCHED: usize = 1 << 20;

/// A connection's transaction state.
#[derive(Default)]
pub struct TxState {
    /// `Some` between MULTI and EXEC/DISCARD.
    pub queue: Option<Queue>,
    /// The keys this connection WATCHes, if any.
    pub watch: Option<Watching>,
    /// Set while EXEC runs the queued commands.
    pub running: bool,
    /// In a cluster, on a plain connection: the watch held on the node that owns the watched
    /// keys, over a connection of this session's own (see `exec::plan_remote_watch`).
    pub remote: Option<RemoteWatch>,
    /// What the connection's last transaction left for its next (see [`TxState::recycle`]).
    spare: Spare,
}

/// A finished transaction's allocations, kept for the connection's next MULTI: its queue's
/// emptied vectors and a few small request copies to queue into. A client that sends
/// MULTI/.../EXEC again and again then allocates nothing to queue its commands.
#[derive(Default)]
struct Spare {
    cmds: Vec<Request>,
    specs: Vec<Option<Resolved>>,
    requests: Vec<Request>,
}

impl Spare {
    /// A copy of `req` to queue, made in a finished transaction's request when one is kept.
    fn copy(&mut self, req: &Request) -> Request {
        match self.requests.pop() {
            Some(mut r) => {
                r.clone_from(req);
                r
            }
            None => req.clone(),
        }
    }
}

/// At most this many commands' room is kept from one transaction for the next, and this
/// many request copies (each small, see [`Request::reusable`]): at most a few kilobytes a
/// connection, whatever its transactions were.
const SPARE_COMMANDS: usize = 8;
const SPARE_REQUESTS: usize = 4;

/// A WATCH held on another node for a plain connection.
pub struct RemoteWatch {
    pub conn: crate::peer::PeerConn,
    /// Whether keys are watched there now (EXEC and UNWATCH end it).
    pub active: bool,
    /// The keys watched there (while `active`).
    pub keys: Vec<Bytes>,
    /// Set when the watch cannot be trusted any more (the node answered `-MOVED`, or the
    /// connection failed): the next EXEC aborts.
    pub dirty: Arc<std::sync::atomic::AtomicBool>,
}

/// Commands queued after MULTI.
#[derive(Default)]
pub struct Queue {
    pub cmds: Vec<Request>,
    /// Each queued command's spec and id, as [`super::resolve_for`] found them when it was
    /// queued, so EXEC does not look the commands up again (always `Some`: the type is the
    /// one [`run_tx`] takes, which finds them itself otherwise).
    pub specs: Vec<Option<Resolved>>,
    bytes: usize,
    /// An error while queuing: EXEC fails with `-EXECABORT`.
    pub aborted: bool,
}

/// A command's spec and its id (for INFO commandstats and CLIENT LIST).
pub type Resolved = (&'static CommandSpec, u32);

/// A connection's watch: one [`Watcher`] registered under every watched key.
pub struct Watching {
    pub watcher: Arc<Watcher>,
    pub keys: Vec<Bytes>,
    seen: HashSet<Bytes>,
}

impl TxState {
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// MULTI: an empty queue, in the last transaction's vectors.
    fn begin(&mut self) {
        self.queue = Some(Queue {
            cmds: std::mem::take(&mut self.spare.cmds),
            specs: std::mem::take(&mut self.spare.specs),
            bytes: 0,
            aborted: false,
        });
    }

    /// Takes back a transaction's queue once it ran (or was discarded): small vectors are
    /// kept emptied for the next MULTI, and a few small requests to copy into.
    pub fn recycle(&mut self, mut cmds: Vec<Request>, specs: Option<Vec<Option<Resolved>>>) {
        if cmds.capacity() <= SPARE_COMMANDS {
            for r in cmds.drain(..) {
                if self.spare.requests.len() < SPARE_REQUESTS && r.reusable() {
                    self.spare.requests.push(r);
                }
            }
            self.spare.cmds = cmds;
        }
        if let Some(mut specs) = specs.filter(|s| s.capacity() <= SPARE_COMMANDS) {
            specs.clear();
            self.spare.specs = specs;
        }
    }

    /// Makes the next EXEC fail with `-EXECABORT`.
    pub fn flag(&mut self) {
        if let Some(q) = self.queue.as_mut() {
            q.aborted = true;
        }
    }
}

/// Whether `name` is one of the commands that run at once inside MULTI instead of queuing.
fn runs_in_multi(name: &str) -> bool {
    matches!(name, "exec" | "discard" | "multi" | "watch" | "quit")
}

/// A request from a connection inside MULTI: queued, or run at once (EXEC, DISCARD...).
pub fn in_multi(ctx: &mut Ctx<'_>, req: &Request) -> Frame {
    let (spec, cmd_id) = match super::resolve_for(ctx.session, req) {
        Ok(r) => r,
        Err(e) => {
            ctx.session.tx.flag();
            return e;
        }
    };
    let top = super::table()[(cmd_id & 0xffff) as usize].name;
    if runs_in_multi(top) {
        return run_command(ctx, req);
    }
    if let Err(e) = check_queueable(ctx, spec) {
        ctx.session.tx.flag();
        return e;
    }
    // Permissions are checked when a command is queued, as in Redis (and again before a
    // transaction leaves for another node).
    if !spec.has(NO_AUTH) && ctx.session.checked() {
        if let Err(e) = super::acl_gate(ctx.node, ctx.session, cmd_id, spec, req, ctx.now) {
            ctx.session.tx.flag();
            return e;
        }
    }
    let size = req.iter().map(|a| a.len() + 16).sum::<usize>();
    let Some(q) = ctx.session.tx.queue.as_mut() else {
        return run_command(ctx, req);
    };
    if q.cmds.len() >= MAX_QUEUE_LEN || q.bytes.saturating_add(size) > MAX_QUEUE_BYTES {
        q.aborted = true;
        return Frame::err("ERR transaction too large");
    }
    q.bytes += size;
    q.specs.push(Some((spec, cmd_id)));
    q.cmds.push(ctx.session.tx.spare.copy(req));
    Frame::simple("QUEUED")
}

/// The checks Redis makes before queuing a command (its arity was checked already).
fn check_queueable(ctx: &mut Ctx<'_>, spec: &CommandSpec) -> Result<(), Frame> {
    if !ctx.session.authenticated && !spec.has(NO_AUTH) {
        return Err(Frame::err("NOAUTH Authentication required."));
    }
    if spec.name == "multiexec" {
        return Err(ERR_NOT_IN_TX);
    }
    if spec.has(DENYOOM) && ctx.node.db.make_room(ctx.now).is_err() {
        return Err(ERR_OOM);
    }
    Ok(())
}

fn multi(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    if ctx.session.tx.in_multi() {
        return Err(Frame::err("ERR MULTI calls can not be nested"));
    }
    ctx.session.tx.begin();
    Ok(Frame::ok())
}

fn discard(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let Some(q) = ctx.session.tx.queue.take() else {
        return Err(Frame::err("ERR DISCARD without MULTI"));
    };
    ctx.session.tx.recycle(q.cmds, Some(q.specs));
    unwatch_all(ctx.node, &mut ctx.session.tx);
    Ok(Frame::ok())
}

fn exec(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let Some(q) = ctx.session.tx.queue.take() else {
        return Err(Frame::err("ERR EXEC without MULTI"));
    };
    if q.aborted {
        unwatch_all(ctx.node, &mut ctx.session.tx);
        return Err(ERR_EXECABORT);
    }
    let reply = run_tx(ctx, &q.cmds, Some(&q.specs));
    ctx.session.tx.recycle(q.cmds, Some(q.specs));
    Ok(reply)
}

fn watch(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if ctx.session.tx.in_multi() {
        return Err(Frame::err("ERR WATCH inside MULTI is not allowed"));
    }
    let w = ctx.session.tx.watch.get_or_insert_with(|| Watching {
        watcher: Watcher::new(),
        keys: Vec::new(),
        seen: HashSet::new(),
    });
    for key in req.iter().skip(1) {
        if w.keys.len() >= MAX_WATCHED {
            return Err(Frame::err("ERR too many watched keys"));
        }
        if w.seen.contains(key) {
            continue;
        }
        ctx.node.db.lock_key(key).watch(key, &w.watcher, ctx.now);
        let key = Bytes::copy_from_slice(key);
        w.seen.insert(key.clone());
        w.keys.push(key);
    }
    Ok(Frame::ok())
}

fn unwatch(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    unwatch_all(ctx.node, &mut ctx.session.tx);
    Ok(Frame::ok())
}

/// Forgets every watched key of the connection (EXEC, DISCARD, UNWATCH, disconnect).
pub fn unwatch_all(node: &Node, tx: &mut TxState) {
    if let Some(r) = tx.remote.as_mut() {
        if r.active {
            // The reply is not awaited: the connection is pipelined, so the next request on
            // it is read after the UNWATCH.
            drop(r.conn.send_request(&Request::from_args(["UNWATCH"])));
            r.active = false;
            r.keys.clear();
        }
    }
    if let Some(w) = tx.watch.take() {
        for key in &w.keys {
            node.db.lock_key(key).unwatch(key, &w.watcher);
        }
    }
}

/// The internal whole-transaction request: `MULTIEXEC n arg.. n arg..`.
pub fn encode_multiexec(cmds: &[Request]) -> Request {
    let mut args: Vec<Vec<u8>> = vec![b"MULTIEXEC".to_vec()];
    for c in cmds {
        args.push(c.len().to_string().into_bytes());
        args.extend(c.iter().map(|a| a.to_vec()));
    }
    Request::from_args(args)
}

/// The commands inside a MULTIEXEC request, or a syntax error.
pub fn decode_multiexec(req: &Request) -> Result<Vec<Request>, Frame> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < req.len() {
        let n = super::parse_i64(req.arg(i))
            .filter(|&n| n >= 1)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(super::ERR_SYNTAX)?;
        let end = i
            .checked_add(1)
            .and_then(|s| s.checked_add(n))
            .filter(|&e| e <= req.len())
            .ok_or(super::ERR_SYNTAX)?;
        out.push(Request::from_args((i + 1..end).map(|j| req.arg(j))));
        i = end;
    }
    Ok(out)
}

fn multiexec(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if ctx.session.tx.in_multi() {
        return Err(ERR_NOT_IN_TX);
    }
    let cmds = decode_multiexec(req)?;
    for c in &cmds {
        let checked = resolve_checked(c).and_then(|(spec, _)| {
            if runs_in_multi(spec.name) {
                Err(ERR_NOT_IN_TX)
            } else {
                check_queueable(ctx, spec)
            }
        });
        if checked.is_err() {
            unwatch_all(ctx.node, &mut ctx.session.tx);
            return Err(ERR_EXECABORT);
        }
    }
    Ok(run_tx(ctx, &cmds, None))
}

/// The slots a transaction must hold: every slot of its commands' keys and of the watched
/// keys, or `None` for every slot when a command works beyond its keys (the keyspace, the
/// server).
/// Whether a SORT has a BY or GET pattern (which may name keys of any slot).
fn sort_reaches_out(c: &Request) -> bool {
    (2..c.len().saturating_sub(1)).any(|i| {
        let (opt, p) = (c.arg(i), c.arg(i + 1));
        (is(opt, "BY") || is(opt, "GET")) && p.contains(&b'*')
    })
}

pub fn tx_slots(cmds: &[Request], watch: Option<&Watching>) -> Option<Vec<u16>> {
    let specs: Vec<_> = cmds.iter().map(|c| resolve_checked(c).ok()).collect();
    tx_slots_resolved(cmds, &specs, watch)
}

/// [`tx_slots`] with each command's spec found already (`None`: it fails to resolve).
fn tx_slots_resolved(
    cmds: &[Request],
    specs: &[Option<(&'static CommandSpec, u32)>],
    watch: Option<&Watching>,
) -> Option<Vec<u16>> {
    let mut slots = Vec::new();
    for (c, resolved) in cmds.iter().zip(specs) {
        let Some((spec, _)) = *resolved else {
            continue;
        };
        if spec.first_key <= 0 {
            // A script's keys are only known to it: hold everything.
            if spec.has(KEYSPACE)
                || spec.has(ADMIN)
                || spec.has(WRITE)
                || crate::lua::is_script_command(spec.name)
            {
                return None;
            }
            continue;
        }
        if spec.has(SORT_STORE) && sort_reaches_out(c) {
            // SORT BY/GET patterns read keys of any slot: hold them all.
            return None;
        }
        slots.extend(spec.keys_in(c).map(|i| key_slot(c.arg(i))));
    }
    if let Some(w) = watch {
        slots.extend(w.keys.iter().map(|k| key_slot(k)));
    }
    Some(slots)
}

/// Runs a transaction's commands atomically and forgets the connection's watch: the array
/// of their replies, a null array when a watched key changed, or `-EXECABORT` when memory
/// is short for a command that needs it. `specs`: each command's spec, when the queue found
/// them already (`None`: they are looked up here).
pub fn run_tx(ctx: &mut Ctx<'_>, cmds: &[Request], specs: Option<&[Option<Resolved>]>) -> Frame {
    let watch = ctx.session.tx.watch.take();
    let reply = run_tx_watched(ctx, cmds, specs, watch.as_ref());
    if let Some(w) = watch {
        ctx.session.tx.watch = Some(w);
        unwatch_all(ctx.node, &mut ctx.session.tx);
    }
    reply
}

fn run_tx_watched(
    ctx: &mut Ctx<'_>,
    cmds: &[Request],
    specs: Option<&[Option<Resolved>]>,
    watch: Option<&Watching>,
) -> Frame {
    if watch.is_some_and(|w| w.watcher.is_dirty()) {
        return Frame::NullArray;
    }
    // Like Redis: a transaction with a command that may use memory is refused as a whole
    // when memory cannot be made; eviction runs here, before the locks are taken.
    // Each command is looked up once (when queued, or here) and run with what was found.
    let found: Vec<Option<Resolved>>;
    let specs: &[Option<Resolved>] = match specs {
        Some(s) if s.len() == cmds.len() => s,
        _ => {
            found = cmds
                .iter()
                .map(|c| super::resolve_for(ctx.session, c).ok())
                .collect();
            &found
        }
    };
    let any = |flag| specs.iter().any(|r| r.is_some_and(|(s, _)| s.has(flag)));
    let needs_memory = any(DENYOOM);
    if needs_memory && !Db::in_tx() && ctx.node.db.make_room(ctx.now).is_err() {
        let Frame::Error(e) = ERR_OOM else {
            unreachable!()
        };
        return Frame::error(format!("EXECABORT Transaction discarded because of: {e}"));
    }
    let writes = any(WRITE);
    if writes
        && !Db::in_tx()
        && ctx
            .node
            .min_replicas_to_write
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    {
        return Frame::err(
            "EXECABORT Transaction discarded because of: NOREPLICAS Not enough good replicas to write.",
        );
    }
    let _lock = ctx.node.db.lock_tx(tx_slots_resolved(cmds, specs, watch));
    if let Some(w) = watch {
        let now = ctx.now;
        let expired = w.keys.iter().any(|k| {
            ctx.node
                .db
                .lock_key(k)
                .watched_key_expired(k, &w.watcher, now)
        });
        if expired || w.watcher.is_dirty() {
            return Frame::NullArray;
        }
    }
    let was_running = std::mem::replace(&mut ctx.session.tx.running, true);
    let replies = cmds
        .iter()
        .zip(specs)
        .map(|(c, resolved)| match *resolved {
            Some((spec, id)) => super::run_command_resolved(ctx, c, spec, id),
            None => run_command(ctx, c),
        })
        .collect();
    ctx.session.tx.running = was_running;
    Frame::Array(replies)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn simple(s: &'static str) -> Frame {
        Frame::simple(s)
    }

    #[test]
    fn queue_and_exec() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["multi"]), Frame::ok());
        assert_eq!(h.run(&["set", "a", "1"]), simple("QUEUED"));
        assert_eq!(h.run(&["incr", "a"]), simple("QUEUED"));
        assert_eq!(h.run(&["get", "a"]), simple("QUEUED"));
        assert_eq!(
            h.run(&["exec"]),
            Frame::Array(vec![Frame::ok(), int(2), bulk("2")])
        );
        assert_eq!(h.run(&["exec"]), err("ERR EXEC without MULTI"));
        assert_eq!(h.run(&["discard"]), err("ERR DISCARD without MULTI"));
    }

    #[test]
    fn runtime_errors_are_per_command() {
        let mut h = Harness::new();
        h.run(&["set", "s", "x"]);
        h.run(&["multi"]);
        h.run(&["incr", "s"]);
        h.run(&["set", "b", "1"]);
        assert_eq!(
            h.run(&["exec"]),
            Frame::Array(vec![
                err("ERR value is not an integer or out of range"),
                Frame::ok()
            ])
        );
        assert_eq!(h.run(&["get", "b"]), bulk("1"));
    }

    #[test]
    fn queue_errors_abort() {
        let mut h = Harness::new();
        h.run(&["multi"]);
        h.run(&["set", "a", "1"]);
        assert!(h.run(&["nope"]).is_error());
        assert_eq!(
            h.run(&["get"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(h.run(&["exec"]), ERR_EXECABORT);
        assert_eq!(h.run(&["get", "a"]), Frame::Null);
        // Nested MULTI and WATCH inside MULTI are errors that do not abort.
        h.run(&["multi"]);
        assert_eq!(h.run(&["multi"]), err("ERR MULTI calls can not be nested"));
        assert_eq!(
            h.run(&["watch", "x"]),
            err("ERR WATCH inside MULTI is not allowed")
        );
        h.run(&["set", "a", "2"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![Frame::ok()]));
    }

    #[test]
    fn discard_forgets_queue_and_watch() {
        let mut h = Harness::new();
        h.run(&["watch", "x"]);
        h.run(&["set", "x", "10"]);
        h.run(&["multi"]);
        h.run(&["set", "x", "1"]);
        assert_eq!(h.run(&["discard"]), Frame::ok());
        assert_eq!(h.run(&["get", "x"]), bulk("10"));
        h.run(&["multi"]);
        h.run(&["incr", "x"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![int(11)]));
    }

    /// A connection's next transaction queues into what its last one left: the queue's
    /// vectors and its request copies (no allocation to queue a command), and the results
    /// are those of fresh copies. A large transaction leaves nothing behind.
    #[test]
    fn a_transaction_queues_into_the_last_ones_allocations() {
        let mut h = Harness::new();
        h.run(&["multi"]);
        h.run(&["set", "a", "1"]);
        h.run(&["incr", "counter"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![Frame::ok(), int(1)]));
        let spare = &h.session.tx.spare;
        assert_eq!((spare.requests.len(), spare.cmds.len()), (2, 0));
        let kept: Vec<*const u8> = spare.requests.iter().map(|r| r.arg(0).as_ptr()).collect();
        let room = spare.cmds.capacity();
        h.run(&["multi"]);
        h.run(&["incrby", "counter", "5"]);
        h.run(&["get", "a"]);
        let q = h.session.tx.queue.as_ref().expect("in MULTI");
        assert_eq!(q.cmds.capacity(), room, "the last queue's vector");
        let used: Vec<*const u8> = q.cmds.iter().map(|r| r.arg(0).as_ptr()).collect();
        assert_eq!(used, [kept[1], kept[0]], "copied into the kept requests");
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![int(6), bulk("1")]));
        // DISCARD gives its queue back too.
        h.run(&["multi"]);
        h.run(&["set", "a", "2"]);
        assert_eq!(h.run(&["discard"]), Frame::ok());
        assert_eq!(h.session.tx.spare.requests.len(), 2);
        assert_eq!(h.run(&["get", "a"]), bulk("1"));
        // A transaction larger than what is kept leaves no vectors behind, and the requests
        // kept stay few.
        h.run(&["multi"]);
        for i in 0..2 * SPARE_COMMANDS {
            h.run(&["set", &format!("k{i}"), "v"]);
        }
        let Frame::Array(replies) = h.run(&["exec"]) else {
            panic!("EXEC's array")
        };
        assert_eq!(replies.len(), 2 * SPARE_COMMANDS);
        let spare = &h.session.tx.spare;
        assert_eq!((spare.cmds.capacity(), spare.specs.capacity()), (0, 0));
        assert!(spare.requests.len() <= SPARE_REQUESTS);
    }

    /// A second connection on the same node, for changes that a watch must see.
    fn other(h: &Harness) -> crate::cmd::Session {
        let addr = "127.0.0.1:2".parse().expect("addr");
        crate::cmd::Session::new(h.node.register_client(addr, addr), true)
    }

    fn run_as(h: &Harness, s: &mut crate::cmd::Session, args: &[&str]) -> Frame {
        let req = Request::from_args(args.iter().map(|a| a.as_bytes()));
        let mut ctx = Ctx {
            node: &h.node,
            session: s,
            now: h.now,
        };
        super::super::dispatch(&mut ctx, &req)
    }

    #[test]
    fn watch_sees_writes_from_other_connections() {
        let mut h = Harness::new();
        let mut o = other(&h);
        h.run(&["set", "x", "1"]);
        h.run(&["watch", "x", "y"]);
        run_as(&h, &mut o, &["set", "x", "2"]);
        h.run(&["multi"]);
        h.run(&["set", "x", "3"]);
        assert_eq!(h.run(&["exec"]), Frame::NullArray);
        assert_eq!(h.run(&["get", "x"]), bulk("2"));
        // The watch ended with EXEC: the next transaction runs.
        run_as(&h, &mut o, &["set", "x", "4"]);
        h.run(&["multi"]);
        h.run(&["get", "x"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![bulk("4")]));
        // A key that did not exist, created by another connection.
        h.run(&["watch", "y"]);
        run_as(&h, &mut o, &["set", "y", "1"]);
        h.run(&["multi"]);
        assert_eq!(h.run(&["exec"]), Frame::NullArray);
        // UNWATCH forgets.
        h.run(&["watch", "x"]);
        run_as(&h, &mut o, &["del", "x"]);
        h.run(&["unwatch"]);
        h.run(&["multi"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![]));
    }

    #[test]
    fn watch_sees_expiry_and_flush_but_not_stale_keys() {
        let mut h = Harness::new();
        // A live key whose TTL runs out while watched: EXEC fails, even unreclaimed.
        h.run(&["set", "k", "1", "px", "100"]);
        h.run(&["watch", "k"]);
        h.now += 200;
        h.run(&["multi"]);
        h.run(&["ping"]);
        assert_eq!(h.run(&["exec"]), Frame::NullArray);
        // A key already expired when watched, then reclaimed: no change.
        h.run(&["set", "s", "1", "px", "1"]);
        h.now += 10;
        h.run(&["watch", "s"]);
        assert_eq!(h.run(&["exists", "s"]), int(0));
        h.run(&["multi"]);
        h.run(&["ping"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![simple("PONG")]));
        // FLUSHALL touches watched keys that exist, and only those.
        h.run(&["set", "x", "1"]);
        h.run(&["watch", "x"]);
        h.run(&["flushall"]);
        h.run(&["multi"]);
        assert_eq!(h.run(&["exec"]), Frame::NullArray);
        h.run(&["watch", "x"]);
        h.run(&["flushall"]);
        h.run(&["multi"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![]));
        // EXPIRE touches.
        h.run(&["set", "x", "1"]);
        h.run(&["watch", "x"]);
        h.run(&["expire", "x", "100"]);
        h.run(&["multi"]);
        assert_eq!(h.run(&["exec"]), Frame::NullArray);
    }

    #[test]
    fn exec_holds_the_slots_of_its_keys_and_releases_them() {
        let mut h = Harness::new();
        h.run(&["multi"]);
        h.run(&["mset", "a", "1", "b", "2"]);
        h.run(&["rename", "a", "c"]);
        h.run(&["flushall"]);
        h.run(&["set", "d", "1"]);
        assert_eq!(
            h.run(&["exec"]),
            Frame::Array(vec![Frame::ok(), Frame::ok(), Frame::ok(), Frame::ok()])
        );
        assert!(!Db::in_tx());
        // Every lock was released: another thread can take them.
        let node = &h.node;
        std::thread::scope(|s| {
            s.spawn(|| {
                drop(node.db.lock_key(b"d"));
                drop(node.db.lock_key(b"a"));
            });
        });
        assert_eq!(h.run(&["get", "d"]), bulk("1"));
    }

    #[test]
    fn multiexec_roundtrip() {
        let cmds = vec![
            Request::from_args(["SET", "a", "1"]),
            Request::from_args(["INCR", "a"]),
        ];
        let req = encode_multiexec(&cmds);
        let back = decode_multiexec(&req).expect("decodes");
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].arg(0), b"INCR");
        let mut h = Harness::new();
        let args: Vec<&str> = req
            .iter()
            .map(|a| std::str::from_utf8(a).expect("utf8"))
            .collect();
        assert_eq!(h.run(&args), Frame::Array(vec![Frame::ok(), int(2)]));
        // Hostile counts are syntax errors, never panics.
        for bad in [
            &["multiexec", "0"][..],
            &["multiexec", "5", "get"],
            &["multiexec", "-1", "x"],
            &["multiexec", "99999999999999999999", "x"],
        ] {
            assert_eq!(h.run(bad), err("ERR syntax error"));
        }
        assert_eq!(h.run(&["multiexec", "1", "nope"]), ERR_EXECABORT);
    }

    #[test]
    fn oom_rules() {
        let mut h = Harness::new();
        let mut o = other(&h);
        h.run(&["set", "x", "v"]);
        // A command refused for memory while queuing aborts the transaction.
        h.run(&["multi"]);
        h.run(&["get", "x"]);
        run_as(&h, &mut o, &["config", "set", "maxmemory", "1"]);
        assert!(h.run(&["set", "y", "1"]).is_error());
        run_as(&h, &mut o, &["config", "set", "maxmemory", "0"]);
        assert_eq!(h.run(&["exec"]), ERR_EXECABORT);
        // Read-only transactions run under OOM; one with a write fails as a whole.
        h.run(&["multi"]);
        h.run(&["get", "x"]);
        run_as(&h, &mut o, &["config", "set", "maxmemory", "1"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![bulk("v")]));
        run_as(&h, &mut o, &["config", "set", "maxmemory", "0"]);
        h.run(&["multi"]);
        h.run(&["set", "z", "1"]);
        run_as(&h, &mut o, &["config", "set", "maxmemory", "1"]);
        assert_eq!(
            h.run(&["exec"]),
            err("EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.")
        );
        run_as(&h, &mut o, &["config", "set", "maxmemory", "0"]);
    }
}
