//! ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD.

use super::*;

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
        push_elem(&mut out, Frame::bulk(m), *s, a.withscores, resp3);
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

pub(super) fn zunion(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Union, "zunion")
}

pub(super) fn zinter(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Inter, "zinter")
}

pub(super) fn zdiff(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_reply(ctx, req, SetOp::Diff, "zdiff")
}

pub(super) fn zunionstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Union, "zunionstore", "zunionstore")
}

pub(super) fn zinterstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Inter, "zinterstore", "zinterstore")
}

pub(super) fn zdiffstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    algebra_store(ctx, req, SetOp::Diff, "zdiffstore", "zdiffstore")
}

pub(super) fn zintercard(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let a = parse_algebra(ctx, req, 1, SetOp::Inter, false, true, "zintercard")?;
    let mut g = ctx.node.db.lock_keys(a.keys.iter().copied());
    let items = compute(&mut g, &a, SetOp::Inter, true, ctx.now)?;
    Ok(Frame::Integer(items.len() as i64))
}
