//! Where a keyed request goes, decided from data alone: the routing, the command, the
//! connection's mode and a few facts about this node (which of its slots are frozen, whether
//! it holds its lease). No I/O: [`decide()`] returns a [`Decision`] and `plan` carries it out
//! (runs the command, forwards it, or leaves a pending reply), so the tests below check every
//! route without a socket.

use super::*;
use crate::cmd::CommandSpec;

/// What `plan` does with a keyed request.
#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    /// Answered at once: `-MOVED`, `-CROSSSLOT`, `-CLUSTERDOWN`.
    Reply(Frame),
    /// Every key is this node's: run it here.
    Here,
    /// A key of this node's is in a slot being handed over: wait for the flip, then plan
    /// again.
    WaitFrozen,
    /// Split over owners while this node holds no lease: its local share needs one, so the
    /// whole request waits for a renewal (or a table that sends it elsewhere).
    WaitLease,
    /// Every key belongs to the node at this address: forward the whole request.
    Forward(SocketAddr),
    /// The same for a blocking command, over a connection of its own.
    ForwardBlocking(SocketAddr),
    /// WATCH of another node's key: over the connection's own link to that node, where the
    /// watch lives.
    RemoteWatch(SocketAddr),
    /// The connection's transaction lives on another node: over its own link there.
    Relay(SocketAddr),
    /// Keys on several nodes: split by owner and merge.
    Split,
}

/// What [`decide()`] needs to know about the connection and this node.
pub(super) struct Facts<'a> {
    pub mode: Redirects,
    /// A client (not a peer) on a TLS connection: `-MOVED` names TLS ports.
    pub tls_client: bool,
    /// The connection's transaction (its WATCH) lives on another node.
    pub tx_remote: bool,
    /// Whether this node's slot is frozen (being handed over); `None` when none is (the
    /// common case: then no key's slot is looked at for it).
    pub frozen: Option<&'a dyn Fn(u16) -> bool>,
    /// Whether this node holds its ownership lease (asked only for a split).
    pub leased: &'a dyn Fn() -> bool,
}

/// `-MOVED slot addr`, naming the owner's TLS port to a client on a TLS connection (never
/// to a peer: nodes route by client addresses).
pub(super) fn moved(routing: &Routing, tls_client: bool, slot: u16, addr: SocketAddr) -> Frame {
    let addr = routing.client_facing(addr, tls_client);
    Frame::error(format!("MOVED {slot} {addr}"))
}

