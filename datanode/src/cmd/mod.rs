//! Commands: one table, one dispatcher.
//!
//! Every command is a [`CommandSpec`]: its name, Redis's arity convention (exact `n`, or `-n`
//! for "at least n"), flags, key positions, syntax and handler. The same table drives dispatch,
//! arity errors, the AUTH gate, `COMMAND` output (which redis-cli reads for hints) and, in a
//! cluster, key routing. Handlers are plain functions from a [`Ctx`] and the request to a reply,
//! so they are unit-tested without sockets.
//!
//! - [`strings`]: GET, SET and the other string commands.
//! - [`keys`]: DEL, EXPIRE, SCAN and the other keyspace commands.
//! - [`server`]: connection and server commands (PING, HELLO, AUTH, CLIENT, INFO, CONFIG, ...).
//! - [`cluster`]: CLUSTER, the slot table as Redis Cluster reports it.
//! - [`object`]: OBJECT and MEMORY, what the store knows about one key.
//! - [`pubsub`]: SUBSCRIBE, PUBLISH, PUBSUB and the sharded forms, RESET.
//! - [`docs`]: COMMAND and its subcommands, built from the table.
//! - [`multi`]: MULTI, EXEC, DISCARD, WATCH and UNWATCH: queued, atomic transactions.
//! - [`scripting`]: EVAL, EVALSHA and SCRIPT: Lua 5.1 scripts, atomic like EXEC; its
//!   `run`: a script's run in a Lua engine of [`crate::lua`] (EVAL's and FCALL's), the
//!   commands it calls, the hook.
//! - [`functions`]: FUNCTION and FCALL: libraries of Lua functions, on every node.
//! - [`tracking`]: CLIENT TRACKING's options, and what a tracking client's command
//!   remembers before it runs and checks after (the table is [`crate::tracking`]).
//! - [`acl`]: ACL and its subcommands (the rules are in [`crate::acl`]), each command's
//!   categories and the table as [`crate::acl`] sees it, the check of a request.
//! - [`sync`]: the node's side of [`crate::sync`]: its libraries and users read and merged,
//!   the exchanges with the other DataNodes, `CLUSTER FUNCTIONS|USERS`.
//! - [`hash`]: HSET, HGET and the other hash commands.
//! - [`set`]: SADD, SINTER and the other set commands.
//! - [`list`]: LPUSH, LRANGE, LMOVE and the other list commands.
//! - [`blocking`]: the command side of [`crate::blocking`]: a blocking command (BLPOP,
//!   BZPOPMIN, ...) blocked, and the waiters of the keys writes made ready served.
//! - [`sort`]: SORT and SORT_RO on lists, sets and sorted sets.
//! - [`zset`]: ZADD, ZRANGE and the other sorted-set commands.
//! - [`geo`]: GEOADD, GEOSEARCH and the other GEO commands, on sorted sets.
//! - [`bits`]: bitmaps (SETBIT, BITCOUNT, BITFIELD, ...) and LCS, on string values.
//! - [`hll`]: HyperLogLog (PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST).
//! - [`migrate`]: DUMP, RESTORE and MIGRATE, in Redis's serialized format.
//! - [`longdouble`]: x86-64 `long double` arithmetic, so INCRBYFLOAT and HINCRBYFLOAT print
//!   exactly what Redis prints.
//! - `session`: a connection's state ([`Session`]); `args`: argument parsing and the error
//!   replies every command file shares; `testutil` (tests only): a node and a session to
//!   run commands against.

pub mod acl;
pub mod bits;
pub mod blocking;
pub mod cluster;
pub mod docs;
pub mod functions;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod longdouble;
pub mod migrate;
pub mod multi;
pub mod object;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod strings;
pub mod sync;
pub mod tracking;
pub mod zset;

mod session;

use crate::node::Node;
use crate::resp::{Frame, Protocol, Request};
use crate::store::NO_EXPIRY;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub use crate::args::*;
pub use session::*;

