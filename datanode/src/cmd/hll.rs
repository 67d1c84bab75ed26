//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, and the debugging PFDEBUG and PFSELFTEST,
//! with Redis 7.0's semantics and error texts. The values are Redis's own HyperLogLog strings
//! (see [`crate::hll`]): GET returns bytes Redis reads, and SET of bytes from Redis gives a
//! HyperLogLog CHKV reads, cached cardinality included.
//!
//! A dense HyperLogLog (12 KB) is changed in place; a sparse one (at most
//! `hll-sparse-max-bytes`) is edited in a copy and stored back when it changed.

use super::flags::*;
use super::pubsub::notify;
use super::*;
use crate::hll;
use crate::pubsub::events;
use crate::store::{Value, NO_EXPIRY};

const G: &str = "hyperloglog";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "2.8.9",
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        "key [element [element ...]]",
        pfadd,
    ),
    spec(
        "pfcount",
        -2,
        READONLY,
        (1, -1, 1),
        G,
        "2.8.9",
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        "key [key ...]",
        pfcount,
    ),
    spec(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        (1, -1, 1),
        G,
        "2.8.9",
        "Merges one or more HyperLogLog values into a single key.",
        "destkey [sourcekey [sourcekey ...]]",
        pfmerge,
    ),
    spec(
        "pfdebug",
        3,
        WRITE | DENYOOM | ADMIN,
        (2, 2, 1),
        G,
        "2.8.9",
        "Internal commands for debugging HyperLogLog values.",
        "subcommand key",
        pfdebug,
    ),
    spec(
        "pfselftest",
        1,
        ADMIN,
        NO_KEYS,
        G,
        "2.8.9",
        "An internal command for testing HyperLogLog values.",
        "",
        pfselftest,
    ),
];

const ERR_NOT_HLL: Frame = Frame::err("WRONGTYPE Key is not a valid HyperLogLog string value.");
const ERR_CORRUPT: Frame = Frame::err("INVALIDOBJ Corrupted HLL object detected");

/// The HyperLogLog bytes of a value: WRONGTYPE for non-strings and for strings that are not
/// HyperLogLogs (each with Redis's text).
fn as_hll(v: Option<&[u8]>) -> Result<&[u8], Frame> {
    let s = v.ok_or(ERR_WRONGTYPE)?;
    if hll::is_valid(s) {
        Ok(s)
    } else {
        Err(ERR_NOT_HLL)
    }
}

fn pfadd(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let max_bytes = ctx.node.config().hll_sparse_max_bytes;
    let now = ctx.now;
    let mut g = ctx.node.db.lock_key(key);
    let current = match g.peek(key, now) {
        None => None,
        Some(e) => {
            let s = as_hll(e.as_str())?;
            (!hll::is_dense(s)).then(|| s.to_vec())
        }
    };
    let elements = req.iter().skip(2);
    if current.is_none() && g.contains(key, now) {
        // Dense: registers change in place.
        let Some(s) = g.str_mut(key, 0, now) else {
            return Err(ERR_CORRUPT);
        };
        let mut updated = false;
        for ele in elements {
            let (index, count) = hll::pattern(ele);
            updated |= hll::dense_add(s, index, count);
        }
        if updated {
            hll::invalidate(s);
            drop(g);
            notify(ctx, events::STRING, "pfadd", key);
        }
        return Ok(Frame::Integer(updated as i64));
    }
    let created = current.is_none();
    let mut v = current.unwrap_or_else(hll::new_sparse);
    let (mut changed, mut failed) = (false, false);
    for ele in elements {
        match hll::add(&mut v, ele, max_bytes) {
            Ok(c) => changed |= c,
            Err(hll::Corrupt) => {
                failed = true;
                break;
            }
        }
    }
    if !failed && (created || changed) {
        hll::invalidate(&mut v);
    }
    if created {
        g.set_str(key, &v, NO_EXPIRY, now);
    } else if changed {
        // Like Redis, registers changed before a corrupt part was met stay changed.
        g.replace_value(key, Value::Str(v.into_boxed_slice()), now);
    }
    drop(g);
    if created {
        notify(ctx, events::NEW, "new", key);
    }
    if failed {
        return Err(ERR_CORRUPT);
    }
    if created || changed {
        notify(ctx, events::STRING, "pfadd", key);
    }
    Ok(Frame::Integer((created || changed) as i64))
}

