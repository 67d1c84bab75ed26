//! # CHKV NameNode
//!
//! The NameNode owns the cluster's membership and its consistent-hash ring. DataNodes register
//! and heartbeat on one port (10101); the NameNode turns their comings and goings into slot
//! tables, each with a larger epoch, and pushes every table to all DataNodes and to every
//! client watching on another port (10102). An HTTP port (10180) shows the state to humans and
//! to Prometheus. It keeps nothing on disk: after a restart the DataNodes' re-registrations
//! rebuild the same ring, because the ring is a pure function of the membership.
//!
//! # Layout
//! - [`membership`]: the pure state machine (members, failure detection, ring, published
//!   table): events in, actions out, time as a parameter. All the decisions live here.
//! - `server`: the thin tokio layer: listeners for DataNodes and watchers, one task per
//!   connection, and the core task that feeds [`Membership`] and executes its actions.
//! - `http`: the HTTP port on axum: the dashboard (`/`), the JSON API (`/api/cluster`,
//!   `/api/nodes`, `/api/events`, `POST /api/nodes/{id}/drain`), `/cluster` and `/metrics`.
//! - `activity`: the dashboard's event log (derived from the state machine's actions) and
//!   each node's operations per second (from its heartbeats).
//! - [`config`]: flags ([`Args`]) and the typed [`Config`] the library runs on.
//!
//! # What a DataNode must do
//!
//! The messages are `chkv_common::proto`'s, one JSON object per line.
//! 1. Connect to the DataNode port and send `register` first (version, node id, client and
//!    admin addresses, `epoch_seen`, and `owned_slots` when it owns any). The answer is
//!    `welcome` with the current table. Right after a NameNode start the welcome waits for the
//!    end of the startup grace (at most two heartbeat intervals); keep heartbeating meanwhile.
//!    A bad version, a bad slot range or a second id on one connection gets `error`, then the
//!    connection is closed.
//! 2. Send `heartbeat` every heartbeat interval (1 s) with the newest epoch applied. After
//!    `tolerance` intervals of silence (3 s) the NameNode sends `ping{nonce}` up to three times,
//!    300 ms apart; answer each with `pong{node_id, nonce}` at once. No answer: the node is
//!    declared dead, removed from the ring and its connection closed. A closed connection
//!    (crash, kill -9) skips the 3 s: the node is removed 0.9 s later unless it has registered
//!    again by then.
//! 3. Apply each `table` push whose epoch is newer than the one held; ignore older ones. A
//!    heartbeat still carrying an older epoch a full interval after a push gets the table again.
//! 4. When the connection drops (NameNode restart, or an `error` such as "not registered"
//!    after being declared dead), reconnect with backoff capped at one heartbeat interval and
//!    `register` again with `epoch_seen` and `owned_slots`, so a restarted NameNode rebuilds the
//!    same ring within its startup grace.
//! 5. To leave, send `leave{node_id}`; the acknowledgement is a `table` without the node. Stop
//!    heartbeating then: later heartbeats get `error` and a close.
//!
//! Start one in-process with [`start`] (port 0 picks free ports), or run it until a signal
//! with [`run`]; `src/main.rs` is only flag parsing and logging around `run`.

mod activity;
pub mod config;
mod http;
pub mod membership;
mod server;

use std::io;
use std::net::SocketAddr;

pub use config::{Args, ClusterTls, Config, HttpToken, Timing};
pub use membership::{Membership, Publication};
pub use server::{run, start, NameNodeHandle};

/// Why the NameNode could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not bind (port in use, address not local). Retrying only helps once
    /// whatever holds the port lets go.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A flag or setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The `--ports-file` could not be written.
    #[error("--ports-file {}: {source}", path.display())]
    PortsFile {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}
