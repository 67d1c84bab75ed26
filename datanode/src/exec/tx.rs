//! Transactions (MULTI/EXEC, WATCH) and scripts in a cluster: where they run.

use super::*;

// ---- transactions (MULTI/EXEC) in a cluster ----
//
// A connection inside MULTI queues locally: nothing is forwarded while queuing. A
// cluster-aware connection gets Redis Cluster's checks per queued command (`-MOVED`,
// `-CROSSSLOT`, which abort the transaction). At EXEC the node looks at the owners of every
// key of every queued command, with the table current under the handoff gate:
// - all here (or no keys): the transaction runs here, atomically (`multi::run_tx`), under the
//   gate, after waiting for any of its slots that is frozen, so a handoff never splits it;
// - all on one other node (plain connections): the whole transaction goes there as one
//   internal `MULTIEXEC` request and runs there atomically; the reply is relayed;
// - on several nodes: `-CROSSSLOT`, nothing applied. For cluster-aware connections every key
//   must be in one slot (else `-CROSSSLOT`) that this node owns (else `-MOVED`).
// Watched keys are watched here; if one's slot has left this node since, the watch fired
// (the store signals a slot that moves away) and EXEC returns a null array: the client's
// optimistic-locking loop retries, now against the new owner.

pub(super) fn plan_in_multi(
    node: &Node,
    session: &mut Session,
    routing: &Routing,
    req: &Request,
) -> Planned {
    if req.arg(0).eq_ignore_ascii_case(b"exec") && req.len() == 1 {
        let Some(q) = session.tx.queue.take() else {
            return Planned::Now(run_local(node, session, req));
        };
        if q.aborted {
            multi::unwatch_all(node, &mut session.tx);
            return Planned::Now(multi::ERR_EXECABORT);
        }
        return plan_tx(node, session, q.cmds, Some(q.specs));
    }
    if session.redirects == Redirects::Redirect && session.authenticated {
        if let Some((_, spec)) = lookup(req.arg(0)) {
            if spec.first_key > 0 && spec.arity_ok(req.len()) && spec.name != "watch" {
                let err = match route(routing, spec, req, true) {
                    Route::Moved { slot, addr } => {
                        Some(moved(routing, tls_client(session), slot, addr))
                    }
                    Route::CrossSlot => Some(CROSSSLOT),
                    Route::Down => Some(CLUSTERDOWN),
                    _ => None,
                };
                if let Some(e) = err {
                    session.tx.flag();
                    return Planned::Now(e);
                }
            }
        }
    }
    Planned::Now(run_local(node, session, req))
}

/// WATCH on a plain connection of keys that all live on another node: the watch is set
/// there, over a connection of this session's own (a watch lives in the session that set
/// it; the shared forwarding connection belongs to no client). While it is active, this
/// session's other requests for that node take the same connection, so they reach it in
/// order after the WATCH; EXEC sends the whole transaction over it, where the node checks
/// the watch and runs it atomically. Watching keys on two nodes is `-CROSSSLOT`.
pub(super) fn plan_remote_watch(
    node: &Node,
    session: &mut Session,
    addr: SocketAddr,
    req: &Request,
) -> Planned {
    let watching_elsewhere = session.tx.watch.is_some()
        || session
            .tx
            .remote
            .as_ref()
            .is_some_and(|r| r.active && r.conn.addr != addr);
    if watching_elsewhere {
        return Planned::Now(CROSSSLOT);
    }
    let reusable = session.tx.remote.as_ref().is_some_and(|r| {
        r.conn.addr == addr && r.conn.proto == session.proto && !r.conn.is_closed()
    });
    if !reusable {
        session.tx.remote = Some(multi::RemoteWatch {
            conn: node.peers.dedicated(addr, session.proto),
            active: false,
            keys: Vec::new(),
            dirty: Default::default(),
        });
    }
    if let Some(r) = session.tx.remote.as_mut() {
        if !r.active {
            r.dirty.store(false, std::sync::atomic::Ordering::Relaxed);
            r.active = true;
            r.keys.clear();
        }
        if r.keys.len() < 1 << 20 {
            r.keys
                .extend(req.iter().skip(1).map(Bytes::copy_from_slice));
        }
    }
    match relay(session, addr, req, RelayKind::Watch) {
        Some(p) => Planned::Later(p),
        None => Planned::Now(Frame::ok()),
    }
}