fn pfcount(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let now = ctx.now;
    if req.len() == 2 {
        let key = req.arg(1);
        let mut g = ctx.node.db.lock_key(key);
        let Some(e) = g.get(key, now) else {
            return Ok(Frame::Integer(0));
        };
        let s = as_hll(e.as_str())?;
        if let Some(card) = hll::cached(s) {
            return Ok(Frame::Integer(card as i64));
        }
        let card = hll::count(s).map_err(|_| ERR_CORRUPT)?;
        // Cache it in the value, as Redis does (the bytes then match Redis's).
        if let Some(s) = g.str_mut(key, 0, now) {
            hll::set_cached(s, card);
        }
        return Ok(Frame::Integer(card as i64));
    }
    // Several keys: the union's estimate, from the registers' maxima; nothing is cached.
    let mut max = Box::new([0u8; hll::REGISTERS]);
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    for k in keys() {
        if let Some(e) = g.slot_of(k).get(k, now) {
            let s = as_hll(e.as_str())?;
            hll::merge_into(&mut max, s).map_err(|_| ERR_CORRUPT)?;
        }
    }
    Ok(Frame::Integer(
        hll::estimate(&hll::raw_histogram(&max)) as i64
    ))
}

/// PFCOUNT of several keys gathered from several nodes (their values, as MGET returns them:
/// `Null` for a missing key, or for a value that is not a string): the union's estimate.
pub fn count_union(values: &[Frame]) -> Frame {
    let mut max = Box::new([0u8; hll::REGISTERS]);
    for v in values {
        match v {
            Frame::Bulk(s) => {
                if !hll::is_valid(s) {
                    return ERR_NOT_HLL;
                }
                if hll::merge_into(&mut max, s).is_err() {
                    return ERR_CORRUPT;
                }
            }
            Frame::Null => {}
            _ => return ERR_WRONGTYPE,
        }
    }
    Frame::Integer(hll::estimate(&hll::raw_histogram(&max)) as i64)
}

fn pfmerge(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let now = ctx.now;
    let max_bytes = ctx.node.config().hll_sparse_max_bytes;
    let dest = req.arg(1);
    // The destination is one of the sources, as in Redis.
    let keys = || req.iter().skip(1);
    let mut g = ctx.node.db.lock_keys(keys());
    let mut max = Box::new([0u8; hll::REGISTERS]);
    let mut any_dense = false;
    for k in keys() {
        if let Some(e) = g.slot_of(k).get(k, now) {
            let s = as_hll(e.as_str())?;
            any_dense |= hll::is_dense(s);
            hll::merge_into(&mut max, s).map_err(|_| ERR_CORRUPT)?;
        }
    }
    let gd = g.slot_of(dest);
    let existing = gd
        .peek(dest, now)
        .and_then(|e| e.as_str().map(<[u8]>::to_vec));
    let created = existing.is_none();
    let mut v = existing.unwrap_or_else(hll::new_sparse);
    if any_dense && !hll::is_dense(&v) {
        v = hll::sparse_to_dense(&v).map_err(|_| ERR_CORRUPT)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if hll::is_dense(&v) {
            hll::dense_set(&mut v[hll::HDR..], i, m);
        } else {
            hll::sparse_add(&mut v, i, m, max_bytes).map_err(|_| ERR_CORRUPT)?;
        }
    }
    hll::invalidate(&mut v);
    if created {
        gd.set_str(dest, &v, NO_EXPIRY, now);
    } else {
        gd.replace_value(dest, Value::Str(v.into_boxed_slice()), now);
    }
    drop(g);
    // Redis announces a merge as `pfadd` on the destination.
    if created {
        notify(ctx, events::NEW, "new", dest);
    }
    notify(ctx, events::STRING, "pfadd", dest);
    Ok(Frame::ok())
}

fn pfdebug(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let sub = req.arg(1);
    let key = req.arg(2);
    let now = ctx.now;
    let mut g = ctx.node.db.lock_key(key);
    let Some(e) = g.peek(key, now) else {
        return Err(Frame::err("ERR The specified key does not exist"));
    };
    let s = as_hll(e.as_str())?.to_vec();
    let to_dense = |g: &mut crate::store::SlotGuard<'_>| -> Result<Vec<u8>, Frame> {
        let d = hll::sparse_to_dense(&s).map_err(|_| ERR_CORRUPT)?;
        g.replace_value(key, Value::Str(d.clone().into_boxed_slice()), now);
        Ok(d)
    };
    if is(sub, "GETREG") {
        let d = if hll::is_dense(&s) {
            s.clone()
        } else {
            to_dense(&mut g)?
        };
        let regs = &d[hll::HDR..];
        Ok(Frame::Array(
            (0..hll::REGISTERS)
                .map(|i| Frame::Integer(hll::dense_get(regs, i) as i64))
                .collect(),
        ))
    } else if is(sub, "DECODE") {
        hll::decode_sparse(&s)
            .map(Frame::bulk)
            .ok_or(Frame::err("ERR HLL encoding is not sparse"))
    } else if is(sub, "ENCODING") {
        Ok(Frame::simple(if hll::is_dense(&s) {
            "dense"
        } else {
            "sparse"
        }))
    } else if is(sub, "TODENSE") {
        if hll::is_dense(&s) {
            return Ok(Frame::Integer(0));
        }
        to_dense(&mut g)?;
        Ok(Frame::Integer(1))
    } else {
        Err(Frame::error(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(&sub[..sub.len().min(128)])
        )))
    }
}

