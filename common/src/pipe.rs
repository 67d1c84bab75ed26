//! One pipelined, multiplexed connection to a RESP server: the client library's connections
//! to the DataNodes and a DataNode's links to its peers are both this, each with its own
//! [`Codec`] (what a reply becomes and who gets it).
//!
//! A cloneable [`Handle`] sits in front of background tasks that own the socket. Callers
//! hand over (encoded request, reply slot) as a [`Job`] and await their slot; any number of
//! requests from any number of tasks are in flight on one socket at once.
//!
//! Two tasks per connection, so neither direction can block the other (a server that stops
//! reading our requests while we stop reading its replies would deadlock one task):
//! - the **writer** takes requests from the channel, hands their reply slots to the reader,
//!   then writes everything that was waiting in one `write` (a natural pipeline). Before a
//!   write it lets the other ready tasks run ([`Gather`]), so what many callers send in one
//!   round of readiness leaves in one write. A request of [`WRITE_BATCH`] bytes or more is
//!   written from its own buffer, never copied (a handoff's IMPORT may carry hundreds of
//!   megabytes).
//! - the **reader** cuts complete replies out of the byte stream (the bounded, resumable
//!   [`Scanner`]) and gives them to the slots in the order their requests were written
//!   (Redis answers in order). The codec may take a reply as answering nothing (a RESP3
//!   push).
//!
//! A slot is handed over before its bytes are written, so a reply never arrives before its
//! slot. When the connection ends every slot still waiting gets the error ([`Ended`], made
//! the codec's own); nothing waits forever.
//!
//! The response timeout is the connection's, not each request's: the writer stamps each
//! batch once, and the reader, on a coarse tick, checks the oldest outstanding request. A
//! reply that is overdue means the connection (or the server) is stuck, and since replies
//! come in order everything behind it is stuck too: the connection ends with
//! [`Ended::Timeout`]. One clock read per batch instead of a timer per request.
//!
//! Requests sent without waiting for their replies can be charged to a [`Budget`] until
//! they are written, so a server that stops reading costs the sender a bounded amount.

use crate::resp::Scanner;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

/// Write in one go up to this much; bigger requests are written from their own buffer.
pub const WRITE_BATCH: usize = 64 * 1024;
/// Grow the read buffer by at least this much.
const READ_CHUNK: usize = 16 * 1024;
/// Overdue replies are looked for every timeout / 4, but not more often than this.
const TICK_MIN: Duration = Duration::from_millis(10);

/// How long a request may wait for its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// The response timeout.
    Normal,
    /// The response timeout plus this (a blocking command's own timeout).
    Longer(Duration),
    /// As long as it takes (a blocking command without a timeout).
    Forever,
}

impl Patience {
    /// When a request taken at `sent` is overdue, with the connection's response timeout
    /// (`None`: never).
    pub fn due(self, sent: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        match self {
            Patience::Normal => sent.checked_add(timeout),
            Patience::Longer(extra) => sent.checked_add(timeout.checked_add(extra)?),
            Patience::Forever => None,
        }
    }
}

/// When the writer lets other tasks run before it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// Before every write (a DataNode's peer links: the requests of many client connections
    /// forwarded in one round leave in one write; without it the writer, woken by the first
    /// request, ran first and wrote each alone).
    Always,
    /// Only when callers are concurrent (the previous write carried more than one request,
    /// or replies are outstanding): a lone caller does not pay the yield's poll.
    WhenConcurrent,
}

/// What happens to outstanding requests when every handle is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenDropped {
    /// Their replies are still read and delivered; then the connection closes.
    Finish,
    /// They fail at once ([`Ended::Closed`]) and the connection closes (a DataNode drops its
    /// link to a peer that left the cluster: nobody would wait for a paused peer).
    Fail,
}

/// How a connection behaves.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Longest wait for a reply before the connection counts as stuck (`None`: no limit).
    pub response_timeout: Option<Duration>,
    pub gather: Gather,
    pub when_dropped: WhenDropped,
}

/// Why a connection ended, as this module sees it; [`Codec::error`] makes it the codec's
/// own error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Reading or writing failed.
    Io(String),
    /// The server closed the connection.
    ClosedByPeer,
    /// Closed on our side: every handle was dropped ([`WhenDropped::Fail`]), or the request
    /// was never written.
    Closed,
    /// [`Handle::kill`]: the caller gave up.
    Killed,
    /// A reply that does not parse, or a reply nobody asked for.
    Protocol(String),
    /// The oldest outstanding reply was due this long after its request was taken.
    Timeout(Duration),
}

