//! CLUSTER: the slot table as Redis Cluster reports it, so cluster-aware clients can route.
//!
//! Asking for the topology (SLOTS, SHARDS, NODES) marks the connection cluster-aware: from
//! then on it gets `-MOVED` and `-CROSSSLOT` like a Redis Cluster client expects, instead of
//! having its requests forwarded. `CLUSTER REDIRECTS YES|NO` sets that choice explicitly.
//!
//! Between DataNodes: `PEERHELLO`/`PEERAUTH` authenticate a connection as another node of the
//! cluster (see [`crate::trust`]); `IMPORT` and `HANDOFF` are served only on such peer
//! sessions, for slots the node is receiving from that peer. To any other connection they do
//! not exist (Redis's reply to an unknown subcommand), whatever its password.

use super::flags::*;
use super::*;
use crate::handoff::Marks;
use chkv_common::{key_slot, SLOT_COUNT};
use std::fmt::Write as _;

const G: &str = "cluster";

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    subcommands: SUBCOMMANDS,
    ..spec(
        "cluster",
        -2,
        0,
        NO_KEYS,
        G,
        "3.0.0",
        "A container for Redis Cluster commands.",
        "",
        super::server::container,
    )
}];

static SUBCOMMANDS: &[CommandSpec] = &[
    spec("slots", 2, LOADING | STALE, NO_KEYS, G, "3.0.0",
        "Returns the mapping of cluster slots to nodes.", "", slots),
    spec("shards", 2, LOADING | STALE, NO_KEYS, G, "7.0.0",
        "Returns the mapping of cluster slots to shards.", "", shards),
    spec("nodes", 2, LOADING | STALE, NO_KEYS, G, "3.0.0",
        "Returns the cluster configuration for a node.", "", nodes),
    spec("keyslot", 3, STALE, NO_KEYS, G, "3.0.0",
        "Returns the hash slot for a key.", "key", keyslot),
    spec("info", 2, LOADING | STALE, NO_KEYS, G, "3.0.0",
        "Returns information about the state of a node.", "", info),
    spec("myid", 2, LOADING | STALE, NO_KEYS, G, "3.0.0",
        "Returns the ID of a node.", "", myid),
    spec("countkeysinslot", 3, STALE, NO_KEYS, G, "3.0.0",
        "Returns the number of keys in a hash slot.", "slot", countkeysinslot),
    spec("getkeysinslot", 4, STALE, NO_KEYS, G, "3.0.0",
        "Returns the key names in a hash slot.", "slot count", getkeysinslot),
    spec("redirects", 3, STALE | FAST, NO_KEYS, G, "7.2.4",
        "CHKV: YES makes this connection receive MOVED/CROSSSLOT like a cluster client; NO has the node forward its requests.",
        "YES | NO | INTERNAL", redirects),
    spec("import", -5, WRITE | ADMIN | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: stores entries handed over by another node (absolute expiry in ms, 0 for none).",
        "key expire-at value [key expire-at value ...]", import),
    spec("importpiece", 7, WRITE | ADMIN | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: stores a piece of a value too large to travel whole; offset 0 creates the key, later pieces add to it.",
        "key expire-at total offset piece", importpiece),
    spec("importstart", 3, WRITE | ADMIN | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: the entries of this slot imported next replace what this node holds there.",
        "slot", importstart),
    spec("handoff", -4, WRITE | ADMIN | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: the slots, whose entries were imported, now belong to this node.",
        "from-node-id slot [slot ...]", handoff),
    spec("handoffcheck", -4, ADMIN | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: how many of the slots this node took from that node; no earlier HANDOFF of theirs takes any from now on.",
        "from-node-id slot [slot ...]", handoffcheck),
    spec("lease", 4, ADMIN | LOADING | STALE | FAST | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: asks for an ownership lease while the NameNode is late; +OK grants it.",
        "node-id epoch", lease),
    spec("peerhello", 4, NO_AUTH | LOADING | STALE | FAST, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: starts the cluster-secret challenge-response; answers id, nonce, proof.",
        "node-id nonce", peerhello),
    spec("peerauth", 3, NO_AUTH | LOADING | STALE | FAST, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: finishes the challenge-response; the connection becomes a peer session.",
        "proof", peerauth),
    spec("functions", -3, ADMIN | NOSCRIPT | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: this node's function libraries (DIGEST), or an exchange of them (STATE).",
        "DIGEST | STATE [name counter origin code ...]", super::sync::cluster_sync),
    spec("users", -3, ADMIN | NOSCRIPT | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: this node's ACL users (DIGEST), or an exchange of them (STATE).",
        "DIGEST | STATE [name counter origin rules ...]", super::sync::cluster_sync),
    spec("asuser", -4, NOSCRIPT | INTERNAL, NO_KEYS, G, "7.2.4",
        "CHKV, between nodes: runs a command as a client's ACL user (a script or transaction of a restricted user).",
        "username command [arg ...]", asuser),
    spec("reset", -2, ADMIN | NOSCRIPT | STALE, NO_KEYS, G, "3.0.0",
        "Resets a node (not supported: a DataNode leaves its cluster with a drain).",
        "[HARD | SOFT]", reset),
    spec("help", 2, LOADING | STALE, NO_KEYS, G, "5.0.0",
        "Returns helpful text about the different subcommands.", "", help),
];

