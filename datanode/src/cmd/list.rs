//! List commands, with Redis 7 semantics, error texts and keyspace events.
//!
//! A list is a quicklist of packed nodes (see `store::list`). Writes go through
//! `SlotGuard::modify`, which keeps the memory accounting exact and removes a list left
//! empty, as Redis does. The commands on two or more keys (LMOVE, RPOPLPUSH, LMPOP) lock
//! every key's slot first, so each is atomic on a node; in a cluster their keys must live
//! on one node (else `-CROSSSLOT`).

use super::blocking::block;
use super::flags::*;
use super::pubsub::notify;
use super::*;
use crate::blocking::{self, Serve};
use crate::pubsub::events;
use crate::resp::frame::{Elements, Shape};
use crate::store::{End, Kind, Limits, List, Member};

const G: &str = "list";

pub static COMMANDS: &[CommandSpec] = &[
    spec("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
        "key element [element ...]", lpush),
    spec("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "1.0.0",
        "Appends one or more elements to a list. Creates the key if it doesn't exist.",
        "key element [element ...]", rpush),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.2.0",
        "Prepends one or more elements to a list only when the list exists.",
        "key element [element ...]", lpushx),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.2.0",
        "Appends an element to a list only when the list exists.",
        "key element [element ...]", rpushx),
    spec("lpop", -2, WRITE | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
        "key [count]", lpop),
    spec("rpop", -2, WRITE | FAST, (1, 1, 1), G, "1.0.0",
        "Returns and removes the last elements of a list. Deletes the list if the last element was popped.",
        "key [count]", rpop),
    spec("llen", 2, READONLY | FAST, (1, 1, 1), G, "1.0.0",
        "Returns the length of a list.", "key", llen),
    spec("lindex", 3, READONLY, (1, 1, 1), G, "1.0.0",
        "Returns an element from a list by its index.", "key index", lindex),
    spec("lrange", 4, READONLY, (1, 1, 1), G, "1.0.0",
        "Returns a range of elements from a list.", "key start stop", lrange),
    spec("lset", 4, WRITE | DENYOOM, (1, 1, 1), G, "1.0.0",
        "Sets the value of an element in a list by its index.", "key index element", lset),
    spec("linsert", 5, WRITE | DENYOOM, (1, 1, 1), G, "2.2.0",
        "Inserts an element before or after another element in a list.",
        "key <BEFORE | AFTER> pivot element", linsert),
    spec("lrem", 4, WRITE, (1, 1, 1), G, "1.0.0",
        "Removes elements from a list. Deletes the list if the last element was removed.",
        "key count element", lrem),
    spec("ltrim", 4, WRITE, (1, 1, 1), G, "1.0.0",
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
        "key start stop", ltrim),
    spec("lpos", -3, READONLY, (1, 1, 1), G, "6.0.6",
        "Returns the index of matching elements in a list.",
        "key element [RANK rank] [COUNT num-matches] [MAXLEN len]", lpos),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), G, "6.2.0",
        "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
        "source destination <LEFT | RIGHT> <LEFT | RIGHT>", lmove),
    spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), G, "1.2.0",
        "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
        "source destination", rpoplpush),
    spec("lmpop", -4, WRITE | NUMKEYS, (1, 1, 1), G, "7.0.0",
        "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        "numkeys key [key ...] <LEFT | RIGHT> [COUNT count]", lmpop),
    spec("blpop", -3, WRITE | BLOCKING, (1, -2, 1), G, "2.0.0",
        "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "key [key ...] timeout", blpop),
    spec("brpop", -3, WRITE | BLOCKING, (1, -2, 1), G, "2.0.0",
        "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "key [key ...] timeout", brpop),
    spec("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, (1, 2, 1), G, "2.2.0",
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
        "source destination timeout", brpoplpush),
    spec("blmove", 6, WRITE | DENYOOM | BLOCKING, (1, 2, 1), G, "6.2.0",
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
        "source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout", blmove),
    spec("blmpop", -5, WRITE | BLOCKING | NUMKEYS, (2, 2, 1), G, "7.0.0",
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]", blmpop),
];

/// [`update_collection`] for lists.
pub(crate) fn update<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut List, &Limits) -> R,
) -> Result<Option<R>, Frame> {
    update_collection(ctx, key, create, f)
}