/// What a connection's replies become and who gets them.
pub trait Codec: Send + 'static {
    /// Where one request's reply (or replies) go.
    type Slot: Send + 'static;
    /// One reply, as the codec takes it out of the read buffer.
    type Reply: Send;
    /// The error slots fail with.
    type Error: Clone + Send + 'static;

    /// The error for a connection to `addr` that ended because of `why`.
    fn error(addr: SocketAddr, why: Ended) -> Self::Error;

    /// Fails a slot whose request got no reply.
    fn fail(slot: Self::Slot, error: &Self::Error);

    /// Takes the complete reply of `len` bytes off the front of `buf`; `None` when it answers
    /// no request (a push), `Err` when it is malformed (the connection ends).
    fn take(&mut self, buf: &mut BytesMut, len: usize) -> Result<Option<Self::Reply>, String>;

    /// Gives `reply` to `slot`. Returns it back when it completes the slot (most slots take
    /// one reply; a pipeline's takes several): the slot is then [`Codec::complete`]d with it.
    fn offer(&mut self, slot: &mut Self::Slot, reply: Self::Reply) -> Option<Self::Reply>;

    /// Hands the last reply to a complete slot.
    fn complete(&mut self, slot: Self::Slot, reply: Self::Reply);
}

/// A byte budget for requests sent without waiting for their replies: what such requests to
/// one server hold, queued and not yet written, is bounded.
#[derive(Clone, Debug, Default)]
pub struct Budget(Arc<AtomicUsize>);

impl Budget {
    /// Charges `bytes`, unless the budget already holds bytes and these would take it past
    /// `limit` (0: no limit). A request larger than the limit still goes when nothing is
    /// held.
    pub fn charge(&self, bytes: usize, limit: usize) -> Option<Hold> {
        self.0
            .fetch_update(Relaxed, Relaxed, |held| {
                let over = limit > 0 && held > 0 && held.saturating_add(bytes) > limit;
                (!over).then(|| held.saturating_add(bytes))
            })
            .ok()?;
        Some(Hold {
            budget: self.0.clone(),
            bytes,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.0.load(Relaxed)
    }
}

/// Bytes charged to a [`Budget`]; given back when dropped (written, or failed).
#[derive(Debug)]
pub struct Hold {
    budget: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Relaxed);
    }
}

/// One request: its bytes, where its reply goes, how long it may wait, and the budget its
/// bytes are charged to until written.
pub struct Job<S> {
    pub data: Bytes,
    pub slot: S,
    pub patience: Patience,
    pub hold: Option<Hold>,
}

impl<S> Job<S> {
    /// A request with the normal patience, charged to no budget.
    pub fn new(data: Bytes, slot: S) -> Job<S> {
        Job {
            data,
            slot,
            patience: Patience::Normal,
            hold: None,
        }
    }
}

/// What a connection's tasks report to its handles.
pub struct State<E> {
    /// The stream was opened and greeted ([`Queue::serve`] started).
    connected: AtomicBool,
    /// Why the connection ended, and when.
    closed: Mutex<Option<(E, Instant)>>,
    /// Requests handed to the reader and not answered yet.
    in_flight: AtomicUsize,
    /// End the connection now, whatever is outstanding, for this reason.
    kill: Notify,
    kill_why: Mutex<Option<Ended>>,
}

impl<E: Clone> State<E> {
    /// Whether the connection was ever established.
    pub fn connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the connection ended, once it has.
    pub fn error(&self) -> Option<E> {
        lock(&self.closed).as_ref().map(|(e, _)| e.clone())
    }

    /// Whether the connection ended less than `within` ago.
    pub fn closed_within(&self, within: Duration) -> bool {
        lock(&self.closed)
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < within)
    }

    fn close(&self, e: E) {
        lock(&self.closed).get_or_insert_with(|| (e, Instant::now()));
    }

    fn kill_with(&self, why: Ended) {
        lock(&self.kill_why).get_or_insert(why);
        self.kill.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The callers' side of one connection. The connection lives while a handle does (and then
/// as [`WhenDropped`] says).
pub struct Handle<C: Codec> {
    tx: mpsc::UnboundedSender<Job<C::Slot>>,
    state: Arc<State<C::Error>>,
}

impl<C: Codec> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle {
            tx: self.tx.clone(),
            state: self.state.clone(),
        }
    }
}

