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
//! Blocking commands (BLPOP, ...) take a [`Dedicated`] connection of their own for the
//! call, since a request that waits on the server would hold up every reply behind it; their
//! deadline is the response timeout plus the command's own timeout ([`Patience`]), or none
//! when it blocks forever. Such a connection goes back to the pool's idle ones when its reply
//! is in, and is closed when the caller gives up first (so the server unblocks the client
//! instead of popping an element for nobody).
//!
//! With TLS ([`TlsLinks`]) a connection dials the node's TLS port (from the table, by the
//! node's client address) and runs the same tasks over the TLS stream.

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

/// TLS towards the DataNodes: the rustls configuration (the CA, a client certificate), and
/// each node's TLS address by its client address, from the slot table. Routing keeps using
/// client addresses (tables, `-MOVED`); only the dial goes elsewhere. A node the table does
/// not list (a standalone server) is dialled at the address given.
#[derive(Debug)]
pub(crate) struct TlsLinks {
    pub config: Arc<chkv_common::tls::rustls::ClientConfig>,
    pub addrs: RwLock<HashMap<SocketAddr, SocketAddr>>,
}

impl TlsLinks {
    /// Where to dial the node whose client address is `addr`.
    fn dial(&self, addr: SocketAddr) -> SocketAddr {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        addrs.get(&addr).copied().unwrap_or(addr)
    }

    /// The client address of the node whose TLS address is `addr` (a node answers a TLS
    /// connection's `-MOVED` with the TLS port, as Redis does), or `addr` itself.
    pub fn client_of(&self, addr: SocketAddr) -> SocketAddr {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        addrs
            .iter()
            .find(|(_, &t)| t == addr)
            .map_or(addr, |(&c, _)| c)
    }

    /// Takes the nodes' TLS addresses from a table.
    pub fn learn(&self, nodes: &[chkv_common::NodeInfo]) {
        let mut addrs = self.addrs.write().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            match n.tls_addr() {
                Some(t) => addrs.insert(n.client_addr, t),
                None => addrs.remove(&n.client_addr),
            };
        }
    }
}

/// An open connection: TCP, or TLS over TCP.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
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

/// A few connections to one node, used round-robin and replaced when they close.
pub(crate) struct NodePool {
    addr: SocketAddr,
    config: Arc<ConnConfig>,
    conns: Box<[RwLock<Option<Conn>>]>,
    next: AtomicUsize,
    /// Dedicated connections between blocking calls.
    idle: Mutex<Vec<Conn>>,
}

