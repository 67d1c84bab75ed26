//! The handoff's I/O: a NameNode's order carried out batch by batch (freeze, copy, flip,
//! release: see [`crate::handoff`] for the protocol and what each step guarantees), and
//! draining (`drain`: leaving the cluster once every slot has been handed over). What a
//! batch does next is decided by `crate::handoff::mover`; here it is done.

use crate::cluster::Owner;
use crate::handoff::mover;
use crate::handoff::{encode_import, encode_piece, MigrateOrder};
use crate::node::Node;
use crate::resp::{Protocol, Request};
use crate::store::handoff::{Exported, Item, SlotExport, TOMBSTONE};
use crate::store::now_ms;
use chkv_common::proto::{DataNodeToNameNode, NodeInfo};
use chkv_common::ring::NodeId;
use chkv_common::SLOT_COUNT;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

mod drain;

pub use drain::{check_drained, drain_lost, progress_line, start_drain};

/// Entries per `CLUSTER IMPORT` command at most.
const IMPORT_CHUNK: usize = 500;
/// Bytes of keys and values per `CLUSTER IMPORT` command at most (one entry larger than this
/// travels alone): well below any receiver's query-buffer limit, and short enough on the peer
/// connection that forwarded requests behind it wait milliseconds.
const IMPORT_BYTES: usize = 16 << 20;
/// Bytes of one piece of a value too large to travel whole (see
/// [`crate::store::handoff`]): the peer connection carries forwarded requests too, and a
/// request behind a piece waits for it.
const PIECE_BYTES: usize = 4 << 20;
/// Bytes sent to the new owner and not yet answered, at most (plus one transfer): what a
/// slot's export holds besides the store, whatever the slot's size.
const WINDOW_BYTES: usize = 64 << 20;
/// Bytes a batch exports before it stops taking more slots: the slots it has not exported
/// yet go in the next batch, so a batch holds at most this plus one slot.
const BATCH_BYTES: usize = 16 << 20;
/// Longest wait for the answer to a handoff check before asking again.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// What one entry weighs in a transfer besides its key and value (headers, expiry).
const ENTRY_OVERHEAD: usize = 48;

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
    /// The target left the cluster since the order (its table no longer names it): a
    /// process now at its address is not the one the order was for, and flipping slots to
    /// it, which this node's table would give back to itself at once, made two owners
    /// (found by the simulation, `tests/sim.rs`). The NameNode orders the slots again.
    #[error("the target left the cluster since the order")]
    TargetLeft,
    /// The connection failed after the `HANDOFF` of the first `taken` slots was sent: the
    /// new owner may have taken them or not (see `handoff::mover`).
    #[error("the connection failed after the flip was sent ({cause})")]
    InDoubt {
        taken: usize,
        keys: u64,
        cause: Box<HandoffError>,
    },
}

