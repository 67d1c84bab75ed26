//! The consistent-hash ring, and the slot table every router reads from it.
//!
//! Each DataNode places `V` virtual nodes on a 64-bit ring and slot `s` sits at point
//! `s << 50` (= `s * 2^64 / 16384`), owned by the first virtual node clockwise. This is
//! Dynamo's "equal-sized partitions, random tokens": a join or leave only moves the slots next
//! to the changed virtual nodes, and because ownership is per slot it compresses into a
//! [`SlotTable`] of a few thousand runs that fits in one control-plane message. Routers never
//! walk the ring; they index the table, so a lookup is one array read.
//!
//! Virtual-node points are hashed with FNV-1a and a splitmix64 finalizer written out here,
//! never with std's hashers, because NameNode, DataNodes and clients on different machines and
//! Rust versions must agree on every point bit for bit.
//!
//! The ring itself is a [`hashring::HashRing`] keyed by our own points: its hasher is the
//! identity on the single `u64` that a virtual node or a lookup writes, so its "first entry
//! whose key is `>=` the lookup key, wrapping to the first" is exactly the clockwise rule above.
//! `HashRing` finds entries by key alone (a removal takes whichever entry sits on the point), so
//! the ring keeps at most one virtual node per point: on the astronomically rare tie the
//! smallest node id holds the point and the others wait in `shadowed` until it leaves. That
//! keeps ownership a pure function of the membership, whatever order nodes joined in.

use crate::owners::UNOWNED;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;

use hashring::HashRing;
use serde::{Deserialize, Serialize};

use crate::slot::{Slot, SLOT_COUNT};

/// Virtual nodes per DataNode unless configured otherwise: enough that the busiest node of a
/// 3..10 node cluster stays within about 20% of its fair share.
pub const DEFAULT_VNODES: NonZeroU32 = match NonZeroU32::new(256) {
    Some(v) => v,
    None => panic!("256 is not zero"),
};

const _: () = assert!(SLOT_COUNT.is_power_of_two() && SLOT_COUNT <= 1 << 16);

/// Distance between two adjacent slot points: `2^64 / SLOT_COUNT` is `1 << SLOT_SHIFT`.
const SLOT_SHIFT: u32 = 64 - SLOT_COUNT.trailing_zeros();

/// The ring point of `slot`: `slot * 2^64 / 16384`, so slots are spread evenly around the ring.
pub fn slot_point(slot: Slot) -> u64 {
    u64::from(slot.get()) << SLOT_SHIFT
}

