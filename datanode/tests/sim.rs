//! Deterministic simulation of the cluster's ownership protocol under faults.
//!
//! The NameNode is its real [`Membership`] (events in, actions out, time a parameter). Each
//! DataNode is built from its real plain-data parts: [`Ownership`] (the table and the
//! handoff overrides), the lease grant rule ([`Lease::may_grant`] and the suspects list),
//! [`trust::may_receive`] for taking a handed-over slot, and the rule for when to renew a
//! lease through the peers ([`lease::needs_renewal`]). What the async code does with them
//! (the agent's session with the NameNode, heartbeats and grants, renewal through the
//! peers, a migration's freeze, copy and flip) is modelled here, message by message, over a
//! simulated network: every message takes a seeded delay, connections keep their order,
//! a paused process handles nothing until it resumes, a killed one loses everything.
//!
//! Each seed draws a fault schedule: pauses past the dead-declaration time, kill -9 and
//! restart, a NameNode restart, a node joining, slow links. Clients write, delete and read
//! a sample of slots throughout. Checked at every step, exactly:
//! - no two nodes serve a slot at the same time (a node serves a slot while it owns it,
//!   holds a lease and has not frozen it);
//! - a read returns the last acknowledged write or delete of its slot, or a miss when the
//!   node that held it was declared dead or killed since (never an older value, never a
//!   deleted one);
//!
//! and at the end, after the faults stop, that every slot is served by exactly one node.
//! Time is simulated: a run takes milliseconds, and a seed replays the same run.

use chkv_common::proto::{NameNodeToDataNode, NodeInfo};
use chkv_common::ring::NodeId;
use chkv_common::{Slot, SLOT_COUNT};
use chkv_datanode::cluster::{Owner, Routing};
use chkv_datanode::lease::{self, Lease};
use chkv_datanode::ownership::{Install, Ownership};
use chkv_datanode::trust;
use chkv_namenode::membership::{Action, ConnId, Event, Membership, NodeStats, Notice};
use chkv_namenode::Timing;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// A seeded generator (splitmix64): the same seed, the same run, whatever the platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a DataNode sends the NameNode.
#[derive(Clone, Debug)]
enum Up {
    Register {
        epoch_seen: u64,
        owned: Vec<RangeInclusive<Slot>>,
        /// The life of its table, its members' `since` and its suspects list (agent.rs).
        life: u64,
        since: Vec<(NodeId, u64)>,
        suspects: Vec<NodeId>,
    },
    Heartbeat {
        epoch: u64,
        seq: u64,
    },
    SuspectsAck(u64),
    Pong(u64),
    HandoffDone {
        slots: Vec<RangeInclusive<Slot>>,
        to: NodeId,
        /// The order's epoch.
        epoch: u64,
    },
}

#[derive(Clone, Debug)]
enum Ev {
    /// A message reaches the NameNode on `conn`.
    ToNameNode {
        conn: ConnId,
        msg: Up,
    },
    /// The NameNode saw `conn` close (the process died).
    Disconnected {
        conn: ConnId,
    },
    /// A message from the NameNode (of life `nn_life`) reaches node `n` on `conn`.
    ToNode {
        n: usize,
        conn: ConnId,
        msg: NameNodeToDataNode,
        nn_life: u64,
    },
    /// Node `n` sees its NameNode connection `conn` closed.
    SessionClosed {
        n: usize,
        conn: ConnId,
    },
    /// Node `n` (incarnation `life`) tries to register.
    Connect {
        n: usize,
        life: u64,
    },
    /// Node `n`'s heartbeat timer.
    Beat {
        n: usize,
        life: u64,
    },
    /// Node `n`'s lease-renewal check.
    Renew {
        n: usize,
        life: u64,
    },
    /// `from` asks node `n` for a lease, with its table's epoch.
    LeaseAsk {
        n: usize,
        to_life: u64,
        from: usize,
        from_life: u64,
        epoch: u64,
        round: u64,
    },
    /// Node `n`'s peer answered round `round`.
    LeaseAnswer {
        n: usize,
        life: u64,
        round: u64,
        ok: bool,
    },
    /// Node `n`'s copy of its current batch is done.
    Copied {
        n: usize,
        life: u64,
        order: u64,
    },
    /// Node `n` tries its current order again (a batch failed).
    Retry {
        n: usize,
        life: u64,
    },
    /// A batch's data from `from` reaches node `n` (`CLUSTER IMPORT`): what each slot
    /// holds at the source, frozen there.
    Import {
        n: usize,
        to_life: u64,
        from: usize,
        from_life: u64,
        /// The source's connection to `n` (a new one after one broke): a peer session.
        gen: u64,
        order: u64,
        data: Vec<(u16, Option<u64>)>,
    },
    /// Node `n` hears whether its import was taken.
    ImportReply {
        n: usize,
        life: u64,
        order: u64,
        ok: bool,
    },
    /// A batch's flip from `from` reaches node `n` (`CLUSTER HANDOFF`).
    Handoff {
        n: usize,
        to_life: u64,
        from: usize,
        from_life: u64,
        gen: u64,
        order: u64,
        slots: Vec<u16>,
        /// Its connection broke after it was written: it arrives late or never, and its
        /// reply is lost.
        broken: bool,
    },
    /// Node `n`'s connection to its batch's new owner broke after the flip was written:
    /// it asks the new owner whether it took the batch, until it is told.
    FlipInDoubt {
        n: usize,
        life: u64,
        order: u64,
    },
    /// `from` asks node `n` how many of `slots` it took from it (`CLUSTER HANDOFFCHECK`).
    Check {
        n: usize,
        to_life: u64,
        from: usize,
        from_life: u64,
        order: u64,
        slots: Vec<u16>,
    },
    /// Node `n` hears how many of the slots it asked about were taken (`None`: no answer).
    CheckReply {
        n: usize,
        life: u64,
        order: u64,
        took: Option<usize>,
    },
    /// Node `n` hears how its batch went.
    HandoffReply {
        n: usize,
        life: u64,
        order: u64,
        ok: bool,
    },
    /// The NameNode's next deadline.
    Tick {
        life: u64,
    },
    /// A client request.
    Op,
    Pause {
        n: usize,
        for_: Duration,
    },
    Resume {
        n: usize,
    },
    Kill {
        n: usize,
    },
    Start {
        n: usize,
    },
    NameNodeDown,
    NameNodeUp,
    /// The NameNode is killed as it publishes its next table, and what it sent and was
    /// not delivered yet is lost (a kill -9 with data in its socket buffers): some nodes
    /// come back to the next life a table behind the others.
    NameNodeDownAtTable {
        back_after: Duration,
    },
}

