//! Sorted-set commands, with Redis 7 semantics, replies and error texts.
//!
//! A sorted set is a listpack while small (`zset-max-listpack-entries`/`-value`) and a
//! slab, hash index and order-statistics B+ tree beyond (see `store::zset`). Every range
//! command (by rank, score or lex, either direction, with LIMIT) becomes a range of ranks
//! `lo..hi` found in O(log n), then a walk over it. Scores are replied as doubles (`%.17g`
//! in RESP2 bulk strings, RESP3 doubles) and read with C's `strtod` rules, like Redis.
//! Writes emit Redis's keyspace events (`zadd`, `zincr`, `zrem`, `zpopmin`, ...).
//! BZPOPMIN, BZPOPMAX and BZMPOP wait on `crate::blocking` like the list pops.

use super::flags::*;
use super::hash::{random_positions, scan_args, scan_reply, MAX_REPLY_ELEMENTS, RAND_COUNT_MAX};
use super::list::slots_of;
use super::pubsub::notify;
use super::*;
use crate::blocking;
use crate::pubsub::events;
use crate::resp::Protocol;
use crate::store::{Kind, Limits, Zset};

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
fn push_elem(out: &mut Vec<Frame>, m: &[u8], s: f64, withscores: bool, resp3: bool) {
    if !withscores {
        out.push(Frame::bulk(m));
    } else if resp3 {
        out.push(Frame::Array(vec![Frame::bulk(m), Frame::Double(s)]));
    } else {
        out.push(Frame::bulk(m));
        out.push(Frame::Double(s));
    }
}

pub(super) const ERR_NAN: Frame = Frame::err("ERR resulting score is not a number (NaN)");
const ERR_MINMAX_FLOAT: Frame = Frame::err("ERR min or max is not a float");
const ERR_MINMAX_LEX: Frame = Frame::err("ERR min or max not valid string range item");

/// A score argument (`getDoubleFromObject`: strict, no NaN, no overflow).
pub(super) fn score_arg(a: &[u8]) -> Result<f64, Frame> {
    parse_double(a).ok_or(ERR_NOT_FLOAT)
}

// ---- ranges ----

/// A score range bound: the value and whether it is exclusive (`(1.5`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// Parses `min` or `max` of a score range as Redis's `zslParseRange` does (C `strtod` on
/// the rest, after an optional `(`).
fn score_bound(a: &[u8]) -> Option<ScoreBound> {
    let (exclusive, t) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let (value, used, _) = strtod(t);
    (used == t.len() && !value.is_nan()).then_some(ScoreBound { value, exclusive })
}

/// A lex range bound.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum LexBound<'a> {
    NegInf,
    PosInf,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

fn lex_bound(a: &[u8]) -> Option<LexBound<'_>> {
    match a {
        b"-" => Some(LexBound::NegInf),
        b"+" => Some(LexBound::PosInf),
        [b'[', rest @ ..] => Some(LexBound::Incl(rest)),
        [b'(', rest @ ..] => Some(LexBound::Excl(rest)),
        _ => None,
    }
}

/// Ranks `lo..hi` of the elements with scores within `[min, max]`.
pub(super) fn score_ranks(z: &Zset, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_below_score(min.value, min.exclusive);
    let hi = z.count_below_score(max.value, !max.exclusive);
    (lo, hi.max(lo))
}

impl LexBound<'_> {
    /// Whether `m` is at or above this bound taken as a minimum.
    fn below_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= *b,
            LexBound::Excl(b) => m > *b,
        }
    }

    /// Whether `m` is at or below this bound taken as a maximum.
    fn above_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= *b,
            LexBound::Excl(b) => m < *b,
        }
    }
}

/// Whether a lex range can hold nothing (min above max, or equal with an exclusive end).
fn lex_range_empty(min: &LexBound<'_>, max: &LexBound<'_>) -> bool {
    use std::cmp::Ordering::*;
    fn key<'a>(b: &LexBound<'a>) -> (u8, &'a [u8], bool) {
        match b {
            LexBound::NegInf => (0u8, &b""[..], false),
            LexBound::PosInf => (2, &b""[..], false),
            LexBound::Incl(m) => (1, m, false),
            LexBound::Excl(m) => (1, m, true),
        }
    }
    let ((ka, ma, xa), (kb, mb, xb)) = (key(min), key(max));
    match ka.cmp(&kb).then(ma.cmp(mb)) {
        Greater => true,
        Equal => xa || xb || ka != 1,
        Less => false,
    }
}

