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
//! Claims at the newest reported epoch count. An older claim counts, after those, only when
//! every newest table (of one life, the one the claim's table comes from) lists its
//! claimant as a member since the claim's epoch or earlier: a member without a break since
//! its table lost nothing without a handoff (see `startup::counted_claimants`). Any other
//! older claimant's welcome tells it to drop what it claimed (it may have been declared
//! dead by the earlier life, its slots given away to an owner that may not come back to
//! claim them: its values could be older than writes acknowledged since). Nor does the claim
//! of a node another reports on its suspects list (it may have been declared dead by a table
//! only nodes that did not come back received). A handoff reported during the grace counts
//! for its target when the target's claims count, or when the newest tables keep the target
//! a member since the order's epoch (the process that got the order holds the slots; one
//! that restarted since lost them anyway). Slots nobody claims are not given to their ring owner at once
//! when leases are in use: whoever held them may still be serving them. They stay unassigned
//! until every member has reported the first table's epoch (a table without the missing
//! node, so each refuses it leases) and a lease plus margin has passed since the last of
//! those reports. A grace in which nobody reported a table looks like a new cluster's; the
//! first registration that carries a table of an earlier life sets up the same wait for the
//! slots nobody owns.
//!
//! A move whose source dies, or registers again without claiming the moving slots, before
//! confirming it goes to its target if the order reached the source: the source may have
//! flipped the slots and lost its `handoff_done`, and the target then serves them. A new
//! process drops the slots it reports at registration (no order to it can precede its
//! registration), and a `handoff_done` for an order older than its target's membership is
//! not credited (it was for an earlier process at that address).
//!
//! # Ring and published table
//!
//! `ring` is the target ownership for the current membership; `published` is the table
//! everyone was told. `reconcile` brings the second towards the first after every ring
//! change: a slot whose owner is gone (dead, or never assigned) goes to its ring owner at
//! once, there being no data to move; a slot whose owner is alive stays with it, and that
//! owner is sent `migrate` (slots, new owner) and the slot is *in flight*. A node receives
//! from one source at a time: the others are ordered as that one confirms. The table changes
//! only when the old owner reports `handoff_done`; a move not confirmed within 15 s is
//! ordered again. A draining member leaves the ring at once but stays a member until it owns
//! nothing, and the table without it is its acknowledgement.
//!
//! # Layout
//!
//! The types and the public entry points are here; the rest of [`Membership`] by concern:
//! - `events`: the handler of each [`Event`];
//! - `fencing`: suspecting, probing, the suspects list and `fence_ready`;
//! - `startup`: rebuilding the old membership after a restart;
//! - `publish`: from ring to published table, and each member's welcome;
//! - `status`: what the HTTP endpoints show, and the target of a drain.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chkv_common::proto::{NameNodeToDataNode, Suspects};
use chkv_common::slot::runs;
use chkv_common::{NodeId, NodeInfo, Ring, Slot, SlotTable, SLOT_COUNT};
use serde::Serialize;

use crate::config::Timing;

mod events;
mod fencing;
mod publish;
mod startup;
mod status;

pub use status::{ClusterStatus, DrainRefused, NodeStatus};

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
        /// The NameNode life that numbered the table at `epoch_seen` (0: unknown).
        life: u64,
        /// That table's members and the epoch each has been a member since (checked ids and
        /// epochs, at most `MAX_REPORTED_MEMBERS`).
        members_since: Vec<(NodeId, u64)>,
        /// The suspects list the node holds (checked ids, at most `MAX_REPORTED_MEMBERS`).
        suspects: Vec<NodeId>,
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
        /// The epoch of the order the node carried out.
        epoch: u64,
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
        /// Slots given to claims behind the newest reported epoch, honoured because the
        /// newest table kept their claimants as members since (see `finish_startup`).
        honoured_behind: usize,
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
    /// The published epoch when it became a member: every order towards it carries this
    /// epoch or a later one, so a report of a move to it from an older order was meant for
    /// an earlier process at its address.
    joined_epoch: u64,
    /// The epoch it has been a member since, without a break, in this life: the published
    /// epoch when it registered as a new member (`joined_epoch`), or the first table's
    /// after a startup grace. Every order towards this membership carries this epoch or a
    /// later one, and no table it held before (of an earlier membership, ended by its
    /// death at a table at or below this one) is numbered as high. Published as its
    /// `NodeInfo::since`; 0 until the first table.
    since: u64,
    /// During the startup grace: the life and the `since` list of the table it reported
    /// (see [`Membership::counted_claimants`]). Emptied when the grace ends.
    reported_life: u64,
    reported_since: BTreeMap<NodeId, u64>,
    /// During the startup grace: the suspects list it holds.
    reported_suspects: BTreeSet<NodeId>,
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
    /// The startup grace ended with no table of an earlier life reported: the first table
    /// was a new cluster's, unfenced. A node that registers later with such a table
    /// reveals that life (see `on_register`).
    fresh: bool,
    /// The number this NameNode drew when it started, sent with every table, so a DataNode's
    /// report says which life numbered its table (0: none; older claims are then never
    /// honoured after a restart).
    life: u64,
    /// During the startup grace: slots a member reported handed over, with the order's
    /// epoch and the target. The target may have registered before the flip and the source
    /// after it, so neither claims them; the first table gives each to its target if nobody
    /// claims it. Of two reports of one slot (a chain of moves), the later order's counts.
    handed_at_start: BTreeMap<u16, Handed>,
}

/// A handoff reported during the startup grace: the order's epoch, its target and source.
#[derive(Clone, Debug)]
struct Handed {
    epoch: u64,
    to: NodeId,
    from: NodeId,
}

/// What a registering node's table says about the members (see `on_register`).
#[derive(Clone, Debug, Default)]
struct Reported {
    life: u64,
    since: BTreeMap<NodeId, u64>,
    suspects: BTreeSet<NodeId>,
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
    /// The order reached the source's connection: only then can the target hold the slot.
    sent: bool,
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
            fresh: false,
            life: 0,
            handed_at_start: BTreeMap::new(),
        }
    }

    /// This NameNode with the life number `life`: drawn at random when the process starts,
    /// so no two lives share one (a restart must not take an earlier life's epochs for its
    /// own).
    pub fn with_life(mut self, life: u64) -> Membership {
        self.life = life;
        self
    }

    /// The life number tables are sent with.
    pub fn life(&self) -> u64 {
        self.life
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
                life,
                members_since,
                suspects,
            } => self.on_register(
                conn,
                info,
                epoch_seen,
                &owned_slots,
                (leased, draining),
                Reported {
                    life,
                    since: members_since.into_iter().collect(),
                    suspects: suspects.into_iter().collect(),
                },
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
                epoch,
            } => self.on_handoff_done(conn, node, &slots, (to, epoch), now, &mut out),
            Event::Disconnected { conn } => self.on_disconnect(conn, now, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }
}

/// `ranges` sorted, with overlapping and adjacent runs merged: the form
/// [`SlotTable::ranges_of`] returns, so the two compare directly.
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

/// The epoch after `epoch`. Never wraps: at `u64::MAX` (only reachable through a node that
/// reported it) it stays there, so DataNodes ignore further tables rather than take a small
/// number for a newer one.
fn next_epoch(epoch: u64) -> u64 {
    epoch.saturating_add(1)
}

#[cfg(test)]
mod tests;
