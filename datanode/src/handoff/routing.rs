//! The table this node routes by: the NameNode's base with local handoff overrides;
//! adopting and releasing slots.

use super::*;

/// Installs the NameNode's table `base` and recomputes the routing with the overrides that
/// still matter. Returns whether the epoch was accepted.
///
/// Slots the table gives this node without a handoff (their owner was declared dead, or
/// nobody claimed them after a NameNode restart) are emptied first: what this node holds
/// there is a stale copy (entries of an import whose batch never flipped), and serving it
/// would answer with values older than writes the old owner acknowledged, or bring back
/// keys it deleted. Under the gate's write side, so no command runs on such a slot before
/// it is empty.
pub fn set_base(node: &Node, base: Routing) -> bool {
    let _w = node.handoff.gate.write();
    set_base_gated(node, base)
}

/// [`set_base`] for a caller that holds the gate's write side.
fn set_base_gated(node: &Node, base: Routing) -> bool {
    let h = &node.handoff;
    {
        let mut cur = h.base.write();
        if !cur.standalone && base.epoch < cur.epoch {
            return false;
        }
        *cur = Arc::new(base);
    }
    refresh(node, Gained::Flush);
    true
}

/// The NameNode's latest table, before overrides (standalone before the first one).
pub fn base_table(node: &Node) -> Arc<Routing> {
    node.handoff.base.read().clone()
}

/// Installs a welcome's table after dropping the slots in `flush`: slots the NameNode says
/// this node lost without a handoff (it was declared dead, or a newer claim won after a
/// restart). Under the gate's write side, so no command runs on the old view meanwhile:
/// when it opens, the slots are empty and the table says who owns them. Adoptions of those
/// slots are forgotten, and the lease starts over (see [`crate::lease::Lease::reset`]).
/// Returns whether the table's epoch was accepted.
pub fn install_dropping(node: &Node, base: Routing, flush: &[(u16, u16)]) -> bool {
    if flush.is_empty() {
        return set_base(node, base);
    }
    // Ranges from the network, however many or overlapping: merged first, so each slot is
    // marked once.
    let mut ranges: Vec<(usize, usize)> = flush
        .iter()
        .map(|&(a, b)| (usize::from(a), usize::from(b).min(SLOT_COUNT - 1)))
        .filter(|(a, b)| a <= b)
        .collect();
    ranges.sort_unstable();
    let mut marked = vec![false; SLOT_COUNT];
    let mut next = 0;
    for (a, b) in ranges {
        for m in marked.iter_mut().take(b + 1).skip(a.max(next)) {
            *m = true;
        }
        next = next.max(b + 1);
    }
    let slots: Vec<u16> = (0..SLOT_COUNT as u16)
        .filter(|&s| marked[s as usize])
        .collect();
    let _w = node.handoff.gate.write();
    node.handoff
        .overrides
        .lock()
        .retain(|&s, o| o.to.is_some() || !marked[s as usize]);
    let applied = set_base_gated(node, base);
    let mut dropped = 0;
    for &s in &slots {
        dropped += node.db.drop_slot(s);
    }
    node.lease.reset();
    if node.handoff.draining.load(SeqCst) && dropped > 0 {
        node.handoff.lost_keys.fetch_add(dropped as u64, SeqCst);
        warn!(
            keys = dropped,
            "drain incomplete: declared dead mid-drain, this node dropped keys it had not handed over"
        );
    }
    info!(
        slots = slots.len(),
        keys = dropped,
        "dropped the slots this node lost without a handoff"
    );
    applied
}

/// What [`refresh`] does with slots that become this node's other than by an adoption.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gained {
    /// Empties them before the routing that serves them is installed (the caller holds the
    /// gate's write side).
    Flush,
    /// None can appear: only a new base table gives slots without a handoff.
    Keep,
}

/// Rebuilds the effective routing from the base table and the overrides, dropping overrides
/// the table has caught up with.
fn refresh(node: &Node, gained: Gained) {
    let h = &node.handoff;
    let me = my_info(node);
    // One refresh at a time, from reading the base to installing the result: a table from
    // the NameNode (the agent) and a flip (a peer connection) refresh concurrently, and a
    // routing computed before the other's change but installed after it would undo that
    // change until the next refresh.
    let mut ov = h.overrides.lock();
    let base = h.base.read().clone();
    let effective = {
        // Before the first table (a joining node can be handed slots before the NameNode's
        // welcome reaches it) there is nothing to settle against: every slot would look
        // unowned and every adoption would be dropped.
        if base.has_table() {
            ov.retain(|&slot, o| {
                !o.settled_by(base.owner_id(slot), &node.node_id) && !o.target_left(&base)
            });
        }
        base.with_overrides(&ov, &me)
    };
    if gained == Gained::Flush && !effective.standalone {
        let before = node.routing();
        let mut flushed = (0usize, 0usize);
        for s in 0..SLOT_COUNT as u16 {
            let adopted = ov.get(&s).is_some_and(|o| o.to.is_none());
            if effective.owner(s) == Owner::Local && before.owner(s) != Owner::Local && !adopted {
                let keys = node.db.drop_slot(s);
                if keys > 0 {
                    flushed = (flushed.0 + 1, flushed.1 + keys);
                }
            }
        }
        if flushed.1 > 0 {
            info!(
                slots = flushed.0,
                keys = flushed.1,
                "dropped stale copies in slots given to this node without a handoff"
            );
        }
    }
    node.install_routing(effective);
    drop(ov);
}

fn my_info(node: &Node) -> NodeInfo {
    let addr = node.advertised_addr();
    NodeInfo {
        id: NodeId::new(node.node_id.clone()),
        client_addr: addr,
        admin_addr: node.config().admin_addr,
        tls_port: node.tls_port(),
    }
}

/// The node that handed `slot` to this one, while the NameNode's table has not caught up.
pub fn adopted_from(node: &Node, slot: u16) -> Option<String> {
    let ov = node.handoff.overrides.lock();
    ov.get(&slot)
        .filter(|o| o.to.is_none())
        .map(|o| o.from.clone())
}

/// Records that `slots` now belong to this node (handed over by `from`).
pub fn adopt(node: &Node, from: &str, slots: &[u16]) {
    {
        let epoch = node.handoff.base.read().epoch;
        let mut ov = node.handoff.overrides.lock();
        for &s in slots {
            ov.insert(
                s,
                Override {
                    from: from.to_string(),
                    to: None,
                    epoch,
                },
            );
        }
    }
    refresh(node, Gained::Keep);
}

/// Records that `slots` now belong to `to`, as ordered in `epoch`.
pub(super) fn release(node: &Node, to: NodeInfo, epoch: u64, slots: &[u16]) {
    {
        let mut ov = node.handoff.overrides.lock();
        for &s in slots {
            ov.insert(
                s,
                Override {
                    from: node.node_id.clone(),
                    to: Some(to.clone()),
                    epoch,
                },
            );
        }
    }
    refresh(node, Gained::Keep);
}