/// Ranks `lo..hi` of the elements with members within `[min, max]`: from the first
/// member at or above `min`, while members stay at or below `max` (`rev`: from the last
/// member at or below `max`, while members stay at or above `min`). Lex ranges are meant
/// for sets whose scores are all equal; on others this is what Redis's listpack walk
/// returns (a skip list's answer there depends on its random levels).
pub(super) fn lex_ranks(
    z: &Zset,
    min: &LexBound<'_>,
    max: &LexBound<'_>,
    rev: bool,
) -> (usize, usize) {
    if lex_range_empty(min, max) || z.is_empty() {
        return (0, 0);
    }
    if let Zset::Listpack(_) = z {
        let (Some((first, _)), Some((last, _))) = (z.get(0), z.get(z.len() - 1)) else {
            return (0, 0);
        };
        if !min.below_ok(last) || !max.above_ok(first) {
            return (0, 0);
        }
        if rev {
            let all = z.collect_range(0, z.len(), false);
            let Some(j) = all.iter().rposition(|(m, _)| max.above_ok(m)) else {
                return (0, 0);
            };
            if !min.below_ok(&all[j].0) {
                return (0, 0);
            }
            let mut i = j;
            while i > 0 && min.below_ok(&all[i - 1].0) {
                i -= 1;
            }
            return (i, j + 1);
        }
        let mut lo = None;
        let mut hi = 0;
        let mut i = 0;
        z.for_each(|m, _| {
            match lo {
                None if min.below_ok(m) => {
                    if max.above_ok(m) {
                        lo = Some(i);
                        hi = i + 1;
                    } else {
                        lo = Some(usize::MAX);
                    }
                }
                Some(l) if l != usize::MAX && hi == i && max.above_ok(m) => hi = i + 1,
                _ => {}
            }
            i += 1;
        });
        return match lo {
            Some(l) if l != usize::MAX => (l, hi),
            _ => (0, 0),
        };
    }
    let lo = match min {
        LexBound::NegInf => 0,
        LexBound::PosInf => z.len(),
        LexBound::Incl(m) => z.count_below_member(m, false),
        LexBound::Excl(m) => z.count_below_member(m, true),
    };
    let hi = match max {
        LexBound::NegInf => 0,
        LexBound::PosInf => z.len(),
        LexBound::Incl(m) => z.count_below_member(m, true),
        LexBound::Excl(m) => z.count_below_member(m, false),
    };
    (lo, hi.max(lo))
}

/// Ranks `lo..hi` (ascending) for a rank range `start..=stop` (negative: from the end),
/// counted from the top when `rev`.
pub(super) fn rank_ranks(len: usize, start: i64, stop: i64, rev: bool) -> (usize, usize) {
    let n = len as i64;
    let mut start = if start < 0 { n + start } else { start };
    let mut stop = if stop < 0 { n + stop } else { stop };
    start = start.max(0);
    if start > stop || start >= n {
        return (0, 0);
    }
    stop = stop.min(n - 1);
    let (lo, hi) = if rev {
        (n - 1 - stop, n - start)
    } else {
        (start, stop + 1)
    };
    (lo as usize, hi as usize)
}

/// Applies LIMIT `offset count` to ranks `lo..hi` read ascending or (`rev`) from the top:
/// a negative offset selects nothing, a negative count everything after the offset.
fn apply_limit(lo: usize, hi: usize, offset: i64, count: i64, rev: bool) -> (usize, usize) {
    if offset < 0 || count == 0 {
        return (lo, lo);
    }
    let avail = hi - lo;
    let off = usize::try_from(offset).unwrap_or(usize::MAX).min(avail);
    let take = if count < 0 {
        avail - off
    } else {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(avail - off)
    };
    if rev {
        (hi - off - take, hi - off)
    } else {
        (lo + off, lo + off + take)
    }
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

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ...; ZINCRBY is ZADD key INCR.
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

// ---- ZRANGE and its older forms ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangeBy {
    Auto,
    Rank,
    Score,
    Lex,
}

