//! Set commands, with Redis 7 semantics and error texts.
//!
//! A set is an intset while its members are all integers (up to `set-max-intset-entries`),
//! a listpack while small (`set-max-listpack-entries`/`-value`), else a table (see
//! `store::value`). The multi-key commands (SINTER, SUNION, SDIFF and their STORE forms,
//! SINTERCARD, SMOVE) lock all their keys' slots at once, so each is atomic on a node; in
//! a cluster their keys must live on one node (else `-CROSSSLOT`, see the README).

use super::flags::*;
use super::hash::{random_positions, scan_args, scan_reply, scan_step, MAX_REPLY_ELEMENTS};
use super::list::{elem_frame, push_elem};
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::resp::frame::{Elements, Shape};
use crate::store::{Kind, Limits, Member, Set, Value};

const G: &str = "set";

pub static COMMANDS: &[CommandSpec] = &[
    spec("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Adds one or more members to a set. Creates the key if it doesn't exist.", "key member [member ...]", sadd),
    spec("srem", -3, WRITE | FAST, (1, 1, 1), G, "1.0.0",
        "Removes one or more members from a set. Deletes the set if the last member was removed.",
        "key member [member ...]", srem),
    spec("smembers", 2, READONLY, (1, 1, 1), G, "1.0.0",
        "Returns all members of a set.", "key", smembers),
    spec("sismember", 3, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Determines whether a member belongs to a set.", "key member", sismember),
    spec("smismember", -3, READONLY | FAST, (1, 1, 1), G, "6.2.0",
        "Determines whether multiple members belong to a set.", "key member [member ...]", smismember),
    spec("scard", 2, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the number of members in a set.", "key", scard),
    spec("spop", -2, WRITE | FAST, (1, 1, 1), G, "1.0.0",
        "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        "key [count]", spop),
    spec("srandmember", -2, READONLY, (1, 1, 1), G, "1.0.0",
        "Get one or multiple random members from a set", "key [count]", srandmember),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), G, "1.0.0",
        "Moves a member from one set to another.", "source destination member", smove),
    spec("sinter", -2, READONLY, (1, -1, 1), G, "1.0.0",
        "Returns the intersect of multiple sets.", "key [key ...]", sinter),
    spec("sintercard", -3, READONLY | NUMKEYS, (1, 1, 1), G, "7.0.0",
        "Returns the number of members of the intersect of multiple sets.",
        "numkeys key [key ...] [LIMIT limit]", sintercard),
    spec("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "1.0.0",
        "Stores the intersect of multiple sets in a key.", "destination key [key ...]", sinterstore),
    spec("sunion", -2, READONLY, (1, -1, 1), G, "1.0.0",
        "Returns the union of multiple sets.", "key [key ...]", sunion),
    spec("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "1.0.0",
        "Stores the union of multiple sets in a key.", "destination key [key ...]", sunionstore),
    spec("sdiff", -2, READONLY, (1, -1, 1), G, "1.0.0",
        "Returns the difference of multiple sets.", "key [key ...]", sdiff),
    spec("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "1.0.0",
        "Stores the difference of multiple sets in a key.", "destination key [key ...]", sdiffstore),
    spec("sscan", -3, READONLY, (1, 1, 1), G, "2.0.0",
        "Iterates over members of a set.", "key cursor [MATCH pattern] [COUNT count]", sscan),
];

/// [`update_collection`] for sets.
fn update<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut Set, &Limits) -> R,
) -> Result<Option<R>, Frame> {
    update_collection(ctx, key, create, f)
}

/// [`read_collection`] for sets.
fn read<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&Set) -> R) -> Result<Option<R>, Frame> {
    read_collection(ctx, key, f)
}

/// Members as a reply: a set in RESP3, an array in RESP2.
fn set_reply(ctx: &Ctx<'_>, items: Vec<Frame>) -> Frame {
    if ctx.session.proto == crate::resp::Protocol::Resp3 {
        Frame::Set(items)
    } else {
        Frame::Array(items)
    }
}

