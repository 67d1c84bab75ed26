//! Connection and server commands: PING, ECHO, HELLO, AUTH, QUIT, SELECT, DBSIZE, FLUSHDB,
//! FLUSHALL, TIME and the command table; the rest by concern:
//! - `client_cmd`: CLIENT's subcommands.
//! - `config`: CONFIG's subcommands and the configuration parameter table.
//! - `info`: INFO's sections and the process measurements behind them.

use super::flags::*;
use super::*;
use crate::resp::Protocol;
use crate::REDIS_VERSION;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

pub(crate) mod client_cmd;
mod config;
mod info;

use client_cmd::*;
use config::*;
use info::*;
pub use info::{fragmentation_ratio, info_text, rss_bytes, startup_rss};

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
        client_info: client_cmd::describe(&ctx.session.client, true),
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

fn help_lines(lines: &[&'static str]) -> Reply {
    Ok(Frame::Array(
        lines.iter().map(|l| Frame::simple(l)).collect(),
    ))
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

#[cfg(test)]
mod tests;
