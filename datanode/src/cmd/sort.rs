//! SORT and SORT_RO, with Redis 7 semantics and error texts.
//!
//! The elements of a list, a set or a sorted set are sorted as numbers (by default: each
//! read as a double, else `-ERR`), as strings (ALPHA, byte order), or by the values of
//! other keys named by a `BY` pattern (`weight_*`, or `object_*->field` for a hash field);
//! `GET` patterns replace each element with other keys' values (`#` is the element).
//! Equal scores are ordered by the elements' bytes, so numeric results are deterministic.
//! `BY` a pattern without `*` does not sort (the key's own order: a list's, a sorted set's
//! by score), except for a set with STORE, which is sorted as strings so that the stored
//! list is the same on every node.
//!
//! In a cluster, a `BY` or `GET` pattern must name keys in the sorted key's slot (its hash
//! tag decides, as Redis Cluster checks it): `-ERR BY option of SORT denied in Cluster
//! mode when keys formed by the pattern may be in different slots.` otherwise. The
//! destination of STORE is a key of the command (routing sees it).

use super::flags::*;
use super::pubsub::notify;
use super::*;
use crate::pubsub::events;
use crate::store::{End, List, Member, Value};
use chkv_common::key_slot;

const G: &str = "generic";

pub static COMMANDS: &[CommandSpec] = &[
    spec("sort", -2, WRITE | DENYOOM | SORT_STORE, (1, 1, 1), G, "1.0.0",
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA] [STORE destination]",
        sort),
    spec("sort_ro", -2, READONLY, (1, 1, 1), G, "7.0.0",
        "Returns the sorted elements of a list, a set, or a sorted set.",
        "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA]",
        sort_ro),
];

/// The position of SORT's destination key, if any: the argument of the last `STORE`,
/// skipping the other options' arguments as Redis does.
pub fn store_position(req: &Request) -> Option<usize> {
    let mut found = None;
    let mut j = 2;
    while j < req.len() {
        let a = req.arg(j);
        let left = req.len() - j - 1;
        if is(a, "LIMIT") && left >= 2 {
            j += 2;
        } else if (is(a, "GET") || is(a, "BY")) && left >= 1 {
            j += 1;
        } else if is(a, "STORE") && left >= 1 {
            found = Some(j + 1);
            j += 1;
        }
        j += 1;
    }
    found
}

/// The slot every key a pattern can form hashes to, when its hash tag fixes it (Redis
/// Cluster's check): the first `{...}` with something inside, before any wildcard.
fn pattern_slot(p: &[u8]) -> Option<u16> {
    let mut open = None;
    for (i, &c) in p.iter().enumerate() {
        match c {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() => open = Some(i),
            b'}' => {
                if let Some(s) = open {
                    return (i > s + 1).then(|| key_slot(&p[s + 1..i]));
                }
            }
            _ => {}
        }
    }
    None
}

/// SORT's options.
#[derive(Default)]
struct Opts<'a> {
    by: Option<&'a [u8]>,
    /// `BY` a pattern without `*`: keep the key's own order.
    nosort: bool,
    limit: Option<(i64, i64)>,
    gets: Vec<&'a [u8]>,
    desc: bool,
    alpha: bool,
    store: Option<&'a [u8]>,
}