/// A parsed range request (`zrangeGenericCommand`'s options).
struct RangeReq<'a> {
    by: RangeBy,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
    min: &'a [u8],
    max: &'a [u8],
}

/// The range of ranks a parsed request selects in `z`, and whether it is read from the
/// top.
enum Selected<'a> {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound<'a>, LexBound<'a>),
}

/// Parses the arguments from `at` (`src min max [options]`) the way Redis's
/// `zrangeGenericCommand` does; `by` and `rev` are fixed by the older commands (their
/// options are then syntax errors).
fn parse_range<'a>(
    req: &'a Request,
    at: usize,
    store: bool,
    by: RangeBy,
    rev: Option<bool>,
) -> Result<(RangeReq<'a>, Selected<'a>), Frame> {
    let mut r = RangeReq {
        by,
        rev: rev.unwrap_or(false),
        withscores: false,
        offset: 0,
        limit: -1,
        min: req.arg(at + 1),
        max: req.arg(at + 2),
    };
    let mut j = at + 3;
    while j < req.len() {
        let a = req.arg(j);
        let left = req.len() - j - 1;
        if !store && is(a, "WITHSCORES") {
            r.withscores = true;
        } else if is(a, "LIMIT") && left >= 2 {
            r.offset = int_arg(req.arg(j + 1))?;
            r.limit = int_arg(req.arg(j + 2))?;
            j += 2;
        } else if rev.is_none() && is(a, "REV") {
            r.rev = true;
        } else if by == RangeBy::Auto && is(a, "BYLEX") {
            r.by = RangeBy::Lex;
        } else if by == RangeBy::Auto && is(a, "BYSCORE") {
            r.by = RangeBy::Score;
        } else {
            return Err(ERR_SYNTAX);
        }
        j += 1;
    }
    if r.by == RangeBy::Auto {
        r.by = RangeBy::Rank;
    }
    if r.limit != -1 && r.by == RangeBy::Rank {
        return Err(Frame::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if r.withscores && r.by == RangeBy::Lex {
        return Err(Frame::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // BYSCORE and BYLEX ranges read from the top are given as max, min.
    let (lo, hi) = if r.rev && r.by != RangeBy::Rank {
        (r.max, r.min)
    } else {
        (r.min, r.max)
    };
    let sel = match r.by {
        RangeBy::Score => match (score_bound(lo), score_bound(hi)) {
            (Some(a), Some(b)) => Selected::Score(a, b),
            _ => return Err(ERR_MINMAX_FLOAT),
        },
        RangeBy::Lex => match (lex_bound(lo), lex_bound(hi)) {
            (Some(a), Some(b)) => Selected::Lex(a, b),
            _ => return Err(ERR_MINMAX_LEX),
        },
        _ => Selected::Rank(int_arg(lo)?, int_arg(hi)?),
    };
    Ok((r, sel))
}

/// The ranks `lo..hi` a request selects in `z` (LIMIT applied).
fn selected_ranks(z: &Zset, r: &RangeReq<'_>, sel: &Selected<'_>) -> (usize, usize) {
    let (lo, hi) = match sel {
        Selected::Rank(start, stop) => return rank_ranks(z.len(), *start, *stop, r.rev),
        Selected::Score(min, max) => score_ranks(z, *min, *max),
        Selected::Lex(min, max) => lex_ranks(z, min, max, r.rev),
    };
    apply_limit(lo, hi, r.offset, r.limit, r.rev)
}

fn range_reply(ctx: &mut Ctx<'_>, req: &Request, by: RangeBy, rev: Option<bool>) -> Reply {
    let (r, sel) = parse_range(req, 1, false, by, rev)?;
    let resp3 = resp3(ctx);
    let out = read(ctx, req.arg(1), |z| {
        let (lo, hi) = selected_ranks(z, &r, &sel);
        let mut out = Vec::with_capacity((hi - lo) * if r.withscores && !resp3 { 2 } else { 1 });
        z.range(lo, hi, r.rev, |m, s| {
            push_elem(&mut out, m, s, r.withscores, resp3)
        });
        out
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

fn zrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Auto, None)
}

fn zrevrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Rank, Some(true))
}

fn zrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Score, Some(true))
}

fn zrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Lex, Some(true))
}

