//! The `redis` table scripts and FUNCTION libraries see: its functions, registered into a Lua state.

use super::*;

pub(super) fn register_redis_api<H: Host>(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    register_common(lua, redis)?;
    // SAFETY: both are Lua C functions (see `redis_call`).
    unsafe {
        redis.raw_set("call", lua.create_c_function(redis_call::<H, true>)?)?;
        redis.raw_set("pcall", lua.create_c_function(redis_call::<H, false>)?)?;
    }
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("wrong number of arguments"));
            }
            match args.front() {
                Some(Value::String(s)) => Ok(super::super::sha1hex(&s.as_bytes())),
                Some(Value::Integer(i)) => Ok(super::super::sha1hex(i.to_string().as_bytes())),
                Some(Value::Number(n)) => Ok(super::super::sha1hex(fmt_number(*n).as_bytes())),
                _ => Ok(super::super::sha1hex(b"")),
            }
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, args: MultiValue| {
            let Some(Value::String(s)) = args.front().filter(|_| args.len() == 1) else {
                return Err(rt("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            let text = s.to_string_lossy();
            // A leading '-' is the RESP marker, not part of the error.
            t.raw_set("err", text.strip_prefix('-').unwrap_or(&text))?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, args: MultiValue| {
            let Some(Value::String(s)) = args.front().filter(|_| args.len() == 1) else {
                return Err(rt("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.raw_set("ok", s.clone())?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "setresp",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("redis.setresp() requires one argument."));
            }
            let v = match args.front() {
                Some(Value::Integer(i)) => *i,
                Some(Value::Number(n)) => *n as i64,
                _ => 0,
            };
            if v != 2 && v != 3 {
                return Err(rt("RESP version must be 2 or 3."));
            }
            H::set_resp3(v == 3);
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("redis.set_repl() requires one argument."));
            }
            let v = match args.front() {
                Some(Value::Integer(i)) => *i,
                Some(Value::Number(n)) => *n as i64,
                _ => return Err(rt(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                )),
            };
            if !(0..=3).contains(&v) {
                return Err(rt(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, args: MultiValue| {
            if !H::running() {
                return Err(rt("redis.acl_check_cmd is only available inside a script"));
            }
            let mut parts: Vec<Vec<u8>> = Vec::new();
            for a in args.iter() {
                match a {
                    Value::String(s) => parts.push(s.as_bytes().to_vec()),
                    Value::Integer(i) => parts.push(i.to_string().into_bytes()),
                    Value::Number(n) => parts.push(fmt_number(*n).into_bytes()),
                    _ => {
                        return Err(rt(
                            "Lua redis lib command arguments must be strings or integers",
                        ))
                    }
                }
            }
            if parts.is_empty() {
                return Err(rt(
                    "Please specify at least one argument for this redis lib call",
                ));
            }
            let req = Request::from_args(&parts);
            H::acl_check(&req)
                .ok_or_else(|| rt("ERR Invalid command passed to redis.acl_check_cmd()"))
        })?,
    )?;
    for (name, v) in [
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, v)?;
    }
    Ok(())
}

/// What both the runtime and the load-time `redis` tables have: log, levels, version.
fn register_common(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.raw_set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(rt("redis.log() requires two arguments or more."));
            }
            let level = match args.front() {
                Some(Value::Integer(i)) => *i,
                Some(Value::Number(n)) => *n as i64,
                _ => return Err(rt("First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(rt("Invalid debug level."));
            }
            let msg: Vec<String> = args.iter().skip(1).map(error_text).collect();
            let msg = msg.join(" ");
            match level {
                3 => tracing::warn!(target: "chkv::script", "{msg}"),
                2 => tracing::info!(target: "chkv::script", "{msg}"),
                _ => tracing::debug!(target: "chkv::script", "{msg}"),
            }
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
    let version = crate::REDIS_VERSION;
    redis.raw_set("REDIS_VERSION", version)?;
    let num = version
        .split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0))
        .chain(std::iter::repeat(0))
        .take(3)
        .fold(0i64, |acc, p| (acc << 8) | (p & 0xff));
    redis.raw_set("REDIS_VERSION_NUM", num)?;
    Ok(())
}

/// The `redis` table a library's code sees while FUNCTION LOAD runs it.
pub(super) fn register_load_api(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    register_common(lua, redis)?;
    redis.raw_set("register_function", lua.create_function(register_function)?)?;
    Ok(())
}

pub(super) fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if lua.app_data_ref::<Loading>().is_none() {
        return Err(rt(
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    }
    let (name, f, description, flags) = match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return Err(rt("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."));
            };
            let mut name = None;
            let mut f = None;
            let mut description = None;
            let mut flags = ScriptFlags::NONE;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair?;
                let key =
                    match &k {
                        Value::String(s) => s.to_string_lossy(),
                        _ => return Err(rt(
                            "named argument key given to redis.register_function is not a string",
                        )),
                    };
                match key.as_str() {
                    "function_name" => match v {
                        Value::String(s) => name = Some(s.as_bytes().to_vec()),
                        _ => return Err(rt("function_name argument given to redis.register_function must be a string")),
                    },
                    "callback" => match v {
                        Value::Function(cb) => f = Some(cb),
                        _ => return Err(rt("callback argument given to redis.register_function must be a function")),
                    },
                    "description" => match v {
                        Value::String(s) => description = Some(s.to_string_lossy()),
                        _ => return Err(rt("description argument given to redis.register_function must be a string")),
                    },
                    "flags" => match v {
                        Value::Table(ft) => {
                            for item in ft.sequence_values::<Value>() {
                                let flag = match item? {
                                    Value::String(s) => ScriptFlags::parse(&s.as_bytes()),
                                    _ => None,
                                };
                                flags = flags.with(flag.ok_or_else(|| rt("unknown flag given"))?);
                            }
                        }
                        _ => return Err(rt("flags argument to redis.register_function must be a table representing function flags")),
                    },
                    _ => return Err(rt("unknown argument given to redis.register_function")),
                }
            }
            let name = name
                .ok_or_else(|| rt("redis.register_function must get a function name argument"))?;
            let f = f.ok_or_else(|| rt("redis.register_function must get a callback argument"))?;
            (name, f, description, flags)
        }
        2 => {
            let mut it = args.iter();
            let name = match it.next() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                _ => {
                    return Err(rt(
                        "first argument to redis.register_function must be a string",
                    ))
                }
            };
            let f = match it.next() {
                Some(Value::Function(f)) => f.clone(),
                _ => {
                    return Err(rt(
                        "second argument to redis.register_function must be a function",
                    ))
                }
            };
            (name, f, None, ScriptFlags::NONE)
        }
        _ => return Err(rt("wrong number of arguments to redis.register_function")),
    };
    if !super::super::library::valid_name(&name) {
        return Err(rt(super::super::library::ERR_NAME));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let Some(mut loading) = lua.app_data_mut::<Loading>() else {
        return Err(rt(
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    };
    if loading
        .defs
        .iter()
        .any(|d| d.name.eq_ignore_ascii_case(&name))
    {
        return Err(rt("Function already exists in the library"));
    }
    loading.funcs.raw_set(name.to_ascii_lowercase(), f)?;
    loading.defs.push(super::super::library::FunctionDef {
        name,
        description,
        flags,
    });
    Ok(())
}