impl NodePool {
    pub fn new(addr: SocketAddr, config: Arc<ConnConfig>, size: usize) -> NodePool {
        NodePool {
            addr,
            config,
            conns: (0..size.max(1)).map(|_| RwLock::new(None)).collect(),
            next: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection of its own for one blocking call: an idle one, or a new one.
    pub fn dedicated(self: &Arc<Self>) -> Dedicated {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut found = None;
            while let Some(conn) = idle.pop() {
                if !conn.is_closed() {
                    found = Some(conn);
                    break;
                }
            }
            found
        };
        let conn = idle.unwrap_or_else(|| Conn::spawn(self.addr, self.config.clone()));
        Dedicated {
            conn: Some(conn),
            pool: self.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request; its reply comes back through the returned [`Pending`].
    pub fn send(&self, data: Bytes) -> Result<Pending<Value>> {
        let (tx, rx) = oneshot::channel();
        self.push(Job {
            data,
            waiter: Waiter::One(tx),
            patience: Patience::Normal,
        })?;
        Ok(Pending {
            rx,
            addr: self.addr,
        })
    }

    /// Sends `count` pipelined requests; their replies come back together, in order.
    pub fn send_many(&self, data: Bytes, count: usize) -> Result<Pending<Vec<Value>>> {
        let (tx, rx) = oneshot::channel();
        if count == 0 {
            // A slot that wants no reply would take the next request's.
            let _ = tx.send(Ok(Vec::new()));
            return Ok(Pending {
                rx,
                addr: self.addr,
            });
        }
        self.push(Job {
            data,
            waiter: Waiter::Many {
                want: count,
                got: Vec::with_capacity(count),
                tx,
            },
            patience: Patience::Normal,
        })?;
        Ok(Pending {
            rx,
            addr: self.addr,
        })
    }

    /// Sends `CLIENT CACHING YES` and a GET (`data` holds both) whose reply fills the
    /// near-cache through `fill` before it is handed over.
    pub fn send_cached(&self, data: Bytes, fill: Fill) -> Result<Pending<Value>> {
        let (tx, rx) = oneshot::channel();
        self.push(Job {
            data,
            waiter: Waiter::Cached(Box::new(CachedGet {
                caching: None,
                fill,
                tx,
            })),
            patience: Patience::Normal,
        })?;
        Ok(Pending {
            rx,
            addr: self.addr,
        })
    }

    fn push(&self, job: Job) -> Result<()> {
        let i = if self.conns.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()
        };
        let cell = &self.conns[i];
        // Fast path: a live connection, used under the read lock (sending does not block).
        let mut job = {
            let guard = cell.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(conn) if !conn.is_closed() => match conn.push(job) {
                    Ok(()) => return Ok(()),
                    Err(job) => job,
                },
                _ => job,
            }
        };
        let mut guard = cell.write().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref() {
            if !conn.is_closed() {
                // Another caller replaced it meanwhile.
                match conn.push(job) {
                    Ok(()) => return Ok(()),
                    Err(j) => job = j,
                }
            } else if !conn.connected() && recently(&conn.state) {
                // The node refused us a moment ago: do not dial it again on every request.
                return Err(conn.closed_error());
            }
        }
        let conn = Conn::spawn(self.addr, self.config.clone());
        let pushed = conn.push(job);
        let error = conn.closed_error();
        *guard = Some(conn);
        pushed.map_err(|_| error)
    }
}

/// A connection lent to one blocking call. [`Dedicated::finish`] gives it back to its pool
/// once the reply is in; dropped before that (the caller gave up, or the request failed), it
/// is closed, so the server unblocks the client rather than serving it.
pub(crate) struct Dedicated {
    conn: Option<Conn>,
    pool: Arc<NodePool>,
}

impl Dedicated {
    /// Sends `count` pipelined requests (ASKING and a command, or one command) that may wait
    /// as `patience` says; their replies come back together.
    pub fn send(
        &self,
        data: Bytes,
        count: usize,
        patience: Patience,
    ) -> Result<Pending<Vec<Value>>> {
        let addr = self.pool.addr;
        let Some(conn) = self.conn.as_ref() else {
            return Err(Error::Connection {
                addr,
                message: "connection closed".into(),
            });
        };
        let (tx, rx) = oneshot::channel();
        conn.push(Job {
            data,
            waiter: Waiter::Many {
                want: count.max(1),
                got: Vec::with_capacity(count.max(1)),
                tx,
            },
            patience,
        })
        .map_err(|_| conn.closed_error())?;
        Ok(Pending { rx, addr })
    }

    /// The call is answered: the connection goes back to the pool's idle ones (a few are
    /// kept; the rest close).
    pub fn finish(mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.is_closed() {
                return;
            }
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_DEDICATED {
                idle.push(conn);
            }
        }
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.kill();
        }
    }
}

fn recently(state: &State) -> bool {
    state
        .closed_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .is_some_and(|at| at.elapsed() < FAIL_FAST)
}

/// The connection's life: connect and greet, then the writer here and the reader beside it.
async fn run(
    tag: ConnTag,
    config: Arc<ConnConfig>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    state: Arc<State>,
) {
    let addr = tag.addr;
    let (stream, leftover) = match handshake(addr, &config).await {
        Ok(ok) => ok,
        Err(e) => return fail_queued(&state, &mut jobs, e),
    };
    state.connected.store(true, Ordering::Release);
    match stream {
        Stream::Tcp(s) => {
            let (rd, wr) = s.into_split();
            drive(tag, rd, wr, leftover, &config, &mut jobs, &state).await;
        }
        Stream::Tls(s) => {
            let (rd, wr) = tokio::io::split(*s);
            drive(tag, rd, wr, leftover, &config, &mut jobs, &state).await;
        }
    }
    // Invalidations sent on this connection from now on are lost: what it read goes.
    if let Some(near) = &config.near {
        near.conn_lost(tag.id);
    }
    // Requests still queued were never written: they fail with why the connection ended,
    // and their callers retry them elsewhere.
    let error = state.error.lock().ok().and_then(|e| e.clone());
    fail_queued(
        &state,
        &mut jobs,
        error.unwrap_or_else(|| Error::Connection {
            addr,
            message: "connection closed".into(),
        }),
    );
}

