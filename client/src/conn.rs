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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::error::{Error, Result};
use crate::resp::{self, Scanner};
use crate::value::Value;

/// Write in one go up to this much; bigger requests are written from their own buffer.
const WRITE_BATCH: usize = 64 * 1024;
/// Grow the read buffer by at least this much.
const READ_CHUNK: usize = 16 * 1024;
/// After a failed connect, fail fast for this long instead of dialing a dead node on every
/// request; the retry loop meanwhile waits for a new table.
const FAIL_FAST: Duration = Duration::from_millis(100);

/// How connections are opened and greeted.
#[derive(Clone, Debug)]
pub(crate) struct ConnConfig {
    pub connect_timeout: Duration,
    pub password: Option<Bytes>,
    pub resp3: bool,
    /// Send `CLUSTER REDIRECTS YES`: the node answers `-MOVED` for slots it does not own
    /// instead of forwarding (false for a standalone server, which may not know the command).
    pub cluster: bool,
}

/// Where a reply (or replies) go.
pub(crate) enum Waiter {
    One(oneshot::Sender<Result<Value>>),
    Many {
        want: usize,
        got: Vec<Value>,
        tx: oneshot::Sender<Result<Vec<Value>>>,
    },
}

impl Waiter {
    fn fail(self, e: Error) {
        match self {
            Waiter::One(tx) => drop(tx.send(Err(e))),
            Waiter::Many { tx, .. } => drop(tx.send(Err(e))),
        }
    }
}

struct Job {
    data: Bytes,
    waiter: Waiter,
}

/// What the connection's tasks report to handles and the pool.
#[derive(Default)]
struct State {
    /// The handshake succeeded at some point.
    connected: AtomicBool,
    /// Why the connection ended, for the errors of requests that find it closed.
    error: Mutex<Option<Error>>,
    closed_at: Mutex<Option<Instant>>,
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

/// A handle to one connection. Cheap to clone; the connection lives while a handle does (and
/// until its last reply is in).
#[derive(Clone)]
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
        tokio::spawn(run(addr, config, rx, state.clone()));
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
}

/// A reply on its way.
pub(crate) struct Pending<T> {
    rx: oneshot::Receiver<Result<T>>,
    conn: Conn,
}

impl<T> Pending<T> {
    /// Waits for the reply, at most `timeout`.
    pub async fn wait(self, timeout: Option<Duration>) -> Result<T> {
        let Pending { rx, conn } = self;
        let got = match timeout {
            None => rx.await,
            Some(after) => match tokio::time::timeout(after, rx).await {
                Ok(got) => got,
                Err(_) => {
                    return Err(Error::Timeout {
                        addr: conn.addr,
                        after,
                    })
                }
            },
        };
        // A dropped slot means the connection ended before this reply.
        got.unwrap_or_else(|_| Err(conn.closed_error()))
    }
}

/// A few connections to one node, used round-robin and replaced when they close.
pub(crate) struct NodePool {
    addr: SocketAddr,
    config: Arc<ConnConfig>,
    conns: Box<[RwLock<Option<Conn>>]>,
    next: AtomicUsize,
}