impl<C: Codec> Handle<C> {
    /// Queues a request; it comes back when the connection has ended.
    pub fn send(&self, job: Job<C::Slot>) -> Result<(), Job<C::Slot>> {
        self.tx.send(job).map_err(|e| e.0)
    }

    /// Whether the connection has ended (requests are refused).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn state(&self) -> &State<C::Error> {
        &self.state
    }

    /// Closes the connection at once; what is outstanding fails with [`Ended::Killed`].
    pub fn kill(&self) {
        self.state.kill_with(Ended::Killed);
    }
}

/// The connection's side: what the task that opens the stream holds until it
/// [`Queue::serve`]s it or [`Queue::fail`]s.
pub struct Queue<C: Codec> {
    addr: SocketAddr,
    jobs: mpsc::UnboundedReceiver<Job<C::Slot>>,
    state: Arc<State<C::Error>>,
}

/// A new connection to `addr`: requests sent on the handle wait in the queue until the
/// stream is open.
pub fn channel<C: Codec>(addr: SocketAddr) -> (Handle<C>, Queue<C>) {
    let (tx, jobs) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        connected: AtomicBool::new(false),
        closed: Mutex::new(None),
        in_flight: AtomicUsize::new(0),
        kill: Notify::new(),
        kill_why: Mutex::new(None),
    });
    let handle = Handle {
        tx,
        state: state.clone(),
    };
    (handle, Queue { addr, jobs, state })
}

impl<C: Codec> Queue<C> {
    /// Every queued request fails with `error`, and so does every later one: the stream could
    /// not be opened or greeted, or (from [`Queue::serve`]) the connection has ended.
    pub fn fail(mut self, error: C::Error) {
        self.state.close(error.clone());
        self.jobs.close();
        while let Ok(job) = self.jobs.try_recv() {
            C::fail(job.slot, &error);
        }
    }

    /// Carries requests over the open stream (`rd`, `wr`; `leftover`: bytes read past the
    /// greeting) until it ends; then fails every request that was not written.
    pub async fn serve<R, W>(mut self, codec: C, rd: R, wr: W, leftover: BytesMut, options: Options)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin,
    {
        let addr = self.addr;
        self.state
            .connected
            .store(true, std::sync::atomic::Ordering::Release);
        let (batches_tx, batches_rx) = mpsc::unbounded_channel();
        let reader = Reader {
            codec,
            addr,
            batches: batches_rx,
            timeout: options.response_timeout,
            state: self.state.clone(),
        };
        let mut reader = tokio::spawn(reader.run(rd, leftover));
        let writer = Writer {
            batches: batches_tx,
            options,
            in_flight: &self.state.in_flight,
        };
        let written = tokio::select! {
            written = writer.run(wr, &mut self.jobs) => Some(written),
            // The reader ended (and recorded why): stop the writer, even in the middle of a
            // write to a server that stopped reading.
            _ = &mut reader => None,
        };
        let writer_ended = written.is_some();
        match written {
            // The socket is broken: the reader fails what is outstanding with it.
            Some(Err(why)) => self.state.kill_with(why),
            Some(Ok(())) if options.when_dropped == WhenDropped::Fail => {
                self.state.kill_with(Ended::Closed)
            }
            _ => {}
        }
        if writer_ended {
            // Stopped for sure before we return (a codec may feed a cache from replies).
            let _ = reader.await;
        }
        let error = self
            .state
            .error()
            .unwrap_or_else(|| C::error(addr, Ended::Closed));
        self.fail(error);
    }
}

/// An open connection to a server: TCP (`Left`), or TLS over TCP (`Right`), read and
/// written through whichever it is.
#[cfg(feature = "tls")]
pub type Stream = tokio_util::either::Either<
    tokio::net::TcpStream,
    Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
>;

