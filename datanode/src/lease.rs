//! Ownership leases: a DataNode in a cluster serves its slots only while it holds one.
//!
//! # What a lease is
//!
//! A lease is a moment on this process's monotonic clock (`until`) before which the node
//! may serve its slots: run reads and writes for them, its own clients' and those forwarded
//! to it. It comes from two places:
//!
//! - **the NameNode**, answering a heartbeat (`lease{seq}`): the lease runs until the
//!   moment that heartbeat was *sent* plus the lease duration `L` the welcome named;
//! - **the peers**, when the NameNode is late (less than `L/2` left) or unreachable: the
//!   node sends `CLUSTER LEASE <id> <epoch>` to every other node of its table and, only if
//!   *every one* grants, takes the moment it sent them plus `L`. A peer grants when the
//!   requester is in its table, is not on the suspects list the NameNode gave it, and its
//!   table is not older than the one in which the granter saw it join ([`grant`]).
//!
//! So while the NameNode is down and every DataNode is up, every node keeps renewing
//! through the others and keeps serving; a node that is paused, cut off or too slow stops
//! serving (`-TRYAGAIN`, like a Redis Cluster minority) when its lease runs out.
//!
//! # The check is on the request path
//!
//! Every command that reads or writes slots compares the clock with `until` when it starts
//! *and* again when it has run (`cmd::run_command`): after SIGCONT a process runs
//! the requests buffered in its sockets before any timer, so a flag set by a background
//! task would come too late. A command refused at the start waits (bounded) for a renewal
//! or for a new table and is planned again ([`crate::exec`]); one whose lease ran out while
//! it ran holds its reply until a renewal with no drop in between proves the slots stayed
//! this node's ([`LOST_WAIT`]), and otherwise answers `-UNCERTAIN` (it may or may not have
//! been applied: never `+OK`, and never `-TRYAGAIN`, which clients retry as "not run").
//!
//! The clock is `CLOCK_MONOTONIC_COARSE` (a few nanoseconds to read; it lags the precise
//! clock by at most one kernel tick, far below the NameNode's margin). It never jumps and
//! keeps counting while the process is stopped.
//!
//! # Why no stale read, lost write or resurrected delete
//!
//! The NameNode's half of the argument (it gives a node's slots to another without a
//! handoff only once every lease the node could hold has run out) is written next to its
//! code, in `namenode/src/membership.rs`. This side provides what that argument assumes:
//! a node runs a command on its slots only while `now < until`, where `until` is always a
//! send time plus `L`; renewals by peers need every peer of the table the request was sent
//! with; a peer refuses once it has recorded the requester as suspect (the list is
//! recorded before the acknowledgement is sent, and a welcome's list before its table is
//! installed); and a node that the NameNode declared dead drops every slot it held before
//! it serves again (the welcome's `flush`, done under the handoff gate together with the
//! new table); a slot handover whose imports it took before that drop is refused
//! ([`Lease::resets`]).

use crate::cluster::Routing;
use crate::resp::Frame;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

/// A command that needs the lease found none: nothing was done.
pub const ERR_NO_LEASE: Frame = Frame::err(
    "TRYAGAIN this node holds no ownership lease right now (paused, cut off, or rejoining); try again",
);
/// The lease ran out while the command ran and no renewal came within [`LOST_WAIT`]: whether
/// it took effect, and whether the effect lasts, is unknown. Not `-TRYAGAIN`, which Redis
/// Cluster clients (this project's library too) retry as "not executed": an INCR retried
/// after it had applied counted twice (seen under load in the client's ring test).
pub const ERR_LEASE_LOST: Frame = Frame::err(
    "UNCERTAIN this node's ownership lease ran out while the command ran; it may or may not have been applied",
);

/// How long a command that ran while the lease ran out holds its reply, waiting for a
/// renewal. A renewal with no drop in between ([`Lease::resets`] unchanged) proves no other
/// node was given the slots meanwhile (the NameNode reassigns a node's slots only after
/// every lease it could hold has run out, and never renews it after that), so the command
/// ran while this node owned them and its reply stands.
pub const LOST_WAIT: Duration = Duration::from_secs(10);

/// How long a request refused for want of a lease waits for one (or for a table that sends
/// it elsewhere) before its client gets [`ERR_NO_LEASE`].
pub const WAIT_BUDGET: Duration = Duration::from_secs(2);

/// Heartbeat send times remembered for matching grants.
const SENT_KEPT: usize = 64;

