//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT LOAD/EXISTS/FLUSH, with
//! Redis's Lua 5.1 (vendored through `mlua`).
//!
//! A node has one Lua state and a cache of scripts by SHA1 ([`Scripts`]). A script runs
//! atomically like EXEC: it holds the slots of its declared keys (every slot when it runs
//! inside a transaction that holds them already, see `Db::lock_tx`), and `redis.call` runs
//! commands through the ordinary dispatcher, which reuses those locks. In a cluster the
//! declared keys decide where it runs (see `exec::plan`), like a command's keys.
//!
//! Conversions follow Redis: integer reply -> number, bulk -> string, nil bulk/array ->
//! false, array -> table, status -> `{ok=...}`, error -> `{err=...}`; and back: number ->
//! integer (truncated), string -> bulk, true -> 1, false/nil -> nil bulk, table -> array up
//! to its first nil, `{ok=}`/`{err=}` -> status/error. `redis.setresp(3)` switches the
//! replies scripts see to RESP3 types (maps, sets, doubles, booleans, nulls).
//!
//! The sandbox: no `io`, `os`, `loadfile`, `dofile`, `require`; reading an unknown global
//! is an error ("Script attempted to access nonexistent global variable"), and scripts
//! cannot create globals. A script that runs longer than `lua-time-limit` (5 s) is stopped
//! with an error; unlike Redis there is no `-BUSY` window nor SCRIPT KILL: the node's
//! commands wait for the script instead.

use super::{flags::*, resolve_checked, run_command, spec, CommandSpec, Ctx, Reply, NO_KEYS};
use crate::resp::{Frame, Protocol, Request};
use bytes::Bytes;
use chkv_common::key_slot;
use mlua::{Function, Lua, MultiValue, Table, Value as LuaValue, VmState};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const G: &str = "scripting";

#[rustfmt::skip]
pub static COMMANDS: [CommandSpec; 5] = [
    spec("eval", -3, NOSCRIPT | STALE, NO_KEYS, G, "2.6.0",
        "Executes a server-side Lua script.", "script numkeys [key [key ...]] [arg [arg ...]]",
        eval),
    spec("evalsha", -3, NOSCRIPT | STALE, NO_KEYS, G, "2.6.0",
        "Executes a server-side Lua script by SHA1 digest.",
        "sha1 numkeys [key [key ...]] [arg [arg ...]]", evalsha),
    spec("eval_ro", -3, NOSCRIPT | STALE | READONLY, NO_KEYS, G, "7.0.0",
        "Executes a read-only server-side Lua script.",
        "script numkeys [key [key ...]] [arg [arg ...]]", eval_ro),
    spec("evalsha_ro", -3, NOSCRIPT | STALE | READONLY, NO_KEYS, G, "7.0.0",
        "Executes a read-only server-side Lua script by SHA1 digest.",
        "sha1 numkeys [key [key ...]] [arg [arg ...]]", evalsha_ro),
    CommandSpec {
        subcommands: &SCRIPT_SUBCOMMANDS,
        ..spec("script", -2, NOSCRIPT, NO_KEYS, G, "2.6.0",
            "A container for Lua scripts management commands.", "subcommand", script_help)
    },
];

#[rustfmt::skip]
static SCRIPT_SUBCOMMANDS: [CommandSpec; 4] = [
    spec("load", 3, NOSCRIPT | STALE, NO_KEYS, G, "2.6.0",
        "Loads a server-side Lua script to the script cache.", "script", script_load),
    spec("exists", -3, NOSCRIPT | STALE, NO_KEYS, G, "2.6.0",
        "Determines whether server-side Lua scripts exist in the script cache.",
        "sha1 [sha1 ...]", script_exists),
    spec("flush", -2, NOSCRIPT, NO_KEYS, G, "2.6.0",
        "Removes all server-side Lua scripts from the script cache.", "[ASYNC | SYNC]",
        script_flush),
    spec("help", 2, LOADING | STALE, NO_KEYS, G, "5.0.0",
        "Returns helpful text about the different subcommands.", "", script_help),
];

