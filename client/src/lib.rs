//! # CHKV client
//!
//! An embedded async (tokio) client for CHKV that routes every key to its DataNode by itself.
//!
//! [`Client::connect`] asks the NameNode for the slot table and keeps watching it; each
//! request goes straight to the DataNode owning its key's slot, over a pipelined connection
//! that many tasks share. When the ring changes (a node joins, drains or dies) the client
//! follows: a node that handed a slot over answers `-MOVED` and the client goes to the new
//! owner; a dropped connection or a cluster between tables is retried within a bounded
//! budget. Planned joins and drains are invisible to callers.
//!
//! ```no_run
//! use chkv_client::{Client, SetOptions};
//!
//! # async fn demo() -> chkv_client::Result<()> {
//! let client = Client::connect("127.0.0.1:10102").await?; // the NameNode's watch port
//! client.set("greeting", "hello").await?;
//! assert_eq!(client.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! client.set_with("session", "s3cr3t", SetOptions::new().nx().ex(60)).await?;
//! let values = client.mget(["greeting", "session", "missing"]).await?; // across nodes
//! assert_eq!(values.len(), 3);
//! client.del(["greeting", "session"]).await?;
//!
//! // Anything else, as raw arguments:
//! let info = client.cmd(["CLUSTER", "INFO"]).await?;
//!
//! // Many commands in one round trip per node:
//! let replies = client.pipeline().set("a", "1").incr("n").get("a").execute().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`](Client): the client, the routing state it shares with the watcher, and the
//!   retry loop (one `match` on what a failure means: [`Error`] variants say whether they
//!   were retried); its `builder` holds [`Builder`] and the options.
//! - `conn`: one multiplexed connection per DataNode (a small pool of them): a background
//!   writer and reader own the socket; callers queue requests and await their replies,
//!   matched in order (`dial`, `tasks` and `pool` beside it).
//! - `routing`: the slot map (table plus what `-MOVED` taught since) and the command table
//!   of key positions.
//! - `watcher`: the long-lived watch on the NameNode, with reconnects and backoff.
//! - `resp`: commands out, and a compact RESP2/RESP3 reply decoder that never trusts the
//!   network.
//! - `value`: replies as [`Value`]s, [`ServerError`] and the [`FromValue`] conversions.
//! - `error`: [`Error`], the library's one error type.
//! - `commands`: the typed API of strings and keys ([`Client::get`], [`Client::set_with`],
//!   ..., [`Client::scan_all`]), and in `commands::bits` bitmaps, LCS and HyperLogLog.
//! - `collections`: the typed API of hashes ([`Client::hset`], ...) and sets
//!   ([`Client::sadd`], ...).
//! - `lists`: lists ([`Client::lpush`], [`Client::lrange`], ...) and the blocking pops
//!   ([`Client::blpop`], [`Client::blmove`], ...), which wait on a connection of their own.
//! - `zsets`: sorted sets ([`Client::zadd`], [`Client::zrangebyscore`], ...) and GEO
//!   ([`Client::geoadd`], [`Client::geosearch`], ...).
//! - `pipeline`: [`Pipeline`], many commands in one round trip per DataNode.
//! - `pubsub`: [`Client::subscribe`], [`Client::psubscribe`] and [`Client::ssubscribe`] as
//!   [`Subscription`]s, each on its own connection that subscribes again after a reconnect
//!   or when a shard channel's slot moves (at-most-once delivery, like Redis Pub/Sub).
//! - `nearcache`: the optional near-cache of GET results ([`Builder::near_cache`]), a data
//!   structure the connections feed with invalidation pushes and replies.
//! - `url`: `redis://` and `rediss://` URLs, which [`Builder::connect`] and
//!   [`Builder::connect_standalone_url`] take.
//! - [`blocking`]: [`blocking::Client`], for code without an async runtime.
//!
//! # Semantics worth knowing
//! - Connections say `CLUSTER REDIRECTS YES`, so a DataNode never forwards our requests: one
//!   hop, and `-MOVED` when the ring has moved on.
//! - Multi-key commands follow Redis Cluster: MGET, MSET, DEL, UNLINK, EXISTS and TOUCH are
//!   split per slot by the client; MSETNX, RENAME, RENAMENX, COPY, SMOVE and the multi-set
//!   commands (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD; ZUNION, ZINTER, ZDIFF,
//!   their STORE forms, ZINTERCARD, ZRANGESTORE, ZMPOP, GEOSEARCHSTORE) need their keys in
//!   one slot (hash tags: `{user42}.a`, `{user42}.b`).
//! - Node-local commands (DBSIZE, KEYS, SCAN, FLUSHALL) have cluster-wide methods
//!   ([`Client::dbsize`], [`Client::keys`], [`Client::scan_all`], [`Client::flushall`]) and
//!   per-node ones ([`Client::keys_on`], [`Client::scan_on`], [`Client::cmd_on`]).
//! - Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
//!   BZMPOP), typed or through [`Client::cmd`], each take a connection of their own for the
//!   call and wait as long as their timeout says (0: for ever) on top of the response
//!   timeout. When the key's slot moves while they wait, they block again at the new owner
//!   for the time left. Do not put them in a [`Pipeline`]: there they hold up the replies
//!   behind them and fall under the plain response timeout.
//! - The near-cache ([`Builder::near_cache`], off by default) answers [`Client::get`] from
//!   memory. Connections then speak RESP3 with `CLIENT TRACKING ON OPTIN`; a GET that misses
//!   is sent as `CLIENT CACHING YES` + `GET` to the key's owner, and its reply is kept. Its
//!   guarantee: a hit never returns a value older than one whose invalidation the client has
//!   received (invalidation pushes are applied by the connection's reader before any reply
//!   behind them is handed over; a reply that an invalidation of its key raced is not kept).
//!   A value is served only while the node it was read from owns the key's slot in the
//!   client's routes. Everything read through a connection is dropped when the connection
//!   ends; a node's server-side invalidations on slot moves and lease loss (null: drop all)
//!   cover the time before the client hears of a new table. The caller's own writes through
//!   this client drop the keys at once. So a cached value is at most stale by the time an
//!   invalidation takes from the writing node to this client (measured in the tests: a few
//!   milliseconds on loopback); when a node's connection hangs without closing,
//!   [`NearCacheOptions::max_age`] bounds it. Only [`Client::get`] is cached (not `cmd`, MGET
//!   or pipelines).
//! - A request whose connection drops after it was written is retried: a write may then be
//!   applied twice (at-least-once), as with other cluster clients. A timeout is not retried.

