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
//!    expires on the way is not stored. A value above 4 MB travels in pieces (`CLUSTER
//!    IMPORTPIECE`), each read from the store as it is sent, and a slot is read as it is sent
//!    too, at most 64 MB ahead of the new owner's replies (`PIECE_BYTES` and `WINDOW_BYTES`
//!    in [`crate::migration`]): a slot of any size moves, and neither side holds much more
//!    than that beyond its store.
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
//! orders the move again, to a live node. A batch whose connection fails after its
//! `HANDOFF` was sent stays frozen until the new owner says whether it took the slots
//! (`CLUSTER HANDOFFCHECK`, which also fences a `HANDOFF` still on its way; see `mover`).
//!
//! Here the handoff's state (the gate and the frozen slots, progress, the channels to the
//! NameNode and the migration worker) and its plain-data parts, none of which touches a
//! node or a socket: `mover` (which slots go in which batch, and what a batch does after
//! each attempt), `receiver` (whether a batch's flip is taken), the `CLUSTER IMPORT` and
//! `IMPORTPIECE` encodings. The I/O that carries an order out (export, copy, flip, drain) is
//! [`crate::migration`]; the routing overrides a flip leaves are [`crate::ownership`]'s.

use crate::resp::{Frame, Request};
use crate::store::handoff::{Exported, Piece};
use chkv_common::proto::DataNodeToNameNode;
use chkv_common::ring::NodeId;
use chkv_common::SLOT_COUNT;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

pub(crate) mod mover;
mod receiver;

pub use receiver::{Marks, Receiving};

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
    /// Pieces of values too large for one transfer sent since the node started.
    pub pieces_sent_total: AtomicU64,
}