/// A handler's result: `Err` carries an error reply, so argument checks can use `?`.
pub type Reply = Result<Frame, Frame>;
pub type Handler = fn(&mut Ctx<'_>, &Request) -> Reply;

/// Command flags (Redis's names in COMMAND output).
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const FAST: u32 = 1 << 7;
    pub const NO_AUTH: u32 = 1 << 8;
    /// The command reads or writes the whole keyspace (KEYS, SCAN, FLUSHALL...): node-local.
    pub const KEYSPACE: u32 = 1 << 9;
    /// The argument at `first_key` counts the keys that follow it (SINTERCARD numkeys key
    /// ...): see [`super::CommandSpec::keys_in`]. COMMAND reports it as `movablekeys`.
    pub const NUMKEYS: u32 = 1 << 10;
    /// Pub/Sub commands (Redis's `pubsub` flag).
    pub const PUBSUB: u32 = 1 << 11;
    /// Between DataNodes only (moves data or ownership): served on authenticated peer
    /// sessions; to anyone else it does not exist.
    pub const INTERNAL: u32 = 1 << 12;
    /// The key at `first_key` is a destination and the argument after it counts the keys
    /// that follow (ZUNIONSTORE destination numkeys key ...). COMMAND: `movablekeys`.
    pub const DEST_NUMKEYS: u32 = 1 << 13;
    /// Besides its fixed keys, a `STORE key` or `STOREDIST key` option names a destination
    /// (GEORADIUS). COMMAND: `movablekeys`.
    pub const STORE_OPT: u32 = 1 << 14;
    /// The command may block the client (BLPOP...): see [`crate::blocking`].
    pub const BLOCKING: u32 = 1 << 15;
    /// SORT's `STORE destination` option names a key too (found past the other options'
    /// arguments): see [`super::CommandSpec::keys_in`]. COMMAND: `movablekeys`.
    pub const SORT_STORE: u32 = 1 << 16;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NUMKEYS, "movablekeys"),
        (PUBSUB, "pubsub"),
        (BLOCKING, "blocking"),
        (DEST_NUMKEYS, "movablekeys"),
        (STORE_OPT, "movablekeys"),
        (SORT_STORE, "movablekeys"),
    ];
}

/// One command (or subcommand) in the table.
pub struct CommandSpec {
    /// Lower-case name (`get`, or `setname` for a subcommand).
    pub name: &'static str,
    /// Exact argument count including the name when positive; at least `-arity` when negative.
    pub arity: i32,
    pub flags: u32,
    /// Position of the first key (0 = none), the last (-1 = the last argument) and the step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// ACL-style group, as COMMAND DOCS reports it (`string`, `generic`, `connection`, `server`).
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    /// Arguments after the name, in the Redis docs' syntax (`key value [NX | XX]`).
    pub syntax: &'static str,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    pub fn arity_ok(&self, n: usize) -> bool {
        let a = self.arity;
        (a >= 0 && n == a as usize) || (a < 0 && n >= (-a) as usize)
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The argument positions that are keys in `req`: [`CommandSpec::key_positions`], or for
    /// a [`flags::NUMKEYS`] command the keys its count announces (none when the count is not
    /// a number; at most the arguments there are), after the destination for a
    /// [`flags::DEST_NUMKEYS`] one; a [`flags::STORE_OPT`] or [`flags::SORT_STORE`]
    /// command's STORE key comes last.
    pub fn keys_in(&self, req: &Request) -> KeyPositions {
        if self.has(flags::SORT_STORE) {
            return KeyPositions {
                dest: None,
                rest: self.key_positions(req.len()),
                last: sort::store_position(req),
            };
        }
        if self.has(flags::STORE_OPT) {
            // The options start after the unit (GEORADIUS key lon lat radius unit ...).
            let store = (5..req.len().saturating_sub(1))
                .rev()
                .find(|&i| is(req.arg(i), "STORE") || is(req.arg(i), "STOREDIST"))
                .map(|i| i + 1);
            return KeyPositions {
                dest: None,
                rest: self.key_positions(req.len()),
                last: store,
            };
        }
        let (dest, at) = if self.has(flags::DEST_NUMKEYS) {
            let d = self.first_key.max(0) as usize;
            ((d > 0 && d < req.len()).then_some(d), d + 1)
        } else if self.has(flags::NUMKEYS) {
            (None, self.first_key.max(0) as usize)
        } else {
            return KeyPositions {
                dest: None,
                rest: self.key_positions(req.len()),
                last: None,
            };
        };
        let rest = req.len().saturating_sub(at + 1);
        let n = if at == 0 || at >= req.len() {
            0
        } else {
            parse_i64(req.arg(at)).map_or(0, |n| usize::try_from(n).unwrap_or(0).min(rest))
        };
        KeyPositions {
            dest,
            rest: (at + 1..at + 1 + n).step_by(1),
            last: None,
        }
    }