pub mod blocking;
mod client;
mod collections;
mod commands;
mod conn;
mod error;
mod lists;
mod nearcache;
mod pipeline;
mod pubsub;
mod resp;
mod routing;
mod url;
mod value;
mod watcher;
mod zsets;

pub use client::{Builder, Client, NameNodes, RetryBudget, RingInfo, Tls};
pub use commands::bits::{
    BitFieldOp, BitFieldType, BitOffset, BitOp, BitOverflow, BitUnit, LcsIdx, LcsMatch,
};
pub use commands::{
    ExpireCondition, ExpireTime, GetExpiry, ScanAll, ScanOptions, SetCondition, SetExpiry,
    SetOptions, SetReply, Ttl,
};
pub use error::{Error, Result};
pub use lists::{Direction, InsertPosition, LposOptions};
pub use nearcache::{NearCacheOptions, NearCacheStats};
pub use pipeline::Pipeline;
pub use pubsub::{Message, Subscription, Topic};
pub use value::{FromValue, ServerError, ServerErrorKind, Value};
pub use zsets::{Aggregate, GeoBy, GeoFrom, GeoMatch, GeoSearchOptions, GeoUnit, ZAddOptions};

pub use bytes::Bytes;
pub use chkv_common::NodeInfo;

/// The README's Rust example, compiled with the doctests so it keeps up with the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