/// Sends `req` over the session's connection to `addr` if it holds an intact watch there.
pub(super) fn relay(
    session: &mut Session,
    addr: SocketAddr,
    req: &Request,
    kind: RelayKind,
) -> Option<Pending> {
    let r = session.tx.remote.as_ref()?;
    let usable = r.active
        && r.conn.addr == addr
        && r.conn.proto == session.proto
        && !r.dirty.load(std::sync::atomic::Ordering::Relaxed);
    usable.then(|| Pending::Relay {
        req: req.clone(),
        rx: r.conn.send_request(req),
        kind,
        dirty: r.dirty.clone(),
    })
}

/// The slots of a request's keys, scripts' declared keys included.
pub(super) fn request_slots(req: &Request) -> Vec<u16> {
    let Some((_, spec)) = lookup(req.arg(0)) else {
        return Vec::new();
    };
    if crate::lua::is_script_command(spec.name) && spec.arity_ok(req.len()) {
        return crate::lua::declared_keys(req)
            .map(|i| key_slot(req.arg(i)))
            .collect();
    }
    // A subcommand's own key positions (OBJECT ENCODING key).
    let spec = crate::cmd::resolve_checked(req).map_or(spec, |(sub, _)| sub);
    spec.keys_in(req).map(|i| key_slot(req.arg(i))).collect()
}

/// EVAL, FCALL and friends in a cluster: the declared keys decide, like a command's keys. A plain
/// connection's script runs on the node that owns all its keys (forwarded whole; EVALSHA
/// there answers `-NOSCRIPT` if that node does not have the script, and clients then send
/// EVAL); keys on several nodes are `-CROSSSLOT`; cluster-aware connections get Redis
/// Cluster's `-MOVED`/`-CROSSSLOT`. A script without keys runs where it is sent.
pub(super) fn plan_eval(node: &Node, session: &mut Session, req: &Request) -> Planned {
    if !session.functions_pulled && node.scripting.unknown_function(req) {
        return Planned::Later(Pending::Pull { req: req.clone() });
    }
    let slots = request_slots(req);
    let _gate = node.handoff.gate.read();
    let routing = node.routing();
    let mut owners: Vec<(Owner, u16)> = Vec::new();
    for &s in &slots {
        let o = routing.owner(s);
        if !owners.iter().any(|(x, _)| *x == o) {
            owners.push((o, s));
        }
    }
    if session.redirects == Redirects::Redirect && slots.iter().any(|s| Some(s) != slots.first()) {
        return Planned::Now(CROSSSLOT);
    }
    if owners.iter().any(|(o, _)| *o == Owner::Unassigned) {
        return Planned::Now(CLUSTERDOWN);
    }
    if owners.len() > 1 {
        return Planned::Now(CROSSSLOT);
    }
    if let Some(&(Owner::Remote(o), slot)) = owners.first() {
        let Some(addr) = routing.addr(o) else {
            return Planned::Now(CLUSTERDOWN);
        };
        if session.redirects != Redirects::Forward {
            return Planned::Now(moved(&routing, tls_client(session), slot, addr));
        }
        return Planned::Later(forward(node, session, addr, &for_owner(session, req)));
    }
    if slots.iter().any(|&s| node.handoff.is_frozen(s)) {
        return Planned::Later(Pending::Frozen { req: req.clone() });
    }
    run_here(node, session, req)
}