impl Ev {
    /// The node that handles the event, if it is a node's.
    fn node(&self) -> Option<usize> {
        match *self {
            Ev::ToNode { n, .. }
            | Ev::SessionClosed { n, .. }
            | Ev::Connect { n, .. }
            | Ev::Beat { n, .. }
            | Ev::Renew { n, .. }
            | Ev::LeaseAsk { n, .. }
            | Ev::LeaseAnswer { n, .. }
            | Ev::Copied { n, .. }
            | Ev::Retry { n, .. }
            | Ev::Import { n, .. }
            | Ev::ImportReply { n, .. }
            | Ev::Handoff { n, .. }
            | Ev::HandoffReply { n, .. }
            | Ev::FlipInDoubt { n, .. }
            | Ev::Check { n, .. }
            | Ev::CheckReply { n, .. } => Some(n),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    /// Not started yet, or killed.
    Down,
    Up,
    Paused,
}

/// A migration order being carried out: its slots still to move, the batch in flight.
struct Order {
    id: u64,
    epoch: u64,
    to: usize,
    todo: VecDeque<u16>,
    batch: Vec<u16>,
    tries: u32,
    /// The batch's flip was written on a connection that broke: frozen until the new
    /// owner says whether it took it.
    in_doubt: bool,
}

/// One lease renewal through the peers.
struct Round {
    id: u64,
    sent: Duration,
    waiting: usize,
    ok: bool,
}

struct DataNode {
    info: NodeInfo,
    run: Run,
    /// Incarnation: bumped when killed, so the timers and replies of a dead process are
    /// ignored by the next one.
    life: u64,
    /// Events that reached the process while it was paused, handled when it resumes.
    backlog: Vec<Ev>,
    /// The open session with the NameNode.
    conn: Option<ConnId>,
    ownership: Ownership,
    routing: Routing,
    lease: Lease,
    lease_ms: u64,
    lease_until: Duration,
    next_seq: u64,
    sent: HashMap<u64, Duration>,
    frozen: HashSet<u16>,
    /// Per slot, the version of the data held (`None`: deleted or never written).
    store: HashMap<u16, u64>,
    orders: VecDeque<Order>,
    round: Option<Round>,
    next_round: u64,
    /// Declared dead by the NameNode and not welcomed since: what it holds or takes is
    /// lost (it drops everything when it registers again).
    dead: bool,
    /// The NameNode of this life has taken its registration.
    registered: bool,
    /// Receiving: the handoff fence (moved by every check), and per peer session (source,
    /// its life, connection) the fence at its batch's first import.
    fence: u64,
    receiving: HashMap<(usize, u64, u64), u64>,
    /// Sending: the connection to each node (bumped when one breaks).
    gens: HashMap<usize, u64>,
}

impl DataNode {
    fn new(id: &str, port: u16) -> DataNode {
        DataNode {
            info: NodeInfo {
                id: NodeId::new(id),
                client_addr: format!("127.0.0.1:{port}").parse().unwrap(),
                admin_addr: format!("127.0.0.1:{}", port + 1).parse().unwrap(),
                tls_port: None,
                since: 0,
            },
            run: Run::Down,
            life: 0,
            backlog: Vec::new(),
            conn: None,
            ownership: Ownership::default(),
            routing: Routing::standalone(),
            lease: Lease::default(),
            lease_ms: 0,
            lease_until: Duration::ZERO,
            next_seq: 1,
            sent: HashMap::new(),
            frozen: HashSet::new(),
            store: HashMap::new(),
            orders: VecDeque::new(),
            round: None,
            next_round: 0,
            dead: false,
            registered: false,
            fence: 0,
            receiving: HashMap::new(),
            gens: HashMap::new(),
        }
    }

    fn id(&self) -> &str {
        self.info.id.as_str()
    }

    fn leased(&self, now: Duration) -> bool {
        self.lease_ms == 0 || now < self.lease_until
    }

    /// Whether this node serves `slot` at `now`.
    fn serves(&self, slot: u16, now: Duration) -> bool {
        self.run == Run::Up
            && self.routing.owner(slot) == Owner::Local
            && !self.frozen.contains(&slot)
            && self.leased(now)
    }

    /// What the node does with an [`Install`]: empties its slots, serves by its routing.
    fn install(&mut self, install: Install) {
        for s in &install.flush {
            self.store.remove(s);
        }
        self.routing = install.routing;
    }

    fn owned_ranges(&self) -> Vec<RangeInclusive<Slot>> {
        let Some(me) = self.routing.me.filter(|_| !self.routing.standalone) else {
            return Vec::new();
        };
        self.routing
            .owners
            .runs()
            .into_iter()
            .filter(|&(_, _, o)| o == me)
            .map(|(a, b, _)| Slot::new(a).unwrap()..=Slot::new(b).unwrap())
            .collect()
    }
}

/// Slot runs of a set of slots.
fn ranges(slots: &[u16]) -> Vec<RangeInclusive<Slot>> {
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some(r) if r.1 + 1 == s => r.1 = s,
            _ => out.push((s, s)),
        }
    }
    out.into_iter()
        .map(|(a, b)| Slot::new(a).unwrap()..=Slot::new(b).unwrap())
        .collect()
}

/// The value a slot last had, as acknowledged to a client, and whether a miss is allowed
/// (its holder was declared dead or killed since).
#[derive(Clone, Copy, Default)]
struct Truth {
    value: Option<u64>,
    may_miss: bool,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: Duration,
    t0: Instant,
    /// Events by (time, sequence): the sequence keeps equal times in scheduling order.
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    timing: Timing,
    namenode: Option<Membership>,
    nn_life: u64,
    /// Open NameNode sessions: connection -> node.
    conns: BTreeMap<ConnId, usize>,
    next_conn: u64,
    /// When the last message on each one-way channel arrives (connections keep order).
    channels: HashMap<(usize, usize), Duration>,
    /// Slow links: until when a message may take hundreds of milliseconds.
    slow_until: Duration,
    nodes: Vec<DataNode>,
    truth: HashMap<u16, Truth>,
    sample: Vec<u16>,
    version: u64,
    next_order: u64,
    faults_until: Duration,
    /// Whether the schedule also kills the NameNode at a table ([`Ev::NameNodeDownAtTable`]),
    /// drawn from its own generator so the other faults of a seed stay as they were.
    kill_at_table: bool,
    /// Set by [`Ev::NameNodeDownAtTable`]: the NameNode dies at its next table, and comes
    /// back this much later.
    down_at_table: Option<Duration>,
    /// The next `NameNodeDown` loses what the NameNode had not delivered.
    cut_pending: bool,
    /// NameNode lives whose undelivered messages were lost when they died.
    cut_lives: HashSet<u64>,
    stats: Stats,
    /// What happened, for the message of a failed check.
    log: VecDeque<String>,
}

#[derive(Default, Debug)]
struct Stats {
    reads: u64,
    writes: u64,
    misses: u64,
    refused: u64,
    declared_dead: u64,
    welcome_flushes: u64,
    taken_by_the_dead: u64,
    /// Flips whose connection broke (the source asked whether they were taken), those the
    /// answer said taken, and late ones the fence refused.
    flips_in_doubt: u64,
    checked_taken: u64,
    late_flips_refused: u64,
    handoffs: u64,
    peer_renewals: u64,
    /// Slots a restarted NameNode left with a member a table behind the newest epoch.
    honoured_behind: u64,
}

/// Channel ends: node indices, and this for the NameNode.
const NAMENODE: usize = usize::MAX;

