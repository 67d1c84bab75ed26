//! Cluster membership as one DataNode sees it.
//!
//! A [`Routing`] is an immutable snapshot: the slot table the NameNode last pushed, the
//! addresses of the nodes in it and which of them is this node. Connections read the current
//! snapshot (an `Arc`) and decide with [`crate::exec::route`]; a new table replaces the
//! snapshot whole ([`crate::ownership`] computes it).
//! Without a NameNode the node is standalone and owns every slot.

use chkv_common::proto::NodeInfo;
use chkv_common::ring::SlotTable;
use chkv_common::{SlotOwners, SLOT_COUNT};
use std::collections::HashMap;
use std::net::SocketAddr;

/// An immutable view of the cluster.
#[derive(Clone, Debug)]
pub struct Routing {
    pub epoch: u64,
    /// The NameNode life that numbered `epoch` (see `NameNodeToDataNode::Table`; 0: none).
    pub life: u64,
    /// True without a NameNode: every slot is local.
    pub standalone: bool,
    /// Nodes of the table; indexes in `owners` point here.
    pub nodes: Vec<NodeInfo>,
    /// This node's index in `nodes`, if it is there.
    pub me: Option<u16>,
    /// Owner index of every slot (unused when standalone).
    pub owners: SlotOwners,
    /// Set when the node installs this routing, one more than the previous one's, so a
    /// request can tell that the snapshot it was planned with is no longer current.
    pub generation: u64,
}

/// Where a slot is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Local,
    Remote(u16),
    Unassigned,
}

impl Routing {
    /// A node without a cluster: it owns every slot.
    pub fn standalone() -> Routing {
        Routing {
            epoch: 0,
            life: 0,
            standalone: true,
            nodes: vec![],
            me: None,
            owners: SlotOwners::none(),
            generation: 0,
        }
    }

    /// A node configured with a NameNode, before its first table: it owns nothing, so it
    /// serves no key (`-CLUSTERDOWN`, `cluster_state:fail`) until an authenticated NameNode
    /// has told it what it owns.
    pub fn awaiting() -> Routing {
        Routing::from_table(&SlotTable::empty(0), &[], "")
    }

    /// Whether this routing comes from a NameNode's table (which numbers its tables from 1),
    /// rather than standalone mode or [`Routing::awaiting`].
    pub fn has_table(&self) -> bool {
        !self.standalone && self.epoch > 0
    }

    /// This routing, its table numbered by the NameNode life `life`.
    pub fn with_life(mut self, life: u64) -> Routing {
        self.life = life;
        self
    }

    /// The routing for a table the NameNode pushed. `my_id` is this node's id.
    pub fn from_table(table: &SlotTable, infos: &[NodeInfo], my_id: &str) -> Routing {
        // Every member with an address, owners or not (a node joining owns nothing until its
        // slots are handed over); owners without an address count as unassigned.
        let nodes: Vec<NodeInfo> = infos.to_vec();
        let owners = SlotOwners::of_table(table, |id| {
            nodes.iter().position(|n| &n.id == id).map(|i| i as u16)
        });
        let me = nodes
            .iter()
            .position(|n| n.id.as_str() == my_id)
            .map(|i| i as u16);
        Routing {
            epoch: table.epoch(),
            life: 0,
            standalone: false,
            nodes,
            me,
            owners,
            generation: 0,
        }
    }

    /// This routing with `overrides` applied: slots flipped by a handoff before the
    /// NameNode's table says so. `me` describes this node, for slots flipped to it.
    pub fn with_overrides(&self, overrides: &HashMap<u16, Override>, me: &NodeInfo) -> Routing {
        let mut r = self.clone();
        if overrides.is_empty() || r.standalone {
            return r;
        }
        let index_of = |info: &NodeInfo, r: &mut Routing| -> u16 {
            match r.nodes.iter().position(|n| n.id == info.id) {
                Some(i) => i as u16,
                None => {
                    r.nodes.push(info.clone());
                    (r.nodes.len() - 1) as u16
                }
            }
        };
        let me_idx = index_of(me, &mut r);
        r.me = Some(me_idx);
        for (&slot, o) in overrides {
            let idx = match &o.to {
                None => me_idx,
                Some(info) => index_of(info, &mut r),
            };
            r.owners.set(slot, Some(idx));
        }
        r
    }

    /// Whether `id`, a member at `epoch`, has left the cluster since: this is a newer table
    /// that does not name it (declared dead, or drained). An older table may not name a
    /// node that was only joining, so it says nothing.
    pub fn left(&self, id: &str, epoch: u64) -> bool {
        self.has_table() && self.epoch > epoch && !self.nodes.iter().any(|n| n.id.as_str() == id)
    }

    /// The id of the owner of `slot` in this routing, if any.
    pub fn owner_id(&self, slot: u16) -> Option<&str> {
        let o = self.owners.get(slot)?;
        self.nodes.get(o as usize).map(|n| n.id.as_str())
    }

    /// Who serves `slot`.
    pub fn owner(&self, slot: u16) -> Owner {
        if self.standalone {
            return Owner::Local;
        }
        match self.owners.get(slot) {
            None => Owner::Unassigned,
            Some(o) if Some(o) == self.me => Owner::Local,
            Some(o) => Owner::Remote(o),
        }
    }

