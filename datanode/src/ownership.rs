//! Which slots this node serves: the one owner of its routing.
//!
//! The NameNode's table (the *base*) says who owns each slot. A handoff flips slots before
//! the NameNode publishes it: an *override*, a slot this node adopted from its old owner or
//! released to its new one. The routing this node serves by is the base with the overrides
//! the base has not caught up with. Here that rule, as data: each event (a table, a table
//! that also drops slots this node lost, an adoption, a release) updates [`Ownership`] and
//! returns an [`Install`]: the routing to serve by and the slots to empty before serving
//! it. No locks, no I/O, no clock; [`crate::node::Node`] holds one `Ownership` under a
//! mutex and carries out what it returns (under the handoff gate's write side where slots
//! are emptied), and its unit tests below drive every rule without a node.

use crate::cluster::{Override, Owner, Routing};
use chkv_common::proto::NodeInfo;
use chkv_common::ring::NodeId;
use chkv_common::SLOT_COUNT;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The base table and the overrides of the handoffs it has not caught up with.
pub struct Ownership {
    base: Arc<Routing>,
    overrides: HashMap<u16, Override>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            base: Arc::new(Routing::standalone()),
            overrides: HashMap::new(),
        }
    }
}

/// What an event asks the node to do.
#[derive(Debug)]
#[must_use]
pub struct Install {
    /// The routing to serve by from now on.
    pub routing: Routing,
    /// Slots to empty before `routing` is installed, with no command running meanwhile.
    pub flush: Vec<u16>,
}

/// What [`Ownership::table_dropping`] asks.
#[derive(Debug)]
#[must_use]
pub struct Dropping {
    /// The lost slots, each once, in order: to empty whether or not the table is accepted.
    pub lost: Vec<u16>,
    /// Whether the table was accepted; if not (its epoch is older than the base's),
    /// `install` is the current base with the overrides that remain.
    pub accepted: bool,
    pub install: Install,
}

impl Ownership {
    /// The NameNode's latest table, before overrides (standalone before the first one).
    pub fn base(&self) -> &Arc<Routing> {
        &self.base
    }

    /// The node that handed `slot` to this one, while the NameNode's table has not caught up.
    pub fn adopted_from(&self, slot: u16) -> Option<&str> {
        self.overrides
            .get(&slot)
            .filter(|o| o.to.is_none())
            .map(|o| o.from.as_str())
    }

    /// The node this one handed `slot` to, while the NameNode's table has not caught up.
    pub fn released_to(&self, slot: u16) -> Option<&NodeInfo> {
        self.overrides.get(&slot).and_then(|o| o.to.as_ref())
    }

    /// The handoffs this node made that the base has not caught up with, by target and
    /// order epoch, each with its slots in order: their `handoff_done` may have been lost
    /// (no NameNode session then), so a new session reports them again.
    pub fn releases(&self) -> Vec<(NodeId, u64, Vec<u16>)> {
        let mut by: BTreeMap<(NodeId, u64), Vec<u16>> = BTreeMap::new();
        for (&s, o) in &self.overrides {
            if let Some(to) = &o.to {
                by.entry((to.id.clone(), o.epoch)).or_default().push(s);
            }
        }
        by.into_iter()
            .map(|((to, epoch), mut slots)| {
                slots.sort_unstable();
                (to, epoch, slots)
            })
            .collect()
    }

    /// How many handoffs the base has not caught up with.
    pub fn pending(&self) -> usize {
        self.overrides.len()
    }

    /// A table from the NameNode. `None` when its epoch is older than the base's (a
    /// standalone base takes any). Slots the result gives this node other than by an
    /// adoption (their owner was declared dead, or nobody claimed them after a NameNode
    /// restart) and that `serving` (the routing installed now) does not give it are to be
    /// flushed: what this node holds there is a stale copy, the entries of an import whose
    /// batch never flipped, and serving it would answer with values older than writes the
    /// old owner acknowledged, or bring back keys it deleted.
    pub fn table(&mut self, base: Routing, me: &NodeInfo, serving: &Routing) -> Option<Install> {
        if !self.base.standalone && base.epoch < self.base.epoch {
            return None;
        }
        self.base = Arc::new(base);
        Some(self.effective(me, Some(serving)))
    }

