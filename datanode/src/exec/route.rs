//! Where a request runs, from the routing and the command's keys alone: here, on another
//! node, split over several, or an immediate redirect or error.

use crate::cluster::{Owner, Routing};
use crate::cmd::CommandSpec;
use crate::resp::Request;
use chkv_common::key_slot;
use std::net::SocketAddr;

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Run here.
    Local,
    /// Every key belongs to this other node: forward the whole request.
    Remote(u16),
    /// Keys belong to several nodes: split by owner and merge (plain connections only).
    Split,
    /// Redis Cluster's `-MOVED` for cluster-aware connections.
    Moved { slot: u16, addr: SocketAddr },
    /// Keys in different slots on a cluster-aware connection, or a command that cannot be
    /// split spanning nodes.
    CrossSlot,
    /// The slot has no owner (`-CLUSTERDOWN`).
    Down,
}

/// Commands a plain connection may have split across nodes (and how their answers merge).
/// PFCOUNT of keys on several nodes gathers their HyperLogLogs (an MGET per owner) and
/// counts the union here.
pub fn splittable(name: &str) -> bool {
    name == "pfcount"
        || chkv_common::split::Split::of(name.as_bytes()) != chkv_common::split::Split::No
}

/// Decides where `req` (a command described by `spec`) runs.
pub fn route(routing: &Routing, spec: &CommandSpec, req: &Request, redirects: bool) -> Route {
    if routing.standalone || spec.first_key <= 0 {
        return Route::Local;
    }
    let mut positions = spec.keys_in(req);
    let Some(first) = positions.next() else {
        return Route::Local;
    };
    let first_slot = key_slot(req.arg(first));
    let mut same_slot = true;
    let mut owner = routing.owner(first_slot);
    let mut same_owner = true;
    for i in positions {
        let s = key_slot(req.arg(i));
        if s != first_slot {
            same_slot = false;
            if routing.owner(s) != owner {
                same_owner = false;
                if owner == Owner::Unassigned || routing.owner(s) == Owner::Unassigned {
                    owner = Owner::Unassigned;
                }
            }
        }
    }
    if redirects {
        if !same_slot {
            return Route::CrossSlot;
        }
        return match owner {
            Owner::Local => Route::Local,
            Owner::Remote(o) => routing.addr(o).map_or(Route::Down, |addr| Route::Moved {
                slot: first_slot,
                addr,
            }),
            Owner::Unassigned => Route::Down,
        };
    }
    if owner == Owner::Unassigned {
        return Route::Down;
    }
    if !same_owner {
        return if splittable(spec.name) {
            Route::Split
        } else {
            Route::CrossSlot
        };
    }
    match owner {
        Owner::Local => Route::Local,
        Owner::Remote(o) => Route::Remote(o),
        Owner::Unassigned => Route::Down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::three_nodes;
    use crate::cmd::lookup;
    use chkv_common::ring::SlotTable;

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|s| s.as_bytes()))
    }

    fn key_owned_by(r: &Routing, want: Owner) -> String {
        (0..100_000)
            .map(|i| format!("k{i}"))
            .find(|k| r.owner(key_slot(k.as_bytes())) == want)
            .expect("some key")
    }

    #[test]
    fn routes() {
        let (table, infos) = three_nodes();
        let r = Routing::from_table(&table, &infos, "a");
        let local = key_owned_by(&r, Owner::Local);
        let remote = key_owned_by(&r, Owner::Remote(1));
        let get = lookup(b"get").expect("get").1;
        let mget = lookup(b"mget").expect("mget").1;
        let msetnx = lookup(b"msetnx").expect("msetnx").1;
        let ping = lookup(b"ping").expect("ping").1;
        assert_eq!(route(&r, get, &req(&["GET", &local]), false), Route::Local);
        assert_eq!(
            route(&r, get, &req(&["GET", &remote]), false),
            Route::Remote(1)
        );
        assert_eq!(route(&r, ping, &req(&["PING"]), false), Route::Local);
        assert_eq!(
            route(&r, mget, &req(&["MGET", &local, &remote]), false),
            Route::Split
        );
        assert_eq!(
            route(
                &r,
                msetnx,
                &req(&["MSETNX", &local, "1", &remote, "2"]),
                false
            ),
            Route::CrossSlot
        );
        // Cluster-aware connections get MOVED and CROSSSLOT like Redis Cluster.
        let slot = key_slot(remote.as_bytes());
        assert_eq!(
            route(&r, get, &req(&["GET", &remote]), true),
            Route::Moved {
                slot,
                addr: "127.0.0.1:7001".parse().expect("addr")
            }
        );
        assert_eq!(
            route(&r, mget, &req(&["MGET", "{t}a", "{t}b"]), true),
            route(&r, get, &req(&["GET", "{t}a"]), true)
        );
        assert_eq!(
            route(&r, mget, &req(&["MGET", &local, &remote]), true),
            Route::CrossSlot
        );
        assert_eq!(
            route(&Routing::standalone(), get, &req(&["GET", &remote]), true),
            Route::Local
        );
    }

    #[test]
    fn empty_table_is_down() {
        let r = Routing::from_table(&SlotTable::empty(1), &[], "a");
        let get = lookup(b"get").expect("get").1;
        assert_eq!(route(&r, get, &req(&["GET", "k"]), false), Route::Down);
    }
}
