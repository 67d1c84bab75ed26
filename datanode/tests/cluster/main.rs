//! Cluster tests: a NameNode in-process and DataNodes in-process or as real processes, on
//! free loopback ports, each test its own cluster; driven over TCP with the `redis` crate, its
//! cluster client, raw RESP bytes and `redis-cli`.
//!
//! - [`util`]: the cluster helper, process guard, convergence polling, slot map.
//! - [`spread`]: 10,000 keys through one node, read back through the others.
//! - [`redirects`]: `-MOVED`/`-CROSSSLOT` for cluster-aware connections, `redis-cli -c`.
//! - [`cluster_client`]: the `redis` crate's cluster client routing by `CLUSTER SLOTS`.
//! - [`failure`]: a DataNode killed with SIGKILL leaves the ring, its keys become misses;
//!   when it comes back it gets the same slots back.
//! - [`restart`]: a NameNode restart changes no ownership; the data plane keeps serving.
//! - [`resp3`]: forwarded and split replies in RESP3.
//! - [`pubsub`]: PUBLISH reaches subscribers on every node; shard subscriptions across a
//!   drain.
//! - [`multikey`]: DEL/EXISTS/TOUCH/UNLINK/MSET/MGET split across nodes, MSETNX refused.

mod cluster_client;
mod failure;
mod multikey;
mod pubsub;
mod redirects;
mod resp3;
mod restart;
mod spread;
mod util;

#[allow(dead_code)]
#[path = "../server/util.rs"]
mod server_util;