/// The ring point of virtual node `index` of `node`: identical on every machine, forever.
///
/// FNV-1a over the id's UTF-8 bytes followed by `index` as four little-endian bytes (a
/// fixed-width suffix, so no two `(id, index)` pairs feed the same bytes), then the splitmix64
/// finalizer, because FNV alone leaves nearby inputs on nearby points.
pub fn vnode_point(node: &NodeId, index: u32) -> u64 {
    let id = fnv1a(FNV_OFFSET, node.as_str().as_bytes());
    mix64(fnv1a(id, &index.to_le_bytes()))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// splitmix64's output function: a bijection on `u64` in which every input bit flips about
/// half of the output bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A DataNode's stable identity: the ring places its virtual nodes by this string, so keeping
/// the id across restarts keeps the node's slots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// The id `id`.
    pub fn new(id: impl Into<String>) -> NodeId {
        NodeId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's text, without copying it.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for NodeId {
    fn from(id: String) -> NodeId {
        NodeId(id)
    }
}

impl From<&str> for NodeId {
    fn from(id: &str) -> NodeId {
        NodeId(id.to_owned())
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Makes `HashRing` key entries by the point they carry instead of hashing them again.
#[derive(Clone, Copy, Debug, Default)]
struct PointHash;

impl BuildHasher for PointHash {
    type Hasher = PointHasher;

    fn build_hasher(&self) -> PointHasher {
        PointHasher(0)
    }
}

/// The identity on the one `u64` that [`VNode`] and [`Point`] write.
struct PointHasher(u64);

impl Hasher for PointHasher {
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    // Only `VNode` and `Point` are ever hashed and both go through `write_u64`; folding stray
    // bytes keeps this total rather than panicking.
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One virtual node as `HashRing` stores it.
#[derive(Clone, Debug)]
struct VNode {
    point: u64,
    node: NodeId,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.point);
    }
}

/// A ring position to look up.
struct Point(u64);

impl Hash for Point {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The consistent-hash ring: which DataNode should own each slot, given the membership.
///
/// The epoch grows by one at each change of membership, so a table built from the ring can be
/// compared with what a node or client last saw.
#[derive(Clone)]
pub struct Ring {
    vnodes_per_node: NonZeroU32,
    nodes: BTreeSet<NodeId>,
    ring: HashRing<VNode, PointHash>,
    /// Points claimed by more than one node: every claimant except the holder (the smallest id).
    shadowed: BTreeMap<u64, BTreeSet<NodeId>>,
    epoch: u64,
    /// [`vnode_point`] except in tests that need ties, which real hashes (almost) never make.
    point_of: fn(&NodeId, u32) -> u64,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring::new(DEFAULT_VNODES)
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("vnodes_per_node", &self.vnodes_per_node)
            .field("epoch", &self.epoch)
            .field("nodes", &self.nodes)
            .field("vnodes", &self.ring.len())
            .field("shadowed", &self.shadowed)
            .finish()
    }
}

impl Ring {
    /// An empty ring at epoch 0 whose nodes each place `vnodes_per_node` virtual nodes.
    pub fn new(vnodes_per_node: NonZeroU32) -> Ring {
        Ring {
            vnodes_per_node,
            nodes: BTreeSet::new(),
            ring: HashRing::with_hasher(PointHash),
            shadowed: BTreeMap::new(),
            epoch: 0,
            point_of: vnode_point,
        }
    }

    #[cfg(test)]
    fn with_point_fn(vnodes_per_node: NonZeroU32, point_of: fn(&NodeId, u32) -> u64) -> Ring {
        Ring {
            point_of,
            ..Ring::new(vnodes_per_node)
        }
    }

    /// Virtual nodes each DataNode places.
    pub fn vnodes_per_node(&self) -> NonZeroU32 {
        self.vnodes_per_node
    }

    /// The ring's epoch: 0 when new, plus one for every effective [`add`](Ring::add) or
    /// [`remove`](Ring::remove).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sets the epoch, e.g. to continue from the newest epoch DataNodes report after a NameNode
    /// restart, so epochs never go backwards.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// The members, sorted by id.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeId> + '_ {
        self.nodes.iter()
    }

    /// Whether `node` is a member.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.nodes.contains(node)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no members (then no slot has an owner).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds `node` and bumps the epoch; `false` (and no change) when it is already a member.
    pub fn add(&mut self, node: NodeId) -> bool {
        if self.nodes.contains(&node) {
            return false;
        }
        let mut placed = Vec::with_capacity(self.vnodes_per_node.get() as usize);
        for point in self.points_of(&node) {
            let newcomer = VNode {
                point,
                node: node.clone(),
            };
            match self.holder_of(point).map(|holder| node < *holder) {
                None => placed.push(newcomer),
                Some(true) => {
                    // `HashRing::remove` takes the entry on the point, whoever it belongs to.
                    if let Some(previous) = self.ring.remove(&newcomer) {
                        self.shadowed
                            .entry(point)
                            .or_default()
                            .insert(previous.node);
                    }
                    placed.push(newcomer);
                }
                Some(false) => {
                    self.shadowed.entry(point).or_default().insert(node.clone());
                }
            }
        }
        // One sort for all the node's points; `HashRing::add` sorts after every insert.
        self.ring.batch_add(placed);
        self.nodes.insert(node);
        self.epoch = self.epoch.saturating_add(1);
        true
    }

    /// Removes `node` and bumps the epoch; `false` (and no change) when it is not a member.
    pub fn remove(&mut self, node: &NodeId) -> bool {
        if !self.nodes.remove(node) {
            return false;
        }
        for point in self.points_of(node) {
            let Some(waiting) = self.shadowed.get_mut(&point) else {
                self.ring.remove(&VNode {
                    point,
                    node: node.clone(),
                });
                continue;
            };
            if !waiting.remove(node) {
                // `node` held the point: the smallest waiting id takes it over.
                let heir = waiting.pop_first();
                self.ring.remove(&VNode {
                    point,
                    node: node.clone(),
                });
                if let Some(heir) = heir {
                    self.ring.add(VNode { point, node: heir });
                }
            }
            if waiting.is_empty() {
                self.shadowed.remove(&point);
            }
        }
        self.epoch = self.epoch.saturating_add(1);
        true
    }

    /// The node that should own `slot`, or `None` when the ring is empty.
    pub fn owner_of(&self, slot: Slot) -> Option<&NodeId> {
        self.ring.get(&Point(slot_point(slot))).map(|v| &v.node)
    }

    /// Every slot's owner, at the ring's epoch.
    pub fn slot_table(&self) -> SlotTable {
        let mut nodes: Vec<NodeId> = Vec::new();
        let mut owners = Vec::with_capacity(SLOT_COUNT);
        let mut last: Option<(&NodeId, u16)> = None;
        for slot in Slot::all() {
            let index = match self.owner_of(slot) {
                None => UNOWNED,
                Some(owner) => match last {
                    Some((id, index)) if id == owner => index,
                    _ => {
                        let index = match nodes.iter().position(|n| n == owner) {
                            Some(i) => i as u16,
                            None => {
                                nodes.push(owner.clone());
                                (nodes.len() - 1) as u16
                            }
                        };
                        last = Some((owner, index));
                        index
                    }
                },
            };
            owners.push(index);
        }
        SlotTable::from_parts(self.epoch, nodes, owners)
    }

    /// The distinct points of `node`'s virtual nodes, ascending.
    fn points_of(&self, node: &NodeId) -> BTreeSet<u64> {
        (0..self.vnodes_per_node.get())
            .map(|i| (self.point_of)(node, i))
            .collect()
    }

    /// The node whose virtual node sits exactly on `point`.
    fn holder_of(&self, point: u64) -> Option<&NodeId> {
        self.ring
            .get(&Point(point))
            .filter(|v| v.point == point)
            .map(|v| &v.node)
    }
}

/// The owner of every slot at one epoch: what the NameNode pushes and what routers index.
///
/// `nodes` lists exactly the nodes that own at least one slot, sorted by id, so two tables with
/// the same owners compare equal. On the wire it is the runs of consecutive slots with the same
/// owner (a few thousand, not 16384 entries); slots in no run have no owner:
///
/// ```json
/// {"epoch":7,"nodes":["dn-a","dn-b"],"ranges":[[0,8191,0],[8192,16383,1]]}
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireTable")]
pub struct SlotTable {
    epoch: u64,
    nodes: Vec<NodeId>,
    /// One entry per slot: an index into `nodes`, or `UNOWNED`.
    owners: Vec<u16>,
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::empty(0)
    }
}

