//! Moving slots between DataNodes without losing or refusing a request.
//!
//! When the NameNode orders this node to hand slots to another (`migrate`, on a join or a
//! drain), the slots move in small batches. For each batch:
//!
//! 1. **Freeze**: the batch's slots are marked frozen under the write side of a gate whose read
//!    side every local command holds while it checks and runs, so no command is half-way
//!    through a frozen slot and none starts on one. Requests for frozen slots are not
//!    refused: they wait (asynchronously) for the flip.
//! 2. **Copy**: every live entry of the batch (value and absolute expiry) is sent to the new
//!    owner with `CLUSTER IMPORT`, pipelined; expired entries are not sent, and an entry that
//!    expires on the way is not stored.
//! 3. **Flip**: `CLUSTER HANDOFF` tells the new owner the slots are its own now; then this
//!    node records the new owner locally. Both flips are local overrides of the NameNode's
//!    table until its next table says the same, so requests route correctly at once.
//! 4. **Release**: waiting requests are planned again (now forwarded to the new owner), the
//!    batch's memory is freed here, and the NameNode is told (`handoff_done`).
//!
//! `CLUSTER IMPORT` and `CLUSTER HANDOFF` travel on an authenticated peer session (see
//! [`crate::peer`]), and the new owner accepts them only for slots its table says this node
//! owns (see [`crate::trust::may_receive`]); while its table is behind it answers
//! `-TRYAGAIN` and the batch is sent again, frozen all along, for a few seconds.
//!
//! A batch whose copy fails (the target died) is unfrozen and stays here; the NameNode
//! orders the move again, to a live node.

use crate::cluster::{Override, Owner, Routing};
use crate::node::Node;
use crate::resp::{Frame, Protocol, Request};
use crate::store::handoff::Exported;
use crate::store::now_ms;
use bytes::BytesMut;
use chkv_common::proto::{DataNodeToNameNode, NodeInfo};
use chkv_common::ring::NodeId;
use chkv_common::SLOT_COUNT;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Keys per batch: small enough that a frozen slot waits a few milliseconds at most.
const BATCH_KEYS: usize = 2000;
/// Slots per batch at most.
const BATCH_SLOTS: usize = 64;
/// Entries per `CLUSTER IMPORT` command at most.
const IMPORT_CHUNK: usize = 500;
/// Bytes of keys and values per `CLUSTER IMPORT` command at most (one entry larger than this
/// travels alone): well below any receiver's query-buffer limit, and short enough on the peer
/// connection that forwarded requests behind it wait milliseconds.
const IMPORT_BYTES: usize = 16 << 20;
/// Bytes a batch exports before it stops taking more slots: the slots it has not exported
/// yet go in the next batch, so a batch holds at most this plus one slot.
const BATCH_BYTES: usize = 16 << 20;
/// What one entry weighs in a transfer besides its key and value (headers, expiry).
const ENTRY_OVERHEAD: usize = 48;
/// Longest a batch is retried while the new owner answers `-TRYAGAIN`.
const TRYAGAIN_BUDGET: Duration = Duration::from_secs(5);
/// Pause between those attempts.
const TRYAGAIN_PAUSE: Duration = Duration::from_millis(50);

/// An order from the NameNode.
#[derive(Clone, Debug)]
pub struct MigrateOrder {
    pub epoch: u64,
    pub slots: Vec<(u16, u16)>,
    pub to: NodeId,
    pub to_addr: SocketAddr,
    /// `to`'s TLS port (the one peers use with `tls-cluster`).
    pub to_tls_port: Option<u16>,
}

/// Progress of the moves this node makes.
#[derive(Default)]
pub struct Progress {
    pub slots_total: AtomicU64,
    pub slots_done: AtomicU64,
    pub keys_moved: AtomicU64,
    pub bytes_moved: AtomicU64,
    pub started: Mutex<Option<Instant>>,
    /// Keys and bytes handed over since the node started (never reset; `/metrics`).
    pub keys_sent_total: AtomicU64,
    pub bytes_sent_total: AtomicU64,
}

/// A node's handoff state.
pub struct Handoff {
    /// Read by every local command while it runs; written to freeze slots.
    pub gate: crate::striped::StripedRwLock,
    frozen: [AtomicU64; SLOT_COUNT / 64],
    /// Bumped whenever slots are unfrozen; waiting requests watch it.
    unfrozen: watch::Sender<u64>,
    /// The NameNode's latest table, before overrides.
    base: RwLock<Arc<Routing>>,
    overrides: Mutex<HashMap<u16, Override>>,
    pub draining: AtomicBool,
    pub progress: Progress,
    /// Messages for the NameNode (the agent forwards them).
    to_namenode: Mutex<Option<mpsc::UnboundedSender<DataNodeToNameNode>>>,
    orders: Mutex<Option<mpsc::UnboundedSender<MigrateOrder>>>,
    /// Set once a drain has completed: the process should exit.
    pub drained: watch::Sender<bool>,
    /// Keys this node dropped without handing them over while draining: the NameNode
    /// declared it dead mid-drain (a pause, a partition) and gave its slots to others
    /// without their data. A drain that lost any is reported incomplete, never "drained".
    pub lost_keys: AtomicU64,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            gate: Default::default(),
            frozen: std::array::from_fn(|_| AtomicU64::new(0)),
            unfrozen: watch::channel(0).0,
            base: RwLock::new(Arc::new(Routing::standalone())),
            overrides: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            progress: Progress::default(),
            to_namenode: Mutex::new(None),
            orders: Mutex::new(None),
            drained: watch::channel(false).0,
            lost_keys: AtomicU64::new(0),
        }
    }
}