/// `CLUSTER ASUSER` is planned by the connection (see [`crate::exec`]); it reaches a handler
/// only nested where it has no meaning.
fn asuser(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Err(Frame::err("ERR CLUSTER ASUSER cannot be nested"))
}

/// `CLUSTER LEASE node-id epoch`: another node of the table, whose NameNode is late, asks
/// whether it may go on serving (see [`crate::lease`] for the rule and why it is safe). Only
/// on a peer session, for the peer itself.
fn lease(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let requester =
        std::str::from_utf8(req.arg(2)).map_err(|_| Frame::err("ERR invalid node id"))?;
    if ctx.session.peer.as_deref() != Some(requester) {
        return Err(Frame::err("ERR a node asks for its own lease only"));
    }
    let epoch = parse_i64(req.arg(3))
        .and_then(|e| u64::try_from(e).ok())
        .ok_or(ERR_NOT_INT)?;
    let table = ctx.node.base_table();
    match ctx.node.lease.may_grant(&table, requester, epoch) {
        Ok(()) => Ok(Frame::ok()),
        Err(refusal) => Err(Frame::error(format!("TRYAGAIN lease refused: {refusal}"))),
    }
}

fn peerhello(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (secret, tls_cluster) = {
        let c = ctx.node.config();
        (c.cluster_secret.clone(), c.tls.cluster)
    };
    if tls_cluster && !ctx.session.tls {
        // Redis's tls-cluster: the links between nodes are encrypted, or there is none.
        return Err(Frame::err(
            "ERR tls-cluster is on: peers connect to this node's TLS port",
        ));
    }
    let (reply, pending) =
        crate::trust::challenge(&secret, &ctx.node.node_id, req.arg(2), req.arg(3))?;
    ctx.session.peer_pending = Some(Box::new(pending));
    Ok(reply)
}

fn peerauth(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    // One proof per challenge: a wrong guess needs a new PEERHELLO (and a new nonce).
    let pending = ctx
        .session
        .peer_pending
        .take()
        .ok_or(Frame::err("ERR PEERAUTH without PEERHELLO"))?;
    let secret = ctx.node.config().cluster_secret.clone();
    match crate::trust::finish(&secret, *pending, req.arg(2)) {
        Some(peer) => {
            ctx.session.peer = Some(peer.into());
            ctx.session.authenticated = true;
            Ok(Frame::ok())
        }
        None => Err(Frame::err(
            "ERR cluster peer authentication failed: wrong cluster secret",
        )),
    }
}

/// Refuses `slots` unless this session's peer may hand them to this node now (see
/// [`crate::trust::may_receive`]). The refusal is `-TRYAGAIN`: this node's table may be a
/// moment behind the order the peer carries out (the NameNode tells them on different
/// connections), and the peer retries the batch for a while before giving up.
fn check_receiving(ctx: &Ctx<'_>, slots: impl IntoIterator<Item = u16>) -> Result<(), Frame> {
    let peer = ctx.session.peer.as_deref().unwrap_or_default();
    let routing = ctx.node.routing();
    let adopted = |s: u16| ctx.node.adopted_from(s);
    match slots
        .into_iter()
        .find(|&s| !crate::trust::may_receive(&routing, peer, s, adopted(s).as_deref()))
    {
        None => Ok(()),
        Some(s) => Err(Frame::error(format!(
            "TRYAGAIN slot {s} is not being handed to this node by {} (table epoch {})",
            chkv_common::auth::escape(peer.as_bytes()),
            routing.epoch
        ))),
    }
}