impl fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotTable")
            .field("epoch", &self.epoch)
            .field("nodes", &self.nodes)
            .field("runs", &self.ranges().len())
            .field("assigned_slots", &self.assigned_slots())
            .finish()
    }
}

impl SlotTable {
    /// A table at `epoch` in which no slot has an owner.
    pub fn empty(epoch: u64) -> SlotTable {
        SlotTable {
            epoch,
            nodes: Vec::new(),
            owners: vec![UNOWNED; SLOT_COUNT],
        }
    }

    /// Normalises `nodes` (drops unused ones, sorts by id) and remaps `owners` to match.
    /// `nodes` must not repeat an id and `owners` must hold `SLOT_COUNT` valid entries.
    fn from_parts(epoch: u64, nodes: Vec<NodeId>, mut owners: Vec<u16>) -> SlotTable {
        debug_assert_eq!(owners.len(), SLOT_COUNT);
        let mut used = vec![false; nodes.len()];
        for &owner in &owners {
            if owner != UNOWNED {
                used[owner as usize] = true;
            }
        }
        let mut keep: Vec<usize> = (0..nodes.len()).filter(|&i| used[i]).collect();
        keep.sort_by(|&a, &b| nodes[a].cmp(&nodes[b]));
        let mut remap = vec![UNOWNED; nodes.len()];
        for (new, &old) in keep.iter().enumerate() {
            remap[old] = new as u16;
        }
        for owner in &mut owners {
            if *owner != UNOWNED {
                *owner = remap[*owner as usize];
            }
        }
        let mut nodes: Vec<Option<NodeId>> = nodes.into_iter().map(Some).collect();
        let nodes = keep.iter().filter_map(|&i| nodes[i].take()).collect();
        SlotTable {
            epoch,
            nodes,
            owners,
        }
    }

