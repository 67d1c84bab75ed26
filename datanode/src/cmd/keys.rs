//! Keyspace commands: deletion, existence, types, TTLs, renames, iteration.

use super::flags::*;
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::store::glob::{glob_match, matches_all};
use crate::store::NO_EXPIRY;

const G: &str = "generic";

pub static COMMANDS: &[CommandSpec] = &[
    spec("del", -2, WRITE, (1, -1, 1), G, "1.0.0",
        "Deletes one or more keys.", "key [key ...]", del),
    spec("unlink", -2, WRITE | FAST, (1, -1, 1), G, "4.0.0",
        "Asynchronously deletes one or more keys.", "key [key ...]", del),
    spec("exists", -2, READONLY | FAST, (1, -1, 1), G, "1.0.0",
        "Determines whether one or more keys exist.", "key [key ...]", exists),
    spec("touch", -2, READONLY | FAST, (1, -1, 1), G, "3.2.1",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "key [key ...]", touch),
    spec("type", 2, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Determines the type of value stored at a key.", "key", type_),
    spec("expire", -3, WRITE | FAST, (1, 1, 1), G, "1.0.0",
        "Sets the expiration time of a key in seconds.", "key seconds [NX | XX | GT | LT]", expire),
    spec("pexpire", -3, WRITE | FAST, (1, 1, 1), G, "2.6.0",
        "Sets the expiration time of a key in milliseconds.", "key milliseconds [NX | XX | GT | LT]", pexpire),
    spec("expireat", -3, WRITE | FAST, (1, 1, 1), G, "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
        "key unix-time-seconds [NX | XX | GT | LT]", expireat),
    spec("pexpireat", -3, WRITE | FAST, (1, 1, 1), G, "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "key unix-time-milliseconds [NX | XX | GT | LT]", pexpireat),
    spec("ttl", 2, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the expiration time in seconds of a key.", "key", ttl),
    spec("pttl", 2, READONLY | FAST, (1, 1, 1), G, "2.6.0",
        "Returns the expiration time in milliseconds of a key.", "key", pttl),
    spec("expiretime", 2, READONLY | FAST, (1, 1, 1), G, "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.", "key", expiretime),
    spec("pexpiretime", 2, READONLY | FAST, (1, 1, 1), G, "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.", "key", pexpiretime),
    spec("persist", 2, WRITE | FAST, (1, 1, 1), G, "2.2.0",
        "Removes the expiration time of a key.", "key", persist),
    spec("rename", 3, WRITE, (1, 2, 1), G, "1.0.0",
        "Renames a key and overwrites the destination.", "key newkey", rename),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), G, "1.0.0",
        "Renames a key only when the target key name doesn't exist.", "key newkey", renamenx),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), G, "6.2.0",
        "Copies the value of a key to a new key.",
        "source destination [DB destination-db] [REPLACE]", copy),
    spec("keys", 2, READONLY | KEYSPACE, NO_KEYS, G, "1.0.0",
        "Returns all key names that match a pattern.", "pattern", keys),
    spec("scan", -2, READONLY | KEYSPACE, NO_KEYS, G, "2.8.0",
        "Iterates over the key names in the database.",
        "cursor [MATCH pattern] [COUNT count] [TYPE type]", scan),
    spec("randomkey", 1, READONLY | KEYSPACE, NO_KEYS, G, "1.0.0",
        "Returns a random key name from the database.", "", randomkey),
];

fn del(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    let removed: Vec<_> = keys()
        .filter_map(|k| {
            let gone = g.slot_of(k).remove(k, ctx.now);
            if gone.is_some() {
                notify(ctx, events::GENERIC, "del", k);
            }
            gone
        })
        .collect();
    drop(g);
    let n = removed.len();
    // Large collections are freed off the request path (lazyfree).
    ctx.node.db.free_later(removed.into_iter().map(|(v, _)| v));
    Ok(Frame::Integer(n as i64))
}

fn exists(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    let n = keys().filter(|k| g.slot_of(k).contains(k, ctx.now)).count();
    Ok(Frame::Integer(n as i64))
}

fn touch(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    let n = keys()
        .filter(|k| g.slot_of(k).get(k, ctx.now).is_some())
        .count();
    Ok(Frame::Integer(n as i64))
}