fn reset(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Err(Frame::err(
        "ERR CLUSTER RESET is not supported: a DataNode leaves its cluster with a drain (`k` on the admin port, or SIGTERM)",
    ))
}

/// Runs one step of a peer's batch (`IMPORTSTART`, `IMPORT`, `IMPORTPIECE`) and records how
/// it went in the session's batch ([`crate::handoff::Receiving`]): a failed step makes the
/// batch's `HANDOFF`, which follows on this connection, refused. Under the gate, like a
/// welcome that drops this node's slots (see `Node::set_routing_dropping`): stored before
/// the drop (and dropped with the reset count moved, so the `HANDOFF` is refused) or after
/// it, never half-way.
fn import_step(ctx: &mut Ctx<'_>, step: impl FnOnce(&mut Ctx<'_>) -> Reply) -> Reply {
    let node = ctx.node;
    let gate = node.handoff.gate.read();
    let marks = Marks {
        resets: node.lease.resets(),
        fence: *node.handoff.fence.lock(),
    };
    let result = step(ctx);
    drop(gate);
    ctx.session.import.imported(result.is_ok(), marks);
    result
}

fn import(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    import_step(ctx, |ctx| {
        let entries = crate::handoff::decode_import(req)?;
        check_receiving(ctx, entries.iter().map(|e| key_slot(&e.key)))?;
        let stored = ctx
            .node
            .db
            .import(&entries, ctx.now)
            .map_err(|e| Frame::error(format!("ERR CLUSTER IMPORT: {e}")))?;
        Ok(Frame::Integer(stored as i64))
    })
}

/// `CLUSTER IMPORTPIECE key expire-at total offset piece`: a piece of a value too large to
/// travel in one `CLUSTER IMPORT` (see [`crate::store::handoff`]), from the slot's owner,
/// under the same rules as an import.
fn importpiece(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    import_step(ctx, |ctx| {
        let piece = crate::handoff::decode_piece(req)?;
        check_receiving(ctx, [key_slot(&piece.key)])?;
        let stored = ctx
            .node
            .db
            .import_piece(&piece, ctx.now)
            .map_err(|e| Frame::error(format!("ERR CLUSTER IMPORTPIECE: {e}")))?;
        Ok(Frame::Integer(i64::from(stored)))
    })
}

/// `CLUSTER IMPORTSTART slot`, sent before a slot's `CLUSTER IMPORT`s in every attempt at a
/// batch: an imported slot replaces what this node held there, never merges with it. What
/// it held is a stale copy (an earlier attempt at that slot imported here and never
/// flipped: its `HANDOFF` refused, or never sent because the owner's lease lapsed).
/// Merged, a key the owner deleted since would come back with the flip, and a key that
/// expired on the way would keep an old value. That holds for a slot this node adopted too
/// (a flip whose reply was lost): the sender still owns the slot by its own account, so
/// what it sends is the slot's content.
fn importstart(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    import_step(ctx, |ctx| {
        let slot = slot_arg(req.arg(2))?;
        check_receiving(ctx, [slot])?;
        ctx.node.db.drop_slot(slot);
        Ok(Frame::ok())
    })
}

fn handoff(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let from = String::from_utf8_lossy(req.arg(2)).into_owned();
    if ctx.session.peer.as_deref() != Some(from.as_str()) {
        return Err(Frame::err("ERR a node hands over only its own slots"));
    }
    // Decided and adopted under the fence: a check sees this flip whole, or fences it.
    let fence = ctx.node.handoff.fence.lock();
    let now = Marks {
        resets: ctx.node.lease.resets(),
        fence: *fence,
    };
    // The batch ends here, flipped or not.
    if let Err(refusal) = ctx.session.import.handoff(now) {
        return Err(Frame::err(refusal.text()));
    }
    let slots = req
        .iter()
        .skip(3)
        .map(slot_arg)
        .collect::<Result<Vec<u16>, Frame>>()?;
    check_receiving(ctx, slots.iter().copied())?;
    ctx.node.adopt(&from, &slots);
    drop(fence);
    Ok(Frame::ok())
}

