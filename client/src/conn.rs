//! One multiplexed, pipelined connection to a DataNode, and the small pool per node.
//!
//! The connection itself (a writer batching requests, a reader handing replies to their slots
//! in order, the response timeout, failing what waits when it ends) is
//! [`chkv_common::pipe`], shared with the DataNode's links to its peers. What is the client's
//! is the codec ([`tasks`]): replies decoded into [`Value`]s, RESP3 invalidation pushes fed to
//! the near-cache, and reply slots that take one reply, a pipeline's several, or a cached
//! GET's two. A dead connection fails every queued slot; the next request opens a new one.
//!
//! Blocking commands (BLPOP, ...) take a [`pool::Dedicated`] connection of their own for the
//! call, since a request that waits on the server would hold up every reply behind it; their
//! deadline is the response timeout plus the command's own timeout ([`Patience`]), or none
//! when it blocks forever. Such a connection goes back to the pool's idle ones when its reply
//! is in, and is closed when the caller gives up first (so the server unblocks the client
//! instead of popping an element for nobody).
//!
//! With TLS ([`TlsLinks`]) a connection dials the node's TLS port (from the table, by the
//! node's client address) and runs the same tasks over the TLS stream.
//!
//! Here: the configuration, the handle ([`Conn`]) and its reply slots; beside it, `dial`
//! (connecting and greeting), `tasks` (the connection's life and the codec) and `pool`
//! ([`NodePool`], [`pool::Dedicated`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
pub(crate) use chkv_common::pipe::Patience;
use chkv_common::pipe::{self, Job};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::nearcache::{ConnTag, Fill, NearCache};
use crate::resp::{self, Scanner};
use crate::value::Value;

mod dial;
mod pool;
mod tasks;

pub(crate) use chkv_common::pipe::Stream;
use dial::*;
pub(crate) use dial::{dial, TlsLinks};
pub(crate) use pool::NodePool;
use tasks::*;

/// Replies up to this size are copied out of the read buffer; bigger ones share it.
const SHARE_ABOVE: usize = 4096;
/// Grow the greeting's read buffer by at least this much.
const READ_CHUNK: usize = 16 * 1024;
/// After a failed connect, fail fast for this long instead of dialing a dead node on every
/// request; the retry loop meanwhile waits for a new table.
const FAIL_FAST: Duration = Duration::from_millis(100);
/// Idle dedicated connections kept per node for the next blocking calls.
const IDLE_DEDICATED: usize = 8;

/// How connections are opened and greeted.
#[derive(Clone, Debug)]
pub(crate) struct ConnConfig {
    pub connect_timeout: Duration,
    pub password: Option<Bytes>,
    /// ACL user to authenticate as (`default` when unset).
    pub username: Option<Bytes>,
    pub resp3: bool,
    /// Send `CLUSTER REDIRECTS YES`: the node answers `-MOVED` for slots it does not own
    /// instead of forwarding (false for a standalone server, which may not know the command).
    pub cluster: bool,
    /// Longest wait for a reply before the connection counts as stuck.
    pub response_timeout: Option<Duration>,
    /// The near-cache: connections say `CLIENT TRACKING ON OPTIN` (over RESP3), feed it
    /// their invalidation pushes and the replies of cached GETs, and tell it when they end.
    pub near: Option<Arc<NearCache>>,
    /// Connections over TLS.
    pub tls: Option<Arc<TlsLinks>>,
}

/// Connection ids, unique in the process (the near-cache tags values with them).
static CONN_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Where a reply (or replies) go.
pub(crate) enum Waiter {
    One(oneshot::Sender<Result<Value>>),
    Many {
        want: usize,
        got: Vec<Value>,
        tx: oneshot::Sender<Result<Vec<Value>>>,
    },
    /// `CLIENT CACHING YES` and a GET whose reply goes to the near-cache (unless the first
    /// reply was an error: then the GET is not tracked) before the caller gets it.
    Cached(Box<CachedGet>),
}

/// A near-cache GET's reply slot ([`Waiter::Cached`]).
pub(crate) struct CachedGet {
    /// The reply to `CLIENT CACHING YES`, once in.
    caching: Option<Value>,
    fill: Fill,
    tx: oneshot::Sender<Result<Value>>,
}

/// A handle to one connection, owned by its pool. The connection lives while the handle does
/// (and until its last reply is in).
pub(crate) type Conn = pipe::Handle<Replies>;

/// Starts connecting to `addr` in the background; requests sent meanwhile wait for the
/// handshake (or fail with its error).
fn spawn(addr: SocketAddr, config: Arc<ConnConfig>) -> Conn {
    let (pipe, queue) = pipe::channel(addr);
    let tag = ConnTag {
        id: CONN_IDS.fetch_add(1, Ordering::Relaxed),
        addr,
    };
    tokio::spawn(run(tag, config, queue));
    pipe
}

/// A reply on its way.
pub(crate) struct Pending<T> {
    rx: oneshot::Receiver<Result<T>>,
    addr: SocketAddr,
}

impl<T> Pending<T> {
    /// Waits for the reply (the connection enforces the response timeout).
    pub async fn wait(self) -> Result<T> {
        let Pending { rx, addr } = self;
        // A dropped slot means the connection ended before this reply.
        rx.await.unwrap_or_else(|_| {
            Err(Error::Connection {
                addr,
                message: "connection closed before the reply".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests;