/// Microseconds on the coarse monotonic clock.
pub fn now_us() -> u64 {
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(target_os = "linux"))]
    let clock = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock exists on this system; on
    // failure `ts` stays zero, which reads as "long ago": every lease looks expired.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64 / 1000)
}

/// One node's lease, suspects list and pending heartbeats.
pub struct Lease {
    /// End of the lease, in [`now_us`] microseconds; 0 for none.
    until_us: AtomicU64,
    /// The lease duration the NameNode named; 0 while leases are off (no table yet, or a
    /// NameNode without them): the node then serves as before leases existed.
    duration_us: AtomicU64,
    /// How many times the node dropped what it held ([`Lease::reset`]).
    resets: AtomicU64,
    suspects: RwLock<Suspects>,
    /// For each node of the table, the epoch of the table in which this node saw it join
    /// (see [`grant`]).
    joined: Mutex<HashMap<String, u64>>,
    /// Heartbeats sent in this NameNode session: sequence number and send time.
    sent: Mutex<VecDeque<(u64, u64)>>,
    next_seq: AtomicU64,
    /// Wakes the renewal task (a request found the lease lapsed).
    pub wake: Notify,
    /// Bumped at every renewal; requests waiting for a lease watch it.
    renewed: watch::Sender<u64>,
    /// Whether the lapse was logged (once per lapse).
    lapse_logged: AtomicBool,
}

#[derive(Default)]
struct Suspects {
    version: u64,
    nodes: BTreeSet<String>,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            until_us: AtomicU64::new(0),
            duration_us: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            suspects: RwLock::new(Suspects::default()),
            joined: Mutex::new(HashMap::new()),
            sent: Mutex::new(VecDeque::new()),
            next_seq: AtomicU64::new(1),
            wake: Notify::new(),
            renewed: watch::channel(0).0,
            lapse_logged: AtomicBool::new(false),
        }
    }
}

impl Lease {
    /// Whether leases are on: the node has a table from a NameNode that uses them.
    #[inline]
    pub fn enforced(&self) -> bool {
        self.duration_us.load(Relaxed) != 0
    }

    /// Whether the node may serve its slots now: leases are off, or the lease is valid.
    #[inline]
    pub fn serving(&self) -> bool {
        !self.enforced() || now_us() < self.until_us.load(SeqCst)
    }

    /// Like [`Lease::serving`], and on a refusal wakes the renewal task and logs the lapse
    /// once.
    pub fn check(&self) -> bool {
        if self.serving() {
            return true;
        }
        self.wake.notify_one();
        if !self.lapse_logged.swap(true, Relaxed) {
            warn!("ownership lease lapsed: refusing to serve slots until it is renewed");
        }
        false
    }

