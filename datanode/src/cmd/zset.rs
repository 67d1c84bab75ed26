//! Sorted-set commands, with Redis 7 semantics, replies and error texts.
//!
//! A sorted set is a listpack while small (`zset-max-listpack-entries`/`-value`) and a
//! slab, hash index and order-statistics B+ tree beyond (see `store::zset`). Every range
//! command (by rank, score or lex, either direction, with LIMIT) becomes a range of ranks
//! `lo..hi` found in O(log n), then a walk over it. Scores are replied as doubles (`%.17g`
//! in RESP2 bulk strings, RESP3 doubles) and read with C's `strtod` rules, like Redis.
//! Writes emit Redis's keyspace events (`zadd`, `zincr`, `zrem`, `zpopmin`, ...).
//! BZPOPMIN, BZPOPMAX and BZMPOP wait on `crate::blocking` like the list pops.
//!
//! Here: the command table, ZADD, ZINCRBY, ZREM and the single-key reads (ZCARD, ZCOUNT,
//! ZSCORE, ZRANK, ZRANDMEMBER, ZSCAN, ...); the rest by concern:
//! - `ranges`: score, lex and rank bounds and the rank ranges they select.
//! - `range`: ZRANGE and its older forms, ZRANGESTORE, ZREMRANGEBY*.
//! - `pop`: ZPOPMIN/MAX, ZMPOP and the blocking pops.
//! - `algebra`: ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD.

use super::blocking::block;
use super::flags::*;
use super::hash::{random_positions, scan_args, scan_reply, MAX_REPLY_ELEMENTS, RAND_COUNT_MAX};
use super::list::slots_of;
use super::pubsub::notify;
use super::*;
use crate::blocking::{self, Serve};
use crate::pubsub::events;
use crate::resp::Protocol;
use crate::store::{Kind, Limits, Zset};

mod algebra;
mod pop;
mod range;
mod ranges;

use algebra::*;
use pop::*;
pub(crate) use pop::{serve_bzmpop, serve_bzpop};
pub(super) use range::store_result;
use range::*;
use ranges::*;
pub(super) use ranges::{lex_ranks, rank_ranks, score_ranks, LexBound, ScoreBound};

const G: &str = "sorted-set";

/// Owned members with their scores.
pub(super) type Elems = Vec<(Vec<u8>, f64)>;

