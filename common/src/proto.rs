//! Control-plane messages between the NameNode, the DataNodes and clients.
//!
//! Each message is one JSON object on one line, tagged by a `"type"` field, so `nc` or telnet
//! on a control port shows the conversation as it happens and an operator can type a message by
//! hand. There is one enum per direction: a receiver decodes only what may be sent to it, and
//! its `match` is exhaustive.
//!
//! The first message on a connection (`register`, `welcome`, `watch`) carries the
//! [`PROTOCOL_VERSION`]; later messages ride on that handshake. Every message that depends on
//! the ring carries its epoch, so a receiver that has seen a newer epoch knows to ignore or
//! refresh. Unknown fields are ignored, so adding an optional field is compatible; an unknown
//! `type` is a decode error the receiver logs before closing the connection.
//!
//! # Wire examples
//!
//! Exactly what [`encode_line`] writes (a test decodes each line below and re-encodes it byte
//! for byte). Slot ranges are inclusive `[first, last]` pairs; a [`SlotTable`] is sent as its
//! runs `[first, last, index into nodes]`.
//!
//! ## DataNode -> NameNode
//!
//! ```text
//! {"type":"register","version":1,"node_id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000","epoch_seen":0}
//! {"type":"register","version":1,"node_id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000","epoch_seen":6,"owned_slots":[[0,8191]],"leased":true}
//! {"type":"register","version":1,"node_id":"dn-b","client_addr":"10.0.0.8:10100","admin_addr":"127.0.0.1:20000","epoch_seen":9,"owned_slots":[[5000,16383]],"leased":true,"life":4021,"since":[["dn-a",7],["dn-b",9]],"suspects":["dn-c"]}
//! {"type":"heartbeat","node_id":"dn-a","epoch":7,"keys":120000,"used_memory":73400320,"ops":5400}
//! {"type":"heartbeat","node_id":"dn-a","epoch":7,"keys":120000,"used_memory":73400320,"ops":5400,"seq":31}
//! {"type":"suspects_ack","node_id":"dn-a","version":3}
//! {"type":"pong","node_id":"dn-a","nonce":42}
//! {"type":"handoff_progress","node_id":"dn-a","epoch":8,"slots_done":12,"slots_total":40,"keys_moved":3100}
//! {"type":"handoff_done","node_id":"dn-a","epoch":8,"slots":[[5000,5039]]}
//! {"type":"leave","node_id":"dn-a"}
//! ```
//!
//! ## NameNode -> DataNode
//!
//! ```text
//! {"type":"welcome","version":1,"epoch":7,"table":{"epoch":7,"nodes":["dn-a","dn-b"],"ranges":[[0,8191,0],[8192,16383,1]]},"nodes":[{"id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000"},{"id":"dn-b","client_addr":"10.0.0.8:10100","admin_addr":"127.0.0.1:20000"}]}
//! {"type":"welcome","version":1,"epoch":7,"table":{"epoch":7,"nodes":["dn-a"],"ranges":[[0,16383,0]]},"nodes":[{"id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000"}],"lease_ms":3000,"suspects":{"version":2,"nodes":["dn-c"]},"flush":[[0,16383]]}
//! {"type":"table","epoch":9,"table":{"epoch":9,"nodes":["dn-a","dn-b"],"ranges":[[0,4999,0],[5000,16383,1]]},"nodes":[{"id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000"},{"id":"dn-b","client_addr":"10.0.0.8:10100","admin_addr":"127.0.0.1:20000"}]}
//! {"type":"table","epoch":9,"table":{"epoch":9,"nodes":["dn-a","dn-b"],"ranges":[[0,4999,0],[5000,16383,1]]},"nodes":[{"id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000","since":7},{"id":"dn-b","client_addr":"10.0.0.8:10100","admin_addr":"127.0.0.1:20000","since":9}],"life":4021}
//! {"type":"migrate","epoch":8,"slots":[[5000,5039]],"to":"dn-b","to_addr":"10.0.0.8:10100"}
//! {"type":"ping","nonce":42}
//! {"type":"lease","seq":31}
//! {"type":"suspects","version":3,"nodes":["dn-c"]}
//! {"type":"drain"}
//! {"type":"error","message":"unsupported protocol version 2 (this node speaks 1)"}
//! ```
//!
//! ## Client -> NameNode
//!
//! ```text
//! {"type":"watch","version":1}
//! ```
//!
//! ## NameNode -> Client
//!
//! ```text
//! {"type":"table","epoch":9,"table":{"epoch":9,"nodes":["dn-a","dn-b"],"ranges":[[0,4999,0],[5000,16383,1]]},"nodes":[{"id":"dn-a","client_addr":"10.0.0.7:10100","admin_addr":"127.0.0.1:20000"},{"id":"dn-b","client_addr":"10.0.0.8:10100","admin_addr":"127.0.0.1:20000"}]}
//! ```

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ring::{NodeId, SlotTable};
use crate::slot::Slot;