/// Parses the options; `cluster_slot`: the sorted key's slot when the node is in a cluster
/// (patterns must stay in it).
fn parse(req: &Request, read_only: bool, cluster_slot: Option<u16>) -> Result<Opts<'_>, Frame> {
    let mut o = Opts::default();
    let mut j = 2;
    while j < req.len() {
        let a = req.arg(j);
        let left = req.len() - j - 1;
        if is(a, "ASC") {
            o.desc = false;
        } else if is(a, "DESC") {
            o.desc = true;
        } else if is(a, "ALPHA") {
            o.alpha = true;
        } else if is(a, "LIMIT") && left >= 2 {
            o.limit = Some((int_arg(req.arg(j + 1))?, int_arg(req.arg(j + 2))?));
            j += 2;
        } else if is(a, "STORE") && left >= 1 && !read_only {
            o.store = Some(req.arg(j + 1));
            j += 1;
        } else if is(a, "BY") && left >= 1 {
            let p = req.arg(j + 1);
            o.by = Some(p);
            if !p.contains(&b'*') {
                o.nosort = true;
            } else if cluster_slot.is_some_and(|s| pattern_slot(p) != Some(s)) {
                return Err(Frame::err(
                    "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            j += 1;
        } else if is(a, "GET") && left >= 1 {
            let p = req.arg(j + 1);
            if p != b"#" && cluster_slot.is_some_and(|s| pattern_slot(p) != Some(s)) {
                return Err(Frame::err(
                    "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            o.gets.push(p);
            j += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// Where the elements came from: a set has no order of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    List,
    Set,
    /// A sorted set's members, by rank (kept as they are when not sorting, like a list's).
    SortedSet,
}

/// The elements of the value SORT reads, in the key's own order, or WRONGTYPE.
fn source_elements(v: &Value) -> Result<(Source, Vec<Vec<u8>>), Frame> {
    match v {
        Value::List(l) => {
            let mut items = Vec::with_capacity(l.len());
            let mut c = l.cursor();
            while let Some(m) = c.next() {
                items.push(m.to_vec());
            }
            Ok((Source::List, items))
        }
        Value::Set(s) => Ok((Source::Set, s.iter().map(Member::to_vec).collect())),
        Value::Zset(z) => {
            let mut members = Vec::with_capacity(z.len());
            z.for_each(|m, _| members.push(m.to_vec()));
            Ok((Source::SortedSet, members))
        }
        _ => Err(ERR_WRONGTYPE),
    }
}

/// The value a pattern names for `elem` (Redis's lookupKeyByPattern): `#` is the element; the
/// first `*` is replaced by it; `key->field` after the `*` reads a hash field; a pattern
/// without `*` names nothing; a key of another type reads as missing.
fn by_pattern(ctx: &Ctx<'_>, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let rest = &pattern[star + 1..];
    let (post, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(i) if i + 2 < rest.len() => (&rest[..i], Some(&rest[i + 2..])),
        _ => (rest, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + post.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(post);
    let mut g = ctx.node.db.lock_key(&key);
    let e = g.get(&key, ctx.now)?;
    match field {
        None => e.as_str().map(<[u8]>::to_vec),
        Some(f) => e.as_hash().ok()?.get(f).map(<[u8]>::to_vec),
    }
}

/// A double as SORT reads one (C's strtod on the whole string: leading spaces allowed, NaN
/// refused).
fn sort_score(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start();
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

const ERR_SCORE: Frame = Frame::err("ERR One or more scores can't be converted into double");

/// One element to sort and what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    by: Option<Vec<u8>>,
}

fn sort_cmd(ctx: &mut Ctx<'_>, req: &Request, read_only: bool) -> Reply {
    let key = req.arg(1);
    let in_cluster = !ctx.node.routing().standalone;
    let mut o = parse(req, read_only, in_cluster.then(|| key_slot(key)))?;
    // Without patterns, or in a cluster (where patterns stay in the key's slot), every key
    // the command reads is in the slots held here: it runs atomically. Patterns reaching
    // any slot (a standalone node) are read slot by slot instead, never holding one slot
    // while waiting for another.
    let reaches_out =
        !in_cluster && (o.by.is_some_and(|_| !o.nosort) || o.gets.iter().any(|g| *g != b"#"));
    let mut slots = vec![key_slot(key)];
    slots.extend(o.store.map(key_slot));
    let held = (!reaches_out).then(|| ctx.node.db.lock_tx(Some(slots)));
    let source = {
        let mut g = ctx.node.db.lock_key(key);
        match g.get(key, ctx.now) {
            None => None,
            Some(e) => match e.obj() {
                Some(v) => Some(source_elements(&v)?),
                None => return Err(ERR_WRONGTYPE),
            },
        }
    };
    let (kind, elems) = source.unwrap_or((Source::List, Vec::new()));
    if o.nosort && kind == Source::Set && (o.store.is_some() || ctx.session.in_script) {
        // A set has no order: stored results, and results a script sees, are sorted so
        // they are the same everywhere (as Redis does).
        o.nosort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elems.len() as i64;
    let (start, end) = match o.limit {
        None => (0, len - 1),
        Some((offset, count)) => {
            let start = offset.max(0);
            let mut end = if count < 0 {
                len - 1
            } else {
                start.saturating_add(count).saturating_sub(1)
            };
            let mut start = start;
            if start >= len {
                start = len - 1;
                end = len - 2;
            }
            (start, end.min(len - 1))
        }
    };
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            by: None,
        })
        .collect();
    if o.nosort {
        // The key's own order (a set's as it iterates); DESC walks a list or sorted set
        // from its end.
        if o.desc && kind != Source::Set {
            items.reverse();
        }
    } else {
        for it in &mut items {
            let by = match o.by {
                Some(p) => by_pattern(ctx, p, &it.elem),
                None => None,
            };
            if !o.alpha {
                match (&by, o.by) {
                    (Some(v), _) => it.score = sort_score(v).ok_or(ERR_SCORE)?,
                    (None, Some(_)) => {}
                    (None, None) => it.score = sort_score(&it.elem).ok_or(ERR_SCORE)?,
                }
            }
            it.by = by;
        }
        let cmp = |a: &Item, b: &Item| -> std::cmp::Ordering {
            let c = if !o.alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if o.by.is_some() {
                // A missing BY value sorts first.
                a.by.cmp(&b.by)
            } else {
                a.elem.cmp(&b.elem)
            };
            if o.desc {
                c.reverse()
            } else {
                c
            }
        };
        items.sort_by(cmp);
    }
    let range: &[Item] = if start <= end && start >= 0 {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(range.len() * o.gets.len().max(1));
    for it in range {
        if o.gets.is_empty() {
            out.push(Some(it.elem.clone()));
        }
        for g in &o.gets {
            out.push(by_pattern(ctx, g, &it.elem));
        }
    }
    let Some(dst) = o.store else {
        drop(held);
        return Ok(Frame::Array(
            out.into_iter()
                .map(|v| v.map_or(Frame::Null, Frame::bulk))
                .collect(),
        ));
    };
    // STORE: the result replaces the destination (whatever it held, and its TTL); an empty
    // result deletes it.
    let n = out.len();
    let limits = ctx.node.db.limits();
    let old = {
        let mut g = ctx.node.db.lock_key(dst);
        let old = g.remove(dst, ctx.now).map(|(v, _)| v);
        if n > 0 {
            let mut list = List::default();
            for v in &out {
                list.push(End::Right, v.as_deref().unwrap_or_default(), &limits);
            }
            g.set(
                dst,
                Value::List(Box::new(list)),
                crate::store::NO_EXPIRY,
                ctx.now,
            );
        }
        old
    };
    drop(held);
    if n > 0 {
        if old.is_none() {
            notify(ctx, events::NEW, "new", dst);
        }
        notify(ctx, events::LIST, "sortstore", dst);
    } else if old.is_some() {
        notify(ctx, events::GENERIC, "del", dst);
    }
    ctx.node.db.free_later(old);
    Ok(Frame::Integer(n as i64))
}

fn sort(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    sort_cmd(ctx, req, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    sort_cmd(ctx, req, true)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn arr(v: &[&str]) -> Frame {
        Frame::Array(v.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn numeric_alpha_desc_limit() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "3", "1.5", "10", "-2", "2"]);
        assert_eq!(h.run(&["SORT", "l"]), arr(&["-2", "1.5", "2", "3", "10"]));
        assert_eq!(
            h.run(&["SORT", "l", "DESC"]),
            arr(&["10", "3", "2", "1.5", "-2"])
        );
        assert_eq!(
            h.run(&["SORT", "l", "ALPHA"]),
            arr(&["-2", "1.5", "10", "2", "3"])
        );
        assert_eq!(h.run(&["SORT", "l", "LIMIT", "1", "2"]), arr(&["1.5", "2"]));
        assert_eq!(
            h.run(&["SORT", "l", "LIMIT", "-5", "-1"]),
            arr(&["-2", "1.5", "2", "3", "10"])
        );
        assert_eq!(h.run(&["SORT", "l", "LIMIT", "9", "2"]), arr(&[]));
        assert_eq!(
            h.run(&["SORT", "l", "LIMIT", "2", "9223372036854775807"]),
            arr(&["2", "3", "10"])
        );
        assert_eq!(
            h.run(&["SORT", "l", "BY", "nosort"]),
            arr(&["3", "1.5", "10", "-2", "2"])
        );
        assert_eq!(
            h.run(&["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "0", "2"]),
            arr(&["2", "-2"])
        );
        assert_eq!(h.run(&["SORT", "none"]), arr(&[]));
        h.run(&["RPUSH", "bad", "1", "x"]);
        assert_eq!(
            h.run(&["SORT", "bad"]),
            err("ERR One or more scores can't be converted into double")
        );
        h.run(&["SET", "s", "x"]);
        assert_eq!(
            h.run(&["SORT", "s"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
        assert_eq!(h.run(&["SORT", "l", "LIMIT", "1"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["SORT_RO", "l", "STORE", "x"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn by_get_and_store() {
        let mut h = Harness::new();
        h.run(&["SADD", "ids", "1", "2", "3"]);
        h.run(&[
            "MSET", "w_1", "30", "w_2", "10", "name_1", "a", "name_3", "c",
        ]);
        h.run(&["HSET", "obj_1", "w", "5"]);
        h.run(&["HSET", "obj_2", "w", "7"]);
        h.run(&["HSET", "obj_3", "w", "1"]);
        // w_3 is missing: score 0.
        assert_eq!(h.run(&["SORT", "ids", "BY", "w_*"]), arr(&["3", "2", "1"]));
        assert_eq!(
            h.run(&["SORT", "ids", "BY", "obj_*->w"]),
            arr(&["3", "1", "2"])
        );
        assert_eq!(
            h.run(&["SORT", "ids", "BY", "w_*", "GET", "#", "GET", "name_*"]),
            Frame::Array(vec![
                bulk("3"),
                bulk("c"),
                bulk("2"),
                Frame::Null,
                bulk("1"),
                bulk("a")
            ])
        );
        assert_eq!(
            h.run(&["SORT", "ids", "GET", "const"]),
            Frame::Array(vec![Frame::Null; 3])
        );
        assert_eq!(h.run(&["SORT", "ids", "BY", "w_*", "STORE", "out"]), int(3));
        assert_eq!(h.run(&["LRANGE", "out", "0", "-1"]), arr(&["3", "2", "1"]));
        assert_eq!(
            h.run(&["SORT", "ids", "BY", "w_*", "GET", "name_*", "STORE", "out"]),
            int(3)
        );
        assert_eq!(h.run(&["LRANGE", "out", "0", "-1"]), arr(&["c", "", "a"]));
        assert_eq!(h.run(&["SORT", "none", "STORE", "out"]), int(0));
        assert_eq!(h.run(&["EXISTS", "out"]), int(0));
        // A set stored without sorting is sorted as strings.
        h.run(&["SADD", "letters", "b", "c", "a"]);
        assert_eq!(
            h.run(&["SORT", "letters", "BY", "x", "STORE", "out"]),
            int(3)
        );
        assert_eq!(h.run(&["LRANGE", "out", "0", "-1"]), arr(&["a", "b", "c"]));
        // A pattern ending with -> is a key name, not a hash field.
        h.run(&["SET", "x:a->", "100"]);
        assert_eq!(
            h.run(&["SORT", "letters", "ALPHA", "GET", "x:*->"]),
            Frame::Array(vec![bulk("100"), Frame::Null, Frame::Null])
        );
    }

    #[test]
    fn store_key_positions() {
        let keys = |args: &[&str]| {
            let (_, spec) = lookup(args[0].as_bytes()).expect("sort");
            spec.keys_in(&Request::from_args(args.iter().map(|a| a.as_bytes())))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&["sort", "abc", "store", "def"]), vec![1, 3]);
        assert_eq!(
            keys(&["sort", "abc", "store", "invalid", "store", "stillbad", "store", "def"]),
            vec![1, 7]
        );
        assert_eq!(
            keys(&["sort", "abc", "by", "store", "limit", "0", "1"]),
            vec![1]
        );
        assert_eq!(keys(&["sort_ro", "abc", "store", "def"]), vec![1]);
    }

    #[test]
    fn pattern_slots() {
        assert_eq!(pattern_slot(b"{user}:w_*"), Some(key_slot(b"user")));
        assert_eq!(pattern_slot(b"w_*"), None);
        assert_eq!(pattern_slot(b"{}w_*"), None);
        assert_eq!(pattern_slot(b"{u*}w"), None);
    }
}
