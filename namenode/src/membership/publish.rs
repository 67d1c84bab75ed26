//! From ring to published table: reconciling, moves, publishing, and each member's welcome.

use super::*;

impl Membership {
    /// The ring or the member list changed: order the moves it needs.
    pub(super) fn ring_changed(
        &mut self,
        now: Instant,
        welcome: Option<ConnId>,
        out: &mut Vec<Action>,
    ) {
        self.reconcile(now, welcome, &[], out);
    }

    /// Brings the published table towards the ring.
    ///
    /// `done` are confirmed moves (slot, new owner) to publish first. Then every slot whose
    /// owner differs from its ring owner is decided: when its owner is gone (dead, or never
    /// assigned) it goes to the ring owner at once, as there is no data to move; when its
    /// owner is alive, that owner is ordered to hand it over (`migrate`) unless a move is
    /// already under way, and the table changes only when the move is confirmed. Draining
    /// members that own nothing more are let go with the final table. Publishes a new epoch
    /// when anything changed, and welcomes `welcome`.
    pub(super) fn reconcile(
        &mut self,
        now: Instant,
        welcome: Option<ConnId>,
        done: &[(u16, NodeId)],
        out: &mut Vec<Action>,
    ) {
        let Some(current) = self.published.clone() else {
            return;
        };
        let members = &self.members;
        let live = |id: &NodeId| members.contains_key(id);
        // A move whose source is gone and whose target lives goes to the target: the source
        // may have flipped the slots and died before its `handoff_done` left, and then the
        // target serves them, as adopted, with a lease of its own. Given to anyone else
        // (their ring owner may have changed since the order) they would have two owners
        // until the target's table caught up. If the flip never happened the target gets
        // them empty: what the source held died with it either way.
        let orphaned: Vec<(u16, NodeId)> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.sent && !live(&f.from) && live(&f.to))
            .map(|(&s, f)| (s, f.to.clone()))
            .collect();
        // Moves whose source or target is gone are re-decided below.
        self.in_flight.retain(|_, f| live(&f.from) && live(&f.to));
        let target = self.ring.slot_table();
        let mut next = current.table.clone();
        let confirmed: Vec<(Slot, Option<&NodeId>)> = done
            .iter()
            .chain(&orphaned)
            .filter_map(|(s, to)| Some((Slot::new(*s)?, to)))
            .filter(|(slot, to)| live(to) && next.owner(*slot) != Some(*to))
            .map(|(slot, to)| (slot, Some(to)))
            .collect();
        let mut changed = !confirmed.is_empty();
        next.assign_each(confirmed);
        let mut orders: BTreeMap<(NodeId, NodeId), Vec<u16>> = BTreeMap::new();
        let mut direct: Vec<(Slot, Option<NodeId>)> = Vec::new();
        let fenced = self.startup_fence.as_ref().map(|f| &f.slots);
        for slot in Slot::all() {
            let want = target.owner(slot);
            let have = next.owner(slot);
            if have == want || fenced.is_some_and(|f| f.binary_search(&slot.get()).is_ok()) {
                continue;
            }
            match (have, want) {
                (Some(h), Some(w)) if live(h) => {
                    if !self.in_flight.contains_key(&slot.get()) {
                        orders
                            .entry((h.clone(), w.clone()))
                            .or_default()
                            .push(slot.get());
                    }
                }
                // A live owner and an empty ring: nowhere to move to, keep serving.
                (Some(h), None) if live(h) => {}
                _ => direct.push((slot, want.cloned())),
            }
        }
        if !direct.is_empty() {
            changed = true;
            next.assign_each(direct.iter().map(|(s, o)| (*s, o.as_ref())));
        }
        // One source per target at a time: a joining node handed data by every other node
        // at once imports three streams on the same cores as the requests it serves, and
        // each source's batches wait behind the others', frozen all along: a join's p99.9
        // request latency was 7.8-8.9 ms against 1.9-2.9 ms steady in
        // `helper/bench-handoff.sh`, 4.9-5.4 ms one source at a time, the join taking as
        // long. The others are ordered as soon as the target is free (each confirmation
        // reconciles again).
        let mut receiving: BTreeMap<NodeId, NodeId> = self
            .in_flight
            .values()
            .map(|f| (f.to.clone(), f.from.clone()))
            .collect();
        for ((from, to), slots) in orders {
            if receiving.get(&to).is_some_and(|src| *src != from) {
                continue;
            }
            receiving.insert(to.clone(), from.clone());
            let Some(to_info) = self.members.get(&to).map(|m| m.info.clone()) else {
                continue;
            };
            let conn = self.members.get(&from).and_then(|m| m.conn);
            for &s in &slots {
                self.in_flight.insert(
                    s,
                    InFlight {
                        from: from.clone(),
                        to: to.clone(),
                        since: now,
                        sent: conn.is_some(),
                    },
                );
            }
            let ranges = runs(&slots);
            out.push(Action::Notice(Notice::Migrating {
                from: from.clone(),
                to: to.clone(),
                slots: slots.len(),
            }));
            if let Some(conn) = conn {
                out.push(Action::SendTo {
                    conn,
                    msg: NameNodeToDataNode::Migrate {
                        epoch: current.epoch(),
                        slots: ranges,
                        to,
                        to_addr: to_info.client_addr,
                        to_tls_port: to_info.tls_port,
                    },
                });
            }
        }
        // Drained members: nothing owned, nothing leaving them.
        let finished: Vec<NodeId> = self
            .draining
            .iter()
            .filter(|id| next.slots_of(id) == 0 && !self.in_flight.values().any(|f| &f.from == *id))
            .cloned()
            .collect();
        let mut farewells = Vec::new();
        for id in finished {
            self.draining.remove(&id);
            if let Some(m) = self.members.remove(&id) {
                if let Some(conn) = m.conn {
                    self.conns.remove(&conn);
                    farewells.push(conn);
                }
            }
            out.push(Action::Notice(Notice::Left { node: id }));
        }
        self.publish_table(next, changed, now, welcome, out);
        if let Some(published) = &self.published {
            for conn in farewells {
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
    }

    /// Publishes again when a node has seen a newer epoch than ours (renumbering above it).
    pub(super) fn publish(&mut self, now: Instant, welcome: Option<ConnId>, out: &mut Vec<Action>) {
        let Some(current) = self.published.clone() else {
            return;
        };
        self.publish_table(current.table.clone(), false, now, welcome, out);
    }

    /// Publishes `table` under a new epoch when it, or the member list, differs from what
    /// was published (`changed`), or when a node has seen a newer epoch than ours; then
    /// welcomes `welcome` with the current table.
    fn publish_table(
        &mut self,
        mut table: SlotTable,
        changed: bool,
        now: Instant,
        welcome: Option<ConnId>,
        out: &mut Vec<Action>,
    ) {
        let Some(current) = self.published.clone() else {
            return;
        };
        let nodes = self.node_infos();
        table.set_epoch(current.epoch());
        let publication = if changed
            || table != current.table
            || nodes != current.nodes
            || current.epoch() < self.max_epoch_reported
        {
            let epoch = next_epoch(current.epoch().max(self.max_epoch_reported));
            table.set_epoch(epoch);
            self.ring.set_epoch(epoch);
            let publication = Arc::new(Publication { table, nodes });
            self.published = Some(publication.clone());
            self.published_at = Some(now);
            Some(publication)
        } else {
            None
        };
        if let Some(publication) = &publication {
            for m in self.members.values_mut() {
                if let Some(tables) = &mut m.possible {
                    tables.push(publication.clone());
                    if tables.len() > MAX_POSSIBLE_TABLES {
                        m.possible = None;
                    }
                }
            }
        }
        if let Some(conn) = welcome {
            let current = self.published.clone().unwrap_or(current);
            let msg = self.welcome(conn, &current);
            out.push(Action::SendTo { conn, msg });
        }
        if let Some(publication) = publication {
            out.push(Action::Broadcast {
                publication,
                to: self.member_conns(welcome),
            });
        }
    }

    /// The welcome for the member registered on `conn`: the table, the lease, the suspects
    /// list (recorded before the table is installed, so the node never grants a lease the
    /// list forbids), and what it must drop.
    pub(super) fn welcome(
        &mut self,
        conn: ConnId,
        publication: &Publication,
    ) -> NameNodeToDataNode {
        let suspects = self.suspects();
        let flush = match self
            .conns
            .get(&conn)
            .and_then(|id| self.members.get_mut(id))
        {
            Some(m) => {
                m.welcomed_epoch = Some(publication.epoch());
                std::mem::take(&mut m.flush)
            }
            // Let go in the step that registered it (a draining node with nothing left to
            // move): it owns nothing, so whatever it holds is not its own any more.
            None => vec![(0, (SLOT_COUNT - 1) as u16)],
        };
        NameNodeToDataNode::Welcome {
            version: chkv_common::PROTOCOL_VERSION,
            epoch: publication.epoch(),
            table: publication.table.clone(),
            nodes: publication.nodes.clone(),
            lease_ms: u64::try_from(self.timing.lease.as_millis()).unwrap_or(u64::MAX),
            suspects: Some(suspects),
            flush,
            life: self.life,
        }
    }

    pub(super) fn node_infos(&self) -> Vec<NodeInfo> {
        self.members
            .values()
            .map(|m| NodeInfo {
                since: m.since,
                ..m.info.clone()
            })
            .collect()
    }

    /// Open connections of members, in node order, except `skip`.
    pub(super) fn member_conns(&self, skip: Option<ConnId>) -> Vec<ConnId> {
        self.members
            .values()
            .filter_map(|m| m.conn)
            .filter(|&c| Some(c) != skip)
            .collect()
    }
}
