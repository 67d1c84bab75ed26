//! One multiplexed, pipelined connection to a DataNode, and the small pool per node.
//!
//! The design is redis-rs's multiplexed connection: a cloneable handle in front of background
//! tasks that own the socket. Callers hand over (encoded request, reply slot) through a
//! channel and await the slot; any number of requests from any number of tasks are in flight
//! on one socket at once.
//!
//! Two tasks per connection, so neither direction can block the other (a server that stops
//! reading our requests while we stop reading its replies would deadlock one task):
//! - the **writer** takes requests from the channel, queues each reply slot for the reader,
//!   then writes everything that was waiting in one `write` (a natural pipeline);
//! - the **reader** cuts replies out of the byte stream ([`Scanner`]) and fills the slots in
//!   the order their requests were written (Redis answers in order).
//!
//! A slot is queued before its bytes are written, so a reply never arrives before its slot.
//! When the connection dies every queued slot gets an error (or is dropped, which callers read
//! as the same); nothing waits forever. Dropping every handle lets the writer finish what was
//! sent, and the reader exits once the last reply is in.
//!
//! The response timeout is the connection's, not each request's: the writer stamps each
//! batch once, and the reader, on a coarse tick, checks the oldest outstanding request. A
//! reply that is overdue means the connection (or the node) is stuck, and since replies come
//! in order everything behind it is stuck too: all outstanding requests fail with
//! [`Error::Timeout`] and the connection is closed; the next request opens a new one. This
//! costs one clock read per batch instead of a timer per request.
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
//! (connecting and greeting), `tasks` (the writer and the reader) and `pool` ([`NodePool`],
//! [`pool::Dedicated`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::error::{Error, Result};
use crate::nearcache::{ConnTag, Fill, NearCache};
use crate::resp::{self, Scanner};
use crate::value::Value;

mod dial;
mod pool;
mod tasks;

use dial::*;
pub(crate) use dial::{dial, Stream, TlsLinks};
pub(crate) use pool::NodePool;
use tasks::*;

/// Write in one go up to this much; bigger requests are written from their own buffer.
const WRITE_BATCH: usize = 64 * 1024;
/// Replies up to this size are copied out of the read buffer; bigger ones share it.
const SHARE_ABOVE: usize = 4096;
/// Overdue replies are looked for every timeout / 4, but not more often than this.
const TICK_MIN: Duration = Duration::from_millis(10);
/// Grow the read buffer by at least this much.
const READ_CHUNK: usize = 16 * 1024;
/// After a failed connect, fail fast for this long instead of dialing a dead node on every
/// request; the retry loop meanwhile waits for a new table.
const FAIL_FAST: Duration = Duration::from_millis(100);
/// Idle dedicated connections kept per node for the next blocking calls.
const IDLE_DEDICATED: usize = 8;

/// How long a request may wait for its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// The response timeout.
    Normal,
    /// The response timeout plus this (a blocking command's own timeout).
    Longer(Duration),
    /// As long as it takes (a blocking command without a timeout).
    Forever,
}

impl Patience {
    /// When a request taken at `sent` is overdue, with the connection's response timeout.
    fn due(self, sent: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        match self {
            Patience::Normal => sent.checked_add(timeout),
            Patience::Longer(extra) => sent.checked_add(timeout.checked_add(extra)?),
            Patience::Forever => None,
        }
    }
}

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

impl Waiter {
    fn fail(self, e: Error) {
        match self {
            Waiter::One(tx) => drop(tx.send(Err(e))),
            Waiter::Many { tx, .. } => drop(tx.send(Err(e))),
            Waiter::Cached(c) => drop(c.tx.send(Err(e))),
        }
    }
}

struct Job {
    data: Bytes,
    waiter: Waiter,
    patience: Patience,
}

/// What the connection's tasks report to handles and the pool.
#[derive(Default)]
struct State {
    /// The handshake succeeded at some point.
    connected: AtomicBool,
    /// Why the connection ended, for the errors of requests that find it closed.
    error: Mutex<Option<Error>>,
    closed_at: Mutex<Option<Instant>>,
    /// Requests handed to the reader and not answered yet: a hint for batching writes.
    in_flight: AtomicUsize,
    /// Close the connection now, whatever is outstanding (a dedicated connection whose
    /// caller gave up).
    kill: tokio::sync::Notify,
}

impl State {
    fn close(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        if let Ok(mut at) = self.closed_at.lock() {
            at.get_or_insert_with(Instant::now);
        }
    }
}

/// A handle to one connection, owned by its pool. The connection lives while the handle does
/// (and until its last reply is in).
pub(crate) struct Conn {
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Job>,
    state: Arc<State>,
}

impl Conn {
    /// Starts connecting to `addr` in the background; requests sent meanwhile wait for the
    /// handshake (or fail with its error).
    pub fn spawn(addr: SocketAddr, config: Arc<ConnConfig>) -> Conn {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State::default());
        let tag = ConnTag {
            id: CONN_IDS.fetch_add(1, Ordering::Relaxed),
            addr,
        };
        tokio::spawn(run(tag, config, rx, state.clone()));
        Conn { addr, tx, state }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether the handshake ever succeeded.
    fn connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }

    /// The error requests get once the connection is gone.
    pub fn closed_error(&self) -> Error {
        self.state
            .error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| Error::Connection {
                addr: self.addr,
                message: "connection closed".into(),
            })
    }

    fn push(&self, job: Job) -> std::result::Result<(), Job> {
        self.tx.send(job).map_err(|e| e.0)
    }

    /// Closes the connection at once; what is outstanding fails.
    fn kill(&self) {
        self.state.kill.notify_one();
    }
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