/// `CLUSTER HANDOFFCHECK from-node-id slot [slot ...]`: the peer lost the reply of a
/// `HANDOFF` (its connection ended) and asks how many of these slots this node took from
/// it. Under the fence, which it moves: a `HANDOFF` of a batch imported before this check
/// (still on its way in a connection that ended) is refused from now on, so an answer of
/// none stays true and the peer may serve the slots again (see
/// [`crate::handoff::mover`]). Only on a peer session, for the peer itself.
fn handoffcheck(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let from = String::from_utf8_lossy(req.arg(2)).into_owned();
    if ctx.session.peer.as_deref() != Some(from.as_str()) {
        return Err(Frame::err("ERR a node checks only its own handoffs"));
    }
    let slots = req
        .iter()
        .skip(3)
        .map(slot_arg)
        .collect::<Result<Vec<u16>, Frame>>()?;
    let mut fence = ctx.node.handoff.fence.lock();
    *fence = fence.wrapping_add(1);
    let took = slots
        .iter()
        .filter(|&&s| ctx.node.adopted_from(s).as_deref() == Some(from.as_str()))
        .count();
    drop(fence);
    Ok(Frame::Integer(took as i64))
}

/// Whether the session is a client on a TLS connection (which is told TLS ports).
fn tls_client(ctx: &Ctx<'_>) -> bool {
    ctx.session.tls && ctx.session.peer.is_none()
}

/// The TLS port of the node whose client address is `addr` (this node's own when standalone).
fn tls_port_of(ctx: &Ctx<'_>, addr: std::net::SocketAddr) -> Option<u16> {
    let r = ctx.node.routing();
    if r.standalone {
        return ctx.node.tls_port();
    }
    r.nodes
        .iter()
        .find(|n| n.client_addr == addr)
        .and_then(|n| n.tls_port)
}

/// A node as CLUSTER reports it: id, address, whether it is this node, its slot runs.
type NodeView = (String, std::net::SocketAddr, bool, Vec<(u16, u16)>);

/// The nodes to report and the slot runs of each.
///
/// A client on a TLS connection is told the nodes' TLS ports (Redis 7.2+: each client gets the
/// port of its kind of connection); a peer, the client addresses nodes route by.
fn topology(ctx: &Ctx<'_>, tls: bool) -> Vec<NodeView> {
    let r = ctx.node.routing();
    let mut my_addr = ctx.node.advertised_addr();
    if let (true, Some(port)) = (tls, ctx.node.tls_port()) {
        my_addr.set_port(port);
    }
    if r.standalone {
        return vec![(
            ctx.node.node_id.clone(),
            my_addr,
            true,
            vec![(0, SLOT_COUNT as u16 - 1)],
        )];
    }
    let mut out: Vec<_> = r
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.id.as_str().to_string(),
                r.client_facing(n.client_addr, tls),
                r.me == Some(i as u16),
                vec![],
            )
        })
        .collect();
    for (s, e, o) in r.owners.runs() {
        if let Some(n) = out.get_mut(o as usize) {
            n.3.push((s, e));
        }
    }
    out
}

fn slots(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.session.redirects = Redirects::Redirect;
    let mut runs = vec![];
    for (id, addr, _, ranges) in topology(ctx, tls_client(ctx)) {
        for (s, e) in ranges {
            runs.push((s, e, id.clone(), addr));
        }
    }
    runs.sort_by_key(|r| r.0);
    Ok(Frame::Array(
        runs.into_iter()
            .map(|(s, e, id, addr)| {
                Frame::Array(vec![
                    Frame::Integer(s as i64),
                    Frame::Integer(e as i64),
                    Frame::Array(vec![
                        Frame::bulk(addr.ip().to_string()),
                        Frame::Integer(addr.port() as i64),
                        Frame::bulk(id),
                        Frame::Array(vec![]),
                    ]),
                ])
            })
            .collect(),
    ))
}