fn pfselftest(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    hll::self_test(&mut rand::rng(), 100_000)
        .map(|()| Frame::ok())
        .map_err(|why| Frame::error(format!("ERR TESTFAILED {why}")))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::resp::Request;

    fn run_bytes(h: &mut Harness, args: &[&[u8]]) -> Frame {
        let req = Request::from_args(args.iter().copied());
        let mut ctx = Ctx {
            node: &h.node,
            session: &mut h.session,
            now: h.now,
        };
        dispatch(&mut ctx, &req)
    }

    fn unhex(s: &str) -> Vec<u8> {
        if s == "-" {
            return Vec::new();
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn fnv64(b: &[u8]) -> u64 {
        b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Replays `hll_vectors.txt` (derived from redis-server 7.0.15 by
    /// `helper/hll-vectors.py`): every command, then the exact bytes and counts Redis had.
    #[test]
    fn bytes_and_counts_match_redis() {
        let text = include_str!("../hll_vectors.txt");
        let mut h = Harness::new();
        let mut case = "";
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let w: Vec<&str> = line.split(' ').collect();
            match w[0] {
                "case" => {
                    case = w[1];
                    h.run(&["FLUSHALL"]);
                }
                "cmd" => {
                    let args: Vec<Vec<u8>> = w[1..].iter().map(|a| unhex(a)).collect();
                    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    let reply = run_bytes(&mut h, &refs);
                    assert!(!reply.is_error(), "{case}: {line}: {reply:?}");
                }
                "pfadd" => {
                    let prefix = if w[2] == "-" { "" } else { w[2] };
                    let (lo, hi, batch): (usize, usize, usize) = (
                        w[3].parse().unwrap(),
                        w[4].parse().unwrap(),
                        w[5].parse().unwrap(),
                    );
                    let elems: Vec<String> = (lo..hi).map(|i| format!("{prefix}{i}")).collect();
                    for chunk in elems.chunks(batch) {
                        let mut args = vec!["PFADD", w[1]];
                        args.extend(chunk.iter().map(String::as_str));
                        assert!(!h.run(&args).is_error(), "{case}");
                    }
                }
                "bytes" => {
                    let Frame::Bulk(got) = h.run(&["GET", w[1]]) else {
                        panic!("{case}: {} missing", w[1]);
                    };
                    match w[2].strip_prefix("fnv64:") {
                        Some(d) => assert_eq!(format!("{:016x}", fnv64(&got)), d, "{case}: {line}"),
                        None => assert_eq!(got.as_ref(), unhex(w[2]).as_slice(), "{case}: {line}"),
                    }
                    checked += 1;
                }
                "count" => {
                    assert_eq!(
                        h.run(&["PFCOUNT", w[1]]),
                        int(w[2].parse().unwrap()),
                        "{case}"
                    );
                }
                "multicount" => {
                    let r = h.run(&["PFCOUNT", "a{m}", "b{m}", "c{m}"]);
                    assert_eq!(r, int(w[1].parse().unwrap()), "{case}");
                }
                other => panic!("unknown line {other}"),
            }
        }
        assert!(checked >= 20, "{checked}");
    }

    #[test]
    fn errors_and_types() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "bar"]);
        let not_hll = err("WRONGTYPE Key is not a valid HyperLogLog string value.");
        assert_eq!(h.run(&["PFADD", "s", "1"]), not_hll);
        assert_eq!(h.run(&["PFCOUNT", "s"]), not_hll);
        assert_eq!(h.run(&["PFMERGE", "s", "x"]), not_hll);
        assert_eq!(h.run(&["PFMERGE", "x", "s"]), not_hll);
        assert_eq!(h.run(&["EXISTS", "x"]), int(0));
        assert_eq!(h.run(&["PFCOUNT", "missing"]), int(0));
        assert_eq!(h.run(&["PFCOUNT", "missing", "missing2"]), int(0));
        // Corruptions: a tail after the registers, a broken magic, a bad encoding, a dense
        // one of the wrong length.
        h.run(&["PFADD", "h", "a", "b", "c"]);
        h.run(&["APPEND", "h", "hello"]);
        let corrupt = err("INVALIDOBJ Corrupted HLL object detected");
        assert_eq!(h.run(&["PFCOUNT", "h"]), corrupt);
        assert_eq!(h.run(&["PFCOUNT", "h", "missing"]), corrupt);
        h.run(&["DEL", "h"]);
        h.run(&["PFADD", "h", "a", "b", "c"]);
        h.run(&["SETRANGE", "h", "0", "0123"]);
        assert_eq!(h.run(&["PFCOUNT", "h"]), not_hll);
        h.run(&["SETRANGE", "h", "0", "HYLL"]);
        h.run(&["SETRANGE", "h", "4", "x"]);
        assert_eq!(h.run(&["PFCOUNT", "h"]), not_hll);
        h.run(&["SETRANGE", "h", "4", "\0"]);
        assert_eq!(h.run(&["PFCOUNT", "h"]), not_hll);
        assert_eq!(h.run(&["PFADD", "new"]), int(1));
        assert_eq!(h.run(&["PFADD", "new"]), int(0));
        assert_eq!(h.run(&["PFADD", "new", "x"]), int(1));
        assert_eq!(h.run(&["PFADD", "new", "x"]), int(0));
    }

    #[test]
    fn cache_and_ttl_and_debug() {
        let mut h = Harness::new();
        h.run(&["PFADD", "h", "a", "b", "c"]);
        h.run(&["EXPIRE", "h", "100"]);
        assert_eq!(h.run(&["PFCOUNT", "h"]), int(3));
        assert_eq!(h.run(&["GETRANGE", "h", "15", "15"]), Frame::bulk(b"\0"));
        h.run(&["PFADD", "h", "a"]);
        assert_eq!(h.run(&["GETRANGE", "h", "15", "15"]), Frame::bulk(b"\0"));
        h.run(&["PFADD", "h", "1", "2", "3"]);
        assert_eq!(h.run(&["GETRANGE", "h", "15", "15"]), Frame::bulk(b"\x80"));
        assert_eq!(h.run(&["TTL", "h"]), int(100));
        assert_eq!(
            h.run(&["PFDEBUG", "ENCODING", "h"]),
            Frame::simple("sparse")
        );
        assert!(matches!(h.run(&["PFDEBUG", "DECODE", "h"]), Frame::Bulk(_)));
        assert_eq!(h.run(&["PFDEBUG", "TODENSE", "h"]), int(1));
        assert_eq!(h.run(&["PFDEBUG", "TODENSE", "h"]), int(0));
        assert_eq!(h.run(&["PFDEBUG", "ENCODING", "h"]), Frame::simple("dense"));
        assert_eq!(h.run(&["PFCOUNT", "h"]), int(6));
        assert_eq!(h.run(&["STRLEN", "h"]), int(hll::DENSE_SIZE as i64));
        match h.run(&["PFDEBUG", "GETREG", "h"]) {
            Frame::Array(regs) => assert_eq!(regs.len(), hll::REGISTERS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.run(&["PFDEBUG", "DECODE", "h"]),
            err("ERR HLL encoding is not sparse")
        );
        assert_eq!(
            h.run(&["PFDEBUG", "NOPE", "h"]),
            err("ERR Unknown PFDEBUG subcommand 'NOPE'")
        );
        assert_eq!(
            h.run(&["PFDEBUG", "GETREG", "missing"]),
            err("ERR The specified key does not exist")
        );
    }

    #[test]
    fn union_of_gathered_values() {
        let mut h = Harness::new();
        h.run(&["PFADD", "a", "x", "y"]);
        h.run(&["PFADD", "b", "y", "z"]);
        h.run(&["SET", "s", "plain"]);
        let get = |h: &mut Harness, k: &str| h.run(&["GET", k]);
        let (a, b, s) = (get(&mut h, "a"), get(&mut h, "b"), get(&mut h, "s"));
        assert_eq!(count_union(&[a.clone(), Frame::Null, b.clone()]), int(3));
        assert_eq!(
            count_union(&[a.clone(), b.clone()]),
            h.run(&["PFCOUNT", "a", "b"])
        );
        assert_eq!(count_union(&[Frame::Null]), int(0));
        assert_eq!(count_union(&[a, s]), ERR_NOT_HLL);
    }

    #[test]
    fn sparse_limit_is_configurable() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "GET", "hll-sparse-max-bytes"]),
            Frame::Map(vec![(bulk("hll-sparse-max-bytes"), bulk("3000"))])
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "hll-sparse-max-bytes", "30"]),
            Frame::ok()
        );
        for i in 0..20 {
            h.run(&["PFADD", "h", &format!("e{i}")]);
        }
        assert_eq!(h.run(&["PFDEBUG", "ENCODING", "h"]), Frame::simple("dense"));
    }
}
