//! String commands, with Redis 7 semantics and error texts.

use super::flags::*;
use super::longdouble::LongDouble;
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::store::{Value, MAX_STRING_LEN, NO_EXPIRY};

const G: &str = "string";

pub static COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the string value of a key.", "key", get),
    spec("set", -3, WRITE | DENYOOM, (1, 1, 1), G, "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]",
        set),
    spec("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Set the string value of a key only when the key doesn't exist.", "key value", setnx),
    spec("setex", 4, WRITE | DENYOOM, (1, 1, 1), G, "2.0.0",
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        "key seconds value", setex),
    spec("psetex", 4, WRITE | DENYOOM, (1, 1, 1), G, "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        "key milliseconds value", psetex),
    spec("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.", "key value", getset),
    spec("getdel", 2, WRITE | FAST, (1, 1, 1), G, "6.2.0",
        "Returns the string value of a key after deleting the key.", "key", getdel),
    spec("getex", -2, WRITE | FAST, (1, 1, 1), G, "6.2.0",
        "Returns the string value of a key after setting its expiration time.",
        "key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]",
        getex),
    spec("mget", -2, READONLY | FAST, (1, -1, 1), G, "1.0.0",
        "Atomically returns the string values of one or more keys.", "key [key ...]", mget),
    spec("mset", -3, WRITE | DENYOOM, (1, -1, 2), G, "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
        "key value [key value ...]", mset),
    spec("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), G, "1.0.1",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        "key value [key value ...]", msetnx),
    spec("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.", "key value", append),
    spec("strlen", 2, READONLY | FAST, (1, 1, 1), G, "2.2.0",
        "Returns the length of a string value.", "key", strlen),
    spec("getrange", 4, READONLY, (1, 1, 1), G, "2.4.0",
        "Returns a substring of the string stored at a key.", "key start end", getrange),
    spec("substr", 4, READONLY, (1, 1, 1), G, "1.0.0",
        "Returns a substring from a string value.", "key start end", getrange),
    spec("setrange", 4, WRITE | DENYOOM, (1, 1, 1), G, "2.2.0",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        "key offset value", setrange),
    spec("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "key", incr),
    spec("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "key", decr),
    spec("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment", incrby),
    spec("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        "key decrement", decrby),
    spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.6.0",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment", incrbyfloat),
];

/// The keyspace events of a string write: `new` for a created key, `set`, and `expire` when
/// the write set a TTL.
fn set_events(ctx: &Ctx<'_>, key: &[u8], replaced: bool, expire: bool) {
    if !replaced {
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::STRING, "set", key);
    if expire {
        notify(ctx, events::GENERIC, "expire", key);
    }
}

/// The string at `key`: `Ok(None)` when missing, WRONGTYPE for other types.
fn read_str(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Frame>, Frame> {
    let mut g = ctx.node.db.lock_key(key);
    match g.get(key, ctx.now) {
        None => {
            notify(ctx, events::KEY_MISS, "keymiss", key);
            Ok(None)
        }
        Some(e) => match e.as_str() {
            Some(s) => Ok(Some(Frame::bulk(s))),
            None => Err(ERR_WRONGTYPE),
        },
    }
}

fn get(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    Ok(read_str(ctx, req.arg(1))?.unwrap_or(Frame::Null))
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpiryOpt {
    None,
    At(u64),
    KeepTtl,
    Persist,
}

/// Parses `EX`/`PX`/`EXAT`/`PXAT` at `req[i]`, returning the expiry and the next index.
fn parse_expiry(
    req: &Request,
    i: usize,
    now: u64,
    cmd: &str,
) -> Result<Option<(u64, usize, &'static str)>, Frame> {
    let a = req.arg(i);
    let (unit, abs, kind) = if is(a, "EX") {
        (1000, false, "EX")
    } else if is(a, "PX") {
        (1, false, "PX")
    } else if is(a, "EXAT") {
        (1000, true, "EXAT")
    } else if is(a, "PXAT") {
        (1, true, "PXAT")
    } else {
        return Ok(None);
    };
    if i + 1 >= req.len() {
        return Err(ERR_SYNTAX);
    }
    let n = int_arg(req.arg(i + 1))?;
    if n <= 0 {
        return Err(Frame::error(format!(
            "ERR invalid expire time in '{cmd}' command"
        )));
    }
    let at = if abs {
        expire_at_abs(n, unit, cmd)?
    } else {
        expire_at_from(now, n, unit, cmd)?
    };
    Ok(Some((at, i + 2, kind)))
}

fn set(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut expiry = ExpiryOpt::None;
    let mut expiry_kind: Option<&'static str> = None;
    let mut i = 3;
    while i < req.len() {
        let a = req.arg(i);
        if let Some((at, next, kind)) = parse_expiry(req, i, ctx.now, "set")? {
            // The same option may repeat (the last wins); two different ones conflict.
            if !matches!(expiry, ExpiryOpt::None) && expiry_kind != Some(kind) {
                return Err(ERR_SYNTAX);
            }
            expiry = ExpiryOpt::At(at);
            expiry_kind = Some(kind);
            i = next;
            continue;
        }
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            get_old = true;
        } else if is(a, "KEEPTTL") && matches!(expiry, ExpiryOpt::None | ExpiryOpt::KeepTtl) {
            expiry = ExpiryOpt::KeepTtl;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    // A plain SET, the common case, needs nothing from the old entry.
    let needs_old = nx || xx || get_old || matches!(expiry, ExpiryOpt::KeepTtl);
    let (exists, old_ttl, old_val) = match needs_old.then(|| g.peek(key, ctx.now)).flatten() {
        None => (false, NO_EXPIRY, None),
        Some(e) => {
            let old_val = match (get_old, e.as_str()) {
                (false, _) => None,
                (true, Some(s)) => Some(Frame::bulk(s)),
                (true, None) => return Err(ERR_WRONGTYPE),
            };
            (true, e.expire_at().unwrap_or(NO_EXPIRY), old_val)
        }
    };
    if (nx && exists) || (xx && !exists) {
        return Ok(old_val.unwrap_or(Frame::Null));
    }
    let at = match expiry {
        ExpiryOpt::At(at) => at,
        ExpiryOpt::KeepTtl => old_ttl,
        ExpiryOpt::None | ExpiryOpt::Persist => NO_EXPIRY,
    };
    if already_expired(at, ctx.now) {
        // A time in the past: the key ends up deleted, as in Redis.
        if g.remove(key, ctx.now).is_some() {
            notify(ctx, events::GENERIC, "del", key);
        }
    } else {
        let replaced = g.set_str(key, req.arg(2), at, ctx.now);
        set_events(ctx, key, replaced, matches!(expiry, ExpiryOpt::At(_)));
    }
    Ok(if get_old {
        old_val.unwrap_or(Frame::Null)
    } else {
        Frame::ok()
    })
}

fn setnx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    if g.contains(key, ctx.now) {
        return Ok(Frame::Integer(0));
    }
    g.set_str(key, req.arg(2), NO_EXPIRY, ctx.now);
    set_events(ctx, key, false, false);
    Ok(Frame::Integer(1))
}

fn setex_generic(ctx: &mut Ctx<'_>, req: &Request, unit: i64, cmd: &str) -> Reply {
    let n = int_arg(req.arg(2))?;
    if n <= 0 {
        return Err(Frame::error(format!(
            "ERR invalid expire time in '{cmd}' command"
        )));
    }
    let at = expire_at_from(ctx.now, n, unit, cmd)?;
    let key = req.arg(1);
    let replaced = ctx
        .node
        .db
        .lock_key(key)
        .set_str(key, req.arg(3), at, ctx.now);
    set_events(ctx, key, replaced, true);
    Ok(Frame::ok())
}

fn setex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    setex_generic(ctx, req, 1000, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    setex_generic(ctx, req, 1, "psetex")
}

fn getset(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let old = match g.peek(key, ctx.now) {
        Some(e) => Frame::bulk(e.as_str().ok_or(ERR_WRONGTYPE)?),
        None => Frame::Null,
    };
    let replaced = g.set_str(key, req.arg(2), NO_EXPIRY, ctx.now);
    set_events(ctx, key, replaced, false);
    Ok(old)
}

fn getdel(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let reply = match g.get(key, ctx.now) {
        Some(e) => Frame::bulk(e.as_str().ok_or(ERR_WRONGTYPE)?),
        None => return Ok(Frame::Null),
    };
    g.remove(key, ctx.now);
    notify(ctx, events::GENERIC, "del", key);
    Ok(reply)
}

fn getex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut expiry = ExpiryOpt::None;
    let mut kind: Option<&'static str> = None;
    let mut i = 2;
    while i < req.len() {
        if let Some((at, next, k)) = parse_expiry(req, i, ctx.now, "getex")? {
            if !matches!(expiry, ExpiryOpt::None) && kind != Some(k) {
                return Err(ERR_SYNTAX);
            }
            expiry = ExpiryOpt::At(at);
            kind = Some(k);
            i = next;
        } else if is(req.arg(i), "PERSIST")
            && matches!(expiry, ExpiryOpt::None | ExpiryOpt::Persist)
        {
            expiry = ExpiryOpt::Persist;
            i += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let reply = match g.get(key, ctx.now) {
        Some(e) => Frame::bulk(e.as_str().ok_or(ERR_WRONGTYPE)?),
        None => return Ok(Frame::Null),
    };
    let event = match expiry {
        ExpiryOpt::At(at) if already_expired(at, ctx.now) => {
            g.remove(key, ctx.now);
            Some("del")
        }
        ExpiryOpt::At(at) => {
            g.set_expire(key, at, ctx.now);
            Some("expire")
        }
        ExpiryOpt::Persist => g.set_expire(key, NO_EXPIRY, ctx.now).then_some("persist"),
        ExpiryOpt::None | ExpiryOpt::KeepTtl => None,
    };
    if let Some(event) = event {
        notify(ctx, events::GENERIC, event, key);
    }
    Ok(reply)
}

fn mget(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    let out = keys()
        .map(|k| match g.slot_of(k).get(k, ctx.now) {
            Some(e) => e.as_str().map_or(Frame::Null, Frame::bulk),
            None => {
                notify(ctx, events::KEY_MISS, "keymiss", k);
                Frame::Null
            }
        })
        .collect();
    Ok(Frame::Array(out))
}

fn pairs(req: &Request, name: &str) -> Result<(), Frame> {
    if req.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    Ok(())
}

fn mset(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    pairs(req, "mset")?;
    let mut g = ctx.node.db.lock_keys(req.iter().skip(1).step_by(2));
    for i in (1..req.len()).step_by(2) {
        let k = req.arg(i);
        let replaced = g.slot_of(k).set_str(k, req.arg(i + 1), NO_EXPIRY, ctx.now);
        set_events(ctx, k, replaced, false);
    }
    Ok(Frame::ok())
}

fn msetnx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    pairs(req, "msetnx")?;
    let mut g = ctx.node.db.lock_keys(req.iter().skip(1).step_by(2));
    for i in (1..req.len()).step_by(2) {
        let k = req.arg(i);
        if g.slot_of(k).contains(k, ctx.now) {
            return Ok(Frame::Integer(0));
        }
    }
    for i in (1..req.len()).step_by(2) {
        let k = req.arg(i);
        g.slot_of(k).set_str(k, req.arg(i + 1), NO_EXPIRY, ctx.now);
        set_events(ctx, k, false, false);
    }
    Ok(Frame::Integer(1))
}

const ERR_TOO_BIG: Frame =
    Frame::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

fn append(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let add = req.arg(2);
    let mut g = ctx.node.db.lock_key(key);
    let Some(e) = g.peek(key, ctx.now) else {
        g.set_str(key, add, NO_EXPIRY, ctx.now);
        notify(ctx, events::NEW, "new", key);
        notify(ctx, events::STRING, "append", key);
        return Ok(Frame::Integer(add.len() as i64));
    };
    let cur = e.as_str().ok_or(ERR_WRONGTYPE)?;
    if cur.len() + add.len() > MAX_STRING_LEN {
        return Err(ERR_TOO_BIG);
    }
    let mut v = Vec::with_capacity(cur.len() + add.len());
    v.extend_from_slice(cur);
    v.extend_from_slice(add);
    let len = v.len();
    g.replace_value(key, Value::Str(v.into_boxed_slice()), ctx.now);
    notify(ctx, events::STRING, "append", key);
    Ok(Frame::Integer(len as i64))
}

fn strlen(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    match g.get(key, ctx.now) {
        Some(e) => Ok(Frame::Integer(e.as_str().ok_or(ERR_WRONGTYPE)?.len() as i64)),
        None => Ok(Frame::Integer(0)),
    }
}

fn getrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let start = int_arg(req.arg(2))?;
    let end = int_arg(req.arg(3))?;
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let Some(e) = g.get(key, ctx.now) else {
        return Ok(Frame::bulk(""));
    };
    let s = e.as_str().ok_or(ERR_WRONGTYPE)?;
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::bulk(""));
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Frame::bulk(""));
    }
    Ok(Frame::bulk(&s[start as usize..=end as usize]))
}

fn setrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let offset = int_arg(req.arg(2))?;
    if offset < 0 {
        return Err(Frame::err("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let val = req.arg(3);
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let cur: Option<Vec<u8>> = match g.peek(key, ctx.now) {
        Some(e) => Some(e.as_str().ok_or(ERR_WRONGTYPE)?.to_vec()),
        None => None,
    };
    if val.is_empty() {
        return Ok(Frame::Integer(cur.map_or(0, |c| c.len() as i64)));
    }
    if offset.saturating_add(val.len()) > MAX_STRING_LEN {
        return Err(ERR_TOO_BIG);
    }
    let exists = cur.is_some();
    let mut v = cur.unwrap_or_default();
    if v.len() < offset + val.len() {
        v.resize(offset + val.len(), 0);
    }
    v[offset..offset + val.len()].copy_from_slice(val);
    let len = v.len() as i64;
    let value = Value::Str(v.into_boxed_slice());
    if exists {
        g.replace_value(key, value, ctx.now);
    } else {
        g.set(key, value, NO_EXPIRY, ctx.now);
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::STRING, "setrange", key);
    Ok(Frame::Integer(len))
}

/// Adds `delta` to the integer at `key`, keeping its TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Reply {
    let mut g = ctx.node.db.lock_key(key);
    let cur = match g.peek(key, ctx.now) {
        Some(e) => Some(parse_i64(e.as_str().ok_or(ERR_WRONGTYPE)?).ok_or(ERR_NOT_INT)?),
        None => None,
    };
    let n = cur
        .unwrap_or(0)
        .checked_add(delta)
        .ok_or(Frame::err("ERR increment or decrement would overflow"))?;
    let value = Value::str(itoa::Buffer::new().format(n).as_bytes());
    if cur.is_some() {
        g.replace_value(key, value, ctx.now);
    } else {
        g.set(key, value, NO_EXPIRY, ctx.now);
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::STRING, "incrby", key);
    Ok(Frame::Integer(n))
}

fn incr(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    incr_by(ctx, req.arg(1), 1)
}

fn decr(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    incr_by(ctx, req.arg(1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let d = int_arg(req.arg(2))?;
    incr_by(ctx, req.arg(1), d)
}

fn decrby(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let d = int_arg(req.arg(2))?;
    let d = d
        .checked_neg()
        .ok_or(Frame::err("ERR decrement would overflow"))?;
    incr_by(ctx, req.arg(1), d)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // Redis reads the value, then the increment, both as long doubles, and adds in long
    // double (cmd::longdouble).
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let cur: Option<LongDouble> = match g.peek(key, ctx.now) {
        Some(e) => {
            let s = e.as_str().ok_or(ERR_WRONGTYPE)?;
            Some(LongDouble::parse(s).ok_or(ERR_NOT_FLOAT)?)
        }
        None => None,
    };
    let delta = LongDouble::parse(req.arg(2)).ok_or(ERR_NOT_FLOAT)?;
    let text = longdouble::add_human(cur.unwrap_or(LongDouble::ZERO), delta)
        .ok_or(Frame::err("ERR increment would produce NaN or Infinity"))?;
    let value = Value::str(text.as_bytes());
    if cur.is_some() {
        g.replace_value(key, value, ctx.now);
    } else {
        g.set(key, value, NO_EXPIRY, ctx.now);
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::STRING, "incrbyfloat", key);
    Ok(Frame::bulk(text))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::resp::Frame;

    #[test]
    fn get_set_basics() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "v"]), Frame::ok());
        assert_eq!(h.run(&["GET", "k"]), bulk("v"));
        assert_eq!(h.run(&["SET", "e", ""]), Frame::ok());
        assert_eq!(h.run(&["GET", "e"]), bulk(""));
    }

    #[test]
    fn set_options() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "1", "NX"]), Frame::ok());
        assert_eq!(h.run(&["SET", "k", "2", "NX"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "3", "XX"]), Frame::ok());
        assert_eq!(h.run(&["SET", "nope", "3", "XX"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "4", "GET"]), bulk("3"));
        assert_eq!(h.run(&["SET", "new", "4", "GET"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "5", "NX", "GET"]), bulk("4"));
        assert_eq!(
            h.run(&["SET", "k", "5", "NX", "XX"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "10", "PX", "5"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["SET", "k", "5", "EX"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "10", "KEEPTTL"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["SET", "k", "5", "BOGUS"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "-1"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "9223372036854775807"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["SET", "k", "5", "EX", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn set_expiry_variants() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "EX", "10"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(10_000));
        h.run(&["SET", "k", "v", "PX", "1500"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        let at = (NOW / 1000 + 100).to_string();
        h.run(&["SET", "k", "v", "EXAT", &at]);
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        let pat = (NOW + 2000).to_string();
        h.run(&["SET", "k", "v", "PXAT", &pat]);
        assert_eq!(h.run(&["PTTL", "k"]), int(2000));
        h.run(&["SET", "k", "w", "KEEPTTL"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(2000));
        h.run(&["SET", "k", "x"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(-1));
        // A time in the past deletes the key.
        h.run(&["SET", "k", "v", "PXAT", "1"]);
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        assert_eq!(h.node.db.len(), 0);
        h.now += 0;
    }

    #[test]
    fn expiry_is_lazy_with_time() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "PX", "100"]);
        h.now += 99;
        assert_eq!(h.run(&["GET", "k"]), bulk("v"));
        h.now += 1;
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
    }

    #[test]
    fn setnx_setex_psetex_getset() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SETNX", "k", "1"]), int(1));
        assert_eq!(h.run(&["SETNX", "k", "2"]), int(0));
        assert_eq!(h.run(&["SETEX", "k", "5", "v"]), Frame::ok());
        assert_eq!(h.run(&["TTL", "k"]), int(5));
        assert_eq!(
            h.run(&["SETEX", "k", "0", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(h.run(&["PSETEX", "k", "5000", "v"]), Frame::ok());
        assert_eq!(h.run(&["PTTL", "k"]), int(5000));
        assert_eq!(
            h.run(&["PSETEX", "k", "-5", "v"]),
            err("ERR invalid expire time in 'psetex' command")
        );
        assert_eq!(h.run(&["GETSET", "k", "w"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["GETSET", "n", "w"]), Frame::Null);
    }

    #[test]
    fn getdel_getex() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["GETDEL", "k"]), bulk("v"));
        assert_eq!(h.run(&["GETDEL", "k"]), Frame::Null);
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["GETEX", "k", "EX", "100"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        assert_eq!(h.run(&["GETEX", "k", "PERSIST"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["GETEX", "k", "PX", "50"]), bulk("v"));
        assert_eq!(h.run(&["PTTL", "k"]), int(50));
        assert_eq!(h.run(&["GETEX", "k"]), bulk("v"));
        assert_eq!(h.run(&["PTTL", "k"]), int(50));
        assert_eq!(
            h.run(&["GETEX", "k", "EX", "1", "PERSIST"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["GETEX", "k", "EX", "0"]),
            err("ERR invalid expire time in 'getex' command")
        );
        assert_eq!(h.run(&["GETEX", "k", "PXAT", "1"]), bulk("v"));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        assert_eq!(h.run(&["GETEX", "missing", "EX", "5"]), Frame::Null);
    }

    #[test]
    fn mget_mset_msetnx() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["MSET", "a", "1", "b", "2", "{a}c", "3"]),
            Frame::ok()
        );
        assert_eq!(
            h.run(&["MGET", "a", "b", "nope", "{a}c"]),
            Frame::Array(vec![bulk("1"), bulk("2"), Frame::Null, bulk("3")])
        );
        assert_eq!(
            h.run(&["MSET", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(h.run(&["MSETNX", "x", "1", "a", "2"]), int(0));
        assert_eq!(h.run(&["EXISTS", "x"]), int(0));
        assert_eq!(h.run(&["MSETNX", "x", "1", "y", "2"]), int(1));
        assert_eq!(
            h.run(&["MGET", "x", "y"]),
            Frame::Array(vec![bulk("1"), bulk("2")])
        );
        assert_eq!(
            h.run(&["MSETNX", "x"]),
            err("ERR wrong number of arguments for 'msetnx' command")
        );
        // MSET clears TTLs.
        h.run(&["SET", "t", "v", "EX", "100"]);
        h.run(&["MSET", "t", "w"]);
        assert_eq!(h.run(&["TTL", "t"]), int(-1));
    }

    #[test]
    fn append_strlen_ranges() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["APPEND", "k", "Hello"]), int(5));
        assert_eq!(h.run(&["APPEND", "k", " World"]), int(11));
        assert_eq!(h.run(&["STRLEN", "k"]), int(11));
        assert_eq!(h.run(&["STRLEN", "nope"]), int(0));
        assert_eq!(h.run(&["GETRANGE", "k", "0", "4"]), bulk("Hello"));
        assert_eq!(h.run(&["GETRANGE", "k", "-5", "-1"]), bulk("World"));
        assert_eq!(h.run(&["GETRANGE", "k", "0", "-1"]), bulk("Hello World"));
        assert_eq!(h.run(&["GETRANGE", "k", "10", "100"]), bulk("d"));
        assert_eq!(h.run(&["GETRANGE", "k", "5", "3"]), bulk(""));
        assert_eq!(h.run(&["GETRANGE", "k", "-1", "-5"]), bulk(""));
        assert_eq!(h.run(&["GETRANGE", "nope", "0", "-1"]), bulk(""));
        assert_eq!(h.run(&["SUBSTR", "k", "0", "0"]), bulk("H"));
        assert_eq!(h.run(&["SETRANGE", "k", "6", "Redis"]), int(11));
        assert_eq!(h.run(&["GET", "k"]), bulk("Hello Redis"));
        assert_eq!(h.run(&["SETRANGE", "z", "3", "ab"]), int(5));
        assert_eq!(h.run(&["GET", "z"]), Frame::bulk(b"\0\0\0ab"));
        assert_eq!(h.run(&["SETRANGE", "empty", "3", ""]), int(0));
        assert_eq!(h.run(&["EXISTS", "empty"]), int(0));
        assert_eq!(
            h.run(&["SETRANGE", "k", "-1", "x"]),
            err("ERR offset is out of range")
        );
        assert_eq!(
            h.run(&["SETRANGE", "k", "536870911", "xx"]),
            err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
    }

    #[test]
    fn counters() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["INCR", "c"]), int(1));
        assert_eq!(h.run(&["INCRBY", "c", "10"]), int(11));
        assert_eq!(h.run(&["DECR", "c"]), int(10));
        assert_eq!(h.run(&["DECRBY", "c", "20"]), int(-10));
        h.run(&["SET", "c", "9223372036854775807"]);
        assert_eq!(
            h.run(&["INCR", "c"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            h.run(&["DECRBY", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        h.run(&["SET", "s", "abc"]);
        assert_eq!(
            h.run(&["INCR", "s"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SET", "s", " 1"]);
        assert_eq!(
            h.run(&["INCR", "s"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["INCRBY", "c", "x"]),
            err("ERR value is not an integer or out of range")
        );
        // INCR keeps the TTL.
        h.run(&["SET", "t", "1", "EX", "100"]);
        h.run(&["INCR", "t"]);
        assert_eq!(h.run(&["TTL", "t"]), int(100));
    }

    #[test]
    fn incrbyfloat() {
        let mut h = Harness::new();
        h.run(&["SET", "f", "10.50"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
        // Long double sums and %.17Lf, as redis-server 7.0.15 on x86-64 answers.
        assert_eq!(
            h.run(&["INCRBYFLOAT", "f", "2.0e2"]),
            bulk("205.60000000000000001")
        );
        assert_eq!(
            h.run(&["INCRBYFLOAT", "f", "1.1"]),
            bulk("206.70000000000000001")
        );
        // Beyond a double's range: still a long double.
        let big = h.run(&["INCRBYFLOAT", "f", "1e400"]);
        let Frame::Bulk(b) = big else {
            panic!("{big:?}")
        };
        assert!(b.starts_with(b"1000000000000000000028188068394758651458645343"));
        assert_eq!(b.len(), 401);
        h.run(&["SET", "f", "5.0e3"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "2.0e2"]), bulk("5200"));
        h.run(&["SET", "f", "0x10"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "0x1p-2"]), bulk("16.25"));
        h.run(&["SET", "f", "1"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "-1.1"]), bulk("-0.1"));
        assert_eq!(h.run(&["INCRBYFLOAT", "new", "3"]), bulk("3"));
        assert_eq!(
            h.run(&["INCRBYFLOAT", "f", "x"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["INCRBYFLOAT", "f", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
        h.run(&["SET", "s", "abc"]);
        assert_eq!(
            h.run(&["INCRBYFLOAT", "s", "1"]),
            err("ERR value is not a valid float")
        );
        for bad in [" 11", "11 ", "1e5000", "1e-5000", "nan"] {
            h.run(&["SET", "s", bad]);
            assert_eq!(
                h.run(&["INCRBYFLOAT", "s", "1"]),
                err("ERR value is not a valid float"),
                "{bad}"
            );
        }
        h.run(&["SET", "s", "0x1p16383"]);
        assert_eq!(
            h.run(&["INCRBYFLOAT", "s", "0x1p16383"]),
            err("ERR increment would produce NaN or Infinity")
        );
        // 1/41 and back: no "-0".
        h.run(&["SET", "z", "0"]);
        h.run(&["INCRBYFLOAT", "z", "0.024390243902439025"]);
        assert_eq!(
            h.run(&["INCRBYFLOAT", "z", "-0.024390243902439025"]),
            bulk("0")
        );
    }

    #[test]
    fn binary_safe_keys_and_values() {
        let mut h = Harness::new();
        let req = crate::resp::Request::from_args([&b"SET"[..], b"\x00\xff", b"\r\n\x00"]);
        let mut ctx = super::Ctx {
            node: &h.node,
            session: &mut h.session,
            now: h.now,
        };
        assert_eq!(super::dispatch(&mut ctx, &req), Frame::ok());
        let req = crate::resp::Request::from_args([&b"GET"[..], b"\x00\xff"]);
        assert_eq!(super::dispatch(&mut ctx, &req), Frame::bulk(b"\r\n\x00"));
        assert_eq!(h.run(&["SET", "", "empty-key"]), Frame::ok());
        assert_eq!(h.run(&["GET", ""]), bulk("empty-key"));
    }
}
