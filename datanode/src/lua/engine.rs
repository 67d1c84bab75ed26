//! One Lua 5.1 state and what runs in it: the sandbox, the `redis` API, conversions between
//! replies and Lua values, compiling and running EVAL scripts, loading FUNCTION libraries.
//!
//! A node has several engines (see [`super::Scripting`]); they hold the same scripts and
//! libraries, each compiled where it is used, so scripts on different slots run in
//! parallel. A script runs start to end on one thread, with its engine to itself.
//!
//! **The running script.** `redis.call` and the instruction hook need the script's command
//! context. It lives on the stack of `Engine::run` for the duration of one call into Lua,
//! and a thread-local holds a raw pointer to it (`CURRENT`); callbacks borrow it for the
//! length of one callback. Nothing else touches it while Lua runs.
//!
//! **Errors** follow Redis: a runtime error becomes a table `{err=...}` (string errors get
//! `ERR ` in front) with the source and line of the script frame that raised it, and the
//! reply is `<err> script: <name>, on <source>:<line>.`. `redis.call` raises the command's
//! error as such a table; `redis.pcall` returns it.
//!
//! Beside the engine and the running script here:
//! - `call`: `rawcall`, the core of `redis.call` and `redis.pcall`, on Lua's stack.
//! - `api`: the `redis` table's functions, registered into a state.
//! - `convert`: a script's result as a reply.

use super::library::{EvalHeader, ScriptFlags};
use super::RunInfo;
use crate::cmd::flags::*;
use crate::cmd::{resolve_checked, resolve_for, run_command_resolved, Ctx, Reply};
use crate::resp::{Frame, Protocol, Request};
use bytes::Bytes;
use mlua::{ffi, Function, HookTriggers, Lua, MultiValue, StdLib, Table, Value, VmState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod api;
mod call;
mod convert;

use api::*;
use call::*;
pub use convert::lua_to_frame;

/// The hook runs every this many Lua instructions (kill, BUSY bookkeeping, load timeout).
const HOOK_EVERY: u32 = 10_000;
/// A script running this long is registered as running: SCRIPT KILL, FUNCTION STATS and
/// the BUSY state see it. Shorter ones never touch shared state.
const REGISTER_AFTER: Duration = Duration::from_millis(2);
/// A script running this long moves off the async runtime's worker (see
/// [`escape_worker`]), so the worker serves its other connections meanwhile.
const ESCAPE_AFTER: Duration = Duration::from_millis(10);
/// How long a script waits for a slot it did not declare while another thread holds it.
const LOCK_PATIENCE: Duration = Duration::from_secs(1);
/// FUNCTION LOAD's time limit for running a library's code (Redis's).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// Every this many scripts, a step of Lua's garbage collector, like Redis...
const GC_EVERY: u32 = 50;
/// ...as big as this many kilobytes of allocation would trigger (Redis steps 50; a script
/// here allocates far less than 1 KB in Lua, and a smaller step keeps the state as small).
const GC_STEP_KB: std::ffi::c_int = 10;
/// Nesting limit when converting a script's result to a reply.
const MAX_DEPTH: usize = 1000;

pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// The field marking an error table whose error INFO errorstats counted already.
const COUNTED: &str = "ignore_error_stats_update";

/// Whether `v` is an error table already counted.
fn counted(v: &Value) -> bool {
    matches!(v, Value::Table(t) if t.raw_get::<bool>(COUNTED).unwrap_or(false))
}

/// The chunk name of the sandbox prelude (frames from it are skipped in error positions).
const PRELUDE_NAME: &str = "=chkv";

/// A compiled EVAL script: its flags (`None` without a shebang, Redis's compatibility
/// mode). The function itself stays in the engine's Lua table of scripts.
#[derive(Clone, Copy)]
pub(crate) struct Compiled {
    pub flags: Option<ScriptFlags>,
}

/// What `redis.register_function` collects while FUNCTION LOAD runs a library: the
/// definitions here, the closures straight into a Lua table (`funcs`, by lower-case name).
struct Loading {
    defs: Vec<super::library::FunctionDef>,
    funcs: Table,
    deadline: Instant,
}

thread_local! {
    /// The script running on this thread now (see the module docs), null when none. A
    /// thread runs one script at a time (scripts cannot start scripts), and a script runs
    /// start to end on one thread, so the callbacks and the hook of the engine running it
    /// find it here: one thread-local load per `redis.call`, nothing stored in Lua.
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

pub(crate) struct Engine {
    lua: Lua,
    /// The runtime globals behind the scripts' read-only `_G`.
    real: Table,
    /// The read-only `_G` scripts and libraries see.
    env: Table,
    /// Prelude: `run(f, is_eval, keys, args)` and `load_run(f)`.
    runner: Function,
    loader: Function,
    /// The node's script-cache epoch this engine was made in (SCRIPT FLUSH starts over).
    pub epoch: u64,
    /// Compiled scripts by sha, and their flags. The functions live in a Lua table: every
    /// value Rust holds is an entry in Lua 5.1's reference stack, which has room for about
    /// 8000, so nothing that grows with the data (scripts, functions) is held from Rust.
    scripts_lua: Table,
    scripts: HashMap<String, Compiled>,
    /// The script found last (clients run the same few scripts over and over): found
    /// again without a lookup in Lua.
    last: Option<(String, Compiled, Function)>,
    /// Scripts run since the last garbage collection step.
    runs: u32,
    /// Each loaded library's registry entry, and its closures (lower-case name -> function)
    /// in `libs_lua`.
    libs: HashMap<String, Arc<super::library::Library>>,
    libs_lua: Table,
    /// Closures of the library loaded last, until [`Engine::adopt`] keeps them.
    pending: Option<Table>,
    /// The registry generation `functions` was built from.
    functions_gen: u64,
    /// Lower-case function name -> its library, flags and name.
    functions: HashMap<String, (String, ScriptFlags, String)>,
}

/// A function found for FCALL: its closure, flags and name.
pub(crate) type FoundFunction = (Function, ScriptFlags, String);

/// A Lua error's message without mlua's traceback.
pub fn clean_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(s) | mlua::Error::SyntaxError { message: s, .. } => {
            s.lines().next().unwrap_or("").to_string()
        }
        mlua::Error::CallbackError { cause, .. } => clean_error(cause),
        mlua::Error::WithContext { cause, .. } => clean_error(cause),
        mlua::Error::ExternalError(e) => e.to_string(),
        mlua::Error::BadArgument {
            pos, name, cause, ..
        } => match name {
            Some(n) => format!("bad argument #{pos} to '{n}' ({})", clean_error(cause)),
            None => format!("bad argument #{pos} ({})", clean_error(cause)),
        },
        mlua::Error::FromLuaConversionError { from, to, .. } => {
            format!("{to} expected, got {from}")
        }
        other => other.to_string().lines().next().unwrap_or("").to_string(),
    }
}

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