pub static COMMANDS: &[CommandSpec] = &[
    spec("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.2.0",
        "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.",
        "key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]", zadd),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.2.0",
        "Increments the score of a member in a sorted set.", "key increment member", zincrby),
    spec("zrem", -3, WRITE | FAST, (1, 1, 1), G, "1.2.0",
        "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.",
        "key member [member ...]", zrem),
    spec("zcard", 2, READONLY | FAST, (1, 1, 1), G, "1.2.0",
        "Returns the number of members in a sorted set.", "key", zcard),
    spec("zcount", 4, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the count of members in a sorted set that have scores within a range.", "key min max", zcount),
    spec("zlexcount", 4, READONLY | FAST, (1, 1, 1), G, "2.8.9",
        "Returns the number of members in a sorted set within a lexicographical range.", "key min max", zlexcount),
    spec("zscore", 3, READONLY | FAST, (1, 1, 1), G, "1.2.0",
        "Returns the score of a member in a sorted set.", "key member", zscore),
    spec("zmscore", -3, READONLY | FAST, (1, 1, 1), G, "6.2.0",
        "Returns the score of one or more members in a sorted set.", "key member [member ...]", zmscore),
    spec("zrank", -3, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the index of a member in a sorted set ordered by ascending scores.",
        "key member [WITHSCORE]", zrank),
    spec("zrevrank", -3, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the index of a member in a sorted set ordered by descending scores.",
        "key member [WITHSCORE]", zrevrank),
    spec("zrange", -4, READONLY, (1, 1, 1), G, "1.2.0",
        "Returns members in a sorted set within a range of indexes.",
        "key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]", zrange),
    spec("zrevrange", -4, READONLY, (1, 1, 1), G, "1.2.0",
        "Returns members in a sorted set within a range of indexes in reverse order.",
        "key start stop [WITHSCORES]", zrevrange),
    spec("zrangebyscore", -4, READONLY, (1, 1, 1), G, "1.0.5",
        "Returns members in a sorted set within a range of scores.",
        "key min max [WITHSCORES] [LIMIT offset count]", zrangebyscore),
    spec("zrevrangebyscore", -4, READONLY, (1, 1, 1), G, "2.2.0",
        "Returns members in a sorted set within a range of scores in reverse order.",
        "key max min [WITHSCORES] [LIMIT offset count]", zrevrangebyscore),
    spec("zrangebylex", -4, READONLY, (1, 1, 1), G, "2.8.9",
        "Returns members in a sorted set within a lexicographical range.",
        "key min max [LIMIT offset count]", zrangebylex),
    spec("zrevrangebylex", -4, READONLY, (1, 1, 1), G, "2.8.9",
        "Returns members in a sorted set within a lexicographical range in reverse order.",
        "key max min [LIMIT offset count]", zrevrangebylex),
    spec("zpopmin", -2, WRITE | FAST, (1, 1, 1), G, "5.0.0",
        "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        "key [count]", zpopmin),
    spec("zpopmax", -2, WRITE | FAST, (1, 1, 1), G, "5.0.0",
        "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        "key [count]", zpopmax),
    spec("zrandmember", -2, READONLY, (1, 1, 1), G, "6.2.0",
        "Returns one or more random members from a sorted set.", "key [count [WITHSCORES]]", zrandmember),
    spec("zscan", -3, READONLY, (1, 1, 1), G, "2.8.0",
        "Iterates over members and scores of a sorted set.", "key cursor [MATCH pattern] [COUNT count]", zscan),
    spec("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), G, "6.2.0",
        "Stores a range of members from sorted set in a key.",
        "dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]", zrangestore),
    spec("zremrangebyrank", 4, WRITE, (1, 1, 1), G, "2.0.0",
        "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.",
        "key start stop", zremrangebyrank),
    spec("zremrangebyscore", 4, WRITE, (1, 1, 1), G, "1.2.0",
        "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.",
        "key min max", zremrangebyscore),
    spec("zremrangebylex", 4, WRITE, (1, 1, 1), G, "2.8.9",
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.",
        "key min max", zremrangebylex),
    spec("zunion", -3, READONLY | NUMKEYS, (1, 1, 1), G, "6.2.0",
        "Returns the union of multiple sorted sets.",
        "numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]", zunion),
    spec("zinter", -3, READONLY | NUMKEYS, (1, 1, 1), G, "6.2.0",
        "Returns the intersect of multiple sorted sets.",
        "numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]", zinter),
    spec("zdiff", -3, READONLY | NUMKEYS, (1, 1, 1), G, "6.2.0",
        "Returns the difference between multiple sorted sets.", "numkeys key [key ...] [WITHSCORES]", zdiff),
    spec("zunionstore", -4, WRITE | DENYOOM | DEST_NUMKEYS, (1, 1, 1), G, "2.0.0",
        "Stores the union of multiple sorted sets in a key.",
        "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]", zunionstore),
    spec("zinterstore", -4, WRITE | DENYOOM | DEST_NUMKEYS, (1, 1, 1), G, "2.0.0",
        "Stores the intersect of multiple sorted sets in a key.",
        "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]", zinterstore),
    spec("zdiffstore", -4, WRITE | DENYOOM | DEST_NUMKEYS, (1, 1, 1), G, "6.2.0",
        "Stores the difference of multiple sorted sets in a key.", "destination numkeys key [key ...]", zdiffstore),
    spec("zintercard", -3, READONLY | NUMKEYS, (1, 1, 1), G, "7.0.0",
        "Returns the number of members of the intersect of multiple sorted sets.",
        "numkeys key [key ...] [LIMIT limit]", zintercard),
    spec("zmpop", -4, WRITE | NUMKEYS, (1, 1, 1), G, "7.0.0",
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.",
        "numkeys key [key ...] MIN | MAX [COUNT count]", zmpop),
    spec("bzpopmin", -3, WRITE | FAST | BLOCKING, (1, -2, 1), G, "5.0.0",
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        "key [key ...] timeout", bzpopmin),
    spec("bzpopmax", -3, WRITE | FAST | BLOCKING, (1, -2, 1), G, "5.0.0",
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        "key [key ...] timeout", bzpopmax),
    spec("bzmpop", -5, WRITE | BLOCKING | NUMKEYS, (2, 2, 1), G, "7.0.0",
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        "timeout numkeys key [key ...] MIN | MAX [COUNT count]", bzmpop),
];

/// [`update_collection`] for sorted sets.
fn update<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut Zset, &Limits) -> R,
) -> Result<Option<R>, Frame> {
    update_collection(ctx, key, create, f)
}

/// [`read_collection`] for sorted sets.
fn read<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&Zset) -> R) -> Result<Option<R>, Frame> {
    read_collection(ctx, key, f)
}

fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.session.proto == Protocol::Resp3
}

/// Appends one element to a reply: the member, or with its score (a `[member, score]`
/// pair in RESP3, two flat items in RESP2).
fn push_elem(out: &mut Vec<Frame>, m: Frame, s: f64, withscores: bool, resp3: bool) {
    if !withscores {
        out.push(m);
    } else if resp3 {
        out.push(Frame::Array(vec![m, Frame::Double(s)]));
    } else {
        out.extend([m, Frame::Double(s)]);
    }
}

pub(super) const ERR_NAN: Frame = Frame::err("ERR resulting score is not a number (NaN)");
const ERR_MINMAX_FLOAT: Frame = Frame::err("ERR min or max is not a float");
const ERR_MINMAX_LEX: Frame = Frame::err("ERR min or max not valid string range item");

/// A score argument (`getDoubleFromObject`: strict, no NaN, no overflow).
pub(super) fn score_arg(a: &[u8]) -> Result<f64, Frame> {
    parse_double(a).ok_or(ERR_NOT_FLOAT)
}

// ---- ZADD and friends ----

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What one ZADD did.
#[derive(Default)]
struct AddOutcome {
    added: usize,
    updated: usize,
    processed: usize,
    last_score: f64,
    created: bool,
    nan: bool,
}