/// Decides how a keyed request (`spec`) is answered, given `route`, where [`route()`] sends it
/// under `routing`.
pub(super) fn decide(
    routing: &Routing,
    spec: &CommandSpec,
    req: &Request,
    r: Route,
    f: &Facts<'_>,
) -> Decision {
    let moved = |slot, addr| Decision::Reply(moved(routing, f.tls_client, slot, addr));
    if let (Route::Local | Route::Split, Some(frozen)) = (&r, f.frozen) {
        if spec.keys_in(req).any(|i| {
            let s = key_slot(req.arg(i));
            routing.owner(s) == Owner::Local && frozen(s)
        }) {
            return Decision::WaitFrozen;
        }
    }
    if spec.name == "ssubscribe" {
        // A subscription lives on the connection: it cannot be forwarded, so every client is
        // sent to the slot's owner.
        match r {
            Route::Remote(o) => {
                let slot = key_slot(req.arg(1));
                return match routing.addr(o) {
                    Some(a) => moved(slot, a),
                    None => Decision::Reply(CLUSTERDOWN),
                };
            }
            Route::Split => return Decision::Reply(CROSSSLOT),
            _ => {}
        }
    }
    let owner_addr = |o: u16, d: fn(SocketAddr) -> Decision| match routing.addr(o) {
        Some(addr) => d(addr),
        None => Decision::Reply(CLUSTERDOWN),
    };
    match (r, f.mode) {
        (Route::Local, _) => Decision::Here,
        (Route::Moved { slot, addr }, _) => moved(slot, addr),
        (Route::Down, _) => Decision::Reply(CLUSTERDOWN),
        (_, Redirects::Internal) => {
            // Send the forwarder to the owner of the first key that is not ours.
            let target =
                spec.keys_in(req)
                    .map(|i| key_slot(req.arg(i)))
                    .find_map(|s| match routing.owner(s) {
                        Owner::Remote(o) => routing.addr(o).map(|a| (s, a)),
                        _ => None,
                    });
            match target {
                Some((s, a)) => moved(s, a),
                None => Decision::Reply(CLUSTERDOWN),
            }
        }
        (Route::CrossSlot, _) => Decision::Reply(CROSSSLOT),
        // A watch lives in the session that set it: never over the shared connection.
        (Route::Remote(o), Redirects::Forward) if spec.name == "watch" => {
            owner_addr(o, Decision::RemoteWatch)
        }
        (Route::Remote(o), _) if f.tx_remote => owner_addr(o, Decision::Relay),
        (Route::Remote(o), _) if spec.has(crate::cmd::flags::BLOCKING) => {
            owner_addr(o, Decision::ForwardBlocking)
        }
        (Route::Remote(o), _) => owner_addr(o, Decision::Forward),
        (Route::Split, _) if !(f.leased)() => Decision::WaitLease,
        (Route::Split, _) => Decision::Split,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chkv_common::proto::NodeInfo;
    use chkv_common::ring::{NodeId, Ring};

    fn info(id: &str, port: u16, tls: Option<u16>) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
            tls_port: tls,
            since: 0,
        }
    }

    /// This node is "b" of a and b; a's client port is 7000 (TLS 7443).
    fn routing() -> Routing {
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        ring.add(NodeId::new("b"));
        let mut t = ring.slot_table();
        t.set_epoch(1);
        Routing::from_table(
            &t,
            &[info("a", 7000, Some(7443)), info("b", 7100, None)],
            "b",
        )
    }

    /// A key of this node's and a key of a's.
    fn keys(r: &Routing) -> (String, String) {
        let find = |local: bool| {
            (0..)
                .map(|i| format!("k{i}"))
                .find(|k| (r.owner(key_slot(k.as_bytes())) == Owner::Local) == local)
                .expect("a key")
        };
        (find(true), find(false))
    }

    fn run(r: &Routing, args: &[&str], f: &Facts<'_>) -> Decision {
        let req = Request::from_args(args.iter().copied());
        let (_, spec) = lookup(req.arg(0)).expect("a command");
        let route = route(r, spec, &req, f.mode == Redirects::Redirect);
        decide(r, spec, &req, route, f)
    }

    #[test]
    fn every_route_of_a_keyed_request() {
        let r = routing();
        let (mine, theirs) = keys(&r);
        let a = SocketAddr::from(([127, 0, 0, 1], 7000));
        let no = |_: u16| false;
        let yes = || true;
        let plain = Facts {
            mode: Redirects::Forward,
            tls_client: false,
            tx_remote: false,
            frozen: Some(&no),
            leased: &yes,
        };
        let slot = key_slot(theirs.as_bytes());
        let moved_a = Decision::Reply(Frame::error(format!("MOVED {slot} 127.0.0.1:7000")));
        assert_eq!(run(&r, &["GET", &mine], &plain), Decision::Here);
        assert_eq!(run(&r, &["GET", &theirs], &plain), Decision::Forward(a));
        assert_eq!(
            run(&r, &["BLPOP", &theirs, "0"], &plain),
            Decision::ForwardBlocking(a)
        );
        assert_eq!(
            run(&r, &["WATCH", &theirs], &plain),
            Decision::RemoteWatch(a)
        );
        assert_eq!(run(&r, &["MGET", &mine, &theirs], &plain), Decision::Split);
        // A subscription cannot be forwarded.
        assert_eq!(run(&r, &["SSUBSCRIBE", &theirs], &plain), moved_a);
        // The connection's transaction lives on a: everything remote goes over that link.
        let tx = Facts {
            tx_remote: true,
            ..plain
        };
        assert_eq!(run(&r, &["GET", &theirs], &tx), Decision::Relay(a));
        assert_eq!(run(&r, &["GET", &mine], &tx), Decision::Here);
        // A cluster-aware client: MOVED, naming the TLS port on a TLS connection, and
        // CROSSSLOT for keys of different slots.
        let aware = Facts {
            mode: Redirects::Redirect,
            ..plain
        };
        assert_eq!(run(&r, &["GET", &theirs], &aware), moved_a);
        let tls = Facts {
            mode: Redirects::Redirect,
            tls_client: true,
            ..plain
        };
        assert_eq!(
            run(&r, &["GET", &theirs], &tls),
            Decision::Reply(Frame::error(format!("MOVED {slot} 127.0.0.1:7443")))
        );
        assert_eq!(
            run(&r, &["MGET", &mine, &theirs], &aware),
            Decision::Reply(CROSSSLOT)
        );
        // A peer forwarding to us: never a second hop.
        let peer = Facts {
            mode: Redirects::Internal,
            ..plain
        };
        assert_eq!(run(&r, &["MGET", &mine, &theirs], &peer), moved_a);
        assert_eq!(run(&r, &["GET", &mine], &peer), Decision::Here);
    }

    #[test]
    fn frozen_slots_and_a_lapsed_lease_make_requests_wait() {
        let r = routing();
        let (mine, theirs) = keys(&r);
        let frozen = |s: u16| s == key_slot(mine.as_bytes());
        let no = || false;
        let f = Facts {
            mode: Redirects::Forward,
            tls_client: false,
            tx_remote: false,
            frozen: Some(&frozen),
            leased: &no,
        };
        assert_eq!(run(&r, &["GET", &mine], &f), Decision::WaitFrozen);
        assert_eq!(run(&r, &["MGET", &theirs, &mine], &f), Decision::WaitFrozen);
        // A frozen slot of another node's means nothing here.
        let theirs_frozen = |s: u16| s == key_slot(theirs.as_bytes());
        let yes = || true;
        let g = Facts {
            frozen: Some(&theirs_frozen),
            leased: &yes,
            ..f
        };
        assert_eq!(
            run(&r, &["GET", &theirs], &g),
            Decision::Forward(SocketAddr::from(([127, 0, 0, 1], 7000)))
        );
        // A split's local share needs the lease; a single-node request checks it where it
        // runs.
        let h = Facts { frozen: None, ..f };
        assert_eq!(run(&r, &["MGET", &mine, &theirs], &h), Decision::WaitLease);
        assert_eq!(run(&r, &["GET", &mine], &h), Decision::Here);
    }
}
