//! What the dashboard shows beyond the membership itself: a bounded log of cluster events
//! (joins, drains, deaths, epochs) and each DataNode's operations per second.
//!
//! Both are derived from what already flows through the core, without touching the state
//! machine: events from the [`Action`]s that [`Membership::handle`](crate::Membership::handle)
//! returns, rates from the heartbeats it is fed. Plain data, time as a parameter, tested here.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use chkv_common::NodeId;
use serde::Serialize;

use crate::membership::{Action, Event, Notice};

/// Events kept: the oldest go first.
pub const EVENT_LOG_CAPACITY: usize = 256;

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoggedEvent {
    /// Numbered from 1 in the order they happened; never reused while the NameNode runs.
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `join`, `rejoin`, `drain`, `drain_requested`, `left`, `move`, `connection_lost`,
    /// `suspect`, `recovered`, `dead`, `epoch` or `startup`.
    pub kind: &'static str,
    /// The node it is about, if any.
    pub node: Option<NodeId>,
    /// A sentence for people.
    pub detail: String,
    /// How many events of this kind in a row this entry stands for: consecutive tables
    /// (`epoch`, one per handoff batch during a join or drain) share one entry, so they do
    /// not push the joins and drains out of the log.
    pub repeats: u64,
}

/// The event an action stands for, if it is one worth showing: `(kind, node, detail)`.
pub fn describe(action: &Action) -> Option<(&'static str, Option<NodeId>, String)> {
    Some(match action {
        Action::Broadcast { publication, .. } => (
            "epoch",
            None,
            format!(
                "epoch {}: {} nodes, {} slots assigned",
                publication.epoch(),
                publication.nodes.len(),
                publication.table.assigned_slots()
            ),
        ),
        Action::DeclaredDead { node, silent_for } => (
            "dead",
            Some(node.clone()),
            format!(
                "declared dead after {} ms of silence",
                silent_for.as_millis()
            ),
        ),
        Action::Notice(notice) => match notice {
            Notice::Joined { node, client_addr } => (
                "join",
                Some(node.clone()),
                format!("joined from {client_addr}"),
            ),
            Notice::Rejoined { node, .. } => {
                ("rejoin", Some(node.clone()), "registered again".into())
            }
            Notice::Left { node } => (
                "left",
                Some(node.clone()),
                "left the cluster: drain complete".into(),
            ),
            Notice::Draining { node } => (
                "drain",
                Some(node.clone()),
                "draining: its slots are moving to the other nodes".into(),
            ),
            Notice::Migrating { from, to, slots } => (
                "move",
                Some(from.clone()),
                format!("ordered to hand {slots} slots to {to}"),
            ),
            Notice::ConnectionLost { node } => (
                "connection_lost",
                Some(node.clone()),
                "control connection lost; probing".into(),
            ),
            Notice::Suspected { node, silent_for } => (
                "suspect",
                Some(node.clone()),
                format!("silent for {} ms; probing", silent_for.as_millis()),
            ),
            Notice::Recovered { node } => {
                ("recovered", Some(node.clone()), "answered a probe".into())
            }
            Notice::Fencing { node, silent_for } => (
                "fencing",
                Some(node.clone()),
                format!(
                    "silent for {} ms through every probe; waiting out its lease before its slots move",
                    silent_for.as_millis()
                ),
            ),
            Notice::UnclaimedAssigned { slots } => (
                "unclaimed",
                None,
                format!("{slots} slots nobody reported after the restart were assigned"),
            ),
            Notice::StartupDone {
                epoch,
                members,
                reused_epoch,
                honoured_behind,
            } => (
                "startup",
                None,
                format!(
                    "startup grace over: {members} members at epoch {epoch}{}{}",
                    if *reused_epoch { " (kept)" } else { "" },
                    if *honoured_behind > 0 {
                        format!(", {honoured_behind} slots kept by members a table behind")
                    } else {
                        String::new()
                    }
                ),
            ),
        },
        Action::SendTo { .. } | Action::Probe { .. } | Action::Close { .. } => return None,
    })
}

/// A ring buffer of the last [`EVENT_LOG_CAPACITY`] events.
#[derive(Debug)]
pub struct EventLog {
    entries: VecDeque<LoggedEvent>,
    capacity: usize,
    next_seq: u64,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog::with_capacity(EVENT_LOG_CAPACITY)
    }
}

impl EventLog {
    /// An empty log keeping at most `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> EventLog {
        let capacity = capacity.max(1);
        EventLog {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            next_seq: 1,
        }
    }

    /// Records the event `action` stands for, if any, as happening at `unix_ms`.
    pub fn record_action(&mut self, action: &Action, unix_ms: u64) {
        if let Some((kind, node, detail)) = describe(action) {
            self.push(kind, node, detail, unix_ms);
        }
    }

    /// Appends an event, dropping the oldest when full. An `epoch` right after an `epoch`
    /// updates that entry instead (with a new number).
    pub fn push(&mut self, kind: &'static str, node: Option<NodeId>, detail: String, unix_ms: u64) {
        if let Some(last) = self.entries.back_mut() {
            if kind == "epoch" && last.kind == "epoch" {
                last.seq = self.next_seq;
                last.unix_ms = unix_ms;
                last.detail = detail;
                last.repeats = last.repeats.saturating_add(1);
                self.next_seq = self.next_seq.saturating_add(1);
                return;
            }
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(LoggedEvent {
            seq: self.next_seq,
            unix_ms,
            kind,
            node,
            detail,
            repeats: 1,
        });
        self.next_seq = self.next_seq.saturating_add(1);
    }

    /// The events kept, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &LoggedEvent> + ExactSizeIterator {
        self.entries.iter()
    }
}