/// Carries out one order; returns (slots moved, keys moved).
async fn migrate(node: &Arc<Node>, order: &MigrateOrder) -> Result<(usize, u64), HandoffError> {
    let h = &node.handoff;
    let to_info = NodeInfo {
        id: order.to.clone(),
        client_addr: order.to_addr,
        admin_addr: order.to_addr,
        tls_port: order.to_tls_port,
        since: 0,
    };
    let wanted: Vec<u16> = order
        .slots
        .iter()
        .flat_map(|&(a, b)| a..=b)
        .filter(|&s| (s as usize) < SLOT_COUNT)
        .collect();
    // Slots this node handed over already (an order repeated after a timeout) are done;
    // say where each went: perhaps to another node than this order's (an earlier order
    // carried out after the NameNode had given up waiting for it). Slots its table merely
    // gives to another are not reported: that would credit a node with a handoff that
    // never happened, and two nodes whose tables disagreed made the NameNode flip such a
    // slot between them until both served it (found by the simulation, `tests/sim.rs`).
    let routing = node.routing();
    let (mine, elsewhere) = mover::split_order(wanted, |s| match routing.owner(s) {
        Owner::Local => Ok(()),
        _ => Err(node.released_to(s)),
    });
    for (to, slots) in elsewhere {
        report_done_to(node, order.epoch, &slots, NodeId::new(to));
    }
    h.progress.slots_total.fetch_add(mine.len() as u64, Relaxed);
    h.progress.started.lock().get_or_insert_with(Instant::now);
    let mut reports = mover::Reports::default();
    let result = async {
        let (mut slots_moved, mut keys_moved) = (0usize, 0u64);
        let mut batches = mover::Batches::new(mine);
        while let Some(batch) = batches.next(|s| node.db.slot_len(s)) {
            if node.base_table().left(order.to.as_str(), order.epoch) {
                return Err(HandoffError::TargetLeft);
            }
            let (taken, moved) = move_batch(node, order, &to_info, batch, &mut reports).await?;
            batches.took(taken);
            slots_moved += taken;
            keys_moved += moved;
        }
        Ok((slots_moved, keys_moved))
    }
    .await;
    // However the order ended, what moved is reported.
    report_done(node, order, reports.take(Instant::now()));
    result
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

/// Items of a slot's export, encoded: runs of whole entries as `CLUSTER IMPORT` transfers,
/// each piece of a large value as a `CLUSTER IMPORTPIECE`.
#[derive(Default)]
struct Encoded {
    commands: Vec<bytes::Bytes>,
    keys: u64,
    bytes: usize,
    pieces: u64,
}

impl Encoded {
    fn add(&mut self, items: Vec<Item>) {
        let mut run = Vec::new();
        for item in items {
            match item {
                Item::Whole(e) => {
                    if e.expire_at != TOMBSTONE {
                        self.keys += 1;
                    }
                    run.push(e);
                }
                Item::Piece(p) => {
                    self.imports(std::mem::take(&mut run));
                    self.keys += u64::from(p.offset == 0);
                    self.pieces += 1;
                    let command = encode_piece(&p);
                    self.bytes += command.len();
                    self.commands.push(command);
                }
            }
        }
        self.imports(run);
    }

    fn imports(&mut self, entries: Vec<Exported>) {
        let sizes: Vec<usize> = entries
            .iter()
            .map(|e| e.key.len() + e.value.len() + ENTRY_OVERHEAD)
            .collect();
        for range in transfers(&sizes, IMPORT_CHUNK, IMPORT_BYTES) {
            let command = encode_import(&entries[range]);
            self.bytes += command.len();
            self.commands.push(command);
        }
    }
}

/// Runs `work` on a blocking thread: a slot's export copies from the store, and the request
/// workers (and the heartbeats) must not wait behind it.
async fn off_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        // A current-thread runtime (some tests) has no blocking pool to spare a worker for.
        tokio::runtime::RuntimeFlavor::CurrentThread => work(),
        _ => tokio::task::spawn_blocking(work)
            .await
            .expect("export task does not panic"),
    }
}

/// Starts the export of the slots of `batch` in order, until all are started or
/// [`BATCH_BYTES`] are exported (at least one slot), in one trip to the blocking pool (one
/// per slot cost a thread hop per slot while the batch was frozen). What a slot holds
/// beyond the budget, and every value above [`PIECE_BYTES`], is left in its [`SlotExport`]
/// and read from the store as it is sent.
async fn export_batch(node: &Arc<Node>, batch: &[u16], now: u64) -> Vec<(Encoded, SlotExport)> {
    let node = node.clone();
    let batch = batch.to_vec();
    off_workers(move || {
        let mut out = Vec::new();
        let mut bytes = 0;
        for s in batch {
            if !out.is_empty() && bytes >= BATCH_BYTES {
                break;
            }
            let (items, rest) =
                node.db
                    .export_start(s, now, BATCH_BYTES.saturating_sub(bytes), PIECE_BYTES);
            let mut e = Encoded::default();
            e.add(items);
            bytes += e.bytes;
            out.push((e, rest));
        }
        out
    })
    .await
}