    /// The lease duration (zero while leases are off).
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us.load(Relaxed))
    }

    /// [`Lease::duration`] in microseconds, read with the ordering its renewal needs.
    pub fn duration_us(&self) -> u64 {
        self.duration_us.load(SeqCst)
    }

    /// A node configured with a NameNode serves nothing before its first lease, not even
    /// slots handed to it before its welcome: until the welcome says the duration (0 if the
    /// cluster runs without leases), leases are enforced and none is held. A new process at
    /// the address of a node declared dead could otherwise serve slots a source handed to
    /// its predecessor, beside the source that took them back (found by the simulation,
    /// `tests/sim.rs`).
    pub fn await_welcome(&self) {
        self.duration_us.store(1, SeqCst);
    }

    /// Sets the lease duration from a welcome (0 turns leases off).
    pub fn set_duration_ms(&self, ms: u64) {
        self.duration_us.store(ms.saturating_mul(1000), SeqCst);
    }

    /// Microseconds of lease left (0 when lapsed or none).
    pub fn remaining_us(&self) -> u64 {
        self.until_us.load(SeqCst).saturating_sub(now_us())
    }

    /// A renewal asked for at `sent_us`: the lease runs until then plus its duration (never
    /// shortened).
    pub fn extend_from(&self, sent_us: u64) {
        let until = sent_us.saturating_add(self.duration_us.load(SeqCst));
        let before = self.until_us.fetch_max(until, SeqCst);
        if until > before {
            if before <= now_us() && self.lapse_logged.swap(false, Relaxed) {
                info!("ownership lease renewed: serving again");
            }
            self.renewed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The node dropped everything it held (a welcome's `flush`): no lease until the next
    /// grant, and the reset count moves.
    pub fn reset(&self) {
        self.until_us.store(0, SeqCst);
        self.resets.fetch_add(1, SeqCst);
    }

    /// How many times the node dropped what it held.
    pub fn resets(&self) -> u64 {
        self.resets.load(SeqCst)
    }

    /// A receiver that changes at every renewal.
    pub fn watch_renewals(&self) -> watch::Receiver<u64> {
        self.renewed.subscribe()
    }

    /// Waits (at most `wait`) for the lease to hold again with no drop of the node's slots
    /// since `resets` (a [`Lease::resets`] read before a command ran): then a command that
    /// ran while the lease ran out stands, for the slots stayed this node's. False on a
    /// drop, or when no renewal came in time.
    pub async fn renewed_since(&self, resets: u64, wait: Duration) -> bool {
        self.wait_for(wait, || {
            if self.resets() != resets {
                Some(false)
            } else if self.check() {
                Some(self.resets() == resets)
            } else {
                None
            }
        })
        .await
    }

    /// Asks `decide` at once, at every renewal and every 20 ms (for changes renewals do not
    /// signal, such as a new table) until it answers, for at most `wait`; false when it
    /// never did.
    pub async fn wait_for(&self, wait: Duration, mut decide: impl FnMut() -> Option<bool>) -> bool {
        let mut renewals = self.watch_renewals();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(answer) = decide() {
                return answer;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), renewals.changed()).await;
        }
    }

    /// A new NameNode session: heartbeats of the previous one will not be answered.
    pub fn new_session(&self) {
        self.sent.lock().clear();
    }

    /// Numbers a heartbeat about to be sent and remembers when (read before it is sent).
    pub fn heartbeat_sent(&self) -> u64 {
        let seq = self.next_seq.fetch_add(1, Relaxed);
        let mut sent = self.sent.lock();
        if sent.len() >= SENT_KEPT {
            sent.pop_front();
        }
        sent.push_back((seq, now_us()));
        seq
    }

    /// The NameNode granted the lease for heartbeat `seq`.
    pub fn granted(&self, seq: u64) {
        let at = self
            .sent
            .lock()
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|&(_, at)| at);
        match at {
            Some(at) => self.extend_from(at),
            None => debug!(seq, "lease grant for a heartbeat not sent in this session"),
        }
    }

    /// The nodes on the suspects list, as a registration reports them.
    pub fn suspects(&self) -> Vec<String> {
        self.suspects.read().nodes.iter().cloned().collect()
    }

    /// Records the suspects list `version` (replacing the previous one).
    pub fn set_suspects(&self, version: u64, nodes: impl IntoIterator<Item = String>) {
        let mut s = self.suspects.write();
        s.version = version;
        s.nodes = nodes.into_iter().collect();
    }

    /// Records the table `table` about to be installed: nodes new to this node's view
    /// joined at its epoch, nodes absent from it are forgotten. A `welcome` starts over:
    /// every node counts as joined at its epoch (this node cannot know what it missed).
    /// Called before the table is installed, so a grant never sees a node of the table
    /// without its entry (which would be refused anyway).
    pub fn table_installed(&self, table: &Routing, welcome: bool) {
        let mut joined = self.joined.lock();
        if welcome {
            joined.clear();
        }
        joined.retain(|id, _| table.nodes.iter().any(|n| n.id.as_str() == id));
        for n in &table.nodes {
            joined
                .entry(n.id.as_str().to_string())
                .or_insert(table.epoch);
        }
    }

    /// Whether this node may grant `requester` a lease, `requester_epoch` being the epoch
    /// of its table, under `table` (this node's table from the NameNode).
    pub fn may_grant(
        &self,
        table: &Routing,
        requester: &str,
        requester_epoch: u64,
    ) -> Result<(), Refusal> {
        let suspects = self.suspects.read();
        let joined = self.joined.lock().get(requester).copied();
        grant(table, &suspects.nodes, joined, requester, requester_epoch)
    }
}

/// Why a peer refuses a lease.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node has no table yet")]
    NoTable,
    #[error("{0} is not in this node's table")]
    NotMember(String),
    #[error("{0} is suspected by the NameNode")]
    Suspect(String),
    #[error("the requester's table (epoch {theirs}) is older than its joining (epoch {joined})")]
    OlderTable { theirs: u64, joined: u64 },
}

