//! Who is in the cluster, who is alive, and which slot table everyone has been told: the
//! NameNode's whole brain, as a pure state machine.
//!
//! [`Membership::handle`] takes one [`Event`] (a DataNode message, a closed connection, the
//! passing of time) and the current instant, and returns the [`Action`]s the server must carry
//! out (send a line, close a connection, publish a table). It does no I/O, spawns nothing and
//! never reads a clock, so the tests below drive whole failure scenarios in microseconds, and
//! the server is a thin loop that feeds events in and executes actions out.
//!
//! # Failure detection
//!
//! Every registration, heartbeat, pong or leave proves a DataNode alive. A node silent for `tolerance` heartbeat
//! intervals becomes *suspect* and is sent a `ping`; with no answer, more pings follow every
//! probe interval, and after the last one has had its interval to be answered the node is
//! declared dead: it leaves the ring, the epoch moves, everyone is told. A node whose
//! connection closes is suspected at once rather than after the missed heartbeats, and since
//! there is nothing to send its probes on they simply time out: a kill -9 costs
//! `probe_attempts x probe_interval` (0.9 s by default) before the new table goes out, which
//! leaves the node that long to reconnect and keep its slots after a blip.
//!
//! # Leases and fencing
//!
//! A DataNode that registers as `leased` serves its slots only while it holds an ownership
//! lease (`datanode/src/lease.rs`): until the moment it sent a request for one plus the
//! lease `L` ([`Timing::lease`]), granted by this NameNode answering its heartbeat, or, when
//! this NameNode is late or away, by *every* other node of the table it holds. A peer grants
//! iff the requester is in its table, has a table at least as new, and is not on the
//! *suspects list* this NameNode gave it. So while the NameNode is down nothing changes for
//! the data plane, and a node that cannot renew stops serving within `L`.
//!
//! A leased member silent through every probe is not declared dead at once: it is
//! *fencing*. The NameNode grants it nothing more, puts it on the suspects list, sends the
//! list to every member (each records it, then acknowledges), and gives its slots to others
//! without a handoff only at `fence_ready`: a lease plus a margin after the
//! later of its last grant here, this NameNode's start, and, for each table it may hold that
//! names another node, the first acknowledgement by a node of that table (all members'
//! acknowledgements when that table is unknown). If it speaks again before that (heartbeat,
//! pong, registration) it simply recovers: nothing was taken from it. A node declared dead
//! that comes back is a new member: its claims are ignored and its welcome tells it to drop
//! every slot (`flush`); it gets slots back only by handoff.
//!
//! **Why no stale read, no lost acknowledged write, no resurrected delete.** The data plane
//! changes a slot's owner without a handoff only here, when its owner `X` is declared dead
//! (or, after a restart, for slots nobody reported; below). Claim: at that moment every lease
//! `X` could hold has run out, so `X` serves none of its slots from then on (it checks its
//! lease before and after every command), and when it returns it drops them before serving
//! anything. Every lease of `X` ends at `s + L` on `X`'s clock, `s` being when it sent the
//! request that was granted:
//! - granted here: `s` is before this NameNode processed that heartbeat, which is at most
//!   `X`'s last grant (none after fencing began); granted by an earlier NameNode life: `s`
//!   is before this one started;
//! - granted by peers: every peer of the table `X` used had to grant, among them a node `Q`
//!   that acknowledged the list naming `X` (there is one in every table `X` may hold that
//!   has peers, or we wait). `Q` records the list before acknowledging and refuses from then
//!   on, so `Q` granted before its acknowledgement arrived here, and `s` is earlier still.
//!   (A node re-welcomed after being declared dead holds its old table until it has dropped
//!   everything, and peers refuse a table older than theirs.)
//!
//! So every `s` is before the bound `fence_ready` waits from, and `X`'s leases end before
//! `bound + L`. Waiting `bound + L + margin` on this clock covers the difference between the
//! rates of the two clocks (assumed under 10 %; real clocks drift by parts per million), the
//! coarse clock `X` reads (one kernel tick) and delays between reading a clock and acting.
//! Reads therefore never see the old owner's data after the new owner has taken a write,
//! writes `X` acknowledged all happened while it owned the slot (and handoffs carry them),
//! and a key deleted at the new owner cannot come back from `X`'s copy, which is dropped.
//!
//! **Assumptions and known limits.** Clock rates bounded as above; processes that pause
//! keep their monotonic clock running (true on Linux, also across SIGSTOP). A group of nodes
//! cut off together, whose tables name no node outside the group, keep renewing each other:
//! if none of them can acknowledge, the wait never ends (their slots are not reassigned,
//! which is safe) -- but after a NameNode restart, nodes that do not come back and whose
//! tables name only each other are not counted, and their slots are assigned once the
//! registered members have installed the new table. On loopback this cannot happen (a
//! partition needs network namespaces); it is untested. A node alone in its table cannot be
//! renewed by peers: a one-DataNode cluster stops serving a lease after its NameNode goes.
//!
//! # Startup and NameNode restarts
//!
//! The NameNode keeps no state on disk: after a restart, DataNodes re-register and report the
//! newest epoch they applied and the slots they own. Because the ring is a pure function of
//! the membership, the same members give the same owners. For the first
//! [`startup_grace`](crate::Timing::startup_grace) (two heartbeat intervals by default)
//! registrations are only collected: no table is published, welcomes and watchers wait, so the
//! first table already contains every surviving DataNode instead of flapping through partial
//! memberships. The grace ends early as soon as the nodes that reported slots at the newest
//! reported epoch cover all 16384 slots exactly once: the whole old membership is back. The
//! first table then reuses that epoch when every member reports exactly the slots the rebuilt
//! table gives it (nothing changed), and takes the next epoch otherwise. Epochs never go
//! backwards: every later table is numbered above anything any DataNode has reported.
//!
//! Where two claims overlap, the newer epoch wins and the older claimant's welcome tells it
//! to drop what it lost (a node declared dead by the earlier life that has not caught up).
//! Slots nobody claims are not given to their ring owner at once when leases are in use:
//! whoever held them may still be serving them. They stay unassigned until every member has
//! reported the first table's epoch (a table without the missing node, so each refuses it
//! leases) and a lease plus margin has passed since the last of those reports.
//!
//! # Ring and published table
//!
//! `ring` is the target ownership for the current membership; `published` is the table
//! everyone was told. `reconcile` brings the second towards the first after every ring
//! change: a slot whose owner is gone (dead, or never assigned) goes to its ring owner at
//! once, there being no data to move; a slot whose owner is alive stays with it, and that
//! owner is sent `migrate` (slots, new owner) and the slot is *in flight*. The table changes
//! only when the old owner reports `handoff_done`; a move not confirmed within 15 s is
//! ordered again. A draining member leaves the ring at once but stays a member until it owns
//! nothing, and the table without it is its acknowledgement.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chkv_common::proto::{NameNodeToDataNode, Suspects};
use chkv_common::{NodeId, NodeInfo, Ring, Slot, SlotTable, SLOT_COUNT};
use serde::Serialize;

