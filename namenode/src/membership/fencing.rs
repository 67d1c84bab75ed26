//! Failure detection and fencing: suspects, probes, the suspects list, when fenced slots may go.

use super::*;

impl Membership {
    /// Puts `id` on the suspects list: no more leases from the NameNode, and (once the list
    /// is sent) none from the members that acknowledge it.
    pub(super) fn fence(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
        let version = self.suspects_version.saturating_add(1);
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        member.health = Health::Fencing {
            since: now,
            version,
            acked: BTreeMap::new(),
        };
        out.push(Action::Notice(Notice::Fencing {
            node: id.clone(),
            silent_for: now.saturating_duration_since(member.last_heard),
        }));
    }

    /// A suspect or fencing member proved alive: back to alive, and off the suspects list.
    pub(super) fn recover(&mut self, node: &NodeId, out: &mut Vec<Action>) {
        let Some(member) = self.members.get_mut(node) else {
            return;
        };
        if member.health == Health::Alive {
            return;
        }
        let was_fencing = matches!(member.health, Health::Fencing { .. });
        member.health = Health::Alive;
        out.push(Action::Notice(Notice::Recovered { node: node.clone() }));
        if was_fencing {
            // Nothing was taken from it (a reassigned node is no member): it may be granted
            // leases again, by the NameNode and by its peers.
            self.push_suspects(out);
        }
    }

    /// The suspects list as DataNodes receive it.
    pub(super) fn suspects(&self) -> Suspects {
        Suspects {
            version: self.suspects_version,
            nodes: self
                .members
                .iter()
                .filter(|(_, m)| matches!(m.health, Health::Fencing { .. }))
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    /// The fencing members changed: a new version of the list goes to every member.
    pub(super) fn push_suspects(&mut self, out: &mut Vec<Action>) {
        self.suspects_version = self.suspects_version.saturating_add(1);
        let list = self.suspects();
        for conn in self.member_conns(None) {
            out.push(Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Suspects(list.clone()),
            });
        }
    }

    pub(super) fn on_suspects_ack(&mut self, node: &NodeId, version: u64, now: Instant) {
        for (id, m) in &mut self.members {
            if let Health::Fencing {
                version: listed,
                acked,
                ..
            } = &mut m.health
            {
                if id != node && *listed <= version {
                    acked.entry(node.clone()).or_insert(now);
                }
            }
        }
    }

    /// When the fencing member `id` has surely lost its lease, so its slots may go to others
    /// without a handoff; `None` while that cannot be known yet (see "Leases and fencing").
    pub(super) fn fence_ready(&self, id: &NodeId, member: &Member) -> Option<Instant> {
        let Health::Fencing { acked, .. } = &member.health else {
            return None;
        };
        // Grants of an earlier NameNode life, and ours.
        let mut bound = self.started.max(member.last_grant.unwrap_or(self.started));
        match &member.possible {
            Some(tables) => {
                for table in tables {
                    let mut peers = table.nodes.iter().filter(|n| &n.id != id).peekable();
                    if peers.peek().is_none() {
                        // Alone in that table: no peer to renew through.
                        continue;
                    }
                    // Renewing with this table needs every one of its peers; the first of
                    // them to acknowledge refuses from then on.
                    let first = peers.filter_map(|n| acked.get(&n.id)).min()?;
                    bound = bound.max(*first);
                }
            }
            None => {
                // Its table is unknown: every member that may be in it must have
                // acknowledged (fencing ones do not answer; see the known limit).
                for (other, m) in &self.members {
                    if other == id || matches!(m.health, Health::Fencing { .. }) {
                        continue;
                    }
                    bound = bound.max(*acked.get(other)?);
                }
            }
        }
        Some(bound + self.timing.lease + self.timing.lease_margin)
    }

    /// When the slots nobody reported after a restart may be assigned: every member has
    /// installed the first table (which names only members, so each refuses leases to the
    /// missing owner), and a lease has passed since the last of them did and since the start.
    pub(super) fn startup_fence_ready(&self) -> Option<Instant> {
        let fence = self.startup_fence.as_ref()?;
        let mut bound = self.started;
        for id in self.members.keys() {
            bound = bound.max(*fence.acked.get(id)?);
        }
        Some(bound + self.timing.lease + self.timing.lease_margin)
    }

    /// Starts probing `id`: the first probe goes out now.
    pub(super) fn suspect(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
        if let Some(member) = self.members.get_mut(id) {
            member.health = Health::Suspect {
                attempts: 0,
                next_at: now,
            };
        }
        self.probe(id, now, out);
    }

    /// Sends the next probe to a suspect and schedules the one after (or the verdict).
    pub(super) fn probe(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
        let nonce = self.next_nonce;
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        let Health::Suspect { attempts, .. } = member.health.clone() else {
            return;
        };
        self.next_nonce += 1;
        member.health = Health::Suspect {
            attempts: attempts + 1,
            next_at: now + self.timing.probe_interval,
        };
        out.push(Action::Probe {
            node: id.clone(),
            conn: member.conn,
            nonce,
            attempt: attempts + 1,
        });
    }
}
