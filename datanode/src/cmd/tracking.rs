//! CLIENT TRACKING's command side: its options checked with Redis's error texts, and what
//! [`crate::cmd::dispatch`] does around a tracking client's command ([`before`] remembers
//! the keys it is about to read, [`after`] checks them). The table and its invalidations
//! are [`crate::tracking`]'s.

use super::flags;
use super::{CommandSpec, Ctx, ERR_NOT_INT, ERR_SYNTAX};
use crate::client::Tracker;
use crate::resp::{Frame, Request};
use crate::tracking::Options;
use bytes::Bytes;

/// Parses the options after `CLIENT TRACKING ON|OFF` (Redis's order of checks; whether the
/// redirect target exists is the caller's check).
pub fn parse_options(args: &[&[u8]]) -> Result<Options, Frame> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        let more = i + 1 < args.len();
        if a.eq_ignore_ascii_case(b"redirect") && more {
            i += 1;
            if o.redirect != 0 {
                return Err(Frame::err(
                    "ERR A client can only redirect to a single other client",
                ));
            }
            let id = super::parse_i64(args[i]).ok_or(ERR_NOT_INT)?;
            // A negative id or 0 names no client.
            o.redirect = u64::try_from(id).unwrap_or(u64::MAX);
            if o.redirect == 0 {
                o.redirect = u64::MAX;
            }
        } else if a.eq_ignore_ascii_case(b"bcast") {
            o.bcast = true;
        } else if a.eq_ignore_ascii_case(b"optin") {
            o.optin = true;
        } else if a.eq_ignore_ascii_case(b"optout") {
            o.optout = true;
        } else if a.eq_ignore_ascii_case(b"noloop") {
            o.noloop = true;
        } else if a.eq_ignore_ascii_case(b"prefix") && more {
            i += 1;
            o.prefixes.push(Bytes::copy_from_slice(args[i]));
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    Ok(o)
}