#[cfg(feature = "tls")]
impl<C: Codec> Queue<C> {
    /// [`Queue::serve`] over a [`Stream`]: a TCP stream splits into owned halves (no lock
    /// between the reader and the writer), a TLS stream through a lock.
    pub async fn serve_stream(
        self,
        codec: C,
        stream: Stream,
        leftover: BytesMut,
        options: Options,
    ) {
        match stream {
            Stream::Left(s) => {
                let (rd, wr) = s.into_split();
                self.serve(codec, rd, wr, leftover, options).await;
            }
            Stream::Right(s) => {
                let (rd, wr) = tokio::io::split(s);
                self.serve(codec, rd, wr, leftover, options).await;
            }
        }
    }
}

/// The reply slots of one write, when its requests were taken, and when the last of them is
/// overdue (`None`: never).
struct Batch<S> {
    sent: Instant,
    due: Option<Instant>,
    slots: Vec<S>,
}

struct Writer<'a, S> {
    batches: mpsc::UnboundedSender<Batch<S>>,
    options: Options,
    in_flight: &'a AtomicUsize,
}

impl<S> Writer<'_, S> {
    /// Hands a batch's slots to the reader (counted in flight first, so the reader's count
    /// never goes below zero).
    fn hand_over(&self, sent: Instant, due: Option<Instant>, slots: Vec<S>) -> Result<(), Ended> {
        if slots.is_empty() {
            return Ok(());
        }
        self.in_flight.fetch_add(slots.len(), Relaxed);
        self.batches
            .send(Batch { sent, due, slots })
            .map_err(|_| Ended::Closed)
    }

    /// Writes requests until every handle is dropped (`Ok`) or the socket fails (`Err`).
    async fn run<W: AsyncWrite + Unpin>(
        self,
        mut wr: W,
        jobs: &mut mpsc::UnboundedReceiver<Job<S>>,
    ) -> Result<(), Ended> {
        let io = |e: std::io::Error| Ended::Io(e.to_string());
        let mut out = BytesMut::with_capacity(READ_CHUNK);
        let timeout = self.options.response_timeout;
        // Requests in the previous write.
        let mut last_batch = 0usize;
        // Budget charges of the requests being written, given back once they are.
        let mut holds: Vec<Hold> = Vec::new();
        while let Some(first) = jobs.recv().await {
            let concurrent = last_batch > 1 || self.in_flight.load(Relaxed) > 0;
            if self.options.gather == Gather::Always || concurrent {
                // Let every other ready task queue its requests first: the server then
                // reads many requests per read (its cost is per read, not per request).
                crate::sched::let_ready_run().await;
            }
            last_batch = 0;
            let sent = Instant::now();
            // The batch's deadline is its most patient request's.
            let mut due = Patience::Normal.due(sent, timeout);
            let mut slots = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                last_batch += 1;
                if job.patience != Patience::Normal {
                    due = match (due, job.patience.due(sent, timeout)) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                slots.push(job.slot);
                holds.extend(job.hold);
                if job.data.len() >= WRITE_BATCH {
                    // Big: hand over the slots so far, then write from the request's buffer.
                    self.hand_over(sent, due, std::mem::take(&mut slots))?;
                    if !out.is_empty() {
                        wr.write_all(&out).await.map_err(io)?;
                        out.clear();
                    }
                    wr.write_all(&job.data).await.map_err(io)?;
                } else {
                    out.extend_from_slice(&job.data);
                }
                if out.len() < WRITE_BATCH {
                    next = jobs.try_recv().ok();
                }
            }
            self.hand_over(sent, due, slots)?;
            if !out.is_empty() {
                wr.write_all(&out).await.map_err(io)?;
                out.clear();
            }
            // TLS keeps the last record until flushed; for TCP this does nothing.
            wr.flush().await.map_err(io)?;
            holds.clear();
        }
        let _ = wr.shutdown().await;
        Ok(())
    }
}

struct Reader<C: Codec> {
    codec: C,
    addr: SocketAddr,
    batches: mpsc::UnboundedReceiver<Batch<C::Slot>>,
    timeout: Option<Duration>,
    state: Arc<State<C::Error>>,
}