/// The writer here and the reader beside it, until the connection ends.
async fn drive<R, W>(
    tag: ConnTag,
    rd: R,
    wr: W,
    leftover: BytesMut,
    config: &ConnConfig,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
    state: &Arc<State>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let addr = tag.addr;
    let (batches_tx, batches_rx) = mpsc::unbounded_channel();
    let mut reader = tokio::spawn(read_loop(
        tag,
        config.near.clone(),
        rd,
        leftover,
        batches_rx,
        config.response_timeout,
        state.clone(),
    ));
    let written = tokio::select! {
        written = write_loop(addr, wr, jobs, batches_tx, &state.in_flight, config.response_timeout) => Some(written),
        // The reader ended (and recorded why): stop the writer, even in the middle of a
        // write to a node that stopped reading.
        _ = &mut reader => None,
    };
    match written {
        Some(Err(e)) => {
            // The socket is broken: stop the reader too, which drops its slots (their callers
            // see a connection error).
            state.close(e);
            reader.abort();
            // Stopped for sure (not filling the near-cache) before the cache hears of it.
            drop((&mut reader).await);
        }
        // Every handle is gone: the reader finishes the replies already asked for.
        Some(Ok(())) => drop(reader.await),
        None => {}
    }
}

/// Records why the connection ended and fails every request still queued with it.
fn fail_queued(state: &State, jobs: &mut mpsc::UnboundedReceiver<Job>, e: Error) {
    state.close(e.clone());
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        job.waiter.fail(e.clone());
    }
}

/// The reply slots of one write, when its requests were taken, and when the last of them
/// is overdue (`None`: never).
struct Batch {
    sent: Instant,
    due: Option<Instant>,
    waiters: Vec<Waiter>,
}