/// Longest a script may run before it is stopped (Redis's `lua-time-limit` default).
const TIME_LIMIT: Duration = Duration::from_millis(5000);
/// Scripts kept in the cache at most; SCRIPT FLUSH empties it.
const MAX_SCRIPTS: usize = 100_000;

/// A node's Lua state and script cache.
pub struct Scripts {
    inner: Mutex<Option<Engine>>,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            inner: Mutex::new(None),
        }
    }
}

struct Engine {
    lua: Lua,
    /// SHA1 (lower-case hex) -> compiled function.
    cache: HashMap<String, Function>,
}

/// The SHA1 of `body`, in lower-case hex (the script's name).
pub fn sha1hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn new_engine() -> mlua::Result<Engine> {
    use mlua::StdLib;
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
    let lua = Lua::new_with(libs, mlua::LuaOptions::default())?;
    let g = lua.globals();
    for name in ["loadfile", "dofile", "require", "module", "load", "print"] {
        g.raw_set(name, LuaValue::Nil)?;
    }
    let redis = lua.create_table()?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, s: mlua::String| Ok(sha1hex(&s.as_bytes())))?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, s: mlua::String| {
            let t = lua.create_table()?;
            t.raw_set("err", s)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, s: mlua::String| {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|_, (level, msg): (i64, mlua::String)| {
            tracing::info!(level, msg = %msg.to_string_lossy(), "script log");
            Ok(())
        })?,
    )?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
    ] {
        redis.raw_set(name, v)?;
    }
    g.raw_set("redis", redis)?;
    // Protected globals: reading an unknown name or creating one is an error.
    let meta = lua.create_table()?;
    meta.raw_set(
        "__index",
        lua.create_function(|_, (_t, k): (Table, mlua::String)| -> mlua::Result<()> {
            Err(mlua::Error::runtime(format!(
                "Script attempted to access nonexistent global variable '{}'",
                k.to_string_lossy()
            )))
        })?,
    )?;
    meta.raw_set(
        "__newindex",
        lua.create_function(|_, (_t, k): (Table, mlua::String)| -> mlua::Result<()> {
            Err(mlua::Error::runtime(format!(
                "Attempt to modify a readonly table: Script attempted to create global variable '{}'",
                k.to_string_lossy()
            )))
        })?,
    )?;
    g.set_metatable(Some(meta));
    Ok(Engine {
        lua,
        cache: HashMap::new(),
    })
}

impl Engine {
    fn load(&mut self, body: &[u8]) -> Result<String, Frame> {
        let sha = sha1hex(body);
        if self.cache.contains_key(&sha) {
            return Ok(sha);
        }
        if self.cache.len() >= MAX_SCRIPTS {
            return Err(Frame::err("ERR too many scripts cached; SCRIPT FLUSH"));
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                Frame::error(format!(
                    "ERR Error compiling script (new function): {}",
                    clean_error(&e)
                ))
            })?;
        self.cache.insert(sha.clone(), f);
        Ok(sha)
    }
}

/// A status or error text on one line: like Redis, CR and LF become spaces, so a script can
/// never end a reply early and inject another.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A Lua error's message without mlua's traceback.
fn clean_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(s) | mlua::Error::SyntaxError { message: s, .. } => {
            s.lines().next().unwrap_or("").to_string()
        }
        mlua::Error::CallbackError { cause, .. } => clean_error(cause),
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string().lines().next().unwrap_or("").to_string(),
    }
}