impl Handoff {
    /// Whether `slot` is frozen (being handed over).
    pub fn is_frozen(&self, slot: u16) -> bool {
        self.frozen[slot as usize / 64].load(SeqCst) & (1 << (slot % 64)) != 0
    }

    /// Whether any slot is frozen (a fast path for the common case).
    pub fn any_frozen(&self) -> bool {
        self.frozen.iter().any(|w| w.load(Relaxed) != 0)
    }

    fn set_frozen(&self, slots: &[u16], on: bool) {
        // Under the gate's write side: no local command is running, and none starts before
        // the bits are set.
        let _w = self.gate.write();
        for &s in slots {
            let bit = 1u64 << (s % 64);
            if on {
                self.frozen[s as usize / 64].fetch_or(bit, SeqCst);
            } else {
                self.frozen[s as usize / 64].fetch_and(!bit, SeqCst);
            }
        }
        drop(_w);
        if !on {
            self.unfrozen.send_modify(|g| *g += 1);
        }
    }

    /// A receiver that changes whenever slots are unfrozen.
    pub fn watch_unfrozen(&self) -> watch::Receiver<u64> {
        self.unfrozen.subscribe()
    }

    /// Where messages to the NameNode go (set by the agent).
    pub fn set_namenode_channel(&self, tx: Option<mpsc::UnboundedSender<DataNodeToNameNode>>) {
        *self.to_namenode.lock() = tx;
    }

    fn tell_namenode(&self, msg: DataNodeToNameNode) -> bool {
        self.to_namenode
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(msg).is_ok())
    }
}

/// Installs the NameNode's table `base` and recomputes the routing with the overrides that
/// still matter. Returns whether the epoch was accepted.
///
/// Slots the table gives this node without a handoff (their owner was declared dead, or
/// nobody claimed them after a NameNode restart) are emptied first: what this node holds
/// there is a stale copy (entries of an import whose batch never flipped), and serving it
/// would answer with values older than writes the old owner acknowledged, or bring back
/// keys it deleted. Under the gate's write side, so no command runs on such a slot before
/// it is empty.
pub fn set_base(node: &Node, base: Routing) -> bool {
    let _w = node.handoff.gate.write();
    set_base_gated(node, base)
}

/// [`set_base`] for a caller that holds the gate's write side.
fn set_base_gated(node: &Node, base: Routing) -> bool {
    let h = &node.handoff;
    {
        let mut cur = h.base.write();
        if !cur.standalone && base.epoch < cur.epoch {
            return false;
        }
        *cur = Arc::new(base);
    }
    refresh(node, Gained::Flush);
    true
}

/// The NameNode's latest table, before overrides (standalone before the first one).
pub fn base_table(node: &Node) -> Arc<Routing> {
    node.handoff.base.read().clone()
}

/// Installs a welcome's table after dropping the slots in `flush`: slots the NameNode says
/// this node lost without a handoff (it was declared dead, or a newer claim won after a
/// restart). Under the gate's write side, so no command runs on the old view meanwhile:
/// when it opens, the slots are empty and the table says who owns them. Adoptions of those
/// slots are forgotten, and the lease starts over (see [`crate::lease::Lease::reset`]).
/// Returns whether the table's epoch was accepted.
pub fn install_dropping(node: &Node, base: Routing, flush: &[(u16, u16)]) -> bool {
    if flush.is_empty() {
        return set_base(node, base);
    }
    // Ranges from the network, however many or overlapping: merged first, so each slot is
    // marked once.
    let mut ranges: Vec<(usize, usize)> = flush
        .iter()
        .map(|&(a, b)| (usize::from(a), usize::from(b).min(SLOT_COUNT - 1)))
        .filter(|(a, b)| a <= b)
        .collect();
    ranges.sort_unstable();
    let mut marked = vec![false; SLOT_COUNT];
    let mut next = 0;
    for (a, b) in ranges {
        for m in marked.iter_mut().take(b + 1).skip(a.max(next)) {
            *m = true;
        }
        next = next.max(b + 1);
    }
    let slots: Vec<u16> = (0..SLOT_COUNT as u16)
        .filter(|&s| marked[s as usize])
        .collect();
    let _w = node.handoff.gate.write();
    node.handoff
        .overrides
        .lock()
        .retain(|&s, o| o.to.is_some() || !marked[s as usize]);
    let applied = set_base_gated(node, base);
    let mut dropped = 0;
    for &s in &slots {
        dropped += node.db.drop_slot(s);
    }
    node.lease.reset();
    if node.handoff.draining.load(SeqCst) && dropped > 0 {
        node.handoff.lost_keys.fetch_add(dropped as u64, SeqCst);
        warn!(
            keys = dropped,
            "drain incomplete: declared dead mid-drain, this node dropped keys it had not handed over"
        );
    }
    info!(
        slots = slots.len(),
        keys = dropped,
        "dropped the slots this node lost without a handoff"
    );
    applied
}

