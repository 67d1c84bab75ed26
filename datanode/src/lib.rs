//! # CHKV DataNode
//!
//! A DataNode holds data in memory and speaks the Redis protocol (RESP2 and RESP3), so
//! `redis-cli`, `redis-benchmark` and Redis client libraries work against it unchanged.
//!
//! # Layout
//! - [`resp`]: request parsing and reply encoding, byte slices in and out.
//! - [`store`]: the slot-partitioned in-memory store with lazy and active expiry.
//! - [`cmd`]: the command table and every command's logic, as plain functions.
//! - [`node`]: state shared by a node's connections (store, config, counters, clients).
//! - [`cluster`]: the routing snapshot (slot owners) and the per-request routing decision.
//! - [`peer`]: pipelined connections to other DataNodes for forwarding.
//! - [`pubsub`]: channel, pattern and shard subscriptions and the bounded per-connection
//!   outboxes PUBLISH pushes into.
//! - [`exec`]: running a request here, on its owner, or split over owners.
//! - [`agent`]: registration, heartbeats and table updates with the NameNode.
//! - [`handoff`]: moving slots to another node (freeze, copy, flip, release).
//! - [`admin`]: the plain-text admin port (`k` drains the node, `status`, `help`).
//! - [`config`]: runtime configuration and memory-size parsing.
//! - [`server`]: the thin tokio layer: listener, connections, background tasks, shutdown.

pub mod admin;
pub mod agent;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod exec;
pub mod handoff;
pub mod node;
pub mod peer;
pub mod pubsub;
pub mod resp;
pub mod server;
pub mod store;
pub mod striped;
