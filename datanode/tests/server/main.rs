//! Integration tests: each test starts its own DataNode in-process on a free port and drives it
//! over real TCP with the `redis` crate, raw RESP bytes and `redis-cli`.
//!
//! - [`util`]: server start, client connections, a raw RESP reader, polling.
//! - [`strings`], [`keys`], [`server_cmds`]: every command and its errors through the crate.
//! - [`raw`]: exact reply bytes, RESP3, inline commands, pipelining, binary-safe data.
//! - [`expiry`]: lazy and active expiry in real time.
//! - [`auth`]: `requirepass`, HELLO AUTH and password URLs.
//! - [`limits`]: malformed input, declared sizes, client and buffer limits.
//! - [`fuzz`]: random bytes at a live server.
//! - [`shutdown`]: graceful shutdown with clients connected.
//! - [`tls`]: the TLS port: rustls clients, mutual TLS, plaintext refused, reload, redis-cli.
//! - [`flags`]: flags, environment and config file of the real binary; README lists every flag.
//! - [`redis_cli`]: the real `redis-cli`.
//! - [`redis_server`]: a real redis-server on a free port, for comparisons and migration.
//! - [`migrate`]: DUMP, RESTORE and MIGRATE both ways with a real redis-server.
//! - [`compat`]: differences from Redis 7, ignored until fixed.

mod auth;
mod compat;
mod expiry;
mod flags;
mod fuzz;
mod keys;
mod limits;
mod migrate;
mod raw;
mod redis_cli;
mod redis_server;
mod server_cmds;
mod shutdown;
mod strings;
mod tls;
mod util;