/// The control-plane protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line a reader should accept. A table of 16384 one-slot runs is about 330 KB, so
/// this leaves room for the node list while keeping a broken peer from exhausting memory.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Largest epoch a process accepts from a peer. Epochs count tables (one per membership or
/// handoff change), so 2^48 is thousands of years of changes; anything above it is a broken
/// or hostile peer, and refusing it keeps `epoch + 1` from ever overflowing.
pub const MAX_EPOCH: u64 = 1 << 48;

/// Most members a `register` may list in `since`: a table cannot name more owners than
/// there are slots, and a longer list is a broken or hostile peer.
pub const MAX_REPORTED_MEMBERS: usize = crate::SLOT_COUNT;

/// Refuses an epoch above [`MAX_EPOCH`].
pub fn check_epoch(epoch: u64) -> Result<u64, ProtoError> {
    if epoch <= MAX_EPOCH {
        Ok(epoch)
    } else {
        Err(ProtoError::Epoch(epoch))
    }
}

/// Where a DataNode can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's stable id, as on the ring.
    pub id: NodeId,
    /// RESP port for clients and for forwarded requests.
    pub client_addr: SocketAddr,
    /// Admin port (plain text lines, e.g. `k` to drain).
    pub admin_addr: SocketAddr,
    /// TLS port on `client_addr`'s host, when the node has one (`tls-port`): for TLS
    /// clients, and the port its peers must use when the cluster runs with `tls-cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<u16>,
    /// In a NameNode's tables: the epoch from which the node has been a member without a
    /// break in this NameNode life (every order towards it carries this epoch or a later
    /// one, and no table it held before joining is numbered as high). A node declared dead
    /// and back is a member anew, with a later one. 0 where unknown (in a registration, or
    /// from an older NameNode).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: u64,
}

impl NodeInfo {
    /// The node's TLS address: `client_addr`'s host and the TLS port.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port
            .map(|p| SocketAddr::new(self.client_addr.ip(), p))
    }
}

/// DataNode -> NameNode (registration port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataNodeToNameNode {
    /// First message on a connection: join the ring, or rejoin it after either side restarted.
    Register {
        version: u32,
        node_id: NodeId,
        client_addr: SocketAddr,
        admin_addr: SocketAddr,
        /// The node's TLS port (see [`NodeInfo::tls_port`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_port: Option<u16>,
        /// Newest table epoch the node has applied (0 when it has none).
        epoch_seen: u64,
        /// Slot ranges the node believes it owns, so a restarted NameNode can rebuild the table
        /// from what DataNodes report; absent for a node that owns nothing yet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owned_slots: Option<Vec<(u16, u16)>>,
        /// The node fences itself with ownership leases: the NameNode then waits out its
        /// lease before giving its slots to others.
        #[serde(default, skip_serializing_if = "is_false")]
        leased: bool,
        /// The node is draining (it sent `leave` in an earlier session): it rejoins as a
        /// draining member, outside the ring.
        #[serde(default, skip_serializing_if = "is_false")]
        draining: bool,
        /// The NameNode life whose table `epoch_seen` is (its `life`; 0: unknown).
        #[serde(default, skip_serializing_if = "is_zero")]
        life: u64,
        /// That table's members and their `since` (those it gives one), at most
        /// [`MAX_REPORTED_MEMBERS`]: from them a restarted NameNode tells a member that was
        /// merely a table behind from one declared dead since its table.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        since: Vec<(NodeId, u64)>,
        /// The suspects list the node holds (from the NameNode that last sent one), at most
        /// [`MAX_REPORTED_MEMBERS`]: a restarted NameNode does not believe the claims of a
        /// node another one reports on it (it may have been declared dead since).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suspects: Vec<NodeId>,
    },
    /// Sent every heartbeat interval; missing ones make the NameNode probe the node.
    Heartbeat {
        node_id: NodeId,
        /// Newest table epoch the node has applied; an older one gets the table resent.
        epoch: u64,
        keys: u64,
        used_memory: u64,
        ops: u64,
        /// Numbers this heartbeat so the NameNode's [`NameNodeToDataNode::Lease`] answer can
        /// be matched to the moment it was sent (0: no lease asked for).
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
    },
    /// The node recorded the suspects list `version` (and refuses lease grants to every node
    /// on it from now on).
    SuspectsAck { node_id: NodeId, version: u64 },
    /// Answer to [`NameNodeToDataNode::Ping`], echoing its nonce.
    Pong { node_id: NodeId, nonce: u64 },
    /// How far the handoff ordered at `epoch` has got.
    HandoffProgress {
        node_id: NodeId,
        epoch: u64,
        slots_done: u32,
        slots_total: u32,
        keys_moved: u64,
    },
    /// These slots of the handoff ordered at `epoch` are at their new owner and may flip.
    HandoffDone {
        node_id: NodeId,
        epoch: u64,
        slots: Vec<(u16, u16)>,
        /// The node the slots were handed to (absent from older DataNodes). It can differ
        /// from the current order's target: a move re-ordered after a timeout may already
        /// have been carried out towards the first target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<NodeId>,
    },
    /// The node asks to leave the ring (a drain); its slots get new owners first.
    Leave { node_id: NodeId },
}

