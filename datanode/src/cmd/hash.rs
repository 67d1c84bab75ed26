//! Hash commands, with Redis 7 semantics and error texts.
//!
//! A hash is a listpack while it is small and a table beyond `hash-max-listpack-entries`
//! fields or a field or value longer than `hash-max-listpack-value` (see
//! `store::value`). Writes go through `SlotGuard::modify`, which keeps the memory
//! accounting exact and removes a hash left empty, as Redis does. Writes emit Redis's
//! keyspace events (`hset`, `hincrby`, `hincrbyfloat`, `hdel`, and `new`/`del` when the key
//! appears or goes).

use super::flags::*;
use super::longdouble::LongDouble;
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::resp::frame::{Elements, Shape};
use crate::store::glob::{glob_match, matches_all};
use crate::store::{Hash, Limits};
use rand::Rng;

const G: &str = "hash";

pub static COMMANDS: &[CommandSpec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.0.0",
        "Creates or modifies the value of a field in a hash.", "key field value [field value ...]", hset),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.0.0",
        "Sets the value of a field in a hash only when the field doesn't exist.", "key field value", hsetnx),
    spec("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.0.0",
        "Sets the values of multiple fields.", "key field value [field value ...]", hmset),
    spec("hget", 3, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the value of a field in a hash.", "key field", hget),
    spec("hmget", -3, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the values of all fields in a hash.", "key field [field ...]", hmget),
    spec("hgetall", 2, READONLY, (1, 1, 1), G, "2.0.0",
        "Returns all fields and values in a hash.", "key", hgetall),
    spec("hdel", -3, WRITE | FAST, (1, 1, 1), G, "2.0.0",
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        "key field [field ...]", hdel),
    spec("hlen", 2, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Returns the number of fields in a hash.", "key", hlen),
    spec("hstrlen", 3, READONLY | FAST, (1, 1, 1), G, "3.2.0",
        "Returns the length of the value of a field.", "key field", hstrlen),
    spec("hexists", 3, READONLY | FAST, (1, 1, 1), G, "2.0.0",
        "Determines whether a field exists in a hash.", "key field", hexists),
    spec("hkeys", 2, READONLY, (1, 1, 1), G, "2.0.0",
        "Returns all fields in a hash.", "key", hkeys),
    spec("hvals", 2, READONLY, (1, 1, 1), G, "2.0.0",
        "Returns all values in a hash.", "key", hvals),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.0.0",
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        "key field increment", hincrby),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "2.6.0",
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        "key field increment", hincrbyfloat),
    spec("hrandfield", -2, READONLY, (1, 1, 1), G, "6.2.0",
        "Returns one or more random fields from a hash.", "key [count [WITHVALUES]]", hrandfield),
    spec("hscan", -3, READONLY, (1, 1, 1), G, "2.8.0",
        "Iterates over fields and values of a hash.", "key cursor [MATCH pattern] [COUNT count]", hscan),
];

/// [`update_collection`] for hashs.
fn update<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut Hash, &Limits) -> R,
) -> Result<Option<R>, Frame> {
    update_collection(ctx, key, create, f)
}

/// [`read_collection`] for hashs.
fn read<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&Hash) -> R) -> Result<Option<R>, Frame> {
    read_collection(ctx, key, f)
}

/// Keyspace events of a write that changed the hash at `key`: `new` first when the write
/// created it, then `event`.
fn notify_written(ctx: &Ctx<'_>, event: &str, key: &[u8], created: bool) {
    if created {
        notify(ctx, events::NEW, "new", key);
    }
    notify(ctx, events::HASH, event, key);
}

/// HSET and HMSET: the number of new fields.
fn set_fields(ctx: &mut Ctx<'_>, req: &Request, name: &str) -> Result<i64, Frame> {
    if !req.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    let key = req.arg(1);
    let r = update(ctx, key, true, |h, l| {
        let created = h.is_empty();
        let added = (2..req.len())
            .step_by(2)
            .filter(|&i| h.insert(req.arg(i), req.arg(i + 1), l))
            .count();
        (added, created)
    })?;
    let (added, created) = r.unwrap_or((0, false));
    notify_written(ctx, "hset", key, created);
    Ok(added as i64)
}

fn hset(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    set_fields(ctx, req, "hset").map(Frame::Integer)
}

fn hmset(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    set_fields(ctx, req, "hmset").map(|_| Frame::ok())
}

fn hsetnx(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let r = update(ctx, key, true, |h, l| {
        let created = h.is_empty();
        (
            !h.contains(req.arg(2)) && h.insert(req.arg(2), req.arg(3), l),
            created,
        )
    })?;
    let (added, created) = r.unwrap_or((false, false));
    if added {
        notify_written(ctx, "hset", key, created);
    }
    Ok(Frame::Integer(added as i64))
}

