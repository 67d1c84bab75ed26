//! The handlers of each [`Event`]: registration, heartbeat, leave, handoff done, disconnect, tick.

use super::*;

impl Membership {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_register(
        &mut self,
        conn: ConnId,
        info: NodeInfo,
        epoch_seen: u64,
        owned: &[RangeInclusive<Slot>],
        (leased, draining): (bool, bool),
        told: Reported,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if let Some(other) = self.conns.get(&conn) {
            if *other != info.id {
                let message = format!(
                    "this connection is registered as {other}; open a new one for {}",
                    info.id
                );
                self.refuse(conn, message, now, out);
                return;
            }
        }
        self.max_epoch_reported = self.max_epoch_reported.max(epoch_seen);
        let id = info.id.clone();
        let reported = merge_runs(owned);
        let running = self.is_running();
        // What its table says about the members matters only to the first table.
        let told = if running { Reported::default() } else { told };
        let mut was_fencing = false;
        // Moves from this node it no longer claims: it flipped them (and its `handoff_done`
        // was lost), or it is a new process that lost everything. Their target may serve
        // them as adopted: they go to it, as if confirmed.
        let mut orphaned: Vec<(u16, NodeId)> = Vec::new();
        if self.members.contains_key(&id) {
            let claims = |s: u16| reported.iter().any(|&(a, b)| a <= s && s <= b);
            self.in_flight.retain(|&s, f| {
                let keep = f.from != id || claims(s);
                // An order that never reached the node cannot have been carried out.
                if !keep && f.sent {
                    orphaned.push((s, f.to.clone()));
                }
                keep
            });
        }
        match self.members.get_mut(&id) {
            Some(member) => {
                was_fencing = matches!(member.health, Health::Fencing { .. });
                member.leased |= leased;
                if let Some(old) = member.conn.replace(conn) {
                    if old != conn {
                        self.conns.remove(&old);
                        out.push(Action::Close {
                            conn: old,
                            reason: CloseReason::Superseded,
                        });
                    }
                }
                // A new address is published by `ring_changed`, which compares node lists.
                member.info = info;
                member.health = Health::Alive;
                member.last_heard = now;
                member.epoch_seen = epoch_seen;
                member.reported = reported;
                member.reported_life = told.life;
                member.reported_since = told.since;
                member.reported_suspects = told.suspects;
                out.push(Action::Notice(Notice::Rejoined {
                    node: id.clone(),
                    conn,
                }));
            }
            None => {
                out.push(Action::Notice(Notice::Joined {
                    node: id.clone(),
                    client_addr: info.client_addr,
                }));
                // Once running, a node new to this NameNode has its claims ignored: it was
                // declared dead (its slots went to others without a handoff), or it comes
                // back after a restart's grace. Its welcome tells it to drop everything it
                // held. A new process (no table yet) can hold slots handed to it before its
                // welcome, but only by orders given after it registered: what it reports
                // now came from orders to an earlier process at its address (declared dead
                // since), whose source may have taken them back; it drops those too.
                let flush = if running && epoch_seen > 0 {
                    vec![(0, (SLOT_COUNT - 1) as u16)]
                } else if running {
                    reported.clone()
                } else {
                    Vec::new()
                };
                if running && epoch_seen > 0 && leased && self.fresh {
                    self.fresh = false;
                    self.fence_earlier_life();
                }
                // Before this NameNode's first table, the node holds one of an earlier life.
                let joined = self.published.as_ref().map_or(0, |p| p.epoch());
                let possible = if running {
                    self.published.clone().map(|p| vec![p])
                } else {
                    None
                };
                self.members.insert(
                    id.clone(),
                    Member {
                        info,
                        conn: Some(conn),
                        health: Health::Alive,
                        last_heard: now,
                        last_heartbeat: None,
                        epoch_seen,
                        reported,
                        stats: NodeStats::default(),
                        leased,
                        last_grant: None,
                        welcomed_epoch: None,
                        possible,
                        flush,
                        joined_epoch: joined,
                        // The same epoch (the first table sets it for those of the startup
                        // grace): see `Member::since`.
                        since: joined,
                        reported_life: told.life,
                        reported_since: told.since,
                        reported_suspects: told.suspects,
                    },
                );
                if !draining {
                    self.ring.add(id.clone());
                }
            }
        }
        if draining && !self.draining.contains(&id) {
            // A drain that began before this session (the node was declared dead meanwhile,
            // or this NameNode restarted): it goes on. Outside the ring, the node is ordered
            // to hand over whatever it still owns and is handed nothing.
            self.ring.remove(&id);
            self.draining.insert(id.clone());
            out.push(Action::Notice(Notice::Draining { node: id.clone() }));
        }
        self.conns.insert(conn, id.clone());
        if was_fencing {
            // Back before its slots were reassigned: nothing was taken from it, so it may
            // be trusted again.
            out.push(Action::Notice(Notice::Recovered { node: id }));
            self.push_suspects(out);
        }

        match self.phase {
            Phase::Starting { .. } => {
                // The welcome waits for the first table; the whole old membership being back
                // is reason enough not to wait for the rest of the grace.
                if self.old_membership_complete() {
                    self.finish_startup(now, out);
                }
            }
            Phase::Running => self.reconcile(now, Some(conn), &orphaned, out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_heartbeat(
        &mut self,
        conn: ConnId,
        node: &NodeId,
        epoch: u64,
        stats: NodeStats,
        seq: u64,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let resend_after = self.timing.heartbeat_interval;
        let current = self.published.clone();
        let Some(member) = self.member_on(conn, node, now, out) else {
            return;
        };
        member.last_heartbeat = Some(now);
        member.epoch_seen = epoch;
        member.stats = stats;
        if seq > 0 {
            member.leased = true;
        }
        if let Some(p) = current.filter(|p| p.epoch() == epoch) {
            // It holds our current table: only that one and later ones from now on.
            member.possible = Some(vec![p]);
        }
        // Granted for a heartbeat sent with (at least) the table it was welcomed with, so
        // never for one sent before it installed that welcome (and dropped what it said).
        let grant = seq > 0 && member.welcomed_epoch.is_some_and(|w| epoch >= w);
        if grant {
            member.last_grant = Some(now);
        }
        self.recover(node, out);
        if grant {
            out.push(Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Lease { seq },
            });
        }
        if let Some(fence) = &mut self.startup_fence {
            if epoch >= fence.epoch {
                fence.acked.entry(node.clone()).or_insert(now);
            }
        }
        self.max_epoch_reported = self.max_epoch_reported.max(epoch);

        let (Some(published), Some(published_at)) = (&self.published, self.published_at) else {
            return;
        };
        if epoch > published.epoch() {
            // The node saw a table from an earlier NameNode life that we have not caught up
            // with: renumber ours above it, or the node would ignore everything we send.
            self.publish(now, None, out);
        } else if epoch < published.epoch() && now.duration_since(published_at) >= resend_after {
            // Still behind a whole interval after the push: it was lost (or is stuck in a
            // queue); send the table again rather than leave the node routing on a stale one.
            out.push(Action::SendTo {
                conn,
                msg: NameNodeToDataNode::table(
                    published.table.clone(),
                    published.nodes.clone(),
                    self.life,
                ),
            });
        }
    }

    pub(super) fn on_leave(
        &mut self,
        conn: ConnId,
        node: NodeId,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.member_on(conn, &node, now, out).is_none() {
            return;
        }
        // A drain: the node leaves the ring at once, but stays a member (and keeps serving)
        // until its slots have moved; the table without it is its acknowledgement.
        self.ring.remove(&node);
        self.draining.insert(node.clone());
        out.push(Action::Notice(Notice::Draining { node }));
        if self.is_running() {
            self.ring_changed(now, None, out);
        }
    }

    pub(super) fn on_handoff_done(
        &mut self,
        conn: ConnId,
        node: NodeId,
        slots: &[RangeInclusive<Slot>],
        (to, epoch): (Option<NodeId>, u64),
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.member_on(conn, &node, now, out).is_none() {
            return;
        }
        if !self.is_running() {
            return self.handed_during_startup(&node, slots, (to, epoch), now, out);
        }
        // A move towards a node that became a member after the order was for an earlier
        // process at its address (declared dead since, which dropped everything when it
        // came back): crediting it would publish an owner that holds nothing beside the
        // source, which took the slots back when its table no longer named the target.
        if let Some(t) = &to {
            if self.members.get(t).is_some_and(|m| epoch < m.joined_epoch) {
                return;
            }
        }
        // The slots are where the node says they went. A move re-ordered after a timeout
        // (perhaps towards another node, the ring having changed) may report the first
        // order's target: crediting the current order's target instead would publish an
        // owner that holds nothing, and the data would be lost.
        let owner_now = |s: u16| {
            self.published
                .as_ref()
                .and_then(|p| Slot::new(s).and_then(|slot| p.table.owner(slot).cloned()))
        };
        let mut done = Vec::new();
        for range in slots {
            for s in range.start().get()..=range.end().get() {
                let ordered = self.in_flight.get(&s).is_some_and(|f| f.from == node);
                match (&to, ordered) {
                    (None, true) => {
                        if let Some(f) = self.in_flight.remove(&s) {
                            done.push((s, f.to));
                        }
                    }
                    (Some(to), true) => {
                        self.in_flight.remove(&s);
                        done.push((s, to.clone()));
                    }
                    // No move under way (it timed out), but the node owned the slot and
                    // handed it over: that is where it is now.
                    (Some(to), false) if owner_now(s).as_ref() == Some(&node) => {
                        done.push((s, to.clone()));
                    }
                    _ => {}
                }
            }
        }
        if !done.is_empty() && self.is_running() {
            self.reconcile(now, None, &done, out);
        }
    }

    /// A handoff reported before the first table (the nodes moved slots while this NameNode
    /// was down, renewing each other's leases): the claims are the table to be, and the
    /// slots are the target's now. The source no longer claims them; the target claims them
    /// unless someone else does (see `finish_startup`).
    fn handed_during_startup(
        &mut self,
        node: &NodeId,
        slots: &[RangeInclusive<Slot>],
        (to, epoch): (Option<NodeId>, u64),
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(to) = to else {
            return;
        };
        let handed: BTreeSet<u16> = slots
            .iter()
            .flat_map(|r| r.start().get()..=r.end().get())
            .collect();
        if let Some(m) = self.members.get_mut(node) {
            let kept: Vec<u16> = m
                .reported
                .iter()
                .flat_map(|&(a, b)| a..=b)
                .filter(|s| !handed.contains(s))
                .collect();
            m.reported = runs(&kept);
        }
        for s in handed {
            if self
                .handed_at_start
                .get(&s)
                .is_none_or(|h| epoch >= h.epoch)
            {
                let handed = Handed {
                    epoch,
                    to: to.clone(),
                    from: node.clone(),
                };
                self.handed_at_start.insert(s, handed);
            }
        }
        if self.old_membership_complete() {
            self.finish_startup(now, out);
        }
    }

    pub(super) fn on_disconnect(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Action>) {
        let Some(id) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(member) = self.members.get_mut(&id) {
            member.conn = None;
            out.push(Action::Notice(Notice::ConnectionLost { node: id.clone() }));
            // A closed socket usually means a dead process: probe now instead of waiting for
            // the missed heartbeats. The probes cannot be sent, so they only time out.
            if member.health == Health::Alive {
                self.suspect(&id, now, out);
            }
        }
    }

    pub(super) fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Phase::Starting { until } = self.phase {
            if now >= until {
                self.finish_startup(now, out);
            }
        }

        let suspect_after = self.timing.suspect_after();
        let mut to_suspect = Vec::new();
        let mut to_probe = Vec::new();
        let mut to_fence = Vec::new();
        let mut dead = Vec::new();
        for (id, member) in &self.members {
            match &member.health {
                Health::Alive if now >= member.last_heard + suspect_after => {
                    to_suspect.push(id.clone());
                }
                Health::Suspect { attempts, next_at } if now >= *next_at => {
                    if *attempts < self.timing.probe_attempts.get() {
                        to_probe.push(id.clone());
                    } else if member.leased {
                        to_fence.push(id.clone());
                    } else {
                        // It does not fence itself: nothing to wait for.
                        dead.push(id.clone());
                    }
                }
                Health::Fencing { .. }
                    if self.fence_ready(id, member).is_some_and(|at| now >= at) =>
                {
                    dead.push(id.clone());
                }
                _ => {}
            }
        }
        if !to_fence.is_empty() {
            for id in &to_fence {
                self.fence(id, now, out);
            }
            self.push_suspects(out);
        }
        if self.startup_fence_ready().is_some_and(|at| now >= at) {
            if let Some(fence) = self.startup_fence.take() {
                out.push(Action::Notice(Notice::UnclaimedAssigned {
                    slots: fence.slots.len(),
                }));
                if dead.is_empty() {
                    self.ring_changed(now, None, out);
                }
            }
        }
        for id in to_suspect {
            if let Some(member) = self.members.get(&id) {
                out.push(Action::Notice(Notice::Suspected {
                    node: id.clone(),
                    silent_for: now.saturating_duration_since(member.last_heard),
                }));
            }
            self.suspect(&id, now, out);
        }
        for id in to_probe {
            self.probe(&id, now, out);
        }
        // Moves nobody confirmed in time are ordered again.
        let before = self.in_flight.len();
        self.in_flight.retain(|_, f| now < f.since + MOVE_TIMEOUT);
        let timed_out = self.in_flight.len() != before;
        if dead.is_empty() {
            if timed_out && self.is_running() {
                self.ring_changed(now, None, out);
            }
            return;
        }
        let mut fenced_gone = false;
        for id in dead {
            let Some(member) = self.members.remove(&id) else {
                continue;
            };
            fenced_gone |= matches!(member.health, Health::Fencing { .. });
            self.ring.remove(&id);
            self.draining.remove(&id);
            self.declared_dead += 1;
            if let Some(conn) = member.conn {
                // Connected but mute (hung, partitioned): cut it, so if it wakes up it
                // reconnects and registers again instead of talking into the void.
                self.conns.remove(&conn);
                out.push(Action::Close {
                    conn,
                    reason: CloseReason::DeclaredDead,
                });
            }
            out.push(Action::DeclaredDead {
                node: id,
                silent_for: now.saturating_duration_since(member.last_heard),
            });
        }
        if self.is_running() {
            self.ring_changed(now, None, out);
        }
        if fenced_gone {
            // After the table without them: a member never sees them off the list while
            // they are still in its table.
            self.push_suspects(out);
        }
    }

    /// The member registered on `conn` as `node`, now known to be alive; `None` (and the
    /// connection refused) when `conn` is not registered, or registered as another node.
    pub(super) fn member_on(
        &mut self,
        conn: ConnId,
        node: &NodeId,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<&mut Member> {
        match self.conns.get(&conn) {
            Some(id) if id == node => {}
            Some(id) => {
                let message = format!("this connection is registered as {id}, not {node}");
                self.refuse(conn, message, now, out);
                return None;
            }
            None => {
                let message =
                    format!("{node} is not registered on this connection; register first");
                self.refuse(conn, message, now, out);
                return None;
            }
        }
        let member = self.members.get_mut(node)?;
        member.last_heard = now;
        Some(member)
    }

    /// Sends `error{message}` and closes `conn`. A member whose connection is refused is
    /// treated as disconnected.
    fn refuse(&mut self, conn: ConnId, message: String, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendTo {
            conn,
            msg: NameNodeToDataNode::Error { message },
        });
        out.push(Action::Close {
            conn,
            reason: CloseReason::ProtocolError,
        });
        self.on_disconnect(conn, now, out);
    }
}