/// A node's handoff state.
pub struct Handoff {
    /// Read by every local command while it runs; written to freeze slots.
    pub gate: crate::striped::StripedRwLock,
    frozen: [AtomicU64; SLOT_COUNT / 64],
    /// How many bits of `frozen` are set, so that "is any slot frozen?", asked by every
    /// keyed request, is one load instead of a scan of 256 words (about 900 instructions per
    /// request, measured under callgrind).
    frozen_count: AtomicUsize,
    /// Bumped whenever slots are unfrozen; waiting requests watch it.
    unfrozen: watch::Sender<u64>,
    pub draining: AtomicBool,
    pub progress: Progress,
    /// Messages for the NameNode (the agent forwards them).
    to_namenode: Mutex<Option<mpsc::UnboundedSender<DataNodeToNameNode>>>,
    /// The migration worker's queue (see [`crate::migration::enqueue`]).
    pub(crate) orders: Mutex<Option<mpsc::UnboundedSender<MigrateOrder>>>,
    /// Set once a drain has completed: the process should exit.
    pub drained: watch::Sender<bool>,
    /// Keys this node dropped without handing them over while draining: the NameNode
    /// declared it dead mid-drain (a pause, a partition) and gave its slots to others
    /// without their data. A drain that lost any is reported incomplete, never "drained".
    pub lost_keys: AtomicU64,
    /// The fence of the receiving side: bumped by every `CLUSTER HANDOFFCHECK`, and held
    /// while a `HANDOFF` decides and adopts, so a check sees a flip whole or fences it (see
    /// `receiver`).
    pub fence: Mutex<u64>,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            gate: Default::default(),
            frozen: std::array::from_fn(|_| AtomicU64::new(0)),
            frozen_count: AtomicUsize::new(0),
            unfrozen: watch::channel(0).0,
            draining: AtomicBool::new(false),
            progress: Progress::default(),
            to_namenode: Mutex::new(None),
            orders: Mutex::new(None),
            drained: watch::channel(false).0,
            lost_keys: AtomicU64::new(0),
            fence: Mutex::new(0),
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
        self.frozen_count.load(Relaxed) != 0
    }

    /// Freezes or unfreezes `slots`.
    pub(crate) fn set_frozen(&self, slots: &[u16], on: bool) {
        // Under the gate's write side: no local command is running, and none starts before
        // the bits are set.
        let _w = self.gate.write();
        for &s in slots {
            let bit = 1u64 << (s % 64);
            let word = &self.frozen[s as usize / 64];
            let was = if on {
                word.fetch_or(bit, SeqCst)
            } else {
                word.fetch_and(!bit, SeqCst)
            };
            if (was & bit != 0) != on {
                if on {
                    self.frozen_count.fetch_add(1, SeqCst);
                } else {
                    self.frozen_count.fetch_sub(1, SeqCst);
                }
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

    /// Sends `msg` to the NameNode; false when there is no session to send it on.
    pub(crate) fn tell_namenode(&self, msg: DataNodeToNameNode) -> bool {
        self.to_namenode
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(msg).is_ok())
    }
}

/// `CLUSTER IMPORTPIECE key expire_at total offset piece`.
pub(crate) fn encode_piece(p: &Piece) -> bytes::Bytes {
    let (mut e, mut t, mut o) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    chkv_common::resp::command(&[
        &b"CLUSTER"[..],
        b"IMPORTPIECE",
        &p.key,
        e.format(p.expire_at).as_bytes(),
        t.format(p.total).as_bytes(),
        o.format(p.offset).as_bytes(),
        &p.value,
    ])
}

/// Decodes `CLUSTER IMPORTPIECE`'s arguments (after the subcommand).
pub fn decode_piece(req: &Request) -> Result<Piece, Frame> {
    if req.len() != 7 {
        return Err(crate::args::wrong_arity("cluster|importpiece"));
    }
    let number = |i: usize| -> Result<u64, Frame> {
        crate::args::parse_i64(req.arg(i))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or(crate::args::ERR_NOT_INT)
    };
    let size = |i: usize| -> Result<usize, Frame> {
        usize::try_from(number(i)?).map_err(|_| crate::args::ERR_NOT_INT)
    };
    Ok(Piece {
        key: req.arg_bytes(2),
        expire_at: number(3)?,
        total: size(4)?,
        offset: size(5)?,
        value: req.arg_bytes(6),
    })
}

/// `CLUSTER IMPORT key expire_at value [key expire_at value ...]`, in a buffer sized once:
/// a transfer may hold one value of hundreds of megabytes, which a buffer grown by doubling
/// would copy again at every step.
pub(crate) fn encode_import(entries: &[Exported]) -> bytes::Bytes {
    // The expiries' digits, side by side, and where each one is.
    let mut digits = Vec::with_capacity(entries.len() * 13);
    let mut ends = Vec::with_capacity(entries.len());
    for e in entries {
        digits.extend_from_slice(itoa::Buffer::new().format(e.expire_at).as_bytes());
        ends.push(digits.len());
    }
    let mut args: Vec<&[u8]> = Vec::with_capacity(2 + entries.len() * 3);
    args.extend([&b"CLUSTER"[..], b"IMPORT"]);
    let mut start = 0;
    for (e, &end) in entries.iter().zip(&ends) {
        args.extend([&e.key[..], &digits[start..end], &e.value[..]]);
        start = end;
    }
    chkv_common::resp::command(&args)
}

/// Decodes `CLUSTER IMPORT`'s arguments (after the subcommand).
pub fn decode_import(req: &Request) -> Result<Vec<Exported>, Frame> {
    let n = req.len() - 2;
    if !n.is_multiple_of(3) {
        return Err(crate::args::wrong_arity("cluster|import"));
    }
    let mut out = Vec::with_capacity(n / 3);
    for i in (2..req.len()).step_by(3) {
        let at = crate::args::parse_i64(req.arg(i + 1))
            .filter(|v| *v >= 0)
            .ok_or(crate::args::ERR_NOT_INT)?;
        out.push(Exported {
            key: req.arg_bytes(i),
            value: req.arg_bytes(i + 2),
            expire_at: at as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
