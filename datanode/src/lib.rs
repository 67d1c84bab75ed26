//! # CHKV DataNode
//!
//! A DataNode holds data in memory and speaks the Redis protocol (RESP2 and RESP3), so
//! `redis-cli`, `redis-benchmark` and Redis client libraries work against it unchanged.
//!
//! # Layout
//! - [`acl`]: ACL users: rules, categories, selectors, the permission check, ACL LOG;
//!   the command table comes in as plain data from `cmd::acl`.
//! - [`resp`]: request parsing and reply encoding, byte slices in and out, and the reply
//!   parser for relaying another node's answers.
//! - [`store`]: the slot-partitioned in-memory store with lazy and active expiry.
//! - [`cmd`]: the command table and every command's logic, as plain functions.
//! - [`args`]: argument parsing (Redis's integer and double rules) and the common error
//!   replies.
//! - [`busypoll`]: polling the client sockets for a moment before a worker sleeps, so a
//!   request that arrives meanwhile costs its sender no wake-up (`--busy-poll-us`).
//! - [`client`]: one connection as the node sees it (CLIENT LIST's fields, its tracking
//!   mode).
//! - [`clock`]: wall and monotonic clock reads as plain integers, for the hot path.
//! - [`cmdstats`]: calls, errors and latency per command, striped per thread.
//! - [`http`]: the optional HTTP port (`--http-port`): `/metrics` and `/healthz`.
//! - [`node`]: state shared by a node's connections (store, config, counters, clients, the
//!   effective routing) and the handles of the other parts; no I/O of its own.
//! - [`cluster`]: the routing snapshot: slot owners, node addresses, handoff overrides.
//! - [`ownership`]: which slots this node serves: the NameNode's table and the handoff
//!   overrides, events in and the routing to install out (plain data, no I/O).
//! - [`peer`]: pipelined connections to other DataNodes for forwarding.
//! - [`pubsub`]: channel, pattern and shard subscriptions and the bounded per-connection
//!   outboxes PUBLISH pushes into.
//! - [`exec`]: running a request here, on its owner, or split over owners.
//! - [`blocking`]: clients blocked on keys (BLPOP and friends): the waiters of each key, how
//!   each ends, the connection's wait (serving a key a write made ready is
//!   [`cmd::blocking`]'s).
//! - [`agent`]: registration, heartbeats, probes and table updates with the NameNode, its
//!   orders (migrate, drain) passed on, and the lease's renewal through the peers when the
//!   NameNode is late.
//! - [`lease`]: the ownership lease a node needs to serve its slots, and who may grant it.
//! - [`rdb`]: Redis's serialized value format (DUMP, RESTORE, MIGRATE payloads).
//! - [`lzf`]: LZF compression (RDB strings, compressed list nodes).
//! - [`handoff`]: moving slots between nodes (freeze, copy, flip, release): the protocol,
//!   its state and its plain-data decisions and encodings.
//! - [`migration`]: the handoff's I/O: the NameNode's orders carried out, and draining.
//! - [`admin`]: the plain-text admin port (`k` drains the node, `status`, `help`).
//! - [`config`]: runtime configuration and memory-size parsing.
//! - [`outbuf`]: `client-output-buffer-limit`, Redis's per-class output limits.
//! - [`tracking`]: client-side caching: CLIENT TRACKING's table and its invalidations.
//! - [`trust`]: startup checks, the peer handshake over RESP, which imports a peer may make.
//! - [`server`]: the thin tokio layer: listeners, connections, background tasks, shutdown.
//! - [`striped`]: per-thread counters, summed when read (no shared line written per request).
//! - [`sync`]: FUNCTION libraries and ACL users kept the same on every DataNode (versioned
//!   entries, exchanged after a change and compared by digest every 500 ms).
//! - [`tls`]: TLS (rustls) on the client port and, with `tls-cluster`, on links to peers and
//!   the NameNode: settings, certificate loading and reload.
//! - [`hll`]: HyperLogLog in Redis's byte format (sparse and dense), as plain functions.
//! - [`lua`]: Lua scripting's state: engines, the script cache, FUNCTION libraries, the
//!   running scripts (BUSY and KILL); running a script is `cmd::scripting::run`'s.
//! - [`geohash`]: Redis's 52-bit geohash (GEO scores), search cells and distances.

/// The Redis version CHKV reports: the command set and semantics it follows. 7.0.15 is the
/// reference server CHKV is tested against, whose commands (of the types CHKV serves) and
/// DUMP format (RDB 10) it implements; a client that saw 7.2 would use 7.2-only commands.
pub const REDIS_VERSION: &str = "7.0.15";

pub mod acl;
pub mod admin;
pub mod agent;
pub mod args;
pub mod blocking;
pub mod busypoll;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod cmdstats;
pub mod config;
pub mod exec;
pub mod geohash;
pub mod handoff;
pub mod hll;
pub mod http;
pub mod lease;
pub mod lua;
pub mod lzf;
pub mod migration;
pub mod node;
pub mod outbuf;
pub mod ownership;
pub mod peer;
pub mod pubsub;
pub mod rdb;
pub mod resp;
pub mod server;
pub mod store;
pub mod striped;
pub mod sync;
pub mod tls;
pub mod tracking;
pub mod trust;