impl<C: Codec> Reader<C> {
    /// Reads replies and fills slots in order, until the connection ends, a reply is
    /// overdue, the connection is killed, or the writer is gone and every slot is filled.
    async fn run<R: AsyncRead + Unpin>(mut self, mut rd: R, mut buf: BytesMut) {
        let mut scanner = Scanner::new();
        let mut pending = Outstanding {
            slots: VecDeque::new(),
            batches: VecDeque::new(),
        };
        let mut writer_done = false;
        let period = self
            .timeout
            .map_or(Duration::from_secs(3600), |t| (t / 4).max(TICK_MIN));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = self.state.clone();
        let killed = || lock(&state.kill_why).clone().unwrap_or(Ended::Killed);
        let why = loop {
            match self.replies(&mut scanner, &mut buf, &mut pending).await {
                Ok(0) => {}
                Ok(n) => drop(state.in_flight.fetch_sub(n, Relaxed)),
                Err(why) => break why,
            }
            while let Ok(batch) = self.batches.try_recv() {
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
                    _ = state.kill.notified() => break killed(),
                    batch = self.batches.recv() => {
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
                    _ = state.kill.notified() => break killed(),
                    // Ticks that pass while nothing is outstanding are consumed here.
                    _ = tick.tick(), if self.timeout.is_some() => {
                        if let Some((sent, Some(due))) = pending.oldest() {
                            if Instant::now() >= due {
                                break Ended::Timeout(due.saturating_duration_since(sent));
                            }
                        }
                        continue;
                    }
                }
            };
            match read {
                Ok(0) => break Ended::ClosedByPeer,
                Ok(_) => {}
                Err(e) => break Ended::Io(e.to_string()),
            }
        };
        tracing::debug!(addr = %self.addr, why = ?why, "connection ended");
        let error = C::error(self.addr, why);
        state.close(error.clone());
        self.batches.close();
        while let Ok(batch) = self.batches.try_recv() {
            pending.push(batch);
        }
        for slot in pending.slots.drain(..) {
            C::fail(slot, &error);
        }
    }

    /// Cuts every complete reply out of `buf` and gives it to its slot; how many requests
    /// that answered.
    async fn replies(
        &mut self,
        scanner: &mut Scanner,
        buf: &mut BytesMut,
        pending: &mut Outstanding<C::Slot>,
    ) -> Result<usize, Ended> {
        let mut answered = 0;
        while let Some(len) = scanner.scan(buf).map_err(|e| Ended::Protocol(e.0))? {
            let Some(reply) = self.codec.take(buf, len).map_err(Ended::Protocol)? else {
                continue;
            };
            if pending.is_empty() {
                // Slots are handed over (and counted in flight) before their requests are
                // written, so this reply's slot is here or on its way; none counted means a
                // reply nobody asked for (waiting for the next request's slot would give it
                // this reply).
                let unanswered = self.state.in_flight.load(Relaxed).saturating_sub(answered);
                if unanswered == 0 {
                    return Err(Ended::Protocol("reply without a request".into()));
                }
                match self.batches.recv().await {
                    Some(batch) => pending.push(batch),
                    None => return Err(Ended::Protocol("reply without a request".into())),
                }
            }
            answered += usize::from(pending.deliver(&mut self.codec, reply));
        }
        Ok(answered)
    }
}

/// The reply slots, in write order, with the time their batch was taken.
struct Outstanding<S> {
    slots: VecDeque<S>,
    /// (slots of a batch still outstanding, when it was taken, when it is overdue), oldest
    /// first.
    batches: VecDeque<(usize, Instant, Option<Instant>)>,
}

impl<S> Outstanding<S> {
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn push(&mut self, batch: Batch<S>) {
        if !batch.slots.is_empty() {
            self.batches
                .push_back((batch.slots.len(), batch.sent, batch.due));
            self.slots.extend(batch.slots);
        }
    }

    /// When the oldest outstanding request was taken, and when it is overdue. Replies come
    /// in order, so only the oldest can be late: those behind it wait on it.
    fn oldest(&self) -> Option<(Instant, Option<Instant>)> {
        self.batches.front().map(|b| (b.1, b.2))
    }

    /// Gives `reply` to the first slot; whether that answered a whole request.
    fn deliver<C: Codec<Slot = S>>(&mut self, codec: &mut C, reply: C::Reply) -> bool {
        let Some(front) = self.slots.front_mut() else {
            return false;
        };
        let Some(last) = codec.offer(front, reply) else {
            return false;
        };
        if let Some(slot) = self.slots.pop_front() {
            codec.complete(slot, last);
        }
        if let Some(front) = self.batches.front_mut() {
            front.0 -= 1;
            if front.0 == 0 {
                self.batches.pop_front();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