impl Sim {
    fn new(seed: u64) -> Sim {
        let timing = Timing {
            heartbeat_interval: 100 * MS,
            heartbeat_tolerance: NonZeroU32::new(3).unwrap(),
            probe_interval: 50 * MS,
            probe_attempts: NonZeroU32::new(3).unwrap(),
            startup_grace: 300 * MS,
            lease: 600 * MS,
            lease_margin: 50 * MS,
        };
        let mut rng = Rng(seed);
        let sample: Vec<u16> = (0..48)
            .map(|_| rng.range(0, SLOT_COUNT as u64) as u16)
            .collect();
        let t0 = Instant::now();
        let nodes = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, id)| DataNode::new(id, 7000 + 10 * i as u16))
            .collect();
        Sim {
            seed,
            rng,
            now: Duration::ZERO,
            t0,
            queue: BTreeMap::new(),
            seq: 0,
            timing,
            namenode: None,
            nn_life: 0,
            conns: BTreeMap::new(),
            next_conn: 1,
            channels: HashMap::new(),
            slow_until: Duration::ZERO,
            nodes,
            truth: HashMap::new(),
            sample,
            version: 0,
            next_order: 1,
            faults_until: Duration::ZERO,
            kill_at_table: false,
            down_at_table: None,
            cut_pending: false,
            cut_lives: HashSet::new(),
            stats: Stats::default(),
            log: VecDeque::new(),
        }
    }

    fn note(&mut self, what: String) {
        if self.log.len() >= 200 {
            self.log.pop_front();
        }
        let line = format!("{:?} {what}", self.now);
        self.log.push_back(line);
    }

    /// The state of `slot` on every node, and the recent history.
    fn explain(&self, slot: u16) -> String {
        let mut out = String::new();
        for d in &self.nodes {
            out += &format!(
                "\n  {} {:?}: owner {:?} epoch {} base {} adopted_from {:?} frozen {} lease until {:?} ({} ms)",
                d.id(),
                d.run,
                d.routing.owner(slot),
                d.routing.epoch,
                d.ownership.base().epoch,
                d.ownership.adopted_from(slot),
                d.frozen.contains(&slot),
                d.lease_until,
                d.lease_ms
            );
        }
        out += "\n  history:";
        for l in &self.log {
            out += "\n    ";
            out += l;
        }
        out
    }

    fn at(&mut self, when: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((when, self.seq), ev);
    }

    /// Sends `ev` over the one-way channel `from -> to`: a delay, in order.
    fn send(&mut self, from: usize, to: usize, ev: Ev) {
        let mut delay = self.rng.ms(0, 4);
        if self.now < self.slow_until && self.rng.chance(10) {
            delay = self.rng.ms(50, 400);
        }
        let last = self.channels.get(&(from, to)).copied().unwrap_or_default();
        let when = (self.now + delay).max(last);
        self.channels.insert((from, to), when);
        self.at(when, ev);
    }

    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    // ---- the NameNode ----

    fn namenode_event(&mut self, event: Event) {
        let now = self.instant();
        let Some(nn) = self.namenode.as_mut() else {
            return;
        };
        let actions = nn.handle(event, now);
        self.namenode_actions(actions);
    }

    fn namenode_actions(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendTo { conn, msg } => self.send_to_node(conn, msg),
                Action::Broadcast {
                    publication,
                    mut to,
                } => {
                    // In a fixed order: the run depends on nothing but the seed.
                    to.sort_unstable();
                    let kill = self.down_at_table.take();
                    for conn in to {
                        let life = self.namenode.as_ref().map_or(0, |m| m.life());
                        let msg = NameNodeToDataNode::Table {
                            epoch: publication.epoch(),
                            table: publication.table.clone(),
                            nodes: publication.nodes.clone(),
                            life,
                        };
                        self.send_to_node(conn, msg);
                    }
                    if let Some(back_after) = kill {
                        self.cut_pending = true;
                        self.at(self.now, Ev::NameNodeDown);
                        self.at(self.now + back_after, Ev::NameNodeUp);
                    }
                }
                Action::Probe {
                    conn: Some(conn),
                    nonce,
                    ..
                } => self.send_to_node(conn, NameNodeToDataNode::Ping { nonce }),
                Action::Notice(Notice::UnclaimedAssigned { .. })
                | Action::Notice(Notice::StartupDone { epoch: 1, .. }) => {
                    // After a restart, the slots of nodes that did not register in time
                    // (paused, slow) went to their ring owners, empty, once every lease
                    // they could hold ran out: for the NameNode those nodes are dead. So
                    // they are when the grace ended with no table of an earlier life
                    // reported (epoch 1: a new cluster's first table), and they lost their
                    // slots to the nodes that registered (a miss, never an older value: the
                    // new table is fenced from them by their own leases running out).
                    self.note("namenode: unclaimed slots assigned".into());
                    for n in 0..self.nodes.len() {
                        if !self.nodes[n].registered && self.nodes[n].run != Run::Down {
                            self.nodes[n].dead = true;
                            self.may_miss_on(n);
                        }
                    }
                }
                Action::Notice(Notice::StartupDone {
                    honoured_behind, ..
                }) if honoured_behind > 0 => {
                    self.stats.honoured_behind += honoured_behind as u64;
                    self.note(format!(
                        "namenode: {honoured_behind} slots kept by members a table behind"
                    ));
                }
                Action::Probe { conn: None, .. } | Action::Notice(_) => {}
                Action::Close { conn, .. } => {
                    if let Some(n) = self.conns.remove(&conn) {
                        self.send(NAMENODE, n, Ev::SessionClosed { n, conn });
                    }
                }
                Action::DeclaredDead { node, .. } => {
                    self.stats.declared_dead += 1;
                    self.note(format!("namenode: {node} declared dead"));
                    let n = self.index(node.as_str());
                    self.nodes[n].dead = true;
                    self.may_miss_on(n);
                }
            }
        }
        if let Some(at) = self.namenode.as_ref().and_then(|m| m.next_deadline()) {
            let when = at.saturating_duration_since(self.t0).max(self.now);
            let life = self.nn_life;
            self.at(when, Ev::Tick { life });
        }
    }

    fn send_to_node(&mut self, conn: ConnId, msg: NameNodeToDataNode) {
        if let Some(&n) = self.conns.get(&conn) {
            let nn_life = self.nn_life;
            self.send(
                NAMENODE,
                n,
                Ev::ToNode {
                    n,
                    conn,
                    msg,
                    nn_life,
                },
            );
        }
    }

    fn index(&self, id: &str) -> usize {
        self.nodes.iter().position(|d| d.id() == id).unwrap()
    }

    /// Node `n` lost what it held (declared dead or killed): reads of its slots may miss.
    fn may_miss_on(&mut self, n: usize) {
        let line = format!("{}'s data may be missed", self.nodes[n].id());
        self.note(line);
        for &s in &self.sample {
            if self.nodes[n].routing.owner(s) == Owner::Local
                || self.nodes[n].store.contains_key(&s)
            {
                self.truth.entry(s).or_default().may_miss = true;
            }
        }
    }

    fn up(&mut self, n: usize, msg: Up) {
        if let Some(conn) = self.nodes[n].conn {
            self.send(n, NAMENODE, Ev::ToNameNode { conn, msg });
        }
    }

    // ---- a DataNode ----

    fn handle_node(&mut self, ev: Ev) {
        let n = ev.node().unwrap();
        // A request to a process that is gone: its connection was reset, the asker hears
        // at once (paused, the request waits in its socket).
        let gone = |d: &DataNode, life: u64| d.run == Run::Down || d.life != life;
        match ev {
            Ev::LeaseAsk {
                to_life,
                from,
                from_life,
                round,
                ..
            } if gone(&self.nodes[n], to_life) => {
                let answer = Ev::LeaseAnswer {
                    n: from,
                    life: from_life,
                    round,
                    ok: false,
                };
                return self.send(n, from, answer);
            }
            Ev::Import {
                to_life,
                from,
                from_life,
                order,
                ..
            } if gone(&self.nodes[n], to_life) => {
                let reply = Ev::ImportReply {
                    n: from,
                    life: from_life,
                    order,
                    ok: false,
                };
                return self.send(n, from, reply);
            }
            Ev::Handoff {
                to_life,
                broken: true,
                ..
            } if gone(&self.nodes[n], to_life) => return,
            Ev::Check {
                to_life,
                from,
                from_life,
                order,
                ..
            } if gone(&self.nodes[n], to_life) => {
                let reply = Ev::CheckReply {
                    n: from,
                    life: from_life,
                    order,
                    took: None,
                };
                return self.send(n, from, reply);
            }
            Ev::Handoff {
                to_life,
                from,
                from_life,
                order,
                ..
            } if gone(&self.nodes[n], to_life) => {
                let reply = Ev::HandoffReply {
                    n: from,
                    life: from_life,
                    order,
                    ok: false,
                };
                return self.send(n, from, reply);
            }
            _ => {}
        }
        match self.nodes[n].run {
            Run::Down => return,
            Run::Paused => {
                self.nodes[n].backlog.push(ev);
                return;
            }
            Run::Up => {}
        }
        let life = self.nodes[n].life;
        let now = self.now;
        match ev {
            Ev::Connect { life: l, .. } if l == life => {
                if self.nodes[n].conn.is_some() {
                    return;
                }
                if self.namenode.is_none() {
                    self.at(now + 200 * MS, Ev::Connect { n, life });
                    return;
                }
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.insert(conn, n);
                let d = &mut self.nodes[n];
                d.conn = Some(conn);
                d.sent.clear();
                let epoch_seen = if d.routing.standalone {
                    0
                } else {
                    d.routing.epoch
                };
                let owned = d.owned_ranges();
                let releases = d.ownership.releases();
                let base = d.ownership.base();
                let life = base.life;
                let since = base
                    .nodes
                    .iter()
                    .filter(|i| i.since > 0)
                    .map(|i| (i.id.clone(), i.since))
                    .collect();
                let suspects = d.lease.suspects().into_iter().map(NodeId::new).collect();
                self.up(
                    n,
                    Up::Register {
                        epoch_seen,
                        owned,
                        life,
                        since,
                        suspects,
                    },
                );
                // Handoffs whose report may have been lost (agent.rs): reported again.
                for (to, epoch, slots) in releases {
                    let slots = ranges(&slots);
                    self.up(n, Up::HandoffDone { slots, to, epoch });
                }
            }
            Ev::SessionClosed { conn, .. } if self.nodes[n].conn == Some(conn) => {
                self.nodes[n].conn = None;
                self.at(now + 100 * MS, Ev::Connect { n, life });
            }
            Ev::ToNode { conn, msg, .. } if self.nodes[n].conn == Some(conn) => {
                self.node_message(n, msg);
            }
            Ev::Beat { life: l, .. } if l == life => {
                self.heartbeat(n);
                self.at(now + self.timing.heartbeat_interval, Ev::Beat { n, life });
            }
            Ev::Renew { life: l, .. } if l == life => {
                self.renew(n);
                self.at(now + 40 * MS, Ev::Renew { n, life });
            }
            Ev::LeaseAsk {
                from,
                from_life,
                epoch,
                round,
                ..
            } => {
                let d = &self.nodes[n];
                let ok = d
                    .lease
                    .may_grant(d.ownership.base(), self.nodes[from].id(), epoch)
                    .is_ok();
                self.send(
                    n,
                    from,
                    Ev::LeaseAnswer {
                        n: from,
                        life: from_life,
                        round,
                        ok,
                    },
                );
            }
            Ev::LeaseAnswer {
                life: l, round, ok, ..
            } if l == life => {
                let d = &mut self.nodes[n];
                let Some(r) = d.round.as_mut().filter(|r| r.id == round) else {
                    return;
                };
                r.ok &= ok;
                r.waiting -= 1;
                if r.waiting == 0 {
                    let r = d.round.take().unwrap();
                    let until = r.sent + Duration::from_millis(d.lease_ms);
                    if r.ok && now < until {
                        d.lease_until = d.lease_until.max(until);
                        self.stats.peer_renewals += 1;
                        let line = format!("{} lease from the peers until {until:?}", d.id());
                        self.note(line);
                    }
                }
            }
            Ev::Copied { life: l, order, .. } if l == life => self.copied(n, order),
            Ev::Retry { life: l, .. } if l == life => self.next_batch(n),
            Ev::Import {
                from,
                from_life,
                gen,
                order,
                data,
                ..
            } => {
                let from_id = self.nodes[from].id().to_string();
                let d = &mut self.nodes[n];
                let ok = data.iter().all(|&(s, _)| {
                    trust::may_receive(&d.routing, &from_id, s, d.ownership.adopted_from(s))
                });
                if ok {
                    // The session's batch starts (`Receiving::imported`).
                    let fence = d.fence;
                    d.receiving.entry((from, from_life, gen)).or_insert(fence);
                    // Each slot's content is replaced (`IMPORTSTART`), not merged.
                    for &(s, v) in &data {
                        match v {
                            Some(v) => d.store.insert(s, v),
                            None => d.store.remove(&s),
                        };
                    }
                }
                self.send(
                    n,
                    from,
                    Ev::ImportReply {
                        n: from,
                        life: from_life,
                        order,
                        ok,
                    },
                );
            }
            Ev::ImportReply {
                life: l, order, ok, ..
            } if l == life => {
                let Some(o) = self.nodes[n].orders.front().filter(|o| o.id == order) else {
                    return;
                };
                let (to, slots, epoch) = (o.to, o.batch.clone(), o.epoch);
                let left = self.nodes[n]
                    .ownership
                    .base()
                    .left(self.nodes[to].id(), epoch);
                if !ok || left || self.nodes[to].run == Run::Down {
                    return self.handoff_reply(n, order, false);
                }
                let gen = self.nodes[n].gens.get(&to).copied().unwrap_or(0);
                let broken = self.rng.chance(if now < self.slow_until { 20 } else { 3 });
                let flip = Ev::Handoff {
                    n: to,
                    to_life: self.nodes[to].life,
                    from: n,
                    from_life: life,
                    gen,
                    order,
                    slots,
                    broken,
                };
                if !broken {
                    return self.send(n, to, flip);
                }
                // The connection breaks once the flip is written: it reaches the new owner
                // in time (only its reply is lost), late (read from the dead connection
                // after anything sent since on a new one) or not at all, and this node
                // hears only that the connection broke.
                self.nodes[n].gens.insert(to, gen + 1);
                self.stats.flips_in_doubt += 1;
                match self.rng.range(0, 10) {
                    0..=3 => self.send(n, to, flip),
                    4..=6 => {
                        let late = self.rng.ms(0, 2_000);
                        self.at(now + late, flip);
                    }
                    _ => {}
                }
                let noticed = self.rng.ms(0, 20);
                self.at(now + noticed, Ev::FlipInDoubt { n, life, order });
            }
            Ev::FlipInDoubt { life: l, order, .. } if l == life => self.check(n, order),
            Ev::Check {
                from,
                from_life,
                order,
                slots,
                ..
            } => {
                // `CLUSTER HANDOFFCHECK`: moves the fence, counts the slots adopted from it.
                let from_id = self.nodes[from].id().to_string();
                let d = &mut self.nodes[n];
                d.fence += 1;
                let took = slots
                    .iter()
                    .filter(|&&s| d.ownership.adopted_from(s) == Some(from_id.as_str()))
                    .count();
                let line = format!(
                    "{} checked: took {took} of {} slots ({}..) from {from_id}",
                    d.id(),
                    slots.len(),
                    slots[0]
                );
                self.note(line);
                let reply = Ev::CheckReply {
                    n: from,
                    life: from_life,
                    order,
                    took: Some(took),
                };
                self.send(n, from, reply);
            }
            Ev::CheckReply {
                life: l,
                order,
                took,
                ..
            } if l == life => {
                let Some(o) = self.nodes[n]
                    .orders
                    .front_mut()
                    .filter(|o| o.id == order && o.in_doubt)
                else {
                    return;
                };
                match took {
                    Some(k) if k == o.batch.len() => {
                        o.in_doubt = false;
                        self.stats.checked_taken += 1;
                        self.handoff_reply(n, order, true);
                    }
                    Some(0) => {
                        o.in_doubt = false;
                        self.handoff_reply(n, order, false);
                    }
                    // No answer: asked again a little later, frozen all along.
                    _ => self.at(now + 100 * MS, Ev::FlipInDoubt { n, life, order }),
                }
            }
            Ev::Handoff {
                from,
                from_life,
                gen,
                order,
                slots,
                broken,
                ..
            } => {
                let from_id = self.nodes[from].id().to_string();
                let d = &mut self.nodes[n];
                // `Receiving::handoff`: an import of the batch on this session, and no
                // check since.
                let fence = d.fence;
                let session = d.receiving.remove(&(from, from_life, gen));
                if session.is_some_and(|f| f != fence) {
                    self.stats.late_flips_refused += 1;
                }
                let d = &mut self.nodes[n];
                let ok = session == Some(fence)
                    && slots.iter().all(|&s| {
                        trust::may_receive(&d.routing, &from_id, s, d.ownership.adopted_from(s))
                    });
                if ok && d.dead {
                    // Taken by a node declared dead (it resumed after a pause with the
                    // batch in its socket): the source flips, and the slots come back to
                    // it empty once its table no longer names this node. A miss, never
                    // an older value (this node serves nothing before it registers again,
                    // and drops everything then).
                    for &s in &slots {
                        if let Some(t) = self.truth.get_mut(&s) {
                            t.may_miss = true;
                        }
                    }
                    self.stats.taken_by_the_dead += 1;
                }
                let d = &mut self.nodes[n];
                if ok {
                    let me = d.info.clone();
                    let install = d.ownership.adopt(&from_id, &slots, &me);
                    d.install(install);
                    self.check_slots(slots.iter().copied());
                }
                let line = format!(
                    "{} {} a batch of {} slots ({}..) from {from_id}, watched in it: {}",
                    self.nodes[n].id(),
                    if ok { "took" } else { "refused" },
                    slots.len(),
                    slots[0],
                    watch().is_some_and(|w| slots.contains(&w))
                );
                self.note(line);
                if !broken {
                    self.send(
                        n,
                        from,
                        Ev::HandoffReply {
                            n: from,
                            life: from_life,
                            order,
                            ok,
                        },
                    );
                }
            }
            Ev::HandoffReply {
                life: l, order, ok, ..
            } if l == life => self.handoff_reply(n, order, ok),
            // Timers and replies of an earlier life.
            _ => {}
        }
    }

    fn node_message(&mut self, n: usize, msg: NameNodeToDataNode) {
        match msg {
            NameNodeToDataNode::Welcome {
                table,
                nodes,
                lease_ms,
                suspects,
                flush,
                life,
                ..
            } => {
                if !flush.is_empty() {
                    // Told to drop what it held: it was declared dead, or it registered
                    // after a restarted NameNode's startup grace (then every claim is
                    // ignored: `Membership`'s documented choice), or a newer claim won.
                    // What it held may be missed from now on; never read older.
                    self.stats.welcome_flushes += 1;
                    self.may_miss_on(n);
                }
                let d = &mut self.nodes[n];
                d.dead = false;
                let acked = suspects.map(|s| {
                    d.lease
                        .set_suspects(s.version, s.nodes.iter().map(|n| n.as_str().to_string()));
                    s.version
                });
                let r = Routing::from_table(&table, &nodes, d.id()).with_life(life);
                d.lease.table_installed(&r, true);
                let me = d.info.clone();
                let serving = d.routing.clone();
                if flush.is_empty() {
                    if let Some(install) = d.ownership.table(r, &me, &serving) {
                        d.install(install);
                    }
                } else {
                    let dropping = d.ownership.table_dropping(r, &flush, &me, &serving);
                    for s in &dropping.lost {
                        d.store.remove(s);
                    }
                    d.install(dropping.install);
                    d.lease_until = Duration::ZERO;
                }
                d.lease_ms = lease_ms;
                let line = format!(
                    "{} welcome epoch {} flush {} ranges, {} slots local",
                    d.id(),
                    d.routing.epoch,
                    flush.len(),
                    d.routing.my_slot_count()
                );
                self.note(line);
                if let Some(version) = acked {
                    self.up(n, Up::SuspectsAck(version));
                }
                self.heartbeat(n);
            }
            NameNodeToDataNode::Table {
                table, nodes, life, ..
            } => {
                let d = &mut self.nodes[n];
                let r = Routing::from_table(&table, &nodes, d.id()).with_life(life);
                if r.epoch >= d.ownership.base().epoch {
                    d.lease.table_installed(&r, false);
                }
                let me = d.info.clone();
                let serving = d.routing.clone();
                let epoch = r.epoch;
                let watched = watch().map(|w| (r.owner_id(w).map(str::to_string), w));
                if let Some(install) = d.ownership.table(r, &me, &serving) {
                    d.install(install);
                    let line = format!(
                        "{} table epoch {epoch}, {} slots local; watched slot: table {:?} routing {:?}",
                        d.id(),
                        d.routing.my_slot_count(),
                        watched,
                        watched.as_ref().map(|(_, w)| d.routing.owner(*w))
                    );
                    self.note(line);
                }
            }
            NameNodeToDataNode::Lease { seq } => {
                let d = &mut self.nodes[n];
                if let Some(&sent) = d.sent.get(&seq) {
                    let lapsed = d.lease_until <= self.now;
                    d.lease_until = d.lease_until.max(sent + Duration::from_millis(d.lease_ms));
                    if lapsed {
                        let line = format!(
                            "{} lease from the NameNode until {:?}",
                            d.id(),
                            d.lease_until
                        );
                        self.note(line);
                    }
                }
            }
            NameNodeToDataNode::Suspects(list) => {
                self.nodes[n].lease.set_suspects(
                    list.version,
                    list.nodes.iter().map(|n| n.as_str().to_string()),
                );
                self.up(n, Up::SuspectsAck(list.version));
            }
            NameNodeToDataNode::Ping { nonce } => self.up(n, Up::Pong(nonce)),
            NameNodeToDataNode::Migrate {
                epoch, slots, to, ..
            } => {
                if let Some(w) = watch() {
                    if slots.iter().any(|&(a, b)| a <= w && w <= b) {
                        let line = format!(
                            "{} ordered at epoch {epoch} to move the watched slot to {to}; routing {:?}",
                            self.nodes[n].id(),
                            self.nodes[n].routing.owner(w)
                        );
                        self.note(line);
                    }
                }
                let to = self.index(to.as_str());
                let todo = slots
                    .iter()
                    .flat_map(|&(a, b)| a..=b.min(SLOT_COUNT as u16 - 1))
                    .collect();
                let id = self.next_order;
                self.next_order += 1;
                let d = &mut self.nodes[n];
                d.orders.push_back(Order {
                    id,
                    epoch,
                    to,
                    todo,
                    batch: Vec::new(),
                    tries: 0,
                    in_doubt: false,
                });
                if d.orders.len() == 1 {
                    self.next_batch(n);
                }
            }
            NameNodeToDataNode::Drain | NameNodeToDataNode::Error { .. } => {}
        }
    }

    fn heartbeat(&mut self, n: usize) {
        let now = self.now;
        let d = &mut self.nodes[n];
        if d.conn.is_none() {
            return;
        }
        let seq = d.next_seq;
        d.next_seq += 1;
        d.sent.insert(seq, now);
        let epoch = d.ownership.base().epoch;
        self.up(n, Up::Heartbeat { epoch, seq });
    }

    /// Asks every peer of the table for a lease when less than half is left.
    fn renew(&mut self, n: usize) {
        let now = self.now;
        let d = &mut self.nodes[n];
        let duration_us = d.lease_ms * 1000;
        let left = d.lease_until.saturating_sub(now).as_micros() as u64;
        // A round is worth waiting for as long as it can still extend the lease.
        let lease = Duration::from_millis(d.lease_ms).max(50 * MS);
        if d.round.as_ref().is_some_and(|r| now >= r.sent + lease) {
            d.round = None;
        }
        if d.round.is_some() || !lease::needs_renewal(left, duration_us) {
            return;
        }
        let base = d.ownership.base().clone();
        if !base.has_table() {
            return;
        }
        let peers: Vec<usize> = base
            .nodes
            .iter()
            .filter(|i| i.id != self.nodes[n].info.id)
            .map(|i| self.index(i.id.as_str()))
            .collect();
        if peers.is_empty() {
            return;
        }
        let d = &mut self.nodes[n];
        d.next_round += 1;
        let round = d.next_round;
        d.round = Some(Round {
            id: round,
            sent: now,
            waiting: peers.len(),
            ok: true,
        });
        let (life, epoch) = (d.life, base.epoch);
        for p in peers {
            if self.nodes[p].run == Run::Down {
                // Connection refused: an answer at once.
                self.send(
                    p,
                    n,
                    Ev::LeaseAnswer {
                        n,
                        life,
                        round,
                        ok: false,
                    },
                );
            } else {
                self.send(
                    n,
                    p,
                    Ev::LeaseAsk {
                        n: p,
                        to_life: self.nodes[p].life,
                        from: n,
                        from_life: life,
                        epoch,
                        round,
                    },
                );
            }
        }
    }

    /// Starts the next batch of the current order: its slots this node still owns, frozen,
    /// copied after a while.
    fn next_batch(&mut self, n: usize) {
        let now = self.now;
        loop {
            let to_id = match self.nodes[n].orders.front() {
                Some(o) => self.nodes[o.to].info.id.clone(),
                None => return,
            };
            let d = &mut self.nodes[n];
            let Some(order) = d.orders.front_mut() else {
                return;
            };
            // The target left since the order (`HandoffError::TargetLeft`).
            if d.ownership.base().left(to_id.as_str(), order.epoch) {
                d.orders.pop_front();
                continue;
            }
            // Slots no longer ours are done (say where they went).
            let mut elsewhere: Vec<(String, Vec<u16>)> = Vec::new();
            let order_epoch = order.epoch;
            let mut batch = Vec::new();
            while batch.len() < 512 {
                let Some(s) = order.todo.pop_front() else {
                    break;
                };
                match d.routing.owner(s) {
                    Owner::Local => batch.push(s),
                    _ => {
                        // Reported only if this node handed it over itself.
                        if let Some(id) = d.ownership.released_to(s).map(|i| i.id.as_str()) {
                            match elsewhere.iter_mut().find(|(i, _)| i == id) {
                                Some((_, v)) => v.push(s),
                                None => elsewhere.push((id.to_string(), vec![s])),
                            }
                        }
                    }
                }
            }
            for (id, slots) in elsewhere {
                let slots = ranges(&slots);
                self.up(
                    n,
                    Up::HandoffDone {
                        slots,
                        to: NodeId::new(id),
                        epoch: order_epoch,
                    },
                );
            }
            let d = &mut self.nodes[n];
            let order = d.orders.front_mut().unwrap();
            if batch.is_empty() {
                d.orders.pop_front();
                continue;
            }
            d.frozen.extend(batch.iter().copied());
            order.batch = batch;
            let (life, id) = (d.life, order.id);
            let copy = self.rng.ms(1, 30);
            self.at(now + copy, Ev::Copied { n, life, order: id });
            return;
        }
    }

    /// The batch is copied: sent with its flip if this node still holds its lease.
    fn copied(&mut self, n: usize, order_id: u64) {
        let now = self.now;
        let d = &self.nodes[n];
        let Some(order) = d.orders.front().filter(|o| o.id == order_id) else {
            return;
        };
        if !d.leased(now) {
            return self.handoff_reply(n, order_id, false);
        }
        let data = order
            .batch
            .iter()
            .map(|s| (*s, d.store.get(s).copied()))
            .collect();
        let (to, life) = (order.to, d.life);
        let gen = d.gens.get(&to).copied().unwrap_or(0);
        if self.nodes[to].run == Run::Down {
            return self.handoff_reply(n, order_id, false);
        }
        self.send(
            n,
            to,
            Ev::Import {
                n: to,
                to_life: self.nodes[to].life,
                from: n,
                from_life: life,
                gen,
                order: order_id,
                data,
            },
        );
    }

    /// The batch's flip is in doubt: asks the new owner whether it took it, or, once this
    /// node's table no longer names the new owner, waits out its lease and keeps the batch.
    fn check(&mut self, n: usize, order_id: u64) {
        let now = self.now;
        let d = &mut self.nodes[n];
        let Some(order) = d.orders.front_mut().filter(|o| o.id == order_id) else {
            return;
        };
        order.in_doubt = true;
        let (to, epoch, slots, life) = (order.to, order.epoch, order.batch.clone(), d.life);
        let to_id = self.nodes[to].id().to_string();
        let d = &self.nodes[n];
        if d.ownership.base().left(&to_id, epoch) {
            let wait = Duration::from_millis(2 * d.lease_ms);
            let reply = Ev::CheckReply {
                n,
                life,
                order: order_id,
                took: Some(0),
            };
            return self.at(now + wait, reply);
        }
        let check = Ev::Check {
            n: to,
            to_life: self.nodes[to].life,
            from: n,
            from_life: life,
            order: order_id,
            slots,
        };
        self.send(n, to, check);
    }

    fn handoff_reply(&mut self, n: usize, order_id: u64, ok: bool) {
        let now = self.now;
        let d = &mut self.nodes[n];
        let Some(order) = d.orders.front_mut().filter(|o| o.id == order_id) else {
            return;
        };
        let batch = std::mem::take(&mut order.batch);
        let (to, epoch) = (order.to, order.epoch);
        if ok {
            let to_info = self.nodes[to].info.clone();
            let d = &mut self.nodes[n];
            let me = d.info.clone();
            let install = d.ownership.release(&to_info, epoch, &batch, &me);
            d.install(install);
            for s in &batch {
                d.frozen.remove(s);
                d.store.remove(s);
            }
            let line = format!(
                "{} released {} slots ({}..) to {}",
                d.id(),
                batch.len(),
                batch[0],
                to_info.id
            );
            self.note(line);
            self.stats.handoffs += 1;
            let to_id = to_info.id.clone();
            self.up(
                n,
                Up::HandoffDone {
                    slots: ranges(&batch),
                    to: to_id,
                    epoch,
                },
            );
            self.next_batch(n);
        } else {
            for s in &batch {
                d.frozen.remove(s);
            }
            self.check_slots(batch.iter().copied());
            let d = &mut self.nodes[n];
            let order = d.orders.front_mut().unwrap();
            order.tries += 1;
            if order.tries > 20 {
                // Given up; the NameNode orders it again.
                d.orders.pop_front();
                self.next_batch(n);
            } else {
                // The same slots again a little later, those still this node's.
                for s in batch.into_iter().rev() {
                    order.todo.push_front(s);
                }
                let life = d.life;
                let wait = self.rng.ms(20, 60);
                self.at(now + wait, Ev::Retry { n, life });
            }
        }
    }

    // ---- faults ----

    fn kill(&mut self, n: usize) {
        self.may_miss_on(n);
        let d = &mut self.nodes[n];
        let old = std::mem::replace(d, DataNode::new("x", 0));
        let mut fresh = DataNode::new(old.id(), old.info.client_addr.port());
        fresh.life = old.life + 1;
        *d = fresh;
        if let Some(conn) = old.conn {
            self.conns.remove(&conn);
            self.send(n, NAMENODE, Ev::Disconnected { conn });
        }
        // Requests it had not read yet (it was paused): their connections are reset.
        for ev in old.backlog {
            if matches!(
                ev,
                Ev::LeaseAsk { .. } | Ev::Import { .. } | Ev::Handoff { .. } | Ev::Check { .. }
            ) {
                self.handle_node(ev);
            }
        }
    }

    fn start(&mut self, n: usize) {
        let d = &mut self.nodes[n];
        d.run = Run::Up;
        // Configured with a NameNode: no slot until the first table (as the server starts).
        let me = d.info.clone();
        let serving = d.routing.clone();
        let install = d
            .ownership
            .table(Routing::awaiting(), &me, &serving)
            .unwrap();
        d.install(install);
        // Nothing served before the first lease (`Lease::await_welcome`).
        d.lease_ms = 1;
        let life = d.life;
        let now = self.now;
        self.at(now, Ev::Connect { n, life });
        self.at(now + self.timing.heartbeat_interval, Ev::Beat { n, life });
        self.at(now + 40 * MS, Ev::Renew { n, life });
    }

    // ---- clients ----

    fn op(&mut self) {
        let s = self.sample[self.rng.range(0, self.sample.len() as u64) as usize];
        let servers: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].serves(s, self.now))
            .collect();
        assert!(
            servers.len() <= 1,
            "seed {}: slot {s} served by {:?} at {:?}{}",
            self.seed,
            servers,
            self.now,
            self.explain(s)
        );
        let Some(&n) = servers.first() else {
            self.stats.refused += 1;
            return;
        };
        let roll = self.rng.range(0, 10);
        let truth = self.truth.get(&s).copied().unwrap_or_default();
        if roll < 4 {
            self.version += 1;
            self.nodes[n].store.insert(s, self.version);
            let truth = self.truth.entry(s).or_default();
            *truth = Truth {
                value: Some(self.version),
                may_miss: false,
            };
            self.stats.writes += 1;
        } else if roll < 5 {
            self.nodes[n].store.remove(&s);
            let truth = self.truth.entry(s).or_default();
            *truth = Truth {
                value: None,
                may_miss: false,
            };
            self.stats.writes += 1;
        } else {
            let got = self.nodes[n].store.get(&s).copied();
            self.stats.reads += 1;
            if got == truth.value {
                return;
            }
            if !(got.is_none() && truth.may_miss) {
                panic!(
                    "seed {}: slot {s} read {got:?} on {} at {:?}, last acknowledged {:?}{}",
                    self.seed,
                    self.nodes[n].id(),
                    self.now,
                    truth.value,
                    self.explain(s)
                );
            }
            self.stats.misses += 1;
            // A miss is what the client sees from now on, until the next write.
            let truth = self.truth.entry(s).or_default();
            *truth = Truth {
                value: None,
                may_miss: false,
            };
        }
    }

    /// Every slot is served by at most one node now.
    fn check_all(&self) {
        self.check_slots(0..SLOT_COUNT as u16);
    }

    /// Each of `slots` is served by at most one node now (checked where a handoff changes
    /// who serves them, so a window of milliseconds is seen too).
    fn check_slots(&self, slots: impl IntoIterator<Item = u16>) {
        for s in slots {
            let servers = self.nodes.iter().filter(|d| d.serves(s, self.now)).count();
            assert!(
                servers <= 1,
                "seed {}: slot {s} served by {servers} nodes at {:?}{}",
                self.seed,
                self.now,
                self.explain(s)
            );
        }
    }

    // ---- the run ----

    fn schedule_faults(&mut self) {
        // a, b and c from the start; d joins later.
        for n in 0..3 {
            self.at(Duration::ZERO, Ev::Start { n });
        }
        self.at(Duration::ZERO, Ev::NameNodeUp);
        let join = self.rng.ms(2_000, 9_000);
        self.at(join, Ev::Start { n: 3 });
        let faults = self.rng.range(2, 5);
        let mut t = Duration::from_millis(1_500);
        for _ in 0..faults {
            t += self.rng.ms(300, 3_000);
            match self.rng.range(0, 5) {
                0 | 1 => {
                    let n = self.rng.range(0, 4) as usize;
                    let for_ = self.rng.ms(200, 3_000);
                    self.at(t, Ev::Pause { n, for_ });
                }
                2 => {
                    let n = self.rng.range(0, 4) as usize;
                    self.at(t, Ev::Kill { n });
                    let back = t + self.rng.ms(300, 3_000);
                    self.at(back, Ev::Start { n });
                }
                3 => {
                    self.at(t, Ev::NameNodeDown);
                    let back = t + self.rng.ms(300, 4_000);
                    self.at(back, Ev::NameNodeUp);
                }
                _ => self.slow_until = self.slow_until.max(t + self.rng.ms(500, 3_000)),
            }
        }
        if self.kill_at_table {
            let mut own = Rng(self.seed ^ 0x6b69_6c6c_4174_5462);
            let at = own.ms(1_500, 9_000);
            let back_after = own.ms(300, 3_000);
            self.at(at, Ev::NameNodeDownAtTable { back_after });
            t = t.max(at + back_after);
        }
        self.faults_until = t + Duration::from_secs(5);
        let mut at = Duration::ZERO;
        while at < self.faults_until + Duration::from_secs(20) {
            at += self.rng.ms(1, 6);
            self.at(at, Ev::Op);
        }
    }

    fn run(&mut self) {
        self.schedule_faults();
        let end = self.faults_until + Duration::from_secs(20);
        let mut checked = Duration::ZERO;
        while let Some(((when, _), ev)) = self.queue.pop_first() {
            if when > end {
                break;
            }
            self.now = when;
            self.step(ev);
            if self.now >= checked + 250 * MS {
                self.check_all();
                checked = self.now;
            }
        }
        self.now = end;
        // Converged: every slot served by exactly one node, every node on one table.
        let unserved: Vec<u16> = (0..SLOT_COUNT as u16)
            .filter(|&s| !self.nodes.iter().any(|d| d.serves(s, end)))
            .collect();
        if let Some(&first) = unserved.first() {
            panic!(
                "seed {}: {} slots unserved at the end (first {first}); {:?}{}",
                self.seed,
                unserved.len(),
                self.stats,
                self.explain(first)
            );
        }
        self.check_all();
    }

    fn step(&mut self, ev: Ev) {
        if matches!(
            ev,
            Ev::Pause { .. }
                | Ev::Resume { .. }
                | Ev::Kill { .. }
                | Ev::Start { .. }
                | Ev::NameNodeDown
                | Ev::NameNodeUp
                | Ev::NameNodeDownAtTable { .. }
        ) {
            self.note(format!("fault: {ev:?}"));
        }
        match ev {
            Ev::ToNameNode { conn, msg } => {
                let Some(&n) = self.conns.get(&conn) else {
                    return;
                };
                let node = self.nodes[n].info.id.clone();
                let event = match msg {
                    Up::Register {
                        epoch_seen,
                        owned,
                        life,
                        since,
                        suspects,
                    } => {
                        self.nodes[n].registered = true;
                        Event::Registered {
                            conn,
                            info: self.nodes[n].info.clone(),
                            epoch_seen,
                            owned_slots: owned,
                            life,
                            members_since: since,
                            suspects,
                            leased: true,
                            draining: false,
                        }
                    }
                    Up::Heartbeat { epoch, seq } => Event::Heartbeat {
                        conn,
                        node,
                        epoch,
                        stats: NodeStats::default(),
                        seq,
                    },
                    Up::SuspectsAck(version) => Event::SuspectsAcked {
                        conn,
                        node,
                        version,
                    },
                    Up::Pong(nonce) => Event::ProbeAnswered { conn, node, nonce },
                    Up::HandoffDone { slots, to, epoch } => {
                        if let Some(w) = watch() {
                            if slots.iter().any(|r| {
                                r.start().index() as u16 <= w && w <= r.end().index() as u16
                            }) {
                                let line = format!(
                                    "namenode: {node} reports the watched slot handed to {to}"
                                );
                                self.note(line);
                            }
                        }
                        Event::HandoffDone {
                            conn,
                            node,
                            slots,
                            to: Some(to),
                            epoch,
                        }
                    }
                };
                self.namenode_event(event);
            }
            Ev::Disconnected { conn } => self.namenode_event(Event::Disconnected { conn }),
            Ev::Tick { life } => {
                if life == self.nn_life {
                    self.namenode_event(Event::Tick);
                }
            }
            Ev::Op => self.op(),
            Ev::Pause { n, for_ } => {
                if self.nodes[n].run == Run::Up {
                    self.nodes[n].run = Run::Paused;
                    self.at(self.now + for_, Ev::Resume { n });
                }
            }
            Ev::Resume { n } => {
                if self.nodes[n].run == Run::Paused {
                    self.nodes[n].run = Run::Up;
                    let backlog = std::mem::take(&mut self.nodes[n].backlog);
                    for ev in backlog {
                        self.at(self.now, ev);
                    }
                }
            }
            Ev::Kill { n } => {
                if self.nodes[n].run != Run::Down {
                    self.kill(n);
                }
            }
            Ev::Start { n } => {
                if self.nodes[n].run == Run::Down {
                    self.start(n);
                }
            }
            Ev::NameNodeDown => {
                if self.namenode.take().is_some() {
                    if std::mem::take(&mut self.cut_pending) {
                        self.cut_lives.insert(self.nn_life);
                    }
                    self.nn_life += 1;
                    for d in &mut self.nodes {
                        d.registered = false;
                    }
                    for (conn, n) in std::mem::take(&mut self.conns) {
                        self.send(NAMENODE, n, Ev::SessionClosed { n, conn });
                    }
                }
            }
            Ev::NameNodeUp => {
                if self.namenode.is_none() {
                    self.nn_life += 1;
                    let vnodes = NonZeroU32::new(32).unwrap();
                    // Each life its own number, as the server draws one.
                    let life = self.nn_life;
                    self.namenode =
                        Some(Membership::new(vnodes, self.timing, self.instant()).with_life(life));
                    self.namenode_actions(Vec::new());
                }
            }
            Ev::NameNodeDownAtTable { back_after } => self.down_at_table = Some(back_after),
            Ev::ToNode { nn_life, .. } if self.cut_lives.contains(&nn_life) => {
                self.note(format!("lost with its NameNode: {ev:?}"));
            }
            ev => self.handle_node(ev),
        }
    }
}