// ---- pops, random members, scan ----

/// The popped elements of one key as a reply: flat `[m, s, ...]`, or `[[m, s], ...]` when
/// `nested`.
pub(super) fn popped_frames(items: Vec<(Vec<u8>, f64)>, nested: bool) -> Vec<Frame> {
    let mut out = Vec::with_capacity(items.len() * if nested { 1 } else { 2 });
    for (m, s) in items {
        push_elem(&mut out, &m, s, true, nested);
    }
    out
}

/// Pops up to `count` elements of `key` (min or `max` end), with the keyspace events:
/// `None` when the key does not exist.
pub(super) fn pop_key(
    ctx: &Ctx<'_>,
    key: &[u8],
    count: usize,
    max: bool,
) -> Result<Option<Elems>, Frame> {
    let r = update(ctx, key, false, |z, _| {
        let items = z.pop(count, max);
        (items, z.is_empty())
    })?;
    let Some((items, emptied)) = r else {
        return Ok(None);
    };
    if !items.is_empty() {
        notify(
            ctx,
            events::ZSET,
            if max { "zpopmax" } else { "zpopmin" },
            key,
        );
        if emptied {
            notify(ctx, events::GENERIC, "del", key);
        }
    }
    Ok(Some(items))
}

fn zpop(ctx: &mut Ctx<'_>, req: &Request, max: bool) -> Reply {
    if req.len() > 3 {
        return Err(ERR_SYNTAX);
    }
    let count = if req.len() == 3 {
        let n = int_arg(req.arg(2))?;
        if n < 0 {
            return Err(Frame::err("ERR value is out of range, must be positive"));
        }
        Some(usize::try_from(n).unwrap_or(usize::MAX))
    } else {
        None
    };
    let key = req.arg(1);
    // The type is checked first, even for a count of 0.
    if count == Some(0) {
        read(ctx, key, |_| ())?;
        return Ok(Frame::Array(Vec::new()));
    }
    let items = pop_key(ctx, key, count.unwrap_or(1), max)?.unwrap_or_default();
    // RESP3 with a count: one [member, score] pair per element.
    let nested = resp3(ctx) && count.is_some();
    Ok(Frame::Array(popped_frames(items, nested)))
}