use crate::config::Timing;

/// One DataNode connection, numbered by the server. A node that reconnects gets a new one,
/// so a late close of its old connection is told apart from a close of the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// A slot table as published, with the addresses of the nodes it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// The table; its epoch is the publication's epoch.
    pub table: SlotTable,
    /// Every member, sorted by id.
    pub nodes: Vec<NodeInfo>,
}

impl Publication {
    /// The epoch of the table.
    pub fn epoch(&self) -> u64 {
        self.table.epoch()
    }
}

/// Load figures a DataNode reports in each heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// Keys held.
    pub keys: u64,
    /// Bytes of memory the node accounts for its data.
    pub used_memory: u64,
    /// Operations reported in the last heartbeat.
    pub ops: u64,
}

/// What happened: a DataNode message (already decoded and checked by the server), a closed
/// connection, or time passing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `register`: `info.id` joins on `conn`, or rejoins after either side restarted.
    Registered {
        conn: ConnId,
        info: NodeInfo,
        /// Newest epoch the node has applied.
        epoch_seen: u64,
        /// Slots the node believes it owns (checked ranges, any order).
        owned_slots: Vec<RangeInclusive<Slot>>,
        /// The node fences itself with leases (see "Leases and fencing" above).
        leased: bool,
        /// The node is draining (it asked to leave before this session): it rejoins as a
        /// draining member, never the ring, so nothing is handed to it again.
        draining: bool,
    },
    /// `heartbeat` from `node` on `conn`.
    Heartbeat {
        conn: ConnId,
        node: NodeId,
        /// Newest epoch the node has applied.
        epoch: u64,
        stats: NodeStats,
        /// The heartbeat's number, answered with a lease grant; 0 asks for none.
        seq: u64,
    },
    /// `suspects_ack`: `node` recorded the suspects list `version` and refuses lease grants
    /// to everyone on it.
    SuspectsAcked {
        conn: ConnId,
        node: NodeId,
        version: u64,
    },
    /// `pong` answering the probe `nonce`.
    ProbeAnswered {
        conn: ConnId,
        node: NodeId,
        nonce: u64,
    },
    /// `leave`: the node asks to leave the ring (a drain: its slots move first).
    Left { conn: ConnId, node: NodeId },
    /// `handoff_done`: `node` has handed these slots to the new owner it was ordered to.
    HandoffDone {
        conn: ConnId,
        node: NodeId,
        slots: Vec<RangeInclusive<Slot>>,
        /// Where the slots went, when the node says (see [`on_handoff_done`]).
        ///
        /// [`on_handoff_done`]: Membership::handle
        to: Option<NodeId>,
    },
    /// The connection closed (EOF, reset, or the server dropped it).
    Disconnected { conn: ConnId },
    /// Time passed; due probes and deadlines fire. Feed one at [`Membership::next_deadline`].
    Tick,
}