fn type_(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    Ok(Frame::simple(
        g.peek(key, ctx.now).map_or("none", |e| e.type_name()),
    ))
}

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT: `unit` is ms per unit, `absolute` for the *AT forms.
fn expire_generic(ctx: &mut Ctx<'_>, req: &Request, unit: i64, absolute: bool, cmd: &str) -> Reply {
    let n = int_arg(req.arg(2))?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in req.iter().skip(3) {
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else {
            return Err(Frame::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Frame::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = n.checked_mul(unit).ok_or_else(invalid)?;
    let at: i64 = if absolute {
        ms
    } else {
        ms.checked_add(ctx.now as i64).ok_or_else(invalid)?
    };
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let Some(e) = g.peek(key, ctx.now) else {
        return Ok(Frame::Integer(0));
    };
    // A key without a TTL counts as an infinite one for GT and LT.
    let cur = e.expire_at();
    let allowed = match cur {
        None => !(xx || gt),
        Some(c) => {
            let c = c as i64;
            !(nx || (gt && at <= c) || (lt && at >= c))
        }
    };
    if !allowed {
        return Ok(Frame::Integer(0));
    }
    if at <= ctx.now as i64 {
        g.remove(key, ctx.now);
        notify(ctx, events::GENERIC, "del", key);
    } else {
        g.set_expire(key, at as u64, ctx.now);
        notify(ctx, events::GENERIC, "expire", key);
    }
    Ok(Frame::Integer(1))
}

fn expire(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    expire_generic(ctx, req, 1000, false, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    expire_generic(ctx, req, 1, false, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    expire_generic(ctx, req, 1000, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    expire_generic(ctx, req, 1, true, "pexpireat")
}

/// The expiry of `key`: -2 when missing, -1 without TTL, else `f(expire_at)`.
fn ttl_generic(ctx: &mut Ctx<'_>, req: &Request, f: impl Fn(u64, u64) -> i64) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    Ok(Frame::Integer(match g.peek(key, ctx.now) {
        None => -2,
        Some(e) => e.expire_at().map_or(-1, |at| f(at, ctx.now)),
    }))
}

fn ttl(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    ttl_generic(ctx, req, |at, now| {
        (at.saturating_sub(now) as i64 + 500) / 1000
    })
}

fn pttl(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    ttl_generic(ctx, req, |at, now| at.saturating_sub(now) as i64)
}

fn expiretime(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    ttl_generic(ctx, req, |at, _| (at / 1000) as i64)
}

fn pexpiretime(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    ttl_generic(ctx, req, |at, _| at as i64)
}

fn persist(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    let has_ttl = g
        .peek(key, ctx.now)
        .is_some_and(|e| e.expire_at().is_some());
    if has_ttl {
        g.set_expire(key, NO_EXPIRY, ctx.now);
        notify(ctx, events::GENERIC, "persist", key);
    }
    Ok(Frame::Integer(has_ttl as i64))
}

/// RENAME and RENAMENX.
fn rename_generic(ctx: &mut Ctx<'_>, req: &Request, nx: bool) -> Reply {
    let (src, dst) = (req.arg(1), req.arg(2));
    let mut g = ctx.node.db.lock_keys([src, dst]);
    let Some(e) = g.slot_of(src).peek(src, ctx.now) else {
        return Err(Frame::err("ERR no such key"));
    };
    let at = e.expire_at().unwrap_or(NO_EXPIRY);
    if src == dst {
        return Ok(if nx { Frame::Integer(0) } else { Frame::ok() });
    }
    if nx && g.slot_of(dst).contains(dst, ctx.now) {
        return Ok(Frame::Integer(0));
    }
    let Some(e) = g.slot_of(src).remove(src, ctx.now) else {
        return Err(Frame::err("ERR no such key"));
    };
    let replaced = g.slot_of(dst).set(dst, e.0, at, ctx.now);
    notify(ctx, events::GENERIC, "rename_from", src);
    if !replaced {
        notify(ctx, events::NEW, "new", dst);
    }
    notify(ctx, events::GENERIC, "rename_to", dst);
    Ok(if nx { Frame::Integer(1) } else { Frame::ok() })
}

fn rename(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    rename_generic(ctx, req, false)
}

fn renamenx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    rename_generic(ctx, req, true)
}

fn copy(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (src, dst) = (req.arg(1), req.arg(2));
    let mut replace = false;
    let mut i = 3;
    while i < req.len() {
        let a = req.arg(i);
        if is(a, "REPLACE") {
            replace = true;
        } else if is(a, "DB") && i + 1 < req.len() {
            let db = int_arg(req.arg(i + 1))?;
            if db != 0 {
                return Err(Frame::err("ERR DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    if src == dst {
        return Err(Frame::err(
            "ERR source and destination objects are the same",
        ));
    }
    let mut g = ctx.node.db.lock_keys([src, dst]);
    let Some(e) = g.slot_of(src).peek(src, ctx.now) else {
        return Ok(Frame::Integer(0));
    };
    let (value, at) = (e.value(), e.expire_at().unwrap_or(NO_EXPIRY));
    if !replace && g.slot_of(dst).contains(dst, ctx.now) {
        return Ok(Frame::Integer(0));
    }
    if !g.slot_of(dst).set(dst, value, at, ctx.now) {
        notify(ctx, events::NEW, "new", dst);
    }
    notify(ctx, events::GENERIC, "copy_to", dst);
    Ok(Frame::Integer(1))
}

fn keys(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let pattern = req.arg(1);
    let all = matches_all(pattern);
    let keys = ctx.node.db.keys(ctx.now, |k| all || glob_match(pattern, k));
    Ok(Frame::Array(keys.into_iter().map(Frame::Bulk).collect()))
}

fn scan(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // Like strtoul: a negative cursor wraps around.
    let text = std::str::from_utf8(req.arg(1)).ok();
    let cursor: u64 = text
        .and_then(|s| s.parse::<u64>().ok())
        .or_else(|| text.and_then(|s| s.parse::<i64>().ok()).map(|n| n as u64))
        .ok_or(Frame::err("ERR invalid cursor"))?;
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut type_filter: Option<&[u8]> = None;
    let mut i = 2;
    while i < req.len() {
        let a = req.arg(i);
        if i + 1 >= req.len() {
            return Err(ERR_SYNTAX);
        }
        let v = req.arg(i + 1);
        if is(a, "MATCH") {
            pattern = (!matches_all(v)).then_some(v);
        } else if is(a, "COUNT") {
            let n = int_arg(v)?;
            if n < 1 {
                return Err(ERR_SYNTAX);
            }
            count = n as usize;
        } else if is(a, "TYPE") {
            type_filter = Some(v);
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 2;
    }
    let (next, keys) = ctx.node.db.scan(cursor, count, ctx.now, |k, v| {
        pattern.is_none_or(|p| glob_match(p, k))
            && type_filter.is_none_or(|t| t.eq_ignore_ascii_case(v.as_bytes()))
    });
    Ok(Frame::Array(vec![
        Frame::bulk(next.to_string()),
        Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
    ]))
}

fn randomkey(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let mut rng = rand::rng();
    Ok(ctx
        .node
        .db
        .random_key(ctx.now, &mut rng)
        .map_or(Frame::Null, Frame::Bulk))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::resp::Frame;
    use std::collections::HashSet;

    #[test]
    fn del_exists_touch_type() {
        let mut h = Harness::new();
        h.run(&["MSET", "a", "1", "b", "2"]);
        assert_eq!(h.run(&["EXISTS", "a", "a", "b", "c"]), int(3));
        assert_eq!(h.run(&["TOUCH", "a", "c"]), int(1));
        assert_eq!(h.run(&["TYPE", "a"]), Frame::simple("string"));
        assert_eq!(h.run(&["TYPE", "c"]), Frame::simple("none"));
        assert_eq!(h.run(&["DEL", "a", "b", "c"]), int(2));
        assert_eq!(h.run(&["UNLINK", "a"]), int(0));
        h.run(&["SET", "u", "1"]);
        assert_eq!(h.run(&["UNLINK", "u"]), int(1));
    }

    #[test]
    fn expire_family() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["EXPIRE", "k", "100"]), int(1));
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        assert_eq!(h.run(&["PEXPIRE", "k", "1500"]), int(1));
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        assert_eq!(h.run(&["TTL", "k"]), int(2));
        let at = (NOW / 1000 + 50).to_string();
        assert_eq!(h.run(&["EXPIREAT", "k", &at]), int(1));
        assert_eq!(h.run(&["EXPIRETIME", "k"]), int((NOW / 1000 + 50) as i64));
        let pat = (NOW + 777).to_string();
        assert_eq!(h.run(&["PEXPIREAT", "k", &pat]), int(1));
        assert_eq!(h.run(&["PEXPIRETIME", "k"]), int((NOW + 777) as i64));
        assert_eq!(h.run(&["PERSIST", "k"]), int(1));
        assert_eq!(h.run(&["PERSIST", "k"]), int(0));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["EXPIRETIME", "k"]), int(-1));
        assert_eq!(h.run(&["TTL", "nope"]), int(-2));
        assert_eq!(h.run(&["PTTL", "nope"]), int(-2));
        assert_eq!(h.run(&["EXPIRETIME", "nope"]), int(-2));
        assert_eq!(h.run(&["EXPIRE", "nope", "10"]), int(0));
        // A non-positive TTL deletes the key.
        assert_eq!(h.run(&["EXPIRE", "k", "-1"]), int(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["EXPIREAT", "k", "1"]), int(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        assert_eq!(
            h.run(&["EXPIRE", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn expire_options() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["EXPIRE", "k", "100", "XX"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "100", "GT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "100", "LT"]), int(1));
        assert_eq!(h.run(&["EXPIRE", "k", "200", "NX"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "200", "XX"]), int(1));
        assert_eq!(h.run(&["EXPIRE", "k", "100", "GT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "300", "GT"]), int(1));
        assert_eq!(h.run(&["EXPIRE", "k", "400", "LT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "50", "LT"]), int(1));
        assert_eq!(h.run(&["TTL", "k"]), int(50));
        h.run(&["PERSIST", "k"]);
        assert_eq!(h.run(&["EXPIRE", "k", "10", "NX"]), int(1));
        assert_eq!(
            h.run(&["EXPIRE", "k", "10", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "10", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "10", "FOO"]),
            err("ERR Unsupported option FOO")
        );
    }

    #[test]
    fn ttl_rounds_like_redis() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "PX", "1499"]);
        assert_eq!(h.run(&["TTL", "k"]), int(1));
        h.run(&["SET", "k", "v", "PX", "1500"]);
        assert_eq!(h.run(&["TTL", "k"]), int(2));
    }

    #[test]
    fn rename_renamenx_copy() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RENAME", "a", "b"]), err("ERR no such key"));
        assert_eq!(h.run(&["RENAMENX", "a", "b"]), err("ERR no such key"));
        h.run(&["SET", "a", "1", "EX", "100"]);
        assert_eq!(h.run(&["RENAME", "a", "b"]), Frame::ok());
        assert_eq!(h.run(&["GET", "b"]), bulk("1"));
        assert_eq!(h.run(&["TTL", "b"]), int(100));
        assert_eq!(h.run(&["EXISTS", "a"]), int(0));
        assert_eq!(h.run(&["RENAME", "b", "b"]), Frame::ok());
        h.run(&["SET", "c", "3"]);
        assert_eq!(h.run(&["RENAMENX", "b", "c"]), int(0));
        assert_eq!(h.run(&["RENAMENX", "b", "d"]), int(1));
        assert_eq!(h.run(&["RENAME", "d", "c"]), Frame::ok());
        assert_eq!(h.run(&["GET", "c"]), bulk("1"));
        assert_eq!(h.node.db.len(), 1);

        assert_eq!(h.run(&["COPY", "c", "e"]), int(1));
        assert_eq!(h.run(&["GET", "e"]), bulk("1"));
        assert_eq!(h.run(&["TTL", "e"]), int(100));
        h.run(&["SET", "c", "2"]);
        assert_eq!(h.run(&["COPY", "c", "e"]), int(0));
        assert_eq!(h.run(&["COPY", "c", "e", "REPLACE"]), int(1));
        assert_eq!(h.run(&["GET", "e"]), bulk("2"));
        assert_eq!(h.run(&["COPY", "nope", "e"]), int(0));
        assert_eq!(h.run(&["COPY", "c", "f", "DB", "0"]), int(1));
        assert_eq!(
            h.run(&["COPY", "c", "f", "DB", "1"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            h.run(&["COPY", "c", "c"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(h.run(&["COPY", "c", "f", "BOGUS"]), err("ERR syntax error"));
    }

    #[test]
    fn keys_scan_randomkey() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RANDOMKEY"]), Frame::Null);
        for i in 0..200 {
            h.run(&["SET", &format!("user:{i}"), "v"]);
            h.run(&["SET", &format!("item:{i}"), "v"]);
        }
        let Frame::Array(keys) = h.run(&["KEYS", "user:1*"]) else {
            panic!()
        };
        assert_eq!(keys.len(), 1 + 10 + 100);
        let Frame::Array(all) = h.run(&["KEYS", "*"]) else {
            panic!()
        };
        assert_eq!(all.len(), 400);

        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Frame::Array(r) = h.run(&["SCAN", &cursor, "MATCH", "user:*", "COUNT", "7"]) else {
                panic!()
            };
            let (Frame::Bulk(c), Frame::Array(ks)) = (&r[0], &r[1]) else {
                panic!()
            };
            for k in ks {
                let Frame::Bulk(k) = k else { panic!() };
                assert!(k.starts_with(b"user:"));
                seen.insert(k.clone());
            }
            cursor = String::from_utf8(c.to_vec()).expect("utf8");
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 200);
        let Frame::Array(r) = h.run(&["SCAN", "0", "TYPE", "hash", "COUNT", "1000"]) else {
            panic!()
        };
        assert_eq!(r[1], Frame::Array(vec![]));
        assert_eq!(h.run(&["SCAN", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["SCAN", "0", "COUNT", "0"]), err("ERR syntax error"));
        assert_eq!(h.run(&["SCAN", "0", "COUNT"]), err("ERR syntax error"));
        assert_eq!(h.run(&["SCAN", "0", "FOO", "1"]), err("ERR syntax error"));
        assert!(matches!(h.run(&["RANDOMKEY"]), Frame::Bulk(_)));
    }
}
