//! A connection's background tasks: the writer batching requests, the reader matching replies
//! to their waiters, and the response timeout.

use super::*;

/// The connection's life: connect and greet, then the writer here and the reader beside it.
pub(super) async fn run(
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