/// Tells the NameNode that `slots` (if any) moved to the order's target.
fn report_done(node: &Node, order: &MigrateOrder, slots: Vec<u16>) {
    if !slots.is_empty() {
        report_done_to(node, order.epoch, &slots, order.to.clone());
    }
}

fn report_done_to(node: &Node, epoch: u64, slots: &[u16], to: NodeId) {
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    node.handoff.tell_namenode(DataNodeToNameNode::HandoffDone {
        node_id: NodeId::new(node.node_id.clone()),
        epoch,
        slots: chkv_common::slot::runs(&sorted),
        to: Some(to),
    });
}

/// Moves one batch: executes what [`mover::BatchMove`] decides (freeze, copy and flip,
/// retry, release) and tells it how each attempt ended; the moves are reported through
/// `reports`. Returns how many of its slots (the first ones) moved, and the keys moved.
async fn move_batch(
    node: &Arc<Node>,
    order: &MigrateOrder,
    to: &NodeInfo,
    batch: Vec<u16>,
    reports: &mut mover::Reports,
) -> Result<(usize, u64), HandoffError> {
    use mover::{Action, Attempt};
    let h = &node.handoff;
    let (mut m, first) = mover::BatchMove::start(batch.clone(), Instant::now());
    let mut todo: std::collections::VecDeque<Action> = first.into();
    let mut last_error = None;
    while let Some(action) = todo.pop_front() {
        match action {
            Action::Freeze(slots) => h.set_frozen(&slots, true),
            Action::Copy => {
                let attempt = match copy_and_flip(node, order, &batch).await {
                    Ok((taken, keys)) => Attempt::Moved { taken, keys },
                    Err(e) => {
                        let attempt = match &e {
                            HandoffError::Refused(r)
                                if matches!(
                                    chkv_common::resp::ErrorKind::of_reply(r.as_bytes()),
                                    Some(chkv_common::resp::ErrorKind::TryAgain)
                                ) =>
                            {
                                debug!(to = %order.to, reply = %r, "new owner not ready");
                                Attempt::TryAgain
                            }
                            HandoffError::NoLease => Attempt::NoLease,
                            &HandoffError::InDoubt { taken, keys, .. } => {
                                warn!(to = %order.to, error = %e, "asking the new owner whether it took the batch");
                                Attempt::InDoubt { taken, keys }
                            }
                            _ => Attempt::Failed,
                        };
                        last_error = Some(e);
                        attempt
                    }
                };
                todo.extend(m.on(attempt, Instant::now()));
            }
            Action::Check(slots) => {
                report_done(node, order, reports.take(Instant::now()));
                let answer = if node.base_table().left(order.to.as_str(), order.epoch) {
                    // Twice the lease: the new owner's clock may run slower than ours.
                    mover::Answer::TargetLeft {
                        wait: node.lease.duration() * 2,
                    }
                } else {
                    check_taken(node, order, &slots).await
                };
                debug!(to = %order.to, ?answer, "handoff check");
                todo.extend(m.checked(answer));
            }
            Action::RenewLease => node.lease.wake.notify_one(),
            Action::Wait(d) => {
                report_done(node, order, reports.take(Instant::now()));
                tokio::time::sleep(d).await
            }
            Action::Flip(slots) => node.release(to, order.epoch, &slots),
            Action::Unfreeze(slots) => h.set_frozen(&slots, false),
            Action::DropData(slots) => {
                for s in slots {
                    node.db.drop_slot(s);
                }
            }
            Action::ServeBlocked(slots) => {
                // Writes while frozen could not serve the clients blocked on these slots'
                // keys; the slots stay here, so serve them now.
                node.blocking.slots_unfrozen(&slots);
                crate::cmd::blocking::serve_ready(node);
            }
            Action::ReportDone(slots) => {
                reports.add(slots);
                report_done(node, order, reports.due(Instant::now()));
            }
            Action::Done(Some((taken, keys))) => {
                h.progress.slots_done.fetch_add(taken as u64, Relaxed);
                h.progress.keys_moved.fetch_add(keys, Relaxed);
                h.progress.keys_sent_total.fetch_add(keys, Relaxed);
                return Ok((taken, keys));
            }
            Action::Done(None) => return Err(last_error.unwrap_or(HandoffError::Dropped)),
        }
    }
    // Every path of the machine ends in `Done`.
    Err(last_error.unwrap_or(HandoffError::Dropped))
}

