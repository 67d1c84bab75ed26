//! Connection and server commands.

use super::flags::*;
use super::*;
use crate::config::bytes_to_human;
use crate::resp::Protocol;
use crate::store::evict::Policy;
use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// The Redis version CHKV reports: the command set and semantics it follows. 7.0.15 is the
/// reference server CHKV is tested against, whose commands (of the types CHKV serves) and
/// DUMP format (RDB 10) it implements; a client that saw 7.2 would use 7.2-only commands.
pub const REDIS_VERSION: &str = "7.0.15";

/// `cluster` when the node is part of a cluster (has a NameNode), else `standalone`: what
/// INFO's `redis_mode` and HELLO's `mode` say, and tools such as `redis-cli --cluster` read.
fn redis_mode(node: &crate::node::Node) -> &'static str {
    if in_cluster(node) {
        "cluster"
    } else {
        "standalone"
    }
}

/// Whether the node has a NameNode (even before its first table arrives) or a table.
fn in_cluster(node: &crate::node::Node) -> bool {
    node.config().namenode.is_some() || !node.routing().standalone
}

const C: &str = "connection";
const S: &str = "server";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "ping",
        -1,
        FAST | STALE,
        NO_KEYS,
        C,
        "1.0.0",
        "Returns the server's liveliness response.",
        "[message]",
        ping,
    ),
    spec(
        "echo",
        2,
        FAST | STALE,
        NO_KEYS,
        C,
        "1.0.0",
        "Returns the given string.",
        "message",
        echo,
    ),
    spec(
        "hello",
        -1,
        NO_AUTH | FAST | STALE | LOADING,
        NO_KEYS,
        C,
        "6.0.0",
        "Handshakes with the Redis server.",
        "[protover [AUTH username password] [SETNAME clientname]]",
        hello,
    ),
    spec(
        "auth",
        -2,
        NO_AUTH | FAST | STALE | LOADING,
        NO_KEYS,
        C,
        "1.0.0",
        "Authenticates the connection.",
        "[username] password",
        auth,
    ),
    spec(
        "quit",
        -1,
        NO_AUTH | FAST | STALE | LOADING,
        NO_KEYS,
        C,
        "1.0.0",
        "Closes the connection.",
        "",
        quit,
    ),
    spec(
        "select",
        2,
        FAST | STALE | LOADING,
        NO_KEYS,
        C,
        "1.0.0",
        "Changes the selected database.",
        "index",
        select,
    ),
    CommandSpec {
        subcommands: CLIENT_SUBCOMMANDS,
        ..spec(
            "client",
            -2,
            0,
            NO_KEYS,
            C,
            "2.4.0",
            "A container for client connection commands.",
            "",
            container,
        )
    },
    spec(
        "info",
        -1,
        STALE | LOADING,
        NO_KEYS,
        S,
        "1.0.0",
        "Returns information and statistics about the server.",
        "[section [section ...]]",
        info,
    ),
    spec(
        "dbsize",
        1,
        READONLY | FAST | KEYSPACE,
        NO_KEYS,
        S,
        "1.0.0",
        "Returns the number of keys in the database.",
        "",
        dbsize,
    ),
    spec(
        "flushdb",
        -1,
        WRITE | KEYSPACE,
        NO_KEYS,
        S,
        "1.0.0",
        "Removes all keys from the current database.",
        "[ASYNC | SYNC]",
        flush,
    ),
    spec(
        "flushall",
        -1,
        WRITE | KEYSPACE,
        NO_KEYS,
        S,
        "1.0.0",
        "Removes all keys from all databases.",
        "[ASYNC | SYNC]",
        flush,
    ),
    spec(
        "time",
        1,
        FAST | STALE | LOADING,
        NO_KEYS,
        S,
        "2.6.0",
        "Returns the server time.",
        "",
        time,
    ),
    CommandSpec {
        subcommands: CONFIG_SUBCOMMANDS,
        ..spec(
            "config",
            -2,
            0,
            NO_KEYS,
            S,
            "2.0.0",
            "A container for server configuration commands.",
            "",
            container,
        )
    },
];

static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "reply",
        3,
        STALE | LOADING,
        NO_KEYS,
        C,
        "3.2.0",
        "Instructs the server whether to reply to commands.",
        "ON | OFF | SKIP",
        client_reply,
    ),
    spec(
        "id",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "5.0.0",
        "Returns the unique client ID of the connection.",
        "",
        client_id,
    ),
    spec(
        "setname",
        3,
        STALE | LOADING,
        NO_KEYS,
        C,
        "2.6.9",
        "Sets the connection name.",
        "connection-name",
        client_setname,
    ),
    spec(
        "getname",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "2.6.9",
        "Returns the name of the connection.",
        "",
        client_getname,
    ),
    spec(
        "list",
        -2,
        ADMIN | STALE | LOADING,
        NO_KEYS,
        C,
        "2.4.0",
        "Lists open connections.",
        "[TYPE NORMAL | MASTER | REPLICA | PUBSUB] [ID client-id [client-id ...]]",
        client_list,
    ),
    spec(
        "info",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "6.2.0",
        "Returns information about the connection.",
        "",
        client_info,
    ),
    spec(
        "setinfo",
        4,
        STALE | LOADING,
        NO_KEYS,
        C,
        "7.2.0",
        "Sets information specific to the client or connection.",
        "LIB-NAME libname | LIB-VER libver",
        client_setinfo,
    ),
    spec(
        "unblock",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        C,
        "5.0.0",
        "Unblocks a client blocked by a blocking command from a different connection.",
        "client-id [TIMEOUT | ERROR]",
        client_unblock,
    ),
    spec(
        "tracking",
        -3,
        STALE | LOADING,
        NO_KEYS,
        C,
        "6.0.0",
        "Controls server-assisted client-side caching for the connection.",
        "<ON | OFF> [REDIRECT client-id] [PREFIX prefix [PREFIX prefix ...]] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]",
        client_tracking,
    ),
    spec(
        "caching",
        3,
        STALE | LOADING,
        NO_KEYS,
        C,
        "6.0.0",
        "Instructs the server whether to track the keys in the next request.",
        "YES | NO",
        client_caching,
    ),
    spec(
        "getredir",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "6.0.0",
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        "",
        client_getredir,
    ),
    spec(
        "trackinginfo",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "6.2.0",
        "Returns information about server-assisted client-side caching for the connection.",
        "",
        client_trackinginfo,
    ),
    spec(
        "help",
        2,
        STALE | LOADING,
        NO_KEYS,
        C,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "",
        client_help,
    ),
];

