//! Cluster tests: a NameNode in-process and DataNodes in-process or as real processes, on
//! free loopback ports, each test its own cluster; driven over TCP with the `redis` crate, its
//! cluster client, raw RESP bytes and `redis-cli`.
//!
//! - [`util`]: the cluster helper, process guard, convergence polling, slot map.
//! - `server_util`: the server tests' `util.rs` (raw RESP reader, client connections), shared
//!   by path.
//! - [`spread`]: 10,000 keys through one node, read back through the others.
//! - [`redirects`]: `-MOVED`/`-CROSSSLOT` for cluster-aware connections, `redis-cli -c`.
//! - [`cluster_client`]: the `redis` crate's cluster client routing by `CLUSTER SLOTS`.
//! - [`failure`]: a DataNode killed with SIGKILL leaves the ring, its keys become misses;
//!   when it comes back it gets the same slots back.
//! - [`restart`]: a NameNode restart changes no ownership; the data plane keeps serving.
//! - [`resp3`]: forwarded and split replies in RESP3.
//! - [`bits`]: bitmap, LCS and HyperLogLog commands routed by their keys; CROSSSLOT across nodes.
//! - [`multi`]: MULTI/EXEC forwarded whole, CROSSSLOT, cluster-aware rules, a slot moving
//!   between MULTI and EXEC.
//! - [`pubsub`]: PUBLISH reaches subscribers on every node; shard subscriptions across a
//!   drain.
//! - [`tools`]: `redis-cli --cluster check`, `info` and `import` from a live redis-server.
//! - [`multikey`]: DEL/EXISTS/TOUCH/UNLINK/MSET/MGET split across nodes, MSETNX refused.
//! - [`trust`]: internal commands only on authenticated peer sessions, for slots in transit.
//! - [`collections`]: hashes, sets and sorted sets forwarded by key; multi-key commands
//!   (SINTER, ZUNIONSTORE, GEORADIUS ... STORE, ...) whole on one node or `-CROSSSLOT`.
//! - [`flap`]: a node paused past its dead-declaration resumes without bringing back deleted
//!   or older values.
//! - [`stop`]: SIGTERM drains a cluster node (bounded by `--shutdown-timeout`), a second
//!   signal exits at once, a client that does not read cannot hold the exit up.
//! - [`acl`]: a restricted ACL user through every node, for keys every node owns.
//! - [`functions`]: FUNCTION libraries on every node (after LOAD/DELETE/FLUSH/RESTORE,
//!   and for a node that joins later); FCALL routed by its keys.
//! - [`lists`]: blocking commands forwarded to their key's owner, CLIENT UNBLOCK and
//!   disconnects across nodes, a blocked client served by the new owner after a drain.
//! - [`zsets`]: BZPOPMIN/BZPOPMAX/BZMPOP the same way, on real processes.
//! - [`tls`]: `tls-cluster`: forwarding and a drain over TLS links, plaintext peers and
//!   DataNodes, and certificates of another CA, refused.

mod acl;
mod bits;
mod cluster_client;
mod collections;
mod failure;
mod flap;
mod functions;
mod lists;
mod multi;
mod multikey;
mod pubsub;
mod redirects;
mod resp3;
mod restart;
mod spread;
mod stop;
mod tls;
mod tools;
mod trust;
mod util;
mod zsets;

#[allow(dead_code)]
#[path = "../server/util.rs"]
mod server_util;