/// NameNode -> DataNode, on the connection the DataNode registered on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NameNodeToDataNode {
    /// Accepts a registration, with the current table. `epoch` equals `table.epoch()`.
    Welcome {
        version: u32,
        epoch: u64,
        table: SlotTable,
        nodes: Vec<NodeInfo>,
        /// The ownership lease every DataNode holds, in milliseconds (0: no leases; the node
        /// serves its slots without one, as before leases existed).
        #[serde(default, skip_serializing_if = "is_zero")]
        lease_ms: u64,
        /// Nodes this one must not grant leases to, recorded before the table is installed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suspects: Option<Suspects>,
        /// Slot ranges whose data the node must drop before serving anything: slots it
        /// claims but lost without a handoff (it was declared dead, or a newer claim won).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flush: Vec<(u16, u16)>,
        /// The NameNode life that numbered the table: a number it drew when it started
        /// (0: none), so epochs of two lives are never taken for one another.
        #[serde(default, skip_serializing_if = "is_zero")]
        life: u64,
    },
    /// A new table. `epoch` equals `table.epoch()`.
    Table {
        epoch: u64,
        table: SlotTable,
        nodes: Vec<NodeInfo>,
        /// As in `welcome`.
        #[serde(default, skip_serializing_if = "is_zero")]
        life: u64,
    },
    /// Stream `slots` to `to`, which owns them in the ring at `epoch`.
    Migrate {
        epoch: u64,
        slots: Vec<(u16, u16)>,
        to: NodeId,
        to_addr: SocketAddr,
        /// `to`'s TLS port, for a cluster that runs with `tls-cluster`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_tls_port: Option<u16>,
    },
    /// Liveness probe after missed heartbeats; answer with `pong`.
    Ping { nonce: u64 },
    /// Grants the ownership lease for the heartbeat numbered `seq`: the node may serve its
    /// slots until the moment that heartbeat was sent plus the lease duration.
    Lease { seq: u64 },
    /// The nodes being fenced (silent, about to lose their slots): refuse them lease grants
    /// and answer `suspects_ack` with the version. Replaces the previous list.
    Suspects(Suspects),
    /// An operator asked (through the NameNode's HTTP API) for this node to drain: it starts
    /// a drain as its admin port's `k` does, answering with `leave`.
    Drain,
    /// The NameNode refused the last message (e.g. a version it does not speak).
    Error { message: String },
}

/// The list of nodes DataNodes must refuse lease grants to, numbered so acknowledgements
/// can say which list they recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspects {
    pub version: u64,
    pub nodes: Vec<NodeId>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl NameNodeToDataNode {
    /// A `welcome` carrying `table`, its epoch copied to the message, without lease fields.
    pub fn welcome(table: SlotTable, nodes: Vec<NodeInfo>) -> NameNodeToDataNode {
        NameNodeToDataNode::Welcome {
            version: PROTOCOL_VERSION,
            epoch: table.epoch(),
            table,
            nodes,
            lease_ms: 0,
            suspects: None,
            flush: Vec::new(),
            life: 0,
        }
    }

    /// A `table` push of the NameNode life `life`, its epoch copied from `table`.
    pub fn table(table: SlotTable, nodes: Vec<NodeInfo>, life: u64) -> NameNodeToDataNode {
        NameNodeToDataNode::Table {
            epoch: table.epoch(),
            table,
            nodes,
            life,
        }
    }
}

