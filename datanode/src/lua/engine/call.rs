//! The core of `redis.call` and `redis.pcall`: a request read off Lua's stack, the reply pushed back as Lua values.

use super::*;

/// `redis.call(...)` (`RAISE`) and `redis.pcall(...)` as Lua C functions: the arguments
/// are read straight off Lua's stack into one request, the command runs, and its reply is
/// pushed as a Lua value. A command's error is a table `{err = ...}`, which `redis.call`
/// raises and `redis.pcall` returns. (mlua's callback machinery made a Lua reference per
/// argument and per value and cost more than most commands themselves; a Lua wrapper
/// raising the error cost a Lua call more for each command.)
///
/// # Safety
/// Called by Lua only, as a C function. The Lua errors it raises itself (no script running,
/// `redis.call`'s failed command) are raised when no Rust value needing a drop exists: the
/// work is done in [`reply_on_stack`], whose values are gone once it returns. Pushing the
/// reply allocates, which cannot fail (mlua's allocator aborts when memory runs out); a
/// collection step it triggers could run a script's `__gc` metamethod (`newproxy`) that
/// raises an error, which would unwind through here as it would through mlua's own
/// callbacks, leaking the rest of the reply.
pub(super) unsafe extern "C-unwind" fn redis_call<H: Host, const RAISE: bool>(
    state: *mut ffi::lua_State,
) -> std::ffi::c_int {
    if !H::running() {
        ffi::lua_pushstring_(
            state,
            c"redis.call is only available inside a script".as_ptr(),
        );
        ffi::lua_error(state);
    }
    match reply_on_stack::<H>(state) {
        None => 0,
        Some(true) if RAISE => ffi::lua_error(state),
        Some(_) => 1,
    }
}

/// Runs the command made of the `n` values on Lua's stack and leaves its reply there as the
/// only value: whether it is an error table (`None`: no room for it, nothing left).
///
/// # Safety
/// `state` is the running Lua state, in a C function called by Lua.
#[inline(never)]
unsafe fn reply_on_stack<H: Host>(state: *mut ffi::lua_State) -> Option<bool> {
    let n = ffi::lua_gettop(state);
    let outcome = match request_from_stack(state, n) {
        Err(msg) => Err(msg),
        // A panic must not unwind through Lua's C frames: it fails the command instead.
        Ok(req) => Ok(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| H::call(&req))).unwrap_or((
                Frame::err("ERR internal error while running the command"),
                false,
            )),
        ),
    };
    // The arguments are copied: their stack room goes to the reply.
    ffi::lua_settop(state, 0);
    if ffi::lua_checkstack(state, 8) == 0 {
        return None;
    }
    Some(match outcome {
        Err(msg) => {
            push_error_table(state, msg.as_bytes(), false);
            true
        }
        Ok((Frame::Error(e), _)) => {
            // Counted already: the script's reply passing it on is not counted again.
            push_error_table(state, e.as_bytes(), true);
            true
        }
        Ok((f, resp3)) => {
            push_frame(state, f, resp3, 0);
            false
        }
    })
}

/// The request `redis.call`'s `n` arguments make, or the error for a bad argument.
///
/// # Safety
/// `state` is the running Lua state with `n` values on its stack.
unsafe fn request_from_stack(
    state: *mut ffi::lua_State,
    n: std::ffi::c_int,
) -> Result<Request, &'static str> {
    if n <= 0 {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    let mut req = Request::with_capacity(n as usize);
    for i in 1..=n {
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let s = ffi::lua_tolstring(state, i, &mut len);
                req.push_arg(std::slice::from_raw_parts(s.cast::<u8>(), len));
            }
            ffi::LUA_TNUMBER => {
                let x = ffi::lua_tonumber(state, i);
                match integral(x) {
                    Some(v) => req.push_arg(itoa::Buffer::new().format(v).as_bytes()),
                    None => req.push_arg(fmt_number(x).as_bytes()),
                }
            }
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(req)
}

/// A Lua number that is an integer in `i64`'s range, as that integer (how a number passes
/// to a command: `3` as "3", `2^60` in full, `0.5` and `1e300` through [`fmt_number`]).
fn integral(x: f64) -> Option<i64> {
    // -2^63 is exact in f64; 2^63 is the first value past i64::MAX.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        return None;
    }
    let i = x as i64;
    ((x - i as f64).abs() < f64::EPSILON).then_some(i)
}

/// Pushes a table `{err = msg}` (marked as counted in INFO errorstats when `counted`).
///
/// # Safety
/// `state` is a running Lua state with room for three more values.
unsafe fn push_error_table(state: *mut ffi::lua_State, msg: &[u8], counted: bool) {
    ffi::lua_createtable(state, 0, 2);
    push_field(state, c"err", msg);
    if counted {
        ffi::lua_pushboolean(state, 1);
        ffi::lua_setfield(state, -2, c"ignore_error_stats_update".as_ptr());
    }
}