/// Operations per second of each DataNode, from the running totals in its heartbeats.
#[derive(Debug, Default)]
pub struct OpsRates {
    nodes: HashMap<NodeId, Rate>,
}

#[derive(Clone, Copy, Debug)]
struct Rate {
    total: u64,
    at: Instant,
    per_sec: f64,
}

/// Two heartbeats closer than this are not used for a rate (the quotient would be noise).
const MIN_SPAN_MS: u128 = 100;

impl OpsRates {
    /// Notes the total a heartbeat carried, if `event` is one.
    pub fn observe(&mut self, event: &Event, now: Instant) {
        if let Event::Heartbeat { node, stats, .. } = event {
            self.record(node, stats.ops, now);
        }
    }

    /// Notes that `node` reported `total` operations at `now`.
    pub fn record(&mut self, node: &NodeId, total: u64, now: Instant) {
        match self.nodes.get_mut(node) {
            Some(rate) => {
                let span = now.saturating_duration_since(rate.at);
                if span.as_millis() < MIN_SPAN_MS {
                    return;
                }
                // A smaller total means the node restarted: no rate until the next beat.
                rate.per_sec = match total.checked_sub(rate.total) {
                    Some(delta) => delta as f64 / span.as_secs_f64(),
                    None => 0.0,
                };
                rate.total = total;
                rate.at = now;
            }
            None => {
                self.nodes.insert(
                    node.clone(),
                    Rate {
                        total,
                        at: now,
                        per_sec: 0.0,
                    },
                );
            }
        }
    }

    /// The last rate of `node` (0 before its second heartbeat).
    pub fn get(&self, node: &NodeId) -> f64 {
        self.nodes.get(node).map_or(0.0, |r| r.per_sec)
    }

    /// Forgets nodes `keep` says no to (they left the membership).
    pub fn retain(&mut self, mut keep: impl FnMut(&NodeId) -> bool) {
        self.nodes.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{ConnId, NodeStats};
    use std::time::Duration;

    #[test]
    fn notices_and_deaths_become_events() {
        let mut log = EventLog::with_capacity(3);
        log.record_action(
            &Action::Notice(Notice::Joined {
                node: NodeId::from("dn-a"),
                client_addr: "127.0.0.1:7001".parse().expect("addr"),
            }),
            1000,
        );
        // Connection-level actions are not events.
        log.record_action(
            &Action::Probe {
                node: NodeId::from("dn-a"),
                conn: None,
                nonce: 1,
                attempt: 1,
            },
            1001,
        );
        log.record_action(
            &Action::Notice(Notice::Draining {
                node: NodeId::from("dn-a"),
            }),
            1002,
        );
        log.record_action(
            &Action::DeclaredDead {
                node: NodeId::from("dn-b"),
                silent_for: Duration::from_millis(900),
            },
            1003,
        );
        let kinds: Vec<_> = log.entries().map(|e| (e.seq, e.kind)).collect();
        assert_eq!(kinds, vec![(1, "join"), (2, "drain"), (3, "dead")]);
        assert_eq!(
            log.entries().last().map(|e| e.detail.as_str()),
            Some("declared dead after 900 ms of silence")
        );
        // Consecutive tables share an entry.
        let epoch = |n: u64| Action::Broadcast {
            publication: std::sync::Arc::new(crate::Publication {
                table: chkv_common::SlotTable::empty(n),
                nodes: Vec::new(),
            }),
            to: Vec::new(),
        };
        let mut tables = EventLog::with_capacity(3);
        for n in 1..=5 {
            tables.record_action(&epoch(n), n);
        }
        let only: Vec<_> = tables
            .entries()
            .map(|e| (e.seq, e.repeats, e.detail.as_str()))
            .collect();
        assert_eq!(only, vec![(5, 5, "epoch 5: 0 nodes, 0 slots assigned")]);
        // Full: the oldest goes, numbers go on.
        log.push("drain_requested", None, "x".into(), 1004);
        let seqs: Vec<_> = log.entries().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
    }

    #[test]
    fn rates_from_running_totals() {
        let t0 = Instant::now();
        let mut rates = OpsRates::default();
        let a = NodeId::from("dn-a");
        let beat = |ops| Event::Heartbeat {
            conn: ConnId(1),
            node: NodeId::from("dn-a"),
            epoch: 1,
            stats: NodeStats {
                keys: 0,
                used_memory: 0,
                ops,
            },
            seq: 0,
        };
        rates.observe(&beat(1000), t0);
        assert_eq!(rates.get(&a), 0.0);
        rates.observe(&beat(3000), t0 + Duration::from_secs(2));
        assert_eq!(rates.get(&a), 1000.0);
        // Too close to the last beat: ignored.
        rates.observe(&beat(9000), t0 + Duration::from_millis(2010));
        assert_eq!(rates.get(&a), 1000.0);
        // A restart (the total went down) shows 0, then rates resume from the new total.
        rates.observe(&beat(10), t0 + Duration::from_secs(3));
        assert_eq!(rates.get(&a), 0.0);
        rates.observe(&beat(510), t0 + Duration::from_secs(4));
        assert_eq!(rates.get(&a), 500.0);
        rates.retain(|_| false);
        assert_eq!(rates.get(&a), 0.0);
    }
}