/// Whether one of `a` and `b` starts with the other.
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Checks `CLIENT TRACKING ON` with `o` against the client's current mode, with Redis's
/// error texts.
pub fn check_enable(current: Option<&Tracker>, o: &Options) -> Result<(), Frame> {
    if !o.bcast && !o.prefixes.is_empty() {
        return Err(Frame::err(
            "ERR PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if let Some(c) = current {
        if c.bcast != o.bcast {
            return Err(Frame::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
    }
    if o.bcast && (o.optin || o.optout) {
        return Err(Frame::err(
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if o.optin && o.optout {
        return Err(Frame::err("ERR You can't use both OPTIN and OPTOUT"));
    }
    if let Some(c) = current {
        if (o.optin && c.optout) || (o.optout && c.optin) {
            return Err(Frame::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
    }
    if o.bcast {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        for (i, p) in o.prefixes.iter().enumerate() {
            if let Some(c) = current {
                if let Some(old) = c.prefixes.iter().find(|old| overlap(old, p)) {
                    return Err(Frame::error(format!(
                        "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                        text(p),
                        text(old)
                    )));
                }
            }
            if let Some(other) = o.prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(Frame::error(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    text(p),
                    text(other)
                )));
            }
        }
    }
    Ok(())
}

/// Whether `name` runs a script (its declared keys are tracked when it reads, as in Redis
/// 7.0, rather than what its calls touch).
fn is_script(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// What [`before`] remembered for one command.
pub struct Reads {
    keys: Vec<(Bytes, bool)>,
    script: bool,
    was_executing: bool,
}

/// Before a tracking client's command runs: remembers the keys it is about to read.
pub fn before(ctx: &mut Ctx<'_>, spec: &CommandSpec, req: &Request) -> Reads {
    // Like Redis before each command: evictions (for `maxmemory`, which Redis does before
    // any command, and for the table's size limit) go out before the reply.
    if !ctx.session.in_script && !ctx.session.tx.running {
        let _ = ctx.node.db.make_room(ctx.now);
    }
    ctx.node.tracking.enforce_limit();
    let mut reads = Reads {
        keys: Vec::new(),
        script: false,
        was_executing: crate::tracking::set_executing(true),
    };
    let Some(t) = ctx.session.tracking.clone() else {
        return reads;
    };
    if ctx.session.in_script {
        if spec.has(flags::READONLY) {
            ctx.session.track_script_read = true;
        }
        return reads;
    }
    let script = is_script(spec.name);
    if !(spec.has(flags::READONLY) || script) || spec.has(flags::PUBSUB) || t.bcast {
        return reads;
    }
    let caching = ctx.session.track_caching;
    if (t.optin && !caching) || (t.optout && caching) {
        return reads;
    }
    if script {
        ctx.session.track_script_read = false;
        reads.script = true;
    }
    let positions: Vec<usize> = if script {
        crate::lua::declared_keys(req).collect()
    } else {
        spec.keys_in(req).collect()
    };
    for i in positions {
        let k = req.arg(i);
        let new = ctx.node.tracking.remember(t.id, k);
        reads.keys.push((Bytes::copy_from_slice(k), new));
    }
    reads
}

/// After a tracking client's command ran (`client_cmd`: it was a CLIENT subcommand): checks
/// that what it read is still remembered (see the module doc).
pub fn after(ctx: &mut Ctx<'_>, client_cmd: bool, reads: Reads) {
    crate::tracking::set_executing(reads.was_executing);
    let top = !ctx.session.in_script && !ctx.session.tx.running;
    if top && !client_cmd {
        // CLIENT CACHING counts for the next command only.
        ctx.session.track_caching = false;
    }
    if reads.keys.is_empty() {
        return;
    }
    let Some(id) = ctx.session.tracking.as_ref().map(|t| t.id) else {
        return;
    };
    let tracking = &ctx.node.tracking;
    if reads.script && !std::mem::take(&mut ctx.session.track_script_read) {
        // The script read nothing: its keys are not tracked.
        tracking.forget_new(id, &reads.keys);
        return;
    }
    tracking.recheck(id, reads.keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::Subscriber;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn opts(args: &[&str]) -> Result<Options, Frame> {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_options(&v)
    }

    #[test]
    fn options_parse_as_redis() {
        let o = opts(&["BCAST", "PREFIX", "a", "prefix", "b", "NOLOOP"]).expect("ok");
        assert!(o.bcast && o.noloop);
        assert_eq!(o.prefixes, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(opts(&["bogus"]), Err(ERR_SYNTAX));
        assert_eq!(opts(&["prefix"]), Err(ERR_SYNTAX));
        assert_eq!(
            opts(&["redirect", "1", "redirect", "2"]),
            Err(Frame::err(
                "ERR A client can only redirect to a single other client"
            ))
        );
        assert_eq!(opts(&["redirect", "x"]), Err(crate::cmd::ERR_NOT_INT));
    }

    #[test]
    fn mode_checks_and_prefix_overlaps() {
        let o = |a: &[&str]| opts(a).expect("parse");
        let msg = |r: Result<(), Frame>| match r {
            Err(Frame::Error(e)) => e.to_string(),
            other => format!("{other:?}"),
        };
        assert!(msg(check_enable(None, &o(&["PREFIX", "a"]))).contains("requires BCAST"));
        assert!(msg(check_enable(None, &o(&["BCAST", "OPTIN"]))).contains("not compatible"));
        assert!(msg(check_enable(None, &o(&["OPTIN", "OPTOUT"]))).contains("both OPTIN"));
        assert!(msg(check_enable(
            None,
            &o(&["BCAST", "PREFIX", "FOOBAR", "PREFIX", "FOO"])
        ))
        .starts_with("ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'"));
        let sub = Arc::new(Subscriber::new(1, crate::resp::Protocol::Resp3));
        let current = Tracker {
            id: 1,
            bcast: true,
            optin: false,
            optout: false,
            noloop: false,
            redirect: 0,
            prefixes: vec![Bytes::from("FOO"), Bytes::from("BAR")],
            broken: AtomicBool::new(false),
            sub,
        };
        assert!(
            msg(check_enable(Some(&current), &o(&["BCAST", "PREFIX", "FO"])))
                .starts_with("ERR Prefix 'FO' overlaps with an existing prefix 'FOO'")
        );
        assert!(msg(check_enable(Some(&current), &o(&[]))).contains("switch BCAST"));
        assert_eq!(
            check_enable(Some(&current), &o(&["BCAST", "PREFIX", "BAZ"])),
            Ok(())
        );
    }
}