fn hget(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    Ok(
        read(ctx, req.arg(1), |h| h.get(req.arg(2)).map(Frame::bulk))?
            .flatten()
            .unwrap_or(Frame::Null),
    )
}

fn hmget(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let fields = || req.iter().skip(2);
    let out = read(ctx, req.arg(1), |h| {
        fields()
            .map(|f| h.get(f).map_or(Frame::Null, Frame::bulk))
            .collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_else(|| {
        fields().map(|_| Frame::Null).collect()
    })))
}

fn hgetall(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // Written straight from the hash into the reply's bytes (see `Frame::Encoded`): a frame
    // and a copy per field and value cost a third of HGETALL's time at pipeline 16.
    let reply = read(ctx, req.arg(1), |h| {
        let mut out = Elements::with_capacity(h.len().saturating_mul(2), 16);
        for (f, v) in h.iter() {
            out.bulk(f);
            out.bulk(v);
        }
        out.finish(Shape::Map)
    })?;
    Ok(reply.unwrap_or_else(|| pairs_reply(ctx, Vec::new())))
}

/// Field-value pairs: a map in RESP3, a flat array in RESP2.
fn pairs_reply(ctx: &Ctx<'_>, pairs: Vec<(Frame, Frame)>) -> Frame {
    if ctx.session.proto == crate::resp::Protocol::Resp3 {
        Frame::Map(pairs)
    } else {
        Frame::Array(pairs.into_iter().flat_map(|(f, v)| [f, v]).collect())
    }
}

fn hdel(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let r = update(ctx, key, false, |h, _| {
        let n = req.iter().skip(2).filter(|f| h.remove(f)).count();
        (n, h.is_empty())
    })?;
    let (n, emptied) = r.unwrap_or((0, false));
    if n > 0 {
        notify(ctx, events::HASH, "hdel", key);
        if emptied {
            notify(ctx, events::GENERIC, "del", key);
        }
    }
    Ok(Frame::Integer(n as i64))
}

fn hlen(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), Hash::len)?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn hstrlen(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), |h| {
        h.get(req.arg(2)).map_or(0, <[u8]>::len)
    })?;
    Ok(Frame::Integer(n.unwrap_or(0) as i64))
}

fn hexists(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = read(ctx, req.arg(1), |h| h.contains(req.arg(2)))?;
    Ok(Frame::Integer(n.unwrap_or(false) as i64))
}

