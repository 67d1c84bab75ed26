//! One Lua 5.1 state and what runs in it: the sandbox, the `redis` API, conversions between
//! replies and Lua values, compiling and running EVAL scripts, loading FUNCTION libraries.
//!
//! A node has several engines (see [`super::Scripting`]); they hold the same scripts and
//! libraries, each compiled where it is used, so scripts on different slots run in
//! parallel. A script runs start to end on one thread, with its engine to itself.
//!
//! **The running script.** `redis.call`, `redis.setresp`, `redis.acl_check_cmd` and the
//! instruction hook act on the script running on this thread: its command context, which
//! the command side owns (`crate::cmd::scripting::run`). An engine reaches it through a
//! `Host`, given when the engine is made; `Engine::run` lets the caller make its script
//! the running one for the call into Lua.
//!
//! **Errors** follow Redis: a runtime error becomes a table `{err=...}` (string errors get
//! `ERR ` in front) with the source and line of the script frame that raised it, and the
//! reply is `<err> script: <name>, on <source>:<line>.`. `redis.call` raises the command's
//! error as such a table; `redis.pcall` returns it.
//!
//! Beside the engine here:
//! - `call`: `redis.call` and `redis.pcall`, on Lua's stack.
//! - `api`: the `redis` table's functions, registered into a state.
//! - `convert`: a script's result as a reply.

use super::library::{EvalHeader, ScriptFlags};
use crate::resp::{Frame, Request};
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
/// FUNCTION LOAD's time limit for running a library's code (Redis's).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// Lua's garbage collector starts a cycle once the state has grown to this percentage of
/// what the last cycle left live (Lua's default is 200). Its collection is incremental,
/// paid in small steps as scripts allocate; nothing else drives it. (Redis, and CHKV
/// before, also stepped it by hand every 50 scripts: each such step takes a debt of
/// kilobytes that Lua pays at once, and restarts a finished cycle, so a cycle ran every
/// few dozen scripts whatever they allocated: 1,100 to 1,400 of EVALSHA's 19,000
/// instructions. At 150 the state stays within Redis's "EVAL does not leak in the Lua
/// stack" bound of 100 KB, which the default's 200 passes only just.)
const GC_PAUSE: std::ffi::c_int = 150;
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

/// What an engine asks of the command side, which runs commands and holds the script
/// running on this thread (see the module docs). The node has one host,
/// `crate::cmd::scripting::run::CmdHost`; an engine is made for it ([`Engine::new`]).
pub(crate) trait Host: 'static {
    /// Whether a script runs on this thread now.
    fn running() -> bool;
    /// Runs one command for the running script (`redis.call`, `redis.pcall`; called only
    /// while one runs): its reply, errors included, and whether the script reads replies
    /// as RESP3 (`redis.setresp(3)`).
    fn call(req: &Request) -> (Frame, bool);
    /// `redis.setresp`: whether the running script reads replies as RESP3 from now on.
    fn set_resp3(on: bool);
    /// `redis.acl_check_cmd`: whether the running script's user may run `req`; `None` when
    /// `req` is no valid command.
    fn acl_check(req: &Request) -> Option<bool>;
    /// The hook's turn (every [`HOOK_EVERY`] instructions) for the running script, if any:
    /// an error (the script was killed) stops it.
    fn tick() -> mlua::Result<()>;
    /// Whether the running script is being killed (SCRIPT KILL, FUNCTION KILL).
    fn killed() -> bool;
}

