//! Client-library tests against real NameNodes and DataNodes on free loopback ports: in
//! process, and as child processes that can be SIGKILLed. Each test starts its own cluster.
//!
//! - [`util`]: cluster helpers, the child-process DataNode, convergence, draining.
//! - [`commands`]: every typed command's reply; standalone mode, RESP3, connect errors.
//! - [`bits`]: bitmaps, LCS and HyperLogLog, across nodes and over RESP3.
//! - [`lists`]: lists and the blocking pops, across nodes, over RESP3, and through a drain.
//! - [`zsets`]: sorted sets and GEO, across nodes and over RESP3.
//! - [`batches`]: MGET/MSET/DEL/EXISTS and pipelines across nodes, in the caller's order.
//! - [`nearcache`]: the near-cache: invalidation by writes elsewhere, drains and joins.
//! - [`ring`]: joins, drains and a SIGKILL under load; a NameNode restart under load.
//! - [`tls`]: DataNodes' TLS ports, standalone and through a NameNode, mutual TLS, a
//!   subscription over TLS.

mod batches;
mod bits;
mod commands;
mod lists;
mod nearcache;
mod ring;
mod tls;
mod util;
mod zsets;