    /// A welcome's table, after this node lost the slots in `lost` without a handoff (it was
    /// declared dead, or a newer claim won after a restart): ranges from the network, however
    /// many or overlapping, clamped to the slot space. Their adoptions are forgotten; the
    /// slots are to be emptied whether or not the table is accepted.
    pub fn table_dropping(
        &mut self,
        base: Routing,
        lost: &[(u16, u16)],
        me: &NodeInfo,
        serving: &Routing,
    ) -> Dropping {
        let mut marked = vec![false; SLOT_COUNT];
        for &(a, b) in lost {
            let b = usize::from(b).min(SLOT_COUNT - 1);
            if let Some(range) = marked.get_mut(usize::from(a)..=b) {
                range.fill(true);
            }
        }
        self.overrides
            .retain(|&s, o| o.to.is_some() || !marked[s as usize]);
        let lost = (0..SLOT_COUNT as u16)
            .filter(|&s| marked[s as usize])
            .collect();
        match self.table(base, me, serving) {
            Some(install) => Dropping {
                lost,
                accepted: true,
                install,
            },
            None => Dropping {
                lost,
                accepted: false,
                install: self.effective(me, None),
            },
        }
    }

    /// `slots` were handed to this node by `from`.
    pub fn adopt(&mut self, from: &str, slots: &[u16], me: &NodeInfo) -> Install {
        let epoch = self.base.epoch;
        for &s in slots {
            self.overrides.insert(
                s,
                Override {
                    from: from.to_string(),
                    to: None,
                    epoch,
                },
            );
        }
        self.effective(me, None)
    }

    /// This node handed `slots` to `to`, as ordered in `epoch`.
    pub fn release(&mut self, to: &NodeInfo, epoch: u64, slots: &[u16], me: &NodeInfo) -> Install {
        for &s in slots {
            self.overrides.insert(
                s,
                Override {
                    from: me.id.as_str().to_string(),
                    to: Some(to.clone()),
                    epoch,
                },
            );
        }
        self.effective(me, None)
    }

    /// The base with the overrides that still matter, dropping those the base has caught up
    /// with (it names the new owner, or a third node: it knows better) and releases to a
    /// node that left. With `serving`, the slots gained other than by adoption are flushed;
    /// without, none can be gained (only a new base gives slots without a handoff).
    fn effective(&mut self, me: &NodeInfo, serving: Option<&Routing>) -> Install {
        let base = &self.base;
        // Before the first table (a joining node can be handed slots before the NameNode's
        // welcome reaches it) there is nothing to settle against: every slot would look
        // unowned and every adoption would be dropped.
        if base.has_table() {
            let my_id = me.id.as_str();
            self.overrides.retain(|&slot, o| {
                !o.settled_by(base.owner_id(slot), base.epoch, my_id) && !o.target_left(base)
            });
        }
        let routing = base.with_overrides(&self.overrides, me);
        let flush = match serving {
            Some(before) if !routing.standalone => (0..SLOT_COUNT as u16)
                .filter(|&s| {
                    routing.owner(s) == Owner::Local
                        && before.owner(s) != Owner::Local
                        && self.adopted_from(s).is_none()
                })
                .collect(),
            _ => Vec::new(),
        };
        Install { routing, flush }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chkv_common::ring::{NodeId, Ring};

    fn info(id: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(id),
            client_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            admin_addr: format!("127.0.0.1:{}", port + 1).parse().unwrap(),
            tls_port: None,
            since: 0,
        }
    }

    /// The table of a ring of `owners` at `epoch` naming `members`, as `me` sees it.
    fn table_of(epoch: u64, owners: &[&NodeInfo], members: &[&NodeInfo], me: &str) -> Routing {
        let mut ring = Ring::default();
        for m in owners {
            ring.add(m.id.clone());
        }
        let mut t = ring.slot_table();
        t.set_epoch(epoch);
        let infos: Vec<NodeInfo> = members.iter().map(|&m| m.clone()).collect();
        Routing::from_table(&t, &infos, me)
    }

