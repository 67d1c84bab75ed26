//! CLIENT subcommands: naming, listing, reply modes, tracking and unblocking connections.

use super::*;

pub(super) static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
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

/// CLIENT TRACKING ON|OFF \[options\]: see [`crate::tracking`].
fn client_tracking(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let args: Vec<&[u8]> = req.iter().skip(3).collect();
    let o = crate::cmd::tracking::parse_options(&args)?;
    if o.redirect != 0 && !ctx.node.clients.lock().contains_key(&o.redirect) {
        return Err(Frame::err(
            "ERR The client ID you want redirect to does not exist",
        ));
    }
    let tracking = &ctx.node.tracking;
    if is(req.arg(2), "ON") {
        let current = ctx.session.tracking.clone();
        crate::cmd::tracking::check_enable(current.as_deref(), &o)?;
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
            out.push_str(&describe(&c, c.id == ctx.session.client.id));
            out.push('\n');
        }
    }
    Ok(Frame::Verbatim(Bytes::from(out)))
}

fn client_info(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let mut s = describe(&ctx.session.client, true);
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

/// The CLIENT LIST line for client `c` (Redis's field names). `running`: `c` is the
/// connection running this command, so not idle (Redis's `idle=0`; its `last_active` is
/// kept once a round of its commands is over).
pub(crate) fn describe(c: &crate::client::ClientInfo, running: bool) -> String {
    let age = c.age_secs();
    let idle = if running {
        0
    } else {
        age.saturating_sub(c.last_active.load(Relaxed))
    };
    let text = |m: &parking_lot::Mutex<Option<Bytes>>| {
        m.lock()
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let cmd =
        crate::cmd::name_by_index(c.last_cmd.load(Relaxed)).unwrap_or_else(|| "NULL".to_string());
    use crate::pubsub::Kind;
    let subs = c.subscriber.get();
    let count = |k| subs.map_or(0, |s| s.count(k));
    let (sub, psub, ssub) = (
        count(Kind::Channel),
        count(Kind::Pattern),
        count(Kind::Shard),
    );
    let tracking = c.tracking.lock().clone();
    let mut flags = String::new();
    if sub + psub + ssub > 0 {
        flags.push('P');
    }
    if c.blocked.load(Relaxed) {
        flags.push('b');
    }
    if let Some(t) = &tracking {
        flags.push('t');
        if t.broken() {
            flags.push('R');
        }
        if t.bcast {
            flags.push('B');
        }
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let redir = tracking.map_or(-1, |t| i64::try_from(t.redirect).unwrap_or(-1));
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db=0 sub={sub} \
         psub={psub} ssub={ssub} multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
         omem=0 tot-mem=0 events=r cmd={} user={} redir={redir} resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        text(&c.name),
        age,
        idle,
        cmd,
        String::from_utf8_lossy(&c.user.lock()),
        c.resp.load(Relaxed),
        text(&c.lib_name),
        text(&c.lib_ver),
    )
}
