//! A script's run on the command side: the context `redis.call` runs commands in and the
//! instruction hook works on, the checks a script passes before it starts, and the
//! [`Host`] through which the node's Lua engines ([`crate::lua::engine`]) reach both.
//!
//! **The running script.** A [`Run`] lives on the stack of [`run_script`] for the duration
//! of one call into Lua, and a thread-local holds a raw pointer to it (`CURRENT`);
//! callbacks ([`CmdHost`]) borrow it for the length of one callback. Nothing else touches
//! it while Lua runs.
//!
//! **Long scripts.** A script registers among the node's running scripts after
//! [`REGISTER_AFTER`] (SCRIPT KILL, FUNCTION STATS and the BUSY state see it), and moves off
//! the async runtime's worker after [`ESCAPE_AFTER`] (see [`escape_worker`]).

use super::super::flags::*;
use super::super::{resolve_checked, resolve_for, run_command_resolved, Ctx, Reply};
use crate::lua::engine::{script_reply, Engine, Host, KILLED};
use crate::lua::library::ScriptFlags;
use crate::lua::RunInfo;
use crate::resp::{Frame, Protocol, Request};
use bytes::Bytes;
use mlua::Function;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A script running this long is registered as running: SCRIPT KILL, FUNCTION STATS and
/// the BUSY state see it. Shorter ones never touch shared state.
const REGISTER_AFTER: Duration = Duration::from_millis(2);
/// A script running this long moves off the async runtime's worker (see
/// [`escape_worker`]), so the worker serves its other connections meanwhile.
const ESCAPE_AFTER: Duration = Duration::from_millis(10);
/// How long a script waits for a slot it did not declare while another thread holds it.
const LOCK_PATIENCE: Duration = Duration::from_secs(1);