pub(crate) struct Engine {
    lua: Lua,
    /// The runtime globals behind the scripts' read-only `_G`.
    real: Table,
    /// The read-only `_G` scripts and libraries see.
    env: Table,
    /// The error handler scripts and functions run under (a failure's `{err=...}` table).
    handler: Function,
    /// The names KEYS and ARGV, held so that setting them finds them interned.
    keys_name: mlua::String,
    argv_name: mlua::String,
    /// Prelude: `load_run(f)`.
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
    /// A fresh state for script-cache epoch `epoch`, whose `redis.call` and hook act
    /// through `H`.
    pub fn new<H: Host>(epoch: u64) -> mlua::Result<Engine> {
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
        register_redis_api::<H>(&lua, &redis)?;
        real.raw_set("redis", redis)?;
        super::libs::register(&lua, &real)?;
        let loadenv = lua.create_table()?;
        let load_redis = lua.create_table()?;
        register_load_api(&lua, &load_redis)?;
        loadenv.raw_set("redis", load_redis)?;

        let handler = lua.create_function(error_handler)?;
        let killed = lua.create_function(|_, ()| Ok(H::killed()))?;
        let prelude = lua
            .load(include_str!("prelude.lua"))
            .set_name(PRELUDE_NAME)
            .into_function()?;
        let (env, loader): (Table, Function) =
            prelude.call((real.clone(), loadenv, handler.clone(), killed, KILLED))?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            hook::<H>,
        );
        let scripts_lua = lua.create_table()?;
        let libs_lua = lua.create_table()?;
        lua.gc_set_pause(GC_PAUSE);
        let keys_name = lua.create_string("KEYS")?;
        let argv_name = lua.create_string("ARGV")?;
        Ok(Engine {
            lua,
            real,
            env,
            handler,
            keys_name,
            argv_name,
            loader,
            epoch,
            scripts_lua,
            scripts: HashMap::new(),
            last: None,
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

    /// Runs `f` (a script when `is_eval`: KEYS and ARGV become globals; else a function
    /// called with the keys and arguments tables) with `req`'s arguments `keys` as its keys
    /// and the ones after as its arguments: whether it returned, and its result or its
    /// error (see [`script_reply`]). `enter` makes the script the one running on this thread
    /// (see [`Host`]) for as long as the guard it returns lives: the call into Lua.
    pub fn run<G>(
        &mut self,
        f: &Function,
        is_eval: bool,
        req: &Request,
        keys: std::ops::Range<usize>,
        enter: impl FnOnce() -> G,
    ) -> mlua::Result<(bool, Value)> {
        let current = enter();
        // The script runs under the error handler straight from here (no Lua function in
        // between, no Lua closure made per call): an EVAL script as `f()` with the keys and
        // arguments tables as the globals KEYS and ARGV while it runs, a function as
        // `f(keys, args)`. What is left is whether it returned, and its result or the
        // handler's error table.
        // SAFETY: the closure runs protected (a Lua error unwinds to `exec_raw`) and holds
        // nothing to drop. Its stack starts as [real, handler, f, "KEYS", "ARGV"] and
        // grows by at most 4, within the 8 it checks room for; it ends as [ok, result].
        let out: mlua::Result<(bool, Value)> = unsafe {
            let args = (
                &self.real,
                &self.handler,
                f,
                &self.keys_name,
                &self.argv_name,
            );
            self.lua.exec_raw(args, |state| {
                const REAL: std::ffi::c_int = 1;
                const HANDLER: std::ffi::c_int = 2;
                const F: std::ffi::c_int = 3;
                const KEYS: std::ffi::c_int = 4;
                const ARGV: std::ffi::c_int = 5;
                ffi::luaL_checkstack(state, 8, std::ptr::null());
                let nargs = if is_eval {
                    ffi::lua_pushvalue(state, KEYS);
                    push_array(state, req, keys.clone());
                    ffi::lua_rawset(state, REAL);
                    ffi::lua_pushvalue(state, ARGV);
                    push_array(state, req, keys.end..req.len());
                    ffi::lua_rawset(state, REAL);
                    ffi::lua_pushvalue(state, F);
                    0
                } else {
                    ffi::lua_pushvalue(state, F);
                    push_array(state, req, keys.clone());
                    push_array(state, req, keys.end..req.len());
                    2
                };
                let status = ffi::lua_pcall(state, nargs, 1, HANDLER);
                if is_eval {
                    for name in [KEYS, ARGV] {
                        ffi::lua_pushvalue(state, name);
                        ffi::lua_pushnil(state);
                        ffi::lua_rawset(state, REAL);
                    }
                }
                // [real, handler, f, KEYS, ARGV, result] -> [ok, result]
                ffi::lua_replace(state, HANDLER);
                ffi::lua_pushboolean(state, std::ffi::c_int::from(status == 0));
                ffi::lua_replace(state, REAL);
                ffi::lua_settop(state, 2);
            })
        };
        drop(current);
        if is_eval && out.is_err() {
            // Cleared above once the script has run; not when setting them up failed.
            let _ = self.real.raw_set("KEYS", Value::Nil);
            let _ = self.real.raw_set("ARGV", Value::Nil);
        }
        out
    }
}

/// The reply of the script `name` that ended with `out` ([`Engine::run`]), its values
/// converted as the client reads them (`resp3`), and whether it is an error INFO errorstats
/// counted already.
pub(crate) fn script_reply(
    out: mlua::Result<(bool, Value)>,
    name: &str,
    resp3: bool,
) -> (Result<Frame, Frame>, bool) {
    match out {
        Ok((true, v)) => (Ok(lua_to_frame(&v, resp3, 0)), counted(&v)),
        Ok((false, err)) => (Err(error_reply(&err, name)), counted(&err)),
        Err(e) => (
            Err(Frame::error(one_line(&format!(
                "ERR {} script: {name}",
                clean_error(&e)
            )))),
            false,
        ),
    }
}

/// The reply for the script `name` that failed with `err` (the handler's table).
fn error_reply(err: &Value, name: &str) -> Frame {
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
        (Some(s), Some(l)) => format!("{msg} script: {name}, on {s}:{l}."),
        _ => format!("{msg} script: {name}."),
    };
    Frame::error(one_line(&text))
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

/// The instruction hook: FUNCTION LOAD's time limit while a library loads, else the
/// running script's turn ([`Host::tick`]).
fn hook<H: Host>(lua: &Lua, _: mlua::Debug) -> mlua::Result<VmState> {
    if let Some(l) = lua.app_data_ref::<Loading>() {
        if Instant::now() > l.deadline {
            return Err(rt("FUNCTION LOAD timeout"));
        }
        return Ok(VmState::Continue);
    }
    H::tick()?;
    Ok(VmState::Continue)
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