fn hkeys(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let out = read(ctx, req.arg(1), |h| {
        h.iter().map(|(f, _)| Frame::bulk(f)).collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

fn hvals(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let out = read(ctx, req.arg(1), |h| {
        h.iter().map(|(_, v)| Frame::bulk(v)).collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

fn hincrby(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let delta = int_arg(req.arg(3))?;
    let field = req.arg(2);
    let key = req.arg(1);
    let r = update(ctx, key, true, |h, l| {
        let created = h.is_empty();
        let cur = match h.get(field) {
            Some(v) => parse_i64(v).ok_or(Frame::err("ERR hash value is not an integer"))?,
            None => 0,
        };
        let n = cur
            .checked_add(delta)
            .ok_or(Frame::err("ERR increment or decrement would overflow"))?;
        h.insert(field, itoa::Buffer::new().format(n).as_bytes(), l);
        Ok((n, created))
    })?;
    let (n, created) = r.unwrap_or(Ok((0, false)))?;
    notify_written(ctx, "hincrby", key, created);
    Ok(Frame::Integer(n))
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // Long double arithmetic and printing, as Redis (cmd::longdouble).
    let delta = LongDouble::parse(req.arg(3)).ok_or(ERR_NOT_FLOAT)?;
    if !delta.is_finite() {
        return Err(Frame::err("ERR value is NaN or Infinity"));
    }
    let field = req.arg(2);
    let key = req.arg(1);
    let r = update(ctx, key, true, |h, l| {
        let created = h.is_empty();
        let cur = match h.get(field) {
            Some(v) => LongDouble::parse(v).ok_or(Frame::err("ERR hash value is not a float"))?,
            None => LongDouble::ZERO,
        };
        let text = longdouble::add_human(cur, delta)
            .ok_or(Frame::err("ERR increment would produce NaN or Infinity"))?;
        h.insert(field, text.as_bytes(), l);
        Ok((text, created))
    })?;
    let (text, created) = r.unwrap_or(Ok((String::new(), false)))?;
    notify_written(ctx, "hincrbyfloat", key, created);
    Ok(Frame::bulk(text))
}

/// Largest |count| HRANDFIELD and SRANDMEMBER accept with values (Redis: LONG_MAX / 2, so
/// the reply length cannot overflow).
pub(super) const RAND_COUNT_MAX: i64 = i64::MAX / 2;

/// Which positions a random pick of `count` returns from `len` elements: distinct ones for
/// a positive count (all of them when count >= len, in order), independent picks for a
/// negative count (repeats allowed).
pub(super) fn random_positions(len: usize, count: i64, rng: &mut impl Rng) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        let n = count.unsigned_abs() as usize;
        return (0..n).map(|_| rng.random_range(0..len)).collect();
    }
    let n = count as u64;
    if n >= len as u64 {
        return (0..len).collect();
    }
    rand::seq::index::sample(rng, len, n as usize).into_vec()
}

fn hrandfield(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    if req.len() == 2 {
        let mut rng = rand::rng();
        let f = read(ctx, key, |h| {
            let i = rng.random_range(0..h.len().max(1));
            h.get_index(i).map(|(f, _)| Frame::bulk(f))
        })?;
        return Ok(f.flatten().unwrap_or(Frame::Null));
    }
    let count = int_arg(req.arg(2))?;
    let with_values = match req.len() {
        3 => false,
        4 if is(req.arg(3), "WITHVALUES") => true,
        _ => return Err(ERR_SYNTAX),
    };
    if with_values && !(-RAND_COUNT_MAX..=RAND_COUNT_MAX).contains(&count) {
        return Err(Frame::err("ERR value is out of range"));
    }
    // A negative count asks for that many picks: bound what one reply may hold, as the
    // client would need that much memory to read it anyway.
    if count.unsigned_abs() > MAX_REPLY_ELEMENTS as u64 && count < 0 {
        return Err(Frame::err("ERR value is out of range"));
    }
    let resp3 = ctx.session.proto == crate::resp::Protocol::Resp3;
    let mut rng = rand::rng();
    let out = read(ctx, key, |h| {
        random_positions(h.len(), count, &mut rng)
            .into_iter()
            .filter_map(|i| h.get_index(i))
            .flat_map(|(f, v)| {
                if !with_values {
                    vec![Frame::bulk(f)]
                } else if resp3 {
                    vec![Frame::Array(vec![Frame::bulk(f), Frame::bulk(v)])]
                } else {
                    vec![Frame::bulk(f), Frame::bulk(v)]
                }
            })
            .collect()
    })?;
    Ok(Frame::Array(out.unwrap_or_default()))
}

/// Most elements a reply built from a client's count may hold.
pub(super) const MAX_REPLY_ELEMENTS: usize = 64 * 1024 * 1024;

/// HSCAN and SSCAN arguments after the key.
pub(super) struct ScanArgs<'a> {
    pub cursor: u64,
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
}

impl ScanArgs<'_> {
    pub fn matches(&self, e: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, e))
    }
}

/// Parses `cursor [MATCH pattern] [COUNT count]` from `req[2..]`.
pub(super) fn scan_args(req: &Request) -> Result<ScanArgs<'_>, Frame> {
    let cursor = std::str::from_utf8(req.arg(2))
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(Frame::err("ERR invalid cursor"))?;
    let mut out = ScanArgs {
        cursor,
        pattern: None,
        count: 10,
    };
    let mut i = 3;
    while i < req.len() {
        if i + 1 >= req.len() {
            return Err(ERR_SYNTAX);
        }
        let (a, v) = (req.arg(i), req.arg(i + 1));
        if is(a, "MATCH") {
            out.pattern = (!matches_all(v)).then_some(v);
        } else if is(a, "COUNT") {
            let n = int_arg(v)?;
            if n < 1 {
                return Err(ERR_SYNTAX);
            }
            out.count = n as usize;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 2;
    }
    Ok(out)
}

/// One scan step over a collection of `len` elements read by position: the positions to
/// visit and the next cursor (0 when done). A compact collection is returned whole, like
/// Redis does for listpacks and intsets. A table is walked from its last position towards
/// its first; removals move the last element into the freed position, which is always one
/// already visited, so an element present for the whole scan is returned.
pub(super) fn scan_step(
    len: usize,
    cursor: u64,
    count: usize,
    compact: bool,
) -> (std::ops::Range<usize>, u64) {
    if compact {
        return (0..len, 0);
    }
    let hi = if cursor == 0 {
        len
    } else {
        usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
    };
    let lo = hi.saturating_sub(count);
    (lo..hi, lo as u64)
}

/// The scan reply: the next cursor and the elements.
pub(super) fn scan_reply(next: u64, elems: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(elems)])
}