/// The key count and positions of an EVAL-family request, or its error.
pub fn eval_keys(req: &Request) -> Result<std::ops::Range<usize>, Frame> {
    let n = super::parse_i64(req.arg(2)).ok_or(super::ERR_NOT_INT)?;
    if n < 0 {
        return Err(Frame::err("ERR Number of keys can't be negative"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > req.len() - 3 {
        return Err(Frame::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(3..3 + n)
}

fn eval(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_script(ctx, req, Source::Body, false)
}

fn evalsha(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_script(ctx, req, Source::Sha, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_script(ctx, req, Source::Body, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_script(ctx, req, Source::Sha, true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Body,
    Sha,
}

fn engine(slot: &mut Option<Engine>) -> Result<&mut Engine, Frame> {
    if slot.is_none() {
        *slot = Some(
            new_engine()
                .map_err(|e| Frame::error(format!("ERR cannot start the Lua interpreter: {e}")))?,
        );
    }
    slot.as_mut().ok_or(Frame::err("ERR no Lua interpreter"))
}

fn run_script(ctx: &mut Ctx<'_>, req: &Request, source: Source, read_only: bool) -> Reply {
    let keys = eval_keys(req)?;
    // The slots first, then the interpreter: the order EXEC (which holds slots and may run
    // a script) takes them in too.
    let slots: Vec<u16> = keys.clone().map(|i| key_slot(req.arg(i))).collect();
    let _lock = ctx.node.db.lock_tx(Some(slots));
    let scripts = &ctx.node.scripts;
    let mut guard = scripts.inner.lock();
    let eng = engine(&mut guard)?;
    let f = match source {
        Source::Body => {
            let sha = eng.load(req.arg(1))?;
            eng.cache.get(&sha).cloned()
        }
        Source::Sha => {
            let sha = String::from_utf8_lossy(req.arg(1)).to_ascii_lowercase();
            eng.cache.get(&sha).cloned()
        }
    };
    let Some(f) = f else {
        return Err(Frame::err("NOSCRIPT No matching script. Please use EVAL."));
    };
    let lua = eng.lua.clone();
    let result = call_script(&lua, ctx, req, keys, &f, read_only);
    drop(_lock);
    // A script's globals do not outlive it.
    let _ = lua.globals().raw_set("KEYS", LuaValue::Nil);
    let _ = lua.globals().raw_set("ARGV", LuaValue::Nil);
    lua.remove_hook();
    result
}

/// The state one script run shares with its `redis.*` callbacks.
struct Run<'c, 'n> {
    ctx: &'c mut Ctx<'n>,
    resp3: bool,
    read_only: bool,
}

fn call_script(
    lua: &Lua,
    ctx: &mut Ctx<'_>,
    req: &Request,
    keys: std::ops::Range<usize>,
    f: &Function,
    read_only: bool,
) -> Reply {
    let lua_err = |e: mlua::Error| Frame::error(format!("ERR {}", clean_error(&e)));
    let g = lua.globals();
    let key_t = lua.create_table().map_err(lua_err)?;
    for (n, i) in keys.clone().enumerate() {
        key_t
            .raw_set(n + 1, lua.create_string(req.arg(i)).map_err(lua_err)?)
            .map_err(lua_err)?;
    }
    let argv = lua.create_table().map_err(lua_err)?;
    for (n, i) in (keys.end..req.len()).enumerate() {
        argv.raw_set(n + 1, lua.create_string(req.arg(i)).map_err(lua_err)?)
            .map_err(lua_err)?;
    }
    g.raw_set("KEYS", key_t).map_err(lua_err)?;
    g.raw_set("ARGV", argv).map_err(lua_err)?;
    let started = Instant::now();
    lua.set_hook(
        mlua::HookTriggers::new().every_nth_instruction(100_000),
        move |_, _| {
            if started.elapsed() > TIME_LIMIT {
                Err(mlua::Error::runtime(
                    "Script killed: it ran longer than lua-time-limit",
                ))
            } else {
                Ok(VmState::Continue)
            }
        },
    );
    let run = RefCell::new(Run {
        ctx,
        resp3: false,
        read_only,
    });
    let out = lua.scope(|scope| {
        let redis: Table = g.raw_get("redis")?;
        let run_ref = &run;
        redis.raw_set(
            "call",
            scope.create_function(move |lua, args: MultiValue| {
                let reply = redis_call(run_ref, args)?;
                let resp3 = run_ref.borrow().resp3;
                match reply {
                    Frame::Error(e) => Err(mlua::Error::runtime(e.into_owned())),
                    f => frame_to_lua(lua, f, resp3),
                }
            })?,
        )?;
        redis.raw_set(
            "pcall",
            scope.create_function(move |lua, args: MultiValue| {
                let reply = match redis_call(run_ref, args) {
                    Ok(r) => r,
                    Err(e) => Frame::error(clean_error(&e)),
                };
                let resp3 = run_ref.borrow().resp3;
                frame_to_lua(lua, reply, resp3)
            })?,
        )?;
        redis.raw_set(
            "setresp",
            scope.create_function(move |_, v: i64| {
                match v {
                    2 => run_ref.borrow_mut().resp3 = false,
                    3 => run_ref.borrow_mut().resp3 = true,
                    _ => return Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
                }
                Ok(())
            })?,
        )?;
        let v: LuaValue = f.call(())?;
        Ok(v)
    });
    let proto = run.borrow().ctx.session.proto;
    match out {
        Ok(v) => Ok(lua_to_frame(&v, proto == Protocol::Resp3, 0)),
        Err(e) => {
            let msg = clean_error(&e);
            // An error reply raised with redis.call keeps its code; others are ERR.
            let msg = msg
                .strip_prefix("user_script:")
                .map(|rest| format!("ERR user_script:{rest}"))
                .unwrap_or_else(|| {
                    if msg.split(' ').next().is_some_and(|c| {
                        !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase())
                    }) {
                        msg.clone()
                    } else {
                        format!("ERR {msg}")
                    }
                });
            Err(Frame::error(format!(
                "{} script: {}, on @user_script.",
                one_line(&msg),
                sha1hex(req.arg(1))
            )))
        }
    }
}

/// Runs one `redis.call`/`redis.pcall`: the command's reply (errors as `Frame::Error`), or a
/// Lua error for a call that cannot be made at all.
fn redis_call(run: &RefCell<Run<'_, '_>>, args: MultiValue) -> mlua::Result<Frame> {
    if args.is_empty() {
        return Err(mlua::Error::runtime(
            "Please specify at least one argument for this redis lib call",
        ));
    }
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            LuaValue::String(s) => parts.push(s.as_bytes().to_vec()),
            LuaValue::Integer(i) => parts.push(i.to_string().into_bytes()),
            LuaValue::Number(n) => parts.push(lua_number(*n).into_bytes()),
            _ => {
                return Err(mlua::Error::runtime(
                    "Lua redis lib command arguments must be strings or integers",
                ))
            }
        }
    }
    let req = Request::from_args(&parts);
    let spec = match resolve_checked(&req) {
        Ok((spec, _)) => spec,
        Err(Frame::Error(e)) if e.starts_with("ERR unknown command") => {
            return Ok(Frame::err("ERR Unknown Redis command called from script"))
        }
        Err(Frame::Error(e)) if e.starts_with("ERR wrong number") => {
            return Ok(Frame::err(
                "ERR Wrong number of args calling Redis command from script",
            ))
        }
        Err(e) => return Ok(e),
    };
    let mut r = run.borrow_mut();
    if spec.has(NOSCRIPT) {
        return Ok(Frame::err(
            "ERR This Redis command is not allowed from script",
        ));
    }
    if r.read_only && spec.has(WRITE) {
        return Ok(Frame::err(
            "ERR Write commands are not allowed from read-only scripts.",
        ));
    }
    let ctx = &mut *r.ctx;
    let was = std::mem::replace(&mut ctx.session.tx.running, true);
    let reply = run_command(ctx, &req);
    ctx.session.tx.running = was;
    Ok(reply)
}

/// A Lua number as Redis passes it to a command (`%.17g`).
fn lua_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e17 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn frame_to_lua(lua: &Lua, f: Frame, resp3: bool) -> mlua::Result<LuaValue> {
    Ok(match f {
        Frame::Integer(i) => LuaValue::Integer(i),
        Frame::Bulk(b) | Frame::Verbatim(b) => LuaValue::String(lua.create_string(&b)?),
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s.as_ref())?;
            LuaValue::Table(t)
        }
        Frame::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e.as_ref())?;
            LuaValue::Table(t)
        }
        Frame::Null | Frame::NullArray => {
            if resp3 {
                LuaValue::Nil
            } else {
                LuaValue::Boolean(false)
            }
        }
        Frame::Array(items) | Frame::Push(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
            }
            LuaValue::Table(t)
        }
        Frame::Map(pairs) if resp3 => {
            let m = lua.create_table()?;
            for (k, v) in pairs {
                m.raw_set(frame_to_lua(lua, k, resp3)?, frame_to_lua(lua, v, resp3)?)?;
            }
            let t = lua.create_table()?;
            t.raw_set("map", m)?;
            LuaValue::Table(t)
        }
        Frame::Map(pairs) => {
            let t = lua.create_table()?;
            let mut i = 1;
            for (k, v) in pairs {
                t.raw_set(i, frame_to_lua(lua, k, resp3)?)?;
                t.raw_set(i + 1, frame_to_lua(lua, v, resp3)?)?;
                i += 2;
            }
            LuaValue::Table(t)
        }
        Frame::Set(items) if resp3 => {
            let s = lua.create_table()?;
            for item in items {
                s.raw_set(frame_to_lua(lua, item, resp3)?, true)?;
            }
            let t = lua.create_table()?;
            t.raw_set("set", s)?;
            LuaValue::Table(t)
        }
        Frame::Set(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
            }
            LuaValue::Table(t)
        }
        Frame::Double(d) if resp3 => {
            let t = lua.create_table()?;
            t.raw_set("double", d)?;
            LuaValue::Table(t)
        }
        Frame::Double(d) => LuaValue::String(lua.create_string(lua_number(d))?),
        Frame::Boolean(b) if resp3 => LuaValue::Boolean(b),
        Frame::Boolean(b) => LuaValue::Integer(b as i64),
    })
}