/// Client -> NameNode (watch port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientToNameNode {
    /// Send me the current table now and every new one on this connection.
    Watch { version: u32 },
}

/// NameNode -> client, on a watch connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NameNodeToClient {
    /// The current table. `epoch` equals `table.epoch()`.
    Table {
        epoch: u64,
        table: SlotTable,
        nodes: Vec<NodeInfo>,
    },
}

impl NameNodeToClient {
    /// A `table` push, its epoch copied from `table`.
    pub fn table(table: SlotTable, nodes: Vec<NodeInfo>) -> NameNodeToClient {
        NameNodeToClient::Table {
            epoch: table.epoch(),
            table,
            nodes,
        }
    }
}

/// Why a control message could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Serialization failed; a bug on this side, not the peer's.
    #[error("cannot encode control message: {0}")]
    Encode(serde_json::Error),
    /// The line is not a message of the expected direction (bad JSON, unknown `type`, missing
    /// or mistyped field). Retrying will not help: log it and close the connection.
    #[error("malformed control message: {0}")]
    Malformed(serde_json::Error),
    /// The line exceeds [`MAX_LINE_BYTES`]; the peer is broken or hostile.
    #[error("control line of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {theirs} (this node speaks {ours})")]
    Version { theirs: u32, ours: u32 },
    /// An epoch no real cluster reaches (see [`MAX_EPOCH`]).
    #[error("epoch {0} is beyond any real cluster's (max {MAX_EPOCH})")]
    Epoch(u64),
    /// A slot range is reversed or past the last slot.
    #[error("bad slot range {start}-{end}")]
    SlotRange { start: u16, end: u16 },
}

/// `message` as one JSON line, newline included. JSON escapes newlines inside strings, so the
/// only newline is the terminator.
pub fn encode_line<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtoError> {
    let mut line = serde_json::to_vec(message).map_err(ProtoError::Encode)?;
    line.push(b'\n');
    Ok(line)
}

/// Decodes one line (a trailing `\n` or `\r\n` is fine, so is a line typed into telnet).
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, ProtoError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ProtoError::TooLong {
            len: line.len(),
            max: MAX_LINE_BYTES,
        });
    }
    serde_json::from_slice(line).map_err(ProtoError::Malformed)
}

/// Accepts a peer's handshake `version` when this build speaks it.
pub fn check_version(theirs: u32) -> Result<(), ProtoError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtoError::Version {
            theirs,
            ours: PROTOCOL_VERSION,
        })
    }
}