/// A status or error text on one line: like Redis, CR and LF become spaces, so a script can
/// never end a reply early and inject another.
pub fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Formats a Lua number the way Redis passes it to a command (`%.17g`).
pub fn fmt_number(n: f64) -> String {
    if n.is_nan() {
        return "nan".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if n == 0.0 {
        return if n.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // %g: scientific when the exponent is < -4 or >= the precision (17).
    let sci = format!("{:.16e}", n);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (16 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, n)).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

impl Engine {
    pub fn new(epoch: u64) -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            mlua::LuaOptions::default(),
        )?;
        let real = lua.globals();
        for name in [
            "loadfile", "dofile", "require", "module", "load", "print", "package",
        ] {
            real.raw_set(name, Value::Nil)?;
        }
        let redis = lua.create_table()?;
        register_redis_api(&lua, &redis)?;
        real.raw_set("redis", redis)?;
        super::libs::register(&lua, &real)?;
        let loadenv = lua.create_table()?;
        let load_redis = lua.create_table()?;
        register_load_api(&lua, &load_redis)?;
        loadenv.raw_set("redis", load_redis)?;

        // SAFETY: `rawcall` is a Lua C function (see there).
        let rawcall = unsafe { lua.create_c_function(rawcall)? };
        let handler = lua.create_function(error_handler)?;
        let killed = lua.create_function(|lua, ()| Ok(is_killed(lua)))?;
        let prelude = lua
            .load(include_str!("prelude.lua"))
            .set_name(PRELUDE_NAME)
            .into_function()?;
        let (env, runner, loader): (Table, Function, Function) =
            prelude.call((real.clone(), loadenv, rawcall, handler, killed, KILLED))?;
        lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), hook);
        let scripts_lua = lua.create_table()?;
        let libs_lua = lua.create_table()?;
        Ok(Engine {
            lua,
            real,
            env,
            runner,
            loader,
            epoch,
            scripts_lua,
            scripts: HashMap::new(),
            last: None,
            runs: 0,
            libs: HashMap::new(),
            libs_lua,
            pending: None,
            functions_gen: u64::MAX,
            functions: HashMap::new(),
        })
    }

    /// Bytes the Lua state uses (INFO's `used_memory_lua`).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// The compiled script of `sha`, if this engine has it.
    pub fn script(&mut self, sha: &str) -> Option<(Compiled, Function)> {
        if let Some((last, c, f)) = &self.last {
            if last == sha {
                return Some((*c, f.clone()));
            }
        }
        let c = *self.scripts.get(sha)?;
        let f = self.scripts_lua.raw_get::<Function>(sha).ok()?;
        self.last = Some((sha.to_string(), c, f.clone()));
        Some((c, f))
    }

    /// Compiles an EVAL script (its shebang read first) and keeps it under `sha`. The error
    /// is the reply.
    pub fn compile(&mut self, sha: &str, body: &[u8]) -> Result<(Compiled, Function), Frame> {
        let (flags, code) = match super::library::eval_header(body) {
            Ok(EvalHeader::Legacy) => (None, body),
            Ok(EvalHeader::Shebang { flags, code_at }) => {
                (Some(flags), body.get(code_at..).unwrap_or(b""))
            }
            Err(e) => return Err(Frame::error(format!("ERR {e}"))),
        };
        let f = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                Frame::error(one_line(&format!(
                    "ERR Error compiling script (new function): {}",
                    clean_error(&e)
                )))
            })?;
        let c = Compiled { flags };
        self.scripts_lua
            .raw_set(sha, f.clone())
            .map_err(|e| Frame::error(format!("ERR {}", clean_error(&e))))?;
        self.scripts.insert(sha.to_string(), c);
        Ok((c, f))
    }

    /// Runs a library's code with the load-time globals and returns the functions it
    /// registered (their closures wait in the engine until [`Engine::adopt`]), or Redis's
    /// error text.
    pub fn load_library(
        &mut self,
        code: &[u8],
        timeout: Duration,
    ) -> Result<Vec<super::library::FunctionDef>, String> {
        let (_, code_at) = super::library::library_header(code)?;
        let f = self
            .lua
            .load(code.get(code_at..).unwrap_or(b""))
            .set_name("@user_function")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", clean_error(&e)))?;
        let funcs = self.lua.create_table().map_err(|e| clean_error(&e))?;
        self.lua.set_app_data(Loading {
            defs: Vec::new(),
            funcs: funcs.clone(),
            deadline: Instant::now() + timeout,
        });
        let out: mlua::Result<(bool, Value)> = self.loader.call(f);
        let loading = self.lua.remove_app_data::<Loading>();
        let (ok, err) =
            out.map_err(|e| format!("Error registering functions: {}", clean_error(&e)))?;
        if !ok {
            let msg = error_text(&err);
            let msg = msg.strip_prefix("ERR ").unwrap_or(&msg);
            return Err(format!("Error registering functions: {msg}"));
        }
        let defs = loading.map(|l| l.defs).unwrap_or_default();
        if defs.is_empty() {
            return Err("No functions registered".into());
        }
        self.pending = Some(funcs);
        Ok(defs)
    }

    /// Keeps the functions of `lib`, just loaded here by [`Engine::load_library`].
    pub fn adopt(&mut self, lib: Arc<super::library::Library>) {
        if let Some(funcs) = self.pending.take() {
            if self.libs_lua.raw_set(lib.name.as_str(), funcs).is_ok() {
                self.libs.insert(lib.name.clone(), lib);
            }
        }
        // The function map is rebuilt at the next lookup.
        self.functions_gen = u64::MAX;
    }

    /// The function `name` (case-insensitive) of `registry`, loading what this engine has
    /// not loaded of it yet.
    pub fn function(
        &mut self,
        registry: &super::library::Registry,
        name: &str,
    ) -> Option<FoundFunction> {
        if self.functions_gen != registry.generation {
            self.sync(registry);
        }
        self.cached_function(name)
    }

    /// Whether the function map is current for registry generation `generation`.
    pub fn functions_current(&self, generation: u64) -> bool {
        self.functions_gen == generation
    }

    pub fn cached_function(&self, name: &str) -> Option<FoundFunction> {
        let key = name.to_ascii_lowercase();
        let (lib, flags, display) = self.functions.get(&key)?;
        let funcs: Table = self.libs_lua.raw_get(lib.as_str()).ok()?;
        let f: Function = funcs.raw_get(key.as_str()).ok()?;
        Some((f, *flags, display.clone()))
    }

    fn sync(&mut self, registry: &super::library::Registry) {
        let stale: Vec<String> = self
            .libs
            .iter()
            .filter(|(name, l)| registry.library(name).is_none_or(|r| !Arc::ptr_eq(r, l)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.libs.remove(&name);
            let _ = self.libs_lua.raw_set(name.as_str(), Value::Nil);
        }
        for lib in registry.libraries() {
            if self.libs.contains_key(&lib.name) {
                continue;
            }
            // The code loaded once already: a generous limit, only against a stuck engine.
            match self.load_library(&lib.code, Duration::from_secs(30)) {
                Ok(_) => self.adopt(lib.clone()),
                Err(e) => {
                    tracing::warn!(library = %lib.name, error = %e, "library failed to load in an engine")
                }
            }
        }
        self.functions.clear();
        for l in self.libs.values() {
            for def in &l.functions {
                self.functions.insert(
                    def.name.to_ascii_lowercase(),
                    (l.name.clone(), def.flags, def.name.clone()),
                );
            }
        }
        self.functions_gen = registry.generation;
    }

    /// Runs `f` (a script when `function` is false: KEYS and ARGV become globals; else a
    /// function called with the keys and arguments tables) for the command in `ctx`.
    pub fn run(&mut self, run: &mut Run<'_, '_>, f: &Function) -> Reply {
        let req = run.req;
        let keys = run.keys.clone();
        let is_eval = run.is_eval;
        let ptr: *mut Run<'_, '_> = run;
        let current = Current::enter(ptr);
        // The keys and arguments tables are made on Lua's stack, and the prelude's `run`
        // gets them there (an EVAL script sees them as the globals KEYS and ARGV).
        // SAFETY: the closure runs protected (a Lua error unwinds to `exec_raw`) and holds
        // nothing to drop; it pushes at most 3 values beyond what it checks room for.
        let out: mlua::Result<(bool, Value)> = unsafe {
            self.lua.exec_raw((&self.runner, f, is_eval), |state| {
                ffi::luaL_checkstack(state, 8, std::ptr::null());
                push_array(state, req, keys.clone());
                push_array(state, req, keys.end..req.len());
                ffi::lua_call(state, 4, 2);
            })
        };
        drop(current);
        // Like Redis, a step of garbage collection every few scripts keeps the state small
        // and its collections short (rather than a full cycle now and then).
        self.runs += 1;
        if self.runs >= GC_EVERY {
            self.runs = 0;
            let _ = self.lua.gc_step_kbytes(GC_STEP_KB);
        }
        if is_eval && out.is_err() {
            // The prelude clears them once the script has run; not when it failed itself.
            let _ = self.real.raw_set("KEYS", Value::Nil);
            let _ = self.real.raw_set("ARGV", Value::Nil);
        }
        let resp3 = run.ctx.session.proto == Protocol::Resp3;
        match out {
            Ok((true, v)) => {
                if counted(&v) {
                    run.ctx.session.error_counted = true;
                }
                Ok(lua_to_frame(&v, resp3, 0))
            }
            Ok((false, err)) => {
                if counted(&err) {
                    run.ctx.session.error_counted = true;
                }
                Err(run.error_reply(&err))
            }
            Err(e) => Err(Frame::error(one_line(&format!(
                "ERR {} script: {}",
                clean_error(&e),
                run.name
            )))),
        }
    }
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

    /// The reply for a script that failed with `err` (the handler's table).
    fn error_reply(&self, err: &Value) -> Frame {
        let (msg, source, line) = match err {
            Value::Table(t) => (
                t.raw_get::<Option<mlua::String>>("err")
                    .ok()
                    .flatten()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|| "ERR unknown error".into()),
                t.raw_get::<Option<mlua::String>>("source")
                    .ok()
                    .flatten()
                    .map(|s| s.to_string_lossy()),
                t.raw_get::<Option<i64>>("line").ok().flatten(),
            ),
            other => (format!("ERR {}", error_text(other)), None, None),
        };
        let text = match (source, line) {
            (Some(s), Some(l)) => format!("{msg} script: {}, on {s}:{l}.", self.name),
            _ => format!("{msg} script: {}.", self.name),
        };
        Frame::error(one_line(&text))
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
            return Err(rt(KILLED));
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
            return crate::cmd::ERR_NOREPLICAS;
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
            if self.ctx.session.redirects == crate::cmd::Redirects::Redirect && !self.cross_slot {
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

/// Pushes a table of `req`'s arguments `range` (KEYS, ARGV) on Lua's stack.
///
/// # Safety
/// `state` is a Lua state in protected mode with room for two more values.
unsafe fn push_array(state: *mut ffi::lua_State, req: &Request, range: std::ops::Range<usize>) {
    let n = std::ffi::c_int::try_from(range.len()).unwrap_or(std::ffi::c_int::MAX);
    ffi::lua_createtable(state, n, 0);
    for (at, i) in (1..=n).zip(range) {
        let a = req.arg(i);
        ffi::lua_pushlstring_(state, a.as_ptr().cast(), a.len());
        ffi::lua_rawseti_(state, -2, at);
    }
}

/// The script running on this thread, if any.
fn current(_lua: &Lua) -> Option<*mut Run<'static, 'static>> {
    let p = CURRENT.with(|c| c.get());
    (!p.is_null()).then_some(p)
}

fn is_killed(lua: &Lua) -> bool {
    match current(lua) {
        // SAFETY: see `Current`.
        Some(p) => unsafe { &*p }.killed(),
        None => false,
    }
}

fn hook(lua: &Lua, _: mlua::Debug) -> mlua::Result<VmState> {
    if let Some(l) = lua.app_data_ref::<Loading>() {
        if Instant::now() > l.deadline {
            return Err(rt("FUNCTION LOAD timeout"));
        }
        return Ok(VmState::Continue);
    }
    if let Some(p) = current(lua) {
        // SAFETY: see `Current`; no other reference to the `Run` is alive while Lua runs
        // instructions.
        unsafe { &mut *p }.tick()?;
    }
    Ok(VmState::Continue)
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

/// The text of an error value (a string, a table's `err`, an mlua error).
fn error_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Error(e) => clean_error(e),
        Value::Table(t) => t
            .raw_get::<Option<mlua::String>>("err")
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => fmt_number(*n),
        other => format!("{:?}", other.type_name()),
    }
}

/// xpcall's message handler: the error as a table `{err=..., source=..., line=...}` with
/// the position of the innermost script frame (C frames and the prelude's skipped).
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match &err {
        Value::Table(t) => {
            // Redis's error tables already carry their code.
            if t.raw_get::<Option<mlua::String>>("err")?.is_some() {
                t.clone()
            } else {
                let t2 = lua.create_table()?;
                t2.raw_set("err", "ERR unknown error")?;
                t2
            }
        }
        other => {
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {}", error_text(other)))?;
            t
        }
    };
    for level in 1..64 {
        let Some(d) = lua.inspect_stack(level) else {
            break;
        };
        let src = d.source();
        if src.what == "C" || src.source.as_deref() == Some(PRELUDE_NAME) {
            continue;
        }
        let source = src.source.map(|s| s.into_owned());
        let line = d.curr_line();
        if let Some(source) = source {
            t.raw_set("source", source)?;
            t.raw_set("line", line)?;
        }
        break;
    }
    Ok(t)
}

#[cfg(test)]
mod tests;