/// Copies the batch's slots in order, each as transfers of at most [`IMPORT_BYTES`], until
/// all are sent or [`BATCH_BYTES`] are (at least one slot), then flips those. Returns how
/// many slots (the first ones of `batch`) moved, and their keys. A slot's export goes on
/// while earlier transfers travel, [`WINDOW_BYTES`] ahead of the replies at most, so what
/// this node holds besides its store stays about that size, whatever the slot's.
async fn copy_and_flip(
    node: &Arc<Node>,
    order: &MigrateOrder,
    batch: &[u16],
) -> Result<(usize, u64), HandoffError> {
    let exported = export_batch(node, batch, now_ms()).await;
    // Exported while this node owned the slots for sure (frozen, so nothing changed them
    // since), or not sent at all; so is every later part of a slot's export.
    if !node.lease.serving() {
        return Err(HandoffError::NoLease);
    }
    let mut sent = InFlight::default();
    let (mut taken, mut keys, mut bytes, mut pieces) = (0usize, 0u64, 0usize, 0u64);
    for (&s, (encoded, mut rest)) in batch.iter().zip(exported) {
        // What the new owner holds in the slot (a stale copy of an earlier attempt) is
        // replaced, not merged with, even when nothing follows (every key deleted since).
        let start = Request::from_args([
            &b"CLUSTER"[..],
            b"IMPORTSTART",
            itoa::Buffer::new().format(s).as_bytes(),
        ]);
        let rx = node
            .peers
            .send_request(order.to_addr, Protocol::Resp2, &start);
        sent.push(Sent::ImportStart, 0, rx);
        let mut encoded = encoded;
        loop {
            (keys, bytes, pieces) = (
                keys + encoded.keys,
                bytes + encoded.bytes,
                pieces + encoded.pieces,
            );
            for command in encoded.commands {
                let n = command.len();
                let rx = node.peers.send(order.to_addr, Protocol::Resp2, command);
                sent.push(Sent::Data, n, rx);
            }
            if rest.is_done() {
                break;
            }
            sent.settle_down_to(WINDOW_BYTES).await?;
            let db = node.clone();
            let items;
            (rest, items) = off_workers(move || {
                let items = db
                    .db
                    .export_more(&mut rest, s, now_ms(), IMPORT_BYTES, PIECE_BYTES);
                (rest, items)
            })
            .await;
            if !node.lease.serving() {
                return Err(HandoffError::NoLease);
            }
            encoded = Encoded::default();
            encoded.add(items);
        }
        taken += 1;
    }
    // The last moment to find the target gone: after the flip, it owns the slots.
    if node.base_table().left(order.to.as_str(), order.epoch) {
        return Err(HandoffError::TargetLeft);
    }
    let mut args: Vec<Vec<u8>> = vec![
        b"CLUSTER".to_vec(),
        b"HANDOFF".to_vec(),
        node.node_id.clone().into_bytes(),
    ];
    for &s in &batch[..taken] {
        args.push(s.to_string().into_bytes());
    }
    let rx = node
        .peers
        .send_request(order.to_addr, Protocol::Resp2, &Request::from_args(args));
    sent.push(Sent::Data, 0, rx);
    // A refusal is certain (the receiver refuses the HANDOFF of a batch with a failed
    // import); a lost connection is not: the HANDOFF may have been read and taken.
    sent.settle_all().await.map_err(|e| match e {
        HandoffError::Peer(_) | HandoffError::Dropped => HandoffError::InDoubt {
            taken,
            keys,
            cause: Box::new(e),
        },
        e => e,
    })?;
    let progress = &node.handoff.progress;
    let bytes = bytes as u64;
    progress.bytes_moved.fetch_add(bytes, Relaxed);
    progress.bytes_sent_total.fetch_add(bytes, Relaxed);
    progress.pieces_sent_total.fetch_add(pieces, Relaxed);
    Ok((taken, keys))
}