/// Sets field `name` of the table on top of the stack to the string `value`.
///
/// # Safety
/// `state` has a table on top and room for one more value.
unsafe fn push_field(state: *mut ffi::lua_State, name: &std::ffi::CStr, value: &[u8]) {
    ffi::lua_pushlstring_(state, value.as_ptr().cast(), value.len());
    ffi::lua_setfield(state, -2, name.as_ptr());
}

/// Pushes a command's reply as the Lua value Redis gives scripts (RESP2 or, after
/// `redis.setresp(3)`, RESP3 conversions).
///
/// # Safety
/// `state` is a running Lua state with room for three more values.
unsafe fn push_frame(state: *mut ffi::lua_State, f: Frame, resp3: bool, depth: usize) {
    // Each level needs three more slots; a reply nested deeper than this is none we make.
    if depth > 0 && ffi::lua_checkstack(state, 4) == 0 {
        ffi::lua_pushnil(state);
        return;
    }
    let push_str = |s: &[u8]| ffi::lua_pushlstring_(state, s.as_ptr().cast(), s.len());
    let len = |n: usize| std::ffi::c_int::try_from(n).unwrap_or(std::ffi::c_int::MAX);
    let proto = if resp3 {
        crate::resp::Protocol::Resp3
    } else {
        crate::resp::Protocol::Resp2
    };
    match f.decoded(proto) {
        Frame::Integer(i) => ffi::lua_pushnumber(state, i as f64),
        Frame::Bulk(b) => push_str(&b),
        Frame::Verbatim(b) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, 2);
            push_field(state, c"format", b"txt");
            push_field(state, c"string", &b);
            ffi::lua_setfield(state, -2, c"verbatim_string".as_ptr());
        }
        Frame::Verbatim(b) => push_str(&b),
        // `decoded` leaves none.
        Frame::Encoded { .. } => ffi::lua_pushnil(state),
        Frame::Simple(s) => {
            ffi::lua_createtable(state, 0, 1);
            push_field(state, c"ok", s.as_bytes());
        }
        Frame::Error(e) => {
            ffi::lua_createtable(state, 0, 1);
            push_field(state, c"err", e.as_bytes());
        }
        Frame::Null | Frame::NullArray => {
            if resp3 {
                ffi::lua_pushnil(state)
            } else {
                ffi::lua_pushboolean(state, 0)
            }
        }
        Frame::Array(items) | Frame::Push(items) => push_list(state, items, resp3, depth),
        Frame::Map(pairs) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, len(pairs.len()));
            for (k, v) in pairs {
                push_frame(state, k, resp3, depth + 1);
                push_frame(state, v, resp3, depth + 1);
                set_pair(state);
            }
            ffi::lua_setfield(state, -2, c"map".as_ptr());
        }
        Frame::Map(pairs) => {
            ffi::lua_createtable(state, len(pairs.len().saturating_mul(2)), 0);
            let mut at: std::ffi::c_int = 0;
            for (k, v) in pairs {
                for x in [k, v] {
                    at = at.saturating_add(1);
                    push_frame(state, x, resp3, depth + 1);
                    ffi::lua_rawseti_(state, -2, at);
                }
            }
        }
        Frame::Set(items) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, len(items.len()));
            for item in items {
                push_frame(state, item, resp3, depth + 1);
                ffi::lua_pushboolean(state, 1);
                set_pair(state);
            }
            ffi::lua_setfield(state, -2, c"set".as_ptr());
        }
        Frame::Set(items) => push_list(state, items, resp3, depth),
        Frame::Double(d) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushnumber(state, d);
            ffi::lua_setfield(state, -2, c"double".as_ptr());
        }
        Frame::Double(d) => push_str(crate::resp::frame::format_double(d).as_bytes()),
        Frame::Boolean(b) if resp3 => ffi::lua_pushboolean(state, b as std::ffi::c_int),
        Frame::Boolean(b) => ffi::lua_pushnumber(state, b as i64 as f64),
    }
}

/// Pushes `items` as a Lua array.
///
/// # Safety
/// As [`push_frame`].
unsafe fn push_list(state: *mut ffi::lua_State, items: Vec<Frame>, resp3: bool, depth: usize) {
    let n = std::ffi::c_int::try_from(items.len()).unwrap_or(std::ffi::c_int::MAX);
    ffi::lua_createtable(state, n, 0);
    for (at, item) in (1..=n).zip(items) {
        push_frame(state, item, resp3, depth + 1);
        ffi::lua_rawseti_(state, -2, at);
    }
}

/// Sets key (below the top) to value (the top) in the table under them, and pops both; a
/// key Lua cannot index by (nil, NaN) is dropped.
///
/// # Safety
/// The stack holds table, key, value on top.
unsafe fn set_pair(state: *mut ffi::lua_State) {
    let bad = match ffi::lua_type(state, -2) {
        ffi::LUA_TNIL => true,
        ffi::LUA_TNUMBER => ffi::lua_tonumber(state, -2).is_nan(),
        _ => false,
    };
    if bad {
        ffi::lua_settop(state, -3);
    } else {
        ffi::lua_rawset(state, -3);
    }
}
