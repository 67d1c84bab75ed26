//! Integration tests: each test starts its own DataNode in-process on a free port and drives it
//! over real TCP with the `redis` crate, raw RESP bytes and `redis-cli`.
//!
//! - [`util`]: server start, client connections, a raw RESP reader, polling.
//!
//! Shared helpers (time bounds, the PKI, the Prometheus checker, redis-server, the real
//! binaries as processes) are in `chkv-testkit`.
//!
//! - [`strings`], [`keys`], [`server_cmds`]: every command and its errors through the crate.
//! - [`bits`]: bitmaps, LCS and HyperLogLog, HyperLogLog bytes as Redis has them.
//! - [`raw`]: exact reply bytes, RESP3, inline commands, pipelining, binary-safe data.
//! - [`collections`]: hashes and sets, and the keyspace commands on every type.
//! - [`lists`]: lists and blocking commands: served pushes, timeouts, CLIENT UNBLOCK.
//! - [`zsets`]: sorted sets and GEO: reply shapes, keyspace events, memory, DUMP/RESTORE.
//! - [`expiry`]: lazy and active expiry in real time.
//! - [`auth`]: `requirepass`, HELLO AUTH and password URLs.
//! - [`multi`]: transactions: exact replies, atomic pipelines, WATCH under contention.
//! - [`scripting`]: EVAL/EVALSHA: a lock release script, a token-bucket rate limiter.
//! - [`limits`]: malformed input, declared sizes, client and buffer limits.
//! - [`metrics`]: the HTTP port's `/metrics` and `/healthz`.
//! - [`pubsub`]: message shapes, ordering and the pubsub output limit.
//! - [`fuzz`]: random bytes at a live server.
//! - [`shutdown`]: graceful shutdown with clients connected.
//! - [`tls`]: the TLS port: rustls clients, mutual TLS, plaintext refused, reload, redis-cli.
//! - [`flags`]: flags, environment and config file of the real binary; README lists every flag.
//! - [`redis_cli`]: the real `redis-cli`.
//! - [`namenode_errors`]: a DataNode pointed at the wrong port, or at nothing, says so.
//! - [`migrate`]: DUMP, RESTORE and MIGRATE both ways with a real redis-server.
//! - [`tracking`]: CLIENT TRACKING: invalidation pushes, their order, redirects, BCAST.
//! - [`compat`]: replies that once differed from Redis 7, each asserting Redis's exact bytes.

mod auth;
mod bits;
mod collections;
mod compat;
mod expiry;
mod flags;
mod fuzz;
mod keys;
mod limits;
mod lists;
mod metrics;
mod migrate;
mod multi;
mod namenode_errors;
mod pubsub;
mod raw;
mod redis_cli;
mod scripting;
mod server_cmds;
mod shutdown;
mod strings;
mod tls;
mod tracking;
mod util;
mod zsets;