/// What [`refresh`] does with slots that become this node's other than by an adoption.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gained {
    /// Empties them before the routing that serves them is installed (the caller holds the
    /// gate's write side).
    Flush,
    /// None can appear: only a new base table gives slots without a handoff.
    Keep,
}

/// Rebuilds the effective routing from the base table and the overrides, dropping overrides
/// the table has caught up with.
fn refresh(node: &Node, gained: Gained) {
    let h = &node.handoff;
    let me = my_info(node);
    // One refresh at a time, from reading the base to installing the result: a table from
    // the NameNode (the agent) and a flip (a peer connection) refresh concurrently, and a
    // routing computed before the other's change but installed after it would undo that
    // change until the next refresh.
    let mut ov = h.overrides.lock();
    let base = h.base.read().clone();
    let effective = {
        // Before the first table (a joining node can be handed slots before the NameNode's
        // welcome reaches it) there is nothing to settle against: every slot would look
        // unowned and every adoption would be dropped.
        if base.has_table() {
            ov.retain(|&slot, o| {
                !o.settled_by(base.owner_id(slot), &node.node_id) && !o.target_left(&base)
            });
        }
        base.with_overrides(&ov, &me)
    };
    if gained == Gained::Flush && !effective.standalone {
        let before = node.routing();
        let mut flushed = (0usize, 0usize);
        for s in 0..SLOT_COUNT as u16 {
            let adopted = ov.get(&s).is_some_and(|o| o.to.is_none());
            if effective.owner(s) == Owner::Local && before.owner(s) != Owner::Local && !adopted {
                let keys = node.db.drop_slot(s);
                if keys > 0 {
                    flushed = (flushed.0 + 1, flushed.1 + keys);
                }
            }
        }
        if flushed.1 > 0 {
            info!(
                slots = flushed.0,
                keys = flushed.1,
                "dropped stale copies in slots given to this node without a handoff"
            );
        }
    }
    node.install_routing(effective);
    drop(ov);
}

fn my_info(node: &Node) -> NodeInfo {
    let addr = node.advertised_addr();
    NodeInfo {
        id: NodeId::new(node.node_id.clone()),
        client_addr: addr,
        admin_addr: node.config().admin_addr,
        tls_port: node.tls_port(),
    }
}

/// The node that handed `slot` to this one, while the NameNode's table has not caught up.
pub fn adopted_from(node: &Node, slot: u16) -> Option<String> {
    let ov = node.handoff.overrides.lock();
    ov.get(&slot)
        .filter(|o| o.to.is_none())
        .map(|o| o.from.clone())
}

/// Records that `slots` now belong to this node (handed over by `from`).
pub fn adopt(node: &Node, from: &str, slots: &[u16]) {
    {
        let epoch = node.handoff.base.read().epoch;
        let mut ov = node.handoff.overrides.lock();
        for &s in slots {
            ov.insert(
                s,
                Override {
                    from: from.to_string(),
                    to: None,
                    epoch,
                },
            );
        }
    }
    refresh(node, Gained::Keep);
}

/// Records that `slots` now belong to `to`, as ordered in `epoch`.
fn release(node: &Node, to: NodeInfo, epoch: u64, slots: &[u16]) {
    {
        let mut ov = node.handoff.overrides.lock();
        for &s in slots {
            ov.insert(
                s,
                Override {
                    from: node.node_id.clone(),
                    to: Some(to.clone()),
                    epoch,
                },
            );
        }
    }
    refresh(node, Gained::Keep);
}

/// Queues an order for the migration worker (started on first use).
pub fn enqueue(node: &Arc<Node>, order: MigrateOrder) {
    let mut guard = node.handoff.orders.lock();
    let tx = guard.get_or_insert_with(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(node.clone(), rx));
        tx
    });
    let _ = tx.send(order);
}

async fn worker(node: Arc<Node>, mut orders: mpsc::UnboundedReceiver<MigrateOrder>) {
    while let Some(order) = orders.recv().await {
        let started = Instant::now();
        match migrate(&node, &order).await {
            Ok((slots, keys)) => info!(
                to = %order.to, slots, keys, ms = started.elapsed().as_millis() as u64,
                "handed slots over"
            ),
            Err(e) => {
                warn!(to = %order.to, error = %e, "handoff stopped; the NameNode will order it again")
            }
        }
    }
}

/// Why a batch could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("the new owner refused the data: {0}")]
    Refused(String),
    #[error(transparent)]
    Peer(#[from] crate::peer::PeerError),
    #[error("the forwarding connection dropped")]
    Dropped,
    /// This node's ownership lease lapsed: what it holds may no longer be its to hand over.
    #[error("this node holds no ownership lease")]
    NoLease,
}