/// What the server must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `msg` on the DataNode connection `conn`.
    SendTo {
        conn: ConnId,
        msg: NameNodeToDataNode,
    },
    /// Push `publication` as a `table` to the DataNode connections `to` and to every watching
    /// client (a node just welcomed with the same table is left out of `to`).
    Broadcast {
        publication: Arc<Publication>,
        to: Vec<ConnId>,
    },
    /// Probe `node` with `ping{nonce}` on `conn`; `None` when it has no connection, in which
    /// case the probe can only time out.
    Probe {
        node: NodeId,
        conn: Option<ConnId>,
        nonce: u64,
        /// 1 for the first probe of this suspicion.
        attempt: u32,
    },
    /// Close `conn` (after writing what was queued before it).
    Close { conn: ConnId, reason: CloseReason },
    /// `node` stayed silent through every probe and left the ring.
    DeclaredDead { node: NodeId, silent_for: Duration },
    /// Something worth a log line; changes nothing by itself.
    Notice(Notice),
}

/// Why a DataNode connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The node registered again on a newer connection.
    Superseded,
    /// The node was declared dead; if it is in fact alive it will reconnect and rejoin.
    DeclaredDead,
    /// The connection broke the protocol (an `error` line was sent first).
    ProtocolError,
}

/// Membership changes, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A node new to the ring registered.
    Joined {
        node: NodeId,
        client_addr: SocketAddr,
    },
    /// A member registered again (reconnect, or either side restarted).
    Rejoined { node: NodeId, conn: ConnId },
    /// A member left on request.
    Left { node: NodeId },
    /// `node` asked to leave; its slots are moving.
    Draining { node: NodeId },
    /// `from` was ordered to hand `slots` slots to `to`.
    Migrating {
        from: NodeId,
        to: NodeId,
        slots: usize,
    },
    /// A member's connection closed; it is being probed.
    ConnectionLost { node: NodeId },
    /// A member went silent past the tolerance; it is being probed.
    Suspected { node: NodeId, silent_for: Duration },
    /// A suspect answered.
    Recovered { node: NodeId },
    /// A member stayed silent through every probe: it gets no more leases, the others are
    /// told to refuse it theirs, and its slots go to others once its lease has surely run out.
    Fencing { node: NodeId, silent_for: Duration },
    /// Slots no member reported after a restart were given to their ring owners, the lease
    /// of whoever held them having surely run out.
    UnclaimedAssigned { slots: usize },
    /// The startup grace ended and the first table was published.
    StartupDone {
        epoch: u64,
        members: usize,
        reused_epoch: bool,
    },
}

