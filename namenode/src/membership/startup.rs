//! After a restart: when the members' reports rebuild the old membership, and the first table.

use super::*;

impl Membership {
    /// Whether the members that reported owning slots at the newest reported epoch cover
    /// every slot exactly once (with the handoffs reported meanwhile): then the membership
    /// of that epoch is back in full. Not while a claimant is on someone's suspects list
    /// (its claims will not count: the rest of the grace may bring more).
    pub(super) fn old_membership_complete(&self) -> bool {
        let epoch = self.max_epoch_reported;
        if epoch == 0 {
            return false;
        }
        let suspected = self.suspected();
        let mut covered = vec![false; SLOT_COUNT];
        let mut count = 0;
        for (id, member) in &self.members {
            if member.reported.is_empty() {
                continue;
            }
            if member.epoch_seen != epoch || suspected.contains(id) {
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
        let newest: BTreeSet<NodeId> = self.reporting(epoch).map(|(id, _)| id.clone()).collect();
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
            .filter(move |(_, h)| counted.contains(&h.to))
            .map(|(&s, h)| (s, &h.to))
    }

    /// The members that reported a table at `epoch`.
    fn reporting(&self, epoch: u64) -> impl Iterator<Item = (&NodeId, &Member)> + '_ {
        self.members
            .iter()
            .filter(move |(_, m)| m.epoch_seen == epoch)
    }

    /// The nodes some member reports on its suspects list: each was silent through every
    /// probe in the life that sent the list, and may have been declared dead after it (by
    /// a table nobody reports: its new owners may have died with the NameNode).
    fn suspected(&self) -> BTreeSet<NodeId> {
        self.members
            .values()
            .flat_map(|m| m.reported_suspects.iter().cloned())
            .collect()
    }

    /// The life of the newest tables reported (at `epoch`), when every member reporting that
    /// epoch reports one and the same life; else `None`, and nothing behind the newest epoch
    /// can be vouched for.
    fn newest_life(&self, epoch: u64) -> Option<u64> {
        let mut lives = self.reporting(epoch).map(|(_, m)| m.reported_life);
        let life = lives.next()?;
        (epoch > 0 && life != 0 && lives.all(|l| l == life)).then_some(life)
    }

    /// Whether every newest table (at `epoch`, of `life`) lists `id` as a member since an
    /// epoch no later than `at`: a member without a break from `at` to the newest table.
    fn kept_since(&self, epoch: u64, id: &NodeId, at: u64) -> bool {
        self.reporting(epoch).all(|(_, w)| {
            w.reported_since
                .get(id)
                .is_some_and(|&since| since > 0 && since <= at)
        })
    }

    /// The members whose claims count after a restart: those at the newest reported epoch
    /// `epoch`, and those behind it whom the newest table keeps as members since their own
    /// table or earlier; never one on a member's suspects list.
    ///
    /// A claim behind the newest epoch is dangerous when its claimant was declared dead
    /// after its table: its slots went to a new owner without a handoff, writes were
    /// acknowledged there, and that owner may not come back to claim them. A member
    /// declared dead leaves the member list; back, it is a member anew, `since` the epoch
    /// published when it registered again, at or above the table that declared it dead, so
    /// above every table of its earlier membership (see [`Member::since`]). So when every
    /// member at `epoch` reports a table of one life naming `a` a member since `s`, and `a`
    /// reports a table of that same life at `e >= s`, `a` has been a member without a break
    /// from its table to the newest: nothing of what it owned at `e` changed owner without
    /// a handoff, and handoffs away from it are flipped out of what it claims (it claims
    /// what it serves). Its claims count after the newest ones, never over them. The life
    /// keeps two lives' equal epochs apart: `since` compares only with the same life's.
    ///
    /// What nobody reports is a table newer than the newest reported: if it declared a node
    /// dead, every node that has it is gone. A node is declared dead only after a member of
    /// each table it may hold acknowledged a suspects list naming it, and a member holding
    /// that list either still holds it (and reports it here) or holds the newer table too
    /// (the NameNode sends the list that drops the dead node after the table that does).
    /// So a claimant on a reported suspects list is not believed, even at the newest epoch.
    fn counted_claimants(&self, epoch: u64, suspected: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        let mut counted: BTreeSet<NodeId> = self
            .reporting(epoch)
            .filter(|(id, _)| !suspected.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        let Some(life) = self.newest_life(epoch) else {
            return counted;
        };
        for (id, m) in &self.members {
            let behind = m.epoch_seen > 0 && m.epoch_seen < epoch && m.reported_life == life;
            if behind && !suspected.contains(id) && self.kept_since(epoch, id, m.epoch_seen) {
                counted.insert(id.clone());
            }
        }
        counted
    }

    /// Slots handed, on an order of the newest tables' life, to a member whose own claims do
    /// not count (its table is older than its membership, or it has none: its welcome was
    /// lost with the NameNode): the order came after it became a member when the newest
    /// tables keep it a member since the order's epoch or earlier, so the process that got
    /// the order holds what the source handed it. If that process died since, the data died
    /// with it and its successor holds nothing (a miss, never an older value). As (slot,
    /// target).
    fn handed_to_uncounted(
        &self,
        epoch: u64,
        counted: &BTreeSet<NodeId>,
        suspected: &BTreeSet<NodeId>,
    ) -> Vec<(u16, NodeId)> {
        let Some(life) = self.newest_life(epoch) else {
            return Vec::new();
        };
        self.handed_at_start
            .iter()
            .filter(|(_, h)| {
                !counted.contains(&h.to)
                    && !suspected.contains(&h.to)
                    && self.members.contains_key(&h.to)
                    && self
                        .members
                        .get(&h.from)
                        .is_some_and(|m| m.reported_life == life && m.epoch_seen >= h.epoch)
                    && self.kept_since(epoch, &h.to, h.epoch)
            })
            .map(|(&s, h)| (s, h.to.clone()))
            .collect()
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
        // been a member without a break since its own (`counted_claimants`); otherwise its
        // slots wait like unclaimed ones, and it drops them (a miss, never older). Nor do
        // the claims of a node on someone's suspects list.
        // Equal epochs: the last in id order, as before; a move between them may be
        // half-flipped and both keep what they hold.
        let suspected = self.suspected();
        let counted = self.counted_claimants(epoch, &suspected);
        let mut claimed = vec![false; SLOT_COUNT];
        for (id, m) in self
            .reporting(epoch)
            .filter(|(id, _)| counted.contains(*id))
        {
            for &(start, end) in &m.reported {
                if let (Some(a), Some(b)) = (Slot::new(start), Slot::new(end)) {
                    table.assign(a..=b, Some(id));
                    claimed[start as usize..=end as usize].fill(true);
                }
            }
        }
        // Slots handed over while this NameNode was down and reported during the grace go
        // to their target where nobody claims them (it registered before the flip).
        let mut handed: Vec<(u16, NodeId)> = self
            .handed_claims(&counted)
            .map(|(s, to)| (s, to.clone()))
            .collect();
        handed.extend(self.handed_to_uncounted(epoch, &counted, &suspected));
        for (s, to) in handed {
            if let (false, Some(slot)) = (claimed[s as usize], Slot::new(s)) {
                table.assign(slot..=slot, Some(&to));
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
                    (m.epoch_seen < epoch || suspected.contains(id))
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
            m.reported_suspects = BTreeSet::new();
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