/// Carries out one order; returns (slots moved, keys moved).
async fn migrate(node: &Arc<Node>, order: &MigrateOrder) -> Result<(usize, u64), HandoffError> {
    let h = &node.handoff;
    let to_info = NodeInfo {
        id: order.to.clone(),
        client_addr: order.to_addr,
        admin_addr: order.to_addr,
        tls_port: order.to_tls_port,
    };
    let wanted: Vec<u16> = order
        .slots
        .iter()
        .flat_map(|&(a, b)| a..=b)
        .filter(|&s| (s as usize) < SLOT_COUNT)
        .collect();
    // Slots that are no longer ours (an order repeated after a timeout) are done already.
    let routing = node.routing();
    let (mine, not_mine): (Vec<u16>, Vec<u16>) = wanted
        .into_iter()
        .partition(|&s| routing.owner(s) == Owner::Local);
    // Say where each went: perhaps to another node than this order's (an earlier order
    // carried out after the NameNode had given up waiting for it).
    let mut elsewhere: HashMap<String, Vec<u16>> = HashMap::new();
    for &s in &not_mine {
        if let Some(id) = routing.owner_id(s) {
            elsewhere.entry(id.to_string()).or_default().push(s);
        }
    }
    for (to, slots) in elsewhere {
        report_done(node, order.epoch, &slots, NodeId::new(to));
    }
    h.progress.slots_total.fetch_add(mine.len() as u64, Relaxed);
    h.progress.started.lock().get_or_insert_with(Instant::now);
    let (mut slots_moved, mut keys_moved) = (0usize, 0u64);
    let mut i = 0;
    while i < mine.len() {
        // A batch: whole slots, up to BATCH_KEYS keys (at least one slot).
        let mut batch = vec![mine[i]];
        let mut keys = node.db.slot_len(mine[i]);
        i += 1;
        while i < mine.len() && batch.len() < BATCH_SLOTS {
            let n = node.db.slot_len(mine[i]);
            if keys + n > BATCH_KEYS {
                break;
            }
            keys += n;
            batch.push(mine[i]);
            i += 1;
        }
        // The batch may stop early (bytes): the slots it did not take go first in the next.
        let (taken, moved) = move_batch(node, order, &to_info, &batch).await?;
        i -= batch.len() - taken;
        slots_moved += taken;
        keys_moved += moved;
        report_done(node, order.epoch, &batch[..taken], order.to.clone());
    }
    Ok((slots_moved, keys_moved))
}

