//! After a restart: when the members' reports rebuild the old membership, and the first table.

use super::*;

impl Membership {
    /// Whether the members that reported owning slots at the newest reported epoch cover
    /// every slot exactly once (with the handoffs reported meanwhile): then the membership
    /// of that epoch is back in full.
    pub(super) fn old_membership_complete(&self) -> bool {
        let epoch = self.max_epoch_reported;
        if epoch == 0 {
            return false;
        }
        let mut covered = vec![false; SLOT_COUNT];
        let mut count = 0;
        for member in self.members.values() {
            if member.reported.is_empty() {
                continue;
            }
            if member.epoch_seen != epoch {
                return false;
            }
            for &(start, end) in &member.reported {
                for seen in &mut covered[start as usize..=end as usize] {
                    if *seen {
                        return false;
                    }
                    *seen = true;
                    count += 1;
                }
            }
        }
        let newest: BTreeSet<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.epoch_seen == epoch)
            .map(|(id, _)| id.clone())
            .collect();
        for (s, _) in self.handed_claims(&newest) {
            if !covered[s as usize] {
                covered[s as usize] = true;
                count += 1;
            }
        }
        count == SLOT_COUNT
    }

    /// The handoffs reported during the grace whose target is one of `counted` (the members
    /// whose claims count), as (slot, target).
    fn handed_claims<'a>(
        &'a self,
        counted: &'a BTreeSet<NodeId>,
    ) -> impl Iterator<Item = (u16, &'a NodeId)> + 'a {
        self.handed_at_start
            .iter()
            .filter(move |(_, (_, to))| counted.contains(to))
            .map(|(&s, (_, to))| (s, to))
    }

    /// The members whose claims count after a restart: those at the newest reported epoch
    /// `epoch`, and those behind it whom the newest table keeps as members since their own
    /// table or earlier.
    ///
    /// A claim behind the newest epoch is dangerous when its claimant was declared dead
    /// after its table: its slots went to a new owner without a handoff, writes were
    /// acknowledged there, and that owner may not come back to claim them. A member
    /// declared dead leaves the member list; back, it is a member anew, `since` an epoch
    /// above every one published or reported before (see [`Member::since`]). So when every
    /// member at `epoch` reports a table of one life naming `a` a member since `s`, and `a`
    /// reports a table of that same life at `e >= s`, `a` has been a member without a break
    /// from its table to the newest: nothing of what it owned at `e` changed owner without
    /// a handoff, and handoffs away from it are flipped out of what it claims (it claims
    /// what it serves). Its claims count after the newest ones, never over them. The life
    /// keeps two lives' equal epochs apart: `since` compares only with the same life's.
    fn honoured_claimants(&self, epoch: u64) -> BTreeSet<NodeId> {
        let newest: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.epoch_seen == epoch)
            .collect();
        let mut counted: BTreeSet<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.epoch_seen == epoch)
            .map(|(id, _)| id.clone())
            .collect();
        let Some(life) = newest.first().map(|m| m.reported_life) else {
            return counted;
        };
        if epoch == 0 || life == 0 || newest.iter().any(|m| m.reported_life != life) {
            return counted;
        }
        for (id, m) in &self.members {
            let behind = m.epoch_seen > 0 && m.epoch_seen < epoch && m.reported_life == life;
            let kept = behind
                && newest.iter().all(|w| {
                    w.reported_since
                        .get(id)
                        .is_some_and(|&since| since > 0 && since <= m.epoch_seen)
                });
            if kept {
                counted.insert(id.clone());
            }
        }
        counted
    }

    /// Ends the startup grace: publishes the first table and welcomes everyone registered.
    pub(super) fn finish_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Running;
        let epoch = self.max_epoch_reported;
        self.fresh = epoch == 0;
        // Start from what the DataNodes say they own (a restart may fall in the middle of a
        // move); slots nobody reports start at their ring owner, holding nothing.
        let mut table = self.ring.slot_table();
        // Claims at the newest epoch anyone reports count. A node behind it may have been
        // declared dead since its table and its slots given away; their new owner's claim
        // wins where it is made, but it may never be made (that owner restarted empty, or
        // did not come back): the stale claim would then serve values older than writes
        // acknowledged since. Its claims count only when the newest table shows it has
        // been a member without a break since its own (`honoured_claimants`); otherwise its
        // slots wait like unclaimed ones, and it drops them (a miss, never older).
        // Equal epochs: the last in id order, as before; a move between them may be
        // half-flipped and both keep what they hold.
        let counted = self.honoured_claimants(epoch);
        let mut claimed = vec![false; SLOT_COUNT];
        for (id, m) in self.members.iter().filter(|(_, m)| m.epoch_seen == epoch) {
            for &(start, end) in &m.reported {
                if let (Some(a), Some(b)) = (Slot::new(start), Slot::new(end)) {
                    table.assign(a..=b, Some(id));
                    claimed[start as usize..=end as usize].fill(true);
                }
            }
        }
        // Slots handed over while this NameNode was down and reported during the grace go
        // to their target where nobody claims them (it registered before the flip).
        for (s, to) in self.handed_claims(&counted) {
            if let (false, Some(slot)) = (claimed[s as usize], Slot::new(s)) {
                table.assign(slot..=slot, Some(to));
                claimed[s as usize] = true;
            }
        }
        self.handed_at_start.clear();
        // Then the honoured claims behind the newest epoch, where nothing newer claims.
        let mut honoured = 0usize;
        for (id, m) in self
            .members
            .iter()
            .filter(|(id, m)| m.epoch_seen != epoch && counted.contains(*id))
        {
            for s in m.reported.iter().flat_map(|&(a, b)| a..=b) {
                if let (false, Some(slot)) = (claimed[s as usize], Slot::new(s)) {
                    table.assign(slot..=slot, Some(id));
                    claimed[s as usize] = true;
                    honoured += 1;
                }
            }
        }
        // Slots nobody claims after a restart may still be served by a node that did not
        // come back (paused, cut off): they wait until its lease has surely run out.
        let unclaimed: Vec<u16> = (0..SLOT_COUNT as u16)
            .filter(|&s| !claimed[s as usize])
            .collect();
        let fence = epoch > 0 && !unclaimed.is_empty() && self.members.values().any(|m| m.leased);
        if fence {
            table.assign_each(
                unclaimed
                    .iter()
                    .filter_map(|&s| Some((Slot::new(s)?, None))),
            );
        }
        // What a node claimed behind the newest epoch, and does not own now (its slots wait
        // with the unclaimed ones, or a newer claim took them): it drops it.
        let mut flushes: Vec<(NodeId, Vec<(u16, u16)>)> = Vec::new();
        for (id, m) in &self.members {
            let lost: Vec<u16> = m
                .reported
                .iter()
                .flat_map(|&(a, b)| a..=b)
                .filter(|&s| {
                    m.epoch_seen < epoch
                        && Slot::new(s).is_some_and(|slot| table.owner(slot) != Some(id))
                })
                .collect();
            if !lost.is_empty() {
                flushes.push((id.clone(), runs(&lost)));
            }
        }
        table.set_epoch(epoch);
        let unchanged = epoch > 0
            && !self.members.is_empty()
            && !fence
            && self
                .members
                .iter()
                .all(|(id, m)| m.epoch_seen == epoch && m.reported == table.ranges_of(id));
        let epoch = if unchanged { epoch } else { next_epoch(epoch) };
        table.set_epoch(epoch);
        self.ring.set_epoch(epoch);
        if fence {
            self.startup_fence = Some(StartupFence {
                epoch,
                slots: unclaimed,
                acked: BTreeMap::new(),
            });
        }
        for (id, flush) in flushes {
            if let Some(m) = self.members.get_mut(&id) {
                m.flush = flush;
            }
        }
        // Members since this first table; what their tables said is no longer needed.
        for m in self.members.values_mut() {
            m.since = epoch;
            m.reported_life = 0;
            m.reported_since = BTreeMap::new();
        }
        let publication = Arc::new(Publication {
            table,
            nodes: self.node_infos(),
        });
        self.published = Some(publication.clone());
        self.published_at = Some(now);
        out.push(Action::Notice(Notice::StartupDone {
            epoch,
            members: self.members.len(),
            reused_epoch: unchanged,
            honoured_behind: honoured,
        }));
        for conn in self.member_conns(None) {
            let msg = self.welcome(conn, &publication);
            out.push(Action::SendTo { conn, msg });
        }
        out.push(Action::Broadcast {
            publication,
            to: Vec::new(),
        });
        // Whatever differs from the ring moves now.
        self.reconcile(now, None, &[], out);
    }

    /// A node registered with a table of an earlier life after a grace in which nobody
    /// did (slow reconnects): the first table, published as a new cluster's, fenced
    /// nothing, while nodes of that life not registered yet may still serve their slots
    /// under leases their peers renew. The slots nobody owns wait, as after any restart,
    /// until every member has installed a table newer than now (naming only members, so
    /// each refuses leases to the others) and a lease has passed.
    pub(super) fn fence_earlier_life(&mut self) {
        let Some(published) = &self.published else {
            return;
        };
        let slots: Vec<u16> = Slot::all()
            .filter(|&s| published.table.owner(s).is_none())
            .map(|s| s.get())
            .collect();
        if slots.is_empty() || self.startup_fence.is_some() {
            return;
        }
        self.startup_fence = Some(StartupFence {
            epoch: next_epoch(published.epoch()),
            slots,
            acked: BTreeMap::new(),
        });
    }
}