    fn table(epoch: u64, members: &[&NodeInfo], me: &str) -> Routing {
        table_of(epoch, members, members, me)
    }

    fn install(o: &mut Ownership, base: Routing, me: &NodeInfo, serving: &mut Routing) -> Vec<u16> {
        let i = o.table(base, me, serving).expect("accepted");
        *serving = i.routing;
        i.flush
    }

    fn slot_of(r: &Routing, owner: Owner) -> u16 {
        (0..SLOT_COUNT as u16)
            .find(|&s| r.owner(s) == owner)
            .unwrap()
    }

    #[test]
    fn an_older_table_is_refused_and_a_standalone_base_takes_any() {
        let a = info("a", 7000);
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        install(&mut o, table(5, &[&a], "a"), &a, &mut serving);
        assert!(o.table(table(4, &[&a], "a"), &a, &serving).is_none());
        assert_eq!(o.base().epoch, 5);
        assert!(
            o.table(table(5, &[&a], "a"), &a, &serving).is_some(),
            "same epoch"
        );
    }

    #[test]
    fn adoptions_and_releases_hold_until_the_table_catches_up() {
        let (a, b) = (info("a", 7000), info("b", 7100));
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        install(&mut o, table(1, &[&a, &b], "b"), &b, &mut serving);
        let theirs = slot_of(&serving, Owner::Remote(0));
        let mine = slot_of(&serving, Owner::Local);
        let i = o.adopt("a", &[theirs], &b);
        assert!(i.flush.is_empty());
        assert_eq!(i.routing.owner(theirs), Owner::Local);
        assert_eq!(o.adopted_from(theirs), Some("a"));
        let i = o.release(&a, 1, &[mine], &b);
        assert_eq!(i.routing.owner(mine), Owner::Remote(0));
        assert_eq!(o.adopted_from(mine), None, "a release is not an adoption");
        assert_eq!(o.released_to(mine), Some(&a));
        assert_eq!(o.released_to(theirs), None, "an adoption is not a release");
        assert_eq!(o.pending(), 2);
        // The release is what a new NameNode session reports again; the adoption is not.
        assert_eq!(o.releases(), vec![(a.id.clone(), 1, vec![mine])]);
        serving = i.routing;
        // The same table again: nothing settled, nothing flushed (the adopted slot is
        // served already).
        assert!(install(&mut o, table(1, &[&a, &b], "b"), &b, &mut serving).is_empty());
        assert_eq!(serving.owner(theirs), Owner::Local);
        assert_eq!(serving.owner(mine), Owner::Remote(0));
        assert_eq!(o.pending(), 2);
        // A table where a third node owns both: it knows better.
        let c = info("c", 7200);
        let t = table(2, &[&c], "b");
        assert!(install(&mut o, t, &b, &mut serving).is_empty());
        assert_eq!(o.pending(), 0);
    }

