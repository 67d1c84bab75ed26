//! NameNode tests over real loopback sockets: an in-process NameNode on free ports, fake
//! DataNodes and watchers speaking the JSON-lines protocol, every test bounded in time.
//!
//! - [`util`]: the in-process NameNode, fake DataNodes and watchers, the time bound.
//! - [`watch`]: joins, leaves and watchers: every change reaches every DataNode and watcher.
//! - [`failure`]: silent nodes probed and removed, closed sockets removed fast, nodes that
//!   answer probes kept.
//! - [`restart`]: a restarted NameNode rebuilds its state from what DataNodes report.
//! - [`trust`]: hostile peers on the DataNode port: no cluster secret, members speaking for
//!   others, absurd epochs, huge lines.
//! - [`http`]: the dashboard, the JSON API, the drain API and its token, `/metrics`, bounds.

mod failure;
mod http;
mod restart;
mod trust;
mod util;
mod watch;
