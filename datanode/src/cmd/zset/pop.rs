//! ZPOPMIN/MAX, ZMPOP and the blocking pops (BZPOPMIN, BZPOPMAX, BZMPOP).

use super::*;

/// The popped elements of one key as a reply: flat `[m, s, ...]`, or `[[m, s], ...]` when
/// `nested`. Each member's bytes become its bulk string as they are, not copied.
pub(super) fn popped_frames(items: Vec<(Vec<u8>, f64)>, nested: bool) -> Vec<Frame> {
    let mut out = Vec::with_capacity(items.len() * if nested { 1 } else { 2 });
    for (m, s) in items {
        push_elem(&mut out, Frame::Bulk(m.into()), s, true, nested);
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

pub(super) fn zpopmin(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zpop(ctx, req, false)
}

pub(super) fn zpopmax(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    zpop(ctx, req, true)
}
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

pub(super) fn zmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (keys, max, count) = parse_mpop(req, 1)?;
    Ok(mpop_first(ctx, &keys, max, count)?.unwrap_or(Frame::NullArray))
}

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
        serve: Serve::Bzpop,
    };
    Ok(block(ctx, req, wait))
}

pub(crate) fn serve_bzpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    match bzpop_key(ctx, key, bzpop_max(req)) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::NullArray,
        Err(e) => e,
    }
}

pub(super) fn bzpopmin(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bzpop(ctx, req)
}

pub(super) fn bzpopmax(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bzpop(ctx, req)
}

/// BZMPOP timeout numkeys key ... MIN|MAX [COUNT count]: ZMPOP, or block on every key.
/// The arguments are checked before the timeout, as in Redis.
pub(super) fn bzmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
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
        serve: Serve::Bzmpop,
    };
    Ok(block(ctx, req, wait))
}

pub(crate) fn serve_bzmpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
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