    /// A slot this node adopted is handed on before its table catches up with either move
    /// (c to b, then b to a, ordered from a table b has not received yet). The release holds
    /// until a table names the new owner: the old table naming c is older than the order and
    /// knows nothing better. Found by the simulation (seed 35 once it modelled flips whose
    /// connection broke): b dropped the release at once, routed the slot to c, then served
    /// it again when the next table named b, while a served it too.
    #[test]
    fn a_slot_handed_on_before_the_table_caught_up_stays_released() {
        let (a, b, c) = (info("a", 7000), info("b", 7100), info("c", 7200));
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        // Epoch 14: c owns the slot; b adopts it from c.
        install(
            &mut o,
            table_of(14, &[&c], &[&a, &b, &c], "b"),
            &b,
            &mut serving,
        );
        let s = 77;
        assert_eq!(serving.owner(s), Owner::Remote(2));
        serving = o.adopt("c", &[s], &b).routing;
        assert_eq!(serving.owner(s), Owner::Local);
        // Ordered at epoch 14 (from the table of epoch 15, which names b), b hands it to a.
        serving = o.release(&a, 14, &[s], &b).routing;
        assert_eq!(serving.owner(s), Owner::Remote(0));
        assert_eq!(o.released_to(s), Some(&a));
        // Epoch 15 names b: still a's.
        install(
            &mut o,
            table_of(15, &[&b], &[&a, &b, &c], "b"),
            &b,
            &mut serving,
        );
        assert_eq!(serving.owner(s), Owner::Remote(0));
        // A table newer than the order naming a third node knows better...
        let mut o2 = Ownership::default();
        let mut serving2 = Routing::standalone();
        install(
            &mut o2,
            table_of(14, &[&c], &[&a, &b, &c], "b"),
            &b,
            &mut serving2,
        );
        let _ = o2.adopt("c", &[s], &b);
        serving2 = o2.release(&a, 14, &[s], &b).routing;
        install(
            &mut o2,
            table_of(16, &[&c], &[&a, &b, &c], "b"),
            &b,
            &mut serving2,
        );
        assert_eq!(serving2.owner(s), Owner::Remote(2));
        assert_eq!(o2.pending(), 0);
        // ... and one naming a settles it.
        install(
            &mut o,
            table_of(16, &[&a], &[&a, &b, &c], "b"),
            &b,
            &mut serving,
        );
        assert_eq!(serving.owner(s), Owner::Remote(0));
        assert_eq!(o.pending(), 0);
    }

    /// A slot given to this node without a handoff may hold a stale copy (an import whose
    /// batch never flipped): flushed. Slots served already and adopted ones keep their data.
    #[test]
    fn slots_gained_without_a_handoff_are_flushed() {
        let (a, b) = (info("a", 7000), info("b", 7100));
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        install(&mut o, table(1, &[&a, &b], "b"), &b, &mut serving);
        let theirs: Vec<u16> = (0..SLOT_COUNT as u16)
            .filter(|&s| serving.owner(s) == Owner::Remote(0))
            .collect();
        let adopted = theirs[0];
        serving = o.adopt("a", &[adopted], &b).routing;
        // a is declared dead: every slot is b's.
        let flush = install(&mut o, table(2, &[&b], "b"), &b, &mut serving);
        assert_eq!(flush, theirs[1..].to_vec());
        assert_eq!(serving.my_slot_count(), SLOT_COUNT);
        // A table that changes nothing flushes nothing.
        assert!(install(&mut o, table(3, &[&b], "b"), &b, &mut serving).is_empty());
    }

