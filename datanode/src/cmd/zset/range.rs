//! ZRANGE and its older forms, ZRANGESTORE and ZREMRANGEBY*: commands over a range of ranks.

use super::*;

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
            push_elem(&mut out, Frame::bulk(m), s, r.withscores, resp3)
        });
        out
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

pub(super) fn zrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Auto, None)
}

pub(super) fn zrevrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Rank, Some(true))
}

pub(super) fn zrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Score, Some(false))
}

pub(super) fn zrevrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Score, Some(true))
}

pub(super) fn zrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Lex, Some(false))
}

pub(super) fn zrevrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    range_reply(ctx, req, RangeBy::Lex, Some(true))
}

/// Replaces `dst` (of any type, and its TTL) with the sorted set of `items` (in order, each
/// member once), or deletes it when there are none. Returns the keyspace events to emit
/// once the locks are released, as Redis's `setKey`/`dbDelete` paths emit them.
pub(in crate::cmd) fn store_result(
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

pub(super) fn emit(ctx: &Ctx<'_>, key: &[u8], evs: Vec<(u32, &'static str)>) {
    for (class, e) in evs {
        notify(ctx, class, e, key);
    }
}

pub(super) fn zrangestore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
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

pub(super) fn zremrangebyrank(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Rank)
}

pub(super) fn zremrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Score)
}

pub(super) fn zremrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zremrange(ctx, req, RangeBy::Lex)
}