    /// The argument positions that are keys in a command of `argc` arguments, by the fixed
    /// range `first_key..=last_key` (COMMAND's legacy key specification).
    pub fn key_positions(&self, argc: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            (argc as i32 + self.last_key).max(0) as usize
        } else {
            (self.last_key as usize).min(argc.saturating_sub(1))
        };
        let step = self.step.max(1) as usize;
        let end = if first == 0 { 0 } else { last + 1 };
        (first..end.max(first)).step_by(step)
    }
}

/// The key positions of one request (see [`CommandSpec::keys_in`]).
#[derive(Clone, Debug)]
pub struct KeyPositions {
    dest: Option<usize>,
    rest: std::iter::StepBy<std::ops::Range<usize>>,
    last: Option<usize>,
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.dest
            .take()
            .or_else(|| self.rest.next())
            .or_else(|| self.last.take())
    }
}

/// What a handler sees.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub session: &'a mut Session,
    /// Milliseconds since the Unix epoch, taken once per command.
    pub now: u64,
}

/// Every top-level command, in the order COMMAND lists them.
pub fn table() -> &'static [&'static CommandSpec] {
    static TABLE: OnceLock<Vec<&'static CommandSpec>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut v: Vec<&'static CommandSpec> = Vec::new();
        v.extend(strings::COMMANDS.iter());
        v.extend(keys::COMMANDS.iter());
        v.extend(server::COMMANDS.iter());
        v.extend(cluster::COMMANDS.iter());
        v.extend(object::COMMANDS.iter());
        v.extend(docs::COMMANDS.iter());
        v.extend(multi::COMMANDS.iter());
        v.extend(scripting::COMMANDS.iter());
        v.extend(functions::COMMANDS.iter());
        v.extend(pubsub::COMMANDS.iter());
        v.extend(acl::COMMANDS.iter());
        v.extend(hash::COMMANDS.iter());
        v.extend(set::COMMANDS.iter());
        v.extend(list::COMMANDS.iter());
        v.extend(sort::COMMANDS.iter());
        v.extend(zset::COMMANDS.iter());
        v.extend(geo::COMMANDS.iter());
        v.extend(bits::COMMANDS.iter());
        v.extend(hll::COMMANDS.iter());
        v.extend(migrate::COMMANDS.iter());
        v
    })
}

/// Command name -> (table index, spec). Looked up once per request, so hashed with foldhash
/// rather than the default SipHash, which is built to resist flooding (the names here are
/// fixed) and costs several times more for a short key. Keyed by the lowercase name's bytes,
/// so a lookup needs no UTF-8 check.
type CommandIndex = HashMap<&'static [u8], (u32, &'static CommandSpec), foldhash::fast::FixedState>;

fn index() -> &'static CommandIndex {
    static INDEX: OnceLock<CommandIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        table()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), (i as u32, *c)))
            .collect()
    })
}

/// Looks a command up by name, case-insensitively, without allocating for common names.
pub fn lookup(name: &[u8]) -> Option<(u32, &'static CommandSpec)> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index().get(&buf[..name.len()]).copied()
}