    #[test]
    fn a_release_to_a_node_that_left_comes_back() {
        let (a, b) = (info("a", 7000), info("b", 7100));
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        // Ordered at epoch 5, towards b, which no table names yet (it is joining).
        install(&mut o, table(5, &[&a], "a"), &a, &mut serving);
        serving = o.release(&b, 5, &[7], &a).routing;
        assert_eq!(serving.owner(7), Owner::Remote(1));
        install(&mut o, table(5, &[&a], "a"), &a, &mut serving);
        assert_eq!(serving.owner(7), Owner::Remote(1), "same epoch: kept");
        // b in the table, the NameNode not yet caught up: kept.
        install(&mut o, table_of(6, &[&a], &[&a, &b], "a"), &a, &mut serving);
        assert_eq!(serving.owner(7), Owner::Remote(1));
        // b gone from a newer table: the slot is a's again, emptied first (what a held there
        // was handed over and left with b; anything still here is a stale copy).
        let flush = install(&mut o, table(7, &[&a], "a"), &a, &mut serving);
        assert_eq!(serving.owner(7), Owner::Local);
        assert_eq!(flush, vec![7]);
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn adoptions_before_the_first_table_survive_it() {
        let (a, b) = (info("a", 7000), info("b", 7100));
        let mut o = Ownership::default();
        let mut serving = Routing::awaiting();
        let _ = o
            .table(Routing::awaiting(), &b, &serving)
            .expect("accepted");
        serving = o.adopt("a", &[3], &b).routing;
        assert_eq!(serving.owner(3), Owner::Local);
        // The first table still says a owns slot 3: the adoption holds, nothing flushed.
        let t = table(1, &[&a], "b");
        let flush = install(&mut o, t, &b, &mut serving);
        assert!(flush.is_empty());
        assert_eq!(serving.owner(3), Owner::Local);
        assert_eq!(o.adopted_from(3), Some("a"));
    }

    #[test]
    fn a_table_dropping_slots_forgets_their_adoptions_even_when_stale() {
        let (a, b) = (info("a", 7000), info("b", 7100));
        let mut o = Ownership::default();
        let mut serving = Routing::standalone();
        install(&mut o, table(3, &[&a, &b], "b"), &b, &mut serving);
        let theirs = slot_of(&serving, Owner::Remote(0));
        serving = o.adopt("a", &[theirs], &b).routing;
        let mine = slot_of(&serving, Owner::Local);
        // Hostile ranges: reversed, overlapping, past the slot space.
        let lost = [
            (theirs, theirs),
            (mine, mine),
            (mine, mine),
            (9, 3),
            (16383, u16::MAX),
        ];
        let d = o.table_dropping(table(2, &[&a, &b], "b"), &lost, &b, &serving);
        assert!(!d.accepted, "epoch 2 < 3");
        assert!(d.install.flush.is_empty());
        let mut want = vec![theirs, mine, 16383];
        want.sort_unstable();
        want.dedup();
        assert_eq!(d.lost, want);
        assert_eq!(o.adopted_from(theirs), None);
        assert_eq!(
            d.install.routing.owner(theirs),
            Owner::Remote(0),
            "no longer adopted"
        );
        let d = o.table_dropping(table(4, &[&a], "b"), &[], &b, &d.install.routing);
        assert!(d.accepted && d.lost.is_empty());
        assert_eq!(d.install.routing.my_slot_count(), 0);
    }

    /// The rules as a node carries them out: its store emptied, its routing installed, one
    /// install at a time.
    mod on_a_node {
        use super::info;
        use crate::cluster::{Override, Owner, Routing};
        use crate::node::Node;
        use chkv_common::proto::NodeInfo;
        use chkv_common::ring::NodeId;
        use chkv_common::SLOT_COUNT;
        use std::collections::HashMap;
        use std::net::SocketAddr;
        use std::sync::Arc;

        #[test]
        fn overrides_apply_and_settle() {
            use chkv_common::ring::{Ring, SlotTable};
            let mut ring = Ring::default();
            ring.add(NodeId::new("a"));
            let table: SlotTable = ring.slot_table();
            let infos = vec![info("a", 7000), info("b", 7100)];
            // Node b joined: the table still gives a every slot.
            let base = Routing::from_table(&table, &infos, "b");
            assert_eq!(base.owner(5), Owner::Remote(0));
            assert_eq!(base.my_slot_count(), 0);
            // a handed slot 5 to b: b's override makes it local.
            let mut ov = HashMap::new();
            ov.insert(
                5u16,
                Override {
                    from: "a".into(),
                    to: None,
                    epoch: 1,
                },
            );
            let r = base.with_overrides(&ov, &info("b", 7100));
            assert_eq!(r.owner(5), Owner::Local);
            assert_eq!(r.owner(6), Owner::Remote(0));
            // The table still says a (not caught up): the override stays.
            assert!(!ov[&5].settled_by(Some("a"), 2, "b"));
            // The table says b now: settled. A third owner also settles it (the table wins).
            assert!(ov[&5].settled_by(Some("b"), 2, "b"));
            assert!(ov[&5].settled_by(Some("c"), 2, "b"));
            // A third owner in a table no newer than the handoff: it predates a move to a.
            assert!(!ov[&5].settled_by(Some("c"), 1, "b"));
            // On a: the slot was handed to b.
            let on_a = Routing::from_table(&table, &infos, "a");
            let mut ov = HashMap::new();
            ov.insert(
                5u16,
                Override {
                    from: "a".into(),
                    to: Some(info("b", 7100)),
                    epoch: 1,
                },
            );
            let r = on_a.with_overrides(&ov, &info("a", 7000));
            assert_eq!(r.owner(5), Owner::Remote(1));
            assert_eq!(r.addr(1), Some(SocketAddr::from(([127, 0, 0, 1], 7100))));
        }

        /// A table from the NameNode (the agent task) and a handoff flip (a peer connection)
        /// refresh the routing at the same time: whatever the interleaving, the routing installed
        /// last must include every override. (A stress test: the window it guards, between
        /// computing a routing and installing it, is too narrow to hit on every run.)
        #[test]
        fn concurrent_refreshes_keep_every_override() {
            use chkv_common::ring::Ring;
            let mut ring = Ring::default();
            ring.add(NodeId::new("a"));
            let node = Arc::new(Node::new(crate::config::Config {
                node_id: Some("b".into()),
                port: 7100,
                ..crate::config::Config::default()
            }));
            let infos = vec![info("a", 7000), info("b", 7100)];
            let table_at = |epoch: u64| {
                let mut t = ring.slot_table();
                t.set_epoch(epoch);
                Routing::from_table(&t, &infos, "b")
            };
            node.set_routing(table_at(1));
            // Each round races tables from more threads than cores (so some are preempted between
            // computing and installing) against one flip.
            let mut epoch = 1;
            for slot in 0..100u16 {
                let start = Arc::new(std::sync::Barrier::new(5));
                let mut threads = Vec::new();
                for _ in 0..4 {
                    epoch += 1;
                    let base = table_at(epoch);
                    let (node, start) = (node.clone(), start.clone());
                    threads.push(std::thread::spawn(move || {
                        start.wait();
                        node.set_routing(base);
                    }));
                }
                let (n, st) = (node.clone(), start.clone());
                threads.push(std::thread::spawn(move || {
                    st.wait();
                    n.adopt("a", &[slot]);
                }));
                for t in threads {
                    t.join().expect("thread");
                }
                let r = node.routing();
                assert_eq!(
                    r.owner(slot),
                    Owner::Local,
                    "adopted slot {slot} routed away"
                );
                assert_eq!(r.epoch, epoch, "an older table installed last");
            }
        }

        /// A joining node can be handed slots before the NameNode's welcome reaches it (the
        /// migrate order and the welcome travel on different connections). Those adoptions must
        /// survive until the first table: dropped, the node sent clients back to the source, which
        /// sent them back here, until the NameNode published the move.
        #[test]
        fn slots_adopted_before_the_first_table_are_kept() {
            use chkv_common::ring::Ring;
            let node = Node::new(crate::config::Config {
                node_id: Some("b".into()),
                port: 7100,
                ..crate::config::Config::default()
            });
            assert!(node.routing().standalone, "no table yet");
            node.adopt("a", &[5, 6, 7]);
            let mut ring = Ring::default();
            ring.add(NodeId::new("a"));
            let mut table = ring.slot_table();
            table.set_epoch(2);
            // The welcome: every slot still a's, as the NameNode has not heard of the move.
            let infos = vec![info("a", 7000), info("b", 7100)];
            assert!(node.set_routing(Routing::from_table(&table, &infos, "b")));
            let r = node.routing();
            for s in [5, 6, 7] {
                assert_eq!(r.owner(s), Owner::Local, "slot {s}");
            }
            assert_eq!(r.owner(8), Owner::Remote(0));
            assert_eq!(r.my_slot_count(), 3);
        }

        /// A slot handed to a node that then left the cluster (declared dead, or drained)
        /// before the NameNode heard of the handoff: the table still names this node, the
        /// override pointed at a node that is gone, and every request for the slot failed for
        /// good. A newer table without that node drops the override. A table no newer than the
        /// order (which may not name a node that is only joining) keeps it.
        #[test]
        fn overrides_towards_a_node_that_left_are_dropped() {
            use chkv_common::ring::Ring;
            let node = Node::new(crate::config::Config {
                node_id: Some("a".into()),
                port: 7000,
                ..crate::config::Config::default()
            });
            let mut ring = Ring::default();
            ring.add(NodeId::new("a"));
            let table_at = |epoch: u64, infos: &[NodeInfo]| {
                let mut t = ring.slot_table();
                t.set_epoch(epoch);
                Routing::from_table(&t, infos, "a")
            };
            let (a, b) = (info("a", 7000), info("b", 7100));
            // Ordered at epoch 5, towards b, which no table names yet (it is joining).
            assert!(node.set_routing(table_at(5, std::slice::from_ref(&a))));
            node.release(&b, 5, &[7]);
            assert_eq!(node.routing().owner(7), Owner::Remote(1));
            assert!(node.set_routing(table_at(5, std::slice::from_ref(&a))));
            assert_eq!(
                node.routing().owner(7),
                Owner::Remote(1),
                "same epoch: kept"
            );
            // b in the table, the NameNode not yet caught up: kept.
            assert!(node.set_routing(table_at(6, &[a.clone(), b.clone()])));
            assert_eq!(node.routing().owner(7), Owner::Remote(1));
            // b gone from a newer table: the slot is a's again.
            assert!(node.set_routing(table_at(7, std::slice::from_ref(&a))));
            assert_eq!(node.routing().owner(7), Owner::Local);
            assert_eq!(node.pending_handoffs(), 0);
            // Adoptions are untouched by the rule.
            node.adopt("b", &[9]);
            assert!(node.set_routing(table_at(8, std::slice::from_ref(&a))));
            assert_eq!(node.pending_handoffs(), 0, "settled: the table says a");
        }

        /// A slot given to this node without a handoff (its owner declared dead) held a stale
        /// copy here when an earlier attempt at handing it over imported its entries and never
        /// flipped (the owner's lease lapsed mid-batch, the flip was refused past the retry
        /// budget): served, it answered with values older than writes the old owner
        /// acknowledged, and brought back keys it had deleted. The table that gives the slot
        /// empties it first; slots this node served already, and slots it adopted by a handoff
        /// the table has not caught up with, keep their data.
        #[test]
        fn slots_given_without_a_handoff_are_emptied() {
            use crate::store::{Value, NO_EXPIRY};
            use chkv_common::key_slot;
            use chkv_common::ring::Ring;
            let node = Node::new(crate::config::Config {
                node_id: Some("b".into()),
                port: 7100,
                ..crate::config::Config::default()
            });
            let infos = vec![info("a", 7000), info("b", 7100)];
            let mut ring = Ring::default();
            ring.add(NodeId::new("a"));
            ring.add(NodeId::new("b"));
            let mut table = ring.slot_table();
            table.set_epoch(1);
            assert!(node.set_routing(Routing::from_table(&table, &infos, "b")));
            let r = node.routing();
            let keys: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
            let slot_of = |k: &String| key_slot(k.as_bytes());
            let mine = keys
                .iter()
                .find(|k| r.owner(slot_of(k)) == Owner::Local)
                .expect("a key of b");
            let stale = keys
                .iter()
                .find(|k| r.owner(slot_of(k)) == Owner::Remote(0))
                .expect("a key of a");
            let adopted = keys
                .iter()
                .find(|k| r.owner(slot_of(k)) == Owner::Remote(0) && slot_of(k) != slot_of(stale))
                .expect("a key of a in another slot");
            for k in [mine, stale, adopted] {
                node.db
                    .lock_key(k.as_bytes())
                    .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, 1);
            }
            // a handed `adopted`'s slot over; the NameNode has not published it yet.
            node.adopt("a", &[slot_of(adopted)]);
            assert_eq!(node.routing().owner(slot_of(adopted)), Owner::Local);
            // a is declared dead: every slot is b's.
            let mut ring = Ring::default();
            ring.add(NodeId::new("b"));
            let mut table = ring.slot_table();
            table.set_epoch(2);
            assert!(node.set_routing(Routing::from_table(&table, &infos[1..], "b")));
            let r = node.routing();
            assert_eq!(r.my_slot_count(), SLOT_COUNT);
            assert_eq!(node.db.slot_len(slot_of(stale)), 0, "stale copy served");
            assert_eq!(node.db.slot_len(slot_of(mine)), 1);
            assert_eq!(node.db.slot_len(slot_of(adopted)), 1);
            assert_eq!(node.db.len(), 2);
            // A table that changes nothing for b drops nothing.
            table.set_epoch(3);
            assert!(node.set_routing(Routing::from_table(&table, &infos[1..], "b")));
            assert_eq!(node.db.len(), 2);
        }
    }
}