fn zpopmin(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zpop(ctx, req, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zpop(ctx, req, true)
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
                    push_elem(&mut out, m, *s, withscores, resp3);
                }
            }
        } else {
            for i in picks {
                if let Some((m, s)) = z.get(i) {
                    push_elem(&mut out, m, s, withscores, resp3);
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

// ---- results stored whole ----

/// Replaces `dst` (of any type, and its TTL) with the sorted set of `items` (in order, each
/// member once), or deletes it when there are none. Returns the keyspace events to emit
/// once the locks are released, as Redis's `setKey`/`dbDelete` paths emit them.
pub(super) fn store_result(
    ctx: &Ctx<'_>,
    g: &mut crate::store::MultiGuard<'_>,
    dst: &[u8],
    items: &[(&[u8], f64)],
    event: &'static str,
) -> Vec<(u32, &'static str)> {
    let limits = ctx.node.db.limits();
    let old = g.slot_of(dst).remove(dst, ctx.now).map(|(v, _)| v);
    let existed = old.is_some();
    ctx.node.db.free_later(old);
    if items.is_empty() {
        return if existed {
            vec![(events::GENERIC, "del")]
        } else {
            Vec::new()
        };
    }
    let z = Zset::from_sorted(items, &limits);
    g.slot_of(dst).set(
        dst,
        crate::store::Value::Zset(z),
        crate::store::NO_EXPIRY,
        ctx.now,
    );
    let mut out = Vec::new();
    if !existed {
        out.push((events::NEW, "new"));
    }
    out.push((events::ZSET, event));
    out
}

fn emit(ctx: &Ctx<'_>, key: &[u8], evs: Vec<(u32, &'static str)>) {
    for (class, e) in evs {
        notify(ctx, class, e, key);
    }
}

fn zrangestore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (r, sel) = parse_range(req, 2, true, RangeBy::Auto, None)?;
    let (dst, src) = (req.arg(1), req.arg(2));
    let mut g = ctx.node.db.lock_keys([dst, src]);
    let items = match g.slot_of(src).get(src, ctx.now) {
        None => Vec::new(),
        Some(e) => {
            let z = e.collection::<Zset>().map_err(|_| ERR_WRONGTYPE)?;
            let (lo, hi) = selected_ranks(&z, &r, &sel);
            // Stored ascending, whichever way the range was read.
            z.collect_range(lo, hi, false)
        }
    };
    let refs: Vec<(&[u8], f64)> = items.iter().map(|(m, s)| (&m[..], *s)).collect();
    let evs = store_result(ctx, &mut g, dst, &refs, "zrangestore");
    drop(g);
    emit(ctx, dst, evs);
    Ok(Frame::Integer(items.len() as i64))
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX: the range is checked before the key.
fn zremrange(ctx: &mut Ctx<'_>, req: &Request, by: RangeBy) -> Reply {
    let sel = match by {
        RangeBy::Score => match (score_bound(req.arg(2)), score_bound(req.arg(3))) {
            (Some(a), Some(b)) => Selected::Score(a, b),
            _ => return Err(ERR_MINMAX_FLOAT),
        },
        RangeBy::Lex => match (lex_bound(req.arg(2)), lex_bound(req.arg(3))) {
            (Some(a), Some(b)) => Selected::Lex(a, b),
            _ => return Err(ERR_MINMAX_LEX),
        },
        _ => Selected::Rank(int_arg(req.arg(2))?, int_arg(req.arg(3))?),
    };
    let key = req.arg(1);
    let r = update(ctx, key, false, |z, _| {
        let (lo, hi) = match &sel {
            Selected::Rank(a, b) => rank_ranks(z.len(), *a, *b, false),
            Selected::Score(a, b) => score_ranks(z, *a, *b),
            Selected::Lex(a, b) => lex_ranks(z, a, b, false),
        };
        (z.remove_range(lo, hi), z.is_empty())
    })?;
    let (n, emptied) = r.unwrap_or((0, false));
    if n > 0 {
        let event = match by {
            RangeBy::Score => "zremrangebyscore",
            RangeBy::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        notify(ctx, events::ZSET, event, key);
        if emptied {
            notify(ctx, events::GENERIC, "del", key);
        }
    }
    Ok(Frame::Integer(n as i64))
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Lex)
}

// ---- ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Redis's `zunionInterAggregate`: +inf plus -inf sums to 0, not NaN.
fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// One input of the algebra: a sorted set, a set (every member scores 1) or nothing.
enum Source<'a> {
    Zset(crate::store::Ref<'a, Zset>),
    Set(crate::store::Ref<'a, crate::store::Set>),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Zset(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Source::Zset(z) => z.score(m),
            Source::Set(s) => s.contains(m).then_some(1.0),
        }
    }

    fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        match self {
            Source::Zset(z) => z.for_each(f),
            Source::Set(s) => s.iter().for_each(|m| m.with_bytes(|b| f(b, 1.0))),
        }
    }
}

fn source_of<'a>(e: Option<crate::store::EntryRef<'a>>) -> Result<Option<Source<'a>>, Frame> {
    let Some(e) = e else {
        return Ok(None);
    };
    if let Ok(z) = e.collection::<Zset>() {
        return Ok(Some(Source::Zset(z)));
    }
    e.as_set()
        .map(|s| Some(Source::Set(s)))
        .map_err(|_| ERR_WRONGTYPE)
}

/// What the algebra is asked for.
struct Algebra<'a> {
    keys: Vec<&'a [u8]>,
    weights: Vec<f64>,
    how: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Parses `numkeys key ... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES] [LIMIT n]` from