/// Where a member stands in failure detection.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Health {
    Alive,
    /// Silent: `attempts` probes sent, the next due (or the verdict) at `next_at`.
    Suspect {
        attempts: u32,
        next_at: Instant,
    },
    /// Silent through every probe, and leased: on the suspects list since `version`. Its
    /// slots are reassigned once [`Membership::fence_ready`] says its lease has run out.
    Fencing {
        since: Instant,
        version: u64,
        /// Members that acknowledged a suspects list naming it, and when.
        acked: BTreeMap<NodeId, Instant>,
    },
}

#[derive(Clone, Debug)]
struct Member {
    info: NodeInfo,
    /// The connection the node last registered on, while it is open.
    conn: Option<ConnId>,
    health: Health,
    /// Last message of any kind (registration included).
    last_heard: Instant,
    last_heartbeat: Option<Instant>,
    /// Newest epoch the node reported applying.
    epoch_seen: u64,
    /// Slots the node reported owning when it registered, as sorted, merged runs.
    reported: Vec<(u16, u16)>,
    stats: NodeStats,
    /// Whether the node holds ownership leases (said so when registering, or asked for one).
    leased: bool,
    /// When the NameNode last granted it a lease (processed a heartbeat it answered).
    last_grant: Option<Instant>,
    /// Epoch of the last welcome it was sent: heartbeats from before it (an older epoch) are
    /// not granted, so a node never gets a lease for the table it held before re-registering.
    welcomed_epoch: Option<u64>,
    /// The tables it may hold now, oldest first: the one it last reported and every one
    /// published since. `None` when unknown (it registered with a table of an earlier
    /// NameNode life and has not reported one of ours yet).
    possible: Option<Vec<Arc<Publication>>>,
    /// Slot ranges its next welcome tells it to drop (claims this NameNode did not adopt).
    flush: Vec<(u16, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Collecting registrations until `until`; nothing published yet.
    Starting {
        until: Instant,
    },
    Running,
}

/// The NameNode's state: members, their health, the ring, and the published table.
#[derive(Debug)]
pub struct Membership {
    timing: Timing,
    /// Target ownership for the current membership.
    ring: Ring,
    members: BTreeMap<NodeId, Member>,
    /// Open, registered connections and their node.
    conns: HashMap<ConnId, NodeId>,
    phase: Phase,
    /// What everyone was last told; `None` until the startup grace ends.
    published: Option<Arc<Publication>>,
    published_at: Option<Instant>,
    /// Newest epoch any DataNode has reported; later tables are numbered above it.
    max_epoch_reported: u64,
    next_nonce: u64,
    declared_dead: u64,
    /// Slot moves ordered and not yet confirmed, by slot.
    in_flight: BTreeMap<u16, InFlight>,
    /// Members that asked to leave: out of the ring, still serving until they own nothing.
    draining: BTreeSet<NodeId>,
    /// When this NameNode started: leases an earlier life granted run out by then plus one
    /// lease.
    started: Instant,
    /// Version of the suspects list (the fencing members), bumped when it changes.
    suspects_version: u64,
    /// Unreported slots after a restart, waiting to be assigned.
    startup_fence: Option<StartupFence>,
}

/// Slots no member reported after a restart: held unassigned until whoever may still own
/// them has surely lost its lease.
#[derive(Clone, Debug)]
struct StartupFence {
    /// The first table's epoch: a member that reports it refuses leases to every node the
    /// table does not name.
    epoch: u64,
    slots: Vec<u16>,
    /// Members that reported `epoch` (or newer), and when they first did.
    acked: BTreeMap<NodeId, Instant>,
}

/// Tables a fencing member may hold are tracked up to this many; past it they count as
/// unknown (which only makes the wait rule stricter).
const MAX_POSSIBLE_TABLES: usize = 32;

/// A slot move a DataNode was ordered to make.
#[derive(Clone, Debug)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    since: Instant,
}

