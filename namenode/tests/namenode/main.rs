//! NameNode tests over real loopback sockets: an in-process NameNode on free ports, fake
//! DataNodes and watchers speaking the JSON-lines protocol, every test bounded in time.

mod failure;
mod http;
mod restart;
mod trust;
mod util;
mod watch;