/// The name CLIENT LIST shows (`cmd=`) for a command id: the table index in the low 16
/// bits, and one more than the subcommand index above them (`client|info`).
pub fn name_by_index(id: u32) -> Option<String> {
    let top = table().get((id & 0xffff) as usize)?;
    match (id >> 16).checked_sub(1) {
        Some(sub) => top
            .subcommands
            .get(sub as usize)
            .map(|s| format!("{}|{}", top.name, s.name)),
        None => Some(top.name.to_string()),
    }
}

/// Finds a subcommand of `parent` by name.
pub fn lookup_sub(parent: &CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    parent
        .subcommands
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Redis's reply to an unknown command.
#[cold]
pub fn unknown_command(req: &Request) -> Frame {
    let mut args = String::new();
    for a in req.iter().skip(1) {
        let a = String::from_utf8_lossy(&a[..a.len().min(128)]).into_owned();
        args.push_str(&format!("'{a}' "));
    }
    let name = String::from_utf8_lossy(&req.arg(0)[..req.arg(0).len().min(128)]).into_owned();
    Frame::error(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// Runs one request and returns its reply.
///
/// Checks come in Redis's order: unknown command, arity, unknown subcommand, then
/// authentication. A connection inside MULTI queues instead (see [`multi`]).
pub fn dispatch(ctx: &mut Ctx<'_>, req: &Request) -> Frame {
    if ctx.session.tx.queue.is_some() {
        return multi::in_multi(ctx, req);
    }
    run_command(ctx, req)
}

/// [`dispatch`] without the MULTI queue: runs the command now, and counts an error reply
/// (INFO errorstats) unless it was counted already (a script's error passed on from a
/// command it called).
#[inline]
pub(crate) fn run_command(ctx: &mut Ctx<'_>, req: &Request) -> Frame {
    let reply = run_command_uncounted(ctx, req);
    if let Frame::Error(e) = &reply {
        if !std::mem::take(&mut ctx.session.error_counted) {
            ctx.node.errors.count(e);
        }
    }
    reply
}

pub const ERR_NOREPLICAS: Frame = Frame::err("NOREPLICAS Not enough good replicas to write.");

/// [`run_command`] for a request [`resolve_for`] resolved already (to `spec` and
/// `cmd_id`): a script's `redis.call`, which looked the command up for its own checks.
#[inline]
pub(crate) fn run_command_resolved(
    ctx: &mut Ctx<'_>,
    req: &Request,
    spec: &'static CommandSpec,
    cmd_id: u32,
) -> Frame {
    let reply = run_resolved(ctx, req, spec, cmd_id);
    if let Frame::Error(e) = &reply {
        if !std::mem::take(&mut ctx.session.error_counted) {
            ctx.node.errors.count(e);
        }
    }
    reply
}

#[inline]
fn run_command_uncounted(ctx: &mut Ctx<'_>, req: &Request) -> Frame {
    let (spec, cmd_id) = match resolve_for(ctx.session, req) {
        Ok(r) => r,
        Err(e) => {
            // A known command refused for its arguments counts as rejected in its stats.
            if let Some((idx, _)) = lookup(req.arg(0)) {
                ctx.node.cmdstats.reject(idx as usize);
            }
            return e;
        }
    };
    run_resolved(ctx, req, spec, cmd_id)
}

#[inline]
fn run_resolved(
    ctx: &mut Ctx<'_>,
    req: &Request,
    spec: &'static CommandSpec,
    cmd_id: u32,
) -> Frame {
    // Per-command stats are per top-level command (subcommands count as their parent).
    let idx = cmd_id & 0xffff;
    if !ctx.session.authenticated && !spec.has(flags::NO_AUTH) {
        ctx.node.cmdstats.reject(idx as usize);
        return Frame::err("NOAUTH Authentication required.");
    }
    // Commands a client may send before authenticating (AUTH, HELLO, ...) are not subject to
    // command rules, as in Redis. Nor are peer sessions: the node a request was forwarded
    // from checked it against its client's user before sending it on.
    if !spec.has(flags::NO_AUTH) && ctx.session.checked() {
        if let Err(denied) = acl_gate(ctx.node, ctx.session, cmd_id, spec, req, ctx.now) {
            return denied;
        }
    }
    if ctx.session.pubsub.is_some() {
        let top = table()[(idx & 0xffff) as usize].name;
        if let Some(e) = pubsub::subscribed_context_error(ctx.session, top, spec.name) {
            return e;
        }
    }
    // A node in a cluster touches its slots only while it holds its ownership lease: checked
    // before the command and again after it (see [`crate::lease`]). Commands inside EXEC or
    // a script are covered by the EXEC's or the script's own check.
    let leased = !ctx.session.tx.running && serves_data(spec) && ctx.node.lease.enforced();
    ctx.session.lease_lost = None;
    let resets = ctx.node.lease.resets();
    if leased && !ctx.node.lease.check() {
        ctx.session.fenced = true;
        ctx.node.cmdstats.reject(idx as usize);
        return crate::lease::ERR_NO_LEASE;
    }
    ctx.session
        .client
        .last_cmd
        .store(cmd_id, std::sync::atomic::Ordering::Relaxed);
    // `min-replicas-to-write` above 0: writes are refused (inside EXEC the transaction
    // checked once).
    if spec.has(flags::WRITE)
        && !ctx.session.tx.running
        && ctx
            .node
            .min_replicas_to_write
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    {
        ctx.node.cmdstats.reject(idx as usize);
        return ERR_NOREPLICAS;
    }
    // Like Redis: evict before a command that may need memory, and refuse it when memory is
    // over `maxmemory` and nothing can be evicted. Other commands (reads, DEL) always run.
    // Inside EXEC, the transaction did this once before taking its locks.
    if spec.has(flags::DENYOOM)
        && !ctx.session.tx.running
        && ctx.node.db.make_room(ctx.now).is_err()
    {
        ctx.node.cmdstats.reject(idx as usize);
        return ERR_OOM;
    }
    // A tracking client remembers what it reads (one test for everyone else).
    let reads = if ctx.session.tracking.is_some() {
        Some(tracking::before(ctx, spec, req))
    } else {
        None
    };
    let started = crate::clock::stamp();
    let (reply, failed) = match (spec.handler)(ctx, req) {
        Ok(f) => {
            let failed = matches!(f, Frame::Error(_));
            (f, failed)
        }
        Err(f) => (f, true),
    };
    if let Some(reads) = reads {
        tracking::after(ctx, table()[idx as usize].name == "client", reads);
    }
    // Per top-level command (subcommands count as their parent), like /metrics shows them.
    ctx.node
        .cmdstats
        .record(idx as usize, crate::clock::elapsed_us(started), failed);
    if leased && !ctx.node.lease.serving() {
        // Ran, but the lease may have run out meanwhile (a pause mid-command): its slots may
        // belong to another node now, so this is no acknowledgement yet. The connection
        // holds the reply until a renewal proves they did not (see
        // [`crate::lease::LOST_WAIT`]); whoever does not wait answers this.
        ctx.session.lease_lost = Some((reply, resets));
        return crate::lease::ERR_LEASE_LOST;
    }
    reply
}

/// Whether `spec` reads or writes the keyspace, and so needs the ownership lease: commands
/// with keys, whole-keyspace ones (KEYS, SCAN, FLUSHALL...), and transactions and scripts
/// (their commands run under their check).
pub fn serves_data(spec: &CommandSpec) -> bool {
    spec.first_key > 0
        || spec.has(flags::KEYSPACE)
        || (spec.has(flags::NOSCRIPT)
            && (matches!(spec.name, "exec" | "multiexec") || spec.name.starts_with("eval")))
}

/// The spec that runs `req` (the subcommand's, if any) and its id for CLIENT LIST, or the
/// error reply for an unknown command, a wrong arity or an unknown subcommand.
#[inline]
pub fn resolve_checked(req: &Request) -> Result<(&'static CommandSpec, u32), Frame> {
    let Some((idx, spec)) = lookup(req.arg(0)) else {
        return Err(unknown_command(req));
    };
    if !spec.arity_ok(req.len()) {
        return Err(wrong_arity(spec.name));
    }
    Ok(if spec.subcommands.is_empty() || req.len() < 2 {
        (spec, idx)
    } else {
        match spec
            .subcommands
            .iter()
            .position(|s| s.name.as_bytes().eq_ignore_ascii_case(req.arg(1)))
        {
            Some(i) => {
                let sub = &spec.subcommands[i];
                if !sub.arity_ok(req.len()) {
                    return Err(wrong_arity(&format!("{}|{}", spec.name, sub.name)));
                }
                (sub, idx | ((i as u32 + 1) << 16))
            }
            None => return Err(unknown_subcommand(spec, req)),
        }
    })
}

/// Redis's reply to an unknown subcommand of `parent`.
fn unknown_subcommand(parent: &CommandSpec, req: &Request) -> Frame {
    Frame::error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&req.arg(1)[..req.arg(1).len().min(128)]),
        parent.name.to_ascii_uppercase()
    ))
}