/// Converts a script's result to a reply (Redis's rules; nested tables up to a depth).
fn lua_to_frame(v: &LuaValue, resp3: bool, depth: usize) -> Frame {
    if depth > 1000 {
        return Frame::err("ERR reached lua stack limit");
    }
    match v {
        LuaValue::Nil => Frame::Null,
        LuaValue::Boolean(true) => {
            if resp3 {
                Frame::Boolean(true)
            } else {
                Frame::Integer(1)
            }
        }
        LuaValue::Boolean(false) => {
            if resp3 {
                Frame::Boolean(false)
            } else {
                Frame::Null
            }
        }
        LuaValue::Integer(i) => Frame::Integer(*i),
        LuaValue::Number(n) => Frame::Integer(*n as i64),
        LuaValue::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        LuaValue::Table(t) => {
            if let Ok(LuaValue::String(e)) = t.raw_get::<LuaValue>("err") {
                let text = one_line(&e.to_string_lossy());
                // Like Redis: an error without a code gets none added, but is never empty.
                return Frame::error(if text.is_empty() { "ERR".into() } else { text });
            }
            if let Ok(LuaValue::String(s)) = t.raw_get::<LuaValue>("ok") {
                return Frame::simple_owned(&one_line(&s.to_string_lossy()));
            }
            if let Ok(LuaValue::Number(d)) = t.raw_get::<LuaValue>("double") {
                return Frame::Double(d);
            }
            if let Ok(LuaValue::Table(m)) = t.raw_get::<LuaValue>("map") {
                let pairs: Vec<(Frame, Frame)> = m
                    .pairs::<LuaValue, LuaValue>()
                    .filter_map(Result::ok)
                    .map(|(k, v)| {
                        (
                            lua_to_frame(&k, resp3, depth + 1),
                            lua_to_frame(&v, resp3, depth + 1),
                        )
                    })
                    .collect();
                return if resp3 {
                    Frame::Map(pairs)
                } else {
                    Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
                };
            }
            if let Ok(LuaValue::Table(s)) = t.raw_get::<LuaValue>("set") {
                let items: Vec<Frame> = s
                    .pairs::<LuaValue, LuaValue>()
                    .filter_map(Result::ok)
                    .map(|(k, _)| lua_to_frame(&k, resp3, depth + 1))
                    .collect();
                return if resp3 {
                    Frame::Set(items)
                } else {
                    Frame::Array(items)
                };
            }
            let mut items = Vec::new();
            let mut i = 1;
            loop {
                match t.raw_get::<LuaValue>(i) {
                    Ok(LuaValue::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_frame(&v, resp3, depth + 1)),
                }
                i += 1;
            }
            Frame::Array(items)
        }
        _ => Frame::Null,
    }
}