/// `at` (the numkeys argument) as Redis's `zunionInterDiffGenericCommand` does, checking the
/// inputs' types (under `g`) before the options.
fn parse_algebra<'a>(
    ctx: &Ctx<'_>,
    req: &'a Request,
    at: usize,
    op: SetOp,
    store: bool,
    card: bool,
    name: &str,
) -> Result<Algebra<'a>, Frame> {
    let n = int_arg(req.arg(at))?;
    if n < 1 {
        return Err(Frame::error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > req.len() - at - 1 {
        return Err(ERR_SYNTAX);
    }
    let keys: Vec<&[u8]> = (at + 1..at + 1 + n).map(|i| req.arg(i)).collect();
    {
        // Types first, in key order, like Redis (before any option is looked at).
        let mut g = ctx.node.db.lock_keys(keys.iter().copied());
        for k in &keys {
            source_of(g.slot_of(k).get(k, ctx.now))?;
        }
    }
    let mut a = Algebra {
        keys,
        weights: vec![1.0; n],
        how: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let mut j = at + 1 + n;
    while j < req.len() {
        let remaining = req.len() - j;
        let opt = req.arg(j);
        if op != SetOp::Diff && !card && remaining > n && is(opt, "WEIGHTS") {
            for i in 0..n {
                a.weights[i] = parse_double(req.arg(j + 1 + i))
                    .ok_or(Frame::err("ERR weight value is not a float"))?;
            }
            j += 1 + n;
        } else if op != SetOp::Diff && !card && remaining >= 2 && is(opt, "AGGREGATE") {
            let v = req.arg(j + 1);
            a.how = if is(v, "SUM") {
                Aggregate::Sum
            } else if is(v, "MIN") {
                Aggregate::Min
            } else if is(v, "MAX") {
                Aggregate::Max
            } else {
                return Err(ERR_SYNTAX);
            };
            j += 2;
        } else if !store && !card && is(opt, "WITHSCORES") {
            a.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is(opt, "LIMIT") {
            let l = parse_i64(req.arg(j + 1))
                .filter(|&l| l >= 0)
                .ok_or(Frame::err("ERR LIMIT can't be negative"))?;
            a.limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    Ok(a)
}

/// Computes the algebra under `g`: the result in order (or, with `card`, only how many
/// members the intersection has, up to the limit, scores unset).
fn compute(
    g: &mut crate::store::MultiGuard<'_>,
    a: &Algebra<'_>,
    op: SetOp,
    card: bool,
    now: u64,
) -> Result<Vec<(Vec<u8>, f64)>, Frame> {
    // Inputs by size, smallest first (Redis's order, which fixes the order in which scores
    // are added up); a missing key is an empty input.
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(a.keys.len());
    for (i, k) in a.keys.iter().enumerate() {
        let len = source_of(g.slot_of(k).peek(k, now))?.map_or(0, |s| s.len());
        order.push((len, i));
    }
    if op != SetOp::Diff {
        order.sort_by_key(|&(len, _)| len);
    }
    let mut out: Vec<(Vec<u8>, f64)> = Vec::new();
    match op {
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Vec<u8>, usize> = Default::default();
            for &(len, i) in &order {
                if len == 0 {
                    continue;
                }
                let k = a.keys[i];
                let Some(src) = source_of(g.slot_of(k).peek(k, now))? else {
                    continue;
                };
                src.for_each(|m, s| {
                    let mut v = a.weights[i] * s;
                    if v.is_nan() {
                        v = 0.0;
                    }
                    match acc.get(m) {
                        Some(&at) => aggregate(&mut out[at].1, v, a.how),
                        None => {
                            acc.insert(m.to_vec(), out.len());
                            out.push((m.to_vec(), v));
                        }
                    }
                });
            }
        }
        SetOp::Inter => {
            let Some(&(len0, first)) = order.first() else {
                return Ok(out);
            };
            if len0 == 0 {
                return Ok(out);
            }
            let k = a.keys[first];
            if let Some(src) = source_of(g.slot_of(k).peek(k, now))? {
                src.for_each(|m, s| {
                    let mut v = a.weights[first] * s;
                    if v.is_nan() {
                        v = 0.0;
                    }
                    out.push((m.to_vec(), v));
                });
            }
            for &(_, i) in &order[1..] {
                let k = a.keys[i];
                let Some(src) = source_of(g.slot_of(k).peek(k, now))? else {
                    out.clear();
                    break;
                };
                out.retain_mut(|(m, score)| match src.score(m) {
                    Some(v) => {
                        aggregate(score, v * a.weights[i], a.how);
                        true
                    }
                    None => false,
                });
                if out.is_empty() {
                    break;
                }
            }
            if card && a.limit > 0 {
                out.truncate(a.limit);
            }
        }
        SetOp::Diff => {
            let k = a.keys[0];
            if let Some(src) = source_of(g.slot_of(k).peek(k, now))? {
                src.for_each(|m, s| out.push((m.to_vec(), s)));
            }
            for k in &a.keys[1..] {
                if out.is_empty() {
                    break;
                }
                if let Some(src) = source_of(g.slot_of(k).peek(k, now))? {
                    out.retain(|(m, _)| src.score(m).is_none());
                }
            }
        }
    }
    if !card {
        out.sort_by(|x, y| crate::store::zset::cmp_elem(x.1, &x.0, y.1, &y.0));
    }
    Ok(out)
}

fn algebra_reply(ctx: &mut Ctx<'_>, req: &Request, op: SetOp, name: &str) -> Reply {
    let a = parse_algebra(ctx, req, 1, op, false, false, name)?;
    let mut g = ctx.node.db.lock_keys(a.keys.iter().copied());
    let items = compute(&mut g, &a, op, false, ctx.now)?;
    drop(g);
    let resp3 = resp3(ctx);
    let mut out = Vec::with_capacity(items.len() * if a.withscores { 2 } else { 1 });
    for (m, s) in &items {
        push_elem(&mut out, m, *s, a.withscores, resp3);
    }
    Ok(Frame::Array(out))
}

fn algebra_store(
    ctx: &mut Ctx<'_>,
    req: &Request,
    op: SetOp,
    name: &str,
    event: &'static str,
) -> Reply {
    let dst = req.arg(1);
    let a = parse_algebra(ctx, req, 2, op, true, false, name)?;
    let mut g = ctx
        .node
        .db
        .lock_keys(a.keys.iter().copied().chain(std::iter::once(dst)));
    let items = compute(&mut g, &a, op, false, ctx.now)?;
    let refs: Vec<(&[u8], f64)> = items.iter().map(|(m, s)| (&m[..], *s)).collect();
    let evs = store_result(ctx, &mut g, dst, &refs, event);
    drop(g);
    emit(ctx, dst, evs);
    Ok(Frame::Integer(items.len() as i64))
}

fn zunion(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Union, "zunion")
}

fn zinter(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Inter, "zinter")
}

fn zdiff(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Diff, "zdiff")
}

fn zunionstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Union, "zunionstore", "zunionstore")
}