fn shards(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.session.redirects = Redirects::Redirect;
    let kv = |k: &'static str, v: Frame| (Frame::bulk_static(k), v);
    Ok(Frame::Array(
        topology(ctx, false)
            .into_iter()
            .map(|(id, addr, _, ranges)| {
                let slots = ranges
                    .iter()
                    .flat_map(|(s, e)| [Frame::Integer(*s as i64), Frame::Integer(*e as i64)])
                    .collect();
                // Both ports, as Redis 7.2+ reports them: `port` plaintext, `tls-port` TLS.
                let mut node = vec![
                    kv("id", Frame::bulk(id)),
                    kv("port", Frame::Integer(addr.port() as i64)),
                ];
                if let Some(p) = tls_port_of(ctx, addr) {
                    node.push(kv("tls-port", Frame::Integer(p as i64)));
                }
                node.extend([
                    kv("ip", Frame::bulk(addr.ip().to_string())),
                    kv("endpoint", Frame::bulk(addr.ip().to_string())),
                    kv("role", Frame::bulk_static("master")),
                    kv("replication-offset", Frame::Integer(0)),
                    kv("health", Frame::bulk_static("online")),
                ]);
                Frame::Map(vec![
                    kv("slots", Frame::Array(slots)),
                    kv("nodes", Frame::Array(vec![Frame::Map(node)])),
                ])
            })
            .collect(),
    ))
}

/// The CLUSTER NODES text.
pub fn nodes_text(ctx: &Ctx<'_>) -> String {
    let epoch = ctx.node.routing().epoch;
    let mut out = String::new();
    for (id, addr, me, ranges) in topology(ctx, tls_client(ctx)) {
        let flags = if me { "myself,master" } else { "master" };
        let _ = write!(
            out,
            "{id} {addr}@{} {flags} - 0 0 {epoch} connected",
            addr.port() as u32 + 10000
        );
        for (s, e) in ranges {
            if s == e {
                let _ = write!(out, " {s}");
            } else {
                let _ = write!(out, " {s}-{e}");
            }
        }
        out.push('\n');
    }
    out
}

fn nodes(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.session.redirects = Redirects::Redirect;
    Ok(Frame::Verbatim(bytes::Bytes::from(nodes_text(ctx))))
}

fn keyslot(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    Ok(Frame::Integer(key_slot(req.arg(2)) as i64))
}

fn info(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let r = ctx.node.routing();
    let (assigned, known) = if r.standalone {
        (SLOT_COUNT, 1)
    } else {
        (r.owners.assigned(), r.nodes.len())
    };
    let state = if assigned == SLOT_COUNT { "ok" } else { "fail" };
    let text = format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n\
         cluster_known_nodes:{known}\r\ncluster_size:{known}\r\ncluster_current_epoch:{e}\r\n\
         cluster_my_epoch:{e}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n",
        e = r.epoch
    );
    Ok(Frame::Verbatim(bytes::Bytes::from(text)))
}

fn myid(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::bulk(&ctx.node.node_id))
}

fn slot_arg(a: &[u8]) -> Result<u16, Frame> {
    match parse_i64(a) {
        Some(s) if (0..SLOT_COUNT as i64).contains(&s) => Ok(s as u16),
        _ => Err(Frame::err("ERR Invalid slot")),
    }
}

fn countkeysinslot(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let s = slot_arg(req.arg(2))?;
    Ok(Frame::Integer(ctx.node.db.slot_len(s) as i64))
}

fn getkeysinslot(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let s = slot_arg(req.arg(2))?;
    let n = match parse_i64(req.arg(3)) {
        Some(n) if n >= 0 => n as usize,
        _ => return Err(Frame::err("ERR Invalid number of keys")),
    };
    let keys = ctx.node.db.lock(s).keys(n, ctx.now);
    Ok(Frame::Array(keys.into_iter().map(Frame::Bulk).collect()))
}

fn redirects(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let a = req.arg(2);
    ctx.session.redirects = if is(a, "YES") {
        Redirects::Redirect
    } else if is(a, "NO") {
        Redirects::Forward
    } else if is(a, "INTERNAL") {
        Redirects::Internal
    } else {
        return Err(ERR_SYNTAX);
    };
    Ok(Frame::ok())
}

