//! Draining: leaving the cluster once every slot has been handed over, and its progress.

use super::*;
use chkv_common::proto::DataNodeToNameNode;
use chkv_common::ring::NodeId;
use chkv_common::SLOT_COUNT;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};
use tracing::debug;

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