/// CLIENT TRACKING ON|OFF [options]: see [`crate::tracking`].
fn client_tracking(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let args: Vec<&[u8]> = req.iter().skip(3).collect();
    let o = crate::tracking::parse_options(&args)?;
    if o.redirect != 0 && !ctx.node.clients.lock().contains_key(&o.redirect) {
        return Err(Frame::err(
            "ERR The client ID you want redirect to does not exist",
        ));
    }
    let tracking = &ctx.node.tracking;
    if is(req.arg(2), "ON") {
        let current = ctx.session.tracking.clone();
        crate::tracking::check_enable(current.as_deref(), &o)?;
        let sub = ctx.session.subscriber();
        let t = tracking.enable(&ctx.session.client, sub, current.as_deref(), o);
        ctx.session.tracking = Some(t);
    } else if is(req.arg(2), "OFF") {
        tracking.disable(&ctx.session.client);
        ctx.session.tracking = None;
        ctx.session.track_caching = false;
    } else {
        return Err(ERR_SYNTAX);
    }
    Ok(Frame::ok())
}

/// CLIENT CACHING YES|NO: whether the next command's reads are tracked (OPTIN, OPTOUT).
fn client_caching(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let Some(t) = &ctx.session.tracking else {
        return Err(Frame::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    };
    if is(req.arg(2), "YES") {
        if !t.optin {
            return Err(Frame::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if is(req.arg(2), "NO") {
        if !t.optout {
            return Err(Frame::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(ERR_SYNTAX);
    }
    ctx.session.track_caching = true;
    Ok(Frame::ok())
}

/// CLIENT GETREDIR: the redirect target, 0 without one, -1 when tracking is off.
fn client_getredir(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Integer(
        ctx.session
            .tracking
            .as_ref()
            .map_or(-1, |t| i64::try_from(t.redirect).unwrap_or(-1)),
    ))
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis reports them.
fn client_trackinginfo(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let t = ctx.session.tracking.as_ref();
    let flags = match t {
        Some(t) => t.flags(ctx.session.track_caching),
        None => vec!["off"],
    };
    let redirect = t.map_or(-1, |t| i64::try_from(t.redirect).unwrap_or(-1));
    let prefixes = t.map_or(vec![], |t| {
        t.prefixes.iter().map(|p| Frame::Bulk(p.clone())).collect()
    });
    Ok(Frame::Map(vec![
        (
            Frame::bulk_static("flags"),
            Frame::Set(flags.into_iter().map(Frame::bulk_static).collect()),
        ),
        (Frame::bulk_static("redirect"), Frame::Integer(redirect)),
        (Frame::bulk_static("prefixes"), Frame::Array(prefixes)),
    ]))
}

/// CLIENT UNBLOCK: ends another client's blocking command as if it timed out (or with
/// `-UNBLOCKED` for ERROR). A client whose command waits on another node (forwarded) is
/// unblocked there. 1 when the client was blocked.
fn client_unblock(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let id = int_arg(req.arg(2))?;
    let error = match req.len() {
        3 => false,
        4 if is(req.arg(3), "TIMEOUT") => false,
        4 if is(req.arg(3), "ERROR") => true,
        _ => {
            return Err(Frame::err(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let Ok(id) = u64::try_from(id) else {
        return Ok(Frame::Integer(0));
    };
    if ctx.node.blocking.unblock(id, error) {
        return Ok(Frame::Integer(1));
    }
    if let Some(r) = ctx.node.blocking.remote_of(id) {
        // Its reply comes back on the blocked command's own connection.
        let peer_id = r.peer_client_id.to_string();
        let how = if error { "ERROR" } else { "TIMEOUT" };
        let unblock = Request::from_args(["CLIENT", "UNBLOCK", &peer_id, how]);
        drop(
            ctx.node
                .peers
                .send_request(r.addr, crate::resp::Protocol::Resp2, &unblock),
        );
        return Ok(Frame::Integer(1));
    }
    Ok(Frame::Integer(0))
}

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Returns the effective values of configuration parameters.",
        "parameter [parameter ...]",
        config_get,
    ),
    spec(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Sets configuration parameters in-flight.",
        "parameter value [parameter value ...]",
        config_set,
    ),
    spec(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Resets the server's statistics.",
        "",
        config_resetstat,
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        S,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "",
        config_help,
    ),
];

/// Container commands are dispatched to their subcommands before a handler runs.
pub(crate) fn container(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Err(Frame::err("ERR missing subcommand"))
}

fn ping(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if req.len() <= 2 && ctx.session.subscribed_resp2() {
        // Redis: a subscribed RESP2 connection gets a pushed-message shape.
        let msg = if req.len() == 2 {
            req.arg_bytes(1)
        } else {
            Bytes::new()
        };
        return Ok(Frame::Array(vec![
            Frame::bulk_static("pong"),
            Frame::Bulk(msg),
        ]));
    }
    match req.len() {
        1 => Ok(Frame::simple("PONG")),
        2 => Ok(Frame::Bulk(req.arg_bytes(1))),
        _ => Err(wrong_arity("ping")),
    }
}

fn echo(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    Ok(Frame::Bulk(req.arg_bytes(1)))
}

const ERR_WRONGPASS: Frame =
    Frame::err("WRONGPASS invalid username-password pair or user is disabled.");

/// Authenticates the connection as `user` when `pass` opens it, or logs the failure in ACL
/// LOG (reason `auth`) and answers WRONGPASS.
fn authenticate(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), Frame> {
    if ctx.node.acl.get(user).is_some_and(|u| u.password_ok(pass)) {
        ctx.session.authenticated = true;
        ctx.session.user = Bytes::copy_from_slice(user);
        // Take the user's rules before the next command.
        ctx.session.acl_generation = u64::MAX;
        *ctx.session.client.user.lock() = Bytes::copy_from_slice(user);
        return Ok(());
    }
    ctx.node.acl.log(crate::acl::LogEntry {
        count: 1,
        reason: "auth",
        context: "toplevel",
        object: "AUTH".into(),
        username: String::from_utf8_lossy(&user[..user.len().min(128)]).into_owned(),
        created: ctx.now,
        updated: ctx.now,
        client_info: ctx.session.client.describe(),
    });
    Err(ERR_WRONGPASS)
}

fn auth(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (user, pass) = match req.len() {
        2 => {
            if ctx.node.default_user_open() {
                return Err(Frame::err(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            (&b"default"[..], req.arg(1))
        }
        3 => (req.arg(1), req.arg(2)),
        _ => return Err(ERR_SYNTAX),
    };
    authenticate(ctx, user, pass)?;
    Ok(Frame::ok())
}

/// Whether a client name is acceptable (Redis: printable ASCII without spaces).
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn hello(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut proto = ctx.session.proto;
    let mut i = 1;
    if req.len() > 1 {
        let v = parse_i64(req.arg(1)).ok_or(Frame::err(
            "ERR Protocol version is not an integer or out of range",
        ))?;
        proto = match v {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(Frame::err("NOPROTO unsupported protocol version")),
        };
        i = 2;
    }
    let mut name: Option<Bytes> = None;
    let mut authed = ctx.session.authenticated;
    while i < req.len() {
        let a = req.arg(i);
        if is(a, "AUTH") && i + 2 < req.len() {
            authenticate(ctx, req.arg(i + 1), req.arg(i + 2))?;
            authed = true;
            i += 3;
        } else if is(a, "SETNAME") && i + 1 < req.len() {
            let n = req.arg(i + 1);
            if !valid_name(n) {
                return Err(Frame::err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            name = Some(req.arg_bytes(i + 1));
            i += 2;
        } else {
            return Err(Frame::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if !authed {
        return Err(Frame::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
    }
    ctx.session.authenticated = true;
    ctx.session.proto = proto;
    ctx.session
        .client
        .resp
        .store(proto.version() as u32, Relaxed);
    if let Some(sub) = &ctx.session.pubsub {
        sub.set_proto(proto);
    } else if proto == Protocol::Resp3 {
        // A RESP3 connection can be sent pushes (tracking invalidations redirected to it)
        // at any time: it gets its outbox now.
        ctx.session.subscriber();
    }
    if let Some(n) = name {
        *ctx.session.client.name.lock() = Some(n);
    }
    let kv = |k: &'static str, v: Frame| (Frame::bulk_static(k), v);
    Ok(Frame::Map(vec![
        kv("server", Frame::bulk_static("redis")),
        kv("version", Frame::bulk_static(REDIS_VERSION)),
        kv("proto", Frame::Integer(proto.version())),
        kv("id", Frame::Integer(ctx.session.client.id as i64)),
        kv("mode", Frame::bulk_static(redis_mode(ctx.node))),
        kv("role", Frame::bulk_static("master")),
        kv("modules", Frame::Array(vec![])),
    ]))
}

fn quit(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.session.quit = true;
    Ok(Frame::ok())
}

fn select(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    match int_arg(req.arg(1))? {
        0 => Ok(Frame::ok()),
        _ => Err(Frame::err("ERR DB index is out of range")),
    }
}

/// CLIENT REPLY ON | OFF | SKIP: OFF and SKIP have no reply of their own.
fn client_reply(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mode = req.arg(2);
    let mode = if is(mode, "ON") {
        ReplyMode::On
    } else if is(mode, "OFF") {
        ReplyMode::Off
    } else if is(mode, "SKIP") {
        ReplyMode::Skip
    } else {
        return Err(ERR_SYNTAX);
    };
    ctx.session.reply_mode = mode;
    ctx.session.no_reply = mode != ReplyMode::On;
    Ok(Frame::ok())
}

fn client_id(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Integer(ctx.session.client.id as i64))
}

fn client_setname(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = req.arg(2);
    if !valid_name(n) {
        return Err(Frame::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    *ctx.session.client.name.lock() = (!n.is_empty()).then(|| req.arg_bytes(2));
    Ok(Frame::ok())
}

fn client_getname(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(ctx
        .session
        .client
        .name
        .lock()
        .clone()
        .map_or(Frame::Null, Frame::Bulk))
}

fn client_list(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    // Some(true): only subscribed clients (TYPE pubsub); Some(false): only the others.
    let mut pubsub_only: Option<bool> = None;
    let mut i = 2;
    while i < req.len() {
        let a = req.arg(i);
        if is(a, "TYPE") && i + 1 < req.len() {
            let t = req.arg(i + 1);
            if is(t, "normal") {
                pubsub_only = Some(false);
            } else if is(t, "pubsub") {
                pubsub_only = Some(true);
            } else if is(t, "master") || is(t, "replica") || is(t, "slave") {
                ids = Some(vec![]);
            } else {
                return Err(Frame::error(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(t)
                )));
            }
            i += 2;
        } else if is(a, "ID") && i + 1 < req.len() {
            let mut v = Vec::new();
            for a in req.iter().skip(i + 1) {
                // Any integer is accepted; ids that are not positive simply match nobody.
                match parse_i64(a) {
                    Some(n) => v.extend(u64::try_from(n).ok()),
                    None => return Err(Frame::err("ERR Invalid client ID")),
                }
            }
            ids = Some(v);
            i = req.len();
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    let clients: Vec<_> = ctx.node.clients.lock().values().cloned().collect();
    let mut out = String::new();
    for c in clients {
        let subscribed = c.subscriber.get().is_some_and(|s| s.active());
        if ids.as_ref().is_none_or(|v| v.contains(&c.id))
            && pubsub_only.is_none_or(|p| p == subscribed)
        {
            out.push_str(&c.describe());
            out.push('\n');
        }
    }
    Ok(Frame::Verbatim(Bytes::from(out)))
}

fn client_info(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let mut s = ctx.session.client.describe();
    s.push('\n');
    Ok(Frame::Verbatim(Bytes::from(s)))
}

fn client_setinfo(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (opt, val) = (req.arg(2), req.arg(3));
    let slot = if is(opt, "LIB-NAME") {
        &ctx.session.client.lib_name
    } else if is(opt, "LIB-VER") {
        &ctx.session.client.lib_ver
    } else {
        return Err(Frame::error(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(opt)
        )));
    };
    if !valid_name(val) {
        return Err(Frame::error(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(opt).to_ascii_lowercase()
        )));
    }
    *slot.lock() = (!val.is_empty()).then(|| req.arg_bytes(3));
    Ok(Frame::ok())
}

fn help_lines(lines: &[&'static str]) -> Reply {
    Ok(Frame::Array(
        lines.iter().map(|l| Frame::simple(l)).collect(),
    ))
}

fn client_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    help_lines(&[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "REPLY (ON|OFF|SKIP)",
        "    Control the replies sent to the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
        "    * ID <client-id> [<client-id> ...]",
        "      Return clients of specified IDs only.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are:",
        "    * LIB-NAME: the client lib name.",
        "    * LIB-VER: the client lib version.",
        "HELP",
        "    Print this help.",
    ])
}

fn dbsize(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Integer(ctx.node.db.len() as i64))
}

fn flush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    match req.len() {
        1 => {}
        2 if is(req.arg(1), "ASYNC") || is(req.arg(1), "SYNC") => {}
        _ => return Err(ERR_SYNTAX),
    }
    ctx.node.tracking.flush_starting();
    ctx.node.db.flush();
    ctx.node.tracking.flush_done();
    Ok(Frame::ok())
}

fn time(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Frame::Array(vec![
        Frame::bulk(d.as_secs().to_string()),
        Frame::bulk(d.subsec_micros().to_string()),
    ]))
}

// ---- INFO ----

/// Resident set size of this process in bytes (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The process's RSS when the node started (the first call records it; `server::start` makes
/// that call): the memory of an empty node, which Redis counts in `used_memory` as
/// `used_memory_startup` and CHKV's data accounting leaves out.
pub fn startup_rss() -> u64 {
    static STARTUP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTUP.get_or_init(rss_bytes)
}

/// RSS over the memory the process needs (the data plus an empty node's), as Redis's
/// `mem_fragmentation_ratio` is RSS over everything allocated: about 1 on an empty node and
/// on a healthy full one, above 1.5 when freed memory is not given back.
pub fn fragmentation_ratio(rss: u64, used: u64, startup: u64) -> f64 {
    let needed = used.saturating_add(startup).max(1);
    rss as f64 / needed as f64
}

/// The section title as Redis prints it.
fn section_title(name: &str) -> String {
    match name {
        "cpu" => "CPU".to_string(),
        _ => format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]),
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Every section, in INFO's order (`commandstats` only when asked for, or with `all`).
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

fn info(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut wanted: Vec<String> = req
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted = ALL_SECTIONS.iter().map(|s| s.to_string()).collect();
    } else if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    Ok(Frame::Verbatim(Bytes::from(info_text(ctx.node, &wanted))))
}

/// The INFO text for the given lower-case section names.
pub fn info_text(node: &crate::node::Node, sections: &[String]) -> String {
    let mut out = String::new();
    for name in ALL_SECTIONS {
        if !sections.iter().any(|s| s == name) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {}\r\n", section_title(name));
        info_section(node, name, &mut out);
    }
    out
}

fn info_section(node: &crate::node::Node, name: &str, out: &mut String) {
    let cfg = node.config().clone();
    let st = &node.stats;
    let db = &node.db;
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match name {
        "server" => {
            let uptime = node.started.elapsed().as_secs();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            kv("redis_version", &REDIS_VERSION);
            kv("chkv_version", &env!("CARGO_PKG_VERSION"));
            kv("redis_git_sha1", &"00000000");
            kv("redis_git_dirty", &0);
            kv("redis_mode", &redis_mode(node));
            kv("os", &std::env::consts::OS);
            kv("arch_bits", &(usize::BITS));
            kv("multiplexing_api", &"epoll");
            kv("process_id", &std::process::id());
            kv("run_id", &node.run_id);
            kv("tcp_port", &node.addr.lock().map_or(cfg.port, |a| a.port()));
            kv("server_time_usec", &now.as_micros());
            kv("uptime_in_seconds", &uptime);
            kv("uptime_in_days", &(uptime / 86400));
            kv("hz", &cfg.hz);
            kv(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            kv("config_file", &"");
        }
        "clients" => {
            kv("connected_clients", &node.connected_clients());
            kv("cluster_connections", &0);
            kv("maxclients", &cfg.maxclients);
            kv("blocked_clients", &node.blocking.blocked_clients());
            kv("tracking_clients", &node.tracking.clients());
            kv("total_blocking_keys", &node.blocking.blocking_keys());
        }
        "memory" => {
            let used = db.used_memory();
            let rss = rss_bytes();
            kv("used_memory", &used);
            kv("used_memory_human", &bytes_to_human(used));
            kv("used_memory_rss", &rss);
            kv("used_memory_rss_human", &bytes_to_human(rss));
            // Overhead: the slot tables' arrays; dataset: the entries (keys and values).
            let tables = db.stats.table_memory.get();
            kv("used_memory_overhead", &tables);
            kv("used_memory_dataset", &used.saturating_sub(tables));
            // No replication or AOF buffers to leave out of eviction's count.
            kv("mem_not_counted_for_evict", &0);
            kv("lazyfree_pending_objects", &db.lazyfree_pending());
            let ev = &cfg.eviction;
            kv("maxmemory", &ev.maxmemory);
            kv("maxmemory_human", &bytes_to_human(ev.maxmemory));
            kv("maxmemory_policy", &ev.policy);
            let startup = startup_rss();
            let frag = fragmentation_ratio(rss, used, startup);
            kv("mem_fragmentation_ratio", &format!("{frag:.2}"));
            kv(
                "mem_fragmentation_bytes",
                &(rss as i64 - used.saturating_add(startup) as i64),
            );
            kv("used_memory_startup", &startup);
            let sc = &node.scripting;
            let lua = sc.used_memory();
            kv("used_memory_lua", &lua);
            kv("used_memory_vm_eval", &lua);
            kv("used_memory_lua_human", &bytes_to_human(lua as u64));
            kv("number_of_cached_scripts", &sc.cached_scripts());
            let (libs, funcs) = sc.registry().counts();
            kv("number_of_functions", &funcs);
            kv("number_of_libraries", &libs);
            kv("mem_allocator", &"mimalloc");
        }
        "commandstats" => {
            for (i, c) in crate::cmd::table().iter().enumerate() {
                let f = node.cmdstats.get(i);
                if f.calls == 0 && f.rejected == 0 {
                    continue;
                }
                let per = if f.calls > 0 {
                    f.micros as f64 / f.calls as f64
                } else {
                    0.0
                };
                kv(
                    &format!("cmdstat_{}", c.name),
                    &format_args!(
                        "calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}",
                        f.calls, f.micros, f.rejected, f.failed
                    ),
                );
            }
        }
        "errorstats" => {
            for (code, n) in node.errors.codes() {
                kv(&format!("errorstat_{code}"), &format_args!("count={n}"));
            }
        }
        "stats" => {
            kv("total_connections_received", &st.total_connections.get());
            kv("total_error_replies", &node.errors.total());
            kv("total_commands_processed", &st.total_commands.get());
            kv(
                "instantaneous_ops_per_sec",
                &st.instantaneous_ops.load(Relaxed),
            );
            kv("total_net_input_bytes", &st.net_input_bytes.get());
            kv("total_net_output_bytes", &st.net_output_bytes.get());
            kv("rejected_connections", &st.rejected_connections.get());
            kv("expired_keys", &db.stats.expired_keys.get());
            kv("evicted_keys", &db.stats.evicted_keys.get());
            kv("tracking_total_keys", &node.tracking.total_keys());
            kv("tracking_total_items", &node.tracking.total_items());
            kv("tracking_total_prefixes", &node.tracking.total_prefixes());
            kv("keyspace_hits", &db.stats.keyspace_hits.get());
            kv("keyspace_misses", &db.stats.keyspace_misses.get());
            // MIGRATE opens a connection per call and keeps none.
            kv("migrate_cached_sockets", &0);
            use crate::pubsub::Kind;
            kv("pubsub_channels", &node.pubsub.len(Kind::Channel));
            kv("pubsub_patterns", &node.pubsub.len(Kind::Pattern));
            kv("pubsubshard_channels", &node.pubsub.len(Kind::Shard));
            // CHKV: PUBLISH messages not sent to a peer DataNode that did not keep up.
            kv("pubsub_fanout_dropped", &node.pubsub.fanout_dropped_total());
        }
        "persistence" => {
            // CHKV does not persist; these are the values of a Redis with persistence off,
            // which readiness probes and clients read (`loading:0`).
            kv("loading", &0);
            kv("async_loading", &0);
            kv("rdb_changes_since_last_save", &0);
            kv("rdb_bgsave_in_progress", &0);
            kv("rdb_last_bgsave_status", &"ok");
            kv("aof_enabled", &0);
            kv("aof_rewrite_in_progress", &0);
        }
        "replication" => {
            kv("role", &"master");
            kv("connected_slaves", &0);
        }
        "cpu" => {
            let (user, sys) = cpu_times();
            kv("used_cpu_sys", &format!("{sys:.6}"));
            kv("used_cpu_user", &format!("{user:.6}"));
        }
        "cluster" => {
            kv("cluster_enabled", &u8::from(in_cluster(node)));
            if let Some(nn) = &cfg.namenode {
                // CHKV's own: where the NameNode is and, when a session with it failed, why
                // (unreachable, or not a NameNode's DataNode port).
                kv("chkv_namenode", nn);
                if let Some(e) = node.namenode_error.lock().as_deref() {
                    kv("chkv_namenode_last_error", &e.replace(['\r', '\n'], " "));
                }
            }
        }
        "keyspace" => {
            let keys = db.len();
            if keys > 0 {
                let _ = write!(
                    out,
                    "db0:keys={keys},expires={},avg_ttl=0\r\n",
                    db.volatile_len()
                );
            }
        }
        _ => {}
    }
}

/// User and system CPU seconds of this process, from /proc.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

// ---- CONFIG ----

/// Applies a new value to a config copy, or says why it is invalid.
type Setter = fn(&mut crate::config::Config, &[u8]) -> Result<(), String>;

/// One configuration parameter: its name, how to read it and, when it can change at run
/// time, how to set it.
struct Param {
    name: &'static str,
    get: fn(&crate::config::Config) -> String,
    set: Option<Setter>,
}

fn parse_num<T: std::str::FromStr>(v: &[u8]) -> Result<T, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

fn parse_mem(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(crate::config::parse_memory)
        .ok_or_else(|| "argument must be a memory value".to_string())
}

/// `lfu-log-factor` and `lfu-decay-time`: Redis accepts 0..=INT_MAX.
fn parse_lfu(v: &[u8]) -> Result<u32, String> {
    let n: i64 = parse_num(v)?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or_else(|| "argument must be between 0 and 2147483647 inclusive".to_string())
}

static PARAMS: &[Param] = &[
    Param {
        name: "bind",
        get: |c| c.bind.to_string(),
        set: None,
    },
    Param {
        name: "port",
        get: |c| c.port.to_string(),
        set: None,
    },
    Param {
        name: "requirepass",
        get: |c| {
            c.requirepass
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        },
        set: Some(|c, v| {
            c.requirepass = (!v.is_empty()).then(|| v.to_vec());
            Ok(())
        }),
    },
    Param {
        name: "client-output-buffer-limit",
        get: |c| c.client_output_buffer_limit.format(),
        set: Some(|c, v| {
            c.client_output_buffer_limit = c.client_output_buffer_limit.parse_into(v)?;
            Ok(())
        }),
    },
    Param {
        name: "maxclients",
        get: |c| c.maxclients.to_string(),
        set: Some(|c, v| {
            let n: i64 = parse_num(v)?;
            if !(1..=4294967295).contains(&n) {
                return Err("argument must be between 1 and 4294967295 inclusive".into());
            }
            c.maxclients = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |c| c.proto_max_bulk_len.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.proto_max_bulk_len = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "client-query-buffer-limit",
        get: |c| c.client_query_buffer_limit.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.client_query_buffer_limit = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "hz",
        get: |c| c.hz.to_string(),
        set: Some(|c, v| {
            let n: u32 = parse_num(v)?;
            c.hz = n.clamp(1, 500);
            Ok(())
        }),
    },
    Param {
        name: "maxmemory",
        get: |c| c.eviction.maxmemory.to_string(),
        set: Some(|c, v| {
            c.eviction.maxmemory = parse_mem(v)?;
            Ok(())
        }),
    },
    Param {
        name: "maxmemory-policy",
        get: |c| c.eviction.policy.to_string(),
        set: Some(|c, v| {
            c.eviction.policy = std::str::from_utf8(v)
                .ok()
                .and_then(Policy::parse)
                .ok_or_else(Policy::choices_error)?;
            Ok(())
        }),
    },
    Param {
        name: "maxmemory-samples",
        get: |c| c.eviction.samples.to_string(),
        set: Some(|c, v| {
            // Redis's range; the store samples at most MAX_SAMPLES keys per eviction.
            let n: i64 = parse_num(v)?;
            if !(1..=i32::MAX as i64).contains(&n) {
                return Err("argument must be between 1 and 2147483647 inclusive".into());
            }
            c.eviction.samples = n as u32;
            Ok(())
        }),
    },
    Param {
        name: "lfu-log-factor",
        get: |c| c.eviction.lfu_log_factor.to_string(),
        set: Some(|c, v| {
            c.eviction.lfu_log_factor = parse_lfu(v)?;
            Ok(())
        }),
    },
    Param {
        name: "lfu-decay-time",
        get: |c| c.eviction.lfu_decay_time.to_string(),
        set: Some(|c, v| {
            c.eviction.lfu_decay_time = parse_lfu(v)?;
            Ok(())
        }),
    },
    Param {
        name: "notify-keyspace-events",
        get: |c| crate::pubsub::events::to_string(c.notify_keyspace_events),
        set: Some(|c, v| {
            c.notify_keyspace_events = crate::pubsub::events::parse(v).ok_or_else(|| {
                "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
            })?;
            Ok(())
        }),
    },
    Param {
        name: "hll-sparse-max-bytes",
        get: |c| c.hll_sparse_max_bytes.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n > i64::MAX as u64 {
                return Err("argument must be between 0 and 9223372036854775807 inclusive".into());
            }
            c.hll_sparse_max_bytes = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "tracking-table-max-keys",
        get: |c| c.tracking_table_max_keys.to_string(),
        set: Some(|c, v| {
            let n: i64 = parse_num(v)?;
            if n < 0 {
                return Err("argument must be between 0 and 9223372036854775807 inclusive".into());
            }
            c.tracking_table_max_keys = n as u64;
            Ok(())
        }),
    },
    Param {
        name: "min-replicas-to-write",
        get: |c| c.min_replicas_to_write.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_to_write, v)),
    },
    Param {
        name: "min-slaves-to-write",
        get: |c| c.min_replicas_to_write.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_to_write, v)),
    },
    Param {
        name: "min-replicas-max-lag",
        get: |c| c.min_replicas_max_lag.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_max_lag, v)),
    },
    Param {
        name: "busy-reply-threshold",
        get: |c| c.busy_reply_threshold_ms.to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "lua-time-limit",
        get: |c| c.busy_reply_threshold_ms.to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "databases",
        get: |_| "1".into(),
        set: None,
    },
    Param {
        name: "save",
        get: |_| String::new(),
        set: Some(|_, v| {
            if v.is_empty() {
                Ok(())
            } else {
                Err("persistence is not supported by CHKV".into())
            }
        }),
    },
    Param {
        name: "appendonly",
        get: |_| "no".into(),
        set: Some(|_, v| {
            if v.eq_ignore_ascii_case(b"no") {
                Ok(())
            } else {
                Err("persistence is not supported by CHKV".into())
            }
        }),
    },
    Param {
        name: "timeout",
        get: |_| "0".into(),
        set: None,
    },
    Param {
        name: "tcp-keepalive",
        get: |_| "300".into(),
        set: None,
    },
    Param {
        name: "aclfile",
        get: |c| path_param(&c.aclfile),
        set: None,
    },
    Param {
        name: "tls-port",
        get: |c| c.tls.port.unwrap_or(0).to_string(),
        set: None,
    },
    Param {
        name: "tls-cluster",
        get: |c| if c.tls.cluster { "yes" } else { "no" }.into(),
        set: None,
    },
    Param {
        name: "tls-cert-file",
        get: |c| path_param(&c.tls.cert_file),
        set: Some(|c, v| set_path(&mut c.tls.cert_file, v)),
    },
    Param {
        name: "tls-key-file",
        get: |c| path_param(&c.tls.key_file),
        set: Some(|c, v| set_path(&mut c.tls.key_file, v)),
    },
    Param {
        name: "tls-ca-cert-file",
        get: |c| path_param(&c.tls.ca_cert_file),
        set: Some(|c, v| set_path(&mut c.tls.ca_cert_file, v)),
    },
    Param {
        name: "tls-auth-clients",
        get: |c| c.tls.auth_clients.name().into(),
        set: Some(|c, v| {
            c.tls.auth_clients = std::str::from_utf8(v)
                .ok()
                .and_then(crate::tls::AuthClients::parse)
                .ok_or_else(|| {
                    "argument(s) must be one of the following: yes, no, optional".to_string()
                })?;
            Ok(())
        }),
    },
    Param {
        name: "cluster-enabled",
        get: |_| "no".into(),
        set: None,
    },
    Param {
        name: "hash-max-listpack-entries",
        get: |c| c.encodings.hash_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_entries, v)),
    },
    Param {
        name: "hash-max-ziplist-entries",
        get: |c| c.encodings.hash_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_entries, v)),
    },
    Param {
        name: "hash-max-listpack-value",
        get: |c| c.encodings.hash_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_value, v)),
    },
    Param {
        name: "hash-max-ziplist-value",
        get: |c| c.encodings.hash_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_value, v)),
    },
    Param {
        name: "set-max-intset-entries",
        get: |c| c.encodings.set_max_intset_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_intset_entries, v)),
    },
    Param {
        name: "set-max-listpack-entries",
        get: |c| c.encodings.set_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_listpack_entries, v)),
    },
    Param {
        name: "set-max-listpack-value",
        get: |c| c.encodings.set_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_listpack_value, v)),
    },
    Param {
        name: "list-max-listpack-size",
        get: |c| c.encodings.list_max_listpack_size.to_string(),
        set: Some(|c, v| set_int_in(&mut c.encodings.list_max_listpack_size, v, i32::MIN as i64)),
    },
    Param {
        name: "list-max-ziplist-size",
        get: |c| c.encodings.list_max_listpack_size.to_string(),
        set: Some(|c, v| set_int_in(&mut c.encodings.list_max_listpack_size, v, i32::MIN as i64)),
    },
    Param {
        name: "list-compress-depth",
        get: |c| c.encodings.list_compress_depth.to_string(),
        set: Some(|c, v| {
            let mut n = 0i64;
            set_int_in(&mut n, v, 0)?;
            c.encodings.list_compress_depth = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "zset-max-listpack-entries",
        get: |c| c.encodings.zset_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_entries, v)),
    },
    Param {
        name: "zset-max-ziplist-entries",
        get: |c| c.encodings.zset_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_entries, v)),
    },
    Param {
        name: "zset-max-listpack-value",
        get: |c| c.encodings.zset_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_value, v)),
    },
    Param {
        name: "zset-max-ziplist-value",
        get: |c| c.encodings.zset_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_value, v)),
    },
];