fn sadd(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (n, created) = update(ctx, req.arg(1), true, |s, l| {
        let created = s.is_empty();
        (
            req.iter().skip(2).filter(|m| s.insert(m, l)).count(),
            created,
        )
    })?
    .unwrap_or((0, false));
    if n > 0 {
        if created {
            notify(ctx, events::NEW, "new", req.arg(1));
        }
        notify(ctx, events::SET, "sadd", req.arg(1));
    }
    Ok(Frame::Integer(n as i64))
}

/// Keyspace events for members taken out of the set at `key`: `event`, and `del` when that
/// emptied it (the store deleted it).
fn notify_removed(ctx: &Ctx<'_>, event: &str, key: &[u8], emptied: bool) {
    notify(ctx, events::SET, event, key);
    if emptied {
        notify(ctx, events::GENERIC, "del", key);
    }
}

fn srem(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (n, emptied) = update(ctx, req.arg(1), false, |s, _| {
        let n = req.iter().skip(2).filter(|m| s.remove(m)).count();
        (n, s.is_empty())
    })?
    .unwrap_or((0, false));
    if n > 0 {
        notify_removed(ctx, "srem", req.arg(1), emptied);
    }
    Ok(Frame::Integer(n as i64))
}

fn smembers(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // Written straight from the set into the reply's bytes (see `Frame::Encoded`).
    let reply = read(ctx, req.arg(1), |s| {
        let mut out = Elements::with_capacity(s.len(), 16);
        for m in s.iter() {
            push_elem(&mut out, m);
        }
        out.finish(Shape::Set)
    })?;
    Ok(reply.unwrap_or_else(|| set_reply(ctx, Vec::new())))
}

fn sismember(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), |s| s.contains(req.arg(2)))?;
    Ok(Frame::Integer(n.unwrap_or(false) as i64))
}

fn smismember(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let members = || req.iter().skip(2);
    let out = read(ctx, req.arg(1), |s| {
        members()
            .map(|m| Frame::Integer(s.contains(m) as i64))
            .collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_else(|| {
        members().map(|_| Frame::Integer(0)).collect()
    })))
}

fn scard(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), Set::len)?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn spop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut rng = rand::rng();
    if req.len() == 2 {
        let m = update(ctx, key, false, |s, _| {
            let i = rand::Rng::random_range(&mut rng, 0..s.len().max(1));
            let m = s.get_index(i).map(Member::to_vec)?;
            s.remove(&m);
            Some((m, s.is_empty()))
        })?
        .flatten();
        if let Some((_, emptied)) = &m {
            notify_removed(ctx, "spop", key, *emptied);
        }
        return Ok(m.map_or(Frame::Null, |(m, _)| Frame::bulk(m)));
    }
    if req.len() > 3 {
        return Err(ERR_SYNTAX);
    }
    let count = int_arg(req.arg(2))
        .ok()
        .filter(|&n| n >= 0)
        .ok_or(Frame::err("ERR value is out of range, must be positive"))?;
    let popped = update(ctx, key, false, |s, _| {
        let picks: Vec<Vec<u8>> = random_positions(s.len(), count, &mut rng)
            .into_iter()
            .filter_map(|i| s.get_index(i).map(Member::to_vec))
            .collect();
        if picks.len() == s.len() {
            // Everything goes: the emptied set is deleted by `modify`.
            *s = Set::default();
        } else {
            for m in &picks {
                s.remove(m);
            }
        }
        picks
    })?;
    let popped = popped.unwrap_or_default();
    if !popped.is_empty() {
        let emptied = !ctx.node.db.lock_key(key).contains(key, ctx.now);
        notify_removed(ctx, "spop", key, emptied);
    }
    let items = popped.into_iter().map(Frame::bulk).collect();
    Ok(set_reply(ctx, items))
}

