//! The command side of [`crate::blocking`]: a blocking command's waiter registered from its
//! connection ([`block`]), and the waiters of the keys that writes made ready served by
//! running their commands ([`serve_ready`]).

use super::{list, zset, Ctx, Session};
use crate::blocking::{Serve, Wait, Wake};
use crate::node::Node;
use crate::resp::{Frame, Request};
use bytes::Bytes;

/// Runs a blocked command for a key that became ready, with the slots of all its keys held;
/// returns its reply (which may be an error, e.g. BLMOVE's WRONGTYPE destination).
pub(crate) type ServeFn = fn(&mut Ctx<'_>, &Request, &[u8]) -> Frame;

/// The function that serves a waiter of command `serve`.
fn serve_fn(serve: Serve) -> ServeFn {
    match serve {
        Serve::Bpop => list::serve_bpop,
        Serve::Blmove => list::serve_blmove,
        Serve::Blmpop => list::serve_blmpop,
        Serve::Bzpop => zset::serve_bzpop,
        Serve::Bzmpop => zset::serve_bzmpop,
    }
}

/// Blocks the command `req` of the connection behind `ctx` (the caller holds every key's
/// slot and found none ready): registers the waiter and leaves the wait in
/// `ctx.session.blocked` for the connection. The returned frame is a placeholder the
/// connection never sends.
pub fn block(ctx: &mut Ctx<'_>, req: &Request, wait: Wait<'_>) -> Frame {
    let blocked = ctx
        .node
        .blocking
        .block(ctx.session.client.clone(), ctx.session.proto, req, wait);
    ctx.session.blocked = Some(blocked);
    Frame::Null
}

/// Serves the keys that writes made ready (see [`crate::blocking`]). Called after every
/// request, outside any transaction; one atomic load when nothing is ready.
pub fn serve_ready(node: &Node) {
    while let Some(keys) = node.blocking.take_ready() {
        let mut seen = std::collections::HashSet::new();
        for k in keys {
            if seen.insert(k.clone()) {
                serve_key(node, &k);
            }
        }
    }
}

/// Serves the waiters of `key` while it can serve them.
fn serve_key(node: &Node, key: &Bytes) {
    for w in node.blocking.waiters(key) {
        if w.is_done() {
            continue;
        }
        // The gate keeps a handoff from freezing the slots mid-way; a frozen or departed
        // slot is served where it ends up.
        let _gate = node.handoff.gate.read();
        if w.slots.iter().any(|&s| node.handoff.is_frozen(s)) {
            continue;
        }
        let routing = node.routing();
        if w.slots
            .iter()
            .any(|&s| routing.owner(s) != crate::cluster::Owner::Local)
        {
            continue;
        }
        let _held = node.db.lock_tx(Some(w.slots.clone()));
        let now = crate::store::now_ms();
        let kind = node.db.lock_key(key).peek(key, now).map(|e| e.kind());
        match kind {
            None => break,
            Some(k) if k != w.kind => continue,
            Some(_) => {}
        }
        if !node.blocking.take(&w) {
            continue;
        }
        let mut session = Session::new(w.client.clone(), true);
        session.proto = w.proto;
        let mut ctx = Ctx {
            node,
            session: &mut session,
            now,
        };
        let reply = serve_fn(w.serve)(&mut ctx, &w.req, key);
        w.send(Wake::Reply(reply));
    }
}