/// How long an ordered move may go unconfirmed before it is ordered again.
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);

impl Membership {
    /// A NameNode that has just started at `now`, with no members, collecting registrations
    /// for the startup grace.
    pub fn new(vnodes: NonZeroU32, timing: Timing, now: Instant) -> Membership {
        Membership {
            timing,
            ring: Ring::new(vnodes),
            members: BTreeMap::new(),
            conns: HashMap::new(),
            phase: Phase::Starting {
                until: now + timing.startup_grace,
            },
            published: None,
            published_at: None,
            max_epoch_reported: 0,
            next_nonce: 1,
            declared_dead: 0,
            in_flight: BTreeMap::new(),
            draining: BTreeSet::new(),
            started: now,
            suspects_version: 0,
            startup_fence: None,
        }
    }

    /// The table everyone was last told, or `None` during the startup grace.
    pub fn published(&self) -> Option<&Arc<Publication>> {
        self.published.as_ref()
    }

    /// Whether the startup grace is over.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Number of members (registered and not declared dead or left).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// When the next [`Event::Tick`] is due: the end of the startup grace, a member's silence
    /// limit, or a probe. `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let startup = match self.phase {
            Phase::Starting { until } => Some(until),
            Phase::Running => None,
        };
        let members = self.members.iter().filter_map(|(id, m)| match &m.health {
            Health::Alive => Some(m.last_heard + self.timing.suspect_after()),
            Health::Suspect { next_at, .. } => Some(*next_at),
            Health::Fencing { .. } => self.fence_ready(id, m),
        });
        let moves = self.in_flight.values().map(|f| f.since + MOVE_TIMEOUT);
        let unclaimed = self.startup_fence_ready();
        startup
            .into_iter()
            .chain(members)
            .chain(moves)
            .chain(unclaimed)
            .min()
    }

    /// Whether slot moves are under way.
    pub fn moving(&self) -> usize {
        self.in_flight.len()
    }

    /// Applies `event`, which happened at `now`, and returns what to do about it, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Registered {
                conn,
                info,
                epoch_seen,
                owned_slots,
                leased,
                draining,
            } => self.on_register(
                conn,
                info,
                epoch_seen,
                &owned_slots,
                (leased, draining),
                now,
                &mut out,
            ),
            Event::Heartbeat {
                conn,
                node,
                epoch,
                stats,
                seq,
            } => self.on_heartbeat(conn, &node, epoch, stats, seq, now, &mut out),
            Event::ProbeAnswered { conn, node, .. } => {
                if self.member_on(conn, &node, now, &mut out).is_some() {
                    self.recover(&node, &mut out);
                }
            }
            Event::SuspectsAcked {
                conn,
                node,
                version,
            } => {
                if self.member_on(conn, &node, now, &mut out).is_some() {
                    self.on_suspects_ack(&node, version, now);
                }
            }
            Event::Left { conn, node } => self.on_leave(conn, node, now, &mut out),
            Event::HandoffDone {
                conn,
                node,
                slots,
                to,
            } => self.on_handoff_done(conn, node, &slots, to, now, &mut out),
            Event::Disconnected { conn } => self.on_disconnect(conn, now, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn on_register(
        &mut self,
        conn: ConnId,
        info: NodeInfo,
        epoch_seen: u64,
        owned: &[RangeInclusive<Slot>],
        (leased, draining): (bool, bool),
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
        let mut was_fencing = false;
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
                // held, unless it never had a table (a new process may hold slots handed to
                // it before its welcome, which are live).
                let flush = if running && epoch_seen > 0 {
                    vec![(0, (SLOT_COUNT - 1) as u16)]
                } else {
                    Vec::new()
                };
                // Before this NameNode's first table, the node holds one of an earlier life.
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
            Phase::Running => self.ring_changed(now, Some(conn), out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_heartbeat(
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
                msg: NameNodeToDataNode::table(published.table.clone(), published.nodes.clone()),
            });
        }
    }

    fn on_leave(&mut self, conn: ConnId, node: NodeId, now: Instant, out: &mut Vec<Action>) {
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

    fn on_handoff_done(
        &mut self,
        conn: ConnId,
        node: NodeId,
        slots: &[RangeInclusive<Slot>],
        to: Option<NodeId>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.member_on(conn, &node, now, out).is_none() {
            return;
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

    fn on_disconnect(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Action>) {
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

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
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

    /// Puts `id` on the suspects list: no more leases from the NameNode, and (once the list
    /// is sent) none from the members that acknowledge it.
    fn fence(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
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
    fn recover(&mut self, node: &NodeId, out: &mut Vec<Action>) {
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
    fn suspects(&self) -> Suspects {
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
    fn push_suspects(&mut self, out: &mut Vec<Action>) {
        self.suspects_version = self.suspects_version.saturating_add(1);
        let list = self.suspects();
        for conn in self.member_conns(None) {
            out.push(Action::SendTo {
                conn,
                msg: NameNodeToDataNode::Suspects(list.clone()),
            });
        }
    }

    fn on_suspects_ack(&mut self, node: &NodeId, version: u64, now: Instant) {
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
    fn fence_ready(&self, id: &NodeId, member: &Member) -> Option<Instant> {
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
    fn startup_fence_ready(&self) -> Option<Instant> {
        let fence = self.startup_fence.as_ref()?;
        let mut bound = self.started;
        for id in self.members.keys() {
            bound = bound.max(*fence.acked.get(id)?);
        }
        Some(bound + self.timing.lease + self.timing.lease_margin)
    }

    /// Starts probing `id`: the first probe goes out now.
    fn suspect(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
        if let Some(member) = self.members.get_mut(id) {
            member.health = Health::Suspect {
                attempts: 0,
                next_at: now,
            };
        }
        self.probe(id, now, out);
    }

    /// Sends the next probe to a suspect and schedules the one after (or the verdict).
    fn probe(&mut self, id: &NodeId, now: Instant, out: &mut Vec<Action>) {
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

    /// The member registered on `conn` as `node`, now known to be alive; `None` (and the
    /// connection refused) when `conn` is not registered, or registered as another node.
    fn member_on(
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

    /// Whether the members that reported owning slots at the newest reported epoch cover
    /// every slot exactly once: then the membership of that epoch is back in full.
    fn old_membership_complete(&self) -> bool {
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
        count == SLOT_COUNT
    }

    /// Ends the startup grace: publishes the first table and welcomes everyone registered.
    fn finish_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Running;
        let epoch = self.max_epoch_reported;
        // Start from what the DataNodes say they own (a restart may fall in the middle of a
        // move); slots nobody reports start at their ring owner, holding nothing.
        let mut table = self.ring.slot_table();
        // Claims oldest epoch first, so where two claims overlap the newer one wins: a node
        // that was declared dead in an earlier life and has not caught up claims slots taken
        // from it since. (Equal epochs: the last in id order, as before; a move between
        // them may be half-flipped and both keep what they hold.)
        let mut claimants: Vec<(&NodeId, &Member)> = self.members.iter().collect();
        claimants.sort_by_key(|(_, m)| m.epoch_seen);
        let mut claimed_at: Vec<Option<u64>> = vec![None; SLOT_COUNT];
        for (id, m) in &claimants {
            for &(start, end) in &m.reported {
                if let (Some(a), Some(b)) = (Slot::new(start), Slot::new(end)) {
                    table.assign(a..=b, Some(id));
                    for at in &mut claimed_at[start as usize..=end as usize] {
                        *at = Some(m.epoch_seen);
                    }
                }
            }
        }
        // What each node claimed and lost to a newer claim: it drops it.
        let mut flushes: Vec<(NodeId, Vec<(u16, u16)>)> = Vec::new();
        for (id, m) in &self.members {
            let lost: Vec<u16> = m
                .reported
                .iter()
                .flat_map(|&(a, b)| a..=b)
                .filter(|&s| {
                    Slot::new(s).is_some_and(|slot| table.owner(slot) != Some(id))
                        && claimed_at[s as usize].is_some_and(|e| e > m.epoch_seen)
                })
                .collect();
            if !lost.is_empty() {
                flushes.push((id.clone(), runs(&lost)));
            }
        }
        // Slots nobody claims after a restart may still be served by a node that did not
        // come back (paused, cut off): they wait until its lease has surely run out.
        let unclaimed: Vec<u16> = (0..SLOT_COUNT as u16)
            .filter(|&s| claimed_at[s as usize].is_none())
            .collect();
        let fence = epoch > 0 && !unclaimed.is_empty() && self.members.values().any(|m| m.leased);
        if fence {
            table.assign_each(
                unclaimed
                    .iter()
                    .filter_map(|&s| Some((Slot::new(s)?, None))),
            );
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

    /// The ring or the member list changed: order the moves it needs.
    fn ring_changed(&mut self, now: Instant, welcome: Option<ConnId>, out: &mut Vec<Action>) {
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
    fn reconcile(
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
        // Moves whose source or target is gone are re-decided below.
        self.in_flight.retain(|_, f| live(&f.from) && live(&f.to));
        let target = self.ring.slot_table();
        let mut next = current.table.clone();
        let confirmed: Vec<(Slot, Option<&NodeId>)> = done
            .iter()
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
        for ((from, to), slots) in orders {
            let Some(to_info) = self.members.get(&to).map(|m| m.info.clone()) else {
                continue;
            };
            for &s in &slots {
                self.in_flight.insert(
                    s,
                    InFlight {
                        from: from.clone(),
                        to: to.clone(),
                        since: now,
                    },
                );
            }
            let ranges = runs(&slots);
            out.push(Action::Notice(Notice::Migrating {
                from: from.clone(),
                to: to.clone(),
                slots: slots.len(),
            }));
            if let Some(conn) = self.members.get(&from).and_then(|m| m.conn) {
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
                    ),
                });
            }
        }
    }

    /// Publishes again when a node has seen a newer epoch than ours (renumbering above it).
    fn publish(&mut self, now: Instant, welcome: Option<ConnId>, out: &mut Vec<Action>) {
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
    fn welcome(&mut self, conn: ConnId, publication: &Publication) -> NameNodeToDataNode {
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
        }
    }

    fn node_infos(&self) -> Vec<NodeInfo> {
        self.members.values().map(|m| m.info.clone()).collect()
    }

    /// Open connections of members, in node order, except `skip`.
    fn member_conns(&self, skip: Option<ConnId>) -> Vec<ConnId> {
        self.members
            .values()
            .filter_map(|m| m.conn)
            .filter(|&c| Some(c) != skip)
            .collect()
    }

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

/// `ranges` sorted, with overlapping and adjacent runs merged: the form
/// [`SlotTable::ranges_of`] returns, so the two compare directly.
/// Sorted slot numbers as inclusive runs.
fn runs(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some(last) if last.1 + 1 == s => last.1 = s,
            _ => out.push((s, s)),
        }
    }
    out
}

fn merge_runs(ranges: &[RangeInclusive<Slot>]) -> Vec<(u16, u16)> {
    let mut runs: Vec<(u16, u16)> = ranges
        .iter()
        .map(|r| (r.start().get(), r.end().get()))
        .filter(|(start, end)| start <= end)
        .collect();
    runs.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(runs.len());
    for (start, end) in runs {
        match merged.last_mut() {
            Some((_, last_end)) if u32::from(start) <= u32::from(*last_end) + 1 => {
                *last_end = (*last_end).max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    merged
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

/// The epoch after `epoch`. Never wraps: at `u64::MAX` (only reachable through a node that
/// reported it) it stays there, so DataNodes ignore further tables rather than take a small
/// number for a newer one.
fn next_epoch(epoch: u64) -> u64 {
    epoch.saturating_add(1)
}

#[cfg(test)]
mod tests;