fn help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "COUNTKEYSINSLOT <slot>",
            "GETKEYSINSLOT <slot> <count>",
            "INFO",
            "KEYSLOT <key>",
            "LEASE <node-id> <epoch>",
            "    Between nodes: may that node go on serving its slots (while the NameNode is late)?",
            "MYID",
            "NODES",
            "REDIRECTS YES|NO|INTERNAL",
            "    YES: answer MOVED/CROSSSLOT like Redis Cluster; NO: forward to the owner;",
            "    INTERNAL: run only when every key is local, else MOVED (used between nodes).",
            "SHARDS",
            "SLOTS",
            "HELP",
        ]
        .iter()
        .map(|l| Frame::simple(l))
        .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::resp::Frame;

    /// Node b, whose table gives every slot to a, on a peer session from a.
    fn receiving_from_a() -> Harness {
        use crate::cluster::Routing;
        use chkv_common::proto::NodeInfo;
        use chkv_common::ring::{NodeId, Ring};
        let mut h = Harness::with_config(crate::config::Config {
            node_id: Some("b".into()),
            ..Default::default()
        });
        let info = |id: &str, port: u16| NodeInfo {
            id: NodeId::new(id),
            client_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port + 1)),
            tls_port: None,
            since: 0,
        };
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        let mut table = ring.slot_table();
        table.set_epoch(1);
        let infos = [info("a", 7000), info("b", 7100)];
        assert!(h.node.set_routing(Routing::from_table(&table, &infos, "b")));
        h.session.peer = Some("a".into());
        h
    }

    /// An attempt at handing a slot over that imported its entries and never flipped (the
    /// owner's lease lapsed before its HANDOFF) left a copy here. The next attempt replaces
    /// it: a key the owner deleted in between does not come back with the flip; so does a
    /// batch sent again to a slot this node adopted (the flip's reply was lost).
    #[test]
    fn an_imported_slot_replaces_a_stale_copy() {
        use crate::store::{Value, NO_EXPIRY};
        let mut h = receiving_from_a();
        let slot = chkv_common::key_slot(b"{s}x");
        let slot_arg = slot.to_string();
        let import = |h: &mut Harness, entries: &[(&str, &str)]| -> Frame {
            let src = crate::store::Db::new();
            for (k, v) in entries {
                src.lock_key(k.as_bytes()).set(
                    k.as_bytes(),
                    Value::str(v.as_bytes()),
                    NO_EXPIRY,
                    h.now,
                );
            }
            let mut args: Vec<Vec<u8>> = vec![b"CLUSTER".to_vec(), b"IMPORT".to_vec()];
            for e in src.export_slot(slot, h.now) {
                args.push(e.key.to_vec());
                args.push(e.expire_at.to_string().into_bytes());
                args.push(e.value.to_vec());
            }
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            h.run_bytes(&args)
        };
        // The first attempt: both keys copied, no flip.
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &slot_arg]), Frame::ok());
        assert_eq!(import(&mut h, &[("{s}x", "1"), ("{s}y", "1")]), int(2));
        // The owner deleted {s}y and changed {s}x meanwhile; the second attempt flips.
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &slot_arg]), Frame::ok());
        assert_eq!(import(&mut h, &[("{s}x", "2")]), int(1));
        assert_eq!(h.run(&["CLUSTER", "HANDOFF", "a", &slot_arg]), Frame::ok());
        assert_eq!(h.node.db.slot_len(slot), 1, "{{s}}y came back");
        assert_eq!(h.run(&["GET", "{s}x"]), bulk("2"));
        // The owner sends the slot again (the HANDOFF's reply was lost; it deleted {s}x
        // meanwhile): what it sends is the slot's content.
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &slot_arg]), Frame::ok());
        assert_eq!(import(&mut h, &[("{s}z", "3")]), int(1));
        assert_eq!(h.run(&["CLUSTER", "HANDOFF", "a", &slot_arg]), Frame::ok());
        assert_eq!(h.run(&["GET", "{s}x"]), Frame::Null);
        assert_eq!(h.node.db.slot_len(slot), 1);
        // Only the slot's owner may start an import of it.
        h.session.peer = Some("c".into());
        let other = (0..chkv_common::SLOT_COUNT as u16)
            .find(|&s| s != slot)
            .expect("slot");
        let r = h.run(&["CLUSTER", "IMPORTSTART", &other.to_string()]);
        assert!(
            matches!(r, Frame::Error(ref e) if e.starts_with("TRYAGAIN")),
            "{r:?}"
        );
        assert!(h.session.import.failed(), "the batch's HANDOFF is refused");
    }

    /// A sender whose connection ended after its HANDOFF asks whether it was taken; the
    /// check fences a HANDOFF still on its way, so an answer of none stays true.
    #[test]
    fn a_handoff_check_answers_and_fences_late_flips() {
        let mut h = receiving_from_a();
        let (s1, s2) = ("10".to_string(), "11".to_string());
        let tryagain = |r: &Frame, text: &str| matches!(r, Frame::Error(e) if e.starts_with("TRYAGAIN") && e.contains(text));
        // A HANDOFF with no import before it on this connection: refused.
        let r = h.run(&["CLUSTER", "HANDOFF", "a", &s1]);
        assert!(tryagain(&r, "no import"), "{r:?}");
        assert_eq!(h.node.adopted_from(10), None);
        // Imported, then a check (the sender lost a connection): the HANDOFF of the batch
        // imported before the check is refused, and the check said none were taken.
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &s1]), Frame::ok());
        assert_eq!(h.run(&["CLUSTER", "HANDOFFCHECK", "a", &s1, &s2]), int(0));
        let r = h.run(&["CLUSTER", "HANDOFF", "a", &s1]);
        assert!(tryagain(&r, "handoff check"), "{r:?}");
        assert_eq!(h.node.adopted_from(10), None);
        // A batch imported after the check flips; a check then counts what was taken.
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &s1]), Frame::ok());
        assert_eq!(h.run(&["CLUSTER", "IMPORTSTART", &s2]), Frame::ok());
        assert_eq!(h.run(&["CLUSTER", "HANDOFF", "a", &s1, &s2]), Frame::ok());
        assert_eq!(h.node.adopted_from(11).as_deref(), Some("a"));
        assert_eq!(h.run(&["CLUSTER", "HANDOFFCHECK", "a", &s1, &s2]), int(2));
        assert_eq!(h.run(&["CLUSTER", "HANDOFFCHECK", "a", "12"]), int(0));
        // Only for the peer's own handoffs, and only on a peer session.
        let r = h.run(&["CLUSTER", "HANDOFFCHECK", "c", &s1]);
        assert!(matches!(r, Frame::Error(_)), "{r:?}");
        h.session.peer = None;
        let r = h.run(&["CLUSTER", "HANDOFFCHECK", "a", &s1]);
        assert!(matches!(r, Frame::Error(_)), "{r:?}");
        h.session.peer = Some("a".into());
        let r = h.run(&["CLUSTER", "HANDOFFCHECK", "a", "16384"]);
        assert!(matches!(r, Frame::Error(_)), "{r:?}");
    }

    #[test]
    fn standalone_cluster_view() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CLUSTER", "KEYSLOT", "foo"]), int(12182));
        assert_eq!(
            h.run(&["CLUSTER", "KEYSLOT", "{user1000}.a"]),
            int(chkv_common::key_slot(b"user1000") as i64)
        );
        let Frame::Array(slots) = h.run(&["CLUSTER", "SLOTS"]) else {
            panic!()
        };
        assert_eq!(slots.len(), 1);
        assert_eq!(h.session.redirects, super::Redirects::Redirect);
        let Frame::Bulk(id) = h.run(&["CLUSTER", "MYID"]) else {
            panic!()
        };
        assert_eq!(id.len(), 40);
        let Frame::Verbatim(nodes) = h.run(&["CLUSTER", "NODES"]) else {
            panic!()
        };
        let nodes = String::from_utf8_lossy(&nodes).into_owned();
        assert!(
            nodes.contains("myself,master") && nodes.trim_end().ends_with("0-16383"),
            "{nodes}"
        );
        let Frame::Verbatim(info) = h.run(&["CLUSTER", "INFO"]) else {
            panic!()
        };
        assert!(String::from_utf8_lossy(&info).contains("cluster_state:ok"));
        h.run(&["SET", "foo", "1"]);
        assert_eq!(h.run(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]), int(1));
        assert_eq!(
            h.run(&["CLUSTER", "GETKEYSINSLOT", "12182", "10"]),
            Frame::Array(vec![bulk("foo")])
        );
        assert_eq!(
            h.run(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
            err("ERR Invalid slot")
        );
        assert_eq!(
            h.run(&["CLUSTER", "GETKEYSINSLOT", "1", "-1"]),
            err("ERR Invalid number of keys")
        );
        assert_eq!(h.run(&["CLUSTER", "REDIRECTS", "NO"]), Frame::ok());
        assert_eq!(h.session.redirects, super::Redirects::Forward);
        assert_eq!(
            h.run(&["CLUSTER", "REDIRECTS", "MAYBE"]),
            err("ERR syntax error")
        );
    }
}