/// [`resolve_checked`] for this connection: internal subcommands (CLUSTER IMPORT, HANDOFF)
/// exist only on peer sessions; to anyone else, whatever its password, they answer as an
/// unknown subcommand and change nothing.
pub fn resolve_for(session: &Session, req: &Request) -> Result<(&'static CommandSpec, u32), Frame> {
    let resolved = resolve_checked(req);
    if !session.checked() {
        return resolved;
    }
    let internal = match &resolved {
        Ok((spec, id)) => spec.has(flags::INTERNAL).then_some(*id),
        // A wrong number of arguments must not reveal them either (the slow path: errors).
        Err(_) => resolve(req).and_then(|(id, spec)| spec.has(flags::INTERNAL).then_some(id)),
    };
    match internal {
        Some(id) => Err(unknown_subcommand(table()[(id & 0xffff) as usize], req)),
        None => resolved,
    }
}

/// A session's identity, saved while it runs as another user ([`Session::enter_user`]).
pub struct UserState {
    user: Bytes,
    perms: Option<Arc<crate::acl::User>>,
    acl_generation: u64,
    as_user: bool,
    quit: bool,
}

/// The spec a request runs (the subcommand's when it has one) and its command id, or `None`
/// for unknown commands and subcommands (dispatch answers those).
pub fn resolve(req: &Request) -> Option<(u32, &'static CommandSpec)> {
    let (idx, spec) = lookup(req.arg(0))?;
    if spec.subcommands.is_empty() || req.len() < 2 {
        return Some((idx, spec));
    }
    let i = spec
        .subcommands
        .iter()
        .position(|s| s.name.as_bytes().eq_ignore_ascii_case(req.arg(1)))?;
    Some((idx | ((i as u32 + 1) << 16), &spec.subcommands[i]))
}