/// A slot whose owner the history follows (`CHKV_SIM_WATCH`).
fn watch() -> Option<u16> {
    std::env::var("CHKV_SIM_WATCH").ok()?.parse().ok()
}

fn simulate(seed: u64, kill_at_table: bool) -> Stats {
    let mut sim = Sim::new(seed);
    sim.kill_at_table = kill_at_table;
    sim.run();
    sim.stats
}

/// Runs `CHKV_SIM_SEEDS` seeds (40 by default) from `CHKV_SIM_FIRST` (0) and sums their
/// statistics.
fn simulate_seeds(kill_at_table: bool) -> Stats {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (seeds, first) = (var("CHKV_SIM_SEEDS", 40), var("CHKV_SIM_FIRST", 0));
    let mut total = Stats::default();
    for seed in first..first + seeds {
        let s = simulate(seed, kill_at_table);
        total.reads += s.reads;
        total.writes += s.writes;
        total.misses += s.misses;
        total.refused += s.refused;
        total.declared_dead += s.declared_dead;
        total.welcome_flushes += s.welcome_flushes;
        total.taken_by_the_dead += s.taken_by_the_dead;
        total.flips_in_doubt += s.flips_in_doubt;
        total.checked_taken += s.checked_taken;
        total.late_flips_refused += s.late_flips_refused;
        total.handoffs += s.handoffs;
        total.peer_renewals += s.peer_renewals;
        total.honoured_behind += s.honoured_behind;
    }
    eprintln!("{seeds} seeds: {total:?}");
    total
}

