//! DUMP, RESTORE and MIGRATE: moving values between CHKV and Redis in Redis's serialized
//! format ([`crate::rdb`]).
//!
//! MIGRATE works on this node's keys (in a cluster, the keys this node owns; others count as
//! missing) and talks to the target like Redis 7.0 does: `AUTH` when asked, `SELECT` for a
//! database other than 0, then one `RESTORE key ttl payload [REPLACE]` per key, pipelined.
//! The round trips run off the handler ([`super::Deferred`]), so a slow target holds only
//! the client that asked. Keys the target accepted are deleted here unless COPY was given.

use super::flags::*;
use super::*;
use crate::pubsub::events;
use crate::rdb::{self, RdbError};
use crate::resp::reply::parse_reply;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const G: &str = "generic";

pub static COMMANDS: &[CommandSpec] = &[
    spec("dump", 2, READONLY, (1, 1, 1), G, "2.6.0",
        "Returns a serialized representation of the value stored at a key.", "key", dump),
    spec("restore", -4, WRITE | DENYOOM, (1, 1, 1), G, "2.6.0",
        "Creates a key from the serialized representation of a value.",
        "key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]",
        restore),
    spec("restore-asking", -4, WRITE | DENYOOM, (1, 1, 1), "server", "3.0.0",
        "An internal command for migrating keys in a cluster.",
        "key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]",
        restore),
    spec("migrate", -6, WRITE, NO_KEYS, G, "2.6.0",
        "Atomically transfers a key from one Redis instance to another.",
        "host port <key | \"\"> destination-db timeout [COPY] [REPLACE] [AUTH password] [AUTH2 username password] [KEYS key [key ...]]",
        migrate),
];

fn dump(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    Ok(match g.get(key, ctx.now) {
        Some(e) => Frame::Bulk(rdb::dump(&e.value()).into()),
        None => Frame::Null,
    })
}