/// Asks the new owner how many of `slots` it took from this node (`CLUSTER
/// HANDOFFCHECK`, which fences any `HANDOFF` of them still on its way).
async fn check_taken(node: &Node, order: &MigrateOrder, slots: &[u16]) -> mover::Answer {
    let mut args: Vec<Vec<u8>> = vec![
        b"CLUSTER".to_vec(),
        b"HANDOFFCHECK".to_vec(),
        node.node_id.clone().into_bytes(),
    ];
    args.extend(slots.iter().map(|s| s.to_string().into_bytes()));
    let rx = node
        .peers
        .send_request(order.to_addr, Protocol::Resp2, &Request::from_args(args));
    // Bounded: a new owner that neither answers nor closes (paused, cut off) is asked again
    // after the next look at the table, which may show it gone. A late answer to an
    // earlier check only fences more.
    let Ok(Ok(Ok(reply))) = tokio::time::timeout(CHECK_TIMEOUT, rx).await else {
        return mover::Answer::Unclear;
    };
    // `:N`: all or none are answers; anything else (an error, a receiver too old to know
    // the check, a count in between, which no single HANDOFF leaves) is not.
    match reply_integer(&reply) {
        Some(n) if n == slots.len() as i64 => mover::Answer::Took,
        Some(0) => mover::Answer::NotTaken,
        _ => mover::Answer::Unclear,
    }
}

/// The value of a RESP integer reply (`:N\r\n`).
fn reply_integer(reply: &[u8]) -> Option<i64> {
    let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    chkv_common::resp::parse_int(digits).ok()
}

/// What a request of a batch was, to read its reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// `CLUSTER IMPORTSTART`.
    ImportStart,
    /// `CLUSTER IMPORT`, `IMPORTPIECE` or `HANDOFF`.
    Data,
}

/// A batch's requests whose replies have not been read, in order, and their bytes.
#[derive(Default)]
struct InFlight {
    waits: std::collections::VecDeque<(
        Sent,
        usize,
        tokio::sync::oneshot::Receiver<crate::peer::PeerReply>,
    )>,
    bytes: usize,
}

impl InFlight {
    fn push(
        &mut self,
        sent: Sent,
        bytes: usize,
        rx: tokio::sync::oneshot::Receiver<crate::peer::PeerReply>,
    ) {
        self.bytes += bytes;
        self.waits.push_back((sent, bytes, rx));
    }

    /// Reads replies, oldest first, until at most `limit` bytes are unanswered; the first
    /// error is the batch's.
    async fn settle_down_to(&mut self, limit: usize) -> Result<(), HandoffError> {
        while self.bytes > limit {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Reads every reply still due.
    async fn settle_all(&mut self) -> Result<(), HandoffError> {
        while !self.waits.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Reads the oldest reply due, if any.
    async fn settle_one(&mut self) -> Result<(), HandoffError> {
        let Some((sent, n, rx)) = self.waits.pop_front() else {
            return Ok(());
        };
        self.bytes -= n;
        let reply = rx.await.map_err(|_| HandoffError::Dropped)??;
        // A receiver of an older version (a rolling upgrade) does not know IMPORTSTART: it
        // merges, as it always did.
        if sent == Sent::ImportStart && reply.starts_with(b"-ERR unknown subcommand") {
            return Ok(());
        }
        if reply.first() == Some(&b'-') {
            return Err(HandoffError::Refused(
                String::from_utf8_lossy(&reply).trim().to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