/// Many seeded fault schedules, each checked exactly (see the module's doc).
#[test]
fn seeded_fault_schedules_keep_every_promise() {
    let total = simulate_seeds(false);
    // The schedules did exercise what they are for.
    assert!(total.declared_dead > 0 && total.handoffs > 0 && total.peer_renewals > 0);
    assert!(total.flips_in_doubt > 0);
    assert!(total.reads > 0 && total.writes > 0);
}

/// The same schedules with the NameNode also killed as it publishes a table, losing what
/// it had not delivered: nodes come back to the next life one table behind the others.
/// Their claims are honoured when the newest table kept them as members since; the
/// restart test that lost keys under load met this case.
///
/// This fault found two older holes, fixed with it. Seed 20: c was declared dead and its
/// slots given to b; the NameNode died with the table saying so delivered only to b, and b
/// was killed; the next life saw nobody past c's table, so c's claim counted and c served
/// values older than b had acknowledged (now a's suspects list, reported, names c).
/// Seed 68: d joined, its welcome was lost with the NameNode, a handed d slots on the dead
/// life's order; the next life did not count the claims of a node without a table, and d
/// dropped what it had been handed (now the handoff counts: the order came after d joined).
#[test]
fn a_namenode_killed_at_a_table_leaves_nodes_behind_and_breaks_no_promise() {
    let total = simulate_seeds(true);
    assert!(
        total.honoured_behind > 0,
        "no node came back a table behind"
    );
    assert!(total.reads > 0 && total.writes > 0);
}

/// The same seed replays the same run.
#[test]
fn a_seed_replays_the_same_run() {
    for kill in [false, true] {
        let (a, b) = (simulate(7, kill), simulate(7, kill));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