/// Decides where a transaction runs (see above) and runs it here or forwards it.
/// `specs`: the commands' specs when the MULTI queue found them already.
pub fn plan_tx(
    node: &Node,
    session: &mut Session,
    cmds: Vec<Request>,
    specs: Option<Vec<Option<multi::Resolved>>>,
) -> Planned {
    let abort = |session: &mut Session, f: Frame| {
        multi::unwatch_all(node, &mut session.tx);
        Planned::Now(f)
    };
    if session
        .tx
        .watch
        .as_ref()
        .is_some_and(|w| w.watcher.is_dirty())
    {
        return abort(session, Frame::NullArray);
    }
    let remote = session.tx.remote.as_ref().filter(|r| r.active);
    if let Some(r) = remote {
        if session.tx.watch.is_some() {
            return abort(session, CROSSSLOT);
        }
        if r.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return abort(session, Frame::NullArray);
        }
        // Every key must be on the watching node; it checks its own ownership again. A
        // watched key that lives elsewhere now moved since WATCH: the watch is void.
        let routing = node.routing();
        let on_watch_node = |k: &[u8]| match routing.owner(key_slot(k)) {
            Owner::Remote(o) => routing.addr(o) == Some(r.conn.addr),
            _ => false,
        };
        if !r.keys.iter().all(|k| on_watch_node(k)) {
            return abort(session, Frame::NullArray);
        }
        let elsewhere = cmds.iter().any(|c| {
            crate::cmd::resolve_checked(c).is_ok_and(|(spec, _)| {
                spec.key_positions(c.len()).any(|i| {
                    let owner = routing.owner(key_slot(c.arg(i)));
                    let addr = match owner {
                        Owner::Remote(o) => routing.addr(o),
                        _ => None,
                    };
                    addr != Some(r.conn.addr)
                })
            })
        });
        if elsewhere {
            return abort(session, CROSSSLOT);
        }
        let addr = r.conn.addr;
        if let Some(denied) = tx_acl_denied(node, session, &cmds) {
            return abort(session, denied);
        }
        let req = for_owner(session, &multi::encode_multiexec(&cmds));
        let pending = relay(session, addr, &req, RelayKind::Exec);
        // The node forgets the watch with EXEC.
        if let Some(r) = session.tx.remote.as_mut() {
            r.active = false;
            r.keys.clear();
        }
        return match pending {
            Some(p) => Planned::Later(p),
            None => Planned::Now(Frame::NullArray),
        };
    }
    let _gate = node.handoff.gate.read();
    let routing = node.routing();
    if !routing.standalone {
        // Scripts' declared keys count too.
        let key_slots: Vec<u16> = cmds.iter().flat_map(request_slots).collect();
        let watched_elsewhere = session.tx.watch.as_ref().is_some_and(|w| {
            w.keys
                .iter()
                .any(|k| routing.owner(key_slot(k)) != Owner::Local)
        });
        if watched_elsewhere {
            return abort(session, Frame::NullArray);
        }
        let mut owners: Vec<(Owner, u16)> = Vec::new();
        for &s in &key_slots {
            let o = routing.owner(s);
            if !owners.iter().any(|(x, _)| *x == o) {
                owners.push((o, s));
            }
        }
        if session.redirects == Redirects::Redirect
            && key_slots.iter().any(|&s| Some(&s) != key_slots.first())
        {
            return abort(session, CROSSSLOT);
        }
        if owners.iter().any(|(o, _)| *o == Owner::Unassigned) {
            return abort(session, CLUSTERDOWN);
        }
        if owners.len() > 1 {
            return abort(session, CROSSSLOT);
        }
        if let Some(&(Owner::Remote(o), slot)) = owners.first() {
            let Some(addr) = routing.addr(o) else {
                return abort(session, CLUSTERDOWN);
            };
            if session.redirects != Redirects::Forward {
                let m = moved(&routing, tls_client(session), slot, addr);
                return abort(session, m);
            }
            if session.tx.watch.is_some() {
                // Keys watched here, the transaction there: it could not be atomic.
                return abort(session, CROSSSLOT);
            }
            if let Some(denied) = tx_acl_denied(node, session, &cmds) {
                return abort(session, denied);
            }
            let req = for_owner(session, &multi::encode_multiexec(&cmds));
            return Planned::Later(forward(node, session, addr, &req));
        }
        let frozen = match multi::tx_slots(&cmds, session.tx.watch.as_ref()) {
            Some(slots) => slots.iter().any(|&s| node.handoff.is_frozen(s)),
            None => node.handoff.any_frozen(),
        };
        if frozen {
            return Planned::Later(Pending::Tx { cmds });
        }
    }
    // The transaction's own lease check, before and after (its commands skip theirs).
    let leased = node.lease.enforced();
    if leased && !node.lease.check() {
        return Planned::Later(Pending::FencedTx { cmds });
    }
    let mut ctx = Ctx {
        node,
        session,
        now: now_ms(),
    };
    let reply = multi::run_tx(&mut ctx, &cmds, specs.as_deref());
    session.tx.recycle(cmds, specs);
    if leased && !node.lease.serving() {
        return Planned::Now(crate::lease::ERR_LEASE_LOST);
    }
    Planned::Now(reply)
}
