//! What the HTTP endpoints show: cluster and node status, and the target of a drain.

use super::*;

impl Membership {
    /// The connection on which to tell `node` to drain (an operator's request). Changes
    /// nothing: the node answers with `leave`, which starts the drain like any other.
    pub fn drain_target(&self, node: &NodeId) -> Result<ConnId, DrainRefused> {
        if !self.is_running() {
            return Err(DrainRefused::Starting);
        }
        let member = self
            .members
            .get(node)
            .ok_or_else(|| DrainRefused::Unknown(node.clone()))?;
        if self.draining.contains(node) {
            return Err(DrainRefused::AlreadyDraining(node.clone()));
        }
        member
            .conn
            .ok_or_else(|| DrainRefused::NotConnected(node.clone()))
    }

    /// In-flight moves as runs of consecutive slots with the same source and target.
    fn moving_runs(&self) -> Vec<(u16, u16, NodeId, NodeId)> {
        let mut out: Vec<(u16, u16, NodeId, NodeId)> = Vec::new();
        for (&slot, f) in &self.in_flight {
            match out.last_mut() {
                Some(last)
                    if u32::from(last.1) + 1 == u32::from(slot)
                        && last.2 == f.from
                        && last.3 == f.to =>
                {
                    last.1 = slot
                }
                _ => out.push((slot, slot, f.from.clone(), f.to.clone())),
            }
        }
        out
    }

    /// A snapshot for the status page, `/cluster` and `/metrics`.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        let table = self.published.as_ref().map(|p| &p.table);
        let nodes = self
            .members
            .iter()
            .map(|(id, m)| NodeStatus {
                id: id.clone(),
                client_addr: m.info.client_addr,
                admin_addr: m.info.admin_addr,
                state: match m.health {
                    Health::Alive => "alive",
                    Health::Suspect { .. } => "suspect",
                    Health::Fencing { .. } => "fencing",
                },
                connected: m.conn.is_some(),
                last_heartbeat_ms_ago: m
                    .last_heartbeat
                    .map(|t| millis(now.saturating_duration_since(t))),
                last_heard_ms_ago: millis(now.saturating_duration_since(m.last_heard)),
                epoch_seen: m.epoch_seen,
                slots: table.map_or(0, |t| t.slots_of(id)),
                stats: m.stats,
            })
            .collect();
        let ranges = table.map_or_else(Vec::new, |t| {
            t.ranges()
                .into_iter()
                .filter_map(|(start, end, index)| {
                    t.nodes()
                        .get(index as usize)
                        .map(|node| (start, end, node.clone()))
                })
                .collect()
        });
        ClusterStatus {
            state: if self.is_running() {
                "running"
            } else {
                "starting"
            },
            epoch: self
                .published
                .as_ref()
                .map_or(self.max_epoch_reported, |p| p.epoch()),
            nodes,
            slots_assigned: table.map_or(0, SlotTable::assigned_slots),
            slots_moving: self.in_flight.len(),
            moving: self.moving_runs(),
            draining: self.draining.iter().cloned().collect(),
            ranges,
            declared_dead_total: self.declared_dead,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The cluster as the HTTP endpoints show it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// `starting` during the startup grace, then `running`.
    pub state: &'static str,
    /// Epoch of the published table (during startup: the newest epoch reported).
    pub epoch: u64,
    /// Members, sorted by id.
    pub nodes: Vec<NodeStatus>,
    /// Slots with an owner in the published table.
    pub slots_assigned: usize,
    /// Runs of the published table: `[first, last, owner]`.
    pub ranges: Vec<(u16, u16, NodeId)>,
    /// Nodes declared dead since this NameNode started.
    pub declared_dead_total: u64,
    /// Slot moves ordered and not yet confirmed (0 when no join or drain is under way).
    pub slots_moving: usize,
    /// Members draining (leaving once their slots have moved).
    pub draining: Vec<NodeId>,
    /// The moves ordered and not yet confirmed, as runs of consecutive slots with one source
    /// and one target: `[first, last, from, to]`.
    pub moving: Vec<(u16, u16, NodeId, NodeId)>,
}

/// Why an operator's drain of a node cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DrainRefused {
    /// No member has this id.
    #[error("no DataNode {0} in the cluster")]
    Unknown(NodeId),
    /// The node asked to leave already; its slots are moving.
    #[error("DataNode {0} is already draining")]
    AlreadyDraining(NodeId),
    /// The node has no open control connection to be told on (it may be restarting).
    #[error("DataNode {0} is not connected; try again once it has re-registered")]
    NotConnected(NodeId),
    /// The startup grace is not over: no table yet, so nothing could move.
    #[error("the NameNode is still collecting registrations; try again in a moment")]
    Starting,
}

/// One member as the HTTP endpoints show it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub client_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `alive`, `suspect` while being probed, `fencing` once its lease is being waited out.
    pub state: &'static str,
    /// Whether its control connection is open.
    pub connected: bool,
    /// Milliseconds since its last heartbeat (`null`: none since it registered).
    pub last_heartbeat_ms_ago: Option<u64>,
    /// Milliseconds since any message from it.
    pub last_heard_ms_ago: u64,
    pub epoch_seen: u64,
    /// Slots it owns in the published table.
    pub slots: usize,
    #[serde(flatten)]
    pub stats: NodeStats,
}