/// An int config between 0 and `i32::MAX`.
fn set_u31(to: &mut u32, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    *to = u32::try_from(n)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or_else(|| format!("argument must be between 0 and {} inclusive", i32::MAX))?;
    Ok(())
}

/// `busy-reply-threshold` / `lua-time-limit`: milliseconds, 0..=LONG_MAX as in Redis.
fn set_busy_threshold(c: &mut crate::config::Config, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    c.busy_reply_threshold_ms = u64::try_from(n)
        .map_err(|_| "argument must be between 0 and 9223372036854775807 inclusive".to_string())?;
    Ok(())
}

/// An int config (Redis's `int` type) between `min` and `i32::MAX`.
fn set_int_in(to: &mut i64, v: &[u8], min: i64) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    if n < min || n > i32::MAX as i64 {
        return Err(format!(
            "argument must be between {min} and {} inclusive",
            i32::MAX
        ));
    }
    *to = n;
    Ok(())
}

fn path_param(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn set_path(p: &mut Option<std::path::PathBuf>, v: &[u8]) -> Result<(), String> {
    let s = std::str::from_utf8(v).map_err(|_| "argument must be a valid path".to_string())?;
    *p = (!s.is_empty()).then(|| s.into());
    Ok(())
}

/// A collection encoding threshold: Redis accepts 0..=LONG_MAX; anything above what
/// memory could hold behaves the same, so the value is kept as a usize.
fn set_limit(to: &mut usize, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    *to = usize::try_from(n)
        .map_err(|_| "argument must be between 0 and 9223372036854775807 inclusive".to_string())?;
    Ok(())
}

fn config_get(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let cfg = ctx.node.config().clone();
    let mut out = Vec::new();
    for p in PARAMS {
        // A plain name is echoed as asked (Redis does); a pattern reports the canonical name.
        let hit = req
            .iter()
            .skip(2)
            .find(|pat| crate::store::glob::glob_match_nocase(pat, p.name.as_bytes()));
        if let Some(pat) = hit {
            let is_pattern = pat.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
            let name = if is_pattern {
                Frame::bulk_static(p.name)
            } else {
                Frame::bulk(pat)
            };
            out.push((name, Frame::bulk((p.get)(&cfg))));
        }
    }
    Ok(Frame::Map(out))
}

fn config_set(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if !req.len().is_multiple_of(2) {
        return Err(ERR_SYNTAX);
    }
    // All or nothing: apply to a copy, then publish it.
    let mut cfg = ctx.node.config().clone();
    for i in (2..req.len()).step_by(2) {
        let name = req.arg(i);
        if (2..i)
            .step_by(2)
            .any(|j| req.arg(j).eq_ignore_ascii_case(name))
        {
            return Err(Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - duplicate parameter",
                String::from_utf8_lossy(name)
            )));
        }
        let Some(p) = PARAMS
            .iter()
            .find(|p| p.name.as_bytes().eq_ignore_ascii_case(name))
        else {
            return Err(Frame::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            )));
        };
        let Some(set) = p.set else {
            return Err(Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - can't set immutable config",
                p.name
            )));
        };
        set(&mut cfg, req.arg(i + 1)).map_err(|why| {
            Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
                p.name
            ))
        })?;
    }
    // Like Redis: a change of TLS files or client checks loads the new material at once, and
    // a failure leaves everything as it was. New TLS connections get it; open ones keep theirs.
    let tls_changed = !ctx.node.config().tls.same_material(&cfg.tls);
    if tls_changed && cfg.tls.enabled() {
        ctx.node.load_tls(&cfg.tls).map_err(|e| {
            Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration: {e}"
            ))
        })?;
    }
    let new_password = cfg.requirepass != ctx.node.config().requirepass;
    if new_password {
        // requirepass is the default user's password, as in Redis; in a cluster it is the
        // default user's password on every node.
        ctx.node
            .acl
            .set_requirepass(cfg.requirepass.as_deref(), Some(&ctx.node.node_id));
    }
    let db = &ctx.node.db;
    ctx.node.update_config(|published| {
        // The store reads its eviction settings from atomics, not from the config lock; set
        // them under the lock so that concurrent CONFIG SETs cannot leave the two different.
        db.configure_eviction(&cfg.eviction);
        ctx.node.pubsub.configure(&cfg);
        ctx.node.tracking.set_max_keys(cfg.tracking_table_max_keys);
        db.limits.store(&cfg.encodings);
        ctx.node
            .scripting
            .set_threshold(cfg.busy_reply_threshold_ms);
        ctx.node
            .min_replicas_to_write
            .store(cfg.min_replicas_to_write, Relaxed);
        *published = cfg;
    });
    if new_password {
        return crate::sync::after_change(ctx, crate::sync::Set::Users, Frame::ok());
    }
    Ok(Frame::ok())
}

fn config_resetstat(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let st = &ctx.node.stats;
    for c in [
        &st.total_connections,
        &st.rejected_connections,
        &st.total_commands,
        &st.net_input_bytes,
        &st.net_output_bytes,
    ] {
        c.reset();
    }
    let ds = &ctx.node.db.stats;
    for c in [
        &ds.expired_keys,
        &ds.evicted_keys,
        &ds.keyspace_hits,
        &ds.keyspace_misses,
    ] {
        c.reset();
    }
    ctx.node.cmdstats.reset();
    ctx.node.errors.reset();
    Ok(Frame::ok())
}

fn config_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    help_lines(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Print this help.",
    ])
}

#[cfg(test)]
mod tests;
