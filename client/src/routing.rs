//! Where requests go: the slot map built from the NameNode's table (plus what `-MOVED`
//! replies taught us since), and the command table that says which arguments are keys.
//!
//! As in redis-rs's `slot_map.rs`, the map is a lookup structure: a slot indexes an owner,
//! the owner indexes a node. It holds the nodes' connection pools so that a lookup is all a
//! request needs, but it opens nothing itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chkv_common::{NodeInfo, Slot, SlotOwners, SlotTable, SLOT_COUNT};

use crate::conn::NodePool;

// Generated from the DataNode's command table (see the module's docs); kept as written.
#[rustfmt::skip]
mod keys;

/// A slot moved by a handoff that the NameNode's table does not show yet: learned from a
/// `-MOVED` while the table said `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Override {
    pub from: Option<SocketAddr>,
    pub to: SocketAddr,
}

/// One immutable routing snapshot. Replaced whole, never changed in place.
#[derive(Clone)]
pub(crate) struct Routes {
    /// Epoch of the NameNode table this came from (0 for a standalone node).
    pub epoch: u64,
    /// Owner of each slot: an index into `nodes`.
    owners: SlotOwners,
    /// Every node of the table (owners or not, e.g. a node still joining) and every node a
    /// `-MOVED` pointed to.
    pub nodes: Vec<Arc<NodePool>>,
    /// The table's node list, as the NameNode sent it.
    pub infos: Vec<NodeInfo>,
    pub overrides: HashMap<u16, Override>,
}

impl Routes {
    /// Routes with no node at all (before the first table).
    pub fn empty() -> Routes {
        Routes {
            epoch: 0,
            owners: SlotOwners::none(),
            nodes: Vec::new(),
            infos: Vec::new(),
            overrides: HashMap::new(),
        }
    }

    /// One node that owns every slot.
    pub fn standalone(pool: Arc<NodePool>) -> Routes {
        Routes {
            owners: SlotOwners::all(0),
            nodes: vec![pool],
            ..Routes::empty()
        }
    }

    /// The routes for a NameNode table. `pool` gives the (shared, reused) pool of an address;
    /// overrides of `previous` survive while the table still names the node they moved from.
    pub fn from_table(
        table: &SlotTable,
        infos: Vec<NodeInfo>,
        previous: &Routes,
        pool: &mut dyn FnMut(SocketAddr) -> Arc<NodePool>,
    ) -> Routes {
        let mut nodes: Vec<Arc<NodePool>> = Vec::with_capacity(infos.len());
        let mut index_of_addr: HashMap<SocketAddr, u16> = HashMap::new();
        for info in &infos {
            if let std::collections::hash_map::Entry::Vacant(e) =
                index_of_addr.entry(info.client_addr)
            {
                e.insert(nodes.len() as u16);
                nodes.push(pool(info.client_addr));
            }
        }
        // An owner without an address is unowned.
        let owners = SlotOwners::of_table(table, |id| {
            let info = infos.iter().find(|i| &i.id == id)?;
            index_of_addr.get(&info.client_addr).copied()
        });
        let mut routes = Routes {
            epoch: table.epoch(),
            owners,
            nodes,
            infos,
            overrides: HashMap::new(),
        };
        for (&slot, ov) in &previous.overrides {
            // Still the node it moved from: the NameNode has not published the move yet.
            if routes.owner_addr(slot) == ov.from && routes.is_member(ov.to) {
                routes.set_owner(slot, ov.to, ov.from, pool);
            }
        }
        routes
    }

    /// A copy with `slot` owned by `to` (from a `-MOVED`); `None` when nothing changes.
    ///
    /// Only members of the table are recorded: a DataNode that has not applied the newest
    /// table yet may point at a node that has left (or died), and such an override would
    /// outlive the table that already knows better. A `-MOVED` back to the table's own owner
    /// removes the override.
    pub fn with_moved(
        &self,
        slot: u16,
        to: SocketAddr,
        pool: &mut dyn FnMut(SocketAddr) -> Arc<NodePool>,
    ) -> Option<Routes> {
        let current = self.owner_addr(slot);
        if current == Some(to) || slot as usize >= SLOT_COUNT || !self.is_member(to) {
            return None;
        }
        let mut next = self.clone();
        // The table's owner, across several hops.
        let from = self.overrides.get(&slot).map_or(current, |o| o.from);
        next.set_owner(slot, to, from, pool);
        if from == Some(to) {
            next.overrides.remove(&slot);
        }
        Some(next)
    }

    /// Whether `addr` is a DataNode of the table.
    fn is_member(&self, addr: SocketAddr) -> bool {
        self.infos.iter().any(|i| i.client_addr == addr)
    }