fn srandmember(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut rng = rand::rng();
    if req.len() == 2 {
        let m = read(ctx, key, |s| {
            let i = rand::Rng::random_range(&mut rng, 0..s.len().max(1));
            s.get_index(i).map(elem_frame)
        })?;
        return Ok(m.flatten().unwrap_or(Frame::Null));
    }
    if req.len() > 3 {
        return Err(ERR_SYNTAX);
    }
    let count = int_arg(req.arg(2))?;
    if count < 0 && count.unsigned_abs() > MAX_REPLY_ELEMENTS as u64 {
        return Err(Frame::err("ERR value is out of range"));
    }
    let items = read(ctx, key, |s| {
        random_positions(s.len(), count, &mut rng)
            .into_iter()
            .filter_map(|i| s.get_index(i).map(elem_frame))
            .collect()
    })?;
    Ok(Frame::Array(items.unwrap_or_default()))
}

fn smove(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (src, dst, m) = (req.arg(1), req.arg(2), req.arg(3));
    let limits = ctx.node.db.limits();
    let mut g = ctx.node.db.lock_keys([src, dst]);
    let now = ctx.now;
    // Both keys' types are checked before anything changes, like Redis.
    let src_has = match g.slot_of(src).peek(src, now) {
        None => return Ok(Frame::Integer(0)),
        Some(e) => e.as_set().map_err(|_| ERR_WRONGTYPE)?.contains(m),
    };
    let (dst_existed, dst_has) = match g.slot_of(dst).peek(dst, now) {
        Some(e) => (true, e.as_set().map_err(|_| ERR_WRONGTYPE)?.contains(m)),
        None => (false, false),
    };
    if src == dst || !src_has {
        return Ok(Frame::Integer(src_has as i64));
    }
    let _ = g
        .slot_of(src)
        .modify(src, now, Kind::Set, false, |v| {
            if let Value::Set(s) = v {
                s.remove(m);
            }
        })
        .map_err(|_| ERR_WRONGTYPE)?;
    let emptied = !g.slot_of(src).contains(src, now);
    if dst_has {
        // The destination does not change, so it is not touched (a WATCH on it holds), as
        // in Redis; only the source's removal is announced.
        drop(g);
        notify_removed(ctx, "srem", src, emptied);
        return Ok(Frame::Integer(1));
    }
    g.slot_of(dst)
        .modify(dst, now, Kind::Set, true, |v| {
            if let Value::Set(s) = v {
                s.insert(m, &limits);
            }
        })
        .map_err(|_| ERR_WRONGTYPE)?;
    drop(g);
    notify_removed(ctx, "srem", src, emptied);
    if !dst_existed {
        notify(ctx, events::NEW, "new", dst);
    }
    notify(ctx, events::SET, "sadd", dst);
    Ok(Frame::Integer(1))
}

