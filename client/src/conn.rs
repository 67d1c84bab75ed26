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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::error::{Error, Result};
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

/// How connections are opened and greeted.
#[derive(Clone, Debug)]
pub(crate) struct ConnConfig {
    pub connect_timeout: Duration,
    pub password: Option<Bytes>,
    pub resp3: bool,
    /// Send `CLUSTER REDIRECTS YES`: the node answers `-MOVED` for slots it does not own
    /// instead of forwarding (false for a standalone server, which may not know the command).
    pub cluster: bool,
    /// Longest wait for a reply before the connection counts as stuck.
    pub response_timeout: Option<Duration>,
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
        self.push(Job {
            data,
            waiter: Waiter::One(tx),
        })?;
        Ok(Pending {
            rx,
            addr: self.addr,
        })
    }

    /// Sends `count` pipelined requests; their replies come back together, in order.
    pub fn send_many(&self, data: Bytes, count: usize) -> Result<Pending<Vec<Value>>> {
        let (tx, rx) = oneshot::channel();
        self.push(Job {
            data,
            waiter: Waiter::Many {
                want: count,
                got: Vec::with_capacity(count),
                tx,
            },
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

fn recently(state: &State) -> bool {
    state
        .closed_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .is_some_and(|at| at.elapsed() < FAIL_FAST)
}

/// The connection's life: connect and greet, then drive the socket until it ends.
async fn run(
    addr: SocketAddr,
    config: Arc<ConnConfig>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    state: Arc<State>,
) {
    let (stream, leftover) = match handshake(addr, &config).await {
        Ok(ok) => ok,
        Err(e) => return fail_queued(&state, &mut jobs, e),
    };
    state.connected.store(true, Ordering::Release);
    let mut driver = Driver::new(addr, stream, leftover, config.response_timeout);
    match std::future::poll_fn(|cx| driver.poll(cx, &mut jobs)).await {
        Ok(()) => debug!(%addr, "connection closed: no handle left"),
        Err(e) => {
            debug!(%addr, error = %e, "connection ended");
            driver.pending.fail_all(&e);
            fail_queued(&state, &mut jobs, e);
        }
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

/// Requests taken from the channel but not written yet, at most (beyond this, requests wait
/// in the channel until the socket drains: memory follows what the node accepts).
const MAX_UNWRITTEN: usize = 1024 * 1024;
/// Rounds of work in one poll before yielding to the other tasks of the thread.
const MAX_ROUNDS: usize = 32;

/// The state of a live connection, driven by one task: take requests, write, read replies,
/// fill slots. Reading is polled whether or not a write is pending, so a node that stops
/// reading while it writes cannot deadlock us.
struct Driver {
    addr: SocketAddr,
    stream: TcpStream,
    /// Chunks to write before `out`: big requests are written from their own buffer.
    queued: VecDeque<Bytes>,
    /// Small requests gathered for the next write.
    out: BytesMut,
    read: BytesMut,
    scanner: Scanner,
    pending: Outstanding,
    jobs_done: bool,
    timeout: Option<Duration>,
    tick: tokio::time::Interval,
}

impl Driver {
    fn new(
        addr: SocketAddr,
        stream: TcpStream,
        leftover: BytesMut,
        timeout: Option<Duration>,
    ) -> Driver {
        // Overdue replies are looked for a few times per timeout.
        let period = timeout.map_or(Duration::from_secs(3600), |t| (t / 4).max(TICK_MIN));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Driver {
            addr,
            stream,
            queued: VecDeque::new(),
            out: BytesMut::with_capacity(READ_CHUNK),
            read: leftover,
            scanner: Scanner::new(),
            pending: Outstanding::default(),
            jobs_done: false,
            timeout,
            tick,
        }
    }

    fn unwritten(&self) -> usize {
        self.out.len() + self.queued.iter().map(Bytes::len).sum::<usize>()
    }

    fn lost(&self, e: std::io::Error) -> Error {
        Error::Connection {
            addr: self.addr,
            message: e.to_string(),
        }
    }

    /// `Ready(Ok)` once every handle is gone and every reply is in; `Ready(Err)` when the
    /// connection fails.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Poll<Result<()>> {
        for _ in 0..MAX_ROUNDS {
            let mut progress = self.take_jobs(cx, jobs);
            progress |= self.write(cx)?;
            progress |= self.read(cx)?;
            if self.jobs_done && self.pending.is_empty() && self.unwritten() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Ticks that pass while nothing is outstanding are consumed by the next check.
            if let (Some(after), false) = (self.timeout, self.pending.is_empty()) {
                while self.tick.poll_tick(cx).is_ready() {
                    if self.pending.oldest().is_some_and(|t| t.elapsed() >= after) {
                        return Poll::Ready(Err(Error::Timeout {
                            addr: self.addr,
                            after,
                        }));
                    }
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Still busy: let the thread's other tasks run, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes queued requests: their slots go to `pending` (stamped once per batch), their
    /// bytes to the write buffers.
    fn take_jobs(&mut self, cx: &mut Context<'_>, jobs: &mut mpsc::UnboundedReceiver<Job>) -> bool {
        let mut stamp = None;
        while !self.jobs_done && self.unwritten() < MAX_UNWRITTEN {
            match jobs.poll_recv(cx) {
                Poll::Ready(Some(job)) => {
                    let now = *stamp.get_or_insert_with(Instant::now);
                    self.pending.push(job.waiter, now);
                    if job.data.len() >= WRITE_BATCH {
                        if !self.out.is_empty() {
                            self.queued.push_back(self.out.split().freeze());
                        }
                        self.queued.push_back(job.data);
                    } else {
                        self.out.extend_from_slice(&job.data);
                    }
                }
                Poll::Ready(None) => self.jobs_done = true,
                Poll::Pending => break,
            }
        }
        stamp.is_some()
    }

    /// Writes what it can without waiting.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool> {
        let mut progress = false;
        loop {
            let chunk: &[u8] = match self.queued.front() {
                Some(front) => front,
                None if !self.out.is_empty() => &self.out,
                None => return Ok(progress),
            };
            match Pin::new(&mut self.stream).poll_write(cx, chunk) {
                Poll::Ready(Ok(0)) => {
                    return Err(Error::Connection {
                        addr: self.addr,
                        message: "connection closed while writing".into(),
                    })
                }
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    match self.queued.front_mut() {
                        Some(front) => {
                            front.advance(n);
                            if front.is_empty() {
                                self.queued.pop_front();
                            }
                        }
                        None => self.out.advance(n),
                    }
                }
                Poll::Ready(Err(e)) => return Err(self.lost(e)),
                Poll::Pending => return Ok(progress),
            }
        }
    }

    /// Reads what has arrived and fills the slots of every complete reply.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool> {
        let mut progress = false;
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Ok(progress),
                Poll::Ready(Err(e)) => return Err(self.lost(e)),
                Poll::Ready(Ok(())) => {}
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
                self.read.reserve(READ_CHUNK);
            }
            match self.stream.try_read_buf(&mut self.read) {
                Ok(0) => {
                    return Err(Error::Connection {
                        addr: self.addr,
                        message: "connection closed by the server".into(),
                    })
                }
                Ok(_) => {
                    progress = true;
                    self.replies()?;
                }
                // Readiness was stale; `poll_read_ready` registers us for the next bytes.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.lost(e)),
            }
        }
    }

    /// Cuts every complete reply out of the read buffer and gives it to its slot.
    fn replies(&mut self) -> Result<()> {
        let addr = self.addr;
        while let Some(len) = self
            .scanner
            .scan(&self.read)
            .map_err(|e| protocol(addr, e))?
        {
            let value = if len <= SHARE_ABOVE {
                let parsed = resp::parse(&self.read[..len]);
                self.read.advance(len);
                parsed
            } else {
                resp::parse_shared(&self.read.split_to(len).freeze())
            }
            .map_err(|e| protocol(addr, e))?;
            if let Value::Push(_) = value {
                continue; // out-of-band, answers no request
            }
            if self.pending.is_empty() {
                return Err(protocol(
                    addr,
                    resp::ProtocolError("reply without a request".into()),
                ));
            }
            self.pending.deliver(value);
        }
        Ok(())
    }
}

/// The reply slots, in write order, with the time their batch was taken.
#[derive(Default)]
struct Outstanding {
    slots: VecDeque<Waiter>,
    /// (slots of a batch still outstanding, when the batch was taken), oldest first.
    batches: VecDeque<(usize, Instant)>,
}

impl Outstanding {
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn push(&mut self, waiter: Waiter, at: Instant) {
        match self.batches.back_mut() {
            Some((count, t)) if *t == at => *count += 1,
            _ => self.batches.push_back((1, at)),
        }
        self.slots.push_back(waiter);
    }

    /// When the oldest outstanding request was taken.
    fn oldest(&self) -> Option<Instant> {
        self.batches.front().map(|b| b.1)
    }

    /// Gives `value` to the first slot (a pipeline slot takes several).
    fn deliver(&mut self, value: Value) {
        let mut value = Some(value);
        let done = match self.slots.front_mut() {
            None => return,
            Some(Waiter::One(_)) => true,
            Some(Waiter::Many { want, got, .. }) => {
                got.extend(value.take());
                got.len() >= *want
            }
        };
        if !done {
            return;
        }
        match (self.slots.pop_front(), value) {
            (Some(Waiter::One(tx)), Some(value)) => drop(tx.send(Ok(value))),
            (Some(Waiter::Many { got, tx, .. }), _) => drop(tx.send(Ok(got))),
            _ => {}
        }
        if let Some(front) = self.batches.front_mut() {
            front.0 -= 1;
            if front.0 == 0 {
                self.batches.pop_front();
            }
        }
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