/// The grant rule: `requester` (whose table has epoch `requester_epoch`) may have a lease
/// from a node whose NameNode table is `table`, whose suspects list is `suspects`, and that
/// saw the requester join at epoch `joined`, iff the table names it, the list does not, and
/// its table is not older than its joining. The last part is for a node declared dead that
/// re-registered: it is in the tables again, but until it has installed its welcome (and
/// dropped what it held) it asks with its old table, from before it left; a node that merely
/// lags a few tables behind is granted.
///
/// Not whether this node itself holds a lease: the NameNode never counts on a node's own
/// lease, only on the nodes that acknowledged the suspects list refusing (see its
/// argument), and nodes that all lapsed together (a stall while the NameNode is down) can
/// then renew each other again.
pub fn grant(
    table: &Routing,
    suspects: &BTreeSet<String>,
    joined: Option<u64>,
    requester: &str,
    requester_epoch: u64,
) -> Result<(), Refusal> {
    if !table.has_table() {
        return Err(Refusal::NoTable);
    }
    if !table.nodes.iter().any(|n| n.id.as_str() == requester) {
        return Err(Refusal::NotMember(requester.to_string()));
    }
    if suspects.contains(requester) {
        return Err(Refusal::Suspect(requester.to_string()));
    }
    // Not recorded: this node is between recording a table and installing it.
    let Some(joined) = joined else {
        return Err(Refusal::NotMember(requester.to_string()));
    };
    if requester_epoch < joined {
        return Err(Refusal::OlderTable {
            theirs: requester_epoch,
            joined,
        });
    }
    Ok(())
}