    fn set_owner(
        &mut self,
        slot: u16,
        to: SocketAddr,
        from: Option<SocketAddr>,
        pool: &mut dyn FnMut(SocketAddr) -> Arc<NodePool>,
    ) {
        let index = match self.nodes.iter().position(|n| n.addr() == to) {
            Some(i) => i as u16,
            None => {
                self.nodes.push(pool(to));
                (self.nodes.len() - 1) as u16
            }
        };
        self.owners.set(slot, Some(index));
        self.overrides.insert(slot, Override { from, to });
    }

    /// The pool of the node owning `slot`.
    pub fn owner(&self, slot: u16) -> Option<&Arc<NodePool>> {
        self.nodes.get(self.owners.get(slot)? as usize)
    }

    pub fn owner_addr(&self, slot: u16) -> Option<SocketAddr> {
        self.owner(slot).map(|p| p.addr())
    }

    /// Index of the owner of `slot` in `nodes`.
    pub fn owner_index(&self, slot: u16) -> Option<usize> {
        let index = self.owners.get(slot)? as usize;
        (index < self.nodes.len()).then_some(index)
    }

    /// Nodes owning at least one slot, in `nodes` order: where node-wide commands go.
    pub fn owning_nodes(&self) -> Vec<Arc<NodePool>> {
        self.nodes
            .iter()
            .zip(self.owners.owning(self.nodes.len()))
            .filter(|(_, owns)| *owns)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Some node to send a keyless command to: the first owner.
    pub fn any(&self) -> Option<&Arc<NodePool>> {
        self.owners
            .first_owner()
            .and_then(|o| self.nodes.get(o as usize))
            .or_else(|| self.nodes.first())
    }

    /// The slots whose owner (by address) differs in `next`.
    pub fn moved_in(&self, next: &Routes) -> Vec<u16> {
        (0..SLOT_COUNT as u16)
            .filter(|&s| self.owner_addr(s) != next.owner_addr(s))
            .collect()
    }

    /// How many slots have an owner.
    pub fn assigned(&self) -> usize {
        self.owners.assigned()
    }
}

/// Where a command goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The owner of this slot.
    Slot(u16),
    /// Any node (keyless or node-local commands).
    Any,
}

/// How a multi-key command whose keys live in several slots is split and merged: the one
/// definition the DataNode's forwarding uses too.
pub(crate) use chkv_common::split::Split;

/// Which arguments of a command are keys: positions `first..=last` (a negative `last` counts
/// from the end, -1 the last argument) every `step`. `first == 0` means no keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySpec {
    pub first: usize,
    pub last: isize,
    pub step: usize,
    pub split: Split,
}

/// The key positions of the commands CHKV serves (the facts COMMAND reports), from the
/// DataNode's command table through the generated [`keys::key_range`]; how a multi-key
/// command splits is [`Split::of`]. Unknown commands have no keys and go to any node; a node
/// that owns the key's slot elsewhere answers `-MOVED`, which the client follows, so they
/// still work, one hop later.
pub(crate) fn key_spec(name: &[u8]) -> KeySpec {
    let mut lower = [0u8; 24];
    let Some(lower) = lower.get_mut(..name.len()) else {
        return KeySpec {
            first: 0,
            last: 0,
            step: 1,
            split: Split::No,
        };
    };
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    let (first, last, step) = keys::key_range(lower).unwrap_or((0, 0, 1));
    KeySpec {
        first,
        last,
        step,
        split: Split::of(lower),
    }
}

/// Where the timeout of a blocking command is, for a command of `argc` arguments: such a
/// command waits on the server, so it takes a connection of its own and its reply may take
/// as long as its timeout. `None` for every other command.
pub(crate) fn blocking_timeout(name: &[u8], argc: usize) -> Option<usize> {
    if !(3..=16).contains(&name.len()) || argc < 3 {
        return None;
    }
    let mut lower = [0u8; 16];
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    match &lower[..name.len()] {
        b"blpop" | b"brpop" | b"blmove" | b"brpoplpush" | b"bzpopmin" | b"bzpopmax" => {
            Some(argc - 1)
        }
        b"blmpop" | b"bzmpop" => Some(1),
        _ => None,
    }
}

impl KeySpec {
    /// Positions of the keys in a command of `argc` arguments (empty when it has none, or
    /// too few arguments, which the server will answer with its arity error).
    pub fn positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let last = if self.last < 0 {
            argc as isize + self.last
        } else {
            self.last
        };
        let (first, last) = if self.first == 0 || last < self.first as isize {
            (1, 0)
        } else {
            (self.first, (last as usize).min(argc.saturating_sub(1)))
        };
        (first..=last).step_by(self.step.max(1))
    }
}