    /// The client address of node `idx`.
    pub fn addr(&self, idx: u16) -> Option<SocketAddr> {
        self.nodes.get(idx as usize).map(|n| n.client_addr)
    }

    /// The address to give a client for the node whose client address is `addr`: with
    /// `tls` (the client is on a TLS connection) the node's TLS port when the table has one,
    /// as Redis 7.2+ answers each client with the port of its kind of connection (MOVED,
    /// CLUSTER SLOTS, SHARDS, NODES).
    pub fn client_facing(&self, addr: SocketAddr, tls: bool) -> SocketAddr {
        if !tls {
            return addr;
        }
        self.nodes
            .iter()
            .find(|n| n.client_addr == addr)
            .and_then(NodeInfo::tls_addr)
            .unwrap_or(addr)
    }

    /// Number of slots this node owns.
    pub fn my_slot_count(&self) -> usize {
        if self.standalone {
            return SLOT_COUNT;
        }
        self.me.map_or(0, |me| self.owners.count_of(me))
    }
}

/// A slot flipped by a handoff before the NameNode has published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The node that owned the slot before the handoff.
    pub from: String,
    /// The new owner: `None` for this node (we imported it), else the node we handed it to.
    pub to: Option<NodeInfo>,
    /// The epoch of the NameNode's order the handoff carried out: every table after it names
    /// the new owner among its nodes until that node leaves the cluster.
    pub epoch: u64,
}

impl Override {
    fn to_id<'a>(&'a self, my_id: &'a str) -> &'a str {
        self.to.as_ref().map_or(my_id, |n| n.id.as_str())
    }

    /// Whether a new table from the NameNode, of `table_epoch`, makes this override
    /// unnecessary: it already names the new owner, or, newer than the handoff, it names a
    /// third node or nobody (the table then knows better). A table no newer than the
    /// handoff naming a third node only predates a move of the slot to the old owner (this
    /// node adopted it from c and handed it on before its table caught up with either).
    pub fn settled_by(&self, table_owner: Option<&str>, table_epoch: u64, my_id: &str) -> bool {
        match table_owner {
            Some(o) if o == self.to_id(my_id) => true,
            Some(o) => o != self.from && table_epoch > self.epoch,
            None => table_epoch > self.epoch,
        }
    }

    /// Whether the node this slot was handed to has left the cluster: `base`, a table newer
    /// than the order, no longer names it (it was declared dead, or drained, before the
    /// NameNode heard of the handoff). Forwarding there would fail for good; the slot is
    /// this node's again until the table says otherwise (what the handoff carried left
    /// with that node). A table from before the order may not name a node that was joining
    /// yet, so it decides nothing.
    pub fn target_left(&self, base: &Routing) -> bool {
        self.to
            .as_ref()
            .is_some_and(|to| base.left(to.id.as_str(), self.epoch))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chkv_common::ring::{NodeId, Ring};
    use chkv_common::Slot;

    /// The table of a ring of nodes a, b and c, and their addresses.
    pub(crate) fn three_nodes() -> (SlotTable, Vec<NodeInfo>) {
        let mut ring = Ring::default();
        let mut infos = vec![];
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            ring.add(NodeId::new(*id));
            infos.push(NodeInfo {
                id: NodeId::new(*id),
                client_addr: format!("127.0.0.1:{}", 7000 + i).parse().expect("addr"),
                admin_addr: format!("127.0.0.1:{}", 8000 + i).parse().expect("addr"),
                tls_port: None,
                since: 0,
            });
        }
        (ring.slot_table(), infos)
    }

    #[test]
    fn table_to_routing() {
        let (table, infos) = three_nodes();
        let r = Routing::from_table(&table, &infos, "b");
        assert_eq!(r.me, Some(1));
        let total: usize = (0..3u16).map(|i| r.owners.count_of(i)).sum();
        assert_eq!(total, SLOT_COUNT);
        assert!(r.my_slot_count() > 4000);
        let ranges = r.owners.runs();
        assert_eq!(
            ranges
                .iter()
                .map(|(s, e, _)| (e - s) as usize + 1)
                .sum::<usize>(),
            SLOT_COUNT
        );
        for s in 0..SLOT_COUNT as u16 {
            let want = table.owner(Slot::new(s).expect("slot")).map(|n| n.as_str());
            let got = match r.owner(s) {
                Owner::Local => Some("b"),
                Owner::Remote(i) => Some(r.nodes[i as usize].id.as_str()),
                Owner::Unassigned => None,
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_node_has_left_only_by_a_newer_table_that_does_not_name_it() {
        let (table, infos) = three_nodes();
        let mut t = table.clone();
        t.set_epoch(5);
        let r = Routing::from_table(&t, &infos, "a");
        assert!(!r.left("b", 4), "named");
        assert!(r.left("d", 4), "a newer table without it");
        assert!(!r.left("d", 5), "not newer: d may be joining");
        assert!(!Routing::awaiting().left("d", 0), "no table");
        assert!(!Routing::standalone().left("d", 0));
    }
}