/// Checks slot ranges received from a peer and types them.
pub fn slot_ranges(ranges: &[(u16, u16)]) -> Result<Vec<RangeInclusive<Slot>>, ProtoError> {
    ranges
        .iter()
        .map(|&(start, end)| match (Slot::new(start), Slot::new(end)) {
            (Some(first), Some(last)) if start <= end => Ok(first..=last),
            _ => Err(ProtoError::SlotRange { start, end }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test addresses are valid")
    }

    fn table() -> SlotTable {
        let mut ring = crate::ring::Ring::new(crate::ring::DEFAULT_VNODES);
        ring.add(NodeId::from("dn-a"));
        ring.add(NodeId::from("dn-b"));
        ring.set_epoch(9);
        ring.slot_table()
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![
            NodeInfo {
                id: NodeId::from("dn-a"),
                client_addr: addr("10.0.0.7:10100"),
                admin_addr: addr("[::1]:20000"),
                tls_port: None,
                since: 0,
            },
            NodeInfo {
                id: NodeId::from("dn-b"),
                client_addr: addr("10.0.0.8:10100"),
                admin_addr: addr("10.0.0.8:20000"),
                tls_port: Some(16380),
                since: 12,
            },
        ]
    }

    fn datanode_messages() -> Vec<DataNodeToNameNode> {
        let node_id = NodeId::from("dn-a");
        vec![
            DataNodeToNameNode::Register {
                version: PROTOCOL_VERSION,
                node_id: node_id.clone(),
                client_addr: addr("10.0.0.7:10100"),
                admin_addr: addr("127.0.0.1:20000"),
                tls_port: None,
                epoch_seen: 0,
                owned_slots: None,
                leased: false,
                draining: false,
                life: 0,
                since: Vec::new(),
                suspects: Vec::new(),
            },
            DataNodeToNameNode::Register {
                version: PROTOCOL_VERSION,
                node_id: node_id.clone(),
                client_addr: addr("[2001:db8::7]:10100"),
                admin_addr: addr("127.0.0.1:20000"),
                tls_port: Some(16380),
                epoch_seen: 6,
                owned_slots: Some(vec![(0, 99), (200, 16383)]),
                leased: true,
                draining: true,
                life: u64::MAX,
                since: vec![(NodeId::from("dn-a"), 6), (NodeId::from("dn-b"), 1)],
                suspects: vec![NodeId::from("dn-c")],
            },
            DataNodeToNameNode::Heartbeat {
                node_id: node_id.clone(),
                epoch: 7,
                keys: u64::MAX,
                used_memory: 1 << 40,
                ops: 0,
                seq: 0,
            },
            DataNodeToNameNode::Heartbeat {
                node_id: node_id.clone(),
                epoch: 7,
                keys: 1,
                used_memory: 2,
                ops: 3,
                seq: u64::MAX,
            },
            DataNodeToNameNode::SuspectsAck {
                node_id: node_id.clone(),
                version: 9,
            },
            DataNodeToNameNode::Pong {
                node_id: node_id.clone(),
                nonce: 42,
            },
            DataNodeToNameNode::HandoffProgress {
                node_id: node_id.clone(),
                epoch: 8,
                slots_done: 1,
                slots_total: 2,
                keys_moved: 3,
            },
            DataNodeToNameNode::HandoffDone {
                node_id: node_id.clone(),
                epoch: 8,
                slots: vec![(5000, 5039)],
                to: Some(NodeId::new("b")),
            },
            DataNodeToNameNode::Leave { node_id },
        ]
    }

    fn namenode_messages() -> Vec<NameNodeToDataNode> {
        vec![
            NameNodeToDataNode::welcome(table(), nodes()),
            NameNodeToDataNode::welcome(SlotTable::empty(0), Vec::new()),
            NameNodeToDataNode::Welcome {
                version: PROTOCOL_VERSION,
                epoch: 9,
                table: table(),
                nodes: nodes(),
                lease_ms: 600,
                suspects: Some(Suspects {
                    version: 4,
                    nodes: vec![NodeId::from("dn-b")],
                }),
                flush: vec![(0, 16383)],
                life: 77,
            },
            NameNodeToDataNode::table(table(), nodes(), 0),
            NameNodeToDataNode::table(table(), nodes(), 4021),
            NameNodeToDataNode::Migrate {
                epoch: 8,
                slots: vec![(5000, 5039), (7000, 7000)],
                to: NodeId::from("dn-b"),
                to_addr: addr("10.0.0.8:10100"),
                to_tls_port: Some(16380),
            },
            NameNodeToDataNode::Ping { nonce: u64::MAX },
            NameNodeToDataNode::Lease { seq: 17 },
            NameNodeToDataNode::Suspects(Suspects::default()),
            NameNodeToDataNode::Suspects(Suspects {
                version: 3,
                nodes: vec![NodeId::from("dn-b"), NodeId::from("dn-c")],
            }),
            NameNodeToDataNode::Drain,
            NameNodeToDataNode::Error {
                message: "line one\nline \"two\"".into(),
            },
        ]
    }

    /// Fails to compile when a variant is added, pointing here to give it an example and a
    /// round-trip case.
    fn type_name_dn(m: &DataNodeToNameNode) -> &'static str {
        match m {
            DataNodeToNameNode::Register { .. } => "register",
            DataNodeToNameNode::Heartbeat { .. } => "heartbeat",
            DataNodeToNameNode::SuspectsAck { .. } => "suspects_ack",
            DataNodeToNameNode::Pong { .. } => "pong",
            DataNodeToNameNode::HandoffProgress { .. } => "handoff_progress",
            DataNodeToNameNode::HandoffDone { .. } => "handoff_done",
            DataNodeToNameNode::Leave { .. } => "leave",
        }
    }

    fn type_name_nn(m: &NameNodeToDataNode) -> &'static str {
        match m {
            NameNodeToDataNode::Welcome { .. } => "welcome",
            NameNodeToDataNode::Table { .. } => "table",
            NameNodeToDataNode::Migrate { .. } => "migrate",
            NameNodeToDataNode::Ping { .. } => "ping",
            NameNodeToDataNode::Lease { .. } => "lease",
            NameNodeToDataNode::Suspects(_) => "suspects",
            NameNodeToDataNode::Drain => "drain",
            NameNodeToDataNode::Error { .. } => "error",
        }
    }

    fn round_trip<T>(message: &T) -> T
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let line = encode_line(message).expect("messages encode");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let back: T = decode_line(&line).expect("own output decodes");
        assert_eq!(&back, message);
        back
    }

    #[test]
    fn every_variant_round_trips() {
        for m in datanode_messages() {
            round_trip(&m);
        }
        for m in namenode_messages() {
            round_trip(&m);
        }
        round_trip(&ClientToNameNode::Watch {
            version: PROTOCOL_VERSION,
        });
        round_trip(&NameNodeToClient::table(table(), nodes()));
    }

    #[test]
    fn type_tag_is_snake_case_and_first() {
        for m in datanode_messages() {
            let line = encode_line(&m).expect("messages encode");
            let prefix = format!("{{\"type\":\"{}\"", type_name_dn(&m));
            assert!(line.starts_with(prefix.as_bytes()), "{m:?}");
        }
        for m in namenode_messages() {
            let line = encode_line(&m).expect("messages encode");
            let prefix = format!("{{\"type\":\"{}\"", type_name_nn(&m));
            assert!(line.starts_with(prefix.as_bytes()), "{m:?}");
        }
    }

    #[test]
    fn epochs_are_copied_from_the_table() {
        match NameNodeToDataNode::welcome(table(), nodes()) {
            NameNodeToDataNode::Welcome { epoch, table, .. } => assert_eq!(epoch, table.epoch()),
            other => panic!("{other:?}"),
        }
        let NameNodeToClient::Table { epoch, table, .. } =
            NameNodeToClient::table(table(), nodes());
        assert_eq!(epoch, 9);
        assert_eq!(table.epoch(), 9);
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        let bad: [&[u8]; 9] = [
            b"",
            b"\n",
            b"not json\n",
            b"{}\n",
            b"{\"type\":\"teleport\",\"node_id\":\"dn-a\"}\n",
            b"{\"type\":\"Heartbeat\",\"node_id\":\"dn-a\",\"epoch\":1,\"keys\":0,\"used_memory\":0,\"ops\":0}\n",
            b"{\"type\":\"heartbeat\",\"node_id\":\"dn-a\",\"epoch\":-1,\"keys\":0,\"used_memory\":0,\"ops\":0}\n",
            b"{\"type\":\"register\",\"version\":1,\"node_id\":\"dn-a\",\"client_addr\":\"nowhere\",\"admin_addr\":\"127.0.0.1:1\",\"epoch_seen\":0}\n",
            b"{\"type\":\"leave\",\"node_id\":\"dn-a\"} {\"type\":\"leave\",\"node_id\":\"dn-b\"}\n",
        ];
        for line in bad {
            let err = decode_line::<DataNodeToNameNode>(line).expect_err("must be rejected");
            assert!(matches!(err, ProtoError::Malformed(_)), "{err}");
        }
        let err = decode_line::<DataNodeToNameNode>(b"{\"type\":\"teleport\"}")
            .expect_err("unknown type");
        assert!(
            err.to_string().contains("unknown variant `teleport`"),
            "{err}"
        );

        // A message of the other direction is not accepted either.
        let welcome = encode_line(&NameNodeToDataNode::Ping { nonce: 1 }).expect("encodes");
        assert!(decode_line::<DataNodeToNameNode>(&welcome).is_err());

        // A corrupt table inside an otherwise fine message.
        let line = br#"{"type":"table","epoch":1,"table":{"epoch":1,"nodes":["a"],"ranges":[[0,9,3]]},"nodes":[]}"#;
        let err = decode_line::<NameNodeToClient>(line).expect_err("bad table");
        assert!(err.to_string().contains("names node 3"), "{err}");
    }

    #[test]
    fn long_lines_are_refused_before_parsing() {
        let line = vec![b' '; MAX_LINE_BYTES + 1];
        assert!(matches!(
            decode_line::<ClientToNameNode>(&line),
            Err(ProtoError::TooLong { .. })
        ));
    }

    #[test]
    fn lenient_where_it_helps_humans_and_upgrades() {
        // Typed into telnet: CRLF, spaces, fields in any order, fields we do not know.
        let line = b" {\"version\": 1, \"type\": \"watch\", \"since\": 3}\r\n";
        assert_eq!(
            decode_line::<ClientToNameNode>(line).expect("valid"),
            ClientToNameNode::Watch { version: 1 }
        );
        let register = br#"{"type":"register","version":1,"node_id":"n","client_addr":"1.2.3.4:5","admin_addr":"1.2.3.4:6","epoch_seen":0,"owned_slots":null}"#;
        match decode_line::<DataNodeToNameNode>(register).expect("valid") {
            DataNodeToNameNode::Register { owned_slots, .. } => assert_eq!(owned_slots, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn absurd_epochs_are_refused() {
        assert_eq!(check_epoch(7).expect("fine"), 7);
        assert_eq!(check_epoch(MAX_EPOCH).expect("fine"), MAX_EPOCH);
        assert!(check_epoch(u64::MAX).is_err());
        assert!(MAX_EPOCH.checked_add(1).is_some());
    }

    #[test]
    fn versions() {
        assert!(check_version(PROTOCOL_VERSION).is_ok());
        let err = check_version(2).expect_err("newer version");
        assert_eq!(
            err.to_string(),
            "unsupported protocol version 2 (this node speaks 1)"
        );
    }

    #[test]
    fn slot_ranges_are_checked() {
        let slot = |n| Slot::new(n).expect("in range");
        assert_eq!(
            slot_ranges(&[(0, 0), (5, 16383)]).expect("valid"),
            [slot(0)..=slot(0), slot(5)..=slot(16383)]
        );
        assert!(slot_ranges(&[(5, 4)]).is_err());
        assert!(slot_ranges(&[(0, 16384)]).is_err());
        assert!(slot_ranges(&[]).expect("empty is fine").is_empty());
    }

    /// Every example line in this module's docs decodes as its section's direction, re-encodes
    /// to the same bytes, and every message type has at least one example.
    #[test]
    fn doc_examples_decode() {
        let source = include_str!("proto.rs");
        let mut section = "";
        let mut seen: Vec<(&str, String)> = Vec::new();
        for line in source.lines() {
            if let Some(heading) = line.strip_prefix("//! ## ") {
                section = heading;
                continue;
            }
            let Some(json) = line.strip_prefix("//! {") else {
                continue;
            };
            let json = format!("{{{json}");
            let reencoded = match section {
                "DataNode -> NameNode" => {
                    let m: DataNodeToNameNode = decode_line(json.as_bytes()).expect(&json);
                    encode_line(&m)
                }
                "NameNode -> DataNode" => {
                    let m: NameNodeToDataNode = decode_line(json.as_bytes()).expect(&json);
                    encode_line(&m)
                }
                "Client -> NameNode" => {
                    let m: ClientToNameNode = decode_line(json.as_bytes()).expect(&json);
                    encode_line(&m)
                }
                "NameNode -> Client" => {
                    let m: NameNodeToClient = decode_line(json.as_bytes()).expect(&json);
                    encode_line(&m)
                }
                other => panic!("example under unknown heading {other:?}: {json}"),
            }
            .expect("examples encode");
            assert_eq!(String::from_utf8_lossy(&reencoded), format!("{json}\n"));
            let value: serde_json::Value = serde_json::from_str(&json).expect(&json);
            let kind = value["type"].as_str().expect("tagged").to_owned();
            seen.push((section, kind));
        }

        let expect = |section: &'static str, kinds: Vec<&'static str>| {
            let got: BTreeSet<&str> = seen
                .iter()
                .filter(|(s, _)| *s == section)
                .map(|(_, k)| k.as_str())
                .collect();
            let want: BTreeSet<&str> = kinds.into_iter().collect();
            assert_eq!(got, want, "examples under {section:?}");
        };
        expect(
            "DataNode -> NameNode",
            datanode_messages().iter().map(type_name_dn).collect(),
        );
        expect(
            "NameNode -> DataNode",
            namenode_messages().iter().map(type_name_nn).collect(),
        );
        expect("Client -> NameNode", vec!["watch"]);
        expect("NameNode -> Client", vec!["table"]);
    }
}