fn zinterstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Inter, "zinterstore", "zinterstore")
}

fn zdiffstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Diff, "zdiffstore", "zdiffstore")
}

fn zintercard(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let a = parse_algebra(ctx, req, 1, SetOp::Inter, false, true, "zintercard")?;
    let mut g = ctx.node.db.lock_keys(a.keys.iter().copied());
    let items = compute(&mut g, &a, SetOp::Inter, true, ctx.now)?;
    Ok(Frame::Integer(items.len() as i64))
}

// ---- ZMPOP ----

/// `numkeys key ... MIN|MAX [COUNT count]` from `at` (numkeys): the keys, which end, and
/// the count.
pub(super) fn parse_mpop(req: &Request, at: usize) -> Result<(Vec<&[u8]>, bool, usize), Frame> {
    let numkeys = parse_i64(req.arg(at))
        .filter(|&n| n >= 1)
        .ok_or(Frame::err("ERR numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    if where_at >= req.len() {
        return Err(ERR_SYNTAX);
    }
    let max = match req.arg(where_at) {
        w if is(w, "MIN") => false,
        w if is(w, "MAX") => true,
        _ => return Err(ERR_SYNTAX),
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < req.len() {
        if count.is_none() && is(req.arg(j), "COUNT") && j + 1 < req.len() {
            let c = parse_i64(req.arg(j + 1))
                .filter(|&c| c >= 1)
                .ok_or(Frame::err("ERR count should be greater than 0"))?;
            count = Some(usize::try_from(c).unwrap_or(usize::MAX));
            j += 2;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    let keys = (at + 1..where_at).map(|i| req.arg(i)).collect();
    Ok((keys, max, count.unwrap_or(1)))
}

/// Pops from the first of `keys` that holds a sorted set: `[key, [[member, score], ...]]`,
/// or `None` when none does. A key of another type before it answers WRONGTYPE.
pub(super) fn mpop_first(
    ctx: &Ctx<'_>,
    keys: &[&[u8]],
    max: bool,
    count: usize,
) -> Result<Option<Frame>, Frame> {
    for k in keys {
        if let Some(items) = pop_key(ctx, k, count, max)? {
            return Ok(Some(Frame::Array(vec![
                Frame::bulk(k),
                Frame::Array(popped_frames(items, true)),
            ])));
        }
    }
    Ok(None)
}

fn zmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (keys, max, count) = parse_mpop(req, 1)?;
    Ok(mpop_first(ctx, &keys, max, count)?.unwrap_or(Frame::NullArray))
}

// ---- blocking pops (see crate::blocking) ----

/// Whether BZPOPMAX rather than BZPOPMIN.
fn bzpop_max(req: &Request) -> bool {
    is(req.arg(0), "BZPOPMAX")
}

/// `[key, member, score]` popped from `key` (min or `max` end); `Ok(None)` when missing.
fn bzpop_key(ctx: &Ctx<'_>, key: &[u8], max: bool) -> Result<Option<Frame>, Frame> {
    let items = pop_key(ctx, key, 1, max)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .next()
        .map(|(m, s)| Frame::Array(vec![Frame::bulk(key), Frame::bulk(m), Frame::Double(s)])))
}

/// BZPOPMIN and BZPOPMAX: the first non-empty sorted set's lowest (highest) member, else
/// block on every key. Inside MULTI or a script they answer at once.
fn bzpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let timeout = blocking::timeout_arg(req.arg(req.len() - 1))?;
    let keys: Vec<&[u8]> = (1..req.len() - 1).map(|i| req.arg(i)).collect();
    let may_block = blocking::may_block();
    let _held = ctx.node.db.lock_tx(Some(slots_of(keys.iter().copied())));
    let max = bzpop_max(req);
    for &k in &keys {
        if let Some(f) = bzpop_key(ctx, k, max)? {
            return Ok(f);
        }
    }
    if !may_block {
        return Ok(Frame::NullArray);
    }
    let wait = blocking::Wait {
        keys: &keys,
        slots: slots_of(keys.iter().copied()),
        kind: Kind::Zset,
        timeout,
        timeout_reply: Frame::NullArray,
        serve: serve_bzpop,
    };
    Ok(blocking::block(ctx, req, wait))
}

fn serve_bzpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    match bzpop_key(ctx, key, bzpop_max(req)) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::NullArray,
        Err(e) => e,
    }
}

fn bzpopmin(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bzpop(ctx, req)
}

fn bzpopmax(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bzpop(ctx, req)
}

/// BZMPOP timeout numkeys key ... MIN|MAX [COUNT count]: ZMPOP, or block on every key.
/// The arguments are checked before the timeout, as in Redis.
fn bzmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (keys, max, count) = parse_mpop(req, 2)?;
    let timeout = blocking::timeout_arg(req.arg(1))?;
    let may_block = blocking::may_block();
    let _held = ctx.node.db.lock_tx(Some(slots_of(keys.iter().copied())));
    if let Some(f) = mpop_first(ctx, &keys, max, count)? {
        return Ok(f);
    }
    if !may_block {
        return Ok(Frame::NullArray);
    }
    let wait = blocking::Wait {
        keys: &keys,
        slots: slots_of(keys.iter().copied()),
        kind: Kind::Zset,
        timeout,
        timeout_reply: Frame::NullArray,
        serve: serve_bzmpop,
    };
    Ok(blocking::block(ctx, req, wait))
}

fn serve_bzmpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    let (_, max, count) = match parse_mpop(req, 2) {
        Ok(a) => a,
        Err(e) => return e,
    };
    match mpop_first(ctx, &[key], max, count) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::NullArray,
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;