/// Whether a lease with `remaining_us` of `duration_us` left should be renewed through the
/// peers: less than half left, the NameNode being late.
pub fn needs_renewal(remaining_us: u64, duration_us: u64) -> bool {
    duration_us != 0 && remaining_us < duration_us / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use chkv_common::proto::NodeInfo;
    use chkv_common::ring::{NodeId, Ring};

    fn table(ids: &[&str], epoch: u64, me: &str) -> Routing {
        let mut ring = Ring::default();
        let infos: Vec<NodeInfo> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                ring.add(NodeId::new(*id));
                NodeInfo {
                    id: NodeId::new(*id),
                    client_addr: format!("127.0.0.1:{}", 7000 + i).parse().expect("addr"),
                    admin_addr: format!("127.0.0.1:{}", 8000 + i).parse().expect("addr"),
                    tls_port: None,
                    since: 0,
                }
            })
            .collect();
        let mut t = ring.slot_table();
        t.set_epoch(epoch);
        Routing::from_table(&t, &infos, me)
    }

    /// A lease that ran out while a command ran: the command's reply stands once a renewal
    /// comes with no drop in between, never after a drop, and not without a renewal.
    #[tokio::test]
    async fn a_reply_stands_only_after_a_renewal_without_a_drop() {
        let lapsed = || {
            let l = std::sync::Arc::new(Lease::default());
            l.set_duration_ms(1000);
            // Renewed for a heartbeat sent 2 s ago: ran out 1 s ago.
            l.extend_from(now_us().saturating_sub(2_000_000));
            assert!(!l.serving());
            l
        };
        let generous = Duration::from_secs(60);
        // Renewed (a heartbeat answered now), no drop: stands.
        let l = lapsed();
        let r = l.resets();
        let renew = {
            let l = l.clone();
            tokio::spawn(async move { l.extend_from(now_us()) })
        };
        assert!(l.renewed_since(r, generous).await);
        renew.await.expect("renewal");
        // Dropped (a welcome's flush) before any renewal: never stands, even if a renewal
        // follows.
        let l = lapsed();
        let r = l.resets();
        l.reset();
        l.extend_from(now_us());
        assert!(!l.renewed_since(r, generous).await);
        // No renewal within the wait: does not stand.
        let l = lapsed();
        let r = l.resets();
        assert!(!l.renewed_since(r, Duration::from_millis(50)).await);
        // A lease that never lapsed (leases off) stands at once.
        let l = Lease::default();
        assert!(l.renewed_since(l.resets(), Duration::ZERO).await);
    }

    #[test]
    fn the_grant_rule() {
        let t = table(&["a", "b", "c"], 7, "a");
        let none = BTreeSet::new();
        assert_eq!(grant(&t, &none, Some(7), "b", 7), Ok(()));
        assert_eq!(grant(&t, &none, Some(7), "b", 9), Ok(()), "a newer table");
        assert_eq!(
            grant(&t, &none, Some(2), "b", 5),
            Ok(()),
            "lagging, not rejoined"
        );
        assert_eq!(
            grant(&t, &none, Some(7), "b", 6),
            Err(Refusal::OlderTable {
                theirs: 6,
                joined: 7
            })
        );
        assert_eq!(
            grant(&t, &none, None, "b", 7),
            Err(Refusal::NotMember("b".into()))
        );
        assert_eq!(
            grant(&t, &none, Some(1), "x", 7),
            Err(Refusal::NotMember("x".into()))
        );
        let c: BTreeSet<String> = ["c".to_string()].into();
        assert_eq!(
            grant(&t, &c, Some(1), "c", 7),
            Err(Refusal::Suspect("c".into()))
        );
        assert_eq!(grant(&t, &c, Some(1), "b", 7), Ok(()));
        assert_eq!(
            grant(&Routing::standalone(), &none, Some(1), "b", 7),
            Err(Refusal::NoTable)
        );
    }

    /// A node declared dead leaves the tables and comes back in a later one: until it has
    /// installed that one, its requests carry its old table and are refused; a node that
    /// stayed is granted with any table since it joined.
    #[test]
    fn a_node_that_left_and_came_back_needs_its_new_table() {
        let l = Lease::default();
        l.table_installed(&table(&["a", "b", "c"], 3, "a"), true);
        l.table_installed(&table(&["a", "b", "c"], 4, "a"), false);
        l.table_installed(&table(&["a", "b"], 5, "a"), false);
        let back = table(&["a", "b", "c"], 6, "a");
        l.table_installed(&back, false);
        assert!(l.may_grant(&back, "c", 4).is_err(), "its table from before");
        assert_eq!(l.may_grant(&back, "c", 6), Ok(()));
        assert_eq!(l.may_grant(&back, "b", 3), Ok(()), "b never left");
        // After a re-registration this node knows no history: everyone joined at 6.
        l.table_installed(&back, true);
        assert!(l.may_grant(&back, "b", 5).is_err());
        assert_eq!(l.may_grant(&back, "b", 6), Ok(()));
    }

    #[test]
    fn renewal_starts_when_half_is_left() {
        assert!(!needs_renewal(600, 1000));
        assert!(!needs_renewal(500, 1000));
        assert!(needs_renewal(499, 1000));
        assert!(needs_renewal(0, 1000));
        assert!(!needs_renewal(0, 0), "leases off");
    }

    #[test]
    fn grants_count_from_the_heartbeat_send_time() {
        let l = Lease::default();
        assert!(l.serving(), "off until a welcome names a duration");
        l.set_duration_ms(60_000);
        assert!(!l.serving(), "no lease yet");
        let seq = l.heartbeat_sent();
        let before = now_us();
        l.granted(seq + 100);
        assert!(
            !l.serving(),
            "a grant for a heartbeat never sent is ignored"
        );
        l.granted(seq);
        assert!(l.serving());
        let left = l.remaining_us();
        assert!(left <= 60_000_000 && left > 59_000_000, "{left}");
        // Never shortened by an older grant.
        let until = l.until_us.load(SeqCst);
        l.extend_from(before.saturating_sub(10_000_000));
        assert_eq!(l.until_us.load(SeqCst), until);
        // A new session forgets the heartbeats of the last one.
        let old = l.heartbeat_sent();
        l.new_session();
        l.reset();
        l.granted(old);
        assert!(!l.serving());
    }

    #[test]
    fn a_reset_drops_the_lease_and_counts() {
        let l = Lease::default();
        l.set_duration_ms(60_000);
        l.extend_from(now_us());
        assert!(l.serving() && l.check());
        assert_eq!(l.resets(), 0);
        l.reset();
        assert!(!l.serving() && !l.check());
        assert_eq!(l.resets(), 1);
        l.set_duration_ms(0);
        assert!(l.serving() && l.check(), "leases off");
    }

    #[test]
    fn suspects_are_replaced_whole() {
        let l = Lease::default();
        let t = table(&["a", "b", "c"], 3, "a");
        l.table_installed(&t, true);
        l.set_suspects(1, ["b".to_string(), "c".to_string()]);
        assert!(l.may_grant(&t, "b", 3).is_err());
        l.set_suspects(2, ["c".to_string()]);
        assert_eq!(l.may_grant(&t, "b", 3), Ok(()));
        assert!(l.may_grant(&t, "c", 3).is_err());
    }

    #[test]
    fn the_coarse_clock_moves_forward() {
        let a = now_us();
        std::thread::sleep(Duration::from_millis(20));
        let b = now_us();
        assert!(b > a && b - a >= 10_000, "{a} {b}");
    }
}