thread_local! {
    /// The script running on this thread now (see the module docs), null when none. A
    /// thread runs one script at a time (scripts cannot start scripts), and a script runs
    /// start to end on one thread, so the callbacks and the hook of the engine running it
    /// find it here: two thread-local loads per `redis.call`, nothing stored in Lua.
    static CURRENT: std::cell::Cell<*mut Run<'static, 'static>> =
        const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// Makes a `Run` this thread's [`CURRENT`] for as long as it lives, then puts back what
/// was there before (also when the script panics).
struct Current(*mut Run<'static, 'static>);

impl Current {
    fn enter(run: *mut Run<'_, '_>) -> Current {
        Current(CURRENT.with(|c| c.replace(run.cast())))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// The engines' [`Host`]: `redis.call`, `redis.setresp`, `redis.acl_check_cmd` and the hook
/// act on this thread's [`CURRENT`] script.
pub(crate) struct CmdHost;

impl Host for CmdHost {
    fn running() -> bool {
        current().is_some()
    }

    fn call(req: &Request) -> (Frame, bool) {
        let Some(p) = current() else {
            return (
                Frame::err("ERR redis.call is only available inside a script"),
                false,
            );
        };
        // SAFETY: see `Current`; the `Run` is borrowed for this call only.
        let run = unsafe { &mut *p };
        let reply = run.command(req);
        (reply, run.resp3)
    }

    fn set_resp3(on: bool) {
        if let Some(p) = current() {
            // SAFETY: see `Current`.
            unsafe { &mut *p }.resp3 = on;
        }
    }

    fn acl_check(req: &Request) -> Option<bool> {
        let p = current()?;
        let (spec, id) = resolve_checked(req).ok()?;
        // SAFETY: see `Current`.
        let run = unsafe { &*p };
        Some(super::super::acl_allows(
            run.ctx.node,
            run.ctx.session,
            id,
            spec,
            req,
        ))
    }

    fn tick() -> mlua::Result<()> {
        if let Some(p) = current() {
            // SAFETY: see `Current`; no other reference to the `Run` is alive while Lua
            // runs instructions.
            unsafe { &mut *p }.tick()?;
        }
        Ok(())
    }

    fn killed() -> bool {
        match current() {
            // SAFETY: see `Current`.
            Some(p) => unsafe { &*p }.killed(),
            None => false,
        }
    }
}

/// The script running on this thread, if any.
fn current() -> Option<*mut Run<'static, 'static>> {
    let p = CURRENT.with(|c| c.get());
    (!p.is_null()).then_some(p)
}

/// The slots of the keys a script declares (`keys`, positions in `req`), in their order:
/// what EVAL and FCALL lock before they take an engine (the order EXEC, which holds slots
/// and may run a script, takes them in too), and what [`Run`] checks its keys against.
pub(crate) fn declared_slots(req: &Request, keys: &std::ops::Range<usize>) -> Vec<u16> {
    keys.clone()
        .map(|i| chkv_common::key_slot(req.arg(i)))
        .collect()
}

/// Runs `f` in `eng` for `run` under the script's `flags` (`ro`: EVAL_RO, FCALL_RO), and
/// cleans up after it: EVAL's and FCALL's common end.
pub(crate) fn run_flagged(
    mut run: Run<'_, '_>,
    flags: ScriptFlags,
    ro: bool,
    eng: &mut Engine,
    f: &Function,
) -> Reply {
    run.read_only = ro || flags.has(ScriptFlags::NO_WRITES);
    run.allow_oom = flags.has(ScriptFlags::ALLOW_OOM);
    run.cross_slot = flags.has(ScriptFlags::ALLOW_CROSS_SLOT);
    let reply = run_script(eng, &mut run, f);
    run.finish();
    reply
}

/// Runs `f` (a script when `run.is_eval`, else a function) in `eng` for the command in
/// `run`: the script's reply.
pub(crate) fn run_script(eng: &mut Engine, run: &mut Run<'_, '_>, f: &Function) -> Reply {
    let req = run.req;
    let keys = run.keys.clone();
    let is_eval = run.is_eval;
    let ptr: *mut Run<'_, '_> = run;
    let out = eng.run(f, is_eval, req, keys, || Current::enter(ptr));
    let resp3 = run.ctx.session.proto == Protocol::Resp3;
    let (reply, counted) = script_reply(out, &run.name, resp3);
    if counted {
        run.ctx.session.error_counted = true;
    }
    reply
}

/// The state one script run shares with `redis.call` and the hook.
pub(crate) struct Run<'c, 'n> {
    pub ctx: &'c mut Ctx<'n>,
    pub req: &'c Request,
    pub keys: std::ops::Range<usize>,
    /// The script's sha or the function's name (error messages, FUNCTION STATS).
    pub name: String,
    pub is_eval: bool,
    /// `redis.setresp(3)`: replies reach the script as RESP3 types.
    pub resp3: bool,
    /// EVAL_RO/FCALL_RO, or the `no-writes` flag: write commands are refused.
    pub read_only: bool,
    /// `allow-oom`: commands that need memory run even over `maxmemory`.
    pub allow_oom: bool,
    /// A write command ran: the script can no longer be killed, nor refused for memory.
    pub wrote: bool,
    /// Whether memory was short when the script first needed it (checked once).
    oom: Option<bool>,
    /// `allow-cross-slot-keys`: keys of several slots may be used (on one node).
    pub cross_slot: bool,
    /// The slot keys must be in (cluster-aware connections), from the first key seen.
    slot: Option<u16>,
    /// The slots of the declared keys, in their order.
    declared: Vec<u16>,
    /// The node's routing as this script last saw it (see [`Run::check_keys`]).
    routing: Option<Arc<crate::cluster::Routing>>,
    started: Instant,
    /// Set once the script has run [`REGISTER_AFTER`].
    info: Option<Arc<RunInfo>>,
    escaped: bool,
}

impl<'c, 'n> Run<'c, 'n> {
    pub fn new(
        ctx: &'c mut Ctx<'n>,
        req: &'c Request,
        keys: std::ops::Range<usize>,
        name: String,
        is_eval: bool,
        declared: Vec<u16>,
    ) -> Run<'c, 'n> {
        let slot = declared.first().copied();
        Run {
            ctx,
            req,
            keys,
            name,
            is_eval,
            resp3: false,
            read_only: false,
            allow_oom: false,
            wrote: false,
            oom: None,
            cross_slot: false,
            slot,
            declared,
            routing: None,
            started: Instant::now(),
            info: None,
            escaped: false,
        }
    }

    /// Cleans up after the script: its entry among the running scripts, its long-holder
    /// mark.
    pub fn finish(&mut self) {
        if let Some(info) = self.info.take() {
            self.ctx.node.scripting.unregister(&info);
        }
        if self.escaped {
            self.escaped = false;
            self.ctx.node.db.end_long();
        }
    }

    /// The hook's work: registration once the script runs for long, moving off the worker,
    /// and the kill.
    fn tick(&mut self) -> mlua::Result<()> {
        let el = self.started.elapsed();
        if self.info.is_none() && el >= REGISTER_AFTER {
            let info = self.ctx.node.scripting.register(RunInfo::new(
                self.started,
                self.is_eval,
                self.name.clone(),
                self.req.iter().map(Bytes::copy_from_slice).collect(),
                self.wrote,
            ));
            self.info = Some(info);
        }
        if !self.escaped && el >= ESCAPE_AFTER {
            self.escaped = true;
            self.ctx.node.db.begin_long();
            escape_worker();
        }
        if self.killed() {
            return Err(mlua::Error::runtime(KILLED));
        }
        Ok(())
    }

    fn killed(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|i| i.killed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs one command for `redis.call`/`redis.pcall`: its reply, errors included. Every
    /// error here is counted (INFO errorstats) once, here.
    fn command(&mut self, req: &Request) -> Frame {
        let mut counted = false;
        let reply = self.command_checked(req, &mut counted);
        if let Frame::Error(e) = &reply {
            if !counted {
                self.ctx.node.errors.count(e);
            }
        }
        reply
    }

    /// [`Run::command`]; `counted` is set when the command itself ran (and counted its
    /// error).
    fn command_checked(&mut self, req: &Request, counted: &mut bool) -> Frame {
        // Resolved once, as this connection may see it (internal subcommands are unknown
        // to clients), and run with that resolution.
        let (spec, cmd_id) = match resolve_for(self.ctx.session, req) {
            Ok(r) => r,
            Err(Frame::Error(e)) if e.starts_with("ERR unknown command") => {
                return Frame::err("ERR Unknown Redis command called from script")
            }
            Err(Frame::Error(e)) if e.starts_with("ERR wrong number") => {
                return Frame::err("ERR Wrong number of args calling Redis command from script")
            }
            Err(e) => return e,
        };
        let node = self.ctx.node;
        let idx = (cmd_id & 0xffff) as usize;
        // Like Redis 7.0, blocking commands (BLPOP...) are not allowed either.
        if spec.has(NOSCRIPT) || spec.has(BLOCKING) {
            node.cmdstats.reject(idx);
            return Frame::err("ERR This Redis command is not allowed from script");
        }
        if spec.has(WRITE) && self.read_only {
            node.cmdstats.reject(idx);
            return Frame::err("ERR Write commands are not allowed from read-only scripts.");
        }
        if spec.has(WRITE)
            && node
                .min_replicas_to_write
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        {
            node.cmdstats.reject(idx);
            return super::super::ERR_NOREPLICAS;
        }
        if spec.has(DENYOOM) && !self.allow_oom && !self.wrote {
            let oom = *self
                .oom
                .get_or_insert_with(|| node.db.make_room(self.ctx.now).is_err());
            if oom {
                node.cmdstats.reject(idx);
                return crate::args::ERR_OOM;
            }
        }
        // The slots the command will lock: its keys', or every slot for a command that
        // works on the keyspace or the server.
        let whole =
            spec.first_key <= 0 && (spec.has(KEYSPACE) || spec.has(ADMIN) || spec.has(WRITE));
        // One key (most commands a script calls) needs no list.
        let mut one = [0u16; 1];
        let many: Vec<u16>;
        let mut positions = spec.keys_in(req);
        let keys: &[u16] = match (positions.next(), positions.next()) {
            (None, _) => &[],
            (Some(i), None) => {
                one[0] = self.slot_of(req.arg(i));
                &one
            }
            (Some(i), Some(j)) => {
                many = [i, j]
                    .into_iter()
                    .chain(positions)
                    .map(|i| self.slot_of(req.arg(i)))
                    .collect();
                &many
            }
        };
        if let Some(e) = self.check_keys(keys) {
            return e;
        }
        let locked = if whole {
            node.db.lock_more(None, LOCK_PATIENCE)
        } else {
            node.db.lock_more(Some(keys), LOCK_PATIENCE)
        };
        if let Err(busy) = locked {
            return Frame::error(format!(
                "ERR the script could not lock slot {} (another transaction holds it; declare the keys a script uses)",
                busy.0
            ));
        }
        if spec.has(WRITE) {
            self.wrote = true;
            if let Some(i) = &self.info {
                i.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let was = std::mem::replace(&mut self.ctx.session.tx.running, true);
        let was_script = std::mem::replace(&mut self.ctx.session.in_script, true);
        let reply = run_command_resolved(self.ctx, req, spec, cmd_id);
        *counted = true;
        self.ctx.session.tx.running = was;
        self.ctx.session.in_script = was_script;
        reply
    }

    /// The slot of `key`: a declared key's is known already (comparing a few keys costs
    /// less than hashing one).
    fn slot_of(&self, key: &[u8]) -> u16 {
        for (n, i) in self.keys.clone().enumerate().take(8) {
            if self.req.arg(i) == key {
                if let Some(&s) = self.declared.get(n) {
                    return s;
                }
            }
        }
        chkv_common::key_slot(key)
    }

    /// In a cluster, keys must live here (and, for cluster-aware connections, in one slot
    /// unless the script allows cross-slot keys).
    fn check_keys(&mut self, slots: &[u16]) -> Option<Frame> {
        if slots.is_empty() {
            return None;
        }
        let node = self.ctx.node;
        // The routing is fetched again only when it changed since this script's last look.
        let generation = node.routing_generation();
        let routing = match self.routing.take() {
            Some(r) if r.generation == generation => r,
            _ => node.routing(),
        };
        let out = self.check_slots(&routing, slots);
        self.routing = Some(routing);
        out
    }

    fn check_slots(&mut self, routing: &crate::cluster::Routing, slots: &[u16]) -> Option<Frame> {
        if routing.standalone {
            return None;
        }
        for &s in slots {
            if routing.owner(s) != crate::cluster::Owner::Local
                || self.ctx.node.handoff.is_frozen(s)
            {
                return Some(Frame::err(
                    "ERR Script attempted to access a non local key in a cluster node",
                ));
            }
            if self.ctx.session.redirects == super::super::Redirects::Redirect && !self.cross_slot {
                match self.slot {
                    Some(first) if first != s => {
                        return Some(Frame::err(
                            "ERR Script attempted to access keys that do not hash to the same slot",
                        ))
                    }
                    None => self.slot = Some(s),
                    _ => {}
                }
            }
        }
        None
    }
}

/// The checks a script with flags (a shebang, or a function) passes before it runs.
pub(crate) fn check_flags(ctx: &mut Ctx<'_>, flags: ScriptFlags, ro: bool) -> Result<(), Frame> {
    if flags.has(ScriptFlags::NO_CLUSTER) && !ctx.node.routing().standalone {
        return Err(Frame::err(
            "ERR Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    if !flags.has(ScriptFlags::NO_WRITES) {
        if ro {
            return Err(Frame::err(
                "ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
        if ctx.node.min_replicas_to_write.load(Relaxed) > 0 {
            return Err(super::super::ERR_NOREPLICAS);
        }
        // Like Redis: a script that may write, without allow-oom, does not start when
        // memory is over `maxmemory` (inside EXEC the transaction checked already).
        if !flags.has(ScriptFlags::ALLOW_OOM)
            && !ctx.session.tx.running
            && ctx.node.db.make_room(ctx.now).is_err()
        {
            return Err(crate::args::ERR_OOM);
        }
    }
    Ok(())
}

/// Moves the rest of a long script off the async runtime's worker thread: the worker's
/// duties (every other connection it serves) pass to a new thread, and this one finishes
/// the script as a blocking thread (`tokio::task::block_in_place`). Returns once another
/// thread runs the runtime's tasks, so that a runtime with a single worker is not left
/// without one. Outside a multi-threaded runtime (unit tests) it does nothing.
fn escape_worker() {
    if !crate::store::blocking_allowed() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    tokio::task::block_in_place(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        handle.spawn(async move {
            let _ = tx.send(());
        });
        // A liveness bound, not a timing assumption: if no thread took the runtime over
        // by then, the script goes on here anyway.
        let _ = rx.recv_timeout(Duration::from_secs(5));
    });
}
