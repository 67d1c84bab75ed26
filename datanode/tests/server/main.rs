//! Integration tests: each test starts its own DataNode in-process on a free port and drives it
//! over real TCP with the `redis` crate, raw RESP bytes and `redis-cli`.
//!
//! - [`util`]: server start, client connections, a raw RESP reader, polling.
//! - [`strings`], [`keys`], [`server_cmds`]: every command and its errors through the crate.
//! - [`raw`]: exact reply bytes, RESP3, inline commands, pipelining, binary-safe data.
//! - [`expiry`]: lazy and active expiry in real time.
//! - [`auth`]: `requirepass`, HELLO AUTH and password URLs.
//! - [`limits`]: malformed input, declared sizes, client and buffer limits.
//! - [`pubsub`]: message shapes, ordering and the pubsub output limit.
//! - [`fuzz`]: random bytes at a live server.
//! - [`shutdown`]: graceful shutdown with clients connected.
//! - [`redis_cli`]: the real `redis-cli`.
//! - [`compat`]: differences from Redis 7, ignored until fixed.

mod auth;
mod compat;
mod expiry;
mod fuzz;
mod keys;
mod limits;
mod pubsub;
mod raw;
mod redis_cli;
mod server_cmds;
mod shutdown;
mod strings;
mod util;