/// [`read_collection`] for lists.
fn read<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&List) -> R) -> Result<Option<R>, Frame> {
    read_collection(ctx, key, f)
}

/// An element (of a list or a set) as a bulk reply.
pub(crate) fn elem_frame(m: Member<'_>) -> Frame {
    match m {
        Member::Bytes(b) => Frame::bulk(b),
        Member::Int(n) => Frame::bulk(itoa::Buffer::new().format(n)),
    }
}

/// Appends an element (of a list or a set) to an encoded reply, as [`elem_frame`] would
/// reply it.
pub(crate) fn push_elem(out: &mut Elements, m: Member<'_>) {
    match m {
        Member::Bytes(b) => out.bulk(b),
        Member::Int(n) => out.int(n),
    }
}

/// `LEFT` or `RIGHT`, else a syntax error.
pub(crate) fn end_arg(a: &[u8]) -> Result<End, Frame> {
    if is(a, "LEFT") {
        Ok(End::Left)
    } else if is(a, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(ERR_SYNTAX)
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// LPUSH, RPUSH and their X forms (`only_existing`).
fn push(ctx: &mut Ctx<'_>, req: &Request, end: End, only_existing: bool) -> Reply {
    let key = req.arg(1);
    let r = update(ctx, key, !only_existing, |l, lim| {
        let created = l.is_empty();
        for e in req.iter().skip(2) {
            l.push(end, e, lim);
        }
        (l.len(), created)
    })?;
    let Some((len, created)) = r else {
        return Ok(Frame::Integer(0));
    };
    if created {
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::LIST, push_event(end), key);
    Ok(Frame::Integer(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    push(ctx, req, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    push(ctx, req, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    push(ctx, req, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    push(ctx, req, End::Right, true)
}

/// Pops up to `count` elements at `end` of `key`, with the keyspace events. `Ok(None)`:
/// no such key.
pub(crate) fn pop_count(
    ctx: &Ctx<'_>,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Frame>>, Frame> {
    let r = update(ctx, key, false, |l, _| {
        let mut out = Vec::with_capacity(count.min(l.len()));
        while out.len() < count {
            match l.pop_with(end, elem_frame) {
                Some(f) => out.push(f),
                None => break,
            }
        }
        (out, l.is_empty())
    })?;
    let Some((items, emptied)) = r else {
        return Ok(None);
    };
    if !items.is_empty() {
        notify(ctx, events::LIST, pop_event(end), key);
    }
    if emptied {
        notify(ctx, events::GENERIC, "del", key);
    }
    Ok(Some(items))
}

/// LPOP and RPOP: one element (or nil), or with a count an array (nil for a missing key).
fn pop(ctx: &mut Ctx<'_>, req: &Request, end: End, name: &str) -> Reply {
    if req.len() > 3 {
        return Err(wrong_arity(name));
    }
    let key = req.arg(1);
    if req.len() == 2 {
        let items = pop_count(ctx, key, end, 1)?;
        return Ok(items
            .and_then(|v| v.into_iter().next())
            .unwrap_or(Frame::Null));
    }
    let count = parse_i64(req.arg(2))
        .filter(|&n| n >= 0)
        .ok_or(Frame::err("ERR value is out of range, must be positive"))?;
    if count == 0 {
        // Redis checks the key (a missing key is nil, another type WRONGTYPE) and pops
        // nothing.
        return match peek_len(ctx, key)? {
            None => Ok(Frame::NullArray),
            Some(_) => Ok(Frame::Array(Vec::new())),
        };
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(pop_count(ctx, key, end, count)?.map_or(Frame::NullArray, Frame::Array))
}

fn lpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    pop(ctx, req, End::Left, "lpop")
}

fn rpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    pop(ctx, req, End::Right, "rpop")
}

fn llen(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), List::len)?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

/// A Redis index (negative counts from the end) as a position, when it is in range.
fn index_in(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { i.checked_add(len)? } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// LRANGE/LTRIM's inclusive range, clamped: `None` when empty.
pub(crate) fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let fix = |i: i64| if i < 0 { i.saturating_add(len) } else { i };
    let (start, stop) = (fix(start).max(0), fix(stop).min(len - 1));
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn lindex(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let i = int_arg(req.arg(2))?;
    let f = read(ctx, req.arg(1), |l| {
        index_in(i, l.len()).and_then(|i| l.get_with(i, elem_frame))
    })?;
    Ok(f.flatten().unwrap_or(Frame::Null))
}

fn lrange(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (start, stop) = (int_arg(req.arg(2))?, int_arg(req.arg(3))?);
    // Written straight from the list into the reply's bytes: no frame, allocation or copy
    // per element.
    let reply = read(ctx, req.arg(1), |l| {
        let mut out = Elements::with_capacity(0, 0);
        if let Some((a, b)) = clamp_range(start, stop, l.len()) {
            let n = b - a + 1;
            out = Elements::with_capacity(n, l.bytes_per_element());
            let mut c = l.cursor_from(a);
            for _ in 0..n {
                match c.next() {
                    Some(m) => push_elem(&mut out, m),
                    None => break,
                }
            }
        }
        out.finish(Shape::Array)
    })?;
    Ok(reply.unwrap_or(Frame::Array(Vec::new())))
}

fn lset(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let i = int_arg(req.arg(2))?;
    let done = update(ctx, key, false, |l, lim| match index_in(i, l.len()) {
        Some(i) => l.set(i, req.arg(3), lim),
        None => false,
    })?;
    match done {
        None => Err(Frame::err("ERR no such key")),
        Some(false) => Err(Frame::err("ERR index out of range")),
        Some(true) => {
            notify(ctx, events::LIST, "lset", key);
            Ok(Frame::ok())
        }
    }
}

fn linsert(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let after = if is(req.arg(2), "AFTER") {
        true
    } else if is(req.arg(2), "BEFORE") {
        false
    } else {
        return Err(ERR_SYNTAX);
    };
    let r = update(ctx, key, false, |l, lim| {
        l.insert(req.arg(3), req.arg(4), after, lim)
    })?;
    match r {
        None => Ok(Frame::Integer(0)),
        Some(None) => Ok(Frame::Integer(-1)),
        Some(Some(len)) => {
            notify(ctx, events::LIST, "linsert", key);
            Ok(Frame::Integer(len as i64))
        }
    }
}

fn lrem(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let count = int_arg(req.arg(2))?;
    let r = update(ctx, key, false, |l, lim| {
        (l.remove(req.arg(3), count, lim), l.is_empty())
    })?;
    let (n, emptied) = r.unwrap_or((0, false));
    if n > 0 {
        notify(ctx, events::LIST, "lrem", key);
    }
    if emptied {
        notify(ctx, events::GENERIC, "del", key);
    }
    Ok(Frame::Integer(n as i64))
}

fn ltrim(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let (start, stop) = (int_arg(req.arg(2))?, int_arg(req.arg(3))?);
    let r = update(ctx, key, false, |l, _| {
        match clamp_range(start, stop, l.len()) {
            None => l.remove_front(l.len()),
            Some((a, b)) => {
                let back = l.len() - 1 - b;
                l.remove_back(back);
                l.remove_front(a);
            }
        }
        l.is_empty()
    })?;
    if let Some(emptied) = r {
        notify(ctx, events::LIST, "ltrim", key);
        if emptied {
            notify(ctx, events::GENERIC, "del", key);
        }
    }
    Ok(Frame::ok())
}

fn lpos(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<usize>, 0usize);
    let mut i = 3;
    while i < req.len() {
        let (opt, val) = (req.arg(i), (i + 1 < req.len()).then(|| req.arg(i + 1)));
        let Some(val) = val else {
            return Err(ERR_SYNTAX);
        };
        if is(opt, "RANK") {
            rank = int_arg(val)?;
            if rank == 0 {
                return Err(Frame::err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
            if rank == i64::MIN {
                return Err(Frame::err(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
        } else if is(opt, "COUNT") {
            let n = int_arg(val)?;
            if n < 0 {
                return Err(Frame::err("ERR COUNT can't be negative"));
            }
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
        } else if is(opt, "MAXLEN") {
            let n = int_arg(val)?;
            if n < 0 {
                return Err(Frame::err("ERR MAXLEN can't be negative"));
            }
            maxlen = usize::try_from(n).unwrap_or(usize::MAX);
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 2;
    }
    let maxlen = if maxlen == 0 { usize::MAX } else { maxlen };
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() - 1;
    let found = read(ctx, req.arg(1), |l| {
        let mut out = Vec::new();
        l.positions(
            req.arg(2),
            rank < 0,
            |pos| {
                if skip > 0 {
                    skip -= 1;
                    return true;
                }
                out.push(pos);
                out.len() < want
            },
            maxlen,
        );
        out
    })?;
    let found = found.unwrap_or_default();
    Ok(match count {
        Some(_) => Frame::Array(
            found
                .into_iter()
                .map(|p| Frame::Integer(p as i64))
                .collect(),
        ),
        None => found
            .first()
            .map_or(Frame::Null, |&p| Frame::Integer(p as i64)),
    })
}

/// The slots of `keys`, for [`crate::store::Db::lock_tx`].
pub(crate) fn slots_of<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<u16> {
    keys.into_iter().map(chkv_common::key_slot).collect()
}

/// The length of the list at `key` without counting a read (`None`: no such key), or
/// WRONGTYPE: the type checks writes make before they change anything.
pub(crate) fn peek_len(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<usize>, Frame> {
    let mut g = ctx.node.db.lock_key(key);
    match g.peek(key, ctx.now) {
        None => Ok(None),
        Some(e) => Ok(Some(
            e.collection::<List>().map_err(|_| ERR_WRONGTYPE)?.len(),
        )),
    }
}

/// LMOVE's work, with both keys' slots held: pops at `from` of `src` and pushes at `to` of
/// `dst`. `Ok(None)`: `src` is missing. The caller has checked both types.
fn move_one(
    ctx: &Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Frame>, Frame> {
    if src == dst {
        // A rotation: the list never goes empty on the way (so it keeps its TTL).
        let elem = update(ctx, src, false, |l, lim| {
            let e = l.pop_with(from, |m| m.to_vec())?;
            l.push(to, &e, lim);
            Some(e)
        })?
        .flatten();
        let Some(elem) = elem else {
            return Ok(None);
        };
        notify(ctx, events::LIST, pop_event(from), src);
        notify(ctx, events::LIST, push_event(to), dst);
        return Ok(Some(Frame::bulk(elem)));
    }
    let popped = update(ctx, src, false, |l, _| {
        l.pop_with(from, |m| m.to_vec()).map(|e| (e, l.is_empty()))
    })?
    .flatten();
    let Some((elem, emptied)) = popped else {
        return Ok(None);
    };
    let created = update(ctx, dst, true, |l, lim| {
        let created = l.is_empty();
        l.push(to, &elem, lim);
        created
    })?;
    // Redis's order: the push's events, then the pop's.
    if created == Some(true) {
        notify(ctx, events::NEW, "new", dst);
    }
    notify(ctx, events::LIST, push_event(to), dst);
    notify(ctx, events::LIST, pop_event(from), src);
    if emptied {
        notify(ctx, events::GENERIC, "del", src);
    }
    Ok(Some(Frame::bulk(elem)))
}

/// LMOVE and RPOPLPUSH with both keys' slots held: checks both types, then moves one
/// element. `Ok(None)`: the source is missing.
pub(crate) fn lmove_locked(
    ctx: &Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Frame>, Frame> {
    // Like Redis: nothing happens for a missing source, whatever the destination holds;
    // a destination of another type is WRONGTYPE before the source is touched.
    if peek_len(ctx, src)?.is_none() {
        return Ok(None);
    }
    peek_len(ctx, dst)?;
    move_one(ctx, src, dst, from, to)
}

fn lmove_cmd(ctx: &mut Ctx<'_>, src: &[u8], dst: &[u8], from: End, to: End) -> Reply {
    let _held = ctx.node.db.lock_tx(Some(slots_of([src, dst])));
    Ok(lmove_locked(ctx, src, dst, from, to)?.unwrap_or(Frame::Null))
}

fn lmove(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (from, to) = (end_arg(req.arg(3))?, end_arg(req.arg(4))?);
    lmove_cmd(ctx, req.arg(1), req.arg(2), from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    lmove_cmd(ctx, req.arg(1), req.arg(2), End::Right, End::Left)
}

/// LMPOP's and BLMPOP's arguments after the count of keys at `numkeys_at`.
pub(crate) struct MpopArgs<'a> {
    pub keys: Vec<&'a [u8]>,
    pub end: End,
    pub count: usize,
}

pub(crate) fn mpop_args(req: &Request, numkeys_at: usize) -> Result<MpopArgs<'_>, Frame> {
    let numkeys = parse_i64(req.arg(numkeys_at))
        .filter(|&n| n > 0)
        .ok_or(Frame::err("ERR numkeys should be greater than 0"))?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&w| w < req.len())
        .ok_or(ERR_SYNTAX)?;
    let end = end_arg(req.arg(where_at))?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < req.len() {
        if count.is_none() && is(req.arg(i), "COUNT") && i + 1 < req.len() {
            let n = parse_i64(req.arg(i + 1))
                .filter(|&n| n > 0)
                .ok_or(Frame::err("ERR count should be greater than 0"))?;
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            i += 2;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    Ok(MpopArgs {
        keys: (numkeys_at + 1..where_at).map(|i| req.arg(i)).collect(),
        end,
        count: count.unwrap_or(1),
    })
}

/// LMPOP's work with the keys' slots held: `[key, [elements]]` from the first non-empty list,
/// `Ok(None)` when every list is empty; WRONGTYPE for a key of another type met first.
pub(crate) fn mpop_locked(ctx: &Ctx<'_>, a: &MpopArgs<'_>) -> Result<Option<Frame>, Frame> {
    for &key in &a.keys {
        if let Some(items) = pop_count(ctx, key, a.end, a.count)? {
            if !items.is_empty() {
                return Ok(Some(Frame::Array(vec![
                    Frame::bulk(key),
                    Frame::Array(items),
                ])));
            }
        }
    }
    Ok(None)
}

fn lmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let a = mpop_args(req, 1)?;
    let _held = ctx.node.db.lock_tx(Some(slots_of(a.keys.iter().copied())));
    Ok(mpop_locked(ctx, &a)?.unwrap_or(Frame::NullArray))
}

// ---- blocking forms (see crate::blocking and cmd::blocking) ----

/// `[key, element]` popped at `end` of `key`; `Ok(None)` when missing.
fn pop_keyed(ctx: &Ctx<'_>, key: &[u8], end: End) -> Result<Option<Frame>, Frame> {
    Ok(pop_count(ctx, key, end, 1)?
        .and_then(|v| v.into_iter().next())
        .map(|f| Frame::Array(vec![Frame::bulk(key), f])))
}

/// Whether BRPOP rather than BLPOP.
fn bpop_end(req: &Request) -> End {
    if is(req.arg(0), "BRPOP") {
        End::Right
    } else {
        End::Left
    }
}

/// BLPOP and BRPOP: the first non-empty list's element, else block on every key.
fn bpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let timeout = blocking::timeout_arg(req.arg(req.len() - 1))?;
    let keys: Vec<&[u8]> = (1..req.len() - 1).map(|i| req.arg(i)).collect();
    let may_block = blocking::may_block();
    let _held = ctx.node.db.lock_tx(Some(slots_of(keys.iter().copied())));
    let end = bpop_end(req);
    for &k in &keys {
        if let Some(f) = pop_keyed(ctx, k, end)? {
            return Ok(f);
        }
    }
    if !may_block {
        return Ok(Frame::NullArray);
    }
    let wait = blocking::Wait {
        keys: &keys,
        slots: slots_of(keys.iter().copied()),
        kind: Kind::List,
        timeout,
        timeout_reply: Frame::NullArray,
        serve: Serve::Bpop,
    };
    Ok(block(ctx, req, wait))
}

pub(crate) fn serve_bpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    match pop_keyed(ctx, key, bpop_end(req)) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::NullArray,
        Err(e) => e,
    }
}

fn blpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bpop(ctx, req)
}

fn brpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    bpop(ctx, req)
}

/// BLMOVE's and BRPOPLPUSH's ends.
fn blmove_ends(req: &Request) -> Result<(End, End), Frame> {
    if is(req.arg(0), "BRPOPLPUSH") {
        Ok((End::Right, End::Left))
    } else {
        Ok((end_arg(req.arg(3))?, end_arg(req.arg(4))?))
    }
}

/// BLMOVE and BRPOPLPUSH: LMOVE, or block on the source.
fn blmove_cmd(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (from, to) = blmove_ends(req)?;
    let timeout = blocking::timeout_arg(req.arg(req.len() - 1))?;
    let (src, dst) = (req.arg(1), req.arg(2));
    let may_block = blocking::may_block();
    let _held = ctx.node.db.lock_tx(Some(slots_of([src, dst])));
    if let Some(f) = lmove_locked(ctx, src, dst, from, to)? {
        return Ok(f);
    }
    if !may_block {
        return Ok(Frame::Null);
    }
    let wait = blocking::Wait {
        keys: &[src],
        slots: slots_of([src, dst]),
        kind: Kind::List,
        timeout,
        timeout_reply: Frame::Null,
        serve: Serve::Blmove,
    };
    Ok(block(ctx, req, wait))
}

/// Serves BLMOVE from `key`: a destination of another type is WRONGTYPE for the blocked
/// client, and the element stays where it was (as in Redis).
pub(crate) fn serve_blmove(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    let Ok((from, to)) = blmove_ends(req) else {
        return ERR_SYNTAX;
    };
    match lmove_locked(ctx, key, req.arg(2), from, to) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::Null,
        Err(e) => e,
    }
}

fn brpoplpush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    blmove_cmd(ctx, req)
}

fn blmove(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    blmove_cmd(ctx, req)
}

fn blmpop(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let timeout = blocking::timeout_arg(req.arg(1))?;
    let a = mpop_args(req, 2)?;
    let may_block = blocking::may_block();
    let _held = ctx.node.db.lock_tx(Some(slots_of(a.keys.iter().copied())));
    if let Some(f) = mpop_locked(ctx, &a)? {
        return Ok(f);
    }
    if !may_block {
        return Ok(Frame::NullArray);
    }
    let wait = blocking::Wait {
        keys: &a.keys,
        slots: slots_of(a.keys.iter().copied()),
        kind: Kind::List,
        timeout,
        timeout_reply: Frame::NullArray,
        serve: Serve::Blmpop,
    };
    Ok(block(ctx, req, wait))
}

pub(crate) fn serve_blmpop(ctx: &mut Ctx<'_>, req: &Request, key: &[u8]) -> Frame {
    let a = match mpop_args(req, 2) {
        Ok(a) => a,
        Err(e) => return e,
    };
    match pop_count(ctx, key, a.end, a.count) {
        Ok(Some(items)) if !items.is_empty() => {
            Frame::Array(vec![Frame::bulk(key), Frame::Array(items)])
        }
        Ok(_) => Frame::NullArray,
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;