/// ZADD's core on one sorted set (`zsetAdd` for each pair).
fn add_all(z: &mut Zset, l: &Limits, pairs: &[(f64, &[u8])], f: &AddFlags) -> AddOutcome {
    let mut out = AddOutcome {
        created: z.is_empty(),
        ..AddOutcome::default()
    };
    for &(score, m) in pairs {
        let mut score = score;
        match z.score(m) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                if f.incr {
                    score += cur;
                    if score.is_nan() {
                        out.nan = true;
                        return out;
                    }
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    continue;
                }
                out.processed += 1;
                out.last_score = score;
                if score != cur {
                    z.insert(m, score, l);
                    out.updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                z.insert(m, score, l);
                out.added += 1;
                out.processed += 1;
                out.last_score = score;
            }
        }
    }
    out
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ...`; ZINCRBY is ZADD key INCR.
fn zadd_generic(ctx: &mut Ctx<'_>, req: &Request, first: usize, mut f: AddFlags) -> Reply {
    let mut i = first;
    while i < req.len() {
        let a = req.arg(i);
        if is(a, "NX") {
            f.nx = true;
        } else if is(a, "XX") {
            f.xx = true;
        } else if is(a, "GT") {
            f.gt = true;
        } else if is(a, "LT") {
            f.lt = true;
        } else if is(a, "CH") {
            f.ch = true;
        } else if is(a, "INCR") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = req.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(ERR_SYNTAX);
    }
    if f.nx && f.xx {
        return Err(Frame::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(Frame::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 2 {
        return Err(Frame::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for j in (i..req.len()).step_by(2) {
        pairs.push((score_arg(req.arg(j))?, req.arg(j + 1)));
    }
    let key = req.arg(1);
    let out = update(ctx, key, !f.xx, |z, l| add_all(z, l, &pairs, &f))?.unwrap_or_default();
    if out.created && out.added > 0 {
        notify(ctx, events::NEW, "new", key);
    }
    if out.added + out.updated > 0 {
        notify(
            ctx,
            events::ZSET,
            if f.incr { "zincr" } else { "zadd" },
            key,
        );
    }
    if out.nan {
        return Err(ERR_NAN);
    }
    Ok(if f.incr {
        if out.processed > 0 {
            Frame::Double(out.last_score)
        } else {
            Frame::Null
        }
    } else {
        Frame::Integer((out.added + if f.ch { out.updated } else { 0 }) as i64)
    })
}

pub(super) fn zadd(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zadd_generic(ctx, req, 2, AddFlags::default())
}

fn zincrby(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    // Options are read as ZADD reads them (Redis's ZINCRBY shares its parser).
    zadd_generic(ctx, req, 2, f)
}

fn zrem(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let r = update(ctx, key, false, |z, _| {
        let n = req.iter().skip(2).filter(|m| z.remove(m).is_some()).count();
        (n, z.is_empty())
    })?;
    let (n, emptied) = r.unwrap_or((0, false));
    if n > 0 {
        notify(ctx, events::ZSET, "zrem", key);
        if emptied {
            notify(ctx, events::GENERIC, "del", key);
        }
    }
    Ok(Frame::Integer(n as i64))
}

fn zcard(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), Zset::len)?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn zcount(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (min, max) = match (score_bound(req.arg(2)), score_bound(req.arg(3))) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(ERR_MINMAX_FLOAT),
    };
    let n = read(ctx, req.arg(1), |z| {
        let (lo, hi) = score_ranks(z, min, max);
        hi - lo
    })?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn zlexcount(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (min, max) = match (lex_bound(req.arg(2)), lex_bound(req.arg(3))) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(ERR_MINMAX_LEX),
    };
    let n = read(ctx, req.arg(1), |z| {
        let (lo, hi) = lex_ranks(z, &min, &max, false);
        hi - lo
    })?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn zscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let s = read(ctx, req.arg(1), |z| z.score(req.arg(2)))?.flatten();
    Ok(s.map_or(Frame::Null, Frame::Double))
}

fn zmscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let members = || req.iter().skip(2);
    let out = read(ctx, req.arg(1), |z| {
        members()
            .map(|m| z.score(m).map_or(Frame::Null, Frame::Double))
            .collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_else(|| {
        members().map(|_| Frame::Null).collect()
    })))
}

fn rank_generic(ctx: &mut Ctx<'_>, req: &Request, rev: bool) -> Reply {
    if req.len() > 4 {
        return Err(wrong_arity(if rev { "zrevrank" } else { "zrank" }));
    }
    let withscore = match req.len() {
        4 if is(req.arg(3), "WITHSCORE") => true,
        4 => return Err(ERR_SYNTAX),
        _ => false,
    };
    let r = read(ctx, req.arg(1), |z| {
        z.rank(req.arg(2))
            .map(|(r, s)| (if rev { z.len() - 1 - r } else { r }, s))
    })?
    .flatten();
    Ok(match (r, withscore) {
        (Some((r, _)), false) => Frame::Integer(r as i64),
        (Some((r, s)), true) => Frame::Array(vec![Frame::Integer(r as i64), Frame::Double(s)]),
        (None, false) => Frame::Null,
        (None, true) => Frame::NullArray,
    })
}

fn zrank(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    rank_generic(ctx, req, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    rank_generic(ctx, req, true)
}

fn zrandmember(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut rng = rand::rng();
    if req.len() == 2 {
        let m = read(ctx, key, |z| {
            let i = rand::Rng::random_range(&mut rng, 0..z.len().max(1));
            z.get(i).map(|(m, _)| Frame::bulk(m))
        })?;
        return Ok(m.flatten().unwrap_or(Frame::Null));
    }
    let count = int_arg(req.arg(2))?;
    let withscores = match req.len() {
        3 => false,
        4 if is(req.arg(3), "WITHSCORES") => true,
        _ => return Err(ERR_SYNTAX),
    };
    if withscores && !(-RAND_COUNT_MAX..=RAND_COUNT_MAX).contains(&count) {
        return Err(Frame::err("ERR value is out of range"));
    }
    if count < 0 && count.unsigned_abs() > MAX_REPLY_ELEMENTS as u64 {
        return Err(Frame::err("ERR value is out of range"));
    }
    let resp3 = resp3(ctx);
    let out = read(ctx, key, |z| {
        let picks = random_positions(z.len(), count, &mut rng);
        let mut out = Vec::with_capacity(picks.len() * if withscores { 2 } else { 1 });
        if let Zset::Listpack(_) = z {
            // Position lookups in a listpack are linear: read it once.
            let all = z.collect_range(0, z.len(), false);
            for i in picks {
                if let Some((m, s)) = all.get(i) {
                    push_elem(&mut out, Frame::bulk(m), *s, withscores, resp3);
                }
            }
        } else {
            for i in picks {
                if let Some((m, s)) = z.get(i) {
                    push_elem(&mut out, Frame::bulk(m), s, withscores, resp3);
                }
            }
        }
        out
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

fn zscan(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let args = scan_args(req)?;
    let out = read(ctx, req.arg(1), |z| {
        let mut elems = Vec::new();
        let mut push = |m: &[u8], s: f64| {
            if args.matches(m) {
                elems.push(Frame::bulk(m));
                elems.push(Frame::bulk(crate::resp::frame::format_double(s)));
            }
        };
        let next = match z {
            // A listpack is returned whole, like Redis does.
            Zset::Listpack(_) => {
                z.for_each(&mut push);
                0
            }
            Zset::Tree(t) => t.scan(args.cursor, args.count, &mut push),
        };
        (next, elems)
    })?;
    let (next, elems) = out.unwrap_or((0, Vec::new()));
    Ok(scan_reply(next, elems))
}

#[cfg(test)]
mod tests;