/// Checks a request against the connection's ACL user, refreshing the user first when any
/// user changed. Unrestricted users (the default) pass on a field test. Denials are logged
/// (ACL LOG) and answered with Redis's NOPERM texts. Used by [`dispatch`] and, before a
/// request is forwarded, by the cluster executor: a request never leaves the node its
/// client is connected to without its permissions checked.
#[inline]
pub fn acl_gate(
    node: &Node,
    session: &mut Session,
    cmd_id: u32,
    spec: &CommandSpec,
    req: &Request,
    now: u64,
) -> Result<(), Frame> {
    // The common case, an unrestricted user and no ACL change since the last command, is
    // two loads and two compares inline; the rest is out of line.
    if session.perms.is_none() && session.acl_generation == node.acl.generation() {
        return Ok(());
    }
    acl_check(node, session, cmd_id, spec, req, now)
}

/// Whether the connection's user may run `req` (for `redis.acl_check_cmd`): the same rules
/// as [`acl_gate`], without logging a denial.
pub fn acl_allows(
    node: &Node,
    session: &Session,
    cmd_id: u32,
    spec: &CommandSpec,
    req: &Request,
) -> bool {
    let user = match &session.perms {
        Some(u) if session.acl_generation == node.acl.generation() => u.clone(),
        _ => match node.acl.get(&session.user) {
            Some(u) if !u.unrestricted() => u,
            Some(_) => return true,
            None => return false,
        },
    };
    let top = table()[(cmd_id & 0xffff) as usize];
    let args: Vec<&[u8]> = req.iter().collect();
    acl::check(&user, cmd_id, spec, top, &args).is_ok()
}