/// The slot of `key`, checked (every `key_slot` result is in range).
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    Slot::of(key).get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnConfig;
    use chkv_common::{NodeId, Ring};
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn info(id: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id: NodeId::from(id),
            client_addr: addr(port),
            admin_addr: addr(port + 1000),
            tls_port: None,
            since: 0,
        }
    }

    /// A pool factory (pools open nothing until used).
    fn pools() -> impl FnMut(SocketAddr) -> Arc<NodePool> {
        let config = Arc::new(ConnConfig {
            connect_timeout: Duration::from_secs(1),
            password: None,
            username: None,
            resp3: false,
            cluster: true,
            response_timeout: None,
            near: None,
            tls: None,
        });
        move |a| Arc::new(NodePool::new(a, config.clone(), 1))
    }

    fn table(ids: &[&str], epoch: u64) -> SlotTable {
        let mut ring = Ring::default();
        for id in ids {
            ring.add(NodeId::from(*id));
        }
        ring.set_epoch(epoch);
        ring.slot_table()
    }

    #[test]
    fn table_to_routes() {
        let mut pool = pools();
        let infos = vec![info("a", 7000), info("b", 7001), info("c", 7002)];
        let t = table(&["a", "b"], 3);
        let r = Routes::from_table(&t, infos, &Routes::empty(), &mut pool);
        assert_eq!(r.epoch, 3);
        assert_eq!(r.assigned(), SLOT_COUNT);
        // "c" is a member that owns nothing yet (joining).
        assert_eq!(r.nodes.len(), 3);
        assert_eq!(r.owning_nodes().len(), 2);
        for slot in 0..SLOT_COUNT as u16 {
            let want = match t.owner(Slot::new(slot).expect("slot")).map(NodeId::as_str) {
                Some("a") => Some(addr(7000)),
                Some("b") => Some(addr(7001)),
                _ => None,
            };
            assert_eq!(r.owner_addr(slot), want);
        }
        // An owner without an address is unowned rather than misrouted.
        let r = Routes::from_table(&t, vec![info("a", 7000)], &Routes::empty(), &mut pool);
        assert!(r.assigned() < SLOT_COUNT && r.assigned() > 0);
    }

    #[test]
    fn moved_overrides_follow_the_table() {
        let mut pool = pools();
        let infos = vec![info("a", 7000), info("b", 7001), info("c", 7002)];
        let t = table(&["a", "b"], 3);
        let r = Routes::from_table(&t, infos.clone(), &Routes::empty(), &mut pool);
        let slot = (0..SLOT_COUNT as u16)
            .find(|&s| r.owner_addr(s) == Some(addr(7000)))
            .expect("a slot of a");

        // A handoff moved it to c before the NameNode said so.
        let moved = r.with_moved(slot, addr(7002), &mut pool).expect("changes");
        assert_eq!(moved.owner_addr(slot), Some(addr(7002)));
        assert!(moved.with_moved(slot, addr(7002), &mut pool).is_none());
        // A node outside the table (left, or dead) is never recorded.
        assert!(moved.with_moved(slot, addr(9999), &mut pool).is_none());

        // A table that still says `a` keeps the override; one that says c or b drops it.
        let same = Routes::from_table(&t, infos.clone(), &moved, &mut pool);
        assert_eq!(same.owner_addr(slot), Some(addr(7002)));
        let mut caught_up = t.clone();
        caught_up.assign(
            Slot::new(slot).expect("slot")..=Slot::new(slot).expect("slot"),
            Some(&NodeId::from("c")),
        );
        let settled = Routes::from_table(&caught_up, infos.clone(), &moved, &mut pool);
        assert_eq!(settled.owner_addr(slot), Some(addr(7002)));
        assert!(settled.overrides.is_empty());
        // Without c in the members, the override goes (c left).
        let gone = Routes::from_table(&t, infos[..2].to_vec(), &moved, &mut pool);
        assert_eq!(gone.owner_addr(slot), Some(addr(7000)));

        // A redirect back to the table's owner removes the override.
        let back = moved
            .with_moved(slot, addr(7000), &mut pool)
            .expect("changes");
        assert_eq!(back.owner_addr(slot), Some(addr(7000)));
        assert!(back.overrides.is_empty());
    }

    fn positions(name: &str, argc: usize) -> Vec<usize> {
        key_spec(name.as_bytes()).positions(argc).collect()
    }

    #[test]
    fn key_positions() {
        assert_eq!(positions("GET", 2), vec![1]);
        assert_eq!(positions("get", 1), Vec::<usize>::new());
        assert_eq!(positions("SET", 5), vec![1]);
        assert_eq!(positions("MGET", 4), vec![1, 2, 3]);
        assert_eq!(positions("MSET", 5), vec![1, 3]);
        assert_eq!(positions("MSET", 4), vec![1, 3]);
        assert_eq!(positions("COPY", 5), vec![1, 2]);
        assert_eq!(positions("PING", 1), Vec::<usize>::new());
        assert_eq!(positions("KEYS", 2), Vec::<usize>::new());
        assert_eq!(
            positions("NOSUCHCOMMANDWITHALONGNAME", 3),
            Vec::<usize>::new()
        );
        assert_eq!(positions("BITOP", 5), vec![2, 3, 4]);
        assert_eq!(positions("bitfield_ro", 5), vec![1]);
        assert_eq!(positions("LCS", 4), vec![1, 2]);
        assert_eq!(positions("PFCOUNT", 4), vec![1, 2, 3]);
        assert_eq!(positions("PFMERGE", 3), vec![1, 2]);
        assert_eq!(positions("PFDEBUG", 3), vec![2]);
        assert_eq!(positions("LPUSH", 4), vec![1]);
        assert_eq!(positions("LMOVE", 5), vec![1, 2]);
        assert_eq!(positions("BLPOP", 4), vec![1, 2]);
        assert_eq!(positions("BRPOP", 3), vec![1]);
        assert_eq!(positions("BLMOVE", 6), vec![1, 2]);
        assert_eq!(positions("BRPOPLPUSH", 4), vec![1, 2]);
        assert_eq!(positions("LMPOP", 5), vec![2]);
        assert_eq!(positions("BLMPOP", 6), vec![3]);
        assert_eq!(positions("BZPOPMIN", 3), vec![1]);
        assert_eq!(positions("BZMPOP", 5), vec![3]);
        assert_eq!(blocking_timeout(b"BLPOP", 4), Some(3));
        assert_eq!(blocking_timeout(b"blmove", 6), Some(5));
        assert_eq!(blocking_timeout(b"BLMPOP", 5), Some(1));
        assert_eq!(blocking_timeout(b"BZMPOP", 5), Some(1));
        assert_eq!(blocking_timeout(b"BLPOP", 2), None);
        assert_eq!(blocking_timeout(b"LPOP", 3), None);
        assert_eq!(key_spec(b"DeL").split, Split::Sum);
        assert_eq!(key_spec(b"msetnx").split, Split::No);
    }

    /// The client's key positions of a DataNode command: its table's fixed range; for a
    /// command whose keys a count announces, the first of them (the client routes by it, the
    /// node refuses keys of other slots); for a container, what its keyed subcommands share.
    fn derived_range(spec: &chkv_datanode::cmd::CommandSpec) -> Option<(i32, i32, i32)> {
        use chkv_datanode::cmd::flags;
        if spec.has(flags::INTERNAL) {
            return None;
        }
        if !spec.subcommands.is_empty() {
            let mut keyed = spec.subcommands.iter().filter_map(derived_range);
            let first = keyed.next()?;
            assert!(
                keyed.all(|r| r == first),
                "{}: subcommands with different key positions",
                spec.name
            );
            return Some(first);
        }
        let k = spec.first_key;
        match k {
            k if k <= 0 => None,
            k if spec.has(flags::NUMKEYS) => Some((k + 1, k + 1, 1)),
            k if spec.has(flags::DEST_NUMKEYS) => Some((k, k, 1)),
            k => Some((k, spec.last_key, spec.step.max(1))),
        }
    }

    /// `keys.rs` as the DataNode's command table makes it: one match arm per key range, the
    /// names in order, lines of at most 100 columns.
    fn generated_key_table() -> String {
        let mut ranges: std::collections::BTreeMap<(i32, i32, i32), Vec<&str>> =
            std::collections::BTreeMap::new();
        for spec in chkv_datanode::cmd::table() {
            if let Some(range) = derived_range(spec) {
                assert!(
                    spec.name.len() <= 24,
                    "{}: longer than key_spec reads",
                    spec.name
                );
                ranges.entry(range).or_default().push(spec.name);
            }
        }
        let mut out = String::from(KEY_TABLE_HEADER);
        for ((first, last, step), mut names) in ranges {
            names.sort_unstable();
            let mut line = String::from("        ");
            for (i, name) in names.iter().enumerate() {
                let item = format!("{}b\"{name}\"", if i == 0 { "" } else { "| " });
                if line.len() + item.len() + 1 > 100 {
                    out.push_str(line.trim_end());
                    out.push('\n');
                    line = String::from("        ");
                }
                line.push_str(&item);
                line.push(' ');
            }
            out.push_str(&format!("{line}=> ({first}, {last}, {step}),\n"));
        }
        out.push_str("        _ => return None,\n    })\n}\n");
        out
    }

    const KEY_TABLE_HEADER: &str = "\
// @generated from the DataNode's command table by the test
// `routing::tests::the_key_table_is_derived_from_the_datanodes_command_table`; do not edit.
// After a change to that table: CHKV_BLESS=1 cargo test -p chkv-client --lib key_table