/// RESTORE's options after the payload.
#[derive(Debug, Default, PartialEq, Eq)]
struct RestoreOpts {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

fn restore_opts(req: &Request) -> Result<RestoreOpts, Frame> {
    let mut o = RestoreOpts::default();
    let mut i = 4;
    while i < req.len() {
        let a = req.arg(i);
        let more = i + 1 < req.len();
        if is(a, "REPLACE") {
            o.replace = true;
        } else if is(a, "ABSTTL") {
            o.absttl = true;
        } else if is(a, "IDLETIME") && more && o.freq.is_none() {
            let n = int_arg(req.arg(i + 1))?;
            o.idle = Some(
                u64::try_from(n)
                    .map_err(|_| Frame::err("ERR Invalid IDLETIME value, must be >= 0"))?,
            );
            i += 1;
        } else if is(a, "FREQ") && more && o.idle.is_none() {
            let n = int_arg(req.arg(i + 1))?;
            o.freq = Some(
                u8::try_from(n)
                    .map_err(|_| Frame::err("ERR Invalid FREQ value, must be >= 0 and <= 255"))?,
            );
            i += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    Ok(o)
}

/// RESTORE (and RESTORE-ASKING), with Redis's checks in Redis's order: options, BUSYKEY,
/// TTL, payload checksum, payload contents.
fn restore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let o = restore_opts(req)?;
    let key = req.arg(1);
    let mut g = ctx.node.db.lock_key(key);
    if !o.replace && g.contains(key, ctx.now) {
        return Err(Frame::err("BUSYKEY Target key name already exists."));
    }
    let ttl = int_arg(req.arg(2))?;
    if ttl < 0 {
        return Err(Frame::err("ERR Invalid TTL value, must be >= 0"));
    }
    let value = rdb::decode(req.arg(3))
        .and_then(|d| rdb::into_value(d, &ctx.node.db.limits()))
        .map_err(|e: RdbError| Frame::error(e.to_string()))?;
    let at = match (ttl, o.absttl) {
        (0, _) => NO_EXPIRY,
        (t, true) => t as u64,
        (t, false) => ctx.now.checked_add(t as u64).ok_or(ERR_NOT_INT)?,
    };
    let deleted = o.replace && g.remove(key, ctx.now).is_some();
    if already_expired(at, ctx.now) {
        // Like Redis: a value restored already expired is not created (and REPLACE has
        // removed the old one).
        drop(g);
        if deleted {
            super::pubsub::notify(ctx, events::GENERIC, "del", key);
        }
        return Ok(Frame::ok());
    }
    g.set(key, value, at, ctx.now);
    if let Some(access) = ctx.node.db.restored_access(o.idle, o.freq, ctx.now) {
        g.set_access(key, access, ctx.now);
    }
    drop(g);
    super::pubsub::notify(ctx, events::NEW, "new", key);
    super::pubsub::notify(ctx, events::GENERIC, "restore", key);
    Ok(Frame::ok())
}

/// MIGRATE's arguments.
#[derive(Debug, PartialEq, Eq)]
struct MigrateArgs {
    host: String,
    port: u16,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// `AUTH password` or `AUTH2 username password`.
    auth: Option<(Option<Vec<u8>>, Vec<u8>)>,
    keys: Vec<Vec<u8>>,
}

fn migrate_args(req: &Request) -> Result<MigrateArgs, Frame> {
    let (mut copy, mut replace, mut auth) = (false, false, None);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut i = 6;
    while i < req.len() {
        let a = req.arg(i);
        let more = req.len() - i - 1;
        if is(a, "COPY") {
            copy = true;
        } else if is(a, "REPLACE") {
            replace = true;
        } else if is(a, "AUTH") {
            if more < 1 {
                return Err(ERR_SYNTAX);
            }
            auth = Some((None, req.arg(i + 1).to_vec()));
            i += 1;
        } else if is(a, "AUTH2") {
            if more < 2 {
                return Err(ERR_SYNTAX);
            }
            auth = Some((Some(req.arg(i + 1).to_vec()), req.arg(i + 2).to_vec()));
            i += 2;
        } else if is(a, "KEYS") {
            if !req.arg(3).is_empty() {
                return Err(Frame::err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            keys = req.iter().skip(i + 1).map(<[u8]>::to_vec).collect();
            break;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    if keys.is_empty() && !req.arg(3).is_empty() {
        keys.push(req.arg(3).to_vec());
    }
    let timeout = int_arg(req.arg(5))?;
    let db = int_arg(req.arg(4))?;
    if i32::try_from(db).is_err() {
        return Err(ERR_NOT_INT);
    }
    let port = std::str::from_utf8(req.arg(2))
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(ERR_NOT_INT)?;
    Ok(MigrateArgs {
        host: String::from_utf8_lossy(req.arg(1)).into_owned(),
        port,
        db,
        // Like Redis: a timeout of 0 or less means one second.
        timeout: Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 }),
        copy,
        replace,
        auth,
        keys,
    })
}

/// One key to send: its name, DUMP payload and remaining TTL in ms (0 for none).
struct Outgoing {
    key: Vec<u8>,
    payload: Vec<u8>,
    ttl: u64,
}

/// The requests MIGRATE sends, pipelined: AUTH and SELECT when needed, then the RESTOREs.
/// Returns the bytes and how many replies precede the RESTOREs'.
fn migrate_requests(a: &MigrateArgs, items: &[Outgoing]) -> (BytesMut, usize) {
    let mut out = BytesMut::new();
    let mut preamble = 0;
    if let Some((user, pass)) = &a.auth {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = user {
            args.push(u);
        }
        args.push(pass);
        Request::from_args(args).encode_into(&mut out);
        preamble += 1;
    }
    if a.db != 0 {
        Request::from_args([b"SELECT".as_slice(), a.db.to_string().as_bytes()])
            .encode_into(&mut out);
        preamble += 1;
    }
    for it in items {
        let ttl = it.ttl.to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", &it.key, ttl.as_bytes(), &it.payload];
        if a.replace {
            args.push(b"REPLACE");
        }
        Request::from_args(args).encode_into(&mut out);
    }
    (out, preamble)
}

/// Longest reply MIGRATE accepts from its target (RESTORE answers with a short status).
const MAX_TARGET_REPLY: usize = 64 * 1024;

fn migrate(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let a = migrate_args(req)?;
    let mut items = Vec::new();
    for key in &a.keys {
        let mut g = ctx.node.db.lock_key(key);
        let Some(e) = g.peek(key, ctx.now) else {
            continue;
        };
        let ttl = match e.expire_at() {
            // Like Redis: a key that expires this very millisecond is skipped.
            Some(at) if at <= ctx.now => continue,
            Some(at) => at - ctx.now,
            None => 0,
        };
        items.push(Outgoing {
            key: key.clone(),
            payload: rdb::dump(&e.value()),
            ttl,
        });
    }
    if items.is_empty() {
        return Ok(Frame::simple("NOKEY"));
    }
    ctx.session.deferred = Some(Box::new(move |node| {
        Box::pin(async move { migrate_send(&node, a, items).await })
    }));
    Ok(Frame::Null)
}

/// Sends the RESTOREs and applies the replies: keys the target took are deleted here
/// (unless COPY); the first error the target gave is the reply.
async fn migrate_send(node: &Node, a: MigrateArgs, items: Vec<Outgoing>) -> Frame {
    let (bytes, preamble) = migrate_requests(&a, &items);
    let addr = (a.host.as_str(), a.port);
    let connect = tokio::time::timeout(a.timeout, tokio::net::TcpStream::connect(addr)).await;
    let Ok(Ok(mut sock)) = connect else {
        return Frame::err("IOERR error or timeout connecting to the client");
    };
    match tokio::time::timeout(a.timeout, sock.write_all(&bytes)).await {
        Ok(Ok(())) => {}
        _ => return Frame::err("IOERR error or timeout writing to target instance"),
    }
    let mut buf = BytesMut::with_capacity(1024);
    let mut first_error: Option<Frame> = None;
    for n in 0..preamble + items.len() {
        let reply = loop {
            match parse_reply(&buf) {
                Ok(Some((f, used))) => {
                    let _ = buf.split_to(used);
                    break f;
                }
                Ok(None) if buf.len() < MAX_TARGET_REPLY => {}
                _ => return Frame::err("IOERR error or timeout reading to target instance"),
            }
            match tokio::time::timeout(a.timeout, sock.read_buf(&mut buf)).await {
                Ok(Ok(read)) if read > 0 => {}
                _ => return Frame::err("IOERR error or timeout reading to target instance"),
            }
        };
        if let Frame::Error(e) = &reply {
            if first_error.is_none() {
                first_error = Some(Frame::error(format!(
                    "ERR Target instance replied with error: {e}"
                )));
            }
            if n < preamble {
                // AUTH or SELECT failed: the RESTOREs that follow were refused too.
                break;
            }
        } else if n >= preamble && !a.copy {
            let key = &items[n - preamble].key;
            node.db.lock_key(key).remove(key, crate::store::now_ms());
        }
    }
    first_error.unwrap_or(Frame::ok())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn dumped(h: &mut Harness, key: &str) -> Vec<u8> {
        match h.run(&["DUMP", key]) {
            Frame::Bulk(b) => b.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    fn run_bytes(h: &mut Harness, args: &[&[u8]]) -> Frame {
        let req = Request::from_args(args.iter().copied());
        let mut ctx = Ctx {
            node: &h.node,
            session: &mut h.session,
            now: h.now,
        };
        dispatch(&mut ctx, &req)
    }

    #[test]
    fn dump_restore_round_trip_with_ttl_options() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["DUMP", "nope"]), Frame::Null);
        h.run(&["SET", "k", "hello"]);
        let p = dumped(&mut h, "k");
        assert_eq!(
            run_bytes(&mut h, &[b"RESTORE", b"k", b"0", &p]),
            err("BUSYKEY Target key name already exists.")
        );
        assert_eq!(
            run_bytes(&mut h, &[b"RESTORE", b"k2", b"5000", &p]),
            Frame::ok()
        );
        assert_eq!(h.run(&["GET", "k2"]), bulk("hello"));
        assert_eq!(h.run(&["PTTL", "k2"]), int(5000));
        let at = (NOW + 7000).to_string();
        assert_eq!(
            run_bytes(
                &mut h,
                &[b"RESTORE", b"k2", at.as_bytes(), &p, b"REPLACE", b"ABSTTL"]
            ),
            Frame::ok()
        );
        assert_eq!(h.run(&["PTTL", "k2"]), int(7000));
        // Already expired: nothing is created, and REPLACE removed the old value.
        assert_eq!(
            run_bytes(
                &mut h,
                &[b"RESTORE", b"k2", b"1", &p, b"REPLACE", b"ABSTTL"]
            ),
            Frame::ok()
        );
        assert_eq!(h.run(&["EXISTS", "k2"]), int(0));
        h.run(&["SET", "n", "12345"]);
        let p = dumped(&mut h, "n");
        assert_eq!(
            run_bytes(&mut h, &[b"RESTORE", b"n2", b"0", &p, b"IDLETIME", b"100"]),
            Frame::ok()
        );
        assert_eq!(h.run(&["GET", "n2"]), bulk("12345"));
        assert_eq!(h.run(&["TTL", "n2"]), int(-1));
    }

    #[test]
    fn restore_errors_are_redis_errors() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        let p = dumped(&mut h, "k");
        let mut bad = p.clone();
        bad[2] ^= 0xff;
        let cases: Vec<(Vec<&[u8]>, &str)> = vec![
            (
                vec![b"RESTORE", b"x", b"0", &bad],
                "ERR DUMP payload version or checksum are wrong",
            ),
            (
                vec![b"RESTORE", b"x", b"0", b"junk"],
                "ERR DUMP payload version or checksum are wrong",
            ),
            (
                vec![b"RESTORE", b"x", b"-1", &p],
                "ERR Invalid TTL value, must be >= 0",
            ),
            (
                vec![b"RESTORE", b"x", b"a", &p],
                "ERR value is not an integer or out of range",
            ),
            (
                vec![b"RESTORE", b"x", b"0", &p, b"BOGUS"],
                "ERR syntax error",
            ),
            (
                vec![b"RESTORE", b"x", b"0", &p, b"IDLETIME", b"-1"],
                "ERR Invalid IDLETIME value, must be >= 0",
            ),
            (
                vec![b"RESTORE", b"x", b"0", &p, b"FREQ", b"256"],
                "ERR Invalid FREQ value, must be >= 0 and <= 255",
            ),
            (
                vec![b"RESTORE", b"x", b"0", &p, b"FREQ", b"1", b"IDLETIME", b"1"],
                "ERR syntax error",
            ),
            (
                vec![b"RESTORE", b"x", b"0", &p, b"IDLETIME"],
                "ERR syntax error",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(run_bytes(&mut h, &args), err(want), "{args:?}");
        }
        assert_eq!(h.run(&["EXISTS", "x"]), int(0));
    }

    #[test]
    fn restore_freq_sets_the_lfu_counter() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
        h.run(&["SET", "k", "v"]);
        let p = dumped(&mut h, "k");
        assert_eq!(
            run_bytes(&mut h, &[b"RESTORE", b"f", b"0", &p, b"FREQ", b"100"]),
            Frame::ok()
        );
        assert_eq!(h.run(&["OBJECT", "FREQ", "f"]), int(100));
    }

    #[test]
    fn migrate_arguments() {
        let parse = |args: &[&str]| migrate_args(&Request::from_args(args.iter().copied()));
        let a = parse(&["MIGRATE", "h", "6379", "k", "0", "0"]).expect("args");
        assert_eq!(a.keys, vec![b"k".to_vec()]);
        assert_eq!(a.timeout, Duration::from_millis(1000));
        let a = parse(&[
            "MIGRATE", "h", "1", "", "3", "50", "COPY", "REPLACE", "AUTH2", "u", "p", "KEYS", "a",
            "b",
        ])
        .expect("args");
        assert!(a.copy && a.replace);
        assert_eq!(a.db, 3);
        assert_eq!(a.auth, Some((Some(b"u".to_vec()), b"p".to_vec())));
        assert_eq!(a.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            parse(&["MIGRATE", "h", "1", "k", "0", "0", "KEYS", "a"]),
            Err(Frame::err(
                "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
            ))
        );
        assert_eq!(
            parse(&["MIGRATE", "h", "1", "k", "0", "0", "AUTH"]),
            Err(ERR_SYNTAX)
        );
        assert_eq!(
            parse(&["MIGRATE", "h", "1", "k", "0", "0", "NOPE"]),
            Err(ERR_SYNTAX)
        );
        assert_eq!(
            parse(&["MIGRATE", "h", "1", "k", "0", "x"]),
            Err(ERR_NOT_INT)
        );
        assert_eq!(
            parse(&["MIGRATE", "h", "99999", "k", "0", "0"]),
            Err(ERR_NOT_INT)
        );
    }

    #[test]
    fn migrate_pipeline_and_missing_keys() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["MIGRATE", "127.0.0.1", "1", "nope", "0", "10"]),
            Frame::simple("NOKEY")
        );
        assert!(h.session.deferred.is_none());
        let a = migrate_args(&Request::from_args([
            "MIGRATE", "h", "1", "", "2", "10", "REPLACE", "AUTH", "pw", "KEYS", "k",
        ]))
        .expect("args");
        let items = [Outgoing {
            key: b"k".to_vec(),
            payload: b"P".to_vec(),
            ttl: 42,
        }];
        let (bytes, preamble) = migrate_requests(&a, &items);
        assert_eq!(preamble, 2);
        assert_eq!(
            &bytes[..],
            &b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n\
               *5\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$2\r\n42\r\n$1\r\nP\r\n$7\r\nREPLACE\r\n"[..]
        );
        h.run(&["SET", "k", "v"]);
        assert_eq!(
            h.run(&["MIGRATE", "127.0.0.1", "1", "k", "0", "10"]),
            Frame::Null
        );
        assert!(h.session.deferred.is_some());
    }
}
