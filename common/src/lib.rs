//! # CHKV common
//!
//! Pieces shared by every CHKV process.
//!
//! # Layout
//! - [`slot`]: Redis Cluster's key -> slot function (CRC16-XMODEM of the hash tag, mod 16384)
//!   and the [`Slot`] type that cannot be out of range.
//! - [`ring`]: the consistent-hash ring of DataNodes (virtual nodes at points every machine
//!   computes alike) and the [`SlotTable`] of slot owners built from it, compact on the wire.
//! - [`owners`]: [`SlotOwners`], the owner of every slot as an index into a node list: the
//!   slot map the DataNode's routing and the client library's routes are built on.
//! - [`proto`]: the control-plane messages (one JSON object per line) between the NameNode,
//!   the DataNodes and clients, one enum per direction.
//! - [`resp`]: the RESP codec of everything that talks to a DataNode as a client (the client
//!   library, a DataNode forwarding to a peer): commands out, a bounded resumable reply
//!   scanner, one decoder that builds each caller's own reply type.
//! - [`pipe`]: one pipelined, multiplexed connection to a RESP server (a writer batching
//!   requests, a reader handing replies to their callers in order, the response timeout,
//!   a byte budget for requests sent without waiting): the client library's connections
//!   and a DataNode's links to its peers, each with its own codec.
//! - [`sched`]: `let_ready_run`, a yield to the tasks already ready that does not poll the
//!   I/O driver first (what a connection gathering one write calls).
//! - [`split`]: multi-key commands over several owners (MGET, MSET, DEL, ...): which keys go
//!   together, each share's command, and the merge of the answers, for DataNode forwarding
//!   and the client library alike.
//! - [`auth`]: the cluster secret and the mutual challenge-response (HMAC-SHA256) every
//!   control connection and DataNode-to-DataNode link starts with; node-id checks and log
//!   escaping for strings that came from the network.
//! - [`lines`]: the bounded line reader every control-plane reader uses.
//! - [`hostport`]: `host:port` addresses whose host may be a name, resolved at each use.
//! - [`cli`] (feature `cli`): the binaries' settings from flags, environment and a TOML file.
//! - `http` (feature `http`): the bounded HTTP server the NameNode and the DataNodes share.
//! - `tls` (feature `tls`): rustls server and client configurations from PEM files, for the
//!   DataNode's TLS port, TLS cluster links and the client library.

pub mod auth;
#[cfg(feature = "cli")]
pub mod cli;
pub mod hostport;
#[cfg(feature = "http")]
pub mod http;
pub mod lines;
pub mod owners;
pub mod pipe;
pub mod proto;
pub mod resp;
pub mod ring;
pub mod sched;
pub mod slot;
pub mod split;
#[cfg(feature = "tls")]
pub mod tls;

pub use hostport::HostPort;
pub use owners::{SlotOwners, UNOWNED};
pub use proto::{
    decode_line, encode_line, ClientToNameNode, DataNodeToNameNode, NameNodeToClient,
    NameNodeToDataNode, NodeInfo, ProtoError, PROTOCOL_VERSION,
};
pub use ring::{NodeId, Ring, SlotMove, SlotTable, SlotTableError, DEFAULT_VNODES};
pub use slot::{key_slot, Slot, SLOT_COUNT};