fn hscan(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let args = scan_args(req)?;
    let out = read(ctx, req.arg(1), |h| {
        let (range, next) = scan_step(
            h.len(),
            args.cursor,
            args.count,
            matches!(h, Hash::Listpack(_)),
        );
        let mut elems = Vec::new();
        for i in range.rev() {
            if let Some((f, v)) = h.get_index(i) {
                if args.matches(f) {
                    elems.push(Frame::bulk(f));
                    elems.push(Frame::bulk(v));
                }
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

    fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn set_get_delete() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSET", "h", "a", "1", "b", "2"]), int(2));
        assert_eq!(h.run(&["HSET", "h", "a", "3", "c", "4"]), int(1));
        assert_eq!(h.run(&["HMSET", "h", "d", "5"]), Frame::ok());
        assert_eq!(
            h.run(&["HSET", "h", "a"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            h.run(&["HSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("3"));
        assert_eq!(h.run(&["HGET", "h", "zz"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "nokey", "a"]), Frame::Null);
        assert_eq!(
            h.run(&["HMGET", "h", "a", "zz", "b"]),
            Frame::Array(vec![bulk("3"), Frame::Null, bulk("2")])
        );
        assert_eq!(
            h.run(&["HMGET", "nokey", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        assert_eq!(
            h.run(&["HGETALL", "h"]),
            arr(&["a", "3", "b", "2", "c", "4", "d", "5"])
        );
        assert_eq!(h.run(&["HKEYS", "h"]), arr(&["a", "b", "c", "d"]));
        assert_eq!(h.run(&["HVALS", "h"]), arr(&["3", "2", "4", "5"]));
        assert_eq!(h.run(&["HLEN", "h"]), int(4));
        assert_eq!(h.run(&["HSTRLEN", "h", "a"]), int(1));
        assert_eq!(h.run(&["HSTRLEN", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "h", "a"]), int(1));
        assert_eq!(h.run(&["HEXISTS", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HSETNX", "h", "a", "9"]), int(0));
        assert_eq!(h.run(&["HSETNX", "h", "e", "9"]), int(1));
        assert_eq!(h.run(&["HDEL", "h", "a", "zz", "b"]), int(2));
        assert_eq!(h.run(&["HDEL", "nokey", "a"]), int(0));
        assert_eq!(h.run(&["HDEL", "h", "c", "d", "e"]), int(3));
        // The last field gone, the key goes.
        assert_eq!(h.run(&["EXISTS", "h"]), int(0));
        assert_eq!(h.run(&["TYPE", "h"]), Frame::simple("none"));
    }

    #[test]
    fn wrongtype_both_ways() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "x"]);
        h.run(&["HSET", "h", "f", "v"]);
        let wt = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for cmd in [
            &["HSET", "s", "f", "v"][..],
            &["HGET", "s", "f"],
            &["HGETALL", "s"],
            &["HLEN", "s"],
            &["HINCRBY", "s", "f", "1"],
            &["HRANDFIELD", "s"],
            &["HSCAN", "s", "0"],
            &["GET", "h"],
            &["APPEND", "h", "x"],
            &["INCR", "h"],
        ] {
            assert_eq!(h.run(cmd), wt, "{cmd:?}");
        }
        assert_eq!(h.run(&["TYPE", "h"]), Frame::simple("hash"));
        // SET overwrites any type.
        assert_eq!(h.run(&["SET", "h", "now"]), Frame::ok());
        assert_eq!(h.run(&["GET", "h"]), bulk("now"));
    }

    #[test]
    fn encodings_follow_the_config() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "a", "1"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("listpack"));
        assert_eq!(
            h.run(&["CONFIG", "SET", "hash-max-ziplist-entries", "2"]),
            Frame::ok()
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "hash-max-listpack-entries"]),
            Frame::Map(vec![(bulk("hash-max-listpack-entries"), bulk("2"))])
        );
        h.run(&["HSET", "h", "b", "2"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("listpack"));
        h.run(&["HSET", "h", "c", "3"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("hashtable"));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1"));
        h.run(&["CONFIG", "SET", "hash-max-listpack-value", "3"]);
        h.run(&["HSET", "v", "a", "1234"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "v"]), bulk("hashtable"));
        assert_eq!(
            h.run(&["CONFIG", "SET", "hash-max-listpack-value", "-1"]),
            err("ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-value') - argument must be between 0 and 9223372036854775807 inclusive")
        );
    }

    #[test]
    fn increments() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HINCRBY", "h", "n", "5"]), int(5));
        assert_eq!(h.run(&["HINCRBY", "h", "n", "-7"]), int(-2));
        assert_eq!(
            h.run(&["HINCRBY", "h", "n", "x"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["HSET", "h", "s", "abc", "big", "9223372036854775807"]);
        assert_eq!(
            h.run(&["HINCRBY", "h", "s", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            h.run(&["HINCRBY", "h", "big", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "1.5"]), bulk("1.5"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "0.25"]), bulk("1.75"));
        // Long double sums and %.17Lf, as redis-server 7.0.15 on x86-64 answers.
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "3000"]), bulk("3001.75"));
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "f", "1.1"]),
            bulk("3002.85000000000000009")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "f", "1e-20"]),
            bulk("3002.85000000000000009")
        );
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "-3001.1"]), bulk("1.75"));
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "f", "1e5000"]),
            err("ERR value is not a valid float")
        );
        h.run(&["HSET", "h", "big", "0x1p16383"]);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "big", "0x1p16383"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "s", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "f", "inf"]),
            err("ERR value is NaN or Infinity")
        );
        // A failed increment on a missing key leaves no key behind.
        assert_eq!(
            h.run(&["HINCRBY", "new", "n", "notint"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["EXISTS", "new"]), int(0));
    }

    #[test]
    fn random_fields() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HRANDFIELD", "none"]), Frame::Null);
        assert_eq!(h.run(&["HRANDFIELD", "none", "3"]), Frame::Array(vec![]));
        h.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        let Frame::Bulk(f) = h.run(&["HRANDFIELD", "h"]) else {
            panic!("a field")
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&&f[..]));
        let len = |f: Frame| match f {
            Frame::Array(v) => v.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(len(h.run(&["HRANDFIELD", "h", "2"])), 2);
        assert_eq!(len(h.run(&["HRANDFIELD", "h", "10"])), 3);
        assert_eq!(len(h.run(&["HRANDFIELD", "h", "-10"])), 10);
        assert_eq!(len(h.run(&["HRANDFIELD", "h", "0"])), 0);
        assert_eq!(len(h.run(&["HRANDFIELD", "h", "-5", "WITHVALUES"])), 10);
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "3", "WITHVALUES"]),
            arr(&["a", "1", "b", "2", "c", "3"])
        );
        assert_eq!(h.run(&["HRANDFIELD", "h", "1", "bogus"]), ERR_SYNTAX);
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-9223372036854775807", "WITHVALUES"]),
            err("ERR value is out of range")
        );
        // Distinct fields from a table too.
        let mut args = vec!["HSET".to_string(), "t".into()];
        for i in 0..300 {
            args.push(format!("f{i}"));
            args.push("v".into());
        }
        h.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let Frame::Array(v) = h.run(&["HRANDFIELD", "t", "200"]) else {
            panic!("array")
        };
        let distinct: std::collections::HashSet<_> = v.iter().map(|f| format!("{f:?}")).collect();
        assert_eq!(distinct.len(), 200);
    }

    #[test]
    fn scans_return_every_field() {
        let mut h = Harness::new();
        h.run(&["HSET", "small", "a", "1", "b", "2"]);
        assert_eq!(
            h.run(&["HSCAN", "small", "0"]),
            Frame::Array(vec![bulk("0"), arr(&["b", "2", "a", "1"])])
        );
        assert_eq!(
            h.run(&["HSCAN", "small", "0", "MATCH", "a*"]),
            Frame::Array(vec![bulk("0"), arr(&["a", "1"])])
        );
        assert_eq!(h.run(&["HSCAN", "small", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["HSCAN", "small", "0", "COUNT", "0"]), ERR_SYNTAX);
        let mut args = vec!["HSET".to_string(), "big".into()];
        for i in 0..500 {
            args.push(format!("f{i}"));
            args.push(format!("{i}"));
        }
        h.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Frame::Array(r) = h.run(&["HSCAN", "big", &cursor, "COUNT", "37"]) else {
                panic!("array")
            };
            let (Frame::Bulk(c), Frame::Array(items)) = (&r[0], &r[1]) else {
                panic!("cursor and items")
            };
            for pair in items.chunks(2) {
                seen.insert(format!("{:?}", pair[0]));
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
    }

    #[test]
    fn random_positions_are_in_range() {
        let mut rng = rand::rng();
        assert!(random_positions(0, 5, &mut rng).is_empty());
        assert_eq!(random_positions(3, 5, &mut rng), vec![0, 1, 2]);
        let p = random_positions(10, 4, &mut rng);
        let distinct: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!((p.len(), distinct.len()), (4, 4));
        assert!(random_positions(2, -50, &mut rng).iter().all(|&i| i < 2));
    }
}