#[cold]
#[inline(never)]
fn acl_check(
    node: &Node,
    session: &mut Session,
    cmd_id: u32,
    spec: &CommandSpec,
    req: &Request,
    now: u64,
) -> Result<(), Frame> {
    let generation = node.acl.generation();
    if session.acl_generation != generation {
        session.acl_generation = generation;
        match node.acl.get(&session.user) {
            Some(u) => session.perms = (!u.unrestricted()).then_some(u),
            None => {
                // Like Redis, a client whose user was deleted is disconnected.
                session.quit = true;
                return Err(Frame::err("ERR the user of this connection was deleted"));
            }
        }
    }
    let Some(user) = &session.perms else {
        return Ok(());
    };
    let top = table()[(cmd_id & 0xffff) as usize];
    let args: Vec<&[u8]> = req.iter().collect();
    let Err(denied) = acl::check(user, cmd_id, spec, top, &args) else {
        return Ok(());
    };
    let name = match cmd_id >> 16 {
        0 => top.name.to_string(),
        _ => format!("{}|{}", top.name, spec.name),
    };
    let (object, reply) = match denied {
        crate::acl::Denied::Command => (
            name.clone(),
            format!("NOPERM this user has no permissions to run the '{name}' command"),
        ),
        crate::acl::Denied::Key(i) => (
            String::from_utf8_lossy(&args[i][..args[i].len().min(128)]).into_owned(),
            "NOPERM this user has no permissions to access one of the keys used as arguments"
                .to_string(),
        ),
        crate::acl::Denied::Channel(i) => (
            String::from_utf8_lossy(&args[i][..args[i].len().min(128)]).into_owned(),
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .to_string(),
        ),
    };
    node.acl.log(crate::acl::LogEntry {
        count: 1,
        reason: denied.reason(),
        context: "toplevel",
        object,
        username: String::from_utf8_lossy(&session.user).into_owned(),
        created: now,
        updated: now,
        client_info: server::client_cmd::describe(&session.client, true),
    });
    Err(Frame::error(reply))
}

// ---- collections: one way for every collection type's commands to reach their value ----

/// Runs `f` on the collection of type `T` at `key` (created empty when `create`), or answers
/// WRONGTYPE when the key holds another type. `Ok(None)`: no such key and not created.
pub(crate) fn update_collection<T: crate::store::Collection, R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut T, &crate::store::Limits) -> R,
) -> Result<Option<R>, Frame> {
    let limits = ctx.node.db.limits();
    let mut g = ctx.node.db.lock_key(key);
    let r = g
        .modify(key, ctx.now, T::KIND, create, |v| {
            T::of_mut(v).map(|c| f(c, &limits))
        })
        .map_err(|_| ERR_WRONGTYPE)?;
    Ok(r.flatten())
}

/// Runs `f` on the collection of type `T` at `key` (a read: counts a hit or miss); `None`
/// when missing, WRONGTYPE for another type.
pub(crate) fn read_collection<T: crate::store::Collection, R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&T) -> R,
) -> Result<Option<R>, Frame> {
    let mut g = ctx.node.db.lock_key(key);
    match g.get(key, ctx.now) {
        None => Ok(None),
        Some(e) => {
            let c = e.collection::<T>().map_err(|_| ERR_WRONGTYPE)?;
            Ok(Some(f(&c)))
        }
    }
}

/// Builds a spec with the common defaults; used by the per-file tables.
#[allow(clippy::too_many_arguments)]
pub const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    syntax: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        since,
        summary,
        syntax,
        handler,
        subcommands: &[],
    }
}

/// Keys positions for commands without keys.
pub const NO_KEYS: (i32, i32, i32) = (0, 0, 0);

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