/// How a multi-set command combines its sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Combines the sets at `keys` (a missing key is an empty set) under the locks of
/// `g`. `limit` stops an intersection early (SINTERCARD). Errors with WRONGTYPE when any
/// key holds another type, before computing anything.
fn combine(
    g: &mut crate::store::MultiGuard<'_>,
    keys: &[&[u8]],
    op: Op,
    limit: usize,
    now: u64,
    limits: &Limits,
) -> Result<Set, Frame> {
    // Types first, and each set's size (missing: None).
    let mut lens = Vec::with_capacity(keys.len());
    for k in keys {
        lens.push(match g.slot_of(k).get(k, now) {
            None => None,
            Some(e) => Some(e.as_set().map_err(|_| ERR_WRONGTYPE)?.len()),
        });
    }
    let mut out = Set::default();
    match op {
        Op::Union => {
            for k in keys {
                if let Some(e) = g.slot_of(k).peek(k, now) {
                    if let Ok(s) = e.as_set() {
                        for m in s.iter() {
                            m.with_bytes(|b| out.insert(b, limits));
                        }
                    }
                }
            }
        }
        Op::Inter => {
            if lens.iter().any(Option::is_none) {
                return Ok(out);
            }
            // Start from the smallest set, keep what every other set has.
            let Some(first) = (0..keys.len()).min_by_key(|&i| lens[i].unwrap_or(0)) else {
                return Ok(out);
            };
            let mut cand: Vec<Vec<u8>> = match g.slot_of(keys[first]).peek(keys[first], now) {
                Some(e) => e
                    .as_set()
                    .map(|s| s.iter().map(Member::to_vec).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for (i, k) in keys.iter().enumerate() {
                if i == first || cand.is_empty() {
                    continue;
                }
                if let Some(e) = g.slot_of(k).peek(k, now) {
                    if let Ok(s) = e.as_set() {
                        cand.retain(|m| s.contains(m));
                    }
                }
            }
            for m in cand.iter().take(limit) {
                out.insert(m, limits);
            }
        }
        Op::Diff => {
            let Some(e) = g.slot_of(keys[0]).peek(keys[0], now) else {
                return Ok(out);
            };
            let mut cand: Vec<Vec<u8>> = e
                .as_set()
                .map(|s| s.iter().map(Member::to_vec).collect())
                .unwrap_or_default();
            for k in &keys[1..] {
                if cand.is_empty() {
                    break;
                }
                if let Some(e) = g.slot_of(k).peek(k, now) {
                    if let Ok(s) = e.as_set() {
                        cand.retain(|m| !s.contains(m));
                    }
                }
            }
            for m in &cand {
                out.insert(m, limits);
            }
        }
    }
    Ok(out)
}

/// SINTER, SUNION, SDIFF.
fn combine_reply(ctx: &mut Ctx<'_>, req: &Request, op: Op) -> Reply {
    let keys: Vec<&[u8]> = req.iter().skip(1).collect();
    let limits = ctx.node.db.limits();
    let mut g = ctx.node.db.lock_keys(keys.iter().copied());
    let s = combine(&mut g, &keys, op, usize::MAX, ctx.now, &limits)?;
    drop(g);
    let items = s.iter().map(elem_frame).collect();
    Ok(set_reply(ctx, items))
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the result replaces `dst` (of any type, and its
/// TTL); an empty result deletes it.
fn combine_store(ctx: &mut Ctx<'_>, req: &Request, op: Op) -> Reply {
    let dst = req.arg(1);
    let keys: Vec<&[u8]> = req.iter().skip(2).collect();
    let limits = ctx.node.db.limits();
    let mut g = ctx
        .node
        .db
        .lock_keys(keys.iter().copied().chain(std::iter::once(dst)));
    let s = combine(&mut g, &keys, op, usize::MAX, ctx.now, &limits)?;
    let n = s.len();
    let old = g.slot_of(dst).remove(dst, ctx.now).map(|(v, _)| v);
    if n > 0 {
        g.slot_of(dst)
            .set(dst, Value::Set(s), crate::store::NO_EXPIRY, ctx.now);
    }
    drop(g);
    let existed = old.is_some();
    ctx.node.db.free_later(old);
    let event = match op {
        Op::Inter => "sinterstore",
        Op::Union => "sunionstore",
        Op::Diff => "sdiffstore",
    };
    if n > 0 {
        if !existed {
            notify(ctx, events::NEW, "new", dst);
        }
        notify(ctx, events::SET, event, dst);
    } else if existed {
        notify(ctx, events::GENERIC, "del", dst);
    }
    Ok(Frame::Integer(n as i64))
}

fn sinter(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_reply(ctx, req, Op::Inter)
}

fn sunion(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_reply(ctx, req, Op::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_reply(ctx, req, Op::Diff)
}

fn sinterstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_store(ctx, req, Op::Inter)
}

fn sunionstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_store(ctx, req, Op::Union)
}

fn sdiffstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    combine_store(ctx, req, Op::Diff)
}

fn sintercard(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let numkeys = parse_i64(req.arg(1))
        .filter(|&n| n > 0)
        .ok_or(Frame::err("ERR numkeys should be greater than 0"))?;
    let n = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if n > req.len() - 2 {
        return Err(Frame::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = usize::MAX;
    let mut i = 2 + n;
    while i < req.len() {
        if is(req.arg(i), "LIMIT") && i + 1 < req.len() {
            let l = parse_i64(req.arg(i + 1))
                .filter(|&l| l >= 0)
                .ok_or(Frame::err("ERR LIMIT can't be negative"))?;
            limit = if l == 0 { usize::MAX } else { l as usize };
            i += 2;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    let keys: Vec<&[u8]> = (2..2 + n).map(|i| req.arg(i)).collect();
    let limits = ctx.node.db.limits();
    let mut g = ctx.node.db.lock_keys(keys.iter().copied());
    let s = combine(&mut g, &keys, Op::Inter, limit, ctx.now, &limits)?;
    Ok(Frame::Integer(s.len() as i64))
}

fn sscan(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let args = scan_args(req)?;
    let out = read(ctx, req.arg(1), |s| {
        let compact = !matches!(s, Set::Table(_));
        let (range, next) = scan_step(s.len(), args.cursor, args.count, compact);
        let mut elems = Vec::new();
        for i in range.rev() {
            if let Some(m) = s.get_index(i) {
                m.with_bytes(|b| {
                    if args.matches(b) {
                        elems.push(Frame::bulk(b));
                    }
                });
            }
        }
        (next, elems)
    })?;
    let (next, elems) = out.unwrap_or((0, Vec::new()));
    Ok(scan_reply(next, elems))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn keyspace_events_as_redis() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "notify-keyspace-events", "Ksg"]);
        let mut sub = h.other_session();
        h.run_as(&mut sub, &["PSUBSCRIBE", "*"]);
        Harness::pushed(&sub);
        h.run(&["SADD", "s", "a", "b"]);
        h.run(&["SADD", "s", "a"]);
        h.run(&["SREM", "s", "x"]);
        h.run(&["SMOVE", "s", "t", "a"]);
        h.run(&["SPOP", "s"]);
        h.run(&["SINTERSTORE", "u", "t", "nothing"]);
        let got = Harness::pushed(&sub);
        let events: Vec<&str> = got
            .split("\r\n")
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()) && !l.starts_with("__"))
            .filter(|l| *l != "pmessage")
            .collect();
        assert_eq!(events, ["sadd", "srem", "sadd", "spop", "del"], "{got}");
    }

    /// The members of an array or set reply, sorted.
    fn sorted(f: Frame) -> Vec<String> {
        let (Frame::Array(v) | Frame::Set(v)) = f else {
            panic!("not an array: {f:?}")
        };
        let mut out: Vec<String> = v
            .into_iter()
            .map(|f| match f {
                Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn encoding(h: &mut Harness, key: &str) -> Frame {
        h.run(&["OBJECT", "ENCODING", key])
    }

    /// The store's used_memory, as INFO reports it.
    fn used(h: &Harness) -> u64 {
        h.node.db.used_memory()
    }

    /// Small sets of strings live inline in their key's entry block (a listpack): every
    /// command reads and changes them there, they convert to a table at the thresholds, and
    /// the memory accounting follows each change exactly.
    #[test]
    fn inline_listpack_sets() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "set-max-listpack-entries", "8"]);
        h.run(&["CONFIG", "SET", "set-max-listpack-value", "10"]);
        assert_eq!(h.run(&["SADD", "s", "a", "b", "c", "d", "e"]), int(5));
        assert_eq!(encoding(&mut h, "s"), bulk("listpack"));
        let one = used(&h);
        assert!(one > 0);
        // An intset turns into a listpack with its first string member.
        assert_eq!(h.run(&["SADD", "n", "1", "2", "3"]), int(3));
        assert_eq!(encoding(&mut h, "n"), bulk("intset"));
        assert_eq!(h.run(&["SADD", "n", "x"]), int(1));
        assert_eq!(encoding(&mut h, "n"), bulk("listpack"));
        assert_eq!(
            sorted(h.run(&["SMEMBERS", "n"])),
            strs(&["1", "2", "3", "x"])
        );
        assert_eq!(h.run(&["SISMEMBER", "n", "2"]), int(1));
        // SRANDMEMBER and SSCAN read in place.
        let all = strs(&["a", "b", "c", "d", "e"]);
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "10"])), all);
        let Frame::Array(picks) = h.run(&["SRANDMEMBER", "s", "-20"]) else {
            panic!("not an array")
        };
        assert_eq!(picks.len(), 20);
        assert!(picks
            .iter()
            .all(|p| matches!(p, Frame::Bulk(b) if all.contains(&String::from_utf8_lossy(b).into_owned()))));
        let Frame::Array(scan) = h.run(&["SSCAN", "s", "0", "COUNT", "2"]) else {
            panic!("not an array")
        };
        assert_eq!(scan[0], bulk("0"));
        assert_eq!(sorted(scan[1].clone()), all);
        // DUMP and RESTORE keep the encoding.
        let Frame::Bulk(dump) = h.run(&["DUMP", "s"]) else {
            panic!("no dump")
        };
        let req = Request::from_args([&b"RESTORE"[..], b"r", b"0", &dump]);
        let mut ctx = Ctx {
            node: &h.node,
            session: &mut h.session,
            now: h.now,
        };
        assert_eq!(dispatch(&mut ctx, &req), Frame::ok());
        assert_eq!(encoding(&mut h, "r"), bulk("listpack"));
        assert_eq!(sorted(h.run(&["SMEMBERS", "r"])), all);
        assert_eq!(
            h.run(&["MEMORY", "USAGE", "r"]),
            h.run(&["MEMORY", "USAGE", "s"])
        );
        h.run(&["DEL", "r", "n"]);
        assert_eq!(used(&h), one);
        // SPOP changes it in place; popping everything removes the key.
        let Frame::Bulk(popped) = h.run(&["SPOP", "s"]) else {
            panic!("no member")
        };
        assert_eq!(
            h.run(&["SISMEMBER", "s", &String::from_utf8_lossy(&popped)]),
            int(0)
        );
        assert_eq!(h.run(&["SCARD", "s"]), int(4));
        // One 1-byte member less: at most the same size class (16-byte steps).
        assert!(used(&h) <= one);
        assert_eq!(
            h.run(&["SADD", "s", &String::from_utf8_lossy(&popped)]),
            int(1)
        );
        assert_eq!(used(&h), one);
        let Frame::Array(two) = h.run(&["SPOP", "s", "2"]) else {
            panic!("not an array")
        };
        assert_eq!((two.len(), h.run(&["SCARD", "s"])), (2, int(3)));
        assert_eq!(encoding(&mut h, "s"), bulk("listpack"));
        h.run(&["SPOP", "s", "3"]);
        assert_eq!((h.run(&["EXISTS", "s"]), used(&h)), (int(0), 0));
        // Conversion at the thresholds: the ninth member, or a member over 10 bytes.
        let eight: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
        let mut args = vec!["SADD", "big"];
        args.extend(eight.iter().map(String::as_str));
        assert_eq!(h.run(&args), int(8));
        assert_eq!(encoding(&mut h, "big"), bulk("listpack"));
        assert_eq!(h.run(&["SADD", "big", "m8"]), int(1));
        assert_eq!(encoding(&mut h, "big"), bulk("hashtable"));
        assert_eq!(h.run(&["SCARD", "big"]), int(9));
        assert_eq!(h.run(&["SADD", "long", "a"]), int(1));
        assert_eq!(h.run(&["SADD", "long", "elevenbytes"]), int(1));
        assert_eq!(encoding(&mut h, "long"), bulk("hashtable"));
        assert_eq!(
            sorted(h.run(&["SMEMBERS", "long"])),
            strs(&["a", "elevenbytes"])
        );
        h.run(&["FLUSHALL"]);
        assert_eq!(used(&h), 0);
    }

    #[test]
    fn add_remove_members() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "a"]), int(2));
        assert_eq!(h.run(&["SADD", "s", "b", "c"]), int(1));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SCARD", "none"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(h.run(&["SISMEMBER", "s", "z"]), int(0));
        assert_eq!(
            h.run(&["SMISMEMBER", "s", "a", "z"]),
            Frame::Array(vec![int(1), int(0)])
        );
        assert_eq!(
            h.run(&["SMISMEMBER", "none", "a"]),
            Frame::Array(vec![int(0)])
        );
        assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), strs(&["a", "b", "c"]));
        assert_eq!(h.run(&["SREM", "s", "a", "z"]), int(1));
        assert_eq!(h.run(&["SREM", "s", "b", "c"]), int(2));
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
        assert_eq!(h.run(&["SMEMBERS", "s"]), Frame::Array(vec![]));
        h.run(&["SET", "str", "x"]);
        let wt = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(h.run(&["SADD", "str", "a"]), wt);
        assert_eq!(h.run(&["SMEMBERS", "str"]), wt);
        h.run(&["SADD", "s", "1"]);
        assert_eq!(h.run(&["GET", "s"]), wt);
        assert_eq!(h.run(&["HGET", "s", "f"]), wt);
        assert_eq!(h.run(&["TYPE", "s"]), Frame::simple("set"));
    }

    #[test]
    fn encodings() {
        let mut h = Harness::new();
        h.run(&["SADD", "i", "1", "2", "-3"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "i"]), bulk("intset"));
        assert_eq!(sorted(h.run(&["SMEMBERS", "i"])), strs(&["-3", "1", "2"]));
        h.run(&["SADD", "i", "x"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "i"]), bulk("listpack"));
        h.run(&["CONFIG", "SET", "set-max-listpack-entries", "0"]);
        h.run(&["SADD", "t", "x"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "t"]), bulk("hashtable"));
        h.run(&["CONFIG", "SET", "set-max-intset-entries", "2"]);
        h.run(&["SADD", "j", "1", "2", "3"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "j"]), bulk("hashtable"));
        assert_eq!(
            h.run(&["CONFIG", "GET", "set-max-intset-entries"]),
            Frame::Map(vec![(bulk("set-max-intset-entries"), bulk("2"))])
        );
    }

    #[test]
    fn pop_and_random() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SPOP", "none"]), Frame::Null);
        assert_eq!(h.run(&["SRANDMEMBER", "none"]), Frame::Null);
        assert_eq!(h.run(&["SPOP", "none", "2"]), Frame::Array(vec![]));
        h.run(&["SADD", "s", "a", "b", "c", "d"]);
        assert_eq!(
            h.run(&["SPOP", "s", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "10"])).len(), 4);
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "-10"])).len(), 10);
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "2"])).len(), 2);
        let popped = sorted(h.run(&["SPOP", "s", "3"]));
        assert_eq!(popped.len(), 3);
        assert_eq!(h.run(&["SCARD", "s"]), int(1));
        let Frame::Bulk(last) = h.run(&["SPOP", "s"]) else {
            panic!("a member")
        };
        assert!(!popped.contains(&String::from_utf8_lossy(&last).into_owned()));
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
        h.run(&["SADD", "s", "1", "2"]);
        assert_eq!(sorted(h.run(&["SPOP", "s", "5"])), strs(&["1", "2"]));
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
    }

    #[test]
    fn algebra() {
        let mut h = Harness::new();
        h.run(&["SADD", "{t}a", "1", "2", "3", "x"]);
        h.run(&["SADD", "{t}b", "2", "3", "4", "x"]);
        h.run(&["SADD", "{t}c", "3", "x", "y"]);
        assert_eq!(
            sorted(h.run(&["SINTER", "{t}a", "{t}b", "{t}c"])),
            strs(&["3", "x"])
        );
        assert_eq!(h.run(&["SINTER", "{t}a", "{t}none"]), Frame::Array(vec![]));
        assert_eq!(
            sorted(h.run(&["SUNION", "{t}a", "{t}c", "{t}none"])),
            strs(&["1", "2", "3", "x", "y"])
        );
        assert_eq!(
            sorted(h.run(&["SDIFF", "{t}a", "{t}b", "{t}none"])),
            strs(&["1"])
        );
        assert_eq!(h.run(&["SDIFF", "{t}none", "{t}a"]), Frame::Array(vec![]));
        assert_eq!(h.run(&["SINTERCARD", "2", "{t}a", "{t}b"]), int(3));
        assert_eq!(
            h.run(&["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "2"]),
            int(2)
        );
        for n in ["0", "x", "-1"] {
            assert_eq!(
                h.run(&["SINTERCARD", n, "{t}a"]),
                err("ERR numkeys should be greater than 0")
            );
        }
        assert_eq!(
            h.run(&["SINTERCARD", "3", "{t}a", "{t}b"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        for l in ["-1", "x"] {
            assert_eq!(
                h.run(&["SINTERCARD", "1", "{t}a", "LIMIT", l]),
                err("ERR LIMIT can't be negative")
            );
        }
        // Stores replace the destination, whatever it held, and drop its TTL.
        h.run(&["SET", "{t}d", "str"]);
        h.run(&["EXPIRE", "{t}d", "100"]);
        assert_eq!(h.run(&["SINTERSTORE", "{t}d", "{t}a", "{t}b"]), int(3));
        assert_eq!(h.run(&["TTL", "{t}d"]), int(-1));
        assert_eq!(sorted(h.run(&["SMEMBERS", "{t}d"])), strs(&["2", "3", "x"]));
        assert_eq!(h.run(&["SUNIONSTORE", "{t}d", "{t}c"]), int(3));
        assert_eq!(h.run(&["SDIFFSTORE", "{t}d", "{t}a", "{t}a"]), int(0));
        assert_eq!(h.run(&["EXISTS", "{t}d"]), int(0));
        // A key of another type among the sources: WRONGTYPE, nothing stored.
        h.run(&["SET", "{t}s", "x"]);
        let wt = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(h.run(&["SINTER", "{t}none", "{t}s"]), wt);
        assert_eq!(h.run(&["SUNIONSTORE", "{t}d", "{t}a", "{t}s"]), wt);
        assert_eq!(h.run(&["EXISTS", "{t}d"]), int(0));
    }

    #[test]
    fn smove_checks_both_types() {
        let mut h = Harness::new();
        h.run(&["SADD", "{t}a", "m", "n"]);
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}b", "m"]), int(1));
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}b", "zz"]), int(0));
        assert_eq!(h.run(&["SMOVE", "{t}none", "{t}b", "m"]), int(0));
        assert_eq!(sorted(h.run(&["SMEMBERS", "{t}b"])), strs(&["m"]));
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}a", "n"]), int(1));
        h.run(&["SET", "{t}s", "x"]);
        let wt = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}s", "n"]), wt);
        assert_eq!(h.run(&["SMOVE", "{t}s", "{t}a", "n"]), wt);
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}b", "n"]), int(1));
        // A member the destination already holds leaves it untouched: a WATCH on it holds.
        h.run(&["SADD", "{t}a", "n"]);
        let w = crate::store::Watcher::new();
        h.node.db.lock_key(b"{t}b").watch(b"{t}b", &w, h.now);
        assert_eq!(h.run(&["SMOVE", "{t}a", "{t}b", "n"]), int(1));
        assert!(!w.is_dirty());
        assert_eq!(h.run(&["SISMEMBER", "{t}a", "n"]), int(0));
        assert_eq!(h.run(&["EXISTS", "{t}a"]), int(0));
    }

    #[test]
    fn scan_every_member() {
        let mut h = Harness::new();
        let mut args = vec!["SADD".to_string(), "s".into()];
        for i in 0..300 {
            args.push(format!("m{i}"));
        }
        h.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Frame::Array(r) = h.run(&["SSCAN", "s", &cursor, "COUNT", "20"]) else {
                panic!("array")
            };
            let (Frame::Bulk(c), Frame::Array(items)) = (&r[0], &r[1]) else {
                panic!("cursor and items")
            };
            for m in items {
                seen.insert(format!("{m:?}"));
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 300);
        h.run(&["SADD", "i", "1", "2", "3"]);
        assert_eq!(
            h.run(&["SSCAN", "i", "0", "MATCH", "2"]),
            Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("2")])])
        );
    }
}