/// Writes requests until every handle is dropped (`Ok`) or the socket fails (`Err`).
///
/// The reply slots of a batch go to the reader in one message, stamped once, before any byte
/// of their requests is written.
async fn write_loop<W: AsyncWrite + Unpin>(
    addr: SocketAddr,
    mut wr: W,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
    batches: mpsc::UnboundedSender<Batch>,
    in_flight: &AtomicUsize,
    timeout: Option<Duration>,
) -> Result<()> {
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    let lost = |e: std::io::Error| Error::Connection {
        addr,
        message: e.to_string(),
    };
    let closed = || Error::Connection {
        addr,
        message: "connection closed".into(),
    };
    // Requests in the previous write: more than one means concurrent callers.
    let mut last_batch = 0usize;
    while let Some(first) = jobs.recv().await {
        if last_batch > 1 || in_flight.load(Ordering::Relaxed) > 0 {
            // Concurrent callers: let those that are ready to run queue their requests before
            // we write, so the node reads many requests per read (its cost is per read, not
            // per request) instead of the one or two that woke us. Measured with 50 callers:
            // the node spends half the CPU per request and throughput goes up by half. A
            // lone caller (nothing else in flight) skips it: the yield costs a poll of the
            // I/O driver.
            tokio::task::yield_now().await;
        }
        last_batch = 0;
        let sent = Instant::now();
        // The batch's deadline is its most patient request's.
        let mut due = Patience::Normal.due(sent, timeout);
        let mut waiters = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            last_batch += 1;
            if job.patience != Patience::Normal {
                due = match (due, job.patience.due(sent, timeout)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            waiters.push(job.waiter);
            if job.data.len() >= WRITE_BATCH {
                // Big: hand over the slots so far, then write from the request's own buffer.
                let slots = std::mem::take(&mut waiters);
                in_flight.fetch_add(slots.len(), Ordering::Relaxed);
                batches
                    .send(Batch {
                        sent,
                        due,
                        waiters: slots,
                    })
                    .map_err(|_| closed())?;
                if !out.is_empty() {
                    wr.write_all(&out).await.map_err(lost)?;
                    out.clear();
                }
                wr.write_all(&job.data).await.map_err(lost)?;
            } else {
                out.extend_from_slice(&job.data);
            }
            if out.len() < WRITE_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        if !waiters.is_empty() {
            in_flight.fetch_add(waiters.len(), Ordering::Relaxed);
            batches
                .send(Batch { sent, due, waiters })
                .map_err(|_| closed())?;
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(lost)?;
            out.clear();
        }
        // TLS keeps the last record until flushed; for TCP this does nothing.
        wr.flush().await.map_err(lost)?;
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// Reads replies and fills slots in order, until the connection ends, a reply is overdue,
/// or the writer is gone and every slot is filled.
async fn read_loop<R: AsyncRead + Unpin>(
    tag: ConnTag,
    near: Option<Arc<NearCache>>,
    mut rd: R,
    mut buf: BytesMut,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    timeout: Option<Duration>,
    state: Arc<State>,
) {
    let addr = tag.addr;
    let in_flight = &state.in_flight;
    let mut scanner = Scanner::new();
    let mut pending = Outstanding::default();
    let mut writer_done = false;
    // Overdue replies are looked for a few times per timeout.
    let period = timeout.map_or(Duration::from_secs(3600), |t| (t / 4).max(TICK_MIN));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let error = loop {
        let feed = Feed {
            tag,
            near: near.as_deref(),
        };
        match replies(feed, &mut scanner, &mut buf, &mut pending, &mut batches).await {
            Ok(0) => {}
            // Counted in before the batch was handed over, so this never goes below zero.
            Ok(n) => drop(in_flight.fetch_sub(n, Ordering::Relaxed)),
            Err(e) => break e,
        }
        while let Ok(batch) = batches.try_recv() {
            pending.push(batch);
        }
        if pending.is_empty() && writer_done {
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = if pending.is_empty() {
            // Idle: wait for requests to be written (or the writer to finish) as well.
            tokio::select! {
                _ = state.kill.notified() => break killed(addr),
                batch = batches.recv() => {
                    match batch {
                        Some(batch) => pending.push(batch),
                        None => writer_done = true,
                    }
                    continue;
                }
                r = rd.read_buf(&mut buf) => r,
            }
        } else {
            tokio::select! {
                biased;
                r = rd.read_buf(&mut buf) => r,
                _ = state.kill.notified() => break killed(addr),
                // Ticks that pass while nothing is outstanding are consumed here, harmlessly.
                _ = tick.tick(), if timeout.is_some() => {
                    if let Some((sent, Some(due))) = pending.oldest() {
                        if Instant::now() >= due {
                            break Error::Timeout {
                                addr,
                                after: due.saturating_duration_since(sent),
                            };
                        }
                    }
                    continue;
                }
            }
        };
        match read {
            Ok(0) => {
                break Error::Connection {
                    addr,
                    message: "connection closed by the server".into(),
                }
            }
            Ok(_) => {}
            Err(e) => {
                break Error::Connection {
                    addr,
                    message: e.to_string(),
                }
            }
        }
    };
    debug!(%addr, error = %error, "connection ended");
    state.close(error.clone());
    batches.close();
    while let Ok(batch) = batches.try_recv() {
        pending.push(batch);
    }
    pending.fail_all(&error);
}

fn killed(addr: SocketAddr) -> Error {
    Error::Connection {
        addr,
        message: "connection closed: the caller gave up".into(),
    }
}

/// The connection, and the near-cache its pushes and cached GETs go to.
#[derive(Clone, Copy)]
struct Feed<'a> {
    tag: ConnTag,
    near: Option<&'a NearCache>,
}

/// Cuts every complete reply out of `buf` and gives it to its slot. Invalidation pushes go
/// to the near-cache as they come, so they are applied before any reply behind them is
/// handed over.
async fn replies(
    feed: Feed<'_>,
    scanner: &mut Scanner,
    buf: &mut BytesMut,
    pending: &mut Outstanding,
    batches: &mut mpsc::UnboundedReceiver<Batch>,
) -> Result<usize> {
    let addr = feed.tag.addr;
    let mut answered = 0;
    while let Some(len) = scanner.scan(buf).map_err(|e| protocol(addr, e))? {
        let value = if len <= SHARE_ABOVE {
            let parsed = resp::parse(&buf[..len]);
            buf.advance(len);
            parsed
        } else {
            resp::parse_shared(&buf.split_to(len).freeze())
        }
        .map_err(|e| protocol(addr, e))?;
        if let Value::Push(items) = value {
            // Out-of-band, answers no request.
            if let Some(near) = feed.near {
                near.on_push(feed.tag, &items);
            }
            continue;
        }
        if pending.is_empty() {
            // Slots are handed over before their requests are written, so this reply's slot
            // is here or on its way; none coming means a reply nobody asked for.
            match batches.recv().await {
                Some(batch) => pending.push(batch),
                None => {
                    return Err(protocol(
                        addr,
                        resp::ProtocolError("reply without a request".into()),
                    ))
                }
            }
        }
        answered += usize::from(pending.deliver(value, feed.tag));
    }
    Ok(answered)
}

/// The reply slots, in write order, with the time their batch was taken.
#[derive(Default)]
struct Outstanding {
    slots: VecDeque<Waiter>,
    /// (slots of a batch still outstanding, when the batch was taken, when it is overdue),
    /// oldest first.
    batches: VecDeque<(usize, Instant, Option<Instant>)>,
}

impl Outstanding {
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn push(&mut self, batch: Batch) {
        if !batch.waiters.is_empty() {
            self.batches
                .push_back((batch.waiters.len(), batch.sent, batch.due));
            self.slots.extend(batch.waiters);
        }
    }

    /// When the oldest outstanding request was taken, and when it is overdue. Replies come
    /// in order, so only the oldest can be late: those behind it wait on it.
    fn oldest(&self) -> Option<(Instant, Option<Instant>)> {
        self.batches.front().map(|b| (b.1, b.2))
    }

    /// Gives `value` to the first slot (a pipeline slot takes several); whether that
    /// answered a whole request.
    fn deliver(&mut self, value: Value, conn: ConnTag) -> bool {
        let mut value = Some(value);
        let done = match self.slots.front_mut() {
            None => return false,
            Some(Waiter::One(_)) => true,
            Some(Waiter::Many { want, got, .. }) => {
                got.extend(value.take());
                got.len() >= *want
            }
            Some(Waiter::Cached(c)) => {
                if c.caching.is_none() {
                    c.caching = value.take();
                    false
                } else {
                    true
                }
            }
        };
        if !done {
            return false;
        }
        match (self.slots.pop_front(), value) {
            (Some(Waiter::One(tx)), Some(value)) => drop(tx.send(Ok(value))),
            (Some(Waiter::Many { got, tx, .. }), _) => drop(tx.send(Ok(got))),
            (Some(Waiter::Cached(c)), Some(value)) => {
                let CachedGet { caching, fill, tx } = *c;
                // Kept only when CLIENT CACHING YES was accepted (the read is tracked).
                if let Some(Value::Okay) = caching {
                    fill.complete(conn, &value, Instant::now());
                }
                drop(tx.send(Ok(value)));
            }
            _ => {}
        }
        if let Some(front) = self.batches.front_mut() {
            front.0 -= 1;
            if front.0 == 0 {
                self.batches.pop_front();
            }
        }
        true
    }

    fn fail_all(&mut self, error: &Error) {
        self.batches.clear();
        for w in self.slots.drain(..) {
            w.fail(error.clone());
        }
    }
}

fn protocol(addr: SocketAddr, e: resp::ProtocolError) -> Error {
    Error::Protocol { addr, message: e.0 }
}

/// Connects (with TLS when configured) and greets: AUTH or HELLO, then `CLUSTER REDIRECTS
/// YES`, pipelined. Returns the stream and any bytes read past the greeting's replies.
async fn handshake(addr: SocketAddr, config: &ConnConfig) -> Result<(Stream, BytesMut)> {
    let mut stream = dial(addr, config).await?;
    let buf = greet(addr, &mut stream, config).await?;
    Ok((stream, buf))
}

/// Opens a connection to the node whose client address is `addr`: TCP, or TLS to its TLS
/// address when the client speaks TLS.
pub(crate) async fn dial(addr: SocketAddr, config: &ConnConfig) -> Result<Stream> {
    let lost = |message: String| Error::Connection { addr, message };
    let to = config.tls.as_ref().map_or(addr, |t| t.dial(addr));
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(to))
        .await
        .map_err(|_| {
            lost(format!(
                "connect timed out after {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| lost(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let Some(tls) = &config.tls else {
        return Ok(Stream::Tcp(stream));
    };
    // The node's certificate must chain to the CA and name the address dialled.
    let name = chkv_common::tls::rustls::pki_types::ServerName::IpAddress(to.ip().into());
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = tokio::time::timeout(config.connect_timeout, connector.connect(name, stream))
        .await
        .map_err(|_| {
            lost(format!(
                "TLS handshake with {to} timed out after {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| lost(format!("TLS handshake with {to}: {e}")))?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// AUTH or HELLO, then `CLUSTER REDIRECTS YES`, pipelined, on a fresh connection. Returns
/// any bytes read past the greeting's replies.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    addr: SocketAddr,
    stream: &mut S,
    config: &ConnConfig,
) -> Result<BytesMut> {
    let lost = |message: String| Error::Connection { addr, message };
    let mut hello = BytesMut::new();
    let mut expected = 0;
    let user = config.username.as_deref().unwrap_or(b"default");
    match (&config.password, config.resp3) {
        (Some(pw), true) => {
            resp::encode_command(&[&b"HELLO"[..], b"3", b"AUTH", user, pw], &mut hello);
            expected += 1;
        }
        (None, true) => {
            resp::encode_command(&["HELLO", "3"], &mut hello);
            expected += 1;
        }
        (Some(pw), false) => {
            match &config.username {
                Some(u) => resp::encode_command(&[&b"AUTH"[..], u, pw], &mut hello),
                None => resp::encode_command(&[&b"AUTH"[..], pw], &mut hello),
            }
            expected += 1;
        }
        (None, false) => {}
    }
    if config.cluster {
        resp::encode_command(&["CLUSTER", "REDIRECTS", "YES"], &mut hello);
        expected += 1;
    }
    if config.near.is_some() {
        // Only the reads after CLIENT CACHING YES (the near-cache's GETs) are tracked.
        resp::encode_command(&["CLIENT", "TRACKING", "ON", "OPTIN"], &mut hello);
        expected += 1;
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    if expected == 0 {
        return Ok(buf);
    }
    let exchange = async {
        stream
            .write_all(&hello)
            .await
            .map_err(|e| lost(e.to_string()))?;
        stream.flush().await.map_err(|e| lost(e.to_string()))?;
        let mut scanner = Scanner::new();
        let mut replies = 0;
        while replies < expected {
            if let Some(len) = scanner.scan(&buf).map_err(|e| protocol(addr, e))? {
                let frame = buf.split_to(len).freeze();
                match resp::parse(&frame).map_err(|e| protocol(addr, e))? {
                    Value::Error(e) => return Err(Error::Server(e)),
                    Value::Push(_) => {}
                    _ => replies += 1,
                }
                continue;
            }
            buf.reserve(READ_CHUNK);
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Err(lost("connection closed during the handshake".into())),
                Ok(_) => {}
                Err(e) => return Err(lost(e.to_string())),
            }
        }
        Ok(())
    };
    tokio::time::timeout(config.connect_timeout, exchange)
        .await
        .map_err(|_| {
            lost(format!(
                "handshake timed out after {:?}",
                config.connect_timeout
            ))
        })??;
    Ok(buf)
}

#[cfg(test)]
mod tests;