    /// The epoch this table belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sets the epoch, e.g. when a handoff flips a few slots and publishes the result.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// The nodes owning at least one slot, sorted by id; [`ranges`](SlotTable::ranges) indexes
    /// into this.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The owner of `slot`, or `None` when nobody owns it.
    pub fn owner(&self, slot: Slot) -> Option<&NodeId> {
        self.nodes.get(self.owners[slot.index()] as usize)
    }

    /// Maximal runs of consecutive slots with the same owner, in slot order:
    /// `(first slot, last slot, index into nodes())`. Unowned slots are in no run.
    pub fn ranges(&self) -> Vec<(u16, u16, u16)> {
        crate::owners::runs_of(&self.owners)
    }

    /// The runs of slots `node` owns, as inclusive `(first, last)` pairs in slot order.
    pub fn ranges_of(&self, node: &NodeId) -> Vec<(u16, u16)> {
        match self.index_of(node) {
            Some(index) => self
                .ranges()
                .into_iter()
                .filter(|&(_, _, owner)| owner == index)
                .map(|(start, end, _)| (start, end))
                .collect(),
            None => Vec::new(),
        }
    }

    /// How many slots `node` owns.
    pub fn slots_of(&self, node: &NodeId) -> usize {
        self.index_of(node).map_or(0, |index| {
            self.owners.iter().filter(|&&o| o == index).count()
        })
    }

    /// How many slots have an owner (16384 for a table built from a non-empty ring).
    pub fn assigned_slots(&self) -> usize {
        self.owners.iter().filter(|&&o| o != UNOWNED).count()
    }

    /// Gives the slots `slots` to `owner` (or to nobody), e.g. when a handoff of those slots
    /// completes or when the NameNode rebuilds a table from what DataNodes report.
    pub fn assign(&mut self, slots: RangeInclusive<Slot>, owner: Option<&NodeId>) {
        let (start, end) = (slots.start().index(), slots.end().index());
        if start > end {
            return;
        }
        let mut nodes = std::mem::take(&mut self.nodes);
        let index = match owner {
            None => UNOWNED,
            Some(owner) => match nodes.binary_search(owner) {
                Ok(i) => i as u16,
                Err(_) => {
                    // At most SLOT_COUNT nodes own a slot, so the index fits below UNOWNED.
                    nodes.push(owner.clone());
                    (nodes.len() - 1) as u16
                }
            },
        };
        let mut owners = std::mem::take(&mut self.owners);
        owners[start..=end].fill(index);
        *self = SlotTable::from_parts(self.epoch, nodes, owners);
    }

    /// Gives each listed slot to its owner (or to nobody) in one pass: the table is
    /// renormalised once, not once per slot as repeated [`assign`](SlotTable::assign) would.
    pub fn assign_each<'a>(&mut self, moves: impl IntoIterator<Item = (Slot, Option<&'a NodeId>)>) {
        let mut nodes = std::mem::take(&mut self.nodes);
        let mut owners = std::mem::take(&mut self.owners);
        for (slot, owner) in moves {
            let index = match owner {
                None => UNOWNED,
                Some(owner) => match nodes.iter().position(|n| n == owner) {
                    Some(i) => i as u16,
                    None => {
                        nodes.push(owner.clone());
                        (nodes.len() - 1) as u16
                    }
                },
            };
            owners[slot.index()] = index;
        }
        *self = SlotTable::from_parts(self.epoch, nodes, owners);
    }

    /// The slots whose owner differs between `self` and `next`, as maximal runs of consecutive
    /// slots with the same move, in slot order.
    pub fn diff(&self, next: &SlotTable) -> Vec<SlotMove> {
        let mut moves: Vec<SlotMove> = Vec::new();
        for slot in Slot::all() {
            let (from, to) = (self.owner(slot), next.owner(slot));
            if from == to {
                continue;
            }
            match moves.last_mut() {
                Some(last)
                    if last.end.get() + 1 == slot.get()
                        && last.from.as_ref() == from
                        && last.to.as_ref() == to =>
                {
                    last.end = slot;
                }
                _ => moves.push(SlotMove {
                    start: slot,
                    end: slot,
                    from: from.cloned(),
                    to: to.cloned(),
                }),
            }
        }
        moves
    }

    fn index_of(&self, node: &NodeId) -> Option<u16> {
        self.nodes.binary_search(node).ok().map(|i| i as u16)
    }
}