fn script_load(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut guard = ctx.node.scripts.inner.lock();
    let eng = engine(&mut guard)?;
    Ok(Frame::bulk(eng.load(req.arg(2))?))
}

fn script_exists(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let guard = ctx.node.scripts.inner.lock();
    let out = req
        .iter()
        .skip(2)
        .map(|sha| {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            Frame::Integer(guard.as_ref().is_some_and(|e| e.cache.contains_key(&sha)) as i64)
        })
        .collect();
    Ok(Frame::Array(out))
}

fn script_flush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    match req.len() {
        2 => {}
        3 if super::is(req.arg(2), "ASYNC") || super::is(req.arg(2), "SYNC") => {}
        _ => return Err(super::ERR_SYNTAX),
    }
    // A new interpreter: nothing a script left behind survives.
    *ctx.node.scripts.inner.lock() = None;
    Ok(Frame::ok())
}

fn script_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let lines = [
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Print this help.",
    ];
    Ok(Frame::Array(
        lines.iter().map(|l| Frame::simple(l)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn eval_and_conversions() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["eval", "return 1", "0"]), int(1));
        assert_eq!(h.run(&["eval", "return 3.99", "0"]), int(3));
        assert_eq!(h.run(&["eval", "return 'x'", "0"]), bulk("x"));
        assert_eq!(h.run(&["eval", "return true", "0"]), int(1));
        assert_eq!(h.run(&["eval", "return false", "0"]), Frame::Null);
        assert_eq!(h.run(&["eval", "return nil", "0"]), Frame::Null);
        assert_eq!(
            h.run(&["eval", "return {1,2,'a',nil,4}", "0"]),
            Frame::Array(vec![int(1), int(2), bulk("a")])
        );
        assert_eq!(
            h.run(&["eval", "return {ok='FINE'}", "0"]),
            Frame::simple("FINE")
        );
        assert_eq!(
            h.run(&["eval", "return redis.error_reply('MY bad')", "0"]),
            err("MY bad")
        );
        assert_eq!(
            h.run(&[
                "eval",
                "return {KEYS[1], ARGV[1], ARGV[2]}",
                "1",
                "k",
                "a",
                "b"
            ]),
            Frame::Array(vec![bulk("k"), bulk("a"), bulk("b")])
        );
        assert_eq!(
            h.run(&["eval", "return redis.sha1hex('')", "0"]),
            bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        );
    }

    #[test]
    fn call_pcall_and_errors() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&[
                "eval",
                "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[1])",
                "1",
                "c",
                "41"
            ]),
            int(42)
        );
        assert_eq!(
            h.run(&["eval", "return redis.call('get', 'nokey')", "0"]),
            Frame::Null
        );
        assert_eq!(
            h.run(&["eval", "return type(redis.call('get', 'nokey'))", "0"]),
            bulk("boolean")
        );
        h.run(&["set", "s", "x"]);
        let e = h.run(&["eval", "return redis.call('incr', 's')", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.starts_with("ERR value is not an integer")),
            "{e:?}"
        );
        assert_eq!(
            h.run(&[
                "eval",
                "local r = redis.pcall('incr', 's'); return r.err",
                "0"
            ]),
            bulk("ERR value is not an integer or out of range")
        );
        let e = h.run(&["eval", "return redis.call('nosuch')", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("Unknown Redis command called from script")),
            "{e:?}"
        );
        let e = h.run(&["eval", "return x", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("Script attempted to access nonexistent global variable 'x'")),
            "{e:?}"
        );
        let e = h.run(&["eval", "y = 1", "0"]);
        assert!(e.is_error(), "{e:?}");
        for lib in ["os", "io", "loadfile", "dofile"] {
            let e = h.run(&["eval", &format!("return {lib}")[..], "0"]);
            assert!(e.is_error(), "{lib} is reachable: {e:?}");
        }
        let e = h.run(&["eval", "return redis.call('eval', 'return 1', '0')", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("not allowed from script")),
            "{e:?}"
        );
        let e = h.run(&["eval_ro", "return redis.call('set', 'a', '1')", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("Write commands are not allowed")),
            "{e:?}"
        );
        let e = h.run(&["eval", "return (", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.starts_with("ERR Error compiling script")),
            "{e:?}"
        );
        assert_eq!(
            h.run(&["eval", "return 1", "-1"]),
            err("ERR Number of keys can't be negative")
        );
        assert_eq!(
            h.run(&["eval", "return 1", "2", "a"]),
            err("ERR Number of keys can't be greater than number of args")
        );
    }

    #[test]
    fn replies_cannot_inject_protocol() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["eval", "return redis.error_reply('ERR a\\r\\n+OK')", "0"]),
            err("ERR a  +OK")
        );
        assert_eq!(
            h.run(&["eval", "return redis.status_reply('a\\nb')", "0"]),
            Frame::simple_owned("a b")
        );
        let e = h.run(&["eval", "error('x\\r\\n:1')", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if !t.contains('\n') && !t.contains('\r')),
            "{e:?}"
        );
    }

    #[test]
    fn script_cache() {
        let mut h = Harness::new();
        let body = "return ARGV[1]";
        let sha = sha1hex(body.as_bytes());
        assert_eq!(
            h.run(&["evalsha", &sha, "0", "x"]),
            err("NOSCRIPT No matching script. Please use EVAL.")
        );
        assert_eq!(h.run(&["script", "load", body]), bulk(&sha));
        assert_eq!(h.run(&["evalsha", &sha, "0", "x"]), bulk("x"));
        assert_eq!(
            h.run(&["evalsha", &sha.to_uppercase(), "0", "y"]),
            bulk("y")
        );
        assert_eq!(
            h.run(&["script", "exists", &sha, "nope"]),
            Frame::Array(vec![int(1), int(0)])
        );
        assert_eq!(h.run(&["script", "flush"]), Frame::ok());
        assert_eq!(
            h.run(&["script", "exists", &sha]),
            Frame::Array(vec![int(0)])
        );
        // EVAL caches too.
        h.run(&["eval", body, "0", "z"]);
        assert_eq!(h.run(&["evalsha", &sha, "0", "w"]), bulk("w"));
    }

    #[test]
    fn scripts_inside_exec_and_time_limit_hook_is_cleared() {
        let mut h = Harness::new();
        h.run(&["multi"]);
        h.run(&["eval", "return redis.call('incr', KEYS[1])", "1", "n"]);
        h.run(&["incr", "n"]);
        assert_eq!(h.run(&["exec"]), Frame::Array(vec![int(1), int(2)]));
    }

    #[test]
    fn resp3_conversions() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&[
                "eval",
                "redis.setresp(3); return redis.call('get', 'nokey') == nil",
                "0"
            ]),
            int(1)
        );
        assert_eq!(
            h.run(&["eval", "return {double=1.5}", "0"]),
            Frame::Double(1.5)
        );
        h.session.proto = Protocol::Resp3;
        assert_eq!(h.run(&["eval", "return true", "0"]), Frame::Boolean(true));
        assert_eq!(
            h.run(&["eval", "return {map={a=1}}", "0"]),
            Frame::Map(vec![(bulk("a"), int(1))])
        );
    }
}