impl NodePool {
    pub fn new(addr: SocketAddr, config: Arc<ConnConfig>, size: usize) -> NodePool {
        NodePool {
            addr,
            config,
            conns: (0..size.max(1)).map(|_| RwLock::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request; its reply comes back through the returned [`Pending`].
    pub fn send(&self, data: Bytes) -> Result<Pending<Value>> {
        let (tx, rx) = oneshot::channel();
        let conn = self.push(Job {
            data,
            waiter: Waiter::One(tx),
        })?;
        Ok(Pending { rx, conn })
    }

    /// Sends `count` pipelined requests; their replies come back together, in order.
    pub fn send_many(&self, data: Bytes, count: usize) -> Result<Pending<Vec<Value>>> {
        let (tx, rx) = oneshot::channel();
        let conn = self.push(Job {
            data,
            waiter: Waiter::Many {
                want: count,
                got: Vec::with_capacity(count),
                tx,
            },
        })?;
        Ok(Pending { rx, conn })
    }

    fn push(&self, job: Job) -> Result<Conn> {
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
                    Ok(()) => return Ok(conn.clone()),
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
                    Ok(()) => return Ok(conn.clone()),
                    Err(j) => job = j,
                }
            } else if !conn.connected() && recently(&conn.state) {
                // The node refused us a moment ago: do not dial it again on every request.
                return Err(conn.closed_error());
            }
        }
        let conn = Conn::spawn(self.addr, self.config.clone());
        match conn.push(job) {
            Ok(()) => {
                *guard = Some(conn.clone());
                Ok(conn)
            }
            Err(_) => Err(conn.closed_error()),
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
    addr: SocketAddr,
    config: Arc<ConnConfig>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    state: Arc<State>,
) {
    let (stream, leftover) = match handshake(addr, &config).await {
        Ok(ok) => ok,
        Err(e) => {
            debug!(%addr, error = %e, "cannot connect");
            state.close(e.clone());
            jobs.close();
            while let Ok(job) = jobs.try_recv() {
                job.waiter.fail(e.clone());
            }
            return;
        }
    };
    state.connected.store(true, Ordering::Release);
    let (rd, wr) = stream.into_split();
    let (waiters_tx, waiters_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_loop(addr, rd, leftover, waiters_rx, state.clone()));
    let failed = write_loop(addr, wr, &mut jobs, waiters_tx).await;
    if let Err(e) = failed {
        // The socket is broken: stop the reader too, which drops its slots (their callers
        // see the connection error recorded here).
        state.close(e);
        reader.abort();
    } else {
        // Every handle is gone: the reader finishes the replies already asked for.
        let _ = reader.await;
    }
    jobs.close();
}

/// Writes requests until every handle is dropped (`Ok`) or the socket fails (`Err`).
async fn write_loop(
    addr: SocketAddr,
    mut wr: OwnedWriteHalf,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
    waiters: mpsc::UnboundedSender<Waiter>,
) -> Result<()> {
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    let lost = |e: std::io::Error| Error::Connection {
        addr,
        message: e.to_string(),
    };
    loop {
        let first = tokio::select! {
            biased;
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
            // The reader ended (and recorded why): stop taking requests now, so the pool
            // sees this connection closed before the next request is lost on it.
            () = waiters.closed() => {
                return Err(Error::Connection {
                    addr,
                    message: "connection closed".into(),
                })
            }
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            if waiters.send(job.waiter).is_err() {
                // The reader has ended (and recorded why); the slot was dropped with the send.
                return Err(Error::Connection {
                    addr,
                    message: "connection closed".into(),
                });
            }
            if job.data.len() >= WRITE_BATCH {
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
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(lost)?;
            out.clear();
        }
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// Reads replies and fills slots in order, until the connection ends or the writer is gone
/// and every slot is filled.
async fn read_loop(
    addr: SocketAddr,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    mut waiters: mpsc::UnboundedReceiver<Waiter>,
    state: Arc<State>,
) {
    let mut scanner = Scanner::new();
    let mut pending: VecDeque<Waiter> = VecDeque::new();
    let mut writer_done = false;
    let error = loop {
        // Every complete reply in the buffer.
        let mut broken = None;
        loop {
            match scanner.scan(&buf) {
                Ok(Some(len)) => {
                    let frame = buf.split_to(len).freeze();
                    let value = match resp::parse(&frame) {
                        Ok(v) => v,
                        Err(e) => {
                            broken = Some(protocol(addr, e));
                            break;
                        }
                    };
                    if let Value::Push(_) = value {
                        continue; // out-of-band, answers no request
                    }
                    if pending.is_empty() {
                        // Its slot is queued before the request is written, so it is there
                        // or coming; none coming means a reply nobody asked for.
                        match waiters.recv().await {
                            Some(w) => pending.push_back(w),
                            None => {
                                broken = Some(protocol(
                                    addr,
                                    resp::ProtocolError("reply without a request".into()),
                                ));
                                break;
                            }
                        }
                    }
                    deliver(&mut pending, value);
                }
                Ok(None) => break,
                Err(e) => {
                    broken = Some(protocol(addr, e));
                    break;
                }
            }
        }
        if let Some(e) = broken {
            break e;
        }
        while let Ok(w) = waiters.try_recv() {
            pending.push_back(w);
        }
        if pending.is_empty() && writer_done {
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = if pending.is_empty() && !writer_done {
            // Idle: wait for a request to be sent (or the writer to finish) as well.
            tokio::select! {
                w = waiters.recv() => {
                    match w {
                        Some(w) => pending.push_back(w),
                        None => writer_done = true,
                    }
                    continue;
                }
                r = rd.read_buf(&mut buf) => r,
            }
        } else {
            rd.read_buf(&mut buf).await
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
    waiters.close();
    while let Ok(w) = waiters.try_recv() {
        pending.push_back(w);
    }
    for w in pending {
        w.fail(error.clone());
    }
}

fn protocol(addr: SocketAddr, e: resp::ProtocolError) -> Error {
    Error::Protocol { addr, message: e.0 }
}

fn deliver(pending: &mut VecDeque<Waiter>, value: Value) {
    let mut value = Some(value);
    let done = match pending.front_mut() {
        None => return,
        Some(Waiter::One(_)) => true,
        Some(Waiter::Many { want, got, .. }) => {
            got.extend(value.take());
            got.len() >= *want
        }
    };
    if done {
        match (pending.pop_front(), value) {
            (Some(Waiter::One(tx)), Some(value)) => drop(tx.send(Ok(value))),
            (Some(Waiter::Many { got, tx, .. }), _) => drop(tx.send(Ok(got))),
            _ => {}
        }
    }
}

/// Connects and greets: AUTH or HELLO, then `CLUSTER REDIRECTS YES`, pipelined. Returns the
/// stream and any bytes read past the greeting's replies.
async fn handshake(addr: SocketAddr, config: &ConnConfig) -> Result<(TcpStream, BytesMut)> {
    let lost = |message: String| Error::Connection { addr, message };
    let mut stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            lost(format!(
                "connect timed out after {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| lost(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut hello = BytesMut::new();
    let mut expected = 0;
    match (&config.password, config.resp3) {
        (Some(pw), true) => {
            resp::encode_command(&[&b"HELLO"[..], b"3", b"AUTH", b"default", pw], &mut hello);
            expected += 1;
        }
        (None, true) => {
            resp::encode_command(&["HELLO", "3"], &mut hello);
            expected += 1;
        }
        (Some(pw), false) => {
            resp::encode_command(&[&b"AUTH"[..], pw], &mut hello);
            expected += 1;
        }
        (None, false) => {}
    }
    if config.cluster {
        resp::encode_command(&["CLUSTER", "REDIRECTS", "YES"], &mut hello);
        expected += 1;
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    if expected == 0 {
        return Ok((stream, buf));
    }
    let greet = async {
        stream
            .write_all(&hello)
            .await
            .map_err(|e| lost(e.to_string()))?;
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
    tokio::time::timeout(config.connect_timeout, greet)
        .await
        .map_err(|_| {
            lost(format!(
                "handshake timed out after {:?}",
                config.connect_timeout
            ))
        })??;
    Ok((stream, buf))
}