/// Splits entries of these sizes (bytes) into transfers of at most `max_entries` entries
/// and `max_bytes` bytes; an entry larger than `max_bytes` travels alone. Every entry is in
/// exactly one transfer, in order.
fn transfers(sizes: &[usize], max_entries: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start >= max_entries.max(1) || bytes.saturating_add(size) > max_bytes;
        if i > start && full {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// One slot's entries, exported and encoded as `CLUSTER IMPORT` commands.
struct Encoded {
    commands: Vec<bytes::Bytes>,
    keys: u64,
    bytes: usize,
}

/// Exports `slot` and encodes it in transfers, on a blocking thread: a slot of hundreds of
/// megabytes takes a while to copy, and the request workers (and the heartbeats) must not
/// wait behind it.
async fn export_encoded(node: &Arc<Node>, slot: u16, now: u64) -> Encoded {
    let node = node.clone();
    let work = move || {
        let entries = node.db.export_slot(slot, now);
        let sizes: Vec<usize> = entries
            .iter()
            .map(|e| e.key.len() + e.value.len() + ENTRY_OVERHEAD)
            .collect();
        let mut commands = Vec::new();
        let mut bytes = 0;
        for range in transfers(&sizes, IMPORT_CHUNK, IMPORT_BYTES) {
            let mut buf = BytesMut::new();
            encode_import(&entries[range], &mut buf);
            bytes += buf.len();
            commands.push(buf.freeze());
        }
        Encoded {
            commands,
            keys: entries.len() as u64,
            bytes,
        }
    };
    match tokio::runtime::Handle::current().runtime_flavor() {
        // A current-thread runtime (some tests) has no blocking pool to spare a worker for.
        tokio::runtime::RuntimeFlavor::CurrentThread => work(),
        _ => tokio::task::spawn_blocking(work)
            .await
            .expect("export task does not panic"),
    }
}

fn report_done(node: &Node, epoch: u64, slots: &[u16], to: NodeId) {
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    for s in sorted {
        match ranges.last_mut() {
            Some(r) if r.1 + 1 == s => r.1 = s,
            _ => ranges.push((s, s)),
        }
    }
    node.handoff.tell_namenode(DataNodeToNameNode::HandoffDone {
        node_id: NodeId::new(node.node_id.clone()),
        epoch,
        slots: ranges,
        to: Some(to),
    });
}

/// Freeze, copy, flip, release one batch. Returns how many of its slots (the first ones)
/// moved, and the keys moved.
async fn move_batch(
    node: &Arc<Node>,
    order: &MigrateOrder,
    to: &NodeInfo,
    batch: &[u16],
) -> Result<(usize, u64), HandoffError> {
    let h = &node.handoff;
    h.set_frozen(batch, true);
    // The new owner answers `-TRYAGAIN` while its table does not yet show this node owning
    // the batch (the NameNode's table and its order travel on different connections), or
    // while its lease lapsed and it is re-registering; this node's own lease may lapse for a
    // moment too. The batch stays frozen between attempts, so each attempt sends the same
    // entries and what an earlier one imported is only overwritten with the same values.
    let started = Instant::now();
    let result = loop {
        match copy_and_flip(node, order, batch).await {
            Err(HandoffError::Refused(e))
                if e.starts_with("-TRYAGAIN") && started.elapsed() < TRYAGAIN_BUDGET =>
            {
                debug!(to = %order.to, reply = %e, "new owner not ready; retrying the batch");
                tokio::time::sleep(TRYAGAIN_PAUSE).await;
            }
            Err(HandoffError::NoLease) if started.elapsed() < TRYAGAIN_BUDGET => {
                node.lease.wake.notify_one();
                tokio::time::sleep(TRYAGAIN_PAUSE).await;
            }
            r => break r,
        }
    };
    match result {
        Ok((taken, keys)) => {
            let moved = &batch[..taken];
            release(node, to.clone(), order.epoch, moved);
            h.set_frozen(batch, false);
            for &s in moved {
                node.db.drop_slot(s);
            }
            if taken < batch.len() {
                // Frozen, not moved: waiting requests run here again.
                node.blocking.slots_unfrozen(&batch[taken..]);
                crate::blocking::serve_ready(node);
            }
            h.progress.slots_done.fetch_add(taken as u64, Relaxed);
            h.progress.keys_moved.fetch_add(keys, Relaxed);
            h.progress.keys_sent_total.fetch_add(keys, Relaxed);
            Ok((taken, keys))
        }
        Err(e) => {
            h.set_frozen(batch, false);
            // Writes while frozen could not serve the clients blocked on these slots'
            // keys; the slots stay here, so serve them now.
            node.blocking.slots_unfrozen(batch);
            crate::blocking::serve_ready(node);
            Err(e)
        }
    }
}

/// Copies the batch's slots in order, each as transfers of at most [`IMPORT_BYTES`], until
/// all are sent or [`BATCH_BYTES`] are (at least one slot), then flips those. Returns how
/// many slots (the first ones of `batch`) moved, and their keys.
async fn copy_and_flip(
    node: &Arc<Node>,
    order: &MigrateOrder,
    batch: &[u16],
) -> Result<(usize, u64), HandoffError> {
    let now = now_ms();
    let mut waits = Vec::new();
    let (mut taken, mut keys, mut bytes) = (0usize, 0u64, 0usize);
    for &s in batch {
        if taken > 0 && bytes >= BATCH_BYTES {
            break;
        }
        let encoded = export_encoded(node, s, now).await;
        // Exported while this node owned the slot for sure (frozen, so nothing changed it
        // since), or not sent at all.
        if !node.lease.serving() {
            return Err(HandoffError::NoLease);
        }
        // What the new owner holds in the slot (a stale copy of an earlier attempt) is
        // replaced, not merged with, even when nothing follows (every key deleted since).
        let start = Request::from_args([
            &b"CLUSTER"[..],
            b"IMPORTSTART",
            itoa::Buffer::new().format(s).as_bytes(),
        ]);
        waits.push((
            Sent::ImportStart,
            node.peers
                .send_request(order.to_addr, Protocol::Resp2, &start),
        ));
        for command in encoded.commands {
            waits.push((
                Sent::Data,
                node.peers.send(order.to_addr, Protocol::Resp2, command),
            ));
        }
        taken += 1;
        keys += encoded.keys;
        bytes += encoded.bytes;
    }
    let mut args: Vec<Vec<u8>> = vec![
        b"CLUSTER".to_vec(),
        b"HANDOFF".to_vec(),
        node.node_id.clone().into_bytes(),
    ];
    for &s in &batch[..taken] {
        args.push(s.to_string().into_bytes());
    }
    waits.push((
        Sent::Data,
        node.peers
            .send_request(order.to_addr, Protocol::Resp2, &Request::from_args(args)),
    ));
    for (sent, w) in waits {
        let reply = w.await.map_err(|_| HandoffError::Dropped)??;
        // A receiver of an older version (a rolling upgrade) does not know IMPORTSTART: it
        // merges, as it always did.
        if sent == Sent::ImportStart && reply.starts_with(b"-ERR unknown subcommand") {
            continue;
        }
        if reply.first() == Some(&b'-') {
            return Err(HandoffError::Refused(
                String::from_utf8_lossy(&reply).trim().to_string(),
            ));
        }
    }
    let bytes = bytes as u64;
    node.handoff.progress.bytes_moved.fetch_add(bytes, Relaxed);
    node.handoff
        .progress
        .bytes_sent_total
        .fetch_add(bytes, Relaxed);
    Ok((taken, keys))
}

/// What a request of a batch was, to read its reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// `CLUSTER IMPORTSTART`.
    ImportStart,
    /// `CLUSTER IMPORT` or `CLUSTER HANDOFF`.
    Data,
}

/// `CLUSTER IMPORT key expire_at value [key expire_at value ...]`.
fn encode_import(entries: &[Exported], out: &mut BytesMut) {
    let header = |out: &mut BytesMut, prefix: u8, n: usize| {
        out.extend_from_slice(&[prefix]);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    let bulk = |out: &mut BytesMut, data: &[u8]| {
        header(out, b'$', data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    };
    header(out, b'*', 2 + entries.len() * 3);
    bulk(out, b"CLUSTER");
    bulk(out, b"IMPORT");
    for e in entries {
        bulk(out, &e.key);
        bulk(out, itoa::Buffer::new().format(e.expire_at).as_bytes());
        bulk(out, &e.value);
    }
}

/// Decodes `CLUSTER IMPORT`'s arguments (after the subcommand).
pub fn decode_import(req: &Request) -> Result<Vec<Exported>, Frame> {
    let n = req.len() - 2;
    if !n.is_multiple_of(3) {
        return Err(crate::cmd::wrong_arity("cluster|import"));
    }
    let mut out = Vec::with_capacity(n / 3);
    for i in (2..req.len()).step_by(3) {
        let at = crate::cmd::parse_i64(req.arg(i + 1))
            .filter(|v| *v >= 0)
            .ok_or(crate::cmd::ERR_NOT_INT)?;
        out.push(Exported {
            key: req.arg_bytes(i),
            value: req.arg_bytes(i + 2),
            expire_at: at as u64,
        });
    }
    Ok(out)
}

/// Starts a drain: tells the NameNode we are leaving. Returns false when there is no
/// NameNode to tell.
pub fn start_drain(node: &Node) -> bool {
    let h = &node.handoff;
    if h.draining.swap(true, SeqCst) {
        return true;
    }
    // The drain's report counts the drain only, not earlier moves (joins).
    let p = &h.progress;
    for c in [&p.slots_total, &p.slots_done, &p.keys_moved, &p.bytes_moved] {
        c.store(0, SeqCst);
    }
    *p.started.lock() = Some(Instant::now());
    let ok = h.tell_namenode(DataNodeToNameNode::Leave {
        node_id: NodeId::new(node.node_id.clone()),
    });
    if !ok {
        h.draining.store(false, SeqCst);
    }
    ok
}

/// Called with each table from the NameNode: a draining node that is no longer a member
/// and owns no slot has finished. Every slot it handed over was dropped when the new owner
/// confirmed it; keys still here lie in slots it does not own (copies of an import whose
/// handoff did not complete): dropped too, so the keyspace is empty when it says so.
/// Whether it finished *completely* is [`drain_lost`].
pub fn check_drained(node: &Node, still_member: bool) {
    let h = &node.handoff;
    if !h.draining.load(SeqCst) || still_member || node.routing().my_slot_count() != 0 {
        return;
    }
    let left = node.db.len();
    if left > 0 {
        let _w = h.gate.write();
        for s in 0..SLOT_COUNT as u16 {
            node.db.drop_slot(s);
        }
        debug!(
            keys = left,
            "dropped keys left in slots this node does not own"
        );
    }
    h.drained.send_replace(true);
}

/// Keys a finished drain did not hand over (0: it moved everything).
pub fn drain_lost(node: &Node) -> u64 {
    node.handoff.lost_keys.load(SeqCst)
}

/// A one-line progress report.
pub fn progress_line(node: &Node) -> String {
    let p = &node.handoff.progress;
    let elapsed = p
        .started
        .lock()
        .map_or(Duration::ZERO, |t| t.elapsed())
        .as_secs_f64()
        .max(1e-3);
    let keys = p.keys_moved.load(Relaxed);
    let mb = p.bytes_moved.load(Relaxed) as f64 / (1024.0 * 1024.0);
    format!(
        "slots {}/{} moved, {} keys ({:.0} keys/s, {:.1} MB/s), {} slots still here",
        p.slots_done.load(Relaxed),
        p.slots_total.load(Relaxed),
        keys,
        keys as f64 / elapsed,
        mb / elapsed,
        node.routing().my_slot_count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node on loopback: client port `port`, admin port `port + 1`.
    fn info(id: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
            tls_port: None,
        }
    }

    #[test]
    fn overrides_apply_and_settle() {
        use chkv_common::ring::{Ring, SlotTable};
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        let table: SlotTable = ring.slot_table();
        let infos = vec![info("a", 7000), info("b", 7100)];
        // Node b joined: the table still gives a every slot.
        let base = Routing::from_table(&table, &infos, "b");
        assert_eq!(base.owner(5), Owner::Remote(0));
        assert_eq!(base.my_slot_count(), 0);
        // a handed slot 5 to b: b's override makes it local.
        let mut ov = HashMap::new();
        ov.insert(
            5u16,
            Override {
                from: "a".into(),
                to: None,
                epoch: 1,
            },
        );
        let r = base.with_overrides(&ov, &info("b", 7100));
        assert_eq!(r.owner(5), Owner::Local);
        assert_eq!(r.owner(6), Owner::Remote(0));
        // The table still says a (not caught up): the override stays.
        assert!(!ov[&5].settled_by(Some("a"), "b"));
        // The table says b now: settled. A third owner also settles it (the table wins).
        assert!(ov[&5].settled_by(Some("b"), "b"));
        assert!(ov[&5].settled_by(Some("c"), "b"));
        // On a: the slot was handed to b.
        let on_a = Routing::from_table(&table, &infos, "a");
        let mut ov = HashMap::new();
        ov.insert(
            5u16,
            Override {
                from: "a".into(),
                to: Some(info("b", 7100)),
                epoch: 1,
            },
        );
        let r = on_a.with_overrides(&ov, &info("a", 7000));
        assert_eq!(r.owner(5), Owner::Remote(1));
        assert_eq!(r.addr(1), Some(SocketAddr::from(([127, 0, 0, 1], 7100))));
    }

    /// A table from the NameNode (the agent task) and a handoff flip (a peer connection)
    /// refresh the routing at the same time: whatever the interleaving, the routing installed
    /// last must include every override. (A stress test: the window it guards, between
    /// computing a routing and installing it, is too narrow to hit on every run.)
    #[test]
    fn concurrent_refreshes_keep_every_override() {
        use chkv_common::ring::Ring;
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        let node = Arc::new(Node::new(crate::config::Config {
            node_id: Some("b".into()),
            port: 7100,
            ..crate::config::Config::default()
        }));
        let infos = vec![info("a", 7000), info("b", 7100)];
        let table_at = |epoch: u64| {
            let mut t = ring.slot_table();
            t.set_epoch(epoch);
            Routing::from_table(&t, &infos, "b")
        };
        set_base(&node, table_at(1));
        // Each round races tables from more threads than cores (so some are preempted between
        // computing and installing) against one flip.
        let mut epoch = 1;
        for slot in 0..100u16 {
            let start = Arc::new(std::sync::Barrier::new(5));
            let mut threads = Vec::new();
            for _ in 0..4 {
                epoch += 1;
                let base = table_at(epoch);
                let (node, start) = (node.clone(), start.clone());
                threads.push(std::thread::spawn(move || {
                    start.wait();
                    set_base(&node, base);
                }));
            }
            let (n, st) = (node.clone(), start.clone());
            threads.push(std::thread::spawn(move || {
                st.wait();
                adopt(&n, "a", &[slot]);
            }));
            for t in threads {
                t.join().expect("thread");
            }
            let r = node.routing();
            assert_eq!(
                r.owner(slot),
                Owner::Local,
                "adopted slot {slot} routed away"
            );
            assert_eq!(r.epoch, epoch, "an older table installed last");
        }
    }

    /// A joining node can be handed slots before the NameNode's welcome reaches it (the
    /// migrate order and the welcome travel on different connections). Those adoptions must
    /// survive until the first table: dropped, the node sent clients back to the source, which
    /// sent them back here, until the NameNode published the move.
    #[test]
    fn slots_adopted_before_the_first_table_are_kept() {
        use chkv_common::ring::Ring;
        let node = Node::new(crate::config::Config {
            node_id: Some("b".into()),
            port: 7100,
            ..crate::config::Config::default()
        });
        assert!(node.routing().standalone, "no table yet");
        adopt(&node, "a", &[5, 6, 7]);
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        let mut table = ring.slot_table();
        table.set_epoch(2);
        // The welcome: every slot still a's, as the NameNode has not heard of the move.
        let infos = vec![info("a", 7000), info("b", 7100)];
        assert!(set_base(&node, Routing::from_table(&table, &infos, "b")));
        let r = node.routing();
        for s in [5, 6, 7] {
            assert_eq!(r.owner(s), Owner::Local, "slot {s}");
        }
        assert_eq!(r.owner(8), Owner::Remote(0));
        assert_eq!(r.my_slot_count(), 3);
    }

    /// A slot handed to a node that then left the cluster (declared dead, or drained)
    /// before the NameNode heard of the handoff: the table still names this node, the
    /// override pointed at a node that is gone, and every request for the slot failed for
    /// good. A newer table without that node drops the override. A table no newer than the
    /// order (which may not name a node that is only joining) keeps it.
    #[test]
    fn overrides_towards_a_node_that_left_are_dropped() {
        use chkv_common::ring::Ring;
        let node = Node::new(crate::config::Config {
            node_id: Some("a".into()),
            port: 7000,
            ..crate::config::Config::default()
        });
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        let table_at = |epoch: u64, infos: &[NodeInfo]| {
            let mut t = ring.slot_table();
            t.set_epoch(epoch);
            Routing::from_table(&t, infos, "a")
        };
        let (a, b) = (info("a", 7000), info("b", 7100));
        // Ordered at epoch 5, towards b, which no table names yet (it is joining).
        assert!(set_base(&node, table_at(5, std::slice::from_ref(&a))));
        release(&node, b.clone(), 5, &[7]);
        assert_eq!(node.routing().owner(7), Owner::Remote(1));
        assert!(set_base(&node, table_at(5, std::slice::from_ref(&a))));
        assert_eq!(
            node.routing().owner(7),
            Owner::Remote(1),
            "same epoch: kept"
        );
        // b in the table, the NameNode not yet caught up: kept.
        assert!(set_base(&node, table_at(6, &[a.clone(), b.clone()])));
        assert_eq!(node.routing().owner(7), Owner::Remote(1));
        // b gone from a newer table: the slot is a's again.
        assert!(set_base(&node, table_at(7, std::slice::from_ref(&a))));
        assert_eq!(node.routing().owner(7), Owner::Local);
        assert!(node.handoff.overrides.lock().is_empty());
        // Adoptions are untouched by the rule.
        adopt(&node, "b", &[9]);
        assert!(set_base(&node, table_at(8, std::slice::from_ref(&a))));
        assert_eq!(
            node.handoff.overrides.lock().len(),
            0,
            "settled: the table says a"
        );
    }

    /// A slot given to this node without a handoff (its owner declared dead) held a stale
    /// copy here when an earlier attempt at handing it over imported its entries and never
    /// flipped (the owner's lease lapsed mid-batch, the flip was refused past the retry
    /// budget): served, it answered with values older than writes the old owner
    /// acknowledged, and brought back keys it had deleted. The table that gives the slot
    /// empties it first; slots this node served already, and slots it adopted by a handoff
    /// the table has not caught up with, keep their data.
    #[test]
    fn slots_given_without_a_handoff_are_emptied() {
        use crate::store::{Value, NO_EXPIRY};
        use chkv_common::key_slot;
        use chkv_common::ring::Ring;
        let node = Node::new(crate::config::Config {
            node_id: Some("b".into()),
            port: 7100,
            ..crate::config::Config::default()
        });
        let infos = vec![info("a", 7000), info("b", 7100)];
        let mut ring = Ring::default();
        ring.add(NodeId::new("a"));
        ring.add(NodeId::new("b"));
        let mut table = ring.slot_table();
        table.set_epoch(1);
        assert!(set_base(&node, Routing::from_table(&table, &infos, "b")));
        let r = node.routing();
        let keys: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
        let slot_of = |k: &String| key_slot(k.as_bytes());
        let mine = keys
            .iter()
            .find(|k| r.owner(slot_of(k)) == Owner::Local)
            .expect("a key of b");
        let stale = keys
            .iter()
            .find(|k| r.owner(slot_of(k)) == Owner::Remote(0))
            .expect("a key of a");
        let adopted = keys
            .iter()
            .find(|k| r.owner(slot_of(k)) == Owner::Remote(0) && slot_of(k) != slot_of(stale))
            .expect("a key of a in another slot");
        for k in [mine, stale, adopted] {
            node.db
                .lock_key(k.as_bytes())
                .set(k.as_bytes(), Value::str(b"v"), NO_EXPIRY, 1);
        }
        // a handed `adopted`'s slot over; the NameNode has not published it yet.
        adopt(&node, "a", &[slot_of(adopted)]);
        assert_eq!(node.routing().owner(slot_of(adopted)), Owner::Local);
        // a is declared dead: every slot is b's.
        let mut ring = Ring::default();
        ring.add(NodeId::new("b"));
        let mut table = ring.slot_table();
        table.set_epoch(2);
        assert!(set_base(
            &node,
            Routing::from_table(&table, &infos[1..], "b")
        ));
        let r = node.routing();
        assert_eq!(r.my_slot_count(), SLOT_COUNT);
        assert_eq!(node.db.slot_len(slot_of(stale)), 0, "stale copy served");
        assert_eq!(node.db.slot_len(slot_of(mine)), 1);
        assert_eq!(node.db.slot_len(slot_of(adopted)), 1);
        assert_eq!(node.db.len(), 2);
        // A table that changes nothing for b drops nothing.
        table.set_epoch(3);
        assert!(set_base(
            &node,
            Routing::from_table(&table, &infos[1..], "b")
        ));
        assert_eq!(node.db.len(), 2);
    }

    #[test]
    fn transfers_are_bounded_by_entries_and_bytes() {
        // Entries and bytes within both bounds: one transfer.
        assert_eq!(transfers(&[10, 10, 10], 500, 100), vec![0..3]);
        assert!(transfers(&[], 500, 100).is_empty());
        // Bytes: cut before the entry that would go over.
        assert_eq!(transfers(&[40, 40, 40, 40], 500, 100), vec![0..2, 2..4]);
        assert_eq!(transfers(&[50, 50, 1], 500, 100), vec![0..2, 2..3]);
        // Entries.
        assert_eq!(transfers(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
        // A value larger than a transfer travels alone, whatever surrounds it.
        assert_eq!(
            transfers(&[10, 400, 10, 10, 300], 500, 100),
            vec![0..1, 1..2, 2..4, 4..5]
        );
        // Three 400 MB values under one hash tag (the slot that could never move): three
        // transfers, none above one value, where there used to be one of 1.2 GB.
        let mb = 1 << 20;
        let big = transfers(&[400 * mb; 3], IMPORT_CHUNK, IMPORT_BYTES);
        assert_eq!(big, vec![0..1, 1..2, 2..3]);
        // Many small entries: every transfer within both bounds, every entry once, in order.
        let sizes: Vec<usize> = (0..10_000).map(|i| 100 + (i * 7919) % 50_000).collect();
        let t = transfers(&sizes, IMPORT_CHUNK, IMPORT_BYTES);
        let mut next = 0;
        for r in &t {
            assert_eq!(r.start, next);
            assert!(r.len() <= IMPORT_CHUNK);
            assert!(sizes[r.clone()].iter().sum::<usize>() <= IMPORT_BYTES);
            next = r.end;
        }
        assert_eq!(next, sizes.len());
        // Degenerate bounds still make progress.
        assert_eq!(transfers(&[5, 5], 0, 0), vec![0..1, 1..2]);
    }

    #[test]
    fn import_roundtrip() {
        let entries = vec![
            Exported {
                key: bytes::Bytes::from_static(b"k1"),
                value: bytes::Bytes::from_static(b"v\r\n1"),
                expire_at: 0,
            },
            Exported {
                key: bytes::Bytes::from_static(b""),
                value: bytes::Bytes::from_static(b""),
                expire_at: 1_700_000_000_123,
            },
        ];
        let mut buf = BytesMut::new();
        encode_import(&entries, &mut buf);
        let mut p = crate::resp::Parser::new();
        let req = p
            .next(&mut buf, &crate::resp::Limits::default(), true)
            .expect("parses")
            .expect("complete");
        assert_eq!(decode_import(&req).expect("decodes"), entries);
    }
}