/// A run of consecutive slots changing owner between two tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMove {
    /// First slot of the run.
    pub start: Slot,
    /// Last slot of the run (inclusive).
    pub end: Slot,
    /// Owner in the older table (`None`: unowned).
    pub from: Option<NodeId>,
    /// Owner in the newer table (`None`: unowned).
    pub to: Option<NodeId>,
}

impl SlotMove {
    /// Number of slots in the run.
    pub fn slot_count(&self) -> usize {
        self.end.index() - self.start.index() + 1
    }
}

/// Why a slot table received from the wire was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotTableError {
    /// A run ends before it starts or past the last slot.
    #[error("slot range {start}-{end} is reversed or past slot {}", SLOT_COUNT - 1)]
    BadRange { start: u16, end: u16 },
    /// Two runs cover the same slot.
    #[error("slot {slot} is assigned twice")]
    Overlap { slot: u16 },
    /// A run names a node index past the end of `nodes`.
    #[error("slot range {start}-{end} names node {index}, but only {count} nodes are listed")]
    UnknownNode {
        start: u16,
        end: u16,
        index: u16,
        count: usize,
    },
    /// The same node id is listed twice.
    #[error("node {0} is listed twice")]
    DuplicateNode(NodeId),
    /// More nodes than a `u16` index can name.
    #[error("{0} nodes listed, at most {max} fit", max = UNOWNED)]
    TooManyNodes(usize),
}

/// The serialized form of [`SlotTable`].
#[derive(Deserialize)]
struct WireTable {
    epoch: u64,
    nodes: Vec<NodeId>,
    ranges: Vec<(u16, u16, u16)>,
}

#[derive(Serialize)]
struct WireTableRef<'a> {
    epoch: u64,
    nodes: &'a [NodeId],
    ranges: Vec<(u16, u16, u16)>,
}

impl Serialize for SlotTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireTableRef {
            epoch: self.epoch,
            nodes: &self.nodes,
            ranges: self.ranges(),
        }
        .serialize(serializer)
    }
}

impl TryFrom<WireTable> for SlotTable {
    type Error = SlotTableError;

    fn try_from(wire: WireTable) -> Result<SlotTable, SlotTableError> {
        if wire.nodes.len() > UNOWNED as usize {
            return Err(SlotTableError::TooManyNodes(wire.nodes.len()));
        }
        let mut seen = BTreeSet::new();
        for node in &wire.nodes {
            if !seen.insert(node) {
                return Err(SlotTableError::DuplicateNode(node.clone()));
            }
        }
        let mut owners = vec![UNOWNED; SLOT_COUNT];
        for &(start, end, index) in &wire.ranges {
            if start > end || end as usize >= SLOT_COUNT {
                return Err(SlotTableError::BadRange { start, end });
            }
            if index as usize >= wire.nodes.len() {
                return Err(SlotTableError::UnknownNode {
                    start,
                    end,
                    index,
                    count: wire.nodes.len(),
                });
            }
            for (slot, owner) in owners[start as usize..=end as usize].iter_mut().enumerate() {
                if *owner != UNOWNED {
                    return Err(SlotTableError::Overlap {
                        slot: start + slot as u16,
                    });
                }
                *owner = index;
            }
        }
        Ok(SlotTable::from_parts(wire.epoch, wire.nodes, owners))
    }
}

#[cfg(test)]
mod tests;