//! Which arguments of a command are keys, for the client's routing.

/// The key positions of the command `lower` (a lower-case name): the first, the last
/// (negative: counted from the end, -1 the last argument) and the step, as the DataNode's
/// command table has them; for a command whose keys a count announces, the first of them.
/// `None`: no keys (the command goes to any node).
pub(super) fn key_range(lower: &[u8]) -> Option<(usize, isize, usize)> {
    Some(match lower {
";

    /// One key table: the client's is generated from the DataNode's, and this fails when it
    /// is not what the DataNode's table makes now (`CHKV_BLESS=1` writes it again).
    #[test]
    fn the_key_table_is_derived_from_the_datanodes_command_table() {
        let want = generated_key_table();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routing/keys.rs");
        if std::env::var_os("CHKV_BLESS").is_some() {
            std::fs::write(path, &want).expect("write the key table");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "client/src/routing/keys.rs is not what the DataNode's command table makes; run \
             CHKV_BLESS=1 cargo test -p chkv-client --lib key_table"
        );
    }

    /// The argument lists the comparison tries for a command of arity `arity`: every count a
    /// negative (minimum) arity allows up to 4 more, each argument "2" (a valid key, and a
    /// valid count for commands that announce their keys).
    fn sample_lengths(arity: i32) -> Vec<usize> {
        if arity >= 0 {
            vec![arity as usize]
        } else {
            let min = (-arity) as usize;
            (min..min + 5).collect()
        }
    }

    /// The client routes every command the DataNode serves exactly as the DataNode does:
    /// by the same first key (a command the DataNode runs locally has none here either),
    /// and a command the DataNode splits across owners is split by the client on the same
    /// key positions. Checked for every command and subcommand of the DataNode's table.
    #[test]
    fn routes_every_command_as_the_datanode_does() {
        use chkv_datanode::cmd::{flags, table, CommandSpec};
        use chkv_datanode::resp::Request;

        let mut checked = 0;
        let mut mismatches = Vec::new();
        let mut check = |spec: &CommandSpec, prefix: &[&str]| {
            if spec.has(flags::INTERNAL) {
                return;
            }
            for argc in sample_lengths(spec.arity) {
                let mut args: Vec<&str> = prefix.to_vec();
                while args.len() < argc.max(prefix.len()) {
                    args.push("2");
                }
                let req = Request::from_args(args.iter().map(|a| a.as_bytes()));
                let node: Vec<usize> = if spec.first_key <= 0 {
                    Vec::new()
                } else {
                    spec.keys_in(&req).collect()
                };
                let client_spec = key_spec(args[0].as_bytes());
                let client: Vec<usize> = client_spec.positions(args.len()).collect();
                // (Subcommands run where they arrive: SCRIPT EXISTS is not EXISTS.)
                let node_splits = !node.is_empty() && chkv_datanode::exec::splittable(spec.name);
                let client_splits = client_spec.split != Split::No;
                let same = if node_splits || client_splits {
                    node_splits == client_splits && node == client
                } else {
                    node.first() == client.first()
                };
                // PFCOUNT over keys of several nodes: a plain connection's DataNode gathers the
                // HyperLogLogs and counts their union; the client, like every Redis Cluster
                // client, sends it to the first key's slot, whose node answers -CROSSSLOT
                // unless the keys share a slot. The one difference, and a documented one.
                let known = spec.name == "pfcount" && node == client;
                if !same && !known {
                    mismatches.push(format!(
                        "{}: datanode keys {node:?} (split {node_splits}), client {client:?} \
                         (split {client_splits})",
                        args.join(" ")
                    ));
                }
                checked += 1;
            }
        };
        for spec in table() {
            if spec.subcommands.is_empty() {
                check(spec, &[spec.name]);
            } else {
                for sub in spec.subcommands {
                    check(sub, &[spec.name, sub.name]);
                }
            }
        }
        assert!(checked > 300, "only {checked} argument lists checked");
        assert!(
            mismatches.is_empty(),
            "{} routing differences:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
}
